// Ctx lookups resolve a node id to that node's own iteration (docs/engine.md
// "Reading outputs"), whatever iteration the engine is at.
#include <gtest/gtest.h>

#include <string>

#include "smithers/workflow.h"

namespace smithers {
namespace {

Json Row(int v) { return Json{{"v", v}}; }

class CtxTest : public ::testing::Test {
 protected:
  void Put(const std::string& id, int iteration, int v) { outputs_[{"o", id}][iteration] = Row(v); }

  // A Ctx whose engine iteration is `engine_iteration` (what ctx.iteration
  // reports), which lookups must not use.
  Ctx Make(int engine_iteration = 7) {
    return Ctx("r", &input_, &outputs_, engine_iteration, &placements_, &loops_);
  }

  static int V(const Json* row) { return row == nullptr ? -1 : row->at("v").get<int>(); }

  Json input_ = Json::object();
  Ctx::OutputMap outputs_;
  Ctx::Placements placements_;
  LoopStates loops_;
};

TEST_F(CtxTest, NodeOutsideEveryLoopIsReadAtIterationZero) {
  Put("seed", 0, 5);
  loops_["L"] = {.iteration = 3, .done = false};
  placements_["body"] = {"L"};
  Ctx ctx = Make(3);
  EXPECT_EQ(ctx.iteration(), 3);
  EXPECT_EQ(V(ctx.OutputMaybe("o", "seed")), 5);
  ASSERT_TRUE(ctx.Output("o", "seed").ok());
  EXPECT_EQ(ctx.Output("o", "seed")->at("v"), 5);
}

TEST_F(CtxTest, LoopBodyNodeIsReadAtItsLoopsIterationFromAnywhere) {
  for (int i = 0; i < 3; ++i) Put("body", i, 10 + i);
  loops_["L"] = {.iteration = 2, .done = false};
  loops_["Other"] = {.iteration = 0, .done = false};
  placements_["body"] = {"L"};
  Ctx ctx = Make(0);  // the engine is at Other's iteration
  EXPECT_EQ(V(ctx.OutputMaybe("o", "body")), 12);
  loops_["L"] = {.iteration = 3, .done = false};
  EXPECT_EQ(V(Make(0).OutputMaybe("o", "body")), -1);  // iteration 3 has no row yet
}

TEST_F(CtxTest, DoneLoopIsReadAtItsLastIteration) {
  for (int i = 0; i < 4; ++i) Put("body", i, 20 + i);
  loops_["L"] = {.iteration = 3, .done = true};
  placements_["body"] = {"L"};
  EXPECT_EQ(V(Make(9).OutputMaybe("o", "body")), 23);
}

TEST_F(CtxTest, ExplicitIterationWins) {
  for (int i = 0; i < 4; ++i) Put("body", i, 30 + i);
  Put("seed", 0, 1);
  loops_["L"] = {.iteration = 3, .done = false};
  placements_["body"] = {"L"};
  Ctx ctx = Make();
  EXPECT_EQ(V(ctx.OutputMaybe("o", "body", 1)), 31);
  EXPECT_EQ(V(ctx.OutputMaybe("o", "seed", 2)), -1);
  Result<Json> missing = ctx.Output("o", "body", 8);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("at iteration 8"), std::string::npos);
}

TEST_F(CtxTest, NestedLoopsResolveTheEffectiveId) {
  // x sits in B, which sits in A: x's effective id carries A's iteration, its
  // iteration is B's (whose state key is itself suffixed).
  placements_["x"] = {"A", "B"};
  loops_["A"] = {.iteration = 2, .done = false};
  loops_["B@@A=1"] = {.iteration = 4, .done = true};
  loops_["B@@A=2"] = {.iteration = 1, .done = false};
  Put("x@@A=2", 1, 41);
  Put("x@@A=2", 0, 40);
  Put("x@@A=1", 4, 14);
  Ctx ctx = Make();
  EXPECT_EQ(V(ctx.OutputMaybe("o", "x")), 41);
  EXPECT_EQ(V(ctx.OutputMaybe("o", "x", 0)), 40);
  // An explicit suffix keeps it, and takes the iteration of that B.
  EXPECT_EQ(V(ctx.OutputMaybe("o", "x@@A=1")), 14);
  EXPECT_EQ(V(ctx.Latest("o", "x")), 41);
  EXPECT_EQ(ctx.IterationCount("o", "x"), 2);
  EXPECT_EQ(ctx.IterationCount("o", "x@@A=1"), 1);
  std::string scratch;
  int iteration = -1;
  EXPECT_EQ(ctx.Resolve("x", &scratch, &iteration), "x@@A=2");
  EXPECT_EQ(iteration, 1);
}

TEST_F(CtxTest, ThreeLevelsOfLoops) {
  placements_["y"] = {"A", "B", "C"};
  loops_["A"] = {.iteration = 1, .done = false};
  loops_["B@@A=1"] = {.iteration = 2, .done = false};
  loops_["C@@A=1,B=2"] = {.iteration = 3, .done = false};
  std::string scratch;
  int iteration = -1;
  EXPECT_EQ(Make().Resolve("y", &scratch, &iteration), "y@@A=1,B=2");
  EXPECT_EQ(iteration, 3);
}

TEST_F(CtxTest, LoopWithoutStateIsAtIterationZero) {
  placements_["x"] = {"A", "B"};
  std::string scratch;
  int iteration = -1;
  EXPECT_EQ(Make().Resolve("x", &scratch, &iteration), "x@@A=0");
  EXPECT_EQ(iteration, 0);
}

TEST_F(CtxTest, ReadsAreRecordedByResolvedId) {
  placements_["x"] = {"A", "B"};
  loops_["A"] = {.iteration = 2, .done = false};
  Ctx ctx = Make();
  ctx.OutputMaybe("o", "x");
  ctx.OutputMaybe("o", "x");
  ctx.Latest("o", "seed");
  EXPECT_EQ(ctx.reads().size(), 2u);
  EXPECT_EQ(ctx.reads().count(Ctx::OutputKey{"o", "x@@A=2"}), 1u);
  EXPECT_EQ(ctx.reads().count(Ctx::OutputKey{"o", "seed"}), 1u);
}

TEST_F(CtxTest, WithoutPlacementsEveryNodeIsOutsideLoops) {
  Put("a", 0, 1);
  Put("a", 2, 3);
  Ctx ctx("r", &input_, &outputs_, 2);
  EXPECT_EQ(V(ctx.OutputMaybe("o", "a")), 1);
  EXPECT_EQ(V(ctx.OutputMaybe("o", "a", 2)), 3);
}

}  // namespace
}  // namespace smithers
