// The SQLite store: the conformance suite, plus what only SQLite has (pragmas,
// migrations, the file other tools read, several connections to one file).
#include "store/sqlite/sqlite_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "smithers/store.h"
#include "store/sql/tables.h"
#include "store_conformance.h"
#include "store_test_util.h"

namespace smithers::store {
namespace {

Result<std::unique_ptr<Store>> OpenSqliteInDir(const std::string& dir) {
  return OpenSqliteStore({.path = dir + "/smithers.db"});
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"Sqlite", OpenSqliteInDir}),
                         StoreBackendName);

// "1" .. the latest migration: what a database opened by this build records.
std::vector<std::string> AllMigrationIds() {
  std::vector<std::string> ids;
  for (int i = 1; i <= StoreSchemaVersion(); ++i) ids.push_back(std::to_string(i));
  return ids;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  SqliteOptions Options() const { return {.path = path_}; }

  // Runs SQL on a separate connection, as a user with the sqlite3 shell would.
  std::vector<SqlRowForTesting> Sql(const std::string& sql) {
    Result<std::vector<SqlRowForTesting>> rows = ExecSqlForTesting(path_, sql);
    EXPECT_TRUE(rows.ok()) << sql << ": " << rows.status().ToString();
    return rows.ok() ? *rows : std::vector<SqlRowForTesting>();
  }

  std::vector<std::string> Column(const std::string& sql) {
    std::vector<std::string> out;
    for (const SqlRowForTesting& row : Sql(sql)) out.push_back(row.at(0).value_or("NULL"));
    return out;
  }

  TempDir dir_;
  std::string path_ = dir_.path() + "/nested/deeper/smithers.db";
};

TEST_F(SqliteStoreTest, CreatesParentDirectoriesAndUsesWal) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  EXPECT_TRUE(std::filesystem::exists(path_));
  EXPECT_EQ(Column("PRAGMA journal_mode"), std::vector<std::string>{"wal"});
}

