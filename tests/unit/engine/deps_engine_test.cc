// Dependencies through the C++ API: a ComputeFn reads the rows of the tasks it
// depends on (ComputeContext::deps), a missing row fails the task with
// DEPS_MISSING unless TaskDeps::optional, and an unmounted dependency ends in
// DEPENDENCY_DEADLOCK naming it.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "smithers/engine.h"
#include "smithers/schema.h"
#include "smithers/store.h"
#include "smithers/workflow.h"
#include "store/store_test_util.h"

namespace smithers {
namespace {

using store::TempDir;

Node Step(const std::string& id, const std::string& prev) {
  return WithDeps(ComputeTask(id, "step",
                              [](const ComputeContext& c) -> Result<Json> {
                                if (c.deps == nullptr) return InternalError("no deps");
                                return Json{{"value", (*c.deps)["prev"]["value"].get<int>() + 1}};
                              }),
                  {.rows = {{"prev", {.task_id = prev, .output = "step"}}}});
}

class DepsEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = OpenSqliteStore({.path = dir_.path() + "/s.db"});
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
    def_.name = "deps";
    def_.outputs["step"] = schema::Object({{"value", schema::Integer()}});
  }

  Result<RunResult> Run(const std::function<Node()>& tree) {
    def_.render = [tree](const Ctx&) -> Result<Node> { return tree(); };
    return RunWorkflow(def_, *store_, RunOptions{});
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  WorkflowDefinition def_;
};

TEST_F(DepsEngineTest, AComputeFunctionReadsTheRowsOfItsDependencies) {
  // Listed in reverse inside a Parallel: only the dependencies order them.
  auto r = Run([] {
    return Workflow(
        "deps",
        {Parallel({Step("c", "b"), Step("b", "a"), StaticTask("a", "step", {{"value", 1}})})});
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kFinished) << r->error.dump();
  EXPECT_EQ(r->outputs["step"]["c"], (Json{{"value", 3}}));
}

TEST_F(DepsEngineTest, AMissingRowFailsTheTaskUnlessOptional) {
  for (bool optional : {false, true}) {
    auto r = Run([optional] {
      Node a = StaticTask("a", "step", {{"value", 1}});
      a.skip = true;
      Node b = WithDeps(ComputeTask("b", "step",
                                    [](const ComputeContext& c) -> Result<Json> {
                                      return Json{{"value", static_cast<int>(c.deps->size())}};
                                    }),
                        {.rows = {{"prev", {"a", "step"}}}, .optional = optional});
      return Workflow("deps", {a, b});
    });
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (optional) {
      EXPECT_EQ(r->status, RunStatus::kFinished) << r->error.dump();
      EXPECT_EQ(r->outputs["step"]["b"], (Json{{"value", 0}}));  // the row is left out
    } else {
      EXPECT_EQ(r->status, RunStatus::kFailed);
      EXPECT_EQ(r->error["cause"]["code"], "DEPS_MISSING") << r->error.dump();
      EXPECT_NE(r->error["cause"]["message"].get<std::string>().find("deps.prev: task \"a\""),
                std::string::npos)
          << r->error.dump();
    }
  }
}

TEST_F(DepsEngineTest, AnUnmountedDependencyEndsInADeadlockNamingIt) {
  auto r = Run([] { return Workflow("deps", {Step("b", "nowhere")}); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kFailed);
  EXPECT_EQ(r->error["code"], "DEPENDENCY_DEADLOCK");
  EXPECT_EQ(r->error["missing"], Json::array({"nowhere"}));
  EXPECT_EQ(r->error["blocked"][0]["nodeId"], "b");
}

TEST_F(DepsEngineTest, ACycleInTheFirstRenderIsRefusedBeforeAnythingIsWritten) {
  auto r = Run([] { return Workflow("deps", {Parallel({Step("a", "b"), Step("b", "a")})}); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("dependency cycle"), std::string::npos);
  auto runs = store_->ListRuns({});
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty());
}

}  // namespace
}  // namespace smithers
