// The run host: the runs this Gateway executes, each on its own thread with
// its own store; the supervisor sweep that resumes runs whose wait is over
// or whose owner is gone; reaping and the graceful stop. A run's module is
// loaded and first rendered on its thread, never on the io thread.
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/gateway_internal.h"
#include "gateway/methods.h"
#include "script/lua_workflow.h"
#include "smithers/engine.h"

namespace smithers::gateway {

namespace {

// The first of a run's first commit, its end and the start wait's timer
// decides the reply; the others find it sent. Used on the io thread only.
struct StartReply {
  ReplyFn fn;
  void Send(Reply r) {
    if (!fn) return;
    ReplyFn once = std::move(fn);
    fn = nullptr;
    once(std::move(r));
  }
};

}  // namespace

void Gateway::StartRun(RunStart start, ReplyFn on_started) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::string run_id = start.run_id;
  if (!start.launch) metrics_.runs_launched++;  // a launch counts once its module is pinned
  // Shared by the thread's posts and the timer's; touched on the io thread only.
  std::shared_ptr<StartReply> reply;
  if (on_started) reply = std::make_shared<StartReply>(StartReply{std::move(on_started)});
  std::thread t([this, start = std::move(start), done, reply]() {
    // From this thread: each reply is posted to the io thread, the first wins.
    auto post = [this, &reply](Reply r, int64_t delay_ms) {
      if (reply) Post([reply, r = std::move(r)]() mutable { reply->Send(std::move(r)); }, delay_ms);
    };
    bool signalled = false;
    auto started = [&]() {
      if (!signalled) post(Reply::Ok(Json::object()), 0);
      signalled = true;
    };
    auto loaded = [&]() { post(Reply::Ok(Json::object()), kStartWaitMs); };
    std::optional<Reply> refused;
    Json end = Execute(start, started, loaded, &refused);
    // The run's store and module are gone: the run is no longer this
    // process's. Only then its end is logged, so whoever sees that line
    // (an operator, a test) sees a run that resumeRun may start again; and
    // only then a launch that never made a run is refused, so the caller
    // may launch that id again at once (ReapRuns finds the thread done).
    done->store(true);
    if (refused) {
      post(std::move(*refused), 0);
    } else {
      started();
    }
    if (!end.is_null()) Log(end);
    Wake();
  });
  active_[run_id] = ActiveRun{.thread = std::move(t), .done = done};
}

