// The Gateway's core: construction, authentication, hello and the access
// log. The rest is by concern: the method table and dispatch (methods.cc),
// the methods (methods_*.cc), the workflow catalog (catalog.cc), runs and the
// supervisor (run_host.cc), event feeds (feeds.cc), retention (retention.cc),
// /metrics (metrics.cc);
// the network side (HTTP, WebSocket, TLS) is server.cc. All run on one io
// thread.
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
#include "base/version.h"
#include "gateway/cron.h"
#include "gateway/gateway_internal.h"
#include "gateway/methods.h"
#include "script/lua_workflow.h"

namespace smithers::gateway {

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
                                                     {"RunNotOver", 409},
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
  // The first scan before the first client is served; later ones on the
  // catalog's thread, their results applied on the io thread.
  ApplyScan(catalog_.ScanNow());
  catalog_.Start([this](CatalogScan scan, std::vector<std::function<void()>> answered) {
    Post([this, scan = std::move(scan), answered = std::move(answered)]() mutable {
      ApplyScan(std::move(scan));
      for (auto& then : answered) then();
    });
  });
}

Gateway::~Gateway() {
  catalog_.Stop();
  StopRetention();
  for (auto& [id, run] : active_) {
    if (run.thread.joinable()) run.thread.detach();  // durable: recovered at the next start
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

Json Gateway::Identity() const {
  return {{"workspaceRoot", workspace_root_},
          {"backend", store_->BackendName()},
          {"version", base::Version()},
          {"pid", getpid()},
          {"startedAtMs", started_at_ms_}};
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
    snapshot["approvals"] =
        FindMethod("listApprovals")
            ->handler({.gw = *this, .caller = caller, .params = Json::object(), .conn = nullptr})
            .payload;
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

}  // namespace smithers::gateway
