// Opening a SQLite store: the file and its modes, the pragmas, migrations,
// read-only opens; and the test-only entry points of sqlite_store.h.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "base/text.h"
#include "smithers/clock.h"
#include "smithers/store.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/sqlite_store.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace smithers {
namespace store {
namespace {

Result<std::string> NormalizeSynchronous(const std::string& value) {
  const std::string lower = base::AsciiLower(value);
  if (lower == "full") return std::string("FULL");
  if (lower == "normal") return std::string("NORMAL");
  return InvalidArgumentError("synchronous must be FULL or NORMAL, not \"" + value + "\"");
}

// Creates the folders up to the database (0700, or 0750 with
// group_readable) and the database file itself (0600 / 0640), each only when
// it does not exist yet: SQLite gives the -wal and -shm files the database
// file's mode. Existing folders and files keep their modes.
Status CreateDatabaseFile(const SqliteOptions& options) {
  const mode_t dir_mode = options.group_readable ? 0750 : 0700;
  const mode_t file_mode = options.group_readable ? 0640 : 0600;
  const std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
  std::filesystem::path at;
  for (const std::filesystem::path& part : parent) {
    at /= part;
    if (mkdir(at.c_str(), dir_mode) == 0) {
      chmod(at.c_str(), dir_mode);  // exactly, whatever the umask
    } else if (errno != EEXIST) {
      return FailedPreconditionError("cannot create directory " + at.string() + ": " +
                                     strerror(errno));
    }
  }
  int fd =
      open(options.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, file_mode);
  if (fd >= 0) {
    fchmod(fd, file_mode);
    close(fd);
  } else if (errno != EEXIST) {
    return FailedPreconditionError("cannot create " + options.path + ": " + strerror(errno));
  }
  return Status::Ok();
}

// A connection that only reads: no folder or file is created, no pragma
// written, no migration run (a database an older build wrote must be opened
// once for writing first).
Result<std::unique_ptr<Store>> OpenReadOnly(const SqliteOptions& options, int max_migration) {
  if (access(options.path.c_str(), F_OK) != 0) {
    return FailedPreconditionError("no database at " + options.path);
  }
  SMITHERS_ASSIGN_OR_RETURN(Database db, Database::Open(options.path, /*read_only=*/true));
  sqlite3_busy_timeout(db.handle(), options.busy_timeout_ms);
  SMITHERS_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys=ON"));
  Result<std::string> version =
      db.QueryText("SELECT COALESCE(MAX(id), 0) FROM _smithers_schema_migrations");
  if (!version.ok()) {
    if (version.status().message().find("no such table") != std::string::npos) {
      return FailedPreconditionError(options.path +
                                     " holds no Smithers tables yet (nothing has been run)");
    }
    if (version.status().code() == StatusCode::kUnavailable) {
      return FailedPreconditionError("cannot read " + options.path + ": " +
                                     version.status().message() +
                                     " (the database, its -wal and -shm files must be readable "
                                     "by this user)");
    }
    return version.status();
  }
  const int have = std::atoi(version->c_str());
  if (have > max_migration) {
    return FailedPreconditionError("database schema version " + std::to_string(have) +
                                   " was written by a newer Smithers (this build knows up to " +
                                   std::to_string(max_migration) + "); upgrade smithers");
  }
  if (have < max_migration) {
    return FailedPreconditionError("database schema version " + std::to_string(have) +
                                   " is older than this build's " + std::to_string(max_migration) +
                                   "; open it once with a command that writes (smithers up, "
                                   "gateway, supervise) to migrate it");
  }
  return NewSqliteStore(std::move(db), max_migration,
                        {.ref = options.audit_key, .db_path = options.path});
}

Result<std::unique_ptr<Store>> OpenSqlite(const SqliteOptions& options, int max_migration) {
  if (options.path.empty()) return InvalidArgumentError("no database path given");
  SMITHERS_ASSIGN_OR_RETURN(std::string synchronous, NormalizeSynchronous(options.synchronous));
  if (options.busy_timeout_ms < 0) return InvalidArgumentError("busy_timeout_ms is negative");

  if (options.read_only) return OpenReadOnly(options, max_migration);
  SMITHERS_RETURN_IF_ERROR(CreateDatabaseFile(options));

  SMITHERS_ASSIGN_OR_RETURN(Database db, Database::Open(options.path));
  if (sqlite3_db_readonly(db.handle(), "main") == 1) {
    // SQLite falls back to reading when it may not write; every write would
    // then fail later with a less helpful message.
    return FailedPreconditionError(
        options.path +
        " is read-only for this user (read commands such as ps, inspect and events open it "
        "read-only and work)");
  }
  // Before anything that takes a lock: another process may be migrating.
  sqlite3_busy_timeout(db.handle(), options.busy_timeout_ms);
  // Keep the -wal and -shm files when the last connection closes: a user who
  // may read the database but not create files beside it can then open it
  // read-only. journal_size_limit truncates the kept WAL.
  int persist = 1;
  sqlite3_file_control(db.handle(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  // Two connections switching a fresh file to WAL at once: one may get
  // SQLITE_BUSY at once, SQLite skipping the busy handler where waiting could
  // deadlock. Retried within the busy timeout (seen in a test of 8 openers).
  Result<std::string> mode = db.QueryText("PRAGMA journal_mode=WAL");
  for (int waited_ms = 0; !mode.ok() && mode.status().code() == StatusCode::kUnavailable &&
                          waited_ms < options.busy_timeout_ms;
       waited_ms += 10) {
    sqlite3_sleep(10);  // like SQLite's own busy handler; not observable by the engine
    mode = db.QueryText("PRAGMA journal_mode=WAL");
  }
  SMITHERS_ASSIGN_OR_RETURN(std::string journal_mode, std::move(mode));
  if (base::AsciiLower(journal_mode) != "wal") {
    return FailedPreconditionError("cannot use WAL journaling (journal_mode is " + journal_mode +
                                   ")");
  }
  SMITHERS_RETURN_IF_ERROR(db.Exec("PRAGMA journal_size_limit=67108864"));
  SMITHERS_RETURN_IF_ERROR(db.Exec("PRAGMA synchronous=" + synchronous));
  SMITHERS_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys=ON"));
  // The pragma is silently ignored by builds without foreign-key support, and
  // then a batch could half-reference a run that does not exist.
  SMITHERS_ASSIGN_OR_RETURN(std::string foreign_keys, db.QueryText("PRAGMA foreign_keys"));
  if (foreign_keys != "1") {
    return FailedPreconditionError(
        "SQLite refused to enable foreign keys (PRAGMA foreign_keys = " + foreign_keys + ")");
  }
  SMITHERS_RETURN_IF_ERROR(MigrateSqlite(db, max_migration, SystemClock().NowMs()));

  return NewSqliteStore(std::move(db), max_migration,
                        {.ref = options.audit_key, .db_path = options.path});
}

Result<std::unique_ptr<Store>> OpenStoreWithContext(const SqliteOptions& options,
                                                    int max_migration) {
  Result<std::unique_ptr<Store>> store = OpenSqlite(options, max_migration);
  if (!store.ok()) return store.status().WithContext("open SQLite store " + options.path);
  return store;
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStoreAt(const StoreLocation& location,
                                                 const StoreOptions& options) {
  return OpenSqliteStore({.path = location.path,
                          .synchronous = options.synchronous,
                          .read_only = options.read_only,
                          .group_readable = options.group_readable,
                          .audit_key = options.audit_key});
}

Result<std::unique_ptr<Store>> OpenSqliteStoreForTesting(const SqliteOptions& options,
                                                         int max_migration) {
  return OpenStoreWithContext(options, max_migration);
}

Result<std::vector<SqlRowForTesting>> ExecSqlForTesting(const std::string& path,
                                                        const std::string& sql) {
  SMITHERS_ASSIGN_OR_RETURN(Database db, Database::Open(path));
  sqlite3_busy_timeout(db.handle(), 10000);
  SMITHERS_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys=ON"));
  std::vector<SqlRowForTesting> rows;
  const char* next = sql.data();
  const char* const end = sql.data() + sql.size();
  while (next < end) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db.handle(), next, static_cast<int>(end - next), &raw, &next);
    Statement stmt(raw);
    if (rc != SQLITE_OK) return SqliteStatus(rc, sqlite3_errmsg(db.handle()));
    if (raw == nullptr) continue;  // only whitespace or a comment was left
    rows.clear();
    const int columns = sqlite3_column_count(raw);
    SMITHERS_RETURN_IF_ERROR(stmt.ForEachRow([&](const Statement& row) {
      SqlRowForTesting values;
      for (int i = 0; i < columns; ++i) {
        values.push_back(row.IsNull(i) ? std::nullopt : std::optional<std::string>(row.Text(i)));
      }
      rows.push_back(std::move(values));
      return Status::Ok();
    }));
  }
  return rows;
}

namespace {

class HeldWriteLock final : public WriteLockForTesting {
 public:
  explicit HeldWriteLock(Database db) : db_(std::move(db)) {}
  Status Lock() {
    SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
    txn_.emplace(std::move(txn));
    return Status::Ok();
  }

 private:
  Database db_;
  std::optional<WriteTransaction> txn_;  // destroyed first: rolls back, releasing the lock
};

}  // namespace

Result<std::unique_ptr<WriteLockForTesting>> WriteLockForTesting::Acquire(const std::string& path) {
  SMITHERS_ASSIGN_OR_RETURN(Database db, Database::Open(path));
  auto lock = std::make_unique<HeldWriteLock>(std::move(db));
  SMITHERS_RETURN_IF_ERROR(lock->Lock());
  return std::unique_ptr<WriteLockForTesting>(std::move(lock));
}

}  // namespace store

Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  return store::OpenStoreWithContext(options, store::LatestSqliteMigration());
}

int StoreSchemaVersion() { return store::LatestSqliteMigration(); }

}  // namespace smithers
