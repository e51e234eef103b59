// The read methods (scope run:read): health, the workflow catalog, runs,
// their node counts and outputs.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gateway/methods.h"
#include "smithers/engine.h"

namespace smithers::gateway {
namespace {

// Whether `o` is the output of an Approval node (its decision), not the row
// of a task that waited at an approval gate (needsApproval): the node has a
// decided approval and the row is that decision (smithers.approvalDecision).
Result<bool> IsApprovalDecision(Store& store, const OutputRecord& o) {
  SMITHERS_ASSIGN_OR_RETURN(std::vector<ApprovalRecord> rows,
                            store.ListApprovals({.run_id = o.run_id}));
  for (const ApprovalRecord& a : rows) {
    if (a.node_id != o.node_id || a.iteration != o.iteration) continue;
    return a.status != ApprovalStatus::kRequested && o.payload.is_object() &&
           o.payload.contains("approved") &&
           o.payload.value("decidedBy", Json()) == Json(a.decided_by);
  }
  return false;
}

Reply Health(const MethodCall& call) { return call.gw.Health(); }

// The catalog as Smithers' GatewayWorkflowSummary rows: no workflow of a
// folder has a UI or is a system one, so filter.hasUi = true lists none.
Reply ListWorkflows(const MethodCall& call) {
  Gateway& gw = call.gw;
  Result<Json> filter = OptionalObject(call.params, "filter");
  if (!filter.ok()) return BadParam(filter.status());
  Json list = Json::array();
  if (filter->value("hasUi", false)) return Reply::Ok(std::move(list));
  for (const auto& [key, w] : gw.workflows()) {
    Json entry = {{"key", key},
                  {"hasUi", false},
                  {"uiPath", nullptr},
                  {"system", false},
                  {"path", w.path},
                  {"revision", w.revision},
                  {"loadedAtMs", w.loaded_at_ms}};
    if (w.schedule) {
      entry["schedule"] = {{"cronId", "gateway:" + key},
                           {"pattern", w.schedule->cron},
                           {"timeZone", w.schedule->time_zone},
                           {"enabled", w.schedule->enabled}};
    }
    if (!w.error.empty()) entry["error"] = w.error;
    list.push_back(std::move(entry));
  }
  return Reply::Ok(std::move(list));
}

Reply GetRun(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  std::string run_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}})) return *bad;
  Result<RunRecord> run = gw.store().GetRun(run_id);
  if (!run.ok()) return StoreError(run.status(), "RunNotFound");
  Result<std::map<std::string, int64_t>> counts = gw.store().CountNodes(run_id);
  if (!counts.ok()) return StoreError(counts.status(), "RunNotFound");
  Json j = gw.RunSummary(std::move(run).value());
  j["nodeCounts"] = *counts;
  return Reply::Ok(std::move(j));
}

Reply ListRuns(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  Json filter = params.value("filter", Json::object());
  if (!filter.is_object()) return Reply::Err("InvalidRequest", "filter must be an object");
  Result<int64_t> limit = IntParam(filter, "limit", 50, 1, 1000);
  if (!limit.ok()) return Reply::Err("InvalidRequest", limit.status().message());
  Result<int64_t> offset_param = IntParam(filter, "offset", 0, 0, 1000000);
  if (!offset_param.ok()) return Reply::Err("InvalidRequest", offset_param.status().message());
  int offset = static_cast<int>(*offset_param);
  Result<std::optional<std::string>> status = OptionalString(filter, "status");
  if (!status.ok()) return BadParam(status.status());
  Result<RunFilter> f = RunFilterForStatus(status->value_or(""), static_cast<int>(*limit) + offset);
  if (!f.ok()) return BadParam(f.status());
  std::string workflow = filter.value("workflow", "");
  Result<std::vector<RunRecord>> runs = gw.store().ListRuns(*f);
  if (!runs.ok()) return StoreError(runs.status(), "RunNotFound");
  Json list = Json::array();
  int skipped = 0;
  for (RunRecord& r : *runs) {
    bool named = r.workflow_name == workflow;
    Json j = gw.RunSummary(std::move(r));
    if (!workflow.empty() && j["workflowKey"] != workflow && !named) continue;
    if (skipped++ < offset) continue;
    list.push_back(std::move(j));
  }
  return Reply::Ok(std::move(list));
}

