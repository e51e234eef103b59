// Store: where every durable fact of a run lives.
//
// The engine never touches SQL. It reads rows through the List*/Get* calls and
// writes by filling a WriteBatch and calling Commit(), which applies the whole
// batch in one transaction: either every row of the batch is durable or none is.
// That is what makes "a committed task is never executed again" hold: a task's
// output row, its node and attempt state and its events land together.
//
//   SMITHERS_ASSIGN_OR_RETURN(auto store, smithers::OpenSqliteStore({.path = "runs.db"}));
//   smithers::WriteBatch batch;
//   batch.UpsertNode({.run_id = id, .node_id = "a", .state = NodeState::kFinished});
//   batch.AppendEvent(id, "NodeFinished", {{"nodeId", "a"}}, now_ms);
//   SMITHERS_ASSIGN_OR_RETURN(std::vector<int64_t> seqs, store->Commit(batch));
//
// Thread-safety: a Store may be used from one thread at a time; several
// processes may open the same database (SQLite serialises their writes).
#ifndef SMITHERS_STORE_H_
#define SMITHERS_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smithers/json.h"
#include "smithers/states.h"
#include "smithers/status.h"

namespace smithers {

// Timestamps are epoch milliseconds; 0 means "not set" (NULL in SQL).

// One row of _smithers_runs.
struct RunRecord {
  std::string run_id;
  std::string workflow_name;
  std::string workflow_path;
  std::string workflow_hash;  // SHA-256 of the module source
  RunStatus status = RunStatus::kRunning;
  int64_t created_at_ms = 0;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  int64_t heartbeat_at_ms = 0;
  std::string runtime_owner_id;  // "host:pid:uuid" of the process running it, or ""
  int64_t cancel_requested_at_ms = 0;
  Json input = Json::object();
  Json error;                    // null unless failed
  Json config = Json::object();  // e.g. {"force": true}
};

// One row of _smithers_nodes: the state of task `node_id` at `iteration`.
struct NodeRecord {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  NodeState state = NodeState::kPending;
  int last_attempt = 0;
  int64_t updated_at_ms = 0;
  std::string output_table;
  std::string label;
  // False once the task left the rendered tree (docs/engine.md "Unmounted nodes").
  bool mounted = true;
};

// One row of _smithers_attempts. Attempts are numbered from 1 per (node, iteration).
struct AttemptRecord {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  int attempt = 1;
  AttemptState state = AttemptState::kInProgress;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  Json error;  // null unless failed or cancelled
  bool cached = false;
  Json meta = Json::object();
};

// One output row, keyed (run_id, node_id, iteration), of schema `output_table`.
struct OutputRecord {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  std::string output_table;
  Json payload;
  int64_t created_at_ms = 0;
};

// One row of _smithers_frames. `data` is the encoded tree; see docs/frame_format.md.
struct FrameRecord {
  std::string run_id;
  int64_t frame_no = 0;
  int64_t created_at_ms = 0;
  std::string encoding;  // "keyframe" or "delta"
  std::string data;      // JSON text
  std::string xml_hash;  // SHA-256 of the full canonical tree
  std::string note;
};

// One row of _smithers_events.
struct EventRecord {
  std::string run_id;
  int64_t seq = 0;
  int64_t timestamp_ms = 0;
  std::string type;
  Json payload = Json::object();
};

// One row of _smithers_sandboxes (docs/sandbox.md "Records"): a sandboxed
// task's latest attempt (a Sandbox's worker, a command with `sandbox`),
// keyed (run_id, sandbox_id, iteration). The store keeps it as the
// projection of the run's Sandbox events (SandboxRowChange), in the
// transaction that appends them.
struct SandboxRecord {
  std::string run_id;
  std::string sandbox_id;  // the task's node id
  int iteration = 0;
  int attempt = 0;
  std::string kind;     // "sandbox" (a Sandbox's worker) or "command"
  std::string runtime;  // bubblewrap, podman, docker, kubernetes
  // pending -> shipped -> finished | failed | cancelled
  std::string status;
  Json config;                 // the sandbox prop (SandboxToJson), never a secret's value
  std::string remote_run_id;   // the worker's own run
  std::string container_id;    // a container runtime's container (or Job) name
  std::string bundle_path;     // the attempt's folder (request and result bundles)
  int64_t request_bytes = -1;  // what was shipped; -1 = unknown
  int64_t bundle_bytes = -1;   // the result bundle
  int64_t patch_count = -1;
  std::string review;       // "" | requested | accepted | rejected
  std::string reviewed_by;  // who decided (a user, "autoAcceptDiffs")
  std::string error_code;   // why it failed or was cancelled
  int64_t created_at_ms = 0, shipped_at_ms = 0, heartbeat_at_ms = 0, completed_at_ms = 0,
          reviewed_at_ms = 0;
  // A write: true replaces the whole row (a new attempt); false changes
  // only the fields set (non-empty, not -1, not 0) and only while the row's
  // attempt is at most `attempt` (an older attempt's late event never
  // changes a newer one's row).
  bool fresh = false;
};

// The change event `type` with `payload` ({nodeId, iteration, attempt,
// ...}) at `at_ms` makes to run `run_id`'s _smithers_sandboxes, if any:
// SandboxCreated starts a fresh row (pending), SandboxShipped,
// SandboxHeartbeat, SandboxBundleReceived, SandboxDiffReviewRequested,
// SandboxDiffAccepted, SandboxDiffRejected, SandboxCompleted, SandboxFailed
// and an abandoned NodeCancelled change it.
std::optional<SandboxRecord> SandboxRowChange(const std::string& run_id, const std::string& type,
                                              const Json& payload, int64_t at_ms);

// One row of _smithers_ralph: the state of a Loop.
struct LoopRecord {
  std::string run_id;
  std::string loop_id;
  int iteration = 0;
  bool done = false;
  int64_t updated_at_ms = 0;
};

// One row of _smithers_cache: a task output reusable across runs under
// `cache_key` (see docs/engine.md "Cache"). Not tied to a run: it outlives them.
struct CacheEntry {
  std::string cache_key;  // SHA-256 hex
  int64_t created_at_ms = 0;
  std::string workflow_name;
  std::string node_id;
  std::string output_table;
  std::string schema_sig;  // schema::Hash of the output schema it was written under
  Json payload;
};

// One row of _smithers_approvals: the request for a human decision on task
// `node_id` at `iteration` (an Approval node or a task with needsApproval) and,
// once made, the decision. Keyed (run_id, node_id, iteration).
struct ApprovalRecord {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  ApprovalStatus status = ApprovalStatus::kRequested;
  int64_t requested_at_ms = 0;
  std::string owner;  // who must decide now (the fallback owner once escalated)
  std::string original_owner;
  std::string fallback_owner;     // "" = none
  int64_t escalate_after_ms = 0;  // 0 = never escalates
  int64_t escalated_at_ms = 0;
  Json request = Json::object();            // {title, summary, ...}
  std::string on_deny = "fail";             // fail, continue or skip
  std::vector<std::string> allowed_users;   // may decide at any time
  std::vector<std::string> allowed_scopes;  // callers holding one may decide (Gateway)
  int64_t decided_at_ms = 0;
  std::string decided_by;
  std::string note;
  // How decided_by was established: "cli" (the CLI, with decided_os_user),
  // "token", "jwt", "trusted-proxy" (the Gateway's authenticated caller) or
  // "unauthenticated" (a Gateway under --auth none); "" before migration 8.
  std::string decided_via;
  std::string decided_os_user;    // the OS user that ran the CLI, "" otherwise
  bool decided_override = false;  // decided by a run:admin override, not as a decider
};

// One row of _smithers_signals: a named event delivered to a run, stored
// until a WaitForEvent consumes it. `seq` counts per run from 0.
struct SignalRecord {
  std::string run_id;
  int64_t seq = 0;
  std::string name;
  std::string correlation_id;  // "" = none
  Json payload;
  int64_t received_at_ms = 0;
  std::string received_by;
  SignalStatus status = SignalStatus::kPending;
  std::string consumed_by_node;  // node id that consumed (or rejected) it
  int consumed_iteration = 0;
  int64_t consumed_at_ms = 0;
  Json rejection;  // violations, when rejected
};

// One row of _smithers_tokens: a Gateway bearer-token grant. The token itself
// is never stored, only its SHA-256 (docs/gateway.md "Tokens").
struct TokenGrant {
  std::string token_id;    // first 16 hex digits of token_hash
  std::string token_hash;  // SHA-256 of the token, hex
  std::vector<std::string> scopes;
  std::string role = "operator";
  std::string user_id;
  std::string label;
  int64_t issued_at_ms = 0;
  int64_t expires_at_ms = 0;  // 0 = never
  int64_t revoked_at_ms = 0;  // 0 = not revoked; may lie in the future (rotation overlap)
  std::string replaced_by;    // token id of the grant that rotated it
};

// One row of _smithers_cron: a schedule that launches a workflow.
struct CronRecord {
  std::string cron_id;
  std::string workflow;
  std::string pattern;  // 5-field cron expression
  std::string time_zone = "UTC";
  Json input = Json::object();
  bool enabled = true;
  int64_t created_at_ms = 0;
  int64_t last_run_at_ms = 0;  // 0 = never fired
  int64_t next_run_at_ms = 0;  // 0 = none
  std::string last_run_id;
  std::string last_error;
};

// One row of _smithers_modules: the source of a workflow module by revision
// (the SHA-256 of the source), kept so that a run resumed after its file was
// edited runs the code it started with (docs/gateway.md "Hot reload").
struct ModuleSource {
  std::string revision;  // the module's source hash (WorkflowDefinition::source_hash), hex
  std::string path;      // where it was read from (its chunk name and require root)
  std::string source;
  int64_t created_at_ms = 0;
  // The sibling modules it `require`d when loaded, by module name ("lib",
  // "util.text"): part of the revision, served from here when it is loaded again.
  std::map<std::string, std::string> siblings;
};

// One row of _smithers_launch_keys: the run a launch with an idempotency key
// started (launchRun's options.idempotencyKey, docs/gateway.md "Protocol").
// Keys are per caller (`scope`: the token, JWT subject or proxy user).
struct LaunchKey {
  std::string scope;
  std::string key;
  std::string run_id;
  std::string workflow;
  int64_t created_at_ms = 0;
};

// One row of _smithers_maintenance: a backup, restore or restore drill and
// how it went (docs/operations.md "Backups"), what `smithers db history`
// lists and a deployment check reads for the age of the last good one.
struct MaintenanceRecord {
  int64_t id = 0;    // assigned by the store, ascending
  std::string kind;  // "backup", "restore" or "drill"
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  bool ok = false;
  std::string path;   // the backup file
  std::string actor;  // who ran it (the OS user for the CLI)
  Json detail;        // what it found: pages, bytes, runs, schema version, why it failed
};

// One action for the audit log, _smithers_audit (docs/operations.md "Audit
// log"): who did what to what. The store adds the rest of the row.
struct AuditEntry {
  std::string actor;  // as authenticated: a token's user, a JWT subject, the OS user
  // How `actor` was established: "os" (the CLI's OS user), "token", "jwt",
  // "trusted-proxy", "unauthenticated" (a Gateway without auth) or "system"
  // (the engine or the Gateway acting on its own: escalations, retention).
  std::string actor_via;
  std::string action;  // "run.launch", "approval.decide", "token.issue", ...
  std::string target;  // what it acted on: a run, token, cron id or a file
  // Set for an action on a run: the row joins that run's chain and records
  // the run's module revision. "" = the deployment's chain.
  std::string run_id;
  Json details = Json::object();  // secret-shaped values are redacted when stored
  int64_t at_ms = 0;              // 0 = when it is stored
};

// An action the system takes on its own (an escalation, a retention delete,
// a module's declared schedule, a supervisor's resume): actor and actor_via
// "system".
AuditEntry SystemAudit(std::string action, std::string target, Json details = Json::object());

// One row of _smithers_audit. Rows form chains (one per run, one for the
// deployment), each row's HMAC covering its content and the previous row's
// HMAC of its chain, under a key kept outside the database.
struct AuditRecord {
  int64_t seq = 0;        // 1, 2, ... across the whole log: no gap
  std::string chain;      // "run:<id>" or "deployment"
  int64_t chain_seq = 0;  // 1, 2, ... within the chain
  AuditEntry entry;
  std::string version;          // the binary's version
  std::string build;            // the build's commit
  std::string module_revision;  // the run's module source hash ("" off a run)
  std::string key_id;           // which key signed it (AuditKeyId)
  std::string prev_hmac;        // the chain's previous row's hmac ("" for the first)
  std::string hmac;
};

// Which audit rows ListAudit returns (every condition holds), oldest first.
struct AuditFilter {
  std::string run_id;     // "" = any
  std::string actor;      // "" = any
  int64_t since_ms = 0;   // at_ms >= since_ms
  int64_t after_seq = 0;  // seq > after_seq
  int limit = 0;          // 0 = no limit
};

// A list of writes applied atomically by Store::Commit(), in order.
class WriteBatch {
 public:
  // Inserts the run or replaces every column except cancel_requested_at_ms
  // (which only Store::RequestCancel and ClearCancel change).
  void UpsertRun(RunRecord run);
  void UpsertNode(NodeRecord node);
  void UpsertAttempt(AttemptRecord attempt);
  // Inserts or replaces the output row (run_id, node_id, iteration).
  void PutOutput(OutputRecord output);
  void PutFrame(FrameRecord frame);
  void UpsertLoop(LoopRecord loop);
  // Inserts or replaces the cache row `entry.cache_key`.
  void PutCache(CacheEntry entry);
  // Inserts the approval request unless a row for (run, node, iteration)
  // exists (a decision already made is never overwritten).
  void RequestApproval(ApprovalRecord approval);
  // A new request for (run, node, iteration) that replaces a decided one (a
  // review of a later attempt's result: an earlier decision never decides
  // it); a pending request is left as it is.
  void RenewApproval(ApprovalRecord approval);
  // Marks signal (run_id, seq) consumed (or rejected) by node_id/iteration.
  // The whole commit fails with Aborted when the signal is not pending: a
  // signal is consumed at most once.
  void ConsumeSignal(SignalRecord signal);
  // Writes a _smithers_sandboxes row or changes one (SandboxRecord::fresh).
  void PutSandbox(SandboxRecord sandbox);
  // Appends an event; its seq (the run's previous MAX(seq)+1, from 1) is
  // assigned inside the transaction and returned by Commit(). A Sandbox
  // event also changes the sandbox's row (SandboxRowChange).
  void AppendEvent(std::string run_id, std::string type, Json payload, int64_t timestamp_ms);

  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }
  void Clear() { ops_.clear(); }

