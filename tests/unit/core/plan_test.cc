// PlanTree: building (identities and tree errors) and scheduling (what may
// start, what is skipped, when loops advance, when the run is done or failed).
#include "core/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "smithers/workflow.h"

namespace smithers::core {
namespace {

const std::map<std::string, Json> kOutputs = {{"out", Json::object()}};

Node T(const std::string& id) { return StaticTask(id, "out", Json::object()); }

Node WithSource(Node n, std::string source) {
  n.source = std::move(source);
  return n;
}

// Builds `root` (which must outlive the plan) or fails the test.
PlanTree MustBuild(const Node& root, const LoopStates& loops = {}) {
  Result<PlanTree> plan = PlanTree::Build(root, loops, kOutputs);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  if (!plan.ok()) std::abort();
  return std::move(plan).value();
}

std::string BuildError(const Node& root, const LoopStates& loops = {}) {
  Result<PlanTree> plan = PlanTree::Build(root, loops, kOutputs);
  EXPECT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  return plan.ok() ? "" : plan.status().message();
}

// The plan with every task's state, settable by id, and the decision both
// with and without an incremental memo (they must agree).
class Board {
 public:
  explicit Board(const Node& root, const LoopStates& loops = {})
      : plan_(MustBuild(root, loops)), states_(plan_.tasks().size()) {}

  const PlanTree& plan() const { return plan_; }

  Board& Set(const std::string& id, TaskState s, int iteration = 0, int64_t retry_at = 0) {
    int i = plan_.Find(id, iteration);
    EXPECT_GE(i, 0) << "no task " << id << "#" << iteration;
    if (i >= 0) states_[i] = {s, retry_at};
    return *this;
  }

  // Also checks that the incremental schedule (with a memo kept across
  // calls, as the engine does) agrees with a fresh one. Tests only ever move
  // a task forward, so settled tasks stay settled as the memo requires.
  Decision Schedule(int64_t now = 0, int slots = 100) const {
    Decision fresh = plan_.Schedule(states_, now, slots);
    Decision memoized = plan_.Schedule(states_, now, slots, &memo_);
    EXPECT_EQ(Describe(memoized), Describe(fresh)) << "the memo changed the decision";
    return fresh;
  }

  std::string Describe(const Decision& d) const {
    std::string s = "ready " + Join(Ids(d.ready)) + "; skip " + Join(Ids(d.to_skip)) + "; loops";
    for (const auto& l : d.loops) {
      s += " " + l.loop_id + "=" + std::to_string(l.next.iteration) + (l.next.done ? "/done" : "");
    }
    return s + "; loop_failure " + d.loop_failure + "; failed " + std::to_string(d.failed_task) +
           "; finished " + std::to_string(d.finished) + "; wake " + std::to_string(d.wake_at_ms) +
           "; in progress " + std::to_string(d.in_progress);
  }

  // Ids of the ready tasks, in the order the decision gives them.
  std::vector<std::string> Ready(int64_t now = 0, int slots = 100) const {
    return Ids(Schedule(now, slots).ready);
  }

  std::vector<std::string> Ids(const std::vector<int>& tasks) const {
    std::vector<std::string> out;
    for (int t : tasks) out.push_back(plan_.tasks()[t].node_id);
    return out;
  }

 private:
  static std::string Join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
  }