Reply GetNodeOutput(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Caller& caller = call.caller;
  const Json& params = call.params;
  std::string run_id, node_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}, {"nodeId", &node_id}})) return *bad;
  Result<int64_t> iteration_param = IntParam(params, "iteration", -1, 0, INT32_MAX);
  if (!iteration_param.ok()) {
    return Reply::Err("InvalidRequest", iteration_param.status().message());
  }
  Result<std::vector<NodeRecord>> nodes = gw.store().ListNodes(run_id);
  if (!nodes.ok()) return StoreError(nodes.status(), "RunNotFound");
  if (nodes->empty() && !gw.store().GetRun(run_id).ok()) {
    return Reply::Err("RunNotFound", "no run " + run_id);
  }
  const NodeRecord* node = nullptr;
  bool want_latest = *iteration_param < 0;
  int iteration = static_cast<int>(*iteration_param);
  for (const NodeRecord& n : *nodes) {
    if (n.node_id != node_id) continue;
    if (want_latest ? (node == nullptr || n.iteration > node->iteration)
                    : n.iteration == iteration) {
      node = &n;
    }
  }
  if (node == nullptr)
    return Reply::Err("NodeNotFound", "no node " + node_id + " in run " + run_id);
  Json out = {{"runId", run_id},
              {"nodeId", node_id},
              {"iteration", node->iteration},
              {"state", node->state},
              {"mounted", node->mounted}};
  if (node->state == NodeState::kFailed) {
    out["status"] = "failed";
    return Reply::Ok(out);
  }
  Result<std::vector<OutputRecord>> outputs = gw.store().ListOutputs(run_id);
  if (!outputs.ok()) return StoreError(outputs.status(), "RunNotFound");
  for (const OutputRecord& o : *outputs) {
    if (o.node_id == node_id && o.iteration == node->iteration) {
      // An Approval node's output is its decision: approval content.
      if (!MaySee(caller.scopes, "output.approvalDecision")) {
        Result<bool> decision = IsApprovalDecision(gw.store(), o);
        if (!decision.ok()) return StoreError(decision.status(), "RunNotFound");
        if (*decision) {
          std::string scope(ContentRequiredScope("output.approvalDecision"));
          std::string why = "the output of " + node_id + " is an approval decision (scope " +
                            scope + " reads it)";
          return Reply::Err("Forbidden", why, {{"requiredScope", scope}});
        }
      }
      out["status"] = "produced";
      out["row"] = o.payload;
      out["outputTable"] = o.output_table;
      return Reply::Ok(out);
    }
  }
  out["status"] = "pending";
  out["row"] = nullptr;
  return Reply::Ok(out);
}

// Smithers' RunTokenUsageEvent rows of a run: one per agent an attempt asked
// (the attempt's meta.agents, as the agent executor records them), in the
// order the attempts started. Cache and reasoning tokens are not counted
// apart (0).
Reply ListRunTokenUsage(const MethodCall& call) {
  Gateway& gw = call.gw;
  std::string run_id;
  if (auto bad = ReadRequired(call.params, {{"runId", &run_id}})) return *bad;
  Result<RunRecord> run = gw.store().GetRun(run_id);
  if (!run.ok()) return StoreError(run.status(), "RunNotFound");
  Result<std::vector<AttemptRecord>> attempts = gw.store().ListAttempts(run_id);
  if (!attempts.ok()) return StoreError(attempts.status(), "RunNotFound");
  Json events = Json::array();
  for (const AttemptRecord& a : *attempts) {
    const Json agents = a.meta.is_object() ? a.meta.value("agents", Json::array()) : Json();
    if (!agents.is_array()) continue;
    for (const Json& agent : agents) {
      if (!agent.is_object()) continue;
      events.push_back(
          {{"nodeId", a.node_id},
           {"iteration", a.iteration},
           {"attempt", a.attempt},
           {"model", agent.value("model", "")},
           {"agent", agent.value("kind", "")},
           {"inputTokens", agent.value("inputTokens", int64_t{0})},
           {"outputTokens", agent.value("outputTokens", int64_t{0})},
           {"cacheReadTokens", 0},
           {"cacheWriteTokens", 0},
           {"reasoningTokens", 0},
           {"timestampMs", a.finished_at_ms != 0 ? a.finished_at_ms : a.started_at_ms}});
    }
  }
  return Reply::Ok({{"runId", run_id}, {"events", std::move(events)}});
}

