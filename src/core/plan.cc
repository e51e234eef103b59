#include "core/plan.h"

#include <algorithm>
#include <unordered_map>

#include "core/task_modes.h"

namespace smithers::core {

TaskState TaskStateOf(NodeState state) {
  switch (state) {
    case NodeState::kPending: return TaskState::kPending;
    case NodeState::kInProgress: return TaskState::kInProgress;
    case NodeState::kWaitingApproval:
    case NodeState::kWaitingEvent:
    case NodeState::kWaitingTimer: return TaskState::kWaiting;
    case NodeState::kFinished: return TaskState::kFinished;
    case NodeState::kFailed: return TaskState::kFailed;
    case NodeState::kSkipped: return TaskState::kSkipped;
    case NodeState::kCancelled: return TaskState::kCancelled;
  }
  return TaskState::kPending;
}

namespace {

std::string Describe(const Node& node) {
  std::string s = NodeKindName(node.kind);
  s[0] = static_cast<char>(std::toupper(s[0]));
  if (!node.id.empty()) s += "(" + node.id + ")";
  return s;
}

// Suffix for ids inside nested loops: every enclosing loop but the innermost.
std::string LoopSuffix(const std::vector<std::pair<std::string, int>>& loop_stack) {
  if (loop_stack.size() < 2) return "";
  std::string s = "@@";
  for (size_t i = 0; i + 1 < loop_stack.size(); ++i) {
    if (i > 0) s += ",";
    s += loop_stack[i].first + "=" + std::to_string(loop_stack[i].second);
  }
  return s;
}

}  // namespace

// Per-build scratch: the path to the current node, the enclosing loops and the
// ids seen so far.
struct PlanTree::BuildScope {
  const LoopStates* loops;
  const std::map<std::string, Json>* outputs;
  const std::string* default_owner;
  std::vector<std::pair<std::string, int>> loop_stack;  // (loop id, iteration)
  std::map<std::string, int> loop_nodes;                // resolved loop id -> plan node
  std::vector<int> loop_refs;                           // indices in loops_, per loop_stack entry
  bool any_deps = false;
};

std::string PlanTree::WhereOf(int plan_node) const {
  std::vector<const Node*> path;
  for (int p = plan_node; p >= 0; p = plan_[p].parent) path.push_back(plan_[p].node);
  std::string tree;
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    tree += (tree.empty() ? "" : " > ") + Describe(**it);
  }
  const Node& node = *plan_[plan_node].node;
  if (!node.source.empty()) return node.source + " (" + tree + ")";
  return tree;
}

