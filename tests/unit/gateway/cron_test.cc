// Cron schedules: the syntax, Vixie's day rule, calendar edges, and fire times
// in real time zones across DST changes and past the last TZif transition.
// Expected instants were computed independently with Python's zoneinfo, e.g.
//   python3 -c "from datetime import datetime; from zoneinfo import ZoneInfo;
//     print(int(datetime(2026, 3, 9, 2, 30, tzinfo=ZoneInfo('America/New_York')).timestamp()))"
// and are written as epoch milliseconds with the time they stand for.
#include "gateway/cron.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smithers::gateway {
namespace {

constexpr std::string_view kNewYork = "America/New_York";
constexpr std::string_view kBerlin = "Europe/Berlin";
constexpr int64_t kMinute = 60'000;

// The next `n` fire times after `after_ms`, each strictly after the previous.
std::vector<int64_t> Fires(std::string_view expression, std::string_view zone, int64_t after_ms,
                           int n) {
  Result<CronSchedule> schedule = ParseCron(expression, zone);
  EXPECT_TRUE(schedule.ok()) << schedule.status().ToString();
  std::vector<int64_t> out;
  if (!schedule.ok()) return out;
  int64_t t = after_ms;
  for (int i = 0; i < n; ++i) {
    t = schedule->NextAfterMs(t);
    out.push_back(t);
    if (t == 0) break;
  }
  return out;
}

int64_t Next(std::string_view expression, std::string_view zone, int64_t after_ms) {
  std::vector<int64_t> fires = Fires(expression, zone, after_ms, 1);
  return fires.empty() ? -1 : fires[0];
}

// The message of the InvalidArgument error ParseCron gives; "" when it parses.
std::string ParseError(std::string_view expression, std::string_view zone = "UTC") {
  Result<CronSchedule> schedule = ParseCron(expression, zone);
  if (schedule.ok()) return "";
  EXPECT_EQ(schedule.status().code(), StatusCode::kInvalidArgument) << expression;
  return schedule.status().message();
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---- syntax ----

TEST(CronSyntax, EveryMinute) {
  // 2026-03-10T10:07:30.500Z -> 10:08, 10:09
  EXPECT_EQ(Fires("* * * * *", "UTC", 1773137250500, 2),
            (std::vector<int64_t>{1773137280000, 1773137340000}));
}

TEST(CronSyntax, StepsListsAndRanges) {
  const int64_t before_ten = 1773136800000 - 1;  // 2026-03-10T09:59:59.999Z
  const int64_t ten = 1773136800000;             // 2026-03-10T10:00Z
  EXPECT_EQ(Fires("*/15 * * * *", "UTC", before_ten, 5),
            (std::vector<int64_t>{ten, ten + 15 * kMinute, ten + 30 * kMinute, ten + 45 * kMinute,
                                  ten + 60 * kMinute}));
  EXPECT_EQ(Fires("5,10,20 * * * *", "UTC", ten, 4),
            (std::vector<int64_t>{ten + 5 * kMinute, ten + 10 * kMinute, ten + 20 * kMinute,
                                  ten + 65 * kMinute}));
  EXPECT_EQ(Fires("10-50/20 * * * *", "UTC", ten, 4),
            (std::vector<int64_t>{ten + 10 * kMinute, ten + 30 * kMinute, ten + 50 * kMinute,
                                  ten + 70 * kMinute}));
  EXPECT_EQ(Fires("58-59 * * * *", "UTC", ten, 3),
            (std::vector<int64_t>{ten + 58 * kMinute, ten + 59 * kMinute, ten + 118 * kMinute}));
  // A list may mix the forms.
  EXPECT_EQ(Fires("1,3-4,50-59/5 * * * *", "UTC", ten, 6),
            (std::vector<int64_t>{ten + 1 * kMinute, ten + 3 * kMinute, ten + 4 * kMinute,
                                  ten + 50 * kMinute, ten + 55 * kMinute, ten + 61 * kMinute}));
  // Strictly after: 10:00 itself is not next.
  EXPECT_EQ(Fires("0 9-11 * * *", "UTC", ten, 3),
            (std::vector<int64_t>{
                1773140400000,  // 2026-03-10T11:00Z
                1773219600000,  // 2026-03-11T09:00Z
                1773223200000,  // 2026-03-11T10:00Z
            }));
  EXPECT_EQ(Fires("0 */6 * * *", "UTC", ten, 3),
            (std::vector<int64_t>{
                1773144000000,  // 2026-03-10T12:00Z
                1773165600000,  // 2026-03-10T18:00Z
                1773187200000,  // 2026-03-11T00:00Z
            }));
  EXPECT_EQ(Fires("0 0 1-31/10 * *", "UTC", ten, 4),
            (std::vector<int64_t>{
                1773187200000,  // 2026-03-11
                1774051200000,  // 2026-03-21
                1774915200000,  // 2026-03-31
                1775001600000,  // 2026-04-01
            }));
}

TEST(CronSyntax, SingleValueWithStepRunsToTheFieldsEnd) {
  const int64_t ten = 1773136800000;  // 2026-03-10T10:00Z
  // "5/15" = "5-59/15".
  EXPECT_EQ(Fires("5/15 * * * *", "UTC", ten, 5),
            (std::vector<int64_t>{ten + 5 * kMinute, ten + 20 * kMinute, ten + 35 * kMinute,
                                  ten + 50 * kMinute, ten + 65 * kMinute}));
  EXPECT_EQ(Fires("5/15 * * * *", "UTC", ten, 5), Fires("5-59/15 * * * *", "UTC", ten, 5));
  // "20/2" in hours: 20 and 22.
  EXPECT_EQ(Fires("0 20/2 * * *", "UTC", ten, 3),
            (std::vector<int64_t>{
                1773172800000,  // 2026-03-10T20:00Z
                1773180000000,  // 2026-03-10T22:00Z
                1773259200000,  // 2026-03-11T20:00Z
            }));
}

TEST(CronSyntax, MonthAndWeekdayNamesAnyCase) {
  // 2026-03-13 is a Friday; March 2026 starts on a Sunday.
  const int64_t friday_noon = 1773403200000;  // 2026-03-13T12:00Z
  EXPECT_EQ(Fires("0 12 * JAN-Mar MON-fri", "UTC", friday_noon, 2),
            (std::vector<int64_t>{
                1773662400000,  // Monday 2026-03-16
                1773748800000,  // Tuesday 2026-03-17
            }));
  // After March 31 (a Tuesday) the next month in jan-mar is January 2027;
  // 2027-01-01 is a Friday.
  EXPECT_EQ(Next("0 12 * jan-mar mon-fri", "UTC", 1774958400000),
            1798804800000);  // 2027-01-01T12:00Z
  // Names and numbers mean the same.
  const int64_t start = 1767225600000;  // 2026-01-01T00:00Z
  EXPECT_EQ(Fires("0 12 * jan-mar mon-fri", "UTC", start, 70),
            Fires("0 12 * 1-3 1-5", "UTC", start, 70));
  EXPECT_EQ(Fires("0 0 1 Jun,dec *", "UTC", start, 3),
            (std::vector<int64_t>{
                1780272000000,  // 2026-06-01
                1796083200000,  // 2026-12-01
                1811808000000,  // 2027-06-01
            }));
  // Mixed: a number and a name in one range.
  EXPECT_EQ(Fires("0 0 * * 1-wed", "UTC", start, 80), Fires("0 0 * * mon-3", "UTC", start, 80));
}

TEST(CronSyntax, SundayIsZeroAndSeven) {
  const int64_t tuesday = 1773136800000;  // Tuesday 2026-03-10T10:00Z
  const std::vector<int64_t> sundays = {
      1773532800000,  // Sunday 2026-03-15
      1774137600000,  // Sunday 2026-03-22
  };
  EXPECT_EQ(Fires("0 0 * * 0", "UTC", tuesday, 2), sundays);
  EXPECT_EQ(Fires("0 0 * * 7", "UTC", tuesday, 2), sundays);
  EXPECT_EQ(Fires("0 0 * * SUN", "UTC", tuesday, 2), sundays);
  // A range ending at 7 reaches Sunday.
  EXPECT_EQ(Fires("0 0 * * 5-7", "UTC", tuesday, 4),
            (std::vector<int64_t>{
                1773360000000,  // Friday
                1773446400000,  // Saturday
                1773532800000,  // Sunday
                1773964800000,  // Friday
            }));
  // 0-7 is every day; "1/3" runs to 7: Monday, Thursday, Sunday.
  EXPECT_EQ(Fires("0 0 * * 0-7", "UTC", tuesday, 10), Fires("0 0 * * *", "UTC", tuesday, 10));
  EXPECT_EQ(Fires("0 0 * * 1/3", "UTC", tuesday, 3),
            (std::vector<int64_t>{
                1773273600000,  // Thursday
                1773532800000,  // Sunday
                1773619200000,  // Monday
            }));
}

TEST(CronSyntax, Macros) {
  const int64_t t = 1773137250500;            // Tuesday 2026-03-10T10:07:30.500Z
  const int64_t next_year = 1798761600000;    // 2027-01-01
  const int64_t next_month = 1775001600000;   // 2026-04-01
  const int64_t next_sunday = 1773532800000;  // 2026-03-15
  const int64_t next_day = 1773187200000;     // 2026-03-11
  const int64_t next_hour = 1773140400000;    // 2026-03-10T11:00Z
  EXPECT_EQ(Next("@yearly", "UTC", t), next_year);
  EXPECT_EQ(Next("@annually", "UTC", t), next_year);
  EXPECT_EQ(Next("@monthly", "UTC", t), next_month);
  EXPECT_EQ(Next("@weekly", "UTC", t), next_sunday);
  EXPECT_EQ(Next("@daily", "UTC", t), next_day);
  EXPECT_EQ(Next("@midnight", "UTC", t), next_day);
  EXPECT_EQ(Next("@hourly", "UTC", t), next_hour);
  EXPECT_EQ(Next("  @Daily\t", "UTC", t), next_day);
  // A macro is a whole schedule, as its expansion.
  EXPECT_EQ(Fires("@weekly", "UTC", t, 20), Fires("0 0 * * 0", "UTC", t, 20));
  EXPECT_EQ(Fires("@monthly", kBerlin, t, 14), Fires("0 0 1 * *", kBerlin, t, 14));
  Result<CronSchedule> s = ParseCron("@hourly", "");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->expression(), "@hourly");
  EXPECT_EQ(s->time_zone(), "UTC");
}

TEST(CronSyntax, FieldsSeparatedByAnyWhitespace) {
  EXPECT_EQ(Fires(" 0\t12   * *  *\n", "UTC", 0, 5), Fires("0 12 * * *", "UTC", 0, 5));
  Result<CronSchedule> s = ParseCron("0 12 * * *", kBerlin);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->expression(), "0 12 * * *");
  EXPECT_EQ(s->time_zone(), kBerlin);
}

