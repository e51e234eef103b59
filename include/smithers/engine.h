// The engine: runs a WorkflowDefinition on a Store until it finishes, fails,
// is cancelled, or has nothing left to do but wait.
//
//   smithers::RunOptions opts;
//   opts.input = {{"name", "world"}};
//   SMITHERS_ASSIGN_OR_RETURN(smithers::RunResult r, smithers::RunWorkflow(def, *store, opts));
//   std::cout << r.status << " " << r.outputs.dump() << "\n";
//
// Errors returned as a Status happen before anything is written (bad input,
// a render error on the first frame, a resume that does not match the stored
// run) or when the store fails; a run that starts and then fails returns a
// RunResult with status "failed" and the error.
#ifndef SMITHERS_ENGINE_H_
#define SMITHERS_ENGINE_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "smithers/clock.h"
#include "smithers/json.h"
#include "smithers/status.h"
#include "smithers/store.h"
#include "smithers/workflow.h"

namespace smithers {

// How one attempt of a task ended.
struct AttemptOutcome {
  bool ok = false;
  Json output;  // when ok
  Json error;   // {code, message, ...} when not ok
  bool retryable = true;
  Json meta;  // merged into the attempt's meta (e.g. agents: tokens, tool calls)
  // Events the attempt reports ({type, payload} each; nodeId, iteration and
  // attempt are added), committed with its end.
  std::vector<std::pair<std::string, Json>> events;
  // Set (with ok): the result needs a person's decision before it counts
  // (TaskSpec::review). The attempt ends without an output, the task waits
  // for an approval whose request is this object ({title, summary, ...}),
  // and an approval hands it to Executor::Accept.
  Json review;
};

// One running attempt. The engine polls it from its own thread.
class Execution {
 public:
  virtual ~Execution() = default;
  // The outcome once the attempt is over; std::nullopt while it runs. Never blocks.
  virtual std::optional<AttemptOutcome> Poll() = 0;
  // A file descriptor that becomes readable when Poll() may have news, or -1.
  virtual int WaitFd() const { return -1; }
  // Asks the attempt to stop; Poll() then reports it ended (with an error).
  virtual void Cancel(const std::string& reason) = 0;
  // Output produced since the last call (e.g. a model's streamed text), for
  // NodeOutput progress events; "" when there is none. Never blocks.
  virtual std::string TakeOutput() { return ""; }
  // True when the attempt showed a sign of life since the last call (a model
  // reply, a tool call, output of a CLI agent): a heartbeat. Text returned by
  // TakeOutput counts as one too. Never blocks.
  virtual bool TakeActivity() { return false; }
  // Events the attempt reports while it runs ({type, payload} each, as
  // AttemptOutcome::events), since the last call: a Sandbox's
  // SandboxShipped once its worker started. Committed with the engine's
  // next write, before the attempt's end. Never blocks.
  virtual std::vector<std::pair<std::string, Json>> TakeEvents() { return {}; }
};

struct AttemptInfo {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  int attempt = 1;
  int64_t deadline_monotonic_ms = 0;  // 0 = none, else on `clock`'s MonotonicMs
  // The run's clock (RunOptions::clock): executors read the time and wait on
  // it (Clock::Wait), never on the system's, so one clock domain holds for
  // deadlines, retries and heartbeats. Never null during Start.
  Clock* clock = nullptr;
  // The rows the task reads (TaskDeps::rows), key -> row, as ComputeContext
  // has them; nullptr when it declares none. Valid during Executor::Start
  // only: an executor that needs them later copies them.
  const Json* deps = nullptr;
};

// Starts attempts of tasks of one mode. The seam for agents and sandboxes.
// Start is called on the engine's thread: it may finish short work inline and
// return an Execution that is already over (static values; compute functions,
// which run to completion there, bounded by the task's timeout), and must
// hand anything that waits (a process, a network call) to an Execution that
// the engine then polls without blocking.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual Result<std::unique_ptr<Execution>> Start(const TaskSpec& task,
                                                   const AttemptInfo& info) = 0;
  // The reviewed result of attempt `info.attempt` was approved: make it
  // count (a Sandbox applies its patches) and return the task's outcome.
  // Called on the engine's thread, again after a crash, so it must be
  // idempotent. Only executors whose outcomes ask for a review need it.
  virtual AttemptOutcome Accept(const TaskSpec& /*task*/, const AttemptInfo& /*info*/) {
    return {.ok = false,
            .error = {{"code", "REVIEW_UNSUPPORTED"},
                      {"message", "this task's executor cannot accept a reviewed result"}},
            .retryable = false};
  }
};

