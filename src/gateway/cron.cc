#include "gateway/cron.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <utility>

namespace smithers::gateway {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
// RFC 8536 keeps every UT offset within [-89999, 93599]: the instants that
// show a given wall-clock time all lie within this many seconds of it.
constexpr int64_t kMaxAbsOffset = 93600;
// How far NextAfterMs looks before it gives up: 5 years, leap days included.
constexpr int64_t kHorizonSeconds = (5 * 365 + 2) * kSecondsPerDay;
// 0001-01-01 and 9999-12-31T23:59:59: keeps the date arithmetic far from
// overflow whatever int64 the caller passes.
constexpr int64_t kMinSeconds = -62135596800;
constexpr int64_t kMaxSeconds = 253402300799;
// Larger TZif files do not exist; the cap only stops a stray path reading forever.
constexpr size_t kMaxTzifBytes = size_t{1} << 20;

int64_t FloorDiv(int64_t a, int64_t b) {
  return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0);
}

int64_t FloorMod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }

// ---- proleptic Gregorian calendar (Howard Hinnant's algorithms) ----

int64_t DaysFromCivil(int64_t year, int month, int day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = FloorDiv(year, 400);
  const int64_t yoe = year - era * 400;
  const int64_t mp = (month + 9) % 12;  // March = 0, so the leap day ends the year
  const int64_t doy = (153 * mp + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct CivilDate {
  int64_t year;
  int month;
  int day;
};

CivilDate CivilFromDays(int64_t days) {
  days += 719468;
  const int64_t era = FloorDiv(days, 146097);
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

bool IsLeapYear(int64_t year) { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0); }

int DaysInMonth(int64_t year, int month) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[static_cast<size_t>(month - 1)];
}

// 0 = Sunday; 1970-01-01 was a Thursday.
int Weekday(int64_t days) { return static_cast<int>(FloorMod(days + 4, 7)); }

// The lowest set bit of `mask` at or above `from`; 64 when there is none.
int NextBit(uint64_t mask, int from) {
  const uint64_t rest = mask >> from;
  return rest == 0 ? 64 : from + std::countr_zero(rest);
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// ---- POSIX TZ strings ----
// Each Consume* reads one element from the front of `*s`, advancing it; false
// when the element is not there.

bool ConsumeChar(std::string_view* s, char c) {
  if (s->empty() || s->front() != c) return false;
  s->remove_prefix(1);
  return true;
}

// Up to `max_digits` decimal digits, at least one.
bool ConsumeNumber(std::string_view* s, size_t max_digits, int* out) {
  size_t n = 0;
  int value = 0;
  while (n < s->size() && n < max_digits && (*s)[n] >= '0' && (*s)[n] <= '9') {
    value = value * 10 + ((*s)[n] - '0');
    ++n;
  }
  if (n == 0) return false;
  s->remove_prefix(n);
  *out = value;
  return true;
}

// A zone abbreviation: three or more letters, or "<...>" (which may hold
// digits and signs, as in "<-03>").
bool ConsumeAbbreviation(std::string_view* s) {
  if (ConsumeChar(s, '<')) {
    const size_t close = s->find('>');
    if (close == std::string_view::npos || close == 0) return false;
    s->remove_prefix(close + 1);
    return true;
  }
  size_t n = 0;
  while (n < s->size() && std::isalpha(static_cast<unsigned char>((*s)[n])) != 0) ++n;
  if (n < 3) return false;
  s->remove_prefix(n);
  return true;
}

// [+-]h[h[h]][:mm[:ss]] as seconds, hours at most `max_hours`.
bool ConsumeDuration(std::string_view* s, int max_hours, int32_t* out) {
  int sign = 1;
  if (ConsumeChar(s, '-')) {
    sign = -1;
  } else {
    ConsumeChar(s, '+');
  }
  int hours = 0;
  int minutes = 0;
  int seconds = 0;
  if (!ConsumeNumber(s, 3, &hours) || hours > max_hours) return false;
  if (ConsumeChar(s, ':')) {
    if (!ConsumeNumber(s, 2, &minutes) || minutes > 59) return false;
    if (ConsumeChar(s, ':') && (!ConsumeNumber(s, 2, &seconds) || seconds > 59)) return false;
  }
  *out = sign * (hours * 3600 + minutes * 60 + seconds);
  return true;
}

// "Jn", "n" or "Mm.w.d", then an optional "/time".
bool ConsumeRule(std::string_view* s, PosixTimeZone::Rule* rule) {
  using Kind = PosixTimeZone::Rule::Kind;
  if (ConsumeChar(s, 'J')) {
    rule->kind = Kind::kJulian;
    if (!ConsumeNumber(s, 3, &rule->day) || rule->day < 1 || rule->day > 365) return false;
  } else if (ConsumeChar(s, 'M')) {
    rule->kind = Kind::kMonthWeekDay;
    if (!ConsumeNumber(s, 2, &rule->month) || rule->month < 1 || rule->month > 12 ||
        !ConsumeChar(s, '.') || !ConsumeNumber(s, 1, &rule->week) || rule->week < 1 ||
        rule->week > 5 || !ConsumeChar(s, '.') || !ConsumeNumber(s, 1, &rule->weekday) ||
        rule->weekday > 6) {
      return false;
    }
  } else {
    rule->kind = Kind::kZeroBased;
    if (!ConsumeNumber(s, 3, &rule->day) || rule->day > 365) return false;
  }
  rule->time = 2 * 3600;
  // RFC 8536 §3.3.1 lets the time range over -167..167 hours.
  return !ConsumeChar(s, '/') || ConsumeDuration(s, 167, &rule->time);
}

// Days since the epoch of the day `rule` names in `year`.
int64_t RuleDay(const PosixTimeZone::Rule& rule, int64_t year) {
  using Kind = PosixTimeZone::Rule::Kind;
  const int64_t jan1 = DaysFromCivil(year, 1, 1);
  switch (rule.kind) {
    case Kind::kJulian: return jan1 + rule.day - 1 + (IsLeapYear(year) && rule.day >= 60 ? 1 : 0);
    case Kind::kZeroBased: return jan1 + rule.day;
    case Kind::kMonthWeekDay: break;
  }
  const int64_t first = DaysFromCivil(year, rule.month, 1);
  int day = (rule.weekday - Weekday(first) + 7) % 7 + (rule.week - 1) * 7;
  // Week 5 means the last such weekday, which may be in week 4.
  while (day >= DaysInMonth(year, rule.month)) day -= 7;
  return first + day;
}

// ---- TZif files (RFC 8536) ----

uint32_t ReadBe32(std::string_view d, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(d[at])) << 24 |
         static_cast<uint32_t>(static_cast<unsigned char>(d[at + 1])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(d[at + 2])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(d[at + 3]));
}

uint64_t ReadBe64(std::string_view d, size_t at) {
  return static_cast<uint64_t>(ReadBe32(d, at)) << 32 | ReadBe32(d, at + 4);
}

// The six counts of a TZif header.
struct TzifCounts {
  uint64_t isutcnt = 0;
  uint64_t isstdcnt = 0;
  uint64_t leapcnt = 0;
  uint64_t timecnt = 0;
  uint64_t typecnt = 0;
  uint64_t charcnt = 0;

  // The size of the data block that follows the header.
  uint64_t DataSize(uint64_t time_size) const {
    return timecnt * time_size + timecnt + typecnt * 6 + charcnt + leapcnt * (time_size + 4) +
           isstdcnt + isutcnt;
  }
};

constexpr size_t kTzifHeaderSize = 44;

bool ReadTzifHeader(std::string_view d, size_t at, TzifCounts* c) {
  if (d.size() < at + kTzifHeaderSize || d.substr(at, 4) != "TZif") return false;
  // The counts are unsigned 32-bit, so reading them into uint64 cannot
  // overflow the size arithmetic below.
  c->isutcnt = ReadBe32(d, at + 20);
  c->isstdcnt = ReadBe32(d, at + 24);
  c->leapcnt = ReadBe32(d, at + 28);
  c->timecnt = ReadBe32(d, at + 32);
  c->typecnt = ReadBe32(d, at + 36);
  c->charcnt = ReadBe32(d, at + 40);
  return true;
}

Status ZoneError(std::string_view name, const std::string& what) {
  return InvalidArgumentError("time zone \"" + std::string(name) + "\": " + what);
}

// Zone names are relative paths of letters, digits and "/_+-." (".." is a
// parent directory, so it is refused wherever it appears).
bool IsSafeZoneName(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '/' || c == '_' || c == '+' ||
           c == '-' || c == '.';
  });
}

