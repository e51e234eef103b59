// Approvals (docs/engine.md "Approvals"): an Approval node waits for a
// decision and finishes with it as its output; any other task with an
// approval gate waits for one before it runs. The request is a row of
// _smithers_approvals, decided by someone else (`smithers approve`,
// submitApproval); a due escalation hands it to its fallback owner.
#include <map>

#include "base/hash.h"
#include "engine/executors.h"
#include "engine/waits.h"

namespace smithers::engine {
namespace {

// The output row of a decided approval (smithers.approvalDecision).
Json DecisionJson(const ApprovalRecord& a) {
  return {{"approved", a.status == ApprovalStatus::kApproved},
          {"note", a.note.empty() ? Json(nullptr) : Json(a.note)},
          {"decidedBy", a.decided_by},
          {"decidedAt", base::FormatIsoTime(a.decided_at_ms)}};
}

class ApprovalWait : public WaitKind {
 public:
  NodeState state() const override { return NodeState::kWaitingApproval; }
  RunStatus parked_status() const override { return RunStatus::kWaitingApproval; }
  bool has_attempt() const override { return false; }  // the request row is the wait

  Status Load(WaitHost& host) override { return Read(host); }

  Result<bool> Begin(WaitHost& host, int t) override {
    const core::TaskRef& ref = host.task(t);
    const TaskSpec& spec = ref.node->task;
    // A gate before the task, or the review of what its attempt produced.
    const Json& review = host.node(t).review_request;
    bool reviewing = !spec.approval && spec.review && !review.is_null();
    if (!spec.approval && !reviewing) return false;
    const std::string key = NodeKey(ref.node_id, ref.iteration);
    auto it = approvals_.find(key);
    bool approved = it != approvals_.end() && it->second.status == ApprovalStatus::kApproved;
    if (spec.mode != TaskMode::kApproval && approved && !reviewing) return false;  // it runs
    int64_t now = host.clock().NowMs();
    // A review is of one attempt's result: a decision on an earlier
    // attempt's (a run resumed after it failed) never decides this one.
    bool stale = reviewing && it != approvals_.end() &&
                 it->second.status != ApprovalStatus::kRequested &&
                 it->second.request.value("attempt", int64_t{-1}) != host.node(t).row.last_attempt;
    if (it == approvals_.end() || stale) {
      const ApprovalSpec& a = reviewing ? *spec.review : *spec.approval;
      std::string owner = a.owner.empty() ? host.workflow().default_approval_owner : a.owner;
      ApprovalRecord rec{.run_id = host.run_id(),
                         .node_id = ref.node_id,
                         .iteration = ref.iteration,
                         .status = ApprovalStatus::kRequested,
                         .requested_at_ms = now,
                         .owner = owner,
                         .original_owner = owner,
                         .fallback_owner = a.fallback_owner,
                         .escalate_after_ms = a.escalate_after_ms,
                         .request = a.request.is_object() ? a.request : Json::object(),
                         .on_deny = a.on_deny,
                         .allowed_users = a.allowed_users,
                         .allowed_scopes = a.allowed_scopes};
      // A review's request: what the task's settings say (its title), then
      // what its executor says of the result.
      if (reviewing && review.is_object()) {
        rec.request.update(review);
        rec.request["attempt"] = host.node(t).row.last_attempt;
      }
      if (stale) {
        host.batch().RenewApproval(rec);
      } else {
        host.batch().RequestApproval(rec);
      }
      Json requested = {{"nodeId", ref.node_id},
                        {"iteration", ref.iteration},
                        {"owner", owner},
                        {"fallbackOwner", a.fallback_owner},
                        {"escalateAfterMs", a.escalate_after_ms},
                        {"request", rec.request}};
      if (!a.allowed_users.empty()) requested["allowedUsers"] = a.allowed_users;
      if (!a.allowed_scopes.empty()) requested["allowedScopes"] = a.allowed_scopes;
      host.Event("ApprovalRequested", requested);
      it = approvals_.insert_or_assign(key, std::move(rec)).first;
    }
    host.node(t).wait_started_at_ms = now;
    host.SetState(t, NodeState::kWaitingApproval, "NodeWaitingApproval",
                  {{"owner", it->second.owner}});
    host.CheckSoon();  // decided already (a resumed run)?
    SMITHERS_RETURN_IF_ERROR(host.Flush());
    return true;
  }

  void StartCheck() override { read_ = false; }

  Result<bool> Check(WaitHost& host, int t) override {
    if (!read_) {
      read_ = true;
      SMITHERS_RETURN_IF_ERROR(EscalateDue(host));
      SMITHERS_RETURN_IF_ERROR(Read(host));
    }
    const core::TaskRef& ref = host.task(t);
    auto it = approvals_.find(NodeKey(ref.node_id, ref.iteration));
    if (it == approvals_.end() || it->second.status == ApprovalStatus::kRequested) return false;
    SMITHERS_RETURN_IF_ERROR(ApplyDecision(host, t, it->second));
    return true;
  }

  void Describe(WaitHost& host, int t, Json& w) override {
    const core::TaskRef& ref = host.task(t);
    const ApprovalRecord& a = approvals_[NodeKey(ref.node_id, ref.iteration)];
    w["owner"] = a.owner;
    w["request"] = a.request;
  }

  Result<std::string> ReadyReason(ParkedRun& run, const NodeRecord& n,
                                  const AttemptRecord* /*waiting*/, int64_t /*now*/) override {
    SMITHERS_ASSIGN_OR_RETURN(const std::vector<ApprovalRecord>* approvals, run.approvals());
    for (const auto& a : *approvals) {
      if (a.node_id == n.node_id && a.iteration == n.iteration &&
          a.status != ApprovalStatus::kRequested) {
        return "approval of " + n.node_id + " " + std::string(Name(a.status));
      }
    }
    return std::string();
  }

