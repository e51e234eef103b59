// The Gateway's core: workflows, in-process runs, the RPC methods, event
// feeds read from the database, cron and the supervisor loop. The network
// side (HTTP, WebSocket, TLS) is in server.cc; both run on one io thread.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>

#include "base/hash.h"
#include "base/json_limits.h"
#include "base/redact.h"
#include "gateway/cron.h"
#include "gateway/gateway_internal.h"
#include "script/lua_workflow.h"

namespace smithers::gateway {

namespace {

constexpr int kEventPage = 500;
constexpr size_t kRingSize = 2048;  // recent events a feed keeps for fan-out

bool IsTerminalStatus(const std::string& s) {
  return s == "finished" || s == "failed" || s == "cancelled";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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

// Whether `o` is the output of an Approval node (its decision), not the row
// of a task that waited at an approval gate (needsApproval): the node has a
// decided approval and the row is that decision (smithers.approvalDecision).
Result<bool> IsApprovalDecision(Store& store, const OutputRecord& o) {
  SMITHERS_ASSIGN_OR_RETURN(std::vector<ApprovalRecord> rows,
                            store.ListApprovals({.run_id = o.run_id}));
  for (const ApprovalRecord& a : rows) {
    if (a.node_id != o.node_id || a.iteration != o.iteration) continue;
    return a.status != "requested" && o.payload.is_object() && o.payload.contains("approved") &&
           o.payload.value("decidedBy", Json()) == Json(a.decided_by);
  }
  return false;
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

}  // namespace

Reply Reply::Ok(Json payload) { return {.ok = true, .payload = std::move(payload)}; }

Reply Reply::Err(std::string code, const std::string& message, Json details) {
  // An error may quote what it refused (a module's message, a value): it
  // passes the redactor like everything else the process emits.
  return {.ok = false,
          .code = std::move(code),
          .message = base::Redact(message),
          .details = std::move(details)};
}

int HttpStatusFor(const std::string& code) {
  static const std::map<std::string, int> kStatus = {{"InvalidRequest", 400},
                                                     {"InvalidInput", 400},
                                                     {"SeqOutOfRange", 400},
                                                     {"InvalidRunId", 400},
                                                     {"PROTOCOL_UNSUPPORTED", 400},
                                                     {"Unauthorized", 401},
                                                     {"Forbidden", 403},
                                                     {"RunNotFound", 404},
                                                     {"NodeNotFound", 404},
                                                     {"NodeHasNoOutput", 404},
                                                     {"CronNotFound", 404},
                                                     {"WorkflowNotFound", 404},
                                                     {"METHOD_NOT_FOUND", 404},
                                                     {"RUN_NOT_ACTIVE", 409},
                                                     {"Busy", 409},
                                                     {"AlreadyDecided", 409},
                                                     {"RunExists", 409},
                                                     {"PayloadTooLarge", 413},
                                                     {"RateLimited", 429},
                                                     {"BackpressureDisconnect", 429},
                                                     {"CONNECTION_LIMIT", 503},
                                                     {"Internal", 500}};
  auto it = kStatus.find(code);
  return it == kStatus.end() ? 500 : it->second;
}

std::string Frame(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// ---- construction, workflows ----

Gateway::Gateway(const GatewayOptions& options, std::unique_ptr<Store> store)
    : opts_(options),
      clock_(options.clock != nullptr ? *options.clock : SystemClock()),
      store_(std::move(store)),
      open_store_(MakeStoreFactory(options.db, GatewayStoreOptions(options))),
      started_at_ms_(clock_.NowMs()) {
  // One limit for every JSON value this process reads (base/json_limits.h).
  base::SetMaxJsonDepth(opts_.max_json_depth);
  char cwd[4096];
  workspace_root_ = getcwd(cwd, sizeof cwd) != nullptr ? cwd : ".";
  ScanWorkflows();
}

Gateway::~Gateway() {
  for (auto& [id, run] : active_) {
    if (run.thread.joinable()) run.thread.detach();  // durable: recovered at the next start
  }
}

void Gateway::ScanWorkflows() {
  DIR* dir = opendir(opts_.workflows_dir.c_str());
  if (dir == nullptr) return;
  std::map<std::string, WorkflowEntry> seen;
  bool changed = !scanned_once_;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 4) != ".lua") continue;
    std::string path = opts_.workflows_dir + "/" + name;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    std::string key = name.substr(0, name.size() - 4);
    auto old = workflows_.find(key);
    if (old != workflows_.end() &&
        old->second.mtime_ns == st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec &&
        old->second.size == st.st_size) {
      seen[key] = old->second;
      continue;
    }
    char resolved[4096];
    std::string source = ReadFile(path);
    WorkflowEntry w{.key = key,
                    .path = realpath(path.c_str(), resolved) != nullptr ? resolved : path,
                    .revision = base::Sha256Hex(source),
                    .mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                    .size = st.st_size,
                    .loaded_at_ms = clock_.NowMs()};
    if (old != workflows_.end() && old->second.revision == w.revision) {
      w.schedule = old->second.schedule;  // touched, not changed
      w.error = old->second.error;
      w.loaded_at_ms = old->second.loaded_at_ms;
    } else {
      LoadEntry(w, source);
      changed = true;
      if (old != workflows_.end()) {
        Log({{"event", "workflow.reloaded"}, {"workflow", key}, {"revision", w.revision}});
      }
    }
    seen[key] = std::move(w);
  }
  closedir(dir);
  for (const auto& [key, w] : workflows_) changed = changed || seen.count(key) == 0;
  workflows_ = std::move(seen);
  scanned_once_ = true;
  if (changed) SyncSchedules();
}

// A new or changed module is loaded once here: its source is pinned by
// revision (a run that starts with it, or resumes later, runs that code
// whatever the file holds then) and its declared schedule is recorded.
void Gateway::LoadEntry(WorkflowEntry& w, const std::string& source) {
  Result<std::unique_ptr<script::LuaWorkflow>> module =
      script::LoadWorkflowModuleSource(w.path, source, {}, module_options());
  if (!module.ok()) {
    w.error = module.status().message();
    Log({{"event", "workflow.load_failed"}, {"workflow", w.key}, {"error", w.error}});
    return;
  }
  // An unknown prop or component in what it renders for an empty input is
  // shown now (listWorkflows), not first at a launch.
  if (Status checked = (*module)->CheckComponents(Json::object()); !checked.ok()) {
    w.error = checked.message();
    Log({{"event", "workflow.load_failed"}, {"workflow", w.key}, {"error", w.error}});
    return;
  }
  // The revision covers the siblings it required (LuaWorkflow::source()).
  w.revision = (*module)->definition().source_hash;
  Status pinned = store_->PutModuleSource({.revision = w.revision,
                                           .path = w.path,
                                           .source = source,
                                           .created_at_ms = clock_.NowMs(),
                                           .siblings = (*module)->siblings()});
  if (!pinned.ok()) {
    Log({{"event", "workflow.pin_failed"}, {"workflow", w.key}, {"error", pinned.message()}});
  }
  w.schedule = (*module)->schedule();
  if (w.schedule) {
    Result<CronSchedule> parsed = ParseCron(w.schedule->cron, w.schedule->time_zone);
    if (!parsed.ok()) {
      w.error = "schedule: " + parsed.status().message();
      Log({{"event", "workflow.schedule_invalid"}, {"workflow", w.key}, {"error", w.error}});
    }
  }
}

// One row `gateway:<key>` per module that declares a schedule (SPEC 5.8). A
// changed schedule replaces the row (next fire from now); an unchanged one
// keeps it, so a slot missed while the Gateway was down still fires once. A
// module that no longer declares one, or is gone, loses its row; a module
// that fails to load keeps the row it had.
void Gateway::SyncSchedules() {
  Result<std::vector<CronRecord>> rows = store_->ListCron();
  if (!rows.ok()) return;
  std::map<std::string, CronRecord> existing;
  for (CronRecord& c : *rows) {
    if (c.cron_id.rfind("gateway:", 0) == 0) existing[c.cron_id] = std::move(c);
  }
  int64_t now = clock_.NowMs();
  for (const auto& [key, w] : workflows_) {
    std::string id = "gateway:" + key;
    auto old = existing.find(id);
    if (!w.error.empty()) {
      if (old != existing.end()) existing.erase(old);  // keep it as it is
      continue;
    }
    if (!w.schedule) continue;  // deleted below if it has a row
    const script::ModuleSchedule& s = *w.schedule;
    if (old != existing.end()) {
      const CronRecord& c = old->second;
      bool same = c.workflow == key && c.pattern == s.cron && c.time_zone == s.time_zone &&
                  c.input == s.input && c.enabled == s.enabled;
      existing.erase(old);
      if (same) continue;
    }
    Result<CronSchedule> parsed = ParseCron(s.cron, s.time_zone);
    if (!parsed.ok()) continue;  // LoadEntry recorded the error
    CronRecord c{.cron_id = id,
                 .workflow = key,
                 .pattern = s.cron,
                 .time_zone = s.time_zone,
                 .input = s.input,
                 .enabled = s.enabled,
                 .created_at_ms = now,
                 .next_run_at_ms = s.enabled ? parsed->NextAfterMs(now) : 0};
    Status put = store_->PutCron(c);
    Log({{"event", "cron.declared"},
         {"cronId", id},
         {"pattern", s.cron},
         {"timeZone", s.time_zone},
         {"ok", put.ok()}});
  }
  for (const auto& [id, c] : existing) {
    if (store_->DeleteCron(id).ok()) Log({{"event", "cron.removed"}, {"cronId", id}});
  }
}

// ---- authentication ----

Result<Caller> Gateway::Authenticate(const Credentials& c) {
  // Expiry is never judged by the test clock (SMITHERS_CLOCK_OFFSET_MS).
  int64_t now = SystemClock().NowMs();
  if (opts_.auth == "none") {
    return Caller{
        .user_id = "operator", .role = "operator", .scopes = {"*"}, .via = "unauthenticated"};
  }
  if (opts_.auth == "trusted-proxy") {
    // Identity headers are believed only from the proxy itself.
    if (!PeerAllowed(opts_.trusted_proxies, c.peer)) {
      return InvalidArgumentError("peer " + c.peer +
                                  " is not a trusted proxy (--trusted-proxy); identity headers "
                                  "are accepted only from one");
    }
    if (c.proxy_user.empty()) return InvalidArgumentError("missing x-user-id");
    Caller caller{.user_id = c.proxy_user,
                  .role = c.proxy_role.empty() ? "operator" : c.proxy_role,
                  .via = "trusted-proxy"};
    std::string scopes = c.proxy_scopes;
    std::replace(scopes.begin(), scopes.end(), ',', ' ');
    std::istringstream in(scopes);
    for (std::string s; in >> s;) caller.scopes.push_back(s);
    if (c.proxy_scopes.empty()) caller.scopes = opts_.proxy_default_scopes;
    if (caller.scopes.empty()) return InvalidArgumentError("missing x-user-scopes");
    return caller;
  }
  if (c.bearer.empty()) return InvalidArgumentError("no credentials (Authorization: Bearer TOKEN)");
  if (opts_.auth == "jwt") {
    SMITHERS_ASSIGN_OR_RETURN(JwtClaims claims, VerifyJwt(c.bearer, opts_.jwt, now));
    return Caller{.user_id = claims.subject,
                  .role = claims.role,
                  .scopes = claims.scopes,
                  .expires_at_ms = claims.expires_at_ms,
                  .via = "jwt"};
  }
  std::string hash = TokenHash(c.bearer);
  // A grant of the --tokens file decides for its token; else the database's.
  if (std::optional<Json> line = token_file_.Refresh(now)) Log(std::move(*line));
  SMITHERS_ASSIGN_OR_RETURN(std::optional<FileGrant> file, token_file_.Check(hash, now));
  if (file) {
    return Caller{.user_id = file->user_id.empty() ? "token:" + file->token_id : file->user_id,
                  .role = file->role,
                  .token_id = file->token_id,
                  .token_hash = hash,
                  .scopes = file->scopes,
                  .expires_at_ms = file->expires_at_ms,
                  .via = "token"};
  }
  SMITHERS_ASSIGN_OR_RETURN(std::optional<TokenGrant> grant, FindGrant(hash));
  if (!grant) return InvalidArgumentError("unknown token");
  if (grant->revoked_at_ms != 0 && grant->revoked_at_ms <= now) {
    return InvalidArgumentError("token " + grant->token_id + " was revoked");
  }
  if (grant->expires_at_ms != 0 && grant->expires_at_ms <= now) {
    return InvalidArgumentError("token " + grant->token_id + " expired");
  }
  return Caller{.user_id = grant->user_id.empty() ? "token:" + grant->token_id : grant->user_id,
                .role = grant->role,
                .token_id = grant->token_id,
                .token_hash = grant->token_hash,
                .scopes = grant->scopes,
                .expires_at_ms = grant->expires_at_ms,
                .via = "token"};
}

// The grant of a token hash, read again only when the database changed since
// it was read (Store::ChangeStamp): a revocation by `smithers token revoke`
// is seen at the next request, and the RPC hot path does not query the
// tokens table per request while nothing is written. Unknown hashes are not
// kept (a client guessing tokens must not fill memory).
Result<std::optional<TokenGrant>> Gateway::FindGrant(const std::string& hash) {
  SMITHERS_ASSIGN_OR_RETURN(std::string stamp, store_->ChangeStamp());
  if (stamp != grants_stamp_ || grants_.size() >= 10000) {
    grants_.clear();
    grants_stamp_ = stamp;
  }
  auto it = grants_.find(hash);
  if (it != grants_.end()) return std::optional<TokenGrant>(it->second);
  SMITHERS_ASSIGN_OR_RETURN(std::optional<TokenGrant> grant, store_->FindToken(hash));
  if (grant) grants_[hash] = *grant;
  return grant;
}

Status Gateway::Revalidate(const Caller& caller) {
  int64_t now = SystemClock().NowMs();
  if (caller.expires_at_ms != 0 && caller.expires_at_ms <= now) {
    return InvalidArgumentError("credentials expired");
  }
  if (caller.token_hash.empty()) return Status::Ok();
  if (std::optional<Json> line = token_file_.Refresh(now)) Log(std::move(*line));
  SMITHERS_ASSIGN_OR_RETURN(std::optional<FileGrant> file,
                            token_file_.Check(caller.token_hash, now));
  if (file) return Status::Ok();
  SMITHERS_ASSIGN_OR_RETURN(std::optional<TokenGrant> grant, FindGrant(caller.token_hash));
  if (!grant) return InvalidArgumentError("token no longer exists");
  if (grant->revoked_at_ms != 0 && grant->revoked_at_ms <= now) {
    return InvalidArgumentError("token " + grant->token_id + " was revoked");
  }
  return Status::Ok();
}

// ---- dispatch ----

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
  const MethodScope* entry = nullptr;
  for (const MethodScope& m : MethodScopes()) {
    if (m.method == method) entry = &m;
  }
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
    return Reply::Err("InvalidInput", depth.message(),
                      {{"limit", "max_json_depth"}, {"maxJsonDepth", base::MaxJsonDepth()}});
  }
  try {
    if (method == "health") return Health();
    if (method == "listWorkflows") return ListWorkflows();
    if (method == "getRun") return GetRun(params);
    if (method == "listRuns") return ListRuns(params);
    if (method == "getNodeOutput") return GetNodeOutput(caller, params);
    if (method == "streamRunEvents" || method == "subscribe") {
      if (conn == nullptr) {
        return Reply::Err("InvalidRequest", method + " needs a WebSocket connection");
      }
      return StreamRunEvents(params, *conn);
    }
    if (method == "unsubscribe") {
      if (conn == nullptr) return Reply::Err("InvalidRequest", "unsubscribe needs a WebSocket");
      return Unsubscribe(params, *conn);
    }
    if (method == "launchRun" || method == "cronRun") {
      Reply r = method == "launchRun" ? LaunchRun(caller, params) : CronRun(caller, params);
      AutoSubscribe(r, conn, true);
      return r;
    }
    if (method == "submitApproval" || method == "submitSignal") {
      Reply r = method == "submitApproval" ? SubmitApproval(caller, params)
                                           : SubmitSignal(caller, params);
      AutoSubscribe(r, conn, false);
      return r;
    }
    if (method == "resumeRun") return ResumeRun(params);
    if (method == "cancelRun") return CancelRunMethod(params);
    if (method == "listApprovals") return ListApprovals(params);
    if (method == "cronList") return CronList(params);
    if (method == "cronCreate") return CronCreate(params);
    if (method == "cronDelete") return CronDelete(params);
  } catch (const Json::exception& e) {
    // A parameter of the wrong type (params.value("x", "") on a number, ...).
    return Reply::Err("InvalidRequest", std::string("bad parameter: ") + e.what());
  }
  return Reply::Err("METHOD_NOT_FOUND", "unknown method \"" + method + "\"");
}