// ---- cron fields ----

struct CronField {
  const char* name;
  int lo;
  int hi;
  // names[i] is the value names_base + i.
  const char* const* names;
  int name_count;
  int names_base;
  const char* names_hint;  // for messages: what else the field accepts
};

constexpr std::array<const char*, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                     "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<const char*, 7> kWeekdayNames = {"sun", "mon", "tue", "wed",
                                                      "thu", "fri", "sat"};
constexpr std::array<CronField, 5> kCronFields = {{
    {"minute", 0, 59, nullptr, 0, 0, ""},
    {"hour", 0, 23, nullptr, 0, 0, ""},
    {"day-of-month", 1, 31, nullptr, 0, 0, ""},
    {"month", 1, 12, kMonthNames.data(), 12, 1, " or a month name (jan-dec)"},
    // 7 is Sunday too, as in Vixie cron.
    {"day-of-week", 0, 7, kWeekdayNames.data(), 7, 0, " or a weekday name (sun-sat)"},
}};

// Parses one field, with the error context every message starts with.
class FieldParser {
 public:
  FieldParser(std::string_view expression, const CronField& field)
      : expression_(expression), field_(field) {}

  // The field's values as a bit set (bit v = value v).
  Result<uint64_t> Parse(std::string_view text) const {
    uint64_t bits = 0;
    size_t start = 0;
    while (true) {
      const size_t comma = std::min(text.find(',', start), text.size());
      const std::string_view item = text.substr(start, comma - start);
      if (item.empty()) return Error("has an empty list item in \"" + std::string(text) + "\"");
      SMITHERS_ASSIGN_OR_RETURN(const uint64_t item_bits, ParseItem(item));
      bits |= item_bits;
      if (comma == text.size()) return bits;
      start = comma + 1;
    }
  }

