// Lua bindings. Everything that can raise a Lua error runs inside lua_pcall;
// C functions called from Lua destroy their C++ locals before raising (Lua's
// longjmp skips destructors), by pushing the message and returning
// lua_error() from an outer scope.
#include "script/lua_workflow.h"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <lua.hpp>
#include <map>
#include <memory>
#include <sstream>

#include "base/hash.h"
#include "base/json_limits.h"
#include "base/secrets.h"
#include "script/props.h"
#include "script/restricted.h"
#include "smithers/clock.h"
#include "smithers/schema.h"

namespace smithers::script {
namespace {

constexpr const char* kSchemaMeta = "smithers.Schema";
constexpr const char* kArrayMeta = "smithers.Array";
constexpr const char* kOutputsKey = "smithers.outputs";  // registry: name -> Schema userdata
constexpr const char* kNullKey = "smithers.null";
constexpr const char* kDeadlineKey = "smithers.deadline";
constexpr const char* kDeadlineWhatKey = "smithers.deadlineWhat";    // "compute function", ...
constexpr const char* kDeadlineClockKey = "smithers.deadlineClock";  // the deadline's Clock*
constexpr const char* kCtxMeta = "smithers.Ctx";
// Components nested deeper than this are refused before the C++ recursion
// that converts them could exhaust the stack.
constexpr int kMaxComponentDepth = 256;

// ---- Lua <-> JSON ----

bool IsNull(lua_State* ls, int idx) {
  lua_getfield(ls, LUA_REGISTRYINDEX, kNullKey);
  bool eq = lua_rawequal(ls, idx < 0 ? idx - 1 : idx, -1);
  lua_pop(ls, 1);
  return eq;
}

bool HasArrayMeta(lua_State* ls, int idx) {
  if (!lua_getmetatable(ls, idx)) return false;
  luaL_getmetatable(ls, kArrayMeta);
  bool eq = lua_rawequal(ls, -1, -2);
  lua_pop(ls, 2);
  return eq;
}

// Converts the value at `idx`. Returns an error message, or "" on success.
// Tables may nest base::MaxJsonDepth() levels (a cycle ends there too).
std::string ToJson(lua_State* ls, int idx, Json& out, int depth = 0) {
  idx = lua_absindex(ls, idx);
  if (lua_type(ls, idx) == LUA_TTABLE && depth >= base::MaxJsonDepth()) {
    return "value nests deeper than " + std::to_string(base::MaxJsonDepth()) +
           " levels of arrays and objects (max_json_depth; a cycle?)";
  }
  // A key and a value per level, and lua_next's own slot.
  if (!lua_checkstack(ls, 4)) return "value nests too deep for Lua's stack";
  switch (lua_type(ls, idx)) {
    case LUA_TNIL: out = nullptr; return "";
    case LUA_TBOOLEAN: out = static_cast<bool>(lua_toboolean(ls, idx)); return "";
    case LUA_TNUMBER:
      if (lua_isinteger(ls, idx)) {
        out = static_cast<int64_t>(lua_tointeger(ls, idx));
      } else {
        out = lua_tonumber(ls, idx);
      }
      return "";
    case LUA_TSTRING: {
      size_t len = 0;
      const char* s = lua_tolstring(ls, idx, &len);
      out = std::string(s, len);
      return "";
    }
    case LUA_TLIGHTUSERDATA:
      if (IsNull(ls, idx)) {
        out = nullptr;
        return "";
      }
      return "cannot convert a light userdata to JSON";
    case LUA_TTABLE: {
      // An array when every key is 1..n; an object when every key is a string.
      lua_Integer max_index = 0;
      size_t count = 0;
      bool all_int = true, all_str = true;
      lua_pushnil(ls);
      while (lua_next(ls, idx) != 0) {
        ++count;
        if (lua_type(ls, -2) == LUA_TNUMBER && lua_isinteger(ls, -2) && lua_tointeger(ls, -2) > 0) {
          max_index = std::max(max_index, lua_tointeger(ls, -2));
          all_str = false;
        } else if (lua_type(ls, -2) == LUA_TSTRING) {
          all_int = false;
        } else {
          lua_pop(ls, 2);
          return "table keys must be strings or positive integers";
        }
        lua_pop(ls, 1);
      }
      if (count == 0) {
        out = HasArrayMeta(ls, idx) ? Json::array() : Json::object();
        return "";
      }
      if (all_int && static_cast<size_t>(max_index) == count) {
        out = Json::array();
        for (lua_Integer i = 1; i <= max_index; ++i) {
          lua_rawgeti(ls, idx, i);
          Json v;
          std::string err = ToJson(ls, -1, v, depth + 1);
          lua_pop(ls, 1);
          if (!err.empty()) return "[" + std::to_string(i) + "]: " + err;
          out.push_back(std::move(v));
        }
        return "";
      }
      if (!all_str) return "a table mixes string and integer keys (or has holes)";
      out = Json::object();
      lua_pushnil(ls);
      while (lua_next(ls, idx) != 0) {
        std::string key = lua_tostring(ls, -2);
        Json v;
        std::string err = ToJson(ls, -1, v, depth + 1);
        lua_pop(ls, 1);
        if (!err.empty()) {
          lua_pop(ls, 1);
          return "." + key + ": " + err;
        }
        out[key] = std::move(v);
      }
      return "";
    }
    default: return std::string("cannot convert a ") + luaL_typename(ls, idx) + " to JSON";
  }
}

// Pushes `v`; its depth was checked (PushJson). False when Lua's stack cannot
// grow (the caller restores the stack).
bool PushJsonChecked(lua_State* ls, const Json& v) {
  if (!lua_checkstack(ls, 3)) return false;
  switch (v.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded: lua_pushnil(ls); break;
    case Json::value_t::boolean: lua_pushboolean(ls, v.get<bool>()); break;
    case Json::value_t::number_integer: lua_pushinteger(ls, v.get<int64_t>()); break;
    case Json::value_t::number_unsigned:
      lua_pushinteger(ls, static_cast<lua_Integer>(v.get<uint64_t>()));
      break;
    case Json::value_t::number_float: lua_pushnumber(ls, v.get<double>()); break;
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      lua_pushlstring(ls, s.data(), s.size());
      break;
    }
    case Json::value_t::array: {
      lua_createtable(ls, static_cast<int>(std::min<size_t>(v.size(), INT32_MAX)), 0);
      lua_Integer i = 1;
      for (const auto& e : v) {
        if (!PushJsonChecked(ls, e)) return false;
        lua_rawseti(ls, -2, i++);
      }
      luaL_setmetatable(ls, kArrayMeta);
      break;
    }
    case Json::value_t::object:
      lua_createtable(ls, 0, static_cast<int>(std::min<size_t>(v.size(), INT32_MAX)));
      for (const auto& [k, e] : v.items()) {
        if (!PushJsonChecked(ls, e)) return false;
        lua_setfield(ls, -2, k.c_str());
      }
      break;
    case Json::value_t::binary: lua_pushnil(ls); break;
  }
  return true;
}

// Pushes `v` as a Lua value. Returns "" or why it cannot (it nests deeper
// than base::MaxJsonDepth(), checked before any recursion, or Lua's stack
// cannot hold it); then nothing is pushed. `what` names the value.
std::string PushJson(lua_State* ls, const Json& v, std::string_view what = "the value") {
  Status depth = base::CheckJsonValueDepth(v, base::MaxJsonDepth(), what);
  if (!depth.ok()) return depth.message();
  int top = lua_gettop(ls);
  if (!PushJsonChecked(ls, v)) {
    lua_settop(ls, top);
    return std::string(what) + " nests too deep for Lua's stack";
  }
  return "";
}

// ---- schemas: full userdata holding a Json ----

Json* ToSchema(lua_State* ls, int idx) {
  return static_cast<Json*>(luaL_testudata(ls, idx, kSchemaMeta));
}

void PushSchema(lua_State* ls, Json schema) {
  void* mem = lua_newuserdatauv(ls, sizeof(Json), 0);
  new (mem) Json(std::move(schema));
  luaL_setmetatable(ls, kSchemaMeta);
}

int SchemaGc(lua_State* ls) {
  static_cast<Json*>(lua_touserdata(ls, 1))->~Json();
  return 0;
}

Json* CheckSchemaArg(lua_State* ls, int idx, const char* fn) {
  Json* s = ToSchema(ls, idx);
  if (s == nullptr) luaL_error(ls, "%s: argument %d must be a schema", fn, idx);
  return s;
}

int ZSimple(lua_State* ls, Json (*make)()) {
  PushSchema(ls, make());
  return 1;
}
int ZString(lua_State* ls) { return ZSimple(ls, schema::String); }
int ZNumber(lua_State* ls) { return ZSimple(ls, schema::Number); }
int ZInteger(lua_State* ls) { return ZSimple(ls, schema::Integer); }
int ZBoolean(lua_State* ls) { return ZSimple(ls, schema::Boolean); }
int ZNull(lua_State* ls) { return ZSimple(ls, schema::Null); }
int ZAny(lua_State* ls) {
  PushSchema(ls, Json::object());
  return 1;
}

int ZObject(lua_State* ls) {
  luaL_checktype(ls, 1, LUA_TTABLE);
  // Validate first, while no C++ object is alive that an error would leak.
  lua_pushnil(ls);
  while (lua_next(ls, 1) != 0) {
    if (lua_type(ls, -2) != LUA_TSTRING)
      return luaL_error(ls, "object: field names must be strings");
    if (ToSchema(ls, -1) == nullptr) {
      return luaL_error(ls, "object: field \"%s\" must be a schema", lua_tostring(ls, -2));
    }
    lua_pop(ls, 1);
  }
  {
    std::vector<std::string> names;
    lua_pushnil(ls);
    while (lua_next(ls, 1) != 0) {
      names.emplace_back(lua_tostring(ls, -2));
      lua_pop(ls, 1);
    }
    std::sort(names.begin(), names.end());
    std::vector<std::pair<std::string, Json>> props;
    for (const auto& n : names) {
      lua_getfield(ls, 1, n.c_str());
      props.emplace_back(n, *ToSchema(ls, -1));
      lua_pop(ls, 1);
    }
    PushSchema(ls, schema::Object(props));
  }
  return 1;
}

int ZEnum(lua_State* ls) {
  luaL_checktype(ls, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(ls, 1);
  for (lua_Integer i = 1; i <= n; ++i) {
    if (lua_rawgeti(ls, 1, i) != LUA_TSTRING) return luaL_error(ls, "enum: values must be strings");
    lua_pop(ls, 1);
  }
  {
    std::vector<std::string> values;
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(ls, 1, i);
      values.emplace_back(lua_tostring(ls, -1));
      lua_pop(ls, 1);
    }
    PushSchema(ls, schema::Enum(values));
  }
  return 1;
}

int ZLiteral(lua_State* ls) {
  bool ok;
  {
    Json v;
    ok = ToJson(ls, 1, v).empty();
    if (ok) PushSchema(ls, schema::Literal(v));
  }
  if (!ok) return luaL_error(ls, "literal: value is not JSON");
  return 1;
}

int ZWrap(lua_State* ls, const char* fn, Json (*wrap)(const Json&)) {
  Json* s = CheckSchemaArg(ls, 1, fn);
  PushSchema(ls, wrap(*s));
  return 1;
}
int ZArray(lua_State* ls) { return ZWrap(ls, "array", schema::Array); }
int ZRecord(lua_State* ls) { return ZWrap(ls, "record", schema::Record); }
int ZOptional(lua_State* ls) { return ZWrap(ls, "optional", schema::Optional); }
int ZNullable(lua_State* ls) { return ZWrap(ls, "nullable", schema::Nullable); }
int ZDescribe(lua_State* ls) {
  Json* s = CheckSchemaArg(ls, 1, "describe");
  const char* text = luaL_checkstring(ls, 2);
  PushSchema(ls, schema::Describe(*s, text));
  return 1;
}
// schema:json() -> the JSON Schema as a string (handy for debugging modules).
int SchemaJson(lua_State* ls) {
  Json* s = CheckSchemaArg(ls, 1, "json");
  {
    std::string text = s->dump();
    lua_pushlstring(ls, text.data(), text.size());
  }
  return 1;
}

// smithers.outputs { name = schema, ... } -> { name = { __output = name } }
int Outputs(lua_State* ls) {
  luaL_checktype(ls, 1, LUA_TTABLE);
  lua_getfield(ls, LUA_REGISTRYINDEX, kOutputsKey);
  int registry = lua_gettop(ls);
  lua_newtable(ls);
  int result = lua_gettop(ls);
  lua_pushnil(ls);
  while (lua_next(ls, 1) != 0) {
    if (lua_type(ls, -2) != LUA_TSTRING) return luaL_error(ls, "outputs: names must be strings");
    const char* name = lua_tostring(ls, -2);
    Json* s = ToSchema(ls, -1);
    if (s == nullptr) return luaL_error(ls, "outputs: \"%s\" must be a schema", name);
    if (!s->is_object() || s->value("type", "") != "object") {
      return luaL_error(ls, "outputs: \"%s\" must be an object schema (z.object{...})", name);
    }
    lua_pushvalue(ls, -1);
    lua_setfield(ls, registry, name);
    lua_createtable(ls, 0, 2);
    lua_pushstring(ls, name);
    lua_setfield(ls, -2, "__output");
    lua_pushvalue(ls, -2);
    lua_setfield(ls, -2, "schema");
    lua_setfield(ls, result, name);
    lua_pop(ls, 1);
  }
  lua_pushvalue(ls, result);
  return 1;
}

// ---- components: tables tagged with their kind and where they were made ----

int Component(lua_State* ls, const char* kind) {
  if (lua_type(ls, 1) != LUA_TTABLE) {
    return luaL_error(ls, "%s expects a table, e.g. %s { ... }", kind, kind);
  }
  if (PushPropsError(ls, 1, kind)) return lua_error(ls);
  lua_pushstring(ls, kind);
  lua_setfield(ls, 1, "__kind");
  lua_Debug ar;
  if (lua_getstack(ls, 1, &ar) && lua_getinfo(ls, "Sl", &ar) && ar.currentline > 0) {
    // "%s:%d" without lua_pushfstring's vsnprintf: one per component per render.
    char src[LUA_IDSIZE + 24];
    size_t len = strnlen(ar.short_src, LUA_IDSIZE);
    std::memcpy(src, ar.short_src, len);
    src[len++] = ':';
    len = static_cast<size_t>(std::to_chars(src + len, src + sizeof src, ar.currentline).ptr - src);
    lua_pushlstring(ls, src, len);
    lua_setfield(ls, 1, "__src");
  }
  lua_settop(ls, 1);
  return 1;
}
int CWorkflow(lua_State* ls) { return Component(ls, "Workflow"); }
int CSequence(lua_State* ls) { return Component(ls, "Sequence"); }
int CParallel(lua_State* ls) { return Component(ls, "Parallel"); }
int CBranch(lua_State* ls) { return Component(ls, "Branch"); }
int CLoop(lua_State* ls) { return Component(ls, "Loop"); }
int CTask(lua_State* ls) { return Component(ls, "Task"); }
int CApproval(lua_State* ls) { return Component(ls, "Approval"); }
int CWaitForEvent(lua_State* ls) { return Component(ls, "WaitForEvent"); }
int CSignal(lua_State* ls) { return Component(ls, "Signal"); }
int CTimer(lua_State* ls) { return Component(ls, "Timer"); }

// ---- agents: tables of settings, tagged with their kind ----

int MakeAgent(lua_State* ls, const char* kind, const char* component) {
  luaL_checktype(ls, 1, LUA_TTABLE);
  if (PushPropsError(ls, 1, component)) return lua_error(ls);
  // The sandbox's switches are booleans: running tools without isolation (or
  // with the network) is an explicit choice, never a "yes" or a typo.
  for (const char* prop : {"unisolatedTools", "allowNetwork"}) {
    lua_getfield(ls, 1, prop);
    if (!lua_isnil(ls, -1) && !lua_isboolean(ls, -1)) {
      return luaL_error(ls, "Agent: %s must be true or false, not a %s", prop,
                        luaL_typename(ls, -1));
    }
    lua_pop(ls, 1);
  }
  if (kind == nullptr) {  // smithers.Agent: the provider names the kind
    lua_getfield(ls, 1, "provider");
    const char* p = lua_tostring(ls, -1);
    std::string provider = p != nullptr ? p : "openai";
    lua_pop(ls, 1);
    if (provider != "openai" && provider != "anthropic") {
      return luaL_error(ls, "Agent: provider must be \"openai\" or \"anthropic\", not \"%s\"",
                        provider.c_str());
    }
    lua_pushstring(ls, provider.c_str());
  } else {
    lua_pushstring(ls, kind);
  }
  lua_setfield(ls, 1, "kind");
  lua_settop(ls, 1);
  return 1;
}
int CAgent(lua_State* ls) { return MakeAgent(ls, nullptr, "Agent"); }
int CClaudeCodeAgent(lua_State* ls) { return MakeAgent(ls, "claude-code", "ClaudeCodeAgent"); }
int CCodexAgent(lua_State* ls) { return MakeAgent(ls, "codex", "CodexAgent"); }
int CGeminiAgent(lua_State* ls) { return MakeAgent(ls, "gemini", "GeminiAgent"); }

// smithers.array(t): marks t as a JSON array, so {} encodes as [].
int MarkArray(lua_State* ls) {
  luaL_checktype(ls, 1, LUA_TTABLE);
  luaL_setmetatable(ls, kArrayMeta);
  lua_settop(ls, 1);
  return 1;
}

// smithers(render [, { input = schema, name = "...", defaultApprovalOwner = "...",
//                       schedule = "cron" | { cron = "...", timeZone = "...", input = {...},
//                                            enabled = bool } }]) -> workflow table
int MakeWorkflow(lua_State* ls) {
  // Called as smithers(...) through __call: argument 1 is the module table.
  luaL_checktype(ls, 2, LUA_TFUNCTION);
  if (!lua_isnoneornil(ls, 3)) luaL_checktype(ls, 3, LUA_TTABLE);
  if (lua_istable(ls, 3)) {
    if (PushPropsError(ls, 3, "options")) return lua_error(ls);
    lua_getfield(ls, 3, "schedule");
    bool bad = lua_istable(ls, -1) && PushPropsError(ls, -1, "schedule");
    if (bad) return lua_error(ls);
    lua_pop(ls, 1);
  }
  lua_createtable(ls, 0, 4);
  lua_pushboolean(ls, 1);
  lua_setfield(ls, -2, "__workflow");
  lua_pushvalue(ls, 2);
  lua_setfield(ls, -2, "render");
  if (lua_istable(ls, 3)) {
    lua_getfield(ls, 3, "input");
    if (!lua_isnil(ls, -1) && ToSchema(ls, -1) == nullptr) {
      return luaL_error(ls, "smithers(render, opts): opts.input must be a schema");
    }
    lua_setfield(ls, -2, "input");
    lua_getfield(ls, 3, "name");
    lua_setfield(ls, -2, "name");
    lua_getfield(ls, 3, "defaultApprovalOwner");
    if (!lua_isnil(ls, -1) && lua_type(ls, -1) != LUA_TSTRING) {
      return luaL_error(ls, "smithers(render, opts): opts.defaultApprovalOwner must be a string");
    }
    lua_setfield(ls, -2, "defaultApprovalOwner");
    lua_getfield(ls, 3, "schedule");
    if (lua_istable(ls, -1)) {
      lua_getfield(ls, -1, "cron");
      bool ok = lua_type(ls, -1) == LUA_TSTRING;
      lua_getfield(ls, -2, "timeZone");
      ok = ok && (lua_isnil(ls, -1) || lua_type(ls, -1) == LUA_TSTRING);
      lua_getfield(ls, -3, "input");
      ok = ok && (lua_isnil(ls, -1) || lua_istable(ls, -1));
      lua_getfield(ls, -4, "enabled");
      ok = ok && (lua_isnil(ls, -1) || lua_isboolean(ls, -1));
      lua_pop(ls, 4);
      if (!ok) {
        return luaL_error(ls,
                          "smithers(render, opts): opts.schedule must be a cron string or "
                          "{ cron = string, timeZone = string?, input = table?, enabled = "
                          "boolean? }");
      }
    } else if (!lua_isnil(ls, -1) && lua_type(ls, -1) != LUA_TSTRING) {
      return luaL_error(ls,
                        "smithers(render, opts): opts.schedule must be a cron string or a table");
    }
    lua_setfield(ls, -2, "schedule");
  }
  return 1;
}

// ---- ctx ----

struct CtxHandle {
  const Ctx* ctx;  // valid only during a render
};

const Ctx* CheckCtx(lua_State* ls) {
  luaL_checktype(ls, 1, LUA_TTABLE);
  lua_getfield(ls, 1, "__handle");
  // Checked: a module may put any userdata into ctx.__handle.
  auto* h = static_cast<CtxHandle*>(luaL_testudata(ls, -1, kCtxMeta));
  lua_pop(ls, 1);
  if (h == nullptr || h->ctx == nullptr) {
    luaL_error(ls, "ctx can only be read while the workflow renders (call it as ctx:method())");
  }
  return h->ctx;
}

// The output name from an outputs entry ({__output=...}) or a plain string.
// The view stays valid while the value at `idx` is on the stack (the entry
// holds the string).
std::string_view OutputName(lua_State* ls, int idx) {
  size_t len = 0;
  if (lua_type(ls, idx) == LUA_TSTRING) {
    const char* p = lua_tolstring(ls, idx, &len);
    return {p, len};
  }
  if (lua_type(ls, idx) != LUA_TTABLE) return {};
  if (lua_getmetatable(ls, idx)) {
    lua_pop(ls, 1);  // not an outputs entry; reading it could run code
    return {};
  }
  lua_getfield(ls, idx, "__output");  // a raw table: no metamethod runs
  std::string_view name;
  if (lua_type(ls, -1) == LUA_TSTRING) {
    const char* p = lua_tolstring(ls, -1, &len);
    name = {p, len};
  }
  lua_pop(ls, 1);  // the table at idx still references the string
  return name;
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

int OpenSmithers(lua_State* ls) {
  static const luaL_Reg kFns[] = {{"Workflow", CWorkflow},
                                  {"Sequence", CSequence},
                                  {"Parallel", CParallel},
                                  {"Branch", CBranch},
                                  {"Loop", CLoop},
                                  {"Ralph", CLoop},
                                  {"Task", CTask},
                                  {"outputs", Outputs},
                                  {"Approval", CApproval},
                                  {"WaitForEvent", CWaitForEvent},
                                  {"Signal", CSignal},
                                  {"Timer", CTimer},
                                  {"Agent", CAgent},
                                  {"ClaudeCodeAgent", CClaudeCodeAgent},
                                  {"CodexAgent", CCodexAgent},
                                  {"GeminiAgent", CGeminiAgent},
                                  {"array", MarkArray},
                                  {nullptr, nullptr}};
  static const luaL_Reg kZ[] = {
      {"string", ZString},     {"number", ZNumber},     {"integer", ZInteger},
      {"boolean", ZBoolean},   {"null", ZNull},         {"any", ZAny},
      {"object", ZObject},     {"enum", ZEnum},         {"literal", ZLiteral},
      {"array", ZArray},       {"record", ZRecord},     {"optional", ZOptional},
      {"nullable", ZNullable}, {"describe", ZDescribe}, {nullptr, nullptr}};
  luaL_newlib(ls, kFns);
  luaL_newlib(ls, kZ);
  lua_setfield(ls, -2, "schema");
  lua_getfield(ls, LUA_REGISTRYINDEX, kNullKey);
  lua_setfield(ls, -2, "null");
  // An unknown field is an error naming it (smithers.MergeQueue is not
  // supported yet; smithers.Taks: did you mean Task?), not a nil to call.
  lua_getfield(ls, -1, "schema");
  lua_createtable(ls, 0, 1);
  lua_pushliteral(ls, "smithers.schema");
  lua_pushcclosure(ls, IndexUnknownMember, 1);
  lua_setfield(ls, -2, "__index");
  lua_setmetatable(ls, -2);
  lua_pop(ls, 1);
  // Calling the module table makes a workflow: smithers(render).
  lua_createtable(ls, 0, 2);
  lua_pushcfunction(ls, MakeWorkflow);
  lua_setfield(ls, -2, "__call");
  lua_pushliteral(ls, "smithers");
  lua_pushcclosure(ls, IndexUnknownMember, 1);
  lua_setfield(ls, -2, "__index");
  lua_setmetatable(ls, -2);
  // smithers.approvalDecision: the output schema of an Approval node.
  static const char kDecision[] =
      "local m = ...\n"
      "local z = m.schema\n"
      "m.approvalDecision = z.object { approved = z.boolean(), note = z.nullable(z.string()),\n"
      "  decidedBy = z.string(), decidedAt = z.string() }\n";
  luaL_loadbuffer(ls, kDecision, sizeof kDecision - 1, "=smithers");
  lua_pushvalue(ls, -2);
  lua_call(ls, 1, 0);
  return 1;
}

void SetUpState(lua_State* ls) {
  luaL_openlibs(ls);
  lua_pushlightuserdata(ls, ls);  // a unique non-nil sentinel for JSON null
  lua_setfield(ls, LUA_REGISTRYINDEX, kNullKey);
  lua_newtable(ls);
  lua_setfield(ls, LUA_REGISTRYINDEX, kOutputsKey);
  luaL_newmetatable(ls, kArrayMeta);
  lua_pop(ls, 1);
  luaL_newmetatable(ls, kSchemaMeta);
  lua_pushcfunction(ls, SchemaGc);
  lua_setfield(ls, -2, "__gc");
  // getmetatable(schema) gives this name, not the table: its __gc called by
  // hand would destroy the Json twice.
  lua_pushliteral(ls, "smithers.Schema");
  lua_setfield(ls, -2, "__metatable");
  lua_createtable(ls, 0, 4);
  static const luaL_Reg kMethods[] = {{"optional", ZOptional},
                                      {"nullable", ZNullable},
                                      {"describe", ZDescribe},
                                      {"json", SchemaJson},
                                      {nullptr, nullptr}};
  luaL_setfuncs(ls, kMethods, 0);
  lua_setfield(ls, -2, "__index");
  lua_pop(ls, 1);
  luaL_newmetatable(ls, kCtxMeta);  // marks the userdata in ctx.__handle
  lua_pushliteral(ls, "smithers.Ctx");
  lua_setfield(ls, -2, "__metatable");
  lua_pop(ls, 1);
  luaL_getsubtable(ls, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(ls, OpenSmithers);
  lua_setfield(ls, -2, "smithers");
  lua_pop(ls, 1);
}

int Traceback(lua_State* ls) {
  const char* msg = lua_tostring(ls, 1);
  if (msg == nullptr) msg = luaL_tolstring(ls, 1, nullptr);
  luaL_traceback(ls, ls, msg, 1);
  return 1;
}

// The first line of a Lua error (the traceback follows on later lines).
std::string ErrorAt(lua_State* ls, bool with_traceback) {
  std::string msg = lua_tostring(ls, -1) != nullptr ? lua_tostring(ls, -1) : "unknown Lua error";
  lua_pop(ls, 1);
  if (!with_traceback) {
    size_t nl = msg.find('\n');
    if (nl != std::string::npos) msg.resize(nl);
  }
  return msg;
}

// Calls the function below `nargs` arguments on the stack with a traceback
// handler. On error returns the message (and pops it).
std::string ProtectedCall(lua_State* ls, int nargs, int nresults) {
  EnforceMemoryCap cap(ls);  // a restricted module's memory limit holds inside
  int base = lua_gettop(ls) - nargs;
  lua_pushcfunction(ls, Traceback);
  lua_insert(ls, base);
  int rc = lua_pcall(ls, nargs, nresults, base);
  lua_remove(ls, base);
  if (rc == LUA_OK) return "";
  return ErrorAt(ls, false);
}

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

// Enforces a compute function's timeout (and a restricted module's load and
// render time) from inside the Lua VM.
void DeadlineHook(lua_State* ls, lua_Debug*) {
  lua_getfield(ls, LUA_REGISTRYINDEX, kDeadlineKey);
  lua_Integer deadline = lua_tointeger(ls, -1);
  lua_getfield(ls, LUA_REGISTRYINDEX, kDeadlineClockKey);
  auto* clock = static_cast<Clock*>(lua_touserdata(ls, -1));
  lua_pop(ls, 2);
  if (deadline > 0 && (clock != nullptr ? *clock : SystemClock()).MonotonicMs() >= deadline) {
    lua_getfield(ls, LUA_REGISTRYINDEX, kDeadlineWhatKey);
    luaL_error(ls, "%s timed out", luaL_optstring(ls, -1, "compute function"));
  }
}

// Text for an error message, made only when one is needed: head, then the
// number (if >= 0), then *middle, then tail; "" when `optional` and *middle is
// empty. The converter names every node (" (at file.lua:12)", `Task "build"`,
// "child 3") in its messages; made eagerly, that was a few allocations per
// node per render for messages a valid tree never shows.
struct Text {
  std::string_view head;
  const std::string* middle = nullptr;
  std::string_view tail;
  bool optional = false;
  int64_t number = -1;
  Text(const char* text) : head(text) {}  // NOLINT(google-explicit-constructor)
  Text(std::string_view h, const std::string* m, std::string_view t, bool optional_text = false,
       int64_t n = -1)
      : head(h), middle(m), tail(t), optional(optional_text), number(n) {}
  std::string Str() const {
    if (optional && (middle == nullptr || middle->empty())) return "";
    std::string s(head);
    if (number >= 0) s += std::to_string(number);
    if (middle != nullptr) s += *middle;
    s += tail;
    return s;
  }
};
std::string operator+(const Text& a, const char* b) { return a.Str() + b; }
std::string operator+(const std::string& a, const Text& b) { return a + b.Str(); }
std::string operator+(std::string&& a, const Text& b) { return std::move(a) + b.Str(); }
std::string operator+(const char* a, const Text& b) { return a + b.Str(); }

class LuaModule final : public LuaWorkflow {
 public:
  explicit LuaModule(const ModuleOptions& options)
      : options_(options), memory_cap_(options.max_memory_bytes), state_(luaL_newstate()) {
    if (options_.restricted) memory_cap_.Install(state_);
    SetUpState(state_);
  }
  ~LuaModule() override {
    // Refs held by the definition's closures must be released before the state.
    def_ = WorkflowDefinition();
    render_.reset();
    lua_close(state_);
  }

  const WorkflowDefinition& definition() const override { return def_; }
  const std::string& source() const override { return source_; }
  const std::optional<ModuleSchedule>& schedule() const override { return schedule_; }

  const std::map<std::string, std::string>& siblings() const override { return siblings_; }

  Status CheckComponents(const Json& input) override {
    lua_pushnil(state_);
    lua_setfield(state_, LUA_REGISTRYINDEX, kPropsErrorKey);
    props_error_.clear();
    Json in = input.is_null() ? Json::object() : input;
    Ctx::OutputMap none;
    Ctx ctx("", &in, &none, 0);
    if (def_.render) (void)def_.render(ctx);  // other failures may be the missing input's
    lua_getfield(state_, LUA_REGISTRYINDEX, kPropsErrorKey);
    std::string raised = lua_isstring(state_, -1) ? lua_tostring(state_, -1) : "";
    lua_pop(state_, 1);
    if (!raised.empty()) return InvalidArgumentError(raised);
    if (!props_error_.empty()) return InvalidArgumentError(props_error_);
    return Status::Ok();
  }

  Status Load(const std::string& path, const std::string& source,
              std::map<std::string, std::string> pinned) {
    source_ = source;
    pinned_ = std::move(pinned);
    // Let the module require its siblings, through a searcher of our own put
    // before Lua's file searcher: it records what it loads (or serves it from
    // a pinned revision).
    dir_ = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
    if (options_.restricted) {
      policy_ = MakeFilePolicy(dir_, options_.workspace);
      RestrictStandardLibrary(state_, &policy_);
    }
    lua_getglobal(state_, "package");
    lua_getfield(state_, -1, "searchers");
    for (auto i = static_cast<lua_Integer>(luaL_len(state_, -1)); i >= 2; --i) {
      lua_rawgeti(state_, -1, i);
      lua_rawseti(state_, -2, i + 1);
    }
    lua_pushlightuserdata(state_, this);
    lua_pushcclosure(state_, &LuaModule::SiblingSearcher, 1);
    lua_rawseti(state_, -2, 2);
    lua_pop(state_, 2);

    std::string chunk = "@" + path;
    // Text only: bytecode is not checked by Lua and can corrupt memory.
    if (luaL_loadbufferx(state_, source.data(), source.size(), chunk.c_str(), "t") != LUA_OK) {
      return InvalidArgumentError("syntax error: " + ErrorAt(state_, false));
    }
    ArmDeadline("module load");
    std::string err = ProtectedCall(state_, 0, 1);
    DisarmDeadline();
    if (!err.empty()) return InvalidArgumentError("error loading module: " + err);
    // Read below without a protected call: a metatable's __index could raise.
    if (lua_istable(state_, -1) && lua_getmetatable(state_, -1)) {
      lua_pop(state_, 2);
      lua_pushnil(state_);
    }
    if (!lua_istable(state_, -1)) {
      lua_pop(state_, 1);
      return InvalidArgumentError(path +
                                  ": the module must return smithers(function(ctx) ... end)");
    }
    lua_getfield(state_, -1, "__workflow");
    bool is_wf = lua_toboolean(state_, -1);
    lua_pop(state_, 1);
    if (!is_wf) {
      lua_pop(state_, 1);
      return InvalidArgumentError(path +
                                  ": the module must return smithers(function(ctx) ... end)");
    }
    lua_getfield(state_, -1, "render");
    render_ = std::make_shared<LuaRef>(state_, luaL_ref(state_, LUA_REGISTRYINDEX));
    lua_getfield(state_, -1, "input");
    if (Json* s = ToSchema(state_, -1)) def_.input_schema = *s;
    lua_pop(state_, 1);
    lua_getfield(state_, -1, "name");
    if (lua_isstring(state_, -1)) def_.name = lua_tostring(state_, -1);
    lua_pop(state_, 1);
    lua_getfield(state_, -1, "defaultApprovalOwner");
    if (lua_isstring(state_, -1)) def_.default_approval_owner = lua_tostring(state_, -1);
    lua_pop(state_, 1);
    lua_getfield(state_, -1, "schedule");
    if (lua_istable(state_, -1) && lua_getmetatable(state_, -1)) {
      lua_settop(state_, 0);
      return InvalidArgumentError(path + ": opts.schedule must be a plain table");
    }
    if (lua_type(state_, -1) == LUA_TSTRING) {
      schedule_ = ModuleSchedule{.cron = lua_tostring(state_, -1)};
    } else if (lua_istable(state_, -1)) {
      ModuleSchedule s;
      lua_getfield(state_, -1, "cron");
      s.cron = lua_tostring(state_, -1);
      lua_getfield(state_, -2, "timeZone");
      if (lua_isstring(state_, -1)) s.time_zone = lua_tostring(state_, -1);
      lua_getfield(state_, -3, "input");
      if (lua_istable(state_, -1)) {
        std::string err = ToJson(state_, -1, s.input);
        if (!err.empty()) {
          lua_settop(state_, 0);
          return InvalidArgumentError(path + ": opts.schedule.input: " + err);
        }
      }
      lua_getfield(state_, -4, "enabled");
      if (lua_isboolean(state_, -1)) s.enabled = lua_toboolean(state_, -1) != 0;
      lua_pop(state_, 4);
      schedule_ = std::move(s);
    }
    lua_pop(state_, 2);

    lua_getfield(state_, LUA_REGISTRYINDEX, kOutputsKey);
    lua_pushnil(state_);
    while (lua_next(state_, -2) != 0) {
      def_.outputs[lua_tostring(state_, -2)] = *ToSchema(state_, -1);
      lua_pop(state_, 1);
    }
    lua_pop(state_, 1);

    if (def_.name.empty()) {
      std::string base =
          path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
      def_.name = base.substr(0, base.rfind('.'));
    }
    def_.source_path = path;
    // The revision covers the siblings the module required while loading:
    // each appended with its name and length, so no two bundles collide.
    std::string bundle = source;
    for (const auto& [name, text] : siblings_) {
      bundle += std::string(1, '\0') + name + '\0' + std::to_string(text.size()) + '\0' + text;
    }
    def_.source_hash = base::Sha256Hex(bundle);
    def_.render = [this](const Ctx& ctx) { return Render(ctx); };
    return Status::Ok();
  }

 private:
  Result<Node> Render(const Ctx& ctx) {
    int top = lua_gettop(state_);
    CtxHandle* handle = nullptr;
    render_->Push();
    // ctx table
    lua_createtable(state_, 0, 10);
    handle = static_cast<CtxHandle*>(lua_newuserdatauv(state_, sizeof(CtxHandle), 0));
    handle->ctx = &ctx;
    luaL_setmetatable(state_, kCtxMeta);
    lua_setfield(state_, -2, "__handle");
    using Field = std::pair<const char*, const Json*>;
    for (const auto& [name, value] : {Field{"input", &ctx.input()}, Field{"auth", &ctx.auth()}}) {
      std::string err = PushJson(state_, *value, std::string("ctx.") + name);
      if (!err.empty()) {
        handle->ctx = nullptr;
        lua_settop(state_, top);
        return InvalidArgumentError("render failed: " + err);
      }
      lua_setfield(state_, -2, name);
    }
    lua_pushstring(state_, ctx.run_id().c_str());
    lua_setfield(state_, -2, "runId");
    lua_pushinteger(state_, ctx.iteration());
    lua_setfield(state_, -2, "iteration");
    static const luaL_Reg kCtx[] = {{"outputMaybe", CtxOutputMaybe},
                                    {"output", CtxOutput},
                                    {"latest", CtxLatest},
                                    {"iterationCount", CtxIterationCount},
                                    {nullptr, nullptr}};
    luaL_setfuncs(state_, kCtx, 0);
    // A second reference to ctx stays below the call: cachePolicy.by(ctx) is
    // evaluated with it while the result is converted.
    lua_pushvalue(state_, -1);
    lua_insert(state_, -3);
    ctx_index_ = lua_absindex(state_, -3);
    ArmDeadline("render");
    std::string err = ProtectedCall(state_, 1, 1);
    if (!err.empty()) {
      DisarmDeadline();
      handle->ctx = nullptr;  // a ctx kept past the render must not reach freed memory
      lua_settop(state_, top);
      return InvalidArgumentError("render failed: " + err);
    }
    Node root;
    std::string conv = ToNode(lua_gettop(state_), root, "the render function's result");
    DisarmDeadline();
    handle->ctx = nullptr;
    ctx_index_ = 0;
    lua_settop(state_, top);
    CollectRenderGarbage();
    if (!conv.empty()) return InvalidArgumentError(conv);
    return root;
  }

  // The render's tables are garbage once converted, but Lua's incremental
  // collector lags behind a burst that builds a large tree: they would stay
  // alive through the commit that follows (the Node tree, the frame and the
  // batch), the run's peak. So a render collects in full when the heap has
  // doubled since the last full collection and is past 1 MiB: amortised over
  // the bytes allocated (as Lua's own pause is), never for a small tree.
  // chain-deps at N = 10,000: peak RSS 54.8 MB -> 48.4 MB (bench/README.md).
  void CollectRenderGarbage() {
    constexpr int kMinHeapKb = 1024;
    const int heap_kb = lua_gc(state_, LUA_GCCOUNT);
    if (heap_kb < kMinHeapKb || heap_kb < 2 * collected_heap_kb_) return;
    lua_gc(state_, LUA_GCCOLLECT);
    collected_heap_kb_ = lua_gc(state_, LUA_GCCOUNT);
  }

  // A restricted module's load or render (with its conversion) raises
  // "<what> timed out" past max_render_ms: an endless loop in a module must
  // not hold the Gateway.
  void ArmDeadline(const char* what) {
    if (!options_.restricted || options_.max_render_ms <= 0) return;
    // Render time is the process's own: always on the system clock.
    lua_pushinteger(state_, SystemClock().MonotonicMs() + options_.max_render_ms);
    lua_setfield(state_, LUA_REGISTRYINDEX, kDeadlineKey);
    lua_pushlightuserdata(state_, &SystemClock());
    lua_setfield(state_, LUA_REGISTRYINDEX, kDeadlineClockKey);
    lua_pushstring(state_, what);
    lua_setfield(state_, LUA_REGISTRYINDEX, kDeadlineWhatKey);
    lua_sethook(state_, DeadlineHook, LUA_MASKCOUNT, 1000);
  }
  void DisarmDeadline() {
    if (options_.restricted && options_.max_render_ms > 0) lua_sethook(state_, nullptr, 0, 0);
  }

  // ---- Lua component tables -> Node ----

  std::string FieldString(int t, const char* name, std::string& out) {
    lua_getfield(state_, t, name);
    std::string err;
    if (lua_type(state_, -1) == LUA_TSTRING) {
      out = lua_tostring(state_, -1);
    } else if (!lua_isnil(state_, -1)) {
      err = std::string("\"") + name + "\" must be a string";
    }
    lua_pop(state_, 1);
    return err;
  }

  // A list of non-empty strings, e.g. allowedUsers = { "alice", "bob" }.
  std::string FieldStrings(int t, const char* name, std::vector<std::string>& out) {
    lua_getfield(state_, t, name);
    std::string err;
    if (lua_istable(state_, -1)) {
      lua_Integer n = static_cast<lua_Integer>(lua_rawlen(state_, -1));
      lua_Integer count = 0;
      lua_pushnil(state_);
      while (lua_next(state_, -2) != 0) {
        count++;
        lua_pop(state_, 1);
      }
      if (count != n) err = std::string("\"") + name + "\" must be a list of strings";
      for (lua_Integer i = 1; err.empty() && i <= n; ++i) {
        lua_rawgeti(state_, -1, i);
        if (lua_type(state_, -1) == LUA_TSTRING && lua_rawlen(state_, -1) > 0) {
          out.emplace_back(lua_tostring(state_, -1));
        } else {
          err = std::string("\"") + name + "\" must be a list of non-empty strings";
        }
        lua_pop(state_, 1);
      }
    } else if (!lua_isnil(state_, -1)) {
      err = std::string("\"") + name + "\" must be a list of strings";
    }
    lua_pop(state_, 1);
    return err;
  }

  std::string FieldInt(int t, const char* name, int64_t& out) {
    lua_getfield(state_, t, name);
    std::string err;
    if (lua_isinteger(state_, -1)) {
      out = lua_tointeger(state_, -1);
    } else if (lua_type(state_, -1) == LUA_TNUMBER) {
      double d = lua_tonumber(state_, -1);
      if (d != static_cast<double>(static_cast<int64_t>(d))) {
        err = std::string("\"") + name + "\" must be an integer";
      } else {
        out = static_cast<int64_t>(d);
      }
    } else if (!lua_isnil(state_, -1)) {
      err = std::string("\"") + name + "\" must be a number";
    }
    lua_pop(state_, 1);
    return err;
  }

  bool FieldBool(int t, const char* name) {
    lua_getfield(state_, t, name);
    bool b = lua_toboolean(state_, -1);
    lua_pop(state_, 1);
    return b;
  }

  // Positional children 1..max, skipping nil and false wherever they stand.
  std::string Children(int t, Node& node) {
    lua_Integer max_index = 0;
    lua_pushnil(state_);
    while (lua_next(state_, t) != 0) {
      if (lua_isinteger(state_, -2)) max_index = std::max(max_index, lua_tointeger(state_, -2));
      lua_pop(state_, 1);
    }
    // Sized once: a Node is over 500 bytes, and doubling a 10,000-child vector
    // leaves 6 MB unused.
    node.children.reserve(static_cast<size_t>(max_index));
    for (lua_Integer i = 1; i <= max_index; ++i) {
      lua_rawgeti(state_, t, i);
      if (lua_isnil(state_, -1) || (lua_isboolean(state_, -1) && !lua_toboolean(state_, -1))) {
        lua_pop(state_, 1);
        continue;
      }
      Node child;
      std::string err = ToNode(lua_gettop(state_), child, Text("child ", nullptr, "", false, i));
      lua_pop(state_, 1);
      if (!err.empty()) return err;
      node.children.push_back(std::move(child));
    }
    return "";
  }

  std::string ToNode(int t, Node& node, const Text& what) {
    t = lua_absindex(state_, t);
    if (!lua_istable(state_, t)) {
      return what +
             " must be a component (Workflow, Sequence, Parallel, Branch, Loop, Task), got " +
             luaL_typename(state_, t);
    }
    // Read without a protected call: a metatable's __index could raise.
    if (lua_getmetatable(state_, t)) {
      lua_pop(state_, 1);
      return what + " has a metatable; a component is a plain table";
    }
    struct Depth {
      int& d;
      explicit Depth(int& depth) : d(++depth) {}
      ~Depth() { --d; }
    } depth(depth_);
    if (depth_ > kMaxComponentDepth || !lua_checkstack(state_, 8)) {
      return what + ": components nested deeper than " + std::to_string(kMaxComponentDepth) +
             " levels";
    }
    std::string kind;
    FieldString(t, "__kind", kind);
    FieldString(t, "__src", node.source);
    const Text at(" (at ", &node.source, ")", /*optional_text=*/true);
    if (kind.empty()) return what + " is a plain table, not a component" + at;
    // Checked again here: a prop set after the constructor ran.
    if (std::string e = CheckProps(state_, t, kind); !e.empty()) {
      if (props_error_.empty()) props_error_ = e + at;
      return e + at;
    }
    std::string err = FieldString(t, "id", node.id);
    if (!err.empty()) return kind + ": " + err + at;
    node.skip = FieldBool(t, "skipIf");

    if (kind == "Task") return ToTask(t, node, at);
    if (kind == "Approval" || kind == "WaitForEvent" || kind == "Signal" || kind == "Timer") {
      return ToWait(t, node, kind, at);
    }
    if (kind == "Workflow") {
      node.kind = NodeKind::kWorkflow;
      err = FieldString(t, "name", node.id);
    } else if (kind == "Sequence") {
      node.kind = NodeKind::kSequence;
    } else if (kind == "Parallel") {
      node.kind = NodeKind::kParallel;
      int64_t cap = 0;
      err = FieldInt(t, "maxConcurrency", cap);
      node.max_concurrency = static_cast<int>(cap);
    } else if (kind == "Loop") {
      node.kind = NodeKind::kLoop;
      node.until = FieldBool(t, "until");
      int64_t max_it = 5;
      err = FieldInt(t, "maxIterations", max_it);
      node.max_iterations = static_cast<int>(max_it);
      if (err.empty()) err = FieldString(t, "onMaxReached", node.on_max_reached);
    } else if (kind == "Branch") {
      node.kind = NodeKind::kBranch;
      node.condition = FieldBool(t, "if");
      lua_getfield(state_, t, node.condition ? "then" : "else");
      if (!lua_isnil(state_, -1) && !(lua_isboolean(state_, -1) && !lua_toboolean(state_, -1))) {
        Node child;
        err = ToNode(lua_gettop(state_), child,
                     node.condition ? "Branch \"then\"" : "Branch \"else\"");
        if (err.empty()) node.children.push_back(std::move(child));
      }
      lua_pop(state_, 1);
      if (!err.empty()) return err;
      lua_rawgeti(state_, t, 1);
      bool has_positional = !lua_isnil(state_, -1);
      lua_pop(state_, 1);
      if (has_positional) return "Branch takes [\"then\"] and [\"else\"], not children" + at;
      return "";
    } else {
      return "unknown component \"" + kind + "\"" + at;
    }
    if (!err.empty()) return kind + ": " + err + at;
    return Children(t, node);
  }

  // `output = outputs.name` into task.output; an error message or "".
  std::string ReadOutput(int t, TaskSpec& task, const Text& label, const Text& at) {
    lua_getfield(state_, t, "output");
    task.output = OutputName(state_, lua_gettop(state_));
    bool output_given = !lua_isnil(state_, -1);
    lua_pop(state_, 1);
    if (task.output.empty()) {
      return label + ": \"output\" must be an entry of smithers.outputs" +
             (output_given ? "" : " (it is missing)") + at;
    }
    return "";
  }

  // owner, fallbackOwner, escalateAfterMs, allowedUsers, allowedScopes,
  // onDeny, request.
  std::string ReadApproval(int t, ApprovalSpec& a) {
    std::string err = FieldString(t, "owner", a.owner);
    if (err.empty()) err = FieldString(t, "fallbackOwner", a.fallback_owner);
    if (err.empty()) err = FieldInt(t, "escalateAfterMs", a.escalate_after_ms);
    if (err.empty()) err = FieldStrings(t, "allowedUsers", a.allowed_users);
    if (err.empty()) err = FieldStrings(t, "allowedScopes", a.allowed_scopes);
    if (err.empty()) err = FieldString(t, "onDeny", a.on_deny);
    if (!err.empty()) return err;
    if (a.escalate_after_ms > 0 && a.fallback_owner.empty()) {
      return "\"escalateAfterMs\" needs a \"fallbackOwner\" to escalate to";
    }
    lua_getfield(state_, t, "request");
    if (!lua_isnil(state_, -1)) {
      std::string e = lua_istable(state_, -1) ? ToJson(state_, -1, a.request) : "not a table";
      if (!e.empty() || !a.request.is_object()) {
        err = "\"request\" must be a table like { title = \"...\", summary = \"...\" }";
      }
    }
    lua_pop(state_, 1);
    return err;
  }

  // A table of string keys -> string values (needs), or "".
  std::string StringMap(int t, const char* name, std::map<std::string, std::string>& out) {
    lua_getfield(state_, t, name);
    std::string err;
    if (lua_istable(state_, -1) && !lua_getmetatable(state_, -1)) {
      lua_pushnil(state_);
      while (err.empty() && lua_next(state_, -2) != 0) {
        if (lua_type(state_, -2) != LUA_TSTRING || lua_type(state_, -1) != LUA_TSTRING ||
            lua_rawlen(state_, -1) == 0) {
          err = std::string("\"") + name + "\" must map names to task ids ({ alias = \"id\" })";
          lua_pop(state_, 2);
          break;
        }
        out[lua_tostring(state_, -2)] = lua_tostring(state_, -1);
        lua_pop(state_, 1);
      }
    } else if (!lua_isnil(state_, -1)) {
      if (lua_istable(state_, -1)) lua_pop(state_, 1);  // the metatable
      err = std::string("\"") + name + "\" must be a plain table";
    }
    lua_pop(state_, 1);
    return err;
  }

  // dependsOn, needs, deps and depsOptional (docs/engine.md "Dependencies").
  // A deps key is a task id, or an alias that needs maps to one; a needs
  // alias no deps key uses orders the task after its target, as dependsOn.
  std::string ReadDeps(int t, TaskSpec& task) {
    lua_getfield(state_, t, "dependsOn");
    bool any = !lua_isnil(state_, -1);
    lua_getfield(state_, t, "needs");
    any = any || !lua_isnil(state_, -1);
    lua_getfield(state_, t, "deps");
    any = any || !lua_isnil(state_, -1);
    lua_getfield(state_, t, "depsOptional");
    any = any || !lua_isnil(state_, -1);
    lua_pop(state_, 4);
    if (!any) return "";  // the common case: four lookups, nothing built
    TaskDeps deps;
    std::map<std::string, std::string> needs;
    std::string err = FieldStrings(t, "dependsOn", deps.depends_on);
    if (err.empty()) err = StringMap(t, "needs", needs);
    if (!err.empty()) return err;
    lua_getfield(state_, t, "deps");
    if (lua_istable(state_, -1) && !lua_getmetatable(state_, -1)) {
      lua_pushnil(state_);
      while (lua_next(state_, -2) != 0) {
        std::string output(OutputName(state_, -1));
        if (lua_type(state_, -2) != LUA_TSTRING || output.empty() ||
            lua_type(state_, -1) != LUA_TTABLE) {
          err = "\"deps\" must map keys to outputs ({ key = outputs.NAME })";
          lua_pop(state_, 2);
          break;
        }
        std::string key = lua_tostring(state_, -2);
        auto alias = needs.find(key);
        deps.rows[key] = TaskDep{.task_id = alias != needs.end() ? alias->second : key,
                                 .output = std::move(output)};
        lua_pop(state_, 1);
      }
    } else if (!lua_isnil(state_, -1)) {
      if (lua_istable(state_, -1)) lua_pop(state_, 1);  // the metatable
      err = "\"deps\" must be a plain table";
    }
    lua_pop(state_, 1);
    if (!err.empty()) return err;
    for (const auto& [alias, id] : needs) {
      if (deps.rows.count(alias) == 0) deps.depends_on.push_back(id);
    }
    lua_getfield(state_, t, "depsOptional");
    if (!lua_isnil(state_, -1) && !lua_isboolean(state_, -1))
      err = "\"depsOptional\" must be a boolean";
    deps.optional = lua_toboolean(state_, -1) != 0;
    lua_pop(state_, 1);
    if (!err.empty()) return err;
    task.deps = std::make_shared<const TaskDeps>(std::move(deps));
    return "";
  }

  // Approval, WaitForEvent, Signal and Timer: durable waits (docs/engine.md "Waits").
  std::string ToWait(int t, Node& node, const std::string& kind, const Text& at) {
    node.kind = NodeKind::kTask;
    TaskSpec& task = node.task;
    const std::string head = kind + " \"";
    const Text label(head, &node.id, "\"");
    if (node.id.empty()) return kind + " needs an id" + at;
    lua_rawgeti(state_, t, 1);
    bool has_child = !lua_isnil(state_, -1);
    lua_pop(state_, 1);
    if (has_child) return label + ": takes no children" + at;
    std::string err;
    if (kind == "Timer") {
      lua_getfield(state_, t, "output");
      bool has_output = !lua_isnil(state_, -1);
      lua_pop(state_, 1);
      if (has_output) return label + ": a Timer has no output" + at;
    } else {
      err = ReadOutput(t, task, label, at);
      if (!err.empty()) return err;
    }
    err = FieldString(t, "label", task.label);
    if (err.empty()) err = ReadDeps(t, task);
    if (!err.empty()) return label + ": " + err + at;
    task.continue_on_fail = FieldBool(t, "continueOnFail");
    if (kind == "Approval") {
      task.mode = TaskMode::kApproval;
      ApprovalSpec a;
      err = ReadApproval(t, a);
      task.approval = std::make_shared<const ApprovalSpec>(std::move(a));
    } else if (kind == "WaitForEvent" || kind == "Signal") {
      task.mode = TaskMode::kWaitForEvent;
      auto wait = std::make_shared<EventWaitSpec>();
      EventWaitSpec& w = *wait;
      task.wait = wait;
      if (kind == "Signal") w.event = node.id;
      err = FieldString(t, "event", w.event);
      if (err.empty()) err = FieldString(t, "correlationId", w.correlation_id);
      if (err.empty()) err = FieldInt(t, "timeoutMs", w.timeout_ms);
      if (err.empty()) err = FieldString(t, "onTimeout", w.on_timeout);
      if (err.empty() && w.timeout_ms < 0) err = "\"timeoutMs\" must be >= 0";
    } else {
      task.mode = TaskMode::kTimer;
      err = ReadTime(t, "duration", false, task.timer.duration_ms);
      if (err.empty()) err = ReadTime(t, "until", true, task.timer.until_ms);
    }
    if (!err.empty()) return label + ": " + err + at;
    return "";
  }

  // Timer.duration ("10m" or ms) or Timer.until (ISO 8601 or epoch ms).
  std::string ReadTime(int t, const char* name, bool is_until, int64_t& out) {
    lua_getfield(state_, t, name);
    std::string err;
    long long v = 0;
    if (lua_type(state_, -1) == LUA_TSTRING) {
      std::string text = lua_tostring(state_, -1);
      bool ok = is_until ? base::ParseIsoTime(text, &v) : base::ParseDurationMs(text, &v);
      if (ok) {
        out = v;
      } else {
        err = std::string("\"") + name + "\" \"" + text + "\" is not " +
              (is_until ? "an ISO 8601 time like \"2026-12-01T09:00:00Z\""
                        : "a duration like \"500ms\", \"30s\", \"5m\", \"2h\" or \"7d\"");
      }
    } else if (lua_isinteger(state_, -1) && lua_tointeger(state_, -1) >= 0) {
      out = lua_tointeger(state_, -1);
    } else if (!lua_isnil(state_, -1)) {
      err = std::string("\"") + name + "\" must be a string or a non-negative integer";
    }
    lua_pop(state_, 1);
    return err;
  }

  std::string ToTask(int t, Node& node, const Text& at) {
    node.kind = NodeKind::kTask;
    TaskSpec& task = node.task;
    const Text label("Task \"", &node.id, "\"");
    if (std::string e = ReadOutput(t, task, label, at); !e.empty()) return e;
    int64_t n = 0;
    std::string err = FieldInt(t, "retries", n);
    task.retries = static_cast<int>(n);
    if (err.empty()) err = FieldInt(t, "timeoutMs", task.timeout_ms);
    if (err.empty()) err = FieldInt(t, "heartbeatTimeoutMs", task.heartbeat_timeout_ms);
    if (err.empty() && task.heartbeat_timeout_ms == 0) {
      err = FieldInt(t, "heartbeatTimeout", task.heartbeat_timeout_ms);  // SPEC's alias
    }
    if (err.empty()) err = FieldString(t, "label", task.label);
    if (err.empty()) err = ReadDeps(t, task);
    if (!err.empty()) return label + ": " + err + at;
    if (task.retries < 0) return label + ": \"retries\" must be >= 0" + at;
    if (task.heartbeat_timeout_ms < -1) {
      return label + ": \"heartbeatTimeoutMs\" must be > 0 (or -1 for none)" + at;
    }
    task.continue_on_fail = FieldBool(t, "continueOnFail");
    lua_getfield(state_, t, "retryPolicy");
    if (lua_istable(state_, -1)) {
      int rp = lua_gettop(state_);
      err = FieldString(rp, "backoff", task.retry_policy.backoff);
      if (err.empty()) err = FieldInt(rp, "initialDelayMs", task.retry_policy.initial_delay_ms);
      const std::string& b = task.retry_policy.backoff;
      if (err.empty() && b != "fixed" && b != "linear" && b != "exponential") {
        err = "retryPolicy.backoff must be fixed, linear or exponential";
      }
    } else if (!lua_isnil(state_, -1)) {
      err = "\"retryPolicy\" must be a table";
    }
    lua_pop(state_, 1);
    if (!err.empty()) return label + ": " + err + at;
    err = ToCachePolicy(t, task);
    if (!err.empty()) return label + ": " + err + at;
    if (FieldBool(t, "needsApproval")) {
      ApprovalSpec a;
      err = ReadApproval(t, a);
      if (!err.empty()) return label + ": " + err + at;
      task.approval = std::make_shared<const ApprovalSpec>(std::move(a));
    }

    lua_getfield(state_, t, "command");
    bool has_command = !lua_isnil(state_, -1);
    if (has_command) {
      Json argv;
      std::string conv = lua_istable(state_, -1) ? ToJson(state_, -1, argv) : "not a table";
      lua_pop(state_, 1);
      if (!conv.empty() || !argv.is_array() || argv.empty()) {
        return label + ": \"command\" must be a non-empty list of strings {argv...}" + at;
      }
      for (const auto& a : argv) {
        if (!a.is_string() && !a.is_number()) {
          return label + ": \"command\" entries must be strings" + at;
        }
        task.command.argv.push_back(a.is_string() ? a.get<std::string>() : a.dump());
      }
      task.mode = TaskMode::kCommand;
      err = FieldString(t, "cwd", task.command.cwd);
      if (err.empty()) err = FieldString(t, "parse", task.command.parse);
      if (!err.empty()) return label + ": " + err + at;
      if (task.command.parse != "json" && task.command.parse != "text") {
        return label + ": \"parse\" must be \"json\" or \"text\"" + at;
      }
      lua_getfield(state_, t, "env");
      if (lua_istable(state_, -1)) {
        Json env;
        std::string e = ToJson(state_, -1, env);
        if (!e.empty() || !env.is_object()) err = "\"env\" must be a table of strings";
        if (err.empty()) err = ReadEnv(env, task.command.env, task.command.secret_env);
      } else if (!lua_isnil(state_, -1)) {
        err = "\"env\" must be a table";
      }
      lua_pop(state_, 1);
      if (!err.empty()) return label + ": " + err + at;
    } else {
      lua_pop(state_, 1);
    }

    lua_rawgeti(state_, t, 1);
    int body = lua_gettop(state_);
    int type = lua_type(state_, body);
    if (has_command) {
      lua_pop(state_, 1);
      if (type != LUA_TNIL) return label + ": a command task takes no child" + at;
      return "";
    }
    switch (type) {
      case LUA_TTABLE: {
        task.mode = TaskMode::kStatic;
        std::string e = ToJson(state_, body, task.value);
        lua_pop(state_, 1);
        if (!e.empty()) return label + ": static value: " + e + at;
        return "";
      }
      case LUA_TFUNCTION: {
        task.mode = TaskMode::kCompute;
        auto fn = std::make_shared<LuaRef>(state_, luaL_ref(state_, LUA_REGISTRYINDEX));
        task.compute = [this, fn](const ComputeContext& c) { return CallCompute(*fn, c); };
        return "";
      }
      case LUA_TSTRING: {
        task.mode = TaskMode::kAgent;
        task.prompt = lua_tostring(state_, body);
        lua_pop(state_, 1);
        lua_getfield(state_, t, "agent");
        std::string e = lua_isnil(state_, -1) ? "" : ToJson(state_, -1, task.agent);
        lua_pop(state_, 1);
        if (!e.empty()) return label + ": agent: " + e + at;
        if (task.agent.is_null()) {
          return label + ": a prompt needs an agent (agent = smithers.Agent { ... })" + at;
        }
        for (const Json& a : task.agent.is_array() ? task.agent : Json::array({task.agent})) {
          if (!a.is_object() || !a.contains("kind")) {
            return label +
                   ": agent must be made with smithers.Agent, ClaudeCodeAgent, "
                   "CodexAgent or GeminiAgent (or be a list of them)" +
                   at;
          }
        }
        if (std::string env_err = ReadAgentEnv(task.agent); !env_err.empty()) {
          return label + ": agent: " + env_err + at;
        }
        return "";
      }
      case LUA_TNIL:
        lua_pop(state_, 1);
        return label + ": needs a child (a value table, a function, or a prompt) or a command" + at;
      default: {
        std::string tn = luaL_typename(state_, body);
        lua_pop(state_, 1);
        return label + ": a " + tn + " child is not a task body" + at;
      }
    }
  }

  // Whether `ref` is written as a string literal ("..." or '...') in the
  // module or a sibling it loaded. A secret reference must be: one built at
  // render time from ctx.input (or any other data) could name a secret the
  // author never meant to hand to this task.
  bool LiteralInModule(const std::string& ref) const {
    auto in = [&](const std::string& text) {
      return text.find('"' + ref + '"') != std::string::npos ||
             text.find('\'' + ref + '\'') != std::string::npos;
    };
    if (in(source_)) return true;
    return std::any_of(siblings_.begin(), siblings_.end(),
                       [&](const auto& s) { return in(s.second); });
  }

  // A declared environment: NAME = "value" (numbers and booleans as text) or
  // NAME = { secret = "env:VAR" | "file:/path" }, a literal reference that
  // SecretStore::CheckReference accepts (the Gateway's allow-list).
  std::string ReadEnv(const Json& env, std::map<std::string, std::string>& values,
                      std::map<std::string, std::string>& refs) const {
    if (Status split = base::SplitDeclaredEnv(env, &values, &refs); !split.ok()) {
      return split.message();
    }
    for (const auto& [k, ref] : refs) {
      if (!LiteralInModule(ref)) {
        return "env." + k + ": the secret reference \"" + ref +
               "\" is not written as a literal in the module (references are never built "
               "from input or other data)";
      }
      if (Status ok = base::ProcessSecrets().CheckReference(ref); !ok.ok()) {
        return "env." + k + ": " + ok.message();
      }
    }
    return "";
  }

  // The env of CLI agents, checked like a command task's; numbers and
  // booleans become text in the agent's configuration.
  std::string ReadAgentEnv(Json& agent) const {
    if (agent.is_array()) {
      for (Json& a : agent) {
        if (std::string e = ReadAgentEnv(a); !e.empty()) return e;
      }
      return "";
    }
    if (!agent.is_object()) return "";
    auto it = agent.find("env");
    if (it == agent.end()) return "";
    std::map<std::string, std::string> values, refs;
    if (std::string e = ReadEnv(*it, values, refs); !e.empty()) return e;
    for (const auto& [k, v] : values) (*it)[k] = v;
    return "";
  }

  // `cache = true` or `cachePolicy = {scope, ttlMs, version, by}`. `by(ctx)` is
  // called now, with the render's ctx; if it fails, the task is not cached
  // for this render.
  std::string ToCachePolicy(int t, TaskSpec& task) {
    lua_getfield(state_, t, "cachePolicy");
    int cp = lua_gettop(state_);
    if (lua_isnil(state_, cp)) {
      lua_pop(state_, 1);
      if (FieldBool(t, "cache")) task.cache = CachePolicy{};
      return "";
    }
    if (!lua_istable(state_, cp)) {
      lua_pop(state_, 1);
      return "\"cachePolicy\" must be a table";
    }
    CachePolicy policy;
    std::string err = FieldString(cp, "scope", policy.scope);
    if (err.empty()) err = FieldInt(cp, "ttlMs", policy.ttl_ms);
    if (err.empty()) err = FieldString(cp, "version", policy.version);
    if (err.empty() && policy.scope != "run" && policy.scope != "workflow" &&
        policy.scope != "global") {
      err = "cachePolicy.scope must be run, workflow or global";
    }
    if (err.empty() && policy.ttl_ms < 0) err = "cachePolicy.ttlMs must be >= 0";
    bool cacheable = true;
    if (err.empty()) {
      lua_getfield(state_, cp, "by");
      if (lua_isfunction(state_, -1) && ctx_index_ != 0) {
        lua_pushvalue(state_, ctx_index_);
        if (ProtectedCall(state_, 1, 1).empty()) {
          cacheable = ToJson(state_, -1, policy.by).empty();
          lua_pop(state_, 1);
        } else {
          cacheable = false;
        }
      } else {
        if (!lua_isnil(state_, -1)) err = "cachePolicy.by must be a function";
        lua_pop(state_, 1);
      }
    }
    lua_pop(state_, 1);
    if (err.empty() && cacheable) task.cache = std::move(policy);
    return err;
  }

  Result<Json> CallCompute(const LuaRef& fn, const ComputeContext& c) {
    int top = lua_gettop(state_);
    lua_pushinteger(state_, c.deadline_monotonic_ms);
    lua_setfield(state_, LUA_REGISTRYINDEX, kDeadlineKey);
    lua_pushlightuserdata(state_, c.clock != nullptr ? c.clock : &SystemClock());
    lua_setfield(state_, LUA_REGISTRYINDEX, kDeadlineClockKey);
    lua_pushliteral(state_, "compute function");
    lua_setfield(state_, LUA_REGISTRYINDEX, kDeadlineWhatKey);
    if (c.deadline_monotonic_ms > 0) lua_sethook(state_, DeadlineHook, LUA_MASKCOUNT, 1000);
    fn.Push();
    // fn(deps, info): deps holds the rows by key; info is {runId, nodeId,
    // iteration, attempt}, also read through deps where no key shadows it
    // (what a function got as its one argument before deps existed).
    if (c.deps != nullptr) {
      std::string conv = PushJson(state_, *c.deps, "the deps rows");
      if (!conv.empty()) {
        lua_settop(state_, top);
        return InvalidArgumentError(conv);
      }
    } else {
      lua_createtable(state_, 0, 0);
    }
    lua_createtable(state_, 0, 4);
    lua_pushstring(state_, c.run_id.c_str());
    lua_setfield(state_, -2, "runId");
    lua_pushstring(state_, c.node_id.c_str());
    lua_setfield(state_, -2, "nodeId");
    lua_pushinteger(state_, c.iteration);
    lua_setfield(state_, -2, "iteration");
    lua_pushinteger(state_, c.attempt);
    lua_setfield(state_, -2, "attempt");
    lua_createtable(state_, 0, 1);  // deps' metatable: {__index = info}
    lua_pushvalue(state_, -2);
    lua_setfield(state_, -2, "__index");
    lua_setmetatable(state_, -3);
    std::string err = ProtectedCall(state_, 2, 1);
    lua_sethook(state_, nullptr, 0, 0);
    if (!err.empty()) {
      lua_settop(state_, top);
      if (err.find("compute function timed out") != std::string::npos) {
        return DeadlineExceededError(err);
      }
      return InternalError(err);
    }
    Json out;
    std::string conv = ToJson(state_, -1, out);
    lua_settop(state_, top);
    if (!conv.empty()) return InvalidArgumentError("compute result: " + conv);
    return out;
  }

  // package.searchers entry for the module's siblings: `require "a.b"` is
  // DIR/a/b.lua, taken from the pinned sources when there are any, else read
  // from disk; either way recorded in siblings_. No C++ object may be alive
  // when lua_error unwinds (the Lua library is C: it longjmps).
  static int SiblingSearcher(lua_State* ls) {
    auto* self = static_cast<LuaModule*>(lua_touserdata(ls, lua_upvalueindex(1)));
    const char* name = luaL_checkstring(ls, 1);
    int results = self->FindSibling(ls, name);
    if (results < 0) return lua_error(ls);
    return results;
  }

  // Pushes the loader and its file name (2), or why there is none (1), or an
  // error message to raise (-1).
  int FindSibling(lua_State* ls, const char* name) {
    // Dotted names only ("util.text"): no "/" or ".." can leave the folder.
    std::string rel = name;
    bool plain =
        !rel.empty() && rel.front() != '.' && rel.back() != '.' &&
        rel.find("..") == std::string::npos && std::all_of(rel.begin(), rel.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        });
    if (!plain) {
      lua_pushfstring(ls, "'%s' is not a sibling module name (like \"lib\" or \"util.text\")",
                      name);
      return 1;
    }
    std::replace(rel.begin(), rel.end(), '.', '/');
    std::string file = dir_ + "/" + rel + ".lua";
    std::string text;
    if (auto it = pinned_.find(name); it != pinned_.end()) {
      text = it->second;
    } else {
      if (options_.restricted) {  // a link out of the folder is not a sibling
        char real[PATH_MAX];
        std::string r = realpath(file.c_str(), real) != nullptr ? real : "";
        if (!r.empty() &&
            (policy_.module_dir.empty() ||
             r.compare(0, policy_.module_dir.size() + 1, policy_.module_dir + "/") != 0)) {
          lua_pushfstring(ls, "'%s' leads out of the module's folder", file.c_str());
          return 1;
        }
      }
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        lua_pushfstring(ls, "no file '%s'", file.c_str());
        return 1;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    std::string chunk = "@" + file;
    if (luaL_loadbufferx(ls, text.data(), text.size(), chunk.c_str(), "t") != LUA_OK) {
      lua_pushfstring(ls, "error loading module '%s' from file '%s':\n\t%s", name, file.c_str(),
                      lua_tostring(ls, -1));
      return -1;
    }
    siblings_[name] = std::move(text);
    lua_pushstring(ls, file.c_str());
    return 2;
  }

  ModuleOptions options_;
  MemoryCap memory_cap_;  // installed when restricted; outlives state_
  FilePolicy policy_;     // restricted: where files may be read and written
  lua_State* state_;
  int depth_ = 0;            // of ToNode's recursion
  std::string props_error_;  // the first bad prop ToNode met (CheckComponents)
  std::string source_;
  std::string dir_;
  std::map<std::string, std::string> pinned_;    // a pinned revision's siblings
  std::map<std::string, std::string> siblings_;  // those required so far
  std::optional<ModuleSchedule> schedule_;
  int ctx_index_ = 0;          // the stack slot of the render's ctx while it is converted
  int collected_heap_kb_ = 0;  // the Lua heap after the last CollectRenderGarbage
  std::shared_ptr<LuaRef> render_;
  WorkflowDefinition def_;
};

}  // namespace

Result<std::unique_ptr<LuaWorkflow>> LoadWorkflowModule(const std::string& path,
                                                        const ModuleOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError("cannot read workflow module \"" + path + "\"");
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadWorkflowModuleSource(path, ss.str(), {}, options);
}

Result<std::unique_ptr<LuaWorkflow>> LoadWorkflowModuleSource(
    const std::string& path, const std::string& source, std::map<std::string, std::string> siblings,
    const ModuleOptions& options) {
  auto module = std::make_unique<LuaModule>(options);
  SMITHERS_RETURN_IF_ERROR(module->Load(path, source, std::move(siblings)));
  return std::unique_ptr<LuaWorkflow>(std::move(module));
}

}  // namespace smithers::script
