// The table of wait kinds (engine/waits.h): one kind per waiting node state,
// in the order that decides a parked run's status, each parking the run in
// the run status of the same name.
#include "engine/waits.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace smithers::engine {
namespace {

TEST(WaitKinds, OneKindPerWaitingStateInTheOrderThatRanksThem) {
  std::vector<std::unique_ptr<WaitKind>> kinds = MakeWaitKinds();
  std::vector<std::string> names;
  for (const auto& k : kinds) names.push_back(k->name());
  EXPECT_EQ(names, (std::vector<std::string>{"approval", "event", "timer"}));
  int waiting_states = 0;
  for (std::string_view name :
       {"pending", "in-progress", "finished", "failed", "skipped", "cancelled", "waiting-approval",
        "waiting-event", "waiting-timer"}) {
    std::optional<NodeState> state = ParseNodeState(name);
    ASSERT_TRUE(state.has_value()) << name;
    WaitKind* kind = WaitKindOf(kinds, *state);
    EXPECT_EQ(kind != nullptr, IsWaiting(*state)) << name;
    if (kind == nullptr) continue;
    ++waiting_states;
    EXPECT_EQ(kind->state(), *state);
    EXPECT_EQ(Name(kind->parked_status()), name) << "the run parks in the state's name";
  }
  EXPECT_EQ(waiting_states, 3);
  // An approval is its request row; the others are waiting attempts.
  EXPECT_FALSE(WaitKindOf(kinds, NodeState::kWaitingApproval)->has_attempt());
  EXPECT_TRUE(WaitKindOf(kinds, NodeState::kWaitingEvent)->has_attempt());
  EXPECT_TRUE(WaitKindOf(kinds, NodeState::kWaitingTimer)->has_attempt());
}

TEST(WaitKinds, NodeKeyIsIdHashIteration) {
  EXPECT_EQ(NodeKey("gate", 0), "gate#0");
  EXPECT_EQ(NodeKey("loop/a", 12), "loop/a#12");
}

}  // namespace
}  // namespace smithers::engine
