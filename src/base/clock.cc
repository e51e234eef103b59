#include "smithers/clock.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <limits>

namespace smithers {
namespace {

class RealClock final : public Clock {
 public:
  int64_t NowMs() const override {
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    return duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  int64_t MonotonicMs() const override {
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    return duration_cast<milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
};

// poll(2) for up to `timeout_ms` of real time, without limit when negative
// (a signal may end it early: the callers loop on their own conditions).
int PollFor(pollfd* fds, size_t n, int64_t timeout_ms) {
  const int64_t capped =
      timeout_ms < 0 ? -1 : std::min<int64_t>(timeout_ms, std::numeric_limits<int>::max());
  return poll(fds, n, static_cast<int>(capped));
}

}  // namespace

int Clock::Wait(pollfd* fds, size_t n, int64_t timeout_ms) { return PollFor(fds, n, timeout_ms); }

int ManualClock::Wait(pollfd* fds, size_t n, int64_t timeout_ms) {
  // Without a limit there is no time to move to: only a descriptor ends it.
  if (mode_ == Mode::kStill || timeout_ms < 0) return PollFor(fds, n, timeout_ms);
  int ready = n > 0 ? PollFor(fds, n, 0) : 0;
  if (ready != 0 || timeout_ms <= 0) return ready;
  now_ms_ += timeout_ms;
  waited_ms_ += timeout_ms;
  return 0;
}

Clock& SystemClock() {
  static RealClock* clock = new RealClock();  // NOLINT: never destroyed, by design.
  return *clock;
}

}  // namespace smithers
