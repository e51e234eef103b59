// The audit log on SQLite: the persisted row HMAC (golden), its key file,
// the triggers that keep it append-only, and verification catching each
// kind of tampering done with the sqlite3 shell.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "smithers/store.h"
#include "store/sqlite/sqlite_store.h"
#include "store_test_util.h"

namespace smithers::store {
namespace {

AuditRecord GoldenRow() {
  return {.seq = 7,
          .chain = "run:r1",
          .chain_seq = 2,
          .entry = {.actor = "alice",
                    .actor_via = "token",
                    .action = "approval.decide",
                    .target = "r1",
                    .run_id = "r1",
                    .details = {{"nodeId", "gate"}, {"approved", true}},
                    .at_ms = 1796505811565},
          .version = "0.1.0",
          .build = "6e8fd4b66920",
          .module_revision = "745bcf1a",
          .key_id = "82179e3ee502bb56",
          .prev_hmac = "31870c32b113da6f962a7e72e0689a5a12efb30afd5b3905c8f65c78c84b41f4"};
}

// The row format is persisted: a change here breaks every existing log. The
// values were computed independently (Python: hmac over json.dumps of the
// array with sort_keys and compact separators; docs/store_format.md).
TEST(AuditFormat, GoldenHmacAndKeyId) {
  const std::string key = "0123456789abcdef0123456789abcdef";
  EXPECT_EQ(AuditKeyId(key), "7a69e6f2a795f5e3");
  EXPECT_EQ(AuditHmac(GoldenRow(), key),
            "8e2b6a2d6964d898778b6ecb6dd7de55f60d16d6515bd43e8fa15ec8f7552501");
  AuditRecord other = GoldenRow();
  other.entry.details["approved"] = false;
  EXPECT_NE(AuditHmac(other, key), AuditHmac(GoldenRow(), key));
}

class SqliteAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    Reopen();
  }
  void Reopen(const std::string& key_ref = "") {
    store_.reset();
    Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = path_, .audit_key = key_ref});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  void Append(const std::string& action, const std::string& run_id = "") {
    STORE_ASSERT_OK(store_->AppendAudit(
        {.actor = "alice", .actor_via = "os", .action = action, .target = "t", .run_id = run_id}));
  }
  Result<std::vector<SqlRowForTesting>> Sql(const std::string& sql) {
    return ExecSqlForTesting(path_, sql);
  }
  std::vector<std::string> Problems(const std::string& anchor = "") {
    Result<std::string> key = LoadAuditKey("", path_);
    EXPECT_TRUE(key.ok()) << key.status().ToString();
    Result<std::vector<AuditRecord>> rows = store_->ListAudit({});
    EXPECT_TRUE(rows.ok());
    Result<AuditVerification> v = VerifyAuditLog(*rows, key.ok() ? *key : "", anchor);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? v->problems : std::vector<std::string>{"unverifiable"};
  }
  std::string Anchor() {
    Result<std::vector<AuditRecord>> rows = store_->ListAudit({});
    return rows.ok() ? AuditAnchor(*rows) : "";
  }

  TempDir dir_;
  std::string path_ = dir_.path() + "/smithers.db";
  std::unique_ptr<Store> store_;
};

TEST_F(SqliteAuditTest, TheKeyFileIsMadeOnFirstUse0600AndNeverMadeUpForALogWithRows) {
  struct stat st {};
  ASSERT_NE(stat((path_ + ".audit-key").c_str(), &st), 0) << "no key before the first row";
  Append("db.backup");
  ASSERT_EQ(stat((path_ + ".audit-key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_TRUE(Problems().empty());
  // The key went missing (a copy restored elsewhere): refused, not replaced.
  ASSERT_EQ(std::rename((path_ + ".audit-key").c_str(), (path_ + ".moved").c_str()), 0);
  Reopen();
  Status s = store_->AppendAudit({.actor = "a", .action = "x"});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("key file"), std::string::npos) << s.message();
  ASSERT_NE(stat((path_ + ".audit-key").c_str(), &st), 0) << "no new key was made up";
  // Given by reference, it works again.
  Reopen("file:" + path_ + ".moved");
  Append("db.restore");
  // Another key: every audited action is refused, and nothing is written.
  const std::string other = dir_.path() + "/other.key";
  std::ofstream(other) << "another-key-of-enough-bytes\n";
  Reopen("file:" + other);
  CronRecord cron{.cron_id = "c", .workflow = "w", .pattern = "* * * * *"};
  s = store_->Audited({.actor = "a", .action = "cron.create"},
                      [&] { return store_->PutCron(cron); });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  STORE_ASSERT_OK_AND_ASSIGN(auto crons, store_->ListCron());
  EXPECT_TRUE(crons.empty());
  // Bad references.
  Reopen("file:relative/key");
  EXPECT_EQ(store_->AppendAudit({.actor = "a", .action = "x"}).code(),
            StatusCode::kInvalidArgument);
  Reopen("vault:x");
  EXPECT_EQ(store_->AppendAudit({.actor = "a", .action = "x"}).code(),
            StatusCode::kInvalidArgument);
  std::ofstream(other, std::ios::trunc) << "short\n";
  Reopen("file:" + other);
  EXPECT_EQ(store_->AppendAudit({.actor = "a", .action = "x"}).code(),
            StatusCode::kFailedPrecondition);
}

// Several processes' first audited writes at once (a Gateway's run threads on
// a new database): one key file, made whole, and every row signed with it.
TEST_F(SqliteAuditTest, ConcurrentFirstWritesShareOneKey) {
  constexpr int kWriters = 8;
  std::vector<std::thread> threads;
  std::vector<Status> results(kWriters);
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      Result<std::unique_ptr<Store>> s = OpenSqliteStore({.path = path_});
      results[i] =
          s.ok() ? (*s)->AppendAudit({.actor = "w" + std::to_string(i), .action = "db.backup"})
                 : s.status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const Status& r : results) EXPECT_TRUE(r.ok()) << r.ToString();
  Result<std::vector<AuditRecord>> rows = store_->ListAudit({});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), static_cast<size_t>(kWriters));
  EXPECT_TRUE(Problems().empty());
}

