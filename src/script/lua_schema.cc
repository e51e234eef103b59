#include "script/lua_schema.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "script/lua_json.h"
#include "script/lua_state.h"
#include "script/props.h"
#include "smithers/schema.h"

namespace smithers::script {
namespace {

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

}  // namespace

Json* ToSchema(lua_State* ls, int idx) {
  return static_cast<Json*>(luaL_testudata(ls, idx, kSchemaMeta));
}

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

void SetUpSchemas(lua_State* ls) {
  lua_newtable(ls);
  lua_setfield(ls, LUA_REGISTRYINDEX, kOutputsKey);
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
}

void PushSchemaLibrary(lua_State* ls) {
  static const luaL_Reg kZ[] = {
      {"string", ZString},     {"number", ZNumber},     {"integer", ZInteger},
      {"boolean", ZBoolean},   {"null", ZNull},         {"any", ZAny},
      {"object", ZObject},     {"enum", ZEnum},         {"literal", ZLiteral},
      {"array", ZArray},       {"record", ZRecord},     {"optional", ZOptional},
      {"nullable", ZNullable}, {"describe", ZDescribe}, {nullptr, nullptr}};
  luaL_newlib(ls, kZ);
  // An unknown field is an error naming it (smithers.schema.strin: did you
  // mean string?), not a nil to call.
  lua_createtable(ls, 0, 1);
  lua_pushliteral(ls, "smithers.schema");
  lua_pushcclosure(ls, IndexUnknownMember, 1);
  lua_setfield(ls, -2, "__index");
  lua_setmetatable(ls, -2);
}

}  // namespace smithers::script
