// Time through one seam: the engine, its executors and the heartbeat watchdog
// read and wait on RunOptions::clock. With a ManualClock in virtual time every
// wait passes at once, so retries, backoff, heartbeats, timers and escalation
// are checked at their exact times and nothing here sleeps.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "smithers/engine.h"
#include "smithers/schema.h"
#include "smithers/store.h"
#include "smithers/workflow.h"
#include "store/store_test_util.h"

namespace smithers {
namespace {

using store::TempDir;

constexpr int64_t kStart = 1'800'000'000'000;

// An attempt that lives on the run's clock: it ends ok once `lasts_ms` of
// that clock have passed (never when negative), shows a sign of life on every
// look when `alive`, and ends with an error once cancelled. Its wait fd never
// becomes readable, so the engine waits on the clock between looks.
class ClockedExecution final : public Execution {
 public:
  ClockedExecution(Clock& clock, int64_t lasts_ms, bool alive, std::vector<std::string>* cancels)
      : clock_(clock),
        ends_at_(lasts_ms < 0 ? -1 : clock.MonotonicMs() + lasts_ms),
        alive_(alive),
        cancels_(cancels) {
    if (pipe(pipe_) != 0) pipe_[0] = pipe_[1] = -1;
  }
  ~ClockedExecution() override {
    for (int fd : pipe_) {
      if (fd >= 0) close(fd);
    }
  }
  std::optional<AttemptOutcome> Poll() override {
    if (cancelled_) {
      return AttemptOutcome{.ok = false, .error = {{"code", "TASK_CANCELLED"}, {"message", "x"}}};
    }
    if (ends_at_ >= 0 && clock_.MonotonicMs() >= ends_at_) {
      return AttemptOutcome{.ok = true, .output = {{"ok", true}}};
    }
    return std::nullopt;
  }
  int WaitFd() const override { return pipe_[0]; }
  void Cancel(const std::string& reason) override {
    cancelled_ = true;
    cancels_->push_back(reason);
  }
  bool TakeActivity() override { return alive_; }

 private:
  Clock& clock_;
  int64_t ends_at_;
  bool alive_;
  bool cancelled_ = false;
  std::vector<std::string>* cancels_;
  int pipe_[2] = {-1, -1};
};

// Agent-mode tasks run here: `lasts_ms` and `alive` by node id.
class ClockedExecutor final : public Executor {
 public:
  struct Plan {
    int64_t lasts_ms = -1;
    bool alive = false;
  };
  explicit ClockedExecutor(std::map<std::string, Plan> plans) : plans_(std::move(plans)) {}
  Result<std::unique_ptr<Execution>> Start(const TaskSpec&, const AttemptInfo& info) override {
    EXPECT_NE(info.clock, nullptr);
    const Plan& p = plans_.at(info.node_id);
    return std::unique_ptr<Execution>(
        std::make_unique<ClockedExecution>(*info.clock, p.lasts_ms, p.alive, &cancels));
  }
  std::vector<std::string> cancels;

 private:
  std::map<std::string, Plan> plans_;
};

Node AgentTask(const std::string& id) {
  Node n = StaticTask(id, "out", Json::object());
  n.task.mode = TaskMode::kAgent;
  n.task.value = nullptr;
  return n;
}

class ClockEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = store::OpenTestStore(dir_.path());
    ASSERT_NE(store_, nullptr);
    def_.name = "clocked";
    def_.source_hash = "h";
    def_.outputs["out"] = schema::Object({{"ok", schema::Boolean()}});
    def_.outputs["decision"] = schema::Object({{"approved", schema::Boolean()},
                                               {"note", schema::Nullable(schema::String())},
                                               {"decidedBy", schema::String()},
                                               {"decidedAt", schema::String()}});
  }

  Result<RunResult> Run(ClockedExecutor* executor = nullptr) {
    RunOptions opts;
    opts.run_id = "r1";
    opts.clock = &clock_;
    if (executor != nullptr) opts.executors[TaskMode::kAgent] = executor;
    opts.agent_heartbeat_timeout_ms = 30'000;
    return RunWorkflow(def_, *store_, opts);
  }

  std::vector<EventRecord> Events(const std::string& type) {
    auto all = store_->ListEvents("r1", -1, 100000);
    EXPECT_TRUE(all.ok());
    std::vector<EventRecord> out;
    for (auto& e : *all) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  ManualClock clock_{kStart, ManualClock::Mode::kVirtual};
  WorkflowDefinition def_;
};

TEST_F(ClockEngineTest, RetriesStartAtTheirBackoffOnTheRunsClock) {
  int calls = 0;
  Node flaky = ComputeTask("flaky", "out", [&calls](const ComputeContext& c) -> Result<Json> {
    EXPECT_NE(c.clock, nullptr);
    if (++calls < 4) return UnavailableError("not yet");
    return Json{{"ok", true}};
  });
  flaky.task.retries = 3;
  flaky.task.retry_policy = {.backoff = "exponential", .initial_delay_ms = 1000};
  def_.render = [flaky](const Ctx&) -> Result<Node> { return Workflow("clocked", {flaky}); };

  auto r = Run();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kFinished);
  auto attempts = store_->ListAttempts("r1");
  ASSERT_TRUE(attempts.ok());
  std::vector<int64_t> starts;
  for (const auto& a : *attempts) starts.push_back(a.started_at_ms - kStart);
  std::sort(starts.begin(), starts.end());
  // 1 s, then 2 s, then 4 s after each failure, to the millisecond.
  EXPECT_EQ(starts, (std::vector<int64_t>{0, 1000, 3000, 7000}));
  EXPECT_EQ(calls, 4);
}

