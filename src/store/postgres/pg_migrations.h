// The PostgreSQL store's schema migrations, applied in order under a session
// advisory lock (several processes may start at once), each in its own
// transaction with its ledger row.
#ifndef SMITHERS_STORE_POSTGRES_PG_MIGRATIONS_H_
#define SMITHERS_STORE_POSTGRES_PG_MIGRATIONS_H_

#include <cstdint>

#include "smithers/status.h"
#include "store/postgres/pg_db.h"
#include "store/sql/migration_ledger.h"

namespace smithers::store::pg {

int LatestPostgresMigration();

// Creates or migrates the tables in the connection's current schema.
// FailedPrecondition for a schema written by a newer build or a migration
// whose definition changed.
Status MigratePostgres(Database& db, int64_t now_ms);

// For a read-only open: the tables exist and are not newer than this build.
Status CheckPostgresSchema(Database& db);

}  // namespace smithers::store::pg

#endif  // SMITHERS_STORE_POSTGRES_PG_MIGRATIONS_H_
