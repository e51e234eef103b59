#include "store/postgres/pg_db.h"

#include <cctype>
#include <cstring>
#include <string>
#include <utility>

#include "smithers/store.h"
#include "store/store_url.h"

namespace smithers::store::pg {

struct Connection {
  PGconn* conn = nullptr;
  // Moves on every reconnect: prepared statements live in one session.
  int64_t session = 0;
  int64_t next_statement = 0;
  int64_t changes = 0;
  int read_depth = 0;
  bool in_read = false;  // a read snapshot's transaction is open
  int write_depth = 0;
  bool write_failed = false;
  // What a write transaction sent in pipeline mode and has not read yet
  // (pg_db.h): each result goes to *out when `out` is set.
  struct Queued {
    std::string what;  // the SQL, for an error
    bool writes;
    PGresult** out;
  };
  std::vector<Queued> queued;
  // An error read by a flush that had no caller to tell (changes()): the
  // next flush or COMMIT of the transaction reports it.
  Status pending_error;

  ~Connection() {
    if (conn != nullptr) Pq().finish(conn);
  }
};

namespace {

constexpr Oid kByteaOid = 17;  // pg_type.h's BYTEAOID

// The bump that begins every write transaction (pg_db.h).
constexpr const char kBump[] = "UPDATE _smithers_commits SET n = n + 1 WHERE id = 1";

// libpq's message without its trailing newline.
std::string TrimmedMessage(const char* message) {
  std::string text = message;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
    text.pop_back();
  }
  return text;
}

bool IsWrite(std::string_view sql) {
  size_t i = 0;
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i])) != 0) ++i;
  std::string head;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i])) != 0) {
    head += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
  }
  return head == "INSERT" || head == "UPDATE" || head == "DELETE";
}

// --- Pipeline mode ------------------------------------------------------------
//
// Inside a write transaction, statements are sent without waiting for their
// results (libpq's pipeline mode) until one whose result is needed: a query
// with rows, changes(), COMMIT. Then a sync is sent and every result read, so
// a transaction of N writes and a COMMIT costs one round trip instead of N+2.
// The first error read fails the transaction: the server skips what follows
// it, and the caller rolls back, as it would have at the statement itself.

Status SendFailed(Connection* c, std::string_view what) {
  return UnavailableError("send `" + std::string(what.substr(0, 60)) +
                          "` to PostgreSQL: " + Pq().error_message(c->conn));
}

Status EnterPipeline(Connection* c) {
  if (Pq().pipeline_status(c->conn) != PQ_PIPELINE_OFF) return Status::Ok();
  if (Pq().enter_pipeline_mode(c->conn) != 1) return SendFailed(c, "(pipeline mode)");
  return Status::Ok();
}

// Queues a command of no parameters (BEGIN, the bump, COMMIT).
Status QueueCommand(Connection* c, const char* sql, PGresult** out = nullptr) {
  SMITHERS_RETURN_IF_ERROR(EnterPipeline(c));
  if (Pq().send_query_params(c->conn, sql, 0, nullptr, nullptr, nullptr, nullptr, 1) != 1) {
    return SendFailed(c, sql);
  }
  c->queued.push_back({sql, false, out});
  return Status::Ok();
}

// Sends a sync and reads the result of everything queued: the first error
// (or the transaction's pending one).
Status Flush(Connection* c) {
  Status first = std::exchange(c->pending_error, Status::Ok());
  if (Pq().pipeline_status(c->conn) == PQ_PIPELINE_OFF) return first;
  if (Pq().pipeline_sync(c->conn) != 1) {
    if (first.ok()) first = SendFailed(c, "(sync)");
  } else {
    for (Connection::Queued& q : c->queued) {
      bool kept = false;
      while (PGresult* r = Pq().get_result(c->conn)) {
        const ExecStatusType st = Pq().result_status(r);
        const bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
        if (st == PGRES_FATAL_ERROR && first.ok()) first = PgStatus(r, c->conn, q.what);
        if (st == PGRES_PIPELINE_ABORTED && first.ok()) {
          first = AbortedError("`" + q.what.substr(0, 60) +
                               "` was skipped: the transaction had failed");
        }
        if (ok && q.writes) {
          const char* tuples = Pq().cmd_tuples(r);
          c->changes = tuples[0] != '\0' ? std::stoll(tuples) : 0;
        }
        if (ok && q.out != nullptr && !kept) {
          *q.out = r;
          kept = true;
        } else {
          Pq().clear(r);
        }
      }
    }
    PGresult* sync = Pq().get_result(c->conn);
    if (Pq().result_status(sync) != PGRES_PIPELINE_SYNC && first.ok()) {
      first = UnavailableError(std::string("lost the connection to PostgreSQL: ") +
                               Pq().error_message(c->conn));
    }
    Pq().clear(sync);
  }
  c->queued.clear();
  Pq().exit_pipeline_mode(c->conn);  // fails only on a broken connection, reset later
  return first;
}