TEST_F(SqliteStoreTest, SynchronousMustBeFullOrNormal) {
  for (const char* ok : {"FULL", "full", "NORMAL", "Normal"}) {
    SqliteOptions options = Options();
    options.synchronous = ok;
    STORE_EXPECT_OK(OpenSqliteStore(options));
  }
  for (const char* bad : {"OFF", "EXTRA", "", "FULL; DROP TABLE x"}) {
    SqliteOptions options = Options();
    options.synchronous = bad;
    EXPECT_EQ(OpenSqliteStore(options).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(OpenSqliteStore({.path = ""}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, RecordsEveryMigrationOnceAcrossReopens) {
  EXPECT_EQ(StoreSchemaVersion(), 14);
  for (int i = 0; i < 3; ++i) STORE_ASSERT_OK(OpenSqliteStore(Options()));
  std::vector<SqlRowForTesting> rows =
      Sql("SELECT id, name, applied_at_ms > 0, length(checksum) FROM _smithers_schema_migrations "
          "ORDER BY id");
  ASSERT_EQ(rows.size(), 14u);
  EXPECT_EQ(rows[0], (SqlRowForTesting{"1", "initial_tables", "1", "64"}));
  EXPECT_EQ(rows[1], (SqlRowForTesting{"2", "indexes", "1", "64"}));
  EXPECT_EQ(rows[2], (SqlRowForTesting{"3", "cache", "1", "64"}));
  EXPECT_EQ(rows[3], (SqlRowForTesting{"4", "approvals_and_signals", "1", "64"}));
  EXPECT_EQ(rows[4], (SqlRowForTesting{"5", "tokens_and_cron", "1", "64"}));
  EXPECT_EQ(rows[5], (SqlRowForTesting{"6", "module_sources", "1", "64"}));
  EXPECT_EQ(rows[6], (SqlRowForTesting{"7", "module_requires", "1", "64"}));
  EXPECT_EQ(rows[7], (SqlRowForTesting{"8", "approval_deciders", "1", "64"}));
  EXPECT_EQ(rows[8], (SqlRowForTesting{"9", "node_mounted", "1", "64"}));
  EXPECT_EQ(rows[9], (SqlRowForTesting{"10", "events_from_one", "1", "64"}));
  EXPECT_EQ(rows[10], (SqlRowForTesting{"11", "launch_keys", "1", "64"}));
  EXPECT_EQ(rows[11], (SqlRowForTesting{"12", "maintenance", "1", "64"}));
  EXPECT_EQ(rows[12], (SqlRowForTesting{"13", "audit", "1", "64"}));
  EXPECT_EQ(rows[13], (SqlRowForTesting{"14", "sandboxes", "1", "64"}));
}

// Golden: events are numbered from 1 (migration 10). A version-9 database's
// runs, numbered from 0, move up by one in order, and new events follow.
TEST_F(SqliteStoreTest, UpgradesAVersion9DatabaseToEventsFromOne) {
  {
    STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> old,
                               OpenSqliteStoreForTesting(Options(), /*max_migration=*/9));
    WriteBatch batch;
    batch.UpsertRun(MakeRun("r1"));
    batch.UpsertRun(MakeRun("r2"));
    STORE_ASSERT_OK(old->Commit(batch));
  }
  // Rows as a version-9 build wrote them.
  Sql("INSERT INTO _smithers_events(run_id, seq, timestamp_ms, type, payload_json) VALUES "
      "('r1', 0, 1, 'RunStarted', '{}'), ('r1', 1, 2, 'NodeStarted', '{}'), "
      "('r1', 2, 3, 'RunFinished', '{}'), ('r2', 0, 4, 'RunStarted', '{}')");
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  EXPECT_EQ(Column("SELECT run_id || ':' || seq || ':' || type FROM _smithers_events "
                   "ORDER BY run_id, seq"),
            (std::vector<std::string>{"r1:1:RunStarted", "r1:2:NodeStarted", "r1:3:RunFinished",
                                      "r2:1:RunStarted"}));
  WriteBatch more;
  more.AppendEvent("r2", "RunFinished", {}, 5);
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> seqs, store->Commit(more));
  EXPECT_EQ(seqs, std::vector<int64_t>{2});
  // Reopening migrates nothing twice.
  store.reset();
  STORE_ASSERT_OK(OpenSqliteStore(Options()));
  EXPECT_EQ(Column("SELECT seq FROM _smithers_events WHERE run_id = 'r1' ORDER BY seq"),
            (std::vector<std::string>{"1", "2", "3"}));
}

TEST_F(SqliteStoreTest, UpgradesAVersion7DatabaseToApprovalDeciders) {
  {
    STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> old,
                               OpenSqliteStoreForTesting(Options(), /*max_migration=*/7));
    WriteBatch batch;
    RunRecord run = MakeRun("r1");
    run.status = RunStatus::kWaitingApproval;
    batch.UpsertRun(run);
    STORE_ASSERT_OK(old->Commit(batch));
  }
  // A row written by a version-7 build: none of the new columns exist.
  Sql("INSERT INTO _smithers_approvals(run_id, node_id, iteration, status, requested_at_ms, "
      "owner, original_owner, decided_at_ms, decided_by) "
      "VALUES('r1', 'gate', 0, 'approved', 5, 'alice', 'alice', 9, 'alice')");
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  EXPECT_EQ(Column("SELECT id FROM _smithers_schema_migrations ORDER BY id"), AllMigrationIds());
  STORE_ASSERT_OK_AND_ASSIGN(auto rows, store->ListApprovals({}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].decided_by, "alice");
  EXPECT_EQ(rows[0].decided_via, "");
  EXPECT_FALSE(rows[0].decided_override);
  EXPECT_TRUE(rows[0].allowed_users.empty());
  EXPECT_TRUE(rows[0].allowed_scopes.empty());
}

TEST_F(SqliteStoreTest, CorruptAllowedUsersIsDataLossNotACrash) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  WriteBatch batch;
  batch.UpsertRun(MakeRun("r1"));
  batch.RequestApproval({.run_id = "r1", .node_id = "gate", .status = ApprovalStatus::kRequested});
  STORE_ASSERT_OK(store->Commit(batch));
  Sql("UPDATE _smithers_approvals SET allowed_users_json = '{\"not\": \"a list\"}'");
  Result<std::vector<ApprovalRecord>> rows = store->ListApprovals({});
  EXPECT_EQ(rows.status().code(), StatusCode::kDataLoss) << rows.status().ToString();
  EXPECT_NE(rows.status().message().find("allowed_users_json"), std::string::npos);
}

TEST_F(SqliteStoreTest, UpgradesADatabaseLeftByAnOlderBuild) {
  {
    STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> old,
                               OpenSqliteStoreForTesting(Options(), /*max_migration=*/1));
    WriteBatch batch;
    batch.UpsertRun(MakeRun("r1"));
    batch.AppendEvent("r1", "RunStarted", {}, 1);
    STORE_ASSERT_OK(old->Commit(batch));
  }
  EXPECT_EQ(Column("SELECT id FROM _smithers_schema_migrations"), std::vector<std::string>{"1"});
  EXPECT_EQ(Column("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                   "name = '_smithers_runs_by_status_heartbeat'"),
            std::vector<std::string>{"0"});

  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  EXPECT_EQ(Column("SELECT id FROM _smithers_schema_migrations ORDER BY id"), AllMigrationIds());
  EXPECT_EQ(Column("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                   "name = '_smithers_runs_by_status_heartbeat'"),
            std::vector<std::string>{"1"});
  STORE_ASSERT_OK_AND_ASSIGN(std::optional<CacheEntry> none, store->GetCache("k"));
  EXPECT_FALSE(none.has_value());
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<SignalRecord> signals, store->ListSignals("r1"));
  EXPECT_TRUE(signals.empty());
  STORE_ASSERT_OK_AND_ASSIGN(RunRecord run, store->GetRun("r1"));
  EXPECT_EQ(run.input, MakeRun("r1").input);
  WriteBatch more;
  more.AppendEvent("r1", "RunFinished", {}, 2);
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> seqs, store->Commit(more));
  EXPECT_EQ(seqs, std::vector<int64_t>{2});
}

