#include "gateway/protocol.h"

#include "base/json_limits.h"

namespace smithers::gateway {

RequestFrame ParseRequestFrame(std::string_view text, size_t max_bytes, int max_value_depth) {
  RequestFrame f;
  // Before the parser and anything that copies what it built (recursively).
  // A frame too deep is not parsed at all, not even for its id.
  Status depth =
      base::CheckJsonDepth(text, max_value_depth, "a value in the request", kRequestEnvelopeDepth);
  if (!depth.ok()) {
    f.error_code = text.size() > max_bytes ? "PayloadTooLarge" : "InvalidInput";
    f.error_message = text.size() > max_bytes ? "frame over " + std::to_string(max_bytes) + " bytes"
                                              : depth.message();
    return f;
  }
  // Frames up to the transport's hard limit are parsed even when over
  // `max_bytes`, so an oversized request still gets an answer with its id.
  Json frame = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (frame.is_object()) {
    auto id = frame.find("id");
    if (id != frame.end() && (id->is_string() || id->is_number())) f.id = *id;
  }
  if (text.size() > max_bytes) {
    f.error_code = "PayloadTooLarge";
    f.error_message = "frame over " + std::to_string(max_bytes) + " bytes";
    return f;
  }
  if (frame.is_discarded() || !frame.is_object()) {
    f.error_code = "InvalidRequest";
    f.error_message = "the frame is not a JSON object";
    return f;
  }
  auto type = frame.find("type");
  auto method = frame.find("method");
  if (type == frame.end() || *type != "req" || method == frame.end() || !method->is_string() ||
      f.id.is_null()) {
    f.error_code = "InvalidRequest";
    f.error_message = "expected {type: \"req\", id, method, params}";
    return f;
  }
  f.method = method->get<std::string>();
  auto params = frame.find("params");
  if (params != frame.end() && !params->is_null()) {
    if (!params->is_object()) {
      f.error_code = "InvalidRequest";
      f.error_message = "params must be a JSON object";
      return f;
    }
    f.params = std::move(*params);
  }
  f.ok = true;
  return f;
}

ConnectRequest ParseConnect(const Json& params) {
  ConnectRequest c;
  auto refuse = [&](const char* code, const char* message) {
    c.error_code = code;
    c.error_message = message;
    return c;
  };
  if (!params.is_object()) return refuse("INVALID_REQUEST", "connect params must be an object");
  auto min = params.find("minProtocol");
  auto max = params.find("maxProtocol");
  if (min == params.end() || max == params.end() || !min->is_number_integer() ||
      !max->is_number_integer()) {
    return refuse("INVALID_REQUEST", "connect needs minProtocol and maxProtocol");
  }
  if (*min > kProtocolVersion || *max < kProtocolVersion) {
    return refuse("PROTOCOL_UNSUPPORTED", "this Gateway speaks protocol 1");
  }
  auto auth = params.find("auth");
  if (auth != params.end() && !auth->is_null()) {
    if (!auth->is_object()) return refuse("INVALID_REQUEST", "auth must be an object");
    auto token = auth->find("token");
    if (token != auth->end() && !token->is_null()) {
      if (!token->is_string()) return refuse("INVALID_REQUEST", "auth.token must be a string");
      c.token = token->get<std::string>();
    }
  }
  c.ok = true;
  return c;
}

WireEventName SmithersEventName(std::string_view type) {
  struct Row {
    std::string_view type, event, status;
  };
  static constexpr Row kRows[] = {
      {"NodePending", "node.pending", ""},
      {"NodeStarted", "node.started", ""},
      {"NodeFinished", "node.finished", ""},
      {"NodeFailed", "node.failed", ""},
      {"NodeSkipped", "node.skipped", ""},
      {"NodeCancelled", "node.cancelled", ""},
      {"NodeRetrying", "node.retrying", ""},
      {"NodeOutput", "task.output", ""},
      {"TaskHeartbeat", "task.heartbeat", ""},
      {"ApprovalRequested", "approval.requested", ""},
      {"ApprovalGranted", "approval.decided", ""},
      {"ApprovalDenied", "approval.decided", ""},
      {"RunFinished", "run.completed", "finished"},
      {"RunFailed", "run.completed", "failed"},
      {"RunCancelled", "run.completed", "cancelled"},
  };
  for (const Row& r : kRows) {
    if (r.type == type)
      return {.event = r.event, .run_completed = !r.status.empty(), .status = r.status};
  }
  return {.event = type};
}

}  // namespace smithers::gateway
