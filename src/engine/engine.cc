// The run loop: render -> plan -> execute -> persist -> re-render.
//
// Every state change is one Store::Commit(), so after a crash the database
// holds exactly the state before or after each step. The comments at each
// commit say what a crash right before it leaves behind.
#include "smithers/engine.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "base/hash.h"
#include "base/json_limits.h"
#include "base/redact.h"
#include "core/frame_codec.h"
#include "core/plan.h"
#include "core/task_modes.h"
#include "engine/cache.h"
#include "engine/executors.h"
#include "engine/wait_meta.h"
#include "engine/waits.h"
#include "smithers/schema.h"

namespace smithers {

int RunResult::ExitCode() const {
  if (status == RunStatus::kFinished) return 0;
  if (status == RunStatus::kCancelled) return 2;
  if (IsWaiting(status)) return 3;
  return 1;
}

const std::string& ThisProcessOwnerId() {
  // Made again when the pid changes: a child of fork() is another process and
  // must not own runs under its parent's pid (it would outlive a dead-owner
  // check, and its parent could not tell the run apart from its own). Old ids
  // are leaked on purpose, so references already handed out stay valid.
  static std::mutex mu;
  static pid_t pid = 0;
  static const std::string* id = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (id == nullptr || pid != getpid()) {
    pid = getpid();
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    id = new std::string(std::string(host) + ":" + std::to_string(pid) + ":" + base::NewUuid());
  }
  return *id;
}

bool OwnerIsDeadLocalProcess(const std::string& owner_id) {
  size_t a = owner_id.find(':');
  size_t b = owner_id.find(':', a + 1);
  if (a == std::string::npos || b == std::string::npos) return false;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  if (owner_id.substr(0, a) != host) return false;
  pid_t pid = 0;
  try {
    pid = static_cast<pid_t>(std::stol(owner_id.substr(a + 1, b - a - 1)));
  } catch (...) {
    return false;
  }
  if (pid <= 0) return false;
  if (pid == getpid()) return owner_id != ThisProcessOwnerId();
  return kill(pid, 0) != 0 && errno == ESRCH;
}

Result<Json> CollectOutputs(Store& store, const std::string& run_id) {
  SMITHERS_ASSIGN_OR_RETURN(std::vector<OutputRecord> rows, store.ListOutputs(run_id));
  Json out = Json::object();
  std::map<std::pair<std::string, std::string>, int> best;
  for (auto& r : rows) {
    auto key = std::make_pair(r.output_table, r.node_id);
    auto it = best.find(key);
    if (it != best.end() && it->second > r.iteration) continue;
    best[key] = r.iteration;
    out[r.output_table][r.node_id] = std::move(r.payload);
  }
  return out;
}

namespace {

using core::TaskState;

// For RenderStats: a monotonic clock in nanoseconds.
int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

using engine::NodeInfo;
using engine::NodeKey;

int64_t RetryDelayMs(const RetryPolicy& p, int failures) {
  if (p.initial_delay_ms <= 0) return 0;
  constexpr int64_t kCap = int64_t{5} * 60 * 1000;
  double d = static_cast<double>(p.initial_delay_ms);
  if (p.backoff == "linear") d *= failures;
  if (p.backoff == "exponential") d *= std::pow(2.0, failures - 1);
  return std::min<int64_t>(kCap, static_cast<int64_t>(d));
}

struct InFlight {
  int task;  // index in the current plan
  std::string node_id;
  int iteration;
  int attempt;
  std::string output;
  std::unique_ptr<Execution> exec;
  int64_t started_at_ms;
  std::string cache_key;  // "" = not cacheable
  bool cached = false;    // the output comes from the cache
  // Task heartbeats (monotonic ms): the last sign of life, the last
  // TaskHeartbeat event, and the watchdog's limit (0 = none).
  int64_t beat_mono = 0;
  int64_t beat_wall = 0;
  int64_t beat_event_mono = 0;
  bool beat_unreported = false;
  int64_t heartbeat_timeout_ms = 0;
  bool heartbeat_timed_out = false;
  // Its streamed output, redacted across pieces (a secret split between
  // two reads is still found); the rest is passed on when it ends.
  base::StreamRedactor output_redactor;
};

// The heartbeat watchdog's limit for a task (SPEC 1.7): its own, else the
// run's default for agent tasks, else none.
int64_t HeartbeatTimeoutMs(const TaskSpec& spec, const RunOptions& opts) {
  if (spec.heartbeat_timeout_ms != 0) return std::max<int64_t>(0, spec.heartbeat_timeout_ms);
  if (spec.mode != TaskMode::kAgent) return 0;
  return std::max<int64_t>(0, opts.agent_heartbeat_timeout_ms);
}

// The sandbox a task's process runs in: a command's, a Sandbox's worker's;
// null for the rest.
const SandboxSpec* SandboxOf(const TaskSpec& spec) {
  if (spec.mode == TaskMode::kCommand && spec.command.sandbox) return &*spec.command.sandbox;
  if (spec.mode == TaskMode::kSandbox && spec.sandbox_task) return &spec.sandbox_task->sandbox;
  return nullptr;
}

class Run final : public engine::WaitHost {
 public:
  Run(const WorkflowDefinition& wf, Store& store, const RunOptions& opts)
      : wf_(wf),
        store_(store),
        opts_(opts),
        clock_(opts.clock != nullptr ? *opts.clock : SystemClock()),
        owner_(ThisProcessOwnerId()) {
    static_exec_ = engine::NewStaticExecutor();
    compute_exec_ = engine::NewComputeExecutor();
    command_exec_ = engine::NewCommandExecutor(clock_, opts.cancel_grace_ms, opts.confine,
                                               opts.require_sandbox);
  }

  Result<RunResult> Execute() {
    SMITHERS_RETURN_IF_ERROR(opts_.resume ? Resume() : Start());
    return Loop();
  }

  // RenderStoredRun: the state a resume loads, then one render; no claim,
  // no write, no task.
  Result<RenderedRun> RenderStored(const std::string& run_id) {
    SMITHERS_ASSIGN_OR_RETURN(run_, store_.GetRun(run_id));
    input_ = run_.input;
    SMITHERS_RETURN_IF_ERROR(LoadState());
    SMITHERS_RETURN_IF_ERROR(LoadPlacements());
    SMITHERS_RETURN_IF_ERROR(CheckLoadable());
    SMITHERS_RETURN_IF_ERROR(Render());
    return RenderedRun{.nodes = static_cast<int64_t>(plan_->node_count()),
                       .tasks = static_cast<int64_t>(plan_->tasks().size())};
  }

  // Ends a run no process holds: waiting tasks and the run become cancelled.
  // The caller has claimed the run.
  static Status FinalizeCancel(Store& store, RunRecord run, Clock& clock) {
    int64_t now = clock.NowMs();
    WriteBatch batch;
    SMITHERS_ASSIGN_OR_RETURN(auto nodes, store.ListNodes(run.run_id));
    SMITHERS_ASSIGN_OR_RETURN(auto attempts, store.ListAttempts(run.run_id));
    for (auto& a : attempts) {
      if (a.state != AttemptState::kWaiting && a.state != AttemptState::kInProgress) continue;
      bool abandoned = a.state == AttemptState::kInProgress;  // its process is gone
      a.state = AttemptState::kCancelled;
      a.finished_at_ms = now;
      a.error = abandoned ? engine::ErrorJson("ATTEMPT_ABANDONED", "the process running it stopped")
                          : engine::ErrorJson("TASK_CANCELLED", "run cancelled");
      batch.UpsertAttempt(a);
      if (abandoned) {
        batch.AppendEvent(run.run_id, "NodeCancelled",
                          {{"nodeId", a.node_id},
                           {"iteration", a.iteration},
                           {"attempt", a.attempt},
                           {"reason", "abandoned"}},
                          now);
      }
    }
    for (auto& n : nodes) {
      bool waiting = IsWaiting(n.state);
      if (!waiting && n.state != NodeState::kInProgress && n.state != NodeState::kPending) continue;
      n.state = NodeState::kCancelled;
      n.updated_at_ms = now;
      batch.UpsertNode(n);
      if (waiting) {
        batch.AppendEvent(
            run.run_id, "NodeCancelled",
            {{"nodeId", n.node_id}, {"iteration", n.iteration}, {"reason", "run cancelled"}}, now);
      }
    }
    run.status = RunStatus::kCancelled;
    run.finished_at_ms = now;
    run.runtime_owner_id = "";
    batch.UpsertRun(run);
    batch.AppendEvent(run.run_id, "RunCancelled", Json::object(), now);
    return store.Commit(batch).status();
  }

 private:
  // ---- start and resume ----

  Status Start() {
    run_.run_id = opts_.run_id.empty() ? base::NewUuid() : opts_.run_id;
    Json input = opts_.input.is_null() ? Json::object() : opts_.input;
    SMITHERS_RETURN_IF_ERROR(CheckInput(input));
    Result<RunRecord> existing = store_.GetRun(run_.run_id);
    if (existing.ok()) {
      return AlreadyExistsError("run \"" + run_.run_id +
                                "\" already exists; add --resume to continue it");
    }
    if (existing.status().code() != StatusCode::kNotFound) return existing.status();
    input_ = input;
    // Render once before writing anything, so a broken module or a duplicate
    // id leaves no run behind.
    SMITHERS_RETURN_IF_ERROR(Render());
    SMITHERS_RETURN_IF_ERROR(store_.EnsureOutputViews(wf_.outputs));
    int64_t now = clock_.NowMs();
    run_.workflow_name =
        root_->kind == NodeKind::kWorkflow && !root_->id.empty() ? root_->id : wf_.name;
    run_.workflow_path = wf_.source_path;
    run_.workflow_hash = wf_.source_hash;
    run_.status = RunStatus::kRunning;
    run_.created_at_ms = run_.started_at_ms = run_.heartbeat_at_ms = now;
    run_.runtime_owner_id = owner_;
    run_.input = input_;
    run_.config = {{"durability", {{"version", 1}}}};
    // Where the run started: relative paths in its commands mean this folder,
    // so a supervisor resumes it from here.
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) != nullptr) run_.config["cwd"] = cwd;
    // Which version of each output schema the run started with.
    for (const auto& [name, s] : wf_.outputs) run_.config["outputSchemas"][name] = schema::Hash(s);
    if (!opts_.auth.is_null()) run_.config["auth"] = opts_.auth;
    AuditFirstCommit("run.launch");
    batch_.UpsertRun(run_);
    Event("RunStarted", {});
    // A crash before this commit leaves nothing; after it, a resumable run.
    return CommitFrameAndNodes();
  }