int PlanTree::Add(const Node& node, int parent, BuildScope& scope, Status& status) {
  if (!status.ok()) return -1;
  auto& loop_stack = scope.loop_stack;
  const LoopStates& loops = *scope.loops;
  int index = static_cast<int>(plan_.size());
  plan_.push_back(PlanNode{.kind = node.kind, .parent = parent, .node = &node});
  // Where the node is: built only for a message (every node, every render, otherwise).
  auto where = [this, index] { return WhereOf(index); };
  if (node.kind == NodeKind::kParallel) parallels_.push_back(index);

  if (node.kind == NodeKind::kTask) {
    if (node.id.empty()) {
      status = InvalidArgumentError("a Task needs an id, at " + where());
    } else if (Status st = CheckTask(node, scope, index); !st.ok()) {
      status = st;
    } else {
      TaskRef ref{.node_id = node.id + LoopSuffix(loop_stack),
                  .iteration = loop_stack.empty() ? 0 : loop_stack.back().second,
                  .node = &node,
                  .loop = scope.loop_refs.empty() ? -1 : scope.loop_refs.back()};
      int task = static_cast<int>(tasks_.size());
      auto [it, inserted] = index_.try_emplace({ref.node_id, ref.iteration}, task);
      if (!inserted) {
        status = InvalidArgumentError("duplicate task id \"" + node.id + "\": at " +
                                      TaskWhere(it->second) + " and at " + where());
      } else {
        if (node.task.deps) scope.any_deps = true;
        plan_[index].task = task;
        tasks_.push_back(std::move(ref));
        task_nodes_.push_back(index);
      }
    }
    return index;
  }

  bool pushed_loop = false;
  if (node.kind == NodeKind::kLoop) {
    if (node.id.empty()) {
      status = InvalidArgumentError("a Loop needs an id, at " + where());
    } else if (node.max_iterations < 1) {
      status = InvalidArgumentError("Loop \"" + node.id + "\": maxIterations must be >= 1");
    } else if (node.on_max_reached != "fail" && node.on_max_reached != "return-last") {
      status = InvalidArgumentError("Loop \"" + node.id +
                                    "\": onMaxReached must be \"fail\" or \"return-last\"");
    } else {
      loop_stack.emplace_back(node.id, 0);
      scope.loop_refs.push_back(static_cast<int>(loops_.size()));
      loops_.push_back(LoopRef{
          .node = &node, .parent = scope.loop_refs.size() > 1 ? scope.loop_refs.end()[-2] : -1});
      std::string loop_id = node.id + LoopSuffix(loop_stack);
      auto [it, inserted] = scope.loop_nodes.emplace(loop_id, index);
      if (!inserted) {
        status = InvalidArgumentError("duplicate loop id \"" + node.id + "\": at " +
                                      WhereOf(it->second) + " and at " + where());
      }
      plan_[index].loop_id = loop_id;
      auto state = loops.find(loop_id);
      if (state != loops.end()) {
        loop_stack.back().second = state->second.iteration;
        plan_[index].loop_done = state->second.done;
      }
      plan_[index].loop_iteration = loop_stack.back().second;
      pushed_loop = true;
    }
    for (const Node& child : node.children) {
      if (child.kind == NodeKind::kLoop && status.ok()) {
        status = InvalidArgumentError("Loop \"" + child.id + "\" is directly inside Loop \"" +
                                      node.id + "\"; wrap it in a Sequence");
      }
    }
  }
  if (node.kind == NodeKind::kParallel && node.max_concurrency < 0) {
    status = InvalidArgumentError("Parallel: maxConcurrency must be >= 0, at " + where());
  }

  for (const Node& child : node.children) {
    if (child.skip && child.kind != NodeKind::kTask)
      continue;  // a skipped container mounts nothing
    int c = Add(child, index, scope, status);
    if (!status.ok()) break;
    plan_[index].children.push_back(c);
  }
  if (pushed_loop) {
    loop_stack.pop_back();
    scope.loop_refs.pop_back();
  }
  return index;
}

Status PlanTree::CheckTask(const Node& node, const BuildScope& scope, int plan_node) const {
  auto where = [this, plan_node] { return WhereOf(plan_node); };
  const TaskSpec& t = node.task;
  const std::string name = "Task \"" + node.id + "\"";
  const TaskModeTraits& mode = Traits(t.mode);
  // A mode with no output (a Timer): its own check refuses one, and nothing
  // else of a task applies.
  if (!mode.writes_output) return mode.check != nullptr ? mode.check(node, where()) : Status::Ok();
  if (t.output.empty()) return InvalidArgumentError(name + " needs an output, at " + where());
  if (scope.outputs->count(t.output) == 0) {
    return InvalidArgumentError(name + " writes output \"" + t.output +
                                "\", which the workflow does not declare");
  }
  if (t.deps) {
    for (const auto& [key, dep] : t.deps->rows) {
      if (scope.outputs->count(dep.output) == 0) {
        return InvalidArgumentError(name + ": deps." + key + " reads output \"" + dep.output +
                                    "\", which the workflow does not declare");
      }
    }
  }
  if (mode.check != nullptr) SMITHERS_RETURN_IF_ERROR(mode.check(node, where()));
  if (t.approval) {
    const ApprovalSpec& a = *t.approval;
    if (a.owner.empty() && scope.default_owner->empty()) {
      return InvalidArgumentError(
          "the approval of \"" + node.id + "\" at " + where() +
          " names no owner and the workflow declares no default owner; set owner = \"...\" on "
          "it or defaultApprovalOwner in the workflow's options");
    }
    bool decision_node = t.mode == TaskMode::kApproval;
    if (a.on_deny != "fail" && a.on_deny != "skip" && (a.on_deny != "continue" || !decision_node)) {
      return InvalidArgumentError(
          name + ": onDeny must be \"fail\" or \"skip\"" +
          (decision_node ? std::string(" or \"continue\"")
                         : std::string(" (\"continue\" needs an Approval node, whose output is "
                                       "the decision)")));
    }
    if (a.escalate_after_ms < 0)
      return InvalidArgumentError(name + ": escalateAfterMs must be >= 0");
  }
  return Status::Ok();
}