  // One write: a tagged union, so only the record `kind` names exists (a
  // run's first commit holds two ops per task; with every record in each op
  // they took 1.1 KB apiece, 22 MB for 10,000 tasks).
  struct Op {
    enum class Kind {
      kRun,
      kNode,
      kAttempt,
      kOutput,
      kFrame,
      kLoop,
      kEvent,
      kCache,
      kApproval,
      kRenewApproval,  // holds `approval`
      kSignal,
      kSandbox
    } kind;
    // The three records far larger than a node's or an event's (one per commit
    // at most, or rare) are held by pointer: inline, an op took 472 bytes,
    // 9.4 MB for a 10,000-task run's first commit; now 192.
    union {
      std::unique_ptr<RunRecord> run;
      NodeRecord node;
      AttemptRecord attempt;
      OutputRecord output;
      FrameRecord frame;
      LoopRecord loop;
      EventRecord event;  // seq ignored
      CacheEntry cache;
      std::unique_ptr<ApprovalRecord> approval;
      std::unique_ptr<SignalRecord> signal;
      std::unique_ptr<SandboxRecord> sandbox;
    };
    explicit Op(RunRecord r);
    explicit Op(NodeRecord r);
    explicit Op(AttemptRecord r);
    explicit Op(OutputRecord r);
    explicit Op(FrameRecord r);
    explicit Op(LoopRecord r);
    explicit Op(EventRecord r);
    explicit Op(CacheEntry r);
    explicit Op(ApprovalRecord r);
    explicit Op(SignalRecord r);
    explicit Op(SandboxRecord r);
    Op(const Op& other);
    Op(Op&& other) noexcept;
    Op& operator=(const Op& other);
    Op& operator=(Op&& other) noexcept;
    ~Op();
  };
  const std::deque<Op>& ops() const { return ops_; }

