// Internals shared by the Gateway's files: gateway.cc (construction,
// authentication, hello, the access log), methods.cc (the method table and
// the dispatch), methods_*.cc (the RPC methods by group), catalog.cc (the
// workflow catalog), run_host.cc (runs and the supervisor), feeds.cc (event
// streams), retention.cc (deleting old runs), metrics.cc, and server.cc
// (HTTP, WebSocket, TLS). Everything here runs on the Gateway's one io
// thread, except what is marked (run threads call Wake() and Post() and
// count metrics). Nothing slow runs on the io thread: a module's load, its
// first render and the wait for a run's first commit happen on the run's
// thread, the workflow catalog's scans and loads on the catalog's thread
// (catalog.h), a retention sweep's listing on a thread of its own, and a
// method that waits for them replies later (Call's `done`, posted back to
// the io thread).
#ifndef SMITHERS_GATEWAY_GATEWAY_INTERNAL_H_
#define SMITHERS_GATEWAY_GATEWAY_INTERNAL_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gateway/catalog.h"
#include "gateway/gateway.h"
#include "gateway/protocol.h"
#include "script/lua_workflow.h"
#include "smithers/store.h"

namespace smithers::gateway {

// Who is calling, once authenticated.
struct Caller {
  std::string user_id;
  std::string role = "operator";
  std::string token_id;
  std::string token_hash;  // "" unless a database token (re-checked for revocation)
  std::vector<std::string> scopes;
  int64_t expires_at_ms = 0;  // 0 = none
  // How the identity was established: "token", "jwt", "trusted-proxy", or
  // "unauthenticated" (--auth none: the caller names itself).
  std::string via;
};

// What a request presented.
struct Credentials {
  std::string bearer;
  std::string proxy_user, proxy_scopes, proxy_role;
  std::string peer;  // the socket's remote address (no port)
};

// The outcome of one RPC call: a payload, or an error code (SPEC 5.10).
struct Reply {
  bool ok = true;
  Json payload;
  std::string code;
  std::string message;
  Json details;  // {requiredScope} for Forbidden, ...
  static Reply Ok(Json payload);
  static Reply Err(std::string code, const std::string& message, Json details = nullptr);
};
int HttpStatusFor(const std::string& code);
std::string Frame(const Json& value);  // compact JSON, invalid UTF-8 replaced

// A WebSocket connection as the core sees it (implemented in server.cc).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  virtual ~Connection() = default;
  // Queues {"type":"event","event":EVENT,"payload":PAYLOAD_JSON,"seq":n,...}.
  virtual void SendEvent(const std::string& event, const std::string& payload_json) = 0;
  // Frames that may be queued now before the high-water mark (0 = none).
  virtual int Room() const = 0;
  bool HasRoom() const { return Room() > 0; }
  // Past the hard limits (frames or bytes): the client is too slow.
  virtual bool Overflowing() const = 0;
  virtual void Close(int code, const std::string& reason) = 0;

  bool authenticated = false;
  bool closing = false;
  Caller caller;
  std::map<std::string, std::string> streams;  // stream id -> run id
  // Streams opened by AutoSubscribe: an explicit streamRunEvents of the same
  // run replaces them (one stream per run, no event twice).
  std::set<std::string> auto_streams;
};

// A stream's reader of a run's events: the last seq it was sent.
struct Subscriber {
  std::weak_ptr<Connection> conn;
  std::string stream_id;
  int64_t cursor = 0;  // events are numbered from 1
};

// One event of a feed's ring, serialized once for every subscriber.
struct RingEvent {
  int64_t seq = 0;
  std::string content;  // "event.<type>" when MaySee restricts it, else ""
  std::shared_ptr<const std::string> frame;
  std::shared_ptr<const std::string> withheld;  // for callers that may not see it
};

// The events of one run that subscribers follow, read from the database.
struct Feed {
  int64_t last_seq = 0;             // 0: none yet
  std::optional<RunStatus> status;  // the run's, as last read; nullopt before
  std::deque<RingEvent> ring;       // recent events
  std::vector<Subscriber> subs;
};

struct Metrics {
  std::atomic<int64_t> runs_launched{0}, tasks_started{0}, tasks_finished{0}, tasks_failed{0};
  std::atomic<int64_t> events_sent{0}, auth_failures{0}, backpressure_disconnects{0};
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> cron_sweeps{0};  // FireDueCron calls completed
  // Retention sweeps completed (their deletions done) and the runs they deleted.
  std::atomic<int64_t> retention_sweeps{0}, retention_runs_deleted{0};
  struct RpcStats {
    std::array<int64_t, 12> buckets{};
    int64_t count = 0;
    double sum = 0;
  };
  std::mutex mu;  // guards the maps
  std::map<std::string, RpcStats> rpc;
  std::map<std::string, int64_t> outcomes;  // method \x1f code -> count
  void ObserveRpc(const std::string& method, const std::string& outcome, double seconds);
};

