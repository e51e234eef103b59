// Cron schedules for the Gateway: 5-field expressions ("*/15 9-17 * * mon-fri")
// evaluated in UTC or in an IANA time zone read from the system's TZif files.
// Everything here is immutable once built, so one schedule may be shared by
// threads; nothing reads the process's TZ or calls localtime().
#ifndef SMITHERS_GATEWAY_CRON_H_
#define SMITHERS_GATEWAY_CRON_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smithers/status.h"

namespace smithers::gateway {

// A POSIX TZ string, as found in a TZif footer: "EST5EDT,M3.2.0,M11.1.0",
// "IST-5:30", "<-03>3", "AEST-10AEDT,M10.1.0,M4.1.0/3". It gives the offsets
// for instants after a zone's last listed transition.
struct PosixTimeZone {
  // The day a daylight-time change happens each year, and the local time of
  // day (the time then in effect) it happens at.
  struct Rule {
    enum class Kind {
      kJulian,        // "Jn": day n of 1-365, February 29 never counted
      kZeroBased,     // "n": day n of 0-365, February 29 counted
      kMonthWeekDay,  // "Mm.w.d": weekday d (0 = Sunday) of week w (5 = last) of month m
    };
    Kind kind = Kind::kMonthWeekDay;
    int day = 0;  // kJulian and kZeroBased
    int month = 0;
    int week = 0;
    int weekday = 0;
    int32_t time = 2 * 3600;  // seconds after local midnight; -167h..167h
  };

  // Offsets are seconds east of UTC (the string counts west: "EST5" = -18000).
  int32_t std_offset = 0;
  bool has_dst = false;
  int32_t dst_offset = 0;
  Rule start;  // daylight time starts (given in standard time)
  Rule end;    // daylight time ends (given in daylight time)

  // InvalidArgument naming `spec` when it is not a TZ string of the forms
  // above (a DST name without rules gets the US rules, as glibc does).
  static Result<PosixTimeZone> Parse(std::string_view spec);
  int32_t OffsetAt(int64_t utc_seconds) const;
};

// The UTC offsets of a time zone over time, from a TZif file (RFC 8536).
class TimeZone {
 public:
  // "" and "UTC" are UTC without reading a file; anything else is the TZif
  // file of that name under $TZDIR, or /usr/share/zoneinfo when TZDIR is
  // unset. InvalidArgument naming the zone when the name is not a plain
  // relative path (leading '/', "..", odd characters) or no such zone exists.
  static Result<TimeZone> Load(std::string_view name);
  // Parses a TZif file's bytes (versions 1-4; the 64-bit data when present,
  // and the footer for instants after the last transition). A footer this
  // cannot parse is ignored: the last transition's offset then holds.
  static Result<TimeZone> FromTzif(std::string_view name, std::string_view data);

  const std::string& name() const { return name_; }
  // Seconds east of UTC in effect at `utc_seconds`.
  int32_t OffsetAt(int64_t utc_seconds) const;
  // The earliest instant (UTC seconds) at which the zone's clocks show
  // `local_seconds` (a wall-clock time counted like epoch seconds); nullopt
  // when a transition skips that wall-clock time.
  std::optional<int64_t> LocalToUtc(int64_t local_seconds) const;
  // A lower bound of the offsets in effect during [from, to], exact for
  // the listed transitions (the footer contributes both of its offsets).
  int32_t MinOffsetIn(int64_t from, int64_t to) const;

 private:
  std::string name_;
  std::vector<int64_t> transitions_;  // UTC seconds, ascending
  std::vector<int32_t> offsets_;      // offsets_[i] holds from transitions_[i]
  int32_t initial_offset_ = 0;        // before the first transition
  std::optional<PosixTimeZone> footer_;
};

// A parsed 5-field cron schedule in a time zone.
class CronSchedule {
 public:
  // The first fire time strictly after `after_ms` (Unix epoch milliseconds,
  // UTC), in epoch ms; 0 when there is none within the next 5 years (e.g.
  // "0 0 30 2 *") or `after_ms` lies outside the years 1-9994. The schedule
  // is in local wall-clock time: a local time that a DST change skips does
  // not fire that day, and one that occurs twice fires once, at the first.
  // Seconds are always 0.
  int64_t NextAfterMs(int64_t after_ms) const;
  const std::string& expression() const { return expression_; }
  const std::string& time_zone() const { return time_zone_; }  // "UTC" or an IANA name

 private:
  friend Result<CronSchedule> ParseCron(std::string_view expression, std::string_view time_zone);

  bool DayMatches(int day_of_month, int weekday) const;

  std::string expression_;
  std::string time_zone_;
  // Bit v set = value v matches.
  uint64_t minutes_ = 0;   // 0-59
  uint32_t hours_ = 0;     // 0-23
  uint32_t days_ = 0;      // 1-31
  uint32_t months_ = 0;    // 1-12
  uint32_t weekdays_ = 0;  // 0-6, 0 = Sunday (7 is folded into 0)
  // Both day fields restricted: a day matches when either does (Vixie cron).
  bool either_day_ = false;
  std::shared_ptr<const TimeZone> zone_;  // null = UTC
};

// Parses "minute hour day-of-month month day-of-week":
//  - '*', numbers, lists "1,5,9", ranges "1-5", steps "*/15" and "10-50/10",
//    and "5/15" (= 5-max/15);
//  - month names jan..dec and weekday names sun..sat, case-insensitive, also
//    in ranges ("mon-fri"); day-of-week 0-7, where 0 and 7 are Sunday;
//  - the macros @yearly @annually @monthly @weekly @daily @midnight @hourly.
// As in Vixie cron, when both day-of-month and day-of-week are restricted a
// day matches if either does, otherwise both must; a field counts as
// unrestricted when it starts with '*' (so "*/2" does too).
// Errors are InvalidArgument naming the field and the bad token, e.g.
//   cron "61 * * * *": minute value 61 is out of range 0-59
// or the time zone (see TimeZone::Load; "" means UTC).
Result<CronSchedule> ParseCron(std::string_view expression, std::string_view time_zone = "UTC");

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_CRON_H_
