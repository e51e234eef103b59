// `smithers audit`: list, export, anchor and verify the audit log
// (docs/operations.md "Audit log").
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/hash.h"
#include "cli/commands.h"
#include "smithers/json.h"
#include "smithers/store.h"

namespace smithers::cli {
namespace {

constexpr int kExitTampered = 1;

// --since: a duration back from now (24h, 7d) or an ISO 8601 time.
Result<int64_t> SinceMs(const std::string& since) {
  if (since.empty()) return int64_t{0};
  long long ms = 0;
  if (base::ParseDurationMs(since, &ms)) return CliClock().NowMs() - ms;
  if (base::ParseIsoTime(since, &ms)) return static_cast<int64_t>(ms);
  return InvalidArgumentError("--since \"" + since +
                              "\" is neither a duration (24h, 7d) nor a time "
                              "(2026-12-01T00:00:00Z)");
}

// Every row, oldest first: what anchor and verify read.
Result<std::vector<AuditRecord>> WholeLog(const Global& g) {
  auto store = OpenForRead(g);
  if (!store.ok()) return store.status();
  return (*store)->ListAudit({});
}

}  // namespace

AuditCommands::AuditCommands(CLI::App& app) {
  audit_cmd_ = app.add_subcommand(
      "audit",
      "The audit log: who launched, resumed, cancelled, deleted runs, decided approvals, sent "
      "signals, issued tokens, changed cron, took backups (oldest first)");
  audit_cmd_->add_option("--run", run_, "Only this run's rows");
  audit_cmd_->add_option("--actor", actor_, "Only this actor's rows");
  audit_cmd_->add_option("--since", since_,
                         "Only rows at or after: a duration back (24h, 7d) or a time");
  audit_cmd_->add_option("--limit", limit_, "At most this many rows (0 = all)")
      ->check(CLI::NonNegativeNumber);
  audit_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");
  export_cmd_ = audit_cmd_->add_subcommand(
      "export", "Print the rows (every column, HMACs too) for archiving, one JSON object a line");
  export_cmd_->add_option("--format", format_, "ndjson (the only format)")
      ->check(CLI::IsMember({"ndjson"}))
      ->capture_default_str();
  export_cmd_->add_option("--run", run_, "Only this run's rows");
  export_cmd_->add_option("--since", since_, "Only rows at or after: a duration back or a time");
  anchor_cmd_ = audit_cmd_->add_subcommand(
      "anchor",
      "Print the newest row as SEQ:HMAC: keep it outside this machine; `audit verify --anchor` "
      "later proves no row up to it was removed");
  verify_cmd_ = audit_cmd_->add_subcommand(
      "verify",
      "Check the whole log under its key: no row edited, removed, moved or re-chained; with "
      "--anchor, none cut off the end");
  verify_cmd_->add_option("--anchor", anchor_, "A SEQ:HMAC that `audit anchor` printed earlier");
  verify_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");
  verify_cmd_->footer(
      "Needs the log's key (--audit-key, default the file DB.audit-key). Exit codes: 0 the log "
      "verifies; 1 it does not (each problem is printed); 4 bad input or no key.");
}

int AuditCommands::Run(const Global& g) {
  if (*export_cmd_) return List(g, /*ndjson=*/true);
  if (*anchor_cmd_) return Anchor(g);
  if (*verify_cmd_) return Verify(g);
  if (*audit_cmd_) return List(g, /*ndjson=*/false);
  return -1;
}

int AuditCommands::List(const Global& g, bool ndjson) {
  Result<int64_t> since = SinceMs(since_);
  if (!since.ok()) return Fail(kExitBadInput, since.status().message());
  auto store = OpenForRead(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Result<std::vector<AuditRecord>> rows = (*store)->ListAudit(
      {.run_id = run_, .actor = actor_, .since_ms = *since, .limit = ndjson ? 0 : limit_});
  if (!rows.ok()) return Fail(ExitFor(rows.status()), rows.status().message());
  if (ndjson) {
    for (const AuditRecord& r : *rows) std::cout << AuditRecordJson(r).dump() << "\n";
    std::cout.flush();
    return kExitOk;
  }
  if (json_ || g.json) {
    Json out = Json::array();
    for (const AuditRecord& r : *rows) out.push_back(AuditRecordJson(r));
    std::cout << Json{{"rows", out}}.dump(2) << std::endl;
    return kExitOk;
  }
  for (const AuditRecord& r : *rows) {
    std::cout << r.seq << "  " << base::FormatIsoTime(r.entry.at_ms) << "  " << r.entry.actor
              << " (" << r.entry.actor_via << ")  " << r.entry.action << "  " << r.entry.target;
    if (!r.entry.details.empty()) std::cout << "  " << r.entry.details.dump();
    std::cout << "\n";
  }
  if (rows->empty()) std::cerr << "no audit rows\n";
  return kExitOk;
}

int AuditCommands::Anchor(const Global& g) {
  Result<std::vector<AuditRecord>> rows = WholeLog(g);
  if (!rows.ok()) return Fail(ExitFor(rows.status()), rows.status().message());
  std::cout << AuditAnchor(*rows) << std::endl;
  return kExitOk;
}

int AuditCommands::Verify(const Global& g) {
  Result<std::string> key = LoadAuditKey(g.audit_key, g.db_file);
  if (!key.ok()) {
    return Fail(kExitBadInput, "cannot verify without the log's key: " + key.status().message());
  }
  Result<std::vector<AuditRecord>> rows = WholeLog(g);
  if (!rows.ok()) return Fail(ExitFor(rows.status()), rows.status().message());
  Result<AuditVerification> v = VerifyAuditLog(*rows, *key, anchor_);
  if (!v.ok()) return Fail(ExitFor(v.status()), v.status().message());
  const bool ok = v->problems.empty();
  if (json_ || g.json) {
    std::cout << Json{{"ok", ok},
                      {"rows", v->rows},
                      {"chains", v->chains},
                      {"anchor", AuditAnchor(*rows)},
                      {"problems", v->problems}}
                     .dump(2)
              << std::endl;
  } else {
    for (const std::string& p : v->problems) std::cout << "audit: " << p << "\n";
    std::cout << (ok ? "audit log verifies: " : "audit log does NOT verify: ") << v->rows
              << " rows in " << v->chains << " chains; newest " << AuditAnchor(*rows) << "\n";
  }
  return ok ? kExitOk : kExitTampered;
}

}  // namespace smithers::cli