  Status Resume() {
    if (opts_.run_id.empty()) return InvalidArgumentError("--resume needs --run-id");
    Result<RunRecord> got = store_.GetRun(opts_.run_id);
    if (!got.ok()) {
      if (got.status().code() == StatusCode::kNotFound) {
        return NotFoundError("no run \"" + opts_.run_id + "\" to resume");
      }
      return got.status();
    }
    run_ = std::move(got).value();
    if (!opts_.input.is_null() && opts_.input != run_.input) {
      return FailedPreconditionError("run \"" + run_.run_id + "\" was started with input " +
                                     run_.input.dump() + " but --input is " + opts_.input.dump() +
                                     "; a run's input cannot change (omit --input to reuse it)");
    }
    if (run_.workflow_hash != wf_.source_hash) {
      if (!opts_.force) {
        return FailedPreconditionError(
            "the workflow changed since run \"" + run_.run_id + "\" started (source hash " +
            run_.workflow_hash.substr(0, 12) + " then, " + wf_.source_hash.substr(0, 12) + " now" +
            (run_.workflow_path != wf_.source_path
                 ? ", path " + run_.workflow_path + " then, " + wf_.source_path + " now"
                 : std::string()) +
            "); pass --force to resume with the new code");
      }
      run_.config["forcedSourceChange"] = {
          {"from", run_.workflow_hash}, {"to", wf_.source_hash}, {"atMs", clock_.NowMs()}};
      run_.workflow_hash = wf_.source_hash;
    }
    if (run_.status == RunStatus::kFinished) {
      resumed_finished_ = true;
      return Status::Ok();
    }
    // Ownership: the previous owner must be gone (dead local process or a
    // stale heartbeat), unless --force.
    // Every way of losing the claim to another process says the same, with
    // FailedPrecondition (exit 4): "the run belongs to another live process".
    const std::string prev = run_.runtime_owner_id;
    auto taken = [&](const std::string& holder, const std::string& detail) {
      return FailedPreconditionError("run \"" + run_.run_id +
                                     "\": the run belongs to another live process (" +
                                     (holder.empty() ? std::string("owner unknown") : holder) +
                                     detail + "); pass --force to take it over");
    };
    if (!opts_.claim_from.empty()) {
      if (prev != opts_.claim_from) return taken(prev, ", not " + opts_.claim_from);
    } else if (!prev.empty() && prev != owner_ && !opts_.force) {
      // A parked run has no owner, so an owner that is neither dead nor
      // silent is running it (or has just claimed it), whatever the status.
      if (OwnerHoldsRun(run_, clock_.NowMs())) {
        return taken(prev, ", heartbeat " + std::to_string(clock_.NowMs() - run_.heartbeat_at_ms) +
                               " ms ago");
      }
    }
    Status claimed = store_.ClaimRun(run_.run_id, prev, owner_, clock_.NowMs());
    if (claimed.code() == StatusCode::kAborted) {
      // Another process changed the owner between our read and our claim.
      Result<RunRecord> now_held = store_.GetRun(run_.run_id);
      return taken(now_held.ok() ? now_held->runtime_owner_id : std::string(), "");
    }
    SMITHERS_RETURN_IF_ERROR(claimed);
    // The claim is a compare-and-swap on the owner only: a process that
    // claimed, ran and released the run between our read and our claim left
    // the owner as we saw it. A changed status or event count says so.
    {
      Result<RunRecord> latest = store_.GetRun(run_.run_id);
      if (latest.ok() && latest->status != run_.status) {
        (void)store_.ClaimRun(run_.run_id, owner_, prev, clock_.NowMs());
        return taken(std::string(), ", it ran while this process started; now " +
                                        std::string(Name(latest->status)));
      }
    }
    SMITHERS_RETURN_IF_ERROR(store_.ClearCancel(run_.run_id));
    run_.runtime_owner_id = owner_;
    input_ = run_.input;
    SMITHERS_RETURN_IF_ERROR(store_.EnsureOutputViews(wf_.outputs));
    SMITHERS_RETURN_IF_ERROR(LoadState());
    SMITHERS_RETURN_IF_ERROR(LoadPlacements());
    // A committed row this process cannot load (one an older binary wrote
    // past the depth limit) fails the run below, with the reason; it must
    // never reach the render (Lua) or crash the process.
    Status loadable = CheckLoadable();
    if (!loadable.ok()) resume_error_ = engine::ErrorJson("ROW_UNLOADABLE", loadable.message());

    int64_t now = clock_.NowMs();
    RunStatus previous_status = run_.status;
    run_.status = RunStatus::kRunning;
    run_.error = nullptr;
    run_.finished_at_ms = 0;
    run_.heartbeat_at_ms = now;
    AuditFirstCommit("run.resume");
    batch_.UpsertRun(run_);
    Event("RunStatusChanged",
          {{"status", RunStatus::kRunning}, {"previous", previous_status}, {"resumed", true}});
    // Attempts that were running when the last owner died are abandoned; their
    // tasks are retried. Failed and cancelled tasks of a failed or cancelled
    // run get a fresh chance.
    for (auto& a : attempts_in_progress_) {
      a.state = AttemptState::kCancelled;
      a.finished_at_ms = now;
      a.error = engine::ErrorJson("ATTEMPT_ABANDONED", "the process running it stopped");
      batch_.UpsertAttempt(a);
      Event("NodeCancelled", {{"nodeId", a.node_id},
                              {"iteration", a.iteration},
                              {"attempt", a.attempt},
                              {"reason", "abandoned"}});
    }
    // A crashed run keeps its failures (a continueOnFail failure stays
    // failed); a run that ended failed or cancelled is being retried.
    bool retry_failures =
        previous_status == RunStatus::kFailed || previous_status == RunStatus::kCancelled;
    for (auto& [key, info] : nodes_) {
      NodeState s = info.row.state;
      if (s == NodeState::kInProgress ||
          (retry_failures && (s == NodeState::kCancelled || s == NodeState::kFailed))) {
        info.row.state = NodeState::kPending;
        info.row.updated_at_ms = now;
        info.failures = 0;
        info.retry_at_ms = 0;
        batch_.UpsertNode(info.row);
      }
    }
    if (!resume_error_.is_null()) return Flush();  // Loop() fails the run at once
    if (Status rendered = Render(); !rendered.ok()) {
      // As in the loop: a render that fails fails the run (not a run left
      // claimed and `running` that every resume trips over again).
      resume_error_ = engine::ErrorJson("RENDER_FAILED", rendered.message());
      return Flush();
    }
    // A crash before this commit leaves the run as the dead owner left it
    // (claimed by us, but resumable again since our pid will be gone).
    return CommitFrameAndNodes();
  }

  // The stored input, outputs and pending signals are within the depth limit.
  Status CheckLoadable() const {
    const int max = base::MaxJsonDepth();
    SMITHERS_RETURN_IF_ERROR(
        base::CheckJsonValueDepth(input_, max, "the stored input of run " + run_.run_id));
    for (const auto& [key, by_iteration] : outputs_) {
      for (const auto& [iteration, row] : by_iteration) {
        SMITHERS_RETURN_IF_ERROR(base::CheckJsonValueDepth(
            row, max,
            "the stored output " + key.output + " of node " + key.node_id + " (iteration " +
                std::to_string(iteration) + ")"));
      }
    }
    return Status::Ok();
  }

  Status CheckInput(const Json& input) {
    SMITHERS_RETURN_IF_ERROR(base::CheckJsonValueDepth(input, base::MaxJsonDepth(), "the input"));
    if (!input.is_object()) return InvalidArgumentError("the input must be a JSON object");
    SMITHERS_RETURN_IF_ERROR(CheckInputHasNoSecrets(input));
    if (wf_.input_schema.is_null()) return Status::Ok();
    auto v = schema::Validate(wf_.input_schema, input);
    if (v.empty()) return Status::Ok();
    std::string msg = "input does not match the workflow's input schema:";
    for (const auto& x : v) msg += "\n  " + x.path + ": " + x.message;
    return InvalidArgumentError(msg);
  }

  Status LoadState() {
    const std::string& id = run_.run_id;
    SMITHERS_ASSIGN_OR_RETURN(auto nodes, store_.ListNodes(id));
    for (auto& n : nodes) nodes_[NodeKey(n.node_id, n.iteration)] = NodeInfo{.row = n};
    SMITHERS_ASSIGN_OR_RETURN(auto attempts, store_.ListAttempts(id));
    for (auto& a : attempts) {
      auto it = nodes_.find(NodeKey(a.node_id, a.iteration));
      if (it == nodes_.end()) continue;
      NodeInfo& info = it->second;
      info.row.last_attempt = std::max(info.row.last_attempt, a.attempt);
      if (a.state == AttemptState::kFailed) {
        info.failures++;
        if (a.meta.contains("retryAtMs") && a.meta["retryAtMs"].is_number_integer()) {
          info.retry_at_ms = a.meta["retryAtMs"].get<int64_t>();
        }
      }
      if (a.state == AttemptState::kInProgress) attempts_in_progress_.push_back(a);
      if (a.state == AttemptState::kWaiting) {
        info.wait_started_at_ms = a.started_at_ms;
        info.wake_at_ms = engine::DecodeWaitMeta(a.meta).WakeAtMs();
      }
    }
    for (auto& [key, info] : nodes_) {
      info.wait = engine::WaitKindOf(waits_, info.row.state);
      if (info.row.mounted) mounted_ids_.try_emplace(std::string(LogicalId(info.row.node_id)), 0);
    }
    for (auto& kind : waits_) SMITHERS_RETURN_IF_ERROR(kind->Load(*this));
    SMITHERS_ASSIGN_OR_RETURN(auto outputs, store_.ListOutputs(id));
    for (auto& o : outputs) {
      outputs_[{o.output_table, o.node_id}][o.iteration] = std::move(o.payload);  // no deep copy
    }
    SMITHERS_ASSIGN_OR_RETURN(auto loops, store_.ListLoops(id));
    for (auto& l : loops) loops_[l.loop_id] = {l.iteration, l.done};
    SMITHERS_ASSIGN_OR_RETURN(auto frames, store_.ListFrames(id));
    if (!frames.empty()) {
      std::vector<std::pair<std::string, std::string>> enc;
      size_t start = 0;
      for (size_t i = 0; i < frames.size(); ++i) {
        if (frames[i].encoding == "keyframe") start = i;
      }
      size_t delta_bytes = 0;
      for (size_t i = start; i < frames.size(); ++i) {
        enc.emplace_back(frames[i].encoding, frames[i].data);
        if (i > start) delta_bytes += frames[i].data.size();
      }
      SMITHERS_ASSIGN_OR_RETURN(auto lines, core::DecodeFrames(enc));
      frames_.Reset(std::move(lines), delta_bytes);
      frame_no_ = frames.back().frame_no + 1;
    }
    return Status::Ok();
  }