// Runs a command that returns no rows, after what is queued.
Status RunCommand(Connection* c, const char* sql) {
  SMITHERS_RETURN_IF_ERROR(Flush(c));
  PGresult* result = Pq().exec(c->conn, sql);
  Status status;
  if (Pq().result_status(result) != PGRES_COMMAND_OK) status = PgStatus(result, c->conn, sql);
  Pq().clear(result);
  return status;
}

// Ends a write transaction that will not commit: what was queued is read and
// dropped, and the transaction rolled back.
void Abandon(Connection* c) {
  c->write_depth = 0;
  (void)Flush(c);
  c->pending_error = Status::Ok();
  if (Pq().status(c->conn) == CONNECTION_OK) Pq().clear(Pq().exec(c->conn, "ROLLBACK"));
}

// A connection that broke between transactions is opened again; one that
// breaks inside a transaction fails that transaction (Unavailable) and is
// reset at the next one.
Status EnsureConnected(Connection* c) {
  if (Pq().status(c->conn) == CONNECTION_OK) return Status::Ok();
  if (c->write_depth > 0 || c->in_read) {
    return UnavailableError("lost the connection to PostgreSQL inside a transaction");
  }
  c->queued.clear();
  Pq().reset(c->conn);
  c->session++;
  if (Pq().status(c->conn) != CONNECTION_OK) {
    return UnavailableError(std::string("reconnect to PostgreSQL: ") + Pq().error_message(c->conn));
  }
  return Status::Ok();
}

void EndReadSnapshot(Connection* c) {
  if (!c->in_read) return;
  c->in_read = false;
  // A read-only transaction's COMMIT cannot lose anything; a failure shows
  // at the next statement.
  Pq().clear(Pq().exec(c->conn, "COMMIT"));
}

// Queues BEGIN and the bump: they go with the transaction's first round trip.
Status BeginWrite(Connection* c) {
  EndReadSnapshot(c);
  SMITHERS_RETURN_IF_ERROR(EnsureConnected(c));
  c->pending_error = Status::Ok();
  Status status = QueueCommand(c, "BEGIN");
  if (status.ok()) status = QueueCommand(c, kBump);
  if (!status.ok()) {
    Abandon(c);
    return status;
  }
  c->write_depth = 1;
  c->write_failed = false;
  return Status::Ok();
}

Status CommitWrite(Connection* c) {
  c->write_depth = 0;
  PGresult* commit = nullptr;
  Status status = QueueCommand(c, "COMMIT", &commit);
  Status flushed = Flush(c);
  if (status.ok()) status = flushed;
  if (status.ok() && (commit == nullptr || std::strcmp(Pq().cmd_status(commit), "COMMIT") != 0)) {
    // COMMIT of a transaction that had failed answers ROLLBACK.
    status = AbortedError("the transaction had failed: it was rolled back");
  }
  Pq().clear(commit);
  if (status.ok()) return status;
  if (Pq().status(c->conn) != CONNECTION_OK) {
    return UnavailableError(
        "lost the connection to PostgreSQL during COMMIT: the transaction may or may not have "
        "committed");
  }
  // A COMMIT skipped after an error leaves the failed transaction open.
  Pq().clear(Pq().exec(c->conn, "ROLLBACK"));
  return status;
}

}  // namespace

