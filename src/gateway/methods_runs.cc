// The run methods (scope run:write): launch, resume and cancel a run. The
// runs themselves are the run host's (run_host.cc).
#include <cstdint>
#include <string>
#include <utility>

#include "base/hash.h"
#include "gateway/methods.h"
#include "smithers/engine.h"

namespace smithers::gateway {
namespace {

Reply LaunchRunImpl(Gateway& gw, const Caller& caller, const Json& params) {
  std::string key;
  if (auto bad = ReadRequired(params, {{"workflow", &key}})) return *bad;
  gw.ScanWorkflows();  // a file added a moment ago can be launched at once
  auto it = gw.workflows().find(key);
  if (it == gw.workflows().end())
    return Reply::Err("WorkflowNotFound", "no workflow \"" + key + "\"");
  Result<Json> options = OptionalObject(params, "options");
  if (!options.ok()) return BadParam(options.status());
  Result<std::optional<std::string>> given_id = OptionalString(params, "runId");
  if (!given_id.ok()) return Reply::Err("InvalidRunId", given_id.status().message());
  if (!given_id->has_value()) given_id = OptionalString(*options, "runId");
  if (!given_id.ok()) return Reply::Err("InvalidRunId", "options." + given_id.status().message());
  // A given id is used as given (an empty one is refused, not replaced).
  std::string run_id = given_id->has_value() ? **given_id : base::NewUuid();
  if (!ValidRunId(run_id)) {
    return Reply::Err("InvalidRunId", "runId must match ^[a-z0-9_-][a-z0-9_.-]{0,63}$");
  }
  if (gw.store().GetRun(run_id).ok() || gw.active_runs().count(run_id) != 0) {
    return Reply::Err("RunExists", "run " + run_id + " already exists (use resumeRun)");
  }
  Json input;
  if (auto bad = ReadInput(params, &input)) return *bad;
  Result<std::unique_ptr<script::LuaWorkflow>> module =
      script::LoadWorkflowModule(it->second.path, gw.module_options());
  if (!module.ok()) return Reply::Err("InvalidInput", module.status().message());
  Status checked = CheckWorkflow((*module)->definition(), input);
  if (!checked.ok()) return Reply::Err("InvalidInput", checked.message());
  // Pinned before the run starts: a resume after the file changes runs this code.
  Status pinned = gw.store().PutModuleSource({.revision = (*module)->definition().source_hash,
                                              .path = it->second.path,
                                              .source = (*module)->source(),
                                              .created_at_ms = gw.clock().NowMs(),
                                              .siblings = (*module)->siblings()});
  if (!pinned.ok()) return StoreError(pinned, "WorkflowNotFound");
  Result<int64_t> max_concurrency = IntParam(*options, "maxConcurrency", 16, 1, 10000);
  if (!max_concurrency.ok()) {
    return Reply::Err("InvalidRequest", max_concurrency.status().message());
  }
  Json auth = {{"triggeredBy", caller.user_id},
               {"role", caller.role},
               {"scopes", caller.scopes},
               {"createdAt", base::FormatIsoTime(gw.clock().NowMs())}};
  gw.StartRun({.run_id = run_id,
               .path = it->second.path,
               .input = std::move(input),
               .auth = auth,
               .max_concurrency = static_cast<int>(*max_concurrency)},
              std::move(module).value());
  return Reply::Ok({{"runId", run_id}, {"workflow", key}, {"system", false}});
}

Reply LaunchRun(const MethodCall& call) { return LaunchRunImpl(call.gw, call.caller, call.params); }

Reply ResumeRun(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  std::string run_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}})) return *bad;
  Result<Json> options = OptionalObject(params, "options");
  if (!options.ok()) return BadParam(options.status());
  Result<RunRecord> run = gw.store().GetRun(run_id);
  if (!run.ok()) return StoreError(run.status(), "RunNotFound");
  if (run->status == RunStatus::kFinished || run->status == RunStatus::kFailed) {
    return Reply::Ok({{"runId", run_id}, {"status", "already_terminal"}});
  }
  gw.ReapRuns();  // a thread that just ended does not make the run "running"
  if (gw.active_runs().count(run_id) != 0)
    return Reply::Ok({{"runId", run_id}, {"status", RunStatus::kRunning}});
  bool force = options->value("force", false);
  const std::string& owner = run->runtime_owner_id;
  if (OwnerHoldsRun(*run, gw.clock().NowMs()) && !force) {
    return Reply::Err("Busy", "run " + run_id + " is owned by live process " + owner);
  }
  Status claimed = gw.store().ClaimRun(run_id, owner, ThisProcessOwnerId(), gw.clock().NowMs());
  if (!claimed.ok()) return StoreError(claimed, "RunNotFound");
  gw.StartRun({.run_id = run_id,
               .path = run->workflow_path,
               .resume = true,
               .force = force,
               .claim_from = ThisProcessOwnerId()},
              nullptr);
  return Reply::Ok({{"runId", run_id}, {"status", "resume_requested"}});
}

Reply CancelRunMethod(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  std::string run_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}})) return *bad;
  Result<RunStatus> status = CancelRun(gw.store(), run_id, gw.clock());
  if (!status.ok()) return StoreError(status.status(), "RunNotFound");
  gw.Wake();
  return Reply::Ok({{"runId", run_id},
                    {"status", *status == RunStatus::kCancelled ? "cancelled" : "cancelling"}});
}

}  // namespace

Reply LaunchRunSync(Gateway& gw, const Caller& caller, const Json& params) {
  return LaunchRunImpl(gw, caller, params);
}

std::span<const Method> RunMethods() {
  static const Method kRows[] = {
      {.name = "launchRun",
       .scope = "run:write",
       .auto_subscribe = AutoSubscribe::kFromStart,
       .handler = LaunchRun},
      {.name = "resumeRun", .scope = "run:write", .handler = ResumeRun},
      {.name = "cancelRun", .scope = "run:write", .handler = CancelRunMethod},
  };
  return kRows;
}

}  // namespace smithers::gateway