 private:
  // A deque, not a vector: it grows without copying (a vector briefly holds
  // 1.5x its contents while growing) and Clear() frees it (a vector keeps its
  // largest buffer for the life of the run).
  std::deque<Op> ops_;
};

// Which runs ListRuns returns.
struct RunFilter {
  std::optional<RunStatus> status;  // nullopt = any
  bool waiting = false;             // any waiting-* status (with status unset)
  int limit = 100;
};
// The filter a user's status text asks for: "" = any, "waiting" = any
// waiting-* status, else one run status by name. InvalidArgument for any
// other text (a misspelt status is an error, not an empty list).
Result<RunFilter> RunFilterForStatus(std::string_view text, int limit);

// Which approvals ListApprovals returns.
struct ApprovalFilter {
  std::string run_id;                    // "" = every run
  std::optional<ApprovalStatus> status;  // nullopt = any
};

// A decision on an approval request.
struct ApprovalDecision {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  bool approved = false;
  std::string decided_by;
  std::string note;
  std::string via;        // ApprovalRecord::decided_via
  std::string os_user;    // ApprovalRecord::decided_os_user
  bool override = false;  // ApprovalRecord::decided_override
  // Called with the `requested` row inside the deciding transaction; a
  // non-OK status refuses the decision with it. Null = no check (the CLI and
  // the Gateway decide through engine::DecideApproval, which checks deciders).
  std::function<Status(const ApprovalRecord&)> authorize;
};

