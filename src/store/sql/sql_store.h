// The store over a SQL database, written once for every SQL backend (the
// dialect seam): every write goes through one write transaction per
// Commit(), with statements prepared once per Store; reads are single
// autocommit statements, each seeing one consistent snapshot, unless a
// caller groups them with BeginRead/EndRead. A backend instantiates
// SqlStore<Dialect> with its connection types and its SQL differences.
#ifndef SMITHERS_STORE_SQL_SQL_STORE_H_
#define SMITHERS_STORE_SQL_SQL_STORE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "base/redact.h"
#include "base/version.h"
#include "smithers/clock.h"
#include "smithers/store.h"
#include "store/audit.h"
#include "store/sql/row_codec.h"
#include "store/sql/statements.h"
#include "store/sql/tables.h"

namespace smithers::store {

// --- The store ----------------------------------------------------------------

// D, the dialect, names the backend's connection types (D::Database,
// D::Statement, D::WriteTransaction, as store/sqlite/sqlite_db.h defines
// them) and what differs in SQL (D::Sql, D::OutputViewSql, D::ChangeStamp,
// D::kName).
template <typename D>
class SqlStore final : public Store {
 public:
  using Database = typename D::Database;
  using Statement = typename D::Statement;
  using WriteTransaction = typename D::WriteTransaction;

  SqlStore(Database db, AuditKeySource audit_key)
      : db_(std::move(db)), audit_key_source_(std::move(audit_key)) {}

  // Statements needing a migration above `max_migration` (only tests open a
  // store short of the latest) stay unprepared and must not be used.
  Status PrepareStatements(int max_migration) {
    for (const StatementSql& entry : kStatements) {
      if (entry.migration > max_migration) continue;
      SMITHERS_ASSIGN_OR_RETURN(statements_[entry.id], db_.Prepare(D::Sql(entry)));
    }
    return Status::Ok();
  }

  Result<std::vector<int64_t>> Commit(const WriteBatch& batch) override;
  Result<RunRecord> GetRun(const std::string& run_id) override;
  Result<std::vector<RunRecord>> ListRuns(const RunFilter& filter) override;
  Result<std::vector<NodeRecord>> ListNodes(const std::string& run_id) override;
  Result<std::map<std::string, int64_t>> CountNodes(const std::string& run_id) override;
  Result<std::map<std::string, int64_t>> CountRunsByStatus() override;
  Result<std::vector<AttemptRecord>> ListAttempts(const std::string& run_id) override;
  Result<std::vector<OutputRecord>> ListOutputs(const std::string& run_id) override;
  Result<std::vector<LoopRecord>> ListLoops(const std::string& run_id) override;
  Result<std::vector<FrameRecord>> ListFrames(const std::string& run_id) override;
  Result<std::optional<FrameRecord>> LastFrame(const std::string& run_id) override;
  Result<std::vector<EventRecord>> ListEvents(const std::string& run_id, int64_t after_seq,
                                              int limit) override;
  Result<std::optional<CacheEntry>> GetCache(const std::string& cache_key) override;
  Status ClaimRun(const std::string& run_id, const std::string& expected_owner,
                  const std::string& new_owner, int64_t now_ms) override;
  Status Heartbeat(const std::string& run_id, const std::string& owner, int64_t now_ms) override;
  Status RequestCancel(const std::string& run_id, int64_t now_ms) override;
  Status ClearCancel(const std::string& run_id) override;
  Status EnsureOutputViews(const std::map<std::string, Json>& schemas) override;
  std::string BackendName() const override { return D::kName; }
  Result<std::vector<ApprovalRecord>> ListApprovals(const ApprovalFilter& filter) override;
  Result<std::vector<SignalRecord>> ListSignals(const std::string& run_id) override;
  Result<std::vector<SandboxRecord>> ListSandboxes(const std::string& run_id) override;
  Result<ApprovalRecord> DecideApproval(const ApprovalDecision& decision, int64_t now_ms) override;
  Result<std::vector<ApprovalRecord>> EscalateDueApprovals(const std::string& run_id,
                                                           int64_t now_ms) override;
  Result<SignalRecord> AppendSignal(SignalRecord signal) override;
  Status PutToken(const TokenGrant& grant) override;
  Result<std::optional<TokenGrant>> FindToken(const std::string& token_hash) override;
  Result<std::vector<TokenGrant>> ListTokens() override;
  Status RevokeToken(const std::string& token_id, int64_t at_ms,
                     const std::string& replaced_by) override;
  Status PutCron(const CronRecord& cron) override;
  Result<std::vector<CronRecord>> ListCron() override;
  Status DeleteCron(const std::string& cron_id) override;
  Result<RunRecord> DeleteRun(const std::string& run_id) override;
  Result<int64_t> AddMaintenance(const MaintenanceRecord& record) override;
  Result<std::vector<MaintenanceRecord>> ListMaintenance(const std::string& kind,
                                                         int limit) override;
  Status PutModuleSource(const ModuleSource& module) override;
  Status Audited(const AuditEntry& entry, const std::function<Status()>& action) override;
  Result<std::vector<AuditRecord>> ListAudit(const AuditFilter& filter) override;
  Result<std::string> ChangeStamp() override;
  Status BeginRead() override { return db_.BeginRead(); }
  void EndRead() override { db_.EndRead(); }
  Result<std::optional<ModuleSource>> GetModuleSource(const std::string& revision) override;
  Result<LaunchKey> ClaimLaunchKey(const LaunchKey& want, int64_t expired_before_ms) override;
  Status ExportTable(const std::string& table,
                     const std::function<Status(const Json& row)>& on_row) override;
  Result<std::unique_ptr<StoreImport>> BeginImport() override;
  Status ReleaseLaunchKey(const std::string& scope, const std::string& key,
                          const std::string& run_id) override;
  Status ClaimCronFire(const std::string& cron_id, int64_t expected_next_ms, int64_t fired_at_ms,
                       int64_t new_next_ms, const std::string& run_id) override;

 private:
  // Within a transaction: appends one event and returns its seq.
  Result<int64_t> InsertEvent(const std::string& run_id, const std::string& type,
                              const Json& payload, int64_t timestamp_ms);
  Statement& stmt(StatementId id) { return statements_[id]; }
  // Applies one op inside the open transaction; appends an event's seq to `seqs`.
  Status Apply(const WriteBatch::Op& op, std::vector<int64_t>& seqs);
  Status PutSandbox(const SandboxRecord& r);
  // Within a transaction: NotFound unless the run exists.
  Status RequireRun(const std::string& run_id);
  // The Aborted status of a ConsumeSignal that changed nothing, saying why.
  Status SignalNotPending(const std::string& run_id, int64_t seq);
  // The audit key, loaded (or, for the default file, created) on first use.
  Result<std::string> AuditKey();
  // Within a transaction: the module revision of the entry's run ("" off a run).
  Result<std::string> RunRevision(const AuditEntry& entry);
  // Within a transaction: appends `entry` to the audit log (the run's
  // revision as read before the action, else now).
  Status InsertAudit(const AuditEntry& entry, const std::string& key,
                     const std::string& module_revision);

