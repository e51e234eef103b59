// The approval and signal methods (scopes approval:read, approval:submit,
// signal:submit): list approvals, decide one, send a run a signal.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "base/json_limits.h"
#include "gateway/methods.h"
#include "smithers/engine.h"

namespace smithers::gateway {
namespace {

// An approval as Smithers' GatewayApprovalSummary (its request's title and
// summary, the run's workflow key), with our own fields beside.
Json ApprovalJson(const ApprovalRecord& a, const std::string& workflow_key) {
  auto text = [&](const char* key) {
    return a.request.is_object() && a.request.contains(key) && a.request[key].is_string()
               ? a.request[key]
               : Json();
  };
  return {{"runId", a.run_id},
          {"workflowKey", workflow_key.empty() ? Json() : Json(workflow_key)},
          {"requestTitle", text("title")},
          {"requestSummary", text("summary")},
          {"nodeId", a.node_id},
          {"iteration", a.iteration},
          {"status", a.status},
          {"requestedAtMs", a.requested_at_ms},
          {"owner", a.owner},
          {"fallbackOwner", a.fallback_owner},
          {"request", a.request},
          {"decidedAtMs", a.decided_at_ms == 0 ? Json() : Json(a.decided_at_ms)},
          {"decidedBy", a.decided_by.empty() ? Json() : Json(a.decided_by)},
          {"note", a.note},
          {"allowedUsers", a.allowed_users},
          {"allowedScopes", a.allowed_scopes},
          {"decidedVia", a.decided_via.empty() ? Json() : Json(a.decided_via)},
          {"override", a.decided_override}};
}

Reply ListApprovals(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  Json filter = params.value("filter", Json::object());
  if (!filter.is_object()) return Reply::Err("InvalidRequest", "filter must be an object");
  ApprovalFilter f{.run_id = filter.value("runId", "")};
  Result<std::optional<std::string>> workflow = OptionalString(filter, "workflow");
  if (!workflow.ok()) return BadParam(workflow.status());
  Result<int64_t> limit = IntParam(filter, "limit", 1000, 1, 1000);
  if (!limit.ok()) return Reply::Err("InvalidRequest", limit.status().message());
  Result<std::optional<std::string>> status = OptionalString(filter, "status");
  if (!status.ok()) return BadParam(status.status());
  std::string wanted = status->value_or("requested");
  if (wanted != "any") {
    f.status = ParseApprovalStatus(wanted);
    if (!f.status) {
      return Reply::Err("InvalidRequest",
                        "filter.status must be requested, approved, denied or "
                        "any, not \"" +
                            wanted + "\"");
    }
  }
  Result<std::vector<ApprovalRecord>> rows = gw.store().ListApprovals(f);
  if (!rows.ok()) return StoreError(rows.status(), "RunNotFound");
  Json list = Json::array();
  std::map<std::string, std::string> keys;  // run id -> workflow key
  for (const ApprovalRecord& a : *rows) {
    if (std::cmp_greater_equal(list.size(), *limit)) break;
    auto key = keys.find(a.run_id);
    if (key == keys.end()) {
      Result<RunRecord> run = gw.store().GetRun(a.run_id);
      if (!run.ok()) return StoreError(run.status(), "RunNotFound");
      key = keys.emplace(a.run_id, gw.WorkflowKey(run->workflow_path)).first;
    }
    if (workflow->has_value() && key->second != **workflow) continue;
    list.push_back(ApprovalJson(a, key->second));
  }
  return Reply::Ok(std::move(list));
}

Reply SubmitApproval(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Caller& caller = call.caller;
  const Json& params = call.params;
  std::string run_id, node_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}, {"nodeId", &node_id}})) return *bad;
  Json decision = params.value("decision", Json::object());
  bool approved = params.contains("approved") ? params.at("approved").get<bool>()
                                              : decision.value("approved", false);
  std::string note = params.value("note", decision.value("note", ""));
  Result<int64_t> iteration = IntParam(params, "iteration", 0, 0, INT32_MAX);
  if (!iteration.ok()) return Reply::Err("InvalidRequest", iteration.status().message());
  auto by = params.find("decidedBy");
  if (by != params.end() && !by->is_null() && !by->is_string()) {
    return Reply::Err("InvalidRequest", "decidedBy must be a string");
  }
  std::string decided_by = by != params.end() && by->is_string() ? by->get<std::string>() : "";
  auto ov = params.find("override");
  if (ov != params.end() && !ov->is_null() && !ov->is_boolean()) {
    return Reply::Err("InvalidRequest", "override must be a boolean");
  }
  const bool override = ov != params.end() && ov->is_boolean() && ov->get<bool>();
  // The actor is the authenticated identity; only --auth none, where nobody
  // is authenticated, lets the request name it (and records that).
  Decider who{.actor = caller.user_id, .via = caller.via, .override = override};
  if (caller.via == "unauthenticated") {
    if (decided_by.empty()) {
      return Reply::Err("InvalidRequest",
                        "under --auth none a decision must name its decider in decidedBy (it is "
                        "recorded as unauthenticated)");
    }
    who.actor = decided_by;
  } else {
    if (!decided_by.empty() && decided_by != caller.user_id) {
      return Reply::Err("Forbidden", "decidedBy is taken from your credentials (" + caller.user_id +
                                         "); it cannot name " + decided_by);
    }
    who.holds_scope = [&caller](const std::string& scope) {
      return ScopesAllow(caller.scopes, "", scope);
    };
  }
  if (override && !ScopesAllow(caller.scopes, "", "run:admin")) {
    return Reply::Err("Forbidden", "override: true requires scope run:admin",
                      {{"requiredScope", "run:admin"}});
  }
  const AuditEntry audit = CallerAudit(caller, "approval.decide", run_id, run_id,
                                       {{"nodeId", node_id},
                                        {"iteration", *iteration},
                                        {"approved", approved},
                                        {"decidedBy", who.actor},
                                        {"override", override},
                                        {"note", note}});
  Result<ApprovalRecord> a = AuditedValue<ApprovalRecord>(gw.store(), audit, [&] {
    return DecideApproval(gw.store(),
                          {.run_id = run_id,
                           .node_id = node_id,
                           .iteration = static_cast<int>(*iteration),
                           .approved = approved,
                           .note = note},
                          who, gw.clock().NowMs());
  });
  if (!a.ok()) {
    if (a.status().code() == StatusCode::kFailedPrecondition) {
      return Reply::Err("AlreadyDecided", a.status().message());
    }
    return StoreError(a.status(), "NodeNotFound");
  }
  Json decided = {{"runId", run_id},
                  {"nodeId", node_id},
                  {"iteration", *iteration},
                  {"approved", approved},
                  {"decidedBy", a->decided_by},
                  {"via", a->decided_via},
                  {"override", a->decided_override}};
  Json line = decided;
  line["event"] = "approval.decided";
  gw.Log(line);
  gw.Supervise();  // resume the run now, not at the next sweep
  gw.Wake();
  return Reply::Ok(std::move(decided));
}

