// The PostgreSQL Store: the SQL store (store/sql/sql_store.h) on libpq
// (pg_db.h), with kStatements rewritten into PostgreSQL's dialect.
#include <algorithm>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smithers/clock.h"
#include "smithers/store.h"
#include "store/audit.h"
#include "store/output_views.h"
#include "store/postgres/pg_db.h"
#include "store/postgres/pg_migrations.h"
#include "store/postgres/postgres_store.h"
#include "store/sql/sql_store.h"
#include "store/sql/statements.h"

namespace smithers::store {
namespace {

// The key columns of the tables kStatements write with INSERT OR REPLACE,
// which PostgreSQL spells as an upsert of every listed column.
const std::map<std::string, std::vector<std::string>, std::less<>>& PrimaryKeys() {
  static const auto* keys = new std::map<std::string, std::vector<std::string>, std::less<>>{
      {"_smithers_cache", {"cache_key"}},
      {"_smithers_cron", {"cron_id"}},
      {"_smithers_sandboxes", {"run_id", "sandbox_id", "iteration"}},
  };
  return *keys;
}

std::string Replace(const std::string& text, const std::regex& pattern, const char* with) {
  return std::regex_replace(text, pattern, with);
}

// INSERT OR REPLACE INTO t(a, b, c) VALUES(...) -> INSERT INTO t(a, b, c)
// VALUES(...) ON CONFLICT (key) DO UPDATE SET every other listed column.
std::string UpsertFromReplace(const std::string& sql) {
  static const std::regex kReplace(R"(^INSERT OR REPLACE INTO (\w+)\(([^)]*)\))");
  std::smatch m;
  if (!std::regex_search(sql, m, kReplace)) return sql;
  const std::string table = m[1];
  auto key = PrimaryKeys().find(table);
  if (key == PrimaryKeys().end()) return sql;  // fails at prepare: a table to add above
  std::string set;
  std::string columns = m[2];
  static const std::regex kColumn(R"(\w+)");
  for (auto it = std::sregex_iterator(columns.begin(), columns.end(), kColumn);
       it != std::sregex_iterator(); ++it) {
    const std::string column = it->str();
    if (std::find(key->second.begin(), key->second.end(), column) != key->second.end()) continue;
    set += (set.empty() ? "" : ", ") + column + " = excluded." + column;
  }
  std::string conflict;
  for (const std::string& column : key->second) conflict += (conflict.empty() ? "" : ", ") + column;
  return "INSERT INTO " + sql.substr(std::string_view("INSERT OR REPLACE INTO ").size()) +
         " ON CONFLICT (" + conflict + ") DO UPDATE SET " + set;
}

// SQLite sorts NULL below every value, PostgreSQL above: the nullable times
// an ORDER BY names get SQLite's order back.
std::string NullsAsSqlite(const std::string& sql) {
  const size_t order = sql.find("ORDER BY ");
  if (order == std::string::npos) return sql;
  size_t end = sql.find(" LIMIT ", order);
  if (end == std::string::npos) end = sql.size();
  std::string clause = sql.substr(order, end - order);
  static const std::regex kDesc(R"((\w+_at_ms) DESC)");
  static const std::regex kAsc(R"((\w+_at_ms)(,|$))");
  clause = Replace(clause, kDesc, "$1 DESC NULLS LAST");
  clause = Replace(clause, kAsc, "$1 NULLS FIRST$2");
  return sql.substr(0, order) + clause + sql.substr(end);
}

// The statements PostgreSQL needs written differently (what remains is
// translated by PgSql below).
const std::map<int, const char*>& Overrides() {
  static const auto* overrides = new std::map<int, const char*>{
      // Parameters in a SELECT list are typed by nothing but a cast.
      {kAppendEvent,
       "INSERT INTO _smithers_events(run_id, seq, timestamp_ms, type, payload_json) "
       "SELECT $1::text, COALESCE(MAX(seq), 0) + 1, $2::bigint, $3::text, $4::text "
       "FROM _smithers_events WHERE run_id = $1 RETURNING seq"},
      {kObjectType,
       "SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' WHEN 'i' THEN 'index' "
       "ELSE 'table' END FROM pg_class c "
       "WHERE c.relnamespace = current_schema()::regnamespace AND lower(c.relname) = lower($1)"},
      // The count of committed write transactions (pg_db.h).
      {kDataVersion, "SELECT n FROM _smithers_commits WHERE id = 1"},
  };
  return *overrides;
}

std::string PgSql(const StatementSql& entry) {
  auto override = Overrides().find(entry.id);
  if (override != Overrides().end()) return override->second;
  std::string sql = entry.sql;
  if (sql.rfind("INSERT OR IGNORE INTO ", 0) == 0) {
    sql = "INSERT INTO " + sql.substr(std::string_view("INSERT OR IGNORE INTO ").size()) +
          " ON CONFLICT DO NOTHING";
  }
  sql = UpsertFromReplace(sql);
  sql = NullsAsSqlite(sql);
  static const std::regex kIsParam(R"(\bIS \?(\d+))");
  static const std::regex kLimit(R"(\bLIMIT \?(\d+))");
  static const std::regex kParam(R"(\?(\d+))");
  sql = Replace(sql, kIsParam, "IS NOT DISTINCT FROM ?$1");     // SQLite's IS matches NULL to NULL
  sql = Replace(sql, kLimit, "LIMIT NULLIF(?$1::bigint, -1)");  // -1: no limit
  sql = Replace(sql, kParam, "$$$1");
  if (entry.id == kPatchSandbox) {
    // Numbered as kPutSandbox's, some parameters unused; PostgreSQL must
    // still learn their types.
    sql += " AND COALESCE($5::text, $6::text, $8::text, $19::bigint::text, '') IS NOT NULL";
  }
  return sql;
}

struct PgDialect {
  using Database = pg::Database;
  using Statement = pg::Statement;
  using WriteTransaction = pg::WriteTransaction;
  static constexpr const char* kName = "postgres";

