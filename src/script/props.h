// The props each component, agent and option table of a workflow module
// takes, in one table (docs/engine.md "Props"). A prop that is not in it is
// bad input, never ignored: a misspelt one names its near misses, one that
// Smithers defines but we do not implement yet says so.
//
//   std::string err = CheckProps(ls, 1, "Task");
//   // `Task "build": unknown prop "timeoutMS" (did you mean "timeoutMs"?)`
//
// Adding a prop: add it to the component's row in components.cc (an agent's,
// an option table's: props.cc), or it is refused.
#ifndef SMITHERS_SCRIPT_PROPS_H_
#define SMITHERS_SCRIPT_PROPS_H_

#include <array>
#include <lua.hpp>
#include <string>
#include <string_view>

namespace smithers::script {

// A prop Smithers defines that we do not implement yet, and what to do
// instead ("" = nothing to suggest).
struct UnsupportedProp {
  std::string_view prop;
  std::string_view hint;
};

// Checks the string keys of the table at `idx` against the props of `kind`
// (Workflow, Sequence, Parallel, Branch, Loop, Task, Approval, WaitForEvent,
// Signal, Timer, Agent, ClaudeCodeAgent, CodexAgent, GeminiAgent, options,
// schedule) and, for a Task, its cachePolicy and retryPolicy tables. Integer
// keys (children) are left to the caller. Returns "" or the message, which
// starts with the component and its id (`Task "build": ...`). Raises no Lua
// error; uses a few stack slots and leaves the stack as it was.
//
// With `keys`, and when every key is plainly one of the component's props
// (the common case, decided in one pass), it also records the table's string
// keys there, so a reader can skip looking up the props the table does not
// set; otherwise keys->taken is false.
struct PropKeys {
  static constexpr int kMax = 16;
  bool taken = false;
  int count = 0;
  // The props table's own names (static storage, never Lua's strings): a
  // snapshot, stale once Lua code that changes the table has run.
  std::array<std::string_view, kMax> names;
  // Whether the table may have `name` (always true when not taken).
  bool MayHave(std::string_view name) const {
    if (!taken) return true;
    for (int i = 0; i < count; ++i) {
      if (names[i] == name) return true;
    }
    return false;
  }
};
std::string CheckProps(lua_State* ls, int idx, std::string_view kind, PropKeys* keys = nullptr);

// The message for reading `key`, which the table at `idx` (known to modules
// as `table_name`, e.g. "smithers") lacks: not supported yet, or unknown with
// the table's own names closest to it.
std::string UnknownMember(lua_State* ls, int idx, std::string_view table_name,
                          std::string_view key);

// The registry field that keeps the last props error a constructor raised
// (a string), so a check render can tell it from other failures, also when
// the module caught the error with pcall.
inline constexpr const char* kPropsErrorKey = "smithers.propsError";

// For a constructor (a C function called from Lua): when the table at `idx`
// has bad props, pushes "FILE:LINE: <CheckProps message>" (the position of
// the constructor's call), records it under kPropsErrorKey and returns true;
// the constructor then returns lua_error(ls).
bool PushPropsError(lua_State* ls, int idx, std::string_view kind);

// The __index metamethod of the smithers and smithers.schema tables
// (upvalue 1: the table's name): raises UnknownMember's message, recorded
// under kPropsErrorKey, at the position of the read.
int IndexUnknownMember(lua_State* ls);

// Levenshtein distance, case-insensitive (so "timeoutMS" is 0 from
// "timeoutMs"; a suggestion is made at most 2 away).
int EditDistance(std::string_view a, std::string_view b);

}  // namespace smithers::script

#endif  // SMITHERS_SCRIPT_PROPS_H_
