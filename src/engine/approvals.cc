// Who may decide an approval (docs/engine.md "Who may decide"): the one check
// the CLI's approve/deny and the Gateway's submitApproval go through.
#include <algorithm>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/text.h"
#include "smithers/engine.h"

namespace smithers {
namespace {

bool Contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Whether the request has passed to its fallback owner: recorded, or due.
bool Escalated(const ApprovalRecord& a, int64_t now_ms) {
  if (a.fallback_owner.empty()) return false;
  if (a.escalated_at_ms > 0) return true;
  return a.escalate_after_ms > 0 && now_ms >= a.requested_at_ms + a.escalate_after_ms;
}

}  // namespace

Status CheckDecider(const ApprovalRecord& a, const Decider& who, int64_t now_ms) {
  if (who.override) return Status::Ok();
  const std::string& owner = a.original_owner.empty() ? a.owner : a.original_owner;
  const bool escalated = Escalated(a, now_ms);
  if (!who.actor.empty()) {
    if (who.actor == owner || Contains(a.allowed_users, who.actor)) return Status::Ok();
    if (escalated && who.actor == a.fallback_owner) return Status::Ok();
  }
  if (who.holds_scope) {
    for (const std::string& scope : a.allowed_scopes) {
      if (who.holds_scope(scope)) return Status::Ok();
    }
  }
  // Who may, in the order the rules apply.
  std::string may = "its owner " + owner;
  if (!a.fallback_owner.empty()) {
    if (escalated) {
      may += "; its fallback owner " + a.fallback_owner + " (it escalated)";
    } else if (a.escalate_after_ms > 0) {
      may += "; its fallback owner " + a.fallback_owner + " once it escalates at " +
             base::FormatIsoTime(a.requested_at_ms + a.escalate_after_ms);
    }
  }
  if (!a.allowed_users.empty()) may += "; allowedUsers " + base::Join(a.allowed_users);
  if (!a.allowed_scopes.empty()) {
    may += "; Gateway callers holding a scope of allowedScopes " + base::Join(a.allowed_scopes);
  }
  may += "; or an override by a run:admin caller (--override on the CLI, override: true over RPC)";
  return PermissionDeniedError((who.actor.empty() ? std::string("this caller") : who.actor) +
                               " may not decide node \"" + a.node_id + "\" (iteration " +
                               std::to_string(a.iteration) + ") of run " + a.run_id +
                               ": it may be decided by " + may);
}

Result<ApprovalRecord> DecideApproval(Store& store, ApprovalDecision decision, const Decider& who,
                                      int64_t now_ms) {
  // The fallback owner of a due escalation decides as the escalated owner,
  // and the escalation is on record (ApprovalEscalated) before the decision.
  SMITHERS_RETURN_IF_ERROR(store.EscalateDueApprovals(decision.run_id, now_ms).status());
  decision.decided_by = who.actor;
  decision.via = who.via;
  decision.os_user = who.os_user;
  decision.override = who.override;
  decision.authorize = [&who, now_ms](const ApprovalRecord& a) {
    return CheckDecider(a, who, now_ms);
  };
  return store.DecideApproval(decision, now_ms);
}

}  // namespace smithers