Reply Gateway::StoreError(const Status& s, const std::string& not_found_code) {
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
std::string Gateway::StringParam(const Json& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

Json Gateway::Identity() const {
  return {{"workspaceRoot", workspace_root_},
          {"backend", store_->BackendName()},
          {"version", "0.1.0"},
          {"pid", getpid()},
          {"startedAtMs", started_at_ms_}};
}

Reply Gateway::Health() {
  return Reply::Ok({{"ok", true},
                    {"protocol", kProtocolVersion},
                    {"features", Json::array({"streaming", "runs"})},
                    {"stateVersion", state_version_},
                    {"uptimeMs", clock_.NowMs() - started_at_ms_},
                    {"identity", Identity()},
                    {"workflowsLoaded", workflows_.size()},
                    {"workflowsTotal", workflows_.size()}});
}

Reply Gateway::ListWorkflows() {
  Json list = Json::array();
  for (const auto& [key, w] : workflows_) {
    Json entry = {
        {"key", key}, {"path", w.path}, {"revision", w.revision}, {"loadedAtMs", w.loaded_at_ms}};
    if (w.schedule) {
      entry["schedule"] = {{"cronId", "gateway:" + key},
                           {"pattern", w.schedule->cron},
                           {"timeZone", w.schedule->time_zone},
                           {"enabled", w.schedule->enabled}};
    }
    if (!w.error.empty()) entry["error"] = w.error;
    list.push_back(std::move(entry));
  }
  return Reply::Ok({{"workflows", list}});
}

Json Gateway::RunSummary(RunRecord run) {
  std::string key;
  for (const auto& [k, w] : workflows_) {
    if (w.path == run.workflow_path) key = k;
  }
  Json j = RunRecordJson(std::move(run));
  j["workflowKey"] = key.empty() ? Json() : Json(key);
  return j;
}

Reply Gateway::GetRun(const Json& params) {
  std::string run_id = StringParam(params, "runId");
  if (run_id.empty()) return Reply::Err("InvalidRequest", "runId is required");
  Result<RunRecord> run = store_->GetRun(run_id);
  if (!run.ok()) return StoreError(run.status(), "RunNotFound");
  Result<std::map<std::string, int64_t>> counts = store_->CountNodes(run_id);
  if (!counts.ok()) return StoreError(counts.status(), "RunNotFound");
  Json j = RunSummary(std::move(run).value());
  j["nodeCounts"] = *counts;
  return Reply::Ok(std::move(j));
}

Reply Gateway::ListRuns(const Json& params) {
  Json filter = params.value("filter", Json::object());
  if (!filter.is_object()) return Reply::Err("InvalidRequest", "filter must be an object");
  Result<int64_t> limit = IntParam(filter, "limit", 50, 1, 1000);
  if (!limit.ok()) return Reply::Err("InvalidRequest", limit.status().message());
  Result<int64_t> offset_param = IntParam(filter, "offset", 0, 0, 1000000);
  if (!offset_param.ok()) return Reply::Err("InvalidRequest", offset_param.status().message());
  int offset = static_cast<int>(*offset_param);
  RunFilter f{.status = filter.value("status", ""), .limit = static_cast<int>(*limit) + offset};
  std::string workflow = filter.value("workflow", "");
  Result<std::vector<RunRecord>> runs = store_->ListRuns(f);
  if (!runs.ok()) return StoreError(runs.status(), "RunNotFound");
  Json list = Json::array();
  int skipped = 0;
  for (RunRecord& r : *runs) {
    bool named = r.workflow_name == workflow;
    Json j = RunSummary(std::move(r));
    if (!workflow.empty() && j["workflowKey"] != workflow && !named) continue;
    if (skipped++ < offset) continue;
    list.push_back(std::move(j));
  }
  return Reply::Ok({{"runs", list}});
}

Reply Gateway::GetNodeOutput(const Caller& caller, const Json& params) {
  std::string run_id = StringParam(params, "runId");
  std::string node_id = StringParam(params, "nodeId");
  if (run_id.empty() || node_id.empty()) {
    return Reply::Err("InvalidRequest", "runId and nodeId are required");
  }
  Result<int64_t> iteration_param = IntParam(params, "iteration", -1, 0, INT32_MAX);
  if (!iteration_param.ok()) {
    return Reply::Err("InvalidRequest", iteration_param.status().message());
  }
  Result<std::vector<NodeRecord>> nodes = store_->ListNodes(run_id);
  if (!nodes.ok()) return StoreError(nodes.status(), "RunNotFound");
  if (nodes->empty() && !store_->GetRun(run_id).ok()) {
    return Reply::Err("RunNotFound", "no run " + run_id);
  }
  const NodeRecord* node = nullptr;
  bool want_latest = *iteration_param < 0;
  int iteration = static_cast<int>(*iteration_param);
  for (const NodeRecord& n : *nodes) {
    if (n.node_id != node_id) continue;
    if (want_latest ? (node == nullptr || n.iteration > node->iteration)
                    : n.iteration == iteration) {
      node = &n;
    }
  }
  if (node == nullptr)
    return Reply::Err("NodeNotFound", "no node " + node_id + " in run " + run_id);
  Json out = {{"runId", run_id},
              {"nodeId", node_id},
              {"iteration", node->iteration},
              {"state", node->state},
              {"mounted", node->mounted}};
  if (node->state == "failed") {
    out["status"] = "failed";
    return Reply::Ok(out);
  }
  Result<std::vector<OutputRecord>> outputs = store_->ListOutputs(run_id);
  if (!outputs.ok()) return StoreError(outputs.status(), "RunNotFound");
  for (const OutputRecord& o : *outputs) {
    if (o.node_id == node_id && o.iteration == node->iteration) {
      // An Approval node's output is its decision: approval content.
      if (!MaySee(caller.scopes, "output.approvalDecision")) {
        Result<bool> decision = IsApprovalDecision(*store_, o);
        if (!decision.ok()) return StoreError(decision.status(), "RunNotFound");
        if (*decision) {
          std::string scope(ContentRequiredScope("output.approvalDecision"));
          std::string why = "the output of " + node_id + " is an approval decision (scope " +
                            scope + " reads it)";
          return Reply::Err("Forbidden", why, {{"requiredScope", scope}});
        }
      }
      out["status"] = "produced";
      out["row"] = o.payload;
      out["outputTable"] = o.output_table;
      return Reply::Ok(out);
    }
  }
  out["status"] = "pending";
  out["row"] = nullptr;
  return Reply::Ok(out);
}

// ---- runs ----

Reply Gateway::LaunchRun(const Caller& caller, const Json& params) {
  std::string key = StringParam(params, "workflow");
  if (key.empty()) return Reply::Err("InvalidRequest", "workflow is required");
  ScanWorkflows();  // a file added a moment ago can be launched at once
  auto it = workflows_.find(key);
  if (it == workflows_.end()) return Reply::Err("WorkflowNotFound", "no workflow \"" + key + "\"");
  Result<Json> options = OptionalObject(params, "options");
  if (!options.ok()) return BadParam(options.status());
  Result<std::optional<std::string>> given_id = OptionalString(params, "runId");
  if (!given_id.ok()) return Reply::Err("InvalidRunId", given_id.status().message());
  if (!given_id->has_value()) given_id = OptionalString(*options, "runId");
  if (!given_id.ok()) return Reply::Err("InvalidRunId", "options." + given_id.status().message());
  // A given id is used as given (an empty one is refused, not replaced).
  std::string run_id = given_id->has_value() ? **given_id : base::NewUuid();
  if (!ValidRunId(run_id)) {
    return Reply::Err("InvalidRunId", "runId must match ^[a-z0-9_-][a-z0-9_.-]{0,63}$");
  }
  if (store_->GetRun(run_id).ok() || active_.count(run_id) != 0) {
    return Reply::Err("RunExists", "run " + run_id + " already exists (use resumeRun)");
  }
  Result<Json> input = OptionalObject(params, "input");
  if (!input.ok()) return BadParam(input.status());
  if (Status depth = base::CheckJsonValueDepth(*input, base::MaxJsonDepth(), "the input");
      !depth.ok()) {
    return Reply::Err("InvalidInput", depth.message(),
                      {{"limit", "max_json_depth"}, {"maxJsonDepth", base::MaxJsonDepth()}});
  }
  Result<std::unique_ptr<script::LuaWorkflow>> module =
      script::LoadWorkflowModule(it->second.path, module_options());
  if (!module.ok()) return Reply::Err("InvalidInput", module.status().message());
  Status checked = CheckWorkflow((*module)->definition(), *input);
  if (!checked.ok()) return Reply::Err("InvalidInput", checked.message());
  // Pinned before the run starts: a resume after the file changes runs this code.
  Status pinned = store_->PutModuleSource({.revision = (*module)->definition().source_hash,
                                           .path = it->second.path,
                                           .source = (*module)->source(),
                                           .created_at_ms = clock_.NowMs(),
                                           .siblings = (*module)->siblings()});
  if (!pinned.ok()) return StoreError(pinned, "WorkflowNotFound");
  Result<int64_t> max_concurrency = IntParam(*options, "maxConcurrency", 16, 1, 10000);
  if (!max_concurrency.ok()) {
    return Reply::Err("InvalidRequest", max_concurrency.status().message());
  }
  Json auth = {{"triggeredBy", caller.user_id},
               {"role", caller.role},
               {"scopes", caller.scopes},
               {"createdAt", base::FormatIsoTime(clock_.NowMs())}};
  StartRun({.run_id = run_id,
            .path = it->second.path,
            .input = std::move(input).value(),
            .auth = auth,
            .max_concurrency = static_cast<int>(*max_concurrency)},
           std::move(module).value());
  return Reply::Ok({{"runId", run_id}, {"workflow", key}, {"system", false}});
}

void Gateway::StartRun(RunStart start, std::unique_ptr<script::LuaWorkflow> module) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto started = std::make_shared<std::promise<void>>();
  std::future<void> first_commit = started->get_future();
  std::string run_id = start.run_id;
  // Raw pointer handed to the thread: the module moves with it and is used
  // from that thread only.
  script::LuaWorkflow* preloaded = module.release();
  std::thread t([this, start = std::move(start), preloaded, done, started]() mutable {
    std::unique_ptr<script::LuaWorkflow> module(preloaded);
    Execute(start, std::move(module), *started);
    done->store(true);
    Wake();
  });
  active_[run_id] = ActiveRun{.thread = std::move(t), .done = done};
  metrics_.runs_launched++;
  // A client that launches a run may read it at once: wait for its first
  // commit (a few milliseconds), not longer than 5 s.
  first_commit.wait_for(std::chrono::seconds(5));
}

void Gateway::Execute(const RunStart& start, std::unique_ptr<script::LuaWorkflow> module,
                      std::promise<void>& started) {
  bool signalled = false;
  auto signal = [&]() {
    if (!signalled) started.set_value();
    signalled = true;
  };
  Result<std::unique_ptr<Store>> store = open_store_();
  if (!store.ok()) {
    Log({{"event", "run.error"}, {"runId", start.run_id}, {"error", store.status().message()}});
    return signal();
  }
  if (!module) {
    // A resumed run runs the revision it started with, if it was pinned (the
    // file may have changed since); else the file (the engine refuses a
    // changed source).
    Result<std::unique_ptr<script::LuaWorkflow>> loaded =
        InvalidArgumentError("no pinned revision");
    Result<RunRecord> rec = (*store)->GetRun(start.run_id);
    if (rec.ok() && !rec->workflow_hash.empty()) {
      Result<std::optional<ModuleSource>> pinned = (*store)->GetModuleSource(rec->workflow_hash);
      if (pinned.ok() && pinned->has_value()) {
        loaded = script::LoadWorkflowModuleSource(start.path, (*pinned)->source,
                                                  (*pinned)->siblings, module_options());
      }
    }
    if (!loaded.ok()) loaded = script::LoadWorkflowModule(start.path, module_options());
    if (!loaded.ok()) {
      Log({{"event", "run.error"}, {"runId", start.run_id}, {"error", loaded.status().message()}});
      return signal();
    }
    module = std::move(loaded).value();
  }
  const WorkflowDefinition& wf = module->definition();
  RunOptions ro;
  ro.run_id = start.run_id;
  ro.input = start.input;
  ro.resume = start.resume;
  ro.force = start.force;
  ro.claim_from = start.claim_from;
  ro.max_concurrency = start.max_concurrency;
  ro.clock = &clock_;
  ro.auth = start.auth;
  ro.stop = &stopping_;
  ro.stop_grace_ms = opts_.stop_grace_ms;
  ro.on_event = [this, &signal](const EventRecord& e) {
    signal();
    if (e.type == "NodeStarted") metrics_.tasks_started++;
    if (e.type == "NodeFinished") metrics_.tasks_finished++;
    if (e.type == "NodeFailed") metrics_.tasks_failed++;
    Wake();
  };
  std::vector<std::unique_ptr<Executor>> keep;
  if (opts_.add_executors) keep = opts_.add_executors(wf, ro);
  Result<RunResult> r = RunWorkflow(wf, **store, ro);
  signal();
  Log({{"event", "run.ended"},
       {"runId", start.run_id},
       {"status", r.ok() ? r->status : "error"},
       {"error", r.ok() ? Json() : Json(r.status().message())}});
}

void Gateway::Wake() {
  if (!wake_pending_.exchange(true)) request_pump();
}

Reply Gateway::ResumeRun(const Json& params) {
  std::string run_id = StringParam(params, "runId");
  if (run_id.empty()) return Reply::Err("InvalidRequest", "runId is required");
  Result<Json> options = OptionalObject(params, "options");
  if (!options.ok()) return BadParam(options.status());
  Result<RunRecord> run = store_->GetRun(run_id);
  if (!run.ok()) return StoreError(run.status(), "RunNotFound");
  if (run->status == "finished" || run->status == "failed") {
    return Reply::Ok({{"runId", run_id}, {"status", "already_terminal"}});
  }
  ReapRuns();  // a thread that just ended does not make the run "running"
  if (active_.count(run_id) != 0) return Reply::Ok({{"runId", run_id}, {"status", "running"}});
  bool force = options->value("force", false);
  const std::string& owner = run->runtime_owner_id;
  if (OwnerHoldsRun(*run, clock_.NowMs()) && !force) {
    return Reply::Err("Busy", "run " + run_id + " is owned by live process " + owner);
  }
  Status claimed = store_->ClaimRun(run_id, owner, ThisProcessOwnerId(), clock_.NowMs());
  if (!claimed.ok()) return StoreError(claimed, "RunNotFound");
  StartRun({.run_id = run_id,
            .path = run->workflow_path,
            .resume = true,
            .force = force,
            .claim_from = ThisProcessOwnerId()},
           nullptr);
  return Reply::Ok({{"runId", run_id}, {"status", "resume_requested"}});
}

Reply Gateway::CancelRunMethod(const Json& params) {
  std::string run_id = StringParam(params, "runId");
  if (run_id.empty()) return Reply::Err("InvalidRequest", "runId is required");
  Result<std::string> status = CancelRun(*store_, run_id, clock_);
  if (!status.ok()) return StoreError(status.status(), "RunNotFound");
  Wake();
  return Reply::Ok(
      {{"runId", run_id}, {"status", *status == "cancelled" ? "cancelled" : "cancelling"}});
}

// ---- approvals and signals ----

Json ApprovalJson(const ApprovalRecord& a) {
  return {{"runId", a.run_id},
          {"nodeId", a.node_id},
          {"iteration", a.iteration},
          {"status", a.status},
          {"requestedAtMs", a.requested_at_ms},
          {"owner", a.owner},
          {"fallbackOwner", a.fallback_owner},
          {"request", a.request},
          {"decidedAtMs", a.decided_at_ms == 0 ? Json() : Json(a.decided_at_ms)},
          {"decidedBy", a.decided_by.empty() ? Json() : Json(a.decided_by)},
          {"note", a.note},
          {"allowedUsers", a.allowed_users},
          {"allowedScopes", a.allowed_scopes},
          {"decidedVia", a.decided_via.empty() ? Json() : Json(a.decided_via)},
          {"override", a.decided_override}};
}

Reply Gateway::ListApprovals(const Json& params) {
  Json filter = params.value("filter", Json::object());
  if (!filter.is_object()) return Reply::Err("InvalidRequest", "filter must be an object");
  ApprovalFilter f{.run_id = filter.value("runId", ""),
                   .status = filter.value("status", "requested")};
  if (f.status == "any") f.status.clear();
  Result<std::vector<ApprovalRecord>> rows = store_->ListApprovals(f);
  if (!rows.ok()) return StoreError(rows.status(), "RunNotFound");
  Json list = Json::array();
  for (const ApprovalRecord& a : *rows) list.push_back(ApprovalJson(a));
  return Reply::Ok({{"approvals", list}});
}

Reply Gateway::SubmitApproval(const Caller& caller, const Json& params) {
  std::string run_id = StringParam(params, "runId");
  std::string node_id = StringParam(params, "nodeId");
  if (run_id.empty() || node_id.empty()) {
    return Reply::Err("InvalidRequest", "runId and nodeId are required");
  }
  Json decision = params.value("decision", Json::object());
  bool approved = params.contains("approved") ? params.at("approved").get<bool>()
                                              : decision.value("approved", false);
  std::string note = params.value("note", decision.value("note", ""));
  Result<int64_t> iteration = IntParam(params, "iteration", 0, 0, INT32_MAX);
  if (!iteration.ok()) return Reply::Err("InvalidRequest", iteration.status().message());
  auto by = params.find("decidedBy");
  if (by != params.end() && !by->is_null() && !by->is_string()) {
    return Reply::Err("InvalidRequest", "decidedBy must be a string");
  }
  std::string decided_by = by != params.end() && by->is_string() ? by->get<std::string>() : "";
  auto ov = params.find("override");
  if (ov != params.end() && !ov->is_null() && !ov->is_boolean()) {
    return Reply::Err("InvalidRequest", "override must be a boolean");
  }
  const bool override = ov != params.end() && ov->is_boolean() && ov->get<bool>();
  // The actor is the authenticated identity; only --auth none, where nobody
  // is authenticated, lets the request name it (and records that).
  Decider who{.actor = caller.user_id, .via = caller.via, .override = override};
  if (caller.via == "unauthenticated") {
    if (decided_by.empty()) {
      return Reply::Err("InvalidRequest",
                        "under --auth none a decision must name its decider in decidedBy (it is "
                        "recorded as unauthenticated)");
    }
    who.actor = decided_by;
  } else {
    if (!decided_by.empty() && decided_by != caller.user_id) {
      return Reply::Err("Forbidden", "decidedBy is taken from your credentials (" + caller.user_id +
                                         "); it cannot name " + decided_by);
    }
    who.holds_scope = [&caller](const std::string& scope) {
      return ScopesAllow(caller.scopes, "", scope);
    };
  }
  if (override && !ScopesAllow(caller.scopes, "", "run:admin")) {
    return Reply::Err("Forbidden", "override: true requires scope run:admin",
                      {{"requiredScope", "run:admin"}});
  }
  Result<ApprovalRecord> a = DecideApproval(*store_,
                                            {.run_id = run_id,
                                             .node_id = node_id,
                                             .iteration = static_cast<int>(*iteration),
                                             .approved = approved,
                                             .note = note},
                                            who, clock_.NowMs());
  if (!a.ok()) {
    if (a.status().code() == StatusCode::kFailedPrecondition) {
      return Reply::Err("AlreadyDecided", a.status().message());
    }
    return StoreError(a.status(), "NodeNotFound");
  }
  Log({{"event", "approval.decided"},
       {"runId", run_id},
       {"nodeId", node_id},
       {"iteration", *iteration},
       {"approved", approved},
       {"decidedBy", a->decided_by},
       {"via", a->decided_via},
       {"override", a->decided_override}});
  Supervise();  // resume the run now, not at the next sweep
  Wake();
  return Reply::Ok({{"runId", run_id},
                    {"nodeId", node_id},
                    {"iteration", *iteration},
                    {"approved", approved},
                    {"decidedBy", a->decided_by},
                    {"via", a->decided_via},
                    {"override", a->decided_override}});
}

Reply Gateway::SubmitSignal(const Caller& caller, const Json& params) {
  std::string run_id = StringParam(params, "runId");
  std::string name, corr;
  for (const char* key : {"signalName", "name", "correlationKey", "correlationId"}) {
    Result<std::optional<std::string>> v = OptionalString(params, key);
    if (!v.ok()) return BadParam(v.status());
    std::string& into = key[0] == 'c' ? corr : name;
    if (into.empty() && v->has_value()) into = **v;
  }
  if (run_id.empty() || name.empty()) {
    return Reply::Err("InvalidRequest", "runId and signalName are required");
  }
  Json payload = params.contains("payload") ? params.at("payload") : Json::object();
  if (Status depth = base::CheckJsonValueDepth(payload, base::MaxJsonDepth(), "the payload");
      !depth.ok()) {
    return Reply::Err("InvalidInput", depth.message(),
                      {{"limit", "max_json_depth"}, {"maxJsonDepth", base::MaxJsonDepth()}});
  }
  Result<SignalRecord> sig = store_->AppendSignal({.run_id = run_id,
                                                   .name = name,
                                                   .correlation_id = corr,
                                                   .payload = std::move(payload),
                                                   .received_at_ms = clock_.NowMs(),
                                                   .received_by = caller.user_id});
  if (!sig.ok()) return StoreError(sig.status(), "RunNotFound");
  Supervise();
  Wake();
  return Reply::Ok({{"runId", run_id},
                    {"signalName", name},
                    {"correlationId", corr.empty() ? Json() : Json(corr)},
                    {"seq", sig->seq}});
}

// ---- cron ----

Json CronJson(const CronRecord& c) {
  return {{"cronId", c.cron_id},
          {"workflow", c.workflow},
          {"pattern", c.pattern},
          {"timeZone", c.time_zone},
          {"input", c.input},
          {"enabled", c.enabled},
          {"createdAtMs", c.created_at_ms},
          {"lastRunAtMs", c.last_run_at_ms == 0 ? Json() : Json(c.last_run_at_ms)},
          {"nextRunAtMs", c.next_run_at_ms == 0 ? Json() : Json(c.next_run_at_ms)},
          {"lastRunId", c.last_run_id.empty() ? Json() : Json(c.last_run_id)},
          {"lastError", c.last_error.empty() ? Json() : Json(c.last_error)}};
}

Reply Gateway::CronList(const Json& params) {
  Result<Json> filter = OptionalObject(params, "filter");
  if (!filter.ok()) return BadParam(filter.status());
  std::string workflow = filter->value("workflow", "");
  Result<std::vector<CronRecord>> rows = store_->ListCron();
  if (!rows.ok()) return StoreError(rows.status(), "CronNotFound");
  Json list = Json::array();
  for (const CronRecord& c : *rows) {
    if (workflow.empty() || c.workflow == workflow) list.push_back(CronJson(c));
  }
  return Reply::Ok({{"crons", list}});
}

Reply Gateway::CronCreate(const Json& params) {
  std::string workflow = StringParam(params, "workflow");
  std::string pattern = StringParam(params, "pattern");
  if (workflow.empty() || pattern.empty()) {
    return Reply::Err("InvalidRequest", "workflow and pattern are required");
  }
  if (workflows_.count(workflow) == 0) {
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
  Result<Json> input = OptionalObject(params, "input");
  if (!input.ok()) return BadParam(input.status());
  if (Status depth = base::CheckJsonValueDepth(*input, base::MaxJsonDepth(), "the input");
      !depth.ok()) {
    return Reply::Err("InvalidInput", depth.message(),
                      {{"limit", "max_json_depth"}, {"maxJsonDepth", base::MaxJsonDepth()}});
  }
  if (Status clean = CheckInputHasNoSecrets(*input); !clean.ok()) {
    return Reply::Err("InvalidInput", clean.message());
  }
  int64_t now = clock_.NowMs();
  CronRecord c{.cron_id = id,
               .workflow = workflow,
               .pattern = pattern,
               .time_zone = tz,
               .input = std::move(input).value(),
               .enabled = params.value("enabled", true),
               .created_at_ms = now,
               .next_run_at_ms = schedule->NextAfterMs(now)};
  Status put = store_->PutCron(c);
  if (!put.ok()) return StoreError(put, "CronNotFound");
  return Reply::Ok(CronJson(c));
}

Reply Gateway::CronDelete(const Json& params) {
  std::string id = StringParam(params, "cronId");
  if (id.empty()) return Reply::Err("InvalidRequest", "cronId is required");
  Status s = store_->DeleteCron(id);
  if (!s.ok()) return StoreError(s, "CronNotFound");
  return Reply::Ok({{"cronId", id}, {"deleted", true}});
}

Reply Gateway::CronRun(const Caller& caller, const Json& params) {
  Result<std::optional<std::string>> given_id = OptionalString(params, "cronId");
  if (!given_id.ok()) return BadParam(given_id.status());
  std::string id = given_id->value_or("");
  Json launch = {{"workflow", StringParam(params, "workflow")}};
  if (params.contains("input")) launch["input"] = params["input"];  // LaunchRun checks it
  if (!id.empty()) {
    Result<std::vector<CronRecord>> rows = store_->ListCron();
    if (!rows.ok()) return StoreError(rows.status(), "CronNotFound");
    auto it = std::find_if(rows->begin(), rows->end(),
                           [&](const CronRecord& c) { return c.cron_id == id; });
    if (it == rows->end()) return Reply::Err("CronNotFound", "no cron schedule " + id);
    launch = {{"workflow", it->workflow},
              {"input", it->input.is_null() ? Json::object() : it->input}};
  }
  Reply r = LaunchRun(caller, launch);
  if (r.ok && !id.empty()) r.payload["cronId"] = id;
  return r;
}

// Fires every enabled schedule that is due: once, however many slots passed
// while the Gateway was down. The claim is a compare-and-swap on
// next_run_at_ms, so two gateways on one database never fire a slot twice.
void Gateway::FireDueCron() {
  // Counted when the sweep is over, whatever it did: a client that sees the
  // counter advance knows a whole sweep ran after it looked.
  struct CountSweep {
    std::atomic<int64_t>& n;
    ~CountSweep() { n++; }
  } count{metrics_.cron_sweeps};
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
    Reply r = LaunchRun(system, {{"workflow", c.workflow},
                                 {"input", c.input.is_null() ? Json::object() : c.input},
                                 {"runId", run_id}});
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
  }
}

// ---- the supervisor sweep ----

// Resumes, in this process, runs whose wait is over and runs whose owner is
// gone (this is also the recovery at start-up), and reaps finished threads.
size_t Gateway::ReapRuns() {
  for (auto it = active_.begin(); it != active_.end();) {
    if (it->second.done->load()) {
      it->second.thread.join();
      it = active_.erase(it);
    } else {
      ++it;
    }
  }
  return active_.size();
}

void Gateway::StopRuns() {
  stopping_.store(true);
  for (auto& [id, run] : active_) run.thread.join();
  active_.clear();
}

void Gateway::Supervise() {
  ReapRuns();
  int64_t now = clock_.NowMs();
  (void)store_->EscalateDueApprovals("", now);
  const std::string& me = ThisProcessOwnerId();
  auto resume = [&](const RunRecord& run) {
    if (active_.count(run.run_id) != 0) return;
    if (!store_->ClaimRun(run.run_id, run.runtime_owner_id, me, now).ok()) return;
    Log({{"event", "run.resume"}, {"runId", run.run_id}});
    StartRun({.run_id = run.run_id, .path = run.workflow_path, .resume = true, .claim_from = me},
             nullptr);
  };
  Result<std::vector<ResumableRun>> due = FindResumableRuns(*store_, me, now);
  if (!due.ok()) {
    Log({{"event", "supervise.error"}, {"error", due.status().message()}});
    return;
  }
  for (const ResumableRun& r : *due) resume(r.run);
}

// ---- event streams ----

Reply Gateway::StreamRunEvents(const Json& params, Connection& conn) {
  std::string run_id = StringParam(params, "runId");
  if (run_id.empty()) return Reply::Err("InvalidRequest", "runId is required");
  Result<RunRecord> run = store_->GetRun(run_id);
  if (!run.ok()) return StoreError(run.status(), "RunNotFound");
  int64_t after = -1;
  if (params.contains("afterSeq") && !params.at("afterSeq").is_null()) {
    if (!params.at("afterSeq").is_number_integer()) {
      return Reply::Err("InvalidRequest", "afterSeq must be an integer");
    }
    after = params.at("afterSeq").get<int64_t>();
  }
  // An explicit stream replaces an automatic one of the same run; the frames
  // the automatic one sent are all queued before this reply.
  for (auto it = conn.auto_streams.begin(); it != conn.auto_streams.end();) {
    auto open = conn.streams.find(*it);
    if (open != conn.streams.end() && open->second == run_id) {
      conn.streams.erase(open);
      it = conn.auto_streams.erase(it);
    } else {
      ++it;
    }
  }
  return OpenStream(conn, run_id, after);
}

// Subscribes `conn` to the run's events after `after` (nullopt: after the
// last one there is now).
Reply Gateway::OpenStream(Connection& conn, const std::string& run_id,
                          std::optional<int64_t> after) {
  Feed& feed = feeds_[run_id];
  Poll(run_id, feed);
  int64_t cursor = after.value_or(feed.last_seq);
  if (cursor > feed.last_seq) {
    return Reply::Err("SeqOutOfRange", "afterSeq " + std::to_string(cursor) +
                                           " is past the run's last event " +
                                           std::to_string(feed.last_seq));
  }
  if (conn.streams.size() >= 64)
    return Reply::Err("RateLimited", "too many streams on this connection");
  std::string stream_id = "s" + std::to_string(++next_stream_id_);
  conn.streams[stream_id] = run_id;
  feed.subs.push_back({.conn = conn.weak_from_this(), .stream_id = stream_id, .cursor = cursor});
  Reply r = Reply::Ok({{"streamId", stream_id},
                       {"runId", run_id},
                       {"afterSeq", cursor},
                       {"currentSeq", feed.last_seq}});
  // The events follow the response: replayed once the reply is queued.
  request_pump();
  return r;
}

void Gateway::AutoSubscribe(Reply& reply, Connection* conn, bool from_start) {
  if (!reply.ok || conn == nullptr || !reply.payload.contains("runId")) return;
  const std::string run_id = reply.payload["runId"].get<std::string>();
  for (const auto& [id, streamed] : conn->streams) {
    if (streamed == run_id) return;
  }
  Reply sub = OpenStream(*conn, run_id, from_start ? std::optional<int64_t>(-1) : std::nullopt);
  if (!sub.ok) return;
  std::string stream_id = sub.payload["streamId"].get<std::string>();
  reply.payload["streamId"] = stream_id;
  conn->auto_streams.insert(stream_id);
}

Reply Gateway::Unsubscribe(const Json& params, Connection& conn) {
  std::string stream_id = StringParam(params, "streamId");
  conn.auto_streams.erase(stream_id);
  if (conn.streams.erase(stream_id) == 0) {
    return Reply::Err("InvalidRequest", "no stream " + stream_id + " on this connection");
  }
  return Reply::Ok({{"streamId", stream_id}, {"unsubscribed", true}});
}

// Reads the events after what the feed holds and the run's status.
void Gateway::Poll(const std::string& run_id, Feed& feed) {
  // The status first: a terminal status read before the events guarantees
  // that the events read next include the run's last one (read after, a run
  // that ended in between would look complete with its last events unread).
  Result<RunRecord> run = store_->GetRun(run_id);
  std::string status = run.ok() ? run->status : feed.status;
  while (true) {
    Result<std::vector<EventRecord>> events = store_->ListEvents(run_id, feed.last_seq, kEventPage);
    if (!events.ok()) return;
    for (const EventRecord& e : *events) {
      feed.ring.push_back(MakeRingEvent(e));
      feed.last_seq = e.seq;
      if (feed.ring.size() > kRingSize) feed.ring.pop_front();
      state_version_++;
    }
    if (events->size() < static_cast<size_t>(kEventPage)) break;
  }
  feed.status = status;
}

std::string Gateway::EventPayload(const EventRecord& e) {
  return Frame({{"type", "RunEvent"},
                {"runId", e.run_id},
                {"seq", e.seq},
                {"event", e.type},
                {"timestampMs", e.timestamp_ms},
                {"payload", e.payload}});
}

RingEvent Gateway::MakeRingEvent(const EventRecord& e) {
  RingEvent r{.seq = e.seq, .frame = std::make_shared<const std::string>(EventPayload(e))};
  std::string content = "event." + e.type;
  std::string_view scope = ContentRequiredScope(content);
  if (scope.empty()) return r;
  // The seq stays (a reader sees no gap); what the event says does not.
  Json kept = {{"withheld", true}, {"requiredScope", scope}};
  for (const char* key : {"nodeId", "iteration"}) {
    if (e.payload.is_object() && e.payload.contains(key)) kept[key] = e.payload[key];
  }
  EventRecord shown = e;
  shown.payload = std::move(kept);
  r.content = std::move(content);
  r.withheld = std::make_shared<const std::string>(EventPayload(shown));
  return r;
}

const std::string& Gateway::FrameFor(const Connection& conn, const RingEvent& e) {
  if (e.content.empty() || MaySee(conn.caller.scopes, e.content)) return *e.frame;
  return *e.withheld;
}

// Sends `sub` what it has not seen, oldest first: from the ring when it holds
// them, else from the database; stops at the connection's high-water mark
// (the rest follows when its queue drains). Returns false when the
// subscription is over (connection gone, stream closed or run completed).
bool Gateway::Pump(const std::string& run_id, Feed& feed, Subscriber& sub) {
  std::shared_ptr<Connection> conn = sub.conn.lock();
  if (!conn || conn->closing) return false;
  auto open = conn->streams.find(sub.stream_id);
  if (open == conn->streams.end()) return false;
  while (sub.cursor < feed.last_seq && conn->HasRoom()) {
    if (!feed.ring.empty() && feed.ring.front().seq <= sub.cursor + 1) {
      size_t i = static_cast<size_t>(sub.cursor + 1 - feed.ring.front().seq);
      for (; i < feed.ring.size() && conn->HasRoom(); ++i) {
        conn->SendEvent("run.event", FrameFor(*conn, feed.ring[i]));
        sub.cursor = feed.ring[i].seq;
      }
      continue;
    }
    // Only what the connection has room for: a page read and thrown away
    // would make a slow reader cost the io thread a query per frame.
    Result<std::vector<EventRecord>> page =
        store_->ListEvents(run_id, sub.cursor, std::min(kEventPage, conn->Room()));
    if (!page.ok() || page->empty()) break;
    for (const EventRecord& e : *page) {
      conn->SendEvent("run.event", FrameFor(*conn, MakeRingEvent(e)));
      sub.cursor = e.seq;
      if (!conn->HasRoom()) break;
    }
  }
  if (conn->Overflowing()) {
    metrics_.backpressure_disconnects++;
    conn->SendEvent("run.error", Frame({{"streamId", sub.stream_id},
                                        {"runId", run_id},
                                        {"code", "BackpressureDisconnect"},
                                        {"message", "the client reads too slowly"}}));
    conn->Close(1013, "BackpressureDisconnect");
    return false;
  }
  if (sub.cursor >= feed.last_seq && IsTerminalStatus(feed.status)) {
    conn->SendEvent("run.completed", Frame({{"streamId", sub.stream_id},
                                            {"runId", run_id},
                                            {"status", feed.status},
                                            {"lastSeq", feed.last_seq}}));
    conn->streams.erase(sub.stream_id);
    conn->auto_streams.erase(sub.stream_id);
    return false;
  }
  return true;
}

void Gateway::PumpAll() {
  wake_pending_ = false;
  for (auto it = feeds_.begin(); it != feeds_.end();) {
    Feed& feed = it->second;
    if (!feed.subs.empty()) Poll(it->first, feed);
    for (size_t i = 0; i < feed.subs.size();) {
      if (Pump(it->first, feed, feed.subs[i])) {
        ++i;
      } else {
        feed.subs.erase(feed.subs.begin() + static_cast<long>(i));
      }
    }
    it = feed.subs.empty() ? feeds_.erase(it) : std::next(it);
  }
}

void Gateway::PumpConnection(Connection& conn) {
  std::vector<std::pair<std::string, std::string>> open(conn.streams.begin(), conn.streams.end());
  for (const auto& [stream_id, run_id] : open) {
    auto feed = feeds_.find(run_id);
    if (feed == feeds_.end()) continue;
    auto& subs = feed->second.subs;
    for (size_t i = 0; i < subs.size(); ++i) {
      if (subs[i].stream_id != stream_id) continue;
      if (!Pump(run_id, feed->second, subs[i])) subs.erase(subs.begin() + static_cast<long>(i));
      break;
    }
  }
}

void Gateway::Heartbeats() {
  for (auto& [run_id, feed] : feeds_) {
    for (Subscriber& sub : feed.subs) {
      std::shared_ptr<Connection> conn = sub.conn.lock();
      if (!conn || conn->closing) continue;
      conn->SendEvent(
          "run.heartbeat",
          Frame({{"streamId", sub.stream_id}, {"runId", run_id}, {"ts", clock_.NowMs()}}));
    }
  }
}

void Gateway::Broadcast(const std::string& event, const Json& payload) {
  std::string body = Frame(payload);
  const std::string content = "push." + event;
  for (const std::weak_ptr<Connection>& w : connections_) {
    if (std::shared_ptr<Connection> c = w.lock();
        c && c->authenticated && !c->closing && MaySee(c->caller.scopes, content)) {
      c->SendEvent(event, body);
    }
  }
}

Json Gateway::Hello(const Caller& caller) {
  // What the caller may not see is left out of the snapshot (not emptied: an
  // empty list would say there is none).
  Json snapshot = {{"stateVersion", state_version_}};
  if (MaySee(caller.scopes, "snapshot.runs")) {
    Json runs = Json::array();
    if (Result<std::vector<RunRecord>> recent = store_->ListRuns({.limit = 20}); recent.ok()) {
      for (const RunRecord& r : *recent) runs.push_back(RunSummary(r));
    }
    snapshot["runs"] = std::move(runs);
  }
  if (MaySee(caller.scopes, "snapshot.approvals")) {
    snapshot["approvals"] = ListApprovals(Json::object()).payload.value("approvals", Json::array());
  }
  return {{"protocol", kProtocolVersion},
          {"features", Json::array({"streaming", "runs"})},
          {"identity", Identity()},
          {"policy", {{"heartbeatMs", opts_.heartbeat_ms}}},
          {"auth",
           {{"role", caller.role},
            {"scopes", caller.scopes},
            {"userId", caller.user_id},
            {"tokenId", caller.token_id.empty() ? Json() : Json(caller.token_id)}}},
          {"snapshot", std::move(snapshot)}};
}

void Gateway::Log(Json line) {
  if (opts_.access_log == "-") return;
  // Known secret values and key shapes in any string; key names are not
  // used here (a log line's tokenId is an id, not a secret).
  base::RedactJsonInPlace(line, nullptr, /*secret_keys=*/false);
  line["time"] = base::FormatIsoTime(clock_.NowMs());
  std::lock_guard<std::mutex> lock(log_mu_);
  if (opts_.access_log.empty()) {
    fprintf(stderr, "%s\n", Frame(line).c_str());
  } else {
    if (log_file_ == nullptr) {
      // Created 0600 (0640 with group_readable); an existing file keeps its mode.
      int fd = open(opts_.access_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                    opts_.group_readable ? 0640 : 0600);
      if (fd >= 0) {
        log_file_ = fdopen(fd, "a");
        if (log_file_ == nullptr) close(fd);
      }
    }
    if (log_file_ != nullptr) {
      fprintf(log_file_, "%s\n", Frame(line).c_str());
      fflush(log_file_);
    }
  }
}

void Gateway::ReopenLog() {
  if (opts_.access_log.empty() || opts_.access_log == "-") return;
  {
    std::lock_guard<std::mutex> lock(log_mu_);
    if (log_file_ != nullptr) fclose(log_file_);
    log_file_ = nullptr;
  }
  Log({{"event", "log.reopened"}, {"file", opts_.access_log}});
}

// ---- metrics ----

void Metrics::ObserveRpc(const std::string& method, const std::string& outcome, double seconds) {
  std::lock_guard<std::mutex> lock(mu);
  RpcStats& s = rpc[method];
  static constexpr double kBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
  for (size_t i = 0; i < std::size(kBounds); ++i) {
    if (seconds <= kBounds[i]) s.buckets[i]++;
  }
  s.count++;
  s.sum += seconds;
  outcomes[method + "\x1f" + outcome]++;
}

std::string Gateway::MetricsText() {
  std::ostringstream o;
  o << "# HELP smithers_runs Runs in the database by status.\n# TYPE smithers_runs gauge\n";
  std::map<std::string, int64_t> by_status;
  if (Result<std::map<std::string, int64_t>> counts = store_->CountRunsByStatus(); counts.ok()) {
    by_status = std::move(counts).value();
  }
  for (const char* s : {"running", "waiting-approval", "waiting-event", "waiting-timer", "finished",
                        "failed", "cancelled"}) {
    by_status.emplace(s, 0);
  }
  for (const auto& [status, n] : by_status) {
    o << "smithers_runs{status=\"" << status << "\"} " << n << "\n";
  }
  auto counter = [&](const char* name, const char* help, int64_t v) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
      << name << " " << v << "\n";
  };
  counter("smithers_runs_launched_total", "Runs started or resumed by this Gateway.",
          metrics_.runs_launched.load());
  counter("smithers_tasks_started_total", "Task attempts started.", metrics_.tasks_started.load());
  counter("smithers_tasks_finished_total", "Tasks finished.", metrics_.tasks_finished.load());
  counter("smithers_tasks_failed_total", "Task attempts failed.", metrics_.tasks_failed.load());
  counter("smithers_events_sent_total", "Event frames sent to WebSocket clients.",
          metrics_.events_sent.load());
  counter("smithers_auth_failures_total",
          "Requests refused for missing or bad credentials or scope.",
          metrics_.auth_failures.load());
  counter("smithers_backpressure_disconnects_total", "Slow consumers disconnected.",
          metrics_.backpressure_disconnects.load());
  counter("smithers_cron_sweeps_total", "Cron sweeps completed (one a second).",
          metrics_.cron_sweeps.load());
  counter("smithers_token_file_reads_total",
          "Reads of the --tokens file: the first, each changed version, each retry of a failed "
          "one.",
          token_file_.Reads());
  o << "# HELP smithers_connections Open WebSocket connections.\n# TYPE smithers_connections "
       "gauge\n"
    << "smithers_connections " << metrics_.connections.load() << "\n";
  std::lock_guard<std::mutex> lock(metrics_.mu);
  o << "# HELP smithers_rpc_requests_total RPC requests by method and outcome.\n"
    << "# TYPE smithers_rpc_requests_total counter\n";
  for (const auto& [key, n] : metrics_.outcomes) {
    size_t sep = key.find('\x1f');
    o << "smithers_rpc_requests_total{method=\"" << key.substr(0, sep) << "\",code=\""
      << key.substr(sep + 1) << "\"} " << n << "\n";
  }
  o << "# HELP smithers_rpc_duration_seconds RPC latency by method.\n"
    << "# TYPE smithers_rpc_duration_seconds histogram\n";
  static constexpr const char* kLe[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                        "0.05",   "0.1",   "0.25",   "0.5",   "1",    "2.5"};
  for (const auto& [method, s] : metrics_.rpc) {
    for (size_t i = 0; i < std::size(kLe); ++i) {
      o << "smithers_rpc_duration_seconds_bucket{method=\"" << method << "\",le=\"" << kLe[i]
        << "\"} " << s.buckets[i] << "\n";
    }
    o << "smithers_rpc_duration_seconds_bucket{method=\"" << method << "\",le=\"+Inf\"} " << s.count
      << "\n";
    o << "smithers_rpc_duration_seconds_sum{method=\"" << method << "\"} " << s.sum << "\n";
    o << "smithers_rpc_duration_seconds_count{method=\"" << method << "\"} " << s.count << "\n";
  }
  return o.str();
}

}  // namespace smithers::gateway
