// The table of wait kinds (waits.h) and what the engine does with all of
// them alike: the supervisors' check of a parked run.
#include "engine/waits.h"

#include <string_view>

namespace smithers::engine {

std::string NodeKey(const std::string& node_id, int iteration) {
  return node_id + "#" + std::to_string(iteration);
}

AttemptRecord NewWaitingAttempt(WaitHost& host, int t) {
  const core::TaskRef& ref = host.task(t);
  NodeInfo& info = host.node(t);
  int64_t now = host.clock().NowMs();
  info.wait_started_at_ms = now;
  return AttemptRecord{.run_id = host.run_id(),
                       .node_id = ref.node_id,
                       .iteration = ref.iteration,
                       .attempt = ++info.row.last_attempt,
                       .state = AttemptState::kWaiting,
                       .started_at_ms = now};
}

std::string WaitKind::name() const {
  return std::string(Name(state()).substr(std::string_view("waiting-").size()));
}

std::vector<std::unique_ptr<WaitKind>> MakeWaitKinds() {
  std::vector<std::unique_ptr<WaitKind>> kinds;
  kinds.push_back(NewApprovalWait());
  kinds.push_back(NewEventWait());
  kinds.push_back(NewTimerWait());
  return kinds;
}

WaitKind* WaitKindOf(const std::vector<std::unique_ptr<WaitKind>>& kinds, NodeState state) {
  for (const auto& k : kinds) {
    if (k->state() == state) return k.get();
  }
  return nullptr;
}

Result<const std::vector<ApprovalRecord>*> ParkedRun::approvals() {
  if (!approvals_) {
    SMITHERS_ASSIGN_OR_RETURN(approvals_, store_.ListApprovals({.run_id = run_.run_id}));
  }
  return &*approvals_;
}

Result<const std::vector<SignalRecord>*> ParkedRun::signals() {
  if (!signals_) {
    SMITHERS_ASSIGN_OR_RETURN(signals_, store_.ListSignals(run_.run_id));
  }
  return &*signals_;
}

Result<const AttemptRecord*> ParkedRun::WaitingAttempt(const NodeRecord& n) {
  if (!attempts_) {
    SMITHERS_ASSIGN_OR_RETURN(attempts_, store_.ListAttempts(run_.run_id));
  }
  const AttemptRecord* wait = nullptr;
  for (const auto& a : *attempts_) {
    if (a.node_id == n.node_id && a.iteration == n.iteration && a.state == AttemptState::kWaiting) {
      wait = &a;
    }
  }
  return wait;
}

}  // namespace smithers::engine

namespace smithers {

Result<std::string> WaitReadyReason(Store& s, const RunRecord& run, int64_t now) {
  SMITHERS_ASSIGN_OR_RETURN(auto nodes, s.ListNodes(run.run_id));
  std::vector<std::unique_ptr<engine::WaitKind>> kinds = engine::MakeWaitKinds();
  engine::ParkedRun parked(s, run);
  for (const auto& n : nodes) {
    engine::WaitKind* kind = engine::WaitKindOf(kinds, n.state);
    if (kind == nullptr) continue;
    const AttemptRecord* wait = nullptr;
    if (kind->has_attempt()) {
      SMITHERS_ASSIGN_OR_RETURN(wait, parked.WaitingAttempt(n));
      if (wait == nullptr) return "waiting " + n.node_id + " has no wait record";  // let it re-arm
    }
    SMITHERS_ASSIGN_OR_RETURN(std::string reason, kind->ReadyReason(parked, n, wait, now));
    if (!reason.empty()) return reason;
  }
  return std::string();
}

}  // namespace smithers