// Where one run's render loop spent its time (RunOptions::render_stats).
// Summed over every render of the run; the clock is read four times per
// render, nothing else is done when no one asks.
struct RenderStats {
  int64_t renders = 0;
  int64_t nodes = 0;      // sum over renders of the nodes in each rendered tree
  int64_t render_ns = 0;  // the render function (for Lua: running it and converting its tables)
  int64_t plan_ns = 0;    // indexing and checking the tree (core::PlanTree::Build)
  int64_t frame_ns = 0;   // the frame: the tree's lines, the comparison, the encoding
  // (render_ns + plan_ns + frame_ns) / nodes, 0 before any render.
  double NsPerNode() const {
    return nodes == 0
               ? 0.0
               : static_cast<double>(render_ns + plan_ns + frame_ns) / static_cast<double>(nodes);
  }
};

// A process rewritten to run confined (RunOptions::confine's result).
struct ConfinedProcess {
  std::vector<std::string> argv;
  // Files the child writes "0" into before it execs (the cgroup.procs of the
  // cgroups that hold the sandbox's limits), so it starts inside them.
  std::vector<std::string> join_files;
  // After the process ended, before `hold` goes: which of the sandbox's
  // limits ended it, or "" (null: it has none to tell).
  std::function<std::string()> limit_reached;
  // After the process ended: what the sandbox saw worth recording in the
  // attempt's meta (the egress proxy's attempts), or null.
  std::function<Json()> report;
  // Kept until the process has ended and been reaped, then released (which
  // removes its cgroups).
  std::shared_ptr<void> hold;
  // A container runtime's container name, "" for the others.
  std::string container;
};

struct RunOptions {
  std::string run_id;    // "" = a new UUID (ignored... required with resume)
  Json input = nullptr;  // null = {} for a new run, the stored input on resume
  bool resume = false;
  bool force = false;  // resume despite a changed workflow or a live owner
  // Resume only if the run's owner is exactly this id (a lease taken by a
  // supervisor for us), and take it over. "" = the usual ownership rules.
  std::string claim_from;
  int max_concurrency = 16;  // tasks in flight at once, run-wide
  Clock* clock = nullptr;    // nullptr = SystemClock()
  Json auth = nullptr;       // who started it, recorded in the run's config
  // Who launched or resumed the run, for the audit log: recorded in the
  // transaction of the run's first commit (its run_id and target are
  // filled in; action "" = run.launch or run.resume). nullopt = not audited
  // (an embedder's own runs); a store that cannot write the audit row then
  // stops the run before anything of it is committed.
  std::optional<AuditEntry> audit;
  // Called after each event is committed, on the engine thread.
  std::function<void(const EventRecord&)> on_event;
  // Executors by mode, overriding the built-in ones (static, compute, command).
  std::map<TaskMode, Executor*> executors;
  // Confines a command task that has a `sandbox`: the process that runs
  // `argv` in `spec`'s runtime with `workspace` (the task's cwd, absolute)
  // as its only writable folder and within `spec`'s limits; an error when
  // that cannot be done here. `env_names` are the variables the task
  // declares (env and secret env), which a container runtime forwards by
  // name. Unset, such a task fails with SANDBOX_UNAVAILABLE: it never runs
  // unconfined. The CLI and the Gateway set it to src/sandbox/'s ConfineTask.
  std::function<Result<ConfinedProcess>(const SandboxSpec& spec, const std::string& workspace,
                                        const std::vector<std::string>& argv,
                                        const std::vector<std::string>& env_names)>
      confine;
  // Every process a task starts must be confined: a command task without a
  // sandbox, a CLI agent, or an agent whose tools run unisolated fails with
  // SANDBOX_REQUIRED before anything starts (`--require-sandbox`).
  bool require_sandbox = false;
  int64_t heartbeat_interval_ms = 1000;
  // The heartbeat watchdog's limit for agent tasks that set none (SPEC 1.7:
  // 10 minutes; the CLI and the Gateway take SMITHERS_TASK_HEARTBEAT_MS
  // from the environment, the library never reads it). Other tasks have
  // none unless they set heartbeatTimeoutMs.
  int64_t agent_heartbeat_timeout_ms = 600000;
  int64_t cancel_poll_interval_ms = 250;
  int64_t cancel_grace_ms = 5000;  // SIGTERM -> SIGKILL for commands
  // Graceful stop (a process shutting down): once `*stop` is true the run
  // starts no new task, lets the tasks in flight finish for up to
  // `stop_grace_ms` (their results are committed), stops the rest as a crash
  // would (resume retries them), and releases the run: it stays "running"
  // with no owner, so any process may resume it at once. RunWorkflow then
  // returns Unavailable. Read on the engine thread; set from any thread or a
  // signal handler.
  const std::atomic<bool>* stop = nullptr;
  int64_t stop_grace_ms = 10000;
  // When set, the run adds its render loop's timings here (bench/, `up --stats`).
  RenderStats* render_stats = nullptr;
};

