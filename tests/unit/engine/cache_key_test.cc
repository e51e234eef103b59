// The cache key: what makes two task results interchangeable.
#include <gtest/gtest.h>

#include <string>

#include "engine/cache.h"
#include "smithers/schema.h"

namespace smithers::engine {
namespace {

TaskSpec CommandSpecFor(std::vector<std::string> argv) {
  TaskSpec task;
  task.mode = TaskMode::kCommand;
  task.output = "out";
  task.command.argv = std::move(argv);
  return task;
}

CacheKeyInput Input(std::string run_id, std::string workflow) {
  return {.run_id = std::move(run_id),
          .workflow_name = std::move(workflow),
          .node_id = "a",
          .iteration = 0,
          .output_schema = schema::Object({{"n", schema::Integer()}})};
}

CachePolicy Scope(const std::string& scope) {
  CachePolicy p;
  p.scope = scope;
  return p;
}

TEST(CacheKeyTest, IsAStableSha256Hex) {
  TaskSpec task = CommandSpecFor({"echo", "1"});
  // Golden values: cache keys are stored with cached outputs, so a change
  // here is a persisted-format change (every cached result would miss): it
  // needs a migration, not a new literal here.
  EXPECT_EQ(CacheKey(task, Scope("workflow"), Input("r1", "wf")),
            "5c8b01b867a9e920c4970bfc4e5fa01c1d0892a2c1846618e67196db9e5b76e9");
  EXPECT_EQ(CacheKey(task, Scope("run"), Input("r1", "wf")),
            "c01f8a8ed97ad9de0319125227dfa35a636bb1b04fa43693433ba123a6752f76");
  CachePolicy by = Scope("global");
  by.by = "fixed";
  EXPECT_EQ(CacheKey(task, by, Input("r1", "wf")),
            "6879efc41a665d58e30755e03f78c7eae6f99eb7c3a17d2826eb3b8af70cda50");
}

TEST(CacheKeyTest, ScopeIdentities) {
  TaskSpec task = CommandSpecFor({"echo", "1"});
  // run: differs per run.
  EXPECT_NE(CacheKey(task, Scope("run"), Input("r1", "wf")),
            CacheKey(task, Scope("run"), Input("r2", "wf")));
  // workflow: shared across runs, not across workflow names.
  EXPECT_EQ(CacheKey(task, Scope("workflow"), Input("r1", "wf")),
            CacheKey(task, Scope("workflow"), Input("r2", "wf")));
  EXPECT_NE(CacheKey(task, Scope("workflow"), Input("r1", "wf")),
            CacheKey(task, Scope("workflow"), Input("r1", "other")));
  // global: shared across workflow names.
  EXPECT_EQ(CacheKey(task, Scope("global"), Input("r1", "wf")),
            CacheKey(task, Scope("global"), Input("r2", "other")));
  // Scopes never share keys with each other.
  EXPECT_NE(CacheKey(task, Scope("run"), Input("r1", "wf")),
            CacheKey(task, Scope("workflow"), Input("r1", "wf")));
  EXPECT_NE(CacheKey(task, Scope("workflow"), Input("r1", "wf")),
            CacheKey(task, Scope("global"), Input("r1", "wf")));
}

TEST(CacheKeyTest, VersionSchemaInputAndByChangeTheKey) {
  TaskSpec task = CommandSpecFor({"echo", "1"});
  CachePolicy p = Scope("workflow");
  std::string base = CacheKey(task, p, Input("r1", "wf"));

  CachePolicy v2 = p;
  v2.version = "v2";
  EXPECT_NE(CacheKey(task, v2, Input("r1", "wf")), base);

  CacheKeyInput changed = Input("r1", "wf");
  changed.output_schema = schema::Object({{"n", schema::Integer()}, {"m", schema::String()}});
  EXPECT_NE(CacheKey(task, p, changed), base);

  EXPECT_NE(CacheKey(CommandSpecFor({"echo", "2"}), p, Input("r1", "wf")), base);

  CacheKeyInput other_node = Input("r1", "wf");
  other_node.node_id = "b";
  EXPECT_NE(CacheKey(task, p, other_node), base);

  // With `by`, the key follows by(ctx), not the command.
  CachePolicy by = p;
  by.by = {{"k", 1}};
  EXPECT_EQ(CacheKey(task, by, Input("r1", "wf")),
            CacheKey(CommandSpecFor({"echo", "2"}), by, Input("r1", "wf")));
  CachePolicy by2 = p;
  by2.by = {{"k", 2}};
  EXPECT_NE(CacheKey(task, by, Input("r1", "wf")), CacheKey(task, by2, Input("r1", "wf")));
}

TEST(CacheKeyTest, ComputeWithoutByIsKeyedByIteration) {
  TaskSpec task;
  task.mode = TaskMode::kCompute;
  task.output = "out";
  CacheKeyInput i0 = Input("r1", "wf");
  CacheKeyInput i1 = i0;
  i1.iteration = 1;
  EXPECT_NE(CacheKey(task, Scope("workflow"), i0), CacheKey(task, Scope("workflow"), i1));
  EXPECT_EQ(CacheKey(task, Scope("workflow"), i0),
            CacheKey(task, Scope("workflow"), Input("r2", "wf")));
}

TEST(CacheKeyTest, RowsATaskReadsAreInItsKey) {
  TaskSpec task = CommandSpecFor({"cat", "$SMITHERS_DEPS_FILE"});
  CacheKeyInput in = Input("r1", "wf");
  Json rows = {{"prev", {{"value", 1}}}};
  Json changed = {{"prev", {{"value", 2}}}};
  std::string without = CacheKey(task, Scope("workflow"), in);
  in.deps = &rows;
  std::string with = CacheKey(task, Scope("workflow"), in);
  // Golden values: a stored key must not change under a new binary (a key
  // without rows is computed as before dependencies existed).
  EXPECT_EQ(without, "92b3e8005f23421fd9889dc338942841b67c171ba18b2fd4b004b5c7434fe02e");
  EXPECT_EQ(with, "9a1457e04f591b30dd1902bae747f84028bb457fcfa1a210a2fa09947cf4b8a6");
  in.deps = &changed;
  EXPECT_NE(CacheKey(task, Scope("workflow"), in), with);
  // With `by` too: a changed row is a different input.
  CachePolicy by = Scope("workflow");
  by.by = "fixed";
  std::string by_changed = CacheKey(task, by, in);
  in.deps = &rows;
  EXPECT_NE(CacheKey(task, by, in), by_changed);
}

}  // namespace
}  // namespace smithers::engine
