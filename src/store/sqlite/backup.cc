// Backups and restores of a SQLite store (docs/operations.md "Backups"):
// SQLite's online backup API, the checks of a copy, and the exclusive lock
// that keeps a restore away from a database another process has open.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "base/hash.h"
#include "smithers/store.h"
#include "store/sqlite/sqlite_db.h"

namespace smithers {
namespace store {
namespace {

// Pages per backup step: 4 MiB of 4 KiB pages between progress reports.
constexpr int kStepPages = 1024;
// How long a step may keep finding the source or target busy.
constexpr int kBusyGiveUpMs = 30000;

std::string Errno(const std::string& what) { return what + ": " + strerror(errno); }

// Copies every page of `src` into `dst` (each "main"). The caller holds a
// read transaction on `src` when the copy must be one snapshot: SQLite then
// never restarts it for a commit made meanwhile.
Status CopyPages(Database& src, Database& dst, const CopyProgress& progress) {
  sqlite3_backup* backup = sqlite3_backup_init(dst.handle(), "main", src.handle(), "main");
  if (backup == nullptr) {
    return SqliteStatus(sqlite3_extended_errcode(dst.handle()),
                        std::string("cannot start the copy: ") + sqlite3_errmsg(dst.handle()));
  }
  int rc = SQLITE_OK;
  int busy_ms = 0;
  for (;;) {
    rc = sqlite3_backup_step(backup, kStepPages);
    if (progress) {
      const int total = sqlite3_backup_pagecount(backup);
      progress(total - sqlite3_backup_remaining(backup), total);
    }
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      if (busy_ms >= kBusyGiveUpMs) break;
      sqlite3_sleep(10);  // SQLite's own busy handler sleeps too; nothing else to wait on
      busy_ms += 10;
      continue;
    }
    if (rc != SQLITE_OK) break;
  }
  const int finished = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    return SqliteStatus(rc, std::string("copy failed: ") + sqlite3_errstr(rc));
  }
  if (finished != SQLITE_OK) {
    return SqliteStatus(finished, std::string("copy failed: ") + sqlite3_errmsg(dst.handle()));
  }
  return Status::Ok();
}

// What a copy holds, and whether it is sound: integrity_check and
// foreign_key_check clean, Smithers' tables, a schema this build can open.
Result<SqliteCopy> Inspect(Database& db, const std::string& path) {
  SMITHERS_ASSIGN_OR_RETURN(std::string integrity, db.QueryText("PRAGMA integrity_check"));
  if (integrity != "ok") {
    return DataLossError(path + " is damaged (integrity_check: " + integrity + ")");
  }
  Result<std::string> orphan = db.QueryText("PRAGMA foreign_key_check");
  if (orphan.ok()) {
    return DataLossError(path + " has rows whose parent is gone (foreign_key_check: table " +
                         *orphan + ")");
  }
  if (orphan.status().code() != StatusCode::kNotFound) return orphan.status();
  Result<std::string> version =
      db.QueryText("SELECT COALESCE(MAX(id), 0) FROM _smithers_schema_migrations");
  if (!version.ok()) {
    if (version.status().message().find("no such table") != std::string::npos) {
      return FailedPreconditionError(path + " is not a Smithers database (no schema table)");
    }
    return version.status();
  }
  SqliteCopy copy;
  copy.schema_version = std::atoi(version->c_str());
  if (copy.schema_version > StoreSchemaVersion()) {
    return FailedPreconditionError(path + " has schema version " +
                                   std::to_string(copy.schema_version) +
                                   ", written by a newer Smithers (this build knows up to " +
                                   std::to_string(StoreSchemaVersion()) + "); upgrade smithers");
  }
  SMITHERS_ASSIGN_OR_RETURN(std::string runs, db.QueryText("SELECT COUNT(*) FROM _smithers_runs"));
  copy.runs = std::atoll(runs.c_str());
  SMITHERS_ASSIGN_OR_RETURN(std::string pages, db.QueryText("PRAGMA page_count"));
  copy.pages = std::atoll(pages.c_str());
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) copy.bytes = st.st_size;
  return copy;
}

// Removes a half-written copy (and any journal SQLite left beside it)
// unless released.
class PartialFile {
 public:
  explicit PartialFile(std::string path) : path_(std::move(path)) {}
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;
  ~PartialFile() {
    if (path_.empty()) return;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
  }
  const std::string& path() const { return path_; }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

Status SyncPath(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return FailedPreconditionError(Errno("cannot open " + path));
  const int rc = fsync(fd);
  close(fd);
  if (rc != 0) return UnavailableError(Errno("cannot sync " + path));
  return Status::Ok();
}

// The process holding a lock on `path`'s bytes [start, start+len) that a
// write lock would conflict with; 0 when none (or it cannot be told).
pid_t LockHolder(const std::string& path, off_t start, off_t len) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = start;
  lock.l_len = len;
  const int rc = fcntl(fd, F_GETLK, &lock);
  close(fd);
  return rc == 0 && lock.l_type != F_UNLCK ? lock.l_pid : 0;
}

// " (process N)" for a process that has the database open: SQLite's shared
// lock bytes of the file, or the -shm's byte that every WAL connection locks.
std::string HolderOf(const std::string& path) {
  constexpr off_t kSharedFirst = 0x40000002;  // SQLite's os_unix.c lock layout
  constexpr off_t kSharedSize = 510;
  constexpr off_t kShmDms = 128;
  pid_t pid = LockHolder(path, kSharedFirst - 2, kSharedSize + 2);
  if (pid == 0) pid = LockHolder(path + "-shm", kShmDms, 1);
  return pid != 0 ? " (process " + std::to_string(pid) + ")" : "";
}

}  // namespace
}  // namespace store