struct RunStart {
  std::string run_id;
  std::string path;
  // A new run's input; null on resume: the engine reads the run's stored
  // input (a resume must never replace it, not even with {}).
  Json input = nullptr;
  Json auth;
  // Who launched or resumed it (RunOptions::audit); nullopt = not audited.
  std::optional<AuditEntry> audit;
  // A new run (launchRun): its thread loads the module at `path`, checks
  // `input` against it and pins its source before the run exists; a failure
  // there refuses the launch (the started reply is the error) and no run is
  // made.
  bool launch = false;
  bool resume = false;
  bool force = false;
  std::string claim_from;
  int max_concurrency = 16;
};

// A method's reply, delivered on the io thread.
using ReplyFn = std::function<void(Reply)>;

struct ActiveRun {
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> done;
};

class Gateway {
 public:
  Gateway(const GatewayOptions& options, std::unique_ptr<Store> store);
  ~Gateway();

  Result<Caller> Authenticate(const Credentials& credentials);
  // Still valid (not expired, not revoked)?
  Status Revalidate(const Caller& caller);
  // Runs one RPC method for an authenticated caller and calls `done` with its
  // reply on the io thread: before Call returns, or later for a method that
  // waits for a run's thread (a Method row with `deferred`: launchRun,
  // resumeRun, cronRun). `conn` is null over HTTP; a reply that comes later
  // holds it (shared) until it is delivered, and subscribes it (AutoSubscribe)
  // just before `done` unless it is closing by then. `done` must drop a reply
  // for a connection that closed meanwhile.
  void Call(const Caller& caller, const std::string& method, const Json& params, Connection* conn,
            ReplyFn done);
  // Tests and the fuzz target, with no io loop running (post_to_io unset):
  // Call, then runs what run threads Post() until the reply came.
  Reply CallForTesting(const Caller& caller, const std::string& method, const Json& params,
                       Connection* conn);
  Json Hello(const Caller& caller);
  Reply Health();
  std::string MetricsText();

  // Periodic work, driven by server.cc's timers.
  // Asks the catalog's thread for a scan; what changed reaches workflows()
  // on the io thread (ApplyScan).
  void ScanWorkflows();
  // A scan, then `then` on the io thread with workflows() as that scan
  // found them (launchRun: a file written a moment ago can be launched).
  void RefreshCatalog(std::function<void()> then);
  // Stops the catalog's thread (before the io loop that its results are
  // posted to goes away).
  void StopCatalog() { catalog_.Stop(); }
  bool CatalogBusy() const { return catalog_.busy(); }
  void Supervise();
  // Joins the threads of runs that ended; returns how many still run.
  size_t ReapRuns();
  // Graceful stop: every run in flight starts no new task, finishes its tasks
  // in flight (up to GatewayOptions::stop_grace_ms) and releases its run;
  // returns once all their threads ended.
  void StopRuns();
  void FireDueCron();
  // Retention (GatewayOptions::retention; retention.cc): lists the runs due
  // on a thread of its own, then deletes them on the io thread, one per turn
  // of the io loop, each checked again first; a run this Gateway runs is
  // skipped. Does nothing when retention is off or a sweep is in progress.
  void SweepRetention();
  // Waits for a sweep's listing thread (before the io loop it posts to goes
  // away).
  void StopRetention();
  void PumpAll();
  // Sends a connection's streams what they lack, without reading the
  // database for new events (its queue drained below the high-water mark).
  void PumpConnection(Connection& conn);
  void Heartbeats();
  // Sends `event` to every authenticated connection that MaySee "push.EVENT".
  void Broadcast(const std::string& event, const Json& payload);
  // Thread-safe: asks the io thread to pump the feeds soon.
  void Wake();
  void Log(Json line);
  // Closes the access log file; the next line opens it again (SIGHUP, after
  // a rotation by rename). Logs `log.reopened` into the new file.
  void ReopenLog();
  // False with --access-log - : per-request lines need not be built.
  bool logging() const { return opts_.access_log != "-"; }

  const GatewayOptions& options() const { return opts_; }
  // How the modules it serves are loaded: restricted unless trusted_modules.
  script::ModuleOptions module_options() const {
    return {.restricted = !opts_.trusted_modules, .workspace = opts_.module_workspace};
  }
  Clock& clock() { return clock_; }
  Metrics& metrics() { return metrics_; }
  Store& store() { return *store_; }
  std::vector<std::weak_ptr<Connection>>& connections() { return connections_; }
  // Set by the server: schedules PumpAll on the io thread (thread-safe).
  std::function<void()> request_pump;
  // Set by the server before any run starts: runs `fn` on the io thread after
  // `delay_ms` (0: soon). Thread-safe. Unset (tests, the fuzz target): Post
  // queues `fn` for CallForTesting and drops delayed ones.
  std::function<void(std::function<void()> fn, int64_t delay_ms)> post_to_io;
  // Thread-safe: runs `fn` on the io thread (post_to_io).
  void Post(std::function<void()> fn, int64_t delay_ms = 0);

