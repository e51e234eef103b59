// A thin RAII layer over the sqlite3 C API: a connection, its prepared
// statements and its write transactions. The only place besides the other
// files of this folder that sees <sqlite3.h>.
//
//   SMITHERS_ASSIGN_OR_RETURN(Database db, Database::Open("runs.db"));
//   SMITHERS_ASSIGN_OR_RETURN(Statement insert, db.Prepare("INSERT INTO t VALUES(?1)"));
//   SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db));
//   insert.BindText(1, "x");
//   SMITHERS_RETURN_IF_ERROR(insert.Run());
//   SMITHERS_RETURN_IF_ERROR(txn.Commit());
//
// Not thread-safe: one thread at a time per Database (connections are opened
// with SQLITE_OPEN_NOMUTEX).
#ifndef SMITHERS_STORE_SQLITE_SQLITE_DB_H_
#define SMITHERS_STORE_SQLITE_SQLITE_DB_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "smithers/status.h"

namespace smithers::store {

// Maps a SQLite result code (primary or extended) to a Status whose code
// carries the retry meaning: busy/locked and I/O trouble are Unavailable,
// a foreign-key violation is FailedPrecondition, other constraint violations
// InvalidArgument, corruption DataLoss. `message` is used as is.
Status SqliteStatus(int rc, std::string message);

// Commits the read snapshot open on `db`, if any (Database::BeginRead). Read
// snapshots are the only deferred transactions this layer opens, so a
// transaction that has not written is one. Called before every write.
void EndReadSnapshot(sqlite3* db);

// A prepared statement. Move-only; finalized on destruction.
class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Statement(Statement&& other) noexcept
      : stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Parameters are numbered from 1. A failed bind is remembered and reported
  // by the next Run() or ForEachRow(), so call sites need not check each one.
  void BindInt64(int index, int64_t value);
  void BindText(int index, std::string_view value);
  void BindNull(int index);

  // Steps the statement to completion, ignoring any rows it returns.
  // The statement is reset whatever happens.
  Status Run();

  // Steps through every row, calling `on_row(const Statement&) -> Status` for
  // each, and stops at the first error. The statement is reset whatever
  // happens, so a half-read SELECT never pins an old WAL snapshot.
  template <typename OnRow>
  Status ForEachRow(OnRow&& on_row);

  // Column accessors, valid inside ForEachRow's callback. Columns from 0.
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  int64_t Int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  // Valid until the next step; "" for NULL.
  std::string_view TextView(int column) const;
  std::string Text(int column) const { return std::string(TextView(column)); }

  // The raw result code of one sqlite3_step, for callers (transactions) that
  // need to tell SQLITE_BUSY apart. Does not reset.
  int StepRaw() { return sqlite3_step(stmt_); }
  void Reset();
  // A Status for `rc` returned by this statement, naming its SQL.
  Status Error(int rc) const;

 private:
  void NoteBind(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3_stmt* stmt_ = nullptr;
  int bind_rc_ = SQLITE_OK;
};

// One connection. Move-only; closed on destruction.
class Database {
 public:
  // Opens (creating) the file at `path`, or with `read_only` opens an
  // existing one for reading only. Sets no pragmas.
  static Result<Database> Open(const std::string& path, bool read_only = false);

  Database(Database&&) noexcept = default;
  Database& operator=(Database&&) noexcept = default;

  // Prepares a statement meant to be kept and reused.
  Result<Statement> Prepare(std::string_view sql);
  // Runs one or more statements that return nothing of interest (DDL, pragmas).
  Status Exec(const std::string& sql);
  // Runs a statement returning one row and returns its first column as text
  // (e.g. "PRAGMA journal_mode=WAL"); NotFound if it returns no row.
  Result<std::string> QueryText(std::string_view sql);
  // Rows changed by the last INSERT, UPDATE or DELETE on this connection.
  int64_t changes() const { return sqlite3_changes64(db_.get()); }
  int64_t total_changes() const { return sqlite3_total_changes64(db_.get()); }
  bool in_transaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }

  // A read snapshot: the reads until the matching EndRead share one deferred
  // transaction (one consistent state, one lock taken and dropped instead of
  // one per statement). Nests; only the outermost pair begins and ends it.
  // A write inside ends the snapshot first (EndReadSnapshot), so a write is
  // always committed by its own statement or WriteTransaction.
  Status BeginRead();
  void EndRead();
  sqlite3* handle() const { return db_.get(); }

 private:
  friend class WriteTransaction;
  struct Closer {
    // close_v2 defers the close until every statement is finalized, so the
    // order in which members die does not matter.
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  explicit Database(sqlite3* db) : db_(db) {}

  std::unique_ptr<sqlite3, Closer> db_;  // first: destroyed after the statements
  // Transaction control, prepared once: BEGIN and COMMIT run on every Commit().
  Statement begin_;
  Statement commit_;
  Statement rollback_;
  Statement begin_read_;
  int read_depth_ = 0;
  // WriteTransactions open on this connection: the outermost one began the
  // transaction; inner ones join it (WriteTransaction::Begin).
  int write_depth_ = 0;
  bool write_failed_ = false;  // an inner one ended without committing
};

// A BEGIN IMMEDIATE transaction: it takes the write lock up front, so it never
// fails half-way with SQLITE_BUSY on upgrading a read lock. Rolls back on
// destruction unless Commit() succeeded. Move-only.
//
// Begun while another is open on the connection, it joins that one (what
// Store::Audited relies on: the action's writes and its audit row commit
// together): its Commit() commits nothing, and ending it without Commit()
// dooms the outer one, whose Commit() then rolls everything back (Aborted).
class WriteTransaction {
 public:
  // Retries BEGIN a few times with backoff when the database stays busy past
  // the connection's busy timeout; then Unavailable.
  static Result<WriteTransaction> Begin(Database& db);

  WriteTransaction(WriteTransaction&& other) noexcept
      : db_(std::exchange(other.db_, nullptr)), joined_(other.joined_) {}
  WriteTransaction& operator=(WriteTransaction&&) = delete;
  WriteTransaction(const WriteTransaction&) = delete;
  ~WriteTransaction();

  // Retries on SQLITE_BUSY like Begin(). On any other failure the transaction
  // is rolled back (by SQLite or by the destructor). One case stays open: an
  // I/O error while syncing the WAL may leave the commit durable after all,
  // which is the "ambiguous commit" callers must already tolerate.
  Status Commit();

 private:
  WriteTransaction(Database* db, bool joined) : db_(db), joined_(joined) {}

  Database* db_;  // null once committed or moved from
  bool joined_;   // began inside another: that one commits
};

template <typename OnRow>
Status Statement::ForEachRow(OnRow&& on_row) {
  if (bind_rc_ != SQLITE_OK) {
    Status status = Error(bind_rc_);
    Reset();
    return status;
  }
  if (sqlite3_stmt_readonly(stmt_) == 0) EndReadSnapshot(sqlite3_db_handle(stmt_));
  Status status;
  while (true) {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      status = Error(rc);
      break;
    }
    status = on_row(static_cast<const Statement&>(*this));
    if (!status.ok()) break;
  }
  Reset();
  return status;
}

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQLITE_SQLITE_DB_H_