 private:
  // "*", "v", "a-b", each optionally followed by "/step".
  Result<uint64_t> ParseItem(std::string_view item) const {
    const size_t slash = item.find('/');
    const bool has_step = slash != std::string_view::npos;
    const std::string_view base = item.substr(0, slash);
    int step = 1;
    if (has_step) {
      const std::string_view step_text = item.substr(slash + 1);
      if (base.empty()) {
        return Error("has no value before the step in \"" + std::string(item) + "\"");
      }
      if (!IsDigits(step_text)) {
        return Error("step \"" + std::string(step_text) + "\" in \"" + std::string(item) +
                     "\" is not a number");
      }
      // Steps above the field's largest value are refused: they could only
      // ever match the first value, which is more likely a typo than meant.
      step = step_text.size() > 4 ? 0 : std::atoi(std::string(step_text).c_str());
      if (step < 1 || step > field_.hi) {
        return Error("step " + std::string(step_text) + " in \"" + std::string(item) +
                     "\" is out of range 1-" + std::to_string(field_.hi));
      }
    }
    int lo = field_.lo;
    int hi = field_.hi;
    if (base != "*") {
      const size_t dash = base.find('-');
      if (dash == std::string_view::npos) {
        SMITHERS_ASSIGN_OR_RETURN(lo, ParseValue(base));
        // "5/15" runs from 5 to the field's end; a lone "5" is just 5.
        hi = has_step ? field_.hi : lo;
      } else {
        const std::string_view from = base.substr(0, dash);
        const std::string_view to = base.substr(dash + 1);
        if (from.empty() || to.empty() || to.find('-') != std::string_view::npos) {
          return Error("range \"" + std::string(base) + "\" is not valid");
        }
        SMITHERS_ASSIGN_OR_RETURN(lo, ParseValue(from));
        SMITHERS_ASSIGN_OR_RETURN(hi, ParseValue(to));
        if (hi < lo) return Error("range \"" + std::string(base) + "\" is reversed");
      }
    }
    uint64_t bits = 0;
    for (int v = lo; v <= hi; v += step) bits |= uint64_t{1} << v;
    return bits;
  }

