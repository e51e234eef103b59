// Durability of the run loop under store faults and crashes (docs/testing.md,
// docs/engine.md "Durability"):
//
// 1. A fault-injecting store fails the Nth Commit() of a run, for every N,
//    either before it is applied or "ambiguously" (applied, then reported as a
//    failure). RunWorkflow must stop with an error Status; a resume on the
//    plain store must then finish the run with every output present exactly
//    once, never executing again a task whose output was committed.
// 2. Named crash points: a forked child runs the workflow and `_exit`s right
//    before or right after its Nth commit; the parent reopens the database,
//    resumes, and checks the same invariants.
//
// The workflow: compute task "a"; then "b", mounted once a's output exists
// (so a re-render and a second frame); then "c" and "d" in a Parallel. Every
// compute function counts its executions in memory shared with forked
// children, so the parent sees what a crashed child executed.
//
// Every test runs on both backends: SQLite, and PostgreSQL on the tests'
// throwaway server (a schema per scratch folder; store/pg_test_util.h).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

#include "smithers/engine.h"
#include "smithers/schema.h"
#include "smithers/store.h"
#include "smithers/workflow.h"
#include "store/fault_injecting_store.h"
#include "store/pg_test_util.h"
#include "store/store_test_util.h"

namespace smithers {
namespace {

using store::FaultInjectingStore;

constexpr int kTasks = 4;
const char* const kNodes[kTasks] = {"a", "b", "c", "d"};
const int kValues[kTasks] = {1, 2, 10, 20};
constexpr char kRunId[] = "fault-run";

// Executions of each task, in memory a forked child shares with its parent.
struct Counters {
  std::atomic<int> n[kTasks];
};

Counters& Executions() {
  static Counters* c = [] {
    void* p =
        mmap(nullptr, sizeof(Counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    return new (p) Counters{};
  }();
  return *c;
}

void ResetExecutions() {
  for (auto& n : Executions().n) n = 0;
}

std::map<std::string, int> ExecutionCounts() {
  std::map<std::string, int> m;
  for (int i = 0; i < kTasks; ++i) m[kNodes[i]] = Executions().n[i];
  return m;
}

Node Counted(int i) {
  return ComputeTask(kNodes[i], "value", [i](const ComputeContext& c) -> Result<Json> {
    Executions().n[i]++;
    return Json{{"node", c.node_id}, {"v", kValues[i]}};
  });
}

WorkflowDefinition FaultWorkflow() {
  WorkflowDefinition def;
  def.name = "faults";
  def.source_hash = "engine_fault_test v1";
  def.outputs["value"] = schema::Object({{"node", schema::String()}, {"v", schema::Integer()}});
  def.render = [](const Ctx& ctx) -> Result<Node> {
    std::vector<Node> kids;
    kids.push_back(Counted(0));
    if (ctx.OutputMaybe("value", "a") != nullptr) kids.push_back(Counted(1));
    kids.push_back(Parallel({Counted(2), Counted(3)}));
    return Workflow("faults", std::move(kids));
  };
  return def;
}

using store::TempDir;

enum class Backend { kSqlite, kPostgres };

std::string BackendName(Backend b) { return b == Backend::kSqlite ? "Sqlite" : "Postgres"; }

// The store of `backend` kept under `dir`; the same dir reaches the same data.
Result<std::unique_ptr<Store>> OpenBackend(Backend backend, const std::string& dir) {
  if (backend == Backend::kSqlite) return OpenSqliteStore({.path = dir + "/runs.db"});
  SMITHERS_ASSIGN_OR_RETURN(std::string url, store::PgTestSchemaUrl(dir));
  return OpenStore(url, {.audit_key = "env:SMITHERS_FAULT_TEST_AUDIT_KEY"});
}

std::unique_ptr<Store> OpenTestStore(Backend backend, const std::string& dir) {
  setenv("SMITHERS_FAULT_TEST_AUDIT_KEY", "0123456789abcdef0123456789abcdef", 0);
  Result<std::unique_ptr<Store>> s = OpenBackend(backend, dir);
  if (!s.ok()) {
    ADD_FAILURE() << s.status().ToString();
    return nullptr;
  }
  return std::move(s).value();
}

std::set<std::string> CommittedOutputs(Store& store) {
  std::set<std::string> out;
  Result<std::vector<OutputRecord>> rows = store.ListOutputs(kRunId);
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  if (rows.ok()) {
    for (const auto& r : *rows) out.insert(r.node_id);
  }
  return out;
}

bool RunExists(Store& store) { return store.GetRun(kRunId).ok(); }

// Resumes the run (or, when nothing of it was committed, starts it again) on
// `store` and checks every durability invariant against what was committed
// and executed when the previous attempt stopped.
void ResumeAndCheck(Store& store, const std::set<std::string>& committed,
                    const std::map<std::string, int>& executed) {
  WorkflowDefinition def = FaultWorkflow();
  Result<RunResult> r = InternalError("not run");
  if (RunExists(store)) {
    // Same process or a dead child: either way no --force is needed. Resume
    // allows an owner equal to ThisProcessOwnerId() (this process's own
    // failed RunWorkflow), and a dead local pid.
    r = RunWorkflow(def, store, RunOptions{.run_id = kRunId, .resume = true});
  } else {
    EXPECT_TRUE(committed.empty());
    Result<RunResult> nothing =
        RunWorkflow(def, store, RunOptions{.run_id = kRunId, .resume = true});
    EXPECT_EQ(nothing.status().code(), StatusCode::kNotFound) << nothing.status().ToString();
    r = RunWorkflow(def, store, RunOptions{.run_id = kRunId});
  }
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, RunStatus::kFinished) << r->error.dump();

  // Every output exactly once, with the value its task computed.
  Result<std::vector<OutputRecord>> rows = store.ListOutputs(kRunId);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  std::map<std::string, int> count;
  for (const auto& o : *rows) {
    count[o.node_id]++;
    EXPECT_EQ(o.iteration, 0);
    EXPECT_EQ(o.payload.value("node", ""), o.node_id);
  }
  for (int i = 0; i < kTasks; ++i) {
    EXPECT_EQ(count[kNodes[i]], 1) << kNodes[i];
    EXPECT_EQ(r->outputs["value"][kNodes[i]].value("v", -1), kValues[i]) << kNodes[i];
  }
  EXPECT_EQ(rows->size(), static_cast<size_t>(kTasks));

  // A committed task never ran again; any other ran exactly once more.
  std::map<std::string, int> now = ExecutionCounts();
  for (int i = 0; i < kTasks; ++i) {
    const std::string n = kNodes[i];
    if (committed.count(n) > 0) {
      EXPECT_EQ(executed.at(n), 1) << n;
      EXPECT_EQ(now[n], executed.at(n))
          << n << " was executed again after its output was committed";
    } else {
      EXPECT_LE(executed.at(n), 1) << n;
      EXPECT_EQ(now[n], executed.at(n) + 1) << n;
    }
  }

  // Attempts: the last of each task finished, earlier ones were abandoned.
  Result<std::vector<AttemptRecord>> attempts = store.ListAttempts(kRunId);
  ASSERT_TRUE(attempts.ok()) << attempts.status().ToString();
  std::map<std::string, std::map<int, AttemptRecord>> by_node;
  for (const auto& a : *attempts) by_node[a.node_id][a.attempt] = a;
  for (int i = 0; i < kTasks; ++i) {
    const auto& list = by_node[kNodes[i]];
    ASSERT_FALSE(list.empty()) << kNodes[i];
    EXPECT_EQ(list.rbegin()->second.state, AttemptState::kFinished) << kNodes[i];
    for (const auto& [n, a] : list) {
      if (n == list.rbegin()->first) continue;
      EXPECT_EQ(a.state, AttemptState::kCancelled) << kNodes[i] << " attempt " << n;
      EXPECT_EQ(a.error.value("code", ""), "ATTEMPT_ABANDONED") << kNodes[i] << " attempt " << n;
    }
  }

  // Events: seqs 0..N-1, one RunStarted, one RunFinished, one NodeFinished per task.
  Result<std::vector<EventRecord>> events = store.ListEvents(kRunId, -1, 100000);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  std::map<std::string, int> types;
  std::multiset<std::string> finished_nodes;
  for (size_t i = 0; i < events->size(); ++i) {
    const EventRecord& e = (*events)[i];
    EXPECT_EQ(e.seq, static_cast<int64_t>(i) + 1) << "event seqs have a gap or a duplicate";
    types[e.type]++;
    if (e.type == "NodeFinished") finished_nodes.insert(e.payload.value("nodeId", ""));
  }
  EXPECT_EQ(types["RunStarted"], 1);
  EXPECT_EQ(types["RunFinished"], 1);
  EXPECT_EQ(finished_nodes, (std::multiset<std::string>{"a", "b", "c", "d"}));

  Result<RunRecord> run = store.GetRun(kRunId);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->status, RunStatus::kFinished);
  EXPECT_EQ(run->runtime_owner_id, "");
}

// How many commits a clean run makes.
int CleanRunCommits(Backend backend) {
  TempDir dir;
  std::unique_ptr<Store> real = OpenTestStore(backend, dir.path());
  if (real == nullptr) return 0;
  FaultInjectingStore counting(real.get());
  Result<RunResult> r = RunWorkflow(FaultWorkflow(), counting, RunOptions{.run_id = kRunId});
  EXPECT_TRUE(r.ok() && r->status == RunStatus::kFinished) << r.status().ToString();
  return counting.commit_calls();
}

class EngineFaultTest
    : public ::testing::TestWithParam<std::tuple<Backend, FaultInjectingStore::Fault>> {
 protected:
  Backend backend() const { return std::get<0>(GetParam()); }
  FaultInjectingStore::Fault fault() const { return std::get<1>(GetParam()); }
};

TEST_P(EngineFaultTest, EveryFailedCommitStopsTheRunAndResumeFinishesIt) {
  const int commits = CleanRunCommits(backend());
  ASSERT_GE(commits, 8) << "the workflow should commit at least start, 4 x (start, end), finish";
  for (int n = 1; n <= commits; ++n) {
    SCOPED_TRACE("commit " + std::to_string(n) + " of " + std::to_string(commits));
    TempDir dir;
    std::unique_ptr<Store> real = OpenTestStore(backend(), dir.path());
    ASSERT_NE(real, nullptr);
    ResetExecutions();
    FaultInjectingStore faulty(real.get());
    faulty.FailCommit(n, fault());
    Result<RunResult> r = RunWorkflow(FaultWorkflow(), faulty, RunOptions{.run_id = kRunId});
    ASSERT_FALSE(r.ok()) << "the run reported " << r->status << " despite a failed commit";
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
    EXPECT_NE(r.status().message().find("injected fault"), std::string::npos)
        << r.status().ToString();
    EXPECT_EQ(faulty.commit_calls(), n) << "the engine kept writing after a failed commit";

    std::set<std::string> committed = CommittedOutputs(*real);
    std::map<std::string, int> executed = ExecutionCounts();
    ResumeAndCheck(*real, committed, executed);
    if (HasFatalFailure()) return;
  }
}

// Every commit from the Nth on fails: the store is gone. The run stops at the
// first failure and does not spin.
TEST_P(EngineFaultTest, StoreGoneStopsAtTheFirstFailure) {
  const int commits = CleanRunCommits(backend());
  for (int n = 1; n <= commits; ++n) {
    SCOPED_TRACE("from commit " + std::to_string(n));
    TempDir dir;
    std::unique_ptr<Store> real = OpenTestStore(backend(), dir.path());
    ASSERT_NE(real, nullptr);
    ResetExecutions();
    FaultInjectingStore faulty(real.get());
    if (fault() == FaultInjectingStore::Fault::kAfterApply) {
      faulty.FailCommit(n, fault());  // the last write lands, then the store goes
      faulty.FailCommitsFrom(n + 1);
    } else {
      faulty.FailCommitsFrom(n);
    }
    Result<RunResult> r = RunWorkflow(FaultWorkflow(), faulty, RunOptions{.run_id = kRunId});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(faulty.commit_calls(), n);
    std::set<std::string> committed = CommittedOutputs(*real);
    ResumeAndCheck(*real, committed, ExecutionCounts());
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Faults, EngineFaultTest,
    ::testing::Combine(::testing::Values(Backend::kSqlite, Backend::kPostgres),
                       ::testing::Values(FaultInjectingStore::Fault::kBeforeApply,
                                         FaultInjectingStore::Fault::kAfterApply)),
    [](const auto& info) {
      return BackendName(std::get<0>(info.param)) +
             (std::get<1>(info.param) == FaultInjectingStore::Fault::kBeforeApply ? "BeforeApply"
                                                                                  : "Ambiguous");
    });

// ---- named crash points: a forked child _exits at a commit ----

enum class CrashPoint { kBeforeCommit, kAfterCommit };

// Ends the process right before or right after its Nth commit, as a power cut
// or SIGKILL would: no destructors, no rollback, no clean close of SQLite.
class CrashingStore : public StoreWrapper {
 public:
  CrashingStore(Store* target, int n, CrashPoint point)
      : StoreWrapper(target), n_(n), point_(point) {}

  Result<std::vector<int64_t>> Commit(const WriteBatch& batch) override {
    const bool here = ++calls_ == n_;
    if (here && point_ == CrashPoint::kBeforeCommit) _exit(kCrashed);
    Result<std::vector<int64_t>> r = StoreWrapper::Commit(batch);
    if (here && point_ == CrashPoint::kAfterCommit) _exit(r.ok() ? kCrashed : kCommitFailed);
    return r;
  }

  static constexpr int kCrashed = 0;
  static constexpr int kCommitFailed = 5;

 private:
  int n_;
  CrashPoint point_;
  int calls_ = 0;
};

// Exit codes of the child besides CrashingStore's.
constexpr int kChildNoStore = 2;
constexpr int kChildRunEnded = 3;

class EngineCrashPointTest : public ::testing::TestWithParam<std::tuple<Backend, CrashPoint>> {
 protected:
  Backend backend() const { return std::get<0>(GetParam()); }
  CrashPoint point() const { return std::get<1>(GetParam()); }
};

TEST_P(EngineCrashPointTest, ChildDiesAtEveryCommitAndParentResumes) {
  const int commits = CleanRunCommits(backend());
  ASSERT_GE(commits, 8);
  for (int n = 1; n <= commits; ++n) {
    SCOPED_TRACE(std::string(point() == CrashPoint::kBeforeCommit ? "before" : "after") +
                 " commit " + std::to_string(n) + " of " + std::to_string(commits));
    TempDir dir;
    ResetExecutions();
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // The child opens its own connection: a connection must not cross fork().
      Result<std::unique_ptr<Store>> s = OpenBackend(backend(), dir.path());
      if (!s.ok()) _exit(kChildNoStore);
      CrashingStore crashing(s->get(), n, point());
      (void)RunWorkflow(FaultWorkflow(), crashing, RunOptions{.run_id = kRunId});
      _exit(kChildRunEnded);  // never reached its crash point
    }
    int wstatus = 0;
    ASSERT_EQ(waitpid(child, &wstatus, 0), child);
    ASSERT_TRUE(WIFEXITED(wstatus)) << "child status " << wstatus;
    ASSERT_EQ(WEXITSTATUS(wstatus), CrashingStore::kCrashed);

    std::unique_ptr<Store> store = OpenTestStore(backend(), dir.path());
    ASSERT_NE(store, nullptr);
    Result<RunRecord> run = store->GetRun(kRunId);
    if (run.ok() && run->status != RunStatus::kFinished) {
      // The run names the dead child as its owner, so resuming it is allowed
      // without --force because that pid is gone.
      EXPECT_NE(run->runtime_owner_id.find(":" + std::to_string(child) + ":"), std::string::npos)
          << "owner " << run->runtime_owner_id << " is not the child " << child;
      EXPECT_TRUE(OwnerIsDeadLocalProcess(run->runtime_owner_id)) << run->runtime_owner_id;
    }
    ResumeAndCheck(*store, CommittedOutputs(*store), ExecutionCounts());
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(CrashPoints, EngineCrashPointTest,
                         ::testing::Combine(::testing::Values(Backend::kSqlite, Backend::kPostgres),
                                            ::testing::Values(CrashPoint::kBeforeCommit,
                                                              CrashPoint::kAfterCommit)),
                         [](const auto& info) {
                           return BackendName(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) == CrashPoint::kBeforeCommit
                                       ? "BeforeCommit"
                                       : "AfterCommit");
                         });

// A live owner in another process is respected: a resume while the child that
// owns the run is still alive (stopped, not dead) is refused without force.
TEST(EngineCrashPoint, ResumeRefusedWhileTheOwnerLives) {
  TempDir dir;
  ResetExecutions();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = dir.path() + "/runs.db"});
    if (!s.ok()) _exit(kChildNoStore);
    // Stop for good right after the first commit (the run exists, owned by us).
    class Stopping : public StoreWrapper {
     public:
      Stopping(Store* t, int fd) : StoreWrapper(t), fd_(fd) {}
      Result<std::vector<int64_t>> Commit(const WriteBatch& b) override {
        Result<std::vector<int64_t>> r = StoreWrapper::Commit(b);
        char c = 'x';
        (void)!write(fd_, &c, 1);
        pause();
        _exit(0);
      }

     private:
      int fd_;
    } stopping(s->get(), ready[1]);
    (void)RunWorkflow(FaultWorkflow(), stopping, RunOptions{.run_id = kRunId});
    _exit(kChildRunEnded);
  }
  close(ready[1]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);

  std::unique_ptr<Store> store = OpenTestStore(Backend::kSqlite, dir.path());
  ASSERT_NE(store, nullptr);
  Result<RunResult> refused =
      RunWorkflow(FaultWorkflow(), *store, RunOptions{.run_id = kRunId, .resume = true});
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition)
      << refused.status().ToString();

  kill(child, SIGKILL);
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ResumeAndCheck(*store, CommittedOutputs(*store), ExecutionCounts());
}

}  // namespace
}  // namespace smithers
