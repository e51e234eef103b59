// Retention (gateway.toml [retention]; docs/gateway.md "Retention"): the
// Gateway deletes the runs that ended more than `keep` ago, at start-up and
// then every `every` (server.cc's timer). Listing them reads every run of the
// statuses kept, so it runs on a thread of its own with its own store; the
// deletions run on the io thread, which alone knows the runs this Gateway
// runs, one per turn of the io loop so that requests are served between
// them (as a deleteRun request is).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "base/redact.h"
#include "gateway/gateway_internal.h"
#include "smithers/engine.h"

namespace smithers::gateway {
namespace {

// One stderr line, as the Gateway's other operator messages are.
void Say(const std::string& text) {
  fprintf(stderr, "smithers gateway: retention: %s\n", base::Redact(text).c_str());
}

}  // namespace

// A sweep's runs, oldest first, and how far its deletions got.
struct Gateway::RetentionSweep {
  int64_t ended_before_ms = 0;
  std::vector<std::string> run_ids;
  size_t next = 0;
};

void Gateway::SweepRetention() {
  const RetentionOptions& r = opts_.retention;
  if (r.keep_ms <= 0 || retention_busy_) return;
  retention_busy_ = true;
  StopRetention();  // the last sweep's thread, long done
  int64_t before = 0;
  if (__builtin_sub_overflow(clock_.NowMs(), r.keep_ms, &before)) before = INT64_MIN;
  retention_thread_ = std::thread([this, before, statuses = r.statuses]() {
    auto sweep = std::make_shared<RetentionSweep>();
    sweep->ended_before_ms = before;
    {
      Result<std::unique_ptr<Store>> store = open_store_();
      Result<std::vector<RunRecord>> due =
          store.ok() ? RunsToPrune(**store, statuses, before) : store.status();
      if (due.ok()) {
        for (const RunRecord& run : *due) sweep->run_ids.push_back(run.run_id);
      } else {
        Say("cannot list the runs to delete: " + due.status().message());
      }
    }  // the store is closed before the io thread goes on
    Post([this, sweep]() { DeleteNextDueRun(sweep); });
  });
}

void Gateway::DeleteNextDueRun(const std::shared_ptr<RetentionSweep>& sweep) {
  if (sweep->next < sweep->run_ids.size()) {
    const std::string& id = sweep->run_ids[sweep->next++];
    ReapRuns();  // a thread that just ended does not hold its run
    // Checked again now: a run this Gateway runs, or one resumed (and so
    // ended again, later) since it was listed, is not deleted.
    Result<RunRecord> run = store_->GetRun(id);
    const std::vector<RunStatus>& statuses = opts_.retention.statuses;
    bool due = run.ok() && active_.count(id) == 0 &&
               std::find(statuses.begin(), statuses.end(), run->status) != statuses.end() &&
               RunEndedAtMs(*run) < sweep->ended_before_ms;
    if (!run.ok() && run.status().code() != StatusCode::kNotFound) {
      Say("cannot read run " + id + ": " + run.status().message());
    }
    if (due) {
      const AuditEntry audit =
          SystemAudit("run.delete", id, {{"retention", {{"keepMs", opts_.retention.keep_ms}}}});
      Result<DeletedRun> deleted = DeleteRun(*store_, id, /*force=*/false, clock_, &audit);
      if (deleted.ok()) {
        metrics_.retention_runs_deleted++;
        Say("deleted run " + id + " (" + std::string(Name(deleted->run.status)) + ", ended " +
            base::FormatIsoTime(RunEndedAtMs(deleted->run)) + ")");
        for (const std::string& warning : deleted->warnings) Say("run " + id + ": " + warning);
        Wake();
      } else if (deleted.status().code() != StatusCode::kNotFound &&
                 deleted.status().code() != StatusCode::kFailedPrecondition) {
        // (Gone, or no longer over, since it was read: nothing to say.)
        Say("cannot delete run " + id + ": " + deleted.status().message());
      }
    }
  }
  if (sweep->next < sweep->run_ids.size()) {
    Post([this, sweep]() { DeleteNextDueRun(sweep); });
    return;
  }
  retention_busy_ = false;
  metrics_.retention_sweeps++;
}

void Gateway::StopRetention() {
  if (retention_thread_.joinable()) retention_thread_.join();
}

}  // namespace smithers::gateway