  Database db_;  // declared first so it outlives the statements
  std::array<Statement, kStatementCount> statements_;
  AuditKeySource audit_key_source_;
  std::optional<std::string> audit_key_;
};

inline std::string DescribeOp(const WriteBatch::Op& op) {
  using Kind = WriteBatch::Op::Kind;
  switch (op.kind) {
    case Kind::kRun: return "_smithers_runs row (run_id=" + op.run->run_id + ")";
    case Kind::kNode:
      return "_smithers_nodes row (" + RowKey(op.node.run_id, op.node.node_id, op.node.iteration) +
             ")";
    case Kind::kAttempt:
      return "_smithers_attempts row (" +
             RowKey(op.attempt.run_id, op.attempt.node_id, op.attempt.iteration) +
             ", attempt=" + std::to_string(op.attempt.attempt) + ")";
    case Kind::kOutput:
      return "_smithers_outputs row (" +
             RowKey(op.output.run_id, op.output.node_id, op.output.iteration) + ")";
    case Kind::kFrame:
      return "_smithers_frames row (run_id=" + op.frame.run_id +
             ", frame_no=" + std::to_string(op.frame.frame_no) + ")";
    case Kind::kLoop:
      return "_smithers_ralph row (run_id=" + op.loop.run_id + ", ralph_id=" + op.loop.loop_id +
             ")";
    case Kind::kEvent:
      return "_smithers_events row (run_id=" + op.event.run_id + ", type=" + op.event.type + ")";
    case Kind::kCache: return "_smithers_cache row (cache_key=" + op.cache.cache_key + ")";
    case Kind::kApproval:
    case Kind::kRenewApproval:
      return "_smithers_approvals row (" +
             RowKey(op.approval->run_id, op.approval->node_id, op.approval->iteration) + ")";
    case Kind::kSignal:
      return "_smithers_signals row (run_id=" + op.signal->run_id +
             ", seq=" + std::to_string(op.signal->seq) + ")";
    case Kind::kSandbox:
      return "_smithers_sandboxes row (" +
             RowKey(op.sandbox->run_id, op.sandbox->sandbox_id, op.sandbox->iteration) + ")";
  }
  return "unknown op";
}

template <typename D>
Result<std::vector<int64_t>> SqlStore<D>::Commit(const WriteBatch& batch) {
  std::vector<int64_t> seqs;
  if (batch.empty()) return seqs;
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  for (const WriteBatch::Op& op : batch.ops()) {
    Status status = Apply(op, seqs);
    // Returning destroys `txn`, which rolls back every op applied so far.
    if (!status.ok()) return status.WithContext("commit: " + DescribeOp(op));
  }
  // If the process dies before COMMIT returns, the WAL holds either the whole
  // batch (the commit frame was synced) or none of it.
  SMITHERS_RETURN_IF_ERROR(txn.Commit());
  return seqs;
}

template <typename D>
Status SqlStore<D>::Apply(const WriteBatch::Op& op, std::vector<int64_t>& seqs) {
  using Kind = WriteBatch::Op::Kind;
  switch (op.kind) {
    case Kind::kRun: {
      const RunRecord& run = *op.run;
      Statement& s = stmt(kUpsertRun);
      s.BindText(1, run.run_id);
      s.BindText(2, run.workflow_name);
      s.BindText(3, run.workflow_path);
      s.BindText(4, run.workflow_hash);
      s.BindText(5, Name(run.status));
      BindTime(s, 6, run.created_at_ms);
      BindTime(s, 7, run.started_at_ms);
      BindTime(s, 8, run.finished_at_ms);
      BindTime(s, 9, run.heartbeat_at_ms);
      BindOwner(s, 10, run.runtime_owner_id);
      BindTime(s, 11, run.cancel_requested_at_ms);
      BindJson(s, 12, run.input);
      BindJson(s, 13, run.error);
      BindJson(s, 14, run.config);
      return s.Run();
    }
    case Kind::kNode: {
      const NodeRecord& node = op.node;
      Statement& s = stmt(kUpsertNode);
      s.BindText(1, node.run_id);
      s.BindText(2, node.node_id);
      s.BindInt64(3, node.iteration);
      s.BindText(4, Name(node.state));
      s.BindInt64(5, node.last_attempt);
      BindTime(s, 6, node.updated_at_ms);
      s.BindText(7, node.output_table);
      s.BindText(8, node.label);
      s.BindInt64(9, node.mounted ? 1 : 0);
      return s.Run();
    }
    case Kind::kAttempt: {
      const AttemptRecord& attempt = op.attempt;
      Statement& s = stmt(kUpsertAttempt);
      s.BindText(1, attempt.run_id);
      s.BindText(2, attempt.node_id);
      s.BindInt64(3, attempt.iteration);
      s.BindInt64(4, attempt.attempt);
      s.BindText(5, Name(attempt.state));
      BindTime(s, 6, attempt.started_at_ms);
      BindTime(s, 7, attempt.finished_at_ms);
      BindJson(s, 8, attempt.error);
      s.BindInt64(9, attempt.cached ? 1 : 0);
      BindJson(s, 10, attempt.meta);
      return s.Run();
    }
    case Kind::kOutput: {
      const OutputRecord& output = op.output;
      Statement& s = stmt(kPutOutput);
      s.BindText(1, output.run_id);
      s.BindText(2, output.node_id);
      s.BindInt64(3, output.iteration);
      s.BindText(4, output.output_table);
      BindJson(s, 5, output.payload);
      BindTime(s, 6, output.created_at_ms);
      return s.Run();
    }
    case Kind::kFrame: {
      const FrameRecord& frame = op.frame;
      Statement& s = stmt(kPutFrame);
      s.BindText(1, frame.run_id);
      s.BindInt64(2, frame.frame_no);
      BindTime(s, 3, frame.created_at_ms);
      s.BindText(4, frame.encoding);
      s.BindText(5, frame.data);
      s.BindText(6, frame.xml_hash);
      s.BindText(7, frame.note);
      return s.Run();
    }
    case Kind::kLoop: {
      const LoopRecord& loop = op.loop;
      Statement& s = stmt(kUpsertLoop);
      s.BindText(1, loop.run_id);
      s.BindText(2, loop.loop_id);
      s.BindInt64(3, loop.iteration);
      s.BindInt64(4, loop.done ? 1 : 0);
      BindTime(s, 5, loop.updated_at_ms);
      return s.Run();
    }
    case Kind::kEvent: {
      const EventRecord& event = op.event;
      SMITHERS_ASSIGN_OR_RETURN(
          int64_t seq, InsertEvent(event.run_id, event.type, event.payload, event.timestamp_ms));
      seqs.push_back(seq);
      return Status::Ok();
    }
    case Kind::kApproval:
    case Kind::kRenewApproval: {
      const ApprovalRecord& a = *op.approval;
      Statement& s = stmt(op.kind == Kind::kApproval ? kRequestApproval : kRenewApproval);
      s.BindText(1, a.run_id);
      s.BindText(2, a.node_id);
      s.BindInt64(3, a.iteration);
      s.BindText(4, Name(a.status));
      BindTime(s, 5, a.requested_at_ms);
      s.BindText(6, a.owner);
      s.BindText(7, a.original_owner);
      s.BindText(8, a.fallback_owner);
      s.BindInt64(9, a.escalate_after_ms);
      BindTime(s, 10, a.escalated_at_ms);
      BindJson(s, 11, a.request);
      s.BindText(12, a.on_deny);
      BindTime(s, 13, a.decided_at_ms);
      s.BindText(14, a.decided_by);
      s.BindText(15, a.note);
      BindJson(s, 16, a.allowed_users.empty() ? Json() : Json(a.allowed_users));
      BindJson(s, 17, a.allowed_scopes.empty() ? Json() : Json(a.allowed_scopes));
      s.BindText(18, a.decided_via);
      s.BindText(19, a.decided_os_user);
      s.BindInt64(20, a.decided_override ? 1 : 0);
      return s.Run();
    }
    case Kind::kSignal: {
      const SignalRecord& sig = *op.signal;
      Statement& s = stmt(kConsumeSignal);
      s.BindText(1, sig.run_id);
      s.BindInt64(2, sig.seq);
      s.BindText(3, Name(sig.status));
      s.BindText(4, sig.consumed_by_node);
      s.BindInt64(5, sig.consumed_iteration);
      BindTime(s, 6, sig.consumed_at_ms);
      BindJson(s, 7, sig.rejection);
      SMITHERS_RETURN_IF_ERROR(s.Run());
      // The conditional update is what makes a signal consumed at most once:
      // a second consumer's whole commit fails here.
      if (db_.changes() == 0) return SignalNotPending(sig.run_id, sig.seq);
      return Status::Ok();
    }
    case Kind::kSandbox: return PutSandbox(*op.sandbox);
    case Kind::kCache: {
      const CacheEntry& entry = op.cache;
      Statement& s = stmt(kPutCache);
      s.BindText(1, entry.cache_key);
      BindTime(s, 2, entry.created_at_ms);
      s.BindText(3, entry.workflow_name);
      s.BindText(4, entry.node_id);
      s.BindText(5, entry.output_table);
      s.BindText(6, entry.schema_sig);
      BindJson(s, 7, entry.payload);
      return s.Run();
    }
  }
  return InternalError("unknown write batch op");
}

template <typename D>
Result<int64_t> SqlStore<D>::InsertEvent(const std::string& run_id, const std::string& type,
                                         const Json& payload, int64_t timestamp_ms) {
  Statement& s = stmt(kAppendEvent);
  s.BindText(1, run_id);
  BindTime(s, 2, timestamp_ms);
  s.BindText(3, type);
  BindJson(s, 4, payload);
  std::optional<int64_t> seq;
  SMITHERS_RETURN_IF_ERROR(s.ForEachRow([&](const Statement& row) {
    seq = row.Int64(0);
    return Status::Ok();
  }));
  if (!seq) return InternalError("event insert returned no seq");
  return *seq;
}

template <typename D>
Status SqlStore<D>::SignalNotPending(const std::string& run_id, int64_t seq) {
  const std::string what = "signal " + std::to_string(seq) + " of run " + run_id;
  Statement& s = stmt(kSignalState);
  s.BindText(1, run_id);
  s.BindInt64(2, seq);
  std::optional<std::string> why;
  SMITHERS_RETURN_IF_ERROR(s.ForEachRow([&](const Statement& row) {
    why = what + " was already " + row.Text(0) + " by node \"" + row.Text(1) + "\" (iteration " +
          std::to_string(row.Int64(2)) + ")";
    return Status::Ok();
  }));
  return AbortedError(why.value_or("no " + what));
}

template <typename D>
Status SqlStore<D>::PutToken(const TokenGrant& g) {
  Statement& s = stmt(kPutToken);
  s.BindText(1, g.token_id);
  s.BindText(2, g.token_hash);
  BindJson(s, 3, Json(g.scopes));
  s.BindText(4, g.role);
  s.BindText(5, g.user_id);
  s.BindText(6, g.label);
  s.BindInt64(7, g.issued_at_ms);
  BindTime(s, 8, g.expires_at_ms);
  BindTime(s, 9, g.revoked_at_ms);
  s.BindText(10, g.replaced_by);
  Status st = s.Run();
  if (st.code() == StatusCode::kInvalidArgument &&
      st.message().find("UNIQUE") != std::string::npos) {
    return AlreadyExistsError("token " + g.token_id + " already exists");
  }
  return st;
}

template <typename D>
Result<std::optional<TokenGrant>> SqlStore<D>::FindToken(const std::string& token_hash) {
  Statement& s = stmt(kFindToken);
  s.BindText(1, token_hash);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<TokenGrant> rows, Collect(s, ReadToken<Statement>));
  if (rows.empty()) return std::optional<TokenGrant>();
  return std::optional<TokenGrant>(std::move(rows.front()));
}

