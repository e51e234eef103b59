// Small text helpers shared across modules.
#ifndef SMITHERS_BASE_TEXT_H_
#define SMITHERS_BASE_TEXT_H_

#include <string>
#include <string_view>

namespace smithers::base {

// `s` with A-Z turned to a-z; every other byte unchanged (no locale: the
// same result on every machine, for URL schemes, SQL keywords and names).
std::string AsciiLower(std::string_view s);

}  // namespace smithers::base

#endif  // SMITHERS_BASE_TEXT_H_
