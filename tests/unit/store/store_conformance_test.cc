// Behaviour every Store must show, whatever the database behind it. Backends
// instantiate the suite in their own test file (see store_conformance.h).
#include "store_conformance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace smithers::store {
namespace {

// --- Round trips ----------------------------------------------------------------

TEST_P(StoreConformanceTest, RunRoundTripsEveryColumn) {
  RunRecord run = MakeRun("r1");
  run.finished_at_ms = 5000;
  run.runtime_owner_id = "host:1:uuid";
  run.cancel_requested_at_ms = 4000;
  run.status = RunStatus::kFailed;
  run.error = {{"message", "boom"}, {"code", 7}};
  run.config = {{"force", true}, {"tags", {"a", "b"}}};
  PutRun(run);

  STORE_ASSERT_OK_AND_ASSIGN(RunRecord got, store_->GetRun("r1"));
  EXPECT_EQ(ToJson(got), ToJson(run));
}

TEST_P(StoreConformanceTest, ZeroTimestampsEmptyOwnerAndNullJsonReadBackUnchanged) {
  RunRecord run{.run_id = "bare", .status = RunStatus::kRunning};
  run.input = Json();
  run.config = Json();
  PutRun(run);

  STORE_ASSERT_OK_AND_ASSIGN(RunRecord got, store_->GetRun("bare"));
  EXPECT_EQ(ToJson(got), ToJson(run));
  EXPECT_EQ(got.created_at_ms, 0);
  EXPECT_EQ(got.heartbeat_at_ms, 0);
  EXPECT_EQ(got.runtime_owner_id, "");
  EXPECT_TRUE(got.input.is_null());
  EXPECT_TRUE(got.error.is_null());
}

TEST_P(StoreConformanceTest, JsonValuesRoundTripExactly) {
  RunRecord run = MakeRun("j");
  run.input = {{"unicode", "héllo ✓ 日本"},
               {"nested", {{"a", {1, 2.5, nullptr, true}}, {"empty", Json::object()}}},
               {"quote", "it's \"quoted\"\n"},
               {"big", int64_t{1} << 53}};
  run.config = Json::array({1, "two"});
  PutRun(run);

  STORE_ASSERT_OK_AND_ASSIGN(RunRecord got, store_->GetRun("j"));
  EXPECT_EQ(got.input, run.input);
  EXPECT_EQ(got.config, run.config);
}

TEST_P(StoreConformanceTest, UpsertRunReplacesColumns) {
  PutRun(MakeRun("r1"));
  RunRecord changed = MakeRun("r1");
  changed.status = RunStatus::kFinished;
  changed.finished_at_ms = 9000;
  changed.heartbeat_at_ms = 0;
  changed.input = {{"other", 1}};
  PutRun(changed);

  STORE_ASSERT_OK_AND_ASSIGN(RunRecord got, store_->GetRun("r1"));
  EXPECT_EQ(ToJson(got), ToJson(changed));
}

TEST_P(StoreConformanceTest, GetRunOfMissingRunIsNotFound) {
  Result<RunRecord> got = store_->GetRun("nope");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, NodesRoundTripOrderedByIterationThenNodeId) {
  PutRun(MakeRun("r1"));
  PutRun(MakeRun("other"));
  WriteBatch batch;
  batch.UpsertNode({.run_id = "r1", .node_id = "b", .iteration = 1, .state = NodeState::kPending});
  batch.UpsertNode({.run_id = "r1",
                    .node_id = "b",
                    .iteration = 0,
                    .state = NodeState::kFinished,
                    .last_attempt = 2,
                    .updated_at_ms = 77,
                    .output_table = "greeting",
                    .label = "Greet"});
  batch.UpsertNode(
      {.run_id = "r1", .node_id = "a", .iteration = 1, .state = NodeState::kInProgress});
  batch.UpsertNode({.run_id = "r1", .node_id = "c", .iteration = 0, .state = NodeState::kSkipped});
  batch.UpsertNode(
      {.run_id = "other", .node_id = "a", .iteration = 0, .state = NodeState::kPending});
  MustCommit(batch);

  STORE_ASSERT_OK_AND_ASSIGN(std::vector<NodeRecord> nodes, store_->ListNodes("r1"));
  ASSERT_EQ(nodes.size(), 4u);
  std::vector<std::pair<int, std::string>> order;
  order.reserve(nodes.size());
  for (const NodeRecord& n : nodes) order.emplace_back(n.iteration, n.node_id);
  EXPECT_EQ(order,
            (std::vector<std::pair<int, std::string>>{{0, "b"}, {0, "c"}, {1, "a"}, {1, "b"}}));
  EXPECT_EQ(ToJson(nodes[0]), ToJson(NodeRecord{.run_id = "r1",
                                                .node_id = "b",
                                                .iteration = 0,
                                                .state = NodeState::kFinished,
                                                .last_attempt = 2,
                                                .updated_at_ms = 77,
                                                .output_table = "greeting",
                                                .label = "Greet"}));

  // An upsert of the same key replaces the row.
  WriteBatch update;
  update.UpsertNode(
      {.run_id = "r1", .node_id = "c", .iteration = 0, .state = NodeState::kFinished});
  MustCommit(update);
  STORE_ASSERT_OK_AND_ASSIGN(nodes, store_->ListNodes("r1"));
  ASSERT_EQ(nodes.size(), 4u);
  EXPECT_EQ(nodes[1].state, NodeState::kFinished);

  // Counted by state, this run's rows only; a run without rows counts none.
  using Counts = std::map<std::string, int64_t>;
  STORE_ASSERT_OK_AND_ASSIGN(Counts counts, store_->CountNodes("r1"));
  EXPECT_EQ(counts, (Counts{{"finished", 2}, {"in-progress", 1}, {"pending", 1}}));
  STORE_ASSERT_OK_AND_ASSIGN(counts, store_->CountNodes("ghost"));
  EXPECT_TRUE(counts.empty());
}

TEST_P(StoreConformanceTest, AttemptsRoundTripOrderedByStartThenKey) {
  PutRun(MakeRun("r1"));
  AttemptRecord failed{.run_id = "r1",
                       .node_id = "a",
                       .iteration = 0,
                       .attempt = 1,
                       .state = AttemptState::kFailed,
                       .started_at_ms = 300,
                       .finished_at_ms = 350,
                       .error = {{"message", "timeout"}},
                       .cached = false,
                       .meta = {{"timer", {{"fireAt", 1}}}}};
  AttemptRecord retried = failed;
  retried.attempt = 2;
  retried.state = AttemptState::kInProgress;
  retried.started_at_ms = 400;
  retried.finished_at_ms = 0;
  retried.error = Json();
  retried.meta = Json::object();
  AttemptRecord cached{.run_id = "r1",
                       .node_id = "z",
                       .iteration = 0,
                       .attempt = 1,
                       .state = AttemptState::kFinished,
                       .started_at_ms = 100,
                       .finished_at_ms = 100,
                       .cached = true};
  AttemptRecord same_start{.run_id = "r1", .node_id = "b", .attempt = 1, .started_at_ms = 300};
  WriteBatch batch;
  batch.UpsertAttempt(retried);
  batch.UpsertAttempt(failed);
  batch.UpsertAttempt(same_start);
  batch.UpsertAttempt(cached);
  MustCommit(batch);

  STORE_ASSERT_OK_AND_ASSIGN(std::vector<AttemptRecord> attempts, store_->ListAttempts("r1"));
  EXPECT_EQ(ToJson(attempts),
            ToJson(std::vector<AttemptRecord>{cached, failed, same_start, retried}));

  // Finishing the attempt replaces it in place.
  retried.state = AttemptState::kFinished;
  retried.finished_at_ms = 450;
  WriteBatch finish;
  finish.UpsertAttempt(retried);
  MustCommit(finish);
  STORE_ASSERT_OK_AND_ASSIGN(attempts, store_->ListAttempts("r1"));
  ASSERT_EQ(attempts.size(), 4u);
  EXPECT_EQ(ToJson(attempts[3]), ToJson(retried));
}

TEST_P(StoreConformanceTest, OutputsRoundTripOrderedAndReplacedByKey) {
  PutRun(MakeRun("r1"));
  OutputRecord late{.run_id = "r1",
                    .node_id = "a",
                    .iteration = 0,
                    .output_table = "greeting",
                    .payload = {{"message", "hi"}},
                    .created_at_ms = 200};
  OutputRecord early{.run_id = "r1",
                     .node_id = "b",
                     .iteration = 0,
                     .output_table = "length",
                     .payload = {{"n", 2}},
                     .created_at_ms = 100};
  OutputRecord tie_second{.run_id = "r1",
                          .node_id = "a",
                          .iteration = 1,
                          .output_table = "greeting",
                          .payload = {{"message", "again"}},
                          .created_at_ms = 200};
  WriteBatch batch;
  batch.PutOutput(tie_second);
  batch.PutOutput(late);
  batch.PutOutput(early);
  MustCommit(batch);

  STORE_ASSERT_OK_AND_ASSIGN(std::vector<OutputRecord> outputs, store_->ListOutputs("r1"));
  EXPECT_EQ(ToJson(outputs), ToJson(std::vector<OutputRecord>{early, late, tie_second}));

  late.payload = {{"message", "replaced"}};
  WriteBatch replace;
  replace.PutOutput(late);
  MustCommit(replace);
  STORE_ASSERT_OK_AND_ASSIGN(outputs, store_->ListOutputs("r1"));
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_EQ(outputs[1].payload, late.payload);
}

TEST_P(StoreConformanceTest, CacheRowsRoundTripReplaceAndOutliveRuns) {
  STORE_ASSERT_OK_AND_ASSIGN(std::optional<CacheEntry> none, store_->GetCache("k1"));
  EXPECT_FALSE(none.has_value());

  CacheEntry entry{.cache_key = "k1",
                   .created_at_ms = 1234,
                   .workflow_name = "wf",
                   .node_id = "a",
                   .output_table = "out",
                   .schema_sig = "sig",
                   .payload = {{"n", 1}, {"s", "héllo"}}};
  WriteBatch batch;  // no run: cache rows belong to none
  batch.PutCache(entry);
  MustCommit(batch);
  STORE_ASSERT_OK_AND_ASSIGN(std::optional<CacheEntry> got, store_->GetCache("k1"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->cache_key, "k1");
  EXPECT_EQ(got->created_at_ms, 1234);
  EXPECT_EQ(got->workflow_name, "wf");
  EXPECT_EQ(got->node_id, "a");
  EXPECT_EQ(got->output_table, "out");
  EXPECT_EQ(got->schema_sig, "sig");
  EXPECT_EQ(got->payload, entry.payload);

  entry.created_at_ms = 5678;
  entry.payload = {{"n", 2}};
  batch.Clear();
  batch.PutCache(entry);
  MustCommit(batch);
  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(got, store_->GetCache("k1"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->created_at_ms, 5678);
  EXPECT_EQ(got->payload, entry.payload);
}

TEST_P(StoreConformanceTest, FramesListInOrderAndLastFrameIsHighest) {
  PutRun(MakeRun("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(std::optional<FrameRecord> none, store_->LastFrame("r1"));
  EXPECT_FALSE(none.has_value());

  std::vector<FrameRecord> frames;
  for (int64_t no : {2, 0, 1}) {
    frames.push_back({.run_id = "r1",
                      .frame_no = no,
                      .created_at_ms = 10 + no,
                      .encoding = no == 0 ? "keyframe" : "delta",
                      .data = R"({"version":1,"ops":[]})",
                      .xml_hash = "hash" + std::to_string(no),
                      .note = no == 2 ? "after approval" : ""});
  }
  WriteBatch batch;
  for (const FrameRecord& f : frames) batch.PutFrame(f);
  MustCommit(batch);

  STORE_ASSERT_OK_AND_ASSIGN(std::vector<FrameRecord> got, store_->ListFrames("r1"));
  EXPECT_EQ(ToJson(got), ToJson(std::vector<FrameRecord>{frames[1], frames[2], frames[0]}));
  STORE_ASSERT_OK_AND_ASSIGN(std::optional<FrameRecord> last, store_->LastFrame("r1"));
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(ToJson(*last), ToJson(frames[0]));
}

TEST_P(StoreConformanceTest, LoopsRoundTripAndUpsert) {
  PutRun(MakeRun("r1"));
  LoopRecord loop{.run_id = "r1", .loop_id = "review", .iteration = 2, .updated_at_ms = 50};
  LoopRecord other{.run_id = "r1", .loop_id = "fix", .iteration = 0, .done = true};
  WriteBatch batch;
  batch.UpsertLoop(loop);
  batch.UpsertLoop(other);
  MustCommit(batch);

  loop.iteration = 3;
  loop.done = true;
  WriteBatch update;
  update.UpsertLoop(loop);
  MustCommit(update);

  STORE_ASSERT_OK_AND_ASSIGN(std::vector<LoopRecord> loops, store_->ListLoops("r1"));
  std::set<std::string> seen;
  ASSERT_EQ(loops.size(), 2u);
  for (const LoopRecord& l : loops) {
    seen.insert(l.loop_id);
    EXPECT_EQ(ToJson(l), ToJson(l.loop_id == "review" ? loop : other));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"fix", "review"}));
}

TEST_P(StoreConformanceTest, ListsOfAnotherRunAreEmpty) {
  PutRun(MakeRun("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto nodes, store_->ListNodes("r2"));
  STORE_ASSERT_OK_AND_ASSIGN(auto attempts, store_->ListAttempts("r2"));
  STORE_ASSERT_OK_AND_ASSIGN(auto outputs, store_->ListOutputs("r2"));
  STORE_ASSERT_OK_AND_ASSIGN(auto loops, store_->ListLoops("r2"));
  STORE_ASSERT_OK_AND_ASSIGN(auto frames, store_->ListFrames("r2"));
  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r2", -1, 100));
  STORE_ASSERT_OK_AND_ASSIGN(auto approvals, store_->ListApprovals({.run_id = "r2"}));
  STORE_ASSERT_OK_AND_ASSIGN(auto signals, store_->ListSignals("r2"));
  EXPECT_TRUE(nodes.empty() && attempts.empty() && outputs.empty() && loops.empty() &&
              frames.empty() && events.empty() && approvals.empty() && signals.empty());
}

// --- Runs listing -----------------------------------------------------------------

TEST_P(StoreConformanceTest, ListRunsIsNewestFirstFilteredAndLimited) {
  for (int i = 0; i < 5; ++i) {
    RunRecord run = MakeRun("run" + std::to_string(i), 1000 + i * 10);
    run.status = i % 2 == 0 ? RunStatus::kRunning : RunStatus::kFinished;
    PutRun(run);
  }
  auto ids = [](const std::vector<RunRecord>& runs) {
    std::vector<std::string> out;
    out.reserve(runs.size());
    for (const RunRecord& r : runs) out.push_back(r.run_id);
    return out;
  };
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> all, store_->ListRuns({}));
  EXPECT_EQ(ids(all), (std::vector<std::string>{"run4", "run3", "run2", "run1", "run0"}));
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> running,
                             store_->ListRuns({.status = RunStatus::kRunning}));
  EXPECT_EQ(ids(running), (std::vector<std::string>{"run4", "run2", "run0"}));
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> two, store_->ListRuns({.limit = 2}));
  EXPECT_EQ(ids(two), (std::vector<std::string>{"run4", "run3"}));
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> none,
                             store_->ListRuns({.status = RunStatus::kCancelled}));
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreConformanceTest, CountRunsByStatusCountsEveryRun) {
  using Counts = std::map<std::string, int64_t>;
  STORE_ASSERT_OK_AND_ASSIGN(Counts counts, store_->CountRunsByStatus());
  EXPECT_TRUE(counts.empty());
  // More runs than ListRuns' default limit: each is counted.
  for (int i = 0; i < 150; ++i) {
    RunRecord run = MakeRun("run" + std::to_string(i), 1000 + i);
    run.status = i % 3 == 0 ? RunStatus::kFinished
                            : (i % 3 == 1 ? RunStatus::kRunning : RunStatus::kWaitingApproval);
    PutRun(run);
  }
  STORE_ASSERT_OK_AND_ASSIGN(counts, store_->CountRunsByStatus());
  EXPECT_EQ(counts, (Counts{{"finished", 50}, {"running", 50}, {"waiting-approval", 50}}));
}

// --- Events and seqs ----------------------------------------------------------------

TEST_P(StoreConformanceTest, EventSeqsStartAtOneGaplessPerRunAndIndependent) {
  PutRun(MakeRun("a"));
  PutRun(MakeRun("b"));
  WriteBatch first;
  first.AppendEvent("a", "RunStarted", {{"runId", "a"}}, 1);
  first.AppendEvent("b", "RunStarted", {{"runId", "b"}}, 2);
  first.AppendEvent("a", "NodeStarted", {{"nodeId", "x"}}, 3);
  EXPECT_EQ(MustCommit(first), (std::vector<int64_t>{1, 1, 2}));

  WriteBatch second;
  second.UpsertNode({.run_id = "a", .node_id = "x", .state = NodeState::kFinished});
  second.AppendEvent("a", "NodeFinished", {{"nodeId", "x"}}, 4);
  second.AppendEvent("b", "NodeStarted", Json::object(), 5);
  EXPECT_EQ(MustCommit(second), (std::vector<int64_t>{3, 2}));

  for (int i = 0; i < 30; ++i) {
    WriteBatch batch;
    batch.AppendEvent("a", "Tick", {{"i", i}}, 10 + i);
    EXPECT_EQ(MustCommit(batch), (std::vector<int64_t>{4 + i}));
  }

  STORE_ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> a, store_->ListEvents("a", -1, 1000));
  ASSERT_EQ(a.size(), 33u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].seq, static_cast<int64_t>(i) + 1);
  EXPECT_EQ(ToJson(a[1]), ToJson(EventRecord{.run_id = "a",
                                             .seq = 2,
                                             .timestamp_ms = 3,
                                             .type = "NodeStarted",
                                             .payload = {{"nodeId", "x"}}}));
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> b, store_->ListEvents("b", -1, 1000));
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].type, "RunStarted");
  EXPECT_EQ(b[1].seq, 2);
}

