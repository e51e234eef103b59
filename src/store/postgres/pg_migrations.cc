#include "store/postgres/pg_migrations.h"

#include <iterator>
#include <map>
#include <string>

namespace smithers::store::pg {
namespace {

// The tables of SQLite's migrations 1-14 (store/sqlite/migrations.cc says
// what each holds), in PostgreSQL's types: every integer is BIGINT (SQLite's
// INTEGER is 64-bit), JSON stays TEXT (read back byte for byte), module
// sources are BYTEA (a file's bytes need not be UTF-8), and text
// keys sort bytewise (COLLATE "C"), as SQLite's BINARY collation sorts them.
constexpr const char kInitialSchema[] = R"sql(
CREATE TABLE _smithers_runs (
  run_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  parent_run_id TEXT COLLATE "C",
  workflow_name TEXT NOT NULL DEFAULT '',
  workflow_path TEXT NOT NULL DEFAULT '',
  workflow_hash TEXT NOT NULL DEFAULT '',
  status TEXT COLLATE "C" NOT NULL DEFAULT '',
  created_at_ms BIGINT,
  started_at_ms BIGINT,
  finished_at_ms BIGINT,
  heartbeat_at_ms BIGINT,
  runtime_owner_id TEXT,
  cancel_requested_at_ms BIGINT,
  input_json TEXT,
  error_json TEXT,
  config_json TEXT
);
CREATE INDEX _smithers_runs_by_status_heartbeat ON _smithers_runs(status, heartbeat_at_ms);
CREATE INDEX _smithers_runs_by_parent ON _smithers_runs(parent_run_id);
CREATE TABLE _smithers_nodes (
  run_id TEXT COLLATE "C" NOT NULL REFERENCES _smithers_runs(run_id) ON DELETE CASCADE,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT '',
  last_attempt BIGINT NOT NULL DEFAULT 0,
  updated_at_ms BIGINT,
  output_table TEXT NOT NULL DEFAULT '',
  label TEXT NOT NULL DEFAULT '',
  mounted BIGINT NOT NULL DEFAULT 1 CHECK (mounted IN (0, 1)),
  PRIMARY KEY (run_id, node_id, iteration)
);
CREATE TABLE _smithers_attempts (
  run_id TEXT COLLATE "C" NOT NULL REFERENCES _smithers_runs(run_id) ON DELETE CASCADE,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL DEFAULT 0,
  attempt BIGINT NOT NULL,
  state TEXT NOT NULL DEFAULT '',
  started_at_ms BIGINT,
  finished_at_ms BIGINT,
  error_json TEXT,
  cached BIGINT NOT NULL DEFAULT 0,
  meta_json TEXT,
  PRIMARY KEY (run_id, node_id, iteration, attempt)
);
CREATE TABLE _smithers_outputs (
  run_id TEXT COLLATE "C" NOT NULL REFERENCES _smithers_runs(run_id) ON DELETE CASCADE,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL DEFAULT 0,
  output_table TEXT COLLATE "C" NOT NULL,
  payload_json TEXT,
  created_at_ms BIGINT,
  PRIMARY KEY (run_id, node_id, iteration)
);
CREATE INDEX _smithers_outputs_by_table ON _smithers_outputs(output_table);
CREATE TABLE _smithers_frames (
  run_id TEXT COLLATE "C" NOT NULL REFERENCES _smithers_runs(run_id) ON DELETE CASCADE,
  frame_no BIGINT NOT NULL,
  created_at_ms BIGINT,
  encoding TEXT NOT NULL DEFAULT '',
  data TEXT NOT NULL DEFAULT '',
  xml_hash TEXT NOT NULL DEFAULT '',
  note TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, frame_no)
);
CREATE TABLE _smithers_events (
  run_id TEXT COLLATE "C" NOT NULL REFERENCES _smithers_runs(run_id) ON DELETE CASCADE,
  seq BIGINT NOT NULL,
  timestamp_ms BIGINT,
  type TEXT NOT NULL,
  payload_json TEXT,
  PRIMARY KEY (run_id, seq)
);
CREATE TABLE _smithers_ralph (
  run_id TEXT COLLATE "C" NOT NULL REFERENCES _smithers_runs(run_id) ON DELETE CASCADE,
  ralph_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL DEFAULT 0,
  done BIGINT NOT NULL DEFAULT 0,
  updated_at_ms BIGINT,
  PRIMARY KEY (run_id, ralph_id)
);
CREATE TABLE _smithers_cache (
  cache_key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  created_at_ms BIGINT,
  workflow_name TEXT NOT NULL DEFAULT '',
  node_id TEXT NOT NULL DEFAULT '',
  output_table TEXT NOT NULL DEFAULT '',
  schema_sig TEXT NOT NULL DEFAULT '',
  payload_json TEXT
);
CREATE TABLE _smithers_approvals (
  run_id TEXT COLLATE "C" NOT NULL REFERENCES _smithers_runs(run_id) ON DELETE CASCADE,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'denied')),
  requested_at_ms BIGINT,
  owner TEXT NOT NULL DEFAULT '',
  original_owner TEXT NOT NULL DEFAULT '',
  fallback_owner TEXT NOT NULL DEFAULT '',
  escalate_after_ms BIGINT NOT NULL DEFAULT 0,
  escalated_at_ms BIGINT,
  request_json TEXT,
  on_deny TEXT NOT NULL DEFAULT 'fail',
  decided_at_ms BIGINT,
  decided_by TEXT NOT NULL DEFAULT '',
  note TEXT NOT NULL DEFAULT '',
  allowed_users_json TEXT,
  allowed_scopes_json TEXT,
  decided_via TEXT NOT NULL DEFAULT '',
  decided_os_user TEXT NOT NULL DEFAULT '',
  decided_override BIGINT NOT NULL DEFAULT 0 CHECK (decided_override IN (0, 1)),
  PRIMARY KEY (run_id, node_id, iteration)
);
CREATE INDEX _smithers_approvals_by_status ON _smithers_approvals(status, requested_at_ms);
CREATE TABLE _smithers_signals (
  run_id TEXT COLLATE "C" NOT NULL REFERENCES _smithers_runs(run_id) ON DELETE CASCADE,
  seq BIGINT NOT NULL,
  name TEXT COLLATE "C" NOT NULL,
  correlation_id TEXT NOT NULL DEFAULT '',
  payload_json TEXT,
  received_at_ms BIGINT,
  received_by TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL CHECK (status IN ('pending', 'consumed', 'rejected')),
  consumed_by_node TEXT NOT NULL DEFAULT '',
  consumed_iteration BIGINT NOT NULL DEFAULT 0,
  consumed_at_ms BIGINT,
  rejection_json TEXT,
  PRIMARY KEY (run_id, seq)
);
CREATE INDEX _smithers_signals_by_name ON _smithers_signals(run_id, name, status, seq);
CREATE TABLE _smithers_tokens (
  token_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  scopes_json TEXT NOT NULL,
  role TEXT NOT NULL DEFAULT 'operator',
  user_id TEXT NOT NULL DEFAULT '',
  label TEXT NOT NULL DEFAULT '',
  issued_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT,
  revoked_at_ms BIGINT,
  replaced_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE _smithers_cron (
  cron_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  workflow TEXT NOT NULL,
  pattern TEXT NOT NULL,
  time_zone TEXT NOT NULL DEFAULT 'UTC',
  input_json TEXT,
  enabled BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  created_at_ms BIGINT NOT NULL,
  last_run_at_ms BIGINT,
  next_run_at_ms BIGINT,
  last_run_id TEXT NOT NULL DEFAULT '',
  last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE _smithers_modules (
  revision TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  path TEXT NOT NULL,
  source BYTEA NOT NULL,
  created_at_ms BIGINT NOT NULL
);
CREATE TABLE _smithers_module_requires (
  revision TEXT COLLATE "C" NOT NULL,
  name TEXT COLLATE "C" NOT NULL,
  source BYTEA NOT NULL,
  PRIMARY KEY (revision, name)
);
CREATE TABLE _smithers_launch_keys (
  scope TEXT COLLATE "C" NOT NULL,
  key TEXT COLLATE "C" NOT NULL,
  run_id TEXT COLLATE "C" NOT NULL,
  workflow TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE TABLE _smithers_maintenance (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('backup', 'restore', 'drill')),
  started_at_ms BIGINT NOT NULL,
  finished_at_ms BIGINT NOT NULL,
  ok BIGINT NOT NULL CHECK (ok IN (0, 1)),
  path TEXT NOT NULL,
  actor TEXT NOT NULL,
  detail_json TEXT NOT NULL
);
CREATE INDEX _smithers_maintenance_kind ON _smithers_maintenance (kind, id);
CREATE TABLE _smithers_audit (
  seq BIGINT PRIMARY KEY,
  chain TEXT COLLATE "C" NOT NULL,
  chain_seq BIGINT NOT NULL,
  at_ms BIGINT NOT NULL,
  actor TEXT NOT NULL,
  actor_via TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  run_id TEXT COLLATE "C" NOT NULL DEFAULT '',
  details_json TEXT NOT NULL,
  version TEXT NOT NULL,
  build TEXT NOT NULL,
  module_revision TEXT NOT NULL DEFAULT '',
  key_id TEXT NOT NULL,
  prev_hmac TEXT NOT NULL,
  hmac TEXT NOT NULL,
  UNIQUE (chain, chain_seq)
);
CREATE INDEX _smithers_audit_run ON _smithers_audit (run_id, seq);
CREATE INDEX _smithers_audit_at ON _smithers_audit (at_ms);
CREATE FUNCTION _smithers_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '_smithers_audit is append-only: its rows cannot be %',
    CASE TG_OP WHEN 'UPDATE' THEN 'changed' WHEN 'DELETE' THEN 'deleted' ELSE 'truncated' END;
END $$;
CREATE TRIGGER _smithers_audit_no_change BEFORE UPDATE OR DELETE ON _smithers_audit
  FOR EACH ROW EXECUTE FUNCTION _smithers_audit_append_only();
CREATE TRIGGER _smithers_audit_no_truncate BEFORE TRUNCATE ON _smithers_audit
  FOR EACH STATEMENT EXECUTE FUNCTION _smithers_audit_append_only();
CREATE TABLE _smithers_sandboxes (
  run_id TEXT COLLATE "C" NOT NULL REFERENCES _smithers_runs(run_id) ON DELETE CASCADE,
  sandbox_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL,
  attempt BIGINT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('sandbox', 'command')),
  runtime TEXT NOT NULL DEFAULT 'bubblewrap',
  status TEXT NOT NULL
    CHECK (status IN ('pending', 'shipped', 'finished', 'failed', 'cancelled')),
  config_json TEXT,
  remote_run_id TEXT,
  workspace_id TEXT,
  container_id TEXT,
  bundle_path TEXT,
  request_bytes BIGINT,
  bundle_bytes BIGINT,
  patch_count BIGINT,
  review TEXT CHECK (review IN ('requested', 'accepted', 'rejected')),
  reviewed_by TEXT,
  reviewed_at_ms BIGINT,
  error_code TEXT,
  created_at_ms BIGINT,
  shipped_at_ms BIGINT,
  heartbeat_at_ms BIGINT,
  completed_at_ms BIGINT,
  PRIMARY KEY (run_id, sandbox_id, iteration)
);
CREATE INDEX _smithers_sandboxes_by_status ON _smithers_sandboxes (status);
)sql";