// Golden: _smithers_nodes.mounted is 1 or 0 (migration 9), read back as the
// record's flag; a row written before the column existed reads as mounted.
TEST_F(SqliteStoreTest, NodeMountedColumnRoundTrips) {
  {
    STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> old,
                               OpenSqliteStoreForTesting(Options(), /*max_migration=*/8));
    STORE_ASSERT_OK(old->Commit(WriteBatch{}));
  }
  Sql("INSERT INTO _smithers_runs(run_id) VALUES('r1')");
  Sql("INSERT INTO _smithers_nodes(run_id, node_id, iteration, state) VALUES('r1', 'old', 0, "
      "'finished')");
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  WriteBatch batch;
  batch.UpsertNode(
      {.run_id = "r1", .node_id = "gone", .state = NodeState::kCancelled, .mounted = false});
  batch.UpsertNode({.run_id = "r1", .node_id = "here", .state = NodeState::kPending});
  STORE_ASSERT_OK(store->Commit(batch));
  EXPECT_EQ(Sql("SELECT node_id, mounted FROM _smithers_nodes ORDER BY node_id"),
            (std::vector<SqlRowForTesting>{{"gone", "0"}, {"here", "1"}, {"old", "1"}}));
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<NodeRecord> nodes, store->ListNodes("r1"));
  ASSERT_EQ(nodes.size(), 3u);
  for (const NodeRecord& n : nodes) EXPECT_EQ(n.mounted, n.node_id != "gone") << n.node_id;
}

TEST_F(SqliteStoreTest, UpgradesAVersion3DatabaseToApprovalsAndSignals) {
  {
    STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> old,
                               OpenSqliteStoreForTesting(Options(), /*max_migration=*/3));
    WriteBatch batch;
    RunRecord run = MakeRun("r1");
    run.status = RunStatus::kWaitingApproval;
    batch.UpsertRun(run);
    batch.AppendEvent("r1", "RunStarted", {}, 1);
    batch.PutCache({.cache_key = "k", .node_id = "a", .payload = {{"x", 1}}});
    STORE_ASSERT_OK(old->Commit(batch));
  }
  EXPECT_EQ(Column("SELECT count(*) FROM sqlite_master WHERE name IN "
                   "('_smithers_approvals', '_smithers_signals')"),
            std::vector<std::string>{"0"});

  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  EXPECT_EQ(Column("SELECT id FROM _smithers_schema_migrations ORDER BY id"), AllMigrationIds());
  EXPECT_EQ(
      Column("SELECT name FROM sqlite_master WHERE type = 'index' AND name IN "
             "('_smithers_approvals_by_status', '_smithers_signals_by_name') ORDER BY name"),
      (std::vector<std::string>{"_smithers_approvals_by_status", "_smithers_signals_by_name"}));
  STORE_ASSERT_OK_AND_ASSIGN(std::optional<CacheEntry> cached, store->GetCache("k"));
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->payload, (Json{{"x", 1}}));
  STORE_ASSERT_OK_AND_ASSIGN(auto waiting, store->ListRuns({.waiting = true}));
  ASSERT_EQ(waiting.size(), 1u);

  // The old run takes approvals and signals, numbered after its old events.
  WriteBatch request;
  request.RequestApproval(
      {.run_id = "r1", .node_id = "gate", .status = ApprovalStatus::kRequested});
  STORE_ASSERT_OK(store->Commit(request));
  STORE_ASSERT_OK_AND_ASSIGN(SignalRecord sig, store->AppendSignal({.run_id = "r1", .name = "go"}));
  EXPECT_EQ(sig.seq, 0);
  STORE_ASSERT_OK(store->DecideApproval({.run_id = "r1", .node_id = "gate", .approved = true}, 5));
  STORE_ASSERT_OK_AND_ASSIGN(auto events, store->ListEvents("r1", -1, 10));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].type, "SignalReceived");
  EXPECT_EQ(events[2].type, "ApprovalGranted");
  EXPECT_EQ(events[2].seq, 3);
}

TEST_F(SqliteStoreTest, ApprovalAndSignalStatusesAreChecked) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  WriteBatch setup;
  setup.UpsertRun(MakeRun("r1"));
  STORE_ASSERT_OK(store->Commit(setup));
  STORE_ASSERT_OK_AND_ASSIGN(SignalRecord sig, store->AppendSignal({.run_id = "r1", .name = "go"}));

  WriteBatch bad_request;
  bad_request.AppendEvent("r1", "E", {}, 1);
  bad_request.RequestApproval(
      {.run_id = "r1", .node_id = "a", .status = static_cast<ApprovalStatus>(99)});
  Result<std::vector<int64_t>> refused = store->Commit(bad_request);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("_smithers_approvals"), std::string::npos)
      << refused.status().ToString();

  sig.status = static_cast<SignalStatus>(99);
  WriteBatch bad_signal;
  bad_signal.AppendEvent("r1", "E", {}, 1);
  bad_signal.ConsumeSignal(sig);
  refused = store->Commit(bad_signal);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << refused.status().ToString();

  EXPECT_EQ(Column("SELECT count(*) FROM _smithers_approvals"), std::vector<std::string>{"0"});
  EXPECT_EQ(Column("SELECT status FROM _smithers_signals"), std::vector<std::string>{"pending"});
  EXPECT_EQ(Column("SELECT count(*) FROM _smithers_events"), std::vector<std::string>{"1"});
}

