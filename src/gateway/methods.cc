// The method table (the union of each group's rows) and the dispatch: the
// one place a method's name, scope, transport and auto-subscription are
// read.
#include "gateway/methods.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
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

void Gateway::Call(const Caller& caller, const std::string& method, const Json& params,
                   Connection* conn, ReplyFn done) {
  int64_t t0 = clock_.MonotonicMs();
  CallInner(caller, method, params, conn, [this, method, t0, done = std::move(done)](Reply r) {
    metrics_.ObserveRpc(method, r.ok ? "ok" : r.code,
                        static_cast<double>(clock_.MonotonicMs() - t0) / 1000.0);
    done(std::move(r));
  });
}

Reply Gateway::CallForTesting(const Caller& caller, const std::string& method, const Json& params,
                              Connection* conn) {
  std::optional<Reply> got;
  Call(caller, method, params, conn, [&got](Reply r) { got = std::move(r); });
  while (!got) {
    std::deque<std::function<void()>> ready;
    {
      std::unique_lock<std::mutex> lock(posted_mu_);
      posted_cv_.wait(lock, [this] { return !posted_.empty(); });
      ready.swap(posted_);
    }
    for (std::function<void()>& fn : ready) fn();
  }
  return std::move(*got);
}

void Gateway::CallInner(const Caller& caller, const std::string& method, const Json& params,
                        Connection* conn, const ReplyFn& done) {
  const Method* entry = FindMethod(method);
  if (entry == nullptr) {
    return done(Reply::Err("METHOD_NOT_FOUND", "unknown method \"" + method + "\""));
  }
  if (!ScopesAllow(caller.scopes, method, entry->scope)) {
    metrics_.auth_failures++;
    return done(Reply::Err("Forbidden", method + " requires scope " + std::string(entry->scope),
                           {{"requiredScope", entry->scope}}));
  }
  if (!params.is_object()) {
    return done(Reply::Err("InvalidRequest", "params must be a JSON object"));
  }
  // The transport checked the request's text; this holds for every caller
  // (and the fuzz target): each value in params nests at most the limit.
  if (Status depth = base::CheckJsonValueDepth(params, base::MaxJsonDepth(), "a value in params",
                                               /*envelope=*/1);
      !depth.ok()) {
    return done(TooDeep(depth));
  }
  if (entry->needs_connection && conn == nullptr) {
    return done(Reply::Err("InvalidRequest", method + " needs a WebSocket connection"));
  }
  const MethodCall call{.gw = *this, .caller = caller, .params = params, .conn = conn};
  if (entry->handler != nullptr) {
    Reply r;
    try {
      r = entry->handler(call);
    } catch (const Json::exception& e) {
      // A parameter of the wrong type (params.value("x", "") on a number, ...).
      return done(Reply::Err("InvalidRequest", std::string("bad parameter: ") + e.what()));
    }
    if (entry->auto_subscribe != AutoSubscribe::kNo) {
      AutoSubscribe(r, conn, entry->auto_subscribe == AutoSubscribe::kFromStart);
    }
    return done(std::move(r));
  }
  // A reply that comes later: the connection is held until then (a closed
  // one is not subscribed, and its `done` drops the reply). The subscription
  // is opened just before the reply is queued, so a stream from the run's
  // first event replays every event after the reply, as for a reply at once.
  std::shared_ptr<Connection> held = conn != nullptr ? conn->shared_from_this() : nullptr;
  auto replied = std::make_shared<bool>(false);
  ReplyFn once = [this, held, replied, subscribe = entry->auto_subscribe, done](Reply r) {
    if (*replied) return;
    *replied = true;
    if (subscribe != AutoSubscribe::kNo && held != nullptr && !held->closing) {
      AutoSubscribe(r, held.get(), subscribe == AutoSubscribe::kFromStart);
    }
    done(std::move(r));
  };
  try {
    entry->deferred(call, once);
  } catch (const Json::exception& e) {
    // Thrown while the request was checked, before anything was started.
    once(Reply::Err("InvalidRequest", std::string("bad parameter: ") + e.what()));
  }
}

}  // namespace smithers::gateway