TEST_P(StoreConformanceTest, ListEventsResumesAfterSeqWithLimit) {
  PutRun(MakeRun("r1"));
  WriteBatch batch;
  for (int i = 0; i < 10; ++i) batch.AppendEvent("r1", "E" + std::to_string(i), {}, i + 1);
  MustCommit(batch);

  STORE_ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> page, store_->ListEvents("r1", 3, 4));
  ASSERT_EQ(page.size(), 4u);
  EXPECT_EQ(page.front().seq, 4);
  EXPECT_EQ(page.back().seq, 7);
  EXPECT_EQ(page.front().type, "E3");
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> rest, store_->ListEvents("r1", 7, 100));
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest.back().seq, 10);
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> after_end, store_->ListEvents("r1", 10, 100));
  EXPECT_TRUE(after_end.empty());
  // A negative limit is no limit; 0 is none.
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> all, store_->ListEvents("r1", -1, -1));
  EXPECT_EQ(all.size(), 10u);
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> zero, store_->ListEvents("r1", -1, 0));
  EXPECT_TRUE(zero.empty());
}

// --- Atomicity --------------------------------------------------------------------

TEST_P(StoreConformanceTest, BatchFailingOnItsLastOpAppliesNothing) {
  PutRun(MakeRun("r1"));
  WriteBatch setup;
  setup.AppendEvent("r1", "RunStarted", {}, 1);
  MustCommit(setup);

  RunRecord changed = MakeRun("r1");
  changed.status = RunStatus::kFinished;
  WriteBatch batch;
  batch.UpsertRun(changed);
  batch.UpsertNode({.run_id = "r1", .node_id = "a", .state = NodeState::kFinished});
  batch.UpsertAttempt(
      {.run_id = "r1", .node_id = "a", .attempt = 1, .state = AttemptState::kFinished});
  batch.PutOutput({.run_id = "r1", .node_id = "a", .output_table = "t", .payload = {{"x", 1}}});
  batch.PutFrame({.run_id = "r1", .frame_no = 0, .encoding = "keyframe", .data = "{}"});
  batch.UpsertLoop({.run_id = "r1", .loop_id = "l"});
  batch.AppendEvent("r1", "NodeFinished", {}, 2);
  // The run does not exist: a foreign-key violation.
  batch.UpsertNode({.run_id = "ghost", .node_id = "a", .state = NodeState::kFinished});
  Result<std::vector<int64_t>> result = store_->Commit(batch);
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.status().code() == StatusCode::kFailedPrecondition ||
              result.status().code() == StatusCode::kInvalidArgument)
      << result.status().ToString();

  STORE_ASSERT_OK_AND_ASSIGN(RunRecord run, store_->GetRun("r1"));
  EXPECT_EQ(run.status, RunStatus::kRunning);
  STORE_ASSERT_OK_AND_ASSIGN(auto nodes, store_->ListNodes("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto attempts, store_->ListAttempts("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto outputs, store_->ListOutputs("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto frames, store_->ListFrames("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto loops, store_->ListLoops("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 100));
  STORE_ASSERT_OK_AND_ASSIGN(auto ghost_nodes, store_->ListNodes("ghost"));
  EXPECT_TRUE(nodes.empty());
  EXPECT_TRUE(attempts.empty());
  EXPECT_TRUE(outputs.empty());
  EXPECT_TRUE(frames.empty());
  EXPECT_TRUE(loops.empty());
  EXPECT_TRUE(ghost_nodes.empty());
  EXPECT_EQ(events.size(), 1u);

  // The rolled-back event did not use up a seq, and the store still works.
  WriteBatch next;
  next.AppendEvent("r1", "NodeFinished", {}, 3);
  EXPECT_EQ(MustCommit(next), (std::vector<int64_t>{2}));
}

TEST_P(StoreConformanceTest, ALaunchKeyHoldsItsFirstRunUntilItExpiresOrIsReleased) {
  const LaunchKey first{
      .scope = "token:t1", .key = "k", .run_id = "r1", .workflow = "w", .created_at_ms = 100};
  STORE_ASSERT_OK_AND_ASSIGN(LaunchKey held, store_->ClaimLaunchKey(first, 0));
  EXPECT_EQ(held.run_id, "r1");
  // A retry before the key expired gets the first run.
  LaunchKey retry = first;
  retry.run_id = "r2";
  retry.created_at_ms = 150;
  STORE_ASSERT_OK_AND_ASSIGN(held, store_->ClaimLaunchKey(retry, 50));
  EXPECT_EQ((std::pair{held.run_id, held.created_at_ms}), (std::pair{std::string("r1"), 100L}));
  // Another caller's key of the same name is its own.
  LaunchKey other = retry;
  other.scope = "token:t2";
  STORE_ASSERT_OK_AND_ASSIGN(held, store_->ClaimLaunchKey(other, 50));
  EXPECT_EQ(held.run_id, "r2");
  // Once expired, the key is taken again.
  STORE_ASSERT_OK_AND_ASSIGN(held, store_->ClaimLaunchKey(retry, 100));
  EXPECT_EQ((std::pair{held.run_id, held.created_at_ms}), (std::pair{std::string("r2"), 150L}));
  // Released only by the run that holds it.
  STORE_ASSERT_OK(store_->ReleaseLaunchKey("token:t1", "k", "r1"));
  LaunchKey third = first;
  third.run_id = "r3";
  third.created_at_ms = 160;
  STORE_ASSERT_OK_AND_ASSIGN(held, store_->ClaimLaunchKey(third, 0));
  EXPECT_EQ(held.run_id, "r2");
  STORE_ASSERT_OK(store_->ReleaseLaunchKey("token:t1", "k", "r2"));
  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(held, store_->ClaimLaunchKey(third, 0));
  EXPECT_EQ(held.run_id, "r3");
}

TEST_P(StoreConformanceTest, RowsForAMissingRunAreRefused) {
  WriteBatch event;
  event.AppendEvent("ghost", "RunStarted", {}, 1);
  EXPECT_FALSE(store_->Commit(event).ok());
  WriteBatch output;
  output.PutOutput({.run_id = "ghost", .node_id = "a", .output_table = "t", .payload = 1});
  EXPECT_FALSE(store_->Commit(output).ok());
  WriteBatch frame;
  frame.PutFrame({.run_id = "ghost", .frame_no = 0});
  EXPECT_FALSE(store_->Commit(frame).ok());
}

TEST_P(StoreConformanceTest, EmptyBatchCommitsNothing) {
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> seqs, store_->Commit(WriteBatch()));
  EXPECT_TRUE(seqs.empty());
}

// --- Ownership and cancellation --------------------------------------------------------

TEST_P(StoreConformanceTest, UpsertRunDoesNotClobberACancelRequest) {
  PutRun(MakeRun("r1"));
  STORE_ASSERT_OK(store_->RequestCancel("r1", 5000));

  // The engine rewrites the run from its in-memory copy, which predates the request.
  RunRecord stale = MakeRun("r1");
  stale.status = RunStatus::kRunning;
  stale.heartbeat_at_ms = 6000;
  PutRun(stale);

  STORE_ASSERT_OK_AND_ASSIGN(RunRecord run, store_->GetRun("r1"));
  EXPECT_EQ(run.cancel_requested_at_ms, 5000);
  EXPECT_EQ(run.heartbeat_at_ms, 6000);
}

TEST_P(StoreConformanceTest, RequestCancelKeepsTheFirstTimeAndClearCancelResets) {
  PutRun(MakeRun("r1"));
  STORE_ASSERT_OK(store_->RequestCancel("r1", 5000));
  STORE_ASSERT_OK(store_->RequestCancel("r1", 7000));
  STORE_ASSERT_OK_AND_ASSIGN(RunRecord run, store_->GetRun("r1"));
  EXPECT_EQ(run.cancel_requested_at_ms, 5000);

  STORE_ASSERT_OK(store_->ClearCancel("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(run, store_->GetRun("r1"));
  EXPECT_EQ(run.cancel_requested_at_ms, 0);
  STORE_ASSERT_OK(store_->RequestCancel("r1", 8000));
  STORE_ASSERT_OK_AND_ASSIGN(run, store_->GetRun("r1"));
  EXPECT_EQ(run.cancel_requested_at_ms, 8000);

  EXPECT_EQ(store_->RequestCancel("ghost", 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ClearCancel("ghost").code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, ClaimRunIsACompareAndSet) {
  PutRun(MakeRun("r1"));  // unowned
  STORE_ASSERT_OK(store_->ClaimRun("r1", "", "owner-a", 100));
  STORE_ASSERT_OK_AND_ASSIGN(RunRecord run, store_->GetRun("r1"));
  EXPECT_EQ(run.runtime_owner_id, "owner-a");
  EXPECT_EQ(run.heartbeat_at_ms, 100);

  // A second claimant that believes the run is unowned loses.
  Status lost = store_->ClaimRun("r1", "", "owner-b", 200);
  EXPECT_EQ(lost.code(), StatusCode::kAborted) << lost.ToString();
  Status wrong = store_->ClaimRun("r1", "owner-c", "owner-b", 200);
  EXPECT_EQ(wrong.code(), StatusCode::kAborted) << wrong.ToString();
  STORE_ASSERT_OK_AND_ASSIGN(run, store_->GetRun("r1"));
  EXPECT_EQ(run.runtime_owner_id, "owner-a");
  EXPECT_EQ(run.heartbeat_at_ms, 100);

  // Taking over from a known (stale) owner works; so does releasing.
  STORE_ASSERT_OK(store_->ClaimRun("r1", "owner-a", "owner-b", 300));
  STORE_ASSERT_OK(store_->ClaimRun("r1", "owner-b", "", 400));
  STORE_ASSERT_OK_AND_ASSIGN(run, store_->GetRun("r1"));
  EXPECT_EQ(run.runtime_owner_id, "");
  STORE_ASSERT_OK(store_->ClaimRun("r1", "", "owner-c", 500));

  EXPECT_EQ(store_->ClaimRun("ghost", "", "owner-a", 1).code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, HeartbeatOnlyForTheOwner) {
  RunRecord owned = MakeRun("r1");
  owned.runtime_owner_id = "owner-a";
  owned.heartbeat_at_ms = 10;
  PutRun(owned);

  STORE_ASSERT_OK(store_->Heartbeat("r1", "owner-a", 20));
  STORE_ASSERT_OK_AND_ASSIGN(RunRecord run, store_->GetRun("r1"));
  EXPECT_EQ(run.heartbeat_at_ms, 20);

  Status stale = store_->Heartbeat("r1", "owner-b", 30);
  EXPECT_EQ(stale.code(), StatusCode::kAborted) << stale.ToString();
  STORE_ASSERT_OK_AND_ASSIGN(run, store_->GetRun("r1"));
  EXPECT_EQ(run.heartbeat_at_ms, 20);
  EXPECT_EQ(store_->Heartbeat("ghost", "owner-a", 1).code(), StatusCode::kNotFound);
}

// --- Persistence ------------------------------------------------------------------

TEST_P(StoreConformanceTest, EverythingSurvivesReopen) {
  RunRecord run = MakeRun("r1");
  WriteBatch batch;
  batch.UpsertRun(run);
  batch.UpsertNode(
      {.run_id = "r1", .node_id = "a", .state = NodeState::kFinished, .last_attempt = 1});
  batch.UpsertAttempt(
      {.run_id = "r1", .node_id = "a", .attempt = 1, .state = AttemptState::kFinished});
  batch.PutOutput({.run_id = "r1", .node_id = "a", .output_table = "t", .payload = {{"x", 1}}});
  batch.PutFrame({.run_id = "r1", .frame_no = 0, .encoding = "keyframe", .data = "{}"});
  batch.UpsertLoop({.run_id = "r1", .loop_id = "l", .iteration = 1});
  batch.AppendEvent("r1", "RunStarted", {{"k", "v"}}, 5);
  MustCommit(batch);
  STORE_ASSERT_OK(store_->RequestCancel("r1", 99));

  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(RunRecord got, store_->GetRun("r1"));
  run.cancel_requested_at_ms = 99;
  EXPECT_EQ(ToJson(got), ToJson(run));
  STORE_ASSERT_OK_AND_ASSIGN(auto nodes, store_->ListNodes("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto attempts, store_->ListAttempts("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto outputs, store_->ListOutputs("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto frames, store_->ListFrames("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto loops, store_->ListLoops("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 100));
  EXPECT_EQ(nodes.size(), 1u);
  EXPECT_EQ(attempts.size(), 1u);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].payload, (Json{{"x", 1}}));
  EXPECT_EQ(frames.size(), 1u);
  EXPECT_EQ(loops.size(), 1u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].payload, (Json{{"k", "v"}}));

  // Seqs continue after a reopen.
  WriteBatch more;
  more.AppendEvent("r1", "RunFinished", {}, 6);
  EXPECT_EQ(MustCommit(more), (std::vector<int64_t>{2}));
}

// --- Output views --------------------------------------------------------------------

TEST_P(StoreConformanceTest, OutputViewNamesAreValidated) {
  const Json schema = {{"type", "object"}, {"properties", {{"message", {{"type", "string"}}}}}};
  for (const char* bad : {"", "1abc", "has space", "semi;colon", "quote\"d", "dash-ed",
                          "_smithers_runs", "_SMITHERS_x", "sqlite_master", "naïve"}) {
    Status status = store_->EnsureOutputViews({{bad, schema}});
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << "name: " << bad;
  }
  // One bad name refuses the whole call.
  Status mixed = store_->EnsureOutputViews({{"good", schema}, {"bad name", schema}});
  EXPECT_EQ(mixed.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mixed.message().find("bad name"), std::string::npos) << mixed.message();
}

TEST_P(StoreConformanceTest, EnsureOutputViewsIsRepeatable) {
  const Json schema = {
      {"type", "object"},
      {"properties", {{"message", {{"type", "string"}}}, {"n", {{"type", "integer"}}}}}};
  STORE_ASSERT_OK(store_->EnsureOutputViews({{"greeting", schema}, {"_private", schema}}));
  STORE_ASSERT_OK(store_->EnsureOutputViews({{"greeting", schema}}));
  STORE_ASSERT_OK(store_->EnsureOutputViews({}));
  Reopen();
  STORE_ASSERT_OK(store_->EnsureOutputViews({{"greeting", {{"type", "object"}}}}));
  // Writes still work after the schema changed under the cached statements.
  PutRun(MakeRun("r1"));
  WriteBatch batch;
  batch.PutOutput({.run_id = "r1", .node_id = "a", .output_table = "greeting", .payload = {}});
  MustCommit(batch);
}

// ---- approvals and signals (durable waits) ----

ApprovalRecord Request(const std::string& run, const std::string& node, int64_t at = 100) {
  return ApprovalRecord{.run_id = run,
                        .node_id = node,
                        .status = ApprovalStatus::kRequested,
                        .requested_at_ms = at,
                        .owner = "alice",
                        .original_owner = "alice",
                        .fallback_owner = "bob",
                        .escalate_after_ms = 50,
                        .request = {{"title", "Ship?"}}};
}

TEST_P(StoreConformanceTest, ApprovalRequestDecisionAndEvent) {
  PutRun(MakeRun("r1"));
  WriteBatch batch;
  batch.RequestApproval(Request("r1", "gate"));
  batch.AppendEvent("r1", "ApprovalRequested", {}, 100);
  EXPECT_EQ(MustCommit(batch), std::vector<int64_t>{1});

  STORE_ASSERT_OK_AND_ASSIGN(ApprovalRecord d, store_->DecideApproval({.run_id = "r1",
                                                                       .node_id = "gate",
                                                                       .approved = true,
                                                                       .decided_by = "carol",
                                                                       .note = "fine"},
                                                                      200));
  EXPECT_EQ((std::vector<std::string>{std::string(Name(d.status)), d.decided_by, d.note}),
            (std::vector<std::string>{"approved", "carol", "fine"}));
  EXPECT_EQ(d.decided_at_ms, 200);
  EXPECT_EQ(d.request, (Json{{"title", "Ship?"}}));
  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 10));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].seq, 2);
  EXPECT_EQ(events[1].type, "ApprovalGranted");
  EXPECT_EQ(events[1].payload["decidedBy"], "carol");

  // A second decision is refused naming the first; nothing changes.
  Result<ApprovalRecord> again = store_->DecideApproval(
      {.run_id = "r1", .node_id = "gate", .approved = false, .decided_by = "mallory"}, 300);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("already approved by carol"), std::string::npos)
      << again.status().message();
  // A repeated request never overwrites the decision.
  WriteBatch repeat;
  repeat.RequestApproval(Request("r1", "gate", 400));
  MustCommit(repeat);
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListApprovals({.run_id = "r1"}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, ApprovalStatus::kApproved);
  EXPECT_EQ(rows[0].requested_at_ms, 100);
  EXPECT_EQ(store_->ListEvents("r1", -1, 10)->size(), 2u);

  EXPECT_EQ(store_->DecideApproval({.run_id = "r1", .node_id = "nope", .decided_by = "x"}, 1)
                .status()
                .code(),
            StatusCode::kNotFound);
}

// A review of a later attempt renews a decided request; a pending one stays.
TEST_P(StoreConformanceTest, RenewApprovalReplacesADecisionOnly) {
  PutRun(MakeRun("r1"));
  WriteBatch first;
  first.RequestApproval(Request("r1", "fix"));
  MustCommit(first);
  ApprovalRecord renewed = Request("r1", "fix", 300);
  renewed.request = {{"attempt", 3}};
  WriteBatch pending;
  pending.RenewApproval(renewed);
  MustCommit(pending);
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListApprovals({.run_id = "r1"}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].request, (Json{{"title", "Ship?"}})) << "a pending request is kept";
  Result<ApprovalRecord> decided = store_->DecideApproval(
      {.run_id = "r1", .node_id = "fix", .approved = true, .decided_by = "al"}, 200);
  STORE_ASSERT_OK(decided.status());
  WriteBatch again;
  again.RenewApproval(renewed);
  MustCommit(again);
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListApprovals({.run_id = "r1"}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, ApprovalStatus::kRequested);
  EXPECT_EQ(rows[0].request, (Json{{"attempt", 3}}));
  EXPECT_EQ(rows[0].requested_at_ms, 300);
  EXPECT_EQ(rows[0].decided_by, "");
  EXPECT_EQ(rows[0].decided_at_ms, 0);
}

TEST_P(StoreConformanceTest, ApprovalDecisionRecordsHowItWasMadeAndHonoursAuthorize) {
  PutRun(MakeRun("r1"));
  WriteBatch batch;
  batch.RequestApproval(Request("r1", "gate"));
  batch.RequestApproval(Request("r1", "other"));
  MustCommit(batch);

  // authorize sees the requested row; its refusal changes nothing.
  std::string seen_owner;
  Result<ApprovalRecord> refused =
      store_->DecideApproval({.run_id = "r1",
                              .node_id = "gate",
                              .approved = true,
                              .decided_by = "mallory",
                              .authorize =
                                  [&](const ApprovalRecord& a) {
                                    seen_owner = a.owner;
                                    return PermissionDeniedError("mallory may not decide");
                                  }},
                             200);
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(seen_owner, "alice");
  STORE_ASSERT_OK_AND_ASSIGN(auto rows,
                             store_->ListApprovals({.status = ApprovalStatus::kRequested}));
  EXPECT_EQ(rows.size(), 2u);
  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 10));
  EXPECT_TRUE(events.empty());

  STORE_ASSERT_OK_AND_ASSIGN(
      ApprovalRecord d,
      store_->DecideApproval({.run_id = "r1",
                              .node_id = "gate",
                              .approved = false,
                              .decided_by = "alice",
                              .via = "cli",
                              .os_user = "root",
                              .override = true,
                              .authorize = [](const ApprovalRecord&) { return Status::Ok(); }},
                             300));
  EXPECT_EQ(
      (std::vector<std::string>{std::string(Name(d.status)), d.decided_via, d.decided_os_user}),
      (std::vector<std::string>{"denied", "cli", "root"}));
  EXPECT_TRUE(d.decided_override);
  STORE_ASSERT_OK(store_->DecideApproval(
      {.run_id = "r1", .node_id = "other", .approved = true, .decided_by = "bob", .via = "jwt"},
      400));
  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListApprovals({.run_id = "r1"}));
  ASSERT_EQ(rows.size(), 2u);
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return x.node_id < y.node_id; });
  EXPECT_EQ(ToJson(rows[0]), ToJson(d));
  EXPECT_EQ(
      (std::vector<std::string>{rows[1].decided_by, rows[1].decided_via, rows[1].decided_os_user}),
      (std::vector<std::string>{"bob", "jwt", ""}));
  EXPECT_FALSE(rows[1].decided_override);
  STORE_ASSERT_OK_AND_ASSIGN(events, store_->ListEvents("r1", -1, 10));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, "ApprovalDenied");
  EXPECT_EQ(events[0].payload["override"], true);
  EXPECT_EQ(events[0].payload["osUser"], "root");
  EXPECT_EQ(events[0].payload["via"], "cli");
  EXPECT_EQ(events[1].payload["override"], false);
  EXPECT_FALSE(events[1].payload.contains("osUser"));
}