// Rows written into an empty store in one transaction (Store::BeginImport):
// nothing is visible until Commit(); destroyed uncommitted, it writes nothing.
class StoreImport {
 public:
  virtual ~StoreImport() = default;
  // One row of `table`, as Store::ExportTable gives it.
  virtual Status Add(const std::string& table, const Json& row) = 0;
  virtual Status Commit() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Applies `batch` in one transaction. Returns the seqs of its events in order.
  // On failure nothing of the batch is applied (the transaction is rolled back).
  virtual Result<std::vector<int64_t>> Commit(const WriteBatch& batch) = 0;

  // NotFound when the run does not exist.
  virtual Result<RunRecord> GetRun(const std::string& run_id) = 0;
  // Newest first (by created_at_ms).
  virtual Result<std::vector<RunRecord>> ListRuns(const RunFilter& filter) = 0;
  // The number of runs in each status, every run counted ({} for none): one
  // query, whatever the number of runs (the Gateway's /metrics).
  virtual Result<std::map<std::string, int64_t>> CountRunsByStatus() = 0;
  // Ordered by (iteration, node_id).
  virtual Result<std::vector<NodeRecord>> ListNodes(const std::string& run_id) = 0;
  // The number of the run's node rows in each state ({} for no such run).
  virtual Result<std::map<std::string, int64_t>> CountNodes(const std::string& run_id) = 0;
  // Ordered by (started_at_ms, node_id, iteration, attempt).
  virtual Result<std::vector<AttemptRecord>> ListAttempts(const std::string& run_id) = 0;
  // Ordered by (created_at_ms, node_id, iteration).
  virtual Result<std::vector<OutputRecord>> ListOutputs(const std::string& run_id) = 0;
  virtual Result<std::vector<LoopRecord>> ListLoops(const std::string& run_id) = 0;
  // Every frame of the run in frame_no order.
  virtual Result<std::vector<FrameRecord>> ListFrames(const std::string& run_id) = 0;
  // The frame with the highest frame_no, if any.
  virtual Result<std::optional<FrameRecord>> LastFrame(const std::string& run_id) = 0;
  // Events with seq > after_seq (0 for all: a run's events are numbered from
  // 1), ascending, at most `limit`.
  virtual Result<std::vector<EventRecord>> ListEvents(const std::string& run_id, int64_t after_seq,
                                                      int limit) = 0;
  // The cache row `cache_key`, if any. DataLoss when its payload is not JSON.
  virtual Result<std::optional<CacheEntry>> GetCache(const std::string& cache_key) = 0;

  // Ordered by (requested_at_ms, run_id, node_id, iteration).
  virtual Result<std::vector<ApprovalRecord>> ListApprovals(const ApprovalFilter& filter) = 0;
  // Signals of the run in seq order.
  virtual Result<std::vector<SignalRecord>> ListSignals(const std::string& run_id) = 0;
  // The run's _smithers_sandboxes rows, by sandbox id and iteration.
  virtual Result<std::vector<SandboxRecord>> ListSandboxes(const std::string& run_id) = 0;

  // Records a decision on a `requested` approval and appends ApprovalGranted
  // or ApprovalDenied {nodeId, iteration, decidedBy, note, via, override,
  // osUser?} to the run's events, in one transaction. NotFound when there is
  // no request; FailedPrecondition (naming who decided, and when) when it was
  // decided; else what `decision.authorize` returns, if it refuses. Returns
  // the decided row.
  virtual Result<ApprovalRecord> DecideApproval(const ApprovalDecision& decision,
                                                int64_t now_ms) = 0;
  // Hands every `requested` approval (of `run_id`, or of every run when "")
  // whose escalate_after_ms has passed since requested_at_ms, that has a
  // fallback owner and has not escalated, to its fallback owner, with an
  // ApprovalEscalated {nodeId, iteration, from, to} event, in one transaction.
  // Returns the rows it escalated.
  virtual Result<std::vector<ApprovalRecord>> EscalateDueApprovals(const std::string& run_id,
                                                                   int64_t now_ms) = 0;
  // Stores a signal (status pending) with the run's next signal seq and appends
  // SignalReceived {name, correlationId (null for none), signalSeq, receivedBy}
  // to its events, in one transaction. Returns the stored row. NotFound for no
  // such run.
  virtual Result<SignalRecord> AppendSignal(SignalRecord signal) = 0;

