// Helpers shared by the schema module's translation units. Not part of the
// public API: include only from src/schema/.
#ifndef SMITHERS_SCHEMA_SCHEMA_INTERNAL_H_
#define SMITHERS_SCHEMA_SCHEMA_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "smithers/json.h"

namespace smithers::schema::internal {

// Set by Optional(), consumed by Object(); ignored by Validate().
inline constexpr char kOptionalMarker[] = "x-smithers-optional";

// Bounds recursion so a hostile or accidental deeply nested schema produces an
// error instead of a stack overflow.
inline constexpr int kMaxSchemaDepth = 128;

// "$.a" for identifier-like keys, "$[\"weird key\"]" otherwise.
std::string ChildPath(const std::string& parent, std::string_view key);
// "$.items[2]".
std::string IndexPath(const std::string& parent, std::size_t index);

// Compact canonical JSON of `value`, shortened for use inside a message.
std::string Preview(const Json& value);

// "null", "boolean", "number", "string", "array" or "object".
const char* TypeName(const Json& value);

// True for JSON integers and for finite floats without a fractional part: JSON
// Schema defines integer-ness by value, not by spelling.
bool IsIntegral(const Json& value);

// The value as a count (minLength, maxItems, ...), or nullopt when it is not a
// non-negative integral number.
std::optional<std::uint64_t> AsCount(const Json& value);

// Three-way comparison of two JSON numbers (<0, 0, >0). Exact for any mix of
// signed and unsigned 64-bit integers.
// REQUIRES: a.is_number() && b.is_number().
int CompareNumbers(const Json& a, const Json& b);

}  // namespace smithers::schema::internal

#endif  // SMITHERS_SCHEMA_SCHEMA_INTERNAL_H_