TEST_P(StoreConformanceTest, ApprovalsEscalateOnceWhenDue) {
  PutRun(MakeRun("r1"));
  PutRun(MakeRun("r2"));
  ApprovalRecord no_fallback = Request("r1", "solo");
  no_fallback.fallback_owner = "";
  ApprovalRecord never = Request("r2", "never");
  never.escalate_after_ms = 0;
  WriteBatch batch;
  batch.RequestApproval(Request("r1", "gate"));
  batch.RequestApproval(no_fallback);
  batch.RequestApproval(never);
  batch.RequestApproval(Request("r2", "other", 120));
  MustCommit(batch);

  STORE_ASSERT_OK_AND_ASSIGN(auto none, store_->EscalateDueApprovals("", 149));
  EXPECT_TRUE(none.empty());
  STORE_ASSERT_OK_AND_ASSIGN(auto r1_only, store_->EscalateDueApprovals("r1", 1000));
  ASSERT_EQ(r1_only.size(), 1u);
  EXPECT_EQ(r1_only[0].node_id, "gate");
  EXPECT_EQ(r1_only[0].owner, "bob");
  EXPECT_EQ(r1_only[0].escalated_at_ms, 1000);
  STORE_ASSERT_OK_AND_ASSIGN(auto rest, store_->EscalateDueApprovals("", 1000));
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].node_id, "other");
  STORE_ASSERT_OK_AND_ASSIGN(auto again, store_->EscalateDueApprovals("", 5000));
  EXPECT_TRUE(again.empty()) << "an approval escalates once";

  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 10));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "ApprovalEscalated");
  EXPECT_EQ(events[0].payload["from"], "alice");
  EXPECT_EQ(events[0].payload["to"], "bob");
  STORE_ASSERT_OK_AND_ASSIGN(auto pending,
                             store_->ListApprovals({.status = ApprovalStatus::kRequested}));
  EXPECT_EQ(pending.size(), 4u);
  std::map<std::string, std::string> owners;
  for (const auto& a : pending) owners[a.node_id] = a.owner;
  EXPECT_EQ(owners, (std::map<std::string, std::string>{
                        {"gate", "bob"}, {"solo", "alice"}, {"never", "alice"}, {"other", "bob"}}));
}