template <typename D>
Result<std::vector<TokenGrant>> SqlStore<D>::ListTokens() {
  return Collect(stmt(kListTokens), ReadToken<Statement>);
}

template <typename D>
Status SqlStore<D>::RevokeToken(const std::string& token_id, int64_t at_ms,
                                const std::string& replaced_by) {
  Statement& s = stmt(kRevokeToken);
  s.BindText(1, token_id);
  s.BindInt64(2, at_ms);
  s.BindText(3, replaced_by);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() != 1) return NotFoundError("no token with id " + token_id);
  return Status::Ok();
}

template <typename D>
Status SqlStore<D>::PutCron(const CronRecord& c) {
  Statement& s = stmt(kPutCron);
  s.BindText(1, c.cron_id);
  s.BindText(2, c.workflow);
  s.BindText(3, c.pattern);
  s.BindText(4, c.time_zone);
  BindJson(s, 5, c.input);
  s.BindInt64(6, c.enabled ? 1 : 0);
  s.BindInt64(7, c.created_at_ms);
  BindTime(s, 8, c.last_run_at_ms);
  BindTime(s, 9, c.next_run_at_ms);
  s.BindText(10, c.last_run_id);
  s.BindText(11, c.last_error);
  return s.Run();
}

template <typename D>
Result<std::vector<CronRecord>> SqlStore<D>::ListCron() {
  return Collect(stmt(kListCron), ReadCron<Statement>);
}

template <typename D>
Status SqlStore<D>::DeleteCron(const std::string& cron_id) {
  Statement& s = stmt(kDeleteCron);
  s.BindText(1, cron_id);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() != 1) return NotFoundError("no cron schedule with id " + cron_id);
  return Status::Ok();
}

template <typename D>
Result<RunRecord> SqlStore<D>::DeleteRun(const std::string& run_id) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  SMITHERS_ASSIGN_OR_RETURN(RunRecord run, GetRun(run_id));
  if (!IsTerminal(run.status)) {
    return FailedPreconditionError("run " + run_id + " is " + std::string(Name(run.status)) +
                                   "; only a finished, failed or cancelled run can be deleted");
  }
  Statement& keys = stmt(kDeleteRunLaunchKeys);
  keys.BindText(1, run_id);
  SMITHERS_RETURN_IF_ERROR(keys.Run());
  Statement& s = stmt(kDeleteRun);
  s.BindText(1, run_id);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  SMITHERS_RETURN_IF_ERROR(txn.Commit());
  return run;
}

