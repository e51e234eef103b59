// `smithers gateway` and `smithers token`: the Gateway server and its
// bearer-token grants (docs/gateway.md).
#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "base/hash.h"
#include "base/secrets.h"
#include "cli/commands.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "sandbox/sandbox_task.h"

namespace smithers::cli {
namespace {

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ',')) {
    size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a != std::string::npos) out.push_back(item.substr(a, b - a + 1));
  }
  return out;
}

// A grant as `token list --json` shows it. `max_ttl_ms` > 0 adds
// overMaxTtl (a lifetime over it, or no expiry), for `doctor`-style checks.
Json GrantJson(const TokenGrant& t, int64_t now, int64_t max_ttl_ms = 0) {
  std::string state = "active";
  if (t.revoked_at_ms != 0 && t.revoked_at_ms <= now) {
    state = "revoked";
  } else if (t.expires_at_ms != 0 && t.expires_at_ms <= now) {
    state = "expired";
  } else if (t.revoked_at_ms != 0) {
    state = "rotating";
  }
  Json j = {{"tokenId", t.token_id},
            {"scopes", t.scopes},
            {"role", t.role},
            {"userId", t.user_id.empty() ? Json() : Json(t.user_id)},
            {"label", t.label},
            {"issuedAtMs", t.issued_at_ms},
            {"expiresAtMs", t.expires_at_ms == 0 ? Json() : Json(t.expires_at_ms)},
            {"noExpiry", t.expires_at_ms == 0},
            {"revokedAtMs", t.revoked_at_ms == 0 ? Json() : Json(t.revoked_at_ms)},
            {"replacedBy", t.replaced_by.empty() ? Json() : Json(t.replaced_by)},
            {"state", state}};
  if (max_ttl_ms > 0) {
    j["overMaxTtl"] = t.expires_at_ms == 0 || t.expires_at_ms - t.issued_at_ms > max_ttl_ms;
  }
  return j;
}

// Mints a token, stores its grant, prints the token once. Its lifetime is
// --ttl (at most --max-ttl), or none with an explicit --no-expiry. Times are
// the real clock's: the test hook SMITHERS_CLOCK_OFFSET_MS never moves them.
int Issue(const Global& g, const TokenIssueArgs& a, const std::string& replaces = "",
          int64_t overlap_ms = 0) {
  std::vector<std::string> scopes = SplitList(a.scopes);
  for (const std::string& s : scopes) {
    if (!gateway::IsKnownScope(s) && s.find(':') == std::string::npos && s.back() != '*' &&
        s.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == std::string::npos) {
      return Fail(kExitBadInput, "unknown scope \"" + s + "\" (see smithers token issue --help)");
    }
  }
  if (scopes.empty()) return Fail(kExitBadInput, "--scopes is empty");
  Result<int64_t> max_ttl = gateway::ParseMaxTokenTtl(a.max_ttl);
  if (!max_ttl.ok()) return Fail(kExitBadInput, "--max-ttl " + max_ttl.status().message());
  int64_t ttl = 0;
  if (a.no_expiry) {
    if (a.ttl_given) return Fail(kExitBadInput, "--ttl and --no-expiry exclude each other");
  } else {
    Result<int64_t> parsed = gateway::ParseTokenTtl(a.ttl, *max_ttl);
    if (!parsed.ok()) return Fail(kExitBadInput, "--ttl " + parsed.status().message());
    ttl = *parsed;
  }
  auto store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Result<gateway::MintedToken> t = gateway::MintToken();
  if (!t.ok()) return Fail(kExitFailed, t.status().message());
  int64_t now = SystemClock().NowMs();
  TokenGrant grant{.token_id = t->id,
                   .token_hash = t->hash,
                   .scopes = scopes,
                   .role = a.role,
                   .user_id = a.user,
                   .label = a.label,
                   .issued_at_ms = now,
                   .expires_at_ms = ttl > 0 ? now + ttl : 0};
  // The new grant, the old one's revocation and the record: one transaction.
  // Never the token itself: only its id and what it may do.
  Json details = {{"scopes", scopes},
                  {"role", a.role},
                  {"user", a.user},
                  {"label", a.label},
                  {"expiresAtMs", grant.expires_at_ms}};
  if (!replaces.empty()) {
    details["replaces"] = replaces;
    details["overlapMs"] = overlap_ms;
  }
  Store& s = **store;
  Status put = s.Audited(
      CliAudit(replaces.empty() ? "token.issue" : "token.rotate", grant.token_id, details), [&] {
        SMITHERS_RETURN_IF_ERROR(s.PutToken(grant));
        if (replaces.empty()) return Status::Ok();
        return s.RevokeToken(replaces, now + overlap_ms, grant.token_id);
      });
  if (!put.ok()) return Fail(ExitFor(put), put.message());
  if (g.json) {
    Json j = GrantJson(grant, now);
    j["token"] = t->token;
    if (!replaces.empty()) j["replaces"] = replaces;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << t->token << "\n";
    std::cerr << "token " << grant.token_id << " (" << a.scopes << ")"
              << (ttl > 0 ? ", expires " + base::FormatIsoTime(grant.expires_at_ms)
                          : ", NO EXPIRY (--no-expiry)")
              << (replaces.empty() ? "" : "; replaces " + replaces) << ". It is shown only once.\n";
  }
  return kExitOk;
}