Status PgStatus(const PGresult* result, PGconn* conn, std::string_view what) {
  const char* state =
      result != nullptr ? Pq().result_error_field(result, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary =
      result != nullptr ? Pq().result_error_field(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string message = TrimmedMessage(primary != nullptr ? primary : Pq().error_message(conn));
  const std::string code = state != nullptr ? state : "";
  constexpr size_t kMaxShown = 60;
  std::string shown(what.substr(0, kMaxShown));
  message += " in `" + shown + (what.size() > kMaxShown ? "...`" : "`");
  if (!code.empty()) message += " (SQLSTATE " + code + ")";
  if (code.empty() || Pq().status(conn) != CONNECTION_OK) return UnavailableError(message);
  const std::string cls = code.substr(0, 2);
  if (code == "23503") return FailedPreconditionError(message);
  if (code == "23505") return InvalidArgumentError("UNIQUE constraint failed: " + message);
  if (cls == "23" || cls == "22") return InvalidArgumentError(message);
  if (code == "40001" || code == "40P01" || cls == "08" || cls == "53" || cls == "57" ||
      code == "55P03") {
    return UnavailableError(message);
  }
  if (code == "25P02") return AbortedError(message);
  if (code == "25006") return FailedPreconditionError("the store was opened read-only: " + message);
  if (cls == "28" || code == "42501") return FailedPreconditionError(message);
  if (code == "P0001") return FailedPreconditionError(message);  // RAISE in a trigger
  return InternalError(message);
}

// --- Statement ----------------------------------------------------------------

Statement::Statement(Connection* conn, std::string sql)
    : conn_(conn),
      sql_(std::move(sql)),
      name_("s" + std::to_string(conn->next_statement++)),
      writes_(IsWrite(sql_)) {}

Statement::Statement(Statement&& other) noexcept
    : conn_(std::exchange(other.conn_, nullptr)),
      sql_(std::move(other.sql_)),
      name_(std::move(other.name_)),
      writes_(other.writes_),
      prepared_session_(other.prepared_session_),
      params_(std::move(other.params_)),
      binary_params_(std::move(other.binary_params_)),
      result_(std::exchange(other.result_, nullptr)),
      row_(other.row_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Pq().clear(result_);
    conn_ = std::exchange(other.conn_, nullptr);
    sql_ = std::move(other.sql_);
    name_ = std::move(other.name_);
    writes_ = other.writes_;
    prepared_session_ = other.prepared_session_;
    params_ = std::move(other.params_);
    binary_params_ = std::move(other.binary_params_);
    result_ = std::exchange(other.result_, nullptr);
    row_ = other.row_;
  }
  return *this;
}

Statement::~Statement() { Pq().clear(result_); }

void Statement::BindInt64(int index, int64_t value) {
  if (static_cast<size_t>(index) > params_.size()) params_.resize(index);
  params_[index - 1] = std::to_string(value);
}

void Statement::BindText(int index, std::string_view value) {
  if (static_cast<size_t>(index) > params_.size()) params_.resize(index);
  params_[index - 1] = std::string(value);
}

void Statement::BindNull(int index) {
  if (static_cast<size_t>(index) > params_.size()) params_.resize(index);
  params_[index - 1].reset();
}

int64_t Statement::Int64(int column) const {
  // BIGINT, INTEGER or SMALLINT in binary: big-endian two's complement.
  std::string_view bytes = TextView(column);
  if (bytes.size() != 8 && bytes.size() != 4 && bytes.size() != 2) return 0;  // NULL
  uint64_t value = static_cast<unsigned char>(bytes[0]) & 0x80 ? ~uint64_t{0} : 0;
  for (char byte : bytes) value = (value << 8) | static_cast<unsigned char>(byte);
  return static_cast<int64_t>(value);
}

void Statement::Clear() {
  Pq().clear(result_);
  result_ = nullptr;
  row_ = 0;
  params_.clear();
}

Status Statement::Execute(bool need_result) {
  Pq().clear(result_);
  result_ = nullptr;
  Connection* c = conn_;
  // A write outside a transaction gets one of its own (pg_db.h).
  const bool own = writes_ && c->write_depth == 0;
  if (writes_) EndReadSnapshot(c);
  Status status = own ? BeginWrite(c) : EnsureConnected(c);
  if (status.ok() && prepared_session_ != c->session) {
    // Prepared once per session, synchronously: what is queued goes first.
    status = Flush(c);
    PGresult* prepared = nullptr;
    if (status.ok()) {
      prepared = Pq().prepare(c->conn, name_.c_str(), sql_.c_str(), 0, nullptr);
      if (Pq().result_status(prepared) != PGRES_COMMAND_OK) {
        status = PgStatus(prepared, c->conn, sql_);
      }
    }
    Pq().clear(prepared);
    if (status.ok()) {
      // The types the server gave the parameters: a BYTEA one is sent as
      // bytes (binary format), every other one as text.
      PGresult* described = Pq().describe_prepared(c->conn, name_.c_str());
      if (Pq().result_status(described) != PGRES_COMMAND_OK) {
        status = PgStatus(described, c->conn, sql_);
      } else {
        binary_params_.assign(Pq().nparams(described), 0);
        for (int i = 0; i < Pq().nparams(described); ++i) {
          binary_params_[i] = Pq().paramtype(described, i) == kByteaOid ? 1 : 0;
        }
        prepared_session_ = c->session;
      }
      Pq().clear(described);
    }
  }
  if (status.ok()) {
    std::vector<const char*> values(params_.size());
    std::vector<int> lengths(params_.size());
    std::vector<int> formats(params_.size());
    for (size_t i = 0; i < params_.size(); ++i) {
      if (i < binary_params_.size()) formats[i] = binary_params_[i];
      if (!params_[i]) continue;
      values[i] = params_[i]->c_str();
      lengths[i] = static_cast<int>(params_[i]->size());
    }
    // Results in binary: text and BYTEA columns arrive as their bytes,
    // integers as big-endian (Int64).
    if (c->write_depth > 0) {
      // In a write transaction: queued; read now only when its rows are
      // wanted (its own transaction's COMMIT reads it otherwise).
      status = EnterPipeline(c);
      if (status.ok() &&
          Pq().send_query_prepared(c->conn, name_.c_str(), static_cast<int>(params_.size()),
                                   values.data(), lengths.data(), formats.data(), 1) != 1) {
        status = SendFailed(c, sql_);
      }
      if (status.ok()) {
        c->queued.push_back({sql_, writes_, need_result ? &result_ : nullptr});
        if (need_result && !own) status = Flush(c);
      }
    } else {
      result_ = Pq().exec_prepared(c->conn, name_.c_str(), static_cast<int>(params_.size()),
                                   values.data(), lengths.data(), formats.data(), 1);
      ExecStatusType st = Pq().result_status(result_);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        status = PgStatus(result_, c->conn, sql_);
    }
  }
  params_.clear();
  if (own) {
    if (status.ok()) {
      status = CommitWrite(c);
    } else {
      Abandon(c);
    }
  }
  if (status.ok() && need_result && result_ == nullptr) {
    status = InternalError("no result for `" + sql_.substr(0, 60) + "`");
  }
  if (!status.ok()) {
    Pq().clear(result_);
    result_ = nullptr;
  }
  return status;
}

Status Statement::Run() {
  Status status = Execute(/*need_result=*/false);
  Clear();
  return status;
}

// --- Database -----------------------------------------------------------------

Database::Database(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {}
Database::Database(Database&&) noexcept = default;
Database& Database::operator=(Database&&) noexcept = default;
Database::~Database() = default;

Result<Database> Database::Connect(const std::string& conninfo) {
  const char* error = nullptr;
  if (LoadPq(&error) == nullptr) return FailedPreconditionError(error);
  // A URL libpq cannot read is bad input. Its messages may quote the URL or
  // a piece of it, password included: every message is scrubbed.
  char* parse_error = nullptr;
  PQconninfoOption* parsed = Pq().conninfo_parse(conninfo.c_str(), &parse_error);
  if (parsed == nullptr) {
    std::string message = TrimmedMessage(parse_error != nullptr ? parse_error : "out of memory");
    if (parse_error != nullptr) Pq().freemem(parse_error);
    return InvalidArgumentError("store URL " + RedactStoreUrl(conninfo) + ": " +
                                ScrubUrlSecrets(message, conninfo));
  }
  Pq().conninfo_free(parsed);
  auto c = std::make_unique<Connection>();
  c->conn = Pq().connectdb(conninfo.c_str());
  if (c->conn == nullptr) return UnavailableError("connect to PostgreSQL: out of memory");
  if (Pq().status(c->conn) != CONNECTION_OK) {
    // libpq's message names the host and the reason, never the password.
    std::string message = TrimmedMessage(Pq().error_message(c->conn));
    return UnavailableError("connect to PostgreSQL: " + ScrubUrlSecrets(message, conninfo));
  }
  Database db(std::move(c));
  // Notices (e.g. "relation already exists, skipping") are not errors.
  Pq().set_notice_processor(
      db.conn_->conn, [](void*, const char*) {}, nullptr);
  SMITHERS_RETURN_IF_ERROR(
      RunCommand(db.conn_.get(), "SET client_encoding = 'UTF8'; SET TIME ZONE 'UTC'"));
  return db;
}

Result<Statement> Database::Prepare(std::string_view sql) {
  return Statement(conn_.get(), std::string(sql));
}

Status Database::Exec(const std::string& sql) {
  Connection* c = conn_.get();
  const bool own = c->write_depth == 0;
  if (own) SMITHERS_RETURN_IF_ERROR(BeginWrite(c));
  Status status = RunCommand(c, sql.c_str());
  if (!own) return status;
  if (status.ok()) return CommitWrite(c);
  Abandon(c);
  return status;
}

Status Database::Command(const std::string& sql) {
  SMITHERS_RETURN_IF_ERROR(EnsureConnected(conn_.get()));
  return RunCommand(conn_.get(), sql.c_str());
}

Result<std::optional<std::string>> Database::QueryText(const std::string& sql) {
  SMITHERS_RETURN_IF_ERROR(EnsureConnected(conn_.get()));
  SMITHERS_RETURN_IF_ERROR(Flush(conn_.get()));
  PGresult* result = Pq().exec(conn_->conn, sql.c_str());
  if (Pq().result_status(result) != PGRES_TUPLES_OK) {
    Status status = PgStatus(result, conn_->conn, sql);
    Pq().clear(result);
    return status;
  }
  std::optional<std::string> value;
  if (Pq().ntuples(result) > 0 && Pq().getisnull(result, 0, 0) == 0)
    value = Pq().getvalue(result, 0, 0);
  Pq().clear(result);
  return value;
}

int64_t Database::changes() {
  // The count is the last write's: read what is queued. An error read here
  // fails the transaction at its next flush or COMMIT.
  Status flushed = Flush(conn_.get());
  if (!flushed.ok()) conn_->pending_error = flushed;
  return conn_->changes;
}

Status Database::BeginRead() {
  Connection* c = conn_.get();
  if (c->read_depth++ > 0 || c->write_depth > 0 || c->in_read) return Status::Ok();
  Status status = EnsureConnected(c);
  if (status.ok()) status = Flush(c);
  if (status.ok()) status = RunCommand(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  if (!status.ok()) {
    c->read_depth--;
    return status;
  }
  c->in_read = true;
  return Status::Ok();
}

void Database::EndRead() {
  Connection* c = conn_.get();
  if (c->read_depth == 0 || --c->read_depth > 0) return;
  EndReadSnapshot(c);
}

// --- WriteTransaction ---------------------------------------------------------

Result<WriteTransaction> WriteTransaction::Begin(Database& db) {
  Connection* c = db.conn_.get();
  if (c->write_depth > 0) {
    ++c->write_depth;
    return WriteTransaction(c, /*joined=*/true);
  }
  SMITHERS_RETURN_IF_ERROR(BeginWrite(c));
  return WriteTransaction(c, /*joined=*/false);
}

WriteTransaction::~WriteTransaction() {
  if (conn_ == nullptr) return;
  if (joined_) {
    conn_->write_depth--;
    conn_->write_failed = true;
    return;
  }
  Abandon(conn_);
}

Status WriteTransaction::Commit() {
  if (conn_ == nullptr) return InternalError("commit of a finished transaction");
  Connection* c = std::exchange(conn_, nullptr);
  if (joined_) {
    c->write_depth--;
    return Status::Ok();
  }
  if (c->write_failed) {
    Abandon(c);
    return AbortedError("a write inside this transaction failed: it was rolled back");
  }
  return CommitWrite(c);
}

}  // namespace smithers::store::pg
