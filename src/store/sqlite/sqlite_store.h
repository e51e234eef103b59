// The SQLite backend's entry point for OpenStore, and test-only entry points.
// Production code opens stores with smithers::OpenStore() (or, embedding,
// smithers::OpenSqliteStore()) from smithers/store.h.
#ifndef SMITHERS_STORE_SQLITE_SQLITE_STORE_H_
#define SMITHERS_STORE_SQLITE_SQLITE_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "smithers/status.h"
#include "smithers/store.h"

namespace smithers::store {

// OpenStore's SQLite backend: OpenSqliteStore() on location.path with `options`.
Result<std::unique_ptr<Store>> OpenSqliteStoreAt(const StoreLocation& location,
                                                 const StoreOptions& options);

// As OpenSqliteStore(), but applies migrations only up to `max_migration`, to
// build a database as an older release left it.
Result<std::unique_ptr<Store>> OpenSqliteStoreForTesting(const SqliteOptions& options,
                                                         int max_migration);

// One result row; std::nullopt for SQL NULL.
using SqlRowForTesting = std::vector<std::optional<std::string>>;

// Runs `sql` (one or more statements) on a fresh connection to the database at
// `path`, with foreign keys on, as a user with the sqlite3 shell would, and
// returns the rows of the last statement, each value as text.
Result<std::vector<SqlRowForTesting>> ExecSqlForTesting(const std::string& path,
                                                        const std::string& sql);

// Holds the write lock of the database at `path` (an open BEGIN IMMEDIATE on
// a connection of its own) until destroyed, so tests can make writers wait.
class WriteLockForTesting {
 public:
  static Result<std::unique_ptr<WriteLockForTesting>> Acquire(const std::string& path);
  virtual ~WriteLockForTesting() = default;

 protected:
  WriteLockForTesting() = default;
};

// How many times, in this process, a BEGIN or COMMIT found the database
// locked by another writer and was retried after a backoff; a test waits on
// it to know a writer is waiting (never on a sleep).
int64_t BusyRetriesForTesting();

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQLITE_SQLITE_STORE_H_
