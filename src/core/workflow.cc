#include "smithers/workflow.h"

namespace smithers {

const char* NodeKindName(NodeKind kind) {
  switch (kind) {
    case NodeKind::kWorkflow: return "workflow";
    case NodeKind::kSequence: return "sequence";
    case NodeKind::kParallel: return "parallel";
    case NodeKind::kBranch: return "branch";
    case NodeKind::kLoop: return "loop";
    case NodeKind::kTask: return "task";
  }
  return "unknown";
}

Node Workflow(std::string name, std::vector<Node> children) {
  Node n{.kind = NodeKind::kWorkflow, .id = std::move(name)};
  n.children = std::move(children);
  return n;
}

Node Sequence(std::vector<Node> children) {
  Node n{.kind = NodeKind::kSequence};
  n.children = std::move(children);
  return n;
}

Node Parallel(std::vector<Node> children, int max_concurrency) {
  Node n{.kind = NodeKind::kParallel};
  n.children = std::move(children);
  n.max_concurrency = max_concurrency;
  return n;
}

Node Branch(bool condition, Node then_node, std::optional<Node> else_node) {
  Node n{.kind = NodeKind::kBranch};
  n.condition = condition;
  if (condition) {
    n.children.push_back(std::move(then_node));
  } else if (else_node) {
    n.children.push_back(std::move(*else_node));
  }
  return n;
}

Node Loop(std::string id, bool until, std::vector<Node> children, int max_iterations,
          std::string on_max_reached) {
  Node n{.kind = NodeKind::kLoop, .id = std::move(id)};
  n.children = std::move(children);
  n.until = until;
  n.max_iterations = max_iterations;
  n.on_max_reached = std::move(on_max_reached);
  return n;
}

static Node TaskNode(std::string id, std::string output, TaskMode mode) {
  Node n{.kind = NodeKind::kTask, .id = std::move(id)};
  n.task.mode = mode;
  n.task.output = std::move(output);
  return n;
}

Node StaticTask(std::string id, std::string output, Json value) {
  Node n = TaskNode(std::move(id), std::move(output), TaskMode::kStatic);
  n.task.value = std::move(value);
  return n;
}

Node ComputeTask(std::string id, std::string output, ComputeFn fn) {
  Node n = TaskNode(std::move(id), std::move(output), TaskMode::kCompute);
  n.task.compute = std::move(fn);
  return n;
}

Node CommandTask(std::string id, std::string output, std::vector<std::string> argv) {
  Node n = TaskNode(std::move(id), std::move(output), TaskMode::kCommand);
  n.task.command.argv = std::move(argv);
  return n;
}

Node ApprovalTask(std::string id, std::string output, ApprovalSpec approval) {
  Node n = TaskNode(std::move(id), std::move(output), TaskMode::kApproval);
  n.task.approval = std::make_shared<const ApprovalSpec>(std::move(approval));
  return n;
}

Node WaitForEventTask(std::string id, std::string output, EventWaitSpec wait) {
  Node n = TaskNode(std::move(id), std::move(output), TaskMode::kWaitForEvent);
  n.task.wait = std::make_shared<const EventWaitSpec>(std::move(wait));
  return n;
}

Node TimerTask(std::string id, TimerSpec timer) {
  Node n = TaskNode(std::move(id), "", TaskMode::kTimer);
  n.task.timer = timer;
  return n;
}

Node WithDeps(Node task, TaskDeps deps) {
  task.task.deps = std::make_shared<const TaskDeps>(std::move(deps));
  return task;
}

const std::map<int, Json>* Ctx::Rows(const std::string& output, const std::string& node_id) const {
  OutputKey key{output, node_id};
  reads_.insert(key);
  auto it = outputs_->find(key);
  return it == outputs_->end() ? nullptr : &it->second;
}

const Json* Ctx::OutputMaybe(const std::string& output, const std::string& node_id,
                             std::optional<int> iteration) const {
  const auto* rows = Rows(output, node_id);
  if (rows == nullptr) return nullptr;
  auto it = rows->find(iteration.value_or(iteration_));
  return it == rows->end() ? nullptr : &it->second;
}

Result<Json> Ctx::Output(const std::string& output, const std::string& node_id,
                         std::optional<int> iteration) const {
  const Json* row = OutputMaybe(output, node_id, iteration);
  if (row == nullptr) {
    return NotFoundError("no output \"" + output + "\" for node \"" + node_id + "\" at iteration " +
                         std::to_string(iteration.value_or(iteration_)));
  }
  return *row;
}

const Json* Ctx::Latest(const std::string& output, const std::string& node_id) const {
  const auto* rows = Rows(output, node_id);
  if (rows == nullptr || rows->empty()) return nullptr;
  return &rows->rbegin()->second;
}

int Ctx::IterationCount(const std::string& output, const std::string& node_id) const {
  const auto* rows = Rows(output, node_id);
  return rows == nullptr ? 0 : static_cast<int>(rows->size());
}

}  // namespace smithers
