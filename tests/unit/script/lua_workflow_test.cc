#include "script/lua_workflow.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/json_limits.h"
#include "smithers/clock.h"

namespace smithers::script {
namespace {

class LuaWorkflowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smithers-lua-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string Write(const std::string& name, const std::string& body) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << body;
    return path;
  }

  // Renders a loaded module once, with an empty input and no outputs.
  static Result<Node> RenderWithNoOutputs(const LuaWorkflow& wf) {
    Json input = Json::object();
    Ctx::OutputMap outputs;
    Ctx ctx("r", &input, &outputs, 0);
    return wf.definition().render(ctx);
  }

  std::string dir_;
};

constexpr const char* kHeader = R"(
local smithers = require("smithers")
local z = smithers.schema
local outputs = smithers.outputs {
  out = z.object { n = z.integer(), tags = z.optional(z.array(z.string())) },
}
)";

TEST_F(LuaWorkflowTest, RendersEveryComponentIntoTheTree) {
  std::string path = Write("wf.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  local first = ctx:outputMaybe(outputs.out, "a")
  return smithers.Workflow { name = "all",
    smithers.Task { id = "a", output = outputs.out, { n = 1, tags = smithers.array {} } },
    nil,
    smithers.Parallel { maxConcurrency = 2,
      smithers.Task { id = "b", output = outputs.out, function() return { n = 2 } end },
      smithers.Task { id = "c", output = "out", command = { "echo", "{}" }, cwd = "/tmp",
                      env = { A = "1" }, timeoutMs = 50, retries = 3,
                      retryPolicy = { backoff = "exponential", initialDelayMs = 10 } },
    },
    smithers.Branch { ["if"] = first ~= nil,
      ["then"] = smithers.Task { id = "yes", output = outputs.out, { n = 3 } },
      ["else"] = smithers.Task { id = "no", output = outputs.out, { n = 4 } } },
    smithers.Loop { id = "l", ["until"] = false, maxIterations = 7, onMaxReached = "fail",
      smithers.Task { id = "d", output = outputs.out, skipIf = true, continueOnFail = true,
                      { n = ctx.iteration } } },
  }
end, { input = z.object { x = z.string() } })
)");
  auto wf = LoadWorkflowModule(path);
  ASSERT_TRUE(wf.ok()) << wf.status().ToString();
  const WorkflowDefinition& def = (*wf)->definition();
  EXPECT_EQ(def.source_path, path);
  EXPECT_EQ(def.source_hash.size(), 64u);
  ASSERT_EQ(def.outputs.count("out"), 1u);
  EXPECT_EQ(def.input_schema["properties"]["x"]["type"], "string");

  Json input = {{"x", "hi"}};
  Ctx::OutputMap outputs;
  Ctx ctx("run-1", &input, &outputs, 0);
  auto root = def.render(ctx);
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ(root->kind, NodeKind::kWorkflow);
  EXPECT_EQ(root->id, "all");
  ASSERT_EQ(root->children.size(), 4u);  // the nil child is not mounted

  const Node& a = root->children[0];
  EXPECT_EQ(a.task.mode, TaskMode::kStatic);
  EXPECT_EQ(a.task.value, (Json{{"n", 1}, {"tags", Json::array()}}));
  EXPECT_NE(a.source.find("wf.lua:"), std::string::npos);

  const Node& par = root->children[1];
  EXPECT_EQ(par.kind, NodeKind::kParallel);
  EXPECT_EQ(par.max_concurrency, 2);
  const TaskSpec& b = par.children[0].task;
  ASSERT_EQ(b.mode, TaskMode::kCompute);
  auto computed = b.compute(ComputeContext{.run_id = "run-1", .node_id = "b"});
  ASSERT_TRUE(computed.ok());
  EXPECT_EQ(*computed, (Json{{"n", 2}}));
  const TaskSpec& c = par.children[1].task;
  EXPECT_EQ(c.mode, TaskMode::kCommand);
  EXPECT_EQ(c.command.argv, (std::vector<std::string>{"echo", "{}"}));
  EXPECT_EQ(c.command.cwd, "/tmp");
  EXPECT_EQ(c.command.env.at("A"), "1");
  EXPECT_EQ(c.timeout_ms, 50);
  EXPECT_EQ(c.retries, 3);
  EXPECT_EQ(c.retry_policy.backoff, "exponential");
  EXPECT_EQ(c.retry_policy.initial_delay_ms, 10);

  const Node& branch = root->children[2];
  ASSERT_EQ(branch.children.size(), 1u);
  EXPECT_EQ(branch.children[0].id, "no");  // "a" has no output yet

  const Node& loop = root->children[3];
  EXPECT_EQ(loop.kind, NodeKind::kLoop);
  EXPECT_EQ(loop.max_iterations, 7);
  EXPECT_EQ(loop.on_max_reached, "fail");
  EXPECT_TRUE(loop.children[0].skip);
  EXPECT_TRUE(loop.children[0].task.continue_on_fail);

  // The render read "a"'s output: that is its dependency.
  EXPECT_EQ(ctx.reads().size(), 1u);
  EXPECT_EQ(ctx.reads().begin()->node_id, "a");

  // With an output for "a" the branch takes the other side.
  outputs[{"out", "a"}][0] = {{"n", 1}};
  Ctx ctx2("run-1", &input, &outputs, 0);
  auto root2 = def.render(ctx2);
  ASSERT_TRUE(root2.ok());
  EXPECT_EQ(root2->children[2].children[0].id, "yes");
}

