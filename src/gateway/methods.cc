// The method table (the union of each group's rows) and the dispatch: the
// one place a method's name, scope, transport and auto-subscription are
// read.
#include "gateway/methods.h"

#include <algorithm>
#include <string>
#include <vector>

#include "base/json_limits.h"
#include "gateway/auth.h"

namespace smithers::gateway {

const std::vector<Method>& Methods() {
  static const std::vector<Method> kTable = [] {
    std::vector<Method> all;
    for (std::span<const Method> group :
         {ReadMethods(), StreamMethods(), RunMethods(), ApprovalMethods(), CronMethods()}) {
      all.insert(all.end(), group.begin(), group.end());
    }
    return all;
  }();
  return kTable;
}

const Method* FindMethod(std::string_view name) {
  const std::vector<Method>& table = Methods();
  auto it =
      std::find_if(table.begin(), table.end(), [&](const Method& m) { return m.name == name; });
  return it == table.end() ? nullptr : &*it;
}

Reply Gateway::Call(const Caller& caller, const std::string& method, const Json& params,
                    Connection* conn) {
  int64_t t0 = clock_.MonotonicMs();
  Reply r = CallInner(caller, method, params, conn);
  metrics_.ObserveRpc(method, r.ok ? "ok" : r.code,
                      static_cast<double>(clock_.MonotonicMs() - t0) / 1000.0);
  return r;
}

Reply Gateway::CallInner(const Caller& caller, const std::string& method, const Json& params,
                         Connection* conn) {
  const Method* entry = FindMethod(method);
  if (entry == nullptr) return Reply::Err("METHOD_NOT_FOUND", "unknown method \"" + method + "\"");
  if (!ScopesAllow(caller.scopes, method, entry->scope)) {
    metrics_.auth_failures++;
    return Reply::Err("Forbidden", method + " requires scope " + std::string(entry->scope),
                      {{"requiredScope", entry->scope}});
  }
  if (!params.is_object()) return Reply::Err("InvalidRequest", "params must be a JSON object");
  // The transport checked the request's text; this holds for every caller
  // (and the fuzz target): each value in params nests at most the limit.
  if (Status depth = base::CheckJsonValueDepth(params, base::MaxJsonDepth(), "a value in params",
                                               /*envelope=*/1);
      !depth.ok()) {
    return TooDeep(depth);
  }
  if (entry->needs_connection && conn == nullptr) {
    return Reply::Err("InvalidRequest", method + " needs a WebSocket connection");
  }
  try {
    Reply r = entry->handler({.gw = *this, .caller = caller, .params = params, .conn = conn});
    if (entry->auto_subscribe != AutoSubscribe::kNo) {
      AutoSubscribe(r, conn, entry->auto_subscribe == AutoSubscribe::kFromStart);
    }
    return r;
  } catch (const Json::exception& e) {
    // A parameter of the wrong type (params.value("x", "") on a number, ...).
    return Reply::Err("InvalidRequest", std::string("bad parameter: ") + e.what());
  }
}

}  // namespace smithers::gateway
