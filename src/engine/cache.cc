#include "engine/cache.h"

#include "base/hash.h"
#include "core/task_modes.h"
#include "smithers/schema.h"

namespace smithers::engine {

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
    auto input = core::Traits(task.mode).cache_input;
    key["input"] = input != nullptr ? input(task, in.iteration) : Json(nullptr);
  } else {
    key["by"] = policy.by;
  }
  if (in.deps != nullptr) key["deps"] = *in.deps;
  // Json objects keep their keys sorted, so dump() is canonical.
  return base::Sha256Hex(key.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace smithers::engine