TEST_F(SqliteAuditTest, TriggersRefuseUpdatesAndDeletes) {
  Append("run.launch", "r1");
  for (const char* sql : {"UPDATE _smithers_audit SET actor = 'eve'", "DELETE FROM _smithers_audit",
                          "INSERT OR REPLACE INTO _smithers_audit SELECT * FROM _smithers_audit"}) {
    Result<std::vector<SqlRowForTesting>> r = Sql(sql);
    EXPECT_FALSE(r.ok()) << sql;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("append-only"), std::string::npos);
    }
  }
  EXPECT_TRUE(Problems().empty());
}

TEST_F(SqliteAuditTest, VerifyFindsEditsRemovalsRechainsAndACutTail) {
  Append("run.launch", "r1");
  Append("token.issue");
  Append("run.cancel", "r1");
  Append("cron.create");
  const std::string anchor = Anchor();
  EXPECT_EQ(anchor.substr(0, 2), "4:");
  EXPECT_TRUE(Problems(anchor).empty());
  ASSERT_TRUE(Sql("DROP TRIGGER _smithers_audit_no_update; "
                  "DROP TRIGGER _smithers_audit_no_delete")
                  .ok());
  // An edit.
  ASSERT_TRUE(Sql("UPDATE _smithers_audit SET actor = 'eve' WHERE seq = 2").ok());
  std::vector<std::string> p = Problems();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("row 2"), std::string::npos);
  EXPECT_NE(p[0].find("edited"), std::string::npos);
  ASSERT_TRUE(Sql("UPDATE _smithers_audit SET actor = 'alice' WHERE seq = 2").ok());
  EXPECT_TRUE(Problems().empty());
  // A row removed from the middle.
  ASSERT_TRUE(Sql("CREATE TABLE saved AS SELECT * FROM _smithers_audit").ok());
  ASSERT_TRUE(Sql("DELETE FROM _smithers_audit WHERE seq = 1").ok());
  p = Problems();
  ASSERT_FALSE(p.empty());
  EXPECT_NE(p[0].find("missing"), std::string::npos) << p[0];
  // Re-chained without the key: the run's second row made its first (no
  // chain gap, no dangling link), but its HMAC cannot be recomputed.
  ASSERT_TRUE(Sql("UPDATE _smithers_audit SET chain_seq = 1, prev_hmac = '' WHERE seq = 3").ok());
  p = Problems();
  ASSERT_FALSE(p.empty());
  EXPECT_TRUE(std::any_of(p.begin(), p.end(), [](const std::string& x) {
    return x.find("row 3") != std::string::npos && x.find("edited") != std::string::npos;
  })) << p[0];
  // Back as it was, then the tail cut off: only the anchor tells.
  ASSERT_TRUE(
      Sql("DELETE FROM _smithers_audit; INSERT INTO _smithers_audit SELECT * FROM saved").ok());
  EXPECT_TRUE(Problems(anchor).empty());
  ASSERT_TRUE(Sql("DELETE FROM _smithers_audit WHERE seq = 4").ok());
  EXPECT_TRUE(Problems().empty()) << "without an anchor a cut tail is invisible";
  p = Problems(anchor);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("anchor"), std::string::npos) << p[0];
  // An anchor whose row was replaced.
  ASSERT_TRUE(Sql("INSERT INTO _smithers_audit SELECT * FROM saved WHERE seq = 4").ok());
  ASSERT_TRUE(Sql("UPDATE _smithers_audit SET hmac = 'x' WHERE seq = 4").ok());
  EXPECT_FALSE(Problems(anchor).empty());
  // A malformed anchor is an error, not a verdict.
  Result<std::vector<AuditRecord>> rows = store_->ListAudit({});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(VerifyAuditLog(*rows, "k", "nope").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyAuditLog(*rows, "k", "x:abc").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteAuditTest, AWrongKeyIsNamedByVerify) {
  Append("token.issue");
  Result<std::vector<AuditRecord>> rows = store_->ListAudit({});
  ASSERT_TRUE(rows.ok());
  Result<AuditVerification> v = VerifyAuditLog(*rows, "some-other-key-0123456789", "");
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->problems.size(), 1u);
  EXPECT_NE(v->problems[0].find("not by this key"), std::string::npos) << v->problems[0];
}

}  // namespace
}  // namespace smithers::store