template <typename D>
Result<int64_t> SqlStore<D>::AddMaintenance(const MaintenanceRecord& r) {
  if (r.kind != "backup" && r.kind != "restore" && r.kind != "drill") {
    return InvalidArgumentError("maintenance kind must be backup, restore or drill, not \"" +
                                r.kind + "\"");
  }
  Statement& s = stmt(kAddMaintenance);
  s.BindText(1, r.kind);
  s.BindInt64(2, r.started_at_ms);
  s.BindInt64(3, r.finished_at_ms);
  s.BindInt64(4, r.ok ? 1 : 0);
  s.BindText(5, r.path);
  s.BindText(6, r.actor);
  BindJson(s, 7, r.detail.is_null() ? Json::object() : r.detail);
  int64_t id = 0;
  SMITHERS_RETURN_IF_ERROR(s.ForEachRow([&](const Statement& row) {
    id = row.Int64(0);
    return Status::Ok();
  }));
  return id;
}

template <typename D>
Result<std::string> SqlStore<D>::AuditKey() {
  if (audit_key_) return *audit_key_;
  const AuditKeySource& src = audit_key_source_;
  if (src.server && src.ref.empty()) {
    return FailedPreconditionError(
        "audit log: a " + std::string(D::kName) +
        " store keeps no key file beside the database; give every process that writes to it "
        "the same key with --audit-key (SMITHERS_AUDIT_KEY): file:/PATH or env:NAME");
  }
  if (src.ref.empty() && (src.db_path == ":memory:" || src.db_path.empty())) {
    audit_key_ = base::RandomHex(32);  // lives and dies with the database
    return *audit_key_;
  }
  Result<std::string> key = LoadAuditKey(src.ref, src.db_path);
  if (!key.ok() && key.status().code() == StatusCode::kNotFound) {
    // The default key file: created once, 0600 whatever the database's
    // mode (a reader of the database has no use for it), never replaced,
    // and never made up for a log that already has rows (a restored copy
    // whose key stayed behind: the operator gives it).
    const std::string path = src.db_path + ".audit-key";
    bool has_rows = false;
    SMITHERS_RETURN_IF_ERROR(stmt(kAuditLast).ForEachRow([&](const Statement&) {
      has_rows = true;
      return Status::Ok();
    }));
    if (has_rows) {
      return FailedPreconditionError("audit log: this database's log has rows but its key file " +
                                     path +
                                     " is missing; give the log's key with --audit-key "
                                     "(SMITHERS_AUDIT_KEY) or put the key file back");
    }
    SMITHERS_RETURN_IF_ERROR(CreateDefaultAuditKey(src.db_path));
    key = LoadAuditKey(src.ref, src.db_path);
  }
  if (!key.ok()) return key.status().WithContext("audit log");
  audit_key_ = *std::move(key);
  return *audit_key_;
}

template <typename D>
Result<std::string> SqlStore<D>::RunRevision(const AuditEntry& entry) {
  std::string revision;
  if (entry.run_id.empty()) return revision;
  Statement& rev = stmt(kAuditRunRevision);
  rev.BindText(1, entry.run_id);
  SMITHERS_RETURN_IF_ERROR(rev.ForEachRow([&](const Statement& row) {
    revision = row.Text(0);
    return Status::Ok();
  }));
  return revision;
}

template <typename D>
Status SqlStore<D>::InsertAudit(const AuditEntry& entry, const std::string& key,
                                const std::string& module_revision) {
  AuditRecord r{.entry = entry,
                .version = base::Version(),
                .build = base::BuildCommit(),
                .key_id = AuditKeyId(key)};
  if (r.entry.at_ms == 0) r.entry.at_ms = SystemClock().NowMs();
  r.entry.details = base::RedactJson(entry.details.is_null() ? Json::object() : entry.details);
  r.chain = entry.run_id.empty() ? "deployment" : "run:" + entry.run_id;
  Statement& last = stmt(kAuditLast);
  std::string last_key_id;
  SMITHERS_RETURN_IF_ERROR(last.ForEachRow([&](const Statement& row) {
    r.seq = row.Int64(0);
    last_key_id = row.Text(1);
    return Status::Ok();
  }));
  if (!last_key_id.empty() && last_key_id != r.key_id) {
    return FailedPreconditionError("the audit log was written under key " + last_key_id +
                                   " and this process has key " + r.key_id +
                                   ": give it the log's key (--audit-key, SMITHERS_AUDIT_KEY)");
  }
  r.seq += 1;
  Statement& head = stmt(kAuditChainHead);
  head.BindText(1, r.chain);
  SMITHERS_RETURN_IF_ERROR(head.ForEachRow([&](const Statement& row) {
    r.chain_seq = row.Int64(0);
    r.prev_hmac = row.Text(1);
    return Status::Ok();
  }));
  r.chain_seq += 1;
  r.module_revision = module_revision;
  if (r.module_revision.empty()) {
    SMITHERS_ASSIGN_OR_RETURN(r.module_revision, RunRevision(entry));
  }
  r.hmac = AuditHmac(r, key);
  Statement& s = stmt(kAuditInsert);
  s.BindInt64(1, r.seq);
  s.BindText(2, r.chain);
  s.BindInt64(3, r.chain_seq);
  s.BindInt64(4, r.entry.at_ms);
  s.BindText(5, r.entry.actor);
  s.BindText(6, r.entry.actor_via);
  s.BindText(7, r.entry.action);
  s.BindText(8, r.entry.target);
  s.BindText(9, r.entry.run_id);
  BindJson(s, 10, r.entry.details);
  s.BindText(11, r.version);
  s.BindText(12, r.build);
  s.BindText(13, r.module_revision);
  s.BindText(14, r.key_id);
  s.BindText(15, r.prev_hmac);
  s.BindText(16, r.hmac);
  return s.Run();
}

template <typename D>
Status SqlStore<D>::Audited(const AuditEntry& entry, const std::function<Status()>& action) {
  if (entry.action.empty() || entry.actor.empty()) {
    return InvalidArgumentError("an audit entry needs an actor and an action");
  }
  SMITHERS_ASSIGN_OR_RETURN(std::string key, AuditKey());
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  // Read before the action too: a deleted run's row is gone after it.
  SMITHERS_ASSIGN_OR_RETURN(std::string revision, RunRevision(entry));
  SMITHERS_RETURN_IF_ERROR(action());
  SMITHERS_RETURN_IF_ERROR(InsertAudit(entry, key, revision));
  return txn.Commit();
}