  // A number in the field's range, or one of its names.
  Result<int> ParseValue(std::string_view token) const {
    if (IsDigits(token)) {
      // More digits than any field needs are out of range however they read.
      const int value = token.size() > 4 ? field_.hi + 1 : std::atoi(std::string(token).c_str());
      if (value < field_.lo || value > field_.hi) {
        return Error("value " + std::string(token) + " is out of range " +
                     std::to_string(field_.lo) + "-" + std::to_string(field_.hi));
      }
      return value;
    }
    std::string lower(token);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (int i = 0; i < field_.name_count; ++i) {
      if (lower == field_.names[i]) return field_.names_base + i;
    }
    return Error("value \"" + std::string(token) + "\" is not a number" + field_.names_hint);
  }

  Status Error(const std::string& what) const {
    return InvalidArgumentError("cron \"" + std::string(expression_) + "\": " + field_.name + " " +
                                what);
  }

  std::string_view expression_;
  const CronField& field_;
};

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::vector<std::string_view> SplitFields(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    if (i > start) fields.push_back(text.substr(start, i - start));
  }
  return fields;
}

// The 5-field form of a macro ("@daily"), case-insensitive; empty when unknown.
std::string_view ExpandMacro(std::string_view macro) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kMacros = {{
      {"@yearly", "0 0 1 1 *"},
      {"@annually", "0 0 1 1 *"},
      {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"},
      {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
  }};
  std::string lower(macro);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [name, fields] : kMacros) {
    if (lower == name) return fields;
  }
  return {};
}

}  // namespace

// ---- PosixTimeZone ----

Result<PosixTimeZone> PosixTimeZone::Parse(std::string_view spec) {
  const auto bad = [&] {
    return InvalidArgumentError("unsupported POSIX TZ string \"" + std::string(spec) + "\"");
  };
  std::string_view s = spec;
  PosixTimeZone tz;
  int32_t west = 0;
  if (!ConsumeAbbreviation(&s) || !ConsumeDuration(&s, 24, &west)) return bad();
  tz.std_offset = -west;
  tz.dst_offset = tz.std_offset;
  if (s.empty()) return tz;
  if (!ConsumeAbbreviation(&s)) return bad();
  tz.has_dst = true;
  tz.dst_offset = tz.std_offset + 3600;  // POSIX: one hour ahead unless given
  if (!s.empty() && s.front() != ',') {
    if (!ConsumeDuration(&s, 24, &west)) return bad();
    tz.dst_offset = -west;
  }
  if (s.empty()) {
    // No rules: POSIX leaves them to the implementation; glibc uses the US ones.
    tz.start = {.kind = Rule::Kind::kMonthWeekDay, .month = 3, .week = 2, .weekday = 0};
    tz.end = {.kind = Rule::Kind::kMonthWeekDay, .month = 11, .week = 1, .weekday = 0};
    return tz;
  }
  if (!ConsumeChar(&s, ',') || !ConsumeRule(&s, &tz.start) || !ConsumeChar(&s, ',') ||
      !ConsumeRule(&s, &tz.end) || !s.empty()) {
    return bad();
  }
  return tz;
}