TEST_P(StoreConformanceTest, SignalsGetPerRunSeqsAndAreConsumedOnce) {
  PutRun(MakeRun("r1"));
  PutRun(MakeRun("r2"));
  for (int i = 0; i < 3; ++i) {
    STORE_ASSERT_OK_AND_ASSIGN(SignalRecord s, store_->AppendSignal({.run_id = "r1",
                                                                     .name = "go",
                                                                     .payload = {{"i", i}},
                                                                     .received_at_ms = 10,
                                                                     .received_by = "ci"}));
    EXPECT_EQ(s.seq, i);
    EXPECT_EQ(s.status, SignalStatus::kPending);
  }
  STORE_ASSERT_OK_AND_ASSIGN(SignalRecord other,
                             store_->AppendSignal({.run_id = "r2", .name = "go"}));
  EXPECT_EQ(other.seq, 0);
  EXPECT_EQ(store_->AppendSignal({.run_id = "nope", .name = "go"}).status().code(),
            StatusCode::kNotFound);
  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 10));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].type, "SignalReceived");
  EXPECT_EQ(events[2].payload["signalSeq"], 2);

  STORE_ASSERT_OK_AND_ASSIGN(auto signals, store_->ListSignals("r1"));
  SignalRecord s0 = signals[0];
  s0.status = SignalStatus::kConsumed;
  s0.consumed_by_node = "w";
  s0.consumed_iteration = 2;
  s0.consumed_at_ms = 20;
  SignalRecord s1 = signals[1];
  s1.status = SignalStatus::kRejected;
  s1.consumed_by_node = "w";
  s1.rejection = Json::array({{{"path", "$.i"}, {"message", "bad"}}});
  WriteBatch consume;
  consume.ConsumeSignal(s0);
  consume.ConsumeSignal(s1);
  MustCommit(consume);

  // Consuming a consumed signal fails the whole commit: nothing of it lands.
  WriteBatch twice;
  twice.PutOutput({.run_id = "r1", .node_id = "w2", .output_table = "t", .payload = {}});
  twice.AppendEvent("r1", "SignalConsumed", {}, 30);
  twice.ConsumeSignal(s0);
  Result<std::vector<int64_t>> failed = store_->Commit(twice);
  EXPECT_EQ(failed.status().code(), StatusCode::kAborted) << failed.status().ToString();
  STORE_ASSERT_OK_AND_ASSIGN(auto outputs, store_->ListOutputs("r1"));
  EXPECT_TRUE(outputs.empty());
  EXPECT_EQ(store_->ListEvents("r1", -1, 10)->size(), 3u);

  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(signals, store_->ListSignals("r1"));
  ASSERT_EQ(signals.size(), 3u);
  EXPECT_EQ(signals[0].status, SignalStatus::kConsumed);
  EXPECT_EQ(signals[0].consumed_by_node, "w");
  EXPECT_EQ(signals[0].consumed_iteration, 2);
  EXPECT_EQ(signals[0].consumed_at_ms, 20);
  EXPECT_EQ(signals[0].payload, (Json{{"i", 0}}));
  EXPECT_EQ(signals[0].received_by, "ci");
  EXPECT_EQ(signals[1].status, SignalStatus::kRejected);
  EXPECT_EQ(signals[1].rejection[0]["path"], "$.i");
  EXPECT_EQ(signals[2].status, SignalStatus::kPending);
}

TEST_P(StoreConformanceTest, ApprovalRowsRoundTripEveryColumn) {
  PutRun(MakeRun("r1"));
  ApprovalRecord full{.run_id = "r1",
                      .node_id = "deploy",
                      .iteration = 3,
                      .status = ApprovalStatus::kRequested,
                      .requested_at_ms = 1234,
                      .owner = "ops",
                      .original_owner = "ops",
                      .fallback_owner = "cto",
                      .escalate_after_ms = 3600000,
                      .request = {{"title", "Deploy?"}, {"summary", "v2"}, {"links", {"a", "b"}}},
                      .on_deny = "skip",
                      .allowed_users = {"carol", "dave"},
                      .allowed_scopes = {"run:admin"}};
  // Every optional column empty: zero times, no owners, no request.
  ApprovalRecord bare{.run_id = "r1", .node_id = "bare", .status = ApprovalStatus::kRequested};
  WriteBatch batch;
  batch.RequestApproval(full);
  batch.RequestApproval(bare);
  MustCommit(batch);
  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListApprovals({}));
  // Sorted here: where a missing (NULL) requested_at_ms sorts is the database's choice.
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return x.node_id < y.node_id; });
  EXPECT_EQ(ToJson(rows), ToJson(std::vector<ApprovalRecord>{bare, full}));
}