  PlanTree plan_;
  std::vector<TaskStatus> states_;
  mutable ScheduleMemo memo_;
};

using Ids = std::vector<std::string>;

// ---- Build ----

TEST(PlanBuild, DuplicateIdNamesBothPlaces) {
  Node root =
      Workflow("wf", {WithSource(T("a"), "wf.lua:3"), Sequence({WithSource(T("a"), "wf.lua:7")})});
  std::string msg = BuildError(root);
  EXPECT_NE(msg.find("duplicate task id \"a\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("wf.lua:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wf.lua:7"), std::string::npos) << msg;
}

TEST(PlanBuild, DuplicateIdWithoutSourcesNamesTreePaths) {
  Node root = Workflow("wf", {T("a"), Parallel({T("a")})});
  std::string msg = BuildError(root);
  EXPECT_NE(msg.find("Workflow(wf) > Task(a)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Workflow(wf) > Parallel > Task(a)"), std::string::npos) << msg;
}

TEST(PlanBuild, SameIdInDifferentLoopIterationsIsNotADuplicate) {
  // Inside a loop a task's identity is (id, iteration); one iteration is mounted.
  Node root = Workflow("wf", {Loop("L", false, {T("a"), T("b")})});
  PlanTree plan = MustBuild(root, {{"L", {3, false}}});
  ASSERT_EQ(plan.tasks().size(), 2u);
  EXPECT_EQ(plan.tasks()[0].iteration, 3);
  EXPECT_EQ(plan.Find("a", 3), 0);
  EXPECT_EQ(plan.Find("a", 0), -1);
}

TEST(PlanBuild, MissingIds) {
  EXPECT_NE(BuildError(Workflow("wf", {T("")})).find("a Task needs an id"), std::string::npos);
  EXPECT_NE(BuildError(Workflow("wf", {Loop("", false, {T("a")})})).find("a Loop needs an id"),
            std::string::npos);
}

TEST(PlanBuild, UndeclaredOutput) {
  std::string msg = BuildError(Workflow("wf", {StaticTask("a", "nope", 1)}));
  EXPECT_NE(msg.find("\"nope\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not declare"), std::string::npos) << msg;
  EXPECT_NE(BuildError(Workflow("wf", {StaticTask("a", "", 1)})).find("needs an output"),
            std::string::npos);
}

TEST(PlanBuild, LoopDirectlyInLoopIsRefused) {
  std::string msg =
      BuildError(Workflow("wf", {Loop("outer", false, {Loop("inner", false, {T("a")})})}));
  EXPECT_NE(msg.find("Loop \"inner\" is directly inside Loop \"outer\""), std::string::npos) << msg;
  // Wrapped in a Sequence it is fine.
  Node ok = Workflow("wf", {Loop("outer", false, {Sequence({Loop("inner", false, {T("a")})})})});
  EXPECT_TRUE(PlanTree::Build(ok, {}, kOutputs).ok());
}

TEST(PlanBuild, BadLoopAndParallelProps) {
  EXPECT_NE(BuildError(Workflow("wf", {Loop("L", false, {T("a")}, 0)})).find("maxIterations"),
            std::string::npos);
  EXPECT_NE(
      BuildError(Workflow("wf", {Loop("L", false, {T("a")}, 3, "explode")})).find("onMaxReached"),
      std::string::npos);
  EXPECT_NE(BuildError(Workflow("wf", {Parallel({T("a")}, -1)})).find("maxConcurrency"),
            std::string::npos);
}

TEST(PlanBuild, SkippedContainerMountsNothing) {
  Node seq = Sequence({T("a"), T("b")});
  seq.skip = true;
  PlanTree plan = MustBuild(Workflow("wf", {seq, T("c")}));
  ASSERT_EQ(plan.tasks().size(), 1u);
  EXPECT_EQ(plan.tasks()[0].node_id, "c");
}

// ---- Schedule: sequences and parallels ----

TEST(PlanSchedule, SequenceStartsOneTaskAtATime) {
  Node root = Workflow("wf", {Sequence({T("a"), T("b"), T("c")})});
  Board b(root);
  EXPECT_EQ(b.Ready(), Ids({"a"}));
  b.Set("a", TaskState::kInProgress);
  EXPECT_EQ(b.Ready(), Ids({}));
  EXPECT_EQ(b.Schedule().in_progress, 1);
  EXPECT_FALSE(b.Schedule().finished);
  b.Set("a", TaskState::kFinished);
  EXPECT_EQ(b.Ready(), Ids({"b"}));
  b.Set("b", TaskState::kSkipped);
  EXPECT_EQ(b.Ready(), Ids({"c"}));
  b.Set("c", TaskState::kFinished);
  Decision d = b.Schedule();
  EXPECT_TRUE(d.ready.empty());
  EXPECT_TRUE(d.finished);
}

TEST(PlanSchedule, WorkflowChildrenAreSequential) {
  Node root = Workflow("wf", {Parallel({T("p1"), T("p2")}), T("after")});
  Board b(root);
  EXPECT_EQ(b.Ready(), Ids({"p1", "p2"}));
  b.Set("p1", TaskState::kFinished);
  EXPECT_EQ(b.Ready(), Ids({"p2"}));
  b.Set("p2", TaskState::kFinished);
  EXPECT_EQ(b.Ready(), Ids({"after"}));
}

TEST(PlanSchedule, ParallelCap) {
  Node root = Workflow("wf", {Parallel({T("a"), T("b"), T("c"), T("d"), T("e")}, 2)});
  Board b(root);
  EXPECT_EQ(b.Ready(), Ids({"a", "b"}));
  b.Set("a", TaskState::kInProgress);
  EXPECT_EQ(b.Ready(), Ids({"b"}));
  b.Set("b", TaskState::kInProgress);
  EXPECT_EQ(b.Ready(), Ids({}));
  b.Set("a", TaskState::kFinished);
  EXPECT_EQ(b.Ready(), Ids({"c"}));
}

TEST(PlanSchedule, NestedParallelCapsBothApply) {
  // outer allows 3 at once, inner 1 of its own.
  Node root = Workflow(
      "wf", {Parallel({Parallel({T("x"), T("y"), T("z")}, 1), T("p"), T("q"), T("r")}, 3)});
  Board b(root);
  EXPECT_EQ(b.Ready(), Ids({"x", "p", "q"}));
  b.Set("x", TaskState::kInProgress);
  EXPECT_EQ(b.Ready(), Ids({"p", "q"}));  // inner is full, outer has two slots
  b.Set("p", TaskState::kInProgress).Set("q", TaskState::kInProgress);
  EXPECT_EQ(b.Ready(), Ids({}));  // outer is full
  b.Set("x", TaskState::kFinished);
  EXPECT_EQ(b.Ready(), Ids({"y"}));
}

TEST(PlanSchedule, UncappedParallelInsideCappedOne) {
  Node root = Workflow("wf", {Parallel({Parallel({T("x"), T("y"), T("z")}), T("p")}, 2)});
  Board b(root);
  EXPECT_EQ(b.Ready(), Ids({"x", "y"}));
}

TEST(PlanSchedule, RunWideSlots) {
  Node root = Workflow("wf", {Parallel({T("a"), T("b"), T("c"), T("d")})});
  Board b(root);
  EXPECT_EQ(b.Ready(0, 2), Ids({"a", "b"}));
  EXPECT_EQ(b.Ready(0, 0), Ids({}));
  // A task refused by a parallel cap does not use up a run-wide slot.
  Node capped = Workflow("wf", {Parallel({Parallel({T("x"), T("y")}, 1), T("p")})});
  Board c(capped);
  c.Set("x", TaskState::kInProgress);
  EXPECT_EQ(c.Ready(0, 1), Ids({"p"}));
}

// ---- Schedule: failures, retries, skips ----

TEST(PlanSchedule, FailedTaskFailsTheRun) {
  Node root = Workflow("wf", {Sequence({T("a"), T("b")}), T("c")});
  Board b(root);
  b.Set("a", TaskState::kFailed);
  Decision d = b.Schedule();
  EXPECT_EQ(d.failed_task, b.plan().Find("a", 0));
  EXPECT_TRUE(d.ready.empty());
  EXPECT_FALSE(d.finished);
}

TEST(PlanSchedule, FailedTaskInParallelReportedWhileSiblingsRun) {
  Node root = Workflow("wf", {Parallel({T("a"), T("b")})});
  Board b(root);
  b.Set("a", TaskState::kInProgress).Set("b", TaskState::kFailed);
  Decision d = b.Schedule();
  EXPECT_EQ(d.failed_task, b.plan().Find("b", 0));
  EXPECT_EQ(d.in_progress, 1);
  EXPECT_FALSE(d.finished);
}

TEST(PlanSchedule, ContinueOnFailIsTerminal) {
  Node a = T("a");
  a.task.continue_on_fail = true;
  Node root = Workflow("wf", {Sequence({a, T("b")})});
  Board b(root);
  b.Set("a", TaskState::kFailed);
  Decision d = b.Schedule();
  EXPECT_EQ(d.failed_task, -1);
  EXPECT_EQ(b.Ids(d.ready), Ids({"b"}));
  b.Set("b", TaskState::kFinished);
  EXPECT_TRUE(b.Schedule().finished);
}

TEST(PlanSchedule, RetryAtGatesAndSetsWake) {
  Node root = Workflow("wf", {Parallel({T("a"), T("b"), T("c")})});
  Board b(root);
  b.Set("a", TaskState::kPending, 0, 1000).Set("b", TaskState::kPending, 0, 700);
  Decision d = b.Schedule(500);
  EXPECT_EQ(b.Ids(d.ready), Ids({"c"}));
  EXPECT_EQ(d.wake_at_ms, 700);
  d = b.Schedule(700);  // due exactly now
  EXPECT_EQ(b.Ids(d.ready), Ids({"b", "c"}));
  EXPECT_EQ(d.wake_at_ms, 1000);
  d = b.Schedule(1000);
  EXPECT_EQ(b.Ids(d.ready), Ids({"a", "b", "c"}));
  EXPECT_EQ(d.wake_at_ms, 0);
}

TEST(PlanSchedule, CancelledTaskIsPlannedAgain) {
  Node root = Workflow("wf", {T("a")});
  Board b(root);
  b.Set("a", TaskState::kCancelled);
  EXPECT_EQ(b.Ready(), Ids({"a"}));
  EXPECT_FALSE(b.Schedule().finished);
}

TEST(PlanSchedule, SkipIfIsRecordedAndDoesNotBlock) {
  Node s = T("s");
  s.skip = true;
  Node root = Workflow("wf", {Sequence({s, T("b")})});
  Board b(root);
  Decision d = b.Schedule();
  EXPECT_EQ(b.Ids(d.to_skip), Ids({"s"}));
  EXPECT_EQ(b.Ids(d.ready), Ids({"b"}));
  b.Set("s", TaskState::kSkipped).Set("b", TaskState::kFinished);
  d = b.Schedule();
  EXPECT_TRUE(d.to_skip.empty());
  EXPECT_TRUE(d.finished);
}

TEST(PlanSchedule, EmptyWorkflowIsFinished) {
  Node root = Workflow("wf", {});
  Board b(root);
  EXPECT_TRUE(b.Schedule().finished);
}

// The incremental schedule agrees with a fresh one over random trees and
// random forward-only state changes (what the engine does within one plan).
TEST(PlanSchedule, MemoAgreesWithFreshScheduleOnRandomRuns) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int round = 0; round < 200; ++round) {
    int next = 0;
    std::function<Node(int)> make = [&](int depth) -> Node {
      int kind = depth >= 3 ? 0 : static_cast<int>(rng() % 3);
      if (kind == 0) {
        Node t = T("t" + std::to_string(next++));
        t.task.continue_on_fail = rng() % 3 == 0;
        t.skip = rng() % 8 == 0;
        return t;
      }
      std::vector<Node> kids;
      int n = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) kids.push_back(make(depth + 1));
      return kind == 1 ? Sequence(std::move(kids))
                       : Parallel(std::move(kids), static_cast<int>(rng() % 3));
    };
    Node root = Workflow("wf", {make(0), make(1)});
    Board b(root);
    const auto& tasks = b.plan().tasks();
    std::vector<TaskState> st(tasks.size(), TaskState::kPending);
    for (int step = 0; step < 40; ++step) {
      int64_t now = step * 10;
      Decision d = b.Schedule(now, static_cast<int>(rng() % 4));
      if (d.finished || d.failed_task >= 0) break;
      for (int t : d.to_skip) {
        st[t] = TaskState::kSkipped;
        b.Set(tasks[t].node_id, st[t]);
      }
      for (int t : d.ready) {
        st[t] = TaskState::kInProgress;
        b.Set(tasks[t].node_id, st[t]);
      }
      for (size_t t = 0; t < st.size(); ++t) {
        if (st[t] != TaskState::kInProgress || rng() % 2 == 0) continue;
        switch (rng() % 4) {
          case 0:
            st[t] = TaskState::kFailed;
            b.Set(tasks[t].node_id, st[t]);
            break;
          case 1:
            st[t] = TaskState::kPending;
            b.Set(tasks[t].node_id, st[t], 0, now + 15);
            break;
          default:
            st[t] = TaskState::kFinished;
            b.Set(tasks[t].node_id, st[t]);
            break;
        }
      }
      if (HasFailure()) return;
    }
  }
}