  // ---- render ----

  int CurrentIteration() const {
    int it = 0;
    for (const auto& [id, st] : loops_) {
      if (!st.done) return st.iteration;
      it = std::max(it, st.iteration);
    }
    return it;
  }

  // Renders the tree and indexes it. Does not write. When the plan places a
  // task the render read in a Loop it was not known to be in (its first
  // mount there), the render resolved that id wrongly: render again, at most
  // twice more, so the tree that is committed read every id where it sits.
  Status Render() {
    RenderStats* stats = opts_.render_stats;
    for (int pass = 0;; ++pass) {
      Ctx ctx(run_.run_id, &input_, &outputs_, CurrentIteration(), &placements_, &loops_,
              run_.config.value("auth", Json()));
      int64_t t0 = stats != nullptr ? SteadyNs() : 0;
      Result<Node> root = wf_.render(ctx);
      if (!root.ok()) return root.status();
      auto tree = std::make_unique<Node>(std::move(root).value());
      int64_t t1 = stats != nullptr ? SteadyNs() : 0;
      SMITHERS_ASSIGN_OR_RETURN(
          core::PlanTree plan,
          core::PlanTree::Build(*tree, loops_, wf_.outputs, wf_.default_approval_owner));
      if (stats != nullptr) {
        stats->renders++;
        stats->nodes += static_cast<int64_t>(plan.node_count());
        stats->render_ns += t1 - t0;
        stats->plan_ns += SteadyNs() - t1;
      }
      std::vector<std::string> moved = UpdatePlacements(plan);
      reads_ = ctx.TakeReads();
      root_ = std::move(tree);
      plan_ = std::make_unique<core::PlanTree>(std::move(plan));
      if (moved.empty() || pass == 2 || !ReadAny(moved)) break;
    }
    schedule_memo_ = {};  // it describes one tree
    need_render_ = false;
    return Status::Ok();
  }

  // Records where the plan's tasks sit; returns the logical ids whose
  // placement changed. Costs nothing for tasks outside loops while no task
  // has a placement.
  std::vector<std::string> UpdatePlacements(const core::PlanTree& plan) {
    std::vector<std::string> moved;
    const auto& loops = plan.loops();
    for (const core::TaskRef& t : plan.tasks()) {
      if (t.loop < 0) {
        if (placements_.empty()) continue;
        auto it = placements_.find(t.node->id);
        if (it == placements_.end()) continue;
        placements_.erase(it);  // it now mounts outside every Loop
        moved.push_back(t.node->id);
        continue;
      }
      auto it = placements_.find(t.node->id);
      bool same = it != placements_.end();
      if (same) {
        const std::vector<std::string>& path = it->second;
        size_t i = path.size();
        int l = t.loop;
        for (; l >= 0 && i > 0; l = loops[l].parent) {
          if (path[--i] != loops[l].node->id) break;
        }
        same = l < 0 && i == 0;
      }
      if (same) continue;
      placements_[t.node->id] = plan.LoopPath(t);
      moved.push_back(t.node->id);
    }
    if (!moved.empty()) placements_changed_ = true;
    return moved;
  }

  // Whether the last render read one of `ids` (logical ids).
  bool ReadAny(const std::vector<std::string>& ids) const {
    auto read = [&](const std::string& node_id) {
      return std::find(ids.begin(), ids.end(), LogicalId(node_id)) != ids.end();
    };
    for (const Ctx::OutputKey* k : reads_.hits) {
      if (read(k->node_id)) return true;
    }
    for (const auto& k : reads_.misses) {
      if (read(k.node_id)) return true;
    }
    return false;
  }

  Json PlacementsJson() const {
    Json j = Json::object();
    for (const auto& [id, path] : placements_) j[id] = path;
    return j;
  }

  // The placements a run stored (on resume).
  Status LoadPlacements() {
    placements_.clear();
    auto it = run_.config.find("placements");
    if (it == run_.config.end()) return Status::Ok();
    if (!it->is_object()) return DataLossError("run config: placements is not an object");
    for (const auto& [id, path] : it->items()) {
      if (!path.is_array()) return DataLossError("run config: placements." + id + " is not a list");
      std::vector<std::string> loops;
      for (const auto& l : path) {
        if (!l.is_string()) return DataLossError("run config: placements." + id + " is not text");
        loops.push_back(l.get<std::string>());
      }
      placements_[id] = std::move(loops);
    }
    return Status::Ok();
  }

  // Adds the frame (when the tree changed) and rows for newly mounted tasks to
  // the batch, and commits it.
  Status CommitFrameAndNodes() {
    int64_t t0 = opts_.render_stats != nullptr ? SteadyNs() : 0;
    std::vector<std::string> lines = core::TreeLines(*root_);
    if (!frames_.has_previous() || lines != frames_.lines()) {
      core::EncodedFrame f = frames_.Encode(std::move(lines));
      if (opts_.render_stats != nullptr) opts_.render_stats->frame_ns += SteadyNs() - t0;
      int64_t now = clock_.NowMs();
      batch_.PutFrame(FrameRecord{.run_id = run_.run_id,
                                  .frame_no = frame_no_,
                                  .created_at_ms = now,
                                  .encoding = f.encoding,
                                  .data = std::move(f.data),
                                  .xml_hash = f.hash});
      Event("FrameCommitted", {{"frameNo", frame_no_}, {"xmlHash", f.hash}});
      ++frame_no_;
    } else if (opts_.render_stats != nullptr) {
      opts_.render_stats->frame_ns += SteadyNs() - t0;
    }
    states_.assign(plan_->tasks().size(), core::TaskStatus{});
    bool run_changed = false;
    ++mount_epoch_;
    mounted_seen_ = 0;
    const size_t mounted_before = mounted_ids_.size();
    for (size_t i = 0; i < plan_->tasks().size(); ++i) {
      const core::TaskRef& t = plan_->tasks()[i];
      if (t.node->task.mode == TaskMode::kWaitForEvent) {
        // What a signal for this event must look like, so `smithers signal`
        // can refuse bad data before the run gets to it.
        Json& known = run_.config["signalSchemas"];
        const std::string& event = t.node->task.wait->event;
        if (!known.contains(event)) {
          known[event] = {{"output", t.node->task.output},
                          {"schema", wf_.outputs.at(t.node->task.output)}};
          run_changed = true;
        }
      }
      auto [it, inserted] = nodes_.try_emplace(NodeKey(t.node_id, t.iteration));
      NodeInfo& info = it->second;
      if (inserted) {
        info.row = NodeRecord{.run_id = run_.run_id,
                              .node_id = t.node_id,
                              .iteration = t.iteration,
                              .state = NodeState::kPending,
                              .updated_at_ms = clock_.NowMs(),
                              .output_table = t.node->task.output,
                              .label = t.node->task.label};
        batch_.UpsertNode(info.row);
        Event("NodePending", {{"nodeId", t.node_id}, {"iteration", t.iteration}});
      }
      MarkMounted(t, info);
      states_[i] = {core::TaskStateOf(info.row.state), info.retry_at_ms};
    }
    // Every id mounted before is seen again (the common case: the new tree
    // contains the old one) unless some left the tree.
    SMITHERS_RETURN_IF_ERROR(UnmountGone(mounted_seen_ < mounted_before));
    if (placements_changed_) {
      run_.config["placements"] = PlacementsJson();
      placements_changed_ = false;
      run_changed = true;
    }
    if (run_changed) batch_.UpsertRun(run_);
    return Flush();
  }

  // ---- unmounted nodes ----

  static std::string_view LogicalId(std::string_view node_id) {
    return node_id.substr(0, node_id.find("@@"));
  }

  // `t` is in the tree committed now: its row is mounted, and its logical id
  // is seen in this commit (counted once).
  void MarkMounted(const core::TaskRef& t, NodeInfo& info) {
    if (!info.row.mounted) {
      info.row.mounted = true;
      info.row.updated_at_ms = clock_.NowMs();
      batch_.UpsertNode(info.row);
    }
    auto it = mounted_ids_.find(std::string_view(t.node->id));
    if (it == mounted_ids_.end()) {
      mounted_ids_.emplace(t.node->id, mount_epoch_);
    } else if (it->second != mount_epoch_) {
      it->second = mount_epoch_;
      ++mounted_seen_;
    }
  }

  // Rows whose logical id left the tree become unmounted (NodeUnmounted);
  // attempts of tasks no longer in the plan are cancelled (UNMOUNTED). Old
  // iterations of a loop stay mounted while the loop's body is. Walks the
  // rows only when `some_gone`; the attempts in flight are re-indexed in the
  // new plan every time.
  Status UnmountGone(bool some_gone) {
    std::unordered_set<std::string, Ctx::StringHash, std::equal_to<>> gone;
    if (some_gone) {
      for (auto it = mounted_ids_.begin(); it != mounted_ids_.end();) {
        if (it->second == mount_epoch_) {
          ++it;
          continue;
        }
        gone.insert(it->first);
        it = mounted_ids_.erase(it);
      }
    }
    for (size_t i = 0; i < in_flight_.size();) {
      int task = plan_->Find(in_flight_[i].node_id, in_flight_[i].iteration);
      if (task >= 0) {
        in_flight_[i].task = task;
        ++i;
        continue;
      }
      InFlight f = std::move(in_flight_[i]);
      in_flight_.erase(in_flight_.begin() + static_cast<long>(i));
      // Its id left the tree, or it mounts elsewhere (another loop) now:
      // either way this attempt belongs to a place the tree no longer has.
      StopUnmounted(f);
    }
    if (gone.empty()) return Status::Ok();
    int64_t now = clock_.NowMs();
    for (auto& [key, info] : nodes_) {
      if (!info.row.mounted || !gone.contains(LogicalId(info.row.node_id))) continue;
      info.row.mounted = false;
      info.row.updated_at_ms = now;
      batch_.UpsertNode(info.row);
      Event("NodeUnmounted", {{"nodeId", info.row.node_id},
                              {"iteration", info.row.iteration},
                              {"state", info.row.state}});
    }
    return Status::Ok();
  }

