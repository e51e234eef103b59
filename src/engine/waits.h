// The kinds of wait (docs/engine.md "Waits"): a task that waits for an
// approval (an Approval node, or any task with an approval gate), for a
// signal (WaitForEvent) or for a time (Timer). Each kind is one file
// (wait_approval.cc, wait_event.cc, wait_timer.cc) and one row of
// MakeWaitKinds (waits.cc); the engine (engine.cc) calls them through
// WaitKind and they act on the run through WaitHost. The waiting attempt's
// metadata has one codec (wait_meta.h).
#ifndef SMITHERS_ENGINE_WAITS_H_
#define SMITHERS_ENGINE_WAITS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/plan.h"
#include "smithers/clock.h"
#include "smithers/engine.h"
#include "smithers/json.h"
#include "smithers/store.h"
#include "smithers/workflow.h"

namespace smithers::engine {

class WaitKind;

// The key of a task in one iteration: "<node id>#<iteration>".
std::string NodeKey(const std::string& node_id, int iteration);

// What the engine keeps of one task of the run.
struct NodeInfo {
  NodeRecord row;
  int64_t retry_at_ms = 0;
  int failures = 0;  // failed attempts so far (for retries)
  // While the task waits (row.state waiting-*):
  WaitKind* wait = nullptr;
  int64_t wake_at_ms = 0;          // timer: fire time; event: timeout (0 = none)
  int64_t wait_started_at_ms = 0;  // when the waiting attempt began
  // An attempt's result that asks for a review (AttemptOutcome::review),
  // until the approval wait has begun.
  Json review_request;
};

// What a wait kind may do in the run it waits in: the engine's side.
class WaitHost {
 public:
  virtual ~WaitHost() = default;
  virtual const WorkflowDefinition& workflow() const = 0;
  virtual const std::string& run_id() const = 0;
  virtual Store& store() = 0;
  virtual Clock& clock() = 0;
  // The run's next commit.
  virtual WriteBatch& batch() = 0;
  virtual const core::TaskRef& task(int t) const = 0;
  virtual NodeInfo& node(int t) = 0;
  // Appends an event to the batch (redacted).
  virtual void Event(const std::string& type, Json payload) = 0;
  // The task's node state, with its event (nodeId and iteration added).
  virtual void SetState(int t, NodeState state, const std::string& event, Json extra) = 0;
  // Commits the batch.
  virtual Status Flush() = 0;
  // Ends the wait as the end of its attempt, in one commit (`output` "": the
  // task finishes without an output row).
  virtual Status CompleteWait(int t, AttemptOutcome o, const std::string& output) = 0;
  // Task `t`'s reviewed result was approved: its executor's Accept for the
  // attempt that asked for the review (the node's last attempt).
  virtual AttemptOutcome AcceptReview(int t) = 0;
  // The next check of the waits comes at once (something may be due now).
  virtual void CheckSoon() = 0;
  // The next check of the waits comes by `at_ms` (wall clock) at the latest.
  virtual void NoteWake(int64_t at_ms) = 0;
  // Hands events of `type` that the store committed outside the batch (since
  // the last one this run saw) to RunOptions::on_event.
  virtual Status ReportCommitted(const std::string& type) = 0;
};

// A parked run's rows, each read at most once for all its waiting nodes
// (WaitReadyReason, with no engine).
class ParkedRun {
 public:
  ParkedRun(Store& store, const RunRecord& run) : store_(store), run_(run) {}
  Result<const std::vector<ApprovalRecord>*> approvals();
  Result<const std::vector<SignalRecord>*> signals();
  // The node's waiting attempt, or null.
  Result<const AttemptRecord*> WaitingAttempt(const NodeRecord& n);

 private:
  Store& store_;
  const RunRecord& run_;
  std::optional<std::vector<ApprovalRecord>> approvals_;
  std::optional<std::vector<AttemptRecord>> attempts_;
  std::optional<std::vector<SignalRecord>> signals_;
};

// One kind of wait, one object per run (it may keep the run's rows of its
// kind). Every call is on the run's thread.
class WaitKind {
 public:
  virtual ~WaitKind() = default;
  // The node state of a task waiting this way (waiting-approval, ...), and
  // the run's status when it parks with one (the first kind of
  // MakeWaitKinds' order that has a waiting task decides).
  virtual NodeState state() const = 0;
  virtual RunStatus parked_status() const = 0;
  // Whether the wait is an attempt of its own (an attempt row in state
  // waiting, cancelled with the run).
  virtual bool has_attempt() const { return true; }
  // Reads what it keeps of a started or resumed run.
  virtual Status Load(WaitHost& /*host*/) { return Status::Ok(); }
  // Task `t` is about to start: begins its wait (one commit) and returns
  // true, or false when the task does not wait this way (not its kind, or
  // an approval gate already approved: the task runs).
  virtual Result<bool> Begin(WaitHost& host, int t) = 0;
  // A check of every waiting task begins (rows read once per check).
  virtual void StartCheck() {}
  // Ends task `t`'s wait if what it waits for is there; true when the task
  // changed state. Calls NoteWake for a time it waits for.
  virtual Result<bool> Check(WaitHost& host, int t) = 0;
  // What RunResult::waiting says of the wait (nodeId, iteration and kind
  // are set already).
  virtual void Describe(WaitHost& host, int t, Json& w) = 0;
  // With no engine (supervisors): why the parked run should be resumed now
  // for node `n` in this kind's state, or "" (not yet). `waiting` is the
  // node's waiting attempt (never null when has_attempt()).
  virtual Result<std::string> ReadyReason(ParkedRun& run, const NodeRecord& n,
                                          const AttemptRecord* waiting, int64_t now) = 0;
  // "approval", "event", "timer": the state's name after "waiting-".
  std::string name() const;
};

// A new waiting attempt of task `t` (the node's next attempt, started now):
// what Begin writes, with its metadata, for a kind that has_attempt().
AttemptRecord NewWaitingAttempt(WaitHost& host, int t);

// The kinds, in the order Begin is tried and parked_status ranks them:
// approval (a gate comes before the task's own wait), event, timer.
std::vector<std::unique_ptr<WaitKind>> MakeWaitKinds();
// The kind of `state` in `kinds`, or null when `state` is not a waiting one.
WaitKind* WaitKindOf(const std::vector<std::unique_ptr<WaitKind>>& kinds, NodeState state);

// One row each (wait_*.cc).
std::unique_ptr<WaitKind> NewApprovalWait();
std::unique_ptr<WaitKind> NewEventWait();
std::unique_ptr<WaitKind> NewTimerWait();

}  // namespace smithers::engine

#endif  // SMITHERS_ENGINE_WAITS_H_