// The run's sandboxed tasks (_smithers_sandboxes; docs/gateway.md
// "listSandboxes"), by sandbox id and iteration.
Reply ListSandboxes(const MethodCall& call) {
  Gateway& gw = call.gw;
  std::string run_id;
  if (auto bad = ReadRequired(call.params, {{"runId", &run_id}})) return *bad;
  Result<RunRecord> run = gw.store().GetRun(run_id);
  if (!run.ok()) return StoreError(run.status(), "RunNotFound");
  Result<std::vector<SandboxRecord>> rows = gw.store().ListSandboxes(run_id);
  if (!rows.ok()) return StoreError(rows.status(), "RunNotFound");
  Json out = Json::array();
  for (const SandboxRecord& r : *rows) out.push_back(SandboxRecordJson(r));
  return Reply::Ok({{"runId", run_id}, {"sandboxes", std::move(out)}});
}

}  // namespace

namespace {

// The audit log, oldest first (docs/gateway.md "listAudit"): a page of at
// most `limit` rows after `afterSeq`; `nextAfterSeq` continues it.
Reply ListAudit(const MethodCall& call) {
  const Json& params = call.params;
  AuditFilter filter;
  for (auto [key, into] : {std::pair{"runId", &filter.run_id}, {"actor", &filter.actor}}) {
    Result<std::optional<std::string>> v = OptionalString(params, key);
    if (!v.ok()) return BadParam(v.status());
    *into = v->value_or("");
  }
  Result<int64_t> since = IntParam(params, "sinceMs", 0, 0, INT64_MAX);
  Result<int64_t> after = IntParam(params, "afterSeq", 0, 0, INT64_MAX);
  Result<int64_t> limit = IntParam(params, "limit", 100, 1, 1000);
  for (const Result<int64_t>* r : {&since, &after, &limit}) {
    if (!r->ok()) return Reply::Err("InvalidRequest", r->status().message());
  }
  filter.since_ms = *since;
  filter.after_seq = *after;
  filter.limit = static_cast<int>(*limit);
  Result<std::vector<AuditRecord>> rows = call.gw.store().ListAudit(filter);
  if (!rows.ok()) return StoreError(rows.status(), "NotFound");
  Json out = Json::array();
  for (const AuditRecord& r : *rows) out.push_back(AuditRecordJson(r));
  return Reply::Ok(
      {{"rows", std::move(out)}, {"nextAfterSeq", rows->empty() ? *after : rows->back().seq}});
}

}  // namespace

Reply Gateway::Health() {
  return Reply::Ok({{"ok", true},
                    {"protocol", kProtocolVersion},
                    {"features", Json::array({"streaming", "runs"})},
                    {"stateVersion", state_version_},
                    {"uptimeMs", clock_.NowMs() - started_at_ms_},
                    {"identity", Identity()},
                    {"workflowsLoaded", workflows_.size()},
                    {"workflowsTotal", workflows_.size()}});
}

std::span<const Method> ReadMethods() {
  static const Method kRows[] = {
      {.name = "health", .scope = "run:read", .handler = Health},
      {.name = "listWorkflows", .scope = "run:read", .handler = ListWorkflows},
      {.name = "getRun", .scope = "run:read", .handler = GetRun},
      {.name = "listRuns", .scope = "run:read", .handler = ListRuns},
      {.name = "getNodeOutput", .scope = "run:read", .handler = GetNodeOutput},
      {.name = "listRunTokenUsage", .scope = "run:read", .handler = ListRunTokenUsage},
      {.name = "listSandboxes", .scope = "run:read", .handler = ListSandboxes},
      {.name = "listAudit", .scope = "audit:read", .handler = ListAudit},
  };
  return kRows;
}

}  // namespace smithers::gateway
