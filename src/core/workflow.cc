#include "smithers/workflow.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>

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

Json SandboxToJson(const SandboxSpec& s) {
  Json j = {{"runtime", s.runtime}, {"allowNetwork", s.allow_network}};
  if (s.memory_limit_bytes > 0) j["memoryLimit"] = s.memory_limit_bytes;
  if (s.pids_limit > 0) j["pidsLimit"] = s.pids_limit;
  if (s.cpu_limit > 0) j["cpuLimit"] = s.cpu_limit;
  if (!s.image.empty()) j["image"] = s.image;
  if (!s.egress_allow.empty()) j["egress"] = {{"allow", s.egress_allow}};
  if (!s.ports.empty()) j["ports"] = s.ports;
  if (!s.volumes.empty()) {
    Json volumes = Json::array();
    for (const SandboxSpec::Volume& v : s.volumes) {
      volumes.push_back({{"host", v.host}, {"container", v.container}, {"readonly", v.readonly}});
    }
    j["volumes"] = std::move(volumes);
  }
  return j;
}

SandboxSpec SandboxFromJson(const Json& j) {
  SandboxSpec s;
  if (!j.is_object()) return s;
  s.runtime = j.value("runtime", s.runtime);
  s.allow_network = j.value("allowNetwork", false);
  s.memory_limit_bytes = j.value("memoryLimit", int64_t{0});
  s.pids_limit = j.value("pidsLimit", int64_t{0});
  s.cpu_limit = j.value("cpuLimit", 0.0);
  s.image = j.value("image", "");
  if (j.contains("egress") && j["egress"].is_object()) {
    for (const Json& t : j["egress"].value("allow", Json::array())) {
      if (t.is_string()) s.egress_allow.push_back(t.get<std::string>());
    }
  }
  for (const Json& p : j.value("ports", Json::array())) {
    if (p.is_string()) s.ports.push_back(p.get<std::string>());
  }
  for (const Json& v : j.value("volumes", Json::array())) {
    if (!v.is_object()) continue;
    s.volumes.push_back({.host = v.value("host", ""),
                         .container = v.value("container", ""),
                         .readonly = v.value("readonly", true)});
  }
  return s;
}

Status CheckEgressTarget(const std::string& target) {
  size_t colon = target.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == target.size()) {
    return InvalidArgumentError("\"" + target + "\" is not host:port");
  }
  for (char ch : target.substr(0, colon)) {
    if (std::isalnum(static_cast<unsigned char>(ch)) == 0 && ch != '.' && ch != '-') {
      return InvalidArgumentError("\"" + target + "\": a host is letters, digits, '.' and '-'");
    }
  }
  std::string port = target.substr(colon + 1);
  bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char ch) {
                  return std::isdigit(static_cast<unsigned char>(ch)) != 0;
                });
  if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) {
    return InvalidArgumentError("\"" + target + "\": a port is 1 to 65535");
  }
  return Status::Ok();
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

size_t Ctx::OutputKeyHash::operator()(const OutputKeyView& k) const noexcept {
  size_t h = std::hash<std::string_view>{}(k.node_id);
  return h ^
         (std::hash<std::string_view>{}(k.output) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

int Ctx::LoopIteration(std::string_view loop_id) const {
  if (loops_ == nullptr) return 0;
  auto it = loops_->find(loop_id);
  return it == loops_->end() ? 0 : it->second.iteration;
}

std::string_view Ctx::Resolve(std::string_view node_id, std::string* scratch,
                              int* iteration) const {
  *iteration = 0;
  if (placements_ == nullptr || placements_->empty()) return node_id;
  size_t at = node_id.find("@@");
  std::string_view logical = at == std::string_view::npos ? node_id : node_id.substr(0, at);
  auto placed = placements_->find(logical);
  if (placed == placements_->end() || placed->second.empty()) return node_id;
  const std::vector<std::string>& loops = placed->second;
  if (at != std::string_view::npos) {
    // An explicit suffix names the outer loops' iterations: the innermost
    // loop's key carries the same suffix.
    *scratch = loops.back();
    scratch->append(node_id.substr(at));
    *iteration = LoopIteration(*scratch);
    return node_id;
  }
  if (loops.size() == 1) {
    *iteration = LoopIteration(loops[0]);
    return node_id;
  }
  // Nested: loop i's key is its id plus "@@" and the iterations of loops 0..i-1.
  std::string suffix;
  std::string key;
  for (size_t i = 0; i < loops.size(); ++i) {
    key = loops[i];
    if (i > 0) key += "@@" + suffix;
    int it = LoopIteration(key);
    if (i + 1 == loops.size()) {
      *iteration = it;
    } else {
      if (i > 0) suffix += ',';
      suffix += loops[i] + "=" + std::to_string(it);
    }
  }
  scratch->assign(node_id);
  *scratch += "@@" + suffix;
  return *scratch;
}

const std::map<int, Json>* Ctx::Rows(std::string_view output, std::string_view node_id) const {
  OutputKeyView key{output, node_id};
  auto it = outputs_->find(key);
  if (it != outputs_->end()) {
    reads_.hits.push_back(&it->first);  // deduplicated once, in TakeReads
    return &it->second;
  }
  if (reads_.misses.find(key) == reads_.misses.end()) {
    reads_.misses.insert(OutputKey{std::string(output), std::string(node_id)});
  }
  return nullptr;
}

Ctx::Reads Ctx::TakeReads() {
  std::sort(reads_.hits.begin(), reads_.hits.end());
  reads_.hits.erase(std::unique(reads_.hits.begin(), reads_.hits.end()), reads_.hits.end());
  return std::exchange(reads_, Reads{});
}

Ctx::ReadSet Ctx::reads() const {
  ReadSet all = reads_.misses;
  for (const OutputKey* k : reads_.hits) all.insert(*k);
  return all;
}

bool Ctx::Reads::Contains(const OutputMap& outputs, const OutputKeyView& key) const {
  if (misses.find(key) != misses.end()) return true;
  auto it = outputs.find(key);
  return it != outputs.end() && std::binary_search(hits.begin(), hits.end(), &it->first);
}

const Json* Ctx::OutputMaybe(std::string_view output, std::string_view node_id,
                             std::optional<int> iteration) const {
  std::string scratch;
  int own = 0;
  std::string_view id = Resolve(node_id, &scratch, &own);
  const auto* rows = Rows(output, id);
  if (rows == nullptr) return nullptr;
  auto it = rows->find(iteration.value_or(own));
  return it == rows->end() ? nullptr : &it->second;
}

Result<Json> Ctx::Output(std::string_view output, std::string_view node_id,
                         std::optional<int> iteration) const {
  const Json* row = OutputMaybe(output, node_id, iteration);
  if (row == nullptr) {
    std::string scratch;
    int own = 0;
    std::string id(Resolve(node_id, &scratch, &own));
    return NotFoundError("no output \"" + std::string(output) + "\" for node \"" + id +
                         "\" at iteration " + std::to_string(iteration.value_or(own)));
  }
  return *row;
}

const Json* Ctx::Latest(std::string_view output, std::string_view node_id) const {
  std::string scratch;
  int own = 0;
  const auto* rows = Rows(output, Resolve(node_id, &scratch, &own));
  if (rows == nullptr || rows->empty()) return nullptr;
  return &rows->rbegin()->second;
}

int Ctx::IterationCount(std::string_view output, std::string_view node_id) const {
  std::string scratch;
  int own = 0;
  const auto* rows = Rows(output, Resolve(node_id, &scratch, &own));
  return rows == nullptr ? 0 : static_cast<int>(rows->size());
}

}  // namespace smithers