// The database's grants, then those of `tokens_file` (the Gateway's
// --tokens) if given; each says where it comes from.
int List(const Global& g, const std::string& tokens_file, const std::string& max_ttl_text) {
  Result<int64_t> max_ttl = gateway::ParseMaxTokenTtl(max_ttl_text);
  if (!max_ttl.ok()) return Fail(kExitBadInput, "--max-ttl " + max_ttl.status().message());
  int64_t now = SystemClock().NowMs();
  Result<gateway::FileGrants> file = gateway::FileGrants{};
  if (!tokens_file.empty()) file = gateway::ReadTokenFile(tokens_file);
  if (!file.ok()) return Fail(kExitBadInput, file.status().message());
  gateway::ApplyTokenPolicy(&*file, *max_ttl, now);
  auto store = OpenForRead(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  auto rows = (*store)->ListTokens();
  if (!rows.ok()) return Fail(kExitFailed, rows.status().message());
  Json all = Json::array();
  for (const TokenGrant& t : *rows) {
    all.push_back(GrantJson(t, now, *max_ttl));
    all.back()["source"] = "database";
  }
  for (const auto& [hash, f] : file->by_hash) {
    all.push_back(GrantJson({.token_id = f.token_id,
                             .token_hash = f.token_hash,
                             .scopes = f.scopes,
                             .role = f.role,
                             .user_id = f.user_id,
                             .issued_at_ms = f.issued_at_ms,
                             .expires_at_ms = f.expires_at_ms,
                             .revoked_at_ms = f.revoked_at_ms},
                            now, *max_ttl));
    all.back()["source"] = "file";
    if (!f.refused.empty()) {
      // The Gateway ignores such a grant (docs/gateway.md "Token lifetimes").
      all.back()["state"] = "refused";
      all.back()["refused"] = f.refused;
    }
  }
  if (g.json) {
    std::cout << Json({{"tokens", all}}).dump(2) << "\n";
    return kExitOk;
  }
  if (all.empty()) std::cout << "no tokens (smithers token issue --scopes ...)\n";
  for (const Json& t : all) {
    std::string scopes;
    for (const Json& s : t["scopes"]) scopes += (scopes.empty() ? "" : ",") + s.get<std::string>();
    std::cout << t["tokenId"].get<std::string>() << "  " << t["state"].get<std::string>() << "  "
              << scopes
              << "  user=" << (t["userId"].is_null() ? "-" : t["userId"].get<std::string>())
              << "  expires="
              << (t["expiresAtMs"].is_null() ? "NO-EXPIRY"
                                             : base::FormatIsoTime(t["expiresAtMs"].get<int64_t>()))
              << (t.value("overMaxTtl", false)
                      ? "  over-max-ttl(" + gateway::FormatDurationMs(*max_ttl) + ")"
                      : "")
              << (t["source"] == "file" ? "  source=" + tokens_file : "")
              << (t.contains("refused") ? "  refused: " + t["refused"].get<std::string>() : "")
              << "\n";
  }
  return kExitOk;
}

int Revoke(const Global& g, const std::string& id) {
  auto store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Status s = (*store)->Audited(CliAudit("token.revoke", id), [&] {
    return (*store)->RevokeToken(id, SystemClock().NowMs(), "");
  });
  if (!s.ok()) return Fail(ExitFor(s), s.message());
  std::cerr << "token " << id << " revoked\n";
  return kExitOk;
}

int Rotate(const Global& g, const std::string& id, const std::string& overlap, TokenIssueArgs a,
           bool ttl_given) {
  long long overlap_ms = 0;
  if (!base::ParseDurationMs(overlap, &overlap_ms) || overlap_ms < 0) {
    return Fail(kExitBadInput, "--overlap \"" + overlap + "\" is not a duration like 5m");
  }
  auto store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  auto rows = (*store)->ListTokens();
  if (!rows.ok()) return Fail(kExitFailed, rows.status().message());
  const TokenGrant* old = nullptr;
  for (const TokenGrant& t : *rows) {
    if (t.token_id == id) old = &t;
  }
  if (old == nullptr) return Fail(kExitBadInput, "no token with id " + id);
  int64_t now = SystemClock().NowMs();
  if (old->revoked_at_ms != 0 && old->revoked_at_ms <= now) {
    return Fail(kExitBadInput, "token " + id + " is revoked; issue a new one");
  }
  // The replacement keeps the grant: scopes, role, user, label, lifetime.
  a.scopes.clear();
  for (const std::string& s : old->scopes) a.scopes += (a.scopes.empty() ? "" : ",") + s;
  a.role = old->role;
  a.user = old->user_id;
  a.label = old->label;
  if (!ttl_given && !a.no_expiry) {
    // The old token's lifetime; one issued with --no-expiry stays without.
    a.no_expiry = old->expires_at_ms == 0;
    a.ttl = std::to_string(old->expires_at_ms - old->issued_at_ms) + "ms";
  }
  a.ttl_given = ttl_given;
  store->reset();
  return Issue(g, a, id, overlap_ms);
}

}  // namespace

