// PlanTree and Smithers' dependency props (TaskSpec::deps): resolution,
// readiness, terminal kinds, unmounted dependencies and cycles.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/plan.h"
#include "smithers/workflow.h"

namespace smithers::core {
namespace {

const std::map<std::string, Json> kOutputs = {{"out", Json::object()}, {"other", Json::object()}};

Node T(const std::string& id) { return StaticTask(id, "out", Json::object()); }

// `id` reading the "out" row of each of `rows` (key = id), after `after`.
Node D(const std::string& id, const std::vector<std::string>& rows,
       std::vector<std::string> after = {}, bool optional = false) {
  TaskDeps deps{.depends_on = std::move(after), .optional = optional};
  for (const auto& r : rows) deps.rows[r] = TaskDep{.task_id = r, .output = "out"};
  return WithDeps(T(id), std::move(deps));
}

Result<PlanTree> Build(const Node& root, const LoopStates& loops = {}) {
  return PlanTree::Build(root, loops, kOutputs);
}

std::string BuildError(const Node& root) {
  Result<PlanTree> plan = Build(root);
  EXPECT_FALSE(plan.ok());
  if (plan.ok()) return "";
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  return plan.status().message();
}

class Board {
 public:
  explicit Board(const Node& root, const LoopStates& loops = {}) : plan_(*Build(root, loops)) {
    states_.resize(plan_.tasks().size());
  }
  Board& Set(const std::string& id, TaskState s, int iteration = 0) {
    int i = plan_.Find(id, iteration);
    EXPECT_GE(i, 0) << id;
    if (i >= 0) states_[i].state = s;
    return *this;
  }
  Decision Schedule() const {
    Decision fresh = plan_.Schedule(states_, 0, 100);
    Decision memo = plan_.Schedule(states_, 0, 100, &memo_);
    EXPECT_EQ(fresh.ready, memo.ready) << "the memo changed the decision";
    return fresh;
  }
  std::vector<std::string> Ready() const {
    std::vector<std::string> out;
    for (int t : Schedule().ready) out.push_back(plan_.tasks()[t].node_id);
    return out;
  }
  const PlanTree& plan() const { return plan_; }

