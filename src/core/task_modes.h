// The task modes, one row each: what a frame calls the mode, what of a task
// goes into its cache key, what it writes into its frame line and who runs
// it. The frame codec, the step cache and the engine read this table instead
// of switching on TaskMode each in its own file; adding a mode is its enum
// value (include/smithers/workflow.h) and its row here (task_modes.cc).
//
//   const core::TaskModeTraits& t = core::Traits(TaskMode::kTimer);
//   t.frame_name;                      // "timer"
//   t.runner == core::TaskRunner::kWait;
//   t.cache_input == nullptr;          // never cached
//   t.writes_output == false;          // a Timer has no output
//   t.check(node, where);              // exactly one of duration and until
#ifndef SMITHERS_CORE_TASK_MODES_H_
#define SMITHERS_CORE_TASK_MODES_H_

#include <span>
#include <string>
#include <string_view>

#include "smithers/json.h"
#include "smithers/status.h"
#include "smithers/workflow.h"

namespace smithers::core {

class FrameLine;

// Who runs a task of a mode. The engine maps each to one of its executors;
// RunOptions::executors replaces that for a mode, or supplies it (kPlugged).
enum class TaskRunner {
  kStatic,   // the engine's static executor
  kCompute,  // the engine's compute executor
  kCommand,  // the engine's command executor
  kPlugged,  // only an executor given in RunOptions::executors (agents)
  kWait,     // a durable wait: the engine begins and checks it, no executor
};

struct TaskModeTraits {
  TaskMode mode;
  // The mode as frames write it ("mode" of a task's line; docs/frame_format.md).
  // Persisted: never rename one.
  std::string_view frame_name;
  TaskRunner runner;
  // Writes the fields of the mode's own spec into the task's frame line
  // (persisted like frame_name); nullptr when it has none.
  void (*frame_fields)(const TaskSpec& task, FrameLine& line);
  // The task's resolved input for its cache key when the policy has no `by`
  // (engine/cache.h; persisted through the keys of cached outputs); nullptr
  // when a task of this mode is never cached.
  Json (*cache_input)(const TaskSpec& task, int iteration);
  // Whether its tasks write an output row. The others need one the
  // workflow declares; one that does not (a Timer) is checked by `check`
  // alone (which refuses an output).
  bool writes_output = true;
  // The plan's check of the mode's own spec (PlanTree::Build, before the
  // task runs): its first problem, with `where` (the node's place in the
  // tree) in the text; nullptr when the mode has nothing of its own.
  Status (*check)(const Node& node, const std::string& where) = nullptr;
};

// Every mode's row, in the order of TaskMode.
std::span<const TaskModeTraits> AllTaskModes();

// The row of `mode`.
const TaskModeTraits& Traits(TaskMode mode);

}  // namespace smithers::core

#endif  // SMITHERS_CORE_TASK_MODES_H_
