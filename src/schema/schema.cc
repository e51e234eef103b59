// Builders, canonical serialisation and hashing. Validation lives in
// validate.cc and schema checking in check_schema.cc.
#include "smithers/schema.h"

#include <cmath>
#include <exception>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "schema/schema_internal.h"

namespace smithers::schema {
namespace {

using internal::kOptionalMarker;

Json TypeSchema(const char* type) {
  Json s = Json::object();
  s["type"] = type;
  return s;
}

// Builders that add keywords need an object. `true` and `false` are valid
// whole schemas, so they are rewritten to object equivalents first.
Json AsObjectSchema(const Json& schema) {
  if (!schema.is_boolean()) return schema;
  if (schema.get<bool>()) return Json::object();
  Json never = Json::object();
  never["anyOf"] = Json::array({false});
  return never;
}

// Removes the Optional() marker, reporting whether it was set.
bool TakeOptionalMarker(Json* schema) {
  if (!schema->is_object()) return false;
  auto it = schema->find(kOptionalMarker);
  if (it == schema->end()) return false;
  const bool optional = it->is_boolean() && it->get<bool>();
  schema->erase(it);
  return optional;
}

// Floats with an integral value print as integers so that 3 and 3.0, which
// JSON Schema treats as equal, canonicalise (and hash) identically. Beyond
// 2^53 a double no longer denotes a unique integer, so those keep float form.
void AppendNumber(const Json& value, std::string* out) {
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9007199254740992.0) {
      *out += std::to_string(static_cast<long long>(d));
      return;
    }
  }
  *out += value.dump();
}

void AppendCanonical(const Json& value, std::string* out) {
  switch (value.type()) {
    case Json::value_t::object: {
      out->push_back('{');
      bool first = true;
      // Json's object type is a std::map, so iteration is already in key order.
      for (auto it = value.begin(); it != value.end(); ++it) {
        if (!first) out->push_back(',');
        first = false;
        *out += Json(it.key()).dump(-1, ' ', false, Json::error_handler_t::replace);
        out->push_back(':');
        AppendCanonical(it.value(), out);
      }
      out->push_back('}');
      return;
    }
    case Json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const Json& element : value) {
        if (!first) out->push_back(',');
        first = false;
        AppendCanonical(element, out);
      }
      out->push_back(']');
      return;
    }
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: AppendNumber(value, out); return;
    default:
      // Invalid UTF-8 is replaced rather than thrown on: a canonical form must
      // exist for every value we are handed.
      *out += value.dump(-1, ' ', false, Json::error_handler_t::replace);
      return;
  }
}

}  // namespace

Json String() { return TypeSchema("string"); }
Json Number() { return TypeSchema("number"); }
Json Integer() { return TypeSchema("integer"); }
Json Boolean() { return TypeSchema("boolean"); }
Json Null() { return TypeSchema("null"); }

Json Enum(const std::vector<std::string>& values) {
  Json s = TypeSchema("string");
  s["enum"] = values;
  return s;
}

Json Literal(const Json& value) {
  Json s = Json::object();
  s["const"] = value;
  return s;
}

Json Array(const Json& items) {
  Json s = TypeSchema("array");
  s["items"] = items;
  return s;
}

Json Record(const Json& values) {
  Json s = TypeSchema("object");
  s["additionalProperties"] = values;
  return s;
}

Json Object(const std::vector<std::pair<std::string, Json>>& properties) {
  Json props = Json::object();
  std::vector<std::string> order;
  std::map<std::string, bool> optional;
  // A repeated name replaces the earlier schema, as assigning a map key would,
  // but keeps its first position in "required".
  for (const auto& [name, schema] : properties) {
    Json property = schema;
    const bool is_optional = TakeOptionalMarker(&property);
    if (!props.contains(name)) order.push_back(name);
    props[name] = std::move(property);
    optional[name] = is_optional;
  }
  Json required = Json::array();
  for (const std::string& name : order) {
    if (!optional[name]) required.push_back(name);
  }
  Json s = TypeSchema("object");
  s["properties"] = std::move(props);
  s["required"] = std::move(required);
  return s;
}

Json Optional(const Json& schema) {
  Json s = AsObjectSchema(schema);
  if (s.is_object()) s[kOptionalMarker] = true;
  return s;
}

Json Nullable(const Json& schema) {
  Json inner = schema;
  // Hoisted so Object() still sees Nullable(Optional(x)) as optional.
  const bool optional = TakeOptionalMarker(&inner);
  Json s = Json::object();
  s["anyOf"] = Json::array({std::move(inner), Null()});
  if (optional) s[kOptionalMarker] = true;
  return s;
}

Json Describe(const Json& schema, const std::string& description) {
  Json s = AsObjectSchema(schema);
  if (s.is_object()) s["description"] = description;
  return s;
}

std::string FormatViolations(const std::vector<Violation>& violations) {
  std::string out;
  for (const Violation& v : violations) {
    if (!out.empty()) out += "; ";
    out += v.path + ": " + v.message;
  }
  return out;
}

std::string CanonicalJson(const Json& value) {
  try {
    std::string out;
    AppendCanonical(value, &out);
    return out;
  } catch (const std::exception&) {
    // Only allocation failure can get here; an empty string is never the
    // canonical form of a real value, so callers can tell.
    return "";
  }
}

std::string Hash(const Json& schema) { return base::Sha256Hex(CanonicalJson(schema)); }

}  // namespace smithers::schema