  // ---- for the method handlers (methods_*.cc) ----
  int64_t started_at_ms() const { return started_at_ms_; }
  int64_t state_version() const { return state_version_; }
  Json Identity() const;
  const std::map<std::string, WorkflowEntry>& workflows() const { return workflows_; }
  std::map<std::string, ActiveRun>& active_runs() { return active_; }
  // A run's summary for getRun, listRuns and hello: its record and the key
  // of the catalog's workflow it runs.
  Json RunSummary(RunRecord run);
  // The catalog's key of the workflow file `path` ("" when it has none).
  std::string WorkflowKey(const std::string& path) const;
  // Starts a run on its own thread (run_host.cc) and returns at once; the
  // thread loads the module (a launch: the file, checked and pinned; a
  // resumed run: the revision it started with). `on_started`, if set, is
  // called on the io thread once: at the run's first commit, when the
  // thread ends before one (an error Reply when a launch was refused, else
  // ok), or kStartWaitMs after the module was loaded, whichever comes first.
  void StartRun(RunStart start, ReplyFn on_started = nullptr);
  // How long a reply waits for a run's first commit once its module loaded.
  static constexpr int64_t kStartWaitMs = 5000;
  // Subscribes `conn` to the run's events after `after` (nullopt: after the
  // last one there is now).
  Reply OpenStream(Connection& conn, const std::string& run_id, std::optional<int64_t> after);
  // Subscribes `conn` to a run a method of it touched (launchRun, cronRun,
  // submitApproval, submitSignal), unless it already streams that run; adds
  // the stream's id to the reply.
  void AutoSubscribe(Reply& reply, Connection* conn, bool from_start);

 private:
  // Call without the metrics; calls `done` (once) with the reply.
  void CallInner(const Caller& caller, const std::string& method, const Json& params,
                 Connection* conn, const ReplyFn& done);
  Result<std::optional<TokenGrant>> FindGrant(const std::string& token_hash);
  // On the io thread: pins the sources a scan loaded, takes its entries,
  // and syncs the cron rows when a module changed.
  void ApplyScan(CatalogScan scan);
  // Makes the `gateway:<key>` cron rows match the schedules modules declare.
  void SyncSchedules();
  // On the io thread: deletes the next run of a retention sweep, then posts
  // itself for the one after; counts the sweep after the last.
  struct RetentionSweep;
  void DeleteNextDueRun(const std::shared_ptr<RetentionSweep>& sweep);

  // Runs on the run's thread. `started` is called at the run's first
  // commit; `loaded` once the module is loaded (and, for a launch, checked).
  // Returns the access-log line of its end (run.ended or run.error), which
  // the thread logs once the run's store and module are released, or, for a
  // launch refused before its run existed, null and `*refused`.
  Json Execute(const RunStart& start, const std::function<void()>& started,
               const std::function<void()>& loaded, std::optional<Reply>* refused);
  void Poll(const std::string& run_id, Feed& feed);
  bool Pump(const std::string& run_id, Feed& feed, Subscriber& sub);
  static std::string EventPayload(const EventRecord& e);
  // The ring entry of `e`: its frame, and the frame sent instead to callers
  // that may not see its type (MaySee "event.TYPE"): nodeId and iteration only.
  static RingEvent MakeRingEvent(const EventRecord& e);
  // The frame of `e` that `conn`'s caller may receive.
  static const std::string& FrameFor(const Connection& conn, const RingEvent& e);

  GatewayOptions opts_;
  Clock& clock_;
  std::unique_ptr<Store> store_;  // the io thread's connection; runs open their own
  StoreFactory open_store_;       // ... with this (GatewayOptions::db)
  int64_t started_at_ms_;
  std::string workspace_root_;
  int64_t state_version_ = 0;
  int64_t next_stream_id_ = 0;
  std::map<std::string, WorkflowEntry> workflows_;  // the io thread's copy (ApplyScan)
  Catalog catalog_{opts_.workflows_dir, module_options(), clock_,
                   [this](Json line) { Log(std::move(line)); }};
  std::map<std::string, TokenGrant> grants_;  // by token hash, valid under grants_stamp_
  std::string grants_stamp_;
  std::map<std::string, ActiveRun> active_;
  std::atomic<bool> stopping_{false};  // RunOptions::stop of every run
  std::map<std::string, Feed> feeds_;
  std::vector<std::weak_ptr<Connection>> connections_;
  std::atomic<bool> wake_pending_{false};
  Metrics metrics_;
  // What Post() queued without an io loop (post_to_io unset), run by
  // CallForTesting.
  std::mutex posted_mu_;
  std::condition_variable posted_cv_;
  std::deque<std::function<void()>> posted_;  // guarded by posted_mu_
  std::mutex log_mu_;
  FILE* log_file_ = nullptr;
  TokenFile token_file_{opts_.tokens_file, opts_.max_token_ttl_ms};  // --tokens (auth token)
  bool retention_busy_ = false;   // a sweep is listing or deleting (io thread)
  std::thread retention_thread_;  // the current sweep's listing
};

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_GATEWAY_INTERNAL_H_
