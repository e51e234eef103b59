// Every C function here that raises a Lua error does so after its C++
// locals are gone (Lua's longjmp skips destructors): the work that needs
// them happens in an inner scope or a helper that returns plain values.
#include "script/restricted.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace smithers::script {
namespace {

constexpr const char* kDocs = "docs/engine.md \"Restricted modules\"";

const FilePolicy* PolicyOf(lua_State* ls) {
  return static_cast<const FilePolicy*>(lua_touserdata(ls, lua_upvalueindex(1)));
}

// Lua's own rule for io.open modes: [rwa]%+?b*
bool ValidMode(const char* mode) {
  if (*mode == '\0' || strchr("rwa", *mode) == nullptr) return false;
  ++mode;
  if (*mode == '+') ++mode;
  return strspn(mode, "b") == strlen(mode);
}

bool Inside(const std::string& path, const std::string& root) {
  if (root.empty()) return false;
  if (root == "/") return true;
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? buf : "";
}

// Opens `path` as `mode` if `policy` allows it. Returns the descriptor, or -1
// with `refusal` (the policy says no) or `err` (an errno) set.
int OpenChecked(const FilePolicy& policy, const char* path, const char* mode, std::string& refusal,
                int& err) {
  bool write = mode[0] != 'r' || strchr(mode, '+') != nullptr;
  if (write && policy.workspace.empty()) {
    refusal = std::string("a restricted module writes no files (\"") + path +
              "\"): give the Gateway a module_workspace, or trusted_modules (" + kDocs + ")";
    return -1;
  }
  // The real path: of the file when it exists, else of its folder (a file
  // being created). The last component is then opened without following a
  // link, and the descriptor's own path is checked again below.
  std::string full = RealPath(path);
  if (full.empty()) {
    if (errno != ENOENT || !write) {
      err = errno;
      return -1;
    }
    std::string p = path;
    size_t slash = p.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
    std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
    std::string real_dir = RealPath(dir);
    if (real_dir.empty()) {
      err = errno;
      return -1;
    }
    if (base.empty() || base == "." || base == "..") {
      err = EISDIR;
      return -1;
    }
    full = (real_dir == "/" ? "" : real_dir) + "/" + base;
  }
  bool allowed = write ? Inside(full, policy.workspace)
                       : Inside(full, policy.module_dir) || Inside(full, policy.workspace);
  if (!allowed) {
    refusal = std::string("a restricted module ") +
              (write ? "writes files only in " : "reads files only in ") +
              (write ? "its workspace" : "its own folder or its workspace") + " (not \"" + path +
              "\"; " + kDocs + ")";
    return -1;
  }
  int flags = O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
  bool plus = strchr(mode, '+') != nullptr;
  switch (mode[0]) {
    case 'r': flags |= plus ? O_RDWR : O_RDONLY; break;
    case 'w': flags |= (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC; break;
    default: flags |= (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND; break;
  }
  // O_NONBLOCK: a FIFO must not block the open; only regular files pass.
  int fd = open(full.c_str(), flags, 0666);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  struct stat st {};
  std::string proc = "/proc/self/fd/" + std::to_string(fd);
  char real[PATH_MAX];
  ssize_t n = readlink(proc.c_str(), real, sizeof real - 1);
  bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && n > 0;
  if (ok) {
    real[n] = '\0';
    ok = write ? Inside(real, policy.workspace)
               : Inside(real, policy.module_dir) || Inside(real, policy.workspace);
  }
  if (!ok) {
    close(fd);
    refusal =
        std::string("\"") + path + "\" is not a regular file of the module's folder or workspace";
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

int CloseFile(lua_State* ls) {
  auto* p = static_cast<luaL_Stream*>(luaL_checkudata(ls, 1, LUA_FILEHANDLE));
  int res = fclose(p->f);
  return luaL_fileresult(ls, res == 0, nullptr);
}

// Pushes a file handle for `path` opened as `mode`. A refusal raises an
// error; an OS error pushes nil, message, errno (io.open's convention) and
// returns 3, else returns 1.
int PushOpened(lua_State* ls, const FilePolicy& policy, const char* path, const char* mode) {
  // The handle first, closed, as liolib does: a memory error then leaks no FILE.
  auto* p = static_cast<luaL_Stream*>(lua_newuserdatauv(ls, sizeof(luaL_Stream), 0));
  p->closef = nullptr;
  luaL_setmetatable(ls, LUA_FILEHANDLE);
  int fd = -1, err = 0;
  bool refused = false;
  {
    std::string refusal;
    fd = OpenChecked(policy, path, mode, refusal, err);
    if (!refusal.empty()) {
      refused = true;
      lua_pushstring(ls, refusal.c_str());
    }
  }
  if (refused) {
    luaL_where(ls, 1);
    lua_insert(ls, -2);
    lua_concat(ls, 2);
    return lua_error(ls);
  }
  FILE* f = fd >= 0 ? fdopen(fd, mode) : nullptr;
  if (f == nullptr) {
    if (fd >= 0) {
      err = errno;
      close(fd);
    }
    lua_pop(ls, 1);
    lua_pushnil(ls);
    lua_pushfstring(ls, "%s: %s", path, strerror(err));
    lua_pushinteger(ls, err);
    return 3;
  }
  p->f = f;
  p->closef = &CloseFile;
  return 1;
}

// io.open(path [, mode])
int Open(lua_State* ls) {
  const char* path = luaL_checkstring(ls, 1);
  const char* mode = luaL_optstring(ls, 2, "r");
  luaL_argcheck(ls, ValidMode(mode), 2, "invalid mode");
  return PushOpened(ls, *PolicyOf(ls), path, mode);
}

// io.lines(path, ...): only with a file name (no standard input).
int Lines(lua_State* ls) {
  if (lua_isnoneornil(ls, 1)) {
    return luaL_error(ls, "io.lines needs a file name in a restricted module (%s)", kDocs);
  }
  const char* path = luaL_checkstring(ls, 1);
  int n = lua_gettop(ls);
  if (PushOpened(ls, *PolicyOf(ls), path, "r") != 1) {
    return luaL_error(ls, "%s", lua_tostring(ls, -2));
  }
  int file = lua_gettop(ls);
  lua_getfield(ls, file, "lines");
  lua_pushvalue(ls, file);
  for (int i = 2; i <= n; ++i) lua_pushvalue(ls, i);
  lua_call(ls, n, 1);  // the iterator
  lua_pushnil(ls);
  lua_pushnil(ls);
  lua_pushvalue(ls, file);  // closed by the generic for when the loop ends
  return 4;
}

// Reads the file at stack index 1 (a path the policy allows) into a text
// chunk. Pushes the function, or nil and a message (returns false).
bool LoadChecked(lua_State* ls) {
  const char* path = luaL_checkstring(ls, 1);
  if (PushOpened(ls, *PolicyOf(ls), path, "r") != 1) {
    lua_pop(ls, 1);  // the errno: nil and the message stay
    return false;
  }
  auto* p = static_cast<luaL_Stream*>(lua_touserdata(ls, -1));
  int status;
  {
    std::string text;
    char buf[8192];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p->f)) > 0) text.append(buf, got);
    // A first line starting with '#' (a shebang) is skipped, as loadfile does.
    if (!text.empty() && text[0] == '#') {
      size_t nl = text.find('\n');
      text = nl == std::string::npos ? "" : "--" + text.substr(nl);
    }
    std::string chunk = std::string("@") + path;
    status = luaL_loadbufferx(ls, text.data(), text.size(), chunk.c_str(), "t");
  }
  lua_remove(ls, -2);  // the file handle (closed by its __gc)
  if (status != LUA_OK) {
    lua_pushnil(ls);
    lua_insert(ls, -2);
    return false;
  }
  return true;
}

// loadfile(path [, mode [, env]]): text only, files the policy allows.
int LoadFile(lua_State* ls) {
  if (lua_isnoneornil(ls, 1)) {
    lua_pushnil(ls);
    lua_pushfstring(ls, "loadfile needs a file name in a restricted module (%s)", kDocs);
    return 2;
  }
  bool has_env = !lua_isnone(ls, 3);
  if (!LoadChecked(ls)) return 2;
  if (has_env) {
    lua_pushvalue(ls, 3);
    if (lua_setupvalue(ls, -2, 1) == nullptr) lua_pop(ls, 1);
  }
  return 1;
}

// dofile(path)
int DoFile(lua_State* ls) {
  if (lua_isnoneornil(ls, 1)) {
    return luaL_error(ls, "dofile needs a file name in a restricted module (%s)", kDocs);
  }
  lua_settop(ls, 1);
  if (!LoadChecked(ls)) return lua_error(ls);
  lua_call(ls, 0, LUA_MULTRET);
  return lua_gettop(ls) - 1;
}

// load(chunk [, name [, mode [, env]]]) with mode "t" whatever was asked.
int LoadText(lua_State* ls) {
  if (lua_gettop(ls) < 3) lua_settop(ls, 3);
  lua_pushliteral(ls, "t");
  lua_replace(ls, 3);
  lua_pushvalue(ls, lua_upvalueindex(1));
  lua_insert(ls, 1);
  lua_call(ls, lua_gettop(ls) - 1, LUA_MULTRET);
  return lua_gettop(ls);
}

// os.getenv(name): the variables a child process may get (PATH HOME LANG TZ
// TMPDIR); nil for the others.
int Getenv(lua_State* ls) {
  const char* name = luaL_checkstring(ls, 1);
  for (const char* allowed : {"PATH", "HOME", "LANG", "TZ", "TMPDIR"}) {
    if (strcmp(name, allowed) == 0) {
      const char* v = getenv(name);
      if (v == nullptr) break;
      lua_pushstring(ls, v);
      return 1;
    }
  }
  lua_pushnil(ls);
  return 1;
}

void Remove(lua_State* ls, int table, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    lua_pushnil(ls);
    lua_setfield(ls, table, n);
  }
}

}  // namespace