  // kStatements are rewritten once per process (the regular expressions
  // cost about 2 ms, and a Gateway opens a store per run thread); a
  // statement of one table (db copy) each time.
  static std::string Sql(const StatementSql& entry) {
    static const auto* rewritten = [] {
      auto* all = new std::vector<std::string>();
      for (const StatementSql& known : kStatements) all->push_back(PgSql(known));
      return all;
    }();
    if (entry.id < kStatementCount && entry.sql == kStatements[entry.id].sql) {
      return (*rewritten)[entry.id];
    }
    return PgSql(entry);
  }

  // The view's columns as text (->>), as a SQL client most often wants them.
  static Result<std::string> OutputViewSql(const std::string& name, const Json& schema) {
    SMITHERS_ASSIGN_OR_RETURN(std::vector<std::string> properties, OutputViewColumns(name, schema));
    std::string columns;
    for (const std::string& property : properties) {
      columns += ", payload_json::jsonb ->> '" + property + "' AS \"" + property + "\"";
    }
    return "DROP VIEW IF EXISTS \"" + name + "\"; CREATE VIEW \"" + name +
           "\" AS SELECT run_id, node_id, iteration" + columns +
           ", created_at_ms FROM _smithers_outputs WHERE output_table = '" + name + "';";
  }

  // Ids given explicitly leave an identity's sequence behind: the next
  // maintenance row must not take one of them.
  static Status AfterImport(Database& db) {
    return db
        .QueryText(
            "SELECT setval(pg_get_serial_sequence('_smithers_maintenance', 'id'), "
            "(SELECT COALESCE(MAX(id), 0) + 1 FROM _smithers_maintenance), false)")
        .status();
  }

  static Result<std::string> ChangeStamp(Database& /*db*/, Statement& commits) {
    int64_t commits_so_far = 0;
    SMITHERS_RETURN_IF_ERROR(commits.ForEachRow([&](const Statement& row) {
      commits_so_far = row.Int64(0);
      return Status::Ok();
    }));
    return std::to_string(commits_so_far);
  }
};

}  // namespace

Result<std::unique_ptr<Store>> OpenPostgresStoreAt(const StoreLocation& location,
                                                   const StoreOptions& options) {
  SMITHERS_ASSIGN_OR_RETURN(pg::Database db, pg::Database::Connect(location.url));
  if (options.synchronous != "FULL" && options.synchronous != "NORMAL") {
    return InvalidArgumentError("synchronous must be FULL or NORMAL, not \"" + options.synchronous +
                                "\"");
  }
  // NORMAL: a commit returns before its WAL reaches the server's disk (a
  // server crash may lose the last ones; a crash of ours loses nothing).
  if (options.synchronous == "NORMAL") {
    SMITHERS_RETURN_IF_ERROR(db.Command("SET synchronous_commit = off"));
  }
  if (options.read_only) {
    SMITHERS_RETURN_IF_ERROR(pg::CheckPostgresSchema(db));
    SMITHERS_RETURN_IF_ERROR(db.Command("SET default_transaction_read_only = on"));
  } else {
    SMITHERS_RETURN_IF_ERROR(pg::MigratePostgres(db, SystemClock().NowMs()));
  }
  auto store = std::make_unique<SqlStore<PgDialect>>(
      std::move(db), AuditKeySource{.ref = options.audit_key, .server = true});
  SMITHERS_RETURN_IF_ERROR(store->PrepareStatements(kStatementCount));
  return std::unique_ptr<Store>(std::move(store));
}

std::string PostgresSqlForTesting(int statement_id) { return PgSql(kStatements[statement_id]); }

}  // namespace smithers::store
