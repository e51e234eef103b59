// The built-in executors: static values, compute functions, child processes.
#ifndef SMITHERS_ENGINE_EXECUTORS_H_
#define SMITHERS_ENGINE_EXECUTORS_H_

#include <memory>

#include "smithers/clock.h"
#include "smithers/engine.h"

namespace smithers::engine {

std::unique_ptr<Executor> NewStaticExecutor();
std::unique_ptr<Executor> NewComputeExecutor();
// Runs `command.argv` in its own process group; the child is killed if this
// process dies (PR_SET_PDEATHSIG), so a crashed engine leaves no orphans.
// A task with a `sandbox` runs through `confine` (RunOptions::confine), or
// fails with SANDBOX_UNAVAILABLE when it is unset or refuses.
using ConfineFn = decltype(RunOptions::confine);
// With `require_sandbox`, a task without one fails with SANDBOX_REQUIRED.
std::unique_ptr<Executor> NewCommandExecutor(Clock& clock, int64_t cancel_grace_ms,
                                             ConfineFn confine = nullptr,
                                             bool require_sandbox = false);

// An attempt whose outcome is known at once.
class ImmediateExecution final : public Execution {
 public:
  explicit ImmediateExecution(AttemptOutcome outcome) : outcome_(std::move(outcome)) {}
  std::optional<AttemptOutcome> Poll() override { return outcome_; }
  void Cancel(const std::string&) override {}

 private:
  AttemptOutcome outcome_;
};

Json ErrorJson(const std::string& code, const std::string& message);

}  // namespace smithers::engine

#endif  // SMITHERS_ENGINE_EXECUTORS_H_