TEST_F(LuaWorkflowTest, SiblingsAreRecordedPartOfTheRevisionAndServedWhenPinned) {
  ASSERT_EQ(mkdir((dir_ + "/lib").c_str(), 0755), 0);
  Write("lib/names.lua", "return { name = 'first' }");
  std::string main = std::string(kHeader) + R"(
local names = require("lib.names")
return smithers(function(ctx)
  return smithers.Workflow { name = names.name,
    smithers.Task { id = "t", output = outputs.out, { n = 1 } } }
end))";
  std::string path = Write("main.lua", main);
  auto first = LoadWorkflowModule(path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  using Siblings = std::map<std::string, std::string>;
  EXPECT_EQ((*first)->siblings(), (Siblings{{"lib.names", "return { name = 'first' }"}}));
  EXPECT_NE((*first)->definition().source_hash, base::Sha256Hex(main))
      << "the revision covers the sibling";
  auto again = LoadWorkflowModule(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->definition().source_hash, (*first)->definition().source_hash);

  // The sibling changes on disk: a new revision that renders the new code ...
  Write("lib/names.lua", "return { name = 'second' }");
  auto second = LoadWorkflowModule(path);
  ASSERT_TRUE(second.ok());
  EXPECT_NE((*second)->definition().source_hash, (*first)->definition().source_hash);
  Result<Node> tree = RenderWithNoOutputs(**second);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->id, "second");

  // ... while the pinned revision is served the sibling it was loaded with.
  auto pinned = LoadWorkflowModuleSource(path, main, (*first)->siblings());
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  EXPECT_EQ((*pinned)->definition().source_hash, (*first)->definition().source_hash);
  tree = RenderWithNoOutputs(**pinned);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->id, "first");

  // A broken sibling names its file; a missing one fails as require does.
  Write("lib/names.lua", "return {");
  auto broken = LoadWorkflowModule(path);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("lib/names.lua"), std::string::npos)
      << broken.status().message();
  auto missing = LoadWorkflowModuleSource(
      path, "local x = require('lib.nope')\nreturn smithers(function(ctx) end)");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("module 'lib.nope' not found"), std::string::npos)
      << missing.status().message();
}

TEST_F(LuaWorkflowTest, SyntaxErrorNamesFileAndLine) {
  std::string path = Write("bad.lua", "local x = \nreturn (");
  auto wf = LoadWorkflowModule(path);
  ASSERT_FALSE(wf.ok());
  EXPECT_EQ(wf.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wf.status().message().find("bad.lua:2"), std::string::npos) << wf.status().message();
}

TEST_F(LuaWorkflowTest, RuntimeErrorInRenderNamesLine) {
  std::string path = Write("boom.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  error("boom")
end)
)");
  auto wf = LoadWorkflowModule(path);
  ASSERT_TRUE(wf.ok()) << wf.status().ToString();
  auto root = RenderWithNoOutputs(**wf);
  ASSERT_FALSE(root.ok());
  EXPECT_NE(root.status().message().find("boom.lua:9: boom"), std::string::npos)
      << root.status().message();
}