// ---- errors ----

TEST(CronErrors, OutOfRangeValuesNameFieldAndValue) {
  EXPECT_EQ(ParseError("61 * * * *"), "cron \"61 * * * *\": minute value 61 is out of range 0-59");
  EXPECT_EQ(ParseError("0 24 * * *"), "cron \"0 24 * * *\": hour value 24 is out of range 0-23");
  EXPECT_EQ(ParseError("0 0 0 * *"),
            "cron \"0 0 0 * *\": day-of-month value 0 is out of range 1-31");
  EXPECT_EQ(ParseError("0 0 32 * *"),
            "cron \"0 0 32 * *\": day-of-month value 32 is out of range 1-31");
  EXPECT_EQ(ParseError("0 0 * 13 *"), "cron \"0 0 * 13 *\": month value 13 is out of range 1-12");
  EXPECT_EQ(ParseError("0 0 * 0 *"), "cron \"0 0 * 0 *\": month value 0 is out of range 1-12");
  EXPECT_EQ(ParseError("0 0 * * 8"), "cron \"0 0 * * 8\": day-of-week value 8 is out of range 0-7");
  EXPECT_EQ(ParseError("1-60 * * * *"),
            "cron \"1-60 * * * *\": minute value 60 is out of range 0-59");
  EXPECT_EQ(ParseError("99999999999 * * * *"),
            "cron \"99999999999 * * * *\": minute value 99999999999 is out of range 0-59");
}