// ---- Schedule: loops ----

TEST(PlanSchedule, LoopAdvancesWhenItsBodyIsDone) {
  Node root = Workflow("wf", {Loop("L", false, {T("a"), T("b")}, 3), T("after")});
  {
    Board b(root);
    EXPECT_EQ(b.Ready(), Ids({"a"}));
    b.Set("a", TaskState::kFinished);
    EXPECT_EQ(b.Ready(), Ids({"b"}));
    b.Set("b", TaskState::kFinished);
    Decision d = b.Schedule();
    ASSERT_EQ(d.loops.size(), 1u);
    EXPECT_EQ(d.loops[0].loop_id, "L");
    EXPECT_EQ(d.loops[0].next.iteration, 1);
    EXPECT_FALSE(d.loops[0].next.done);
    EXPECT_TRUE(d.ready.empty());  // "after" waits for the loop
    EXPECT_FALSE(d.finished);
  }
  {
    Board b(root, {{"L", {1, false}}});
    EXPECT_EQ(b.plan().Find("a", 1), 0);
    EXPECT_EQ(b.Ready(), Ids({"a"}));
  }
}

TEST(PlanSchedule, LoopReturnLastAtMaxIterations) {
  Node root = Workflow("wf", {Loop("L", false, {T("a")}, 3), T("after")});
  Board b(root, {{"L", {2, false}}});
  b.Set("a", TaskState::kFinished, 2);
  Decision d = b.Schedule();
  ASSERT_EQ(d.loops.size(), 1u);
  EXPECT_EQ(d.loops[0].next.iteration, 2);
  EXPECT_TRUE(d.loops[0].next.done);
  EXPECT_EQ(b.Ids(d.ready), Ids({"after"}));  // the loop is terminal in this decision
  EXPECT_TRUE(d.loop_failure.empty());
}

