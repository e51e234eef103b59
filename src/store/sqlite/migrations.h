// The schema of the internal tables, as a numbered list of migrations.
//
// A migration, once released, is never edited: its checksum is recorded when it
// is applied and checked at every open. Change the schema by appending one.
// docs/store_format.md describes the resulting tables.
#ifndef SMITHERS_STORE_SQLITE_MIGRATIONS_H_
#define SMITHERS_STORE_SQLITE_MIGRATIONS_H_

#include <cstdint>
#include <span>

#include "smithers/status.h"
#include "store/sqlite/sqlite_db.h"

namespace smithers::store {

struct Migration {
  int id;            // from 1, consecutive
  const char* name;  // recorded for people reading the table
  const char* sql;   // one or more statements
};

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
