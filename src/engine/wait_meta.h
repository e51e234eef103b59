// The metadata of a waiting attempt (_smithers_attempts.meta_json while the
// attempt is `waiting`): what a WaitForEvent or a Timer waits for and until
// when. Written when the wait begins; read when a run resumes and by
// WaitReadyReason (supervisors deciding whether a parked run can go on). One
// codec, so the three agree on the stored format (docs/store_format.md).
#ifndef SMITHERS_ENGINE_WAIT_META_H_
#define SMITHERS_ENGINE_WAIT_META_H_

#include <cstdint>
#include <string>

#include "smithers/json.h"

namespace smithers::engine {

struct WaitMeta {
  int64_t fires_at_ms = 0;  // Timer: when it fires
  // WaitForEvent: the event name, its correlation id ("" = any) and the
  // timeout (0 = none).
  std::string event;
  std::string correlation_id;
  int64_t timeout_at_ms = 0;

  // When the wait ends by time: the timer's fire time or the event's timeout.
  int64_t WakeAtMs() const { return fires_at_ms != 0 ? fires_at_ms : timeout_at_ms; }
};

// A timer's: {"firesAtMs"}. An event wait's: {"event", "correlationId"} and
// "timeoutAtMs" when it has a timeout.
Json EncodeWaitMeta(const WaitMeta& meta);
// Reads what EncodeWaitMeta wrote; a field missing or of another type reads
// as its default (0 or ""): a timer whose time is unreadable is due at once,
// an event wait whose timeout is unreadable has none.
WaitMeta DecodeWaitMeta(const Json& meta);

}  // namespace smithers::engine

#endif  // SMITHERS_ENGINE_WAIT_META_H_
