// The one nesting limit for JSON values (docs/security.md "JSON depth"):
// every JSON document that comes from outside (request bodies and frames,
// run input, signal data, task outputs, cron input, tokens files) and every
// conversion between JSON and Lua is checked against it BEFORE anything
// recurses over the value, so a deep document is refused with a clear error
// instead of overflowing a stack (a recursive copy, dump or validation) or
// Lua's value stack.
//
// Depth counts arrays and objects open at once: a scalar is 0, `[]` and `{}`
// are 1, `{"a":[1]}` is 2. A value may nest MaxJsonDepth() levels (default
// 64; the Gateway's --max-json-depth / gateway.toml `max_json_depth`, the
// CLI's --max-json-depth). Output schemas are not values: they may nest
// deeper.
//
//   SMITHERS_RETURN_IF_ERROR(base::CheckJsonDepth(body, base::MaxJsonDepth() + 2, "the request"));
//   SMITHERS_ASSIGN_OR_RETURN(Json input, base::ParseJsonLimited(text, base::MaxJsonDepth(),
//   "--input"));
#ifndef SMITHERS_BASE_JSON_LIMITS_H_
#define SMITHERS_BASE_JSON_LIMITS_H_

#include <string_view>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers::base {

constexpr int kDefaultMaxJsonDepth = 64;
// The largest depth that can be configured: far below what the recursive
// code (nlohmann's copy and dump, schema validation, Lua conversion) can
// take on a thread's stack.
constexpr int kMaxJsonDepthCeiling = 1000;

// The process-wide limit (thread-safe). Set once at start-up from the
// configuration; clamped to [1, kMaxJsonDepthCeiling].
int MaxJsonDepth();
void SetMaxJsonDepth(int depth);

// Scans JSON text without parsing it (no recursion, no allocation but the
// path of an error) and refuses a document that nests deeper than
// `max_depth` + `envelope`: InvalidArgument "WHAT nests deeper than
// MAX_DEPTH levels of arrays and objects (max_json_depth) at $.a[0]...".
// `envelope` is for documents that wrap values (a request: the body and its
// params); the message names the values' limit and the path from the root.
// Strings (with escaped quotes and brackets inside) are skipped. Text that
// is not JSON passes when it stays within the depth: the parser reports it.
Status CheckJsonDepth(std::string_view text, int max_depth, std::string_view what = "JSON",
                      int envelope = 0);

// The same for a value already built, iteratively.
Status CheckJsonValueDepth(const Json& value, int max_depth, std::string_view what = "JSON",
                           int envelope = 0);

// CheckJsonDepth, then parses: InvalidArgument "WHAT is not valid JSON: ..."
// for text that does not parse.
Result<Json> ParseJsonLimited(std::string_view text, int max_depth, std::string_view what = "JSON");

}  // namespace smithers::base

#endif  // SMITHERS_BASE_JSON_LIMITS_H_