TEST_F(SqliteStoreTest, StoresZeroTimesAndEmptyJsonOfWaitsAsNull) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  WriteBatch batch;
  batch.UpsertRun(MakeRun("r1"));
  batch.RequestApproval({.run_id = "r1", .node_id = "a", .status = ApprovalStatus::kRequested});
  STORE_ASSERT_OK(store->Commit(batch));
  STORE_ASSERT_OK(store->AppendSignal({.run_id = "r1", .name = "go"}));
  EXPECT_EQ(Sql("SELECT requested_at_ms, escalated_at_ms, decided_at_ms, escalate_after_ms, "
                "request_json, on_deny, fallback_owner FROM _smithers_approvals"),
            (std::vector<SqlRowForTesting>{
                {std::nullopt, std::nullopt, std::nullopt, "0", "{}", "fail", ""}}));
  EXPECT_EQ(Sql("SELECT payload_json, received_at_ms, consumed_at_ms, rejection_json, "
                "correlation_id FROM _smithers_signals"),
            (std::vector<SqlRowForTesting>{
                {std::nullopt, std::nullopt, std::nullopt, std::nullopt, ""}}));
}

// Two processes deciding the same approval, or consuming the same signal:
// the second one is refused, whichever connection it comes from.
TEST_F(SqliteStoreTest, DecisionsAndConsumptionAreOnceAcrossConnections) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> a, OpenSqliteStore(Options()));
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> b, OpenSqliteStore(Options()));
  WriteBatch batch;
  batch.UpsertRun(MakeRun("r1"));
  batch.RequestApproval({.run_id = "r1", .node_id = "gate", .status = ApprovalStatus::kRequested});
  STORE_ASSERT_OK(a->Commit(batch));
  STORE_ASSERT_OK_AND_ASSIGN(SignalRecord sig, b->AppendSignal({.run_id = "r1", .name = "go"}));

  STORE_ASSERT_OK(a->DecideApproval(
      {.run_id = "r1", .node_id = "gate", .approved = true, .decided_by = "ann"}, 10));
  Result<ApprovalRecord> late =
      b->DecideApproval({.run_id = "r1", .node_id = "gate", .decided_by = "ben"}, 11);
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition) << late.status().ToString();

  sig.status = SignalStatus::kConsumed;
  sig.consumed_by_node = "w";
  WriteBatch consume;
  consume.ConsumeSignal(sig);
  STORE_ASSERT_OK(b->Commit(consume));
  EXPECT_EQ(a->Commit(consume).status().code(), StatusCode::kAborted);
  EXPECT_EQ(Column("SELECT type FROM _smithers_events ORDER BY seq"),
            (std::vector<std::string>{"SignalReceived", "ApprovalGranted"}));
}

// Escalation runs on every supervisor tick: with nothing due it must not wait
// for (or take) the write lock.
TEST_F(SqliteStoreTest, EscalationWithNothingDueTakesNoWriteLock) {
  SqliteOptions options = Options();
  options.busy_timeout_ms = 0;
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(options));
  WriteBatch batch;
  batch.UpsertRun(MakeRun("r1"));
  batch.RequestApproval({.run_id = "r1",
                         .node_id = "gate",
                         .status = ApprovalStatus::kRequested,
                         .requested_at_ms = 100,
                         .owner = "alice",
                         .fallback_owner = "bob",
                         .escalate_after_ms = 50});
  STORE_ASSERT_OK(store->Commit(batch));

  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WriteLockForTesting> lock,
                             WriteLockForTesting::Acquire(path_));
  STORE_ASSERT_OK_AND_ASSIGN(auto none, store->EscalateDueApprovals("", 149));
  EXPECT_TRUE(none.empty());
  // Something due does need the lock, and reports the busy database.
  Result<std::vector<ApprovalRecord>> blocked = store->EscalateDueApprovals("", 150);
  EXPECT_EQ(blocked.status().code(), StatusCode::kUnavailable) << blocked.status().ToString();
  lock.reset();
  STORE_ASSERT_OK_AND_ASSIGN(auto due, store->EscalateDueApprovals("", 150));
  EXPECT_EQ(due.size(), 1u);
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerBuild) {
  STORE_ASSERT_OK(OpenSqliteStore(Options()));
  Sql("INSERT INTO _smithers_schema_migrations(id, name, applied_at_ms, checksum) "
      "VALUES(9999, 'future', 1, 'x')");
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find(
                "database schema version 9999 was written by a newer Smithers (this build "
                "knows up to " +
                std::to_string(StoreSchemaVersion()) + "); upgrade smithers"),
            std::string::npos)
      << store.status().ToString();
  // Nothing was changed by the refused open.
  EXPECT_EQ(Column("SELECT count(*) FROM _smithers_schema_migrations"),
            std::vector<std::string>{std::to_string(StoreSchemaVersion() + 1)});
}

