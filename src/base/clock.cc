#include "smithers/clock.h"

#include <chrono>

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

}  // namespace

Clock& SystemClock() {
  static RealClock* clock = new RealClock();  // NOLINT: never destroyed, by design.
  return *clock;
}

}  // namespace smithers