Result<SqliteCopy> CheckSqliteBackup(const std::string& file) {
  if (access(file.c_str(), R_OK) != 0) return NotFoundError(store::Errno("cannot read " + file));
  SMITHERS_ASSIGN_OR_RETURN(store::Database db, store::Database::Open(file, /*read_only=*/true));
  return store::Inspect(db, file);
}

Result<SqliteCopy> BackupSqliteStore(const std::string& db_path, const std::string& file,
                                     const CopyProgress& progress) {
  struct stat st {};
  if (lstat(file.c_str(), &st) == 0) {
    return AlreadyExistsError(file + " exists; a backup never replaces a file (name a new one)");
  }
  if (access(db_path.c_str(), F_OK) != 0)
    return FailedPreconditionError("no database at " + db_path);
  SMITHERS_ASSIGN_OR_RETURN(store::Database src, store::Database::Open(db_path, true));
  sqlite3_busy_timeout(src.handle(), store::kBusyGiveUpMs);
  // One read transaction for the whole copy: one snapshot, whatever commits
  // meanwhile. Its first read (the schema version) fixes it.
  SMITHERS_RETURN_IF_ERROR(src.Exec("BEGIN DEFERRED"));
  Result<std::string> version =
      src.QueryText("SELECT COALESCE(MAX(id), 0) FROM _smithers_schema_migrations");
  if (!version.ok()) {
    if (version.status().message().find("no such table") != std::string::npos) {
      return FailedPreconditionError(db_path + " holds no Smithers tables (nothing to back up)");
    }
    return version.status();
  }

  const std::filesystem::path target(file);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  store::PartialFile partial(
      (dir / ("." + target.filename().string() + ".partial-" + base::NewUuid())).string());
  const int fd =
      open(partial.path().c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return FailedPreconditionError(store::Errno("cannot create a file in " + dir.string()));
  fchmod(fd, 0600);  // exactly, whatever the umask
  close(fd);

  SqliteCopy copy;
  {
    SMITHERS_ASSIGN_OR_RETURN(store::Database dst, store::Database::Open(partial.path()));
    SMITHERS_RETURN_IF_ERROR(store::CopyPages(src, dst, progress));
    // The source's header says WAL; the copy is one file, with no -wal to
    // keep beside it. OpenStore switches a restored database back.
    SMITHERS_ASSIGN_OR_RETURN(std::string mode, dst.QueryText("PRAGMA journal_mode=DELETE"));
    if (mode != "delete") {
      return FailedPreconditionError("the copy kept journal mode " + mode + ", not delete");
    }
    SMITHERS_ASSIGN_OR_RETURN(copy, store::Inspect(dst, partial.path()));
  }
  (void)src.Exec("COMMIT");  // ends the read; nothing was written
  SMITHERS_RETURN_IF_ERROR(store::SyncPath(partial.path(), O_RDONLY));
  if (link(partial.path().c_str(), file.c_str()) != 0) {
    if (errno == EEXIST) {
      return AlreadyExistsError(file + " appeared while the backup was written; left as it is");
    }
    return FailedPreconditionError(store::Errno("cannot create " + file));
  }
  (void)store::SyncPath(dir.string(), O_RDONLY | O_DIRECTORY);  // the new name
  return copy;
}

Result<SqliteCopy> RestoreSqliteStore(const std::string& file, const std::string& target,
                                      const CopyProgress& progress) {
  SMITHERS_RETURN_IF_ERROR(CheckSqliteBackup(file).status());
  struct stat from {};
  struct stat to {};
  if (stat(file.c_str(), &from) == 0 && stat(target.c_str(), &to) == 0 &&
      from.st_dev == to.st_dev && from.st_ino == to.st_ino) {
    return InvalidArgumentError(file + " is the database itself");
  }
  const std::filesystem::path parent = std::filesystem::path(target).parent_path();
  if (!parent.empty() && access(parent.c_str(), F_OK) != 0) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec)
      return FailedPreconditionError("cannot create " + parent.string() + ": " + ec.message());
    chmod(parent.c_str(), 0700);
  }
  const int fd = open(target.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    fchmod(fd, 0600);
    close(fd);
  } else if (errno != EEXIST) {
    return FailedPreconditionError(store::Errno("cannot create " + target));
  }

  SMITHERS_ASSIGN_OR_RETURN(store::Database dst, store::Database::Open(target));
  sqlite3_busy_timeout(dst.handle(), 0);
  // Exclusive locking mode keeps the lock taken by the first write until
  // the connection closes. Every other connection to a WAL database holds a
  // shared lock for as long as it is open, so taking it fails while one is.
  SMITHERS_RETURN_IF_ERROR(dst.Exec("PRAGMA locking_mode=EXCLUSIVE"));
  Status locked = dst.Exec("BEGIN EXCLUSIVE; COMMIT");
  if (!locked.ok()) {
    if (locked.code() != StatusCode::kUnavailable) return locked;
    return FailedPreconditionError(target + " is open in another process" +
                                   store::HolderOf(target) +
                                   "; stop it (a Gateway, `smithers up`, a reader) and restore "
                                   "again: nothing was changed");
  }
  // Rollback journaling for the copy: it commits at its last step, and a
  // crash before leaves a hot journal that puts the old database back.
  SMITHERS_ASSIGN_OR_RETURN(std::string mode, dst.QueryText("PRAGMA journal_mode=DELETE"));
  if (mode != "delete") {
    return FailedPreconditionError("cannot leave WAL on " + target + " (journal mode " + mode +
                                   ")");
  }
  SMITHERS_ASSIGN_OR_RETURN(store::Database src, store::Database::Open(file, true));
  SMITHERS_RETURN_IF_ERROR(store::CopyPages(src, dst, progress));
  return store::Inspect(dst, target);
}

}  // namespace smithers
