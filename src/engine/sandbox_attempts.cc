// Which attempt of a Sandbox task a diff is read from (engine.h
// SandboxBundleAttempt): the CLI's `smithers diff` and the Gateway's
// getSandboxDiff pick it the same way.
#include <string>
#include <vector>

#include "smithers/engine.h"
#include "smithers/store.h"

namespace smithers {

Result<AttemptRecord> SandboxBundleAttempt(Store& store, const std::string& run_id,
                                           const std::string& node_id, int iteration, int attempt) {
  SMITHERS_RETURN_IF_ERROR(store.GetRun(run_id).status());
  SMITHERS_ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, store.ListAttempts(run_id));
  const AttemptRecord* pick = nullptr;
  for (const AttemptRecord& at : attempts) {
    if (at.node_id != node_id || at.iteration != iteration) continue;
    if (attempt != 0 && at.attempt != attempt) continue;
    if (!at.meta.is_object() || !at.meta.contains("sandbox") || !at.meta["sandbox"].is_object() ||
        !at.meta["sandbox"].contains("bundle")) {
      continue;
    }
    if (pick == nullptr || at.attempt > pick->attempt) pick = &at;
  }
  if (pick == nullptr) {
    return NotFoundError("node " + node_id + " (iteration " + std::to_string(iteration) +
                         ") of run " + run_id + " has no Sandbox attempt" +
                         (attempt != 0 ? " " + std::to_string(attempt) : "") +
                         " that returned a bundle");
  }
  if (!pick->meta["sandbox"].contains("patches")) {
    return FailedPreconditionError("attempt " + std::to_string(pick->attempt) +
                                   " returned no usable bundle (see `smithers inspect`)");
  }
  return *pick;
}

}  // namespace smithers