  // Gateway tokens. PutToken inserts a grant (AlreadyExists for a duplicate
  // id or hash); FindToken looks one up by the token's hash; ListTokens is
  // ordered by issued_at_ms. RevokeToken sets revoked_at_ms = at_ms unless an
  // earlier revocation stands (NotFound for no such id), and records the
  // grant that replaced it ("" = none).
  virtual Status PutToken(const TokenGrant& grant) = 0;
  virtual Result<std::optional<TokenGrant>> FindToken(const std::string& token_hash) = 0;
  virtual Result<std::vector<TokenGrant>> ListTokens() = 0;
  virtual Status RevokeToken(const std::string& token_id, int64_t at_ms,
                             const std::string& replaced_by) = 0;

  // Cron schedules. PutCron inserts or replaces a row; ListCron orders by id;
  // DeleteCron is NotFound for no such id. ClaimCronFire records a fire
  // (last_run_at_ms = fired_at_ms, next_run_at_ms = new_next_ms, last_run_id)
  // iff next_run_at_ms is still `expected_next_ms`: Aborted otherwise, so two
  // gateways never fire one slot twice.
  virtual Status PutCron(const CronRecord& cron) = 0;
  virtual Result<std::vector<CronRecord>> ListCron() = 0;
  virtual Status DeleteCron(const std::string& cron_id) = 0;

  // Deletes run `run_id` with every row that depends on it (nodes, attempts,
  // outputs, frames, events, loops, approvals, signals) and its launch keys,
  // in one transaction, and returns its row as it was. Cache rows and module
  // sources outlive it. NotFound for no such run; FailedPrecondition when it
  // is not finished, failed or cancelled (engine's DeleteRun cancels first).
  virtual Result<RunRecord> DeleteRun(const std::string& run_id) = 0;

  // Runs `action` and appends `entry` to the audit log in one transaction:
  // the writes `action` makes through this store join it, so the action and
  // its record land together or not at all. `action` failing rolls both
  // back and is returned. FailedPrecondition, running nothing, when this
  // store has no audit key or the log was written under another key.
  virtual Status Audited(const AuditEntry& entry, const std::function<Status()>& action) = 0;
  // The record alone (an action that wrote nothing here).
  Status AppendAudit(const AuditEntry& entry) {
    return Audited(entry, [] { return Status::Ok(); });
  }
  // Rows of _smithers_audit, oldest first.
  virtual Result<std::vector<AuditRecord>> ListAudit(const AuditFilter& filter) = 0;

  // Backups, restores and drills: AddMaintenance appends a row (its id is
  // assigned and returned); ListMaintenance returns the newest first, of one
  // kind or ("") of every kind, at most `limit`.
  virtual Result<int64_t> AddMaintenance(const MaintenanceRecord& record) = 0;
  virtual Result<std::vector<MaintenanceRecord>> ListMaintenance(const std::string& kind,
                                                                 int limit) = 0;
  virtual Status ClaimCronFire(const std::string& cron_id, int64_t expected_next_ms,
                               int64_t fired_at_ms, int64_t new_next_ms,
                               const std::string& run_id) = 0;

  // A stamp of the database's content: equal stamps mean no connection
  // (this one or any other, in any process) committed in between. Cheap: no
  // table is read. Lets a reader reuse what it read under the same stamp.
  virtual Result<std::string> ChangeStamp() = 0;

  // Reads between BeginRead and the matching EndRead see one snapshot and
  // share one lock: cheaper than one transaction per read, for a request that
  // reads several things. Nests. A write inside is committed at once, as
  // outside, and ends the snapshot. Prefer ReadScope.
  virtual Status BeginRead() = 0;
  virtual void EndRead() = 0;

  // Module sources by revision. PutModuleSource keeps the first row stored
  // for a revision (the same revision is the same source); GetModuleSource
  // is nullopt for a revision never stored.
  virtual Status PutModuleSource(const ModuleSource& module) = 0;
  virtual Result<std::optional<ModuleSource>> GetModuleSource(const std::string& revision) = 0;

  // Takes `want`'s (scope, key) for its run unless a row created after
  // `expired_before_ms` holds it; returns the row that holds the key after
  // the call (want itself, or the earlier launch). Atomic.
  virtual Result<LaunchKey> ClaimLaunchKey(const LaunchKey& want, int64_t expired_before_ms) = 0;
  // Frees (scope, key) if it is held for `run_id` (a launch that failed).
  virtual Status ReleaseLaunchKey(const std::string& scope, const std::string& key,
                                  const std::string& run_id) = 0;

  // Makes `new_owner` the run's owner iff its owner is currently `expected_owner`.
  // Aborted when another owner holds it. Also sets heartbeat_at_ms = now_ms.
  virtual Status ClaimRun(const std::string& run_id, const std::string& expected_owner,
                          const std::string& new_owner, int64_t now_ms) = 0;
  // Sets heartbeat_at_ms iff `owner` still owns the run; Aborted otherwise.
  virtual Status Heartbeat(const std::string& run_id, const std::string& owner, int64_t now_ms) = 0;
  // Sets cancel_requested_at_ms (only if not already set). NotFound for no such run.
  virtual Status RequestCancel(const std::string& run_id, int64_t now_ms) = 0;
  virtual Status ClearCancel(const std::string& run_id) = 0;

  // Creates or replaces one SQL view per output schema, named after the
  // output, with a column per top-level property (run_id, node_id, iteration
  // first), so a user can `SELECT * FROM greeting`.
  virtual Status EnsureOutputViews(const std::map<std::string, Json>& schemas) = 0;

  // The backend's name as the Gateway reports it (health, metrics): "sqlite".
  virtual std::string BackendName() const = 0;

  // ---- Copying a whole store (smithers db copy) ----