template <typename D>
Result<std::vector<AuditRecord>> SqlStore<D>::ListAudit(const AuditFilter& f) {
  Statement& s = stmt(kListAudit);
  s.BindText(1, f.run_id);
  s.BindText(2, f.actor);
  s.BindInt64(3, f.since_ms);
  s.BindInt64(4, f.after_seq);
  s.BindInt64(5, f.limit > 0 ? f.limit : -1);
  return Collect(s, [](const Statement& row) -> Result<AuditRecord> {
    AuditRecord r{.seq = row.Int64(0),
                  .chain = row.Text(1),
                  .chain_seq = row.Int64(2),
                  .entry = {.actor = row.Text(4),
                            .actor_via = row.Text(5),
                            .action = row.Text(6),
                            .target = row.Text(7),
                            .run_id = row.Text(8),
                            .at_ms = row.Int64(3)},
                  .version = row.Text(10),
                  .build = row.Text(11),
                  .module_revision = row.Text(12),
                  .key_id = row.Text(13),
                  .prev_hmac = row.Text(14),
                  .hmac = row.Text(15)};
    if (!ReadJson(row, 9, &r.entry.details)) {
      return CorruptJson("_smithers_audit", "seq=" + std::to_string(r.seq), "details_json");
    }
    return r;
  });
}

template <typename D>
Result<std::vector<MaintenanceRecord>> SqlStore<D>::ListMaintenance(const std::string& kind,
                                                                    int limit) {
  Statement& s = stmt(kListMaintenance);
  s.BindText(1, kind);
  s.BindInt64(2, limit);
  return Collect(s, [](const Statement& row) -> Result<MaintenanceRecord> {
    MaintenanceRecord r{.id = row.Int64(0),
                        .kind = row.Text(1),
                        .started_at_ms = row.Int64(2),
                        .finished_at_ms = row.Int64(3),
                        .ok = row.Int64(4) != 0,
                        .path = row.Text(5),
                        .actor = row.Text(6)};
    if (!ReadJson(row, 7, &r.detail)) {
      return CorruptJson("_smithers_maintenance", "id=" + std::to_string(r.id), "detail_json");
    }
    return r;
  });
}

template <typename D>
Result<std::string> SqlStore<D>::ChangeStamp() {
  return D::ChangeStamp(db_, stmt(kDataVersion));
}

template <typename D>
Status SqlStore<D>::PutModuleSource(const ModuleSource& m) {
  auto put = [&] {
    Statement& s = stmt(kPutModule);
    s.BindText(1, m.revision);
    s.BindText(2, m.path);
    s.BindText(3, m.source);
    s.BindInt64(4, m.created_at_ms);
    return s.Run();
  };
  if (m.siblings.empty()) return put();
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  SMITHERS_RETURN_IF_ERROR(put());
  for (const auto& [name, source] : m.siblings) {
    Statement& s = stmt(kPutModuleRequire);
    s.BindText(1, m.revision);
    s.BindText(2, name);
    s.BindText(3, source);
    SMITHERS_RETURN_IF_ERROR(s.Run());
  }
  return txn.Commit();
}

template <typename D>
Result<LaunchKey> SqlStore<D>::ClaimLaunchKey(const LaunchKey& want, int64_t expired_before_ms) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  Statement& claim = stmt(kClaimLaunchKey);
  claim.BindText(1, want.scope);
  claim.BindText(2, want.key);
  claim.BindText(3, want.run_id);
  claim.BindText(4, want.workflow);
  claim.BindInt64(5, want.created_at_ms);
  claim.BindInt64(6, expired_before_ms);
  SMITHERS_RETURN_IF_ERROR(claim.Run());
  Statement& get = stmt(kGetLaunchKey);
  get.BindText(1, want.scope);
  get.BindText(2, want.key);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<LaunchKey> rows,
                            Collect(get, [](const Statement& row) -> Result<LaunchKey> {
                              return LaunchKey{.scope = row.Text(0),
                                               .key = row.Text(1),
                                               .run_id = row.Text(2),
                                               .workflow = row.Text(3),
                                               .created_at_ms = row.Int64(4)};
                            }));
  if (rows.empty()) return InternalError("launch key row missing after its claim");
  SMITHERS_RETURN_IF_ERROR(txn.Commit());
  return std::move(rows.front());
}

template <typename D>
Status SqlStore<D>::ReleaseLaunchKey(const std::string& scope, const std::string& key,
                                     const std::string& run_id) {
  Statement& s = stmt(kReleaseLaunchKey);
  s.BindText(1, scope);
  s.BindText(2, key);
  s.BindText(3, run_id);
  return s.Run();
}

template <typename D>
Result<std::optional<ModuleSource>> SqlStore<D>::GetModuleSource(const std::string& revision) {
  Statement& s = stmt(kGetModule);
  s.BindText(1, revision);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<ModuleSource> rows,
                            Collect(s, [](const Statement& row) -> Result<ModuleSource> {
                              return ModuleSource{.revision = row.Text(0),
                                                  .path = row.Text(1),
                                                  .source = row.Text(2),
                                                  .created_at_ms = row.Int64(3)};
                            }));
  if (rows.empty()) return std::optional<ModuleSource>();
  Statement& r = stmt(kGetModuleRequires);
  r.BindText(1, revision);
  SMITHERS_RETURN_IF_ERROR(r.ForEachRow([&](const Statement& row) {
    rows.front().siblings[row.Text(0)] = row.Text(1);
    return Status::Ok();
  }));
  return std::optional<ModuleSource>(std::move(rows.front()));
}

template <typename D>
Status SqlStore<D>::ClaimCronFire(const std::string& cron_id, int64_t expected_next_ms,
                                  int64_t fired_at_ms, int64_t new_next_ms,
                                  const std::string& run_id) {
  Statement& s = stmt(kClaimCronFire);
  s.BindText(1, cron_id);
  BindTime(s, 2, expected_next_ms);
  s.BindInt64(3, fired_at_ms);
  BindTime(s, 4, new_next_ms);
  s.BindText(5, run_id);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() != 1) {
    return AbortedError("cron " + cron_id + " was fired or changed by another process");
  }
  return Status::Ok();
}

template <typename D>
Result<std::vector<ApprovalRecord>> SqlStore<D>::ListApprovals(const ApprovalFilter& filter) {
  Statement& s = stmt(kListApprovals);
  s.BindText(1, filter.run_id);
  s.BindText(2, filter.status ? Name(*filter.status) : "");  // "" = any
  return Collect(s, ReadApproval<Statement>);
}

// A fresh row replaces the last attempt's whole; a change binds only the
// fields it sets (the rest NULL: unchanged).
template <typename D>
Status SqlStore<D>::PutSandbox(const SandboxRecord& r) {
  auto text = [](Statement& s, int i, const std::string& v) {
    if (v.empty()) {
      s.BindNull(i);
    } else {
      s.BindText(i, v);
    }
  };
  auto count = [](Statement& s, int i, int64_t v) {
    if (v < 0) {
      s.BindNull(i);
    } else {
      s.BindInt64(i, v);
    }
  };
  // Both statements number their parameters as SMITHERS_SANDBOX_COLUMNS_
  // lists the columns; a change leaves kind, runtime, config and
  // created_at_ms (5, 6, 8, 19) unused.
  Statement& s = stmt(r.fresh ? kPutSandbox : kPatchSandbox);
  s.BindText(1, r.run_id);
  s.BindText(2, r.sandbox_id);
  s.BindInt64(3, r.iteration);
  s.BindInt64(4, r.attempt);
  s.BindText(5, r.kind);
  s.BindText(6, r.runtime);
  text(s, 7, r.status);
  BindJson(s, 8, r.config);
  text(s, 9, r.remote_run_id);
  text(s, 10, r.container_id);
  text(s, 11, r.bundle_path);
  count(s, 12, r.request_bytes);
  count(s, 13, r.bundle_bytes);
  count(s, 14, r.patch_count);
  text(s, 15, r.review);
  text(s, 16, r.reviewed_by);
  BindTime(s, 17, r.reviewed_at_ms);
  text(s, 18, r.error_code);
  BindTime(s, 19, r.created_at_ms);
  BindTime(s, 20, r.shipped_at_ms);
  BindTime(s, 21, r.heartbeat_at_ms);
  BindTime(s, 22, r.completed_at_ms);
  return s.Run();  // no row (a run from before the table, an older attempt's event): nothing
}

