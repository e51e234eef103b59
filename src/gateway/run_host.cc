// The run host: the runs this Gateway executes, each on its own thread with
// its own store; the supervisor sweep that resumes runs whose wait is over
// or whose owner is gone; reaping and the graceful stop.
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/gateway_internal.h"
#include "script/lua_workflow.h"
#include "smithers/engine.h"

namespace smithers::gateway {

void Gateway::StartRun(RunStart start, std::unique_ptr<script::LuaWorkflow> module) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto started = std::make_shared<std::promise<void>>();
  std::future<void> first_commit = started->get_future();
  std::string run_id = start.run_id;
  // Raw pointer handed to the thread: the module moves with it and is used
  // from that thread only.
  script::LuaWorkflow* preloaded = module.release();
  std::thread t([this, start = std::move(start), preloaded, done, started]() mutable {
    std::unique_ptr<script::LuaWorkflow> module(preloaded);
    Json end = Execute(start, std::move(module), *started);
    // The run's store and module are gone: the run is no longer this
    // process's. Only then its end is logged, so whoever sees that line
    // (an operator, a test) sees a run that resumeRun may start again.
    done->store(true);
    Log(end);
    Wake();
  });
  active_[run_id] = ActiveRun{.thread = std::move(t), .done = done};
  metrics_.runs_launched++;
  // A client that launches a run may read it at once: wait for its first
  // commit (a few milliseconds), not longer than 5 s.
  first_commit.wait_for(std::chrono::seconds(5));
}

Json Gateway::Execute(const RunStart& start, std::unique_ptr<script::LuaWorkflow> module,
                      std::promise<void>& started) {
  bool signalled = false;
  auto signal = [&]() {
    if (!signalled) started.set_value();
    signalled = true;
  };
  Result<std::unique_ptr<Store>> store = open_store_();
  if (!store.ok()) {
    signal();
    return {{"event", "run.error"}, {"runId", start.run_id}, {"error", store.status().message()}};
  }
  if (!module) {
    // A resumed run runs the revision it started with, if it was pinned (the
    // file may have changed since); else the file (the engine refuses a
    // changed source).
    Result<std::unique_ptr<script::LuaWorkflow>> loaded =
        InvalidArgumentError("no pinned revision");
    Result<RunRecord> rec = (*store)->GetRun(start.run_id);
    if (rec.ok() && !rec->workflow_hash.empty()) {
      Result<std::optional<ModuleSource>> pinned = (*store)->GetModuleSource(rec->workflow_hash);
      if (pinned.ok() && pinned->has_value()) {
        loaded = script::LoadWorkflowModuleSource(start.path, (*pinned)->source,
                                                  (*pinned)->siblings, module_options());
      }
    }
    if (!loaded.ok()) loaded = script::LoadWorkflowModule(start.path, module_options());
    if (!loaded.ok()) {
      signal();
      return {
          {"event", "run.error"}, {"runId", start.run_id}, {"error", loaded.status().message()}};
    }
    module = std::move(loaded).value();
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
  ro.stop = &stopping_;
  ro.stop_grace_ms = opts_.stop_grace_ms;
  ro.on_event = [this, &signal](const EventRecord& e) {
    signal();
    if (e.type == "NodeStarted") metrics_.tasks_started++;
    if (e.type == "NodeFinished") metrics_.tasks_finished++;
    if (e.type == "NodeFailed") metrics_.tasks_failed++;
    Wake();
  };
  std::vector<std::unique_ptr<Executor>> keep;
  if (opts_.add_executors) keep = opts_.add_executors(wf, ro);
  Result<RunResult> r = RunWorkflow(wf, **store, ro);
  signal();
  return {{"event", "run.ended"},
          {"runId", start.run_id},
          {"status", r.ok() ? Json(r->status) : Json("error")},
          {"error", r.ok() ? Json() : Json(r.status().message())}};
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
    StartRun({.run_id = run.run_id, .path = run.workflow_path, .resume = true, .claim_from = me},
             nullptr);
  };
  Result<std::vector<ResumableRun>> due = FindResumableRuns(*store_, me, now);
  if (!due.ok()) {
    Log({{"event", "supervise.error"}, {"error", due.status().message()}});
    return;
  }
  for (const ResumableRun& r : *due) resume(r.run);
}

}  // namespace smithers::gateway