  // Every row of `table` (one of StoreTableNames()) in primary-key order,
  // each as a JSON array of its columns' values (null, integer, or string:
  // a module source's string holds its bytes as stored), to `on_row`, which
  // may stop the walk with an error. InvalidArgument for another name.
  virtual Status ExportTable(const std::string& table,
                             const std::function<Status(const Json& row)>& on_row) = 0;
  // An import into this store, which must hold no row in any of
  // StoreTableNames()'s tables (FailedPrecondition naming one that does).
  // Used from the thread that uses the store, and destroyed before it.
  virtual Result<std::unique_ptr<StoreImport>> BeginImport() = 0;
};

// The tables ExportTable reads, in the order an import must add them (every
// foreign key's target first).
std::vector<std::string> StoreTableNames();

// Store::Audited for an action that returns a value: the value, or why the
// action or its record failed (then neither is committed).
//
//   Result<SignalRecord> sent = AuditedValue<SignalRecord>(
//       store, entry, [&] { return store.AppendSignal(signal); });
template <typename T>
Result<T> AuditedValue(Store& store, const AuditEntry& entry,
                       const std::function<Result<T>()>& action) {
  std::optional<T> value;
  Status done = store.Audited(entry, [&]() -> Status {
    Result<T> r = action();
    if (!r.ok()) return r.status();
    value = std::move(r).value();
    return Status::Ok();
  });
  if (!done.ok()) return done;
  return std::move(*value);
}

// Holds a read snapshot of `store` for its lifetime (Store::BeginRead). If
// the snapshot cannot begin, the reads still run, each on its own.
class ReadScope {
 public:
  explicit ReadScope(Store& store) : store_(store.BeginRead().ok() ? &store : nullptr) {}
  ~ReadScope() {
    if (store_ != nullptr) store_->EndRead();
  }
  ReadScope(const ReadScope&) = delete;
  ReadScope& operator=(const ReadScope&) = delete;

 private:
  Store* store_;
};

// Forwards every call to another Store: override one method to inject faults or
// count calls. Does not own `target` unless constructed with a unique_ptr.
class StoreWrapper : public Store {
 public:
  explicit StoreWrapper(Store* target) : target_(target) {}
  explicit StoreWrapper(std::unique_ptr<Store> target)
      : owned_(std::move(target)), target_(owned_.get()) {}

  Result<std::vector<int64_t>> Commit(const WriteBatch& b) override { return target_->Commit(b); }
  Result<RunRecord> GetRun(const std::string& id) override { return target_->GetRun(id); }
  Result<std::vector<RunRecord>> ListRuns(const RunFilter& f) override {
    return target_->ListRuns(f);
  }
  Result<std::map<std::string, int64_t>> CountRunsByStatus() override {
    return target_->CountRunsByStatus();
  }
  Result<std::vector<NodeRecord>> ListNodes(const std::string& id) override {
    return target_->ListNodes(id);
  }
  Result<std::map<std::string, int64_t>> CountNodes(const std::string& id) override {
    return target_->CountNodes(id);
  }
  Result<std::vector<AttemptRecord>> ListAttempts(const std::string& id) override {
    return target_->ListAttempts(id);
  }
  Result<std::vector<OutputRecord>> ListOutputs(const std::string& id) override {
    return target_->ListOutputs(id);
  }
  Result<std::vector<LoopRecord>> ListLoops(const std::string& id) override {
    return target_->ListLoops(id);
  }
  Result<std::vector<FrameRecord>> ListFrames(const std::string& id) override {
    return target_->ListFrames(id);
  }
  Result<std::optional<FrameRecord>> LastFrame(const std::string& id) override {
    return target_->LastFrame(id);
  }
  Result<std::vector<EventRecord>> ListEvents(const std::string& id, int64_t after,
                                              int limit) override {
    return target_->ListEvents(id, after, limit);
  }
  Result<std::optional<CacheEntry>> GetCache(const std::string& key) override {
    return target_->GetCache(key);
  }
  Result<std::vector<ApprovalRecord>> ListApprovals(const ApprovalFilter& f) override {
    return target_->ListApprovals(f);
  }
  Result<std::vector<SignalRecord>> ListSignals(const std::string& id) override {
    return target_->ListSignals(id);
  }
  Result<std::vector<SandboxRecord>> ListSandboxes(const std::string& id) override {
    return target_->ListSandboxes(id);
  }
  Result<ApprovalRecord> DecideApproval(const ApprovalDecision& d, int64_t now) override {
    return target_->DecideApproval(d, now);
  }
  Result<std::vector<ApprovalRecord>> EscalateDueApprovals(const std::string& id,
                                                           int64_t now) override {
    return target_->EscalateDueApprovals(id, now);
  }
  Result<SignalRecord> AppendSignal(SignalRecord s) override {
    return target_->AppendSignal(std::move(s));
  }
  Status PutToken(const TokenGrant& g) override { return target_->PutToken(g); }
  Result<std::optional<TokenGrant>> FindToken(const std::string& hash) override {
    return target_->FindToken(hash);
  }
  Result<std::vector<TokenGrant>> ListTokens() override { return target_->ListTokens(); }
  Status RevokeToken(const std::string& id, int64_t at, const std::string& by) override {
    return target_->RevokeToken(id, at, by);
  }
  Status PutCron(const CronRecord& c) override { return target_->PutCron(c); }
  Result<std::vector<CronRecord>> ListCron() override { return target_->ListCron(); }
  Status DeleteCron(const std::string& id) override { return target_->DeleteCron(id); }
  Result<RunRecord> DeleteRun(const std::string& id) override { return target_->DeleteRun(id); }
  Status ClaimCronFire(const std::string& id, int64_t expected, int64_t at, int64_t next,
                       const std::string& run_id) override {
    return target_->ClaimCronFire(id, expected, at, next, run_id);
  }
  Result<std::string> ChangeStamp() override { return target_->ChangeStamp(); }
  Status BeginRead() override { return target_->BeginRead(); }
  void EndRead() override { target_->EndRead(); }
  Status PutModuleSource(const ModuleSource& m) override { return target_->PutModuleSource(m); }
  Result<std::optional<ModuleSource>> GetModuleSource(const std::string& revision) override {
    return target_->GetModuleSource(revision);
  }
  Result<LaunchKey> ClaimLaunchKey(const LaunchKey& want, int64_t expired_before_ms) override {
    return target_->ClaimLaunchKey(want, expired_before_ms);
  }
  Status ReleaseLaunchKey(const std::string& scope, const std::string& key,
                          const std::string& run_id) override {
    return target_->ReleaseLaunchKey(scope, key, run_id);
  }
  Status ClaimRun(const std::string& id, const std::string& expected, const std::string& owner,
                  int64_t now) override {
    return target_->ClaimRun(id, expected, owner, now);
  }
  Status Heartbeat(const std::string& id, const std::string& owner, int64_t now) override {
    return target_->Heartbeat(id, owner, now);
  }
  Status RequestCancel(const std::string& id, int64_t now) override {
    return target_->RequestCancel(id, now);
  }
  Status ClearCancel(const std::string& id) override { return target_->ClearCancel(id); }
  Status EnsureOutputViews(const std::map<std::string, Json>& s) override {
    return target_->EnsureOutputViews(s);
  }
  Result<int64_t> AddMaintenance(const MaintenanceRecord& r) override {
    return target_->AddMaintenance(r);
  }
  Result<std::vector<MaintenanceRecord>> ListMaintenance(const std::string& kind,
                                                         int limit) override {
    return target_->ListMaintenance(kind, limit);
  }
  Status Audited(const AuditEntry& e, const std::function<Status()>& action) override {
    return target_->Audited(e, action);
  }
  Result<std::vector<AuditRecord>> ListAudit(const AuditFilter& f) override {
    return target_->ListAudit(f);
  }
  std::string BackendName() const override { return target_->BackendName(); }
  Status ExportTable(const std::string& table,
                     const std::function<Status(const Json& row)>& on_row) override {
    return target_->ExportTable(table, on_row);
  }
  Result<std::unique_ptr<StoreImport>> BeginImport() override { return target_->BeginImport(); }

