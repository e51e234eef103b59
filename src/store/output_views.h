// Output views (docs/store_format.md "Output views"), whatever the SQL
// dialect: which outputs may get a view and which of their properties become
// its columns. A backend turns the columns into its own SQL.
#ifndef SMITHERS_STORE_OUTPUT_VIEWS_H_
#define SMITHERS_STORE_OUTPUT_VIEWS_H_

#include <string>
#include <string_view>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers::store {

// [A-Za-z_][A-Za-z0-9_]*: fits inside quotes and a JSON path unescaped.
bool IsSqlIdentifier(std::string_view s);

// The property columns of the view of output `name` with `schema`, in schema
// order: the top-level properties that are identifiers, the first of any
// case-insensitive clash, none shadowing the key columns every view starts
// with (run_id, node_id, iteration) or created_at_ms. InvalidArgument when
// `name` is not an identifier, is reserved (starts with _smithers or
// sqlite_, in any case) or `schema` is not a JSON object.
Result<std::vector<std::string>> OutputViewColumns(const std::string& name, const Json& schema);

}  // namespace smithers::store

#endif  // SMITHERS_STORE_OUTPUT_VIEWS_H_
