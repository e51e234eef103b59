// The `ctx` a render function gets (internal to src/script): input, auth,
// runId, iteration and the output lookups of docs/engine.md "Reading
// outputs", read through a handle to the C++ Ctx that is valid only while the
// render runs.
#ifndef SMITHERS_SCRIPT_LUA_CTX_H_
#define SMITHERS_SCRIPT_LUA_CTX_H_

#include <lua.hpp>
#include <string>

#include "smithers/workflow.h"

namespace smithers::script {

struct CtxHandle {
  const Ctx* ctx;  // valid only during a render
};

// Registers the metatable that marks the handle in a new state.
void SetUpCtx(lua_State* ls);

// Pushes the ctx table for a render of `ctx` and sets *handle to its handle;
// the caller sets (*handle)->ctx to nullptr when the render ends, so a ctx
// kept past it cannot reach freed memory. Returns "" or why ctx.input or
// ctx.auth cannot become Lua values (then the handle is already cleared and
// the caller restores the stack).
std::string PushCtx(lua_State* ls, const Ctx& ctx, CtxHandle** handle);

}  // namespace smithers::script

#endif  // SMITHERS_SCRIPT_LUA_CTX_H_
