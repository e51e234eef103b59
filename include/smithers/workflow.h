// The workflow model: the tree a render function returns, shared by the Lua
// front end and C++ embedders.
//
//   smithers::WorkflowDefinition def;
//   def.name = "hello";
//   def.outputs["greeting"] = schema::Object({{"message", schema::String()}});
//   def.render = [](const smithers::Ctx& ctx) -> smithers::Result<smithers::Node> {
//     const smithers::Json* g = ctx.OutputMaybe("greeting", "greet");
//     std::vector<smithers::Node> kids = {
//         smithers::StaticTask("greet", "greeting", {{"message", "hi"}})};
//     if (g) kids.push_back(smithers::ComputeTask("measure", "length", ...));
//     return smithers::Workflow("hello", std::move(kids));
//   };
//
// A render function must be a pure function of `ctx`: the engine re-renders
// only when an output that the previous render read has changed (or a loop
// advanced), so reading state from anywhere but `ctx` is a bug.
#ifndef SMITHERS_WORKFLOW_H_
#define SMITHERS_WORKFLOW_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers {

enum class NodeKind { kWorkflow, kSequence, kParallel, kBranch, kLoop, kTask };

// "workflow", "sequence", ...
const char* NodeKindName(NodeKind kind);

// kApproval, kWaitForEvent and kTimer are durable waits: no process is held
// while they wait (docs/engine.md "Waits").
enum class TaskMode { kStatic, kCompute, kCommand, kAgent, kApproval, kWaitForEvent, kTimer };

// What a compute function learns about the attempt running it.
struct ComputeContext {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  int attempt = 1;
  int64_t deadline_monotonic_ms = 0;  // 0 = no timeout
  // The rows of the task's TaskDeps::rows as a JSON object, key -> row (a
  // key whose row is missing is absent under TaskDeps::optional); nullptr
  // when the task declares no rows. Valid for the call only.
  const Json* deps = nullptr;
};

// A compute task's body. Runs on the engine thread. An error fails the attempt.
using ComputeFn = std::function<Result<Json>(const ComputeContext&)>;

struct CommandSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH
  std::string cwd;                // "" = the engine's working directory
  // The child's environment is PATH, HOME, LANG, TZ, TMPDIR and LC_* from the
  // engine's, then `env`, then `secret_env` (docs/engine.md "Environment and
  // secrets"); nothing else of the engine's environment reaches it.
  std::map<std::string, std::string> env;
  // NAME -> a secret reference, "env:VAR" or "file:/absolute/path", resolved
  // only when the child starts (base/secrets.h). Under the Gateway it must
  // match gateway.toml's [secrets] allow.
  std::map<std::string, std::string> secret_env;
  // "json": stdout is parsed as JSON and is the output.
  // "text": the output is {exitCode, stdout, stderr}.
  std::string parse = "json";
};

struct RetryPolicy {
  std::string backoff = "fixed";  // fixed, linear or exponential
  int64_t initial_delay_ms = 0;
};

// When a task's output may be reused instead of running it (docs/engine.md "Cache").
struct CachePolicy {
  std::string scope = "workflow";  // run, workflow or global
  int64_t ttl_ms = 0;              // 0 = never expires
  std::string version;             // bump to invalidate older entries
  Json by;  // the value `by(ctx)` returned at render time; null = key on the task's input
};

// A human decision: an Approval node (mode kApproval), or the gate before a
// task with needsApproval.
struct ApprovalSpec {
  Json request = Json::object();  // {title, summary, ...}, shown to the approver
  std::string owner;              // "" = the workflow's default owner
  std::string fallback_owner;     // who gets it after escalate_after_ms; "" = none
  int64_t escalate_after_ms = 0;  // 0 = never escalates
  // Who else may decide at any time: these user ids, and (through the
  // Gateway) callers holding one of these scopes (docs/engine.md "Waits").
  std::vector<std::string> allowed_users;
  std::vector<std::string> allowed_scopes;
  // What a denial does: "fail" the task, "skip" it, or (Approval nodes only)
  // "continue" with the decision as its output.
  std::string on_deny = "fail";
};

// WaitForEvent / Signal: finishes with the payload of a signal named `event`.
struct EventWaitSpec {
  std::string event;
  std::string correlation_id;       // "" = any signal of that name
  int64_t timeout_ms = 0;           // 0 = waits forever
  std::string on_timeout = "fail";  // fail, continue (finished, no output) or skip
};

// Timer: finishes (without output) at a fixed time.
struct TimerSpec {
  int64_t duration_ms = -1;  // from when the timer is first reached; -1 = use until_ms
  int64_t until_ms = 0;      // epoch ms
};

// One row a task reads: the output `output` of the task whose logical id is
// `task_id` (docs/engine.md "Dependencies").
struct TaskDep {
  std::string task_id;
  std::string output;  // must be that task's declared output
};

// Smithers' dependency props. A task is not ready until every task named here
// is terminal for dependencies (finished, skipped, or failed with
// continueOnFail). A dependency names a logical id: it resolves to the task
// of that id in the current tree (inside a loop, at the loop's current
// iteration), and waits while no such task is mounted.
struct TaskDeps {
  std::vector<std::string> depends_on;  // ordering only (dependsOn, needs without a deps key)
  std::map<std::string, TaskDep> rows;  // key -> row handed to the task (deps)
  // A missing row (the dependency was skipped, failed with continueOnFail,
  // or finished without output) is left out instead of failing the task
  // with DEPS_MISSING.
  bool optional = false;
};