TEST_F(ClockEngineTest, ASilentAttemptFailsAtItsHeartbeatTimeout) {
  ClockedExecutor ex({{"quiet", {.lasts_ms = -1, .alive = false}}});
  def_.render = [](const Ctx&) -> Result<Node> {
    return Workflow("clocked", {AgentTask("quiet")});
  };

  auto r = Run(&ex);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kFailed);
  auto attempts = store_->ListAttempts("r1");
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 1u);
  const AttemptRecord& a = attempts->front();
  EXPECT_EQ(a.error["code"], "TASK_HEARTBEAT_TIMEOUT") << a.error.dump();
  // RunOptions::agent_heartbeat_timeout_ms (30 s), seen at the engine's next
  // look (it waits at most cancel_poll_interval_ms, 250 ms, between looks).
  EXPECT_GT(a.finished_at_ms - a.started_at_ms, 30'000);
  EXPECT_LE(a.finished_at_ms - a.started_at_ms, 30'250);
  ASSERT_EQ(ex.cancels.size(), 1u);
  EXPECT_NE(ex.cancels[0].find("no heartbeat for"), std::string::npos) << ex.cancels[0];
  auto timeouts = Events("TaskHeartbeatTimeout");
  ASSERT_EQ(timeouts.size(), 1u);
  EXPECT_EQ(timeouts[0].payload["timeoutMs"], 30'000);
}

TEST_F(ClockEngineTest, HeartbeatEventsComeAtMostOncePerInterval) {
  ClockedExecutor ex({{"busy", {.lasts_ms = 10'000, .alive = true}}});
  def_.render = [](const Ctx&) -> Result<Node> { return Workflow("clocked", {AgentTask("busy")}); };

  auto r = Run(&ex);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kFinished);
  auto beats = Events("TaskHeartbeat");
  // A sign of life on every look over 10 s, reported once per 1 s interval.
  ASSERT_GE(beats.size(), 9u);
  ASSERT_LE(beats.size(), 10u);
  for (size_t i = 1; i < beats.size(); ++i) {
    EXPECT_GE(beats[i].timestamp_ms - beats[i - 1].timestamp_ms, 1000) << i;
  }
  EXPECT_TRUE(ex.cancels.empty()) << "a task that shows life is never timed out";
}

TEST_F(ClockEngineTest, ATimerFiresAtItsTimeInTheRunningEngine) {
  ClockedExecutor ex({{"long", {.lasts_ms = 20'000, .alive = true}}});
  def_.render = [](const Ctx&) -> Result<Node> {
    return Workflow("clocked",
                    {Parallel({TimerTask("cool", {.duration_ms = 5000}), AgentTask("long")})});
  };

  auto r = Run(&ex);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kFinished);
  auto fired = Events("TimerFired");
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].payload["firesAtMs"], kStart + 5000);
  EXPECT_GE(fired[0].payload["delayMs"].get<int64_t>(), 0);
  EXPECT_LE(fired[0].payload["delayMs"].get<int64_t>(), 250);
}

TEST_F(ClockEngineTest, AnApprovalEscalatesOnTimeInTheRunningEngine) {
  ClockedExecutor ex({{"long", {.lasts_ms = 120'000, .alive = true}}});
  def_.render = [](const Ctx&) -> Result<Node> {
    return Workflow(
        "clocked",
        {Parallel(
            {ApprovalTask("gate", "decision",
                          {.owner = "alice", .fallback_owner = "bob", .escalate_after_ms = 60'000}),
             AgentTask("long")})});
  };

  auto r = Run(&ex);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // The long task ended at 120 s; only the approval is left: the run parks,
  // already handed to the fallback owner.
  EXPECT_EQ(r->status, RunStatus::kWaitingApproval);
  ASSERT_EQ(r->waiting.size(), 1u);
  EXPECT_EQ(r->waiting[0]["owner"], "bob");
  auto escalated = Events("ApprovalEscalated");
  ASSERT_EQ(escalated.size(), 1u);
  EXPECT_GE(escalated[0].timestamp_ms, kStart + 60'000);
  EXPECT_LE(escalated[0].timestamp_ms, kStart + 60'250);
}

}  // namespace
}  // namespace smithers
