// The states' stored and sent names (golden: the database and the wire hold
// these exact strings), parsing, and the predicates built on them.
#include "smithers/states.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace smithers {
namespace {

template <typename E>
std::vector<std::string> Names(std::initializer_list<E> values) {
  std::vector<std::string> out;
  for (E v : values) out.emplace_back(Name(v));
  return out;
}

TEST(States, StoredNamesAreGolden) {
  using R = RunStatus;
  EXPECT_EQ(Names({R::kRunning, R::kWaitingApproval, R::kWaitingEvent, R::kWaitingTimer,
                   R::kFinished, R::kFailed, R::kCancelled}),
            (std::vector<std::string>{"running", "waiting-approval", "waiting-event",
                                      "waiting-timer", "finished", "failed", "cancelled"}));
  using N = NodeState;
  EXPECT_EQ(
      Names({N::kPending, N::kInProgress, N::kWaitingApproval, N::kWaitingEvent, N::kWaitingTimer,
             N::kFinished, N::kFailed, N::kSkipped, N::kCancelled}),
      (std::vector<std::string>{"pending", "in-progress", "waiting-approval", "waiting-event",
                                "waiting-timer", "finished", "failed", "skipped", "cancelled"}));
  using A = AttemptState;
  EXPECT_EQ(
      Names({A::kInProgress, A::kWaiting, A::kFinished, A::kFailed, A::kCancelled}),
      (std::vector<std::string>{"in-progress", "waiting", "finished", "failed", "cancelled"}));
  EXPECT_EQ(Names({ApprovalStatus::kRequested, ApprovalStatus::kApproved, ApprovalStatus::kDenied}),
            (std::vector<std::string>{"requested", "approved", "denied"}));
  EXPECT_EQ(Names({SignalStatus::kPending, SignalStatus::kConsumed, SignalStatus::kRejected}),
            (std::vector<std::string>{"pending", "consumed", "rejected"}));
}

TEST(States, ParseIsTheInverseOfNameAndExact) {
  for (RunStatus s : kAllRunStatuses) EXPECT_EQ(ParseRunStatus(Name(s)), s);
  EXPECT_EQ(ParseNodeState("in-progress"), NodeState::kInProgress);
  EXPECT_EQ(ParseAttemptState("waiting"), AttemptState::kWaiting);
  EXPECT_EQ(ParseApprovalStatus("denied"), ApprovalStatus::kDenied);
  EXPECT_EQ(ParseSignalStatus("rejected"), SignalStatus::kRejected);
  // No prefixes, no case folding, no node-only names for a run.
  for (const char* bad : {"", "waiting", "Finished", "finished ", "skipped", "pending"}) {
    EXPECT_EQ(ParseRunStatus(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(ParseNodeState("waiting"), std::nullopt);
  EXPECT_EQ(ParseAttemptState("waiting-event"), std::nullopt);
}

TEST(States, TerminalAndWaiting) {
  std::vector<std::string> terminal;
  std::vector<std::string> waiting;
  for (RunStatus s : kAllRunStatuses) {
    if (IsTerminal(s)) terminal.emplace_back(Name(s));
    if (IsWaiting(s)) waiting.emplace_back(Name(s));
  }
  EXPECT_EQ(terminal, (std::vector<std::string>{"finished", "failed", "cancelled"}));
  EXPECT_EQ(waiting,
            (std::vector<std::string>{"waiting-approval", "waiting-event", "waiting-timer"}));
  EXPECT_TRUE(IsTerminal(NodeState::kSkipped));
  EXPECT_FALSE(IsTerminal(NodeState::kWaitingTimer));
  EXPECT_FALSE(IsTerminal(AttemptState::kWaiting));
  EXPECT_TRUE(IsTerminal(AttemptState::kCancelled));
}

TEST(States, JsonAndStreamsCarryTheName) {
  Json j = {{"status", RunStatus::kWaitingTimer}, {"state", NodeState::kInProgress}};
  EXPECT_EQ(j.dump(), R"({"state":"in-progress","status":"waiting-timer"})");
  std::ostringstream os;
  os << ApprovalStatus::kApproved << " " << SignalStatus::kConsumed;
  EXPECT_EQ(os.str(), "approved consumed");
}

}  // namespace
}  // namespace smithers
