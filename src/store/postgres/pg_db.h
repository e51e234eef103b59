// A thin RAII layer over libpq shaped as store/sqlite/sqlite_db.h's, so that
// the SQL store (store/sql/sql_store.h) runs on either: a connection, its
// statements (prepared on the server at first use, again after a reconnect)
// and its write transactions. The only place besides the other files of this
// folder that sees <libpq-fe.h>; libpq itself is loaded on the first
// Connect (pq_api.h).
//
// Inside a write transaction statements are pipelined (libpq's pipeline
// mode): sent without waiting, their results read when one is needed (rows,
// changes(), COMMIT), so a task's commit is a round trip or two, not one per
// row. An error read late still fails the whole transaction.
//
// Writes are serialized as SQLite serializes them: every write transaction
// begins by bumping the one row of _smithers_commits, whose row lock is held
// to its end, so the conditional updates and MAX(seq) + 1 numbering of the
// SQL store read the state no other writer is changing. The bump is also the
// store's change stamp. A write statement run outside a transaction is given
// one of its own.
//
// Not thread-safe: one thread at a time per Database.
#ifndef SMITHERS_STORE_POSTGRES_PG_DB_H_
#define SMITHERS_STORE_POSTGRES_PG_DB_H_

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smithers/status.h"
#include "store/postgres/pq_api.h"

namespace smithers::store::pg {

// The connection's state, shared by its statements (heap-held, so moving
// the Database never moves it).
struct Connection;

// A Status for a failed result: SQLSTATE classes map to the codes' retry
// meaning (connection trouble, serialization failures and deadlocks are
// Unavailable; a foreign-key violation FailedPrecondition; other constraint
// violations InvalidArgument, a unique one's message starting "UNIQUE").
Status PgStatus(const PGresult* result, PGconn* conn, std::string_view what);

class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are numbered from 1, sent as text.
  void BindInt64(int index, int64_t value);
  void BindText(int index, std::string_view value);
  void BindNull(int index);

  // Runs the statement, ignoring any rows it returns; the bindings are
  // cleared whatever happens.
  Status Run();
  // Runs it and calls `on_row(const Statement&) -> Status` for each row.
  template <typename OnRow>
  Status ForEachRow(OnRow&& on_row);

  // Column accessors, valid inside ForEachRow's callback. Columns from 0.
  bool IsNull(int column) const { return Pq().getisnull(result_, row_, column) != 0; }
  int64_t Int64(int column) const;
  std::string_view TextView(int column) const {
    return {Pq().getvalue(result_, row_, column),
            static_cast<size_t>(Pq().getlength(result_, row_, column))};
  }
  std::string Text(int column) const { return std::string(TextView(column)); }

 private:
  friend class Database;
  Statement(Connection* conn, std::string sql);
  // Executes with the bound parameters (then cleared); with `need_result`
  // its result is in result_ on return, else it may only be queued.
  Status Execute(bool need_result);
  void Clear();

  Connection* conn_ = nullptr;
  std::string sql_;
  std::string name_;  // the server-side prepared statement's
  bool writes_ = false;
  int64_t prepared_session_ = -1;  // Connection::session it was prepared in
  std::vector<std::optional<std::string>> params_;
  std::vector<int> binary_params_;  // per parameter: 1 = sent as bytes (BYTEA)
  PGresult* result_ = nullptr;
  int row_ = 0;
};

class Database {
 public:
  // Connects with libpq's `conninfo` (a postgres:// URL or key=value
  // pairs). The password in it is never logged or kept beyond libpq.
  static Result<Database> Connect(const std::string& conninfo);

  Database(Database&&) noexcept;
  Database& operator=(Database&&) noexcept;
  ~Database();

  // A statement to keep and reuse: prepared on the server at first use.
  Result<Statement> Prepare(std::string_view sql);
  // Runs one or more statements returning nothing of interest (DDL), in a
  // write transaction of their own unless one is open.
  Status Exec(const std::string& sql);
  // Runs one or more statements as they are: no transaction of its own (the
  // migrations, which create _smithers_commits, begin and end their own).
  Status Command(const std::string& sql);
  // Runs `sql` (no parameters) and returns its first row's first column.
  Result<std::optional<std::string>> QueryText(const std::string& sql);
  // Rows changed by this connection's last INSERT, UPDATE or DELETE (read
  // after what the transaction has queued).
  int64_t changes();

  // A read snapshot (REPEATABLE READ, READ ONLY) shared by the reads until
  // the matching EndRead; nests. A write ends it first.
  Status BeginRead();
  void EndRead();

  Connection* connection() const { return conn_.get(); }

 private:
  friend class WriteTransaction;
  explicit Database(std::unique_ptr<Connection> conn);
  std::unique_ptr<Connection> conn_;
};

// A write transaction (module comment). Rolls back on destruction unless
// Commit() succeeded. Begun while another is open it joins it, as
// store/sqlite/sqlite_db.h's WriteTransaction does.
class WriteTransaction {
 public:
  static Result<WriteTransaction> Begin(Database& db);

  WriteTransaction(WriteTransaction&& other) noexcept
      : conn_(std::exchange(other.conn_, nullptr)), joined_(other.joined_) {}
  WriteTransaction& operator=(WriteTransaction&&) = delete;
  WriteTransaction(const WriteTransaction&) = delete;
  ~WriteTransaction();

  // A lost connection during COMMIT leaves the outcome unknown (the
  // "ambiguous commit" callers already tolerate): Unavailable.
  Status Commit();

 private:
  WriteTransaction(Connection* conn, bool joined) : conn_(conn), joined_(joined) {}
  Connection* conn_;  // null once committed or moved from
  bool joined_;
};

template <typename OnRow>
Status Statement::ForEachRow(OnRow&& on_row) {
  SMITHERS_RETURN_IF_ERROR(Execute(/*need_result=*/true));
  Status status;
  const int rows = Pq().ntuples(result_);
  for (row_ = 0; row_ < rows && status.ok(); ++row_) {
    status = on_row(static_cast<const Statement&>(*this));
  }
  Clear();
  return status;
}

}  // namespace smithers::store::pg

#endif  // SMITHERS_STORE_POSTGRES_PG_DB_H_