TEST(CronErrors, WrongFieldCount) {
  EXPECT_EQ(ParseError("* * * *"),
            "cron \"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), "
            "got 4");
  EXPECT_TRUE(Contains(ParseError("* * * * * *"), "got 6")) << ParseError("* * * * * *");
  EXPECT_TRUE(Contains(ParseError(""), "got 0"));
  EXPECT_TRUE(Contains(ParseError("   "), "got 0"));
  // A macro with more after it is not a macro.
  EXPECT_TRUE(Contains(ParseError("@daily 5"), "got 2"));
}

TEST(CronErrors, EmptyListItems) {
  EXPECT_EQ(ParseError("1,,2 * * * *"),
            "cron \"1,,2 * * * *\": minute has an empty list item in \"1,,2\"");
  EXPECT_EQ(ParseError("0 ,1 * * *"), "cron \"0 ,1 * * *\": hour has an empty list item in \",1\"");
  EXPECT_EQ(ParseError("0 0 1, * *"),
            "cron \"0 0 1, * *\": day-of-month has an empty list item in \"1,\"");
}

TEST(CronErrors, Steps) {
  EXPECT_EQ(ParseError("*/0 * * * *"),
            "cron \"*/0 * * * *\": minute step 0 in \"*/0\" is out of range 1-59");
  EXPECT_EQ(ParseError("0 1-5/0 * * *"),
            "cron \"0 1-5/0 * * *\": hour step 0 in \"1-5/0\" is out of range 1-23");
  EXPECT_EQ(ParseError("*/60 * * * *"),
            "cron \"*/60 * * * *\": minute step 60 in \"*/60\" is out of range 1-59");
  EXPECT_EQ(ParseError("*/x * * * *"),
            "cron \"*/x * * * *\": minute step \"x\" in \"*/x\" is not a number");
  EXPECT_EQ(ParseError("*/ * * * *"),
            "cron \"*/ * * * *\": minute step \"\" in \"*/\" is not a number");
  EXPECT_EQ(ParseError("*/2/3 * * * *"),
            "cron \"*/2/3 * * * *\": minute step \"2/3\" in \"*/2/3\" is not a number");
  EXPECT_EQ(ParseError("/5 * * * *"),
            "cron \"/5 * * * *\": minute has no value before the step in \"/5\"");
}

TEST(CronErrors, Ranges) {
  EXPECT_EQ(ParseError("5-1 * * * *"), "cron \"5-1 * * * *\": minute range \"5-1\" is reversed");
  EXPECT_EQ(ParseError("0 0 * * fri-mon"),
            "cron \"0 0 * * fri-mon\": day-of-week range \"fri-mon\" is reversed");
  EXPECT_EQ(ParseError("1-2-3 * * * *"),
            "cron \"1-2-3 * * * *\": minute range \"1-2-3\" is not valid");
  EXPECT_EQ(ParseError("1- * * * *"), "cron \"1- * * * *\": minute range \"1-\" is not valid");
  EXPECT_EQ(ParseError("-5 * * * *"), "cron \"-5 * * * *\": minute range \"-5\" is not valid");
  EXPECT_EQ(ParseError("*-5 * * * *"), "cron \"*-5 * * * *\": minute value \"*\" is not a number");
}

TEST(CronErrors, UnknownNamesAndTokens) {
  EXPECT_EQ(ParseError("0 0 * foo *"),
            "cron \"0 0 * foo *\": month value \"foo\" is not a number or a month name (jan-dec)");
  EXPECT_EQ(ParseError("0 0 * * funday"),
            "cron \"0 0 * * funday\": day-of-week value \"funday\" is not a number or a weekday "
            "name (sun-sat)");
  // Names belong to their field: no months in day-of-week, no names in minutes.
  EXPECT_TRUE(Contains(ParseError("0 0 * * jan"), "day-of-week value \"jan\""));
  EXPECT_TRUE(Contains(ParseError("0 0 * mon *"), "month value \"mon\""));
  EXPECT_EQ(ParseError("mon * * * *"),
            "cron \"mon * * * *\": minute value \"mon\" is not a number");
  EXPECT_TRUE(Contains(ParseError("0 0 * * monday"), "value \"monday\""));
  EXPECT_TRUE(Contains(ParseError("+5 * * * *"), "value \"+5\""));
  EXPECT_TRUE(Contains(ParseError("? * * * *"), "value \"?\""));
  EXPECT_EQ(ParseError("@often"),
            "cron \"@often\": unknown macro \"@often\" (expected @yearly, @annually, @monthly, "
            "@weekly, @daily, @midnight or @hourly)");
}

TEST(CronErrors, UnknownOrUnsafeTimeZone) {
  EXPECT_EQ(ParseError("* * * * *", "Mars/Olympus_Mons"),
            "time zone \"Mars/Olympus_Mons\": unknown time zone (no TZif file "
            "/usr/share/zoneinfo/Mars/Olympus_Mons)");
  for (std::string_view bad : {"../../etc/passwd", "Europe/../../etc/passwd", "/etc/localtime",
                               "Europe/Berlin ", "Europe\\Berlin"}) {
    EXPECT_EQ(ParseError("* * * * *", bad),
              "time zone \"" + std::string(bad) + "\": not a valid zone name");
  }
  // A directory of zones is not a zone.
  EXPECT_TRUE(Contains(ParseError("* * * * *", "America"), "time zone \"America\": unknown"));
}

