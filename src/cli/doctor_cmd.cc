// `smithers doctor [--gateway-config FILE] [--json]`: a deployment checked
// against the release checklist (docs/operations.md "The release checklist:
// smithers doctor"). Each item passes, warns or fails and says why; nothing
// is written (the database is opened read-only).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/hash.h"
#include "base/text.h"
#include "cli/commands.h"
#include "gateway/auth.h"
#include "gateway/catalog.h"
#include "gateway/config.h"
#include "gateway/deployment.h"
#include "gateway/gateway.h"
#include "sandbox/selftest.h"
#include "script/lua_workflow.h"
#include "smithers/json.h"
#include "smithers/lint.h"
#include "smithers/store.h"

namespace smithers::cli {
namespace {

enum class Level { kPass, kWarn, kFail };

const char* LevelName(Level l) {
  switch (l) {
    case Level::kPass: return "pass";
    case Level::kWarn: return "warn";
    case Level::kFail: return "fail";
  }
  return "fail";
}

struct Item {
  std::string id;
  Level level = Level::kPass;
  std::string message;
};

// The checklist's thresholds (flags), in milliseconds.
struct Thresholds {
  int64_t max_backup_age_ms = 0;
  int64_t max_drill_age_ms = 0;
  int64_t min_retention_ms = 0;
  int64_t rotation_period_ms = 0;
  int64_t access_log_age_ms = 0;
};

constexpr const char* kNoConfig = "no gateway config given (--gateway-config)";

class Checklist {
 public:
  void Add(std::string id, Level level, std::string message) {
    items_.push_back({std::move(id), level, std::move(message)});
  }
  const std::vector<Item>& items() const { return items_; }
  int Count(Level l) const {
    return static_cast<int>(
        std::count_if(items_.begin(), items_.end(), [l](const Item& i) { return i.level == l; }));
  }