TEST_P(StoreConformanceTest, ListApprovalsFiltersByRunAndStatusInRequestOrder) {
  PutRun(MakeRun("r1"));
  PutRun(MakeRun("r2"));
  WriteBatch batch;
  batch.RequestApproval(Request("r2", "b", 100));
  batch.RequestApproval(Request("r1", "z", 100));
  batch.RequestApproval(Request("r1", "a", 300));
  ApprovalRecord later_iteration = Request("r1", "z", 100);
  later_iteration.iteration = 1;
  batch.RequestApproval(later_iteration);
  batch.RequestApproval(Request("r2", "a", 50));
  MustCommit(batch);
  STORE_ASSERT_OK(
      store_->DecideApproval({.run_id = "r1", .node_id = "a", .decided_by = "eve"}, 400));

  auto keys = [](const std::vector<ApprovalRecord>& rows) {
    std::vector<std::string> out;
    for (const auto& a : rows)
      out.push_back(a.run_id + "/" + a.node_id + "@" + std::to_string(a.iteration));
    return out;
  };
  STORE_ASSERT_OK_AND_ASSIGN(auto all, store_->ListApprovals({}));
  EXPECT_EQ(keys(all),
            (std::vector<std::string>{"r2/a@0", "r1/z@0", "r1/z@1", "r2/b@0", "r1/a@0"}));
  STORE_ASSERT_OK_AND_ASSIGN(auto r1, store_->ListApprovals({.run_id = "r1"}));
  EXPECT_EQ(keys(r1), (std::vector<std::string>{"r1/z@0", "r1/z@1", "r1/a@0"}));
  STORE_ASSERT_OK_AND_ASSIGN(auto pending,
                             store_->ListApprovals({.status = ApprovalStatus::kRequested}));
  EXPECT_EQ(keys(pending), (std::vector<std::string>{"r2/a@0", "r1/z@0", "r1/z@1", "r2/b@0"}));
  STORE_ASSERT_OK_AND_ASSIGN(
      auto r1_pending,
      store_->ListApprovals({.run_id = "r1", .status = ApprovalStatus::kRequested}));
  EXPECT_EQ(keys(r1_pending), (std::vector<std::string>{"r1/z@0", "r1/z@1"}));
  STORE_ASSERT_OK_AND_ASSIGN(auto denied,
                             store_->ListApprovals({.status = ApprovalStatus::kDenied}));
  EXPECT_EQ(keys(denied), (std::vector<std::string>{"r1/a@0"}));
  STORE_ASSERT_OK_AND_ASSIGN(
      auto none, store_->ListApprovals({.run_id = "r1", .status = ApprovalStatus::kApproved}));
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreConformanceTest, DenialAppendsApprovalDeniedAndIsFinal) {
  PutRun(MakeRun("r1"));
  WriteBatch batch;
  batch.AppendEvent("r1", "RunStarted", {}, 1);
  batch.AppendEvent("r1", "NodeStarted", {}, 2);
  ApprovalRecord second = Request("r1", "gate");
  second.iteration = 1;
  batch.RequestApproval(second);
  MustCommit(batch);

  // Only iteration 1 was requested: the decision names the iteration it missed.
  Result<ApprovalRecord> missing =
      store_->DecideApproval({.run_id = "r1", .node_id = "gate", .decided_by = "dave"}, 250);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("no approval request for node \"gate\" (iteration 0) "
                                            "of run r1"),
            std::string::npos)
      << missing.status().ToString();
  EXPECT_EQ(store_->DecideApproval({.run_id = "r2", .node_id = "gate", .iteration = 1}, 250)
                .status()
                .code(),
            StatusCode::kNotFound);

  STORE_ASSERT_OK_AND_ASSIGN(ApprovalRecord denied, store_->DecideApproval({.run_id = "r1",
                                                                            .node_id = "gate",
                                                                            .iteration = 1,
                                                                            .approved = false,
                                                                            .decided_by = "dave",
                                                                            .note = "not today"},
                                                                           250));
  EXPECT_EQ(denied.status, ApprovalStatus::kDenied);
  EXPECT_EQ(denied.decided_at_ms, 250);
  EXPECT_EQ(denied.owner, "alice");
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListApprovals({.run_id = "r1"}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(ToJson(rows[0]), ToJson(denied));

  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 10));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].seq, 3);
  EXPECT_EQ(events[2].type, "ApprovalDenied");
  EXPECT_EQ(events[2].timestamp_ms, 250);
  EXPECT_EQ(events[2].payload, (Json{{"nodeId", "gate"},
                                     {"iteration", 1},
                                     {"decidedBy", "dave"},
                                     {"note", "not today"},
                                     {"via", ""},
                                     {"override", false}}));

  // Approving after a denial is refused, naming who denied and when.
  Result<ApprovalRecord> again = store_->DecideApproval(
      {.run_id = "r1", .node_id = "gate", .iteration = 1, .approved = true, .decided_by = "eve"},
      300);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find(
                "node \"gate\" (iteration 1) of run r1 was already denied by dave at "
                "1970-01-01T00:00:00.250Z"),
            std::string::npos)
      << again.status().ToString();
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListApprovals({.run_id = "r1"}));
  EXPECT_EQ(ToJson(rows[0]), ToJson(denied));
  EXPECT_EQ(store_->ListEvents("r1", -1, 10)->size(), 3u);
}

TEST_P(StoreConformanceTest, EscalationSkipsDecidedRowsAndKeepsTheOriginalOwner) {
  PutRun(MakeRun("r1"));
  WriteBatch batch;
  batch.RequestApproval(Request("r1", "decided"));
  batch.RequestApproval(Request("r1", "open"));
  batch.AppendEvent("r1", "RunStarted", {}, 1);
  MustCommit(batch);
  STORE_ASSERT_OK(store_->DecideApproval(
      {.run_id = "r1", .node_id = "decided", .approved = true, .decided_by = "alice"}, 120));

  // Due exactly at requested_at_ms + escalate_after_ms, not a millisecond before.
  STORE_ASSERT_OK_AND_ASSIGN(auto early, store_->EscalateDueApprovals("r1", 149));
  EXPECT_TRUE(early.empty());
  STORE_ASSERT_OK_AND_ASSIGN(auto due, store_->EscalateDueApprovals("r1", 150));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].node_id, "open");
  EXPECT_EQ(due[0].owner, "bob");
  EXPECT_EQ(due[0].original_owner, "alice");
  EXPECT_EQ(due[0].escalated_at_ms, 150);
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListApprovals({.run_id = "r1"}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(ToJson(rows[1]), ToJson(due[0]));
  EXPECT_EQ(rows[0].owner, "alice") << "a decided approval never escalates";
  EXPECT_EQ(rows[0].escalated_at_ms, 0);

  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 10));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].seq, 3);
  EXPECT_EQ(events[2].type, "ApprovalEscalated");
  EXPECT_EQ(events[2].timestamp_ms, 150);
  EXPECT_EQ(events[2].payload,
            (Json{{"nodeId", "open"}, {"iteration", 0}, {"from", "alice"}, {"to", "bob"}}));

  // The fallback owner can then decide it.
  STORE_ASSERT_OK_AND_ASSIGN(
      ApprovalRecord decided,
      store_->DecideApproval(
          {.run_id = "r1", .node_id = "open", .approved = true, .decided_by = "bob"}, 200));
  EXPECT_EQ(decided.status, ApprovalStatus::kApproved);
  EXPECT_EQ(decided.escalated_at_ms, 150);
  STORE_ASSERT_OK_AND_ASSIGN(auto after, store_->EscalateDueApprovals("", 100000));
  EXPECT_TRUE(after.empty());
}

TEST_P(StoreConformanceTest, AppendSignalStoresAPendingRowAndItsEvent) {
  PutRun(MakeRun("r1"));
  WriteBatch batch;
  batch.AppendEvent("r1", "RunStarted", {}, 1);
  MustCommit(batch);
  // What the caller says about consumption is ignored: a new signal is pending.
  SignalRecord in{.run_id = "r1",
                  .seq = 42,
                  .name = "review",
                  .correlation_id = "pr-7",
                  .payload = {{"verdict", "ok"}, {"n", 1.5}},
                  .received_at_ms = 77,
                  .received_by = "cli",
                  .status = SignalStatus::kConsumed,
                  .consumed_by_node = "x",
                  .consumed_iteration = 4,
                  .consumed_at_ms = 9,
                  .rejection = {{"stale", true}}};
  STORE_ASSERT_OK_AND_ASSIGN(SignalRecord stored, store_->AppendSignal(in));
  SignalRecord want{.run_id = "r1",
                    .seq = 0,
                    .name = "review",
                    .correlation_id = "pr-7",
                    .payload = {{"verdict", "ok"}, {"n", 1.5}},
                    .received_at_ms = 77,
                    .received_by = "cli"};
  EXPECT_EQ(ToJson(stored), ToJson(want));
  STORE_ASSERT_OK_AND_ASSIGN(SignalRecord bare,
                             store_->AppendSignal({.run_id = "r1", .name = "go"}));
  EXPECT_EQ(bare.seq, 1);
  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(auto signals, store_->ListSignals("r1"));
  EXPECT_EQ(ToJson(signals), ToJson(std::vector<SignalRecord>{want, bare}));

  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 10));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].seq, 2);
  EXPECT_EQ(events[1].type, "SignalReceived");
  EXPECT_EQ(events[1].timestamp_ms, 77);
  EXPECT_EQ(
      events[1].payload,
      (Json{
          {"name", "review"}, {"correlationId", "pr-7"}, {"signalSeq", 0}, {"receivedBy", "cli"}}));
  EXPECT_EQ(
      events[2].payload,
      (Json{{"name", "go"}, {"correlationId", nullptr}, {"signalSeq", 1}, {"receivedBy", ""}}));

  Result<SignalRecord> missing = store_->AppendSignal({.run_id = "ghost", .name = "go"});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("ghost"), std::string::npos);
}

TEST_P(StoreConformanceTest, ConsumingAConsumedOrMissingSignalAbortsTheWholeCommit) {
  PutRun(MakeRun("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(SignalRecord sig,
                             store_->AppendSignal({.run_id = "r1", .name = "go"}));
  sig.status = SignalStatus::kConsumed;
  sig.consumed_by_node = "wait";
  sig.consumed_iteration = 2;
  sig.consumed_at_ms = 5;
  WriteBatch first;
  first.ConsumeSignal(sig);
  first.AppendEvent("r1", "SignalConsumed", {}, 5);
  EXPECT_EQ(MustCommit(first), std::vector<int64_t>{2});

  // A second consumer, whose batch also finishes its node: none of it lands.
  SignalRecord rival = sig;
  rival.consumed_by_node = "other";
  WriteBatch second;
  second.UpsertNode({.run_id = "r1", .node_id = "other", .state = NodeState::kFinished});
  second.PutOutput({.run_id = "r1", .node_id = "other", .output_table = "t", .payload = {}});
  second.ConsumeSignal(rival);
  second.AppendEvent("r1", "NodeFinished", {}, 6);
  Result<std::vector<int64_t>> refused = store_->Commit(second);
  EXPECT_EQ(refused.status().code(), StatusCode::kAborted) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find(
                "signal 0 of run r1 was already consumed by node \"wait\" (iteration 2)"),
            std::string::npos)
      << refused.status().ToString();
  STORE_ASSERT_OK_AND_ASSIGN(auto nodes, store_->ListNodes("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto outputs, store_->ListOutputs("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents("r1", -1, 10));
  EXPECT_TRUE(nodes.empty());
  EXPECT_TRUE(outputs.empty());
  EXPECT_EQ(events.size(), 2u);
  STORE_ASSERT_OK_AND_ASSIGN(auto signals, store_->ListSignals("r1"));
  ASSERT_EQ(signals.size(), 1u);
  EXPECT_EQ(ToJson(signals[0]), ToJson(sig));

  // A signal that was never stored (or belongs to another run).
  SignalRecord ghost = sig;
  ghost.seq = 7;
  WriteBatch third;
  third.PutOutput({.run_id = "r1", .node_id = "x", .output_table = "t", .payload = {}});
  third.ConsumeSignal(ghost);
  refused = store_->Commit(third);
  EXPECT_EQ(refused.status().code(), StatusCode::kAborted) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("no signal 7 of run r1"), std::string::npos)
      << refused.status().ToString();
  STORE_ASSERT_OK_AND_ASSIGN(outputs, store_->ListOutputs("r1"));
  EXPECT_TRUE(outputs.empty());
}

TEST_P(StoreConformanceTest, ListRunsWaitingMatchesEveryWaitingStatus) {
  const RunStatus statuses[] = {RunStatus::kRunning, RunStatus::kWaitingApproval,
                                RunStatus::kWaitingEvent, RunStatus::kWaitingTimer,
                                RunStatus::kFinished};
  int i = 0;
  for (RunStatus st : statuses) {
    RunRecord r = MakeRun("r" + std::to_string(i), 1000 + i);
    r.status = st;
    PutRun(r);
    ++i;
  }
  STORE_ASSERT_OK_AND_ASSIGN(auto waiting, store_->ListRuns({.waiting = true}));
  std::vector<std::string> ids;
  for (const auto& r : waiting) ids.push_back(r.run_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"r3", "r2", "r1"}));
  STORE_ASSERT_OK_AND_ASSIGN(auto newest, store_->ListRuns({.waiting = true, .limit = 2}));
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[1].run_id, "r2");
  // A concrete waiting status still matches only itself.
  STORE_ASSERT_OK_AND_ASSIGN(auto timers, store_->ListRuns({.status = RunStatus::kWaitingTimer}));
  ASSERT_EQ(timers.size(), 1u);
  EXPECT_EQ(timers[0].run_id, "r3");
}

// --- Gateway tokens and cron ------------------------------------------------------

