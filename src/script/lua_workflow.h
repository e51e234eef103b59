// Lua workflow modules: loads a module file and exposes it as a
// WorkflowDefinition the engine can run. See docs/engine.md and docs/architecture.md.
#ifndef SMITHERS_SCRIPT_LUA_WORKFLOW_H_
#define SMITHERS_SCRIPT_LUA_WORKFLOW_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "smithers/status.h"
#include "smithers/workflow.h"

namespace smithers::script {

// A loaded module. Owns its Lua state; the definition's render and compute
// functions call into it and must only be used while it lives, from one thread.
// A schedule the module declares with `smithers(render, { schedule = ... })`:
// the Gateway keeps one cron row for it (docs/gateway.md "Cron").
struct ModuleSchedule {
  std::string cron;  // 5-field expression, checked by the Gateway
  std::string time_zone = "UTC";
  Json input = Json::object();
  bool enabled = true;
};

// How a module's Lua state is set up (docs/engine.md "Restricted modules").
struct ModuleOptions {
  // The restricted standard library (src/script/restricted.h): no processes,
  // no C modules, no debug library, no bytecode; files read only in the
  // module's folder and `workspace`, written only in `workspace`; memory
  // and the time of a load or render bounded. The Gateway's default (unless
  // trusted_modules); false is the full library (`smithers up` runs the
  // user's own code).
  bool restricted = false;
  std::string workspace;  // restricted: the folder it may write in ("" = none)
  size_t max_memory_bytes = size_t{512} << 20;
  int64_t max_render_ms = 10000;  // one load, or one render and its conversion
};

class LuaWorkflow {
 public:
  virtual ~LuaWorkflow() = default;
  virtual const WorkflowDefinition& definition() const = 0;
  // The module's source as loaded. definition().source_hash is its SHA-256,
  // or, when it required sibling modules while loading, that of the source
  // and the siblings together (so a changed sibling is a new revision).
  virtual const std::string& source() const = 0;
  // The sibling modules (files of the module's folder) it `require`d, by
  // module name ("lib", "util.text" for util/text.lua).
  virtual const std::map<std::string, std::string>& siblings() const = 0;
  virtual const std::optional<ModuleSchedule>& schedule() const = 0;
  // Renders once with `input` and `outputs` (nullptr = none), as a check:
  // InvalidArgument with the first unknown prop or component it met
  // (docs/engine.md "Props"), Ok otherwise, also when the render failed for
  // another reason (input it needs may be missing). The Gateway calls it on
  // each module it loads, so listWorkflows shows such errors before a
  // launch; `smithers check` after a render failed, to tell a module's
  // mistake from a made-up value's.
  virtual Status CheckComponents(const Json& input, const Ctx::OutputMap* outputs = nullptr) = 0;
};

// Loads and runs the module at `path` (which must return `smithers(render)`).
// InvalidArgument for syntax or runtime errors, naming the file and line.
Result<std::unique_ptr<LuaWorkflow>> LoadWorkflowModule(const std::string& path,
                                                        const ModuleOptions& options = {});

// The same for a source kept elsewhere (a pinned revision): `path` names the
// chunk in error messages and is where `require` looks for siblings, unless
// `siblings` (a pinned revision's) has the module.
Result<std::unique_ptr<LuaWorkflow>> LoadWorkflowModuleSource(
    const std::string& path, const std::string& source,
    std::map<std::string, std::string> siblings = {}, const ModuleOptions& options = {});

}  // namespace smithers::script

#endif  // SMITHERS_SCRIPT_LUA_WORKFLOW_H_
