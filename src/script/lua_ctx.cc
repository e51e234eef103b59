#include "script/lua_ctx.h"

#include <optional>
#include <string_view>
#include <utility>

#include "script/lua_json.h"
#include "script/lua_schema.h"
#include "script/lua_state.h"

namespace smithers::script {
namespace {

const Ctx* CheckCtx(lua_State* ls) {
  luaL_checktype(ls, 1, LUA_TTABLE);
  // ctx:method(...) on the ctx the method was set on (upvalue 1, its handle
  // upvalue 2): no lookup. Any other table is read as before, through its
  // __handle.
  if (lua_rawequal(ls, 1, lua_upvalueindex(1))) {
    const auto* h = static_cast<const CtxHandle*>(lua_touserdata(ls, lua_upvalueindex(2)));
    if (h != nullptr && h->ctx != nullptr) return h->ctx;
  }
  lua_getfield(ls, 1, "__handle");
  // Checked: a module may put any userdata into ctx.__handle.
  auto* h = static_cast<CtxHandle*>(luaL_testudata(ls, -1, kCtxMeta));
  lua_pop(ls, 1);
  if (h == nullptr || h->ctx == nullptr) {
    luaL_error(ls, "ctx can only be read while the workflow renders (call it as ctx:method())");
  }
  return h->ctx;
}

int CtxLookup(lua_State* ls, int mode) {
  const Ctx* ctx = CheckCtx(ls);
  bool bad = false;
  bool unloadable = false;  // the row cannot become a Lua value: its message is pushed
  {
    std::string_view output = OutputName(ls, 2);
    bad = output.empty() || lua_type(ls, 3) != LUA_TSTRING;
    if (!bad) {
      size_t len = 0;
      const char* p = lua_tolstring(ls, 3, &len);
      std::string_view node(p, len);
      std::optional<int> iteration;
      if (lua_isinteger(ls, 4)) iteration = static_cast<int>(lua_tointeger(ls, 4));
      const Json* row = nullptr;
      switch (mode) {
        case 0: row = ctx->OutputMaybe(output, node, iteration); break;
        case 1: row = ctx->Latest(output, node); break;
        case 2: lua_pushinteger(ls, ctx->IterationCount(output, node)); return 1;
        default: break;
      }
      if (row == nullptr) {
        lua_pushnil(ls);
      } else if (!PushJson(ls, *row, "").empty()) {
        // Nothing was pushed; again, naming the row, for the message (no
        // name is built on the common path).
        std::string err =
            PushJson(ls, *row, "output " + std::string(output) + " of " + std::string(node));
        unloadable = true;
        lua_pushstring(ls, err.c_str());
      }
    }
  }
  if (unloadable) return lua_error(ls);
  if (bad) return luaL_error(ls, "expected ctx:method(outputs.name, \"nodeId\" [, iteration])");
  return 1;
}
int CtxOutputMaybe(lua_State* ls) { return CtxLookup(ls, 0); }
int CtxLatest(lua_State* ls) { return CtxLookup(ls, 1); }
int CtxIterationCount(lua_State* ls) { return CtxLookup(ls, 2); }
int CtxOutput(lua_State* ls) {
  CtxLookup(ls, 0);
  if (lua_isnil(ls, -1)) {
    if (lua_istable(ls, 2))
      lua_getfield(ls, 2, "__output");
    else
      lua_pushvalue(ls, 2);
    return luaL_error(ls, "ctx:output: no output \"%s\" for node \"%s\" yet (use ctx:outputMaybe)",
                      lua_tostring(ls, -1), luaL_optstring(ls, 3, "?"));
  }
  return 1;
}

}  // namespace

void SetUpCtx(lua_State* ls) {
  luaL_newmetatable(ls, kCtxMeta);  // marks the userdata in ctx.__handle
  lua_pushliteral(ls, "smithers.Ctx");
  lua_setfield(ls, -2, "__metatable");
  lua_pop(ls, 1);
}

std::string PushCtx(lua_State* ls, const Ctx& ctx, CtxHandle** handle) {
  lua_createtable(ls, 0, 10);
  *handle = static_cast<CtxHandle*>(lua_newuserdatauv(ls, sizeof(CtxHandle), 0));
  (*handle)->ctx = &ctx;
  luaL_setmetatable(ls, kCtxMeta);
  lua_setfield(ls, -2, "__handle");
  using Field = std::pair<const char*, const Json*>;
  for (const auto& [name, value] : {Field{"input", &ctx.input()}, Field{"auth", &ctx.auth()}}) {
    std::string err = PushJson(ls, *value, std::string("ctx.") + name);
    if (!err.empty()) {
      (*handle)->ctx = nullptr;
      return err;
    }
    lua_setfield(ls, -2, name);
  }
  lua_pushstring(ls, ctx.run_id().c_str());
  lua_setfield(ls, -2, "runId");
  lua_pushinteger(ls, ctx.iteration());
  lua_setfield(ls, -2, "iteration");
  static const luaL_Reg kCtx[] = {{"outputMaybe", CtxOutputMaybe},
                                  {"output", CtxOutput},
                                  {"latest", CtxLatest},
                                  {"iterationCount", CtxIterationCount},
                                  {nullptr, nullptr}};
  // Each method's upvalues: this ctx table and its handle (CheckCtx).
  lua_pushvalue(ls, -1);
  lua_getfield(ls, -1, "__handle");
  luaL_setfuncs(ls, kCtx, 2);
  return "";
}

}  // namespace smithers::script
