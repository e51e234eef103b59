// Validate(): walks the schema and the value together, collecting every
// violation rather than stopping at the first, so a caller (often a model
// asked to fix its output) can see all problems at once.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "schema/schema_internal.h"
#include "smithers/schema.h"

namespace smithers::schema {
namespace {

using internal::AsCount;
using internal::ChildPath;
using internal::CompareNumbers;
using internal::IndexPath;
using internal::Preview;
using internal::TypeName;

// How many of each anyOf branch's violations are quoted in the summary; more
// would bury the useful first lines.
constexpr std::size_t kBranchMessagesShown = 2;

using Violations = std::vector<Violation>;

// JSON Schema counts string length in code points, not bytes.
std::uint64_t CodePointCount(const std::string& s) {
  std::uint64_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

// Compiling a std::regex is far more expensive than matching with it, and the
// same few patterns are checked over and over.
const std::regex* CompiledPattern(const std::string& pattern) {
  constexpr std::size_t kMaxCached = 128;
  thread_local std::unordered_map<std::string, std::regex> cache;
  auto it = cache.find(pattern);
  if (it != cache.end()) return &it->second;
  if (cache.size() >= kMaxCached) cache.clear();
  try {
    return &cache.emplace(pattern, std::regex(pattern, std::regex::ECMAScript)).first->second;
  } catch (const std::regex_error&) {
    return nullptr;
  }
}

bool MatchesType(std::string_view type, const Json& value) {
  if (type == "string") return value.is_string();
  if (type == "number") return value.is_number();
  if (type == "integer") return internal::IsIntegral(value);
  if (type == "boolean") return value.is_boolean();
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "null") return value.is_null();
  return false;
}

// "a", "a or b", "a, b or c".
std::string JoinAlternatives(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += (i + 1 == names.size()) ? " or " : ", ";
    out += names[i];
  }
  return out;
}

class Validator {
 public:
  explicit Validator(Violations* out) : out_(out) {}

  void Check(const Json& schema, const Json& value, const std::string& path, int depth) {
    if (depth > internal::kMaxSchemaDepth) {
      Add(path, "schema is nested too deeply to validate");
      return;
    }
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) Add(path, "no value is allowed here");
      return;
    }
    // Anything else is rejected by CheckSchema(); there is nothing to enforce.
    if (!schema.is_object()) return;

    // Once the type is wrong, the other keywords only restate the same problem
    // (an enum of strings "fails" for a number too), so stop here.
    if (auto it = schema.find("type"); it != schema.end() && !CheckType(*it, value, path)) return;

