#include "gateway/protocol.h"

namespace smithers::gateway {

RequestFrame ParseRequestFrame(std::string_view text, size_t max_bytes) {
  RequestFrame f;
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

}  // namespace smithers::gateway