Reply SubmitSignal(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Caller& caller = call.caller;
  const Json& params = call.params;
  std::string run_id = StringParam(params, "runId");
  std::string name, corr;
  for (const char* key : {"signalName", "name", "correlationKey", "correlationId"}) {
    Result<std::optional<std::string>> v = OptionalString(params, key);
    if (!v.ok()) return BadParam(v.status());
    std::string& into = key[0] == 'c' ? corr : name;
    if (into.empty() && v->has_value()) into = **v;
  }
  if (run_id.empty() || name.empty()) {
    return Reply::Err("InvalidRequest", "runId and signalName are required");
  }
  Json payload = params.contains("payload") ? params.at("payload") : Json::object();
  if (Status depth = base::CheckJsonValueDepth(payload, base::MaxJsonDepth(), "the payload");
      !depth.ok()) {
    return TooDeep(depth);
  }
  const AuditEntry audit = CallerAudit(caller, "signal.send", run_id, run_id,
                                       {{"signalName", name}, {"correlationId", corr}});
  Result<SignalRecord> sig = AuditedValue<SignalRecord>(gw.store(), audit, [&] {
    return gw.store().AppendSignal({.run_id = run_id,
                                    .name = name,
                                    .correlation_id = corr,
                                    .payload = std::move(payload),
                                    .received_at_ms = gw.clock().NowMs(),
                                    .received_by = caller.user_id});
  });
  if (!sig.ok()) return StoreError(sig.status(), "RunNotFound");
  gw.Supervise();
  gw.Wake();
  return Reply::Ok({{"runId", run_id},
                    {"signalName", name},
                    {"correlationId", corr.empty() ? Json() : Json(corr)},
                    {"seq", sig->seq}});
}