// ---- the day rule and the calendar ----

TEST(CronDays, EitherDayFieldMatchesWhenBothAreRestricted) {
  // The 13th or any Friday. March 2026: Fridays 6, 13, 20, 27; April 2026:
  // Fridays 3, 10, 17, and the 13th is a Monday.
  EXPECT_EQ(Fires("0 0 13 * 5", "UTC", 1772323200000, 8),
            (std::vector<int64_t>{
                1772755200000,  // Fri 2026-03-06
                1773360000000,  // Fri 2026-03-13 (both)
                1773964800000,  // Fri 2026-03-20
                1774569600000,  // Fri 2026-03-27
                1775174400000,  // Fri 2026-04-03
                1775779200000,  // Fri 2026-04-10
                1776038400000,  // Mon 2026-04-13
                1776384000000,  // Fri 2026-04-17
            }));
  // Both restricted by lists and names too: the 1st or 15th, or a Sunday.
  EXPECT_EQ(Fires("0 0 1,15 * sun", "UTC", 1775001600000, 5),
            (std::vector<int64_t>{
                1775347200000,  // Sun 2026-04-05
                1775952000000,  // Sun 2026-04-12
                1776211200000,  // Wed 2026-04-15
                1776556800000,  // Sun 2026-04-19
                1777161600000,  // Sun 2026-04-26
            }));
}

TEST(CronDays, BothDayFieldsMustMatchWhenOneIsStarred) {
  // Day-of-week alone: Mondays only.
  EXPECT_EQ(Fires("0 0 * * 1", "UTC", 1772323200000, 2),
            (std::vector<int64_t>{1772409600000, 1773014400000}));
  // Day-of-month alone: the 13th, whatever weekday.
  EXPECT_EQ(Fires("0 0 13 * *", "UTC", 1772323200000, 2),
            (std::vector<int64_t>{1773360000000, 1776038400000}));
  // As in Vixie cron, "*/2" starts with '*' so it counts as unrestricted:
  // odd days that are Mondays (March 2026: 9 and 23; April: 13 and 27).
  EXPECT_EQ(Fires("0 0 */2 * 1", "UTC", 1772323200000, 4),
            (std::vector<int64_t>{
                1773014400000,  // Mon 2026-03-09
                1774224000000,  // Mon 2026-03-23
                1776038400000,  // Mon 2026-04-13
                1777248000000,  // Mon 2026-04-27
            }));
}

TEST(CronDays, LeapDays) {
  const std::string_view leap_day = "0 0 29 2 *";
  // From 2027, the next February 29 is in 2028.
  EXPECT_EQ(Next(leap_day, "UTC", 1798761600000), 1835395200000);  // 2028-02-29
  EXPECT_EQ(Next(leap_day, "UTC", 1704067200000), 1709164800000);  // 2024-02-29
  // Strictly after one leap day: the next, 4 years on.
  EXPECT_EQ(Next(leap_day, "UTC", 1709164800000), 1835395200000);  // 2028-02-29
  // 2000 was a leap year (divisible by 400).
  EXPECT_EQ(Next(leap_day, "UTC", 928195200000), 951782400000);  // 2000-02-29
  // 2100 is not, and 2104 is beyond the 5-year horizon.
  EXPECT_EQ(Next(leap_day, "UTC", 3981398400000), 0);  // from 2096-03-01
  // In a zone: local midnight (CET, +1).
  EXPECT_EQ(Next(leap_day, kBerlin, 1798761600000),
            1835391600000);  // 2028-02-29T00:00 CET = 02-28T23:00Z
}

TEST(CronDays, MonthEnds) {
  // The 31st skips the 30-day months.
  EXPECT_EQ(Fires("0 0 31 * *", "UTC", 1775001600000, 4),
            (std::vector<int64_t>{
                1780185600000,  // 2026-05-31
                1785456000000,  // 2026-07-31
                1788134400000,  // 2026-08-31
                1793404800000,  // 2026-10-31
            }));
  // The 30th skips February.
  EXPECT_EQ(Next("0 0 30 * *", "UTC", 1769904000000), 1774828800000);  // 03-30
  // Late in the day on the last day of a year rolls into the next year.
  EXPECT_EQ(Fires("59 23 31 12 *", "UTC", 1798761480000, 2),
            (std::vector<int64_t>{
                1798761540000,  // 2026-12-31T23:59Z
                1830297540000,  // 2027-12-31T23:59Z
            }));
  EXPECT_EQ(Next("0 0 * * *", "UTC", 1798761540000), 1798761600000);  // 2027
}