TEST_F(SqliteStoreTest, ChangeStampSeesCommitsOfAnotherConnection) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> reader, OpenSqliteStore(Options()));
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> writer, OpenSqliteStore(Options()));
  STORE_ASSERT_OK_AND_ASSIGN(std::string before, reader->ChangeStamp());
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<TokenGrant> tokens, writer->ListTokens());
  STORE_ASSERT_OK_AND_ASSIGN(std::string same, reader->ChangeStamp());
  EXPECT_EQ(before, same) << "another connection's read";
  STORE_ASSERT_OK(writer->PutToken({.token_id = "t", .token_hash = "h", .issued_at_ms = 1}));
  STORE_ASSERT_OK_AND_ASSIGN(std::string after, reader->ChangeStamp());
  EXPECT_NE(before, after);
}

TEST_F(SqliteStoreTest, ReadScopeReadsOneSnapshotAndWritesInsideCommitAtOnce) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> reader, OpenSqliteStore(Options()));
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> writer, OpenSqliteStore(Options()));
  auto has = [](Store& store, const std::string& hash) {
    Result<std::optional<TokenGrant>> grant = store.FindToken(hash);
    EXPECT_TRUE(grant.ok()) << grant.status().ToString();
    return grant.ok() && grant->has_value();
  };
  STORE_ASSERT_OK(writer->PutToken({.token_id = "t1", .token_hash = "h1", .issued_at_ms = 1}));
  {
    ReadScope outer(*reader);
    EXPECT_TRUE(has(*reader, "h1"));
    {
      ReadScope inner(*reader);  // nested: the same snapshot, not a new one
    }
    STORE_ASSERT_OK(writer->PutToken({.token_id = "t2", .token_hash = "h2", .issued_at_ms = 1}));
    EXPECT_FALSE(has(*reader, "h2")) << "a commit after the snapshot began is not seen in it";
  }
  EXPECT_TRUE(has(*reader, "h2")) << "seen once the scope ended";

  // A write inside a scope is committed by itself, before the scope ends:
  // one statement, and a transaction of several.
  {
    ReadScope scope(*reader);
    EXPECT_TRUE(has(*reader, "h1"));
    STORE_ASSERT_OK(reader->PutToken({.token_id = "t3", .token_hash = "h3", .issued_at_ms = 1}));
    EXPECT_TRUE(has(*writer, "h3"));
    STORE_ASSERT_OK(reader->RevokeToken("t1", 5, ""));
    STORE_ASSERT_OK_AND_ASSIGN(std::optional<TokenGrant> t1, writer->FindToken("h1"));
    ASSERT_TRUE(t1.has_value());
    EXPECT_EQ(t1->revoked_at_ms, 5);
    WriteBatch batch;
    batch.UpsertRun({.run_id = "r1", .workflow_name = "w", .status = RunStatus::kRunning});
    STORE_ASSERT_OK(reader->Commit(batch));
    STORE_ASSERT_OK(writer->GetRun("r1"));
  }
  STORE_ASSERT_OK(reader->GetRun("r1"));
}

TEST_F(SqliteStoreTest, RefusesAMigrationWhoseDefinitionChanged) {
  STORE_ASSERT_OK(OpenSqliteStore(Options()));
  Sql("UPDATE _smithers_schema_migrations SET checksum = 'edited' WHERE id = 1");
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
}

TEST_F(SqliteStoreTest, ConcurrentOpensOfAFreshFileMigrateOnce) {
  constexpr int kThreads = 8;
  std::vector<Status> results(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Result<std::unique_ptr<Store>> store = OpenSqliteStore(Options());
      results[i] = store.status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Column("SELECT id FROM _smithers_schema_migrations ORDER BY id"), AllMigrationIds());
}

TEST_F(SqliteStoreTest, ConcurrentWritersGetUniqueGaplessSeqs) {
  {
    STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
    WriteBatch batch;
    batch.UpsertRun(MakeRun("r1"));
    STORE_ASSERT_OK(store->Commit(batch));
  }
  constexpr int kWriters = 4;
  constexpr int kCommits = 40;
  std::vector<std::vector<int64_t>> seqs(kWriters);
  std::vector<Status> errors(kWriters);
  std::vector<std::thread> threads;
  threads.reserve(kWriters);
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      SqliteOptions options = Options();
      options.synchronous = "NORMAL";
      Result<std::unique_ptr<Store>> store = OpenSqliteStore(options);
      if (!store.ok()) {
        errors[w] = store.status();
        return;
      }
      for (int i = 0; i < kCommits; ++i) {
        WriteBatch batch;
        batch.AppendEvent("r1", "Tick", {{"writer", w}}, i + 1);
        batch.AppendEvent("r1", "Tock", {{"writer", w}}, i + 1);
        Result<std::vector<int64_t>> got = (*store)->Commit(batch);
        if (!got.ok()) {
          errors[w] = got.status();
          return;
        }
        // A batch's events are consecutive: no other writer interleaves.
        if ((*got)[1] != (*got)[0] + 1) errors[w] = InternalError("batch seqs not consecutive");
        seqs[w].insert(seqs[w].end(), got->begin(), got->end());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<int64_t> all;
  for (int w = 0; w < kWriters; ++w) {
    EXPECT_TRUE(errors[w].ok()) << errors[w].ToString();
    all.insert(seqs[w].begin(), seqs[w].end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kWriters * kCommits * 2));
  EXPECT_EQ(*all.begin(), 1);
  EXPECT_EQ(*all.rbegin(), kWriters * kCommits * 2);
}

TEST_F(SqliteStoreTest, CommitWaitsOutABriefWriteLock) {
  SqliteOptions options = Options();
  options.busy_timeout_ms = 0;  // only the store's own retries wait
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(options));
  WriteBatch create;
  create.UpsertRun(MakeRun("r1"));
  STORE_ASSERT_OK(store->Commit(create));

  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WriteLockForTesting> lock,
                             WriteLockForTesting::Acquire(path_));
  // Released once the commit met the lock and is backing off (its first
  // retry comes 50 ms after), so the commit cannot pass by coming late.
  const int64_t retries_before = BusyRetriesForTesting();
  std::atomic<bool> met_lock{false};
  std::thread releaser([&] {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (BusyRetriesForTesting() == retries_before &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    met_lock = BusyRetriesForTesting() > retries_before;
    lock.reset();
  });
  WriteBatch batch;
  batch.AppendEvent("r1", "E", {}, 1);
  Result<std::vector<int64_t>> seqs = store->Commit(batch);
  releaser.join();
  EXPECT_TRUE(met_lock) << "the commit never found the database locked";
  ASSERT_TRUE(seqs.ok()) << seqs.status().ToString();
  EXPECT_EQ(*seqs, std::vector<int64_t>{1});
}

