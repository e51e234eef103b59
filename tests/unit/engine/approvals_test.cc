// Who may decide an approval (CheckDecider) and the one decide path the CLI
// and the Gateway share (DecideApproval): owner before escalation, fallback
// owner after it, allowedUsers and allowedScopes at any time, the override,
// and a refusal that says who may decide.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "smithers/engine.h"
#include "smithers/store.h"
#include "store/store_test_util.h"

namespace smithers {
namespace {

using store::TempDir;

ApprovalRecord Pending() {
  return {.run_id = "r1",
          .node_id = "gate",
          .status = ApprovalStatus::kRequested,
          .requested_at_ms = 1000,
          .owner = "alice",
          .original_owner = "alice",
          .fallback_owner = "bob",
          .escalate_after_ms = 500};
}

Decider As(std::string actor) { return {.actor = std::move(actor), .via = "token"}; }

TEST(CheckDeciderTest, OwnerBeforeEscalationFallbackAfter) {
  ApprovalRecord a = Pending();
  EXPECT_TRUE(CheckDecider(a, As("alice"), 1100).ok());
  Status bob_early = CheckDecider(a, As("bob"), 1100);
  EXPECT_EQ(bob_early.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(bob_early.message().find("once it escalates"), std::string::npos)
      << bob_early.message();
  // Due by time (not yet recorded) or recorded: the fallback owner may decide,
  // and so may the owner still.
  EXPECT_TRUE(CheckDecider(a, As("bob"), 1500).ok());
  a.owner = "bob";
  a.escalated_at_ms = 1600;
  EXPECT_TRUE(CheckDecider(a, As("bob"), 1600).ok());
  EXPECT_TRUE(CheckDecider(a, As("alice"), 1600).ok());
  EXPECT_EQ(CheckDecider(a, As("mallory"), 1600).code(), StatusCode::kPermissionDenied);
}

TEST(CheckDeciderTest, RefusalNamesEveryoneWhoMayDecide) {
  ApprovalRecord a = Pending();
  a.allowed_users = {"carol", "dave"};
  a.allowed_scopes = {"run:admin"};
  Status s = CheckDecider(a, As("mallory"), 1100);
  ASSERT_EQ(s.code(), StatusCode::kPermissionDenied);
  for (const char* part :
       {"mallory may not decide node \"gate\"", "owner alice", "fallback owner bob",
        "allowedUsers carol, dave", "allowedScopes run:admin", "override"}) {
    EXPECT_NE(s.message().find(part), std::string::npos) << part << " in " << s.message();
  }
}

TEST(CheckDeciderTest, AllowedUsersScopesAndOverride) {
  ApprovalRecord a = Pending();
  a.allowed_users = {"carol"};
  a.allowed_scopes = {"approval:ops"};
  EXPECT_TRUE(CheckDecider(a, As("carol"), 1100).ok());
  Decider scoped = As("erin");
  EXPECT_EQ(CheckDecider(a, scoped, 1100).code(), StatusCode::kPermissionDenied);
  scoped.holds_scope = [](const std::string& s) { return s == "approval:ops"; };
  EXPECT_TRUE(CheckDecider(a, scoped, 1100).ok());
  scoped.holds_scope = [](const std::string& s) { return s == "approval:other"; };
  EXPECT_FALSE(CheckDecider(a, scoped, 1100).ok());
  Decider admin = As("root");
  admin.override = true;
  EXPECT_TRUE(CheckDecider(a, admin, 1100).ok());
  // An empty actor is never the owner of an approval that names none.
  ApprovalRecord unowned = Pending();
  unowned.owner = unowned.original_owner = "";
  EXPECT_FALSE(CheckDecider(unowned, As(""), 1100).ok());
}

TEST(DecideApprovalTest, EscalatesWhatIsDueThenRecordsTheDecider) {
  TempDir dir;
  auto opened = OpenSqliteStore({.path = dir.path() + "/s.db"});
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Store& s = **opened;
  WriteBatch batch;
  batch.UpsertRun(store::MakeRun("r1"));
  batch.RequestApproval(Pending());
  ASSERT_TRUE(s.Commit(batch).ok());

  Result<ApprovalRecord> early =
      DecideApproval(s, {.run_id = "r1", .node_id = "gate", .approved = true}, As("bob"), 1100);
  EXPECT_EQ(early.status().code(), StatusCode::kPermissionDenied);

  Decider bob{.actor = "bob", .via = "cli", .os_user = "ops"};
  Result<ApprovalRecord> d =
      DecideApproval(s, {.run_id = "r1", .node_id = "gate", .approved = true}, bob, 2000);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((std::vector<std::string>{d->decided_by, d->decided_via, d->decided_os_user}),
            (std::vector<std::string>{"bob", "cli", "ops"}));
  EXPECT_FALSE(d->decided_override);
  auto events = s.ListEvents("r1", -1, 10);
  ASSERT_TRUE(events.ok());
  std::vector<std::string> types;
  for (const auto& e : *events) types.push_back(e.type);
  EXPECT_EQ(types, (std::vector<std::string>{"ApprovalEscalated", "ApprovalGranted"}));
}

}  // namespace
}  // namespace smithers