TEST(CronNext, StrictlyAfterWithMilliseconds) {
  const int64_t ten = 1773136800000;  // 2026-03-10T10:00Z
  const int64_t eleven = ten + 60 * kMinute;
  EXPECT_EQ(Next("0 * * * *", "UTC", ten - 1), ten);
  EXPECT_EQ(Next("0 * * * *", "UTC", ten), eleven);
  EXPECT_EQ(Next("0 * * * *", "UTC", ten + 1), eleven);
  EXPECT_EQ(Next("0 * * * *", "UTC", ten + 59'999), eleven);
}

TEST(CronNext, BeforeTheEpoch) {
  EXPECT_EQ(Next("0 12 * * *", "UTC", -31536000000),  // 1969-01-01
            -31492800000);                            // 1969-01-01T12:00Z
}

TEST(CronNext, ImpossibleSchedulesReturnZero) {
  const int64_t start = 1767225600000;  // 2026-01-01
  EXPECT_EQ(Next("0 0 30 2 *", "UTC", start), 0);
  EXPECT_EQ(Next("0 0 31 2,4,6,9,11 *", "UTC", start), 0);
  EXPECT_EQ(Next("* * 30 feb *", kBerlin, start), 0);
  // Unless a weekday rescues it (either day field may match).
  EXPECT_EQ(Next("0 0 30 2 mon", "UTC", start), 1769990400000);  // Mon 2026-02-02
}

TEST(CronNext, InputsOutsideTheSupportedYearsReturnZero) {
  Result<CronSchedule> s = ParseCron("* * * * *");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->NextAfterMs(std::numeric_limits<int64_t>::max()), 0);
  EXPECT_EQ(s->NextAfterMs(std::numeric_limits<int64_t>::min()), 0);
}

// ---- time zones ----

TEST(CronZones, NewYorkSpringForwardSkipsTheMissingTime) {
  // 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT, so 02:30 does not
  // exist that day.
  EXPECT_EQ(Fires("30 2 * * *", kNewYork, 1772859600000, 3),
            (std::vector<int64_t>{
                1772868600000,  // 03-07 02:30 EST = 07:30Z
                1773037800000,  // 03-09 02:30 EDT = 06:30Z
                1773124200000,  // 03-10 02:30 EDT = 06:30Z
            }));
  // Every half hour: 02:00 and 02:30 are skipped, nothing else.
  EXPECT_EQ(Fires("*/30 * * * *", kNewYork, 1772949600000, 3),
            (std::vector<int64_t>{
                1772951400000,  // 01:30 EST = 06:30Z
                1772953200000,  // 03:00 EDT = 07:00Z
                1772955000000,  // 03:30 EDT = 07:30Z
            }));
}

TEST(CronZones, NewYorkFallBackFiresOnceAtTheFirstOccurrence) {
  // 2026-11-01: 01:00-02:00 happens twice (EDT, then EST).
  const int64_t first = 1793511000000;     // 01:30 EDT = 05:30Z
  const int64_t second = 1793514600000;    // 01:30 EST = 06:30Z
  const int64_t next_day = 1793601000000;  // 11-02 01:30 EST = 06:30Z
  EXPECT_EQ(second - first, 60 * kMinute);
  EXPECT_EQ(Fires("30 1 * * *", kNewYork, 1793426400000, 2),
            (std::vector<int64_t>{first, next_day}));
  // Between the two occurrences the slot has already fired.
  EXPECT_EQ(Next("30 1 * * *", kNewYork, first + 1), next_day);
  EXPECT_EQ(Next("30 1 * * *", kNewYork, second - 1), next_day);
  // Hourly: 00:00 EDT, 01:00 EDT, then 02:00 EST; 01:00 EST is a repeat.
  EXPECT_EQ(Fires("0 * * * *", kNewYork, 1793503800000, 3),
            (std::vector<int64_t>{
                1793505600000,  // 00:00 EDT = 04:00Z
                1793509200000,  // 01:00 EDT = 05:00Z
                1793516400000,  // 02:00 EST = 07:00Z
            }));
}

TEST(CronZones, BerlinSpringForwardSkipsTheMissingTime) {
  // 2026-03-29: 02:00 CET jumps to 03:00 CEST.
  EXPECT_EQ(Fires("30 2 * * *", kBerlin, 1774661400000, 2),
            (std::vector<int64_t>{
                1774830600000,  // 03-30 02:30 CEST = 00:30Z
                1774917000000,  // 03-31 02:30 CEST = 00:30Z
            }));
}

TEST(CronZones, BerlinFallBackFiresOnce) {
  // 2026-10-25: 02:00-03:00 happens twice (CEST, then CET).
  const int64_t saturday_noon = 1792836000000;  // 10-24 12:00 CEST
  EXPECT_EQ(Fires("30 2 * * *", kBerlin, saturday_noon, 2),
            (std::vector<int64_t>{
                1792888200000,  // 10-25 02:30 CEST = 00:30Z
                1792978200000,  // 10-26 02:30 CET = 01:30Z
            }));
  EXPECT_EQ(Next("30 2 * * *", kBerlin, 1792888200000 + 1), 1792978200000);
  // 01:30 is before the repeated hour: once, in CEST.
  EXPECT_EQ(Fires("30 1 * * *", kBerlin, saturday_noon, 2),
            (std::vector<int64_t>{
                1792884600000,  // 10-25 01:30 CEST = 10-24T23:30Z
                1792974600000,  // 10-26 01:30 CET = 00:30Z
            }));
}

TEST(CronZones, KolkataHasAFixedHalfHourOffset) {
  const int64_t start = 1780272000000;  // 2026-06-01T00:00Z = 05:30 IST
  EXPECT_EQ(Next("0 9 * * *", "Asia/Kolkata", start),
            1780284600000);  // 09:00 IST = 03:30Z
  EXPECT_EQ(Next("30 0 * * *", "Asia/Kolkata", start),
            1780340400000);  // 06-02 00:30 IST = 06-01T19:00Z
  // No DST: the same UTC time every day of the year.
  std::vector<int64_t> fires = Fires("0 9 * * *", "Asia/Kolkata", start, 365);
  ASSERT_EQ(fires.size(), 365U);
  for (size_t i = 1; i < fires.size(); ++i) EXPECT_EQ(fires[i] - fires[i - 1], 1440 * kMinute);
}

TEST(CronZones, FarFutureUsesTheFooterRule) {
  // The TZif files list transitions up to 2037; 2040 comes from the footer
  // ("EST5EDT,M3.2.0,M11.1.0", "CET-1CEST,M3.5.0,M10.5.0/3").
  EXPECT_EQ(Next("0 12 * * *", kNewYork, 2224972800000),  // 2040-07-04T00:00Z
            2225030400000);                               // 12:00 EDT = 16:00Z
  // 2040-03-11 is the second Sunday of March: 02:30 is skipped.
  EXPECT_EQ(Fires("30 2 * * *", kNewYork, 2214977400000, 1),
            (std::vector<int64_t>{2215146600000}));  // 03-12 02:30 EDT
  // 2040-03-25 is the last Sunday of March.
  EXPECT_EQ(Next("30 2 * * *", kBerlin, 2216165400000),
            2216334600000);  // 03-26 02:30 CEST = 00:30Z
  // 2040-10-28 is the last Sunday of October: 02:30 fires once, in CEST.
  EXPECT_EQ(Fires("30 2 * * *", kBerlin, 2234944800000, 2),
            (std::vector<int64_t>{
                2234997000000,  // 10-28 02:30 CEST = 00:30Z
                2235087000000,  // 10-29 02:30 CET = 01:30Z
            }));
}

TEST(CronZones, UtcAliases) {
  const int64_t start = 1773136800000;  // 2026-03-10T10:00Z
  EXPECT_EQ(Fires("0 12 * * *", "", start, 3), Fires("0 12 * * *", "UTC", start, 3));
  EXPECT_EQ(Fires("0 12 * * *", "Etc/UTC", start, 3), Fires("0 12 * * *", "UTC", start, 3));
}

TEST(CronPerformance, ManyRareAndImpossibleSchedules) {
  // 10,000 look-ups for a leap day from points spread over 2027 (each must
  // skip ahead by months and days, not minutes).
  Result<CronSchedule> leap_day = ParseCron("0 0 29 2 *");
  ASSERT_TRUE(leap_day.ok());
  const int64_t start = 1798761600000;  // 2027-01-01
  int wrong = 0;
  for (int64_t i = 0; i < 10'000; ++i) {
    if (leap_day->NextAfterMs(start + i * 3'000'000) != 1835395200000) ++wrong;  // 2028-02-29
  }
  EXPECT_EQ(wrong, 0);
  // An impossible schedule, in a zone, gives up after bounded work.
  Result<CronSchedule> never = ParseCron("* * 30 2 *", kNewYork);
  ASSERT_TRUE(never.ok());
  for (int64_t i = 0; i < 1'000; ++i) {
    if (never->NextAfterMs(start + i * 3'000'000) != 0) ++wrong;
  }
  EXPECT_EQ(wrong, 0);
}

// ---- TimeZone and PosixTimeZone ----

TEST(TimeZoneTest, OffsetsOfRealZones) {
  Result<TimeZone> ny = TimeZone::Load(kNewYork);
  ASSERT_TRUE(ny.ok()) << ny.status().ToString();
  EXPECT_EQ(ny->name(), kNewYork);
  EXPECT_EQ(ny->OffsetAt(1767225600), -5 * 3600);  // 2026-01-01: EST
  EXPECT_EQ(ny->OffsetAt(1782864000), -4 * 3600);  // 2026-07-01: EDT
  // After the last listed transition (2037-11-01), from the footer.
  EXPECT_EQ(ny->OffsetAt(2208988800), -5 * 3600);  // 2040-01-01
  EXPECT_EQ(ny->OffsetAt(2224713600), -4 * 3600);  // 2040-07-01
  // Southern hemisphere: daylight time spans the new year.
  Result<TimeZone> sydney = TimeZone::Load("Australia/Sydney");
  ASSERT_TRUE(sydney.ok());
  EXPECT_EQ(sydney->OffsetAt(2208988800), 11 * 3600);  // 2040-01-01: AEDT
  EXPECT_EQ(sydney->OffsetAt(2224713600), 10 * 3600);  // 2040-07-01: AEST
  // Negative DST: Irish Standard Time in summer, GMT as "daylight" time in winter.
  Result<TimeZone> dublin = TimeZone::Load("Europe/Dublin");
  ASSERT_TRUE(dublin.ok());
  EXPECT_EQ(dublin->OffsetAt(2208988800), 0);     // 2040-01-01: GMT
  EXPECT_EQ(dublin->OffsetAt(2224713600), 3600);  // 2040-07-01: IST
  // A negative rule time: Nuuk's "M3.5.0/-1" is Saturday 23:00, 2040-03-25T01:00Z.
  Result<TimeZone> nuuk = TimeZone::Load("America/Nuuk");
  ASSERT_TRUE(nuuk.ok());
  EXPECT_EQ(nuuk->OffsetAt(2216249940), -2 * 3600);  // 2040-03-25T00:59Z
  EXPECT_EQ(nuuk->OffsetAt(2216250000), -1 * 3600);  // 2040-03-25T01:00Z
}

TEST(TimeZoneTest, LocalToUtc) {
  Result<TimeZone> ny = TimeZone::Load(kNewYork);
  ASSERT_TRUE(ny.ok());
  // Wall-clock times are given as if they were UTC.
  EXPECT_EQ(ny->LocalToUtc(1772937000), std::nullopt);  // in the gap
  EXPECT_EQ(ny->LocalToUtc(1793496600),                 // twice: the first
            1793511000);                                // 01:30 EDT = 05:30Z
  EXPECT_EQ(ny->LocalToUtc(1782864000),
            1782878400);  // 00:00 EDT = 04:00Z
  Result<TimeZone> utc = TimeZone::Load("");
  ASSERT_TRUE(utc.ok());
  EXPECT_EQ(utc->name(), "UTC");
  EXPECT_EQ(utc->OffsetAt(1782864000), 0);
  EXPECT_EQ(utc->LocalToUtc(12345), 12345);
}

TEST(PosixTimeZoneTest, ParsesTheCommonForms) {
  using Kind = PosixTimeZone::Rule::Kind;
  Result<PosixTimeZone> us = PosixTimeZone::Parse("EST5EDT,M3.2.0,M11.1.0");
  ASSERT_TRUE(us.ok()) << us.status().ToString();
  EXPECT_EQ(us->std_offset, -5 * 3600);
  EXPECT_TRUE(us->has_dst);
  EXPECT_EQ(us->dst_offset, -4 * 3600);
  EXPECT_EQ(us->start.kind, Kind::kMonthWeekDay);
  EXPECT_EQ(us->start.month, 3);
  EXPECT_EQ(us->start.week, 2);
  EXPECT_EQ(us->start.weekday, 0);
  EXPECT_EQ(us->start.time, 2 * 3600);
  EXPECT_EQ(us->end.month, 11);
  EXPECT_EQ(us->end.week, 1);

  Result<PosixTimeZone> india = PosixTimeZone::Parse("IST-5:30");
  ASSERT_TRUE(india.ok());
  EXPECT_EQ(india->std_offset, 5 * 3600 + 30 * 60);
  EXPECT_FALSE(india->has_dst);
  EXPECT_EQ(india->OffsetAt(1782864000), 5 * 3600 + 30 * 60);

  Result<PosixTimeZone> quoted = PosixTimeZone::Parse("<-03>3");
  ASSERT_TRUE(quoted.ok());
  EXPECT_EQ(quoted->std_offset, -3 * 3600);
  Result<PosixTimeZone> plus = PosixTimeZone::Parse("<+0330>-3:30");
  ASSERT_TRUE(plus.ok());
  EXPECT_EQ(plus->std_offset, 3 * 3600 + 30 * 60);

  Result<PosixTimeZone> sydney = PosixTimeZone::Parse("AEST-10AEDT,M10.1.0,M4.1.0/3");
  ASSERT_TRUE(sydney.ok());
  EXPECT_EQ(sydney->dst_offset, 11 * 3600);
  EXPECT_EQ(sydney->end.time, 3 * 3600);

  // An explicit DST offset, and seconds.
  Result<PosixTimeZone> explicit_dst = PosixTimeZone::Parse("AAA-12BBB-13:30:15,M9.5.0,M4.1.0/3");
  ASSERT_TRUE(explicit_dst.ok());
  EXPECT_EQ(explicit_dst->dst_offset, 13 * 3600 + 30 * 60 + 15);

  // No rules: the US ones.
  Result<PosixTimeZone> bare = PosixTimeZone::Parse("EST5EDT");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->OffsetAt(1782864000), -4 * 3600);  // 2026-07-01
  EXPECT_EQ(bare->OffsetAt(1767245400), -5 * 3600);  // 2026-01-01
}