TEST_F(SqliteStoreTest, WritesAreUnavailableWhileTheLockStaysHeld) {
  SqliteOptions options = Options();
  options.busy_timeout_ms = 0;
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(options));
  WriteBatch create;
  create.UpsertRun(MakeRun("r1"));
  STORE_ASSERT_OK(store->Commit(create));

  {
    STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WriteLockForTesting> lock,
                               WriteLockForTesting::Acquire(path_));
    WriteBatch batch;
    batch.UpsertNode({.run_id = "r1", .node_id = "a"});
    batch.AppendEvent("r1", "E", {}, 1);
    EXPECT_EQ(store->Commit(batch).status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(store->ClaimRun("r1", "", "me", 1).code(), StatusCode::kUnavailable);
    // Readers are not blocked by a writer in WAL mode.
    STORE_ASSERT_OK_AND_ASSIGN(auto nodes, store->ListNodes("r1"));
    EXPECT_TRUE(nodes.empty());
  }
  WriteBatch batch;
  batch.AppendEvent("r1", "E", {}, 1);
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> seqs, store->Commit(batch));
  EXPECT_EQ(seqs, std::vector<int64_t>{1});
}

TEST_F(SqliteStoreTest, AFileThatIsNotADatabaseIsDataLoss) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  FILE* file = fopen(path_.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  const std::string junk(8192, 'x');
  fwrite(junk.data(), 1, junk.size(), file);
  fclose(file);
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kDataLoss) << store.status().ToString();
}

TEST_F(SqliteStoreTest, ReadsSeeCommitsFromOtherConnections) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> reader, OpenSqliteStore(Options()));
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> writer, OpenSqliteStore(Options()));
  WriteBatch batch;
  batch.UpsertRun(MakeRun("r1"));
  batch.AppendEvent("r1", "A", {}, 1);
  STORE_ASSERT_OK(writer->Commit(batch));
  // A limited read leaves rows unread; it must not pin the reader's snapshot.
  STORE_ASSERT_OK_AND_ASSIGN(auto first, reader->ListEvents("r1", -1, 1));
  EXPECT_EQ(first.size(), 1u);
  WriteBatch more;
  more.AppendEvent("r1", "B", {}, 2);
  STORE_ASSERT_OK(writer->Commit(more));
  STORE_ASSERT_OK_AND_ASSIGN(auto all, reader->ListEvents("r1", -1, 100));
  EXPECT_EQ(all.size(), 2u);
}

TEST_F(SqliteStoreTest, ForeignKeysAreEnforcedAndCascade) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  WriteBatch orphan;
  orphan.UpsertAttempt({.run_id = "ghost", .node_id = "a", .attempt = 1});
  Result<std::vector<int64_t>> refused = store->Commit(orphan);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("_smithers_attempts"), std::string::npos)
      << refused.status().ToString();

  WriteBatch batch;
  batch.UpsertRun(MakeRun("r1"));
  batch.UpsertNode({.run_id = "r1", .node_id = "a"});
  batch.UpsertAttempt({.run_id = "r1", .node_id = "a", .attempt = 1});
  batch.PutOutput({.run_id = "r1", .node_id = "a", .output_table = "t", .payload = 1});
  batch.PutFrame({.run_id = "r1", .frame_no = 0});
  batch.UpsertLoop({.run_id = "r1", .loop_id = "l"});
  batch.AppendEvent("r1", "E", {}, 1);
  batch.RequestApproval({.run_id = "r1", .node_id = "a", .status = ApprovalStatus::kRequested});
  STORE_ASSERT_OK(store->Commit(batch));
  STORE_ASSERT_OK(store->AppendSignal({.run_id = "r1", .name = "go"}));
  Sql("DELETE FROM _smithers_runs WHERE run_id = 'r1'");
  for (const char* table :
       {"_smithers_nodes", "_smithers_attempts", "_smithers_outputs", "_smithers_frames",
        "_smithers_ralph", "_smithers_events", "_smithers_approvals", "_smithers_signals"}) {
    EXPECT_EQ(Column(std::string("SELECT count(*) FROM ") + table), std::vector<std::string>{"0"})
        << table;
  }
}