Result<PlanTree> PlanTree::Build(const Node& root, const LoopStates& loops,
                                 const std::map<std::string, Json>& outputs,
                                 const std::string& default_owner) {
  PlanTree tree;
  BuildScope scope{.loops = &loops, .outputs = &outputs, .default_owner = &default_owner};
  Status status;
  tree.Add(root, -1, scope, status);
  if (!status.ok()) return status;
  if (scope.any_deps) SMITHERS_RETURN_IF_ERROR(tree.ResolveDeps());
  return tree;
}

std::vector<std::string> PlanTree::LoopPath(const TaskRef& task) const {
  std::vector<std::string> path;
  for (int l = task.loop; l >= 0; l = loops_[l].parent) path.push_back(loops_[l].node->id);
  std::reverse(path.begin(), path.end());
  return path;
}

int PlanTree::Find(const std::string& node_id, int iteration) const {
  auto it = index_.find({node_id, iteration});
  return it == index_.end() ? -1 : it->second;
}

Status PlanTree::ResolveDeps() {
  // Logical id -> task index; -2 when two mounted tasks share it (in two
  // loops at different iterations): a dependency on it is ambiguous.
  std::unordered_map<std::string, int> by_id;
  by_id.reserve(tasks_.size());
  for (size_t i = 0; i < tasks_.size(); ++i) {
    auto [it, inserted] = by_id.emplace(tasks_[i].node->id, static_cast<int>(i));
    if (!inserted) it->second = -2;
  }
  dep_begin_.assign(tasks_.size() + 1, 0);
  for (size_t t = 0; t < tasks_.size(); ++t) {
    dep_begin_[t] = static_cast<int>(dep_targets_.size());
    const TaskSpec& spec = tasks_[t].node->task;
    if (!spec.deps) continue;
    const std::string name = "Task \"" + tasks_[t].node->id + "\"";
    auto resolve = [&](const std::string& id, const std::string& what) -> Result<int> {
      if (id.empty()) {
        return InvalidArgumentError(name + ": " + what + " names an empty task id, at " +
                                    TaskWhere(static_cast<int>(t)));
      }
      auto it = by_id.find(id);
      if (it == by_id.end()) return -1;  // not mounted (yet): the task waits
      if (it->second == -2) {
        return InvalidArgumentError(name + ": " + what + " names \"" + id +
                                    "\", which more than one mounted task has");
      }
      return it->second;
    };
    for (const auto& [key, dep] : spec.deps->rows) {
      SMITHERS_ASSIGN_OR_RETURN(int u, resolve(dep.task_id, "deps." + key));
      if (u >= 0 && tasks_[u].node->task.output != dep.output) {
        const std::string& has = tasks_[u].node->task.output;
        return InvalidArgumentError(
            name + ": deps." + key + " reads output \"" + dep.output + "\" of task \"" +
            dep.task_id + "\", which " +
            (has.empty() ? std::string("has no output") : "writes \"" + has + "\"") + ", at " +
            TaskWhere(static_cast<int>(t)));
      }
      dep_targets_.push_back(u);
    }
    for (const std::string& id : spec.deps->depends_on) {
      SMITHERS_ASSIGN_OR_RETURN(int u, resolve(id, "dependsOn"));
      dep_targets_.push_back(u);
    }
  }
  dep_begin_[tasks_.size()] = static_cast<int>(dep_targets_.size());
  return CheckCycles();
}

