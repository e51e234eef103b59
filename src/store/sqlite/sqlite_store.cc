// The SQLite Store: the SQL store (store/sql/sql_store.h) on SQLite's
// connection types, with what SQLite spells its own way.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "smithers/store.h"
#include "store/output_views.h"
#include "store/sql/sql_store.h"
#include "store/sql/statements.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace smithers::store {
namespace {

struct SqliteDialect {
  using Database = store::Database;
  using Statement = store::Statement;
  using WriteTransaction = store::WriteTransaction;
  static constexpr const char* kName = "sqlite";

  // kStatements are written in SQLite's dialect.
  static const char* Sql(const StatementSql& entry) { return entry.sql; }

  // SQL for one view (the columns: store/output_views.h). `name` and every
  // column are identifiers, so they sit inside quotes and the JSON path
  // without escaping.
  static Result<std::string> OutputViewSql(const std::string& name, const Json& schema) {
    SMITHERS_ASSIGN_OR_RETURN(std::vector<std::string> properties, OutputViewColumns(name, schema));
    std::string columns;
    for (const std::string& property : properties) {
      columns += ", json_extract(payload_json, '$." + property + "') AS \"" + property + "\"";
    }
    return "DROP VIEW IF EXISTS \"" + name + "\"; CREATE VIEW \"" + name +
           "\" AS SELECT run_id, node_id, iteration" + columns +
           ", created_at_ms FROM _smithers_outputs WHERE output_table = '" + name + "';";
  }

  // An AUTOINCREMENT key given explicitly moves sqlite_sequence by itself.
  static Status AfterImport(Database& /*db*/) { return Status::Ok(); }

  // PRAGMA data_version (`data_version`) moves when another connection
  // commits; total_changes counts this connection's own writes.
  static Result<std::string> ChangeStamp(Database& db, Statement& data_version) {
    int64_t version = 0;
    SMITHERS_RETURN_IF_ERROR(data_version.ForEachRow([&](const Statement& row) {
      version = row.Int64(0);
      return Status::Ok();
    }));
    return std::to_string(version) + "/" + std::to_string(db.total_changes());
  }
};

}  // namespace

Result<std::unique_ptr<Store>> NewSqliteStore(Database db, int max_migration,
                                              AuditKeySource audit_key) {
  auto store = std::make_unique<SqlStore<SqliteDialect>>(std::move(db), std::move(audit_key));
  SMITHERS_RETURN_IF_ERROR(store->PrepareStatements(max_migration));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace smithers::store