int32_t PosixTimeZone::OffsetAt(int64_t utc_seconds) const {
  if (!has_dst) return std_offset;
  // The changes of the year the instant falls in, in standard time; the rules
  // give local times, in standard time for the start and daylight for the end.
  const int64_t year = CivilFromDays(FloorDiv(utc_seconds + std_offset, kSecondsPerDay)).year;
  const int64_t start_utc = RuleDay(start, year) * kSecondsPerDay + start.time - std_offset;
  const int64_t end_utc = RuleDay(end, year) * kSecondsPerDay + end.time - dst_offset;
  if (start_utc < end_utc) {
    // Northern hemisphere: daylight time inside the year.
    return utc_seconds >= start_utc && utc_seconds < end_utc ? dst_offset : std_offset;
  }
  // Southern hemisphere (or negative DST, as Europe/Dublin's): daylight time
  // spans the new year.
  return utc_seconds >= end_utc && utc_seconds < start_utc ? std_offset : dst_offset;
}

// ---- TimeZone ----

Result<TimeZone> TimeZone::Load(std::string_view name) {
  if (name.empty() || name == "UTC") {
    TimeZone utc;
    utc.name_ = "UTC";
    return utc;
  }
  if (!IsSafeZoneName(name)) return ZoneError(name, "not a valid zone name");
  const char* tzdir = std::getenv("TZDIR");
  const std::string dir = tzdir != nullptr && *tzdir != '\0' ? tzdir : "/usr/share/zoneinfo";
  const std::string path = dir + "/" + std::string(name);
  std::ifstream in(path, std::ios::binary);
  std::string data;
  std::array<char, 8192> chunk{};
  while (in && data.size() < kMaxTzifBytes) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    data.append(chunk.data(), static_cast<size_t>(in.gcount()));
  }
  // A directory ("America") opens but reads nothing.
  if (data.size() < 4 || data.compare(0, 4, "TZif") != 0) {
    return ZoneError(name, "unknown time zone (no TZif file " + path + ")");
  }
  return FromTzif(name, data);
}

Result<TimeZone> TimeZone::FromTzif(std::string_view name, std::string_view data) {
  TzifCounts c;
  if (!ReadTzifHeader(data, 0, &c)) return ZoneError(name, "not a TZif file");
  const char version = data[4];
  size_t at = kTzifHeaderSize;
  uint64_t time_size = 4;
  if (version != '\0') {
    // Version 2 and later repeat the data with 64-bit times after the v1
    // block, then add the footer: only that second part is read.
    const uint64_t v2_at = at + c.DataSize(4);
    if (v2_at > data.size() || !ReadTzifHeader(data, v2_at, &c)) {
      return ZoneError(name, "truncated TZif file");
    }
    at = v2_at + kTzifHeaderSize;
    time_size = 8;
  }
  const uint64_t data_size = c.DataSize(time_size);
  if (c.typecnt == 0 || c.typecnt > 256 || data_size > data.size() - at) {
    return ZoneError(name, "truncated or corrupt TZif file");
  }
  const size_t index_at = at + c.timecnt * time_size;
  const size_t types_at = index_at + c.timecnt;
  TimeZone zone;
  zone.name_ = std::string(name);
  const auto type_offset = [&](size_t type) {
    return static_cast<int32_t>(ReadBe32(data, types_at + type * 6));
  };
  for (size_t i = 0; i < c.typecnt; ++i) {
    const int32_t offset = type_offset(i);
    if (offset < -89999 || offset > 93599) return ZoneError(name, "UT offset out of range");
  }
  zone.transitions_.reserve(c.timecnt);
  zone.offsets_.reserve(c.timecnt);
  for (size_t i = 0; i < c.timecnt; ++i) {
    const size_t p = at + i * time_size;
    const int64_t when = time_size == 8 ? static_cast<int64_t>(ReadBe64(data, p))
                                        : static_cast<int32_t>(ReadBe32(data, p));
    const size_t type = static_cast<unsigned char>(data[index_at + i]);
    if (type >= c.typecnt) return ZoneError(name, "transition type out of range");
    if (!zone.transitions_.empty() && when <= zone.transitions_.back()) {
      return ZoneError(name, "transitions out of order");
    }
    zone.transitions_.push_back(when);
    zone.offsets_.push_back(type_offset(type));
  }
  // RFC 8536 §3.2: type 0 holds before the first transition.
  zone.initial_offset_ = type_offset(0);
  if (time_size == 8) {
    // The footer: "\n" TZ-string "\n". Empty means no rule (the last type holds).
    const std::string_view rest = data.substr(at + data_size);
    if (rest.size() >= 2 && rest.front() == '\n') {
      const size_t end = rest.find('\n', 1);
      if (end != std::string_view::npos && end > 1) {
        Result<PosixTimeZone> footer = PosixTimeZone::Parse(rest.substr(1, end - 1));
        if (footer.ok()) zone.footer_ = *footer;
      }
    }
  }
  return zone;
}