  // Cancels an attempt whose task left the tree and waits for it to end;
  // records it cancelled with UNMOUNTED (its outcome, even a success, is
  // dropped: the tree no longer asks for it).
  void StopUnmounted(InFlight& f) {
    f.exec->Cancel("unmounted");
    while (!f.exec->Poll()) {
      pollfd p{f.exec->WaitFd(), POLLIN, 0};
      clock_.Wait(&p, p.fd >= 0 ? 1 : 0, 10);
    }
    int64_t now = clock_.NowMs();
    AttemptRecord a{.run_id = run_.run_id,
                    .node_id = f.node_id,
                    .iteration = f.iteration,
                    .attempt = f.attempt,
                    .state = AttemptState::kCancelled,
                    .started_at_ms = f.started_at_ms,
                    .finished_at_ms = now,
                    .error = engine::ErrorJson("UNMOUNTED", "the task left the rendered tree"),
                    .cached = f.cached};
    batch_.UpsertAttempt(a);
    NodeInfo& info = nodes_[NodeKey(f.node_id, f.iteration)];
    info.row.state = NodeState::kCancelled;
    info.row.updated_at_ms = now;
    batch_.UpsertNode(info.row);
    Event("NodeCancelled", {{"nodeId", f.node_id},
                            {"iteration", f.iteration},
                            {"attempt", f.attempt},
                            {"reason", "unmounted"}});
  }

  // ---- the loop ----

  Result<RunResult> Loop() {
    if (resumed_finished_) return Finish(RunStatus::kFinished, nullptr);
    if (!resume_error_.is_null()) return FailRun(resume_error_);
    int64_t last_heartbeat = clock_.MonotonicMs();
    int64_t last_cancel_check = clock_.MonotonicMs();
    int64_t last_wait_check = clock_.MonotonicMs();
    while (true) {
      if (need_render_) {
        Status s = Render();
        if (!s.ok()) return FailRun(engine::ErrorJson("RENDER_FAILED", s.message()));
        SMITHERS_RETURN_IF_ERROR(CommitFrameAndNodes());
      }
      int64_t mono = clock_.MonotonicMs();
      if (mono - last_heartbeat >= opts_.heartbeat_interval_ms) {
        last_heartbeat = mono;
        Status hb = store_.Heartbeat(run_.run_id, owner_, clock_.NowMs());
        if (hb.code() == StatusCode::kAborted) {
          CancelInFlight("lost ownership of the run");
          return AbortedError("another process took over run \"" + run_.run_id + "\"");
        }
      }
      if (mono - last_cancel_check >= opts_.cancel_poll_interval_ms || cancel_seen_) {
        last_cancel_check = mono;
        if (!cancel_seen_) {
          SMITHERS_ASSIGN_OR_RETURN(RunRecord latest, store_.GetRun(run_.run_id));
          cancel_seen_ = latest.cancel_requested_at_ms != 0;
        }
        if (cancel_seen_) return StopCancelled();
      }
      if (opts_.stop != nullptr && opts_.stop->load(std::memory_order_relaxed)) {
        if (stop_deadline_ < 0) {
          stop_deadline_ = mono + opts_.stop_grace_ms;
          Event("RunStopping", {{"inFlight", in_flight_.size()}, {"graceMs", opts_.stop_grace_ms}});
          SMITHERS_RETURN_IF_ERROR(Flush());
        }
        if (in_flight_.empty() || mono >= stop_deadline_) return Release();
        SMITHERS_ASSIGN_OR_RETURN(bool completed, PollInFlight());
        if (!completed) WaitForActivity(0);
        continue;
      }

      core::Decision d =
          plan_->Schedule(states_, clock_.NowMs(),
                          std::max(0, opts_.max_concurrency - static_cast<int>(in_flight_.size())),
                          &schedule_memo_);
      if (d.waiting > 0 &&
          (check_waits_now_ || mono - last_wait_check >= opts_.cancel_poll_interval_ms)) {
        last_wait_check = mono;
        check_waits_now_ = false;
        SMITHERS_ASSIGN_OR_RETURN(bool changed, CheckWaits());
        if (changed) continue;
      }

      if (!d.to_skip.empty()) {
        for (int t : d.to_skip) SetState(t, NodeState::kSkipped, "NodeSkipped", {});
        SMITHERS_RETURN_IF_ERROR(Flush());
        continue;
      }
      if (d.failed_task >= 0) {
        const core::TaskRef& t = plan_->tasks()[d.failed_task];
        CancelInFlight("the run failed");
        SMITHERS_RETURN_IF_ERROR(DrainInFlight());
        Json err = engine::ErrorJson("TASK_FAILED", "Task failed: " + t.node_id);
        err["nodeId"] = t.node_id;
        err["iteration"] = t.iteration;
        auto it = last_error_.find(NodeKey(t.node_id, t.iteration));
        if (it != last_error_.end()) err["cause"] = it->second;
        return FailRun(err);
      }
      if (!d.loop_failure.empty()) {
        CancelInFlight("the run failed");
        SMITHERS_RETURN_IF_ERROR(DrainInFlight());
        return FailRun(engine::ErrorJson("RALPH_MAX_REACHED",
                                         "Loop \"" + d.loop_failure + "\" reached maxIterations"));
      }
      if (!d.loops.empty() && in_flight_.empty()) {
        for (const auto& u : d.loops) {
          loops_[u.loop_id] = u.next;
          batch_.UpsertLoop(LoopRecord{.run_id = run_.run_id,
                                       .loop_id = u.loop_id,
                                       .iteration = u.next.iteration,
                                       .done = u.next.done,
                                       .updated_at_ms = clock_.NowMs()});
          Event(u.next.done ? "LoopFinished" : "LoopAdvanced",
                {{"loopId", u.loop_id}, {"iteration", u.next.iteration}});
        }
        // A crash before this commit re-derives the same advance on resume.
        SMITHERS_RETURN_IF_ERROR(Flush());
        need_render_ = true;
        continue;
      }
      if (d.finished && in_flight_.empty()) return Finish(RunStatus::kFinished, nullptr);

      bool progressed = false;
      for (int t : d.ready) {
        SMITHERS_RETURN_IF_ERROR(StartTask(t));
        progressed = true;
      }
      SMITHERS_ASSIGN_OR_RETURN(bool completed, PollInFlight());
      progressed = progressed || completed;
      if (progressed || need_render_) continue;

      if (in_flight_.empty() && d.wake_at_ms == 0 && d.loops.empty()) {
        if (d.waiting > 0) {
          // Nothing can move until a wait is satisfied: look once more, then
          // park the run (no process holds it while it waits).
          SMITHERS_ASSIGN_OR_RETURN(bool changed, CheckWaits());
          if (changed) continue;
          return Park();
        }
        return FailRun(Deadlock(d));
      }
      int64_t wake = d.wake_at_ms;
      if (next_wait_wake_ms_ > 0 && (wake == 0 || next_wait_wake_ms_ < wake)) {
        wake = next_wait_wake_ms_;
      }
      WaitForActivity(wake);
    }
  }

  // DEPENDENCY_DEADLOCK: pending tasks, none can start. Names the
  // dependencies no mounted task has, when that is why.
  Json Deadlock(const core::Decision& d) const {
    Json blocked = Json::array();
    std::set<std::string> missing;
    for (int t : d.blocked_on_unmounted) {
      std::vector<std::string> ids = plan_->UnmountedDeps(t);
      missing.insert(ids.begin(), ids.end());
      const core::TaskRef& ref = plan_->tasks()[t];
      blocked.push_back({{"nodeId", ref.node_id}, {"iteration", ref.iteration}, {"waitsFor", ids}});
    }
    if (missing.empty()) {
      return engine::ErrorJson("DEPENDENCY_DEADLOCK", "tasks are pending but none can start");
    }
    std::string names;
    for (const auto& id : missing) names += (names.empty() ? "\"" : ", \"") + id + "\"";
    Json e = engine::ErrorJson("DEPENDENCY_DEADLOCK",
                               "tasks are pending but none can start: they depend on " + names +
                                   ", which no mounted task has");
    e["missing"] = Json(missing);
    e["blocked"] = std::move(blocked);
    return e;
  }

  void WaitForActivity(int64_t wake_at_ms) {
    int64_t timeout = std::min(opts_.heartbeat_interval_ms, opts_.cancel_poll_interval_ms);
    if (wake_at_ms > 0)
      timeout = std::min(timeout, std::max<int64_t>(0, wake_at_ms - clock_.NowMs()));
    std::vector<pollfd> fds;
    for (auto& f : in_flight_) {
      int fd = f.exec->WaitFd();
      if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    }
    // Executions without a wait fd are polled at 10 ms (a command has one until
    // it is reaped: its pipes, then its pidfd on Linux 5.3+; base/subprocess.h).
    if (fds.size() < in_flight_.size()) timeout = std::min<int64_t>(timeout, 10);
    if (timeout <= 0) return;
    clock_.Wait(fds.data(), fds.size(), timeout);
  }

  // ---- tasks ----

  Executor* ExecutorFor(TaskMode mode) {
    auto it = opts_.executors.find(mode);
    if (it != opts_.executors.end()) return it->second;
    switch (core::Traits(mode).runner) {
      case core::TaskRunner::kStatic: return static_exec_.get();
      case core::TaskRunner::kCompute: return compute_exec_.get();
      case core::TaskRunner::kCommand: return command_exec_.get();
      case core::TaskRunner::kPlugged:               // only RunOptions::executors has one
      case core::TaskRunner::kWait: return nullptr;  // waits never reach an executor
    }
    return nullptr;
  }