struct RunResult {
  std::string run_id;
  RunStatus status = RunStatus::kRunning;  // finished, failed, cancelled, waiting-*
  Json error;                              // when failed
  Json outputs = Json::object();           // output name -> node id -> payload (latest iteration)
  // When waiting: what it waits for, one object per waiting task:
  // {nodeId, iteration, kind: "approval"|"event"|"timer", and owner/request,
  // event/correlationId/timeoutAtMs, or firesAtMs}.
  Json waiting = Json::array();
  int ExitCode() const;  // 0 finished, 1 failed, 2 cancelled, 3 waiting
};

// Checks a workflow without a store: its schemas, `input` (unless null) against
// its input schema, and a first render with no outputs. InvalidArgument with
// every problem found. RunWorkflow does the same before it writes anything.
Status CheckWorkflow(const WorkflowDefinition& workflow, const Json& input);

// The input part of CheckWorkflow: `input` is a JSON object within the depth
// limit, holds nothing secret-shaped (CheckInputHasNoSecrets) and matches the
// workflow's input schema. InvalidArgument saying what is wrong.
// REQUIRES: the input schema passed CheckWorkflow(workflow, nullptr).
Status CheckRunInput(const WorkflowDefinition& workflow, const Json& input);

// InvalidArgument naming the first field of `input` that looks like a secret
// (a known secret value or a key shape, as the redactor sees them): run
// input is stored as it is, so a launch (CLI, Gateway, cron) refuses it.
// CheckWorkflow and the start of a run check it too.
Status CheckInputHasNoSecrets(const Json& input);

Result<RunResult> RunWorkflow(const WorkflowDefinition& workflow, Store& store,
                              const RunOptions& options);

// Cancels `run_id`. A run some live process is running is asked to stop (it
// ends `cancelled` within RunOptions::cancel_poll_interval_ms); a run no
// process holds (waiting, or its owner died) is ended `cancelled` here, its
// waiting tasks cancelled. Returns the run's status afterwards (cancelled,
// or running when its owner will finish the job). FailedPrecondition for a
// run that already finished or failed.
Result<RunStatus> CancelRun(Store& store, const std::string& run_id, Clock& clock);

// What one render of a stored run mounted.
struct RenderedRun {
  int64_t nodes = 0;  // nodes of the tree
  int64_t tasks = 0;  // tasks among them
};
// Renders run `run_id` once from what the store holds (its input, outputs,
// loops and placements), as a resume would before running anything, with
// `workflow` (the module revision it runs): claims, writes and executes
// nothing. The restore drill's check that a restored run still renders.
Result<RenderedRun> RenderStoredRun(const WorkflowDefinition& workflow, Store& store,
                                    const std::string& run_id);

// The attempt of Sandbox task `node_id` (iteration `iteration`) of run
// `run_id` whose result bundle a diff is read from: attempt `attempt`, or
// (0) the latest that has a bundle folder. NotFound naming what is missing
// (no run, no such attempt); FailedPrecondition when the attempt returned
// no usable bundle (its patches were never read). `smithers diff` and the
// Gateway's getSandboxDiff.
Result<AttemptRecord> SandboxBundleAttempt(Store& store, const std::string& run_id,
                                           const std::string& node_id, int iteration, int attempt);

// What DeleteRun removed.
struct DeletedRun {
  RunRecord run;                         // its row, as it was
  std::vector<std::string> bundle_dirs;  // Sandbox bundle folders removed from disk
  std::vector<std::string> warnings;     // folders left in place, and why
};