TEST(PlanSchedule, LoopFailAtMaxIterations) {
  Node root = Workflow("wf", {Loop("L", false, {T("a")}, 3, "fail"), T("after")});
  Board b(root, {{"L", {2, false}}});
  b.Set("a", TaskState::kFinished, 2);
  Decision d = b.Schedule();
  EXPECT_EQ(d.loop_failure, "L");
  EXPECT_TRUE(d.loops.empty());
  EXPECT_TRUE(d.ready.empty());
  EXPECT_FALSE(d.finished);
}

TEST(PlanSchedule, LoopUntilIsDoneAtOnce) {
  Node root = Workflow("wf", {Loop("L", true, {T("a")}), T("after")});
  Board b(root, {{"L", {4, false}}});
  Decision d = b.Schedule();
  ASSERT_EQ(d.loops.size(), 1u);
  EXPECT_TRUE(d.loops[0].next.done);
  EXPECT_EQ(d.loops[0].next.iteration, 4);
  EXPECT_EQ(b.Ids(d.ready), Ids({"after"}));
}

TEST(PlanSchedule, DoneLoopIsTerminal) {
  Node root = Workflow("wf", {Loop("L", false, {T("a")}, 3)});
  Board b(root, {{"L", {2, true}}});
  Decision d = b.Schedule();
  EXPECT_TRUE(d.loops.empty());
  EXPECT_TRUE(d.ready.empty());
  EXPECT_TRUE(d.finished);
}

