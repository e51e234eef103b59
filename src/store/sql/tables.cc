#include "store/sql/tables.h"

#include <iterator>
#include <string>
#include <vector>

#include "smithers/store.h"

namespace smithers::store {
namespace {

constexpr ColumnKind kInt = ColumnKind::kInteger;
constexpr ColumnKind kText = ColumnKind::kText;
constexpr ColumnKind kBlob = ColumnKind::kBytes;

const TableDef kTables[] = {
    {"_smithers_runs",
     {{"run_id", kText},
      {"parent_run_id", kText},
      {"workflow_name", kText},
      {"workflow_path", kText},
      {"workflow_hash", kText},
      {"status", kText},
      {"created_at_ms", kInt},
      {"started_at_ms", kInt},
      {"finished_at_ms", kInt},
      {"heartbeat_at_ms", kInt},
      {"runtime_owner_id", kText},
      {"cancel_requested_at_ms", kInt},
      {"input_json", kText},
      {"error_json", kText},
      {"config_json", kText}},
     1},
    {"_smithers_nodes",
     {{"run_id", kText},
      {"node_id", kText},
      {"iteration", kInt},
      {"state", kText},
      {"last_attempt", kInt},
      {"updated_at_ms", kInt},
      {"output_table", kText},
      {"label", kText},
      {"mounted", kInt}},
     3},
    {"_smithers_attempts",
     {{"run_id", kText},
      {"node_id", kText},
      {"iteration", kInt},
      {"attempt", kInt},
      {"state", kText},
      {"started_at_ms", kInt},
      {"finished_at_ms", kInt},
      {"error_json", kText},
      {"cached", kInt},
      {"meta_json", kText}},
     4},
    {"_smithers_outputs",
     {{"run_id", kText},
      {"node_id", kText},
      {"iteration", kInt},
      {"output_table", kText},
      {"payload_json", kText},
      {"created_at_ms", kInt}},
     3},
    {"_smithers_frames",
     {{"run_id", kText},
      {"frame_no", kInt},
      {"created_at_ms", kInt},
      {"encoding", kText},
      {"data", kText},
      {"xml_hash", kText},
      {"note", kText}},
     2},
    {"_smithers_events",
     {{"run_id", kText},
      {"seq", kInt},
      {"timestamp_ms", kInt},
      {"type", kText},
      {"payload_json", kText}},
     2},
    {"_smithers_ralph",
     {{"run_id", kText},
      {"ralph_id", kText},
      {"iteration", kInt},
      {"done", kInt},
      {"updated_at_ms", kInt}},
     2},
    {"_smithers_cache",
     {{"cache_key", kText},
      {"created_at_ms", kInt},
      {"workflow_name", kText},
      {"node_id", kText},
      {"output_table", kText},
      {"schema_sig", kText},
      {"payload_json", kText}},
     1},
    {"_smithers_approvals",
     {{"run_id", kText},
      {"node_id", kText},
      {"iteration", kInt},
      {"status", kText},
      {"requested_at_ms", kInt},
      {"owner", kText},
      {"original_owner", kText},
      {"fallback_owner", kText},
      {"escalate_after_ms", kInt},
      {"escalated_at_ms", kInt},
      {"request_json", kText},
      {"on_deny", kText},
      {"decided_at_ms", kInt},
      {"decided_by", kText},
      {"note", kText},
      {"allowed_users_json", kText},
      {"allowed_scopes_json", kText},
      {"decided_via", kText},
      {"decided_os_user", kText},
      {"decided_override", kInt}},
     3},
    {"_smithers_signals",
     {{"run_id", kText},
      {"seq", kInt},
      {"name", kText},
      {"correlation_id", kText},
      {"payload_json", kText},
      {"received_at_ms", kInt},
      {"received_by", kText},
      {"status", kText},
      {"consumed_by_node", kText},
      {"consumed_iteration", kInt},
      {"consumed_at_ms", kInt},
      {"rejection_json", kText}},
     2},
    {"_smithers_tokens",
     {{"token_id", kText},
      {"token_hash", kText},
      {"scopes_json", kText},
      {"role", kText},
      {"user_id", kText},
      {"label", kText},
      {"issued_at_ms", kInt},
      {"expires_at_ms", kInt},
      {"revoked_at_ms", kInt},
      {"replaced_by", kText}},
     1},
    {"_smithers_cron",
     {{"cron_id", kText},
      {"workflow", kText},
      {"pattern", kText},
      {"time_zone", kText},
      {"input_json", kText},
      {"enabled", kInt},
      {"created_at_ms", kInt},
      {"last_run_at_ms", kInt},
      {"next_run_at_ms", kInt},
      {"last_run_id", kText},
      {"last_error", kText}},
     1},
    {"_smithers_modules",
     {{"revision", kText}, {"path", kText}, {"source", kBlob}, {"created_at_ms", kInt}},
     1},
    {"_smithers_module_requires", {{"revision", kText}, {"name", kText}, {"source", kBlob}}, 2},
    {"_smithers_launch_keys",
     {{"scope", kText},
      {"key", kText},
      {"run_id", kText},
      {"workflow", kText},
      {"created_at_ms", kInt}},
     2},
    {"_smithers_maintenance",
     {{"id", kInt},
      {"kind", kText},
      {"started_at_ms", kInt},
      {"finished_at_ms", kInt},
      {"ok", kInt},
      {"path", kText},
      {"actor", kText},
      {"detail_json", kText}},
     1},
    {"_smithers_audit",
     {{"seq", kInt},
      {"chain", kText},
      {"chain_seq", kInt},
      {"at_ms", kInt},
      {"actor", kText},
      {"actor_via", kText},
      {"action", kText},
      {"target", kText},
      {"run_id", kText},
      {"details_json", kText},
      {"version", kText},
      {"build", kText},
      {"module_revision", kText},
      {"key_id", kText},
      {"prev_hmac", kText},
      {"hmac", kText}},
     1},
    {"_smithers_sandboxes",
     {{"run_id", kText},         {"sandbox_id", kText},    {"iteration", kInt},
      {"attempt", kInt},         {"kind", kText},          {"runtime", kText},
      {"status", kText},         {"config_json", kText},   {"remote_run_id", kText},
      {"workspace_id", kText},   {"container_id", kText},  {"bundle_path", kText},
      {"request_bytes", kInt},   {"bundle_bytes", kInt},   {"patch_count", kInt},
      {"review", kText},         {"reviewed_by", kText},   {"reviewed_at_ms", kInt},
      {"error_code", kText},     {"created_at_ms", kInt},  {"shipped_at_ms", kInt},
      {"heartbeat_at_ms", kInt}, {"completed_at_ms", kInt}},
     3},
};

}  // namespace

std::span<const TableDef> StoreTables() { return kTables; }

const TableDef* FindStoreTable(std::string_view name) {
  for (const TableDef& table : kTables) {
    if (table.name == name) return &table;
  }
  return nullptr;
}

std::string ColumnList(const TableDef& table, size_t count) {
  std::string list;
  for (const TableColumn& column : table.columns) {
    if (count-- == 0) break;
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
