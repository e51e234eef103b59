// `smithers runs delete|prune`: whole-run deletion and retention
// (docs/operations.md "Deleting runs").
#include <unistd.h>

#include <chrono>
#include <climits>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/hash.h"
#include "cli/commands.h"
#include "smithers/engine.h"
#include "smithers/json.h"

namespace smithers::cli {
namespace {

Json DeletedJson(const DeletedRun& d) {
  return {{"runId", d.run.run_id},
          {"status", std::string(Name(d.run.status))},
          {"workflow", d.run.workflow_name},
          {"bundleDirs", d.bundle_dirs},
          {"warnings", d.warnings}};
}

void PrintDeleted(const DeletedRun& d) {
  std::cout << "deleted run " << d.run.run_id << " (" << Name(d.run.status) << ", "
            << d.run.workflow_name << ")\n";
  for (const std::string& dir : d.bundle_dirs) std::cout << "  removed " << dir << "\n";
  for (const std::string& w : d.warnings) std::cerr << "smithers: warning: " << w << "\n";
}

// DeleteRun, waiting up to `wait_ms` for a run a live process is running to
// stop after a forced delete asked it to.
Result<DeletedRun> DeleteWaiting(Store& store, const std::string& run_id, bool force,
                                 int64_t wait_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  bool said = false;
  for (;;) {
    const AuditEntry audit = CliAudit("run.delete", run_id);
    Result<DeletedRun> d = DeleteRun(store, run_id, force, CliClock(), &audit);
    if (d.ok() || d.status().code() != StatusCode::kUnavailable ||
        std::chrono::steady_clock::now() >= deadline) {
      return d;
    }
    if (!said) {
      std::cerr << "run " << run_id << " is running in a live process; asked it to stop, waiting\n";
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

AdminCommands::AdminCommands(CLI::App& app) {
  runs_cmd_ = app.add_subcommand("runs", "Delete runs, one by one or by age (retention)");
  runs_cmd_->require_subcommand(1);
  delete_cmd_ = runs_cmd_->add_subcommand(
      "delete",
      "Delete runs with everything that depends on them: nodes, attempts, outputs, frames, "
      "events, approvals, signals, and the Sandbox bundles on disk; one transaction per run");
  delete_cmd_->add_option("runs", delete_ids_, "The runs to delete")->required();
  delete_cmd_->add_flag("--force", force_,
                        "Also delete a run that is not over: it is cancelled first (a run a live "
                        "process is running is asked to stop, and deleted once it has)");
  delete_cmd_
      ->add_option("--wait", wait_, "With --force: how long to wait for a running run to stop")
      ->capture_default_str();
  delete_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");
  delete_cmd_->footer(
      "Exit codes: 0 every run deleted; 1 a run could not be (the others still are); 4 no such "
      "run, or a run not over without --force.");

  prune_cmd_ = runs_cmd_->add_subcommand(
      "prune", "Delete the runs that ended longer ago than --older-than (as `runs delete` does)");
  prune_cmd_
      ->add_option("--older-than", older_than_,
                   "Delete runs that ended (or, never started, were created) longer ago "
                   "than this: 30d, 12h, ...")
      ->required();
  prune_cmd_
      ->add_option("--status", prune_status_,
                   "Which ended runs: a comma-separated list of finished, failed, cancelled")
      ->capture_default_str();
  prune_cmd_->add_flag("--dry-run", dry_run_, "List the runs it would delete; delete nothing");
  prune_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");
  prune_cmd_->footer(
      "Exit codes: 0 done (or nothing to do); 1 a run could not be deleted; 4 a bad duration or "
      "status.");
}

int AdminCommands::Run(const Global& g) {
  if (*delete_cmd_) return Delete(g);
  if (*prune_cmd_) return Prune(g);
  return -1;
}

int AdminCommands::Delete(const Global& g) {
  long long wait_ms = 0;
  if (!base::ParseDurationMs(wait_, &wait_ms)) {
    return Fail(kExitBadInput, "--wait \"" + wait_ + "\" is not a duration like 30s");
  }
  auto store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  int code = kExitOk;
  Json done = Json::array();
  for (const std::string& id : delete_ids_) {
    Result<DeletedRun> d = DeleteWaiting(**store, id, force_, wait_ms);
    if (!d.ok()) {
      const int c = d.status().code() == StatusCode::kNotFound ||
                            d.status().code() == StatusCode::kFailedPrecondition
                        ? kExitBadInput
                        : kExitFailed;
      Fail(c, d.status().message());
      if (code == kExitOk || c == kExitFailed) code = c;
      continue;
    }
    if (json_) {
      done.push_back(DeletedJson(*d));
    } else {
      PrintDeleted(*d);
    }
  }
  if (json_) std::cout << Json{{"deleted", done}}.dump(2) << std::endl;
  return code;
}

int AdminCommands::Prune(const Global& g) {
  long long older_ms = 0;
  if (!base::ParseDurationMs(older_than_, &older_ms) || older_ms <= 0) {
    return Fail(kExitBadInput, "--older-than \"" + older_than_ + "\" is not a duration like 30d");
  }
  std::vector<RunStatus> statuses;
  std::stringstream list(prune_status_);
  for (std::string name; std::getline(list, name, ',');) {
    Result<RunFilter> f = RunFilterForStatus(name, 1);
    if (!f.ok() || !f->status.has_value() || !IsTerminal(*f->status)) {
      return Fail(kExitBadInput, "--status: \"" + name +
                                     "\" is not finished, failed or cancelled (prune deletes "
                                     "only runs that are over)");
    }
    statuses.push_back(*f->status);
  }
  if (statuses.empty()) return Fail(kExitBadInput, "--status names no status");
  auto store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Result<std::vector<RunRecord>> due =
      RunsToPrune(**store, statuses, CliClock().NowMs() - older_ms);
  if (!due.ok()) return Fail(ExitFor(due.status()), due.status().message());
  int code = kExitOk;
  Json done = Json::array();
  for (const RunRecord& run : *due) {
    if (dry_run_) {
      if (json_) {
        done.push_back({{"runId", run.run_id}, {"status", std::string(Name(run.status))}});
      } else {
        std::cout << "would delete run " << run.run_id << " (" << Name(run.status) << ", "
                  << run.workflow_name << ", ended " << Ago(RunEndedAtMs(run)) << ")\n";
      }
      continue;
    }
    const AuditEntry audit =
        CliAudit("run.delete", run.run_id, {{"prune", {{"olderThan", older_than_}}}});
    Result<DeletedRun> d = DeleteRun(**store, run.run_id, /*force=*/false, CliClock(), &audit);
    if (!d.ok()) {
      code = Fail(kExitFailed, d.status().message());
      continue;
    }
    if (json_) {
      done.push_back(DeletedJson(*d));
    } else {
      PrintDeleted(*d);
    }
  }
  if (json_) {
    std::cout << Json{{dry_run_ ? "wouldDelete" : "deleted", done}}.dump(2) << std::endl;
  } else if (due->empty()) {
    std::cerr << "no run to prune\n";
  }
  return code;
}

}  // namespace smithers::cli