// A task waits for its dependencies and a Sequence (Workflow, Branch, Loop
// body) starts a child only once the previous one is terminal. Both are
// edges of one graph over "may start" (2p) and "is done" (2p + 1) of every
// plan node p; a cycle in it is a deadlock every state leads to.
Status PlanTree::CheckCycles() const {
  const int n = static_cast<int>(plan_.size()) * 2;
  std::vector<std::pair<int, int>> edges;
  edges.reserve(plan_.size() * 3 + dep_targets_.size());
  std::vector<int> task_plan(tasks_.size(), -1);
  for (size_t pi = 0; pi < plan_.size(); ++pi) {
    const PlanNode& p = plan_[pi];
    const int start = static_cast<int>(pi) * 2, done = start + 1;
    if (p.task >= 0) {
      task_plan[p.task] = static_cast<int>(pi);
      edges.emplace_back(start, done);
      continue;
    }
    bool ordered = p.kind != NodeKind::kParallel;
    for (size_t i = 0; i < p.children.size(); ++i) {
      int c = p.children[i];
      edges.emplace_back(start, c * 2);
      edges.emplace_back(c * 2 + 1, done);
      if (ordered && i > 0) edges.emplace_back(p.children[i - 1] * 2 + 1, c * 2);
    }
  }
  for (size_t t = 0; t < tasks_.size(); ++t) {
    if (tasks_[t].node->skip) continue;  // skipped at once, whatever it depends on
    for (int u : Deps(static_cast<int>(t))) {
      if (u >= 0) edges.emplace_back(task_plan[u] * 2 + 1, task_plan[t] * 2);
    }
  }
  std::vector<int> begin(n + 1, 0);
  for (const auto& e : edges) begin[e.first + 1]++;
  for (int i = 0; i < n; ++i) begin[i + 1] += begin[i];
  std::vector<int> adj(edges.size());
  std::vector<int> fill(begin.begin(), begin.end() - 1);
  for (const auto& e : edges) adj[fill[e.first]++] = e.second;

  // Iterative depth-first search: 0 unseen, 1 on the stack, 2 done.
  std::vector<char> color(n, 0);
  std::vector<std::pair<int, int>> stack;  // (vertex, next edge)
  for (int root = 0; root < n; ++root) {
    if (color[root] != 0) continue;
    stack.emplace_back(root, begin[root]);
    color[root] = 1;
    while (!stack.empty()) {
      auto& [v, next] = stack.back();
      if (next == begin[v + 1]) {
        color[v] = 2;
        stack.pop_back();
        continue;
      }
      int w = adj[next++];
      if (color[w] == 0) {
        color[w] = 1;
        stack.emplace_back(w, begin[w]);
      } else if (color[w] == 1) {
        // The cycle is the stack from w up: name its tasks in order.
        size_t from = 0;
        while (stack[from].first != w) ++from;
        std::vector<int> cycle;
        for (size_t i = from; i < stack.size(); ++i) {
          int task = plan_[stack[i].first / 2].task;
          if (task >= 0 && (cycle.empty() || cycle.back() != task)) cycle.push_back(task);
        }
        std::string names;
        for (int task : cycle) names += "\"" + tasks_[task].node->id + "\" -> ";
        names += "\"" + tasks_[cycle.front()].node->id + "\"";
        return InvalidArgumentError(
            "dependency cycle: " + names +
            " (each waits for the next through dependsOn, needs or deps, or a Sequence that "
            "runs it later), at " +
            TaskWhere(cycle.front()));
      }
    }
  }
  return Status::Ok();
}

std::span<const int> PlanTree::Deps(int t) const {
  if (dep_begin_.empty()) return {};
  return std::span<const int>(dep_targets_)
      .subspan(dep_begin_[t], dep_begin_[t + 1] - dep_begin_[t]);
}

std::vector<std::string> PlanTree::UnmountedDeps(int t) const {
  std::vector<std::string> out;
  const TaskSpec& spec = tasks_[t].node->task;
  if (!spec.deps) return out;
  std::span<const int> targets = Deps(t);
  size_t i = 0;
  for (const auto& [key, dep] : spec.deps->rows) {
    if (targets[i++] < 0) out.push_back(dep.task_id);
  }
  for (const std::string& id : spec.deps->depends_on) {
    if (targets[i++] < 0) out.push_back(id);
  }
  return out;
}

bool PlanTree::DepsReady(int t, Walk& w) const {
  bool ready = true;
  bool unmounted = false;
  for (int u : Deps(t)) {
    if (u < 0) {
      unmounted = true;
      ready = false;
      continue;
    }
    // Terminal for dependencies is what settles a task in a Sequence.
    if (!Settled(task_nodes_[u], w)) ready = false;
  }
  if (unmounted) w.d.blocked_on_unmounted.push_back(t);
  return ready;
}

bool PlanTree::Settled(int pn, const Walk& w) const {
  const PlanNode& p = plan_[pn];
  switch (p.kind) {
    case NodeKind::kTask: {
      TaskState st = w.states[p.task].state;
      return st == TaskState::kFinished || st == TaskState::kSkipped ||
             (st == TaskState::kFailed && p.node->task.continue_on_fail);
    }
    case NodeKind::kLoop: return p.loop_done;
    default: return w.settled != nullptr && (*w.settled)[pn] == static_cast<int>(p.children.size());
  }
}

