// The Gateway's RPC methods: one table, one row per method. A row names the
// method, the scope it requires (docs/gateway.md "Access control"), whether
// it needs a WebSocket connection, whether it subscribes that connection to
// the run it touched, and its handler: one that replies at once, or one that
// replies later (it waits for a run's thread). Each methods_*.cc file holds the rows
// and handlers of one group (as the scopes group them); Methods() is their
// union. Adding a method is one row and one handler in its group's file.
#ifndef SMITHERS_GATEWAY_METHODS_H_
#define SMITHERS_GATEWAY_METHODS_H_

#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/gateway_internal.h"

namespace smithers::gateway {

// What a handler is called with. `conn` is null over HTTP, never null for a
// method whose row says needs_connection.
struct MethodCall {
  Gateway& gw;
  const Caller& caller;
  const Json& params;
  Connection* conn;
};

// Whether a method's reply subscribes its WebSocket connection to the run the
// reply names (runId): from the run's first event, or from now on.
enum class AutoSubscribe { kNo, kFromStart, kFromNow };

// A row has one of `handler` and `deferred`. A deferred handler checks the
// request on the io thread and calls `done` (on the io thread) once, maybe
// after it returned; it reads `call` only before it returns (what it needs
// later it copies). Nothing slow may run in either on the io thread: a
// module's load or render, a wait for a run, belongs on a run's thread.
struct Method {
  std::string_view name;
  std::string_view scope;
  bool needs_connection = false;
  AutoSubscribe auto_subscribe = AutoSubscribe::kNo;
  Reply (*handler)(const MethodCall&) = nullptr;
  void (*deferred)(const MethodCall&, ReplyFn done) = nullptr;
};

// Each group's rows (methods_reads.cc, methods_streams.cc, methods_runs.cc,
// methods_approvals.cc, methods_cron.cc).
std::span<const Method> ReadMethods();
std::span<const Method> StreamMethods();
std::span<const Method> RunMethods();
std::span<const Method> ApprovalMethods();
std::span<const Method> CronMethods();

// Every method the Gateway serves: the dispatcher, the scope checks
// (RequiredScope), the scope-matrix tests and the fuzzer read this table.
const std::vector<Method>& Methods();
// The row of `name`, or null for a method the Gateway does not serve.
const Method* FindMethod(std::string_view name);

// ---- what handlers share (params.cc) ----

// A string parameter that must be present; "" when missing or not a string
// (the caller reports it).
std::string StringParam(const Json& params, const char* name);
// The audit entry of what `caller` does (Store::Audited): the
// authenticated identity acts; `run_id` puts it in that run's chain.
AuditEntry CallerAudit(const Caller& caller, std::string action, std::string target,
                       const std::string& run_id = "", Json details = Json::object());

// Reads each required string parameter (StringParam) into its `value`; when
// any is missing, the reply to send: InvalidRequest "runId is required" or
// "runId and nodeId are required" (every name asked for).
struct RequiredString {
  const char* name;
  std::string* value;
};
std::optional<Reply> ReadRequired(const Json& params, std::initializer_list<RequiredString> wanted);
// An integer parameter: `fallback` when absent or null; else a JSON integer
// within [lo, hi]. A float, a string or an integer out of range is refused
// (found by the fuzzer: value<int>() of 1e300 is undefined behaviour, and of
// 4294967297 silently 1).
Result<int64_t> IntParam(const Json& obj, const char* name, int64_t fallback, int64_t lo,
                         int64_t hi);
// An optional string parameter: nullopt when absent or null; a value of
// another type is refused, never silently taken for "absent".
Result<std::optional<std::string>> OptionalString(const Json& obj, const char* name);
// An optional object parameter: {} when absent; anything but an object
// (null included: `"input": null` is not "no input") is refused.
Result<Json> OptionalObject(const Json& obj, const char* name);
Reply BadParam(const Status& s);
// The reply for a value nested deeper than max_json_depth (`s` says which):
// InvalidInput with {limit: "max_json_depth", maxJsonDepth}.
Reply TooDeep(const Status& s);
// The optional "input" object of `params` (OptionalObject) into `input`,
// checked to nest at most max_json_depth; when it is not, the reply to send.
std::optional<Reply> ReadInput(const Json& params, Json* input);
// The reply for a store error; NotFound becomes `not_found_code`.
Reply StoreError(const Status& s, const std::string& not_found_code);
// The Gateway's run-id pattern (SPEC 1.10).
bool ValidRunId(const std::string& id);

// launchRun's work, shared by cronRun and the cron sweep: checks the
// request, starts the run (its thread loads, checks and pins the module) and
// calls `done` on the io thread once the run is readable, or with why the
// launch was refused.
void LaunchRunThen(Gateway& gw, const Caller& caller, const Json& params, ReplyFn done);

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_METHODS_H_
