#include "script/lua_json.h"

#include <algorithm>
#include <cstdint>

#include "base/json_limits.h"
#include "script/lua_state.h"

namespace smithers::script {
namespace {

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

}  // namespace

std::string ToJson(lua_State* ls, int idx, Json& out, int depth) {
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

std::string PushJson(lua_State* ls, const Json& v, std::string_view what) {
  Status depth = base::CheckJsonValueDepth(v, base::MaxJsonDepth(), what);
  if (!depth.ok()) return depth.message();
  int top = lua_gettop(ls);
  if (!PushJsonChecked(ls, v)) {
    lua_settop(ls, top);
    return std::string(what) + " nests too deep for Lua's stack";
  }
  return "";
}

void SetUpJson(lua_State* ls) {
  lua_pushlightuserdata(ls, ls);  // a unique non-nil sentinel for JSON null
  lua_setfield(ls, LUA_REGISTRYINDEX, kNullKey);
  luaL_newmetatable(ls, kArrayMeta);
  lua_pop(ls, 1);
}

int MarkArray(lua_State* ls) {
  luaL_checktype(ls, 1, LUA_TTABLE);
  luaL_setmetatable(ls, kArrayMeta);
  lua_settop(ls, 1);
  return 1;
}

}  // namespace smithers::script
