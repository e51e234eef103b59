// The one JSON value type used across the engine, the store and the wire.
#ifndef SMITHERS_JSON_H_
#define SMITHERS_JSON_H_

#include <nlohmann/json.hpp>

namespace smithers {
using Json = nlohmann::json;
}  // namespace smithers

#endif  // SMITHERS_JSON_H_