TEST_F(SqliteStoreTest, StoresZeroTimesAndNullJsonAsNull) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  WriteBatch batch;
  RunRecord run{.run_id = "r1", .status = RunStatus::kRunning};
  run.input = Json();
  batch.UpsertRun(run);
  STORE_ASSERT_OK(store->Commit(batch));
  std::vector<SqlRowForTesting> rows =
      Sql("SELECT created_at_ms, heartbeat_at_ms, runtime_owner_id, input_json, error_json, "
          "config_json FROM _smithers_runs");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], (SqlRowForTesting{std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                                       std::nullopt, "{}"}));
}

TEST_F(SqliteStoreTest, CorruptJsonIsDataLossNamingTheRow) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  WriteBatch batch;
  batch.UpsertRun(MakeRun("r1"));
  batch.AppendEvent("r1", "E", {}, 1);
  STORE_ASSERT_OK(store->Commit(batch));
  Sql("UPDATE _smithers_runs SET input_json = '{not json'; "
      "UPDATE _smithers_events SET payload_json = '[1,'");

  Result<RunRecord> run = store->GetRun("r1");
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(run.status().message().find("_smithers_runs row (run_id=r1)"), std::string::npos)
      << run.status().ToString();
  EXPECT_EQ(store->ListRuns({}).status().code(), StatusCode::kDataLoss);
  Result<std::vector<EventRecord>> events = store->ListEvents("r1", -1, 10);
  ASSERT_FALSE(events.ok());
  EXPECT_NE(events.status().message().find("_smithers_events"), std::string::npos);
}

// A state no version of ours wrote (a newer version's, or a hand edit) is
// refused naming the row, never read as some default state.
TEST_F(SqliteStoreTest, UnknownStateIsDataLossNamingTheRow) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  WriteBatch batch;
  batch.UpsertRun(MakeRun("r1"));
  batch.UpsertNode({.run_id = "r1", .node_id = "a", .state = NodeState::kFinished});
  batch.UpsertAttempt({.run_id = "r1", .node_id = "a", .state = AttemptState::kFinished});
  STORE_ASSERT_OK(store->Commit(batch));
  STORE_ASSERT_OK_AND_ASSIGN(RunRecord before, store->GetRun("r1"));
  EXPECT_EQ(before.status, RunStatus::kRunning);

  Sql("UPDATE _smithers_runs SET status = 'paused'; "
      "UPDATE _smithers_nodes SET state = 'done'; "
      "UPDATE _smithers_attempts SET state = 'Finished'");
  Result<RunRecord> run = store->GetRun("r1");
  EXPECT_EQ(run.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(
      run.status().message().find("_smithers_runs row (run_id=r1): \"paused\" names no state"),
      std::string::npos)
      << run.status().ToString();
  Result<std::vector<NodeRecord>> nodes = store->ListNodes("r1");
  EXPECT_EQ(nodes.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(nodes.status().message().find("\"done\""), std::string::npos);
  Result<std::vector<AttemptRecord>> attempts = store->ListAttempts("r1");
  EXPECT_EQ(attempts.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(attempts.status().message().find("_smithers_attempts"), std::string::npos);
}

TEST_F(SqliteStoreTest, OutputViewsAreQueryableWithPlainSql) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  const Json greeting = {{"type", "object"},
                         {"properties",
                          {{"message", {{"type", "string"}}},
                           {"count", {{"type", "integer"}}},
                           {"tags", {{"type", "array"}}},
                           {"ok", {{"type", "boolean"}}},
                           {"bad name", {{"type", "string"}}},
                           {"RUN_ID", {{"type", "string"}}}}}};
  STORE_ASSERT_OK(store->EnsureOutputViews({{"greeting", greeting}, {"other", greeting}}));
  WriteBatch batch;
  batch.UpsertRun(MakeRun("r1"));
  batch.PutOutput({.run_id = "r1",
                   .node_id = "greet",
                   .iteration = 0,
                   .output_table = "greeting",
                   .payload = {{"message", "Hello, Ada"},
                               {"count", 3},
                               {"tags", {"x", "y"}},
                               {"ok", true},
                               {"RUN_ID", "spoof"}},
                   .created_at_ms = 500});
  batch.PutOutput({.run_id = "r1",
                   .node_id = "greet",
                   .iteration = 1,
                   .output_table = "greeting",
                   .payload = {{"message", "again"}}});
  batch.PutOutput({.run_id = "r1", .node_id = "n", .output_table = "other", .payload = {}});
  STORE_ASSERT_OK(store->Commit(batch));

  EXPECT_EQ(Column("SELECT name FROM pragma_table_info('greeting') ORDER BY cid"),
            (std::vector<std::string>{"run_id", "node_id", "iteration", "count", "message", "ok",
                                      "tags", "created_at_ms"}));
  std::vector<SqlRowForTesting> rows =
      Sql("SELECT run_id, node_id, iteration, message, count, ok, tags, created_at_ms "
          "FROM greeting ORDER BY iteration");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0],
            (SqlRowForTesting{"r1", "greet", "0", "Hello, Ada", "3", "1", R"(["x","y"])", "500"}));
  EXPECT_EQ(rows[1], (SqlRowForTesting{"r1", "greet", "1", "again", std::nullopt, std::nullopt,
                                       std::nullopt, std::nullopt}));
  EXPECT_EQ(Column("SELECT count(*) FROM other"), std::vector<std::string>{"1"});

  // Column names are case-insensitive in SQL: of two clashing properties the
  // first (in key order) gets the column.
  const Json clash = {{"type", "object"},
                      {"properties", {{"dup", Json::object()}, {"Dup", Json::object()}}}};
  STORE_ASSERT_OK(store->EnsureOutputViews({{"clash", clash}}));
  EXPECT_EQ(Column("SELECT name FROM pragma_table_info('clash') ORDER BY cid"),
            (std::vector<std::string>{"run_id", "node_id", "iteration", "Dup", "created_at_ms"}));

  // A changed schema replaces the view.
  const Json v2 = {{"type", "object"}, {"properties", {{"summary", {{"type", "string"}}}}}};
  STORE_ASSERT_OK(store->EnsureOutputViews({{"greeting", v2}}));
  EXPECT_EQ(
      Column("SELECT name FROM pragma_table_info('greeting') ORDER BY cid"),
      (std::vector<std::string>{"run_id", "node_id", "iteration", "summary", "created_at_ms"}));
}