TEST(PosixTimeZoneTest, JulianAndZeroBasedDays) {
  // J60 is March 1 in every year; DST starts there at 02:00 local (UTC-3),
  // which is 05:00Z.
  Result<PosixTimeZone> julian = PosixTimeZone::Parse("AAA3BBB,J60,J300");
  ASSERT_TRUE(julian.ok());
  EXPECT_EQ(julian->start.kind, PosixTimeZone::Rule::Kind::kJulian);
  EXPECT_EQ(julian->OffsetAt(1835499599), -3 * 3600);  // 2028-03-01T04:59:59Z
  EXPECT_EQ(julian->OffsetAt(1835499600), -2 * 3600);  // 2028-03-01T05:00Z
  // Zero-based day 59 counts February 29: the leap day in 2028, March 1 in 2027.
  Result<PosixTimeZone> zero = PosixTimeZone::Parse("AAA3BBB,59,300");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->start.kind, PosixTimeZone::Rule::Kind::kZeroBased);
  EXPECT_EQ(zero->OffsetAt(1835413199), -3 * 3600);  // 2028-02-29T04:59:59Z
  EXPECT_EQ(zero->OffsetAt(1835413200), -2 * 3600);  // 2028-02-29T05:00Z
  EXPECT_EQ(zero->OffsetAt(1803877199), -3 * 3600);  // 2027-03-01T04:59:59Z
  EXPECT_EQ(zero->OffsetAt(1803877200), -2 * 3600);  // 2027-03-01T05:00Z
  // RFC 8536's all-year daylight time: from Jan 1 00:00 to "Dec 31 25:00".
  Result<PosixTimeZone> always = PosixTimeZone::Parse("EST5EDT,0/0,J365/25");
  ASSERT_TRUE(always.ok());
  for (int64_t t : {1767245400, 1782864000, 1798759800}) {
    EXPECT_EQ(always->OffsetAt(t), -4 * 3600) << t;
  }
}

