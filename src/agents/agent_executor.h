// The executor for agent tasks (TaskMode::kAgent): a model over HTTP with a
// tool loop, or a coding-agent CLI, with structured output validated against
// the task's output schema and an agent list as a fallback chain
// (docs/agents.md).
//
//   auto agents = agents::NewAgentExecutor({.outputs = def.outputs});
//   RunOptions opts;
//   opts.executors[TaskMode::kAgent] = agents.get();
#ifndef SMITHERS_AGENTS_AGENT_EXECUTOR_H_
#define SMITHERS_AGENTS_AGENT_EXECUTOR_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "smithers/engine.h"

namespace smithers::agents {

struct AgentExecutorOptions {
  std::map<std::string, Json> outputs;    // output name -> JSON Schema (the workflow's)
  std::string default_root_dir = ".";     // where tools work when an agent names no rootDir
  std::vector<std::string> hidden_paths;  // never visible to bash's sandbox (the database)
  // RunOptions::require_sandbox: a CLI agent (its process is not confined
  // yet) or unisolatedTools fails with SANDBOX_REQUIRED, not retried.
  bool require_sandbox = false;
};

std::unique_ptr<Executor> NewAgentExecutor(AgentExecutorOptions options);

// Why `agent` (one entry of a task's agent chain) would start a process that
// is not confined: "the claude-code agent's process is not confined (give
// the agent a sandbox)" for a CLI agent without a sandbox, "the agent sets
// unisolatedTools"; "" when it would not. What require_sandbox refuses, and
// what `smithers check --require-sandbox` reports.
std::string UnconfinedReason(const Json& agent);

// Extracts the JSON value of a model's reply: the whole text, or the first
// ```json (or ```) fenced block in it. Nullopt when there is none.
std::optional<Json> ParseJsonReply(const std::string& text);

}  // namespace smithers::agents

#endif  // SMITHERS_AGENTS_AGENT_EXECUTOR_H_
