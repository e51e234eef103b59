// Small text helpers shared across modules.
#ifndef SMITHERS_BASE_TEXT_H_
#define SMITHERS_BASE_TEXT_H_

#include <string>
#include <string_view>

namespace smithers::base {

// `s` with A-Z turned to a-z; every other byte unchanged (no locale: the
// same result on every machine, for URL schemes, SQL keywords and names).
std::string AsciiLower(std::string_view s);

// The parts (strings or string_views, in any container) with `sep` between
// them: Join({"a", "b"}) == "a, b".
template <typename Parts>
std::string Join(const Parts& parts, std::string_view sep = ", ") {
  std::string out;
  bool first = true;
  for (const auto& part : parts) {
    if (!first) out += sep;
    out += std::string_view(part);
    first = false;
  }
  return out;
}

}  // namespace smithers::base

#endif  // SMITHERS_BASE_TEXT_H_