TEST_F(SqliteStoreTest, OutputViewNeverReplacesATable) {
  STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenSqliteStore(Options()));
  Sql("CREATE TABLE mine(x)");
  Status status = store->EnsureOutputViews({{"Mine", {{"type", "object"}}}});
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
  EXPECT_EQ(Column("SELECT type FROM sqlite_master WHERE name = 'mine'"),
            std::vector<std::string>{"table"});
}

}  // namespace
}  // namespace smithers::store

namespace smithers::store {
namespace {

// A run's first commit holds two ops per task: an op must stay the size of
// the small records (a node row, an event), not of the largest record (472
// bytes when every record was inline). 192 bytes on 64-bit libstdc++: the
// largest inline record (a cache entry, 184) and the tag.
TEST(WriteBatchTest, OpIsTheSizeOfASmallRecordNotOfTheLargest) {
  EXPECT_LE(sizeof(WriteBatch::Op), 192u);
  EXPECT_LE(sizeof(WriteBatch::Op), sizeof(CacheEntry) + 8);
  EXPECT_LT(sizeof(WriteBatch::Op), sizeof(ApprovalRecord));
}

// Boxed records are deep-copied with their op and moved with it.
TEST(WriteBatchTest, BoxedRecordsCopyAndMoveWithTheirOp) {
  WriteBatch batch;
  batch.UpsertRun(RunRecord{.run_id = "r1"});
  batch.RequestApproval(ApprovalRecord{.run_id = "r1", .node_id = "gate"});
  batch.ConsumeSignal(SignalRecord{.run_id = "r1", .seq = 7});
  WriteBatch copy = batch;
  batch.Clear();
  ASSERT_EQ(copy.size(), 3u);
  EXPECT_EQ(copy.ops()[0].run->run_id, "r1");
  EXPECT_EQ(copy.ops()[1].approval->node_id, "gate");
  EXPECT_EQ(copy.ops()[2].signal->seq, 7);
  WriteBatch::Op held = copy.ops()[1];
  WriteBatch::Op moved = std::move(held);
  EXPECT_EQ(moved.approval->node_id, "gate");
  WriteBatch::Op assigned = copy.ops()[0];
  assigned = moved;
  EXPECT_EQ(assigned.kind, WriteBatch::Op::Kind::kApproval);
  EXPECT_EQ(assigned.approval->node_id, "gate");
  EXPECT_EQ(moved.approval->node_id, "gate");
}

// store/sql/tables.h lists every table and column db copy moves: a
// migration that adds one must add it there too.
TEST(SqliteCopyCatalogTest, NamesEveryTableAndColumn) {
  TempDir dir;
  const std::string path = dir.path() + "/c.db";
  STORE_ASSERT_OK_AND_ASSIGN(auto created, OpenSqliteStore({.path = path}));
  STORE_ASSERT_OK_AND_ASSIGN(
      std::vector<SqlRowForTesting> rows,
      ExecSqlForTesting(path,
                        "SELECT m.name || '.' || p.name FROM sqlite_master m, "
                        "pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT IN "
                        "('_smithers_schema_migrations', 'sqlite_sequence') ORDER BY 1"));
  std::vector<std::string> in_db;
  for (const SqlRowForTesting& row : rows) in_db.push_back(row[0].value_or(""));
  std::vector<std::string> listed;
  for (const TableDef& table : StoreTables()) {
    for (const TableColumn& column : table.columns) {
      listed.push_back(std::string(table.name) + "." + std::string(column.name));
    }
  }
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(in_db, listed);
}

}  // namespace
}  // namespace smithers::store
