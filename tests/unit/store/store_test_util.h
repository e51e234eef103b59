// Helpers shared by the store tests: status assertions, a scratch directory,
// and records rendered as JSON so a failed comparison shows every field.
#ifndef SMITHERS_TESTS_UNIT_STORE_STORE_TEST_UTIL_H_
#define SMITHERS_TESTS_UNIT_STORE_STORE_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "smithers/status.h"
#include "smithers/store.h"

namespace smithers::store {

inline const Status& StatusOf(const Status& status) { return status; }
template <typename T>
const Status& StatusOf(const Result<T>& result) {
  return result.status();
}

#define STORE_ASSERT_OK(expr)                                        \
  do {                                                               \
    const auto& store_assert_ok_ = (expr);                           \
    ASSERT_TRUE(::smithers::store::StatusOf(store_assert_ok_).ok())  \
        << ::smithers::store::StatusOf(store_assert_ok_).ToString(); \
  } while (0)

#define STORE_EXPECT_OK(expr)                                        \
  do {                                                               \
    const auto& store_expect_ok_ = (expr);                           \
    EXPECT_TRUE(::smithers::store::StatusOf(store_expect_ok_).ok())  \
        << ::smithers::store::StatusOf(store_expect_ok_).ToString(); \
  } while (0)

#define STORE_ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                     \
  ASSERT_TRUE(tmp.ok()) << tmp.status().ToString();      \
  lhs = std::move(tmp).value()

#define STORE_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  STORE_ASSERT_OK_AND_ASSIGN_IMPL_(SMITHERS_CONCAT_(store_result_, __LINE__), lhs, expr)

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                          "/smithers_store_test_XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) != nullptr) path_ = buffer.data();
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }

  // "" if the directory could not be created.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline Json ToJson(const RunRecord& r) {
  return {{"run_id", r.run_id},
          {"workflow_name", r.workflow_name},
          {"workflow_path", r.workflow_path},
          {"workflow_hash", r.workflow_hash},
          {"status", r.status},
          {"created_at_ms", r.created_at_ms},
          {"started_at_ms", r.started_at_ms},
          {"finished_at_ms", r.finished_at_ms},
          {"heartbeat_at_ms", r.heartbeat_at_ms},
          {"runtime_owner_id", r.runtime_owner_id},
          {"cancel_requested_at_ms", r.cancel_requested_at_ms},
          {"input", r.input},
          {"error", r.error},
          {"config", r.config}};
}

inline Json ToJson(const NodeRecord& n) {
  return {{"run_id", n.run_id},
          {"node_id", n.node_id},
          {"iteration", n.iteration},
          {"state", n.state},
          {"last_attempt", n.last_attempt},
          {"updated_at_ms", n.updated_at_ms},
          {"output_table", n.output_table},
          {"label", n.label}};
}

inline Json ToJson(const AttemptRecord& a) {
  return {{"run_id", a.run_id},
          {"node_id", a.node_id},
          {"iteration", a.iteration},
          {"attempt", a.attempt},
          {"state", a.state},
          {"started_at_ms", a.started_at_ms},
          {"finished_at_ms", a.finished_at_ms},
          {"error", a.error},
          {"cached", a.cached},
          {"meta", a.meta}};
}

inline Json ToJson(const OutputRecord& o) {
  return {{"run_id", o.run_id},       {"node_id", o.node_id},
          {"iteration", o.iteration}, {"output_table", o.output_table},
          {"payload", o.payload},     {"created_at_ms", o.created_at_ms}};
}

inline Json ToJson(const FrameRecord& f) {
  return {{"run_id", f.run_id},     {"frame_no", f.frame_no}, {"created_at_ms", f.created_at_ms},
          {"encoding", f.encoding}, {"data", f.data},         {"xml_hash", f.xml_hash},
          {"note", f.note}};
}

inline Json ToJson(const EventRecord& e) {
  return {{"run_id", e.run_id},
          {"seq", e.seq},
          {"timestamp_ms", e.timestamp_ms},
          {"type", e.type},
          {"payload", e.payload}};
}

inline Json ToJson(const LoopRecord& l) {
  return {{"run_id", l.run_id},
          {"loop_id", l.loop_id},
          {"iteration", l.iteration},
          {"done", l.done},
          {"updated_at_ms", l.updated_at_ms}};
}

inline Json ToJson(const ApprovalRecord& a) {
  return {{"run_id", a.run_id},
          {"node_id", a.node_id},
          {"iteration", a.iteration},
          {"status", a.status},
          {"requested_at_ms", a.requested_at_ms},
          {"owner", a.owner},
          {"original_owner", a.original_owner},
          {"fallback_owner", a.fallback_owner},
          {"escalate_after_ms", a.escalate_after_ms},
          {"escalated_at_ms", a.escalated_at_ms},
          {"request", a.request},
          {"on_deny", a.on_deny},
          {"decided_at_ms", a.decided_at_ms},
          {"decided_by", a.decided_by},
          {"note", a.note},
          {"allowed_users", a.allowed_users},
          {"allowed_scopes", a.allowed_scopes},
          {"decided_via", a.decided_via},
          {"decided_os_user", a.decided_os_user},
          {"decided_override", a.decided_override}};
}

inline Json ToJson(const SignalRecord& s) {
  return {{"run_id", s.run_id},
          {"seq", s.seq},
          {"name", s.name},
          {"correlation_id", s.correlation_id},
          {"payload", s.payload},
          {"received_at_ms", s.received_at_ms},
          {"received_by", s.received_by},
          {"status", s.status},
          {"consumed_by_node", s.consumed_by_node},
          {"consumed_iteration", s.consumed_iteration},
          {"consumed_at_ms", s.consumed_at_ms},
          {"rejection", s.rejection}};
}

template <typename Record>
Json ToJson(const std::vector<Record>& records) {
  Json out = Json::array();
  for (const Record& r : records) out.push_back(ToJson(r));
  return out;
}

// A run with every column set, distinct per `run_id`.
inline RunRecord MakeRun(const std::string& run_id, int64_t created_at_ms = 1000) {
  return RunRecord{.run_id = run_id,
                   .workflow_name = "wf",
                   .workflow_path = "/w/wf.lua",
                   .workflow_hash = "abc123",
                   .status = RunStatus::kRunning,
                   .created_at_ms = created_at_ms,
                   .started_at_ms = created_at_ms + 1,
                   .heartbeat_at_ms = created_at_ms + 2,
                   .input = {{"name", run_id}},
                   .config = {{"force", false}}};
}

// A SQLite store at `dir`/runs.db, or nullptr after adding a test failure
// that says why.
inline std::unique_ptr<Store> OpenTestStore(const std::string& dir) {
  Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = dir + "/runs.db"});
  if (!s.ok()) {
    ADD_FAILURE() << s.status().ToString();
    return nullptr;
  }
  return std::move(s).value();
}

}  // namespace smithers::store

#endif  // SMITHERS_TESTS_UNIT_STORE_STORE_TEST_UTIL_H_
