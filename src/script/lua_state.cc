#include "script/lua_state.h"

#include "script/restricted.h"

namespace smithers::script {
namespace {

int Traceback(lua_State* ls) {
  const char* msg = lua_tostring(ls, 1);
  if (msg == nullptr) msg = luaL_tolstring(ls, 1, nullptr);
  luaL_traceback(ls, ls, msg, 1);
  return 1;
}

}  // namespace

std::string ErrorAt(lua_State* ls, bool with_traceback) {
  std::string msg = lua_tostring(ls, -1) != nullptr ? lua_tostring(ls, -1) : "unknown Lua error";
  lua_pop(ls, 1);
  if (!with_traceback) {
    size_t nl = msg.find('\n');
    if (nl != std::string::npos) msg.resize(nl);
  }
  return msg;
}

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

}  // namespace smithers::script