int32_t TimeZone::OffsetAt(int64_t utc_seconds) const {
  if (transitions_.empty()) return footer_ ? footer_->OffsetAt(utc_seconds) : initial_offset_;
  const auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc_seconds);
  if (it == transitions_.begin()) return initial_offset_;
  const size_t i = static_cast<size_t>(it - transitions_.begin()) - 1;
  // The footer takes over from the last transition (RFC 8536 §3.3).
  if (i + 1 == transitions_.size() && footer_) return footer_->OffsetAt(utc_seconds);
  return offsets_[i];
}

int32_t TimeZone::MinOffsetIn(int64_t from, int64_t to) const {
  int32_t lowest = OffsetAt(from);
  const auto first = std::upper_bound(transitions_.begin(), transitions_.end(), from);
  const auto last = std::upper_bound(transitions_.begin(), transitions_.end(), to);
  for (auto it = first; it != last; ++it) {
    lowest = std::min(lowest, offsets_[static_cast<size_t>(it - transitions_.begin())]);
  }
  if (footer_ && (transitions_.empty() || to >= transitions_.back())) {
    lowest = std::min({lowest, footer_->std_offset, footer_->dst_offset});
  }
  return lowest;
}

std::optional<int64_t> TimeZone::LocalToUtc(int64_t local_seconds) const {
  // An instant u shows `local_seconds` when u + OffsetAt(u) == local_seconds.
  // Every such u is within kMaxAbsOffset of it, so trying each offset in
  // effect somewhere in that window finds them all: none in a gap, two in an
  // overlap (of which the earlier is wanted).
  std::optional<int64_t> earliest;
  const auto try_offset = [&](int32_t offset) {
    const int64_t utc = local_seconds - offset;
    if (OffsetAt(utc) == offset && (!earliest || utc < *earliest)) earliest = utc;
  };
  const int64_t from = local_seconds - kMaxAbsOffset;
  const int64_t to = local_seconds + kMaxAbsOffset;
  try_offset(OffsetAt(from));
  const auto first = std::upper_bound(transitions_.begin(), transitions_.end(), from);
  const auto last = std::upper_bound(transitions_.begin(), transitions_.end(), to);
  for (auto it = first; it != last; ++it) {
    try_offset(offsets_[static_cast<size_t>(it - transitions_.begin())]);
  }
  if (footer_ && (transitions_.empty() || to >= transitions_.back())) {
    try_offset(footer_->std_offset);
    try_offset(footer_->dst_offset);
  }
  return earliest;
}

// ---- CronSchedule ----

bool CronSchedule::DayMatches(int day_of_month, int weekday) const {
  const bool day = (days_ >> day_of_month & 1U) != 0;
  const bool wday = (weekdays_ >> weekday & 1U) != 0;
  return either_day_ ? day || wday : day && wday;
}