TEST_F(LuaWorkflowTest, ModuleMustReturnAWorkflow) {
  auto wf = LoadWorkflowModule(Write("plain.lua", "return 42"));
  ASSERT_FALSE(wf.ok());
  EXPECT_NE(wf.status().message().find("must return smithers("), std::string::npos);
}

TEST_F(LuaWorkflowTest, BadTaskPropsAreClearErrors) {
  std::string path = Write("props.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Workflow { name = "w",
    smithers.Task { id = "a", output = outputs.out, retries = "many", { n = 1 } } }
end)
)");
  auto wf = LoadWorkflowModule(path);
  ASSERT_TRUE(wf.ok());
  auto root = RenderWithNoOutputs(**wf);
  ASSERT_FALSE(root.ok());
  EXPECT_NE(root.status().message().find("Task \"a\": \"retries\" must be a number"),
            std::string::npos)
      << root.status().message();
  EXPECT_NE(root.status().message().find("props.lua:10"), std::string::npos);
}

TEST_F(LuaWorkflowTest, DependencyPropsBecomeTaskDepsAndComputeGetsTheRows) {
  std::string path = Write("deps.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Workflow { name = "w",
    smithers.Task { id = "a", output = outputs.out, { n = 1 } },
    smithers.Task { id = "b", output = outputs.out, dependsOn = { "a" },
      needs = { prev = "a", gate = "g" }, deps = { prev = outputs.out, a = outputs.out },
      depsOptional = true,
      function(deps, info)
        return { n = deps.prev.n + deps.a.n + info.attempt * 100 + deps.attempt * 1000 }
      end },
    smithers.Timer { id = "g", duration = "1s", dependsOn = { "a" } },
  }
end)
)");
  auto wf = LoadWorkflowModule(path);
  ASSERT_TRUE(wf.ok()) << wf.status().ToString();
  auto root = RenderWithNoOutputs(**wf);
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ(root->children[0].task.deps, nullptr);  // no props, nothing allocated
  const TaskSpec& b = root->children[1].task;
  ASSERT_NE(b.deps, nullptr);
  // "gate" is used by no deps key: it orders, like dependsOn.
  EXPECT_EQ(b.deps->depends_on, (std::vector<std::string>{"a", "g"}));
  ASSERT_EQ(b.deps->rows.size(), 2u);
  EXPECT_EQ(b.deps->rows.at("prev").task_id, "a");  // through needs
  EXPECT_EQ(b.deps->rows.at("a").task_id, "a");     // a task id
  EXPECT_EQ(b.deps->rows.at("a").output, "out");
  EXPECT_TRUE(b.deps->optional);
  ASSERT_NE(root->children[2].task.deps, nullptr);
  EXPECT_EQ(root->children[2].task.deps->depends_on, (std::vector<std::string>{"a"}));

  Json rows = {{"prev", {{"n", 2}}}, {"a", {{"n", 3}}}};
  auto r = b.compute(ComputeContext{.attempt = 2, .deps = &rows});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (Json{{"n", 2 + 3 + 200 + 2000}}));
}

TEST_F(LuaWorkflowTest, BadDependencyPropsAreRefused) {
  for (const auto& [body, expected] : std::vector<std::pair<std::string, std::string>>{
           {"dependsOn = \"a\"", "\"dependsOn\" must be a list of strings"},
           {"needs = { p = 1 }", "\"needs\" must map names to task ids"},
           {"deps = { p = \"out\" }", "\"deps\" must map keys to outputs"},
           {"deps = 3", "\"deps\" must be a plain table"},
           {"depsOptional = 1", "\"depsOptional\" must be a boolean"},
       }) {
    std::string path = Write("bad.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Task { id = "b", output = outputs.out, )" +
                                            body + R"(, { n = 1 } }
end)
)");
    auto wf = LoadWorkflowModule(path);
    ASSERT_TRUE(wf.ok()) << wf.status().ToString();
    auto root = RenderWithNoOutputs(**wf);
    ASSERT_FALSE(root.ok()) << body;
    EXPECT_NE(root.status().message().find(expected), std::string::npos) << root.status().message();
  }
}

