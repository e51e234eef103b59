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
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers {

class Clock;

enum class NodeKind { kWorkflow, kSequence, kParallel, kBranch, kLoop, kTask };

// "workflow", "sequence", ...
const char* NodeKindName(NodeKind kind);

// kApproval, kWaitForEvent and kTimer are durable waits: no process is held
// while they wait (docs/engine.md "Waits").
enum class TaskMode {
  kStatic,
  kCompute,
  kCommand,
  kAgent,
  kApproval,
  kWaitForEvent,
  kTimer,
  kSandbox,
};

// What a compute function learns about the attempt running it.
struct ComputeContext {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  int attempt = 1;
  int64_t deadline_monotonic_ms = 0;  // 0 = no timeout, else on `clock`'s MonotonicMs
  Clock* clock = nullptr;             // the run's clock; nullptr = SystemClock()
  // The rows of the task's TaskDeps::rows as a JSON object, key -> row (a
  // key whose row is missing is absent under TaskDeps::optional); nullptr
  // when the task declares no rows. Valid for the call only.
  const Json* deps = nullptr;
};

// A compute task's body. Runs on the engine thread. An error fails the attempt.
using ComputeFn = std::function<Result<Json>(const ComputeContext&)>;

// A command task's confinement, its `sandbox` prop (docs/sandbox.md): the
// runtime that runs its process, with the task's cwd as the only writable
// folder, no network unless allowed, and the limits set (0 = none).
struct SandboxSpec {
  std::string runtime = "bubblewrap";
  bool allow_network = false;
  int64_t memory_limit_bytes = 0;  // memoryLimit
  int64_t pids_limit = 0;          // pidsLimit: processes and threads at once
  double cpu_limit = 0;            // cpuLimit: cores' worth of CPU time
  std::string image;               // image: a container runtime's image
  // egress.allow: "host:port" targets reached through the engine's proxy
  // (docs/sandbox.md "Egress"); empty = none.
  std::vector<std::string> egress_allow;
  // ports: "ip:hostPort:containerPort" each, published by a container
  // runtime (with allowNetwork); the ip is 127.0.0.1 unless the prop names
  // one (docs/sandbox.md "Ports and volumes").
  std::vector<std::string> ports;
  // volumes: host folders or files shown inside, read-only unless
  // `readonly = false`; both paths absolute.
  struct Volume {
    std::string host;
    std::string container;
    bool readonly = true;
  };
  std::vector<Volume> volumes;
};

// "host:port", a host of letters, digits, '.' and '-' and a port from 1 to
// 65535: an egress target. InvalidArgument saying why not.
Status CheckEgressTarget(const std::string& target);

// A sandbox as its prop's canonical JSON ({runtime, allowNetwork} and the
// limits that are set), as frames and a CLI agent's configuration hold it;
// SandboxFromJson reads it back (a key that is absent keeps its default).
Json SandboxToJson(const SandboxSpec& s);
SandboxSpec SandboxFromJson(const Json& j);

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
  // Set: the process runs inside this sandbox, or not at all.
  std::optional<SandboxSpec> sandbox;
};

// A Sandbox task (docs/sandbox.md "The Sandbox component"): a child
// workflow module run by a worker inside a sandbox, on a copy of the
// workspace files it names; the files it changed come back as patches,
// applied to the workspace after review.
struct SandboxTaskSpec {
  std::string workflow;  // the child module's file (absolute)
  Json input = Json::object();
  std::string root_dir;                    // the workspace ("" = the engine's working folder)
  std::vector<std::string> files;          // workspace-relative files and folders shipped
  SandboxSpec sandbox;                     // the worker's runtime, network and limits
  std::map<std::string, std::string> env;  // the worker's declared env
  std::map<std::string, std::string> secret_env;  // NAME -> secret reference
  bool review_diffs = true;                       // patches need a review ...
  bool auto_accept_diffs = false;                 // ... which accepts them by itself
  // The worker's argv ("" = the engine's own `smithers sandbox worker`),
  // given SMITHERS_SANDBOX_REQUEST_PATH and SMITHERS_SANDBOX_RESULT_PATH.
  std::vector<std::string> command;
  int64_t max_bundle_bytes = 100 << 20;
  int64_t max_manifest_bytes = 5 << 20;
  int max_patches = 1000;
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
  // default: RunOptions::agent_heartbeat_timeout_ms for agent tasks (600000;
  // the CLI takes SMITHERS_TASK_HEARTBEAT_MS), none for the rest; -1 = none.
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
  std::shared_ptr<const SandboxTaskSpec> sandbox_task;  // kSandbox (required)
  // The review of what a task produced, after it ran and before its output
  // counts (a Sandbox's patches): who decides, as for an approval. Its
  // executor asks for it (AttemptOutcome::review); nullptr = never.
  std::shared_ptr<const ApprovalSpec> review;
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

// The state of one Loop, keyed by its resolved id (its logical id, plus
// "@@outer=iter,..." when it sits inside other loops). A done loop keeps the
// iteration it finished at.
struct LoopState {
  int iteration = 0;
  bool done = false;
};
using LoopStates = std::map<std::string, LoopState, std::less<>>;

// What a render function sees: the run's input and every persisted output.
// Every read is recorded so the engine knows which outputs the render depends on.
//
// A lookup without an explicit iteration means the node's own iteration
// (docs/engine.md "Reading outputs"): 0 for a node outside every Loop, the
// current iteration of its enclosing Loop (the last one once the loop is
// done) for a node inside one, wherever the read happens. Inside nested
// loops a logical id resolves to "id@@outer=iter,..." under the outer loops'
// current iterations; an id that already carries "@@" keeps its suffix.
class Ctx {
 public:
  struct OutputKey {
    std::string output;  // schema name
    std::string node_id;
    bool operator==(const OutputKey& o) const = default;
  };
  // A key by reference, for lookups that build no strings.
  struct OutputKeyView {
    std::string_view output;
    std::string_view node_id;
  };
  struct OutputKeyHash {
    using is_transparent = void;  // NOLINT(readability-identifier-naming): std lookup tag
    size_t operator()(const OutputKeyView& k) const noexcept;
    size_t operator()(const OutputKey& k) const noexcept {
      return (*this)(OutputKeyView{k.output, k.node_id});
    }
  };
  struct OutputKeyEq {
    using is_transparent = void;  // NOLINT(readability-identifier-naming): std lookup tag
    static OutputKeyView View(const OutputKey& k) { return {k.output, k.node_id}; }
    static OutputKeyView View(const OutputKeyView& k) { return k; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const noexcept {
      OutputKeyView x = View(a);
      OutputKeyView y = View(b);
      return x.node_id == y.node_id && x.output == y.output;
    }
  };
  struct StringHash {
    using is_transparent = void;  // NOLINT(readability-identifier-naming): std lookup tag
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  // (output, node_id) -> iteration -> payload.
  using OutputMap = std::unordered_map<OutputKey, std::map<int, Json>, OutputKeyHash, OutputKeyEq>;
  using ReadSet = std::unordered_set<OutputKey, OutputKeyHash, OutputKeyEq>;
  // Where tasks sit: logical task id -> the logical ids of its enclosing
  // loops, outermost first. A task outside every Loop has no entry.
  using Placements =
      std::unordered_map<std::string, std::vector<std::string>, StringHash, std::equal_to<>>;