constexpr Migration kMigrations[] = {
    {1, "initial_schema", kInitialSchema},
};

// Created before any migration, under the migration lock: the migrations'
// own ledger, and the row every write transaction bumps (pg_db.h).
constexpr const char kBookkeeping[] = R"sql(
CREATE TABLE IF NOT EXISTS _smithers_schema_migrations (
  id BIGINT PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at_ms BIGINT NOT NULL,
  checksum TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _smithers_commits (
  id BIGINT PRIMARY KEY CHECK (id = 1),
  n BIGINT NOT NULL
);
INSERT INTO _smithers_commits (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
)sql";

// The session lock every migrating process takes first, per schema, so
// several processes starting at once migrate one after the other.
constexpr const char kLock[] =
    "SELECT pg_advisory_lock(hashtext('smithers migrations ' || current_schema()))";
constexpr const char kUnlock[] =
    "SELECT pg_advisory_unlock(hashtext('smithers migrations ' || current_schema()))";

Status MigrateLocked(Database& db, int64_t now_ms) {
  SMITHERS_ASSIGN_OR_RETURN(std::optional<std::string> schema,
                            db.QueryText("SELECT current_schema()"));
  if (!schema) {
    return FailedPreconditionError(
        "PostgreSQL: no schema to create the tables in (the search_path names none that "
        "exists); create it or give options=-csearch_path=NAME in the URL");
  }
  SMITHERS_RETURN_IF_ERROR(db.Command(std::string("BEGIN; ") + kBookkeeping + " COMMIT;")
                               .WithContext("create the migrations' ledger"));
  SMITHERS_ASSIGN_OR_RETURN(Statement select,
                            db.Prepare("SELECT id, checksum FROM _smithers_schema_migrations"));
  std::map<int64_t, std::string> applied;  // id -> checksum
  SMITHERS_RETURN_IF_ERROR(select.ForEachRow([&](const Statement& row) {
    applied[row.Int64(0)] = row.Text(1);
    return Status::Ok();
  }));
  SMITHERS_ASSIGN_OR_RETURN(std::vector<const Migration*> todo,
                            MigrationsToApply(applied, kMigrations, LatestPostgresMigration()));
  for (const Migration* migration : todo) {
    // Each migration and its ledger row commit together, or not at all.
    SMITHERS_ASSIGN_OR_RETURN(WriteTransaction txn, WriteTransaction::Begin(db));
    Status status = db.Command(migration->sql);
    if (!status.ok()) {
      return status.WithContext("schema migration " + std::to_string(migration->id) + " (" +
                                migration->name + ")");
    }
    SMITHERS_ASSIGN_OR_RETURN(
        Statement record,
        db.Prepare("INSERT INTO _smithers_schema_migrations(id, name, applied_at_ms, checksum) "
                   "VALUES($1, $2, $3, $4)"));
    record.BindInt64(1, migration->id);
    record.BindText(2, migration->name);
    record.BindInt64(3, now_ms);
    record.BindText(4, MigrationChecksum(*migration));
    SMITHERS_RETURN_IF_ERROR(record.Run());
    SMITHERS_RETURN_IF_ERROR(txn.Commit());
  }
  return Status::Ok();
}

}  // namespace

int LatestPostgresMigration() { return kMigrations[std::size(kMigrations) - 1].id; }

Status MigratePostgres(Database& db, int64_t now_ms) {
  SMITHERS_RETURN_IF_ERROR(db.QueryText(kLock).status().WithContext("take the migration lock"));
  Status status = MigrateLocked(db, now_ms);
  // Dropped with the session too, should this fail.
  (void)db.QueryText(kUnlock);
  return status;
}

Status CheckPostgresSchema(Database& db) {
  Result<std::optional<std::string>> version =
      db.QueryText("SELECT MAX(id) FROM _smithers_schema_migrations");
  if (!version.ok() || !*version) {
    return FailedPreconditionError(
        "this PostgreSQL database holds no Smithers tables; create them with "
        "smithers db migrate (or any command that writes, such as smithers up)");
  }
  if (std::stoll(**version) > LatestPostgresMigration()) {
    return FailedPreconditionError("database schema version " + **version +
                                   " was written by a newer Smithers (this build knows up to " +
                                   std::to_string(LatestPostgresMigration()) +
                                   "); upgrade smithers");
  }
  return Status::Ok();
}

}  // namespace smithers::store::pg