TEST_F(LuaWorkflowTest, ComputeTimeoutStopsAnInfiniteLoop) {
  std::string path = Write("spin.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Workflow { name = "w",
    smithers.Task { id = "a", output = outputs.out, function() while true do end end } }
end)
)");
  auto wf = LoadWorkflowModule(path);
  ASSERT_TRUE(wf.ok());
  auto root = RenderWithNoOutputs(**wf);
  ASSERT_TRUE(root.ok());
  ComputeContext cc{.deadline_monotonic_ms = SystemClock().MonotonicMs() + 50};
  auto r = root->children[0].task.compute(cc);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(LuaWorkflowTest, ComputeDeadlineIsOnTheRunsClock) {
  // Two million steps: the deadline hook looks at the clock thousands of times.
  std::string path = Write("count.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Workflow { name = "w",
    smithers.Task { id = "a", output = outputs.out, function()
      local n = 0
      for i = 1, 2000000 do n = n + 1 end
      return { n = n }
    end } }
end)
)");
  auto wf = LoadWorkflowModule(path);
  ASSERT_TRUE(wf.ok());
  auto root = RenderWithNoOutputs(**wf);
  ASSERT_TRUE(root.ok());
  const ComputeFn& fn = root->children[0].task.compute;
  // The run's clock stands still far behind the system's monotonic clock: a
  // deadline on it is never reached, however long the loop takes in real time.
  ManualClock clock(1000);
  auto ok = fn(ComputeContext{.deadline_monotonic_ms = 1000 + 60'000, .clock = &clock});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)["n"], 2000000);
  // Past its deadline on that clock, the same function stops at once.
  auto late = fn(ComputeContext{.deadline_monotonic_ms = 999, .clock = &clock});
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
}

// ---- props (docs/engine.md "Props") ----

// The message of a module's first render (or of its load, when that fails).
std::string RenderError(const std::string& path, const ModuleOptions& options = {}) {
  auto wf = LoadWorkflowModule(path, options);
  if (!wf.ok()) return wf.status().message();
  Json input = Json::object();
  Ctx::OutputMap outputs;
  Ctx ctx("r", &input, &outputs, 0);
  auto root = (*wf)->definition().render(ctx);
  return root.ok() ? "" : root.status().message();
}

#define EXPECT_HAS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "no «" << (part) << "» in: " << (text)

TEST_F(LuaWorkflowTest, UnknownPropsNameTheComponentTheLineAndNearMisses) {
  std::string path = Write("wf.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Workflow { name = "w",
    smithers.Task { id = "a", output = outputs.out, timeoutMS = 5, retrys = 2, { n = 1 } } }
end)
)");
  std::string err = RenderError(path);
  EXPECT_HAS(err, "wf.lua:10: Task \"a\": ");
  EXPECT_HAS(err, "unknown prop \"retrys\" (did you mean \"retries\"?)");
  EXPECT_HAS(err, "unknown prop \"timeoutMS\" (did you mean \"timeoutMs\"?)");

  // No near miss: the component's props are listed; a prop of another
  // component says whose it is.
  Write("wf.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Sequence { maxConcurrency = 2, smithers.Task { id = "a", output = outputs.out,
                                                                 flavour = "x", { n = 1 } } }
end)
)");
  err = RenderError(path);
  EXPECT_HAS(err, "Task \"a\": unknown prop \"flavour\" (Task takes id, skipIf, output");
  Write("wf.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Sequence { maxConcurrency = 2 }
end)
)");
  EXPECT_HAS(RenderError(path), "Sequence: unknown prop \"maxConcurrency\" (a prop of Parallel");
}