 private:
  std::vector<Item> items_;
};

std::string Mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// ---- the Gateway's own settings ----

void CheckTls(const gateway::GatewayOptions& o, Checklist& out) {
  if (gateway::IsLoopbackHost(o.host)) {
    out.Add("tls", Level::kPass, "binds loopback " + o.host + ": TLS not needed");
    return;
  }
  if (o.tls_cert.empty() || o.tls_key.empty()) {
    out.Add("tls", Level::kFail,
            "binds " + o.host + " (not loopback) without TLS" +
                (o.insecure ? " (insecure = true)" : "") + ": set [tls] cert and key");
    return;
  }
  for (const std::string& f : {o.tls_cert, o.tls_key}) {
    if (access(f.c_str(), R_OK) != 0) {
      out.Add("tls", Level::kFail, "binds " + o.host + " with TLS, but " + f + " cannot be read");
      return;
    }
  }
  out.Add("tls", Level::kPass, "binds " + o.host + " with TLS (" + o.tls_cert + ")");
}

void CheckRetention(const gateway::GatewayOptions& o, const Thresholds& t, Checklist& out) {
  const std::string min = gateway::FormatDurationMs(t.min_retention_ms);
  if (o.retention.keep_ms <= 0) {
    out.Add("retention", Level::kFail,
            "no [retention] table: runs are never deleted (set keep, at least " + min + ")");
  } else if (o.retention.keep_ms < t.min_retention_ms) {
    out.Add("retention", Level::kFail,
            "[retention] keep = " + gateway::FormatDurationMs(o.retention.keep_ms) +
                " is under the minimum " + min + " (--min-retention)");
  } else {
    out.Add("retention", Level::kPass,
            "[retention] keep = " + gateway::FormatDurationMs(o.retention.keep_ms) + " (at least " +
                min + ")");
  }
}

void CheckAccessLog(const gateway::GatewayOptions& o, const Thresholds& t, Checklist& out) {
  if (o.access_log == "-") {
    out.Add("access-log", Level::kFail, "the access log is off (access_log = \"-\")");
    return;
  }
  if (o.access_log.empty()) {
    out.Add("access-log", Level::kWarn,
            "the access log goes to stderr (access_log unset): only as kept as the service "
            "manager keeps it");
    return;
  }
  struct stat st {};
  if (stat(o.access_log.c_str(), &st) != 0) {
    out.Add("access-log", Level::kFail, "the access log " + o.access_log + " does not exist");
    return;
  }
  const int64_t mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000;
  const int64_t age_ms = CliClock().NowMs() - mtime_ms;
  if (age_ms > t.access_log_age_ms) {
    out.Add("access-log", Level::kWarn,
            "the access log " + o.access_log + " was last written " + Ago(mtime_ms) +
                " (more than " + gateway::FormatDurationMs(t.access_log_age_ms) + ")");
    return;
  }
  out.Add("access-log", Level::kPass,
          "the access log " + o.access_log + " was written " + Ago(mtime_ms));
}

// Every approval of every served module has an owner and a fallback owner
// (LintWorkflow's approval-owner and approval-fallback-owner findings).
void CheckApprovals(const gateway::GatewayOptions& o, Checklist& out) {
  if (o.workflows_dir.empty()) {
    out.Add("approvals", Level::kWarn, "no workflows folder in the gateway config");
    return;
  }
  Result<std::vector<gateway::ModuleFile>> files = gateway::ListModuleFiles(o.workflows_dir);
  if (!files.ok()) {
    out.Add("approvals", Level::kFail, files.status().message());
    return;
  }
  bool any = false;
  for (const gateway::ModuleFile& file : *files) {
    const std::string& path = file.path;
    Result<std::unique_ptr<script::LuaWorkflow>> module = script::LoadWorkflowModule(
        path, {.restricted = !o.trusted_modules, .workspace = o.module_workspace});
    if (!module.ok()) {
      any = true;
      out.Add("approvals", Level::kFail, path + ": cannot load: " + module.status().message());
      continue;
    }
    script::LuaWorkflow& lua = **module;
    LintReport r = LintWorkflow(
        lua.definition(), {.check_components = [&lua](const Json& in, const Ctx::OutputMap& outs) {
          return lua.CheckComponents(in, &outs);
        }});
    for (const LintFinding& f : r.findings) {
      if (f.code != "approval-owner" && f.code != "approval-fallback-owner") continue;
      any = true;
      out.Add("approvals", Level::kFail,
              path + ": node " + f.node_id + ": " + f.message +
                  (f.where.empty() ? "" : " (" + f.where + ")"));
    }
  }
  if (!any) {
    out.Add("approvals", Level::kPass,
            "every approval in " + std::to_string(files->size()) + " module" +
                (files->size() == 1 ? "" : "s") + " of " + o.workflows_dir +
                " has an owner and a fallback owner");
  }
}

void CheckSandbox(const gateway::GatewayOptions& o, const std::string& runtime,
                  const std::string& image, Checklist& out) {
  if (!o.require_sandbox) {
    out.Add("sandbox", Level::kWarn,
            "sandbox not required by this deployment (require_sandbox = false): self-test not "
            "run");
    return;
  }
  Result<sandbox::SelfTestReport> r = sandbox::SelfTest(runtime, image);
  if (!r.ok()) {
    out.Add("sandbox", Level::kFail,
            "self-test of " + runtime + " cannot run: " + r.status().message());
    return;
  }
  std::string not_refused;
  for (const sandbox::ProbeResult& p : r->probes) {
    if (!p.enforced) not_refused += (not_refused.empty() ? "" : ", ") + p.name;
  }
  if (!r->all_enforced()) {
    out.Add("sandbox", Level::kFail,
            "self-test of " + runtime + ": NOT refused: " +
                (not_refused.empty() ? std::string("no probe ran") : not_refused));
    return;
  }
  out.Add("sandbox", Level::kPass,
          "self-test of " + runtime + ": all " + std::to_string(r->probes.size()) +
              " escape attempts refused");
}

// ---- the database ----

// A grant as the token checks see it, from the database or the tokens file.
struct Grant {
  std::string id;
  std::string where;  // "database" or the tokens file
  std::vector<std::string> scopes;
  int64_t issued_at_ms = 0;
  int64_t expires_at_ms = 0;
  std::string refused;  // a tokens-file grant the Gateway ignores, and why
};

void CheckTokens(const std::vector<Grant>& grants, int64_t max_ttl_ms, const Thresholds& t,
                 Checklist& out) {
  // Token lifetimes use the wall clock, never the test offset (as issuing does).
  const int64_t now = SystemClock().NowMs();
  std::vector<std::string> everything, over_ttl, stale;
  for (const Grant& g : grants) {
    const std::string name = g.id + " (" + g.where + ")";
    if (gateway::GrantsEverything(g.scopes)) {
      everything.push_back(name + " [" + base::Join(g.scopes) + "]");
    }
    if (!g.refused.empty()) {
      over_ttl.push_back(name + ": " + g.refused);
    } else if (g.expires_at_ms == 0) {
      over_ttl.push_back(name + ": never expires");
    } else if (g.expires_at_ms - g.issued_at_ms > max_ttl_ms) {
      over_ttl.push_back(name + ": lifetime " +
                         gateway::FormatDurationMs(g.expires_at_ms - g.issued_at_ms));
    }
    if (gateway::GrantsWrite(g.scopes) && now - g.issued_at_ms > t.rotation_period_ms) {
      stale.push_back(name + ": issued " + Ago(g.issued_at_ms));
    }
  }
  const std::string live =
      std::to_string(grants.size()) + " live token" + (grants.size() == 1 ? "" : "s");
  if (everything.empty()) {
    out.Add("tokens.scopes", Level::kPass, live + ": none grants * or every scope");
  } else {
    out.Add("tokens.scopes", Level::kFail,
            "grants every scope (give each token only what it needs): " + base::Join(everything));
  }
  const std::string max = gateway::FormatDurationMs(max_ttl_ms);
  if (over_ttl.empty()) {
    out.Add("tokens.ttl", Level::kPass, live + ": each expires within the maximum TTL " + max);
  } else {
    out.Add("tokens.ttl", Level::kFail,
            "over the maximum TTL " + max + " (max_token_ttl): " + base::Join(over_ttl));
  }
  const std::string period = gateway::FormatDurationMs(t.rotation_period_ms);
  if (stale.empty()) {
    out.Add("tokens.rotation", Level::kPass,
            "every token that can write (run:write, approval:submit) was issued within " + period);
  } else {
    out.Add("tokens.rotation", Level::kFail,
            "tokens that can write not rotated within " + period +
                " (--rotation-period; smithers token rotate): " + base::Join(stale));
  }
}

// The newest good backup or drill, against its maximum age.
void CheckMaintenance(Store& store, const std::string& kind, int64_t max_age_ms,
                      const std::string& flag, Checklist& out) {
  Result<std::vector<MaintenanceRecord>> rows = store.ListMaintenance(kind, 1000);
  if (!rows.ok()) {
    out.Add(kind, Level::kFail, "cannot read the " + kind + " history: " + rows.status().message());
    return;
  }
  const std::string how =
      kind == "backup" ? "smithers db backup FILE" : "smithers db restore FILE --drill";
  auto good =
      std::find_if(rows->begin(), rows->end(), [](const MaintenanceRecord& r) { return r.ok; });
  if (good == rows->end()) {
    out.Add(kind, Level::kFail,
            std::string("no ") + (kind == "backup" ? "backup" : "restore drill") +
                " that succeeded is recorded (" + how + ")");
    return;
  }
  const std::string max = gateway::FormatDurationMs(max_age_ms);
  const int64_t age = CliClock().NowMs() - good->finished_at_ms;
  const std::string what =
      "last good " + kind + " " + Ago(good->finished_at_ms) + " (" + good->path + ")";
  const std::string failed_since =
      good != rows->begin() ? "; a newer one failed " + Ago(rows->front().finished_at_ms) : "";
  if (age > max_age_ms) {
    out.Add(kind, Level::kFail, what + ", older than " + max + " (" + flag + ")" + failed_since);
  } else {
    out.Add(kind, failed_since.empty() ? Level::kPass : Level::kWarn,
            what + ", within " + max + failed_since);
  }
}

void CheckAudit(Store& store, const std::string& key_ref, const std::string& db_file,
                Checklist& out) {
  if (key_ref.empty()) {
    out.Add("audit.key", Level::kWarn,
            "the audit key is the default file " + db_file +
                ".audit-key beside the database: whoever can write that folder can re-sign the "
                "log (name one with --audit-key, SMITHERS_AUDIT_KEY or audit_key)");
  } else {
    out.Add("audit.key", Level::kPass, "the audit key is " + key_ref);
  }
  Result<std::vector<AuditRecord>> rows = store.ListAudit({});
  if (!rows.ok()) {
    out.Add("audit.log", Level::kFail, "cannot read the audit log: " + rows.status().message());
    return;
  }
  Result<std::string> key = LoadAuditKey(key_ref, db_file);
  if (!key.ok()) {
    if (rows->empty() && key.status().code() == StatusCode::kNotFound) {
      out.Add("audit.log", Level::kPass,
              "the audit log is empty (its key is made with its first row)");
    } else {
      out.Add("audit.log", Level::kFail,
              "cannot verify the audit log without its key: " + key.status().message());
    }
    return;
  }
  Result<AuditVerification> v = VerifyAuditLog(*rows, *key, "");
  if (!v.ok()) {
    out.Add("audit.log", Level::kFail, "cannot verify the audit log: " + v.status().message());
    return;
  }
  if (!v->problems.empty()) {
    out.Add("audit.log", Level::kFail,
            "the audit log does NOT verify under its key (" + std::to_string(v->problems.size()) +
                " problem" + (v->problems.size() == 1 ? "" : "s") +
                "; smithers audit verify): " + v->problems.front());
    return;
  }
  out.Add("audit.log", Level::kPass,
          "the audit log verifies: " + std::to_string(v->rows) + " rows in " +
              std::to_string(v->chains) + " chains under key " + AuditKeyId(*key));
}

void CheckSqlite(const std::string& db_file, const std::string& synchronous, Checklist& out) {
  Result<SqliteSettings> s = ReadSqliteSettings(db_file);
  if (!s.ok()) {
    out.Add("sqlite.journal-mode", Level::kFail, "cannot read: " + s.status().message());
  } else {
    out.Add("sqlite.journal-mode", s->journal_mode == "wal" ? Level::kPass : Level::kFail,
            "journal_mode = " + s->journal_mode +
                (s->journal_mode == "wal" ? ""
                                          : " (want wal: open it once with smithers up or "
                                            "the gateway)"));
    out.Add("sqlite.foreign-keys", s->foreign_keys ? Level::kPass : Level::kFail,
            s->foreign_keys ? "foreign keys on (every store connection turns them on)"
                            : "this SQLite build ignores PRAGMA foreign_keys");
  }
  const std::string& sync = synchronous;
  if (sync == "FULL" || sync == "full" || sync == "EXTRA" || sync == "extra") {
    out.Add("sqlite.synchronous", Level::kPass, "synchronous = " + sync);
  } else {
    out.Add("sqlite.synchronous", Level::kWarn,
            "synchronous = " + sync + ": a power loss may lose the last commits (FULL is durable)");
  }
}

// Database, WAL, audit key, access log, tokens file, TLS key: none readable
// by other users; group-readable only with group_readable.
void CheckFileModes(const std::vector<std::string>& files, bool group_readable, Checklist& out) {
  int checked = 0;
  bool bad = false;
  for (const std::string& f : files) {
    struct stat st {};
    if (f.empty() || stat(f.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    ++checked;
    if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
      bad = true;
      out.Add("files", Level::kFail,
              f + " is readable or writable by other users (" + Mode(st.st_mode) + "): chmod o-rw");
    } else if ((st.st_mode & (S_IRGRP | S_IWGRP)) != 0 && !group_readable) {
      bad = true;
      out.Add("files", Level::kWarn,
              f + " is group-readable (" + Mode(st.st_mode) + ") but group_readable is off");
    }
  }
  if (!bad) {
    out.Add("files", Level::kPass,
            std::to_string(checked) +
                " files (database, WAL, keys, logs): none readable by other "
                "users");
  }
}

}  // namespace

DoctorCommands::DoctorCommands(CLI::App& app) : app_(app) {
  doctor_cmd_ = app.add_subcommand(
      "doctor",
      "Check a deployment against the release checklist: TLS, tokens, approvals' owners, the "
      "sandbox, backups and drills, retention, the access log, the audit log, SQLite settings "
      "and file modes (docs/operations.md \"The release checklist\")");
  doctor_cmd_->add_option("--gateway-config", config_path_,
                          "The Gateway's gateway.toml: its db, TLS, tokens, workflows, retention, "
                          "access log and sandbox settings are checked");
  doctor_cmd_
      ->add_option("--max-backup-age", max_backup_age_, "Fail when the last good backup is older")
      ->capture_default_str();
  doctor_cmd_
      ->add_option("--max-drill-age", max_drill_age_,
                   "Fail when the last good restore drill is older")
      ->capture_default_str();
  doctor_cmd_
      ->add_option("--min-retention", min_retention_,
                   "Fail when [retention] keep is shorter (or unset)")
      ->capture_default_str();
  doctor_cmd_
      ->add_option("--rotation-period", rotation_period_,
                   "Fail when a token that can write (run:write, approval:submit) was "
                   "issued longer ago")
      ->capture_default_str();
  doctor_cmd_
      ->add_option("--access-log-age", access_log_age_,
                   "Warn when the access log was last written longer ago")
      ->capture_default_str();
  doctor_cmd_
      ->add_option("--sandbox-runtime", sandbox_runtime_,
                   "With require_sandbox: the runtime to self-test")
      ->capture_default_str();
  doctor_cmd_->add_option("--sandbox-image", sandbox_image_,
                          "With require_sandbox and podman or docker: the self-test's image");
  doctor_cmd_->add_flag("--json", json_, "Print one JSON document {ok, items, counts} on stdout");
  doctor_cmd_->footer(
      "Each item: PASS, WARN or FAIL and why. Exit codes: 0 no item fails; 1 some item fails; "
      "4 bad input (an unreadable gateway config, a bad duration).");
}

int DoctorCommands::Run(const Global& g) {
  if (!*doctor_cmd_) return -1;
  Thresholds t;
  const std::pair<const char*, std::pair<const std::string*, int64_t*>> durations[] = {
      {"--max-backup-age", {&max_backup_age_, &t.max_backup_age_ms}},
      {"--max-drill-age", {&max_drill_age_, &t.max_drill_age_ms}},
      {"--min-retention", {&min_retention_, &t.min_retention_ms}},
      {"--rotation-period", {&rotation_period_, &t.rotation_period_ms}},
      {"--access-log-age", {&access_log_age_, &t.access_log_age_ms}},
  };
  for (const auto& [flag, slot] : durations) {
    long long ms = 0;
    if (!base::ParseDurationMs(*slot.first, &ms) || ms <= 0) {
      return Fail(kExitBadInput,
                  std::string(flag) + " \"" + *slot.first + "\" is not a duration like 30d");
    }
    *slot.second = ms;
  }

  // The deployment: the gateway config's settings, with the global flags
  // given on the command line over them (as `smithers gateway` takes them).
  Global dg = g;
  gateway::GatewayOptions o;
  const bool have_config = !config_path_.empty();
  if (have_config) {
    Result<gateway::GatewayConfig> file = gateway::LoadGatewayConfig(config_path_);
    if (!file.ok()) return Fail(kExitBadInput, file.status().message());
    o = file->options;
    if (app_.count("--db") == 0) dg.db = o.db;
    if (app_.count("--synchronous") == 0) dg.synchronous = o.synchronous;
    if (app_.count("--audit-key") == 0) dg.audit_key = o.audit_key;
    if (app_.count("--group-readable") == 0) dg.group_readable = o.group_readable;
    if (Status s = CheckDb(dg); !s.ok()) return Fail(kExitBadInput, s.message());
  }

  Checklist out;
  if (have_config) {
    CheckTls(o, out);
  } else {
    for (const char* id : {"tls", "retention", "access-log", "approvals", "sandbox"}) {
      out.Add(id, Level::kWarn, kNoConfig);
    }
  }

  std::unique_ptr<Store> store;
  if (!dg.db_file.empty() && access(dg.db_file.c_str(), F_OK) != 0) {
    out.Add("database", Level::kFail, "no database at " + dg.db_file);
  } else {
    Result<std::unique_ptr<Store>> opened =
        OpenStore(dg.db, {.read_only = true, .synchronous = dg.synchronous});
    if (!opened.ok()) {
      out.Add("database", Level::kFail,
              "cannot open " + RedactStoreUrl(dg.db) + ": " + opened.status().message());
    } else {
      store = std::move(*opened);
      out.Add("database", Level::kPass, "opened " + RedactStoreUrl(dg.db) + " read-only");
    }
  }

  if (store != nullptr) {
    // Tokens: the database's live grants and, with auth token, the tokens
    // file's (its refused grants too: the file should not hold them).
    const int64_t now = SystemClock().NowMs();
    std::vector<Grant> grants;
    Result<std::vector<TokenGrant>> tokens = store->ListTokens();
    if (!tokens.ok()) {
      out.Add("tokens", Level::kFail, "cannot list tokens: " + tokens.status().message());
    } else {
      for (const TokenGrant& tg : *tokens) {
        if (tg.revoked_at_ms != 0 && tg.revoked_at_ms <= now) continue;
        if (tg.expires_at_ms != 0 && tg.expires_at_ms <= now) continue;
        grants.push_back({.id = tg.token_id,
                          .where = "database",
                          .scopes = tg.scopes,
                          .issued_at_ms = tg.issued_at_ms,
                          .expires_at_ms = tg.expires_at_ms});
      }
      bool file_ok = true;
      if (have_config && o.auth == "token" && !o.tokens_file.empty()) {
        Result<gateway::FileGrants> file = gateway::ReadTokenFile(o.tokens_file);
        if (!file.ok()) {
          file_ok = false;
          out.Add("tokens", Level::kFail, file.status().message());
        } else {
          gateway::ApplyTokenPolicy(&*file, o.max_token_ttl_ms, now);
          for (const auto& [hash, fg] : file->by_hash) {
            if (fg.revoked_at_ms != 0 && fg.revoked_at_ms <= now) continue;
            if (fg.expires_at_ms != 0 && fg.expires_at_ms <= now) continue;
            grants.push_back({.id = fg.token_id,
                              .where = o.tokens_file,
                              .scopes = fg.scopes,
                              .issued_at_ms = fg.issued_at_ms,
                              .expires_at_ms = fg.expires_at_ms,
                              .refused = fg.refused});
          }
        }
      }
      if (file_ok) CheckTokens(grants, o.max_token_ttl_ms, t, out);
    }
  }

  if (have_config) {
    CheckApprovals(o, out);
    CheckSandbox(o, sandbox_runtime_, sandbox_image_, out);
  }
  if (store != nullptr && !dg.db_file.empty()) {
    CheckMaintenance(*store, "backup", t.max_backup_age_ms, "--max-backup-age", out);
    CheckMaintenance(*store, "drill", t.max_drill_age_ms, "--max-drill-age", out);
  } else if (store != nullptr) {
    // `db backup` and its drill copy SQLite files (docs/postgres.md "Backups").
    out.Add("backup", Level::kWarn,
            "a server database is backed up with the server's tools (pg_dump, point-in-time "
            "recovery): not checked here");
  }
  if (have_config) {
    CheckRetention(o, t, out);
    CheckAccessLog(o, t, out);
  }
  if (store != nullptr) CheckAudit(*store, dg.audit_key, dg.db_file, out);
  if (!dg.db_file.empty()) {
    if (store != nullptr) CheckSqlite(dg.db_file, dg.synchronous, out);
    std::vector<std::string> files = {dg.db_file, dg.db_file + "-wal", dg.db_file + "-shm"};
    if (dg.audit_key.empty()) files.push_back(dg.db_file + ".audit-key");
    if (dg.audit_key.starts_with("file:")) files.push_back(dg.audit_key.substr(5));
    if (have_config) {
      if (!o.access_log.empty() && o.access_log != "-") files.push_back(o.access_log);
      files.push_back(o.tokens_file);
      files.push_back(o.tls_key);
    }
    CheckFileModes(files, dg.group_readable, out);
  } else {
    out.Add("sqlite", Level::kWarn,
            RedactStoreUrl(dg.db) + " is not a SQLite file: its settings are not checked");
  }

  const int fails = out.Count(Level::kFail);
  if (json_ || g.json) {
    Json items = Json::array();
    for (const Item& i : out.items()) {
      items.push_back({{"id", i.id}, {"status", LevelName(i.level)}, {"message", i.message}});
    }
    std::cout << Json{{"ok", fails == 0},
                      {"items", std::move(items)},
                      {"counts",
                       {{"pass", out.Count(Level::kPass)},
                        {"warn", out.Count(Level::kWarn)},
                        {"fail", fails}}}}
                     .dump(2)
              << std::endl;
  } else {
    for (const Item& i : out.items()) {
      const char* tag = i.level == Level::kPass   ? "PASS"
                        : i.level == Level::kWarn ? "WARN"
                                                  : "FAIL";
      std::cout << tag << "  " << i.id << ": " << i.message << "\n";
    }
    std::cout << out.Count(Level::kPass) << " passed, " << out.Count(Level::kWarn) << " warned, "
              << fails << " failed\n";
  }
  return fails > 0 ? kExitFailed : kExitOk;
}

}  // namespace smithers::cli