 private:
  std::unique_ptr<Store> owned_;
  Store* target_;
};

// The JSON shapes of a run row and an event, as `smithers ps|inspect|events
// --json` print them and the Gateway returns them (camelCase keys; unset
// times and owner as null).
Json RunRecordJson(const RunRecord& run);
Json RunRecordJson(RunRecord&& run);  // moves input, error and config
Json EventRecordJson(const EventRecord& event);
// {runId, sandboxId, iteration, attempt, kind, runtime, status, config, ...}:
// a _smithers_sandboxes row as inspect and the Gateway show it (unset = null).
Json SandboxRecordJson(const SandboxRecord& sandbox);

struct SqliteOptions {
  std::string path;                  // database file; parent folders are created
  std::string synchronous = "FULL";  // FULL (default, durable) or NORMAL
  int busy_timeout_ms = 30000;
  // Open for reading only (SQLITE_OPEN_READONLY): nothing is created,
  // migrated or written, so a user who may only read the files can use it.
  // Every write fails with FailedPrecondition.
  bool read_only = false;
  // What a new database file and the folders created for it get: 0600 and
  // 0700, or with group_readable 0640 and 0750 (for an operators' group).
  // The -wal and -shm files take the database file's mode. Existing files
  // and folders keep theirs.
  bool group_readable = false;
  // The audit log's HMAC key (docs/operations.md "Audit log"): a reference
  // "file:/absolute/path" or "env:NAME" that must resolve, or "" for the
  // file <path>.audit-key, created (0600, 32 random bytes) when the first
  // audit row is written. ":memory:" databases take a random key.
  std::string audit_key;
};

// Opens (creating if needed) a SQLite database, enables WAL (kept on close,
// so read-only openers find it) and foreign keys (checked), and creates or
// migrates the internal tables. FailedPrecondition when the database was
// written by a newer build of Smithers, when a writable open finds the file
// read-only for this user, and, for a read-only open, when the file does
// not exist or still needs a migration.
Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

// The schema version this build writes (highest migration id).
int StoreSchemaVersion();

// Copies of a SQLite store (docs/operations.md "Backups"): what a backup,
// a check or a restore found.
struct SqliteCopy {
  int64_t pages = 0;       // database pages copied
  int64_t bytes = 0;       // the copy's size on disk
  int schema_version = 0;  // the highest migration it records
  int64_t runs = 0;        // rows of _smithers_runs
};
// Called after each step of a copy with (pages copied, pages in all).
using CopyProgress = std::function<void(int64_t done, int64_t total)>;

// Writes a consistent copy of the database at `db_path` to `file`, which
// must not exist (AlreadyExists): SQLite's online backup API inside one read
// transaction, so every commit before it began is in the copy (WAL content
// too) and writers go on meanwhile. The copy is one self-contained file
// (rollback journal mode), written 0600 beside `file` under a temporary name,
// checked (integrity_check, foreign_key_check), synced and then linked into
// place; nothing is left at `file` when any step fails.
Result<SqliteCopy> BackupSqliteStore(const std::string& db_path, const std::string& file,
                                     const CopyProgress& progress);

// Checks a backup without changing it: a SQLite database with Smithers'
// tables, clean integrity_check and foreign_key_check, and a schema no newer
// than this build's (FailedPrecondition otherwise; DataLoss for corruption).
Result<SqliteCopy> CheckSqliteBackup(const std::string& file);

