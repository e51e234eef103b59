#include "smithers/store.h"

namespace smithers {

Json RunRecordJson(const RunRecord& r) {
  Json j = {{"runId", r.run_id},
            {"workflowName", r.workflow_name},
            {"workflowPath", r.workflow_path},
            {"workflowHash", r.workflow_hash},
            {"status", r.status},
            {"createdAtMs", r.created_at_ms},
            {"startedAtMs", r.started_at_ms},
            {"finishedAtMs", r.finished_at_ms == 0 ? Json() : Json(r.finished_at_ms)},
            {"heartbeatAtMs", r.heartbeat_at_ms},
            {"runtimeOwnerId", r.runtime_owner_id.empty() ? Json() : Json(r.runtime_owner_id)},
            {"input", r.input},
            {"error", r.error},
            {"config", r.config}};
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

}  // namespace smithers
