// Output and input schemas.
//
// A schema is a JSON Schema document (a draft 2020-12 subset), built with the
// functions below and checked with Validate():
//
//   using namespace smithers::schema;
//   Json s = Object({{"message", String()}, {"n", Optional(Integer())}});
//   for (const Violation& v : Validate(s, value)) std::cerr << v.path << ": " << v.message;
//   std::string version = Hash(s);   // SHA-256 of the canonical JSON
//
// Supported keywords: type (string, number, integer, boolean, object, array,
// null, or an array of these), properties, required, additionalProperties
// (bool or schema), items, enum, const, anyOf, minLength, maxLength, minimum,
// maximum, exclusiveMinimum, exclusiveMaximum, minItems, maxItems, pattern,
// description, title, default. CheckSchema() rejects any other keyword, so a
// schema never silently validates less than it says.
#ifndef SMITHERS_SCHEMA_H_
#define SMITHERS_SCHEMA_H_

#include <string>
#include <utility>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers::schema {

// Builders. Each returns a JSON Schema document.
Json String();
Json Number();
Json Integer();
Json Boolean();
Json Null();
// {"enum": [...]} of strings.
Json Enum(const std::vector<std::string>& values);
// {"const": value}.
Json Literal(const Json& value);
Json Array(const Json& items);
// An object whose keys are free and whose values all match `values`.
Json Record(const Json& values);
// An object with the given properties; every property is required unless it was
// wrapped in Optional(). Unknown properties are allowed (and kept).
Json Object(const std::vector<std::pair<std::string, Json>>& properties);
// Marks a property schema as optional inside Object(). Outside an object it is
// the schema itself.
Json Optional(const Json& schema);
// The schema or null.
Json Nullable(const Json& schema);
// Adds "description".
Json Describe(const Json& schema, const std::string& description);

// One reason a value does not match. `path` is a JSONPath-like location:
// "$", "$.a", "$.items[2].name".
struct Violation {
  std::string path;
  std::string message;
};

// Every violation of `value` against `schema` (empty when valid).
// REQUIRES: CheckSchema(schema).ok().
std::vector<Violation> Validate(const Json& schema, const Json& value);

// Checks that `schema` uses only supported keywords and well-formed values.
Status CheckSchema(const Json& schema);

// "$.a: expected string, got number; $.b: required property missing"
std::string FormatViolations(const std::vector<Violation>& violations);

// Canonical JSON text: object keys sorted, no insignificant whitespace.
std::string CanonicalJson(const Json& value);

// Lower-case hex SHA-256 of CanonicalJson(schema): identifies a schema version.
std::string Hash(const Json& schema);

// How Sample() fills what a schema leaves open.
enum class SampleFill {
  // The least: required properties only, false, 0 (or the bound nearest
  // it), arrays of minItems items, the first enum value, null where allowed.
  kLeast,
  // The most: every property, true, 1 (or the nearest bound), one item
  // (or minItems), the last enum value, the first branch that is not null.
  kMost,
};

// A made-up value for `schema` (`smithers check`'s sample input and task
// outputs): "default" or "const" when the schema has one, else per type as
// `fill` says; strings are "sample", padded or cut to minLength and
// maxLength. It matches every supported keyword but `pattern`, and a schema
// without "type" gets null (kLeast) or {} (kMost).
// REQUIRES: CheckSchema(schema).ok().
Json Sample(const Json& schema, SampleFill fill);

}  // namespace smithers::schema

#endif  // SMITHERS_SCHEMA_H_