// Deletes run `run_id` and everything that depends on it: its rows, in one
// transaction (Store::DeleteRun), then the folders its Sandbox attempts left
// (<rootDir>/.smithers/sandboxes/<run>/), never through a link. A run that
// is not over is refused (FailedPrecondition) unless `force`: it is then
// cancelled first (CancelRun); one a live process is running is asked to
// stop, and Unavailable says to delete it again once it has.
// `audit` (its run_id, target and action filled in here) is recorded in the
// deleting transaction: the run's tombstone in its audit chain.
Result<DeletedRun> DeleteRun(Store& store, const std::string& run_id, bool force, Clock& clock,
                             const AuditEntry* audit = nullptr);

// When `run` ended, for retention: finished_at_ms, else (it never started)
// created_at_ms.
int64_t RunEndedAtMs(const RunRecord& run);

// The runs with one of `statuses` (each finished, failed or cancelled) that
// ended before `ended_before_ms`, oldest first: what a retention prune
// deletes.
Result<std::vector<RunRecord>> RunsToPrune(Store& store, const std::vector<RunStatus>& statuses,
                                           int64_t ended_before_ms);

// Why the parked (waiting-*) run `run` can continue now: an approval was
// decided, a signal it waits for arrived, a timer or a wait's timeout is due.
// "" when nothing it waits for has happened. Supervisors resume on non-empty.
Result<std::string> WaitReadyReason(Store& store, const RunRecord& run, int64_t now_ms);

// ---- deciding approvals (docs/engine.md "Waits", "Who may decide") ----

// Who asks to decide an approval, as the CLI or the Gateway established it.
struct Decider {
  std::string actor;      // recorded as decidedBy
  std::string via;        // "cli", "token", "jwt", "trusted-proxy" or "unauthenticated"
  std::string os_user;    // the OS user running the CLI ("" elsewhere)
  bool override = false;  // a run:admin override: the caller checked the right to it
  // Whether the actor holds a scope (for allowedScopes); null = holds none.
  std::function<bool(const std::string& scope)> holds_scope;
};

// Ok when `who` may decide `approval` at `now_ms`: its owner; its fallback
// owner once it escalated (or its escalateAfterMs passed); a user of its
// allowedUsers; a holder of a scope of its allowedScopes; or an override.
// Else PermissionDenied "ACTOR may not decide WHAT: ..." naming who may.
Status CheckDecider(const ApprovalRecord& approval, const Decider& who, int64_t now_ms);

// The one way the CLI and the Gateway decide an approval: hands over what is
// due to escalate first, then records `decision` (its decided_by, via,
// os_user and override taken from `who`) if CheckDecider allows it, checked
// inside the deciding transaction. Store::DecideApproval's errors, or
// PermissionDenied.
Result<ApprovalRecord> DecideApproval(Store& store, ApprovalDecision decision, const Decider& who,
                                      int64_t now_ms);

// Reads a run's outputs in the shape RunResult::outputs has.
Result<Json> CollectOutputs(Store& store, const std::string& run_id);

// "host:pid:uuid" for this process; stable for its lifetime (a child of
// fork() gets its own).
const std::string& ThisProcessOwnerId();

// True when `owner_id` names a process on this host that no longer exists.
bool OwnerIsDeadLocalProcess(const std::string& owner_id);

// ---- who holds a run (docs/engine.md "Durability") ----

// How long a run's owner may go without a heartbeat before another process
// may take the run over (`supervise --stale-threshold` overrides it there).
inline constexpr int64_t kStaleOwnerMs = 30000;

// True when some live process holds `run`: it has an owner, the owner is not
// a dead process of this host, and its last heartbeat is at most `stale_ms`
// old at `now_ms`. Nobody else may resume or finish a held run (but --force).
bool OwnerHoldsRun(const RunRecord& run, int64_t now_ms, int64_t stale_ms = kStaleOwnerMs);

// A run another process may resume now, and why (for logs).
struct ResumableRun {
  RunRecord run;
  std::string reason;
};

// The runs a supervisor (`smithers supervise`, the Gateway) should resume at
// `now_ms`: running runs whose owner is gone or silent for over `stale_ms`
// (never one `me` owns), and waiting runs nobody holds whose wait can
// continue (WaitReadyReason). At most 1,000 of each status per call.
Result<std::vector<ResumableRun>> FindResumableRuns(Store& store, const std::string& me,
                                                    int64_t now_ms,
                                                    int64_t stale_ms = kStaleOwnerMs);

}  // namespace smithers

#endif  // SMITHERS_ENGINE_H_
