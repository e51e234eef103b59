// Parsing of the Gateway's WebSocket request frames (docs/gateway.md
// "Protocol"), kept free of I/O and of the rest of the Gateway so the fuzz
// target (tests/fuzz/gateway_fuzz.cc) can drive it alone.
#ifndef SMITHERS_GATEWAY_PROTOCOL_H_
#define SMITHERS_GATEWAY_PROTOCOL_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers::gateway {

// A `req` frame, or why the text is not one. `id` is set whenever the text
// carried one, so even a refused request is answered with its id.
struct RequestFrame {
  bool ok = false;
  Json id;  // string or number
  std::string method;
  Json params = Json::object();
  std::string error_code;  // PayloadTooLarge, InvalidInput (too deep), InvalidRequest
  std::string error_message;
};

// How many levels a request adds around a parameter's value: the frame (or
// the /rpc body) and its params. A request may nest max_json_depth plus
// these; each value in params then max_json_depth (base/json_limits.h).
constexpr int kRequestEnvelopeDepth = 2;

// Parses `{type: "req", id, method, params?}`. Text longer than `max_bytes`
// is PayloadTooLarge; text nesting deeper than `max_value_depth` +
// kRequestEnvelopeDepth levels is InvalidInput, refused before it is parsed
// (no id: nothing of it is read); anything else malformed is InvalidRequest.
// Never throws.
RequestFrame ParseRequestFrame(std::string_view text, size_t max_bytes, int max_value_depth);

// The protocol version this Gateway speaks (SPEC "Gateway", version 1).
constexpr int kProtocolVersion = 1;

// A `connect` request's params, or why they are refused: INVALID_REQUEST
// (not an object, minProtocol/maxProtocol missing or not integers, an auth
// that is not an object or a token that is not a string) or
// PROTOCOL_UNSUPPORTED (the range leaves out kProtocolVersion). The range is
// compared as JSON numbers, so no integer wraps. Never throws.
struct ConnectRequest {
  bool ok = false;
  std::string token;  // auth.token; "" = none (the upgrade's credentials apply)
  std::string error_code;
  std::string error_message;
};
ConnectRequest ParseConnect(const Json& params);

// A run event as a stream sends it: `event` is Smithers' dotted broadcast
// name for the event's type where it has one (NodeStarted -> node.started,
// ApprovalGranted -> approval.decided, RunFinished -> run.completed, ...),
// else the type itself (CacheHit), so every event is named. `run_completed`
// marks the end of a run (RunFinished, RunFailed, RunCancelled), whose
// payload also carries Smithers' {runId, status}: `status` is the status the
// run ended with.
struct WireEventName {
  std::string_view event;
  bool run_completed = false;
  std::string_view status;  // set when run_completed
};
WireEventName SmithersEventName(std::string_view type);

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_PROTOCOL_H_
