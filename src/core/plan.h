// The scheduler: from a rendered tree and the state of its tasks, which tasks
// may start now, which loops advance, and whether the run is done or failed.
// Pure: no I/O, no clock (the caller passes `now`), no threads.
#ifndef SMITHERS_CORE_PLAN_H_
#define SMITHERS_CORE_PLAN_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "smithers/states.h"
#include "smithers/status.h"
#include "smithers/workflow.h"

namespace smithers::core {

// kWaiting: a durable wait (approval, event, timer) that has begun; stored as
// waiting-approval, waiting-event or waiting-timer.
enum class TaskState { kPending, kInProgress, kFinished, kFailed, kSkipped, kCancelled, kWaiting };

// The plan's view of a stored node state (the three waiting-* states are kWaiting).
TaskState TaskStateOf(NodeState state);

using LoopState = smithers::LoopState;
using LoopStates = smithers::LoopStates;

// A task of the rendered tree with its resolved identity.
struct TaskRef {
  std::string node_id;  // logical id, plus "@@outer=iter,..." inside nested loops
  int iteration = 0;    // iteration of the innermost enclosing loop (0 outside loops)
  const Node* node = nullptr;
  int loop = -1;  // index in PlanTree::loops() of the innermost enclosing Loop
};

// A mounted Loop: its logical id and the innermost Loop enclosing it.
struct LoopRef {
  const Node* node = nullptr;
  int parent = -1;  // index in PlanTree::loops(), or -1
};

// What the scheduler needs to know about one task.
struct TaskStatus {
  TaskState state = TaskState::kPending;
  int64_t retry_at_ms = 0;  // a pending task may not start before this
};

struct LoopUpdate {
  std::string loop_id;
  LoopState next;
};

struct Decision {
  std::vector<int> ready;         // task indices to start now, in document order
  std::vector<int> to_skip;       // pending tasks with skipIf: record them skipped
  std::vector<LoopUpdate> loops;  // loop state changes (advance or done)
  std::string loop_failure;       // loop id that hit maxIterations with onMaxReached="fail"
  int failed_task = -1;           // a failed task without continueOnFail: the run fails
  bool finished = false;          // every mounted task is terminal
  int64_t wake_at_ms = 0;         // earliest retry deadline among waiting tasks (0 = none)
  int in_progress = 0;
  int waiting = 0;  // tasks in kWaiting (not counted against concurrency caps)
  // Pending tasks that wait for a dependency no mounted task has
  // (PlanTree::UnmountedDeps names it): when nothing else can move, the run
  // is deadlocked on them.
  std::vector<int> blocked_on_unmounted;
};

// Scratch a caller may keep between Schedule() calls on one PlanTree so that
// each call skips what is settled (finished, skipped, failed with
// continueOnFail, or a container of only such children) instead of walking
// the whole tree: without it a sequence of N tasks costs O(N^2) to run.
// Valid while every settled task stays settled, which the engine guarantees
// for the life of one PlanTree; start a fresh memo for a new tree.
struct ScheduleMemo {
  std::vector<int> settled;  // per plan node: how many leading children are settled
  std::vector<int> active;   // per plan node: scratch for parallel occupancy
};

// The rendered tree with its tasks indexed. Keeps pointers into `root`, which
// must outlive it.
class PlanTree {
 public:
  // Resolves task identities under `loops` and checks the tree: every task and
  // loop has an id, ids are unique (the error names both places), a task's
  // output is declared, no Loop is directly inside a Loop, waits are well
  // formed and every approval has an owner (its own or `default_owner`).
  // Dependencies (TaskSpec::deps) resolve to the mounted task of that logical
  // id; a row must name that task's declared output, and a cycle among
  // mounted tasks (dependencies plus the order a Sequence imposes on its
  // children) is InvalidArgument naming the tasks on it.
  static Result<PlanTree> Build(const Node& root, const LoopStates& loops,
                                const std::map<std::string, Json>& outputs,
                                const std::string& default_owner = "");

  const std::vector<TaskRef>& tasks() const { return tasks_; }
  // How many nodes of the tree are mounted (a skipped container's children are not).
  size_t node_count() const { return plan_.size(); }
  // Where task `task` is (its source location and tree path), for messages.
  // Built on demand: Build makes no text for a tree without errors.
  std::string TaskWhere(int task) const { return WhereOf(task_nodes_[task]); }
  const std::vector<LoopRef>& loops() const { return loops_; }
  // The logical ids of the loops enclosing `task`, outermost first.
  std::vector<std::string> LoopPath(const TaskRef& task) const;
  // The index of (node_id, iteration), or -1.
  int Find(const std::string& node_id, int iteration) const;

  // The dependencies of task `t`: one entry per TaskDeps::rows entry (in key
  // order), then one per depends_on entry; each a task index, or -1 while no
  // task of that id is mounted.
  std::span<const int> Deps(int t) const;
  // The ids task `t` depends on that no mounted task has.
  std::vector<std::string> UnmountedDeps(int t) const;

  // REQUIRES: states.size() == tasks().size().
  // `slots` is how many more tasks the run may start (run-wide cap minus in flight).
  // `memo` (optional) makes repeated calls incremental; see ScheduleMemo.
  Decision Schedule(const std::vector<TaskStatus>& states, int64_t now_ms, int slots,
                    ScheduleMemo* memo = nullptr) const;

 private:
  struct PlanNode {
    NodeKind kind = NodeKind::kSequence;
    int task = -1;
    int parent = -1;  // plan node, -1 for the root
    std::vector<int> children;
    const Node* node = nullptr;
    std::string loop_id;  // resolved (with the nested-loop suffix)
    int loop_iteration = 0;
    bool loop_done = false;
  };
  struct BuildScope;

  // One Schedule() call's working state.
  struct Walk {
    const std::vector<TaskStatus>& states;
    int64_t now_ms;
    Decision& d;
    std::vector<int> chain;  // enclosing Parallel plan nodes
    // Ready candidates: (task, index in `chains` of its enclosing parallels).
    std::vector<std::pair<int, int>> candidates;
    std::vector<std::vector<int>> chains;
    std::vector<int>& active;   // per plan node: tasks in progress or chosen
    std::vector<int>* settled;  // ScheduleMemo::settled, or nullptr
  };

  int Add(const Node& node, int parent, BuildScope& scope, Status& status);
  Status CheckTask(const Node& node, const BuildScope& scope, int plan_node) const;
  // "file.lua:12 (Workflow(w) > Sequence > Task(a))" for a plan node.
  std::string WhereOf(int plan_node) const;
  bool Visit(int plan_node, Walk& w) const;
  // True when `plan_node` would be terminal with nothing to do, now and forever.
  bool Settled(int plan_node, const Walk& w) const;
  // Resolves every task's dependencies and looks for a cycle.
  Status ResolveDeps();
  Status CheckCycles() const;
  // Every dependency of task `t` is terminal for dependencies.
  bool DepsReady(int t, Walk& w) const;

  std::vector<PlanNode> plan_;
  std::vector<int> parallels_;  // plan nodes of kind Parallel
  std::vector<TaskRef> tasks_;
  std::vector<int> task_nodes_;  // per task: its plan node
  std::vector<LoopRef> loops_;
  std::map<std::pair<std::string, int>, int> index_;
  // Deps(t) is dep_targets_[dep_begin_[t] .. dep_begin_[t + 1]); both empty
  // when no task has dependencies (the common case costs nothing).
  std::vector<int> dep_begin_;
  std::vector<int> dep_targets_;
};

}  // namespace smithers::core

#endif  // SMITHERS_CORE_PLAN_H_
