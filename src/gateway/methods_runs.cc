// The run methods (scope run:write): launch, resume and cancel a run. The
// runs themselves are the run host's (run_host.cc); launchRun and resumeRun
// reply once the run's thread has loaded its module and committed.
#include <cstdint>
#include <string>
#include <utility>

#include "base/hash.h"
#include "gateway/methods.h"
#include "smithers/engine.h"

namespace smithers::gateway {
namespace {

constexpr int64_t kLaunchKeyTtlMs = 24LL * 3600 * 1000;  // Smithers keeps a key 24 h

// Whose idempotency keys a caller's are: its token's, else its identity's.
std::string LaunchKeyScope(const Caller& caller) {
  return caller.via + ":" + (caller.token_id.empty() ? caller.user_id : caller.token_id);
}

// launchRun's options.idempotencyKey: the run the caller's first launch with
// the key started (within 24 h), as that launch replied, or nullopt when this
// launch takes the key. A launch that started no run
// (its process died in between) leaves a row whose run does not exist: the
// key is taken over.
Result<std::optional<Reply>> UseLaunchKey(Gateway& gw, const Caller& caller, const std::string& key,
                                          const std::string& run_id, const std::string& workflow) {
  const int64_t now = gw.clock().NowMs();
  LaunchKey want{.scope = LaunchKeyScope(caller),
                 .key = key,
                 .run_id = run_id,
                 .workflow = workflow,
                 .created_at_ms = now};
  for (int tries = 0; tries < 2; ++tries) {
    SMITHERS_ASSIGN_OR_RETURN(LaunchKey held,
                              gw.store().ClaimLaunchKey(want, now - kLaunchKeyTtlMs));
    // Taken now: the launch goes on (and may still be refused, e.g. for a
    // given runId that exists).
    if (held.run_id == run_id && held.created_at_ms == now) return std::optional<Reply>();
    if (gw.store().GetRun(held.run_id).ok() || gw.active_runs().count(held.run_id) != 0) {
      return std::optional<Reply>(
          Reply::Ok({{"runId", held.run_id}, {"workflow", held.workflow}, {"system", false}}));
    }
    SMITHERS_RETURN_IF_ERROR(gw.store().ReleaseLaunchKey(want.scope, key, held.run_id));
  }
  return AbortedError("idempotency key \"" + key + "\" is being taken by another launch");
}

// The request's checks, on the io thread; the module's load, its check
// against the input and its pinning are the run thread's (StartRun).
void LaunchWithCatalog(Gateway& gw, const Caller& caller, const std::string& key,
                       const Json& params, ReplyFn done) {
  auto it = gw.workflows().find(key);
  if (it == gw.workflows().end()) {
    return done(Reply::Err("WorkflowNotFound", "no workflow \"" + key + "\""));
  }
  Result<Json> options = OptionalObject(params, "options");
  if (!options.ok()) return done(BadParam(options.status()));
  Result<std::optional<std::string>> given_id = OptionalString(params, "runId");
  if (!given_id.ok()) return done(Reply::Err("InvalidRunId", given_id.status().message()));
  if (!given_id->has_value()) given_id = OptionalString(*options, "runId");
  if (!given_id.ok()) {
    return done(Reply::Err("InvalidRunId", "options." + given_id.status().message()));
  }
  // A given id is used as given (an empty one is refused, not replaced).
  std::string run_id = given_id->has_value() ? **given_id : base::NewUuid();
  if (!ValidRunId(run_id)) {
    return done(Reply::Err("InvalidRunId", "runId must match ^[a-z0-9_-][a-z0-9_.-]{0,63}$"));
  }
  gw.ReapRuns();  // a launch refused a moment ago does not hold its id
  Result<std::optional<std::string>> idempotency_key = OptionalString(*options, "idempotencyKey");
  if (!idempotency_key.ok()) return done(BadParam(idempotency_key.status()));
  if (idempotency_key->has_value()) {
    const std::string& k = **idempotency_key;
    if (k.empty() || k.size() > 256) {
      return done(Reply::Err("InvalidRequest", "options.idempotencyKey must be 1 to 256 bytes"));
    }
    Result<std::optional<Reply>> first = UseLaunchKey(gw, caller, k, run_id, key);
    if (!first.ok()) return done(StoreError(first.status(), "RunNotFound"));
    if (first->has_value()) return done(std::move(**first));
    // A launch refused from here on frees the key for a retry.
    done = [&gw, scope = LaunchKeyScope(caller), k, run_id, done = std::move(done)](Reply r) {
      if (!r.ok) (void)gw.store().ReleaseLaunchKey(scope, k, run_id);
      done(std::move(r));
    };
  }
  if (gw.store().GetRun(run_id).ok() || gw.active_runs().count(run_id) != 0) {
    return done(Reply::Err("RunExists", "run " + run_id + " already exists (use resumeRun)"));
  }
  Json input;
  if (auto bad = ReadInput(params, &input)) return done(*bad);
  Result<int64_t> max_concurrency = IntParam(*options, "maxConcurrency", 16, 1, 10000);
  if (!max_concurrency.ok()) {
    return done(Reply::Err("InvalidRequest", max_concurrency.status().message()));
  }
  Json auth = {{"triggeredBy", caller.user_id},
               {"role", caller.role},
               {"scopes", caller.scopes},
               {"createdAt", base::FormatIsoTime(gw.clock().NowMs())}};
  Json payload = {{"runId", run_id}, {"workflow", key}, {"system", false}};
  // The run id is taken from here on (active_runs): a second launch of it
  // gets RunExists while this one's module loads.
  gw.StartRun({.run_id = run_id,
               .path = it->second.path,
               .input = std::move(input),
               .auth = std::move(auth),
               .audit = CallerAudit(caller, "run.launch", run_id, run_id, {{"workflow", key}}),
               .launch = true,
               .max_concurrency = static_cast<int>(*max_concurrency)},
              [payload = std::move(payload), done = std::move(done)](Reply started) {
                done(started.ok ? Reply::Ok(payload) : std::move(started));
              });
}

// A workflow the catalog does not know yet may be a file written a moment
// ago: that launch goes on after a catalog scan that started after it
// arrived (on the catalog's thread; nothing here waits for it). A known one
// starts at once (its run's thread loads the file as it is then).
void LaunchRunImpl(Gateway& gw, const Caller& caller, const Json& params, ReplyFn done) {
  std::string key;
  if (auto bad = ReadRequired(params, {{"workflow", &key}})) return done(*bad);
  if (gw.workflows().count(key) != 0) return LaunchWithCatalog(gw, caller, key, params, done);
  gw.RefreshCatalog([&gw, caller, key, params, done = std::move(done)]() mutable {
    LaunchWithCatalog(gw, caller, key, params, std::move(done));
  });
}

void LaunchRun(const MethodCall& call, ReplyFn done) {
  LaunchRunImpl(call.gw, call.caller, call.params, std::move(done));
}

void ResumeRun(const MethodCall& call, ReplyFn done) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  std::string run_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}})) return done(*bad);
  Result<Json> options = OptionalObject(params, "options");
  if (!options.ok()) return done(BadParam(options.status()));
  Result<RunRecord> run = gw.store().GetRun(run_id);
  if (!run.ok()) return done(StoreError(run.status(), "RunNotFound"));
  if (run->status == RunStatus::kFinished || run->status == RunStatus::kFailed) {
    return done(Reply::Ok({{"runId", run_id}, {"status", "already_terminal"}}));
  }
  gw.ReapRuns();  // a thread that just ended does not make the run "running"
  if (gw.active_runs().count(run_id) != 0) {
    return done(Reply::Ok({{"runId", run_id}, {"status", RunStatus::kRunning}}));
  }
  bool force = options->value("force", false);
  const std::string& owner = run->runtime_owner_id;
  if (OwnerHoldsRun(*run, gw.clock().NowMs()) && !force) {
    return done(Reply::Err("Busy", "run " + run_id + " is owned by live process " + owner));
  }
  Status claimed = gw.store().ClaimRun(run_id, owner, ThisProcessOwnerId(), gw.clock().NowMs());
  if (!claimed.ok()) return done(StoreError(claimed, "RunNotFound"));
  // Replied once the resumed run committed (or ended, or kStartWaitMs after
  // its module loaded): a client may read it at once.
  gw.StartRun({.run_id = run_id,
               .path = run->workflow_path,
               .audit = CallerAudit(call.caller, "run.resume", run_id, run_id, {{"force", force}}),
               .resume = true,
               .force = force,
               .claim_from = ThisProcessOwnerId()},
              [run_id, done = std::move(done)](const Reply&) {
                done(Reply::Ok({{"runId", run_id}, {"status", "resume_requested"}}));
              });
}

