// Durable waits through the C++ API, with a ManualClock: timers fire once at
// their fixed time across restarts, approvals escalate in the running engine,
// and every commit of a run with an approval, a signal and a timer can fail
// (before or after it applies) without a decision or a signal being lost or
// applied twice.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "smithers/engine.h"
#include "smithers/schema.h"
#include "smithers/store.h"
#include "smithers/workflow.h"
#include "store/fault_injecting_store.h"
#include "store/store_test_util.h"

namespace smithers {
namespace {

using store::FaultInjectingStore;
using store::TempDir;

constexpr int64_t kStart = 1'800'000'000'000;

Json DecisionSchema() {
  return schema::Object({{"approved", schema::Boolean()},
                         {"note", schema::Nullable(schema::String())},
                         {"decidedBy", schema::String()},
                         {"decidedAt", schema::String()}});
}

// gate (Approval) -> ci (WaitForEvent "ci") -> cool (Timer 1 s) -> done (static).
WorkflowDefinition Workflow3() {
  WorkflowDefinition def;
  def.name = "waits";
  def.source_hash = "h";
  def.outputs["decision"] = DecisionSchema();
  def.outputs["ci"] = schema::Object({{"sha", schema::String()}});
  def.outputs["done"] = schema::Object({{"ok", schema::Boolean()}});
  def.render = [](const Ctx&) -> Result<Node> {
    return Workflow(
        "waits",
        {Sequence(
            {ApprovalTask("gate", "decision",
                          {.owner = "alice", .fallback_owner = "bob", .escalate_after_ms = 60'000}),
             WaitForEventTask("ci", "ci", {.event = "ci"}),
             TimerTask("cool", {.duration_ms = 1000}),
             StaticTask("done", "done", {{"ok", true}})})});
  };
  return def;
}

class WaitsEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    auto s = OpenSqliteStore({.path = dir_.path() + "/runs.db", .synchronous = "NORMAL"});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  Result<RunResult> Run(Store& store, bool resume) {
    RunOptions opts;
    opts.run_id = "w1";
    opts.resume = resume;
    opts.clock = &clock_;
    return RunWorkflow(def_, store, opts);
  }

  std::vector<std::string> Types() {
    std::vector<std::string> out;
    auto events = store_->ListEvents("w1", -1, 100000);
    EXPECT_TRUE(events.ok());
    for (const auto& e : *events) out.push_back(e.type);
    return out;
  }

  // What a supervisor sees of the parked run w1 at `now` (WaitReadyReason).
  std::string Ready(int64_t now) {
    auto run = store_->GetRun("w1");
    EXPECT_TRUE(run.ok());
    auto reason = WaitReadyReason(*store_, *run, now);
    EXPECT_TRUE(reason.ok()) << reason.status().ToString();
    return reason.ok() ? *reason : "error";
  }

  int Count(const std::string& type) {
    auto t = Types();
    return static_cast<int>(std::count(t.begin(), t.end(), type));
  }

  TempDir dir_;
  ManualClock clock_{kStart};
  WorkflowDefinition def_ = Workflow3();
  std::unique_ptr<Store> store_;
};

TEST_F(WaitsEngineTest, EachWaitParksTheRunUntilItIsSatisfied) {
  auto r = Run(*store_, false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kWaitingApproval);
  EXPECT_EQ(r->ExitCode(), 3);
  ASSERT_EQ(r->waiting.size(), 1u);
  EXPECT_EQ(r->waiting[0]["owner"], "alice");
  auto run = store_->GetRun("w1");
  EXPECT_EQ(run->runtime_owner_id, "");  // no process holds a waiting run

  // Escalation happens in the engine once escalateAfterMs has passed.
  clock_.AdvanceMs(61'000);
  r = Run(*store_, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, RunStatus::kWaitingApproval);
  EXPECT_EQ(r->waiting[0]["owner"], "bob");
  EXPECT_EQ(Count("ApprovalEscalated"), 1);

  EXPECT_EQ(Ready(clock_.NowMs()), "");
  auto d = store_->DecideApproval(
      {.run_id = "w1", .node_id = "gate", .approved = true, .decided_by = "bob"}, clock_.NowMs());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(Ready(clock_.NowMs()), "approval of gate approved");
  r = Run(*store_, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, RunStatus::kWaitingEvent);
  EXPECT_EQ(r->outputs["decision"]["gate"]["decidedBy"], "bob");

  EXPECT_EQ(Ready(clock_.NowMs()), "");
  ASSERT_TRUE(
      store_->AppendSignal({.run_id = "w1", .name = "other", .payload = Json::object()}).ok());
  EXPECT_EQ(Ready(clock_.NowMs()), "") << "a signal of another name";
  auto sig = store_->AppendSignal(
      {.run_id = "w1", .name = "ci", .payload = {{"sha", "abc"}}, .received_at_ms = kStart});
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(Ready(clock_.NowMs()), "signal ci arrived");
  r = Run(*store_, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, RunStatus::kWaitingTimer);
  const int64_t fires = r->waiting[0]["firesAtMs"].get<int64_t>();
  EXPECT_EQ(fires, clock_.NowMs() + 1000);

  EXPECT_EQ(Ready(fires - 1), "");
  EXPECT_EQ(Ready(fires), "timer cool due");
  clock_.AdvanceMs(999);
  r = Run(*store_, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, RunStatus::kWaitingTimer);
  EXPECT_EQ(r->waiting[0]["firesAtMs"].get<int64_t>(), fires) << "the fire time never moves";

  clock_.AdvanceMs(1);
  r = Run(*store_, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, RunStatus::kFinished);
  EXPECT_EQ(r->outputs["ci"]["ci"], (Json{{"sha", "abc"}}));
  EXPECT_EQ(r->outputs["done"]["done"], (Json{{"ok", true}}));
  EXPECT_EQ(Count("TimerCreated"), 1);
  EXPECT_EQ(Count("TimerFired"), 1);
  EXPECT_EQ(Count("SignalConsumed"), 1);
  EXPECT_EQ(Count("ApprovalRequested"), 1);
}

// Each commit of the whole journey (every Commit() the engine makes while it
// requests, parks, resumes, consumes and fires) fails once, before or after applying; a
// resume on the real store must still apply the decision and the signal
// exactly once.
TEST_F(WaitsEngineTest, AFailedCommitAnywhereLosesNoDecisionOrSignal) {
  for (auto fault :
       {FaultInjectingStore::Fault::kBeforeApply, FaultInjectingStore::Fault::kAfterApply}) {
    for (int n = 1;; ++n) {
      SCOPED_TRACE("commit " + std::to_string(n) +
                   (fault == FaultInjectingStore::Fault::kBeforeApply ? " before" : " after"));
      TempDir dir;
      auto real = OpenSqliteStore({.path = dir.path() + "/runs.db", .synchronous = "NORMAL"});
      ASSERT_TRUE(real.ok());
      FaultInjectingStore faulty(real->get());
      faulty.FailCommit(n, fault);
      // Decide and signal up front: the run meets them as it gets there.
      bool failed = false;
      auto drive = [&](Store& s, bool resume) -> std::string {
        auto r = RunWorkflow(def_, s, [&] {
          RunOptions o;
          o.run_id = "w1";
          o.resume = resume;
          o.clock = &clock_;
          return o;
        }());
        if (!r.ok()) {
          failed = true;
          return "error";
        }
        return std::string(Name(r->status));
      };
      std::string st = drive(faulty, false);
      auto run = (*real)->GetRun("w1");
      bool started = run.ok();
      for (int round = 0; round < 10 && st != "finished"; ++round) {
        if (started) {
          // Satisfy whatever it waits for; repeats are refused, never doubled.
          (void)(*real)->DecideApproval(
              {.run_id = "w1", .node_id = "gate", .approved = true, .decided_by = "alice"},
              clock_.NowMs());
          auto sigs = (*real)->ListSignals("w1");
          if (sigs.ok() && sigs->empty()) {
            (void)(*real)->AppendSignal({.run_id = "w1", .name = "ci", .payload = {{"sha", "x"}}});
          }
          clock_.AdvanceMs(2000);
        }
        st = drive(faulty, started);
        started = (*real)->GetRun("w1").ok();
      }
      ASSERT_EQ(st, "finished");
      auto events = (*real)->ListEvents("w1", -1, 100000);
      ASSERT_TRUE(events.ok());
      std::map<std::string, int> count;
      for (size_t i = 0; i < events->size(); ++i) {
        EXPECT_EQ((*events)[i].seq, static_cast<int64_t>(i) + 1) << "seqs are gapless";
        count[(*events)[i].type]++;
      }
      EXPECT_EQ(count["ApprovalGranted"], 1);
      EXPECT_EQ(count["SignalReceived"], 1);
      EXPECT_EQ(count["SignalConsumed"], 1);
      EXPECT_EQ(count["TimerFired"], 1);
      EXPECT_EQ(count["RunFinished"], 1);
      auto sigs = (*real)->ListSignals("w1");
      ASSERT_EQ(sigs->size(), 1u);
      EXPECT_EQ((*sigs)[0].status, SignalStatus::kConsumed);
      auto outputs = CollectOutputs(**real, "w1");
      EXPECT_EQ((*outputs)["ci"]["ci"], (Json{{"sha", "x"}}));
      EXPECT_EQ((*outputs)["decision"]["gate"]["approved"], true);
      if (faulty.commit_calls() < n) {
        EXPECT_FALSE(failed);
        EXPECT_GT(n, 10) << "the journey has more commits than that";
        break;  // n is past the journey's last commit
      }
      EXPECT_TRUE(failed) << "the injected fault surfaced";
    }
  }
}

}  // namespace
}  // namespace smithers