Json Gateway::Execute(const RunStart& start, const std::function<void()>& started,
                      const std::function<void()>& loaded, std::optional<Reply>* refused) {
  std::unique_ptr<script::LuaWorkflow> module;
  if (start.launch) {
    // Before the store is opened: a module that does not load, or an input
    // it refuses, is the caller's error, whatever the database does.
    Result<std::unique_ptr<script::LuaWorkflow>> loaded_module =
        script::LoadWorkflowModule(start.path, module_options());
    if (!loaded_module.ok()) {
      *refused = Reply::Err("InvalidInput", loaded_module.status().message());
      return nullptr;
    }
    Status checked = CheckWorkflow((*loaded_module)->definition(), start.input);
    if (!checked.ok()) {
      *refused = Reply::Err("InvalidInput", checked.message());
      return nullptr;
    }
    module = std::move(loaded_module).value();
  }
  loaded();
  Result<std::unique_ptr<Store>> store = open_store_();
  if (!store.ok()) {
    return {{"event", "run.error"}, {"runId", start.run_id}, {"error", store.status().message()}};
  }
  if (start.launch) {
    // Pinned before the run starts: a resume after the file changes runs this code.
    Status pinned = (*store)->PutModuleSource({.revision = module->definition().source_hash,
                                               .path = start.path,
                                               .source = module->source(),
                                               .created_at_ms = clock_.NowMs(),
                                               .siblings = module->siblings()});
    if (!pinned.ok()) {
      *refused = StoreError(pinned, "WorkflowNotFound");
      return nullptr;
    }
    metrics_.runs_launched++;
  }
  if (!module) {
    // A resumed run runs the revision it started with, if it was pinned (the
    // file may have changed since); else the file (the engine refuses a
    // changed source).
    Result<std::unique_ptr<script::LuaWorkflow>> loaded_module =
        InvalidArgumentError("no pinned revision");
    Result<RunRecord> rec = (*store)->GetRun(start.run_id);
    if (rec.ok() && !rec->workflow_hash.empty()) {
      Result<std::optional<ModuleSource>> pinned = (*store)->GetModuleSource(rec->workflow_hash);
      if (pinned.ok() && pinned->has_value()) {
        loaded_module = script::LoadWorkflowModuleSource(start.path, (*pinned)->source,
                                                         (*pinned)->siblings, module_options());
      }
    }
    if (!loaded_module.ok()) {
      loaded_module = script::LoadWorkflowModule(start.path, module_options());
    }
    if (!loaded_module.ok()) {
      return {{"event", "run.error"},
              {"runId", start.run_id},
              {"error", loaded_module.status().message()}};
    }
    module = std::move(loaded_module).value();
  }
  const WorkflowDefinition& wf = module->definition();
  RunOptions ro;
  ro.run_id = start.run_id;
  ro.input = start.input;
  ro.resume = start.resume;
  ro.force = start.force;
  ro.claim_from = start.claim_from;
  ro.max_concurrency = start.max_concurrency;
  ro.clock = &clock_;
  ro.auth = start.auth;
  ro.audit = start.audit;
  ro.stop = &stopping_;
  ro.stop_grace_ms = opts_.stop_grace_ms;
  ro.require_sandbox = opts_.require_sandbox;
  ro.on_event = [this, &started](const EventRecord& e) {
    started();
    if (e.type == "NodeStarted") metrics_.tasks_started++;
    if (e.type == "NodeFinished") metrics_.tasks_finished++;
    if (e.type == "NodeFailed") metrics_.tasks_failed++;
    Wake();
  };
  std::vector<std::unique_ptr<Executor>> keep;
  if (opts_.add_executors) keep = opts_.add_executors(wf, ro);
  Result<RunResult> r = RunWorkflow(wf, **store, ro);
  return {{"event", "run.ended"},
          {"runId", start.run_id},
          {"status", r.ok() ? Json(r->status) : Json("error")},
          {"error", r.ok() ? Json() : Json(r.status().message())}};
}

void Gateway::Post(std::function<void()> fn, int64_t delay_ms) {
  if (post_to_io) return post_to_io(std::move(fn), delay_ms);
  if (delay_ms > 0) return;  // no timers without an io loop: CallForTesting waits for the end
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  posted_cv_.notify_one();
}

void Gateway::Wake() {
  if (!wake_pending_.exchange(true)) request_pump();
}

// Resumes, in this process, runs whose wait is over and runs whose owner is
// gone (this is also the recovery at start-up), and reaps finished threads.
size_t Gateway::ReapRuns() {
  for (auto it = active_.begin(); it != active_.end();) {
    if (it->second.done->load()) {
      it->second.thread.join();
      it = active_.erase(it);
    } else {
      ++it;
    }
  }
  return active_.size();
}

void Gateway::StopRuns() {
  stopping_.store(true);
  for (auto& [id, run] : active_) run.thread.join();
  active_.clear();
}

void Gateway::Supervise() {
  ReapRuns();
  int64_t now = clock_.NowMs();
  (void)store_->EscalateDueApprovals("", now);
  const std::string& me = ThisProcessOwnerId();
  auto resume = [&](const RunRecord& run) {
    if (active_.count(run.run_id) != 0) return;
    if (!store_->ClaimRun(run.run_id, run.runtime_owner_id, me, now).ok()) return;
    Log({{"event", "run.resume"}, {"runId", run.run_id}});
    // Not waited for: the run's thread loads its module and renders.
    StartRun({.run_id = run.run_id,
              .path = run.workflow_path,
              .audit = SystemAudit("run.resume", run.run_id, {{"by", "the Gateway's supervisor"}}),
              .resume = true,
              .claim_from = me});
  };
  Result<std::vector<ResumableRun>> due = FindResumableRuns(*store_, me, now);
  if (!due.ok()) {
    Log({{"event", "supervise.error"}, {"error", due.status().message()}});
    return;
  }
  for (const ResumableRun& r : *due) resume(r.run);
}

}  // namespace smithers::gateway
