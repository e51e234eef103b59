// In-process benchmarks of the engine through the C++ API: no process start,
// no Lua. Run: build/bench/engine_bench [--benchmark_filter=...]
//
//   BM_SequenceRun/N   RunWorkflow of a Sequence of N static tasks on a fresh
//                      SQLite file (synchronous=NORMAL); time per run, and
//                      the "per_task" counter is time / N.
//   BM_ParallelRun/N   the same with one Parallel of N static tasks.
//   BM_GrowingChain/N  the chain people write: compute task i is mounted once
//                      task i-1 has an output, and the render reads every
//                      earlier output (N renders of 1..N tasks). Counters:
//                      "per_task" (time / N) and "render_ns_per_node": the
//                      time in the render function, PlanTree::Build and the
//                      frame, over the nodes mounted summed over renders
//                      (RunOptions::render_stats).
//   BM_StoreCommit     the store alone: one Commit of a typical 5-op batch
//                      (run heartbeat, node, attempt, output, event) per
//                      iteration, synchronous=NORMAL so that fsyncs do not
//                      dominate; the CPU column is the CPU cost per commit
//                      (re-preparing statements per commit would roughly
//                      triple it). See bench/README.md for the figure.
//   BM_Schedule*/N     the scheduler alone: run a sequence of N tasks to the
//                      end, one Schedule() per task, with and without a
//                      ScheduleMemo (without it the walk is O(N^2)).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/plan.h"
#include "smithers/engine.h"
#include "smithers/schema.h"
#include "smithers/store.h"
#include "smithers/workflow.h"

namespace sm = smithers;

namespace {

sm::WorkflowDefinition StaticTasks(int n, bool parallel) {
  sm::WorkflowDefinition def;
  def.name = parallel ? "bench-parallel" : "bench-sequence";
  def.outputs["out"] = sm::schema::Object({{"i", sm::schema::Integer()}});
  def.source_hash = def.name;
  def.render = [n, parallel](const sm::Ctx&) -> sm::Result<sm::Node> {
    std::vector<sm::Node> kids;
    kids.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      kids.push_back(sm::StaticTask("t" + std::to_string(i), "out", {{"i", i}}));
    }
    sm::Node body = parallel ? sm::Parallel(std::move(kids)) : sm::Sequence(std::move(kids));
    return sm::Workflow(parallel ? "bench-parallel" : "bench-sequence", {std::move(body)});
  };
  return def;
}

std::string TempDb() {
  return (std::filesystem::temp_directory_path() /
          ("smithers-engine-bench-" + std::to_string(getpid()) + ".db"))
      .string();
}

void RemoveDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}

