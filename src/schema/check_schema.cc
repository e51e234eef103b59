// CheckSchema(): rejects anything outside the supported subset, so that a
// schema never silently validates less than its author believes it does
// (e.g. a misspelt "minLenght" or a "format" we do not implement).
#include <exception>
#include <regex>
#include <set>
#include <string>
#include <string_view>

#include "schema/schema_internal.h"
#include "smithers/schema.h"
#include "smithers/status.h"

namespace smithers::schema {
namespace {

using internal::ChildPath;
using internal::IndexPath;
using internal::Preview;
using internal::TypeName;

bool IsKnownType(std::string_view name) {
  return name == "string" || name == "number" || name == "integer" || name == "boolean" ||
         name == "object" || name == "array" || name == "null";
}

Status Malformed(const std::string& path, const std::string& message) {
  return InvalidArgumentError("invalid schema at " + path + ": " + message);
}

Status CheckNode(const Json& schema, const std::string& path, int depth);

Status CheckType(const Json& type, const std::string& path) {
  if (type.is_string()) {
    if (!IsKnownType(type.get_ref<const std::string&>())) {
      return Malformed(path, Preview(type) + " is not a known type name");
    }
    return Status::Ok();
  }
  if (!type.is_array() || type.empty()) {
    return Malformed(path, "must be a type name or a non-empty array of type names");
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < type.size(); ++i) {
    const Json& t = type[i];
    if (!t.is_string() || !IsKnownType(t.get_ref<const std::string&>())) {
      return Malformed(IndexPath(path, i), Preview(t) + " is not a known type name");
    }
    if (!seen.insert(t.get<std::string>()).second) {
      return Malformed(IndexPath(path, i), "duplicate type " + Preview(t));
    }
  }
  return Status::Ok();
}

Status CheckRequired(const Json& required, const std::string& path) {
  if (!required.is_array()) return Malformed(path, "must be an array of strings");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < required.size(); ++i) {
    const Json& name = required[i];
    if (!name.is_string()) {
      return Malformed(IndexPath(path, i), std::string("must be a string, got ") + TypeName(name));
    }
    if (!seen.insert(name.get<std::string>()).second) {
      return Malformed(IndexPath(path, i), "duplicate property name " + Preview(name));
    }
  }
  return Status::Ok();
}

Status CheckPattern(const Json& pattern, const std::string& path) {
  if (!pattern.is_string()) return Malformed(path, "must be a string");
  try {
    std::regex re(pattern.get_ref<const std::string&>(), std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Malformed(path, "not a valid ECMAScript regular expression: " + std::string(e.what()));
  }
  return Status::Ok();
}

// Checks one keyword of an object schema. `path` names the keyword itself.
Status CheckKeyword(const std::string& keyword, const Json& value, const std::string& path,
                    int depth) {
  if (keyword == "type") return CheckType(value, path);
  if (keyword == "properties") {
    if (!value.is_object()) return Malformed(path, "must be an object of schemas");
    for (auto it = value.begin(); it != value.end(); ++it) {
      SMITHERS_RETURN_IF_ERROR(CheckNode(it.value(), ChildPath(path, it.key()), depth + 1));
    }
    return Status::Ok();
  }
  if (keyword == "required") return CheckRequired(value, path);
  if (keyword == "additionalProperties" || keyword == "items") {
    // Draft 2020-12 spells tuple validation "prefixItems"; an array here is the
    // older form, which we do not implement.
    return CheckNode(value, path, depth + 1);
  }
  if (keyword == "enum") {
    if (!value.is_array()) return Malformed(path, "must be an array");
    return Status::Ok();
  }
  if (keyword == "const" || keyword == "default") return Status::Ok();
  if (keyword == "anyOf") {
    if (!value.is_array() || value.empty()) {
      return Malformed(path, "must be a non-empty array of schemas");
    }
    for (std::size_t i = 0; i < value.size(); ++i) {
      SMITHERS_RETURN_IF_ERROR(CheckNode(value[i], IndexPath(path, i), depth + 1));
    }
    return Status::Ok();
  }
  if (keyword == "minLength" || keyword == "maxLength" || keyword == "minItems" ||
      keyword == "maxItems") {
    if (!internal::AsCount(value)) return Malformed(path, "must be a non-negative integer");
    return Status::Ok();
  }
  if (keyword == "minimum" || keyword == "maximum" || keyword == "exclusiveMinimum" ||
      keyword == "exclusiveMaximum") {
    // Draft 4's boolean exclusiveMinimum is deliberately not accepted: it
    // would mean something different from what we enforce.
    if (!value.is_number()) return Malformed(path, "must be a number");
    return Status::Ok();
  }
  if (keyword == "pattern") return CheckPattern(value, path);
  if (keyword == "description" || keyword == "title") {
    if (!value.is_string()) return Malformed(path, "must be a string");
    return Status::Ok();
  }
  if (keyword == internal::kOptionalMarker) {
    if (!value.is_boolean()) return Malformed(path, "must be a boolean");
    return Status::Ok();
  }
  return Malformed(path, "unsupported keyword " + Preview(Json(keyword)));
}

Status CheckNode(const Json& schema, const std::string& path, int depth) {
  if (depth > internal::kMaxSchemaDepth) {
    return Malformed(path, "schema nested more than " + std::to_string(internal::kMaxSchemaDepth) +
                               " levels deep");
  }
  if (schema.is_boolean()) return Status::Ok();
  if (!schema.is_object()) {
    return Malformed(
        path, "a schema must be an object or a boolean, got " + std::string(TypeName(schema)));
  }
  // Keys are visited in sorted order, so "first" problem is deterministic.
  for (auto it = schema.begin(); it != schema.end(); ++it) {
    SMITHERS_RETURN_IF_ERROR(CheckKeyword(it.key(), it.value(), ChildPath(path, it.key()), depth));
  }
  return Status::Ok();
}

}  // namespace

Status CheckSchema(const Json& schema) {
  try {
    return CheckNode(schema, "$", 0);
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("invalid schema: ") + e.what());
  }
}

}  // namespace smithers::schema
