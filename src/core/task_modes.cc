#include "core/task_modes.h"

#include <array>
#include <string>

#include "core/frame_line.h"

namespace smithers::core {
namespace {

void StaticFrame(const TaskSpec& t, FrameLine& line) { line["value"] = t.value; }
Json StaticCache(const TaskSpec& t, int) { return {{"value", t.value}}; }

// A function's body cannot be hashed: without `by` it is keyed by where it runs.
Json ComputeCache(const TaskSpec&, int iteration) { return {{"iteration", iteration}}; }

void CommandFrame(const TaskSpec& t, FrameLine& line) {
  line["argv"] = t.command.argv;
  if (t.command.sandbox) line["sandbox"] = SandboxToJson(*t.command.sandbox);
}
Json CommandCache(const TaskSpec& t, int) {
  Json in = {{"argv", t.command.argv},
             {"cwd", t.command.cwd},
             {"env", t.command.env},
             {"parse", t.command.parse}};
  // The references, never their values (keys without any stay as they were).
  if (!t.command.secret_env.empty()) in["secretEnv"] = t.command.secret_env;
  return in;
}

void AgentFrame(const TaskSpec& t, FrameLine& line) { line["prompt"] = t.prompt; }
Json AgentCache(const TaskSpec& t, int) { return {{"prompt", t.prompt}, {"agent", t.agent}}; }

// An Approval's settings are written for any task that has them (needsApproval
// too), by the frame codec.

void WaitForEventFrame(const TaskSpec& t, FrameLine& line) {
  if (t.wait) {
    line["event"] = t.wait->event;
    if (!t.wait->correlation_id.empty()) line["correlationId"] = t.wait->correlation_id;
  }
}

void TimerFrame(const TaskSpec& t, FrameLine& line) {
  if (t.timer.duration_ms >= 0) line["durationMs"] = t.timer.duration_ms;
  if (t.timer.until_ms > 0) line["untilMs"] = t.timer.until_ms;
}

// An Approval node is the decision; its settings are checked with any
// task's approval gate (PlanTree::CheckTask).
Status ApprovalCheck(const Node& node, const std::string& /*where*/) {
  if (node.task.approval) return Status::Ok();
  return InvalidArgumentError("Approval \"" + node.id + "\" has no approval settings");
}

Status WaitForEventCheck(const Node& node, const std::string& where) {
  const TaskSpec& t = node.task;
  if (!t.wait || t.wait->event.empty()) {
    return InvalidArgumentError("WaitForEvent \"" + node.id + "\" needs an event, at " + where);
  }
  const std::string& o = t.wait->on_timeout;
  if (o != "fail" && o != "continue" && o != "skip") {
    return InvalidArgumentError("WaitForEvent \"" + node.id +
                                "\": onTimeout must be \"fail\", \"continue\" or \"skip\"");
  }
  return Status::Ok();
}

Status TimerCheck(const Node& node, const std::string& where) {
  if (!node.task.output.empty()) {
    return InvalidArgumentError("Timer \"" + node.id + "\" has no output");
  }
  const TimerSpec& t = node.task.timer;
  if ((t.duration_ms >= 0) == (t.until_ms > 0)) {
    return InvalidArgumentError("Timer \"" + node.id +
                                "\" needs exactly one of duration and until, at " + where);
  }
  return Status::Ok();
}

void SandboxFrame(const TaskSpec& t, FrameLine& line) {
  if (!t.sandbox_task) return;
  const SandboxTaskSpec& s = *t.sandbox_task;
  line["workflow"] = s.workflow;
  line["sandbox"] = SandboxToJson(s.sandbox);
  if (!s.files.empty()) line["files"] = s.files;
}

Status SandboxCheck(const Node& node, const std::string& where) {
  const TaskSpec& t = node.task;
  if (!t.sandbox_task || t.sandbox_task->workflow.empty()) {
    return InvalidArgumentError("Sandbox \"" + node.id + "\" needs a workflow, at " + where);
  }
  if (t.approval) {
    return InvalidArgumentError("Sandbox \"" + node.id +
                                "\" takes no needsApproval: its changes are reviewed, at " + where);
  }
  return Status::Ok();
}

// Waits are never cached: their cache_input is nullptr.
constexpr std::array<TaskModeTraits, 8> kModes = {{
    {TaskMode::kStatic, "static", TaskRunner::kStatic, StaticFrame, StaticCache},
    {TaskMode::kCompute, "compute", TaskRunner::kCompute, nullptr, ComputeCache},
    {TaskMode::kCommand, "command", TaskRunner::kCommand, CommandFrame, CommandCache},
    {TaskMode::kAgent, "agent", TaskRunner::kPlugged, AgentFrame, AgentCache},
    {TaskMode::kApproval, "approval", TaskRunner::kWait, nullptr, nullptr, true, ApprovalCheck},
    {TaskMode::kWaitForEvent, "wait-for-event", TaskRunner::kWait, WaitForEventFrame, nullptr, true,
     WaitForEventCheck},
    {TaskMode::kTimer, "timer", TaskRunner::kWait, TimerFrame, nullptr, false, TimerCheck},
    // A worker's run and its patches are never reused.
    {TaskMode::kSandbox, "sandbox", TaskRunner::kPlugged, SandboxFrame, nullptr, true,
     SandboxCheck},
}};

// Row i is TaskMode i, so Traits is an index.
constexpr bool InEnumOrder() {
  for (size_t i = 0; i < kModes.size(); ++i) {
    if (static_cast<size_t>(kModes[i].mode) != i) return false;
  }
  return true;
}
static_assert(InEnumOrder(), "kModes must list the TaskModes in their enum order");

// Whether `mode` is one of the enum's values. A TaskMode added to the enum
// fails to compile here until it is listed (-Wswitch, no default), and then
// until kModes has its row (the count below).
constexpr bool IsMode(TaskMode mode) {
  switch (mode) {
    case TaskMode::kStatic:
    case TaskMode::kCompute:
    case TaskMode::kCommand:
    case TaskMode::kAgent:
    case TaskMode::kApproval:
    case TaskMode::kWaitForEvent:
    case TaskMode::kTimer:
    case TaskMode::kSandbox: return true;
  }
  return false;
}
constexpr size_t CountModes() {
  size_t n = 0;
  for (int i = 0; i < 64; ++i) n += IsMode(static_cast<TaskMode>(i)) ? 1 : 0;
  return n;
}
static_assert(CountModes() == kModes.size(), "every TaskMode needs its row in kModes");

}  // namespace

std::span<const TaskModeTraits> AllTaskModes() { return kModes; }

const TaskModeTraits& Traits(TaskMode mode) {
  auto i = static_cast<size_t>(mode);
  // An out-of-range mode is not one of ours; frames wrote it as static before.
  return i < kModes.size() ? kModes[i] : kModes[0];
}

}  // namespace smithers::core
