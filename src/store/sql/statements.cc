// The SQL text of the SQL stores' statements, in SQLite's dialect (?N
// parameters); src/store/postgres/ rewrites them (pg_statements.cc).
#include "store/sql/statements.h"

#include <iterator>

namespace smithers::store {

#define SMITHERS_TOKEN_COLUMNS_                                                            \
  "token_id, token_hash, scopes_json, role, user_id, label, issued_at_ms, expires_at_ms, " \
  "revoked_at_ms, replaced_by"
#define SMITHERS_CRON_COLUMNS_                                                                  \
  "cron_id, workflow, pattern, time_zone, input_json, enabled, created_at_ms, last_run_at_ms, " \
  "next_run_at_ms, last_run_id, last_error"

// Column order of every run SELECT, as ReadRun() expects it.
#define SMITHERS_RUN_COLUMNS_                                                                  \
  "run_id, workflow_name, workflow_path, workflow_hash, status, created_at_ms, "               \
  "started_at_ms, finished_at_ms, heartbeat_at_ms, runtime_owner_id, cancel_requested_at_ms, " \
  "input_json, error_json, config_json"
#define SMITHERS_FRAME_COLUMNS_ "run_id, frame_no, created_at_ms, encoding, data, xml_hash, note"
#define SMITHERS_APPROVAL_COLUMNS_                                                               \
  "run_id, node_id, iteration, status, requested_at_ms, owner, original_owner, fallback_owner, " \
  "escalate_after_ms, escalated_at_ms, request_json, on_deny, decided_at_ms, decided_by, note, " \
  "allowed_users_json, allowed_scopes_json, decided_via, decided_os_user, decided_override"
#define SMITHERS_SIGNAL_COLUMNS_                                                           \
  "run_id, seq, name, correlation_id, payload_json, received_at_ms, received_by, status, " \
  "consumed_by_node, consumed_iteration, consumed_at_ms, rejection_json"
#define SMITHERS_SANDBOX_COLUMNS_                                                               \
  "run_id, sandbox_id, iteration, attempt, kind, runtime, status, config_json, remote_run_id, " \
  "container_id, bundle_path, request_bytes, bundle_bytes, patch_count, review, reviewed_by, "  \
  "reviewed_at_ms, error_code, created_at_ms, shipped_at_ms, heartbeat_at_ms, completed_at_ms"
#define SMITHERS_AUDIT_COLUMNS_                                                            \
  "seq, chain, chain_seq, at_ms, actor, actor_via, action, target, run_id, details_json, " \
  "version, build, module_revision, key_id, prev_hmac, hmac"
#define SMITHERS_CACHE_COLUMNS_ \
  "cache_key, created_at_ms, workflow_name, node_id, output_table, schema_sig, payload_json"

constexpr StatementSql kStatements[kStatementCount] = {
    // Upserts use ON CONFLICT DO UPDATE, never INSERT OR REPLACE: REPLACE
    // deletes the old row first, and deleting a run cascades to all its rows.
    {kUpsertRun,
     "INSERT INTO _smithers_runs(" SMITHERS_RUN_COLUMNS_
     ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
     "ON CONFLICT(run_id) DO UPDATE SET workflow_name = excluded.workflow_name, "
     "workflow_path = excluded.workflow_path, workflow_hash = excluded.workflow_hash, "
     "status = excluded.status, created_at_ms = excluded.created_at_ms, "
     "started_at_ms = excluded.started_at_ms, finished_at_ms = excluded.finished_at_ms, "
     "heartbeat_at_ms = excluded.heartbeat_at_ms, runtime_owner_id = excluded.runtime_owner_id, "
     "input_json = excluded.input_json, error_json = excluded.error_json, "
     "config_json = excluded.config_json"},
    {kUpsertNode,
     "INSERT INTO _smithers_nodes(run_id, node_id, iteration, state, last_attempt, updated_at_ms, "
     "output_table, label, mounted) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
     "ON CONFLICT(run_id, node_id, iteration) DO UPDATE SET state = excluded.state, "
     "last_attempt = excluded.last_attempt, updated_at_ms = excluded.updated_at_ms, "
     "output_table = excluded.output_table, label = excluded.label, mounted = excluded.mounted",
     9},
    {kUpsertAttempt,
     "INSERT INTO _smithers_attempts(run_id, node_id, iteration, attempt, state, started_at_ms, "
     "finished_at_ms, error_json, cached, meta_json) "
     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
     "ON CONFLICT(run_id, node_id, iteration, attempt) DO UPDATE SET state = excluded.state, "
     "started_at_ms = excluded.started_at_ms, finished_at_ms = excluded.finished_at_ms, "
     "error_json = excluded.error_json, cached = excluded.cached, meta_json = excluded.meta_json"},
    {kPutOutput,
     "INSERT INTO _smithers_outputs(run_id, node_id, iteration, output_table, payload_json, "
     "created_at_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
     "ON CONFLICT(run_id, node_id, iteration) DO UPDATE SET output_table = excluded.output_table, "
     "payload_json = excluded.payload_json, created_at_ms = excluded.created_at_ms"},
    {kPutFrame,
     "INSERT INTO _smithers_frames(" SMITHERS_FRAME_COLUMNS_ ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) "
     "ON CONFLICT(run_id, frame_no) DO UPDATE SET created_at_ms = excluded.created_at_ms, "
     "encoding = excluded.encoding, data = excluded.data, xml_hash = excluded.xml_hash, "
     "note = excluded.note"},
    {kUpsertLoop,
     "INSERT INTO _smithers_ralph(run_id, ralph_id, iteration, done, updated_at_ms) "
     "VALUES(?1, ?2, ?3, ?4, ?5) "
     "ON CONFLICT(run_id, ralph_id) DO UPDATE SET iteration = excluded.iteration, "
     "done = excluded.done, updated_at_ms = excluded.updated_at_ms"},
    // The seq is taken inside the write transaction that inserts the row, so
    // no other writer can take the same one: gapless and unique per run.
    {kAppendEvent,
     "INSERT INTO _smithers_events(run_id, seq, timestamp_ms, type, payload_json) "
     "SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM _smithers_events WHERE run_id = ?1 "
     "RETURNING seq"},
    // A cache row has no children, so REPLACE (delete + insert) is safe here.
    {kPutCache,
     "INSERT OR REPLACE INTO _smithers_cache(" SMITHERS_CACHE_COLUMNS_
     ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
     3},
    {kGetRun, "SELECT " SMITHERS_RUN_COLUMNS_ " FROM _smithers_runs WHERE run_id = ?1"},
    {kListRuns, "SELECT " SMITHERS_RUN_COLUMNS_
                " FROM _smithers_runs ORDER BY created_at_ms DESC, run_id DESC LIMIT ?1"},
    {kListRunsWithStatus,
     "SELECT " SMITHERS_RUN_COLUMNS_
     " FROM _smithers_runs WHERE status = ?1 ORDER BY created_at_ms DESC, run_id DESC LIMIT ?2"},
    {kListNodes,
     "SELECT run_id, node_id, iteration, state, last_attempt, updated_at_ms, output_table, label, "
     "mounted FROM _smithers_nodes WHERE run_id = ?1 ORDER BY iteration, node_id",
     9},
    {kListAttempts,
     "SELECT run_id, node_id, iteration, attempt, state, started_at_ms, finished_at_ms, "
     "error_json, cached, meta_json FROM _smithers_attempts WHERE run_id = ?1 "
     "ORDER BY started_at_ms, node_id, iteration, attempt"},
    {kListOutputs,
     "SELECT run_id, node_id, iteration, output_table, payload_json, created_at_ms "
     "FROM _smithers_outputs WHERE run_id = ?1 ORDER BY created_at_ms, node_id, iteration"},
    {kListLoops,
     "SELECT run_id, ralph_id, iteration, done, updated_at_ms FROM _smithers_ralph "
     "WHERE run_id = ?1 ORDER BY ralph_id"},
    {kListFrames, "SELECT " SMITHERS_FRAME_COLUMNS_
                  " FROM _smithers_frames WHERE run_id = ?1 ORDER BY frame_no"},
    {kLastFrame, "SELECT " SMITHERS_FRAME_COLUMNS_
                 " FROM _smithers_frames WHERE run_id = ?1 ORDER BY frame_no DESC LIMIT 1"},
    {kListEvents,
     "SELECT run_id, seq, timestamp_ms, type, payload_json FROM _smithers_events "
     "WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"},
    {kGetCache, "SELECT " SMITHERS_CACHE_COLUMNS_ " FROM _smithers_cache WHERE cache_key = ?1", 3},
    {kRunExists, "SELECT 1 FROM _smithers_runs WHERE run_id = ?1"},
    // No owner is stored as NULL, and `IS` matches NULL to NULL, so "" in the
    // API means "unowned" on both sides of the compare-and-set.
    {kClaimRun,
     "UPDATE _smithers_runs SET runtime_owner_id = ?3, heartbeat_at_ms = ?4 "
     "WHERE run_id = ?1 AND runtime_owner_id IS ?2"},
    {kHeartbeat,
     "UPDATE _smithers_runs SET heartbeat_at_ms = ?3 WHERE run_id = ?1 AND runtime_owner_id IS ?2"},
    {kRequestCancel,
     "UPDATE _smithers_runs SET cancel_requested_at_ms = ?2 "
     "WHERE run_id = ?1 AND cancel_requested_at_ms IS NULL"},
    {kClearCancel, "UPDATE _smithers_runs SET cancel_requested_at_ms = NULL WHERE run_id = ?1"},
    {kObjectType, "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE"},
    // A request never overwrites a row: a decision, once made, stays.
    {kRequestApproval,
     "INSERT INTO _smithers_approvals(" SMITHERS_APPROVAL_COLUMNS_
     ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
     "?19, ?20) ON CONFLICT(run_id, node_id, iteration) DO NOTHING",
     8},
    {kRenewApproval,
     "INSERT INTO _smithers_approvals(" SMITHERS_APPROVAL_COLUMNS_
     ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
     "?19, ?20) ON CONFLICT(run_id, node_id, iteration) DO UPDATE SET status = excluded.status, "
     "requested_at_ms = excluded.requested_at_ms, owner = excluded.owner, "
     "original_owner = excluded.original_owner, fallback_owner = excluded.fallback_owner, "
     "escalate_after_ms = excluded.escalate_after_ms, escalated_at_ms = excluded.escalated_at_ms, "
     "request_json = excluded.request_json, on_deny = excluded.on_deny, "
     "decided_at_ms = excluded.decided_at_ms, decided_by = excluded.decided_by, "
     "note = excluded.note, allowed_users_json = excluded.allowed_users_json, "
     "allowed_scopes_json = excluded.allowed_scopes_json, decided_via = excluded.decided_via, "
     "decided_os_user = excluded.decided_os_user, decided_override = excluded.decided_override "
     "WHERE _smithers_approvals.status <> 'requested'",
     8},
    {kConsumeSignal,
     "UPDATE _smithers_signals SET status = ?3, consumed_by_node = ?4, consumed_iteration = ?5, "
     "consumed_at_ms = ?6, rejection_json = ?7 "
     "WHERE run_id = ?1 AND seq = ?2 AND status = 'pending'",
     4},
    {kListApprovals,
     "SELECT " SMITHERS_APPROVAL_COLUMNS_
     " FROM _smithers_approvals WHERE (?1 = '' OR run_id = ?1) AND (?2 = '' OR status = ?2) "
     "ORDER BY requested_at_ms, run_id, node_id, iteration",
     8},
    {kGetApproval,
     "SELECT " SMITHERS_APPROVAL_COLUMNS_
     " FROM _smithers_approvals WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
     8},
    {kDecideApproval,
     "UPDATE _smithers_approvals SET status = ?4, decided_at_ms = ?5, decided_by = ?6, note = ?7, "
     "decided_via = ?8, decided_os_user = ?9, decided_override = ?10 "
     "WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND status = 'requested'",
     8},
    {kDueApprovals,
     "SELECT " SMITHERS_APPROVAL_COLUMNS_
     " FROM _smithers_approvals WHERE status = 'requested' AND (?1 = '' OR run_id = ?1) "
     "AND escalate_after_ms > 0 AND escalated_at_ms IS NULL AND fallback_owner != '' "
     "AND requested_at_ms + escalate_after_ms <= ?2 "
     "ORDER BY requested_at_ms, run_id, node_id, iteration",
     8},
    {kEscalateApproval,
     "UPDATE _smithers_approvals SET owner = fallback_owner, escalated_at_ms = ?4 "
     "WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND status = 'requested' "
     "AND escalated_at_ms IS NULL",
     4},
    {kNextSignalSeq, "SELECT COALESCE(MAX(seq), -1) + 1 FROM _smithers_signals WHERE run_id = ?1",
     4},
    {kInsertSignal,
     "INSERT INTO _smithers_signals(" SMITHERS_SIGNAL_COLUMNS_
     ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', '', 0, NULL, NULL)",
     4},
    {kListSignals,
     "SELECT " SMITHERS_SIGNAL_COLUMNS_ " FROM _smithers_signals WHERE run_id = ?1 ORDER BY seq",
     4},
    // A new attempt's row replaces the last one's.
    {kPutSandbox,
     "INSERT OR REPLACE INTO _smithers_sandboxes(" SMITHERS_SANDBOX_COLUMNS_
     ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
     "?19, ?20, ?21, ?22)",
     14},
    // A change: the fields given (NULL = unchanged; numbered as kPutSandbox's,
    // ?5, ?6, ?8 and ?19 unused), unless the row is of a later attempt; an ended row (finished,
    // failed, cancelled) keeps its
    // status, error and end.
    {kPatchSandbox,
     "UPDATE _smithers_sandboxes SET "
     "status = CASE WHEN status IN ('pending', 'shipped') THEN COALESCE(?7, status) "
     "ELSE status END, "
     "error_code = CASE WHEN status IN ('pending', 'shipped') THEN COALESCE(?18, error_code) "
     "ELSE error_code END, "
     "completed_at_ms = CASE WHEN status IN ('pending', 'shipped') "
     "THEN COALESCE(?22, completed_at_ms) ELSE completed_at_ms END, "
     "remote_run_id = COALESCE(?9, remote_run_id), container_id = COALESCE(?10, container_id), "
     "bundle_path = COALESCE(?11, bundle_path), request_bytes = COALESCE(?12, request_bytes), "
     "bundle_bytes = COALESCE(?13, bundle_bytes), patch_count = COALESCE(?14, patch_count), "
     "review = COALESCE(?15, review), reviewed_by = COALESCE(?16, reviewed_by), "
     "reviewed_at_ms = COALESCE(?17, reviewed_at_ms), shipped_at_ms = COALESCE(?20, "
     "shipped_at_ms), heartbeat_at_ms = COALESCE(?21, heartbeat_at_ms) "
     "WHERE run_id = ?1 AND sandbox_id = ?2 AND iteration = ?3 AND attempt <= ?4",
     14},
    {kListSandboxes,
     "SELECT " SMITHERS_SANDBOX_COLUMNS_
     " FROM _smithers_sandboxes WHERE run_id = ?1 ORDER BY sandbox_id, iteration",
     14},
    {kListRunsWaiting,
     "SELECT " SMITHERS_RUN_COLUMNS_
     " FROM _smithers_runs WHERE status LIKE 'waiting-%' ORDER BY created_at_ms DESC, run_id DESC "
     "LIMIT ?1"},
    {kSignalState,
     "SELECT status, consumed_by_node, consumed_iteration FROM _smithers_signals "
     "WHERE run_id = ?1 AND seq = ?2",
     4},
    {kPutToken,
     "INSERT INTO _smithers_tokens(" SMITHERS_TOKEN_COLUMNS_
     ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
     5},
    {kFindToken, "SELECT " SMITHERS_TOKEN_COLUMNS_ " FROM _smithers_tokens WHERE token_hash = ?1",
     5},
    {kListTokens,
     "SELECT " SMITHERS_TOKEN_COLUMNS_ " FROM _smithers_tokens ORDER BY issued_at_ms, token_id", 5},
    {kRevokeToken,
     "UPDATE _smithers_tokens SET revoked_at_ms = CASE WHEN revoked_at_ms IS NOT NULL AND "
     "revoked_at_ms <= ?2 THEN revoked_at_ms ELSE ?2 END, "
     "replaced_by = CASE WHEN ?3 = '' THEN replaced_by ELSE ?3 END WHERE token_id = ?1",
     5},
    {kPutCron,
     "INSERT OR REPLACE INTO _smithers_cron(" SMITHERS_CRON_COLUMNS_
     ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
     5},
    {kListCron, "SELECT " SMITHERS_CRON_COLUMNS_ " FROM _smithers_cron ORDER BY cron_id", 5},
    {kDeleteCron, "DELETE FROM _smithers_cron WHERE cron_id = ?1", 5},
    {kClaimCronFire,
     "UPDATE _smithers_cron SET last_run_at_ms = ?3, next_run_at_ms = ?4, last_run_id = ?5 "
     "WHERE cron_id = ?1 AND next_run_at_ms IS ?2",
     5},
    {kPutModule,
     "INSERT OR IGNORE INTO _smithers_modules(revision, path, source, created_at_ms) "
     "VALUES(?1, ?2, ?3, ?4)",
     6},
    {kGetModule,
     "SELECT revision, path, source, created_at_ms FROM _smithers_modules WHERE revision = ?1", 6},
    {kPutModuleRequire,
     "INSERT OR IGNORE INTO _smithers_module_requires(revision, name, source) VALUES(?1, ?2, ?3)",
     7},
    {kGetModuleRequires, "SELECT name, source FROM _smithers_module_requires WHERE revision = ?1",
     7},
    // A held key is replaced only once it expired.
    {kClaimLaunchKey,
     "INSERT INTO _smithers_launch_keys(scope, key, run_id, workflow, created_at_ms) "
     "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(scope, key) DO UPDATE SET "
     "run_id = excluded.run_id, workflow = excluded.workflow, "
     "created_at_ms = excluded.created_at_ms WHERE _smithers_launch_keys.created_at_ms <= ?6",
     11},
    {kGetLaunchKey,
     "SELECT scope, key, run_id, workflow, created_at_ms FROM _smithers_launch_keys "
     "WHERE scope = ?1 AND key = ?2",
     11},
    {kReleaseLaunchKey,
     "DELETE FROM _smithers_launch_keys WHERE scope = ?1 AND key = ?2 AND run_id = ?3", 11},
    {kDataVersion, "PRAGMA data_version"},
    // Counted by the caller: GROUP BY state would sort in a temporary b-tree.
    {kCountNodes, "SELECT state FROM _smithers_nodes WHERE run_id = ?1"},
    // Walks the (status, heartbeat_at_ms) index: no table rows are read.
    {kCountRunsByStatus, "SELECT status, COUNT(*) FROM _smithers_runs GROUP BY status"},
    // Every row of the run's own tables goes with it (ON DELETE CASCADE).
    {kDeleteRun, "DELETE FROM _smithers_runs WHERE run_id = ?1"},
    {kDeleteRunLaunchKeys, "DELETE FROM _smithers_launch_keys WHERE run_id = ?1", 11},
    {kAddMaintenance,
     "INSERT INTO _smithers_maintenance(kind, started_at_ms, finished_at_ms, ok, path, actor, "
     "detail_json) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
     12},
    // ?1 = '' for every kind.
    {kListMaintenance,
     "SELECT id, kind, started_at_ms, finished_at_ms, ok, path, actor, detail_json "
     "FROM _smithers_maintenance WHERE ?1 = '' OR kind = ?1 ORDER BY id DESC LIMIT ?2",
     12},
    {kAuditLast, "SELECT seq, key_id FROM _smithers_audit ORDER BY seq DESC LIMIT 1", 13},
    {kAuditChainHead,
     "SELECT chain_seq, hmac FROM _smithers_audit WHERE chain = ?1 "
     "ORDER BY chain_seq DESC LIMIT 1",
     13},
    {kAuditRunRevision, "SELECT workflow_hash FROM _smithers_runs WHERE run_id = ?1", 13},
    {kAuditInsert,
     "INSERT INTO _smithers_audit(" SMITHERS_AUDIT_COLUMNS_
     ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
     13},
    // ?1 run ('' = any), ?2 actor ('' = any), ?3 since ms, ?4 after seq, ?5 limit (-1 = none).
    {kListAudit,
     "SELECT " SMITHERS_AUDIT_COLUMNS_
     " FROM _smithers_audit WHERE (?1 = '' OR run_id = ?1) AND (?2 = '' OR actor = ?2) "
     "AND at_ms >= ?3 AND seq > ?4 ORDER BY seq LIMIT ?5",
     13},
};

#undef SMITHERS_RUN_COLUMNS_
#undef SMITHERS_TOKEN_COLUMNS_
#undef SMITHERS_CRON_COLUMNS_
#undef SMITHERS_FRAME_COLUMNS_
#undef SMITHERS_CACHE_COLUMNS_
#undef SMITHERS_AUDIT_COLUMNS_
#undef SMITHERS_APPROVAL_COLUMNS_
#undef SMITHERS_SIGNAL_COLUMNS_

static_assert(std::size(kStatements) == kStatementCount);
constexpr bool StatementsInIdOrder() {
  for (int i = 0; i < kStatementCount; ++i) {
    if (kStatements[i].id != i) return false;
  }
  return true;
}
static_assert(StatementsInIdOrder(), "kStatements must list statements in StatementId order");

}  // namespace smithers::store
