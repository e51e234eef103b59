// Sample(): made-up values for a schema, for renders that run nothing
// (`smithers check`, docs/operations.md "Checking modules before promotion").
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "schema/schema_internal.h"
#include "smithers/schema.h"

namespace smithers::schema {
namespace {

using internal::AsCount;

bool Least(SampleFill fill) { return fill == SampleFill::kLeast; }

// The type to make: the schema's own, or of a list the first that is not
// "null" (kLeast takes "null" when the list has it); "" when it names none.
std::string PickType(const Json& schema, SampleFill fill) {
  auto it = schema.find("type");
  if (it == schema.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  std::string first;
  for (const Json& t : *it) {
    const std::string& name = t.get_ref<const std::string&>();
    if (name == "null" && Least(fill)) return name;
    if (name != "null" && first.empty()) first = name;
  }
  return first.empty() ? "null" : first;
}

// 0 (kLeast) or 1 (kMost), moved inside the schema's bounds; whole for an integer.
Json SampleNumber(const Json& schema, SampleFill fill, bool integer) {
  double v = Least(fill) ? 0 : 1;
  auto bound = [&schema](const char* key, double* out) {
    auto it = schema.find(key);
    if (it == schema.end() || !it->is_number()) return false;
    *out = it->get<double>();
    return true;
  };
  const double step = integer ? 1 : 0.5;
  double b = 0;
  if (bound("minimum", &b) && v < b) v = integer ? std::ceil(b) : b;
  if (bound("exclusiveMinimum", &b) && v <= b) v = integer ? std::floor(b) + 1 : b + step;
  if (bound("maximum", &b) && v > b) v = integer ? std::floor(b) : b;
  if (bound("exclusiveMaximum", &b) && v >= b) v = integer ? std::ceil(b) - 1 : b - step;
  if (integer) return static_cast<int64_t>(v);
  return v;
}

Json SampleString(const Json& schema) {
  std::string s = "sample";
  if (auto it = schema.find("minLength"); it != schema.end()) {
    if (auto n = AsCount(*it); n && s.size() < *n) s.append(std::min<uint64_t>(*n, 4096) - 6, 'x');
  }
  if (auto it = schema.find("maxLength"); it != schema.end()) {
    if (auto n = AsCount(*it); n && s.size() > *n) s.resize(*n);
  }
  return s;
}

Json SampleOf(const Json& schema, SampleFill fill, int depth);

Json SampleArray(const Json& schema, SampleFill fill, int depth) {
  uint64_t n = Least(fill) ? 0 : 1;
  if (auto it = schema.find("minItems"); it != schema.end()) {
    if (auto m = AsCount(*it); m) n = std::max(n, std::min<uint64_t>(*m, 64));
  }
  if (auto it = schema.find("maxItems"); it != schema.end()) {
    if (auto m = AsCount(*it); m) n = std::min(n, *m);
  }
  Json out = Json::array();
  auto items = schema.find("items");
  for (uint64_t i = 0; i < n; ++i) {
    out.push_back(items != schema.end() ? SampleOf(*items, fill, depth + 1) : Json());
  }
  return out;
}

Json SampleObject(const Json& schema, SampleFill fill, int depth) {
  Json out = Json::object();
  auto props = schema.find("properties");
  auto required = schema.find("required");
  auto is_required = [&](const std::string& name) {
    return required != schema.end() &&
           std::find(required->begin(), required->end(), Json(name)) != required->end();
  };
  if (props != schema.end() && props->is_object()) {
    for (auto it = props->begin(); it != props->end(); ++it) {
      if (Least(fill) && !is_required(it.key())) continue;
      out[it.key()] = SampleOf(it.value(), fill, depth + 1);
    }
  }
  // A record (free keys, one value schema): one entry when filling the most.
  auto extra = schema.find("additionalProperties");
  if (!Least(fill) && (props == schema.end() || props->empty()) && extra != schema.end() &&
      extra->is_object()) {
    out["sample"] = SampleOf(*extra, fill, depth + 1);
  }
  return out;
}

Json SampleOf(const Json& schema, SampleFill fill, int depth) {
  if (depth > internal::kMaxSchemaDepth || !schema.is_object()) return nullptr;
  if (auto it = schema.find("const"); it != schema.end()) return *it;
  if (auto it = schema.find("default"); it != schema.end()) return *it;
  if (auto it = schema.find("enum"); it != schema.end() && it->is_array() && !it->empty()) {
    return Least(fill) ? it->front() : it->back();
  }
  if (auto it = schema.find("anyOf"); it != schema.end() && it->is_array() && !it->empty()) {
    const Json* pick = nullptr;
    for (const Json& branch : *it) {
      bool is_null = branch.is_object() && branch.value("type", Json()) == "null";
      if (is_null && Least(fill)) return nullptr;
      if (!is_null && pick == nullptr) pick = &branch;
    }
    return pick != nullptr ? SampleOf(*pick, fill, depth + 1) : Json();
  }
  const std::string type = PickType(schema, fill);
  if (type == "string") return SampleString(schema);
  if (type == "integer") return SampleNumber(schema, fill, true);
  if (type == "number") return SampleNumber(schema, fill, false);
  if (type == "boolean") return !Least(fill);
  if (type == "array") return SampleArray(schema, fill, depth);
  if (type == "object" || schema.contains("properties")) return SampleObject(schema, fill, depth);
  if (type.empty() && !Least(fill)) return Json::object();
  return nullptr;
}

}  // namespace

Json Sample(const Json& schema, SampleFill fill) { return SampleOf(schema, fill, 0); }

}  // namespace smithers::schema
