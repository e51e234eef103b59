// Records <-> rows of the SQLite store: binding values to statement
// parameters (times, JSON, owners) and decoding rows into records.
#ifndef SMITHERS_STORE_SQLITE_ROW_BINDING_H_
#define SMITHERS_STORE_SQLITE_ROW_BINDING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"
#include "smithers/store.h"
#include "store/sqlite/sqlite_db.h"

namespace smithers::store {

// Binding (row_binding.cc says what each encodes and why).
std::string DumpJson(const Json& json);
void BindTime(Statement& stmt, int index, int64_t ms);
void BindJson(Statement& stmt, int index, const Json& json);
void BindOwner(Statement& stmt, int index, const std::string& owner);
bool ReadJson(const Statement& row, int column, Json* out);
Status CorruptJson(std::string_view table, const std::string& key, std::string_view column);
std::string RowKey(const std::string& run_id, const std::string& node_id, int iteration);
// A negative limit means "no limit", as SQLite's LIMIT -1 does.
int64_t SqlLimit(int limit);

// Decoding one row of each table, in the column order of statements.cc's
// SMITHERS_*_COLUMNS_. DataLoss for a JSON column that does not parse.
Result<RunRecord> ReadRun(const Statement& row);
Result<NodeRecord> ReadNode(const Statement& row);
Result<AttemptRecord> ReadAttempt(const Statement& row);
Result<OutputRecord> ReadOutput(const Statement& row);
Result<LoopRecord> ReadLoop(const Statement& row);
Result<CacheEntry> ReadCache(const Statement& row);
Result<ApprovalRecord> ReadApproval(const Statement& row);
Result<TokenGrant> ReadToken(const Statement& row);
Result<CronRecord> ReadCron(const Statement& row);
Result<SignalRecord> ReadSignal(const Statement& row);
Result<SandboxRecord> ReadSandbox(const Statement& row);
Result<FrameRecord> ReadFrame(const Statement& row);
Result<EventRecord> ReadEvent(const Statement& row);

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

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQLITE_ROW_BINDING_H_