TEST(PlanSchedule, NestedLoopIdsCarryTheOuterIteration) {
  Node root =
      Workflow("wf", {Loop("outer", false, {Sequence({Loop("inner", false, {T("t")}, 5)})}, 5)});
  {
    Board b(root);
    ASSERT_EQ(b.plan().tasks().size(), 1u);
    EXPECT_EQ(b.plan().tasks()[0].node_id, "t@@outer=0");
    EXPECT_EQ(b.plan().tasks()[0].iteration, 0);
  }
  Board b(root, {{"outer", {1, false}}, {"inner@@outer=1", {2, false}}});
  ASSERT_EQ(b.plan().tasks().size(), 1u);
  EXPECT_EQ(b.plan().tasks()[0].node_id, "t@@outer=1");
  EXPECT_EQ(b.plan().tasks()[0].iteration, 2);
  b.Set("t@@outer=1", TaskState::kFinished, 2);
  Decision d = b.Schedule();
  ASSERT_EQ(d.loops.size(), 1u);
  EXPECT_EQ(d.loops[0].loop_id, "inner@@outer=1");
  EXPECT_EQ(d.loops[0].next.iteration, 3);
}

TEST(PlanSchedule, ThreeLevelsOfLoopsSuffixEveryOuterLoop) {
  Node root = Workflow(
      "wf",
      {Loop("a", false, {Sequence({Loop("b", false, {Sequence({Loop("c", false, {T("t")})})})})})});
  PlanTree plan =
      MustBuild(root, {{"a", {1, false}}, {"b@@a=1", {2, false}}, {"c@@a=1,b=2", {3, false}}});
  ASSERT_EQ(plan.tasks().size(), 1u);
  EXPECT_EQ(plan.tasks()[0].node_id, "t@@a=1,b=2");
  EXPECT_EQ(plan.tasks()[0].iteration, 3);
}

}  // namespace
}  // namespace smithers::core

