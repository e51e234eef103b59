// The schema of the internal tables, as a numbered list of migrations
// (store/sql/migration_ledger.h says how they are recorded).
// docs/store_format.md describes the resulting tables.
#ifndef SMITHERS_STORE_SQLITE_MIGRATIONS_H_
#define SMITHERS_STORE_SQLITE_MIGRATIONS_H_

#include <cstdint>
#include <span>

#include "smithers/status.h"
#include "store/sql/migration_ledger.h"
#include "store/sqlite/sqlite_db.h"

namespace smithers::store {

// Every migration this build knows, ascending by id.
std::span<const Migration> SqliteMigrations();

// The highest id in SqliteMigrations().
int LatestSqliteMigration();

// In one BEGIN IMMEDIATE transaction: creates _smithers_schema_migrations if
// missing, then applies and records every known migration with id <= up_to
// that is not yet recorded. Another process migrating at the same moment waits
// for the write lock and then finds nothing to do.
//
// FailedPrecondition when the database records a migration newer than this
// build knows, or one whose SQL differs from this build's.
Status MigrateSqlite(Database& db, int up_to, int64_t now_ms);

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQLITE_MIGRATIONS_H_