TEST_P(StoreConformanceTest, TokenGrantsRoundTripAndAreFoundByHashOnly) {
  TokenGrant g{.token_id = "0123456789abcdef",
               .token_hash = std::string(64, 'a'),
               .scopes = {"run:read", "approval:submit"},
               .role = "operator",
               .user_id = "alice",
               .label = "ci",
               .issued_at_ms = 1000,
               .expires_at_ms = 5000};
  STORE_ASSERT_OK(store_->PutToken(g));
  STORE_ASSERT_OK_AND_ASSIGN(std::optional<TokenGrant> got, store_->FindToken(g.token_hash));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->token_id, g.token_id);
  EXPECT_EQ(got->scopes, g.scopes);
  EXPECT_EQ(got->user_id, "alice");
  EXPECT_EQ(got->label, "ci");
  EXPECT_EQ(got->expires_at_ms, 5000);
  EXPECT_EQ(got->revoked_at_ms, 0);
  STORE_ASSERT_OK_AND_ASSIGN(got, store_->FindToken(std::string(64, 'b')));
  EXPECT_FALSE(got.has_value());
  // A second grant with the same id or hash is refused.
  EXPECT_EQ(store_->PutToken(g).code(), StatusCode::kAlreadyExists);
  TokenGrant same_hash = g;
  same_hash.token_id = "fedcba9876543210";
  EXPECT_EQ(store_->PutToken(same_hash).code(), StatusCode::kAlreadyExists);
}

TEST_P(StoreConformanceTest, RevokeKeepsTheEarliestRevocationAndRecordsTheReplacement) {
  TokenGrant g{.token_id = "t1", .token_hash = "h1", .scopes = {"*"}, .issued_at_ms = 10};
  TokenGrant h{.token_id = "t2", .token_hash = "h2", .scopes = {}, .issued_at_ms = 20};
  STORE_ASSERT_OK(store_->PutToken(g));
  STORE_ASSERT_OK(store_->PutToken(h));
  STORE_ASSERT_OK(store_->RevokeToken("t1", 9000, "t2"));  // rotation: revoked in the future
  STORE_ASSERT_OK(store_->RevokeToken("t1", 500, ""));     // then revoked at once
  STORE_ASSERT_OK(store_->RevokeToken("t1", 7000, ""));    // a later date does not undo it
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<TokenGrant> all, store_->ListTokens());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].token_id, "t1");
  EXPECT_EQ(all[0].revoked_at_ms, 500);
  EXPECT_EQ(all[0].replaced_by, "t2");
  EXPECT_EQ(all[1].scopes, std::vector<std::string>{});
  EXPECT_EQ(store_->RevokeToken("nope", 1, "").code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, CronRowsRoundTripAndAFireIsClaimedOnce) {
  CronRecord c{.cron_id = "gateway:deploy",
               .workflow = "deploy",
               .pattern = "*/5 * * * *",
               .time_zone = "Europe/Berlin",
               .input = {{"env", "prod"}},
               .created_at_ms = 100,
               .next_run_at_ms = 300000};
  STORE_ASSERT_OK(store_->PutCron(c));
  STORE_ASSERT_OK(store_->PutCron(CronRecord{.cron_id = "a",
                                             .workflow = "w",
                                             .pattern = "0 * * * *",
                                             .enabled = false,
                                             .created_at_ms = 1}));
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<CronRecord> rows, store_->ListCron());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].cron_id, "a");
  EXPECT_FALSE(rows[0].enabled);
  EXPECT_EQ(rows[0].next_run_at_ms, 0);
  EXPECT_EQ(rows[1].time_zone, "Europe/Berlin");
  EXPECT_EQ(rows[1].input, Json({{"env", "prod"}}));
  // Two claimants of the slot at 300000: the second finds it taken.
  STORE_ASSERT_OK(store_->ClaimCronFire("gateway:deploy", 300000, 300010, 600000, "run-1"));
  EXPECT_EQ(store_->ClaimCronFire("gateway:deploy", 300000, 300020, 600000, "run-2").code(),
            StatusCode::kAborted);
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListCron());
  EXPECT_EQ(rows[1].last_run_at_ms, 300010);
  EXPECT_EQ(rows[1].next_run_at_ms, 600000);
  EXPECT_EQ(rows[1].last_run_id, "run-1");
  STORE_ASSERT_OK(store_->DeleteCron("a"));
  EXPECT_EQ(store_->DeleteCron("a").code(), StatusCode::kNotFound);
  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListCron());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].last_run_id, "run-1");
}

TEST_P(StoreConformanceTest, ChangeStampMovesWithEveryCommitAndOnlyThen) {
  STORE_ASSERT_OK_AND_ASSIGN(std::string a, store_->ChangeStamp());
  STORE_ASSERT_OK_AND_ASSIGN(std::string b, store_->ChangeStamp());
  EXPECT_EQ(a, b);
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<CronRecord> rows, store_->ListCron());  // a read
  STORE_ASSERT_OK_AND_ASSIGN(b, store_->ChangeStamp());
  EXPECT_EQ(a, b);
  STORE_ASSERT_OK(store_->PutCron({.cron_id = "c", .workflow = "w", .pattern = "* * * * *"}));
  STORE_ASSERT_OK_AND_ASSIGN(b, store_->ChangeStamp());
  EXPECT_NE(a, b);
}