// Replaces the database at `target` by backup `file` (checked first), or
// creates it (0600) when missing. FailedPrecondition, changing nothing,
// while any other process has `target` open (a Gateway, `smithers up`, a
// reader): the target is locked exclusively for the whole copy, and a crash
// during it leaves the old database (SQLite rolls the copy back). The
// restored file keeps rollback journaling until OpenStore opens it (WAL) and
// migrates it to this build's schema.
Result<SqliteCopy> RestoreSqliteStore(const std::string& file, const std::string& target,
                                      const CopyProgress& progress);

// What a deployment check (`smithers doctor`) reads of a SQLite database:
// the file's journal mode (kept in the file: "wal" once OpenSqliteStore has
// opened it for writing) and whether this SQLite build turns foreign keys on
// when asked, as OpenSqliteStore asks on every connection. Opens the file
// read-only and writes nothing. FailedPrecondition when it does not exist.
struct SqliteSettings {
  std::string journal_mode;  // lower case: "wal", "delete", ...
  bool foreign_keys = false;
};
Result<SqliteSettings> ReadSqliteSettings(const std::string& db_path);

// How OpenStore opens a store, whatever the backend.
struct StoreOptions {
  // Open for reading only: nothing is created, migrated or written; every
  // write fails with FailedPrecondition.
  bool read_only = false;
  // Backends that keep files: 0640 files in 0750 folders (for an operators'
  // group) instead of 0600 in 0700. See SqliteOptions::group_readable.
  bool group_readable = false;
  // SQLite's synchronous mode (the CLI's --synchronous): FULL or NORMAL.
  std::string synchronous = "FULL";
  // The audit log's key reference (SqliteOptions::audit_key); "" = the
  // backend's default.
  std::string audit_key;
};

// ---- The audit log (src/store/audit.cc) ----

// The key `ref` names ("file:/absolute/path", "env:NAME"), or for "" the
// default key file <db_path>.audit-key (a server database, db_path "", has
// none: FailedPrecondition). NotFound when the default file does not exist yet; FailedPrecondition
// when a named key cannot be read or is shorter than 16 bytes; InvalidArgument for another form of
// reference.
Result<std::string> LoadAuditKey(const std::string& ref, const std::string& db_path);
// The key's public name: the first 16 hex digits of HMAC(key, "smithers audit key id").
std::string AuditKeyId(std::string_view key);
// A row's HMAC: over a canonical JSON array of every column but `hmac`
// (persisted: golden values in tests/unit/store/audit_test.cc).
std::string AuditHmac(const AuditRecord& row, std::string_view key);
// What an operator keeps elsewhere to detect a truncated log later: the
// newest row as "SEQ:HMAC" ("0:" for an empty log).
std::string AuditAnchor(const std::vector<AuditRecord>& rows);

// What VerifyAuditLog found: each problem names the row (seq) and what is
// wrong with it. Empty problems = the log verifies.
struct AuditVerification {
  int64_t rows = 0;
  int64_t chains = 0;
  std::vector<std::string> problems;
};
// Checks every row (all of the log, oldest first): seq has no gap, each
// chain runs 1, 2, ... with each row naming the previous row's HMAC, and
// each HMAC recomputes under `key`. With an anchor ("SEQ:HMAC"), the row
// SEQ must still be there with that HMAC (a log cut back before it fails).
// InvalidArgument for a malformed anchor.
Result<AuditVerification> VerifyAuditLog(const std::vector<AuditRecord>& rows, std::string_view key,
                                         const std::string& anchor);
// A row as `smithers audit --json` prints it and listAudit returns it.
Json AuditRecordJson(const AuditRecord& row);

// What a store URL names, read without opening anything.
struct StoreLocation {
  std::string backend;  // "sqlite" or "postgres"
  // The database file of a backend that keeps one ("" for a server backend):
  // what the CLI hides from agents and checks for existence.
  std::string path;
  // A server backend's connection URL, as given (it may hold a password:
  // show it only through RedactStoreUrl).
  std::string url;
};

// Reads a --db value (docs/store_format.md "Store URLs"):
//   sqlite:PATH, sqlite:///ABS/PATH  SQLite database file PATH
//   PATH                             the same (a bare path)
//   postgres://..., postgresql://... a PostgreSQL database (libpq's URL:
//                                    user, password, host, port, database,
//                                    and ?options=-csearch_path=SCHEMA)
//   SCHEME://...                     InvalidArgument naming the accepted forms
// A value is a URL when it starts with a scheme (a letter, then letters,
// digits, '+', '-', '.') and a ':' that is followed by "//" or whose scheme
// is a known one (sqlite, postgres, postgresql); any other value is a path,
// so `a:b.db` and `./x://y` are files. Empty: InvalidArgument.
Result<StoreLocation> ParseStoreUrl(const std::string& url);

// `url` fit to print: a password in it (user:PASSWORD@, ?password=) reads
// "***". A path is returned as it is.
std::string RedactStoreUrl(const std::string& url);

// Opens (creating and migrating as the backend does) the store `url` names
// (ParseStoreUrl). The one place that knows every backend: the CLI, the
// Gateway and `supervise` open stores only through it.
Result<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options = {});

// Opens a new connection to one store at each call: the Gateway's run
// threads each take their own (a Store is used from one thread at a time).
using StoreFactory = std::function<Result<std::unique_ptr<Store>>()>;

// A StoreFactory calling OpenStore(url, options).
StoreFactory MakeStoreFactory(std::string url, StoreOptions options);

}  // namespace smithers

#endif  // SMITHERS_STORE_H_