  Status StartTask(int t) {
    const core::TaskRef& ref = plan_->tasks()[t];
    const TaskSpec& spec = ref.node->task;
    // An Approval always has its settings (PlanTree checks), so it waits here too.
    if (spec.approval || core::Traits(spec.mode).runner == core::TaskRunner::kWait) {
      SMITHERS_RETURN_IF_ERROR(BeginWait(t));
      if (states_[t].state != TaskState::kPending) return Status::Ok();
      // An approved gate: the task itself runs now.
    }
    // The rows it reads; a missing one fails the attempt below (unless
    // depsOptional), after the attempt is recorded like any other.
    Json deps_rows;
    std::string deps_missing;
    if (spec.deps && !spec.deps->rows.empty()) {
      deps_rows = Json::object();
      std::span<const int> targets = plan_->Deps(t);
      size_t i = 0;
      for (const auto& [key, dep] : spec.deps->rows) {
        int target = targets[i++];
        if (target < 0) {  // never scheduled so (the plan waits for it): refuse, not crash
          if (deps_missing.empty())
            deps_missing = "deps." + key + ": task \"" + dep.task_id + "\" is not mounted";
          continue;
        }
        const core::TaskRef& u = plan_->tasks()[target];
        const Json* row = nullptr;
        auto by_node = outputs_.find({dep.output, u.node_id});
        if (by_node != outputs_.end()) {
          auto at = by_node->second.find(u.iteration);
          if (at != by_node->second.end()) row = &at->second;
        }
        if (row != nullptr) {
          deps_rows[key] = *row;
        } else if (!spec.deps->optional && deps_missing.empty()) {
          const NodeInfo& ui = nodes_[NodeKey(u.node_id, u.iteration)];
          deps_missing = "deps." + key + ": task \"" + u.node_id + "\" (iteration " +
                         std::to_string(u.iteration) + ") is " + std::string(Name(ui.row.state)) +
                         " without a row of \"" + dep.output +
                         "\"; set depsOptional = true to run without it";
        }
      }
    }
    const Json* deps = deps_rows.is_object() ? &deps_rows : nullptr;
    std::string cache_key;
    if (spec.cache && deps_missing.empty()) {
      cache_key = engine::CacheKey(spec, *spec.cache,
                                   {.run_id = run_.run_id,
                                    .workflow_name = run_.workflow_name,
                                    .node_id = ref.node_id,
                                    .iteration = ref.iteration,
                                    .output_schema = wf_.outputs.at(spec.output),
                                    .deps = deps});
      SMITHERS_ASSIGN_OR_RETURN(bool hit, TryCacheHit(t, cache_key));
      if (hit) return Status::Ok();
    }
    NodeInfo& info = node(t);
    int attempt = info.row.last_attempt + 1;
    int64_t now = clock_.NowMs();
    AttemptInfo ai{
        .run_id = run_.run_id,
        .node_id = ref.node_id,
        .iteration = ref.iteration,
        .attempt = attempt,
        .deadline_monotonic_ms = spec.timeout_ms > 0 ? clock_.MonotonicMs() + spec.timeout_ms : 0,
        .clock = &clock_,
        .deps = deps};
    info.row.last_attempt = attempt;
    info.row.state = NodeState::kInProgress;
    info.row.updated_at_ms = now;
    states_[t].state = TaskState::kInProgress;
    batch_.UpsertNode(info.row);
    batch_.UpsertAttempt(AttemptRecord{.run_id = run_.run_id,
                                       .node_id = ref.node_id,
                                       .iteration = ref.iteration,
                                       .attempt = attempt,
                                       .state = AttemptState::kInProgress,
                                       .started_at_ms = now});
    Event("NodeStarted",
          {{"nodeId", ref.node_id}, {"iteration", ref.iteration}, {"attempt", attempt}});
    if (const SandboxSpec* sb = SandboxOf(spec)) {
      Event("SandboxCreated", {{"nodeId", ref.node_id},
                               {"iteration", ref.iteration},
                               {"attempt", attempt},
                               {"kind", spec.mode == TaskMode::kSandbox ? "sandbox" : "command"},
                               {"sandbox", SandboxToJson(*sb)}});
    }
    // Static values have no side effects: their start rides in the same
    // transaction as their result. Everything else records the start first, so
    // a crash mid-attempt is seen on resume as an abandoned attempt.
    if (spec.mode != TaskMode::kStatic) SMITHERS_RETURN_IF_ERROR(Flush());

    InFlight f{.task = t,
               .node_id = ref.node_id,
               .iteration = ref.iteration,
               .attempt = attempt,
               .output = spec.output,
               .started_at_ms = now,
               .cache_key = cache_key,
               .beat_mono = clock_.MonotonicMs(),
               .beat_wall = now,
               .beat_event_mono = clock_.MonotonicMs(),
               .heartbeat_timeout_ms = HeartbeatTimeoutMs(spec, opts_)};
    if (!deps_missing.empty()) {
      Json e = engine::ErrorJson("DEPS_MISSING", "Task \"" + ref.node_id + "\": " + deps_missing);
      return Complete(f, {.ok = false, .error = std::move(e), .retryable = false});
    }
    Executor* ex = ExecutorFor(spec.mode);
    if (ex == nullptr) {
      return Complete(f, {.ok = false,
                          .error = engine::ErrorJson("AGENT_CONFIG_INVALID",
                                                     "no executor for agent tasks is configured"),
                          .retryable = false});
    }
    Result<std::unique_ptr<Execution>> exec = ex->Start(spec, ai);
    if (!exec.ok()) {
      return Complete(f, {.ok = false,
                          .error = engine::ErrorJson("TASK_START_FAILED", exec.status().message()),
                          .retryable = exec.status().code() == StatusCode::kUnavailable});
    }
    f.exec = std::move(exec).value();
    std::optional<AttemptOutcome> done = f.exec->Poll();
    const bool reported = ReportedEvents(f);
    if (done) return Complete(f, std::move(*done));
    // What it reported as it started (SandboxShipped) is durable before it
    // runs on: a crash from here on finds the record.
    if (reported) SMITHERS_RETURN_IF_ERROR(Flush());
    in_flight_.push_back(std::move(f));
    return Status::Ok();
  }

  // Looks `key` up. A hit that has not expired and still matches the output
  // schema is committed as a finished, cached attempt (the executor is not
  // called); anything else is a CacheMiss, and the task runs.
  Result<bool> TryCacheHit(int t, const std::string& key) {
    const core::TaskRef& ref = plan_->tasks()[t];
    const TaskSpec& spec = ref.node->task;
    int64_t now = clock_.NowMs();
    Result<std::optional<CacheEntry>> got = store_.GetCache(key);
    std::string miss;
    if (!got.ok()) {
      if (got.status().code() != StatusCode::kDataLoss) return got.status();
      miss = "invalid";  // the payload is not JSON; the row is replaced on success
    } else if (!got->has_value()) {
      miss = "absent";
    } else if (spec.cache->ttl_ms > 0 && now - (*got)->created_at_ms >= spec.cache->ttl_ms) {
      miss = "expired";
    } else if ((*got)->output_table != spec.output ||
               !base::CheckJsonValueDepth((*got)->payload, base::MaxJsonDepth()).ok() ||
               !schema::Validate(wf_.outputs.at(spec.output), (*got)->payload).empty()) {
      miss = "invalid";
    }
    Json ev = {{"nodeId", ref.node_id}, {"iteration", ref.iteration}, {"cacheKey", key}};
    if (!miss.empty()) {
      ev["reason"] = miss;
      Event("CacheMiss", std::move(ev));
      return false;
    }
    NodeInfo& info = node(t);
    int attempt = ++info.row.last_attempt;
    Event("CacheHit", std::move(ev));
    InFlight f{.task = t,
               .node_id = ref.node_id,
               .iteration = ref.iteration,
               .attempt = attempt,
               .output = spec.output,
               .started_at_ms = now,
               .cache_key = key,
               .cached = true};
    SMITHERS_RETURN_IF_ERROR(Complete(f, {.ok = true, .output = std::move((*got)->payload)}));
    return true;
  }

  // Notes a sign of life of `f` (TaskHeartbeat at most once per heartbeat
  // interval) and runs the watchdog: an attempt silent for longer than its
  // heartbeat timeout is cancelled and fails with TASK_HEARTBEAT_TIMEOUT.
  // True when it queued an event.
  bool Heartbeat(InFlight& f, bool alive, int64_t mono) {
    if (alive) {
      f.beat_mono = mono;
      f.beat_wall = clock_.NowMs();
      f.beat_unreported = true;
    }
    if (f.beat_unreported && mono - f.beat_event_mono >= opts_.heartbeat_interval_ms) {
      f.beat_unreported = false;
      f.beat_event_mono = mono;
      Event("TaskHeartbeat", {{"nodeId", f.node_id},
                              {"iteration", f.iteration},
                              {"attempt", f.attempt},
                              {"hasData", false},
                              {"dataSizeBytes", 0},
                              {"intervalMs", opts_.heartbeat_interval_ms}});
      if (SandboxOf(plan_->tasks()[f.task].node->task) != nullptr) {
        Event("SandboxHeartbeat",
              {{"nodeId", f.node_id}, {"iteration", f.iteration}, {"attempt", f.attempt}});
      }
      return true;
    }
    if (f.heartbeat_timeout_ms > 0 && !f.heartbeat_timed_out &&
        mono - f.beat_mono > f.heartbeat_timeout_ms) {
      f.heartbeat_timed_out = true;
      f.exec->Cancel("no heartbeat for " + std::to_string(mono - f.beat_mono) + " ms");
      Event("TaskHeartbeatTimeout", {{"nodeId", f.node_id},
                                     {"iteration", f.iteration},
                                     {"attempt", f.attempt},
                                     {"lastHeartbeatAtMs", f.beat_wall},
                                     {"timeoutMs", f.heartbeat_timeout_ms}});
      return true;
    }
    return false;
  }

  // The events `f` reported while it runs (Execution::TakeEvents), stamped
  // with its node, iteration and attempt; false when there were none.
  bool ReportedEvents(const InFlight& f) {
    std::vector<std::pair<std::string, Json>> events = f.exec->TakeEvents();
    for (auto& [type, payload] : events) {
      Json p = {{"nodeId", f.node_id}, {"iteration", f.iteration}, {"attempt", f.attempt}};
      if (payload.is_object()) p.update(payload);
      Event(type, std::move(p));
    }
    return !events.empty();
  }

