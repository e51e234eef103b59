// The restricted standard library of a workflow module (docs/engine.md
// "Restricted modules"): what a module the Gateway serves may do by itself.
// Its effects go through tasks (commands, agents), which the engine records,
// confines and gives a clean environment; the module's own Lua code gets no
// processes, no C code, no debug library, no bytecode, files read only in
// its folder and written only in a workspace, and bounded memory.
//
//   FilePolicy policy = MakeFilePolicy(module_dir, workspace);  // outlives the state
//   MemoryCap cap(512 << 20);                                    // likewise
//   cap.Install(ls);
//   RestrictStandardLibrary(ls, &policy);  // after luaL_openlibs
#ifndef SMITHERS_SCRIPT_RESTRICTED_H_
#define SMITHERS_SCRIPT_RESTRICTED_H_

#include <cstddef>
#include <cstdint>
#include <lua.hpp>
#include <string>

namespace smithers::script {

// Where a restricted module's io.open, io.lines, loadfile and dofile may go:
// reads in `module_dir` or `workspace`, writes only in `workspace`. Both are
// real paths (symbolic links resolved); "" = none.
struct FilePolicy {
  std::string module_dir;
  std::string workspace;
};

// The real paths of the two folders ("" when a folder is "" or missing).
FilePolicy MakeFilePolicy(const std::string& module_dir, const std::string& workspace);

// Replaces, in a state opened with luaL_openlibs, what a restricted module
// must not have: removes io.popen/read/write/input/output/tmpfile/stdin/
// stdout/stderr, os.execute/exit/remove/rename/tmpname/setlocale,
// package.loadlib/searchpath and every searcher but the preload one,
// string.dump, debug (also from package.loaded), warn; narrows os.getenv to
// PATH HOME LANG TZ TMPDIR; load, loadfile and dofile take text only, and
// files only as `policy` allows; io.open and io.lines check `policy`.
// `policy` must outlive the state.
void RestrictStandardLibrary(lua_State* ls, const FilePolicy* policy);

// A memory limit for one Lua state. Enforced only while an EnforceMemoryCap
// lives (inside protected calls): an allocation refused outside one would
// reach Lua's panic handler, which aborts the process. Must outlive the state.
class MemoryCap {
 public:
  explicit MemoryCap(size_t max_bytes) : max_bytes_(static_cast<int64_t>(max_bytes)) {}
  MemoryCap(const MemoryCap&) = delete;
  MemoryCap& operator=(const MemoryCap&) = delete;

  // Makes it the state's allocator (right after the state is created).
  void Install(lua_State* ls);

 private:
  friend class EnforceMemoryCap;
  static void* Alloc(void* ud, void* ptr, size_t osize, size_t nsize);

  int64_t max_bytes_;
  int64_t used_ = 0;  // since Install
  bool enforced_ = false;
};

// While it lives, the state's MemoryCap (if it has one) refuses allocations
// past its limit: Lua raises "not enough memory".
class EnforceMemoryCap {
 public:
  explicit EnforceMemoryCap(lua_State* ls);
  ~EnforceMemoryCap();
  EnforceMemoryCap(const EnforceMemoryCap&) = delete;
  EnforceMemoryCap& operator=(const EnforceMemoryCap&) = delete;

 private:
  MemoryCap* cap_ = nullptr;
  bool was_ = false;
};

}  // namespace smithers::script

#endif  // SMITHERS_SCRIPT_RESTRICTED_H_
