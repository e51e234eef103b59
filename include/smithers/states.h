// The states of a run, a node, an attempt, an approval and a signal. The API
// (store records, RunResult) carries these enums; the text of each value is
// what the database stores and what the wire and the CLI show, and exists in
// one place only (base/states.cc). A value read back that names no state is
// refused (the store reports DataLoss), never taken for a default.
#ifndef SMITHERS_STATES_H_
#define SMITHERS_STATES_H_

#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "smithers/json.h"

namespace smithers {

// _smithers_runs.status
enum class RunStatus {
  kRunning,
  kWaitingApproval,
  kWaitingEvent,
  kWaitingTimer,
  kFinished,
  kFailed,
  kCancelled,
};

// Every run status, in declaration order (the Gateway's /metrics lists each).
inline constexpr RunStatus kAllRunStatuses[] = {
    RunStatus::kRunning,      RunStatus::kWaitingApproval, RunStatus::kWaitingEvent,
    RunStatus::kWaitingTimer, RunStatus::kFinished,        RunStatus::kFailed,
    RunStatus::kCancelled};

// _smithers_nodes.state
enum class NodeState {
  kPending,
  kInProgress,
  kWaitingApproval,
  kWaitingEvent,
  kWaitingTimer,
  kFinished,
  kFailed,
  kSkipped,
  kCancelled,
};

// _smithers_attempts.state: a wait's attempt is `waiting` while the task waits.
enum class AttemptState { kInProgress, kWaiting, kFinished, kFailed, kCancelled };

// _smithers_approvals.status
enum class ApprovalStatus { kRequested, kApproved, kDenied };

// _smithers_signals.status
enum class SignalStatus { kPending, kConsumed, kRejected };

// The stored and sent text of a state: "running", "waiting-approval", ...
std::string_view Name(RunStatus s);
std::string_view Name(NodeState s);
std::string_view Name(AttemptState s);
std::string_view Name(ApprovalStatus s);
std::string_view Name(SignalStatus s);

// The state named `text`; nullopt for any other text (exact match).
std::optional<RunStatus> ParseRunStatus(std::string_view text);
std::optional<NodeState> ParseNodeState(std::string_view text);
std::optional<AttemptState> ParseAttemptState(std::string_view text);
std::optional<ApprovalStatus> ParseApprovalStatus(std::string_view text);
std::optional<SignalStatus> ParseSignalStatus(std::string_view text);

// Terminal: nothing more happens to it unless a resume retries it. A run is
// terminal when finished, failed or cancelled; a node also when skipped; an
// attempt when finished, failed or cancelled.
bool IsTerminal(RunStatus s);
bool IsTerminal(NodeState s);
bool IsTerminal(AttemptState s);

// A waiting-* state (waiting for an approval, an event or a timer).
bool IsWaiting(RunStatus s);
bool IsWaiting(NodeState s);

// JSON carries the name (nlohmann's ADL hook): `Json{{"status", run.status}}`
// sends "finished". There is no from_json: text from outside is parsed with
// Parse*, and an unknown name is the caller's error to report.
// NOLINTBEGIN(readability-identifier-naming): nlohmann's ADL customization point
void to_json(Json& j, RunStatus s);
void to_json(Json& j, NodeState s);
void to_json(Json& j, AttemptState s);
void to_json(Json& j, ApprovalStatus s);
void to_json(Json& j, SignalStatus s);
// NOLINTEND(readability-identifier-naming)

// Test messages and logs print the name.
std::ostream& operator<<(std::ostream& os, RunStatus s);
std::ostream& operator<<(std::ostream& os, NodeState s);
std::ostream& operator<<(std::ostream& os, AttemptState s);
std::ostream& operator<<(std::ostream& os, ApprovalStatus s);
std::ostream& operator<<(std::ostream& os, SignalStatus s);

}  // namespace smithers

#endif  // SMITHERS_STATES_H_
