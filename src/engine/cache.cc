#include "engine/cache.h"

#include "base/hash.h"
#include "smithers/schema.h"

namespace smithers::engine {
namespace {

Json ResolvedInput(const TaskSpec& task, int iteration) {
  switch (task.mode) {
    case TaskMode::kStatic: return {{"value", task.value}};
    case TaskMode::kCommand: {
      Json in = {{"argv", task.command.argv},
                 {"cwd", task.command.cwd},
                 {"env", task.command.env},
                 {"parse", task.command.parse}};
      // The references, never their values (keys without any stay as they were).
      if (!task.command.secret_env.empty()) in["secretEnv"] = task.command.secret_env;
      return in;
    }
    case TaskMode::kAgent: return {{"prompt", task.prompt}, {"agent", task.agent}};
    // A function's body cannot be hashed: without `by` it is keyed by where
    // it runs.
    case TaskMode::kCompute: return {{"iteration", iteration}};
    case TaskMode::kApproval:  // waits are never cached
    case TaskMode::kWaitForEvent:
    case TaskMode::kTimer: return nullptr;
  }
  return nullptr;
}

}  // namespace

std::string CacheKey(const TaskSpec& task, const CachePolicy& policy, const CacheKeyInput& in) {
  Json identity = Json::object();
  if (policy.scope == "run") {
    identity = {{"runId", in.run_id}, {"workflowName", in.workflow_name}};
  } else if (policy.scope != "global") {
    identity = {{"workflowName", in.workflow_name}};
  }
  Json key = {{"scope", policy.scope},     {"identity", identity},
              {"nodeId", in.node_id},      {"outputTable", task.output},
              {"version", policy.version}, {"outputSchema", schema::Hash(in.output_schema)}};
  if (policy.by.is_null()) {
    key["input"] = ResolvedInput(task, in.iteration);
  } else {
    key["by"] = policy.by;
  }
  if (in.deps != nullptr) key["deps"] = *in.deps;
  // Json objects keep their keys sorted, so dump() is canonical.
  return base::Sha256Hex(key.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace smithers::engine
