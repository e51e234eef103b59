// Who holds a run (OwnerHoldsRun) and which runs a supervisor resumes
// (FindResumableRuns): the one definition `up --resume`, `cancel`, the
// Gateway's sweep and `smithers supervise` share (docs/engine.md "Durability").
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "smithers/engine.h"
#include "smithers/store.h"
#include "store/store_test_util.h"

namespace smithers {
namespace {

using store::TempDir;

// An owner on another host: never taken for a dead local process, so only
// its heartbeat decides.
constexpr char kRemote[] = "elsewhere.invalid:4242:0c1d";
// An owner on this host whose process cannot exist (pid above pid_max).
std::string DeadLocal() {
  std::string me = ThisProcessOwnerId();
  return me.substr(0, me.find(':')) + ":2147483646:dead";
}

RunRecord RunRow(const std::string& id, RunStatus status, const std::string& owner,
                 int64_t heartbeat_at_ms) {
  return {.run_id = id,
          .workflow_name = "w",
          .workflow_path = "w.lua",
          .status = status,
          .created_at_ms = 1,
          .heartbeat_at_ms = heartbeat_at_ms,
          .runtime_owner_id = owner};
}

TEST(OwnerHoldsRunTest, HeldUntilTheHeartbeatIsStale) {
  const int64_t beat = 1'000'000;
  RunRecord r = RunRow("r", RunStatus::kRunning, kRemote, beat);
  EXPECT_TRUE(OwnerHoldsRun(r, beat));
  EXPECT_TRUE(OwnerHoldsRun(r, beat + kStaleOwnerMs));
  EXPECT_FALSE(OwnerHoldsRun(r, beat + kStaleOwnerMs + 1));
  EXPECT_TRUE(OwnerHoldsRun(r, beat + 5000, /*stale_ms=*/5000));
  EXPECT_FALSE(OwnerHoldsRun(r, beat + 5001, /*stale_ms=*/5000));
  EXPECT_EQ(kStaleOwnerMs, 30000) << "documented in docs/engine.md and `supervise --help`";
}

TEST(OwnerHoldsRunTest, NoOwnerOrADeadLocalOwnerHoldsNothing) {
  EXPECT_FALSE(OwnerHoldsRun(RunRow("r", RunStatus::kRunning, "", 100), 100));
  EXPECT_FALSE(OwnerHoldsRun(RunRow("r", RunStatus::kRunning, DeadLocal(), 100), 100));
  EXPECT_TRUE(OwnerHoldsRun(RunRow("r", RunStatus::kRunning, ThisProcessOwnerId(), 100), 100));
}

TEST(FindResumableRunsTest, RunningRunsWhoseOwnerIsGoneOrSilent) {
  TempDir dir;
  std::unique_ptr<Store> s = store::OpenTestStore(dir.path());
  ASSERT_NE(s, nullptr);
  const int64_t now = 10'000'000;
  const std::string me = "supervisor.invalid:1:me";
  WriteBatch b;
  b.UpsertRun(RunRow("fresh", RunStatus::kRunning, kRemote, now - 1000));
  b.UpsertRun(RunRow("silent", RunStatus::kRunning, kRemote, now - kStaleOwnerMs - 1));
  b.UpsertRun(RunRow("released", RunStatus::kRunning, "", now));
  b.UpsertRun(RunRow("dead", RunStatus::kRunning, DeadLocal(), now));
  b.UpsertRun(RunRow("mine", RunStatus::kRunning, me, now - kStaleOwnerMs - 1));
  b.UpsertRun(RunRow("done", RunStatus::kFinished, "", now - kStaleOwnerMs - 1));
  // Waiting runs come back only when their wait is over; this one waits for
  // nothing recorded, so it stays parked.
  b.UpsertRun(RunRow("parked", RunStatus::kWaitingEvent, "", now));
  STORE_ASSERT_OK(s->Commit(b));

  Result<std::vector<ResumableRun>> due = FindResumableRuns(*s, me, now);
  STORE_ASSERT_OK(due);
  std::map<std::string, std::string> why;
  for (const ResumableRun& r : *due) why[r.run.run_id] = r.reason;
  EXPECT_EQ(why.size(), 3u);
  EXPECT_EQ(why["silent"], std::string("no heartbeat from ") + kRemote + " for " +
                               std::to_string(kStaleOwnerMs + 1) + " ms");
  EXPECT_EQ(why["released"], "owner missing is gone");
  EXPECT_EQ(why["dead"], "owner " + DeadLocal() + " is gone");

  // A shorter threshold (supervise --stale-threshold) makes the fresh one due too.
  due = FindResumableRuns(*s, me, now, /*stale_ms=*/500);
  STORE_ASSERT_OK(due);
  EXPECT_EQ(due->size(), 4u);
}

}  // namespace
}  // namespace smithers