TEST_F(LuaWorkflowTest, SpecPropsWeDoNotImplementAreRefusedNotIgnored) {
  struct Case {
    std::string body, expected;
  };
  for (const Case& c : std::vector<Case>{
           {R"(smithers.Task { id = "a", output = outputs.out, noRetry = true, { n = 1 } })",
            "Task \"a\": prop \"noRetry\" is not supported yet (use retries = 0)"},
           {R"(smithers.Task { id = "a", output = outputs.out, async = true, { n = 1 } })",
            "prop \"async\" is not supported yet"},
           {R"(smithers.Task { id = "a", output = outputs.out, failurePolicy = "quarantine",
                               { n = 1 } })",
            "prop \"failurePolicy\" is not supported yet"},
           {R"(smithers.Approval { id = "a", output = outputs.out, mode = "rank" })",
            "Approval \"a\": mode \"rank\" is not supported yet (only \"approve\")"},
           {R"(smithers.Loop { id = "l", continueAsNewEvery = 3 })",
            "Loop \"l\": prop \"continueAsNewEvery\" is not supported yet"},
           {R"(smithers.Task { id = "a", output = outputs.out, cache = { by = "x" }, { n = 1 } })",
            "\"cache\" must be true or false"},
           {R"(smithers.Task { id = "a", output = outputs.out, cachePolicy = { scop = "run" },
                               { n = 1 } })",
            "cachePolicy: unknown prop \"scop\" (did you mean \"scope\"?)"},
           {R"(smithers.Task { id = "a", output = outputs.out, owner = "x", { n = 1 } })",
            "\"owner\" applies only with needsApproval"},
           {R"(smithers.Task { id = "a", output = outputs.out, cwd = "/", { n = 1 } })",
            "\"cwd\" applies only with command"},
       }) {
    std::string path =
        Write("spec.lua",
              std::string(kHeader) + "return smithers(function(ctx) return " + c.body + " end)\n");
    EXPECT_HAS(RenderError(path), c.expected);
  }
  // The props other parts of the engine read are known (approvals' deciders,
  // unisolated tools, approve mode).
  std::string ok = Write("ok.lua", std::string(kHeader) + R"(
local agent = smithers.Agent { model = "m", unisolatedTools = true, tools = { "bash" } }
local cli = smithers.ClaudeCodeAgent { model = "m", unisolatedTools = false }
return smithers(function(ctx)
  return smithers.Sequence {
    smithers.Approval { id = "ap", output = smithers.outputs { d = smithers.approvalDecision }.d,
                        mode = "approve", allowedUsers = { "alice" }, allowedScopes = { "ops" } },
    smithers.Task { id = "t", output = outputs.out, needsApproval = true, owner = "bob",
                    allowedUsers = { "carol" }, allowedScopes = { "approval:submit" },
                    agent = { agent, cli }, "do it" } }
end)
)");
  EXPECT_EQ(RenderError(ok), "");
}

TEST_F(LuaWorkflowTest, UnknownComponentsOptionsAndAgentsAreErrorsAtTheirLine) {
  std::string path = Write("c.lua", std::string(kHeader) + "local MQ = smithers.MergeQueue\n");
  EXPECT_HAS(RenderError(path),
             "c.lua:7: smithers.MergeQueue is not supported yet (use Parallel { maxConcurrency = 1 "
             "})");
  Write("c.lua", std::string(kHeader) + "local T = smithers.Taks\n");
  EXPECT_HAS(RenderError(path), "c.lua:7: smithers has no \"Taks\" (did you mean \"Task\"?)");
  Write("c.lua", std::string(kHeader) + "local s = z.strng()\n");
  EXPECT_HAS(RenderError(path), "smithers.schema has no \"strng\" (did you mean \"string\"?)");
  Write("c.lua", std::string(kHeader) + "return smithers(function() end, { nmae = 'x' })\n");
  EXPECT_HAS(RenderError(path),
             "c.lua:7: smithers(render, opts): unknown prop \"nmae\" (did you mean \"name\"?)");
  Write("c.lua", std::string(kHeader) +
                     "return smithers(function() end, { schedule = { crn = '* * * * *' } })\n");
  EXPECT_HAS(RenderError(path), "opts.schedule: unknown prop \"crn\" (did you mean \"cron\"?)");
  Write("c.lua", std::string(kHeader) + "local a = smithers.Agent { modle = 'gpt' }\n");
  EXPECT_HAS(RenderError(path), "c.lua:7: Agent: unknown prop \"modle\" (did you mean \"model\"?)");
  Write("c.lua", std::string(kHeader) + "local a = smithers.CodexAgent { cwd = '.' }\n");
  EXPECT_HAS(RenderError(path), "CodexAgent: prop \"cwd\" is not supported yet (use rootDir)");
}

