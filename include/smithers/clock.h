// Clock: the only way Smithers code reads the time. Tests inject a ManualClock
// so that retries, timers and TTLs are deterministic.
#ifndef SMITHERS_CLOCK_H_
#define SMITHERS_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace smithers {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (wall clock).
  virtual int64_t NowMs() const = 0;
  // Milliseconds from an arbitrary origin that never goes backwards.
  virtual int64_t MonotonicMs() const = 0;
};

// The process's real clock. Thread-safe; never destroyed.
Clock& SystemClock();

// A clock that moves only when told. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  int64_t MonotonicMs() const override { return now_ms_.load(); }
  void AdvanceMs(int64_t delta) { now_ms_ += delta; }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace smithers

#endif  // SMITHERS_CLOCK_H_
