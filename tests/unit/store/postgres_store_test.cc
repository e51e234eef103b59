// The PostgreSQL store: the conformance suite on a real server (one schema
// per test), plus what only PostgreSQL has (the dialect rewrite, several
// processes migrating at once, URLs and their passwords).
#include "store/postgres/postgres_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pg_test_util.h"
#include "smithers/store.h"
#include "store/sql/statements.h"
#include "store/sql/tables.h"
#include "store_conformance.h"
#include "store_test_util.h"

namespace smithers::store {
namespace {

Result<std::unique_ptr<Store>> OpenPostgresInDir(const std::string& dir) {
  SMITHERS_ASSIGN_OR_RETURN(std::string url, PgTestSchemaUrl(dir));
  const std::string key = dir + "/audit.key";
  if (!std::ifstream(key).good()) std::ofstream(key) << "0123456789abcdef0123456789abcdef\n";
  return OpenStore(url, {.audit_key = "file:" + key});
}

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"Postgres", OpenPostgresInDir}),
                         StoreBackendName);

// Rows of `sql` on the test schema of `dir`, each column as text.
std::vector<std::string> Column(const std::string& dir, const std::string& sql) {
  Result<std::string> url = PgTestSchemaUrl(dir);
  EXPECT_TRUE(url.ok()) << url.status().ToString();
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(url->c_str()), PQfinish);
  std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(conn.get(), sql.c_str()), PQclear);
  EXPECT_EQ(PQresultStatus(result.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(result.get());
  std::vector<std::string> values;
  for (int i = 0; i < PQntuples(result.get()); ++i)
    values.emplace_back(PQgetvalue(result.get(), i, 0));
  return values;
}

TEST(PostgresStoreTest, ProcessesStartingAtOnceMigrateOnce) {
  TempDir dir;
  STORE_ASSERT_OK_AND_ASSIGN(std::string url, PgTestSchemaUrl(dir.path()));  // the schema, empty
  std::vector<std::thread> threads;
  std::vector<Status> opened(6);
  for (size_t i = 0; i < opened.size(); ++i) {
    threads.emplace_back([&, i] {
      Result<std::unique_ptr<Store>> store = OpenPostgresInDir(dir.path());
      opened[i] = store.status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const Status& status : opened) EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Column(dir.path(), "SELECT id::text FROM _smithers_schema_migrations ORDER BY id"),
            std::vector<std::string>{"1"});
}

// Two connections appending to one run at once: seqs 1..N, no gap, no
// duplicate (every write transaction is serialized by _smithers_commits).
TEST(PostgresStoreTest, ConcurrentWritersKeepEventSeqsGapless) {
  TempDir dir;
  STORE_ASSERT_OK_AND_ASSIGN(auto setup, OpenPostgresInDir(dir.path()));
  WriteBatch run;
  run.UpsertRun({.run_id = "r", .workflow_name = "w", .status = RunStatus::kRunning});
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> none, setup->Commit(run));
  EXPECT_TRUE(none.empty());
  constexpr int kPerWriter = 40;
  std::vector<std::thread> writers;
  std::vector<Status> failures(3);
  for (size_t w = 0; w < failures.size(); ++w) {
    writers.emplace_back([&, w] {
      Result<std::unique_ptr<Store>> store = OpenPostgresInDir(dir.path());
      if (!store.ok()) {
        failures[w] = store.status();
        return;
      }
      for (int i = 0; i < kPerWriter; ++i) {
        WriteBatch batch;
        batch.AppendEvent("r", "E", {{"w", w}, {"i", i}}, 1);
        batch.AppendEvent("r", "E", {{"w", w}, {"i", i}}, 1);
        Result<std::vector<int64_t>> seqs = (*store)->Commit(batch);
        if (!seqs.ok()) {
          failures[w] = seqs.status();
          return;
        }
        if (seqs->size() != 2 || (*seqs)[1] != (*seqs)[0] + 1) {
          failures[w] = InternalError("a batch's two events are not consecutive");
          return;
        }
      }
    });
  }
  for (std::thread& t : writers) t.join();
  for (const Status& status : failures) EXPECT_TRUE(status.ok()) << status.ToString();
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> events, setup->ListEvents("r", 0, -1));
  ASSERT_EQ(events.size(), failures.size() * kPerWriter * 2);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq, static_cast<int64_t>(i + 1));
}

