// Module loading: a Lua state set up with the `smithers` module (its
// components, schema builders and ctx live in components.cc, lua_schema.cc
// and lua_ctx.cc), the module's own file and the siblings it requires, and
// its render and compute functions called from C++. Everything that can raise
// a Lua error runs inside lua_pcall; C functions called from Lua destroy their
// C++ locals before raising (Lua's longjmp skips destructors), by pushing the
// message and returning lua_error() from an outer scope.
#include "script/lua_workflow.h"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <lua.hpp>
#include <map>
#include <memory>
#include <sstream>

#include "base/hash.h"
#include "script/components.h"
#include "script/lua_ctx.h"
#include "script/lua_json.h"
#include "script/lua_schema.h"
#include "script/lua_state.h"
#include "script/props.h"
#include "script/restricted.h"
#include "smithers/clock.h"

namespace smithers::script {
namespace {

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

int OpenSmithers(lua_State* ls) {
  lua_createtable(ls, 0, 24);
  AddConstructors(ls);
  lua_pushcfunction(ls, Outputs);
  lua_setfield(ls, -2, "outputs");
  lua_pushcfunction(ls, MarkArray);
  lua_setfield(ls, -2, "array");
  PushSchemaLibrary(ls);
  lua_setfield(ls, -2, "schema");
  lua_getfield(ls, LUA_REGISTRYINDEX, kNullKey);
  lua_setfield(ls, -2, "null");
  // Calling the module table makes a workflow: smithers(render). An unknown
  // field is an error naming it (smithers.MergeQueue is not supported yet;
  // smithers.Taks: did you mean Task?), not a nil to call.
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
  SetUpJson(ls);
  SetUpSchemas(ls);
  SetUpCtx(ls);
  luaL_getsubtable(ls, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(ls, OpenSmithers);
  lua_setfield(ls, -2, "smithers");
  lua_pop(ls, 1);
}

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

class LuaModule final : public LuaWorkflow, public ModuleScope {
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

  Status CheckComponents(const Json& input, const Ctx::OutputMap* outputs) override {
    lua_pushnil(state_);
    lua_setfield(state_, LUA_REGISTRYINDEX, kPropsErrorKey);
    props_error_.clear();
    Json in = input.is_null() ? Json::object() : input;
    Ctx::OutputMap none;
    Ctx ctx("", &in, outputs != nullptr ? outputs : &none, 0);
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
    std::string pushed = PushCtx(state_, ctx, &handle);
    if (!pushed.empty()) {
      lua_settop(state_, top);
      return InvalidArgumentError("render failed: " + pushed);
    }
    // A second reference to ctx stays below the call: cachePolicy.by(ctx) is
    // evaluated with it while the result is converted.
    lua_pushvalue(state_, -1);
    lua_insert(state_, -3);
    int ctx_index = lua_absindex(state_, -3);
    ArmDeadline("render");
    std::string err = ProtectedCall(state_, 1, 1);
    if (!err.empty()) {
      DisarmDeadline();
      handle->ctx = nullptr;  // a ctx kept past the render must not reach freed memory
      lua_settop(state_, top);
      return InvalidArgumentError("render failed: " + err);
    }
    Node root;
    std::string conv = ToNodeTree(state_, lua_gettop(state_), root, *this, ctx_index, props_error_);
    DisarmDeadline();
    handle->ctx = nullptr;
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

  // Whether `ref` is written as a string literal ("..." or '...') in the
  // module or a sibling it loaded. A secret reference must be: one built at
  // render time from ctx.input (or any other data) could name a secret the
  // author never meant to hand to this task.
  std::string Dir() const override { return dir_; }

  bool LiteralInModule(const std::string& ref) const override {
    auto in = [&](const std::string& text) {
      return text.find('"' + ref + '"') != std::string::npos ||
             text.find('\'' + ref + '\'') != std::string::npos;
    };
    if (in(source_)) return true;
    return std::any_of(siblings_.begin(), siblings_.end(),
                       [&](const auto& s) { return in(s.second); });
  }

  Result<Json> CallCompute(const LuaRef& fn, const ComputeContext& c) override {
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
  std::string props_error_;  // the first bad prop ToNode met (CheckComponents)
  std::string source_;
  std::string dir_;
  std::map<std::string, std::string> pinned_;    // a pinned revision's siblings
  std::map<std::string, std::string> siblings_;  // those required so far
  std::optional<ModuleSchedule> schedule_;
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
