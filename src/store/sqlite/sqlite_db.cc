#include "store/sqlite/sqlite_db.h"

#include <atomic>
#include <optional>
#include <string>

#include "store/sqlite/sqlite_store.h"

namespace smithers::store {
namespace {

std::atomic<int64_t> busy_retries{0};  // BusyRetriesForTesting

// Past the connection's busy timeout (30 s by default) another writer has held
// the lock for a long time; a few spaced retries ride out a checkpoint or a
// slow fsync on the other side before we give up with Unavailable.
constexpr int kBusyRetries = 4;
constexpr int kFirstBackoffMs = 50;

bool IsBusy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

std::string Describe(sqlite3* db, int rc) {
  std::string text = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return text + " (sqlite code " + std::to_string(rc) + ")";
}

// Steps a transaction-control statement, retrying while the database is busy.
// SQLite leaves the transaction state unchanged when BEGIN or COMMIT returns
// SQLITE_BUSY, so repeating the same statement is safe.
int StepWithBusyRetry(Statement& stmt) {
  int rc = SQLITE_OK;
  for (int attempt = 0;; ++attempt) {
    rc = stmt.StepRaw();
    stmt.Reset();
    if (!IsBusy(rc) || attempt == kBusyRetries) return rc;
    busy_retries.fetch_add(1, std::memory_order_relaxed);
    // sqlite3_sleep rather than the Clock: this is the same kind of wait as
    // SQLite's own busy handler, and is not observable by the engine.
    sqlite3_sleep(kFirstBackoffMs << attempt);
  }
}

}  // namespace

int64_t BusyRetriesForTesting() { return busy_retries.load(std::memory_order_relaxed); }

Status SqliteStatus(int rc, std::string message) {
  switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return Status::Ok();
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS: return UnavailableError(std::move(message));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return DataLossError(std::move(message));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return FailedPreconditionError(std::move(message));
      return InvalidArgumentError(std::move(message));
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH: return InvalidArgumentError(std::move(message));
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: return FailedPreconditionError(std::move(message));
    case SQLITE_INTERRUPT:
    case SQLITE_ABORT: return AbortedError(std::move(message));
    default: return InternalError(std::move(message));
  }
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
    bind_rc_ = other.bind_rc_;
  }
  return *this;
}

void Statement::BindInt64(int index, int64_t value) {
  NoteBind(sqlite3_bind_int64(stmt_, index, value));
}