 private:
  PlanTree plan_;
  std::vector<TaskStatus> states_;
  mutable ScheduleMemo memo_;
};

using Ids = std::vector<std::string>;

TEST(PlanDeps, ATaskWaitsForItsDependenciesInAParallel) {
  Node root = Workflow("wf", {Parallel({D("c", {"a"}, {"b"}), T("a"), T("b")})});
  Board b(root);
  EXPECT_EQ(b.Ready(), (Ids{"a", "b"}));
  b.Set("a", TaskState::kFinished);
  EXPECT_EQ(b.Ready(), (Ids{"b"}));
  b.Set("b", TaskState::kInProgress);
  EXPECT_EQ(b.Ready(), Ids{});
  b.Set("b", TaskState::kFinished);
  EXPECT_EQ(b.Ready(), (Ids{"c"}));
}

TEST(PlanDeps, TerminalForDepsIsFinishedSkippedOrFailedWithContinueOnFail) {
  Node cof = T("f");
  cof.task.continue_on_fail = true;
  Node root = Workflow("wf", {Parallel({D("c", {"a", "s", "f"}), T("a"), T("s"), cof})});
  Board b(root);
  b.Set("a", TaskState::kFinished).Set("s", TaskState::kSkipped).Set("f", TaskState::kWaiting);
  EXPECT_EQ(b.Ready(), Ids{});  // waiting is not terminal
  b.Set("f", TaskState::kFailed);
  EXPECT_EQ(b.Ready(), (Ids{"c"}));
}

TEST(PlanDeps, AFailedDependencyWithoutContinueOnFailNeverReleasesTheTask) {
  Node root = Workflow("wf", {Parallel({D("c", {"a"}), T("a")})});
  Board b(root);
  b.Set("a", TaskState::kFailed);
  Decision d = b.Schedule();
  EXPECT_TRUE(d.ready.empty());
  EXPECT_GE(d.failed_task, 0);  // the run fails on "a"
}

TEST(PlanDeps, AnUnmountedDependencyWaitsAndIsNamed) {
  Node root = Workflow("wf", {Parallel({D("c", {"later"}, {"gone"}), T("a")})});
  Board b(root);
  Decision d = b.Schedule();
  ASSERT_EQ(d.blocked_on_unmounted.size(), 1u);
  int c = d.blocked_on_unmounted[0];
  EXPECT_EQ(b.plan().tasks()[c].node_id, "c");
  EXPECT_EQ(b.plan().UnmountedDeps(c), (Ids{"later", "gone"}));
  EXPECT_EQ(b.Ready(), (Ids{"a"}));
  b.Set("a", TaskState::kFinished);
  d = b.Schedule();
  EXPECT_TRUE(d.ready.empty());
  EXPECT_FALSE(d.finished);
}

TEST(PlanDeps, DepsOptionalDoesNotChangeReadiness) {
  Node root = Workflow("wf", {Parallel({D("c", {"a"}, {}, /*optional=*/true), T("a")})});
  Board b(root);
  EXPECT_EQ(b.Ready(), (Ids{"a"}));
  b.Set("a", TaskState::kSkipped);
  EXPECT_EQ(b.Ready(), (Ids{"c"}));
}

TEST(PlanDeps, DepsResolveInOrderRowsThenDependsOn) {
  Node root = Workflow("wf", {T("x"), T("y"), D("c", {"y", "x"}, {"x"})});
  Board b(root);
  int c = b.plan().Find("c", 0);
  std::span<const int> deps = b.plan().Deps(c);
  ASSERT_EQ(deps.size(), 3u);
  EXPECT_EQ(deps[0], b.plan().Find("x", 0));  // rows in key order: x, y
  EXPECT_EQ(deps[1], b.plan().Find("y", 0));
  EXPECT_EQ(deps[2], b.plan().Find("x", 0));
  EXPECT_TRUE(b.plan().Deps(b.plan().Find("x", 0)).empty());
}

TEST(PlanDeps, InsideALoopADependencyResolvesAtTheLoopsIteration) {
  // "b" depends on "a" (same loop, iteration 2) and on "seed" (outside, 0).
  Node root = Workflow("wf", {T("seed"), Loop("L", false, {T("a"), D("b", {"a", "seed"})})});
  Board b(root, {{"L", {2, false}}});
  std::span<const int> deps = b.plan().Deps(b.plan().Find("b", 2));
  ASSERT_EQ(deps.size(), 2u);
  EXPECT_EQ(b.plan().tasks()[deps[0]].iteration, 2);
  EXPECT_EQ(b.plan().tasks()[deps[1]].node_id, "seed");
  EXPECT_EQ(b.plan().tasks()[deps[1]].iteration, 0);
}

TEST(PlanDeps, TheRowMustBeTheDependencysDeclaredOutput) {
  Node other = StaticTask("a", "other", Json::object());
  std::string msg = BuildError(Workflow("wf", {other, D("c", {"a"})}));
  EXPECT_NE(msg.find("deps.a reads output \"out\" of task \"a\", which writes \"other\""),
            std::string::npos)
      << msg;
  Node undeclared = WithDeps(T("c"), {.rows = {{"k", {"a", "nope"}}}});
  msg = BuildError(Workflow("wf", {T("a"), undeclared}));
  EXPECT_NE(msg.find("deps.k reads output \"nope\", which the workflow does not declare"),
            std::string::npos)
      << msg;
  Node timer = TimerTask("t", {.duration_ms = 10});
  msg = BuildError(Workflow("wf", {timer, WithDeps(T("c"), {.rows = {{"k", {"t", "out"}}}})}));
  EXPECT_NE(msg.find("which has no output"), std::string::npos) << msg;
  // An ordering dependency on a timer is fine.
  EXPECT_TRUE(Build(Workflow("wf", {timer, D("c", {}, {"t"})})).ok());
}

TEST(PlanDeps, SelfDependencyIsACycle) {
  std::string msg = BuildError(Workflow("wf", {D("a", {}, {"a"})}));
  EXPECT_NE(msg.find("dependency cycle: \"a\" -> \"a\""), std::string::npos) << msg;
}

TEST(PlanDeps, ACycleNamesItsTasks) {
  std::string msg = BuildError(
      Workflow("wf", {Parallel({D("a", {"b"}), D("b", {}, {"c"}), D("c", {}, {"a"}), T("free")})}));
  EXPECT_NE(msg.find("dependency cycle: "), std::string::npos) << msg;
  for (const char* id : {"\"a\"", "\"b\"", "\"c\""}) {
    EXPECT_NE(msg.find(id), std::string::npos) << msg;
  }
  EXPECT_EQ(msg.find("free"), std::string::npos) << msg;
}

TEST(PlanDeps, DependingOnALaterSiblingOfASequenceIsACycle) {
  // The Sequence starts "b" only once "a" is done, and "a" waits for "b".
  std::string msg = BuildError(Workflow("wf", {Sequence({D("a", {}, {"b"}), T("b")})}));
  EXPECT_NE(msg.find("dependency cycle"), std::string::npos) << msg;
  // Also through containers: a task in an earlier Parallel on one in a later one.
  msg = BuildError(
      Workflow("wf", {Parallel({D("a", {"c"}), T("b")}), Sequence({T("x"), Parallel({T("c")})})}));
  EXPECT_NE(msg.find("dependency cycle"), std::string::npos) << msg;
  // The other way round is what a Sequence does anyway.
  EXPECT_TRUE(Build(Workflow("wf", {Sequence({T("b"), D("a", {"b"})})})).ok());
}

TEST(PlanDeps, ASkippedTaskDoesNotWaitSoItClosesNoCycle) {
  Node a = D("a", {}, {"b"});
  a.skip = true;
  Node root = Workflow("wf", {Sequence({a, T("b")})});
  ASSERT_TRUE(Build(root).ok());
  Board b(root);
  EXPECT_EQ(b.Schedule().to_skip.size(), 1u);
}

TEST(PlanDeps, AnIdTwoMountedTasksShareIsAmbiguous) {
  // Two loops at different iterations may both mount "a".
  Node root = Workflow("wf", {Loop("L1", false, {T("a")}), Loop("L2", false, {T("z")}),
                              Sequence({D("c", {}, {"a"})})});
  Node dup = Workflow("wf", {Loop("L1", false, {T("a")}), Loop("L2", false, {T("a")}),
                             Sequence({D("c", {}, {"a"})})});
  EXPECT_TRUE(Build(root).ok());
  Result<PlanTree> plan = Build(dup, {{"L1", {0, false}}, {"L2", {1, false}}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("more than one mounted task"), std::string::npos);
}

TEST(PlanDeps, AChainOfTenThousandBuildsAndSchedulesIncrementally) {
  std::vector<Node> kids;
  kids.push_back(T("s0"));
  for (int i = 1; i < 10000; ++i) {
    kids.push_back(D("s" + std::to_string(i), {"s" + std::to_string(i - 1)}));
  }
  Node root = Workflow("wf", {Sequence(std::move(kids))});
  Board b(root);  // the cycle check is iterative: no deep recursion
  for (int i = 0; i < 10000; ++i) {
    std::string id = "s" + std::to_string(i);
    ASSERT_EQ(b.Ready(), Ids{id});
    b.Set(id, TaskState::kFinished);
  }
  EXPECT_TRUE(b.Schedule().finished);
}

}  // namespace
}  // namespace smithers::core
