// ISO 8601 times and durations, as Timer, supervise and the CLI read them.
#include <gtest/gtest.h>

#include "base/hash.h"

namespace smithers::base {
namespace {

long long Iso(const char* text) {
  long long ms = -1;
  EXPECT_TRUE(ParseIsoTime(text, &ms)) << text;
  return ms;
}

TEST(ParseIsoTime, UtcOffsetsAndFractions) {
  EXPECT_EQ(Iso("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(Iso("2026-12-01T09:00:00Z"), 1796115600000LL);
  EXPECT_EQ(Iso("2026-12-01T09:00:00.250Z"), 1796115600250LL);
  EXPECT_EQ(Iso("2026-12-01T10:30:00+01:30"), 1796115600000LL);
  EXPECT_EQ(Iso("2026-12-01T07:00:00-02:00"), 1796115600000LL);
  // FormatIsoTime's output reads back.
  EXPECT_EQ(Iso(FormatIsoTime(1796115600123LL).c_str()), 1796115600123LL);
}

TEST(ParseIsoTime, RejectsWhatIsNotATime) {
  long long ms = 0;
  for (const char* bad :
       {"", "tomorrow", "2026-12-01", "2026-12-01T09:00:00", "2026-13-01T09:00:00Z",
        "2026-12-01T09:00:00Zjunk", "2026-12-01T09:00:00.Z", "2026-12-01 09:00:00Z"}) {
    EXPECT_FALSE(ParseIsoTime(bad, &ms)) << bad;
  }
}

TEST(ParseDurationMs, Units) {
  long long ms = 0;
  struct Case {
    const char* text;
    long long ms;
  };
  for (Case c : {Case{"0", 0}, Case{"250", 250}, Case{"500ms", 500}, Case{"30s", 30000},
                 Case{"5m", 300000}, Case{"2h", 7200000}, Case{"7d", 604800000}}) {
    ASSERT_TRUE(ParseDurationMs(c.text, &ms)) << c.text;
    EXPECT_EQ(ms, c.ms) << c.text;
  }
  for (const char* bad : {"", "s", "-5s", "5 s", "5w", "1.5h", "soon"}) {
    EXPECT_FALSE(ParseDurationMs(bad, &ms)) << bad;
  }
}

TEST(ParseDurationMs, RefusesWhatOverflows) {
  long long ms = 0;
  // 99999999999999 days is about 8.6e21 ms: more than a long long holds.
  for (const char* big : {"99999999999999d", "9223372036854775808", "9223372036854775808ms",
                          "106751991168d", "99999999999999999999999999s"}) {
    EXPECT_FALSE(ParseDurationMs(big, &ms)) << big;
  }
  ASSERT_TRUE(ParseDurationMs("9223372036854775807", &ms));
  EXPECT_EQ(ms, 9223372036854775807LL);
  ASSERT_TRUE(ParseDurationMs("106751991167d", &ms));
  EXPECT_EQ(ms, 106751991167LL * 86400000LL);
}

}  // namespace
}  // namespace smithers::base