template <typename D>
Result<std::vector<SandboxRecord>> SqlStore<D>::ListSandboxes(const std::string& run_id) {
  Statement& s = stmt(kListSandboxes);
  s.BindText(1, run_id);
  return Collect(s, ReadSandbox<Statement>);
}

template <typename D>
Result<std::vector<SignalRecord>> SqlStore<D>::ListSignals(const std::string& run_id) {
  Statement& s = stmt(kListSignals);
  s.BindText(1, run_id);
  return Collect(s, ReadSignal<Statement>);
}

template <typename D>
Result<ApprovalRecord> SqlStore<D>::DecideApproval(const ApprovalDecision& d, int64_t now_ms) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  Statement& get = stmt(kGetApproval);
  get.BindText(1, d.run_id);
  get.BindText(2, d.node_id);
  get.BindInt64(3, d.iteration);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<ApprovalRecord> rows,
                            Collect(get, ReadApproval<Statement>));
  const std::string what = "node \"" + d.node_id + "\" (iteration " + std::to_string(d.iteration) +
                           ") of run " + d.run_id;
  if (rows.empty()) return NotFoundError("no approval request for " + what);
  ApprovalRecord a = std::move(rows.front());
  if (a.status != ApprovalStatus::kRequested) {
    return FailedPreconditionError(what + " was already " + std::string(Name(a.status)) + " by " +
                                   a.decided_by + " at " + base::FormatIsoTime(a.decided_at_ms) +
                                   "; a decision cannot be changed");
  }
  if (d.authorize) SMITHERS_RETURN_IF_ERROR(d.authorize(a));
  a.status = d.approved ? ApprovalStatus::kApproved : ApprovalStatus::kDenied;
  a.decided_at_ms = now_ms;
  a.decided_by = d.decided_by;
  a.note = d.note;
  a.decided_via = d.via;
  a.decided_os_user = d.os_user;
  a.decided_override = d.override;
  Statement& s = stmt(kDecideApproval);
  s.BindText(1, a.run_id);
  s.BindText(2, a.node_id);
  s.BindInt64(3, a.iteration);
  s.BindText(4, Name(a.status));
  BindTime(s, 5, now_ms);
  s.BindText(6, a.decided_by);
  s.BindText(7, a.note);
  s.BindText(8, a.decided_via);
  s.BindText(9, a.decided_os_user);
  s.BindInt64(10, a.decided_override ? 1 : 0);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() != 1) return AbortedError("the approval of " + what + " changed; try again");
  Json event = {{"nodeId", a.node_id},       {"iteration", a.iteration},
                {"decidedBy", a.decided_by}, {"note", a.note},
                {"via", a.decided_via},      {"override", a.decided_override}};
  if (!a.decided_os_user.empty()) event["osUser"] = a.decided_os_user;
  SMITHERS_RETURN_IF_ERROR(
      InsertEvent(a.run_id, d.approved ? "ApprovalGranted" : "ApprovalDenied", event, now_ms)
          .status());
  SMITHERS_RETURN_IF_ERROR(txn.Commit());
  return a;
}

template <typename D>
Result<std::vector<ApprovalRecord>> SqlStore<D>::EscalateDueApprovals(const std::string& run_id,
                                                                      int64_t now_ms) {
  auto due = [&]() {
    Statement& s = stmt(kDueApprovals);
    s.BindText(1, run_id);
    s.BindInt64(2, now_ms);
    return Collect(s, ReadApproval<Statement>);
  };
  // A cheap read first: most calls find nothing and take no write lock.
  SMITHERS_ASSIGN_OR_RETURN(std::vector<ApprovalRecord> rows, due());
  if (rows.empty()) return rows;
  // Each hand-over is an action of the system, audited with it.
  SMITHERS_ASSIGN_OR_RETURN(std::string key, AuditKey());
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  SMITHERS_ASSIGN_OR_RETURN(rows, due());  // again, under the lock
  for (ApprovalRecord& a : rows) {
    Statement& s = stmt(kEscalateApproval);
    s.BindText(1, a.run_id);
    s.BindText(2, a.node_id);
    s.BindInt64(3, a.iteration);
    BindTime(s, 4, now_ms);
    SMITHERS_RETURN_IF_ERROR(s.Run());
    const Json handover = {{"nodeId", a.node_id},
                           {"iteration", a.iteration},
                           {"from", a.owner},
                           {"to", a.fallback_owner}};
    SMITHERS_RETURN_IF_ERROR(InsertEvent(a.run_id, "ApprovalEscalated", handover, now_ms).status());
    AuditEntry audit = SystemAudit("approval.escalate", a.run_id, handover);
    audit.run_id = a.run_id;
    audit.at_ms = now_ms;
    SMITHERS_RETURN_IF_ERROR(InsertAudit(audit, key, ""));
    a.owner = a.fallback_owner;
    a.escalated_at_ms = now_ms;
  }
  SMITHERS_RETURN_IF_ERROR(txn.Commit());
  return rows;
}

template <typename D>
Result<SignalRecord> SqlStore<D>::AppendSignal(SignalRecord sig) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  SMITHERS_RETURN_IF_ERROR(RequireRun(sig.run_id));
  Statement& next = stmt(kNextSignalSeq);
  next.BindText(1, sig.run_id);
  SMITHERS_RETURN_IF_ERROR(next.ForEachRow([&](const Statement& row) {
    sig.seq = row.Int64(0);
    return Status::Ok();
  }));
  sig.status = SignalStatus::kPending;
  sig.consumed_by_node.clear();
  sig.consumed_iteration = 0;
  sig.consumed_at_ms = 0;
  sig.rejection = nullptr;
  Statement& s = stmt(kInsertSignal);
  s.BindText(1, sig.run_id);
  s.BindInt64(2, sig.seq);
  s.BindText(3, sig.name);
  s.BindText(4, sig.correlation_id);
  BindJson(s, 5, sig.payload);
  BindTime(s, 6, sig.received_at_ms);
  s.BindText(7, sig.received_by);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  SMITHERS_RETURN_IF_ERROR(
      InsertEvent(
          sig.run_id, "SignalReceived",
          {{"name", sig.name},
           {"correlationId", sig.correlation_id.empty() ? Json() : Json(sig.correlation_id)},
           {"signalSeq", sig.seq},
           {"receivedBy", sig.received_by}},
          sig.received_at_ms)
          .status());
  SMITHERS_RETURN_IF_ERROR(txn.Commit());
  return sig;
}