ServerCommands::ServerCommands(CLI::App& app, Global& g) : app_(app), g_(g) {
  gw_cmd_ = app.add_subcommand(
      "gateway", "Serve the workflows of a folder over WebSocket RPC and HTTP (docs/gateway.md)");
  gw_cmd_->add_option("--config", config_path_,
                      "Settings from a TOML file (docs/gateway.md \"Configuration file\"); a "
                      "flag given here overrides the file");
  gw_cmd_->add_option("-w,--workflows", gw_.workflows_dir,
                      "Folder of workflow modules (*.lua); required, here or in --config");
  gw_cmd_->add_option("--host", gw_.host, "Address to listen on")->capture_default_str();
  gw_cmd_->add_option("-p,--port", gw_.port, "Port (0 = any free port)")->capture_default_str();
  gw_cmd_->add_option("--tls-cert", gw_.tls_cert, "TLS certificate chain (PEM)");
  gw_cmd_->add_option("--tls-key", gw_.tls_key, "TLS private key (PEM)");
  gw_cmd_->add_flag("--insecure", gw_.insecure,
                    "Allow a non-loopback address without TLS (prints a warning)");
  gw_cmd_
      ->add_option("--auth", gw_.auth,
                   "token (grants from `smithers token` and --tokens), jwt, trusted-proxy, or "
                   "none (loopback only)")
      ->capture_default_str();
  gw_cmd_->add_option("--tokens", gw_.tokens_file,
                      "JSON file of token grants (SMITHERS_TOKEN_STORE format, mode 600) "
                      "accepted besides the database's; re-read when it changes (--auth token)");
  gw_cmd_->add_option("--jwt-secret-env", jwt_secret_env_,
                      "Environment variable holding the HS256 secret (--auth jwt)");
  gw_cmd_->add_option("--jwt-secret-file", jwt_secret_file_,
                      "File holding the HS256 secret (--auth jwt; mode 600)");
  gw_cmd_->add_option("--jwt-issuer", gw_.jwt.issuer, "Required iss claim");
  gw_cmd_->add_option("--jwt-audience", gw_.jwt.audience, "Required aud claim");
  gw_cmd_->add_option("--proxy-default-scopes", proxy_scopes_,
                      "Scopes for trusted-proxy requests without x-user-scopes (comma-separated)");
  gw_cmd_->add_option("--allowed-origin", gw_.allowed_origins,
                      "A browser origin (scheme://host[:port]) whose requests are served, in "
                      "every auth mode; repeatable. With any given, a request carrying another "
                      "Origin gets 403 (requests without Origin pass)");
  gw_cmd_->add_option("--trusted-proxy", trusted_proxies_,
                      "A peer address or CIDR block whose identity headers are believed "
                      "(--auth trusted-proxy needs at least one; repeat for more)");
  gw_cmd_->add_option("--max-token-ttl", max_token_ttl_,
                      "The longest lifetime a --tokens grant may have (default 30d); a grant "
                      "without an expiry or over it is ignored and logged");
  gw_cmd_->add_option(
      "--stop-grace", stop_grace_,
      "On SIGTERM or SIGINT: how long runs in flight may finish their tasks "
      "before they release their runs (default 10s; a second signal stops at once)");
  gw_cmd_->add_option("--heartbeat-ms", gw_.heartbeat_ms, "WebSocket tick period")
      ->capture_default_str();
  gw_cmd_->add_option("--max-connections", gw_.max_connections, "Authenticated WebSockets")
      ->capture_default_str();
  gw_cmd_->add_option("--max-body-bytes", gw_.max_body_bytes, "HTTP request body limit")
      ->capture_default_str();
  gw_cmd_->add_option("--max-frame-bytes", gw_.max_frame_bytes, "WebSocket message limit")
      ->capture_default_str();
  gw_cmd_
      ->add_option("--max-queue-frames", gw_.max_queue_frames,
                   "Outbound frames queued per connection before a slow client is cut off")
      ->capture_default_str();
  gw_cmd_
      ->add_option("--max-queue-bytes", gw_.max_queue_bytes,
                   "Outbound bytes queued per connection before a slow client is cut off")
      ->capture_default_str();
  gw_cmd_
      ->add_option("--slow-consumer-ms", gw_.slow_consumer_ms,
                   "A client whose socket accepts nothing for this long is cut off")
      ->capture_default_str();
  gw_cmd_->add_option("--access-log", gw_.access_log,
                      "Access log file (JSON lines; default stderr, - for none)");
  gw_cmd_->add_flag("--trusted-modules", gw_.trusted_modules,
                    "Give modules the full Lua library (default: restricted; docs/engine.md "
                    "\"Restricted modules\")");
  gw_cmd_->add_flag("--require-sandbox", gw_.require_sandbox,
                    "Run processes only in a sandbox: a command task or CLI agent without one, "
                    "or unisolatedTools, fails with SANDBOX_REQUIRED (docs/sandbox.md)");
  gw_cmd_->add_option("--module-workspace", gw_.module_workspace,
                      "The one folder restricted modules may write files in (default: none)");
  gw_cmd_->add_option("--allow-secret", gw_.secret_refs_allowed,
                      "A secret reference tasks may resolve, e.g. env:OPENAI_API_KEY or "
                      "'file:/run/secrets/*' (repeatable; default: none; docs/gateway.md)");
  gw_cmd_->footer(
      "Runs launched here execute in this process; waits are resumed and runs whose process died "
      "are recovered here. Tokens: smithers token issue --scopes run:read,run:write --ttl 1h. "
      "Settings: a flag given here, else --config's, else the default shown.");

  token_cmd_ = app.add_subcommand("token", "Issue, list, revoke and rotate Gateway bearer tokens");
  token_cmd_->require_subcommand(1);
  issue_cmd_ = token_cmd_->add_subcommand("issue", "Mint a token; it is printed once");
  issue_cmd_
      ->add_option("-s,--scopes", issue_.scopes,
                   "Comma-separated: run:read run:write run:admin approval:read approval:submit "
                   "signal:submit cron:read cron:write *, a method name, or read/execute/"
                   "approve/admin")
      ->capture_default_str();
  issue_cmd_->add_option("--ttl", issue_.ttl, "Lifetime (30m, 1h, 7d), at most --max-ttl")
      ->capture_default_str();
  issue_cmd_->add_flag("--no-expiry", issue_.no_expiry,
                       "A token that never expires (shown as NO-EXPIRY by `token list`)");
  issue_cmd_->add_option("--max-ttl", issue_.max_ttl, "The longest --ttl accepted")
      ->capture_default_str();
  issue_cmd_->add_option("-u,--user,--user-id", issue_.user, "User id recorded as the actor");
  issue_cmd_->add_option("--role", issue_.role, "Role")->capture_default_str();
  issue_cmd_->add_option("--label", issue_.label, "A note shown by `token list`");
  list_cmd_ = token_cmd_->add_subcommand("list", "Show grants (never the tokens)");
  list_cmd_->add_option("--tokens", list_tokens_file_,
                        "Also show the grants of this tokens file (the Gateway's --tokens)");
  list_max_ttl_ = "30d";
  list_cmd_
      ->add_option("--max-ttl", list_max_ttl_,
                   "Flag grants without an expiry or with a longer lifetime (overMaxTtl); "
                   "tokens-file grants over it are shown as refused, as the Gateway treats them")
      ->capture_default_str();
  revoke_cmd_ = token_cmd_->add_subcommand("revoke", "Revoke a token at once");
  revoke_cmd_->add_option("id", token_id_, "Token id (from `token list`)")->required();
  rotate_cmd_ = token_cmd_->add_subcommand(
      "rotate", "Issue a replacement with the same grant; the old token works until --overlap");
  rotate_cmd_->add_option("id", token_id_, "Token id")->required();
  rotate_cmd_->add_option("--overlap", overlap_, "How long the old token keeps working")
      ->capture_default_str();
  rotate_cmd_->add_option("--ttl", rotate_ttl_,
                          "Lifetime of the new token (default: the old one's)");
  rotate_cmd_->add_flag("--no-expiry", rotate_no_expiry_, "The new token never expires");
  rotate_cmd_->add_option("--max-ttl", rotate_max_ttl_, "The longest lifetime accepted")
      ->capture_default_str();
  for (auto* cmd : {issue_cmd_, list_cmd_, revoke_cmd_, rotate_cmd_}) {
    cmd->add_flag("--json", g.json, "Print one JSON document on stdout");
  }
}

