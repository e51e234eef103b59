// The task-mode table (core/task_modes.h): one row per TaskMode, read by the
// frame codec, the step cache and the engine.
#include "core/task_modes.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

namespace smithers::core {
namespace {

TEST(TaskModesTest, EveryModeHasItsRowWithAUniqueFrameName) {
  std::set<std::string_view> names;
  size_t i = 0;
  for (const TaskModeTraits& row : AllTaskModes()) {
    EXPECT_EQ(static_cast<size_t>(row.mode), i++) << row.frame_name;
    EXPECT_EQ(&Traits(row.mode), &row);
    EXPECT_FALSE(row.frame_name.empty());
    EXPECT_TRUE(names.insert(row.frame_name).second) << "frame name used twice: " << row.frame_name;
  }
  EXPECT_EQ(names.size(), 8u);
}

// Persisted names (docs/frame_format.md): a rename would break stored frames.
TEST(TaskModesTest, FrameNamesAreThePersistedOnes) {
  EXPECT_EQ(Traits(TaskMode::kStatic).frame_name, "static");
  EXPECT_EQ(Traits(TaskMode::kCompute).frame_name, "compute");
  EXPECT_EQ(Traits(TaskMode::kCommand).frame_name, "command");
  EXPECT_EQ(Traits(TaskMode::kAgent).frame_name, "agent");
  EXPECT_EQ(Traits(TaskMode::kApproval).frame_name, "approval");
  EXPECT_EQ(Traits(TaskMode::kWaitForEvent).frame_name, "wait-for-event");
  EXPECT_EQ(Traits(TaskMode::kTimer).frame_name, "timer");
  EXPECT_EQ(Traits(TaskMode::kSandbox).frame_name, "sandbox");
}

// A wait has no executor and is never cached, nor is a Sandbox (a worker's
// run and its patches are never reused); every other mode is cacheable.
TEST(TaskModesTest, WaitsAreNeverCachedAndRunByNoExecutor) {
  for (const TaskModeTraits& row : AllTaskModes()) {
    bool never = row.runner == TaskRunner::kWait || row.mode == TaskMode::kSandbox;
    EXPECT_EQ(row.cache_input == nullptr, never) << row.frame_name;
  }
  EXPECT_EQ(Traits(TaskMode::kSandbox).runner, TaskRunner::kPlugged);
  EXPECT_EQ(Traits(TaskMode::kApproval).runner, TaskRunner::kWait);
  EXPECT_EQ(Traits(TaskMode::kWaitForEvent).runner, TaskRunner::kWait);
  EXPECT_EQ(Traits(TaskMode::kTimer).runner, TaskRunner::kWait);
  EXPECT_EQ(Traits(TaskMode::kAgent).runner, TaskRunner::kPlugged);
}

TEST(TaskModesTest, CacheInputOfAComputeTaskIsWhereItRuns) {
  TaskSpec t;
  t.mode = TaskMode::kCompute;
  EXPECT_EQ(Traits(t.mode).cache_input(t, 3), (Json{{"iteration", 3}}));
}

// What the plan checks of a mode's own spec is in its row.
TEST(TaskModesTest, EachModesOwnCheckIsInItsRow) {
  for (const TaskModeTraits& row : AllTaskModes()) {
    EXPECT_EQ(row.writes_output, row.mode != TaskMode::kTimer) << row.frame_name;
    bool own = row.mode == TaskMode::kApproval || row.mode == TaskMode::kWaitForEvent ||
               row.mode == TaskMode::kTimer || row.mode == TaskMode::kSandbox;
    EXPECT_EQ(row.check != nullptr, own) << row.frame_name;
  }
  auto check = [](const Node& node) {
    return Traits(node.task.mode).check(node, "Workflow > Sequence[0]").message();
  };
  EXPECT_EQ(check(TimerTask("cool", {.duration_ms = 1000})), "");
  EXPECT_EQ(check(TimerTask("cool", {.duration_ms = 5, .until_ms = 9})),
            "Timer \"cool\" needs exactly one of duration and until, at Workflow > Sequence[0]");
  Node with_output = TimerTask("cool", {.duration_ms = 5});
  with_output.task.output = "out";
  EXPECT_EQ(check(with_output), "Timer \"cool\" has no output");
  EXPECT_EQ(check(WaitForEventTask("ci", "out", {.event = "ci"})), "");
  EXPECT_EQ(check(WaitForEventTask("ci", "out", {})),
            "WaitForEvent \"ci\" needs an event, at Workflow > Sequence[0]");
  EXPECT_EQ(check(WaitForEventTask("ci", "out", {.event = "ci", .on_timeout = "retry"})),
            "WaitForEvent \"ci\": onTimeout must be \"fail\", \"continue\" or \"skip\"");
  Node bare = ApprovalTask("gate", "decision", {.owner = "alice"});
  EXPECT_EQ(check(bare), "");
  bare.task.approval.reset();
  EXPECT_EQ(check(bare), "Approval \"gate\" has no approval settings");
  Node box = StaticTask("fix", "out", Json::object());
  box.task.mode = TaskMode::kSandbox;
  EXPECT_EQ(check(box), "Sandbox \"fix\" needs a workflow, at Workflow > Sequence[0]");
  box.task.sandbox_task =
      std::make_shared<const SandboxTaskSpec>(SandboxTaskSpec{.workflow = "/w/child.lua"});
  EXPECT_EQ(check(box), "");
  box.task.approval = std::make_shared<const ApprovalSpec>();
  EXPECT_EQ(check(box),
            "Sandbox \"fix\" takes no needsApproval: its changes are reviewed, at "
            "Workflow > Sequence[0]");
}

}  // namespace
}  // namespace smithers::core