// The unified diff a Sandbox's worker returned (docs/gateway.md
// "getSandboxDiff"): the attempt under review, the latest, or `attempt`.
// A diff past kMaxDiffBytes is cut there (truncated: true; `smithers diff`
// prints it whole).
constexpr size_t kMaxDiffBytes = size_t{4} << 20;

Reply GetSandboxDiff(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  std::string run_id, node_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}, {"nodeId", &node_id}})) return *bad;
  Result<int64_t> iteration = IntParam(params, "iteration", 0, 0, INT32_MAX);
  if (!iteration.ok()) return Reply::Err("InvalidRequest", iteration.status().message());
  Result<int64_t> attempt = IntParam(params, "attempt", 0, 0, INT32_MAX);
  if (!attempt.ok()) return Reply::Err("InvalidRequest", attempt.status().message());
  if (!gw.options().sandbox_diff) {
    return Reply::Err("Unavailable", "this Gateway cannot read Sandbox bundles");
  }
  Result<AttemptRecord> pick = SandboxBundleAttempt(
      gw.store(), run_id, node_id, static_cast<int>(*iteration), static_cast<int>(*attempt));
  if (!pick.ok()) {
    if (pick.status().code() == StatusCode::kFailedPrecondition) {
      return Reply::Err("InvalidRequest", pick.status().message());
    }
    return StoreError(pick.status(),
                      gw.store().GetRun(run_id).ok() ? "NodeNotFound" : "RunNotFound");
  }
  const Json& sb = pick->meta["sandbox"];
  Result<std::string> diff = gw.options().sandbox_diff(sb["bundle"].get<std::string>());
  if (!diff.ok()) {
    return Reply::Err("Unavailable",
                      "attempt " + std::to_string(pick->attempt) + ": " + diff.status().message());
  }
  const bool truncated = diff->size() > kMaxDiffBytes;
  const int64_t bytes = static_cast<int64_t>(diff->size());
  if (truncated) diff->resize(kMaxDiffBytes);
  return Reply::Ok({{"runId", run_id},
                    {"nodeId", node_id},
                    {"iteration", *iteration},
                    {"attempt", pick->attempt},
                    {"patchCount", sb.value("patches", int64_t{0})},
                    {"applied", sb.value("applied", false)},
                    {"review", pick->meta.value("review", Json())},
                    {"diffBytes", bytes},
                    {"truncated", truncated},
                    {"diff", std::move(*diff)}});
}

}  // namespace

std::span<const Method> ApprovalMethods() {
  static const Method kRows[] = {
      {.name = "listApprovals", .scope = "approval:read", .handler = ListApprovals},
      {.name = "getSandboxDiff", .scope = "approval:read", .handler = GetSandboxDiff},
      {.name = "submitApproval",
       .scope = "approval:submit",
       .auto_subscribe = AutoSubscribe::kFromNow,
       .handler = SubmitApproval},
      {.name = "submitSignal",
       .scope = "signal:submit",
       .auto_subscribe = AutoSubscribe::kFromNow,
       .handler = SubmitSignal},
  };
  return kRows;
}

}  // namespace smithers::gateway
