// Parsing of the Gateway's WebSocket request frames (docs/gateway.md
// "Protocol"), kept free of I/O and of the rest of the Gateway so the fuzz
// target (tests/fuzz/gateway_fuzz.cc) can drive it alone.
#ifndef SMITHERS_GATEWAY_PROTOCOL_H_
#define SMITHERS_GATEWAY_PROTOCOL_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "smithers/json.h"

namespace smithers::gateway {

// A `req` frame, or why the text is not one. `id` is set whenever the text
// carried one, so even a refused request is answered with its id.
struct RequestFrame {
  bool ok = false;
  Json id;  // string or number
  std::string method;
  Json params = Json::object();
  std::string error_code;  // PayloadTooLarge, InvalidRequest
  std::string error_message;
};

// Parses `{type: "req", id, method, params?}`. Text longer than `max_bytes`
// is PayloadTooLarge; anything else malformed is InvalidRequest. Never throws.
RequestFrame ParseRequestFrame(std::string_view text, size_t max_bytes);

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_PROTOCOL_H_
