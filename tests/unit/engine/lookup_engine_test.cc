// Lookups in a running engine resolve to the node's own iteration: a Branch
// outside a Loop that reads a task outside every Loop keeps its arm while a
// Loop elsewhere advances, and every task runs exactly once.
#include <gtest/gtest.h>

#include <map>
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

using store::OpenTestStore;
using store::TempDir;

struct Counts {
  std::map<std::string, int> runs;
};

Node Counted(Counts* counts, const std::string& id) {
  return ComputeTask(id, "value", [counts, id](const ComputeContext& c) -> Result<Json> {
    counts->runs[id]++;
    return Json{{"v", c.iteration}};
  });
}

// seed; then a Loop of 3 iterations in parallel with a Branch on seed's
// output; after the loop, "after" reads the loop's body from outside it.
WorkflowDefinition BranchBesideLoop(Counts* counts) {
  WorkflowDefinition def;
  def.name = "branch-beside-loop";
  def.source_hash = "lookup_engine_test v1";
  def.outputs["value"] = schema::Object({{"v", schema::Integer()}});
  def.render = [counts](const Ctx& ctx) -> Result<Node> {
    std::vector<Node> kids;
    kids.push_back(Counted(counts, "seed"));
    const Json* seed = ctx.OutputMaybe("value", "seed");
    if (seed != nullptr) {
      bool done = ctx.IterationCount("value", "body") >= 3;
      std::vector<Node> arms;
      arms.push_back(Loop("L", done, {Counted(counts, "body")}, 10));
      arms.push_back(Branch(seed->at("v") == 0, Counted(counts, "then"),
                            std::optional<Node>(Counted(counts, "else"))));
      kids.push_back(Parallel(std::move(arms)));
      // Read from outside the loop: the body's last iteration once L is done.
      const Json* body = ctx.OutputMaybe("value", "body");
      if (done && body != nullptr && body->at("v") == 2) kids.push_back(Counted(counts, "after"));
    }
    return Workflow("branch-beside-loop", std::move(kids));
  };
  return def;
}

TEST(LookupEngineTest, BranchOutsideALoopKeepsItsArmWhileTheLoopAdvances) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenTestStore(dir.path());
  ASSERT_NE(store, nullptr);
  Counts counts;
  Result<RunResult> r =
      RunWorkflow(BranchBesideLoop(&counts), *store, RunOptions{.run_id = "branch"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kFinished) << r->error.dump();
  EXPECT_EQ(counts.runs,
            (std::map<std::string, int>{{"seed", 1}, {"body", 3}, {"then", 1}, {"after", 1}}));

  // The placements are stored with the run, so a resume resolves the same way.
  Result<RunRecord> run = store->GetRun("branch");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->config.at("placements"), Json::parse(R"({"body":["L"]})"));
}

// Nested loops: the body of the inner loop is read by a task outside both, by
// its logical id, and resolves under the outer loop's last iteration.
TEST(LookupEngineTest, NestedLoopBodyReadFromOutside) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenTestStore(dir.path());
  ASSERT_NE(store, nullptr);
  Counts counts;
  WorkflowDefinition def;
  def.name = "nested";
  def.source_hash = "lookup_engine_test nested v1";
  def.outputs["value"] = schema::Object({{"v", schema::Integer()}});
  def.render = [&counts](const Ctx& ctx) -> Result<Node> {
    // The inner loop runs twice per outer iteration; the outer loop twice.
    bool inner_done = ctx.IterationCount("value", "x") >= 2;
    const Json* x = ctx.OutputMaybe("value", "x");
    bool outer_done =
        ctx.IterationCount("value", "y") >= 2 && ctx.IterationCount("value", "x@@A=1") == 2;
    std::vector<Node> kids;
    kids.push_back(Loop(
        "A", outer_done,
        {Sequence({Loop("B", inner_done, {Counted(&counts, "x")}, 5), Counted(&counts, "y")})}, 5));
    if (outer_done && x != nullptr && x->at("v") == 1) kids.push_back(Counted(&counts, "after"));
    return Workflow("nested", std::move(kids));
  };
  Result<RunResult> r = RunWorkflow(def, *store, RunOptions{.run_id = "nested"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kFinished) << r->error.dump();
  EXPECT_EQ(counts.runs, (std::map<std::string, int>{{"x", 4}, {"y", 2}, {"after", 1}}));
  Result<RunRecord> run = store->GetRun("nested");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->config.at("placements"), Json::parse(R"({"x":["A","B"],"y":["A"]})"));
}

}  // namespace
}  // namespace smithers