FilePolicy MakeFilePolicy(const std::string& module_dir, const std::string& workspace) {
  return {.module_dir = module_dir.empty() ? "" : RealPath(module_dir),
          .workspace = workspace.empty() ? "" : RealPath(workspace)};
}

void RestrictStandardLibrary(lua_State* ls, const FilePolicy* policy) {
  void* policy_ud = const_cast<FilePolicy*>(policy);
  lua_pushglobaltable(ls);
  int g = lua_gettop(ls);
  // base
  Remove(ls, g, {"debug", "warn"});
  lua_getfield(ls, g, "load");
  lua_pushcclosure(ls, LoadText, 1);
  lua_setfield(ls, g, "load");
  lua_pushlightuserdata(ls, policy_ud);
  lua_pushcclosure(ls, LoadFile, 1);
  lua_setfield(ls, g, "loadfile");
  lua_pushlightuserdata(ls, policy_ud);
  lua_pushcclosure(ls, DoFile, 1);
  lua_setfield(ls, g, "dofile");
  // string (also the strings' metatable __index: the same table)
  lua_getfield(ls, g, "string");
  Remove(ls, lua_gettop(ls), {"dump"});
  lua_pop(ls, 1);
  // os
  lua_getfield(ls, g, "os");
  int os = lua_gettop(ls);
  Remove(ls, os, {"execute", "exit", "remove", "rename", "tmpname", "setlocale"});
  lua_pushcfunction(ls, Getenv);
  lua_setfield(ls, os, "getenv");
  lua_pop(ls, 1);
  // io: only files the policy allows; no standard streams (the Gateway's
  // stderr is its log), no processes.
  lua_getfield(ls, g, "io");
  int io = lua_gettop(ls);
  Remove(ls, io,
         {"popen", "read", "write", "input", "output", "tmpfile", "stdin", "stdout", "stderr"});
  lua_pushlightuserdata(ls, policy_ud);
  lua_pushcclosure(ls, Open, 1);
  lua_setfield(ls, io, "open");
  lua_pushlightuserdata(ls, policy_ud);
  lua_pushcclosure(ls, Lines, 1);
  lua_setfield(ls, io, "lines");
  lua_pop(ls, 1);
  // package: no C libraries, no files outside the module's folder (the
  // sibling searcher, added by the loader, is the only file searcher).
  lua_getfield(ls, g, "package");
  int pkg = lua_gettop(ls);
  Remove(ls, pkg, {"loadlib", "searchpath"});
  lua_pushliteral(ls, "");
  lua_setfield(ls, pkg, "path");
  lua_pushliteral(ls, "");
  lua_setfield(ls, pkg, "cpath");
  lua_getfield(ls, pkg, "searchers");
  for (lua_Integer i = luaL_len(ls, -1); i >= 2; --i) {
    lua_pushnil(ls);
    lua_rawseti(ls, -2, i);
  }
  lua_pop(ls, 1);
  lua_getfield(ls, pkg, "loaded");
  Remove(ls, lua_gettop(ls), {"debug"});
  lua_pop(ls, 2);
  lua_pop(ls, 1);  // the globals
}

void MemoryCap::Install(lua_State* ls) { lua_setallocf(ls, &MemoryCap::Alloc, this); }

void* MemoryCap::Alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* cap = static_cast<MemoryCap*>(ud);
  int64_t old = ptr != nullptr ? static_cast<int64_t>(osize) : 0;
  if (nsize == 0) {
    free(ptr);
    cap->used_ -= old;
    return nullptr;
  }
  int64_t grow = static_cast<int64_t>(nsize) - old;
  if (cap->enforced_ && grow > 0 && cap->used_ + grow > cap->max_bytes_) return nullptr;
  void* p = realloc(ptr, nsize);
  if (p != nullptr) cap->used_ += grow;
  return p;
}

EnforceMemoryCap::EnforceMemoryCap(lua_State* ls) {
  void* ud = nullptr;
  if (lua_getallocf(ls, &ud) == &MemoryCap::Alloc) {
    cap_ = static_cast<MemoryCap*>(ud);
    was_ = cap_->enforced_;
    cap_->enforced_ = true;
  }
}

EnforceMemoryCap::~EnforceMemoryCap() {
  if (cap_ != nullptr) cap_->enforced_ = was_;
}

}  // namespace smithers::script