  // No placements: every node is read as outside every Loop.
  Ctx(std::string run_id, const Json* input, const OutputMap* outputs, int iteration,
      Json auth = nullptr)
      : run_id_(std::move(run_id)),
        input_(input),
        outputs_(outputs),
        iteration_(iteration),
        auth_(std::move(auth)) {}
  // `placements` and `loops` must outlive the Ctx (either may be null).
  Ctx(std::string run_id, const Json* input, const OutputMap* outputs, int iteration,
      const Placements* placements, const LoopStates* loops, Json auth = nullptr)
      : run_id_(std::move(run_id)),
        input_(input),
        outputs_(outputs),
        iteration_(iteration),
        auth_(std::move(auth)),
        placements_(placements),
        loops_(loops) {}

  const std::string& run_id() const { return run_id_; }
  const Json& input() const { return *input_; }
  // The engine's current loop iteration: that of the first Loop (in resolved
  // id order) that is not done, or the highest iteration once every Loop is
  // done; 0 when there is no Loop. It is not what lookups default to.
  int iteration() const { return iteration_; }
  const Json& auth() const { return auth_; }

  // The output of `node_id` at `iteration` (default: the node's own
  // iteration, see above), or nullptr.
  const Json* OutputMaybe(std::string_view output, std::string_view node_id,
                          std::optional<int> iteration = std::nullopt) const;
  // Like OutputMaybe, but NotFound when there is none.
  Result<Json> Output(std::string_view output, std::string_view node_id,
                      std::optional<int> iteration = std::nullopt) const;
  // The output at the highest iteration of the node's resolved id, or nullptr.
  const Json* Latest(std::string_view output, std::string_view node_id) const;
  // How many iterations of the node's resolved id have an output.
  int IterationCount(std::string_view output, std::string_view node_id) const;

  // The resolved id of `node_id` (its effective id under the current loop
  // states) and, in `*iteration`, its own iteration. May return a view of
  // `*scratch`, or of `node_id` itself.
  std::string_view Resolve(std::string_view node_id, std::string* scratch, int* iteration) const;

  // What a render read, by resolved id: keys that had outputs, as pointers
  // to the keys of the OutputMap (stable: the engine never erases one), and
  // keys that had none, by value. Recording a read of an existing key costs
  // no allocation.
  struct Reads {
    std::vector<const OutputKey*> hits;  // sorted and unique after Take
    ReadSet misses;
    // Whether (output, node_id) was read; `outputs` is the map the render read.
    bool Contains(const OutputMap& outputs, const OutputKeyView& key) const;
  };
  // The outputs read so far (the render's dependencies), as keys.
  ReadSet reads() const;
  // Moves the reads out (hits sorted and unique); the Ctx keeps none.
  Reads TakeReads();

 private:
  const std::map<int, Json>* Rows(std::string_view output, std::string_view node_id) const;
  int LoopIteration(std::string_view loop_id) const;

  std::string run_id_;
  const Json* input_;
  const OutputMap* outputs_;
  int iteration_;
  Json auth_;
  const Placements* placements_ = nullptr;
  const LoopStates* loops_ = nullptr;
  mutable Reads reads_;
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