    CheckEnumAndConst(schema, value, path);
    if (value.is_string()) CheckString(schema, value.get_ref<const std::string&>(), path);
    if (value.is_number()) CheckNumber(schema, value, path);
    if (value.is_array()) CheckArray(schema, value, path, depth);
    if (value.is_object()) CheckObject(schema, value, path, depth);
    if (auto it = schema.find("anyOf"); it != schema.end()) CheckAnyOf(*it, value, path, depth);
  }

 private:
  void Add(const std::string& path, std::string message) {
    out_->push_back({path, std::move(message)});
  }

  // Returns false (after reporting) when `value` has none of the allowed types.
  bool CheckType(const Json& type, const Json& value, const std::string& path) {
    std::vector<std::string> names;
    if (type.is_string()) {
      names.push_back(type.get<std::string>());
    } else if (type.is_array()) {
      for (const Json& t : type) {
        if (t.is_string()) names.push_back(t.get<std::string>());
      }
    } else {
      return true;
    }
    for (const std::string& name : names) {
      if (MatchesType(name, value)) return true;
    }
    Add(path, "expected " + JoinAlternatives(names) + ", got " + TypeName(value));
    return false;
  }

  void CheckEnumAndConst(const Json& schema, const Json& value, const std::string& path) {
    if (auto it = schema.find("enum"); it != schema.end() && it->is_array()) {
      bool found = false;
      // Json's operator== compares numbers by value (1 == 1.0), as JSON Schema requires.
      for (const Json& allowed : *it) {
        if (allowed == value) {
          found = true;
          break;
        }
      }
      if (!found) Add(path, "value " + Preview(value) + " is not one of " + Preview(*it));
    }
    if (auto it = schema.find("const"); it != schema.end() && *it != value) {
      Add(path, "expected constant " + Preview(*it) + ", got " + Preview(value));
    }
  }

  void CheckString(const Json& schema, const std::string& s, const std::string& path) {
    const std::uint64_t length = CodePointCount(s);
    if (auto min = Count(schema, "minLength"); min && length < *min) {
      Add(path, "string shorter than " + std::to_string(*min));
    }
    if (auto max = Count(schema, "maxLength"); max && length > *max) {
      Add(path, "string longer than " + std::to_string(*max));
    }
    auto it = schema.find("pattern");
    if (it == schema.end() || !it->is_string()) return;
    const std::string& pattern = it->get_ref<const std::string&>();
    const std::regex* re = CompiledPattern(pattern);
    if (re == nullptr) {
      Add(path, "pattern " + Preview(*it) + " is not a valid regular expression");
      return;
    }
    try {
      if (!std::regex_search(s, *re)) Add(path, "string does not match pattern " + Preview(*it));
    } catch (const std::regex_error& e) {
      Add(path, "pattern " + Preview(*it) + " could not be evaluated: " + e.what());
    }
  }

  void CheckNumber(const Json& schema, const Json& value, const std::string& path) {
    const std::string shown = Preview(value);
    if (const Json* min = NumberKeyword(schema, "minimum");
        min && CompareNumbers(value, *min) < 0) {
      Add(path, "value " + shown + " is less than minimum " + Preview(*min));
    }
    if (const Json* max = NumberKeyword(schema, "maximum");
        max && CompareNumbers(value, *max) > 0) {
      Add(path, "value " + shown + " is greater than maximum " + Preview(*max));
    }
    if (const Json* min = NumberKeyword(schema, "exclusiveMinimum");
        min && CompareNumbers(value, *min) <= 0) {
      Add(path, "value " + shown + " is not greater than exclusive minimum " + Preview(*min));
    }
    if (const Json* max = NumberKeyword(schema, "exclusiveMaximum");
        max && CompareNumbers(value, *max) >= 0) {
      Add(path, "value " + shown + " is not less than exclusive maximum " + Preview(*max));
    }
  }

  void CheckArray(const Json& schema, const Json& value, const std::string& path, int depth) {
    const std::uint64_t size = value.size();
    if (auto min = Count(schema, "minItems"); min && size < *min) {
      Add(path, "at least " + std::to_string(*min) + (*min == 1 ? " item" : " items") +
                    " required, got " + std::to_string(size));
    }
    if (auto max = Count(schema, "maxItems"); max && size > *max) {
      Add(path, "at most " + std::to_string(*max) + (*max == 1 ? " item" : " items") +
                    " allowed, got " + std::to_string(size));
    }
    auto items = schema.find("items");
    if (items == schema.end()) return;
    for (std::size_t i = 0; i < value.size(); ++i) {
      Check(*items, value[i], IndexPath(path, i), depth + 1);
    }
  }

  void CheckObject(const Json& schema, const Json& value, const std::string& path, int depth) {
    // Missing required properties and present properties are reported in one
    // key-sorted pass, so violations come out in path order.
    std::map<std::string, const Json*> entries;
    for (auto it = value.begin(); it != value.end(); ++it) entries[it.key()] = &it.value();
    if (auto required = schema.find("required"); required != schema.end() && required->is_array()) {
      for (const Json& name : *required) {
        if (name.is_string()) entries.try_emplace(name.get<std::string>(), nullptr);
      }
    }
    const Json* properties = nullptr;
    if (auto it = schema.find("properties"); it != schema.end() && it->is_object()) {
      properties = &*it;
    }
    const Json* additional = nullptr;
    if (auto it = schema.find("additionalProperties"); it != schema.end()) additional = &*it;

    for (const auto& [key, property] : entries) {
      const std::string child = ChildPath(path, key);
      if (property == nullptr) {
        Add(child, "required property " + Preview(Json(key)) + " is missing");
        continue;
      }
      if (properties != nullptr) {
        if (auto sub = properties->find(key); sub != properties->end()) {
          Check(*sub, *property, child, depth + 1);
          continue;
        }
      }
      if (additional == nullptr) continue;
      if (additional->is_boolean() && !additional->get<bool>()) {
        Add(child, "property " + Preview(Json(key)) + " is not allowed");
      } else {
        Check(*additional, *property, child, depth + 1);
      }
    }
  }

  void CheckAnyOf(const Json& branches, const Json& value, const std::string& path, int depth) {
    if (!branches.is_array() || branches.empty()) return;
    std::vector<Violations> failures;
    for (const Json& branch : branches) {
      Violations branch_violations;
      Validator(&branch_violations).Check(branch, value, path, depth + 1);
      if (branch_violations.empty()) return;
      failures.push_back(std::move(branch_violations));
    }
    std::string message = "value matches no anyOf branch:";
    for (std::size_t i = 0; i < failures.size(); ++i) {
      message += (i == 0 ? " [" : "; [") + std::to_string(i) + "]";
      const Violations& f = failures[i];
      for (std::size_t j = 0; j < f.size() && j < kBranchMessagesShown; ++j) {
        message += j == 0 ? " " : ", ";
        // The anyOf path itself is implied; deeper paths are what help.
        if (f[j].path != path) message += f[j].path + ": ";
        message += f[j].message;
      }
      if (f.size() > kBranchMessagesShown) {
        message += " (+" + std::to_string(f.size() - kBranchMessagesShown) + " more)";
      }
    }
    Add(path, std::move(message));
  }

  static std::optional<std::uint64_t> Count(const Json& schema, const char* keyword) {
    auto it = schema.find(keyword);
    if (it == schema.end()) return std::nullopt;
    return AsCount(*it);
  }

  static const Json* NumberKeyword(const Json& schema, const char* keyword) {
    auto it = schema.find(keyword);
    if (it == schema.end() || !it->is_number()) return nullptr;
    return &*it;
  }

  Violations* out_;
};

}  // namespace

std::vector<Violation> Validate(const Json& schema, const Json& value) {
  Violations violations;
  try {
    Validator(&violations).Check(schema, value, "$", 0);
  } catch (const std::exception& e) {
    // Reported rather than swallowed: an unchecked value must not pass.
    violations.push_back({"$", std::string("validation failed: ") + e.what()});
  }
  return violations;
}

}  // namespace smithers::schema