template <typename D>
Result<RunRecord> SqlStore<D>::GetRun(const std::string& run_id) {
  Statement& s = stmt(kGetRun);
  s.BindText(1, run_id);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<RunRecord> runs, Collect(s, ReadRun<Statement>));
  if (runs.empty()) return NotFoundError("no run " + run_id);
  return std::move(runs.front());
}

template <typename D>
Result<std::vector<RunRecord>> SqlStore<D>::ListRuns(const RunFilter& filter) {
  if (!filter.status && !filter.waiting) {
    Statement& s = stmt(kListRuns);
    s.BindInt64(1, SqlLimit(filter.limit));
    return Collect(s, ReadRun<Statement>);
  }
  if (!filter.status) {
    Statement& s = stmt(kListRunsWaiting);
    s.BindInt64(1, SqlLimit(filter.limit));
    return Collect(s, ReadRun<Statement>);
  }
  Statement& s = stmt(kListRunsWithStatus);
  s.BindText(1, Name(*filter.status));
  s.BindInt64(2, SqlLimit(filter.limit));
  return Collect(s, ReadRun<Statement>);
}

template <typename D>
Result<std::vector<NodeRecord>> SqlStore<D>::ListNodes(const std::string& run_id) {
  Statement& s = stmt(kListNodes);
  s.BindText(1, run_id);
  return Collect(s, ReadNode<Statement>);
}

template <typename D>
Result<std::map<std::string, int64_t>> SqlStore<D>::CountNodes(const std::string& run_id) {
  Statement& s = stmt(kCountNodes);
  s.BindText(1, run_id);
  std::map<std::string, int64_t, std::less<>> counts;
  SMITHERS_RETURN_IF_ERROR(s.ForEachRow([&](const Statement& row) {
    std::string_view state = row.TextView(0);
    auto it = counts.find(state);
    if (it == counts.end()) it = counts.emplace(state, 0).first;
    it->second++;
    return Status::Ok();
  }));
  return std::map<std::string, int64_t>(counts.begin(), counts.end());
}

template <typename D>
Result<std::map<std::string, int64_t>> SqlStore<D>::CountRunsByStatus() {
  std::map<std::string, int64_t> counts;
  SMITHERS_RETURN_IF_ERROR(stmt(kCountRunsByStatus).ForEachRow([&](const Statement& row) {
    counts[std::string(row.TextView(0))] = row.Int64(1);
    return Status::Ok();
  }));
  return counts;
}

template <typename D>
Result<std::vector<AttemptRecord>> SqlStore<D>::ListAttempts(const std::string& run_id) {
  Statement& s = stmt(kListAttempts);
  s.BindText(1, run_id);
  return Collect(s, ReadAttempt<Statement>);
}

template <typename D>
Result<std::vector<OutputRecord>> SqlStore<D>::ListOutputs(const std::string& run_id) {
  Statement& s = stmt(kListOutputs);
  s.BindText(1, run_id);
  return Collect(s, ReadOutput<Statement>);
}

template <typename D>
Result<std::vector<LoopRecord>> SqlStore<D>::ListLoops(const std::string& run_id) {
  Statement& s = stmt(kListLoops);
  s.BindText(1, run_id);
  return Collect(s, ReadLoop<Statement>);
}

template <typename D>
Result<std::vector<FrameRecord>> SqlStore<D>::ListFrames(const std::string& run_id) {
  Statement& s = stmt(kListFrames);
  s.BindText(1, run_id);
  return Collect(s, ReadFrame<Statement>);
}

template <typename D>
Result<std::optional<FrameRecord>> SqlStore<D>::LastFrame(const std::string& run_id) {
  Statement& s = stmt(kLastFrame);
  s.BindText(1, run_id);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<FrameRecord> frames, Collect(s, ReadFrame<Statement>));
  if (frames.empty()) return std::optional<FrameRecord>();
  return std::optional<FrameRecord>(std::move(frames.front()));
}

template <typename D>
Result<std::vector<EventRecord>> SqlStore<D>::ListEvents(const std::string& run_id,
                                                         int64_t after_seq, int limit) {
  Statement& s = stmt(kListEvents);
  s.BindText(1, run_id);
  s.BindInt64(2, after_seq);
  s.BindInt64(3, SqlLimit(limit));
  return Collect(s, ReadEvent<Statement>);
}

template <typename D>
Result<std::optional<CacheEntry>> SqlStore<D>::GetCache(const std::string& cache_key) {
  Statement& s = stmt(kGetCache);
  s.BindText(1, cache_key);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<CacheEntry> rows, Collect(s, ReadCache<Statement>));
  if (rows.empty()) return std::optional<CacheEntry>();
  return std::optional<CacheEntry>(std::move(rows.front()));
}

template <typename D>
Status SqlStore<D>::RequireRun(const std::string& run_id) {
  Statement& s = stmt(kRunExists);
  s.BindText(1, run_id);
  bool found = false;
  SMITHERS_RETURN_IF_ERROR(s.ForEachRow([&](const Statement&) {
    found = true;
    return Status::Ok();
  }));
  return found ? Status::Ok() : NotFoundError("no run " + run_id);
}

// The single-row updates below run in their own write transaction so that the
// "was it missing or owned by someone else?" check reads the same state the
// update saw.
template <typename D>
Status SqlStore<D>::ClaimRun(const std::string& run_id, const std::string& expected_owner,
                             const std::string& new_owner, int64_t now_ms) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  Statement& s = stmt(kClaimRun);
  s.BindText(1, run_id);
  BindOwner(s, 2, expected_owner);
  BindOwner(s, 3, new_owner);
  BindTime(s, 4, now_ms);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() == 0) {
    SMITHERS_RETURN_IF_ERROR(RequireRun(run_id));
    return AbortedError("run " + run_id + " is not owned by \"" + expected_owner + "\"");
  }
  return txn.Commit();
}

template <typename D>
Status SqlStore<D>::Heartbeat(const std::string& run_id, const std::string& owner, int64_t now_ms) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  Statement& s = stmt(kHeartbeat);
  s.BindText(1, run_id);
  BindOwner(s, 2, owner);
  BindTime(s, 3, now_ms);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() == 0) {
    SMITHERS_RETURN_IF_ERROR(RequireRun(run_id));
    return AbortedError("run " + run_id + " is no longer owned by \"" + owner + "\"");
  }
  return txn.Commit();
}

template <typename D>
Status SqlStore<D>::RequestCancel(const std::string& run_id, int64_t now_ms) {
  // 0 would be stored as NULL, i.e. "no cancel requested".
  if (now_ms <= 0) return InvalidArgumentError("RequestCancel needs a positive time");
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  Statement& s = stmt(kRequestCancel);
  s.BindText(1, run_id);
  s.BindInt64(2, now_ms);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  // No change: already requested (keep the first time) or no such run.
  if (db_.changes() == 0) SMITHERS_RETURN_IF_ERROR(RequireRun(run_id));
  return txn.Commit();
}

template <typename D>
Status SqlStore<D>::ClearCancel(const std::string& run_id) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  Statement& s = stmt(kClearCancel);
  s.BindText(1, run_id);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() == 0) return NotFoundError("no run " + run_id);
  return txn.Commit();
}