TEST(PosixTimeZoneTest, RejectsMalformedStrings) {
  for (std::string_view bad :
       {"", "5", "EST", "ES5", "EST25", "EST5EDT,", "EST5EDT,M3.2.0", "EST5EDT,M13.2.0,M11.1.0",
        "EST5EDT,M3.6.0,M11.1.0", "EST5EDT,M3.2.7,M11.1.0", "EST5EDT,J0,J365",
        "EST5EDT,M3.2.0,M11.1.0x", "EST5EDT,M3.2.0/168,M11.1.0", "<EST5", "<>5"}) {
    Result<PosixTimeZone> tz = PosixTimeZone::Parse(bad);
    EXPECT_FALSE(tz.ok()) << bad;
    if (!tz.ok()) {
      EXPECT_EQ(tz.status().code(), StatusCode::kInvalidArgument);
      EXPECT_TRUE(Contains(tz.status().message(), "\"" + std::string(bad) + "\""));
    }
  }
}

// ---- synthetic TZif files ----

void AppendBe32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

void AppendBe64(std::string* out, uint64_t v) {
  AppendBe32(out, static_cast<uint32_t>(v >> 32));
  AppendBe32(out, static_cast<uint32_t>(v));
}

// One version's data block: transitions and the offsets of its types.
struct TzifBlock {
  std::vector<int64_t> times;
  std::vector<uint8_t> types;
  std::vector<int32_t> offsets;
};