struct TaskSpec {
  TaskMode mode = TaskMode::kStatic;
  std::string output;   // name of the output schema (WorkflowDefinition::outputs)
  Json value;           // kStatic
  ComputeFn compute;    // kCompute
  CommandSpec command;  // kCommand
  std::string prompt;   // kAgent
  Json agent;           // kAgent: agent configuration
  int retries = 0;      // attempts after the first
  RetryPolicy retry_policy;
  int64_t timeout_ms = 0;  // 0 = none
  // An attempt that shows no sign of life (output, a model reply, a tool call)
  // for this long fails with TASK_HEARTBEAT_TIMEOUT (retryable). 0 = the
  // default: 600000 for agent tasks (env SMITHERS_TASK_HEARTBEAT_MS), none for
  // the rest; -1 = none.
  int64_t heartbeat_timeout_ms = 0;
  bool continue_on_fail = false;
  std::string label;
  std::optional<CachePolicy> cache;  // nullopt = never cached
  // kApproval, or any mode with needsApproval (the gate before it runs).
  // Shared and immutable: most tasks have none, and a tree holds thousands.
  std::shared_ptr<const ApprovalSpec> approval;
  std::shared_ptr<const EventWaitSpec> wait;  // kWaitForEvent (required)
  TimerSpec timer;                            // kTimer
  // Shared and immutable like `approval`; nullptr = no dependencies.
  std::shared_ptr<const TaskDeps> deps;
};

// One element of the rendered tree.
struct Node {
  NodeKind kind = NodeKind::kSequence;
  std::string id;      // Task and Loop: required; Parallel: optional; Workflow: its name
  std::string source;  // where it was declared, for errors ("hello.lua:12"); may be ""
  bool skip = false;   // skipIf: a task is recorded skipped, a container mounts nothing
  std::vector<Node> children;
  int max_concurrency = 0;  // Parallel: 0 = unlimited
  // Loop:
  bool until = false;
  int max_iterations = 5;
  std::string on_max_reached = "return-last";  // or "fail"
  // Branch: the condition it was rendered with (children hold the chosen element).
  bool condition = false;
  // Task:
  TaskSpec task;
};

// Builders for the C++ front end.
Node Workflow(std::string name, std::vector<Node> children);
Node Sequence(std::vector<Node> children);
Node Parallel(std::vector<Node> children, int max_concurrency = 0);
// Mounts `then_node` when `condition`, else `else_node` (if any).
Node Branch(bool condition, Node then_node, std::optional<Node> else_node = std::nullopt);
Node Loop(std::string id, bool until, std::vector<Node> children, int max_iterations = 5,
          std::string on_max_reached = "return-last");
Node StaticTask(std::string id, std::string output, Json value);
Node ComputeTask(std::string id, std::string output, ComputeFn fn);
Node CommandTask(std::string id, std::string output, std::vector<std::string> argv);
Node ApprovalTask(std::string id, std::string output, ApprovalSpec approval);
Node WaitForEventTask(std::string id, std::string output, EventWaitSpec wait);
Node TimerTask(std::string id, TimerSpec timer);
// `task` with `deps` added, e.g.
//   WithDeps(ComputeTask("b", "step", fn), {.rows = {{"prev", {"a", "step"}}}})
// where fn reads (*ctx.deps)["prev"].
Node WithDeps(Node task, TaskDeps deps);

// What a render function sees: the run's input and every persisted output.
// Every read is recorded so the engine knows which outputs the render depends on.
class Ctx {
 public:
  struct OutputKey {
    std::string output;  // schema name
    std::string node_id;
    bool operator<(const OutputKey& o) const {
      return std::tie(output, node_id) < std::tie(o.output, o.node_id);
    }
  };
  // node_id -> iteration -> payload, per output schema.
  using OutputMap = std::map<OutputKey, std::map<int, Json>>;

  Ctx(std::string run_id, const Json* input, const OutputMap* outputs, int iteration,
      Json auth = nullptr)
      : run_id_(std::move(run_id)),
        input_(input),
        outputs_(outputs),
        iteration_(iteration),
        auth_(std::move(auth)) {}

  const std::string& run_id() const { return run_id_; }
  const Json& input() const { return *input_; }
  // The current iteration of the workflow's loop (0 outside loops).
  int iteration() const { return iteration_; }
  const Json& auth() const { return auth_; }

  // The output of `node_id` at `iteration` (default: iteration()), or nullptr.
  const Json* OutputMaybe(const std::string& output, const std::string& node_id,
                          std::optional<int> iteration = std::nullopt) const;
  // Like OutputMaybe, but NotFound when there is none.
  Result<Json> Output(const std::string& output, const std::string& node_id,
                      std::optional<int> iteration = std::nullopt) const;
  // The output at the highest iteration, or nullptr.
  const Json* Latest(const std::string& output, const std::string& node_id) const;
  // How many iterations of `node_id` have an output.
  int IterationCount(const std::string& output, const std::string& node_id) const;

  // The outputs read so far (the render's dependencies).
  const std::set<OutputKey>& reads() const { return reads_; }

 private:
  const std::map<int, Json>* Rows(const std::string& output, const std::string& node_id) const;

  std::string run_id_;
  const Json* input_;
  const OutputMap* outputs_;
  int iteration_;
  Json auth_;
  mutable std::set<OutputKey> reads_;
};

using RenderFn = std::function<Result<Node>(const Ctx&)>;

// A workflow ready to run: its render function and its declared schemas.
struct WorkflowDefinition {
  std::string name;
  std::map<std::string, Json> outputs;  // output name -> JSON Schema
  Json input_schema;                    // null = any input
  RenderFn render;
  std::string source_path;  // the module file, or "" for C++ workflows
  std::string source_hash;  // identifies the workflow's code; checked on resume
  // The owner of approvals that name none. When "", every approval must name one.
  std::string default_approval_owner;
};

}  // namespace smithers

#endif  // SMITHERS_WORKFLOW_H_
