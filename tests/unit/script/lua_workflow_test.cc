#include "script/lua_workflow.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <string>

#include "base/hash.h"
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

}  // namespace
}  // namespace smithers::script