 private:
  Status Read(WaitHost& host) {
    SMITHERS_ASSIGN_OR_RETURN(auto rows, host.store().ListApprovals({.run_id = host.run_id()}));
    for (auto& a : rows) approvals_[NodeKey(a.node_id, a.iteration)] = std::move(a);
    return Status::Ok();
  }

  // Hands due approvals to their fallback owners (an event each); the events
  // are committed by the store, so they reach on_event from here.
  Status EscalateDue(WaitHost& host) {
    int64_t now = host.clock().NowMs();
    bool due = false;
    for (const auto& [key, a] : approvals_) {
      due = due || (a.status == ApprovalStatus::kRequested && a.escalate_after_ms > 0 &&
                    a.escalated_at_ms == 0 && !a.fallback_owner.empty() &&
                    now >= a.requested_at_ms + a.escalate_after_ms);
    }
    if (!due) return Status::Ok();
    SMITHERS_ASSIGN_OR_RETURN(auto escalated,
                              host.store().EscalateDueApprovals(host.run_id(), now));
    if (escalated.empty()) return Status::Ok();
    return host.ReportCommitted("ApprovalEscalated");
  }

  // Applies a decision: a gate lets its task run (or denies it); an Approval
  // node finishes with the decision as its output.
  Status ApplyDecision(WaitHost& host, int t, const ApprovalRecord& a) {
    const TaskSpec& spec = host.task(t).node->task;
    bool approved = a.status == ApprovalStatus::kApproved;
    if (!spec.approval && spec.review) return ApplyReview(host, t, a);
    if (approved && spec.mode != TaskMode::kApproval) {
      host.SetState(t, NodeState::kPending, "NodePending",
                    {{"approved", true}, {"decidedBy", a.decided_by}});
      return host.Flush();
    }
    NodeInfo& info = host.node(t);
    info.wait_started_at_ms = a.requested_at_ms;
    if (approved || a.on_deny == "continue") {
      info.row.last_attempt++;
      return host.CompleteWait(t, {.ok = true, .output = DecisionJson(a)}, spec.output);
    }
    if (a.on_deny == "skip") {
      host.SetState(t, NodeState::kSkipped, "NodeSkipped",
                    {{"reason", "approval denied"}, {"decidedBy", a.decided_by}});
      return host.Flush();
    }
    Json err = ErrorJson("APPROVAL_DENIED",
                         "denied by " + a.decided_by + (a.note.empty() ? "" : ": " + a.note));
    err["decidedBy"] = a.decided_by;
    info.row.last_attempt++;
    return host.CompleteWait(t, {.ok = false, .error = err, .retryable = false}, spec.output);
  }

  // A review's decision: approved, the executor makes the reviewed result
  // count (Accept) and that is the task's outcome; denied, the task fails
  // (or is skipped, onDeny) and nothing of the result is used.
  static Status ApplyReview(WaitHost& host, int t, const ApprovalRecord& a) {
    const TaskSpec& spec = host.task(t).node->task;
    NodeInfo& info = host.node(t);
    bool sandbox = spec.mode == TaskMode::kSandbox;
    if (a.request.value("attempt", int64_t{-1}) != info.row.last_attempt) {
      info.row.last_attempt++;
      return host.CompleteWait(
          t,
          {.ok = false,
           .error = ErrorJson("REVIEW_STALE", "the decision is of another attempt's result"),
           .retryable = false},
          spec.output);
    }
    if (a.status == ApprovalStatus::kApproved) {
      AttemptOutcome o = host.AcceptReview(t);
      // The reviewed attempt's record names who accepted it.
      for (auto& [type, payload] : o.events) {
        if (type != "SandboxDiffAccepted") continue;
        if (!payload.is_object()) payload = Json::object();
        payload["decidedBy"] = a.decided_by;
        payload["reviewedAttempt"] = info.row.last_attempt;
      }
      info.wait_started_at_ms = a.decided_at_ms;
      info.row.last_attempt++;
      return host.CompleteWait(t, std::move(o), spec.output);
    }
    std::string why = "denied by " + a.decided_by + (a.note.empty() ? "" : ": " + a.note);
    if (sandbox) {
      host.Event("SandboxDiffRejected", {{"nodeId", host.task(t).node_id},
                                         {"iteration", host.task(t).iteration},
                                         {"attempt", info.row.last_attempt},
                                         {"reason", why},
                                         {"decidedBy", a.decided_by}});
    }
    if (a.on_deny == "skip") {
      host.SetState(t, NodeState::kSkipped, "NodeSkipped",
                    {{"reason", "review denied"}, {"decidedBy", a.decided_by}});
      return host.Flush();
    }
    Json err = ErrorJson(sandbox ? "SANDBOX_DIFF_REJECTED" : "REVIEW_DENIED", why);
    err["decidedBy"] = a.decided_by;
    info.wait_started_at_ms = a.decided_at_ms;
    info.row.last_attempt++;
    return host.CompleteWait(t, {.ok = false, .error = err, .retryable = false}, spec.output);
  }

  std::map<std::string, ApprovalRecord> approvals_;  // by NodeKey
  bool read_ = false;                                // read in this check
};

}  // namespace

std::unique_ptr<WaitKind> NewApprovalWait() { return std::make_unique<ApprovalWait>(); }

}  // namespace smithers::engine
