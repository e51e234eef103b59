// Records <-> rows of the SQL stores: binding values to statement parameters
// (times, JSON, owners) and decoding rows into records. Written once for every
// backend: a Stmt binds (BindText, BindInt64, BindNull) and a Row reads
// (IsNull, Int64, Text, TextView), as store/sqlite/sqlite_db.h's Statement does.
#ifndef SMITHERS_STORE_SQL_ROW_CODEC_H_
#define SMITHERS_STORE_SQL_ROW_CODEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"
#include "smithers/store.h"

namespace smithers::store {

// --- Encoding -----------------------------------------------------------------

// Replaces invalid UTF-8 instead of throwing: a payload must never make a
// commit fail half-way through with an exception.
inline std::string DumpJson(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

template <typename Stmt>
void BindTime(Stmt& stmt, int index, int64_t ms) {
  if (ms == 0) {
    stmt.BindNull(index);
  } else {
    stmt.BindInt64(index, ms);
  }
}

template <typename Stmt>
void BindJson(Stmt& stmt, int index, const Json& json) {
  if (json.is_null()) {
    stmt.BindNull(index);
  } else {
    stmt.BindText(index, DumpJson(json));
  }
}

template <typename Stmt>
void BindOwner(Stmt& stmt, int index, const std::string& owner) {
  if (owner.empty()) {
    stmt.BindNull(index);
  } else {
    stmt.BindText(index, owner);
  }
}

// --- Decoding -----------------------------------------------------------------

// NULL reads as a null Json. False when the column holds text that is not JSON.
template <typename Row>
bool ReadJson(const Row& row, int column, Json* out) {
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

inline Status CorruptJson(std::string_view table, const std::string& key, std::string_view column) {
  return DataLossError(std::string(table) + " row (" + key + "): column " + std::string(column) +
                       " does not hold valid JSON");
}

// Parses the state in `column` into *out; DataLoss naming the row, the column
// and the text when the text names no state (a row written by a newer version
// or by hand is refused, never read as some default state).
template <typename Row, typename E>
Status ReadState(const Row& row, int column, std::optional<E> (*parse)(std::string_view), E* out,
                 std::string_view table, const std::string& key) {
  std::string_view text = row.TextView(column);
  std::optional<E> state = parse(text);
  if (!state) {
    return DataLossError(std::string(table) + " row (" + key + "): \"" + std::string(text) +
                         "\" names no state");
  }
  *out = *state;
  return Status::Ok();
}

inline std::string RowKey(const std::string& run_id, const std::string& node_id, int iteration) {
  return "run_id=" + run_id + ", node_id=" + node_id + ", iteration=" + std::to_string(iteration);
}

template <typename Row>
Result<RunRecord> ReadRun(const Row& row) {
  RunRecord run;
  run.run_id = row.Text(0);
  run.workflow_name = row.Text(1);
  run.workflow_path = row.Text(2);
  run.workflow_hash = row.Text(3);
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
  SMITHERS_RETURN_IF_ERROR(
      ReadState(row, 4, ParseRunStatus, &run.status, "_smithers_runs", "run_id=" + run.run_id));
  return run;
}

template <typename Row>
Result<NodeRecord> ReadNode(const Row& row) {
  NodeRecord node{.run_id = row.Text(0),
                  .node_id = row.Text(1),
                  .iteration = static_cast<int>(row.Int64(2)),
                  .last_attempt = static_cast<int>(row.Int64(4)),
                  .updated_at_ms = row.Int64(5),
                  .output_table = row.Text(6),
                  .label = row.Text(7),
                  .mounted = row.Int64(8) != 0};
  SMITHERS_RETURN_IF_ERROR(ReadState(row, 3, ParseNodeState, &node.state, "_smithers_nodes",
                                     RowKey(node.run_id, node.node_id, node.iteration)));
  return node;
}

template <typename Row>
Result<AttemptRecord> ReadAttempt(const Row& row) {
  AttemptRecord attempt{.run_id = row.Text(0),
                        .node_id = row.Text(1),
                        .iteration = static_cast<int>(row.Int64(2)),
                        .attempt = static_cast<int>(row.Int64(3)),
                        .started_at_ms = row.Int64(5),
                        .finished_at_ms = row.Int64(6),
                        .cached = row.Int64(8) != 0};
  if (!ReadJson(row, 7, &attempt.error) || !ReadJson(row, 9, &attempt.meta)) {
    return CorruptJson("_smithers_attempts",
                       RowKey(attempt.run_id, attempt.node_id, attempt.iteration) +
                           ", attempt=" + std::to_string(attempt.attempt),
                       "error_json or meta_json");
  }
  SMITHERS_RETURN_IF_ERROR(ReadState(row, 4, ParseAttemptState, &attempt.state,
                                     "_smithers_attempts",
                                     RowKey(attempt.run_id, attempt.node_id, attempt.iteration) +
                                         ", attempt=" + std::to_string(attempt.attempt)));
  return attempt;
}

template <typename Row>
Result<OutputRecord> ReadOutput(const Row& row) {
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

template <typename Row>
Result<LoopRecord> ReadLoop(const Row& row) {
  return LoopRecord{.run_id = row.Text(0),
                    .loop_id = row.Text(1),
                    .iteration = static_cast<int>(row.Int64(2)),
                    .done = row.Int64(3) != 0,
                    .updated_at_ms = row.Int64(4)};
}

template <typename Row>
Result<CacheEntry> ReadCache(const Row& row) {
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

template <typename Row>
Result<ApprovalRecord> ReadApproval(const Row& row) {
  ApprovalRecord a{.run_id = row.Text(0),
                   .node_id = row.Text(1),
                   .iteration = static_cast<int>(row.Int64(2)),
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
  SMITHERS_RETURN_IF_ERROR(ReadState(row, 3, ParseApprovalStatus, &a.status, "_smithers_approvals",
                                     RowKey(a.run_id, a.node_id, a.iteration)));
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

template <typename Row>
Result<TokenGrant> ReadToken(const Row& row) {
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

template <typename Row>
Result<CronRecord> ReadCron(const Row& row) {
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

template <typename Row>
Result<SignalRecord> ReadSignal(const Row& row) {
  SignalRecord sig{.run_id = row.Text(0),
                   .seq = row.Int64(1),
                   .name = row.Text(2),
                   .correlation_id = row.Text(3),
                   .received_at_ms = row.Int64(5),
                   .received_by = row.Text(6),
                   .consumed_by_node = row.Text(8),
                   .consumed_iteration = static_cast<int>(row.Int64(9)),
                   .consumed_at_ms = row.Int64(10)};
  if (!ReadJson(row, 4, &sig.payload) || !ReadJson(row, 11, &sig.rejection)) {
    return CorruptJson("_smithers_signals",
                       "run_id=" + sig.run_id + ", seq=" + std::to_string(sig.seq),
                       "payload_json or rejection_json");
  }
  SMITHERS_RETURN_IF_ERROR(ReadState(row, 7, ParseSignalStatus, &sig.status, "_smithers_signals",
                                     "run_id=" + sig.run_id + ", seq=" + std::to_string(sig.seq)));
  return sig;
}

template <typename Row>
Result<SandboxRecord> ReadSandbox(const Row& row) {
  auto count = [&row](int column) { return row.IsNull(column) ? -1 : row.Int64(column); };
  SandboxRecord r{.run_id = row.Text(0),
                  .sandbox_id = row.Text(1),
                  .iteration = static_cast<int>(row.Int64(2)),
                  .attempt = static_cast<int>(row.Int64(3)),
                  .kind = row.Text(4),
                  .runtime = row.Text(5),
                  .status = row.Text(6),
                  .remote_run_id = row.Text(8),
                  .container_id = row.Text(9),
                  .bundle_path = row.Text(10),
                  .request_bytes = count(11),
                  .bundle_bytes = count(12),
                  .patch_count = count(13),
                  .review = row.Text(14),
                  .reviewed_by = row.Text(15),
                  .error_code = row.Text(17),
                  .created_at_ms = row.Int64(18),
                  .shipped_at_ms = row.Int64(19),
                  .heartbeat_at_ms = row.Int64(20),
                  .completed_at_ms = row.Int64(21),
                  .reviewed_at_ms = row.Int64(16)};
  if (!ReadJson(row, 7, &r.config)) {
    return CorruptJson("_smithers_sandboxes", RowKey(r.run_id, r.sandbox_id, r.iteration),
                       "config_json");
  }
  return r;
}

template <typename Row>
Result<FrameRecord> ReadFrame(const Row& row) {
  return FrameRecord{.run_id = row.Text(0),
                     .frame_no = row.Int64(1),
                     .created_at_ms = row.Int64(2),
                     .encoding = row.Text(3),
                     .data = row.Text(4),
                     .xml_hash = row.Text(5),
                     .note = row.Text(6)};
}

template <typename Row>
Result<EventRecord> ReadEvent(const Row& row) {
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

// A negative limit means "no limit", as SQLite's LIMIT -1 does.
inline int64_t SqlLimit(int limit) { return limit < 0 ? -1 : limit; }

template <typename T>
struct ResultValue;
template <typename T>
struct ResultValue<Result<T>> {
  using Type = T;
};
template <typename Read, typename Stmt>
using RecordOf = typename ResultValue<std::invoke_result_t<Read, const Stmt&>>::Type;

// Runs a bound query and decodes every row with `read` (Result<T>(const Statement&)).
template <typename Stmt, typename Read>
Result<std::vector<RecordOf<Read, Stmt>>> Collect(Stmt& stmt, Read read) {
  using Record = RecordOf<Read, Stmt>;
  std::vector<Record> records;
  SMITHERS_RETURN_IF_ERROR(stmt.ForEachRow([&](const Stmt& row) -> Status {
    Result<Record> record = read(row);
    if (!record.ok()) return record.status();
    records.push_back(std::move(record).value());
    return Status::Ok();
  }));
  return records;
}

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQL_ROW_CODEC_H_
