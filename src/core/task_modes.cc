#include "core/task_modes.h"

#include <array>

#include "core/frame_line.h"

namespace smithers::core {
namespace {

void StaticFrame(const TaskSpec& t, FrameLine& line) { line["value"] = t.value; }
Json StaticCache(const TaskSpec& t, int) { return {{"value", t.value}}; }

// A function's body cannot be hashed: without `by` it is keyed by where it runs.
Json ComputeCache(const TaskSpec&, int iteration) { return {{"iteration", iteration}}; }

void CommandFrame(const TaskSpec& t, FrameLine& line) { line["argv"] = t.command.argv; }
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

// Waits are never cached: their cache_input is nullptr.
constexpr std::array<TaskModeTraits, 7> kModes = {{
    {TaskMode::kStatic, "static", TaskRunner::kStatic, StaticFrame, StaticCache},
    {TaskMode::kCompute, "compute", TaskRunner::kCompute, nullptr, ComputeCache},
    {TaskMode::kCommand, "command", TaskRunner::kCommand, CommandFrame, CommandCache},
    {TaskMode::kAgent, "agent", TaskRunner::kPlugged, AgentFrame, AgentCache},
    {TaskMode::kApproval, "approval", TaskRunner::kWait, nullptr, nullptr},
    {TaskMode::kWaitForEvent, "wait-for-event", TaskRunner::kWait, WaitForEventFrame, nullptr},
    {TaskMode::kTimer, "timer", TaskRunner::kWait, TimerFrame, nullptr},
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
    case TaskMode::kTimer: return true;
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
