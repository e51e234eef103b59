#include "fault_injecting_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "smithers/store.h"
#include "store_test_util.h"

namespace smithers::store {
namespace {

class FaultInjectingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    Result<std::unique_ptr<Store>> real = OpenSqliteStore({.path = dir_.path() + "/runs.db"});
    ASSERT_TRUE(real.ok()) << real.status().ToString();
    real_ = std::move(real).value();
    store_ = std::make_unique<FaultInjectingStore>(real_.get());

    WriteBatch create;
    create.UpsertRun(MakeRun("r1"));
    STORE_ASSERT_OK(store_->Commit(create));  // commit #1
  }

  static WriteBatch FinishNode() {
    WriteBatch batch;
    batch.UpsertNode({.run_id = "r1", .node_id = "a", .state = NodeState::kFinished});
    batch.PutOutput({.run_id = "r1", .node_id = "a", .output_table = "t", .payload = {{"x", 1}}});
    batch.AppendEvent("r1", "NodeFinished", {{"nodeId", "a"}}, 10);
    return batch;
  }

  TempDir dir_;
  std::unique_ptr<Store> real_;
  std::unique_ptr<FaultInjectingStore> store_;
};

TEST_F(FaultInjectingStoreTest, FailureBeforeApplyWritesNothing) {
  store_->FailCommit(2, FaultInjectingStore::Fault::kBeforeApply);
  Result<std::vector<int64_t>> failed = store_->Commit(FinishNode());
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  STORE_ASSERT_OK_AND_ASSIGN(auto outputs, real_->ListOutputs("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto events, real_->ListEvents("r1", -1, 100));
  EXPECT_TRUE(outputs.empty());
  EXPECT_TRUE(events.empty());

  // Only the planned commit fails; the retry lands as if it were the first.
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> seqs, store_->Commit(FinishNode()));
  EXPECT_EQ(seqs, (std::vector<int64_t>{1}));
  EXPECT_EQ(store_->commit_calls(), 3);
  EXPECT_EQ(store_->commits_applied(), 2);
}

TEST_F(FaultInjectingStoreTest, AmbiguousCommitLandsButReportsFailure) {
  store_->FailCommit(2, FaultInjectingStore::Fault::kAfterApply, AbortedError("lost reply"));
  Result<std::vector<int64_t>> failed = store_->Commit(FinishNode());
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kAborted);
  EXPECT_EQ(failed.status().message(), "lost reply");

  STORE_ASSERT_OK_AND_ASSIGN(auto outputs, real_->ListOutputs("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto events, real_->ListEvents("r1", -1, 100));
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].payload, (Json{{"x", 1}}));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].seq, 1);
  EXPECT_EQ(store_->commits_applied(), 2);

  // A blind retry re-applies: the upserts are idempotent, the event is not.
  // That is why the engine must reload state after an ambiguous commit.
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> seqs, store_->Commit(FinishNode()));
  EXPECT_EQ(seqs, (std::vector<int64_t>{2}));
  STORE_ASSERT_OK_AND_ASSIGN(outputs, real_->ListOutputs("r1"));
  EXPECT_EQ(outputs.size(), 1u);
}

TEST_F(FaultInjectingStoreTest, FailCommitsFromStopsEveryLaterCommit) {
  store_->FailCommitsFrom(3);
  STORE_ASSERT_OK(store_->Commit(FinishNode()));  // #2
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(store_->Commit(FinishNode()).ok());
  STORE_ASSERT_OK_AND_ASSIGN(auto events, real_->ListEvents("r1", -1, 100));
  EXPECT_EQ(events.size(), 1u);

  store_->ClearFaults();
  STORE_ASSERT_OK(store_->Commit(FinishNode()));
  EXPECT_EQ(store_->commit_calls(), 6);
}

TEST_F(FaultInjectingStoreTest, ReadsAndOtherCallsPassThrough) {
  store_->FailCommitsFrom(1);
  STORE_ASSERT_OK_AND_ASSIGN(RunRecord run, store_->GetRun("r1"));
  EXPECT_EQ(run.run_id, "r1");
  STORE_ASSERT_OK(store_->ClaimRun("r1", "", "me", 5));
  STORE_ASSERT_OK(store_->Heartbeat("r1", "me", 6));
  STORE_ASSERT_OK(store_->RequestCancel("r1", 7));
  STORE_ASSERT_OK_AND_ASSIGN(run, real_->GetRun("r1"));
  EXPECT_EQ(run.runtime_owner_id, "me");
  EXPECT_EQ(run.cancel_requested_at_ms, 7);
}

TEST_F(FaultInjectingStoreTest, RealFailureIsReportedAsIs) {
  store_->FailCommit(2, FaultInjectingStore::Fault::kAfterApply);
  WriteBatch bad;
  bad.UpsertNode({.run_id = "ghost", .node_id = "a"});
  Result<std::vector<int64_t>> result = store_->Commit(bad);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kFailedPrecondition) << result.status().ToString();
  EXPECT_EQ(store_->commits_applied(), 1);
}

}  // namespace
}  // namespace smithers::store
