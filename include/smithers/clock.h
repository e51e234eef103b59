// Clock: the only way Smithers code reads the time or waits on it. Tests
// inject a ManualClock so that retries, backoff, heartbeats, timers and TTLs
// are deterministic and run without sleeping.
#ifndef SMITHERS_CLOCK_H_
#define SMITHERS_CLOCK_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

struct pollfd;

namespace smithers {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (wall clock).
  virtual int64_t NowMs() const = 0;
  // Milliseconds from an arbitrary origin that never goes backwards.
  virtual int64_t MonotonicMs() const = 0;
  // Waits until one of `fds` (may be empty) is readable or `timeout_ms` of
  // this clock's time have passed (no limit when negative); poll(2)'s
  // contract otherwise: > 0 when a descriptor is ready, 0 on timeout, < 0 on
  // error. Every wait on time in
  // the engine, the executors and the agents goes through here. The default
  // is poll(2) itself.
  virtual int Wait(pollfd* fds, size_t n, int64_t timeout_ms);
  // Waits `ms` of this clock's time.
  void SleepMs(int64_t ms) { Wait(nullptr, 0, ms); }
};

// The process's real clock. Thread-safe; never destroyed.
Clock& SystemClock();

// A clock that moves only when told (AdvanceMs), or, in virtual time, also
// when code waits on it. Thread-safe.
//
// Without virtual time, Wait waits in real time and the clock stands still.
// In virtual time, Wait looks at the descriptors without blocking and, when
// none is ready, moves the clock by the whole timeout at once: a retry
// backoff, a heartbeat timeout or a timer passes in no real time. Virtual time
// suits code that waits only on time and on descriptors; an execution with
// no descriptor that works in real time (a thread) would see time race ahead.
class ManualClock final : public Clock {
 public:
  enum class Mode { kStill, kVirtual };
  explicit ManualClock(int64_t now_ms, Mode mode = Mode::kStill) : now_ms_(now_ms), mode_(mode) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  int64_t MonotonicMs() const override { return now_ms_.load(); }
  int Wait(pollfd* fds, size_t n, int64_t timeout_ms) override;
  void AdvanceMs(int64_t delta) { now_ms_ += delta; }
  // The time waits moved the clock (virtual time only).
  int64_t waited_ms() const { return waited_ms_.load(); }

 private:
  std::atomic<int64_t> now_ms_;
  const Mode mode_;
  std::atomic<int64_t> waited_ms_{0};
};

}  // namespace smithers

#endif  // SMITHERS_CLOCK_H_