bool PlanTree::Visit(int pn, Walk& w) const {
  const PlanNode& p = plan_[pn];
  const Node& node = *p.node;
  Decision& d = w.d;
  switch (p.kind) {
    case NodeKind::kTask: {
      const TaskStatus& st = w.states[p.task];
      switch (st.state) {
        case TaskState::kFinished:
        case TaskState::kSkipped: return true;
        case TaskState::kFailed:
          if (node.task.continue_on_fail) return true;
          if (d.failed_task < 0) d.failed_task = p.task;
          return false;
        case TaskState::kInProgress:
          for (int c : w.chain) w.active[c]++;
          d.in_progress++;
          return false;
        case TaskState::kWaiting: d.waiting++; return false;
        case TaskState::kPending:
        case TaskState::kCancelled:
          if (node.skip) {
            d.to_skip.push_back(p.task);
            return true;
          }
          if (st.retry_at_ms > w.now_ms) {
            if (d.wake_at_ms == 0 || st.retry_at_ms < d.wake_at_ms) d.wake_at_ms = st.retry_at_ms;
            return false;
          }
          if (!dep_begin_.empty() && !DepsReady(p.task, w)) return false;
          // Tasks under the same parallels share one copy of the chain.
          if (w.chains.empty() || w.chains.back() != w.chain) w.chains.push_back(w.chain);
          w.candidates.emplace_back(p.task, static_cast<int>(w.chains.size()) - 1);
          return false;
      }
      return false;
    }
    case NodeKind::kParallel: {
      w.chain.push_back(pn);
      bool all = true;
      size_t first = w.settled != nullptr ? (*w.settled)[pn] : 0;
      for (size_t i = first; i < p.children.size(); ++i) {
        all = Visit(p.children[i], w) && all;
        // A settled prefix of children is skipped by later calls.
        if (w.settled != nullptr && (*w.settled)[pn] == static_cast<int>(i) &&
            Settled(p.children[i], w)) {
          (*w.settled)[pn]++;
        }
      }
      w.chain.pop_back();
      return all;
    }
    case NodeKind::kLoop: {
      if (p.loop_done) return true;
      if (node.until) {
        d.loops.push_back({p.loop_id, LoopState{p.loop_iteration, true}});
        return true;
      }
      for (int c : p.children) {
        if (!Visit(c, w)) return false;
      }
      int next = p.loop_iteration + 1;
      if (next >= node.max_iterations) {
        if (node.on_max_reached == "fail") {
          if (d.loop_failure.empty()) d.loop_failure = p.loop_id;
          return false;
        }
        d.loops.push_back({p.loop_id, LoopState{p.loop_iteration, true}});
        return true;
      }
      d.loops.push_back({p.loop_id, LoopState{next, false}});
      return false;
    }
    case NodeKind::kWorkflow:
    case NodeKind::kSequence:
    case NodeKind::kBranch: {
      size_t first = w.settled != nullptr ? (*w.settled)[pn] : 0;
      for (size_t i = first; i < p.children.size(); ++i) {
        if (!Visit(p.children[i], w)) return false;
        if (w.settled != nullptr && (*w.settled)[pn] == static_cast<int>(i) &&
            Settled(p.children[i], w)) {
          (*w.settled)[pn]++;
        }
      }
      return true;
    }
  }
  return true;
}

Decision PlanTree::Schedule(const std::vector<TaskStatus>& states, int64_t now_ms, int slots,
                            ScheduleMemo* memo) const {
  Decision d;
  std::vector<int> local_active;
  std::vector<int>* active = &local_active;
  if (memo != nullptr) {
    if (memo->settled.size() != plan_.size()) memo->settled.assign(plan_.size(), 0);
    if (memo->active.size() != plan_.size()) memo->active.assign(plan_.size(), 0);
    for (int p : parallels_) memo->active[p] = 0;  // only parallels are ever counted
    active = &memo->active;
  } else {
    local_active.assign(plan_.size(), 0);
  }
  Walk w{.states = states,
         .now_ms = now_ms,
         .d = d,
         .active = *active,
         .settled = memo != nullptr ? &memo->settled : nullptr};
  bool terminal = plan_.empty() || Visit(0, w);
  for (auto& [task, chain_index] : w.candidates) {
    if (slots <= 0) break;
    const std::vector<int>& parallels = w.chains[chain_index];
    bool room = std::all_of(parallels.begin(), parallels.end(), [&](int p) {
      int cap = plan_[p].node->max_concurrency;
      return cap <= 0 || w.active[p] < cap;
    });
    if (!room) continue;
    for (int p : parallels) w.active[p]++;
    d.ready.push_back(task);
    --slots;
  }
  d.finished = terminal && d.failed_task < 0 && d.loop_failure.empty();
  return d;
}

}  // namespace smithers::core
