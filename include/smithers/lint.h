// Linting a workflow before it is promoted (`smithers check`; docs/operations.md
// "Checking modules before promotion"): renders it without running anything,
// with a sample input and then with made-up outputs of every mounted task
// until the tree stops growing, and reports what a reviewer would flag in
// every task it saw, including tasks that mount only once others are done.
//
//   smithers::LintOptions opts;
//   opts.require_sandbox = true;
//   smithers::LintReport r = smithers::LintWorkflow(def, opts);
//   for (const smithers::LintFinding& f : r.findings) {
//     std::cerr << smithers::LintSeverityName(f.severity) << " " << f.node_id << ": "
//               << f.message << "\n";
//   }
//
// No task runs and nothing is written: only the render function is called
// (for a Lua module, its render and the `by` of its cache policies).
#ifndef SMITHERS_LINT_H_
#define SMITHERS_LINT_H_

#include <functional>
#include <string>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"
#include "smithers/workflow.h"

namespace smithers {

enum class LintSeverity { kWarning, kError };

// "warn" or "error".
const char* LintSeverityName(LintSeverity severity);

// One problem. Codes (stable; docs/operations.md lists them):
//   schema, input, render, plan                   the module cannot be rendered as it is
//                                                 (render: a warning when made-up values
//                                                 may be the cause)
//   duplicate-id, approval-owner, secret-literal, errors
//   sandbox-required
//   approval-fallback-owner, approval-escalation, warnings
//   cache-version, agent-timeout, sample-input,
//   render-limit
struct LintFinding {
  LintSeverity severity = LintSeverity::kError;
  std::string code;
  std::string node_id;  // the task's id; "" for the workflow as a whole
  std::string where;    // the node's source ("flow.lua:12"), or ""
  std::string message;
};

struct LintOptions {
  // The run input the renders see; null = one made from the input schema
  // (schema::Sample, kLeast), or {} when the workflow declares none.
  Json input = nullptr;
  // Processes must run confined (RunOptions::require_sandbox): a command
  // task without a sandbox, and an agent `agent_unconfined` names, are
  // errors. Without it they are not reported.
  bool require_sandbox = false;
  // Why an agent (one entry of an agent task's chain) would start a process
  // that is not confined, or "" when it would not. The engine does not know
  // the agents' kinds: the CLI sets agents::UnconfinedReason. Unset = never.
  std::function<std::string(const Json& agent)> agent_unconfined;
  // The front end's props check (script::LuaWorkflow::CheckComponents),
  // called when a render fails, with the input and outputs it saw: an error
  // when the failure is a prop or component the module got wrong. Unset =
  // no failure is known to be one (see LintWorkflow).
  std::function<Status(const Json& input, const Ctx::OutputMap& outputs)> check_components;
  // Renders per pass at most; a tree still growing then is a warning.
  int max_renders = 64;
};

struct LintReport {
  Json input;                    // what the renders saw
  bool input_generated = false;  // made from the input schema
  int renders = 0;               // over both passes
  // Every task id mounted by some render, in the order first seen.
  std::vector<std::string> tasks;
  // In the order found, without repeats (the same problem seen by several
  // renders is one finding).
  std::vector<LintFinding> findings;
  bool HasErrors() const;
};

// Lints `workflow` (docs/operations.md "Checking modules before promotion"):
// its schemas (CheckWorkflow), the input (CheckRunInput when given), then two
// passes of renders, one with outputs made with schema::SampleFill::kLeast
// and one with kMost, each starting with no outputs and adding a made-up
// output for each mounted task that writes one until a render mounts no new
// task. Each rendered tree is checked by core::PlanTree as a run would check
// it, and each task by the rules of LintFinding. Never fails: what stops it
// (a bad schema, a render error) is a finding. A failed render is an error
// when it saw no made-up value (a given input or none declared, no outputs)
// or when `check_components` names a prop; otherwise the made-up values may
// be its cause and it is a warning.
LintReport LintWorkflow(const WorkflowDefinition& workflow, const LintOptions& options);

}  // namespace smithers

#endif  // SMITHERS_LINT_H_
