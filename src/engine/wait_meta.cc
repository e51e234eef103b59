// The waiting attempt's metadata codec (wait_meta.h).
#include "engine/wait_meta.h"

namespace smithers::engine {
namespace {

int64_t IntField(const Json& meta, const char* name) {
  auto it = meta.find(name);
  return it != meta.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

std::string StringField(const Json& meta, const char* name) {
  auto it = meta.find(name);
  return it != meta.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Json EncodeWaitMeta(const WaitMeta& meta) {
  if (meta.event.empty()) return {{"firesAtMs", meta.fires_at_ms}};
  Json j = {{"event", meta.event}, {"correlationId", meta.correlation_id}};
  if (meta.timeout_at_ms > 0) j["timeoutAtMs"] = meta.timeout_at_ms;
  return j;
}

WaitMeta DecodeWaitMeta(const Json& meta) {
  if (!meta.is_object()) return {};
  return {.fires_at_ms = IntField(meta, "firesAtMs"),
          .event = StringField(meta, "event"),
          .correlation_id = StringField(meta, "correlationId"),
          .timeout_at_ms = IntField(meta, "timeoutAtMs")};
}

}  // namespace smithers::engine