template <typename D>
Status SqlStore<D>::EnsureOutputViews(const std::map<std::string, Json>& schemas) {
  // Validate everything before writing anything.
  std::vector<std::pair<std::string, std::string>> views;  // name, DDL
  for (const auto& [name, schema] : schemas) {
    SMITHERS_ASSIGN_OR_RETURN(std::string sql, D::OutputViewSql(name, schema));
    views.emplace_back(name, std::move(sql));
  }
  if (views.empty()) return Status::Ok();
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  for (const auto& [name, sql] : views) {
    Statement& s = stmt(kObjectType);
    s.BindText(1, name);
    std::string type;
    SMITHERS_RETURN_IF_ERROR(s.ForEachRow([&](const Statement& row) {
      type = row.Text(0);
      return Status::Ok();
    }));
    if (!type.empty() && type != "view") {
      return FailedPreconditionError("output view \"" + name + "\" would replace the " + type +
                                     " of that name");
    }
    SMITHERS_RETURN_IF_ERROR(db_.Exec(sql).WithContext("create output view \"" + name + "\""));
  }
  return txn.Commit();
}

// --- Copying a whole store ---------------------------------------------------------

// A statement written for one table, in SQLite's dialect (D::Sql rewrites it).
template <typename D>
Result<typename D::Statement> PrepareAdHoc(typename D::Database& db, const std::string& sql) {
  return db.Prepare(D::Sql(StatementSql{.id = kStatementCount, .sql = sql.c_str()}));
}

template <typename D>
Status SqlStore<D>::ExportTable(const std::string& name,
                                const std::function<Status(const Json& row)>& on_row) {
  const TableDef* table = FindStoreTable(name);
  if (table == nullptr) return InvalidArgumentError("no store table named \"" + name + "\"");
  // Read in pages by primary key (keyset: the rows after the last one read),
  // so a large table never sits whole in memory (libpq keeps a result until
  // it is cleared). Under BeginRead the pages are of one snapshot.
  constexpr int kPage = 10000;
  const size_t keys = table->key_columns;
  const std::string key = ColumnList(*table, keys);
  std::string params;
  for (size_t k = 1; k <= keys; ++k) params += (k > 1 ? ", ?" : "?") + std::to_string(k);
  const std::string select = "SELECT " + ColumnList(*table) + " FROM " + std::string(table->name);
  const std::string order = " ORDER BY " + key + " LIMIT " + std::to_string(kPage);
  SMITHERS_ASSIGN_OR_RETURN(Statement first, PrepareAdHoc<D>(db_, select + order));
  SMITHERS_ASSIGN_OR_RETURN(
      Statement next,
      PrepareAdHoc<D>(db_, select + " WHERE (" + key + ") > (" + params + ")" + order));
  Json last;  // the last row read
  int read = kPage;
  while (read == kPage) {
    Statement& s = last.is_null() ? first : next;
    for (size_t k = 0; k < keys && !last.is_null(); ++k) {
      const Json& value = last[k];
      if (value.is_number_integer()) {
        s.BindInt64(static_cast<int>(k) + 1, value.get<int64_t>());
      } else {
        s.BindText(static_cast<int>(k) + 1, value.get_ref<const std::string&>());
      }
    }
    read = 0;
    SMITHERS_RETURN_IF_ERROR(s.ForEachRow([&](const Statement& row) -> Status {
      Json values = Json::array();
      int i = 0;
      for (const TableColumn& column : table->columns) {
        if (row.IsNull(i)) {
          values.push_back(nullptr);
        } else if (column.kind == ColumnKind::kInteger) {
          values.push_back(row.Int64(i));
        } else {
          values.push_back(row.Text(i));
        }
        ++i;
      }
      ++read;
      last = values;
      return on_row(values);
    }));
  }
  return Status::Ok();
}

// An import: one write transaction, a prepared INSERT per table.
template <typename D>
class SqlImport final : public StoreImport {
 public:
  using Database = typename D::Database;
  using Statement = typename D::Statement;
  using WriteTransaction = typename D::WriteTransaction;

  SqlImport(Database& db, WriteTransaction txn) : db_(db), txn_(std::move(txn)) {}

  Status Add(const std::string& name, const Json& row) override {
    const TableDef* table = FindStoreTable(name);
    if (table == nullptr) return InvalidArgumentError("no store table named \"" + name + "\"");
    if (!row.is_array() || row.size() != table->columns.size()) {
      return InvalidArgumentError("a row of " + name + " must be an array of " +
                                  std::to_string(table->columns.size()) + " values");
    }
    auto it = inserts_.find(name);
    if (it == inserts_.end()) {
      std::string params;
      for (size_t i = 1; i <= table->columns.size(); ++i) {
        params += (i > 1 ? ", ?" : "?") + std::to_string(i);
      }
      SMITHERS_ASSIGN_OR_RETURN(
          Statement insert, PrepareAdHoc<D>(db_, "INSERT INTO " + name + "(" + ColumnList(*table) +
                                                     ") VALUES(" + params + ")"));
      it = inserts_.emplace(name, std::move(insert)).first;
    }
    Statement& s = it->second;
    int i = 1;
    for (const TableColumn& column : table->columns) {
      const Json& value = row[i - 1];
      if (value.is_null()) {
        s.BindNull(i);
      } else if (column.kind == ColumnKind::kInteger && value.is_number_integer()) {
        s.BindInt64(i, value.get<int64_t>());
      } else if (column.kind != ColumnKind::kInteger && value.is_string()) {
        s.BindText(i, value.get_ref<const std::string&>());
      } else {
        return InvalidArgumentError(name + "." + std::string(column.name) + ": " +
                                    std::string(value.type_name()) + " where the column holds " +
                                    (column.kind == ColumnKind::kInteger ? "integers" : "text"));
      }
      ++i;
    }
    SMITHERS_RETURN_IF_ERROR(s.Run());
    // A backend that pipelines (PostgreSQL) reads what it sent now and then.
    if (++rows_ % 1000 == 0) db_.changes();
    return Status::Ok();
  }

  Status Commit() override {
    SMITHERS_RETURN_IF_ERROR(D::AfterImport(db_));
    return txn_.Commit();
  }

 private:
  Database& db_;
  WriteTransaction txn_;
  std::map<std::string, Statement> inserts_;
  int64_t rows_ = 0;
};

template <typename D>
Result<std::unique_ptr<StoreImport>> SqlStore<D>::BeginImport() {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  for (const TableDef& table : StoreTables()) {
    SMITHERS_ASSIGN_OR_RETURN(
        Statement any,
        PrepareAdHoc<D>(db_, "SELECT 1 FROM " + std::string(table.name) + " LIMIT 1"));
    bool rows = false;
    SMITHERS_RETURN_IF_ERROR(any.ForEachRow([&](const Statement&) {
      rows = true;
      return Status::Ok();
    }));
    if (rows) {
      return FailedPreconditionError("the destination is not empty: " + std::string(table.name) +
                                     " has rows (a copy goes into a new database)");
    }
  }
  return std::unique_ptr<StoreImport>(std::make_unique<SqlImport<D>>(db_, std::move(txn)));
}

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQL_SQL_STORE_H_
