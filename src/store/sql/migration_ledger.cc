#include "store/sql/migration_ledger.h"

#include "base/hash.h"

namespace smithers::store {

std::string MigrationChecksum(const Migration& migration) { return base::Sha256Hex(migration.sql); }

Result<std::vector<const Migration*>> MigrationsToApply(
    const std::map<int64_t, std::string>& applied, std::span<const Migration> known, int up_to) {
  const int latest = known.empty() ? 0 : known.back().id;
  if (!applied.empty() && applied.rbegin()->first > latest) {
    return FailedPreconditionError("database schema version " +
                                   std::to_string(applied.rbegin()->first) +
                                   " was written by a newer Smithers (this build knows up to " +
                                   std::to_string(latest) + "); upgrade smithers");
  }
  std::vector<const Migration*> todo;
  for (const Migration& migration : known) {
    if (migration.id > up_to) break;
    auto it = applied.find(migration.id);
    if (it == applied.end()) {
      todo.push_back(&migration);
    } else if (it->second != MigrationChecksum(migration)) {
      return FailedPreconditionError("schema migration " + std::to_string(migration.id) + " (" +
                                     migration.name +
                                     ") was applied with a different definition than this "
                                     "build's; the database and the binary disagree");
    }
  }
  return todo;
}

}  // namespace smithers::store