  // A NodeOutput event for redacted `text`; false (no event) when empty.
  bool OutputEvent(const InFlight& f, std::string text) {
    if (text.empty()) return false;
    Event("NodeOutput", {{"nodeId", f.node_id},
                         {"iteration", f.iteration},
                         {"attempt", f.attempt},
                         {"stream", "stdout"},
                         {"text", std::move(text)}});
    return true;
  }

  Result<bool> PollInFlight() {
    bool any = false;
    bool wrote = false;
    int64_t mono = clock_.MonotonicMs();
    for (InFlight& f : in_flight_) {
      std::string taken = f.exec->TakeOutput();
      bool alive = f.exec->TakeActivity() || !taken.empty();
      wrote = OutputEvent(f, f.output_redactor.Push(taken)) || wrote;
      wrote = ReportedEvents(f) || wrote;
      wrote = Heartbeat(f, alive, mono) || wrote;
    }
    if (wrote) SMITHERS_RETURN_IF_ERROR(Flush());
    for (size_t i = 0; i < in_flight_.size();) {
      std::optional<AttemptOutcome> o = in_flight_[i].exec->Poll();
      if (!o) {
        ++i;
        continue;
      }
      InFlight f = std::move(in_flight_[i]);
      in_flight_.erase(in_flight_.begin() + static_cast<long>(i));
      OutputEvent(f, f.output_redactor.Push(f.exec->TakeOutput()) + f.output_redactor.Finish());
      ReportedEvents(f);
      SMITHERS_RETURN_IF_ERROR(Complete(f, std::move(*o)));
      any = true;
    }
    return any;
  }

  // Records the end of an attempt: output + finished, or failed (+ retry).
  Status Complete(const InFlight& f, AttemptOutcome o) {
    int64_t now = clock_.NowMs();
    NodeInfo& info = nodes_[NodeKey(f.node_id, f.iteration)];
    const core::TaskRef& ref = plan_->tasks()[f.task];
    const TaskSpec& spec = ref.node->task;
    // Before anything recurses over what the task returned (redaction,
    // validation, the store's serialization, the next render's Lua tables).
    const int max_depth = base::MaxJsonDepth();
    if (o.ok) {
      if (Status d = base::CheckJsonValueDepth(o.output, max_depth, "the output"); !d.ok()) {
        o = {.ok = false,
             .error = engine::ErrorJson("INVALID_OUTPUT", d.message()),
             .retryable = spec.mode != TaskMode::kStatic};
      }
    }
    if (!base::CheckJsonValueDepth(o.error, max_depth).ok()) {
      o.error = engine::ErrorJson("INVALID_OUTPUT", "the task's error nests too deep to keep");
    }
    if (!base::CheckJsonValueDepth(o.meta, max_depth).ok()) o.meta = Json::object();
    if (f.heartbeat_timed_out && !o.ok) {
      Json e = engine::ErrorJson(
          "TASK_HEARTBEAT_TIMEOUT",
          "no heartbeat for more than " + std::to_string(f.heartbeat_timeout_ms) + " ms");
      e["lastHeartbeatAtMs"] = f.beat_wall;
      e["staleForMs"] = now - f.beat_wall;
      o.error = std::move(e);
      o.retryable = true;
    }
    if (o.ok && !f.output.empty()) {
      auto v = schema::Validate(wf_.outputs.at(f.output), o.output);
      if (!v.empty()) {
        Json e = engine::ErrorJson("INVALID_OUTPUT", "output does not match schema \"" + f.output +
                                                         "\": " + schema::FormatViolations(v));
        o = {.ok = false, .error = e, .retryable = spec.mode != TaskMode::kStatic};
      }
    }
    // Validated, then redacted (known secret values, key shapes), whatever
    // the mode: the redacted row is what is stored, cached and read by
    // downstream tasks. SecretRedacted names the fields, never the values.
    if (o.ok) {
      std::vector<std::string> fields;
      base::RedactJsonInPlace(o.output, &fields);
      if (!fields.empty()) {
        if (fields.size() > 50) fields.resize(50);
        Event("SecretRedacted", {{"nodeId", f.node_id},
                                 {"iteration", f.iteration},
                                 {"attempt", f.attempt},
                                 {"in", "output"},
                                 {"fields", fields}});
      }
    }
    AttemptRecord a{.run_id = run_.run_id,
                    .node_id = f.node_id,
                    .iteration = f.iteration,
                    .attempt = f.attempt,
                    .started_at_ms = f.started_at_ms,
                    .finished_at_ms = now,
                    .cached = f.cached};
    if (o.meta.is_object()) {
      for (const auto& [k, v] : o.meta.items()) a.meta[k] = base::RedactJson(v);
    }
    if (o.error.is_object()) base::RedactJsonInPlace(o.error);
    Json ev = {{"nodeId", f.node_id}, {"iteration", f.iteration}, {"attempt", f.attempt}};
    for (auto& [type, payload] : o.events) {
      Json p = ev;
      if (payload.is_object()) p.update(payload);
      Event(type, std::move(p));
    }
    if (o.ok && !o.review.is_null() && !spec.review) {
      o = {.ok = false,
           .error = engine::ErrorJson("REVIEW_UNSUPPORTED",
                                      "the task's result asks for a review and the task has no "
                                      "review settings"),
           .retryable = false};
    }
    // A sandbox's end: what it saw (the limit that ended it, the egress
    // attempts), or why it could not start. A Sandbox task's executor
    // reports its own.
    if (spec.mode == TaskMode::kCommand && spec.command.sandbox) {
      Json sev = ev;
      for (const char* k : {"limitReached", "egressAttempts"}) {
        if (a.meta.contains("sandbox") && a.meta["sandbox"].contains(k)) {
          sev[k] = a.meta["sandbox"][k];
        }
      }
      if (!o.ok) sev["error"] = o.error.is_object() ? o.error.value("code", "") : "";
      Event(o.ok ? "SandboxCompleted" : "SandboxFailed", sev);
    }
    if (o.ok && !o.review.is_null()) {
      // Reviewed before it counts: the attempt ends without an output, the
      // task waits for the decision (its approval's request is the review)
      // and an approval hands the attempt to its executor's Accept.
      a.state = AttemptState::kFinished;
      a.meta["review"] = "requested";
      batch_.UpsertAttempt(a);
      info.wait_started_at_ms = now;
      info.review_request = std::move(o.review);
      SMITHERS_RETURN_IF_ERROR(BeginWait(f.task));
      info.review_request = Json();
      if (states_[f.task].state == TaskState::kWaiting) return Status::Ok();
      return InternalError("the review of " + f.node_id + " did not begin");
    }
    if (o.ok) {
      a.state = AttemptState::kFinished;
      if (f.cached) {
        ev["cached"] = true;
        a.meta["cacheKey"] = f.cache_key;
      } else if (!f.cache_key.empty()) {
        // Only a successful attempt is cached, in the commit of its output.
        batch_.PutCache(CacheEntry{.cache_key = f.cache_key,
                                   .created_at_ms = now,
                                   .workflow_name = run_.workflow_name,
                                   .node_id = f.node_id,
                                   .output_table = f.output,
                                   .schema_sig = schema::Hash(wf_.outputs.at(f.output)),
                                   .payload = o.output});
      }
      info.row.state = NodeState::kFinished;
      if (!f.output.empty()) {
        batch_.PutOutput(OutputRecord{.run_id = run_.run_id,
                                      .node_id = f.node_id,
                                      .iteration = f.iteration,
                                      .output_table = f.output,
                                      .payload = o.output,
                                      .created_at_ms = now});
        if (reads_.Contains(outputs_, Ctx::OutputKeyView{f.output, f.node_id})) {
          need_render_ = true;
        }
        outputs_[{f.output, f.node_id}][f.iteration] = o.output;
      }
      batch_.UpsertAttempt(a);
      info.row.updated_at_ms = now;
      batch_.UpsertNode(info.row);
      states_[f.task].state = TaskState::kFinished;
      Event("NodeFinished", ev);
      // The output, the node and the attempt land together: after this commit
      // the task is never executed again for this run.
      return Flush();
    }
    if (o.error.is_object() && o.error.value("code", "") == "TASK_CANCELLED") {
      // Stopped by the engine (another task failed the run): cancelled, not
      // failed, like the tasks of a cancelled run.
      a.state = AttemptState::kCancelled;
      a.error = o.error;
      info.row.state = NodeState::kCancelled;
      info.row.updated_at_ms = now;
      states_[f.task].state = TaskState::kCancelled;
      batch_.UpsertAttempt(a);
      batch_.UpsertNode(info.row);
      ev["reason"] = o.error.value("message", "");
      Event("NodeCancelled", ev);
      return Flush();
    }
    info.failures++;
    a.state = AttemptState::kFailed;
    a.error = o.error;
    last_error_[NodeKey(f.node_id, f.iteration)] = o.error;
    ev["error"] = o.error;
    bool retry = o.retryable && info.failures <= spec.retries;
    if (retry) {
      info.retry_at_ms = now + RetryDelayMs(spec.retry_policy, info.failures);
      a.meta["retryAtMs"] = info.retry_at_ms;
      info.row.state = NodeState::kPending;
      states_[f.task] = {TaskState::kPending, info.retry_at_ms};
    } else {
      info.row.state = NodeState::kFailed;
      states_[f.task].state = TaskState::kFailed;
    }
    info.row.updated_at_ms = now;
    batch_.UpsertAttempt(a);
    batch_.UpsertNode(info.row);
    Event("NodeFailed", ev);
    if (retry) {
      Event("NodeRetrying", {{"nodeId", f.node_id},
                             {"iteration", f.iteration},
                             {"attempt", f.attempt + 1},
                             {"retryAtMs", info.retry_at_ms}});
    }
    return Flush();
  }

  void SetState(int t, NodeState state, const std::string& event, Json extra) override {
    const core::TaskRef& ref = plan_->tasks()[t];
    NodeInfo& info = node(t);
    info.row.state = state;
    info.row.updated_at_ms = clock_.NowMs();
    info.wait = engine::WaitKindOf(waits_, state);
    states_[t].state = core::TaskStateOf(state);
    batch_.UpsertNode(info.row);
    extra["nodeId"] = ref.node_id;
    extra["iteration"] = ref.iteration;
    Event(event, std::move(extra));
  }

