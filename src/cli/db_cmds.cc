// `smithers db backup|check|restore|history`: backups that are proven
// (docs/operations.md "Backups").
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/hash.h"
#include "base/text.h"
#include "cli/commands.h"
#include "script/lua_workflow.h"
#include "smithers/engine.h"
#include "smithers/json.h"
#include "smithers/store.h"

namespace smithers::cli {
namespace {

// Progress on stderr: a line each time another tenth of the pages is copied.
CopyProgress TenthsOnStderr(const std::string& what) {
  auto last = std::make_shared<int64_t>(-1);
  return [what, last](int64_t done, int64_t total) {
    if (total <= 0) return;
    const int64_t tenth = done * 10 / total;
    if (tenth == *last) return;
    *last = tenth;
    std::cerr << what << ": " << done << "/" << total << " pages (" << tenth * 10 << "%)\n";
  };
}

Json CopyJson(const SqliteCopy& c) {
  return {{"pages", c.pages},
          {"bytes", c.bytes},
          {"schemaVersion", c.schema_version},
          {"runs", c.runs}};
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

// Records a backup, restore or drill in `store`, and in its audit log in
// the same transaction; a failure to record is reported, not fatal (the
// operation itself is done).
void Record(Store& store, MaintenanceRecord r) {
  r.actor = OsUser();
  const AuditEntry audit = CliAudit("db." + r.kind, r.path, {{"ok", r.ok}, {"detail", r.detail}});
  Status recorded = store.Audited(audit, [&] { return store.AddMaintenance(r).status(); });
  if (!recorded.ok())
    std::cerr << "smithers: warning: not recorded: " << recorded.message() << "\n";
}

Status SqliteOnly(const Global& g, const char* what) {
  if (!g.db_file.empty()) return Status::Ok();
  return FailedPreconditionError(std::string("db ") + what +
                                 " copies a SQLite database file; for a server database use the "
                                 "server's own tools (pg_dump, point-in-time recovery)");
}

}  // namespace

DbCommands::DbCommands(CLI::App& app) {
  db_cmd_ =
      app.add_subcommand("db", "Back up, check and restore the database (docs/operations.md)");
  db_cmd_->require_subcommand(1);
  backup_cmd_ = db_cmd_->add_subcommand(
      "backup",
      "Write a consistent copy of the database to FILE while runs go on (SQLite's online backup "
      "API, one snapshot); the copy is checked, written 0600, and recorded in `db history`");
  backup_cmd_->add_option("file", file_, "Where to write the backup; must not exist")->required();
  backup_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");

  check_cmd_ = db_cmd_->add_subcommand(
      "check", "Check a backup file: integrity, foreign keys, a schema this build can open");
  check_cmd_->add_option("file", file_, "The backup file")->required();
  check_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");

  restore_cmd_ = db_cmd_->add_subcommand(
      "restore",
      "Replace the database (--db, or --to PATH) by a backup, after checking it; refused while "
      "any other process has the database open. With --drill: restore into a scratch folder "
      "instead, load every run, render a sample, and record the drill");
  restore_cmd_->add_option("file", file_, "The backup file")->required();
  restore_cmd_->add_option("--to", to_, "Restore into this database file instead of --db's");
  restore_cmd_->add_flag("--drill", drill_,
                         "Prove the backup restores: nothing at --db or --to changes, except the "
                         "drill's record in --db's history");
  restore_cmd_
      ->add_option("--sample", sample_, "With --drill: how many of the newest runs to render")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  restore_cmd_->add_flag("--keep", keep_, "With --drill: keep the scratch copy and say where");
  restore_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");
  restore_cmd_->footer(
      "Exit codes: 0 restored (or the drill passed); 1 it failed; 4 a bad, damaged or too new "
      "backup, or a database another process has open.");

  history_cmd_ =
      db_cmd_->add_subcommand("history", "List backups, restores and drills, newest first");
  history_cmd_->add_option("--kind", kind_, "backup, restore or drill (default: all)")
      ->check(CLI::IsMember({"backup", "restore", "drill"}));
  history_cmd_->add_option("--limit", limit_, "At most this many")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  history_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");

  migrate_cmd_ = db_cmd_->add_subcommand(
      "migrate",
      "Create the tables, or bring them up to this build's schema, and exit: what every writing "
      "command does first, for a deployment that migrates before it starts its processes "
      "(several at once are safe). Exit 4 when the database was written by a newer build");

  copy_cmd_ = db_cmd_->add_subcommand(
      "copy",
      "Copy a whole store into a new, empty one, across backends (a SQLite file to PostgreSQL "
      "or back): every run, event, output, approval, signal, token, cron schedule, module "
      "revision, audit row and backup record, in one transaction, read from one snapshot; then "
      "verified table by table (row counts and SHA-256). Stop what writes to --from first. "
      "Exit 0 copied and verified; 1 failed or differs; 4 bad input (a destination with rows)");
  copy_cmd_
      ->add_option("--from", copy_from_, "The store to copy (a path, sqlite:PATH, postgres://...)")
      ->required();
  copy_cmd_->add_option("--to", copy_to_, "The new store (created; must hold no rows)")->required();
  copy_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");
}

int DbCommands::Run(const Global& g) {
  if (*backup_cmd_) return Backup(g);
  if (*check_cmd_) return Check();
  if (*restore_cmd_) return drill_ ? Drill(g) : Restore(g);
  if (*history_cmd_) return History(g);
  if (*migrate_cmd_) return Migrate(g);
  if (*copy_cmd_) return Copy(g);
  return -1;
}

int DbCommands::Migrate(const Global& g) {
  auto store = Open(g);  // a writable open migrates (under the backend's lock)
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  std::cout << RedactStoreUrl(g.db) << ": the " << (*store)->BackendName()
            << " schema is up to date\n";
  return 0;
}

int DbCommands::Backup(const Global& g) {
  if (Status only = SqliteOnly(g, "backup"); !only.ok()) return Fail(kExitBadInput, only.message());
  const int64_t started = CliClock().NowMs();
  const std::string file = Absolute(file_);
  Result<SqliteCopy> copy = BackupSqliteStore(g.db_file, file, TenthsOnStderr("backup"));
  auto store = Open(g);
  if (store.ok()) {
    Record(**store,
           {.kind = "backup",
            .started_at_ms = started,
            .finished_at_ms = CliClock().NowMs(),
            .ok = copy.ok(),
            .path = file,
            .detail = copy.ok() ? CopyJson(*copy) : Json{{"error", copy.status().message()}}});
  }
  if (!copy.ok()) return Fail(ExitFor(copy.status()), copy.status().message());
  if (json_) {
    Json out = CopyJson(*copy);
    out["file"] = file;
    std::cout << out.dump(2) << std::endl;
  } else {
    std::cout << "backed up " << g.db_file << " to " << file << ": " << copy->runs << " runs, "
              << copy->bytes << " bytes, schema " << copy->schema_version << ", checked\n";
  }
  return kExitOk;
}

int DbCommands::Check() {
  Result<SqliteCopy> copy = CheckSqliteBackup(file_);
  if (!copy.ok()) return Fail(ExitFor(copy.status()), copy.status().message());
  if (json_) {
    std::cout << CopyJson(*copy).dump(2) << std::endl;
  } else {
    std::cout << file_ << ": sound; " << copy->runs << " runs, schema " << copy->schema_version
              << "\n";
  }
  return kExitOk;
}

int DbCommands::Restore(const Global& g) {
  const std::string target = to_.empty() ? g.db_file : to_;
  if (target.empty()) {
    return Fail(kExitBadInput, SqliteOnly(g, "restore").message());
  }
  const int64_t started = CliClock().NowMs();
  const std::string file = Absolute(file_);
  Result<SqliteCopy> copy = RestoreSqliteStore(file, target, TenthsOnStderr("restore"));
  if (!copy.ok()) return Fail(ExitFor(copy.status()), copy.status().message());
  // Opening migrates it to this build's schema and turns WAL back on; the
  // restore is the first thing the restored database records.
  auto store = OpenStore(
      target,
      {.group_readable = g.group_readable, .synchronous = g.synchronous, .audit_key = g.audit_key});
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Json detail = CopyJson(*copy);
  detail["schemaVersionNow"] = StoreSchemaVersion();
  Record(**store, {.kind = "restore",
                   .started_at_ms = started,
                   .finished_at_ms = CliClock().NowMs(),
                   .ok = true,
                   .path = file,
                   .detail = detail});
  if (json_) {
    detail["file"] = file;
    detail["to"] = target;
    std::cout << detail.dump(2) << std::endl;
  } else {
    std::cout << "restored " << file << " into " << target << ": " << copy->runs << " runs, schema "
              << copy->schema_version << " (now " << StoreSchemaVersion() << ")\n";
  }
  return kExitOk;
}

namespace {

// The restored copy's rows for one run, all read (a row that cannot be read
// fails the drill); adds their counts to `rows`.
Status LoadRun(Store& store, const RunRecord& run, Json& rows) {
  const std::string& id = run.run_id;
  auto add = [&rows](const char* table, size_t n) {
    rows[table] = rows.value(table, int64_t{0}) + static_cast<int64_t>(n);
  };
  SMITHERS_ASSIGN_OR_RETURN(auto nodes, store.ListNodes(id));
  add("nodes", nodes.size());
  SMITHERS_ASSIGN_OR_RETURN(auto attempts, store.ListAttempts(id));
  add("attempts", attempts.size());
  SMITHERS_ASSIGN_OR_RETURN(auto outputs, store.ListOutputs(id));
  add("outputs", outputs.size());
  SMITHERS_ASSIGN_OR_RETURN(auto loops, store.ListLoops(id));
  add("loops", loops.size());
  SMITHERS_ASSIGN_OR_RETURN(auto frames, store.ListFrames(id));
  add("frames", frames.size());
  SMITHERS_ASSIGN_OR_RETURN(auto events, store.ListEvents(id, 0, INT_MAX));
  add("events", events.size());
  SMITHERS_ASSIGN_OR_RETURN(auto approvals, store.ListApprovals({.run_id = id}));
  add("approvals", approvals.size());
  SMITHERS_ASSIGN_OR_RETURN(auto signals, store.ListSignals(id));
  add("signals", signals.size());
  return Status::Ok();
}

// Renders `run` from the restored copy with the module revision it ran
// (pinned in the copy), loaded with the restricted library: nothing runs.
Result<RenderedRun> RenderRun(Store& store, const RunRecord& run) {
  SMITHERS_ASSIGN_OR_RETURN(std::optional<ModuleSource> pinned,
                            store.GetModuleSource(run.workflow_hash));
  if (!pinned.has_value()) {
    return NotFoundError("its module revision " + run.workflow_hash.substr(0, 12) +
                         " is not in the backup");
  }
  SMITHERS_ASSIGN_OR_RETURN(
      std::unique_ptr<script::LuaWorkflow> module,
      script::LoadWorkflowModuleSource(run.workflow_path, pinned->source, pinned->siblings,
                                       {.restricted = true}));
  return RenderStoredRun(module->definition(), store, run.run_id);
}

}  // namespace

int DbCommands::Drill(const Global& g) {
  if (!to_.empty()) return Fail(kExitBadInput, "--drill restores into a scratch folder, not --to");
  if (Status only = SqliteOnly(g, "restore --drill"); !only.ok()) {
    return Fail(kExitBadInput, only.message());
  }
  const int64_t started = CliClock().NowMs();
  const std::string file = Absolute(file_);
  const char* tmp = std::getenv("TMPDIR");
  std::string scratch =
      std::string(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp") + "/smithers-drill-XXXXXX";
  if (mkdtemp(scratch.data()) == nullptr) {
    return Fail(kExitFailed, "cannot create a scratch folder under " + scratch);
  }
  Json report = {{"file", file}, {"ok", false}};
  Json rows = Json::object();
  Json rendered = Json::array();
  Json failures = Json::array();
  Json skipped = Json::array();
  int code = kExitOk;
  {
    const std::string copy_path = scratch + "/smithers.db";
    Result<SqliteCopy> copy = RestoreSqliteStore(file, copy_path, TenthsOnStderr("drill"));
    Result<std::unique_ptr<Store>> store =
        copy.ok() ? OpenStore(copy_path, {.synchronous = "NORMAL"}) : copy.status();
    if (!store.ok()) {
      failures.push_back({{"error", store.status().message()}});
      code = ExitFor(store.status());
    } else {
      report["backup"] = CopyJson(*copy);
      Result<std::vector<RunRecord>> runs = (*store)->ListRuns({.limit = INT_MAX});
      if (!runs.ok()) {
        failures.push_back({{"error", runs.status().message()}});
      } else {
        report["runs"] = runs->size();
        for (size_t i = 0; i < runs->size(); ++i) {
          const RunRecord& run = (*runs)[i];
          Status loaded = LoadRun(**store, run, rows);
          if (!loaded.ok()) {
            failures.push_back({{"runId", run.run_id}, {"error", loaded.message()}});
            continue;
          }
          if (static_cast<int>(i) >= sample_) continue;
          Result<RenderedRun> r = RenderRun(**store, run);
          if (r.ok()) {
            rendered.push_back({{"runId", run.run_id}, {"nodes", r->nodes}, {"tasks", r->tasks}});
          } else if (r.status().code() == StatusCode::kNotFound) {
            skipped.push_back({{"runId", run.run_id}, {"reason", r.status().message()}});
          } else {
            failures.push_back({{"runId", run.run_id}, {"error", r.status().message()}});
          }
        }
      }
    }
  }
  report["rows"] = rows;
  report["rendered"] = rendered;
  report["skipped"] = skipped;
  report["failures"] = failures;
  report["ok"] = failures.empty();
  if (keep_) {
    report["scratch"] = scratch;
  } else {
    std::error_code ec;
    std::filesystem::remove_all(scratch, ec);
  }
  report["elapsedMs"] = CliClock().NowMs() - started;
  auto store = Open(g);
  if (store.ok()) {
    Record(**store, {.kind = "drill",
                     .started_at_ms = started,
                     .finished_at_ms = CliClock().NowMs(),
                     .ok = failures.empty(),
                     .path = file,
                     .detail = report});
  } else {
    std::cerr << "smithers: warning: the drill is not recorded: " << store.status().message()
              << "\n";
  }
  if (json_) {
    std::cout << report.dump(2) << std::endl;
  } else {
    std::cout << "drill of " << file << ": " << (failures.empty() ? "passed" : "FAILED") << "; "
              << report.value("runs", size_t{0}) << " runs loaded, " << rendered.size()
              << " rendered, " << skipped.size() << " skipped, " << failures.size()
              << " failures\n";
    for (const Json& f : failures) std::cout << "  failure: " << f.dump() << "\n";
    for (const Json& s : skipped) std::cout << "  skipped: " << s.dump() << "\n";
    if (keep_) std::cout << "  the restored copy is kept at " << scratch << "/smithers.db\n";
  }
  if (!failures.empty() && code == kExitOk) code = kExitFailed;
  return code;
}

int DbCommands::History(const Global& g) {
  auto store = OpenForRead(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Result<std::vector<MaintenanceRecord>> rows = (*store)->ListMaintenance(kind_, limit_);
  if (!rows.ok()) return Fail(ExitFor(rows.status()), rows.status().message());
  if (json_) {
    Json out = Json::array();
    for (const MaintenanceRecord& r : *rows) {
      out.push_back({{"id", r.id},
                     {"kind", r.kind},
                     {"startedAtMs", r.started_at_ms},
                     {"finishedAtMs", r.finished_at_ms},
                     {"ok", r.ok},
                     {"path", r.path},
                     {"actor", r.actor},
                     {"detail", r.detail}});
    }
    std::cout << Json{{"history", out}}.dump(2) << std::endl;
    return kExitOk;
  }
  if (rows->empty()) std::cerr << "no backup, restore or drill recorded\n";
  for (const MaintenanceRecord& r : *rows) {
    std::cout << r.kind << "\t" << (r.ok ? "ok" : "FAILED") << "\t" << Ago(r.finished_at_ms) << "\t"
              << r.actor << "\t" << r.path << "\n";
  }
  return kExitOk;
}

// A table's rows as they were read, for comparing two stores.
struct TableDigest {
  int64_t rows = 0;
  base::Sha256 hash;
  // Each value tagged and length-prefixed: no two rows hash alike by
  // accident of concatenation; strings go in as their bytes.
  void Add(const Json& row) {
    ++rows;
    for (const Json& value : row) {
      if (value.is_null()) {
        hash.Update("n;");
      } else if (value.is_number_integer()) {
        hash.Update("i" + std::to_string(value.get<int64_t>()) + ";");
      } else {
        const std::string& text = value.get_ref<const std::string&>();
        hash.Update("s" + std::to_string(text.size()) + ":");
        hash.Update(text);
      }
    }
    hash.Update("\n");
  }
};

int DbCommands::Copy(const Global& g) {
  const std::string from_shown = RedactStoreUrl(copy_from_);
  const std::string to_shown = RedactStoreUrl(copy_to_);
  Result<std::unique_ptr<Store>> from =
      OpenStore(copy_from_, {.read_only = true, .audit_key = g.audit_key});
  if (!from.ok()) {
    return Fail(ExitFor(from.status()), "--from " + from_shown + ": " + from.status().message());
  }
  Result<std::unique_ptr<Store>> to = OpenStore(
      copy_to_,
      {.group_readable = g.group_readable, .synchronous = g.synchronous, .audit_key = g.audit_key});
  if (!to.ok())
    return Fail(ExitFor(to.status()), "--to " + to_shown + ": " + to.status().message());
  Store& src = **from;
  Store& dst = **to;

  // One snapshot of the source for the copy; the destination's rows are read
  // back after the commit and must hash the same.
  std::map<std::string, TableDigest> copied;
  {
    Result<std::unique_ptr<StoreImport>> import = dst.BeginImport();
    if (!import.ok()) {
      return Fail(ExitFor(import.status()), "--to " + to_shown + ": " + import.status().message());
    }
    ReadScope snapshot(src);
    for (const std::string& table : StoreTableNames()) {
      TableDigest& digest = copied[table];
      Status status = src.ExportTable(table, [&](const Json& row) -> Status {
        digest.Add(row);
        if (digest.rows % 100000 == 0)
          std::cerr << "copy: " << table << ": " << digest.rows << " rows\n";
        return (*import)->Add(table, row);
      });
      if (!status.ok()) return Fail(kExitFailed, "copy " + table + ": " + status.message());
      if (digest.rows > 0) std::cerr << "copy: " << table << ": " << digest.rows << " rows\n";
    }
    Status committed = (*import)->Commit();
    if (!committed.ok()) return Fail(kExitFailed, "copy: commit: " + committed.message());
  }

  Json tables = Json::array();
  std::vector<std::string> differ;
  int64_t total = 0;
  for (const std::string& table : StoreTableNames()) {
    TableDigest there;
    Status status = dst.ExportTable(table, [&](const Json& row) {
      there.Add(row);
      return Status::Ok();
    });
    if (!status.ok()) return Fail(kExitFailed, "verify " + table + ": " + status.message());
    const TableDigest& here = copied[table];
    const std::string sha = here.hash.HexDigest();
    if (there.rows != here.rows || there.hash.HexDigest() != sha) differ.push_back(table);
    total += here.rows;
    tables.push_back({{"table", table}, {"rows", here.rows}, {"sha256", sha}});
  }
  const bool verified = differ.empty();
  if (verified) {
    // The copy is an operator's act on the new store: in its audit log,
    // after the rows it copied (a warning where no key is at hand).
    const AuditEntry audit = CliAudit("db.copy", from_shown, {{"to", to_shown}, {"rows", total}});
    Status recorded = dst.Audited(audit, [] { return Status::Ok(); });
    if (!recorded.ok()) {
      std::cerr << "smithers: warning: the copy is not in --to's audit log: " << recorded.message()
                << "\n";
    }
  }
  if (json_) {
    std::cout << Json{{"from", from_shown}, {"to", to_shown},       {"tables", tables},
                      {"rows", total},      {"verified", verified}, {"differ", differ}}
                     .dump(2)
              << std::endl;
  } else {
    for (const Json& t : tables) {
      if (t["rows"].get<int64_t>() == 0) continue;
      std::cout << t["table"].get<std::string>() << "\t" << t["rows"].get<int64_t>() << "\t"
                << t["sha256"].get<std::string>().substr(0, 16) << "\n";
    }
    std::cout << (verified ? "copied and verified: " : "copied, but the copy DIFFERS: ") << total
              << " rows from " << from_shown << " to " << to_shown << "\n";
  }
  if (!verified) {
    std::cerr << "smithers: these tables differ after the copy: " << base::Join(differ, ", ")
              << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace smithers::cli