TEST_F(LuaWorkflowTest, CheckComponentsReportsPropErrorsOnly) {
  // A render that fails for want of input is not a props error ...
  auto needs_input = LoadWorkflowModule(Write("in.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Task { id = ctx.input.name:upper(), output = outputs.out, { n = 1 } }
end)
)"));
  ASSERT_TRUE(needs_input.ok());
  EXPECT_TRUE((*needs_input)->CheckComponents(Json::object()).ok());
  // ... one the module caught with pcall still is, and so is a prop set
  // after the constructor ran.
  auto caught = LoadWorkflowModule(Write("caught.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  pcall(smithers.Task, { id = "x", output = outputs.out, retrys = 1, { n = 1 } })
  return smithers.Task { id = "a", output = outputs.out, { n = 1 } }
end)
)"));
  ASSERT_TRUE(caught.ok());
  Status s = (*caught)->CheckComponents(Json::object());
  EXPECT_HAS(s.message(), "caught.lua:9: Task \"x\": unknown prop \"retrys\"");
  auto later = LoadWorkflowModule(Write("later.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  local t = smithers.Task { id = "a", output = outputs.out, { n = 1 } }
  t.timeoutMS = 5
  return t
end)
)"));
  ASSERT_TRUE(later.ok());
  std::string err = (*later)->CheckComponents(Json::object()).message();
  EXPECT_HAS(err, "Task \"a\": unknown prop \"timeoutMS\" (did you mean \"timeoutMs\"?) (at ");
  EXPECT_HAS(err, "/later.lua:9)");
}

// ---- what a module can do to the process that loads it ----

TEST_F(LuaWorkflowTest, MetatablesCannotRaiseOutsideAProtectedCall) {
  // Read by C++ after the render returned: an __index that raises would
  // reach Lua's panic handler (abort) if it were called.
  std::string path = Write("mt.lua", std::string(kHeader) + R"(
local boom = { __index = function() error("boom") end }
return smithers(function(ctx)
  return setmetatable(smithers.Task { id = "a", output = outputs.out, { n = 1 } }, boom)
end)
)");
  EXPECT_HAS(RenderError(path), "has a metatable");
  Write("mt.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  return smithers.Task { id = "a", output = setmetatable({}, { __index = function() error("x") end }),
                         { n = 1 } }
end)
)");
  EXPECT_HAS(RenderError(path), "\"output\" must be an entry of smithers.outputs");
  Write("mt.lua", std::string(kHeader) +
                      "return setmetatable({}, { __index = function() error('boom') end })\n");
  EXPECT_HAS(RenderError(path), "must return smithers(");
}

TEST_F(LuaWorkflowTest, DeeplyNestedComponentsAreRefused) {
  std::string path = Write("deep.lua", std::string(kHeader) + R"(
return smithers(function(ctx)
  local t = smithers.Task { id = "a", output = outputs.out, { n = 1 } }
  for i = 1, 100000 do t = smithers.Sequence { t } end
  return t
end)
)");
  EXPECT_HAS(RenderError(path), "components nested deeper than 256 levels");
}

TEST_F(LuaWorkflowTest, ForgedCtxHandlesAndSchemaFinalizersAreOutOfReach) {
  std::string path = Write("forge.lua", std::string(kHeader) + R"(
assert(getmetatable(z.string()) == "smithers.Schema", "the schema metatable is reachable")
return smithers(function(ctx)
  -- The ctx's own methods hold its handle: replacing the field changes
  -- nothing (the read below works); a table with a forged handle (a
  -- userdata of another type) is refused.
  ctx.__handle = z.string()
  assert(ctx:outputMaybe(outputs.out, "a") == nil)
  return ctx.outputMaybe({ __handle = z.string() }, outputs.out, "a")
end)
)");
  EXPECT_HAS(RenderError(path), "ctx can only be read while the workflow renders");
}

// ---- the restricted library (docs/engine.md "Restricted modules") ----

constexpr const char* kGone = R"(
local function gone(v, what) if v ~= nil then error(what .. " is still there", 2) end end
)";

