// What the method handlers share: reading parameters, store errors as replies.
#include <cstdint>
#include <optional>
#include <regex>
#include <string>

#include "base/json_limits.h"
#include "gateway/methods.h"

namespace smithers::gateway {

// The Gateway's run-id pattern (SPEC 1.10).
bool ValidRunId(const std::string& id) {
  static const std::regex kPattern("^[a-z0-9_-][a-z0-9_.-]{0,63}$");
  return std::regex_match(id, kPattern);
}

// An integer parameter: `fallback` when absent or null; else a JSON integer
// within [lo, hi]. A float, a string or an integer out of range is refused
// (found by the fuzzer: value<int>() of 1e300 is undefined behaviour, and of
// 4294967297 silently 1).
Result<int64_t> IntParam(const Json& obj, const char* name, int64_t fallback, int64_t lo,
                         int64_t hi) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return fallback;
  bool in_range = false;
  int64_t v = 0;
  if (it->is_number_unsigned()) {
    auto u = it->get<uint64_t>();
    in_range = u <= static_cast<uint64_t>(hi);
    v = static_cast<int64_t>(u);
  } else if (it->is_number_integer()) {
    v = it->get<int64_t>();
    in_range = true;
  }
  if (!in_range || v < lo || v > hi) {
    return InvalidArgumentError(std::string(name) + " must be an integer in " + std::to_string(lo) +
                                ".." + std::to_string(hi));
  }
  return v;
}

// An optional string parameter: nullopt when absent or null; a value of
// another type is refused, never silently taken for "absent".
Result<std::optional<std::string>> OptionalString(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return InvalidArgumentError(std::string(name) + " must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

// An optional object parameter: {} when absent; anything but an object
// (null included: `"input": null` is not "no input") is refused.
Result<Json> OptionalObject(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return Json::object();
  if (!it->is_object()) {
    return InvalidArgumentError(std::string(name) + " must be a JSON object, not " +
                                (it->is_null() ? std::string("null") : it->type_name()));
  }
  return *it;
}

Reply BadParam(const Status& s) { return Reply::Err("InvalidRequest", s.message()); }

Reply StoreError(const Status& s, const std::string& not_found_code) {
  switch (s.code()) {
    case StatusCode::kNotFound: return Reply::Err(not_found_code, s.message());
    case StatusCode::kInvalidArgument: return Reply::Err("InvalidInput", s.message());
    case StatusCode::kFailedPrecondition: return Reply::Err("RUN_NOT_ACTIVE", s.message());
    case StatusCode::kAborted: return Reply::Err("Busy", s.message());
    case StatusCode::kPermissionDenied: return Reply::Err("Forbidden", s.message());
    default: return Reply::Err("Internal", s.message());
  }
}

// A string parameter that must be present; "" when missing (the caller reports it).
std::string StringParam(const Json& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

Reply TooDeep(const Status& s) {
  return Reply::Err("InvalidInput", s.message(),
                    {{"limit", "max_json_depth"}, {"maxJsonDepth", base::MaxJsonDepth()}});
}

std::optional<Reply> ReadInput(const Json& params, Json* input) {
  Result<Json> got = OptionalObject(params, "input");
  if (!got.ok()) return BadParam(got.status());
  if (Status depth = base::CheckJsonValueDepth(*got, base::MaxJsonDepth(), "the input");
      !depth.ok()) {
    return TooDeep(depth);
  }
  *input = std::move(got).value();
  return std::nullopt;
}

AuditEntry CallerAudit(const Caller& caller, std::string action, std::string target,
                       const std::string& run_id, Json details) {
  // "grant", not "tokenId": a key naming a token is redacted whole.
  if (!caller.token_id.empty()) details["grant"] = caller.token_id;
  details["role"] = caller.role;
  return {.actor = caller.user_id,
          .actor_via = caller.via.empty() ? "system" : caller.via,
          .action = std::move(action),
          .target = std::move(target),
          .run_id = run_id,
          .details = std::move(details)};
}

std::optional<Reply> ReadRequired(const Json& params,
                                  std::initializer_list<RequiredString> wanted) {
  bool missing = false;
  std::string names;
  for (const RequiredString& w : wanted) {
    *w.value = StringParam(params, w.name);
    missing = missing || w.value->empty();
    names += (names.empty() ? "" : " and ") + std::string(w.name);
  }
  if (!missing) return std::nullopt;
  return Reply::Err("InvalidRequest",
                    names + (wanted.size() == 1 ? " is required" : " are required"));
}

}  // namespace smithers::gateway