int ServerCommands::Run() {
  if (issue_cmd_->parsed()) {
    issue_.ttl_given = issue_cmd_->count("--ttl") > 0;
    return Issue(g_, issue_);
  }
  if (list_cmd_->parsed()) return List(g_, list_tokens_file_, list_max_ttl_);
  if (revoke_cmd_->parsed()) return Revoke(g_, token_id_);
  if (rotate_cmd_->parsed()) {
    TokenIssueArgs a;
    if (!rotate_ttl_.empty()) a.ttl = rotate_ttl_;
    a.no_expiry = rotate_no_expiry_;
    a.max_ttl = rotate_max_ttl_;
    return Rotate(g_, token_id_, overlap_, a, !rotate_ttl_.empty());
  }
  if (!gw_cmd_->parsed()) return -1;
  return Gateway();
}

int ServerCommands::Gateway() {
  gw_.proxy_default_scopes = SplitList(proxy_scopes_);
  gw_.trusted_proxies.clear();
  for (const std::string& p : trusted_proxies_) {
    for (const std::string& one : SplitList(p)) gw_.trusted_proxies.push_back(one);
  }
  if (!max_token_ttl_.empty()) {
    Result<int64_t> max_ttl = gateway::ParseMaxTokenTtl(max_token_ttl_);
    if (!max_ttl.ok()) return Fail(kExitBadInput, "--max-token-ttl " + max_ttl.status().message());
    gw_.max_token_ttl_ms = *max_ttl;
  }
  if (!stop_grace_.empty()) {
    long long ms = 0;
    if (!base::ParseDurationMs(stop_grace_, &ms) || ms < 0) {
      return Fail(kExitBadInput, "--stop-grace \"" + stop_grace_ + "\" is not a duration like 10s");
    }
    gw_.stop_grace_ms = ms;
  }
  gw_.db = g_.db;
  gw_.synchronous = g_.synchronous;
  gw_.audit_key = g_.audit_key;
  gw_.max_json_depth = g_.max_json_depth;
  gw_.group_readable = g_.group_readable;
  gateway::GatewayOptions o = gw_;
  std::string secret_env = jwt_secret_env_, secret_file = jwt_secret_file_;
  if (!config_path_.empty()) {
    Result<gateway::GatewayConfig> file = gateway::LoadGatewayConfig(config_path_);
    if (!file.ok()) return Fail(kExitBadInput, file.status().message());
    // The file's settings, then each flag given on the command line over them.
    o = file->options;
    auto given = [&](const char* flag) { return gw_cmd_->count(flag) > 0; };
    if (given("--workflows")) o.workflows_dir = gw_.workflows_dir;
    if (given("--host")) o.host = gw_.host;
    if (given("--port")) o.port = gw_.port;
    if (app_.count("--db") > 0) o.db = gw_.db;  // the flag or $SMITHERS_DB
    if (app_.count("--synchronous") > 0) o.synchronous = gw_.synchronous;
    if (app_.count("--audit-key") > 0) o.audit_key = gw_.audit_key;  // the flag or its variable
    if (given("--tls-cert")) o.tls_cert = gw_.tls_cert;
    if (given("--tls-key")) o.tls_key = gw_.tls_key;
    if (given("--insecure")) o.insecure = gw_.insecure;
    if (given("--auth")) o.auth = gw_.auth;
    if (given("--tokens")) o.tokens_file = gw_.tokens_file;
    if (given("--jwt-issuer")) o.jwt.issuer = gw_.jwt.issuer;
    if (given("--jwt-audience")) o.jwt.audience = gw_.jwt.audience;
    if (given("--proxy-default-scopes")) o.proxy_default_scopes = gw_.proxy_default_scopes;
    if (given("--allowed-origin")) o.allowed_origins = gw_.allowed_origins;
    if (given("--trusted-proxy")) o.trusted_proxies = gw_.trusted_proxies;
    if (given("--max-token-ttl")) o.max_token_ttl_ms = gw_.max_token_ttl_ms;
    if (app_.count("--group-readable") > 0) o.group_readable = true;
    if (given("--heartbeat-ms")) o.heartbeat_ms = gw_.heartbeat_ms;
    if (given("--stop-grace")) o.stop_grace_ms = gw_.stop_grace_ms;
    if (given("--max-connections")) o.max_connections = gw_.max_connections;
    if (given("--max-body-bytes")) o.max_body_bytes = gw_.max_body_bytes;
    if (given("--max-frame-bytes")) o.max_frame_bytes = gw_.max_frame_bytes;
    if (given("--max-queue-frames")) o.max_queue_frames = gw_.max_queue_frames;
    if (given("--max-queue-bytes")) o.max_queue_bytes = gw_.max_queue_bytes;
    if (given("--slow-consumer-ms")) o.slow_consumer_ms = gw_.slow_consumer_ms;
    if (given("--access-log")) o.access_log = gw_.access_log;
    if (given("--trusted-modules")) o.trusted_modules = gw_.trusted_modules;
    if (given("--require-sandbox")) o.require_sandbox = gw_.require_sandbox;
    if (given("--module-workspace")) o.module_workspace = gw_.module_workspace;
    if (given("--allow-secret")) o.secret_refs_allowed = gw_.secret_refs_allowed;
    if (app_.count("--max-json-depth") > 0) o.max_json_depth = g_.max_json_depth;
    if (!given("--jwt-secret-env") && !given("--jwt-secret-file")) {
      secret_env = file->jwt_secret_env;
      secret_file = file->jwt_secret_file;
    }
  }
  if (o.workflows_dir.empty()) {
    return Fail(kExitBadInput, "--workflows DIR (or workflows in --config) is required");
  }
  if (!secret_env.empty() && !secret_file.empty()) {
    return Fail(kExitBadInput, "--jwt-secret-env and --jwt-secret-file exclude each other");
  }
  if (!secret_env.empty() || !secret_file.empty()) {
    Result<std::string> secret = gateway::ReadJwtSecret(secret_env, secret_file);
    if (!secret.ok()) return Fail(kExitBadInput, secret.status().message());
    o.jwt.secret = *secret;
  }
  if (!o.tokens_file.empty()) {
    if (o.auth != "token") {
      return Fail(kExitBadInput, "--tokens needs --auth token (not " + o.auth + ")");
    }
    // Checked here so that a bad file stops the start; the Gateway re-reads
    // it whenever it changes and keeps the last good grants.
    Result<gateway::FileGrants> grants = gateway::ReadTokenFile(o.tokens_file);
    if (!grants.ok()) return Fail(kExitBadInput, grants.status().message());
    // Grants without an expiry or over the maximum are ignored, not fatal:
    // one bad grant must not keep the others (or a revocation) from working.
    gateway::ApplyTokenPolicy(&*grants, o.max_token_ttl_ms, SystemClock().NowMs());
    for (const auto& [hash, grant] : grants->by_hash) {
      if (!grant.refused.empty()) {
        std::cerr << "smithers gateway: " << o.tokens_file << ": token " << grant.token_id
                  << " is ignored: " << grant.refused << "\n";
      }
    }
  }
  // Tasks resolve only the references the operator allowed (none by default).
  base::ProcessSecrets().RestrictReferences(o.secret_refs_allowed);
  // Another process of this user may not read the Gateway's memory or
  // /proc/PID/environ (a command task run by the Gateway is one). Children get
  // back the default at execve.
  prctl(PR_SET_DUMPABLE, 0);
  o.clock = &CliClock();
  o.test_clock = ClockShifted();
  Result<int64_t> agent_heartbeat = AgentHeartbeatTimeoutMs();
  if (!agent_heartbeat.ok()) return Fail(kExitBadInput, agent_heartbeat.status().message());
  // Agents' bash never sees the database file (the config's db was checked
  // when it was read, the flag's by CheckDb).
  Result<StoreLocation> db = ParseStoreUrl(o.db);
  if (!db.ok()) return Fail(kExitBadInput, db.status().message());
  std::vector<std::string> hidden;
  if (!db->path.empty()) hidden.push_back(db->path);
  o.add_executors = [hidden, heartbeat = *agent_heartbeat](const WorkflowDefinition& wf,
                                                           RunOptions& ro) {
    ro.agent_heartbeat_timeout_ms = heartbeat;
    return AddRunExecutors(wf, hidden, ro);
  };
  o.sandbox_diff = sandbox::AttemptDiff;
  std::string scheme = o.tls_cert.empty() ? "http" : "https";
  std::string auth = o.auth + (o.tokens_file.empty() ? "" : " + " + o.tokens_file);
  o.on_listening = [&](const std::string& host, int port) {
    std::cout << "smithers gateway: listening on " << scheme << "://" << host << ":" << port
              << " (auth " << auth << ", workflows " << o.workflows_dir << ", db "
              << RedactStoreUrl(o.db) << ", pid " << getpid() << ")" << std::endl;
  };
  Status s = gateway::RunGateway(o);
  if (!s.ok()) return Fail(ExitFor(s), s.message());
  return kExitOk;
}

}  // namespace smithers::cli
