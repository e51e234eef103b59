// The SQLite Store: every write goes through one BEGIN IMMEDIATE transaction
// per Commit(), with statements prepared once per Store; reads are single
// autocommit statements, each seeing one consistent snapshot, unless a
// caller groups them with BeginRead/EndRead.
#include "store/sqlite/sqlite_store.h"

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
#include "smithers/clock.h"
#include "smithers/store.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/sqlite_db.h"

namespace smithers {
namespace store {
namespace {

enum StatementId : int {
  kUpsertRun,
  kUpsertNode,
  kUpsertAttempt,
  kPutOutput,
  kPutFrame,
  kUpsertLoop,
  kAppendEvent,
  kPutCache,
  kGetRun,
  kListRuns,
  kListRunsWithStatus,
  kListNodes,
  kListAttempts,
  kListOutputs,
  kListLoops,
  kListFrames,
  kLastFrame,
  kListEvents,
  kGetCache,
  kRunExists,
  kClaimRun,
  kHeartbeat,
  kRequestCancel,
  kClearCancel,
  kObjectType,
  kRequestApproval,
  kConsumeSignal,
  kListApprovals,
  kGetApproval,
  kDecideApproval,
  kDueApprovals,
  kEscalateApproval,
  kNextSignalSeq,
  kInsertSignal,
  kListSignals,
  kListRunsWaiting,
  kSignalState,
  kPutToken,
  kFindToken,
  kListTokens,
  kRevokeToken,
  kPutCron,
  kListCron,
  kDeleteCron,
  kClaimCronFire,
  kPutModule,
  kGetModule,
  kPutModuleRequire,
  kGetModuleRequires,
  kDataVersion,
  kCountNodes,
  kCountRunsByStatus,
  kStatementCount,
};

struct StatementSql {
  StatementId id;
  const char* sql;
  int migration = 1;  // the schema migration that created the tables it uses
};

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
#define SMITHERS_CACHE_COLUMNS_ \
  "cache_key, created_at_ms, workflow_name, node_id, output_table, schema_sig, payload_json"

constexpr StatementSql kStatements[] = {
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
     "SELECT ?1, COALESCE(MAX(seq), -1) + 1, ?2, ?3, ?4 FROM _smithers_events WHERE run_id = ?1 "
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
    {kDataVersion, "PRAGMA data_version"},
    // Counted by the caller: GROUP BY state would sort in a temporary b-tree.
    {kCountNodes, "SELECT state FROM _smithers_nodes WHERE run_id = ?1"},
    // Walks the (status, heartbeat_at_ms) index: no table rows are read.
    {kCountRunsByStatus, "SELECT status, COUNT(*) FROM _smithers_runs GROUP BY status"},
};

#undef SMITHERS_RUN_COLUMNS_
#undef SMITHERS_TOKEN_COLUMNS_
#undef SMITHERS_CRON_COLUMNS_
#undef SMITHERS_FRAME_COLUMNS_
#undef SMITHERS_CACHE_COLUMNS_
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

// --- Encoding -----------------------------------------------------------------

// Replaces invalid UTF-8 instead of throwing: a payload must never make a
// commit fail half-way through with an exception.
std::string DumpJson(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void BindTime(Statement& stmt, int index, int64_t ms) {
  if (ms == 0) {
    stmt.BindNull(index);
  } else {
    stmt.BindInt64(index, ms);
  }
}

void BindJson(Statement& stmt, int index, const Json& json) {
  if (json.is_null()) {
    stmt.BindNull(index);
  } else {
    stmt.BindText(index, DumpJson(json));
  }
}

void BindOwner(Statement& stmt, int index, const std::string& owner) {
  if (owner.empty()) {
    stmt.BindNull(index);
  } else {
    stmt.BindText(index, owner);
  }
}

// --- Decoding -----------------------------------------------------------------

// NULL reads as a null Json. False when the column holds text that is not JSON.
bool ReadJson(const Statement& row, int column, Json* out) {
  if (row.IsNull(column)) {
    *out = Json();
    return true;
  }
  std::string_view text = row.TextView(column);
  // The common empty values without setting up the parser.
  if (text == "null" || text == "{}") {
    *out = text == "null" ? Json() : Json::object();
    return true;
  }
  *out = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  return !out->is_discarded();
}

Status CorruptJson(std::string_view table, const std::string& key, std::string_view column) {
  return DataLossError(std::string(table) + " row (" + key + "): column " + std::string(column) +
                       " does not hold valid JSON");
}

std::string RowKey(const std::string& run_id, const std::string& node_id, int iteration) {
  return "run_id=" + run_id + ", node_id=" + node_id + ", iteration=" + std::to_string(iteration);
}

Result<RunRecord> ReadRun(const Statement& row) {
  RunRecord run;
  run.run_id = row.Text(0);
  run.workflow_name = row.Text(1);
  run.workflow_path = row.Text(2);
  run.workflow_hash = row.Text(3);
  run.status = row.Text(4);
  run.created_at_ms = row.Int64(5);
  run.started_at_ms = row.Int64(6);
  run.finished_at_ms = row.Int64(7);
  run.heartbeat_at_ms = row.Int64(8);
  run.runtime_owner_id = row.Text(9);
  run.cancel_requested_at_ms = row.Int64(10);
  const char* bad = !ReadJson(row, 11, &run.input)    ? "input_json"
                    : !ReadJson(row, 12, &run.error)  ? "error_json"
                    : !ReadJson(row, 13, &run.config) ? "config_json"
                                                      : nullptr;
  if (bad != nullptr) return CorruptJson("_smithers_runs", "run_id=" + run.run_id, bad);
  return run;
}

Result<NodeRecord> ReadNode(const Statement& row) {
  return NodeRecord{.run_id = row.Text(0),
                    .node_id = row.Text(1),
                    .iteration = static_cast<int>(row.Int64(2)),
                    .state = row.Text(3),
                    .last_attempt = static_cast<int>(row.Int64(4)),
                    .updated_at_ms = row.Int64(5),
                    .output_table = row.Text(6),
                    .label = row.Text(7),
                    .mounted = row.Int64(8) != 0};
}

Result<AttemptRecord> ReadAttempt(const Statement& row) {
  AttemptRecord attempt{.run_id = row.Text(0),
                        .node_id = row.Text(1),
                        .iteration = static_cast<int>(row.Int64(2)),
                        .attempt = static_cast<int>(row.Int64(3)),
                        .state = row.Text(4),
                        .started_at_ms = row.Int64(5),
                        .finished_at_ms = row.Int64(6),
                        .cached = row.Int64(8) != 0};
  if (!ReadJson(row, 7, &attempt.error) || !ReadJson(row, 9, &attempt.meta)) {
    return CorruptJson("_smithers_attempts",
                       RowKey(attempt.run_id, attempt.node_id, attempt.iteration) +
                           ", attempt=" + std::to_string(attempt.attempt),
                       "error_json or meta_json");
  }
  return attempt;
}

Result<OutputRecord> ReadOutput(const Statement& row) {
  OutputRecord output{.run_id = row.Text(0),
                      .node_id = row.Text(1),
                      .iteration = static_cast<int>(row.Int64(2)),
                      .output_table = row.Text(3),
                      .created_at_ms = row.Int64(5)};
  if (!ReadJson(row, 4, &output.payload)) {
    return CorruptJson("_smithers_outputs", RowKey(output.run_id, output.node_id, output.iteration),
                       "payload_json");
  }
  return output;
}

Result<LoopRecord> ReadLoop(const Statement& row) {
  return LoopRecord{.run_id = row.Text(0),
                    .loop_id = row.Text(1),
                    .iteration = static_cast<int>(row.Int64(2)),
                    .done = row.Int64(3) != 0,
                    .updated_at_ms = row.Int64(4)};
}

Result<CacheEntry> ReadCache(const Statement& row) {
  CacheEntry entry{.cache_key = row.Text(0),
                   .created_at_ms = row.Int64(1),
                   .workflow_name = row.Text(2),
                   .node_id = row.Text(3),
                   .output_table = row.Text(4),
                   .schema_sig = row.Text(5)};
  if (!ReadJson(row, 6, &entry.payload)) {
    return CorruptJson("_smithers_cache", "cache_key=" + entry.cache_key, "payload_json");
  }
  return entry;
}

Result<ApprovalRecord> ReadApproval(const Statement& row) {
  ApprovalRecord a{.run_id = row.Text(0),
                   .node_id = row.Text(1),
                   .iteration = static_cast<int>(row.Int64(2)),
                   .status = row.Text(3),
                   .requested_at_ms = row.Int64(4),
                   .owner = row.Text(5),
                   .original_owner = row.Text(6),
                   .fallback_owner = row.Text(7),
                   .escalate_after_ms = row.Int64(8),
                   .escalated_at_ms = row.Int64(9),
                   .on_deny = row.Text(11),
                   .decided_at_ms = row.Int64(12),
                   .decided_by = row.Text(13),
                   .note = row.Text(14),
                   .decided_via = row.Text(17),
                   .decided_os_user = row.Text(18),
                   .decided_override = row.Int64(19) != 0};
  if (!ReadJson(row, 10, &a.request)) {
    return CorruptJson("_smithers_approvals", RowKey(a.run_id, a.node_id, a.iteration),
                       "request_json");
  }
  if (a.request.is_null()) a.request = Json::object();
  for (auto [column, name, out] : {std::tuple{15, "allowed_users_json", &a.allowed_users},
                                   std::tuple{16, "allowed_scopes_json", &a.allowed_scopes}}) {
    Json list;
    if (!ReadJson(row, column, &list) || !(list.is_null() || list.is_array())) {
      return CorruptJson("_smithers_approvals", RowKey(a.run_id, a.node_id, a.iteration), name);
    }
    if (list.is_null()) continue;
    for (const Json& item : list) {
      if (!item.is_string()) {
        return CorruptJson("_smithers_approvals", RowKey(a.run_id, a.node_id, a.iteration), name);
      }
      out->push_back(item.get<std::string>());
    }
  }
  return a;
}

Result<TokenGrant> ReadToken(const Statement& row) {
  TokenGrant g{.token_id = row.Text(0),
               .token_hash = row.Text(1),
               .role = row.Text(3),
               .user_id = row.Text(4),
               .label = row.Text(5),
               .issued_at_ms = row.Int64(6),
               .expires_at_ms = row.Int64(7),
               .revoked_at_ms = row.Int64(8),
               .replaced_by = row.Text(9)};
  Json scopes;
  if (!ReadJson(row, 2, &scopes) || !scopes.is_array()) {
    return CorruptJson("_smithers_tokens", "token_id=" + g.token_id, "scopes_json");
  }
  for (const Json& scope : scopes) {
    if (scope.is_string()) g.scopes.push_back(scope.get<std::string>());
  }
  return g;
}

Result<CronRecord> ReadCron(const Statement& row) {
  CronRecord c{.cron_id = row.Text(0),
               .workflow = row.Text(1),
               .pattern = row.Text(2),
               .time_zone = row.Text(3),
               .enabled = row.Int64(5) != 0,
               .created_at_ms = row.Int64(6),
               .last_run_at_ms = row.Int64(7),
               .next_run_at_ms = row.Int64(8),
               .last_run_id = row.Text(9),
               .last_error = row.Text(10)};
  if (!ReadJson(row, 4, &c.input)) {
    return CorruptJson("_smithers_cron", "cron_id=" + c.cron_id, "input_json");
  }
  if (c.input.is_null()) c.input = Json::object();
  return c;
}

Result<SignalRecord> ReadSignal(const Statement& row) {
  SignalRecord sig{.run_id = row.Text(0),
                   .seq = row.Int64(1),
                   .name = row.Text(2),
                   .correlation_id = row.Text(3),
                   .received_at_ms = row.Int64(5),
                   .received_by = row.Text(6),
                   .status = row.Text(7),
                   .consumed_by_node = row.Text(8),
                   .consumed_iteration = static_cast<int>(row.Int64(9)),
                   .consumed_at_ms = row.Int64(10)};
  if (!ReadJson(row, 4, &sig.payload) || !ReadJson(row, 11, &sig.rejection)) {
    return CorruptJson("_smithers_signals",
                       "run_id=" + sig.run_id + ", seq=" + std::to_string(sig.seq),
                       "payload_json or rejection_json");
  }
  return sig;
}

Result<FrameRecord> ReadFrame(const Statement& row) {
  return FrameRecord{.run_id = row.Text(0),
                     .frame_no = row.Int64(1),
                     .created_at_ms = row.Int64(2),
                     .encoding = row.Text(3),
                     .data = row.Text(4),
                     .xml_hash = row.Text(5),
                     .note = row.Text(6)};
}

Result<EventRecord> ReadEvent(const Statement& row) {
  EventRecord event{.run_id = row.Text(0),
                    .seq = row.Int64(1),
                    .timestamp_ms = row.Int64(2),
                    .type = row.Text(3)};
  if (!ReadJson(row, 4, &event.payload)) {
    return CorruptJson("_smithers_events",
                       "run_id=" + event.run_id + ", seq=" + std::to_string(event.seq),
                       "payload_json");
  }
  return event;
}

template <typename T>
struct ResultValue;
template <typename T>
struct ResultValue<Result<T>> {
  using Type = T;
};
template <typename Read>
using RecordOf = typename ResultValue<std::invoke_result_t<Read, const Statement&>>::Type;

// Runs a bound query and decodes every row with `read` (Result<T>(const Statement&)).
template <typename Read>
Result<std::vector<RecordOf<Read>>> Collect(Statement& stmt, Read read) {
  using Record = RecordOf<Read>;
  std::vector<Record> records;
  SMITHERS_RETURN_IF_ERROR(stmt.ForEachRow([&](const Statement& row) -> Status {
    Result<Record> record = read(row);
    if (!record.ok()) return record.status();
    records.push_back(std::move(record).value());
    return Status::Ok();
  }));
  return records;
}

// A negative limit means "no limit", as SQLite's LIMIT -1 does.
int64_t SqlLimit(int limit) { return limit < 0 ? -1 : limit; }

// --- Output views ---------------------------------------------------------------

bool IsIdentifier(std::string_view s) {
  auto is_alpha = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.empty() || !is_alpha(s[0])) return false;
  for (char c : s) {
    if (!is_alpha(c) && !is_digit(c)) return false;
  }
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// SQL for one view. `name` and every property used are identifiers, so they
// can sit inside quotes and the JSON path without escaping.
Result<std::string> OutputViewSql(const std::string& name, const Json& schema) {
  if (!IsIdentifier(name)) {
    return InvalidArgumentError("output name \"" + name +
                                "\" cannot name a view: use [A-Za-z_][A-Za-z0-9_]*");
  }
  const std::string lower = Lower(name);
  if (lower.starts_with("_smithers") || lower.starts_with("sqlite_")) {
    return InvalidArgumentError("output name \"" + name +
                                "\" is reserved (names starting with _smithers or sqlite_)");
  }
  if (!schema.is_object()) {
    return InvalidArgumentError("schema of output \"" + name + "\" is not a JSON object");
  }
  // SQLite column names are case-insensitive: keep the first of any clash,
  // and never shadow the key columns every view starts with.
  std::set<std::string> taken = {"run_id", "node_id", "iteration", "created_at_ms"};
  std::string columns;
  auto properties = schema.find("properties");
  if (properties != schema.end() && properties->is_object()) {
    for (const auto& [property, unused] : properties->items()) {
      if (!IsIdentifier(property) || !taken.insert(Lower(property)).second) continue;
      columns += ", json_extract(payload_json, '$." + property + "') AS \"" + property + "\"";
    }
  }
  return "DROP VIEW IF EXISTS \"" + name + "\"; CREATE VIEW \"" + name +
         "\" AS SELECT run_id, node_id, iteration" + columns +
         ", created_at_ms FROM _smithers_outputs WHERE output_table = '" + name + "';";
}

// --- The store ----------------------------------------------------------------

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(Database db) : db_(std::move(db)) {}

  // Statements needing a migration above `max_migration` (only tests open a
  // store short of the latest) stay unprepared and must not be used.
  Status PrepareStatements(int max_migration) {
    for (const StatementSql& entry : kStatements) {
      if (entry.migration > max_migration) continue;
      SMITHERS_ASSIGN_OR_RETURN(statements_[entry.id], db_.Prepare(entry.sql));
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
  std::string BackendName() const override { return "sqlite"; }
  Result<std::vector<ApprovalRecord>> ListApprovals(const ApprovalFilter& filter) override;
  Result<std::vector<SignalRecord>> ListSignals(const std::string& run_id) override;
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
  Status PutModuleSource(const ModuleSource& module) override;
  Result<std::string> ChangeStamp() override;
  Status BeginRead() override { return db_.BeginRead(); }
  void EndRead() override { db_.EndRead(); }
  Result<std::optional<ModuleSource>> GetModuleSource(const std::string& revision) override;
  Status ClaimCronFire(const std::string& cron_id, int64_t expected_next_ms, int64_t fired_at_ms,
                       int64_t new_next_ms, const std::string& run_id) override;

 private:
  // Within a transaction: appends one event and returns its seq.
  Result<int64_t> InsertEvent(const std::string& run_id, const std::string& type,
                              const Json& payload, int64_t timestamp_ms);
  Statement& stmt(StatementId id) { return statements_[id]; }
  // Applies one op inside the open transaction; appends an event's seq to `seqs`.
  Status Apply(const WriteBatch::Op& op, std::vector<int64_t>& seqs);
  // Within a transaction: NotFound unless the run exists.
  Status RequireRun(const std::string& run_id);
  // The Aborted status of a ConsumeSignal that changed nothing, saying why.
  Status SignalNotPending(const std::string& run_id, int64_t seq);

  Database db_;  // declared first so it outlives the statements
  std::array<Statement, kStatementCount> statements_;
};

std::string DescribeOp(const WriteBatch::Op& op) {
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
      return "_smithers_approvals row (" +
             RowKey(op.approval->run_id, op.approval->node_id, op.approval->iteration) + ")";
    case Kind::kSignal:
      return "_smithers_signals row (run_id=" + op.signal->run_id +
             ", seq=" + std::to_string(op.signal->seq) + ")";
  }
  return "unknown op";
}

Result<std::vector<int64_t>> SqliteStore::Commit(const WriteBatch& batch) {
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

Status SqliteStore::Apply(const WriteBatch::Op& op, std::vector<int64_t>& seqs) {
  using Kind = WriteBatch::Op::Kind;
  switch (op.kind) {
    case Kind::kRun: {
      const RunRecord& run = *op.run;
      Statement& s = stmt(kUpsertRun);
      s.BindText(1, run.run_id);
      s.BindText(2, run.workflow_name);
      s.BindText(3, run.workflow_path);
      s.BindText(4, run.workflow_hash);
      s.BindText(5, run.status);
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
      s.BindText(4, node.state);
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
      s.BindText(5, attempt.state);
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
    case Kind::kApproval: {
      const ApprovalRecord& a = *op.approval;
      Statement& s = stmt(kRequestApproval);
      s.BindText(1, a.run_id);
      s.BindText(2, a.node_id);
      s.BindInt64(3, a.iteration);
      s.BindText(4, a.status);
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
      s.BindText(3, sig.status);
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

Result<int64_t> SqliteStore::InsertEvent(const std::string& run_id, const std::string& type,
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

Status SqliteStore::SignalNotPending(const std::string& run_id, int64_t seq) {
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

Status SqliteStore::PutToken(const TokenGrant& g) {
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

Result<std::optional<TokenGrant>> SqliteStore::FindToken(const std::string& token_hash) {
  Statement& s = stmt(kFindToken);
  s.BindText(1, token_hash);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<TokenGrant> rows, Collect(s, ReadToken));
  if (rows.empty()) return std::optional<TokenGrant>();
  return std::optional<TokenGrant>(std::move(rows.front()));
}

Result<std::vector<TokenGrant>> SqliteStore::ListTokens() {
  return Collect(stmt(kListTokens), ReadToken);
}

Status SqliteStore::RevokeToken(const std::string& token_id, int64_t at_ms,
                                const std::string& replaced_by) {
  Statement& s = stmt(kRevokeToken);
  s.BindText(1, token_id);
  s.BindInt64(2, at_ms);
  s.BindText(3, replaced_by);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() != 1) return NotFoundError("no token with id " + token_id);
  return Status::Ok();
}

Status SqliteStore::PutCron(const CronRecord& c) {
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

Result<std::vector<CronRecord>> SqliteStore::ListCron() {
  return Collect(stmt(kListCron), ReadCron);
}

Status SqliteStore::DeleteCron(const std::string& cron_id) {
  Statement& s = stmt(kDeleteCron);
  s.BindText(1, cron_id);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() != 1) return NotFoundError("no cron schedule with id " + cron_id);
  return Status::Ok();
}

// PRAGMA data_version moves when another connection commits;
// total_changes counts this connection's own writes.
Result<std::string> SqliteStore::ChangeStamp() {
  int64_t version = 0;
  SMITHERS_RETURN_IF_ERROR(stmt(kDataVersion).ForEachRow([&](const Statement& row) {
    version = row.Int64(0);
    return Status::Ok();
  }));
  return std::to_string(version) + "/" + std::to_string(db_.total_changes());
}

Status SqliteStore::PutModuleSource(const ModuleSource& m) {
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

Result<std::optional<ModuleSource>> SqliteStore::GetModuleSource(const std::string& revision) {
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

Status SqliteStore::ClaimCronFire(const std::string& cron_id, int64_t expected_next_ms,
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

Result<std::vector<ApprovalRecord>> SqliteStore::ListApprovals(const ApprovalFilter& filter) {
  Statement& s = stmt(kListApprovals);
  s.BindText(1, filter.run_id);
  s.BindText(2, filter.status);
  return Collect(s, ReadApproval);
}

Result<std::vector<SignalRecord>> SqliteStore::ListSignals(const std::string& run_id) {
  Statement& s = stmt(kListSignals);
  s.BindText(1, run_id);
  return Collect(s, ReadSignal);
}

Result<ApprovalRecord> SqliteStore::DecideApproval(const ApprovalDecision& d, int64_t now_ms) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  Statement& get = stmt(kGetApproval);
  get.BindText(1, d.run_id);
  get.BindText(2, d.node_id);
  get.BindInt64(3, d.iteration);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<ApprovalRecord> rows, Collect(get, ReadApproval));
  const std::string what = "node \"" + d.node_id + "\" (iteration " + std::to_string(d.iteration) +
                           ") of run " + d.run_id;
  if (rows.empty()) return NotFoundError("no approval request for " + what);
  ApprovalRecord a = std::move(rows.front());
  if (a.status != "requested") {
    return FailedPreconditionError(what + " was already " + a.status + " by " + a.decided_by +
                                   " at " + base::FormatIsoTime(a.decided_at_ms) +
                                   "; a decision cannot be changed");
  }
  if (d.authorize) SMITHERS_RETURN_IF_ERROR(d.authorize(a));
  a.status = d.approved ? "approved" : "denied";
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
  s.BindText(4, a.status);
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

Result<std::vector<ApprovalRecord>> SqliteStore::EscalateDueApprovals(const std::string& run_id,
                                                                      int64_t now_ms) {
  auto due = [&]() {
    Statement& s = stmt(kDueApprovals);
    s.BindText(1, run_id);
    s.BindInt64(2, now_ms);
    return Collect(s, ReadApproval);
  };
  // A cheap read first: most calls find nothing and take no write lock.
  SMITHERS_ASSIGN_OR_RETURN(std::vector<ApprovalRecord> rows, due());
  if (rows.empty()) return rows;
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  SMITHERS_ASSIGN_OR_RETURN(rows, due());  // again, under the lock
  for (ApprovalRecord& a : rows) {
    Statement& s = stmt(kEscalateApproval);
    s.BindText(1, a.run_id);
    s.BindText(2, a.node_id);
    s.BindInt64(3, a.iteration);
    BindTime(s, 4, now_ms);
    SMITHERS_RETURN_IF_ERROR(s.Run());
    SMITHERS_RETURN_IF_ERROR(InsertEvent(a.run_id, "ApprovalEscalated",
                                         {{"nodeId", a.node_id},
                                          {"iteration", a.iteration},
                                          {"from", a.owner},
                                          {"to", a.fallback_owner}},
                                         now_ms)
                                 .status());
    a.owner = a.fallback_owner;
    a.escalated_at_ms = now_ms;
  }
  SMITHERS_RETURN_IF_ERROR(txn.Commit());
  return rows;
}

Result<SignalRecord> SqliteStore::AppendSignal(SignalRecord sig) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  SMITHERS_RETURN_IF_ERROR(RequireRun(sig.run_id));
  Statement& next = stmt(kNextSignalSeq);
  next.BindText(1, sig.run_id);
  SMITHERS_RETURN_IF_ERROR(next.ForEachRow([&](const Statement& row) {
    sig.seq = row.Int64(0);
    return Status::Ok();
  }));
  sig.status = "pending";
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

Result<RunRecord> SqliteStore::GetRun(const std::string& run_id) {
  Statement& s = stmt(kGetRun);
  s.BindText(1, run_id);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<RunRecord> runs, Collect(s, ReadRun));
  if (runs.empty()) return NotFoundError("no run " + run_id);
  return std::move(runs.front());
}

Result<std::vector<RunRecord>> SqliteStore::ListRuns(const RunFilter& filter) {
  if (filter.status.empty()) {
    Statement& s = stmt(kListRuns);
    s.BindInt64(1, SqlLimit(filter.limit));
    return Collect(s, ReadRun);
  }
  if (filter.status == "waiting") {
    Statement& s = stmt(kListRunsWaiting);
    s.BindInt64(1, SqlLimit(filter.limit));
    return Collect(s, ReadRun);
  }
  Statement& s = stmt(kListRunsWithStatus);
  s.BindText(1, filter.status);
  s.BindInt64(2, SqlLimit(filter.limit));
  return Collect(s, ReadRun);
}

Result<std::vector<NodeRecord>> SqliteStore::ListNodes(const std::string& run_id) {
  Statement& s = stmt(kListNodes);
  s.BindText(1, run_id);
  return Collect(s, ReadNode);
}

Result<std::map<std::string, int64_t>> SqliteStore::CountNodes(const std::string& run_id) {
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

Result<std::map<std::string, int64_t>> SqliteStore::CountRunsByStatus() {
  std::map<std::string, int64_t> counts;
  SMITHERS_RETURN_IF_ERROR(stmt(kCountRunsByStatus).ForEachRow([&](const Statement& row) {
    counts[std::string(row.TextView(0))] = row.Int64(1);
    return Status::Ok();
  }));
  return counts;
}

Result<std::vector<AttemptRecord>> SqliteStore::ListAttempts(const std::string& run_id) {
  Statement& s = stmt(kListAttempts);
  s.BindText(1, run_id);
  return Collect(s, ReadAttempt);
}

Result<std::vector<OutputRecord>> SqliteStore::ListOutputs(const std::string& run_id) {
  Statement& s = stmt(kListOutputs);
  s.BindText(1, run_id);
  return Collect(s, ReadOutput);
}

Result<std::vector<LoopRecord>> SqliteStore::ListLoops(const std::string& run_id) {
  Statement& s = stmt(kListLoops);
  s.BindText(1, run_id);
  return Collect(s, ReadLoop);
}

Result<std::vector<FrameRecord>> SqliteStore::ListFrames(const std::string& run_id) {
  Statement& s = stmt(kListFrames);
  s.BindText(1, run_id);
  return Collect(s, ReadFrame);
}

Result<std::optional<FrameRecord>> SqliteStore::LastFrame(const std::string& run_id) {
  Statement& s = stmt(kLastFrame);
  s.BindText(1, run_id);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<FrameRecord> frames, Collect(s, ReadFrame));
  if (frames.empty()) return std::optional<FrameRecord>();
  return std::optional<FrameRecord>(std::move(frames.front()));
}

Result<std::vector<EventRecord>> SqliteStore::ListEvents(const std::string& run_id,
                                                         int64_t after_seq, int limit) {
  Statement& s = stmt(kListEvents);
  s.BindText(1, run_id);
  s.BindInt64(2, after_seq);
  s.BindInt64(3, SqlLimit(limit));
  return Collect(s, ReadEvent);
}

Result<std::optional<CacheEntry>> SqliteStore::GetCache(const std::string& cache_key) {
  Statement& s = stmt(kGetCache);
  s.BindText(1, cache_key);
  SMITHERS_ASSIGN_OR_RETURN(std::vector<CacheEntry> rows, Collect(s, ReadCache));
  if (rows.empty()) return std::optional<CacheEntry>();
  return std::optional<CacheEntry>(std::move(rows.front()));
}

Status SqliteStore::RequireRun(const std::string& run_id) {
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
Status SqliteStore::ClaimRun(const std::string& run_id, const std::string& expected_owner,
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

Status SqliteStore::Heartbeat(const std::string& run_id, const std::string& owner, int64_t now_ms) {
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

Status SqliteStore::RequestCancel(const std::string& run_id, int64_t now_ms) {
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

Status SqliteStore::ClearCancel(const std::string& run_id) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db_));
  Statement& s = stmt(kClearCancel);
  s.BindText(1, run_id);
  SMITHERS_RETURN_IF_ERROR(s.Run());
  if (db_.changes() == 0) return NotFoundError("no run " + run_id);
  return txn.Commit();
}

Status SqliteStore::EnsureOutputViews(const std::map<std::string, Json>& schemas) {
  // Validate everything before writing anything.
  std::vector<std::pair<std::string, std::string>> views;  // name, DDL
  for (const auto& [name, schema] : schemas) {
    SMITHERS_ASSIGN_OR_RETURN(std::string sql, OutputViewSql(name, schema));
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

Result<std::string> NormalizeSynchronous(const std::string& value) {
  const std::string lower = Lower(value);
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
  auto store = std::make_unique<SqliteStore>(std::move(db));
  SMITHERS_RETURN_IF_ERROR(store->PrepareStatements(max_migration));
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::unique_ptr<Store>> OpenStore(const SqliteOptions& options, int max_migration) {
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
  if (Lower(journal_mode) != "wal") {
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

  auto store = std::make_unique<SqliteStore>(std::move(db));
  SMITHERS_RETURN_IF_ERROR(store->PrepareStatements(max_migration));
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::unique_ptr<Store>> OpenStoreWithContext(const SqliteOptions& options,
                                                    int max_migration) {
  Result<std::unique_ptr<Store>> store = OpenStore(options, max_migration);
  if (!store.ok()) return store.status().WithContext("open SQLite store " + options.path);
  return store;
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStoreAt(const StoreLocation& location,
                                                 const StoreOptions& options) {
  return OpenSqliteStore({.path = location.path,
                          .synchronous = options.synchronous,
                          .read_only = options.read_only,
                          .group_readable = options.group_readable});
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