int64_t CronSchedule::NextAfterMs(int64_t after_ms) const {
  const int64_t after = FloorDiv(after_ms, 1000);
  if (after < kMinSeconds || after > kMaxSeconds - kHorizonSeconds) return 0;
  const int64_t horizon = after + kHorizonSeconds;
  // Walk the slots in local wall-clock time (counted like epoch seconds),
  // skipping whole months, days and hours that cannot match, so the work is
  // bounded by the days in the horizon rather than its minutes. A fire u >
  // after shows at least after + 1 + the smallest offset in effect from then
  // on, which is where the walk starts.
  const int64_t min_offset = zone_ ? zone_->MinOffsetIn(after, horizon) : 0;
  int64_t local = -FloorDiv(-(after + 1 + min_offset), 60) * 60;  // rounded up to a minute
  const int64_t local_end = horizon + kMaxAbsOffset;
  while (local <= local_end) {
    const int64_t day = FloorDiv(local, kSecondsPerDay);
    const CivilDate date = CivilFromDays(day);
    if ((months_ >> date.month & 1U) == 0) {
      local = (date.month == 12 ? DaysFromCivil(date.year + 1, 1, 1)
                                : DaysFromCivil(date.year, date.month + 1, 1)) *
              kSecondsPerDay;
      continue;
    }
    if (!DayMatches(date.day, Weekday(day))) {
      local = (day + 1) * kSecondsPerDay;
      continue;
    }
    const int64_t second_of_day = local - day * kSecondsPerDay;
    const int hour = static_cast<int>(second_of_day / 3600);
    const int fire_hour = NextBit(hours_, hour);
    if (fire_hour > 23) {
      local = (day + 1) * kSecondsPerDay;
      continue;
    }
    const int minute = fire_hour == hour ? static_cast<int>(second_of_day % 3600 / 60) : 0;
    const int fire_minute = NextBit(minutes_, minute);
    if (fire_minute > 59) {
      local = day * kSecondsPerDay + (int64_t{fire_hour} + 1) * 3600;
      continue;
    }
    const int64_t slot =
        day * kSecondsPerDay + int64_t{fire_hour} * 3600 + int64_t{fire_minute} * 60;
    // A slot in a DST gap has no instant; one in an overlap fires only at
    // its first instant, even when `after` falls between the two.
    const std::optional<int64_t> utc = zone_ ? zone_->LocalToUtc(slot) : slot;
    if (utc && *utc > after) return *utc <= horizon ? *utc * 1000 : 0;
    local = slot + 60;
  }
  return 0;
}

Result<CronSchedule> ParseCron(std::string_view expression, std::string_view time_zone) {
  std::vector<std::string_view> fields = SplitFields(expression);
  if (fields.size() == 1 && fields[0].front() == '@') {
    const std::string_view expanded = ExpandMacro(fields[0]);
    if (expanded.empty()) {
      return InvalidArgumentError("cron \"" + std::string(expression) + "\": unknown macro \"" +
                                  std::string(fields[0]) +
                                  "\" (expected @yearly, @annually, @monthly, @weekly, @daily, "
                                  "@midnight or @hourly)");
    }
    fields = SplitFields(expanded);
  }
  if (fields.size() != 5) {
    return InvalidArgumentError("cron \"" + std::string(expression) +
                                "\": expected 5 fields (minute hour day-of-month month "
                                "day-of-week), got " +
                                std::to_string(fields.size()));
  }
  std::array<uint64_t, 5> bits{};
  for (size_t i = 0; i < fields.size(); ++i) {
    SMITHERS_ASSIGN_OR_RETURN(bits[i], FieldParser(expression, kCronFields[i]).Parse(fields[i]));
  }
  CronSchedule s;
  s.expression_ = std::string(expression);
  s.time_zone_ = time_zone.empty() ? "UTC" : std::string(time_zone);
  s.minutes_ = bits[0];
  s.hours_ = static_cast<uint32_t>(bits[1]);
  s.days_ = static_cast<uint32_t>(bits[2]);
  s.months_ = static_cast<uint32_t>(bits[3]);
  // Fold 7 into 0: both are Sunday.
  s.weekdays_ = static_cast<uint32_t>((bits[4] | bits[4] >> 7) & 0x7f);
  // Vixie cron's test: a field starting with '*' ("*", "*/2") is unrestricted.
  s.either_day_ = fields[2].front() != '*' && fields[4].front() != '*';
  if (s.time_zone_ != "UTC") {
    SMITHERS_ASSIGN_OR_RETURN(TimeZone zone, TimeZone::Load(s.time_zone_));
    s.zone_ = std::make_shared<const TimeZone>(std::move(zone));
  }
  return s;
}

}  // namespace smithers::gateway
