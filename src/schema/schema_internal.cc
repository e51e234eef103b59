#include "schema/schema_internal.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "smithers/schema.h"

namespace smithers::schema::internal {
namespace {

constexpr std::size_t kMaxPreviewChars = 80;

bool IsIdentifier(std::string_view key) {
  if (key.empty()) return false;
  auto is_alpha = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!is_alpha(key[0])) return false;
  for (char c : key.substr(1)) {
    if (!is_alpha(c) && !is_digit(c)) return false;
  }
  return true;
}

}  // namespace

std::string ChildPath(const std::string& parent, std::string_view key) {
  if (IsIdentifier(key)) return parent + "." + std::string(key);
  // Quoting through the JSON serializer escapes quotes, backslashes and control
  // characters, so the path stays unambiguous whatever the key holds.
  return parent + "[" + CanonicalJson(Json(std::string(key))) + "]";
}

std::string IndexPath(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string Preview(const Json& value) {
  std::string text = CanonicalJson(value);
  if (text.size() <= kMaxPreviewChars) return text;
  // Cut on a UTF-8 boundary so the message itself stays valid UTF-8.
  std::size_t cut = kMaxPreviewChars;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  return text + "...";
}

const char* TypeName(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: return "number";
    case Json::value_t::string: return "string";
    case Json::value_t::array: return "array";
    case Json::value_t::object: return "object";
    case Json::value_t::binary: return "binary";
    case Json::value_t::discarded: return "discarded";
  }
  return "unknown";
}

bool IsIntegral(const Json& value) {
  if (value.is_number_integer()) return true;  // signed or unsigned
  if (!value.is_number_float()) return false;
  const double d = value.get<double>();
  return std::isfinite(d) && std::trunc(d) == d;
}

std::optional<std::uint64_t> AsCount(const Json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer()) {
    const std::int64_t n = value.get<std::int64_t>();
    if (n < 0) return std::nullopt;
    return static_cast<std::uint64_t>(n);
  }
  if (IsIntegral(value)) {
    const double d = value.get<double>();
    // 2^64 itself is not representable, hence the strict bound.
    if (d < 0 || d >= 18446744073709551616.0) return std::nullopt;
    return static_cast<std::uint64_t>(d);
  }
  return std::nullopt;
}

int CompareNumbers(const Json& a, const Json& b) {
  if (a.is_number_integer() && b.is_number_integer()) {
    const bool a_unsigned = a.is_number_unsigned();
    const bool b_unsigned = b.is_number_unsigned();
    if (!a_unsigned && !b_unsigned) {
      const std::int64_t x = a.get<std::int64_t>();
      const std::int64_t y = b.get<std::int64_t>();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    if (!a_unsigned && a.get<std::int64_t>() < 0) return -1;
    if (!b_unsigned && b.get<std::int64_t>() < 0) return 1;
    const std::uint64_t x =
        a_unsigned ? a.get<std::uint64_t>() : static_cast<std::uint64_t>(a.get<std::int64_t>());
    const std::uint64_t y =
        b_unsigned ? b.get<std::uint64_t>() : static_cast<std::uint64_t>(b.get<std::int64_t>());
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  // long double holds every 64-bit integer exactly on the platforms we build
  // for, so mixing an integer with a float does not round the integer.
  auto widen = [](const Json& n) -> long double {
    if (n.is_number_unsigned()) return static_cast<long double>(n.get<std::uint64_t>());
    if (n.is_number_integer()) return static_cast<long double>(n.get<std::int64_t>());
    return static_cast<long double>(n.get<double>());
  };
  const long double x = widen(a);
  const long double y = widen(b);
  return x < y ? -1 : (x > y ? 1 : 0);
}

}  // namespace smithers::schema::internal
