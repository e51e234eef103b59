// The components of a workflow module (internal to src/script): one row per
// component (Workflow, Sequence, ..., Task, Approval, Timer), naming it, the
// props it takes and the function that reads it into a Node. The
// registration of the constructors in the `smithers` table, the props check
// (props.cc), the conversion of a render's result and its error texts all
// read this table; adding a component is its row and its reading function in
// components.cc (docs/engine.md "Props", src/README.md "Add a component").
//
//   smithers.Timer { id = "wait", duration = "5m" }
//   -> the constructor tags the table (__kind = "Timer", __src = "file.lua:12");
//   -> ToNodeTree finds the row of "Timer" and its to_node reads the rest.
#ifndef SMITHERS_SCRIPT_COMPONENTS_H_
#define SMITHERS_SCRIPT_COMPONENTS_H_

#include <lua.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "script/props.h"
#include "smithers/status.h"
#include "smithers/workflow.h"

namespace smithers::script {

class LuaRef;
class NodeConverter;
struct Text;

struct ComponentRow {
  std::string_view name;   // smithers.<name>, and the __kind its constructor sets
  std::string_view alias;  // another name of its constructor ("" = none)
  // The props it takes and those Smithers defines that we do not (props.h).
  std::vector<std::string_view> props;
  std::vector<UnsupportedProp> unsupported;
  // Reads the table at stack slot `t` into `node`, whose id, skipIf and
  // source are read already; returns an error message ending in `at` (where
  // the component was made), or "".
  std::string (*to_node)(NodeConverter& converter, int t, Node& node, const Text& at);
};

// Every component, in the order error texts list them.
const std::vector<ComponentRow>& ComponentRows();

// The row named `name` (not an alias), or nullptr.
const ComponentRow* FindComponent(std::string_view name);

// Sets the constructors of the components (and their aliases) and of the
// agents (smithers.Agent, ClaudeCodeAgent, ...) in the table on top of the stack.
void AddConstructors(lua_State* ls);

// What the conversion needs of the module it converts for.
class ModuleScope {
 public:
  virtual ~ModuleScope() = default;
  // Runs a compute task's Lua function (held by `fn`) for one attempt.
  virtual Result<Json> CallCompute(const LuaRef& fn, const ComputeContext& c) = 0;
  // Whether `ref` is written as a string literal ("..." or '...') in the
  // module or a sibling it loaded (secret references must be).
  virtual bool LiteralInModule(const std::string& ref) const = 0;
  // The module's folder (relative paths a component names are in it).
  virtual std::string Dir() const = 0;
};

// Converts the component table at `idx` (a render's result) into `root`.
// `ctx_index` is the stack slot of the render's ctx (cachePolicy.by(ctx) is
// called with it; 0 = none); the first bad prop met is kept in
// `props_error` unless it holds one already. Returns an error message or "".
std::string ToNodeTree(lua_State* ls, int idx, Node& root, ModuleScope& module, int ctx_index,
                       std::string& props_error);

}  // namespace smithers::script

#endif  // SMITHERS_SCRIPT_COMPONENTS_H_
