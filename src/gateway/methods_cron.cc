// The cron methods (scopes cron:read, cron:write): list, create, delete and
// run schedules; and the sweep that fires the due ones (FireDueCron).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "gateway/cron.h"
#include "gateway/methods.h"

namespace smithers::gateway {
namespace {

// A cron row as Smithers' GatewayCronRow, with our own fields beside.
Json CronJson(const Gateway& gw, const CronRecord& c) {
  std::string path;
  if (auto w = gw.workflows().find(c.workflow); w != gw.workflows().end()) path = w->second.path;
  return {
      {"cronId", c.cron_id},
      {"workflow", c.workflow},
      {"workflowPath", path},
      {"pattern", c.pattern},
      {"timeZone", c.time_zone},
      {"input", c.input},
      {"enabled", c.enabled},
      {"createdAtMs", c.created_at_ms},
      {"lastRunAtMs", c.last_run_at_ms == 0 ? Json() : Json(c.last_run_at_ms)},
      {"nextRunAtMs", c.next_run_at_ms == 0 ? Json() : Json(c.next_run_at_ms)},
      {"lastRunId", c.last_run_id.empty() ? Json() : Json(c.last_run_id)},
      {"lastError", c.last_error.empty() ? Json() : Json(c.last_error)},
      {"errorJson", c.last_error.empty() ? Json() : Json(Json{{"message", c.last_error}}.dump())}};
}

Reply CronList(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  Result<Json> filter = OptionalObject(params, "filter");
  if (!filter.ok()) return BadParam(filter.status());
  std::string workflow = filter->value("workflow", "");
  Result<std::vector<CronRecord>> rows = gw.store().ListCron();
  if (!rows.ok()) return StoreError(rows.status(), "CronNotFound");
  Json list = Json::array();
  for (const CronRecord& c : *rows) {
    if (workflow.empty() || c.workflow == workflow) list.push_back(CronJson(gw, c));
  }
  return Reply::Ok(std::move(list));
}

Reply CronCreate(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  std::string workflow, pattern;
  if (auto bad = ReadRequired(params, {{"workflow", &workflow}, {"pattern", &pattern}})) {
    return *bad;
  }
  if (gw.workflows().count(workflow) == 0) {
    return Reply::Err("WorkflowNotFound", "no workflow \"" + workflow + "\"");
  }
  std::string tz = params.value("timeZone", "UTC");
  Result<CronSchedule> schedule = ParseCron(pattern, tz);
  if (!schedule.ok()) return Reply::Err("InvalidInput", schedule.status().message());
  Result<std::optional<std::string>> given_id = OptionalString(params, "cronId");
  if (!given_id.ok()) return BadParam(given_id.status());
  std::string id = given_id->value_or("");
  if (id.empty()) id = "cron:" + base::NewUuid().substr(0, 8);
  // The input is checked now, not each time the slot fires.
  Json input;
  if (auto bad = ReadInput(params, &input)) return *bad;
  if (Status clean = CheckInputHasNoSecrets(input); !clean.ok()) {
    return Reply::Err("InvalidInput", clean.message());
  }
  int64_t now = gw.clock().NowMs();
  CronRecord c{.cron_id = id,
               .workflow = workflow,
               .pattern = pattern,
               .time_zone = tz,
               .input = std::move(input),
               .enabled = params.value("enabled", true),
               .created_at_ms = now,
               .next_run_at_ms = schedule->NextAfterMs(now)};
  Status put = gw.store().Audited(
      CallerAudit(call.caller, "cron.create", id, "",
                  {{"workflow", workflow}, {"pattern", pattern}, {"timeZone", tz}}),
      [&] { return gw.store().PutCron(c); });
  if (!put.ok()) return StoreError(put, "CronNotFound");
  return Reply::Ok(CronJson(gw, c));
}

Reply CronDelete(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  std::string id;
  if (auto bad = ReadRequired(params, {{"cronId", &id}})) return *bad;
  Status s = gw.store().Audited(CallerAudit(call.caller, "cron.delete", id),
                                [&] { return gw.store().DeleteCron(id); });
  if (!s.ok()) return StoreError(s, "CronNotFound");
  return Reply::Ok({{"cronId", id}, {"deleted", true}});
}

void CronRun(const MethodCall& call, ReplyFn done) {
  Gateway& gw = call.gw;
  const Caller& caller = call.caller;
  const Json& params = call.params;
  Result<std::optional<std::string>> given_id = OptionalString(params, "cronId");
  if (!given_id.ok()) return done(BadParam(given_id.status()));
  std::string id = given_id->value_or("");
  Json launch = {{"workflow", StringParam(params, "workflow")}};
  if (params.contains("input")) launch["input"] = params["input"];  // LaunchRun checks it
  if (!id.empty()) {
    Result<std::vector<CronRecord>> rows = gw.store().ListCron();
    if (!rows.ok()) return done(StoreError(rows.status(), "CronNotFound"));
    auto it = std::find_if(rows->begin(), rows->end(),
                           [&](const CronRecord& c) { return c.cron_id == id; });
    if (it == rows->end()) return done(Reply::Err("CronNotFound", "no cron schedule " + id));
    launch = {{"workflow", it->workflow},
              {"input", it->input.is_null() ? Json::object() : it->input}};
  }
  LaunchRunThen(gw, caller, launch, [id, done = std::move(done)](Reply r) {
    if (r.ok && !id.empty()) r.payload["cronId"] = id;
    done(std::move(r));
  });
}

}  // namespace

std::span<const Method> CronMethods() {
  static const Method kRows[] = {
      {.name = "cronList", .scope = "cron:read", .handler = CronList},
      {.name = "cronCreate", .scope = "cron:write", .handler = CronCreate},
      {.name = "cronDelete", .scope = "cron:write", .handler = CronDelete},
      {.name = "cronRun",
       .scope = "cron:write",
       .auto_subscribe = AutoSubscribe::kFromStart,
       .deferred = CronRun},
  };
  return kRows;
}

// Fires every enabled schedule that is due: once, however many slots passed
// while the Gateway was down. The claim is a compare-and-swap on
// next_run_at_ms, so two gateways on one database never fire a slot twice.
void Gateway::FireDueCron() {
  // Counted when the sweep is over, whatever it did, its launches included
  // (each holds `count` until its reply): a client that sees the counter
  // advance knows a whole sweep ran after it looked.
  struct CountSweep {
    explicit CountSweep(std::atomic<int64_t>& counter) : n(counter) {}
    ~CountSweep() { n++; }
    std::atomic<int64_t>& n;
  };
  auto count = std::make_shared<CountSweep>(metrics_.cron_sweeps);
  int64_t now = clock_.NowMs();
  Result<std::vector<CronRecord>> rows = store_->ListCron();
  if (!rows.ok()) return;
  for (CronRecord& c : *rows) {
    if (!c.enabled || c.next_run_at_ms == 0 || c.next_run_at_ms > now) continue;
    Result<CronSchedule> schedule = ParseCron(c.pattern, c.time_zone);
    int64_t next = schedule.ok() ? schedule->NextAfterMs(now) : 0;
    std::string run_id = "cron-" + base::NewUuid();
    if (!store_->ClaimCronFire(c.cron_id, c.next_run_at_ms, now, next, run_id).ok()) continue;
    Caller system{.user_id = "cron:gateway", .role = "system", .scopes = {"*"}};
    // Its reply comes on the io thread once the run committed, or was
    // refused (the module's load and first render are the run thread's).
    LaunchRunThen(*this, system,
                  {{"workflow", c.workflow},
                   {"input", c.input.is_null() ? Json::object() : c.input},
                   {"runId", run_id}},
                  [this, c, now, next, run_id, count](const Reply& r) mutable {
                    Log({{"event", "cron.triggered"},
                         {"cronId", c.cron_id},
                         {"workflow", c.workflow},
                         {"runId", run_id},
                         {"ok", r.ok},
                         {"error", r.ok ? Json() : Json(r.message)}});
                    if (!r.ok) {
                      c.last_error = r.message;
                      c.last_run_at_ms = now;
                      c.next_run_at_ms = next;
                      c.last_run_id = run_id;
                      (void)store_->PutCron(c);
                    }
                    Broadcast("cron.triggered",
                              {{"cronId", c.cron_id}, {"workflow", c.workflow}, {"runId", run_id}});
                  });
  }
}

}  // namespace smithers::gateway