// ---- waits ----

namespace smithers::core {
namespace {

TEST(PlanWaits, AWaitingTaskBlocksItsSequenceButNotItsSiblingsOrTheCap) {
  Node root =
      Workflow("w", {Parallel({Sequence({T("gate"), T("after")}), T("x"), T("y")}, /*cap=*/2)});
  Board b(root);
  b.Set("gate", TaskState::kWaiting);
  Decision d = b.Schedule();
  // A waiting task holds no slot of the Parallel's cap of 2.
  EXPECT_EQ(b.Ids(d.ready), (Ids{"x", "y"}));
  EXPECT_EQ(d.waiting, 1);
  EXPECT_FALSE(d.finished);
  b.Set("x", TaskState::kFinished).Set("y", TaskState::kFinished);
  d = b.Schedule();
  EXPECT_TRUE(d.ready.empty());
  EXPECT_EQ(d.waiting, 1);
  EXPECT_FALSE(d.finished);
  b.Set("gate", TaskState::kFinished);
  EXPECT_EQ(b.Ready(), (Ids{"after"}));
}

TEST(PlanWaits, StoredWaitingStatesAreWaiting) {
  for (NodeState s :
       {NodeState::kWaitingApproval, NodeState::kWaitingEvent, NodeState::kWaitingTimer}) {
    EXPECT_EQ(TaskStateOf(s), TaskState::kWaiting) << s;
  }
  EXPECT_EQ(TaskStateOf(NodeState::kSkipped), TaskState::kSkipped);
  EXPECT_EQ(TaskStateOf(NodeState::kPending), TaskState::kPending);
}

TEST(PlanWaits, ApprovalsNeedAnOwnerOrADefault) {
  Node gate = ApprovalTask("gate", "out", ApprovalSpec{});
  Node root = Workflow("w", {gate});
  EXPECT_NE(BuildError(root).find("names no owner"), std::string::npos);
  EXPECT_TRUE(PlanTree::Build(root, {}, kOutputs, "ops").ok());
  Node owned = ApprovalTask("gate", "out", ApprovalSpec{.owner = "alice"});
  EXPECT_TRUE(PlanTree::Build(Workflow("w", {owned}), {}, kOutputs).ok());
}

TEST(PlanWaits, OnDenyContinueOnlyOnApprovalNodes) {
  Node gated = T("deploy");
  gated.task.approval =
      std::make_shared<const ApprovalSpec>(ApprovalSpec{.owner = "alice", .on_deny = "continue"});
  EXPECT_NE(BuildError(Workflow("w", {gated})).find("needs an Approval node"), std::string::npos);
  Node node = ApprovalTask("gate", "out", ApprovalSpec{.owner = "a", .on_deny = "continue"});
  EXPECT_TRUE(PlanTree::Build(Workflow("w", {node}), {}, kOutputs).ok());
  Node bad = ApprovalTask("gate", "out", ApprovalSpec{.owner = "a", .on_deny = "maybe"});
  EXPECT_NE(BuildError(Workflow("w", {bad})).find("onDeny"), std::string::npos);
}

TEST(PlanWaits, TimersAndEventWaitsAreChecked) {
  EXPECT_TRUE(
      PlanTree::Build(Workflow("w", {TimerTask("t", {.duration_ms = 0})}), {}, kOutputs).ok());
  EXPECT_NE(BuildError(Workflow("w", {TimerTask("t", {})})).find("exactly one of"),
            std::string::npos);
  EXPECT_NE(BuildError(Workflow("w", {TimerTask("t", {.duration_ms = 5, .until_ms = 9})}))
                .find("exactly one of"),
            std::string::npos);
  EXPECT_NE(BuildError(Workflow("w", {WaitForEventTask("e", "out", {})})).find("needs an event"),
            std::string::npos);
  EXPECT_NE(BuildError(Workflow("w", {WaitForEventTask("e", "out",
                                                       {.event = "x", .on_timeout = "later"})}))
                .find("onTimeout"),
            std::string::npos);
}

}  // namespace
}  // namespace smithers::core
