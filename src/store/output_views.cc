#include "store/output_views.h"

#include <set>
#include <string>

#include "base/text.h"

namespace smithers::store {
namespace {}  // namespace

bool IsSqlIdentifier(std::string_view s) {
  auto is_alpha = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.empty() || !is_alpha(s[0])) return false;
  for (char c : s) {
    if (!is_alpha(c) && !is_digit(c)) return false;
  }
  return true;
}

Result<std::vector<std::string>> OutputViewColumns(const std::string& name, const Json& schema) {
  if (!IsSqlIdentifier(name)) {
    return InvalidArgumentError("output name \"" + name +
                                "\" cannot name a view: use [A-Za-z_][A-Za-z0-9_]*");
  }
  const std::string lower = base::AsciiLower(name);
  if (lower.starts_with("_smithers") || lower.starts_with("sqlite_")) {
    return InvalidArgumentError("output name \"" + name +
                                "\" is reserved (names starting with _smithers or sqlite_)");
  }
  if (!schema.is_object()) {
    return InvalidArgumentError("schema of output \"" + name + "\" is not a JSON object");
  }
  // SQL column names are case-insensitive: keep the first of any clash, and
  // never shadow the key columns every view starts with.
  std::set<std::string> taken = {"run_id", "node_id", "iteration", "created_at_ms"};
  std::vector<std::string> columns;
  auto properties = schema.find("properties");
  if (properties != schema.end() && properties->is_object()) {
    for (const auto& [property, unused] : properties->items()) {
      if (!IsSqlIdentifier(property) || !taken.insert(base::AsciiLower(property)).second) continue;
      columns.push_back(property);
    }
  }
  return columns;
}

}  // namespace smithers::store
