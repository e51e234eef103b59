// The text of each state (include/smithers/states.h): one table per enum,
// indexed by the enum's value, read both ways.
#include "smithers/states.h"

#include <array>
#include <cstddef>

namespace smithers {
namespace {

constexpr std::array<std::string_view, 7> kRunStatus = {
    "running",  "waiting-approval", "waiting-event", "waiting-timer",
    "finished", "failed",           "cancelled"};
constexpr std::array<std::string_view, 9> kNodeState = {
    "pending",  "in-progress", "waiting-approval", "waiting-event", "waiting-timer",
    "finished", "failed",      "skipped",          "cancelled"};
constexpr std::array<std::string_view, 5> kAttemptState = {"in-progress", "waiting", "finished",
                                                           "failed", "cancelled"};
constexpr std::array<std::string_view, 3> kApprovalStatus = {"requested", "approved", "denied"};
constexpr std::array<std::string_view, 3> kSignalStatus = {"pending", "consumed", "rejected"};

static_assert(kRunStatus.size() == static_cast<size_t>(RunStatus::kCancelled) + 1);
static_assert(kNodeState.size() == static_cast<size_t>(NodeState::kCancelled) + 1);
static_assert(kAttemptState.size() == static_cast<size_t>(AttemptState::kCancelled) + 1);
static_assert(kApprovalStatus.size() == static_cast<size_t>(ApprovalStatus::kDenied) + 1);
static_assert(kSignalStatus.size() == static_cast<size_t>(SignalStatus::kRejected) + 1);

template <typename E, size_t N>
std::string_view NameIn(const std::array<std::string_view, N>& names, E value) {
  auto i = static_cast<size_t>(value);
  return i < N ? names[i] : std::string_view("unknown");
}

template <typename E, size_t N>
std::optional<E> ParseIn(const std::array<std::string_view, N>& names, std::string_view text) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == text) return static_cast<E>(i);
  }
  return std::nullopt;
}

}  // namespace

std::string_view Name(RunStatus s) { return NameIn(kRunStatus, s); }
std::string_view Name(NodeState s) { return NameIn(kNodeState, s); }
std::string_view Name(AttemptState s) { return NameIn(kAttemptState, s); }
std::string_view Name(ApprovalStatus s) { return NameIn(kApprovalStatus, s); }
std::string_view Name(SignalStatus s) { return NameIn(kSignalStatus, s); }

std::optional<RunStatus> ParseRunStatus(std::string_view text) {
  return ParseIn<RunStatus>(kRunStatus, text);
}
std::optional<NodeState> ParseNodeState(std::string_view text) {
  return ParseIn<NodeState>(kNodeState, text);
}
std::optional<AttemptState> ParseAttemptState(std::string_view text) {
  return ParseIn<AttemptState>(kAttemptState, text);
}
std::optional<ApprovalStatus> ParseApprovalStatus(std::string_view text) {
  return ParseIn<ApprovalStatus>(kApprovalStatus, text);
}
std::optional<SignalStatus> ParseSignalStatus(std::string_view text) {
  return ParseIn<SignalStatus>(kSignalStatus, text);
}

bool IsTerminal(RunStatus s) {
  return s == RunStatus::kFinished || s == RunStatus::kFailed || s == RunStatus::kCancelled;
}
bool IsTerminal(NodeState s) {
  return s == NodeState::kFinished || s == NodeState::kFailed || s == NodeState::kSkipped ||
         s == NodeState::kCancelled;
}
bool IsTerminal(AttemptState s) {
  return s == AttemptState::kFinished || s == AttemptState::kFailed ||
         s == AttemptState::kCancelled;
}

bool IsWaiting(RunStatus s) {
  return s == RunStatus::kWaitingApproval || s == RunStatus::kWaitingEvent ||
         s == RunStatus::kWaitingTimer;
}
bool IsWaiting(NodeState s) {
  return s == NodeState::kWaitingApproval || s == NodeState::kWaitingEvent ||
         s == NodeState::kWaitingTimer;
}

// NOLINTBEGIN(readability-identifier-naming): nlohmann's ADL customization point
void to_json(Json& j, RunStatus s) { j = Name(s); }
void to_json(Json& j, NodeState s) { j = Name(s); }
void to_json(Json& j, AttemptState s) { j = Name(s); }
void to_json(Json& j, ApprovalStatus s) { j = Name(s); }
void to_json(Json& j, SignalStatus s) { j = Name(s); }
// NOLINTEND(readability-identifier-naming)

std::ostream& operator<<(std::ostream& os, RunStatus s) { return os << Name(s); }
std::ostream& operator<<(std::ostream& os, NodeState s) { return os << Name(s); }
std::ostream& operator<<(std::ostream& os, AttemptState s) { return os << Name(s); }
std::ostream& operator<<(std::ostream& os, ApprovalStatus s) { return os << Name(s); }
std::ostream& operator<<(std::ostream& os, SignalStatus s) { return os << Name(s); }

}  // namespace smithers