void Statement::BindText(int index, std::string_view value) {
  // SQLite binds a null pointer as NULL, and an empty std::string_view may
  // have one: text is always text ('' is not NULL in a comparison).
  const char* data = value.data() != nullptr ? value.data() : "";
  NoteBind(sqlite3_bind_text64(stmt_, index, data, value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
}

void Statement::BindNull(int index) { NoteBind(sqlite3_bind_null(stmt_, index)); }

Status Statement::Run() {
  return ForEachRow([](const Statement&) { return Status::Ok(); });
}

std::string_view Statement::TextView(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return {reinterpret_cast<const char*>(text),
          static_cast<size_t>(sqlite3_column_bytes(stmt_, column))};
}

void Statement::Reset() {
  // The return value repeats the last step's error, already reported.
  sqlite3_reset(stmt_);
  bind_rc_ = SQLITE_OK;
}

Status Statement::Error(int rc) const {
  const char* sql = sqlite3_sql(stmt_);
  std::string_view head = sql != nullptr ? sql : "";
  constexpr size_t kMaxShown = 60;
  const bool cut = head.size() > kMaxShown;
  if (cut) head = head.substr(0, kMaxShown);
  return SqliteStatus(rc, Describe(sqlite3_db_handle(stmt_), rc) + " in `" + std::string(head) +
                              (cut ? "...`" : "`"));
}

Result<Database> Database::Open(const std::string& path, bool read_only) {
  sqlite3* raw = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  // sqlite3_open_v2 hands back a handle to close even when it fails.
  Database db(raw);
  if (rc != SQLITE_OK) return SqliteStatus(rc, "open " + path + ": " + Describe(raw, rc));
  sqlite3_extended_result_codes(raw, 1);
  SMITHERS_ASSIGN_OR_RETURN(db.begin_, db.Prepare("BEGIN IMMEDIATE"));
  SMITHERS_ASSIGN_OR_RETURN(db.commit_, db.Prepare("COMMIT"));
  SMITHERS_ASSIGN_OR_RETURN(db.rollback_, db.Prepare("ROLLBACK"));
  SMITHERS_ASSIGN_OR_RETURN(db.begin_read_, db.Prepare("BEGIN DEFERRED"));
  return db;
}

void EndReadSnapshot(sqlite3* db) {
  if (sqlite3_get_autocommit(db) != 0 || sqlite3_txn_state(db, nullptr) == SQLITE_TXN_WRITE) return;
  // Ending a transaction that only read releases its lock; it cannot fail
  // for want of a lock, and if it did the next statement would report it.
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
}

Status Database::BeginRead() {
  if (read_depth_++ > 0 || in_transaction()) return Status::Ok();
  int rc = begin_read_.StepRaw();
  begin_read_.Reset();
  if (rc != SQLITE_DONE) {
    read_depth_--;
    return begin_read_.Error(rc);
  }
  return Status::Ok();
}

void Database::EndRead() {
  if (read_depth_ == 0 || --read_depth_ > 0) return;
  if (!in_transaction() || sqlite3_txn_state(db_.get(), nullptr) == SQLITE_TXN_WRITE) return;
  commit_.StepRaw();  // the prepared COMMIT: sqlite3_exec would parse it each time
  commit_.Reset();
}

Result<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  Statement statement(stmt);
  if (rc != SQLITE_OK) {
    return SqliteStatus(rc, "prepare `" + std::string(sql) + "`: " + Describe(db_.get(), rc));
  }
  return statement;
}

Status Database::Exec(const std::string& sql) {
  EndReadSnapshot(db_.get());
  char* error = nullptr;
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string message = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  return SqliteStatus(rc, message + " (sqlite code " + std::to_string(rc) + ")");
}

Result<std::string> Database::QueryText(std::string_view sql) {
  SMITHERS_ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
  std::optional<std::string> value;
  SMITHERS_RETURN_IF_ERROR(stmt.ForEachRow([&](const Statement& row) {
    if (!value) value = row.Text(0);
    return Status::Ok();
  }));
  if (!value) return NotFoundError("no row from `" + std::string(sql) + "`");
  return *std::move(value);
}

Result<WriteTransaction> WriteTransaction::Begin(Database& db) {
  if (db.write_depth_ > 0) {
    ++db.write_depth_;
    return WriteTransaction(&db, /*joined=*/true);
  }
  EndReadSnapshot(db.handle());
  int rc = StepWithBusyRetry(db.begin_);
  if (rc != SQLITE_DONE) return db.begin_.Error(rc);
  db.write_depth_ = 1;
  db.write_failed_ = false;
  return WriteTransaction(&db, /*joined=*/false);
}

WriteTransaction::~WriteTransaction() {
  if (db_ == nullptr) return;
  if (joined_) {
    db_->write_depth_--;
    db_->write_failed_ = true;
    return;
  }
  db_->write_depth_ = 0;
  // SQLite may already have rolled back on its own (after some I/O errors);
  // ROLLBACK outside a transaction would only fail.
  if (db_->in_transaction()) {
    db_->rollback_.StepRaw();
    db_->rollback_.Reset();
  }
}

Status WriteTransaction::Commit() {
  if (db_ == nullptr) return InternalError("commit of a finished transaction");
  if (joined_) {
    db_->write_depth_--;
    db_ = nullptr;
    return Status::Ok();
  }
  if (db_->write_failed_) {
    return AbortedError("a write inside this transaction failed: it was rolled back");
  }
  int rc = StepWithBusyRetry(db_->commit_);
  if (rc != SQLITE_DONE) return db_->commit_.Error(rc);
  db_->write_depth_ = 0;
  db_ = nullptr;
  return Status::Ok();
}

}  // namespace smithers::store