  void CancelInFlight(const std::string& reason) {
    for (auto& f : in_flight_) f.exec->Cancel(reason);
  }

  // Waits for cancelled attempts to end and records them.
  Status DrainInFlight() {
    while (!in_flight_.empty()) {
      SMITHERS_ASSIGN_OR_RETURN(bool any, PollInFlight());
      if (!any) WaitForActivity(0);
    }
    return Status::Ok();
  }

  // ---- waits (the kinds: waits.h) ----

  // Task `t` is about to start: the first kind that applies begins its
  // wait (one commit); none (an approved gate): the task runs.
  Status BeginWait(int t) {
    for (auto& kind : waits_) {
      SMITHERS_ASSIGN_OR_RETURN(bool began, kind->Begin(*this, t));
      if (began) return Status::Ok();
    }
    return Status::Ok();
  }

  // Ends every wait whose decision, signal or time has come. True when any
  // task changed state.
  Result<bool> CheckWaits() {
    bool changed = false;
    next_wait_wake_ms_ = 0;
    for (auto& kind : waits_) kind->StartCheck();
    for (size_t i = 0; i < states_.size(); ++i) {
      if (states_[i].state != TaskState::kWaiting) continue;
      int t = static_cast<int>(i);
      engine::WaitKind* kind = node(t).wait;
      if (kind == nullptr) continue;
      SMITHERS_ASSIGN_OR_RETURN(bool ended, kind->Check(*this, t));
      changed = changed || ended;
    }
    return changed;
  }

  // ---- WaitHost: what the wait kinds do in the run ----

  const WorkflowDefinition& workflow() const override { return wf_; }
  const std::string& run_id() const override { return run_.run_id; }
  Store& store() override { return store_; }
  Clock& clock() override { return clock_; }
  WriteBatch& batch() override { return batch_; }
  const core::TaskRef& task(int t) const override { return plan_->tasks()[t]; }
  NodeInfo& node(int t) override {
    const core::TaskRef& ref = plan_->tasks()[t];
    return nodes_[NodeKey(ref.node_id, ref.iteration)];
  }
  void CheckSoon() override { check_waits_now_ = true; }

  void NoteWake(int64_t at_ms) override {
    if (next_wait_wake_ms_ == 0 || at_ms < next_wait_wake_ms_) next_wait_wake_ms_ = at_ms;
  }

  Status ReportCommitted(const std::string& type) override {
    if (!opts_.on_event) return Status::Ok();
    SMITHERS_ASSIGN_OR_RETURN(auto events, store_.ListEvents(run_.run_id, last_seq_seen_, 1000));
    for (const auto& e : events) {
      if (e.type == type) opts_.on_event(e);
    }
    return Status::Ok();
  }

  AttemptOutcome AcceptReview(int t) override {
    const core::TaskRef& ref = plan_->tasks()[t];
    Executor* exec = ExecutorFor(ref.node->task.mode);
    if (exec == nullptr) {
      return {.ok = false,
              .error = engine::ErrorJson("REVIEW_UNSUPPORTED",
                                         "no executor for this task's mode can accept its result"),
              .retryable = false};
    }
    AttemptInfo ai{.run_id = run_.run_id,
                   .node_id = ref.node_id,
                   .iteration = ref.iteration,
                   .attempt = node(t).row.last_attempt,
                   .clock = &clock_};
    return exec->Accept(ref.node->task, ai);
  }

  // Records the end of a wait as the end of its attempt (`output` "" = the
  // task finishes without an output row).
  Status CompleteWait(int t, AttemptOutcome o, const std::string& output) override {
    const core::TaskRef& ref = plan_->tasks()[t];
    NodeInfo& info = node(t);
    InFlight f{.task = t,
               .node_id = ref.node_id,
               .iteration = ref.iteration,
               .attempt = info.row.last_attempt,
               .output = output,
               .started_at_ms = info.wait_started_at_ms};
    info.wait = nullptr;
    info.wake_at_ms = 0;
    return Complete(f, std::move(o));
  }

  // Nothing can run until a wait ends: the run becomes waiting-* and this
  // process lets go of it (resume or `smithers supervise` picks it up).
  Result<RunResult> Park() {
    RunResult r{.run_id = run_.run_id};
    size_t first_kind = waits_.size();  // the first kind (MakeWaitKinds' order) waiting
    for (size_t t = 0; t < states_.size(); ++t) {
      if (states_[t].state != TaskState::kWaiting) continue;
      const core::TaskRef& ref = plan_->tasks()[t];
      const NodeInfo& info = node(static_cast<int>(t));
      if (info.wait == nullptr) continue;
      Json w = {{"nodeId", ref.node_id}, {"iteration", ref.iteration}, {"kind", info.wait->name()}};
      info.wait->Describe(*this, static_cast<int>(t), w);
      for (size_t k = 0; k < first_kind; ++k) {
        if (waits_[k].get() == info.wait) first_kind = k;
      }
      r.waiting.push_back(std::move(w));
    }
    // Park runs only while a task waits.
    RunStatus status =
        first_kind < waits_.size() ? waits_[first_kind]->parked_status() : RunStatus::kWaitingTimer;
    RunStatus previous = run_.status;
    run_.status = status;
    run_.runtime_owner_id = "";
    run_.heartbeat_at_ms = clock_.NowMs();
    batch_.UpsertRun(run_);
    Event("RunStatusChanged", {{"status", status}, {"previous", previous}});
    SMITHERS_RETURN_IF_ERROR(Flush());
    // A cancel that came in while we parked: finish it (unless `smithers
    // cancel` already did).
    SMITHERS_ASSIGN_OR_RETURN(RunRecord latest, store_.GetRun(run_.run_id));
    if (latest.cancel_requested_at_ms != 0) {
      SMITHERS_ASSIGN_OR_RETURN(RunStatus st, CancelRun(store_, run_.run_id, clock_));
      r.status = st;
      r.waiting = Json::array();
    } else {
      r.status = status;
    }
    SMITHERS_ASSIGN_OR_RETURN(r.outputs, CollectOutputs(store_, run_.run_id));
    return r;
  }

  // ---- ending ----