TEST_P(StoreConformanceTest, ModuleSourcesAreKeptByRevisionAndNeverReplaced) {
  std::string source = "return smithers(function(ctx) return nil end)\n-- \xff bytes kept\n";
  ModuleSource m{.revision = "rev1", .path = "/w/deploy.lua", .source = source, .created_at_ms = 7};
  STORE_ASSERT_OK(store_->PutModuleSource(m));
  // A second put of the same revision keeps the first row.
  STORE_ASSERT_OK(store_->PutModuleSource(
      {.revision = "rev1", .path = "/elsewhere.lua", .source = "x", .created_at_ms = 9}));
  STORE_ASSERT_OK_AND_ASSIGN(std::optional<ModuleSource> got, store_->GetModuleSource("rev1"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->path, "/w/deploy.lua");
  EXPECT_EQ(got->source, source);
  EXPECT_EQ(got->created_at_ms, 7);
  STORE_ASSERT_OK_AND_ASSIGN(got, store_->GetModuleSource("rev2"));
  EXPECT_FALSE(got.has_value());
  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(got, store_->GetModuleSource("rev1"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->source, source);
  EXPECT_TRUE(got->siblings.empty());

  // The siblings a revision required come back with it, bytes as stored.
  std::map<std::string, std::string> siblings = {{"lib", "return 1 -- \xfe"},
                                                 {"util.text", "return {}"}};
  STORE_ASSERT_OK(store_->PutModuleSource(
      {.revision = "rev3", .path = "/w/a.lua", .source = "s", .siblings = siblings}));
  STORE_ASSERT_OK(store_->PutModuleSource(
      {.revision = "rev3", .path = "/w/a.lua", .source = "s", .siblings = {{"lib", "changed"}}}));
  STORE_ASSERT_OK_AND_ASSIGN(got, store_->GetModuleSource("rev3"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->siblings, siblings);
}

// --- Deleting runs -----------------------------------------------------------------

TEST_P(StoreConformanceTest, DeleteRunRemovesEveryDependentRowAndKeepsOtherRuns) {
  for (const char* id : {"r1", "r2"}) {
    RunRecord run = MakeRun(id);
    run.status = RunStatus::kFinished;
    PutRun(run);
    WriteBatch batch;
    batch.UpsertNode({.run_id = id, .node_id = "a", .state = NodeState::kFinished});
    batch.UpsertAttempt({.run_id = id, .node_id = "a", .attempt = 1});
    batch.PutOutput({.run_id = id, .node_id = "a", .output_table = "t", .payload = 1});
    batch.PutFrame({.run_id = id, .frame_no = 0});
    batch.UpsertLoop({.run_id = id, .loop_id = "l"});
    batch.AppendEvent(id, "RunStarted", {}, 1);
    batch.RequestApproval(Request(id, "gate"));
    batch.PutCache({.cache_key = std::string("k-") + id, .payload = 1});
    batch.AppendEvent(id, "SandboxCreated", {{"nodeId", "a"}, {"attempt", 1}}, 2);
    MustCommit(batch);
    EXPECT_TRUE(store_->AppendSignal({.run_id = id, .name = "go"}).ok());
    const LaunchKey key{.scope = "token:t", .key = id, .run_id = id, .created_at_ms = 1};
    EXPECT_TRUE(store_->ClaimLaunchKey(key, 0).ok());
  }

  STORE_ASSERT_OK_AND_ASSIGN(RunRecord gone, store_->DeleteRun("r1"));
  EXPECT_EQ(gone.run_id, "r1");
  EXPECT_EQ(gone.status, RunStatus::kFinished);
  Reopen();
  EXPECT_EQ(store_->GetRun("r1").status().code(), StatusCode::kNotFound);
  for (const char* id : {"r1", "r2"}) {
    const size_t want = std::string(id) == "r1" ? 0 : 1;
    SCOPED_TRACE(id);
    STORE_ASSERT_OK_AND_ASSIGN(auto nodes, store_->ListNodes(id));
    EXPECT_EQ(nodes.size(), want);
    STORE_ASSERT_OK_AND_ASSIGN(auto attempts, store_->ListAttempts(id));
    EXPECT_EQ(attempts.size(), want);
    STORE_ASSERT_OK_AND_ASSIGN(auto outputs, store_->ListOutputs(id));
    EXPECT_EQ(outputs.size(), want);
    STORE_ASSERT_OK_AND_ASSIGN(auto frames, store_->ListFrames(id));
    EXPECT_EQ(frames.size(), want);
    STORE_ASSERT_OK_AND_ASSIGN(auto loops, store_->ListLoops(id));
    EXPECT_EQ(loops.size(), want);
    STORE_ASSERT_OK_AND_ASSIGN(auto events, store_->ListEvents(id, 0, 100));
    EXPECT_EQ(events.empty(), want == 0);  // the signal appends one too
    STORE_ASSERT_OK_AND_ASSIGN(auto approvals, store_->ListApprovals({.run_id = id}));
    EXPECT_EQ(approvals.size(), want);
    STORE_ASSERT_OK_AND_ASSIGN(auto signals, store_->ListSignals(id));
    EXPECT_EQ(signals.size(), want);
    STORE_ASSERT_OK_AND_ASSIGN(auto sandboxes, store_->ListSandboxes(id));
    EXPECT_EQ(sandboxes.size(), want);
    // Cache rows outlive their run.
    STORE_ASSERT_OK_AND_ASSIGN(auto cached, store_->GetCache(std::string("k-") + id));
    EXPECT_TRUE(cached.has_value());
  }
  // The deleted run's launch key is free again; the other run keeps its own.
  STORE_ASSERT_OK_AND_ASSIGN(
      LaunchKey held,
      store_->ClaimLaunchKey({.scope = "token:t", .key = "r1", .run_id = "r9", .created_at_ms = 2},
                             0));
  EXPECT_EQ(held.run_id, "r9");
  STORE_ASSERT_OK_AND_ASSIGN(
      held, store_->ClaimLaunchKey(
                {.scope = "token:t", .key = "r2", .run_id = "r9", .created_at_ms = 2}, 0));
  EXPECT_EQ(held.run_id, "r2");
  EXPECT_EQ(store_->DeleteRun("r1").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, DeleteRunRefusesARunThatIsNotOver) {
  for (RunStatus status : kAllRunStatuses) {
    SCOPED_TRACE(std::string(Name(status)));
    RunRecord run = MakeRun("r1");
    run.status = status;
    PutRun(run);
    Result<RunRecord> deleted = store_->DeleteRun("r1");
    if (IsTerminal(status)) {
      EXPECT_TRUE(deleted.ok()) << deleted.status().ToString();
    } else {
      EXPECT_EQ(deleted.status().code(), StatusCode::kFailedPrecondition);
      EXPECT_TRUE(store_->GetRun("r1").ok());
      run.status = RunStatus::kCancelled;
      PutRun(run);
      EXPECT_TRUE(store_->DeleteRun("r1").ok());
    }
  }
}

TEST_P(StoreConformanceTest, MaintenanceRowsListNewestFirstByKindAndOutliveRuns) {
  PutRun(MakeRun("r1"));
  STORE_ASSERT_OK_AND_ASSIGN(int64_t first, store_->AddMaintenance({.kind = "backup",
                                                                    .started_at_ms = 10,
                                                                    .finished_at_ms = 20,
                                                                    .ok = true,
                                                                    .path = "/b/one.db",
                                                                    .actor = "alice",
                                                                    .detail = {{"pages", 7}}}));
  STORE_ASSERT_OK_AND_ASSIGN(int64_t second, store_->AddMaintenance({.kind = "drill",
                                                                     .started_at_ms = 30,
                                                                     .finished_at_ms = 40,
                                                                     .path = "/b/one.db",
                                                                     .actor = "bob",
                                                                     .detail = {{"error", "x"}}}));
  STORE_ASSERT_OK_AND_ASSIGN(int64_t third, store_->AddMaintenance({.kind = "backup",
                                                                    .started_at_ms = 50,
                                                                    .finished_at_ms = 60,
                                                                    .ok = true,
                                                                    .path = "/b/two.db",
                                                                    .actor = "alice"}));
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  EXPECT_EQ(store_->AddMaintenance({.kind = "vacuum"}).status().code(),
            StatusCode::kInvalidArgument);
  RunRecord over = MakeRun("r1");
  over.status = RunStatus::kFinished;
  PutRun(over);
  ASSERT_TRUE(store_->DeleteRun("r1").ok());
  STORE_ASSERT_OK_AND_ASSIGN(auto all, store_->ListMaintenance("", 10));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, third);
  EXPECT_EQ(all[0].path, "/b/two.db");
  EXPECT_EQ(all[0].detail, Json::object());
  EXPECT_EQ(all[1].kind, "drill");
  EXPECT_FALSE(all[1].ok);
  EXPECT_EQ(all[1].detail, (Json{{"error", "x"}}));
  EXPECT_EQ(all[2].actor, "alice");
  EXPECT_EQ((std::pair{all[2].started_at_ms, all[2].finished_at_ms}),
            (std::pair<int64_t, int64_t>{10, 20}));
  EXPECT_EQ(all[2].detail, (Json{{"pages", 7}}));
  STORE_ASSERT_OK_AND_ASSIGN(auto backups, store_->ListMaintenance("backup", 1));
  ASSERT_EQ(backups.size(), 1u);
  EXPECT_EQ(backups[0].id, third);
}

// --- The audit log ---------------------------------------------------------------

AuditEntry Entry(std::string action, std::string run_id = "", std::string actor = "alice") {
  return {.actor = std::move(actor),
          .actor_via = "os",
          .action = std::move(action),
          .target = run_id.empty() ? "t" : run_id,
          .run_id = std::move(run_id),
          .details = {{"k", 1}}};
}

TEST_P(StoreConformanceTest, AuditedCommitsTheActionAndItsRowTogether) {
  CronRecord cron{.cron_id = "c1", .workflow = "w", .pattern = "* * * * *"};
  STORE_ASSERT_OK(store_->Audited(Entry("cron.create"), [&] { return store_->PutCron(cron); }));
  // A failing action: neither its writes nor its row are kept.
  Status refused = store_->Audited(Entry("cron.create"), [&] {
    SMITHERS_RETURN_IF_ERROR(store_->PutCron({.cron_id = "c2", .workflow = "w", .pattern = "x"}));
    return AbortedError("refused");
  });
  EXPECT_EQ(refused.code(), StatusCode::kAborted);
  // A write inside that failed, its failure swallowed by the action: the
  // whole transaction still rolls back, and says so.
  Status swallowed = store_->Audited(Entry("cron.create"), [&] {
    SMITHERS_RETURN_IF_ERROR(store_->PutCron({.cron_id = "c3", .workflow = "w", .pattern = "x"}));
    WriteBatch orphan;
    orphan.UpsertNode({.run_id = "no-such-run", .node_id = "a"});
    (void)store_->Commit(orphan);
    return Status::Ok();
  });
  EXPECT_FALSE(swallowed.ok());
  STORE_ASSERT_OK_AND_ASSIGN(auto crons, store_->ListCron());
  ASSERT_EQ(crons.size(), 1u);
  EXPECT_EQ(crons[0].cron_id, "c1");
  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListAudit({}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].seq, 1);
  EXPECT_EQ(rows[0].chain, "deployment");
  EXPECT_EQ(rows[0].chain_seq, 1);
  EXPECT_EQ(rows[0].prev_hmac, "");
  EXPECT_EQ(rows[0].entry.action, "cron.create");
  EXPECT_EQ(rows[0].entry.actor, "alice");
  EXPECT_EQ(rows[0].entry.details, (Json{{"k", 1}}));
  EXPECT_GT(rows[0].entry.at_ms, 0);
  EXPECT_EQ(rows[0].hmac.size(), 64u);
  EXPECT_EQ(rows[0].key_id.size(), 16u);
  EXPECT_FALSE(rows[0].version.empty());
  // The store writes nothing else after a failed audited action.
  STORE_ASSERT_OK(store_->AppendAudit(Entry("db.backup")));
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListAudit({}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].seq, 2);
  EXPECT_EQ(rows[1].chain_seq, 2);
  EXPECT_EQ(rows[1].prev_hmac, rows[0].hmac);
}

TEST_P(StoreConformanceTest, AuditChainsArePerRunAndOutliveTheRun) {
  RunRecord a = MakeRun("ra");
  a.workflow_hash = "rev-a";
  a.status = RunStatus::kFinished;
  PutRun(a);
  PutRun(MakeRun("rb"));
  STORE_ASSERT_OK(store_->AppendAudit(Entry("run.launch", "ra")));
  STORE_ASSERT_OK(store_->AppendAudit(Entry("run.launch", "rb", "bob")));
  STORE_ASSERT_OK(store_->AppendAudit(Entry("token.issue")));
  STORE_ASSERT_OK(
      store_->Audited(Entry("run.delete", "ra"), [&] { return store_->DeleteRun("ra").status(); }));
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListAudit({}));
  ASSERT_EQ(rows.size(), 4u);
  std::vector<std::pair<std::string, int64_t>> chains;
  for (const AuditRecord& r : rows) chains.emplace_back(r.chain, r.chain_seq);
  EXPECT_EQ(chains, (std::vector<std::pair<std::string, int64_t>>{
                        {"run:ra", 1}, {"run:rb", 1}, {"deployment", 1}, {"run:ra", 2}}));
  EXPECT_EQ(rows[3].prev_hmac, rows[0].hmac);
  // The run's module revision, also on its tombstone (read before the delete).
  EXPECT_EQ(rows[0].module_revision, "rev-a");
  EXPECT_EQ(rows[3].module_revision, "rev-a");
  EXPECT_EQ(rows[2].module_revision, "");
  // Filters.
  STORE_ASSERT_OK_AND_ASSIGN(auto of_ra, store_->ListAudit({.run_id = "ra"}));
  ASSERT_EQ(of_ra.size(), 2u);
  EXPECT_EQ(of_ra[1].entry.action, "run.delete");
  STORE_ASSERT_OK_AND_ASSIGN(auto of_bob, store_->ListAudit({.actor = "bob"}));
  ASSERT_EQ(of_bob.size(), 1u);
  EXPECT_EQ(of_bob[0].entry.run_id, "rb");
  STORE_ASSERT_OK_AND_ASSIGN(auto page, store_->ListAudit({.after_seq = 1, .limit = 2}));
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].seq, 2);
  STORE_ASSERT_OK_AND_ASSIGN(auto none, store_->ListAudit({.since_ms = rows[3].entry.at_ms + 1}));
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreConformanceTest, AuditDetailsAreRedactedAndEntriesNeedAnActor) {
  AuditEntry e = Entry("signal.send");
  e.details = {{"note", "key=sk-abcdefghijklmnopqrstuv"}, {"password", "hunter22hunter22"}};
  STORE_ASSERT_OK(store_->AppendAudit(e));
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListAudit({}));
  ASSERT_EQ(rows.size(), 1u);
  const std::string stored = rows[0].entry.details.dump();
  EXPECT_EQ(stored.find("sk-abcdefghijklmnopqrstuv"), std::string::npos) << stored;
  EXPECT_EQ(stored.find("hunter22"), std::string::npos) << stored;
  EXPECT_EQ(store_->AppendAudit({.action = "x"}).code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, EscalationsAreAuditedAsTheSystemsActions) {
  PutRun(MakeRun("r1"));
  WriteBatch batch;
  batch.UpsertNode({.run_id = "r1", .node_id = "gate"});
  batch.RequestApproval({.run_id = "r1",
                         .node_id = "gate",
                         .requested_at_ms = 100,
                         .owner = "alice",
                         .fallback_owner = "bob",
                         .escalate_after_ms = 50});
  MustCommit(batch);
  STORE_ASSERT_OK_AND_ASSIGN(auto escalated, store_->EscalateDueApprovals("r1", 1000));
  ASSERT_EQ(escalated.size(), 1u);
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListAudit({.run_id = "r1"}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].entry.action, "approval.escalate");
  EXPECT_EQ(rows[0].entry.actor, "system");
  EXPECT_EQ(rows[0].entry.details["to"], "bob");
  EXPECT_EQ(rows[0].entry.at_ms, 1000);
}

// _smithers_sandboxes follows the run's Sandbox events, committed with them:
// pending -> shipped -> finished, each field as the events say.
TEST_P(StoreConformanceTest, SandboxRowsFollowTheirEventsThroughAWholeAttempt) {
  PutRun(MakeRun("r1"));
  auto event = [&](const std::string& type, Json payload, int64_t at) {
    WriteBatch batch;
    payload["nodeId"] = "box";
    payload["iteration"] = 2;
    if (!payload.contains("attempt")) payload["attempt"] = 1;
    batch.AppendEvent("r1", type, payload, at);
    MustCommit(batch);
  };
  event("SandboxCreated",
        {{"kind", "sandbox"}, {"sandbox", {{"runtime", "podman"}, {"allowNetwork", false}}}}, 100);
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListSandboxes("r1"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].sandbox_id, "box");
  EXPECT_EQ(rows[0].iteration, 2);
  EXPECT_EQ(rows[0].attempt, 1);
  EXPECT_EQ(rows[0].kind, "sandbox");
  EXPECT_EQ(rows[0].runtime, "podman");
  EXPECT_EQ(rows[0].status, "pending");
  EXPECT_EQ(rows[0].config, (Json{{"runtime", "podman"}, {"allowNetwork", false}}));
  EXPECT_EQ(rows[0].created_at_ms, 100);
  EXPECT_EQ(rows[0].bundle_bytes, -1);
  EXPECT_EQ(rows[0].shipped_at_ms, 0);

  event("SandboxShipped",
        {{"bundlePath", "/w/.smithers/sandboxes/r1/box.2/1"},
         {"bundleSizeBytes", 1234},
         {"containerId", "smithers-sandbox-1-ab"}},
        110);
  event("SandboxHeartbeat", Json::object(), 120);
  event("SandboxBundleReceived",
        {{"bundleSizeBytes", 99}, {"patchCount", 3}, {"remoteRunId", "child-run"}}, 130);
  event("SandboxDiffReviewRequested", {{"patchCount", 3}}, 131);
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListSandboxes("r1"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, "shipped");
  EXPECT_EQ(rows[0].bundle_path, "/w/.smithers/sandboxes/r1/box.2/1");
  EXPECT_EQ(rows[0].request_bytes, 1234);
  EXPECT_EQ(rows[0].container_id, "smithers-sandbox-1-ab");
  EXPECT_EQ(rows[0].shipped_at_ms, 110);
  EXPECT_EQ(rows[0].heartbeat_at_ms, 130);
  EXPECT_EQ(rows[0].bundle_bytes, 99);
  EXPECT_EQ(rows[0].patch_count, 3);
  EXPECT_EQ(rows[0].remote_run_id, "child-run");
  EXPECT_EQ(rows[0].review, "requested");

  // The approval's accept is stamped with the next attempt number.
  event("SandboxDiffAccepted", {{"attempt", 2}, {"decidedBy", "alice"}, {"patchCount", 3}}, 140);
  event("SandboxCompleted", {{"attempt", 2}, {"status", "finished"}}, 141);
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListSandboxes("r1"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].attempt, 1);
  EXPECT_EQ(rows[0].status, "finished");
  EXPECT_EQ(rows[0].review, "accepted");
  EXPECT_EQ(rows[0].reviewed_by, "alice");
  EXPECT_EQ(rows[0].reviewed_at_ms, 140);
  EXPECT_EQ(rows[0].completed_at_ms, 141);

  // An ended row keeps its status: a late failure or abandonment changes nothing.
  event("SandboxFailed", {{"attempt", 2}, {"error", "TASK_CANCELLED"}}, 150);
  event("NodeCancelled", {{"attempt", 2}, {"reason", "abandoned"}}, 151);
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListSandboxes("r1"));
  EXPECT_EQ(rows[0].status, "finished");
  EXPECT_EQ(rows[0].error_code, "");
  EXPECT_EQ(rows[0].completed_at_ms, 141);
  Reopen();
  STORE_ASSERT_OK_AND_ASSIGN(rows, store_->ListSandboxes("r1"));
  EXPECT_EQ(SandboxRecordJson(rows[0])["reviewedBy"], "alice");
}

