// What the Lua bindings share (internal to src/script): the registry keys
// they keep their state under, references to Lua values, and protected calls.
// Everything that can raise a Lua error runs inside lua_pcall; C functions
// called from Lua destroy their C++ locals before raising (Lua's longjmp skips
// destructors), by pushing the message and returning lua_error() from an
// outer scope.
#ifndef SMITHERS_SCRIPT_LUA_STATE_H_
#define SMITHERS_SCRIPT_LUA_STATE_H_

#include <lua.hpp>
#include <string>

namespace smithers::script {

inline constexpr const char* kSchemaMeta = "smithers.Schema";
inline constexpr const char* kArrayMeta = "smithers.Array";
inline constexpr const char* kOutputsKey = "smithers.outputs";  // registry: name -> Schema userdata
inline constexpr const char* kNullKey = "smithers.null";
inline constexpr const char* kDeadlineKey = "smithers.deadline";
inline constexpr const char* kDeadlineWhatKey = "smithers.deadlineWhat";  // "compute function", ...
inline constexpr const char* kDeadlineClockKey = "smithers.deadlineClock";  // the deadline's Clock*
inline constexpr const char* kCtxMeta = "smithers.Ctx";

// The first line of a Lua error (the traceback follows on later lines), or
// all of it `with_traceback`; pops it.
std::string ErrorAt(lua_State* ls, bool with_traceback);

// Calls the function below `nargs` arguments on the stack with a traceback
// handler. On error returns the message (and pops it).
std::string ProtectedCall(lua_State* ls, int nargs, int nresults);

// A reference to a Lua value in the registry, released with the last copy.
class LuaRef {
 public:
  LuaRef(lua_State* ls, int ref) : state_(ls), ref_(ref) {}
  ~LuaRef() { luaL_unref(state_, LUA_REGISTRYINDEX, ref_); }
  LuaRef(const LuaRef&) = delete;
  LuaRef& operator=(const LuaRef&) = delete;
  void Push() const { lua_rawgeti(state_, LUA_REGISTRYINDEX, ref_); }

 private:
  lua_State* state_;
  int ref_;
};

}  // namespace smithers::script

#endif  // SMITHERS_SCRIPT_LUA_STATE_H_