  Result<RunResult> StopCancelled() {
    CancelInFlight("run cancelled");
    // Waiting tasks are cancelled with the run.
    for (size_t t = 0; t < states_.size(); ++t) {
      if (states_[t].state != TaskState::kWaiting) continue;
      const core::TaskRef& ref = plan_->tasks()[t];
      NodeInfo& info = node(static_cast<int>(t));
      if (info.wait != nullptr && info.wait->has_attempt()) {
        batch_.UpsertAttempt(
            AttemptRecord{.run_id = run_.run_id,
                          .node_id = ref.node_id,
                          .iteration = ref.iteration,
                          .attempt = info.row.last_attempt,
                          .state = AttemptState::kCancelled,
                          .started_at_ms = info.wait_started_at_ms,
                          .finished_at_ms = clock_.NowMs(),
                          .error = engine::ErrorJson("TASK_CANCELLED", "run cancelled")});
      }
      SetState(static_cast<int>(t), NodeState::kCancelled, "NodeCancelled",
               {{"reason", "run cancelled"}});
    }
    while (!in_flight_.empty()) {
      for (size_t i = 0; i < in_flight_.size();) {
        if (in_flight_[i].exec->Poll()) {
          InFlight& f = in_flight_[i];
          batch_.UpsertAttempt(
              AttemptRecord{.run_id = run_.run_id,
                            .node_id = f.node_id,
                            .iteration = f.iteration,
                            .attempt = f.attempt,
                            .state = AttemptState::kCancelled,
                            .started_at_ms = f.started_at_ms,
                            .finished_at_ms = clock_.NowMs(),
                            .error = engine::ErrorJson("TASK_CANCELLED", "run cancelled")});
          SetState(f.task, NodeState::kCancelled, "NodeCancelled", {{"reason", "run cancelled"}});
          in_flight_.erase(in_flight_.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
      if (!in_flight_.empty()) WaitForActivity(0);
    }
    return Finish(RunStatus::kCancelled, nullptr);
  }

  Result<RunResult> FailRun(Json error) { return Finish(RunStatus::kFailed, std::move(error)); }

  // The graceful stop's end (RunOptions::stop): attempts still in flight are
  // stopped and left as a crash leaves them (resume records them abandoned
  // and retries them); the run keeps its status and loses its owner, so any
  // process may resume it now instead of after the stale threshold.
  Result<RunResult> Release() {
    CancelInFlight("the process is stopping");
    while (!in_flight_.empty()) {
      for (size_t i = 0; i < in_flight_.size();) {
        if (in_flight_[i].exec->Poll()) {
          in_flight_.erase(in_flight_.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
      if (!in_flight_.empty()) WaitForActivity(0);
    }
    run_.runtime_owner_id = "";
    run_.heartbeat_at_ms = clock_.NowMs();
    batch_.UpsertRun(run_);
    Event("RunReleased", {{"status", run_.status}});
    SMITHERS_RETURN_IF_ERROR(Flush());
    return UnavailableError("run \"" + run_.run_id +
                            "\" released: the process is stopping; any process may resume it");
  }

  Result<RunResult> Finish(RunStatus status, Json error) {
    if (!resumed_finished_) {
      run_.status = status;
      run_.error = error;
      run_.finished_at_ms = clock_.NowMs();
      run_.runtime_owner_id = "";
      batch_.UpsertRun(run_);
      if (status == RunStatus::kFinished) Event("RunFinished", {});
      if (status == RunStatus::kFailed) Event("RunFailed", {{"error", error}});
      if (status == RunStatus::kCancelled) Event("RunCancelled", {});
      SMITHERS_RETURN_IF_ERROR(Flush());
    }
    RunResult r{.run_id = run_.run_id, .status = status, .error = std::move(error)};
    SMITHERS_ASSIGN_OR_RETURN(r.outputs, CollectOutputs(store_, run_.run_id));
    return r;
  }

  // ---- writes ----

  void Event(const std::string& type, Json payload) override {
    if (payload.is_null()) payload = Json::object();  // `{}` in C++ is null
    // Every payload passes the redactor (errors, outputs of NodeOutput, approval
    // requests built from data); numbers are never touched.
    base::RedactJsonInPlace(payload);
    batch_.AppendEvent(run_.run_id, type, std::move(payload), clock_.NowMs());
  }

  // The run's first commit also records who launched or resumed it.
  void AuditFirstCommit(const char* action) {
    if (!opts_.audit) return;
    pending_audit_ = *opts_.audit;
    pending_audit_->run_id = pending_audit_->target = run_.run_id;
    if (pending_audit_->action.empty()) pending_audit_->action = action;
  }

  Status Flush() override {
    if (batch_.empty()) return Status::Ok();
    Result<std::vector<int64_t>> seqs = std::vector<int64_t>();
    if (pending_audit_) {
      Status audited = store_.Audited(*pending_audit_, [&] {
        seqs = store_.Commit(batch_);
        return seqs.status();
      });
      pending_audit_.reset();
      if (!audited.ok() && !opts_.resume) {
        batch_.Clear();  // the launch's first commit: nothing of the run exists
        return audited.WithContext("run \"" + run_.run_id + "\" was not started");
      }
      if (!audited.ok()) seqs = audited;
    } else {
      seqs = store_.Commit(batch_);
    }
    if (!seqs.ok()) {
      batch_.Clear();
      CancelInFlight("the store failed");
      return seqs.status().WithContext("run \"" + run_.run_id +
                                       "\" stopped; it can be resumed with --resume");
    }
    if (opts_.on_event) {
      size_t i = 0;
      for (const auto& op : batch_.ops()) {
        if (op.kind != WriteBatch::Op::Kind::kEvent) continue;
        EventRecord e = op.event;
        e.seq = (*seqs)[i++];
        last_seq_seen_ = std::max(last_seq_seen_, e.seq);
        opts_.on_event(e);
      }
    }
    batch_.Clear();
    return Status::Ok();
  }

  const WorkflowDefinition& wf_;
  Store& store_;
  const RunOptions& opts_;
  Clock& clock_;
  std::string owner_;
  std::unique_ptr<Executor> static_exec_, compute_exec_, command_exec_;

  RunRecord run_;
  Json input_;
  Ctx::OutputMap outputs_;
  core::LoopStates loops_;
  std::map<std::string, NodeInfo> nodes_;
  std::vector<AttemptRecord> attempts_in_progress_;
  std::map<std::string, Json> last_error_;
  std::unique_ptr<Node> root_;
  std::unique_ptr<core::PlanTree> plan_;
  Ctx::Reads reads_;
  // Sticky: where each task that ever mounted inside a Loop sits (what
  // lookups resolve ids by); stored in the run's config as "placements".
  Ctx::Placements placements_;
  bool placements_changed_ = false;  // not yet written to the run's config
  // Logical ids with a mounted row -> the commit that last saw them.
  std::unordered_map<std::string, uint64_t, Ctx::StringHash, std::equal_to<>> mounted_ids_;
  uint64_t mount_epoch_ = 0;
  size_t mounted_seen_ = 0;
  std::vector<core::TaskStatus> states_;
  core::ScheduleMemo schedule_memo_;  // settled tasks never become unsettled within a plan
  std::vector<InFlight> in_flight_;
  core::FrameEncoder frames_;
  int64_t frame_no_ = 0;
  std::vector<std::unique_ptr<engine::WaitKind>> waits_ = engine::MakeWaitKinds();
  int64_t next_wait_wake_ms_ = 0;  // earliest timer or wait timeout (0 = none)
  int64_t last_seq_seen_ = -1;     // highest event seq this run committed
  bool check_waits_now_ = false;
  bool need_render_ = false;
  bool cancel_seen_ = false;
  int64_t stop_deadline_ = -1;  // monotonic; set once RunOptions::stop is seen
  bool resumed_finished_ = false;
  std::optional<AuditEntry> pending_audit_;  // written with the next commit
  Json resume_error_;  // set by Resume(): the run cannot go on and fails with this
  WriteBatch batch_;
};

}  // namespace

Status CheckInputHasNoSecrets(const Json& input) {
  std::optional<std::string> field = base::FindSecretShaped(input);
  if (!field) return Status::Ok();
  return InvalidArgumentError("the input's field \"" + *field +
                              "\" holds what looks like a secret (a key or token); inputs are "
                              "stored as they are: pass secrets as references in the task's env "
                              "(docs/engine.md \"Environment and secrets\")");
}

Status CheckRunInput(const WorkflowDefinition& workflow, const Json& input) {
  SMITHERS_RETURN_IF_ERROR(base::CheckJsonValueDepth(input, base::MaxJsonDepth(), "the input"));
  if (!input.is_object()) return InvalidArgumentError("the input must be a JSON object");
  SMITHERS_RETURN_IF_ERROR(CheckInputHasNoSecrets(input));
  if (!workflow.input_schema.is_null()) {
    auto v = schema::Validate(workflow.input_schema, input);
    if (!v.empty()) {
      std::string msg = "input does not match the workflow's input schema:";
      for (const auto& x : v) msg += "\n  " + x.path + ": " + x.message;
      return InvalidArgumentError(msg);
    }
  }
  return Status::Ok();
}

Status CheckWorkflow(const WorkflowDefinition& workflow, const Json& input) {
  if (!workflow.render) return InvalidArgumentError("workflow has no render function");
  for (const auto& [name, s] : workflow.outputs) {
    Status st = schema::CheckSchema(s);
    if (!st.ok()) return st.WithContext("output schema \"" + name + "\"");
  }
  if (!workflow.input_schema.is_null()) {
    Status st = schema::CheckSchema(workflow.input_schema);
    if (!st.ok()) return st.WithContext("input schema");
  }
  if (input.is_null()) return Status::Ok();
  SMITHERS_RETURN_IF_ERROR(CheckRunInput(workflow, input));
  Json in = input;
  Ctx::OutputMap none;
  Ctx ctx("", &in, &none, 0);
  Result<Node> root = workflow.render(ctx);
  if (!root.ok()) return root.status();
  return core::PlanTree::Build(*root, {}, workflow.outputs, workflow.default_approval_owner)
      .status();
}

bool OwnerHoldsRun(const RunRecord& run, int64_t now_ms, int64_t stale_ms) {
  return !run.runtime_owner_id.empty() && !OwnerIsDeadLocalProcess(run.runtime_owner_id) &&
         now_ms - run.heartbeat_at_ms <= stale_ms;
}

Result<std::vector<ResumableRun>> FindResumableRuns(Store& store, const std::string& me,
                                                    int64_t now_ms, int64_t stale_ms) {
  std::vector<ResumableRun> found;
  SMITHERS_ASSIGN_OR_RETURN(std::vector<RunRecord> running,
                            store.ListRuns({.status = RunStatus::kRunning, .limit = 1000}));
  for (RunRecord& run : running) {
    const std::string& owner = run.runtime_owner_id;
    if (owner == me || OwnerHoldsRun(run, now_ms, stale_ms)) continue;
    std::string reason =
        owner.empty() || OwnerIsDeadLocalProcess(owner)
            ? "owner " + (owner.empty() ? std::string("missing") : owner) + " is gone"
            : "no heartbeat from " + owner + " for " +
                  std::to_string(now_ms - run.heartbeat_at_ms) + " ms";
    found.push_back({std::move(run), std::move(reason)});
  }
  SMITHERS_ASSIGN_OR_RETURN(std::vector<RunRecord> waiting,
                            store.ListRuns({.waiting = true, .limit = 1000}));
  for (RunRecord& run : waiting) {
    if (OwnerHoldsRun(run, now_ms, stale_ms)) continue;  // leased right now
    // A run whose waits cannot be read is left for the next sweep.
    Result<std::string> reason = WaitReadyReason(store, run, now_ms);
    if (reason.ok() && !reason->empty()) found.push_back({std::move(run), std::move(*reason)});
  }
  return found;
}

Result<RunStatus> CancelRun(Store& store, const std::string& run_id, Clock& clock) {
  SMITHERS_ASSIGN_OR_RETURN(RunRecord run, store.GetRun(run_id));
  if (run.status == RunStatus::kCancelled) return RunStatus::kCancelled;
  if (run.status == RunStatus::kFinished || run.status == RunStatus::kFailed) {
    return FailedPreconditionError("run \"" + run_id + "\" already " +
                                   std::string(Name(run.status)));
  }
  SMITHERS_RETURN_IF_ERROR(store.RequestCancel(run_id, clock.NowMs()));
  // A live owner stops the run itself. Otherwise nobody will: take the run
  // (compare-and-swap on its owner, so only one canceller wins) and end it.
  for (int tries = 0; tries < 3; ++tries) {
    SMITHERS_ASSIGN_OR_RETURN(run, store.GetRun(run_id));
    if (run.status == RunStatus::kCancelled) return RunStatus::kCancelled;
    if (run.status == RunStatus::kFinished || run.status == RunStatus::kFailed) return run.status;
    const std::string prev = run.runtime_owner_id;
    if (OwnerHoldsRun(run, clock.NowMs())) return run.status;
    Status claimed = store.ClaimRun(run_id, prev, ThisProcessOwnerId(), clock.NowMs());
    if (claimed.code() == StatusCode::kAborted) continue;  // someone else moved first
    SMITHERS_RETURN_IF_ERROR(claimed);
    run.runtime_owner_id = ThisProcessOwnerId();
    SMITHERS_RETURN_IF_ERROR(Run::FinalizeCancel(store, run, clock));
    return RunStatus::kCancelled;
  }
  return AbortedError("run \"" + run_id + "\" changed owner while being cancelled; try again");
}

Result<RunResult> RunWorkflow(const WorkflowDefinition& workflow, Store& store,
                              const RunOptions& options) {
  SMITHERS_RETURN_IF_ERROR(CheckWorkflow(workflow, nullptr));
  Run run(workflow, store, options);
  return run.Execute();
}

Result<RenderedRun> RenderStoredRun(const WorkflowDefinition& workflow, Store& store,
                                    const std::string& run_id) {
  SMITHERS_RETURN_IF_ERROR(CheckWorkflow(workflow, nullptr));
  const RunOptions options;  // Run keeps a reference: it must outlive run.
  Run run(workflow, store, options);
  return run.RenderStored(run_id);
}

}  // namespace smithers