// A new attempt replaces the row; an older attempt's late event never
// changes it; cancelled, abandoned and failed end it with their code.
TEST_P(StoreConformanceTest, SandboxRowsKeepTheLatestAttemptAndHowItEnded) {
  PutRun(MakeRun("r1"));
  auto event = [&](const std::string& node, int attempt, const std::string& type, Json payload,
                   int64_t at) {
    WriteBatch batch;
    payload["nodeId"] = node;
    payload["iteration"] = 0;
    payload["attempt"] = attempt;
    batch.AppendEvent("r1", type, payload, at);
    MustCommit(batch);
  };
  event("cmd", 1, "SandboxCreated", {{"sandbox", {{"runtime", "bubblewrap"}}}}, 10);
  event("cmd", 1, "SandboxShipped", Json::object(), 11);
  event("cmd", 1, "SandboxFailed", {{"error", "SANDBOX_LIMIT_EXCEEDED"}}, 12);
  event("cmd", 2, "SandboxCreated", {{"sandbox", {{"runtime", "bubblewrap"}}}}, 20);
  event("cmd", 1, "SandboxHeartbeat", Json::object(), 21);  // late, of attempt 1
  event("cancel", 1, "SandboxCreated", {{"sandbox", Json::object()}}, 30);
  event("cancel", 1, "SandboxFailed", {{"error", {{"code", "TASK_CANCELLED"}}}}, 31);
  event("crash", 1, "SandboxCreated", {{"sandbox", Json::object()}}, 40);
  event("crash", 1, "SandboxShipped", Json::object(), 41);
  event("crash", 1, "NodeCancelled", {{"reason", "abandoned"}}, 42);
  event("deny", 1, "SandboxCreated", {{"kind", "sandbox"}, {"sandbox", Json::object()}}, 50);
  event("deny", 1, "SandboxDiffRejected", {{"decidedBy", "bob"}}, 51);
  // Neither a Sandbox event nor one with a node: no row.
  event("other", 1, "NodeStarted", Json::object(), 60);
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store_->ListSandboxes("r1"));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].sandbox_id, "cancel");
  EXPECT_EQ(rows[0].status, "cancelled");
  EXPECT_EQ(rows[0].error_code, "TASK_CANCELLED");
  EXPECT_EQ(rows[0].runtime, "bubblewrap");
  EXPECT_EQ(rows[0].kind, "command");
  EXPECT_EQ(rows[1].sandbox_id, "cmd");
  EXPECT_EQ(rows[1].attempt, 2);
  EXPECT_EQ(rows[1].status, "pending");
  EXPECT_EQ(rows[1].error_code, "");
  EXPECT_EQ(rows[1].heartbeat_at_ms, 0);
  EXPECT_EQ(rows[1].created_at_ms, 20);
  EXPECT_EQ(rows[2].sandbox_id, "crash");
  EXPECT_EQ(rows[2].status, "cancelled");
  EXPECT_EQ(rows[2].error_code, "ATTEMPT_ABANDONED");
  EXPECT_EQ(rows[2].completed_at_ms, 42);
  EXPECT_EQ(rows[3].sandbox_id, "deny");
  EXPECT_EQ(rows[3].status, "failed");
  EXPECT_EQ(rows[3].review, "rejected");
  EXPECT_EQ(rows[3].reviewed_by, "bob");
  EXPECT_EQ(rows[3].error_code, "SANDBOX_DIFF_REJECTED");
  STORE_ASSERT_OK_AND_ASSIGN(auto other, store_->ListSandboxes("r2"));
  EXPECT_TRUE(other.empty());
}

// --- Copying a whole store (smithers db copy) ---------------------------------------

namespace {

// A row in every table ExportTable reads, through the store's own API.
void FillEveryTable(Store& store) {
  WriteBatch batch;
  batch.UpsertRun({.run_id = "r1",
                   .workflow_name = "w",
                   .status = RunStatus::kWaitingApproval,
                   .created_at_ms = 5,
                   .input = {{"n", 1}}});
  batch.UpsertNode({.run_id = "r1", .node_id = "a", .state = NodeState::kFinished});
  batch.UpsertAttempt({.run_id = "r1",
                       .node_id = "a",
                       .attempt = 1,
                       .state = AttemptState::kFinished,
                       .meta = {{"m", true}}});
  batch.PutOutput({.run_id = "r1",
                   .node_id = "a",
                   .output_table = "out",
                   .payload = {{"v", "é"}},
                   .created_at_ms = 6});
  batch.PutFrame({.run_id = "r1", .frame_no = 1, .encoding = "keyframe", .data = "{}"});
  batch.UpsertLoop({.run_id = "r1", .loop_id = "l", .iteration = 2});
  batch.PutCache({.cache_key = "k1", .created_at_ms = 7, .payload = {{"c", 1}}});
  batch.RequestApproval({.run_id = "r1",
                         .node_id = "gate",
                         .status = ApprovalStatus::kRequested,
                         .requested_at_ms = 8,
                         .request = {{"title", "t"}}});
  batch.PutSandbox({.run_id = "r1",
                    .sandbox_id = "sb",
                    .attempt = 1,
                    .kind = "command",
                    .runtime = "bubblewrap",
                    .status = "pending",
                    .fresh = true});
  batch.AppendEvent("r1", "RunStarted", {{"x", 1}}, 9);
  ASSERT_TRUE(store.Commit(batch).ok());
  STORE_ASSERT_OK_AND_ASSIGN(
      SignalRecord signal,
      store.AppendSignal({.run_id = "r1", .name = "go", .received_at_ms = 10}));
  EXPECT_EQ(signal.seq, 0);
  STORE_ASSERT_OK(store.PutToken(
      {.token_id = "t1", .token_hash = "h1", .scopes = {"run:read"}, .issued_at_ms = 11}));
  STORE_ASSERT_OK(store.PutCron(
      {.cron_id = "c1", .workflow = "w", .pattern = "* * * * *", .created_at_ms = 12}));
  STORE_ASSERT_OK(store.PutModuleSource({.revision = "rev",
                                         .path = "/w.lua",
                                         .source = "-- \xff bytes",
                                         .created_at_ms = 13,
                                         .siblings = {{"lib", "return 1 -- \xfe"}}}));
  STORE_ASSERT_OK_AND_ASSIGN(
      LaunchKey key,
      store.ClaimLaunchKey(
          {.scope = "s", .key = "k", .run_id = "r1", .workflow = "w", .created_at_ms = 14}, 0));
  EXPECT_EQ(key.run_id, "r1");
  STORE_ASSERT_OK_AND_ASSIGN(int64_t id, store.AddMaintenance({.kind = "backup",
                                                               .started_at_ms = 15,
                                                               .finished_at_ms = 16,
                                                               .ok = true,
                                                               .path = "/b",
                                                               .actor = "ann"}));
  EXPECT_GT(id, 0);
  STORE_ASSERT_OK(store.Audited(Entry("cron.create"), [] { return Status::Ok(); }));
}

std::map<std::string, std::vector<Json>> ExportAll(Store& store) {
  std::map<std::string, std::vector<Json>> rows;
  for (const std::string& table : StoreTableNames()) {
    Status done = store.ExportTable(table, [&](const Json& row) {
      rows[table].push_back(row);
      return Status::Ok();
    });
    EXPECT_TRUE(done.ok()) << table << ": " << done.ToString();
  }
  return rows;
}

}  // namespace

TEST_P(StoreConformanceTest, AnExportImportedIntoAnEmptyStoreIsTheSameRowForRow) {
  FillEveryTable(*store_);
  if (HasFatalFailure()) return;
  std::map<std::string, std::vector<Json>> source = ExportAll(*store_);
  for (const std::string& table : StoreTableNames()) {
    EXPECT_FALSE(source[table].empty()) << table << " was not filled: the copy is not tested on it";
  }

  TempDir other;
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> copy, GetParam().open(other.path()));
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<StoreImport> import, copy->BeginImport());
  for (const std::string& table : StoreTableNames()) {
    for (const Json& row : source[table]) STORE_ASSERT_OK(import->Add(table, row));
  }
  STORE_ASSERT_OK(import->Commit());
  import.reset();
  EXPECT_EQ(ExportAll(*copy), source);

  // The copy is a working store: the next ids and seqs follow the copied ones.
  STORE_ASSERT_OK_AND_ASSIGN(int64_t id,
                             copy->AddMaintenance({.kind = "drill", .path = "/d", .actor = "ann"}));
  EXPECT_EQ(id, source["_smithers_maintenance"].back()[0].get<int64_t>() + 1);
  STORE_ASSERT_OK_AND_ASSIGN(SignalRecord sig, copy->AppendSignal({.run_id = "r1", .name = "b"}));
  EXPECT_EQ(sig.seq, 1);  // the copied signal was 0
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> events, copy->ListEvents("r1", 0, -1));
  EXPECT_EQ(events.back().seq, static_cast<int64_t>(events.size()));
}

// ExportTable reads in pages of 10,000 rows by primary key: a table past one
// page comes whole, in order, each row once.
TEST_P(StoreConformanceTest, AnExportOfATableLongerThanAPageHasEveryRowOnce) {
  constexpr int kRows = 10050;
  WriteBatch batch;
  batch.UpsertRun({.run_id = "r1", .workflow_name = "w", .status = RunStatus::kRunning});
  for (int i = 0; i < kRows; ++i) batch.AppendEvent("r1", "E", {{"i", i}}, i + 1);
  MustCommit(batch);
  std::vector<int64_t> seqs;
  STORE_ASSERT_OK(store_->ExportTable("_smithers_events", [&](const Json& row) {
    seqs.push_back(row[1].get<int64_t>());
    return Status::Ok();
  }));
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kRows));
  for (int i = 0; i < kRows; ++i) ASSERT_EQ(seqs[i], i + 1);
}

TEST_P(StoreConformanceTest, AnImportRefusesAStoreWithRowsAndBadRows) {
  STORE_ASSERT_OK(store_->PutCron({.cron_id = "c1", .workflow = "w", .pattern = "* * * * *"}));
  Result<std::unique_ptr<StoreImport>> refused = store_->BeginImport();
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("_smithers_cron"), std::string::npos)
      << refused.status().ToString();

  TempDir other;
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> empty, GetParam().open(other.path()));
  {
    STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<StoreImport> import, empty->BeginImport());
    EXPECT_EQ(import->Add("_smithers_nope", Json::array()).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(import->Add("_smithers_cron", Json::array({"c"})).code(),
              StatusCode::kInvalidArgument);
    STORE_ASSERT_OK(import->Add(
        "_smithers_cron",
        Json::array({"c1", "w", "* * * * *", "UTC", nullptr, 1, 1, nullptr, nullptr, "", ""})));
    // Destroyed uncommitted: nothing is written.
  }
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<CronRecord> crons, empty->ListCron());
  EXPECT_TRUE(crons.empty());
  EXPECT_EQ(empty->ExportTable("_smithers_nope", [](const Json&) { return Status::Ok(); }).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace smithers::store
