// Lua values <-> JSON (internal to src/script). A Lua table is a JSON array
// when its keys are 1..n, an object when they are strings; an empty table is
// {} unless smithers.array marked it; smithers.null is JSON null
// (docs/engine.md "Choices").
#ifndef SMITHERS_SCRIPT_LUA_JSON_H_
#define SMITHERS_SCRIPT_LUA_JSON_H_

#include <lua.hpp>
#include <string>
#include <string_view>

#include "smithers/json.h"

namespace smithers::script {

// Converts the value at `idx`. Returns an error message, or "" on success.
// Tables may nest base::MaxJsonDepth() levels (a cycle ends there too).
std::string ToJson(lua_State* ls, int idx, Json& out, int depth = 0);

// Pushes `v` as a Lua value. Returns "" or why it cannot (it nests deeper
// than base::MaxJsonDepth(), checked before any recursion, or Lua's stack
// cannot hold it); then nothing is pushed. `what` names the value.
std::string PushJson(lua_State* ls, const Json& v, std::string_view what = "the value");

// Registers smithers.null (a sentinel under kNullKey) and the metatable of
// smithers.array in a new state.
void SetUpJson(lua_State* ls);

// smithers.array(t): marks t as a JSON array, so {} encodes as [].
int MarkArray(lua_State* ls);

}  // namespace smithers::script

#endif  // SMITHERS_SCRIPT_LUA_JSON_H_