TEST_F(LuaWorkflowTest, RestrictedModulesHaveNoProcessesNativeCodeDebugOrBytecode) {
  ModuleOptions restricted{.restricted = true};
  std::string path = Write("r.lua", std::string(kHeader) + kGone + R"lua(
gone(io.popen, "io.popen") gone(os.execute, "os.execute") gone(os.exit, "os.exit")
gone(os.remove, "os.remove") gone(os.rename, "os.rename") gone(os.tmpname, "os.tmpname")
gone(package.loadlib, "package.loadlib") gone(debug, "debug") gone(string.dump, "string.dump")
gone(io.stderr, "io.stderr") gone(io.stdout, "io.stdout") gone(io.write, "io.write")
gone(package.loaded.debug, "package.loaded.debug")
gone(package.loaded.io.popen, "package.loaded.io.popen")
gone(require("os").execute, "require('os').execute")
gone(getmetatable("").__index.dump, "the strings' dump")
gone(package.searchers[3], "the Lua path searcher")
assert(#package.searchers == 2, "searchers: " .. #package.searchers)
assert(not pcall(require, "debug"), "require('debug') works")
local ok, err = load("\27Lua\84\0\25\147\13\10\26\10")
assert(ok == nil and err:find("binary chunk"), "bytecode loads: " .. tostring(err))
assert(os.getenv("SMITHERS_UNIT_SECRET") == nil, "os.getenv reads any variable")
assert(os.getenv("PATH") ~= nil, "os.getenv('PATH')")
return smithers(function(ctx) return smithers.Task { id = "a", output = outputs.out, { n = 1 } } end)
)lua");
  setenv("SMITHERS_UNIT_SECRET", "s3cret", 1);
  EXPECT_EQ(RenderError(path, restricted), "");
  // The same module with the full library fails its first check.
  EXPECT_HAS(RenderError(path), "io.popen is still there");
  unsetenv("SMITHERS_UNIT_SECRET");
}

TEST_F(LuaWorkflowTest, RestrictedFilesStayInTheModulesFolderAndItsWorkspace) {
  Write("data.txt", "hello\n");
  ASSERT_EQ(mkdir((dir_ + "/ws").c_str(), 0700), 0);
  ASSERT_EQ(symlink("/etc/passwd", (dir_ + "/passwd").c_str()), 0);
  std::string outside = dir_ + "-outside.txt";
  auto attempt = [&](const std::string& lua, const ModuleOptions& options) {
    std::string path = Write("f.lua", std::string(kHeader) + lua +
                                          "\nreturn smithers(function(ctx) return smithers.Task "
                                          "{ id = 'a', output = outputs.out, { n = 1 } } end)\n");
    return RenderError(path, options);
  };
  ModuleOptions no_workspace{.restricted = true};
  ModuleOptions with_workspace{.restricted = true, .workspace = dir_ + "/ws"};
  // Reads in its folder (by a relative path too: relative to the process's
  // cwd, as in Lua, so the test uses absolute ones).
  EXPECT_EQ(
      attempt("assert(io.open('" + dir_ + "/data.txt'):read('a') == 'hello\\n')", no_workspace),
      "");
  EXPECT_EQ(attempt("for l in io.lines('" + dir_ + "/data.txt') do assert(l == 'hello') end",
                    no_workspace),
            "");
  EXPECT_HAS(attempt("io.open('/etc/hostname')", no_workspace),
             "a restricted module reads files only in its own folder or its workspace");
  EXPECT_HAS(attempt("io.open('" + dir_ + "/passwd')", no_workspace), "reads files only in");
  EXPECT_HAS(attempt("dofile('/etc/hostname')", no_workspace), "reads files only in");
  EXPECT_HAS(attempt("io.open('" + dir_ + "/ws/x', 'w')", no_workspace),
             "a restricted module writes no files");
  EXPECT_HAS(attempt("io.open('" + outside + "', 'w')", with_workspace),
             "writes files only in its workspace");
  EXPECT_HAS(attempt("io.open('" + dir_ + "/data.txt', 'a')", with_workspace),
             "writes files only in its workspace");
  EXPECT_EQ(access(outside.c_str(), F_OK), -1) << "a refused open created the file";
  EXPECT_EQ(attempt("local f = assert(io.open('" + dir_ +
                        "/ws/out.txt', 'w')) f:write('written') f:close()",
                    with_workspace),
            "");
  std::ifstream written(dir_ + "/ws/out.txt");
  std::string text((std::istreambuf_iterator<char>(written)), {});
  EXPECT_EQ(text, "written");
  // A sibling that is a link out of the folder is not one.
  std::ofstream(dir_ + "-evil.lua") << "return {}";
  ASSERT_EQ(symlink((dir_ + "-evil.lua").c_str(), (dir_ + "/evil.lua").c_str()), 0);
  EXPECT_HAS(attempt("require('evil')", no_workspace), "module 'evil' not found");
  EXPECT_EQ(attempt("require('evil')", {}), "");
  unlink((dir_ + "-evil.lua").c_str());
}

TEST_F(LuaWorkflowTest, RestrictedModulesHaveBoundedMemoryAndTime) {
  ModuleOptions small{.restricted = true, .max_memory_bytes = 32 << 20, .max_render_ms = 200};
  std::string path = Write("big.lua", "local s = string.rep('x', 1 << 28)\n");
  EXPECT_HAS(RenderError(path, small), "not enough memory");
  Write("big.lua", "while true do end\n");
  EXPECT_HAS(RenderError(path, small), "module load timed out");
  Write("big.lua", std::string(kHeader) + "return smithers(function(ctx) while true do end end)\n");
  EXPECT_HAS(RenderError(path, small), "render timed out");
  // The full library has neither bound (the user's own code).
  Write("big.lua", std::string(kHeader) + "local s = string.rep('x', 1 << 26)\n" +
                       "return smithers(function(ctx) return smithers.Task { id = 'a', output = "
                       "outputs.out, { n = #s } } end)\n");
  EXPECT_EQ(RenderError(path), "");
}

// JSON -> Lua (ctx.input, ctx:output rows) and Lua -> JSON (task values,
// compute results) both stop at the depth limit with an error, never a crash:
// PushJson once recursed without lua_checkstack and corrupted the heap at
// about 60 levels.
Json Deep(int depth) {
  Json v = 1;
  for (int i = 0; i < depth; ++i) v = Json::array({std::move(v)});
  return v;
}

TEST_F(LuaWorkflowTest, DeepValuesConvertUpToTheLimitAndAreRefusedPastIt) {
  std::string path = Write("deep.lua", std::string(kHeader) + R"(
local function nest(n)
  local t = {}
  local cur = t
  for i = 2, n do cur[1] = {} cur = cur[1] end
  return t
end
return smithers(function(ctx)
  local row = ctx:outputMaybe(outputs.out, "a")
  return smithers.Workflow { name = "w",
    smithers.Task { id = "a", output = outputs.out,
                    function() return { n = 1, deep = nest(ctx.input.want or 1) } end },
    smithers.Task { id = "b", output = outputs.out, { n = 2, echo = ctx.input.deep } } }
end)
)");
  auto wf = LoadWorkflowModule(path);
  ASSERT_TRUE(wf.ok()) << wf.status().ToString();
  const int limit = base::MaxJsonDepth();
  Ctx::OutputMap outputs;
  for (int depth : {limit - 1, limit}) {
    // ctx.input nests `depth` levels with the input object itself.
    Json input = {{"deep", Deep(depth - 1)}, {"want", limit - 1}};
    Ctx ctx("r", &input, &outputs, 0);
    auto root = wf->get()->definition().render(ctx);
    ASSERT_TRUE(root.ok()) << depth << ": " << root.status().ToString();
    // The static value holds the input's deep value again.
    EXPECT_EQ(root->children[1].task.value["echo"], Deep(depth - 1));
    auto computed = root->children[0].task.compute(ComputeContext{});
    ASSERT_TRUE(computed.ok()) << computed.status().ToString();  // exactly the limit
  }
  // The input one level past the limit: the render fails, nothing crashes.
  Json over = {{"deep", Deep(limit)}};
  Ctx ctx_over("r", &over, &outputs, 0);
  auto refused = wf->get()->definition().render(ctx_over);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("ctx.input nests deeper than"), std::string::npos)
      << refused.status().message();
  // A compute result one level past the limit is an error.
  Json want = {{"want", limit}};
  Ctx ctx_want("r", &want, &outputs, 0);
  auto root = wf->get()->definition().render(ctx_want);
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  auto computed = root->children[0].task.compute(ComputeContext{});
  ASSERT_FALSE(computed.ok());
  EXPECT_NE(computed.status().message().find("nests deeper than"), std::string::npos)
      << computed.status().message();
  // A stored row too deep to load: ctx:outputMaybe raises a Lua error (the
  // render fails with it); 100,000 levels take no stack.
  Json input = Json::object();
  Json row = Json::object();
  row["n"] = 1;
  row["deep"] = Deep(100000);
  outputs[{"out", "a"}][0] = std::move(row);
  Ctx ctx_row("r", &input, &outputs, 0);
  auto unloadable = wf->get()->definition().render(ctx_row);
  ASSERT_FALSE(unloadable.ok());
  EXPECT_NE(unloadable.status().message().find("output out of a nests deeper than"),
            std::string::npos)
      << unloadable.status().message();
}

}  // namespace
}  // namespace smithers::script