Reply CancelRunMethod(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  std::string run_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}})) return *bad;
  Result<RunStatus> status =
      AuditedValue<RunStatus>(gw.store(), CallerAudit(call.caller, "run.cancel", run_id, run_id),
                              [&] { return CancelRun(gw.store(), run_id, gw.clock()); });
  if (!status.ok()) return StoreError(status.status(), "RunNotFound");
  gw.Wake();
  // `status` is Smithers' literal (the cancel is accepted); `runStatus` says
  // whether the run is cancelled already (it was not running) or is
  // stopping its tasks.
  return Reply::Ok({{"runId", run_id},
                    {"status", "cancelling"},
                    {"runStatus", *status == RunStatus::kCancelled ? "cancelled" : "cancelling"}});
}

// Deletes a run that is over with everything that depends on it
// (docs/operations.md "Deleting runs"); `force` cancels one that is not
// first. A run still running here or in another process is asked to stop
// and the reply is Busy: the caller deletes again once it is cancelled.
Reply DeleteRunMethod(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  std::string run_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}})) return *bad;
  auto force = params.find("force");
  if (force != params.end() && !force->is_boolean()) {
    return Reply::Err("InvalidRequest", "force must be a boolean");
  }
  const bool forced = force != params.end() && force->get<bool>();
  gw.ReapRuns();  // a thread that just ended does not hold the run
  if (gw.active_runs().count(run_id) != 0) {
    if (!forced) {
      return Reply::Err("RunNotOver",
                        "run " + run_id + " is running; cancel it first, or delete with force");
    }
    Result<RunStatus> status = AuditedValue<RunStatus>(
        gw.store(), CallerAudit(call.caller, "run.cancel", run_id, run_id, {{"forDelete", true}}),
        [&] { return CancelRun(gw.store(), run_id, gw.clock()); });
    if (!status.ok()) return StoreError(status.status(), "RunNotFound");
    gw.Wake();
    return Reply::Err("Busy", "run " + run_id +
                                  " is running in this Gateway: it was asked to stop; delete it "
                                  "again once it is cancelled");
  }
  const AuditEntry audit = CallerAudit(call.caller, "run.delete", run_id);
  Result<DeletedRun> deleted = DeleteRun(gw.store(), run_id, forced, gw.clock(), &audit);
  if (!deleted.ok()) {
    switch (deleted.status().code()) {
      case StatusCode::kFailedPrecondition:
        return Reply::Err("RunNotOver", deleted.status().message());
      case StatusCode::kUnavailable: return Reply::Err("Busy", deleted.status().message());
      default: return StoreError(deleted.status(), "RunNotFound");
    }
  }
  gw.Wake();
  return Reply::Ok({{"runId", run_id},
                    {"deleted", true},
                    {"status", std::string(Name(deleted->run.status))},
                    {"bundleDirs", deleted->bundle_dirs},
                    {"warnings", deleted->warnings}});
}

}  // namespace

void LaunchRunThen(Gateway& gw, const Caller& caller, const Json& params, ReplyFn done) {
  LaunchRunImpl(gw, caller, params, std::move(done));
}

std::span<const Method> RunMethods() {
  static const Method kRows[] = {
      {.name = "launchRun",
       .scope = "run:write",
       .auto_subscribe = AutoSubscribe::kFromStart,
       .deferred = LaunchRun},
      {.name = "resumeRun", .scope = "run:write", .deferred = ResumeRun},
      {.name = "cancelRun", .scope = "run:write", .handler = CancelRunMethod},
      {.name = "deleteRun", .scope = "run:admin", .handler = DeleteRunMethod},
  };
  return kRows;
}

}  // namespace smithers::gateway
