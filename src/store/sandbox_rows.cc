// _smithers_sandboxes as the projection of a run's Sandbox events
// (docs/sandbox.md "Records"): WriteBatch::AppendEvent adds the row's
// change beside the event, so both commit or neither does, whoever writes
// the event (the engine, a cancel of a run no process holds, a review).
#include <optional>
#include <string>

#include "smithers/store.h"

namespace smithers {
namespace {

std::string Text(const Json& p, const char* key) {
  const auto it = p.find(key);
  return it != p.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t Int(const Json& p, const char* key, int64_t absent) {
  const auto it = p.find(key);
  return it != p.end() && it->is_number_integer() ? it->get<int64_t>() : absent;
}

// A failure's error code: SandboxFailed's `error` is the code (a string) or
// the error object.
std::string ErrorCode(const Json& p) {
  const auto it = p.find("error");
  if (it == p.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return Text(*it, "code");
  return "";
}

bool Cancelled(const std::string& code) {
  return code == "TASK_CANCELLED" || code == "UNMOUNTED" || code == "ATTEMPT_ABANDONED";
}

}  // namespace

std::optional<SandboxRecord> SandboxRowChange(const std::string& run_id, const std::string& type,
                                              const Json& payload, int64_t at_ms) {
  const bool sandbox_event = type.rfind("Sandbox", 0) == 0;
  const bool abandoned = type == "NodeCancelled" && Text(payload, "reason") == "abandoned";
  if ((!sandbox_event && !abandoned) || !payload.is_object()) return std::nullopt;
  SandboxRecord r{.run_id = run_id,
                  .sandbox_id = Text(payload, "nodeId"),
                  .iteration = static_cast<int>(Int(payload, "iteration", 0)),
                  .attempt = static_cast<int>(Int(payload, "attempt", 0))};
  if (r.sandbox_id.empty() || r.attempt <= 0) return std::nullopt;
  if (abandoned) {
    // The process that ran it stopped (a crash): a row still under way is
    // cancelled; a finished one is left as it is (a patch never changes an
    // ended row's status).
    r.status = "cancelled";
    r.error_code = "ATTEMPT_ABANDONED";
    r.completed_at_ms = at_ms;
    return r;
  }
  if (type == "SandboxCreated") {
    const Json& config = payload.contains("sandbox") ? payload["sandbox"] : Json::object();
    r.fresh = true;
    r.kind = Text(payload, "kind");
    if (r.kind.empty()) r.kind = "command";
    r.runtime = config.is_object() ? Text(config, "runtime") : "";
    if (r.runtime.empty()) r.runtime = "bubblewrap";
    r.status = "pending";
    r.config = config;
    r.created_at_ms = at_ms;
  } else if (type == "SandboxShipped") {
    r.status = "shipped";
    r.shipped_at_ms = r.heartbeat_at_ms = at_ms;
    r.bundle_path = Text(payload, "bundlePath");
    r.container_id = Text(payload, "containerId");
    r.request_bytes = Int(payload, "bundleSizeBytes", -1);
  } else if (type == "SandboxHeartbeat") {
    r.heartbeat_at_ms = at_ms;
  } else if (type == "SandboxBundleReceived") {
    r.heartbeat_at_ms = at_ms;
    r.bundle_bytes = Int(payload, "bundleSizeBytes", -1);
    r.patch_count = Int(payload, "patchCount", -1);
    r.remote_run_id = Text(payload, "remoteRunId");
  } else if (type == "SandboxDiffReviewRequested") {
    r.review = "requested";
  } else if (type == "SandboxDiffAccepted" || type == "SandboxDiffRejected") {
    // A person's decision names them (decidedBy); one the Sandbox's props
    // made says which (by: autoAcceptDiffs).
    r.reviewed_by = Text(payload, "decidedBy");
    if (r.reviewed_by.empty()) r.reviewed_by = Text(payload, "by");
    r.reviewed_at_ms = at_ms;
    r.review = "accepted";
    if (type == "SandboxDiffRejected") {
      r.review = "rejected";
      r.status = "failed";
      r.error_code = "SANDBOX_DIFF_REJECTED";
      r.completed_at_ms = at_ms;
    }
  } else if (type == "SandboxCompleted") {
    r.status = "finished";
    r.completed_at_ms = at_ms;
  } else if (type == "SandboxFailed") {
    r.error_code = ErrorCode(payload);
    r.status = Cancelled(r.error_code) ? "cancelled" : "failed";
    r.completed_at_ms = at_ms;
  } else {
    return std::nullopt;
  }
  return r;
}

}  // namespace smithers
