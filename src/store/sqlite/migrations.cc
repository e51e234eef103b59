#include "store/sqlite/migrations.h"

#include <iterator>
#include <map>
#include <string>

#include "store/sql/migration_ledger.h"

namespace smithers::store {
namespace {

// Text columns the engine always fills are NOT NULL DEFAULT ''; timestamps and
// JSON are nullable because 0 and a null Json are stored as NULL. Every child
// row cascades with its run, so deleting a run removes all of it.
//
// Tables are WITHOUT ROWID: the primary key is then the table's only B-tree,
// so a commit dirties (and writes to the WAL) one page per row instead of two.
// Pages written are most of a small commit's CPU cost.
constexpr const char kInitialTables[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_runs (
  run_id TEXT NOT NULL PRIMARY KEY,
  parent_run_id TEXT,
  workflow_name TEXT NOT NULL DEFAULT '',
  workflow_path TEXT NOT NULL DEFAULT '',
  workflow_hash TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER,
  started_at_ms INTEGER,
  finished_at_ms INTEGER,
  heartbeat_at_ms INTEGER,
  runtime_owner_id TEXT,
  cancel_requested_at_ms INTEGER,
  input_json TEXT,
  error_json TEXT,
  config_json TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_nodes (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT '',
  last_attempt INTEGER NOT NULL DEFAULT 0,
  updated_at_ms INTEGER,
  output_table TEXT NOT NULL DEFAULT '',
  label TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, node_id, iteration),
  FOREIGN KEY (run_id) REFERENCES _smithers_runs(run_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_attempts (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL DEFAULT 0,
  attempt INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT '',
  started_at_ms INTEGER,
  finished_at_ms INTEGER,
  error_json TEXT,
  cached INTEGER NOT NULL DEFAULT 0,
  meta_json TEXT,
  PRIMARY KEY (run_id, node_id, iteration, attempt),
  FOREIGN KEY (run_id) REFERENCES _smithers_runs(run_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_outputs (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL DEFAULT 0,
  output_table TEXT NOT NULL,
  payload_json TEXT,
  created_at_ms INTEGER,
  PRIMARY KEY (run_id, node_id, iteration),
  FOREIGN KEY (run_id) REFERENCES _smithers_runs(run_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_frames (
  run_id TEXT NOT NULL,
  frame_no INTEGER NOT NULL,
  created_at_ms INTEGER,
  encoding TEXT NOT NULL DEFAULT '',
  data TEXT NOT NULL DEFAULT '',
  xml_hash TEXT NOT NULL DEFAULT '',
  note TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, frame_no),
  FOREIGN KEY (run_id) REFERENCES _smithers_runs(run_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_events (
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  timestamp_ms INTEGER,
  type TEXT NOT NULL,
  payload_json TEXT,
  PRIMARY KEY (run_id, seq),
  FOREIGN KEY (run_id) REFERENCES _smithers_runs(run_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_ralph (
  run_id TEXT NOT NULL,
  ralph_id TEXT NOT NULL,
  iteration INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0,
  updated_at_ms INTEGER,
  PRIMARY KEY (run_id, ralph_id),
  FOREIGN KEY (run_id) REFERENCES _smithers_runs(run_id) ON DELETE CASCADE
) WITHOUT ROWID;
)sql";

// The recovery sweep looks runs up by (status, heartbeat); child runs are
// found by parent; output views filter on output_table. No index on
// created_at_ms: every run upsert would rewrite one more page to save `ps` a
// top-N sort over a table that stays small.
constexpr const char kIndexes[] = R"sql(
CREATE INDEX IF NOT EXISTS _smithers_runs_by_status_heartbeat
  ON _smithers_runs(status, heartbeat_at_ms);
CREATE INDEX IF NOT EXISTS _smithers_runs_by_parent ON _smithers_runs(parent_run_id);
CREATE INDEX IF NOT EXISTS _smithers_outputs_by_table ON _smithers_outputs(output_table);
)sql";

// Task outputs reusable across runs (docs/engine.md "Cache"). No foreign key
// to _smithers_runs: a cache row outlives the run that wrote it.
constexpr const char kCacheTable[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_cache (
  cache_key TEXT NOT NULL PRIMARY KEY,
  created_at_ms INTEGER,
  workflow_name TEXT NOT NULL DEFAULT '',
  node_id TEXT NOT NULL DEFAULT '',
  output_table TEXT NOT NULL DEFAULT '',
  schema_sig TEXT NOT NULL DEFAULT '',
  payload_json TEXT
) WITHOUT ROWID;
)sql";

// Durable waits (docs/engine.md "Waits"): approval requests and decisions,
// and signals delivered to runs, kept until a wait consumes them.
constexpr const char kWaitTables[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_approvals (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'denied')),
  requested_at_ms INTEGER,
  owner TEXT NOT NULL DEFAULT '',
  original_owner TEXT NOT NULL DEFAULT '',
  fallback_owner TEXT NOT NULL DEFAULT '',
  escalate_after_ms INTEGER NOT NULL DEFAULT 0,
  escalated_at_ms INTEGER,
  request_json TEXT,
  on_deny TEXT NOT NULL DEFAULT 'fail',
  decided_at_ms INTEGER,
  decided_by TEXT NOT NULL DEFAULT '',
  note TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, node_id, iteration),
  FOREIGN KEY (run_id) REFERENCES _smithers_runs(run_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS _smithers_approvals_by_status
  ON _smithers_approvals(status, requested_at_ms);
CREATE TABLE IF NOT EXISTS _smithers_signals (
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  name TEXT NOT NULL,
  correlation_id TEXT NOT NULL DEFAULT '',
  payload_json TEXT,
  received_at_ms INTEGER,
  received_by TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL CHECK (status IN ('pending', 'consumed', 'rejected')),
  consumed_by_node TEXT NOT NULL DEFAULT '',
  consumed_iteration INTEGER NOT NULL DEFAULT 0,
  consumed_at_ms INTEGER,
  rejection_json TEXT,
  PRIMARY KEY (run_id, seq),
  FOREIGN KEY (run_id) REFERENCES _smithers_runs(run_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS _smithers_signals_by_name
  ON _smithers_signals(run_id, name, status, seq);
)sql";

// Gateway state (docs/gateway.md): bearer-token grants, stored only as the
// SHA-256 of the token, and cron schedules. Neither belongs to one run.
constexpr const char kGatewayTables[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_tokens (
  token_id TEXT NOT NULL PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  scopes_json TEXT NOT NULL,
  role TEXT NOT NULL DEFAULT 'operator',
  user_id TEXT NOT NULL DEFAULT '',
  label TEXT NOT NULL DEFAULT '',
  issued_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER,
  revoked_at_ms INTEGER,
  replaced_by TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_cron (
  cron_id TEXT NOT NULL PRIMARY KEY,
  workflow TEXT NOT NULL,
  pattern TEXT NOT NULL,
  time_zone TEXT NOT NULL DEFAULT 'UTC',
  input_json TEXT,
  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  created_at_ms INTEGER NOT NULL,
  last_run_at_ms INTEGER,
  next_run_at_ms INTEGER,
  last_run_id TEXT NOT NULL DEFAULT '',
  last_error TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
)sql";

// Workflow module sources by revision, so a resumed run runs the code it
// started with after its file changed (docs/gateway.md "Hot reload").
constexpr const char kModulesTable[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_modules (
  revision TEXT NOT NULL PRIMARY KEY,
  path TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// The sibling modules a pinned revision `require`d, by module name.
constexpr const char kModuleRequiresTable[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_module_requires (
  revision TEXT NOT NULL,
  name TEXT NOT NULL,
  source TEXT NOT NULL,
  PRIMARY KEY (revision, name)
) WITHOUT ROWID;
)sql";

// Who may decide an approval besides its owners, and how a decision was
// made (docs/engine.md "Waits"): allowed users and scopes as JSON arrays of
// strings (NULL = none); the decider's channel ("cli", "token", "jwt",
// "trusted-proxy", "unauthenticated"), the OS user behind a CLI decision, and
// whether a run:admin override made it.
constexpr const char kApprovalDecidersColumns[] = R"sql(
ALTER TABLE _smithers_approvals ADD COLUMN allowed_users_json TEXT;
ALTER TABLE _smithers_approvals ADD COLUMN allowed_scopes_json TEXT;
ALTER TABLE _smithers_approvals ADD COLUMN decided_via TEXT NOT NULL DEFAULT '';
ALTER TABLE _smithers_approvals ADD COLUMN decided_os_user TEXT NOT NULL DEFAULT '';
ALTER TABLE _smithers_approvals ADD COLUMN decided_override INTEGER NOT NULL DEFAULT 0
  CHECK (decided_override IN (0, 1));
)sql";

// Whether a node row is in the rendered tree (docs/engine.md "Unmounted
// nodes"): 0 once its task left the tree (a flipped Branch), 1 again when it
// mounts again. Rows written before it read as mounted.
constexpr const char kNodeMountedColumn[] = R"sql(
ALTER TABLE _smithers_nodes ADD COLUMN mounted INTEGER NOT NULL DEFAULT 1
  CHECK (mounted IN (0, 1));
)sql";

// A run's events are numbered from 1, as Smithers' streams number them, so a
// reader's `afterSeq: 0` means "from the start" (docs/gateway.md "Event
// streams"). Runs stored before this migration were numbered from 0: their
// events move up by one, through negative numbers so that no two rows of a
// run ever share a seq on the way.
constexpr const char kEventsFromOne[] = R"sql(
UPDATE _smithers_events SET seq = -seq - 1
  WHERE run_id IN (SELECT run_id FROM _smithers_events WHERE seq = 0);
UPDATE _smithers_events SET seq = -seq WHERE seq < 0;
)sql";

// launchRun's idempotency keys (docs/gateway.md "Protocol"): per caller, the
// run the first launch with a key started. No foreign key: the row is taken
// before its run exists, and a failed launch deletes it.
constexpr const char kLaunchKeysTable[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_launch_keys (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  run_id TEXT NOT NULL,
  workflow TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  PRIMARY KEY (scope, key)
) WITHOUT ROWID;
)sql";

// Backups, restores and restore drills (docs/operations.md "Backups"). No
// foreign key: a row outlives every run.
constexpr const char kMaintenanceTable[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_maintenance (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL CHECK (kind IN ('backup', 'restore', 'drill')),
  started_at_ms INTEGER NOT NULL,
  finished_at_ms INTEGER NOT NULL,
  ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
  path TEXT NOT NULL,
  actor TEXT NOT NULL,
  detail_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _smithers_maintenance_kind ON _smithers_maintenance (kind, id);
)sql";

// The audit log (docs/operations.md "Audit log"): append-only (the triggers
// refuse every UPDATE and DELETE), no foreign key (a row outlives its run).
// seq is assigned by the store as MAX(seq)+1 inside the writing transaction
// and covered by the row's HMAC, so the log has no gap to explain.
constexpr const char kAuditTable[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_audit (
  seq INTEGER PRIMARY KEY,
  chain TEXT NOT NULL,
  chain_seq INTEGER NOT NULL,
  at_ms INTEGER NOT NULL,
  actor TEXT NOT NULL,
  actor_via TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  run_id TEXT NOT NULL DEFAULT '',
  details_json TEXT NOT NULL,
  version TEXT NOT NULL,
  build TEXT NOT NULL,
  module_revision TEXT NOT NULL DEFAULT '',
  key_id TEXT NOT NULL,
  prev_hmac TEXT NOT NULL,
  hmac TEXT NOT NULL,
  UNIQUE (chain, chain_seq)
);
CREATE INDEX IF NOT EXISTS _smithers_audit_run ON _smithers_audit (run_id, seq);
CREATE INDEX IF NOT EXISTS _smithers_audit_at ON _smithers_audit (at_ms);
CREATE TRIGGER IF NOT EXISTS _smithers_audit_no_update BEFORE UPDATE ON _smithers_audit
BEGIN SELECT RAISE(ABORT, '_smithers_audit is append-only: its rows cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS _smithers_audit_no_delete BEFORE DELETE ON _smithers_audit
BEGIN SELECT RAISE(ABORT, '_smithers_audit is append-only: its rows cannot be deleted'); END;
CREATE TRIGGER IF NOT EXISTS _smithers_audit_no_replace BEFORE INSERT ON _smithers_audit
WHEN EXISTS (SELECT 1 FROM _smithers_audit WHERE seq = NEW.seq
             OR (chain = NEW.chain AND chain_seq = NEW.chain_seq))
BEGIN SELECT RAISE(ABORT, '_smithers_audit is append-only: its rows cannot be replaced'); END;
)sql";

// Sandboxed tasks (docs/sandbox.md "Records"): one row per sandbox and
// iteration, its latest attempt's, the projection of the run's Sandbox
// events (SandboxRowChange). Deleted with its run.
constexpr const char kSandboxesTable[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_sandboxes (
  run_id TEXT NOT NULL,
  sandbox_id TEXT NOT NULL,
  iteration INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('sandbox', 'command')),
  runtime TEXT NOT NULL DEFAULT 'bubblewrap',
  status TEXT NOT NULL
    CHECK (status IN ('pending', 'shipped', 'finished', 'failed', 'cancelled')),
  config_json TEXT,
  remote_run_id TEXT,
  workspace_id TEXT,
  container_id TEXT,
  bundle_path TEXT,
  request_bytes INTEGER,
  bundle_bytes INTEGER,
  patch_count INTEGER,
  review TEXT CHECK (review IN ('requested', 'accepted', 'rejected')),
  reviewed_by TEXT,
  reviewed_at_ms INTEGER,
  error_code TEXT,
  created_at_ms INTEGER,
  shipped_at_ms INTEGER,
  heartbeat_at_ms INTEGER,
  completed_at_ms INTEGER,
  PRIMARY KEY (run_id, sandbox_id, iteration),
  FOREIGN KEY (run_id) REFERENCES _smithers_runs(run_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS _smithers_sandboxes_by_status ON _smithers_sandboxes (status);
)sql";

constexpr Migration kMigrations[] = {
    {1, "initial_tables", kInitialTables},
    {2, "indexes", kIndexes},
    {3, "cache", kCacheTable},
    {4, "approvals_and_signals", kWaitTables},
    {5, "tokens_and_cron", kGatewayTables},
    {6, "module_sources", kModulesTable},
    {7, "module_requires", kModuleRequiresTable},
    {8, "approval_deciders", kApprovalDecidersColumns},
    {9, "node_mounted", kNodeMountedColumn},
    {10, "events_from_one", kEventsFromOne},
    {11, "launch_keys", kLaunchKeysTable},
    {12, "maintenance", kMaintenanceTable},
    {13, "audit", kAuditTable},
    {14, "sandboxes", kSandboxesTable},
};

constexpr const char kCreateMigrationsTable[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_schema_migrations (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at_ms INTEGER NOT NULL,
  checksum TEXT NOT NULL
))sql";

}  // namespace

std::span<const Migration> SqliteMigrations() { return kMigrations; }

int LatestSqliteMigration() { return kMigrations[std::size(kMigrations) - 1].id; }

Status MigrateSqlite(Database& db, int up_to, int64_t now_ms) {
  SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db));
  SMITHERS_RETURN_IF_ERROR(db.Exec(kCreateMigrationsTable));

  std::map<int64_t, std::string> applied;  // id -> checksum
  SMITHERS_ASSIGN_OR_RETURN(Statement select,
                            db.Prepare("SELECT id, checksum FROM _smithers_schema_migrations"));
  SMITHERS_RETURN_IF_ERROR(select.ForEachRow([&](const Statement& row) {
    applied[row.Int64(0)] = row.Text(1);
    return Status::Ok();
  }));
  SMITHERS_ASSIGN_OR_RETURN(std::vector<const Migration*> todo,
                            MigrationsToApply(applied, kMigrations, up_to));
  SMITHERS_ASSIGN_OR_RETURN(
      Statement record,
      db.Prepare("INSERT INTO _smithers_schema_migrations(id, name, applied_at_ms, checksum) "
                 "VALUES(?1, ?2, ?3, ?4)"));
  for (const Migration* migration : todo) {
    Status status = db.Exec(migration->sql);
    if (!status.ok()) {
      return status.WithContext("schema migration " + std::to_string(migration->id) + " (" +
                                migration->name + ")");
    }
    record.BindInt64(1, migration->id);
    record.BindText(2, migration->name);
    record.BindInt64(3, now_ms);
    record.BindText(4, MigrationChecksum(*migration));
    SMITHERS_RETURN_IF_ERROR(record.Run());
  }
  // Until this commit nothing of the migrations is visible: a crash before it
  // leaves the database exactly as it was, and the next open starts over.
  return txn.Commit();
}

}  // namespace smithers::store
