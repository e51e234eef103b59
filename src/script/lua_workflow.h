// Lua workflow modules: loads a module file and exposes it as a
// WorkflowDefinition the engine can run. See DESIGN.md "Workflow modules (Lua)".
#ifndef SMITHERS_SCRIPT_LUA_WORKFLOW_H_
#define SMITHERS_SCRIPT_LUA_WORKFLOW_H_

#include <memory>
#include <string>

#include "smithers/status.h"
#include "smithers/workflow.h"

namespace smithers::script {

// A loaded module. Owns its Lua state; the definition's render and compute
// functions call into it and must only be used while it lives, from one thread.
class LuaWorkflow {
 public:
  virtual ~LuaWorkflow() = default;
  virtual const WorkflowDefinition& definition() const = 0;
};

// Loads and runs the module at `path` (which must return `smithers(render)`).
// InvalidArgument for syntax or runtime errors, naming the file and line.
Result<std::unique_ptr<LuaWorkflow>> LoadWorkflowModule(const std::string& path);

}  // namespace smithers::script

#endif  // SMITHERS_SCRIPT_LUA_WORKFLOW_H_
