// The waiting attempt's metadata (engine/wait_meta.h): a persisted format,
// so golden JSON text both ways.
#include "engine/wait_meta.h"

#include <gtest/gtest.h>

namespace smithers::engine {
namespace {

TEST(WaitMeta, TimerAndEventWaitsAreGolden) {
  EXPECT_EQ(EncodeWaitMeta({.fires_at_ms = 1796115600000}).dump(),
            R"({"firesAtMs":1796115600000})");
  EXPECT_EQ(EncodeWaitMeta({.event = "ci.done", .correlation_id = "sha-1"}).dump(),
            R"({"correlationId":"sha-1","event":"ci.done"})");
  EXPECT_EQ(EncodeWaitMeta({.event = "ci.done", .timeout_at_ms = 5000}).dump(),
            R"({"correlationId":"","event":"ci.done","timeoutAtMs":5000})");
}

TEST(WaitMeta, DecodeReadsWhatEncodeWrote) {
  WaitMeta timer = DecodeWaitMeta(Json::parse(R"({"firesAtMs":1796115600000})"));
  EXPECT_EQ(timer.fires_at_ms, 1796115600000);
  EXPECT_EQ(timer.WakeAtMs(), 1796115600000);
  EXPECT_TRUE(timer.event.empty());
  WaitMeta ev =
      DecodeWaitMeta(Json::parse(R"({"event":"e","correlationId":"c","timeoutAtMs":42})"));
  EXPECT_EQ(ev.event, "e");
  EXPECT_EQ(ev.correlation_id, "c");
  EXPECT_EQ(ev.timeout_at_ms, 42);
  EXPECT_EQ(ev.WakeAtMs(), 42);
  EXPECT_EQ(DecodeWaitMeta(Json::parse(R"({"event":"e","correlationId":""})")).WakeAtMs(), 0);
}

// A hand-edited or truncated row: defaults, never an exception.
TEST(WaitMeta, FieldsOfAnotherTypeReadAsDefaults) {
  WaitMeta m = DecodeWaitMeta(
      Json::parse(R"({"firesAtMs":"soon","event":7,"correlationId":null,"timeoutAtMs":1.5})"));
  EXPECT_EQ(m.fires_at_ms, 0);
  EXPECT_EQ(m.event, "");
  EXPECT_EQ(m.correlation_id, "");
  EXPECT_EQ(m.timeout_at_ms, 0);
  EXPECT_EQ(DecodeWaitMeta(Json()).WakeAtMs(), 0);
  EXPECT_EQ(DecodeWaitMeta(Json::array({1})).event, "");
}

}  // namespace
}  // namespace smithers::engine
