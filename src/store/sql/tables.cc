#include "store/sql/tables.h"

#include <iterator>
#include <string>
#include <vector>

#include "smithers/store.h"

namespace smithers::store {
namespace {

constexpr ColumnKind I = ColumnKind::kInteger;
constexpr ColumnKind T = ColumnKind::kText;
constexpr ColumnKind B = ColumnKind::kBytes;

const TableDef kTables[] = {
    {"_smithers_runs",
     {{"run_id", T},
      {"parent_run_id", T},
      {"workflow_name", T},
      {"workflow_path", T},
      {"workflow_hash", T},
      {"status", T},
      {"created_at_ms", I},
      {"started_at_ms", I},
      {"finished_at_ms", I},
      {"heartbeat_at_ms", I},
      {"runtime_owner_id", T},
      {"cancel_requested_at_ms", I},
      {"input_json", T},
      {"error_json", T},
      {"config_json", T}},
     "run_id"},
    {"_smithers_nodes",
     {{"run_id", T},
      {"node_id", T},
      {"iteration", I},
      {"state", T},
      {"last_attempt", I},
      {"updated_at_ms", I},
      {"output_table", T},
      {"label", T},
      {"mounted", I}},
     "run_id, node_id, iteration"},
    {"_smithers_attempts",
     {{"run_id", T},
      {"node_id", T},
      {"iteration", I},
      {"attempt", I},
      {"state", T},
      {"started_at_ms", I},
      {"finished_at_ms", I},
      {"error_json", T},
      {"cached", I},
      {"meta_json", T}},
     "run_id, node_id, iteration, attempt"},
    {"_smithers_outputs",
     {{"run_id", T},
      {"node_id", T},
      {"iteration", I},
      {"output_table", T},
      {"payload_json", T},
      {"created_at_ms", I}},
     "run_id, node_id, iteration"},
    {"_smithers_frames",
     {{"run_id", T},
      {"frame_no", I},
      {"created_at_ms", I},
      {"encoding", T},
      {"data", T},
      {"xml_hash", T},
      {"note", T}},
     "run_id, frame_no"},
    {"_smithers_events",
     {{"run_id", T}, {"seq", I}, {"timestamp_ms", I}, {"type", T}, {"payload_json", T}},
     "run_id, seq"},
    {"_smithers_ralph",
     {{"run_id", T}, {"ralph_id", T}, {"iteration", I}, {"done", I}, {"updated_at_ms", I}},
     "run_id, ralph_id"},
    {"_smithers_cache",
     {{"cache_key", T},
      {"created_at_ms", I},
      {"workflow_name", T},
      {"node_id", T},
      {"output_table", T},
      {"schema_sig", T},
      {"payload_json", T}},
     "cache_key"},
    {"_smithers_approvals",
     {{"run_id", T},
      {"node_id", T},
      {"iteration", I},
      {"status", T},
      {"requested_at_ms", I},
      {"owner", T},
      {"original_owner", T},
      {"fallback_owner", T},
      {"escalate_after_ms", I},
      {"escalated_at_ms", I},
      {"request_json", T},
      {"on_deny", T},
      {"decided_at_ms", I},
      {"decided_by", T},
      {"note", T},
      {"allowed_users_json", T},
      {"allowed_scopes_json", T},
      {"decided_via", T},
      {"decided_os_user", T},
      {"decided_override", I}},
     "run_id, node_id, iteration"},
    {"_smithers_signals",
     {{"run_id", T},
      {"seq", I},
      {"name", T},
      {"correlation_id", T},
      {"payload_json", T},
      {"received_at_ms", I},
      {"received_by", T},
      {"status", T},
      {"consumed_by_node", T},
      {"consumed_iteration", I},
      {"consumed_at_ms", I},
      {"rejection_json", T}},
     "run_id, seq"},
    {"_smithers_tokens",
     {{"token_id", T},
      {"token_hash", T},
      {"scopes_json", T},
      {"role", T},
      {"user_id", T},
      {"label", T},
      {"issued_at_ms", I},
      {"expires_at_ms", I},
      {"revoked_at_ms", I},
      {"replaced_by", T}},
     "token_id"},
    {"_smithers_cron",
     {{"cron_id", T},
      {"workflow", T},
      {"pattern", T},
      {"time_zone", T},
      {"input_json", T},
      {"enabled", I},
      {"created_at_ms", I},
      {"last_run_at_ms", I},
      {"next_run_at_ms", I},
      {"last_run_id", T},
      {"last_error", T}},
     "cron_id"},
    {"_smithers_modules",
     {{"revision", T}, {"path", T}, {"source", B}, {"created_at_ms", I}},
     "revision"},
    {"_smithers_module_requires", {{"revision", T}, {"name", T}, {"source", B}}, "revision, name"},
    {"_smithers_launch_keys",
     {{"scope", T}, {"key", T}, {"run_id", T}, {"workflow", T}, {"created_at_ms", I}},
     "scope, key"},
    {"_smithers_maintenance",
     {{"id", I},
      {"kind", T},
      {"started_at_ms", I},
      {"finished_at_ms", I},
      {"ok", I},
      {"path", T},
      {"actor", T},
      {"detail_json", T}},
     "id"},
    {"_smithers_audit",
     {{"seq", I},
      {"chain", T},
      {"chain_seq", I},
      {"at_ms", I},
      {"actor", T},
      {"actor_via", T},
      {"action", T},
      {"target", T},
      {"run_id", T},
      {"details_json", T},
      {"version", T},
      {"build", T},
      {"module_revision", T},
      {"key_id", T},
      {"prev_hmac", T},
      {"hmac", T}},
     "seq"},
    {"_smithers_sandboxes",
     {{"run_id", T},        {"sandbox_id", T},      {"iteration", I},      {"attempt", I},
      {"kind", T},          {"runtime", T},         {"status", T},         {"config_json", T},
      {"remote_run_id", T}, {"workspace_id", T},    {"container_id", T},   {"bundle_path", T},
      {"request_bytes", I}, {"bundle_bytes", I},    {"patch_count", I},    {"review", T},
      {"reviewed_by", T},   {"reviewed_at_ms", I},  {"error_code", T},     {"created_at_ms", I},
      {"shipped_at_ms", I}, {"heartbeat_at_ms", I}, {"completed_at_ms", I}},
     "run_id, sandbox_id, iteration"},
};

}  // namespace

std::span<const TableDef> StoreTables() { return kTables; }

const TableDef* FindStoreTable(std::string_view name) {
  for (const TableDef& table : kTables) {
    if (table.name == name) return &table;
  }
  return nullptr;
}

std::string ColumnList(const TableDef& table) {
  std::string list;
  for (const TableColumn& column : table.columns) {
    if (!list.empty()) list += ", ";
    list += column.name;
  }
  return list;
}

}  // namespace smithers::store

namespace smithers {

std::vector<std::string> StoreTableNames() {
  std::vector<std::string> names;
  for (const store::TableDef& table : store::StoreTables()) names.emplace_back(table.name);
  return names;
}

}  // namespace smithers
