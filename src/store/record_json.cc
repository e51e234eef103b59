#include "smithers/store.h"

namespace smithers {

Json RunRecordJson(const RunRecord& r) { return RunRecordJson(RunRecord(r)); }

Json RunRecordJson(RunRecord&& r) {
  Json j = {
      {"runId", std::move(r.run_id)},
      {"workflowName", std::move(r.workflow_name)},
      {"workflowPath", std::move(r.workflow_path)},
      {"workflowHash", std::move(r.workflow_hash)},
      {"status", r.status},
      {"createdAtMs", r.created_at_ms},
      {"startedAtMs", r.started_at_ms},
      {"finishedAtMs", r.finished_at_ms == 0 ? Json() : Json(r.finished_at_ms)},
      {"heartbeatAtMs", r.heartbeat_at_ms},
      {"runtimeOwnerId", r.runtime_owner_id.empty() ? Json() : Json(std::move(r.runtime_owner_id))},
      {"input", std::move(r.input)},
      {"error", std::move(r.error)},
      {"config", std::move(r.config)}};
  if (r.cancel_requested_at_ms != 0) j["cancelRequestedAtMs"] = r.cancel_requested_at_ms;
  return j;
}

Json EventRecordJson(const EventRecord& e) {
  return {{"runId", e.run_id},
          {"seq", e.seq},
          {"timestampMs", e.timestamp_ms},
          {"type", e.type},
          {"payload", e.payload}};
}

Json SandboxRecordJson(const SandboxRecord& r) {
  auto time = [](int64_t ms) { return ms == 0 ? Json() : Json(ms); };
  auto text = [](const std::string& v) { return v.empty() ? Json() : Json(v); };
  auto count = [](int64_t v) { return v < 0 ? Json() : Json(v); };
  return {{"runId", r.run_id},
          {"sandboxId", r.sandbox_id},
          {"iteration", r.iteration},
          {"attempt", r.attempt},
          {"kind", r.kind},
          {"runtime", r.runtime},
          {"status", r.status},
          {"config", r.config},
          {"remoteRunId", text(r.remote_run_id)},
          {"containerId", text(r.container_id)},
          {"bundlePath", text(r.bundle_path)},
          {"requestBytes", count(r.request_bytes)},
          {"bundleBytes", count(r.bundle_bytes)},
          {"patchCount", count(r.patch_count)},
          {"review", text(r.review)},
          {"reviewedBy", text(r.reviewed_by)},
          {"reviewedAtMs", time(r.reviewed_at_ms)},
          {"errorCode", text(r.error_code)},
          {"createdAtMs", time(r.created_at_ms)},
          {"shippedAtMs", time(r.shipped_at_ms)},
          {"heartbeatAtMs", time(r.heartbeat_at_ms)},
          {"completedAtMs", time(r.completed_at_ms)}};
}

Result<RunFilter> RunFilterForStatus(std::string_view text, int limit) {
  RunFilter filter{.limit = limit};
  if (text.empty()) return filter;
  if (text == "waiting") {
    filter.waiting = true;
    return filter;
  }
  filter.status = ParseRunStatus(text);
  if (!filter.status) {
    return InvalidArgumentError("unknown run status \"" + std::string(text) +
                                "\" (running, waiting, waiting-approval, waiting-event, "
                                "waiting-timer, finished, failed, cancelled)");
  }
  return filter;
}

}  // namespace smithers
