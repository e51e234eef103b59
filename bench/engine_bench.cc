// In-process benchmarks of the engine through the C++ API: no process start,
// no Lua. Run: build/bench/engine_bench [--benchmark_filter=...]
//
//   BM_SequenceRun/N   RunWorkflow of a Sequence of N static tasks on a fresh
//                      SQLite file (synchronous=NORMAL); time per run, and
//                      the "per_task" counter is time / N.
//   BM_ParallelRun/N   the same with one Parallel of N static tasks.
//   BM_Schedule*/N     the scheduler alone: run a sequence of N tasks to the
//                      end, one Schedule() per task, with and without a
//                      ScheduleMemo (without it the walk is O(N^2)).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
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

void RunStatic(benchmark::State& state, bool parallel) {
  const int n = static_cast<int>(state.range(0));
  sm::WorkflowDefinition def = StaticTasks(n, parallel);
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
    sm::Result<sm::RunResult> r = sm::RunWorkflow(def, **store, sm::RunOptions{});
    if (!r.ok() || r->status != "finished") {
      state.SkipWithError("the run did not finish");
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

void BM_SequenceRun(benchmark::State& state) { RunStatic(state, false); }
void BM_ParallelRun(benchmark::State& state) { RunStatic(state, true); }
BENCHMARK(BM_SequenceRun)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParallelRun)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

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