// The rewrite of SQLite's dialect, on the statements that need each rule.
TEST(PostgresStoreTest, StatementsAreRewrittenIntoPostgresDialect) {
  EXPECT_EQ(PostgresSqlForTesting(kClaimRun),
            "UPDATE _smithers_runs SET runtime_owner_id = $3, heartbeat_at_ms = $4 "
            "WHERE run_id = $1 AND runtime_owner_id IS NOT DISTINCT FROM $2");
  EXPECT_EQ(PostgresSqlForTesting(kListEvents),
            "SELECT run_id, seq, timestamp_ms, type, payload_json FROM _smithers_events "
            "WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT NULLIF($3::bigint, -1)");
  EXPECT_EQ(PostgresSqlForTesting(kPutModule),
            "INSERT INTO _smithers_modules(revision, path, source, created_at_ms) "
            "VALUES($1, $2, $3, $4) ON CONFLICT DO NOTHING");
  EXPECT_EQ(PostgresSqlForTesting(kPutCache),
            "INSERT INTO _smithers_cache(cache_key, created_at_ms, workflow_name, node_id, "
            "output_table, schema_sig, payload_json) VALUES($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (cache_key) DO UPDATE SET created_at_ms = excluded.created_at_ms, "
            "workflow_name = excluded.workflow_name, node_id = excluded.node_id, "
            "output_table = excluded.output_table, schema_sig = excluded.schema_sig, "
            "payload_json = excluded.payload_json");
  // NULL sorts first ascending and last descending, as in SQLite.
  EXPECT_NE(PostgresSqlForTesting(kListRuns).find(
                "ORDER BY created_at_ms DESC NULLS LAST, run_id DESC LIMIT NULLIF($1::bigint, -1)"),
            std::string::npos)
      << PostgresSqlForTesting(kListRuns);
  EXPECT_NE(PostgresSqlForTesting(kListAttempts)
                .find("ORDER BY started_at_ms NULLS FIRST, node_id, iteration, attempt"),
            std::string::npos)
      << PostgresSqlForTesting(kListAttempts);
}

TEST(PostgresStoreTest, ReadOnlyOpenOfAnEmptySchemaCreatesNothing) {
  TempDir dir;
  STORE_ASSERT_OK_AND_ASSIGN(std::string url, PgTestSchemaUrl(dir.path()));
  Result<std::unique_ptr<Store>> store = OpenStore(url, {.read_only = true});
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
  EXPECT_TRUE(Column(dir.path(),
                     "SELECT table_name::text FROM information_schema.tables "
                     "WHERE table_schema = current_schema()")
                  .empty());
}

TEST(PostgresStoreTest, AWriteThroughAReadOnlyStoreIsRefused) {
  TempDir dir;
  STORE_ASSERT_OK_AND_ASSIGN(auto created, OpenPostgresInDir(dir.path()));
  STORE_ASSERT_OK_AND_ASSIGN(std::string url, PgTestSchemaUrl(dir.path()));
  STORE_ASSERT_OK_AND_ASSIGN(auto store, OpenStore(url, {.read_only = true}));
  WriteBatch batch;
  batch.UpsertRun({.run_id = "r", .workflow_name = "w", .status = RunStatus::kRunning});
  EXPECT_EQ(store->Commit(batch).status().code(), StatusCode::kFailedPrecondition);
  STORE_ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> runs, store->ListRuns({}));
  EXPECT_TRUE(runs.empty());
}

