// Cache keys: which earlier output a cacheable task may reuse.
#ifndef SMITHERS_ENGINE_CACHE_H_
#define SMITHERS_ENGINE_CACHE_H_

#include <string>

#include "smithers/json.h"
#include "smithers/workflow.h"

namespace smithers::engine {

// What identifies one task's cacheable result, besides its policy.
struct CacheKeyInput {
  std::string run_id;
  std::string workflow_name;
  std::string node_id;
  int iteration = 0;
  Json output_schema;          // the task's current output schema
  const Json* deps = nullptr;  // the rows the task reads (TaskDeps::rows), or nullptr
};

// SHA-256 hex of the canonical JSON of {scope, identity (run: runId +
// workflowName; workflow: workflowName; global: none), nodeId, by (or the
// task's resolved input), version, outputSchema (schema::Hash)}. The input
// without `by`: a static value, a command's argv + cwd + env + parse, an
// agent's prompt + agent config, a compute task's iteration. A task that
// reads rows (TaskDeps::rows) adds them as `deps`, with or without `by`: a
// changed row is a different input. Without rows the key is as it was.
std::string CacheKey(const TaskSpec& task, const CachePolicy& policy, const CacheKeyInput& in);

}  // namespace smithers::engine

#endif  // SMITHERS_ENGINE_CACHE_H_
