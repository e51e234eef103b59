// The migrations' ledger (_smithers_schema_migrations), read the same way by
// every SQL backend: which migrations a database still needs, and whether it
// is one this build may open.
//
// A migration, once released, is never edited: its checksum is recorded when
// it is applied and checked at every open. Change a schema by appending one.
#ifndef SMITHERS_STORE_SQL_MIGRATION_LEDGER_H_
#define SMITHERS_STORE_SQL_MIGRATION_LEDGER_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "smithers/status.h"

namespace smithers::store {

struct Migration {
  int id;            // from 1, consecutive
  const char* name;  // recorded for people reading the table
  const char* sql;   // one or more statements
};

// What the ledger records of `migration`.
std::string MigrationChecksum(const Migration& migration);

// The migrations of `known` (ascending by id) with id <= `up_to` that
// `applied` (the ledger: id -> checksum) lacks, in order. FailedPrecondition
// when the ledger records a migration newer than this build knows, or one
// whose definition differs from this build's.
Result<std::vector<const Migration*>> MigrationsToApply(
    const std::map<int64_t, std::string>& applied, std::span<const Migration> known, int up_to);

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQL_MIGRATION_LEDGER_H_