TEST(PostgresStoreTest, AnAuditedWriteNeedsAKeyReference) {
  TempDir dir;
  STORE_ASSERT_OK_AND_ASSIGN(auto created, OpenPostgresInDir(dir.path()));
  STORE_ASSERT_OK_AND_ASSIGN(std::string url, PgTestSchemaUrl(dir.path()));
  STORE_ASSERT_OK_AND_ASSIGN(auto store, OpenStore(url));  // no audit key
  Status audited = store->Audited({.actor = "ann", .actor_via = "os", .action = "test"},
                                  [] { return Status::Ok(); });
  EXPECT_EQ(audited.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(audited.message().find("--audit-key"), std::string::npos) << audited.message();
}

TEST(PostgresStoreTest, AnUnreachableServerIsUnavailableAndThePasswordIsNotShown) {
  Result<std::unique_ptr<Store>> store =
      OpenStore("postgresql://app:hunter2@/db?host=/nonexistent-smithers-socket-dir");
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_EQ(store.status().message().find("hunter2"), std::string::npos)
      << store.status().message();
}

// store/sql/tables.h lists every table and column db copy moves: a
// migration that adds one must add it there too.
TEST(PostgresStoreTest, TheCopyCatalogNamesEveryTableAndColumn) {
  TempDir dir;
  STORE_ASSERT_OK_AND_ASSIGN(auto created, OpenPostgresInDir(dir.path()));
  std::vector<std::string> in_db =
      Column(dir.path(),
             "SELECT table_name || '.' || column_name FROM information_schema.columns "
             "WHERE table_schema = current_schema() AND table_name NOT IN "
             "('_smithers_schema_migrations', '_smithers_commits') ORDER BY 1");
  std::vector<std::string> listed;
  for (const TableDef& table : StoreTables()) {
    for (const TableColumn& column : table.columns) {
      listed.push_back(std::string(table.name) + "." + std::string(column.name));
    }
  }
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(in_db, listed);
}

// db copy's path: SQLite -> PostgreSQL -> SQLite, every row the same.
TEST(PostgresStoreTest, ACopyAcrossBackendsAndBackKeepsEveryRow) {
  TempDir dir;
  STORE_ASSERT_OK_AND_ASSIGN(auto sqlite, OpenSqliteStore({.path = dir.path() + "/a.db"}));
  WriteBatch batch;
  batch.UpsertRun({.run_id = "r", .workflow_name = "w", .status = RunStatus::kRunning});
  batch.AppendEvent("r", "E", {{"s", "\u00e9\u4e2d"}}, 1);
  ASSERT_TRUE(sqlite->Commit(batch).ok());
  STORE_ASSERT_OK(sqlite->PutModuleSource(
      {.revision = "rev", .path = "/w.lua", .source = std::string("\xff\x00\x01", 3)}));
  auto copy = [](Store& from, Store& to) {
    STORE_ASSERT_OK_AND_ASSIGN(std::unique_ptr<StoreImport> import, to.BeginImport());
    for (const std::string& table : StoreTableNames()) {
      STORE_ASSERT_OK(
          from.ExportTable(table, [&](const Json& row) { return import->Add(table, row); }));
    }
    STORE_ASSERT_OK(import->Commit());
  };
  STORE_ASSERT_OK_AND_ASSIGN(auto pg, OpenPostgresInDir(dir.path()));
  copy(*sqlite, *pg);
  STORE_ASSERT_OK_AND_ASSIGN(auto back, OpenSqliteStore({.path = dir.path() + "/b.db"}));
  copy(*pg, *back);
  for (const std::string& table : StoreTableNames()) {
    std::vector<Json> a;
    std::vector<Json> b;
    STORE_ASSERT_OK(sqlite->ExportTable(table, [&](const Json& row) {
      a.push_back(row);
      return Status::Ok();
    }));
    STORE_ASSERT_OK(back->ExportTable(table, [&](const Json& row) {
      b.push_back(row);
      return Status::Ok();
    }));
    EXPECT_EQ(a, b) << table;
  }
  STORE_ASSERT_OK_AND_ASSIGN(std::optional<ModuleSource> module, back->GetModuleSource("rev"));
  ASSERT_TRUE(module.has_value());
  EXPECT_EQ(module->source, std::string("\xff\x00\x01", 3));
}

}  // namespace
}  // namespace smithers::store