// Times `def`, once per benchmark iteration, on a fresh database (opened and
// closed outside the timing); sets `per_task`. A run that does not finish, or
// whose outputs `complete` refuses, ends the benchmark with an error.
void TimeRuns(benchmark::State& state, const sm::WorkflowDefinition& def, int n,
              const sm::RunOptions& opts,
              const std::function<bool(const sm::RunResult&)>& complete) {
  const std::string path = TempDb();
  for (auto _ : state) {
    state.PauseTiming();
    RemoveDb(path);
    auto store = sm::OpenSqliteStore({.path = path, .synchronous = "NORMAL"});
    if (!store.ok()) {
      state.SkipWithError(store.status().message().c_str());
      break;
    }
    state.ResumeTiming();
    sm::Result<sm::RunResult> r = sm::RunWorkflow(def, **store, opts);
    if (!r.ok() || r->status != sm::RunStatus::kFinished || !complete(*r)) {
      state.SkipWithError("the run did not finish with every output");
      break;
    }
    state.PauseTiming();
    store->reset();  // close (and checkpoint) outside the timing
    state.ResumeTiming();
  }
  RemoveDb(path);
  state.counters["per_task"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * n,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void RunStatic(benchmark::State& state, bool parallel) {
  const int n = static_cast<int>(state.range(0));
  TimeRuns(state, StaticTasks(n, parallel), n, sm::RunOptions{},
           [](const sm::RunResult&) { return true; });
}

void BM_StoreCommit(benchmark::State& state) {
  const std::string path = TempDb();
  RemoveDb(path);
  {
    auto store = sm::OpenSqliteStore({.path = path, .synchronous = "NORMAL"});
    if (!store.ok()) {
      state.SkipWithError(store.status().message().c_str());
      return;
    }
    sm::RunRecord run{.run_id = "r1",
                      .workflow_name = "wf",
                      .workflow_path = "/w/wf.lua",
                      .workflow_hash = "abc123",
                      .status = sm::RunStatus::kRunning,
                      .created_at_ms = 1000,
                      .started_at_ms = 1001,
                      .heartbeat_at_ms = 1002};
    sm::WriteBatch setup;
    setup.UpsertRun(run);
    if (!(*store)->Commit(setup).ok()) {
      state.SkipWithError("setup commit failed");
      return;
    }
    int64_t i = 0;
    for (auto _ : state) {
      const std::string node = "n" + std::to_string(i % 50);
      const int iteration = static_cast<int>(i / 50);
      run.heartbeat_at_ms = 10000 + i;
      sm::WriteBatch batch;
      batch.UpsertRun(run);
      batch.UpsertNode({.run_id = "r1",
                        .node_id = node,
                        .iteration = iteration,
                        .state = sm::NodeState::kFinished});
      batch.UpsertAttempt({.run_id = "r1",
                           .node_id = node,
                           .iteration = iteration,
                           .attempt = 1,
                           .state = sm::AttemptState::kFinished,
                           .started_at_ms = i + 1});
      batch.PutOutput({.run_id = "r1",
                       .node_id = node,
                       .iteration = iteration,
                       .output_table = "t",
                       .payload = {{"message", "hello"}, {"i", i}}});
      batch.AppendEvent("r1", "NodeFinished", {{"nodeId", node}}, i + 1);
      if (!(*store)->Commit(batch).ok()) {
        state.SkipWithError("commit failed");
        break;
      }
      ++i;
    }
  }
  RemoveDb(path);
}
BENCHMARK(BM_StoreCommit)->Unit(benchmark::kMicrosecond);

void BM_SequenceRun(benchmark::State& state) { RunStatic(state, false); }
void BM_ParallelRun(benchmark::State& state) { RunStatic(state, true); }
BENCHMARK(BM_SequenceRun)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParallelRun)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

// Task i mounts once task i-1 has an output; the render reads every earlier one.
sm::WorkflowDefinition GrowingChain(int n) {
  sm::WorkflowDefinition def;
  def.name = "bench-chain";
  def.outputs["step"] = sm::schema::Object({{"value", sm::schema::Integer()}});
  def.source_hash = def.name;
  def.render = [n](const sm::Ctx& ctx) -> sm::Result<sm::Node> {
    std::vector<sm::Node> kids;
    for (int i = 0; i < n; ++i) {
      int64_t prev = 0;
      if (i > 0) {
        const sm::Json* row = ctx.OutputMaybe("step", "s" + std::to_string(i - 1));
        if (row == nullptr) break;
        prev = (*row)["value"].get<int64_t>();
      }
      kids.push_back(sm::ComputeTask("s" + std::to_string(i), "step",
                                     [prev](const sm::ComputeContext&) -> sm::Result<sm::Json> {
                                       return sm::Json{{"value", prev + 1}};
                                     }));
    }
    return sm::Workflow("bench-chain", {sm::Sequence(std::move(kids))});
  };
  return def;
}

void BM_GrowingChain(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  sm::RenderStats stats;
  sm::RunOptions opts;
  opts.render_stats = &stats;
  TimeRuns(state, GrowingChain(n), n, opts, [n](const sm::RunResult& r) {
    return r.outputs["step"].size() == static_cast<size_t>(n);
  });
  state.counters["render_ns_per_node"] = stats.NsPerNode();
  state.counters["renders"] = static_cast<double>(stats.renders) /
                              static_cast<double>(std::max<int64_t>(1, state.iterations()));
}
BENCHMARK(BM_GrowingChain)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

// Runs the scheduler over a sequence of n tasks: each task is started and
// finished in turn, as the engine does with static tasks.
void ScheduleSequence(benchmark::State& state, bool memo) {
  const int n = static_cast<int>(state.range(0));
  std::vector<sm::Node> kids;
  for (int i = 0; i < n; ++i) kids.push_back(sm::StaticTask("t" + std::to_string(i), "out", 1));
  sm::Node root = sm::Workflow("w", {sm::Sequence(std::move(kids))});
  std::map<std::string, sm::Json> outputs = {{"out", sm::Json::object()}};
  auto plan = sm::core::PlanTree::Build(root, {}, outputs);
  for (auto _ : state) {
    std::vector<sm::core::TaskStatus> states(plan->tasks().size());
    sm::core::ScheduleMemo m;
    for (int i = 0; i < n; ++i) {
      sm::core::Decision d = plan->Schedule(states, 0, 16, memo ? &m : nullptr);
      if (d.ready.size() != 1) state.SkipWithError("expected one ready task");
      states[d.ready[0]].state = sm::core::TaskState::kFinished;
    }
    benchmark::DoNotOptimize(states.data());
  }
  state.counters["per_task"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * n,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_ScheduleSequenceMemo(benchmark::State& state) { ScheduleSequence(state, true); }
void BM_ScheduleSequenceNoMemo(benchmark::State& state) { ScheduleSequence(state, false); }
BENCHMARK(BM_ScheduleSequenceMemo)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ScheduleSequenceNoMemo)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