// A header and data block; "XYZ" is every type's abbreviation.
std::string TzifPart(char version, const TzifBlock& b, bool wide) {
  std::string out = "TZif";
  out.push_back(version);
  out.append(15, '\0');
  for (size_t count :
       {size_t{0}, size_t{0}, size_t{0}, b.times.size(), b.offsets.size(), size_t{4}}) {
    AppendBe32(&out, static_cast<uint32_t>(count));
  }
  for (int64_t t : b.times) {
    if (wide) {
      AppendBe64(&out, static_cast<uint64_t>(t));
    } else {
      AppendBe32(&out, static_cast<uint32_t>(t));
    }
  }
  for (uint8_t type : b.types) out.push_back(static_cast<char>(type));
  for (int32_t offset : b.offsets) {
    AppendBe32(&out, static_cast<uint32_t>(offset));
    out.push_back('\0');  // isdst
    out.push_back('\0');  // abbreviation index
  }
  out.append("XYZ", 4);  // including its NUL
  return out;
}

TEST(TimeZoneTest, Version1File) {
  // Type 0 (+0) before 1000000, +1h from then, +2h from 2000000.
  const std::string data = TzifPart(
      '\0', {.times = {1000000, 2000000}, .types = {1, 2}, .offsets = {0, 3600, 7200}}, false);
  Result<TimeZone> zone = TimeZone::FromTzif("Test/V1", data);
  ASSERT_TRUE(zone.ok()) << zone.status().ToString();
  EXPECT_EQ(zone->OffsetAt(-5000000), 0);
  EXPECT_EQ(zone->OffsetAt(999999), 0);
  EXPECT_EQ(zone->OffsetAt(1000000), 3600);
  EXPECT_EQ(zone->OffsetAt(1999999), 3600);
  EXPECT_EQ(zone->OffsetAt(2000000), 7200);
  EXPECT_EQ(zone->OffsetAt(2208988800), 7200);  // no footer: the last type holds
}

TEST(TimeZoneTest, Version2FileUsesThe64BitDataAndTheFooter) {
  // The v1 block says +9h; a v2 reader must skip it for the 64-bit block
  // (+1h until 1000000) and then the footer's US rules.
  std::string data = TzifPart('2', {.offsets = {9 * 3600}}, false);
  data += TzifPart('2', {.times = {1000000}, .types = {1}, .offsets = {3600, -5 * 3600}}, true);
  data += "\nEST5EDT,M3.2.0,M11.1.0\n";
  Result<TimeZone> zone = TimeZone::FromTzif("Test/V2", data);
  ASSERT_TRUE(zone.ok()) << zone.status().ToString();
  EXPECT_EQ(zone->OffsetAt(0), 3600);
  EXPECT_EQ(zone->OffsetAt(1767245400), -5 * 3600);  // 2026-01-01
  EXPECT_EQ(zone->OffsetAt(1782864000), -4 * 3600);  // 2026-07-01
  // A footer it cannot read is ignored: the last transition's offset holds.
  std::string odd = TzifPart('3', {}, false);
  odd += TzifPart('3', {.times = {1000000}, .types = {1}, .offsets = {0, 7200}}, true);
  odd += "\nnot a tz string\n";
  Result<TimeZone> odd_zone = TimeZone::FromTzif("Test/Odd", odd);
  ASSERT_TRUE(odd_zone.ok()) << odd_zone.status().ToString();
  EXPECT_EQ(odd_zone->OffsetAt(1782864000), 7200);
}

TEST(TimeZoneTest, CorruptFiles) {
  const std::string good =
      TzifPart('\0', {.times = {1000000}, .types = {1}, .offsets = {0, 3600}}, false);
  ASSERT_TRUE(TimeZone::FromTzif("Test/Good", good).ok());
  const std::vector<std::string> bad = {
      "",
      "TZif",
      "NotATzifFileAtAll" + std::string(40, '\0'),
      good.substr(0, good.size() - 1),                                            // truncated
      TzifPart('\0', {}, false),                                                  // no types
      TzifPart('\0', {.times = {5}, .types = {3}, .offsets = {0}}, false),        // bad type index
      TzifPart('\0', {.times = {9, 5}, .types = {0, 0}, .offsets = {0}}, false),  // unordered
      TzifPart('2', {.offsets = {0}}, false),  // v2 without its second part
  };
  for (const std::string& data : bad) {
    Result<TimeZone> zone = TimeZone::FromTzif("Test/Bad", data);
    EXPECT_FALSE(zone.ok()) << data.size();
    if (!zone.ok()) {
      EXPECT_TRUE(Contains(zone.status().message(), "\"Test/Bad\"")) << zone.status().message();
    }
  }
}

TEST(TimeZoneTest, TzdirOverridesTheZoneDirectory) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("cron_test_tzdir_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "Test");
  {
    std::ofstream out(dir / "Test" / "Plus3", std::ios::binary);
    out << TzifPart('\0', {.offsets = {3 * 3600}}, false);
  }
  const char* old = std::getenv("TZDIR");
  const std::optional<std::string> saved =
      old != nullptr ? std::optional<std::string>(old) : std::nullopt;
  ::setenv("TZDIR", dir.c_str(), 1);
  // 12:00 at +3 is 09:00Z.
  const int64_t next = Next("0 12 * * *", "Test/Plus3", 1773136800000);
  const std::string missing = ParseError("* * * * *", kBerlin);
  if (saved) {
    ::setenv("TZDIR", saved->c_str(), 1);
  } else {
    ::unsetenv("TZDIR");
  }
  std::filesystem::remove_all(dir);
  EXPECT_EQ(next, 1773219600000);  // 2026-03-11T09:00Z
  // Only TZDIR is searched while it is set.
  EXPECT_TRUE(Contains(missing, "unknown time zone")) << missing;
}

}  // namespace
}  // namespace smithers::gateway
