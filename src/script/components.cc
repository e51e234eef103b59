// The components: their constructors, and the conversion of the tables they
// make into a Node tree. Everything that can raise a Lua error runs inside
// lua_pcall; C functions called from Lua destroy their C++ locals before
// raising (Lua's longjmp skips destructors).
#include "script/components.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <utility>

#include "base/hash.h"
#include "base/paths.h"
#include "base/secrets.h"
#include "script/lua_json.h"
#include "script/lua_schema.h"
#include "script/lua_state.h"

namespace smithers::script {

// Components nested deeper than this are refused before the C++ recursion
// that converts them could exhaust the stack.
constexpr int kMaxComponentDepth = 256;

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

namespace {

std::string operator+(const Text& a, const char* b) { return a.Str() + b; }
std::string operator+(const std::string& a, const Text& b) { return a + b.Str(); }
std::string operator+(std::string&& a, const Text& b) { return std::move(a) + b.Str(); }
std::string operator+(const char* a, const Text& b) { return a + b.Str(); }

// "Workflow, Sequence, ...": every component, for error texts.
const std::string& ComponentNames() {
  static const auto* const kNames = [] {
    auto* names = new std::string();
    for (const ComponentRow& row : ComponentRows()) {
      *names += (names->empty() ? "" : ", ") + std::string(row.name);
    }
    return names;
  }();
  return *kNames;
}

}  // namespace

// Converts a render's component tables into a Node tree (ToNodeTree). One
// per conversion; the rows' to_node functions read through it.
class NodeConverter {
 public:
  NodeConverter(lua_State* ls, ModuleScope& module, int ctx_index, std::string& props_error)
      : state_(ls), module_(module), ctx_index_(ctx_index), props_error_(props_error) {}

  lua_State* ls() const { return state_; }

  // The sandbox of the Workflow being read (its `sandbox` prop): the
  // default of its command tasks that set none.
  std::optional<SandboxSpec> workflow_sandbox;

  // Reads the `sandbox` prop of the table at `t` into `out`; `*present` says
  // whether it was set at all.
  std::string SandboxProp(int t, std::optional<SandboxSpec>& out, bool* present) {
    GetField(t, "sandbox");
    *present = !lua_isnil(state_, -1);
    std::string err;
    if (*present) {
      Json sandbox;
      err = ToJson(state_, -1, sandbox);
      if (err.empty()) err = ReadSandbox(sandbox, out);
    }
    lua_pop(state_, 1);
    return err;
  }

  // lua_getfield for the converter. A component names ~20 props and sets a
  // few, so a prop the table being read does not have (CheckProps took its
  // keys) is pushed as nil without a lookup. Returns the type.
  int GetField(int t, const char* name) {
    if (keys_.t == t && !keys_.props.MayHave(name)) {
      lua_pushnil(state_);
      return LUA_TNIL;
    }
    return lua_getfield(state_, t, name);
  }

  std::string ToNode(int t, Node& node, const Text& what) {
    t = lua_absindex(state_, t);
    if (!lua_istable(state_, t)) {
      return what + " must be a component (" + ComponentNames() + "), got " +
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
    const KeysScope keys(*this);
    std::string kind;
    FieldString(t, "__kind", kind);
    FieldString(t, "__src", node.source);
    const Text at(" (at ", &node.source, ")", /*optional_text=*/true);
    if (kind.empty()) return what + " is a plain table, not a component" + at;
    // Checked again here: a prop set after the constructor ran.
    if (std::string e = CheckProps(state_, t, kind, &keys_.props); !e.empty()) {
      if (props_error_.empty()) props_error_ = e + at;
      return e + at;
    }
    keys_.t = t;
    std::string err = FieldString(t, "id", node.id);
    if (!err.empty()) return kind + ": " + err + at;
    node.skip = FieldBool(t, "skipIf");
    const ComponentRow* row = FindComponent(kind);
    if (row == nullptr) return "unknown component \"" + kind + "\"" + at;
    return row->to_node(*this, t, node, at);
  }

  // The end of a container's reading: `err` from its own props, then its
  // children.
  std::string Container(std::string_view kind, const std::string& err, int t, Node& node,
                        const Text& at) {
    if (!err.empty()) return std::string(kind) + ": " + err + at;
    return Children(t, node);
  }

  std::string FieldString(int t, const char* name, std::string& out) {
    GetField(t, name);
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
    GetField(t, name);
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
    GetField(t, name);
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

  lua_State* state() const { return state_; }
  ModuleScope& module() const { return module_; }

  // Whether the prop is given as false (a default-true flag turned off).
  bool FieldIsFalse(int t, const char* name) {
    GetField(t, name);
    bool off = lua_isboolean(state_, -1) && !lua_toboolean(state_, -1);
    lua_pop(state_, 1);
    return off;
  }

  bool FieldBool(int t, const char* name) {
    GetField(t, name);
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

  // `output = outputs.name` into task.output; an error message or "".
  std::string ReadOutput(int t, TaskSpec& task, const Text& label, const Text& at) {
    GetField(t, "output");
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
    GetField(t, "request");
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
    GetField(t, name);
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
    GetField(t, "dependsOn");
    bool any = !lua_isnil(state_, -1);
    GetField(t, "needs");
    any = any || !lua_isnil(state_, -1);
    GetField(t, "deps");
    any = any || !lua_isnil(state_, -1);
    GetField(t, "depsOptional");
    any = any || !lua_isnil(state_, -1);
    lua_pop(state_, 4);
    if (!any) return "";  // the common case: four lookups, nothing built
    TaskDeps deps;
    std::map<std::string, std::string> needs;
    std::string err = FieldStrings(t, "dependsOn", deps.depends_on);
    if (err.empty()) err = StringMap(t, "needs", needs);
    if (!err.empty()) return err;
    GetField(t, "deps");
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
    GetField(t, "depsOptional");
    if (!lua_isnil(state_, -1) && !lua_isboolean(state_, -1))
      err = "\"depsOptional\" must be a boolean";
    deps.optional = lua_toboolean(state_, -1) != 0;
    lua_pop(state_, 1);
    if (!err.empty()) return err;
    task.deps = std::make_shared<const TaskDeps>(std::move(deps));
    return "";
  }

  // Approval, WaitForEvent, Signal and Timer: durable waits (docs/engine.md
  // "Waits"). Reads what they share (id, no children, output unless
  // `has_output` is false, label, dependencies, continueOnFail), then `own`,
  // the wait's own props (an error message or "").
  std::string ToWait(int t, Node& node, std::string_view kind, bool has_output, const Text& at,
                     std::string (*own)(NodeConverter& c, int t, Node& node)) {
    node.kind = NodeKind::kTask;
    TaskSpec& task = node.task;
    const std::string head = std::string(kind) + " \"";
    const Text label(head, &node.id, "\"");
    if (node.id.empty()) return std::string(kind) + " needs an id" + at;
    lua_rawgeti(state_, t, 1);
    bool has_child = !lua_isnil(state_, -1);
    lua_pop(state_, 1);
    if (has_child) return label + ": takes no children" + at;
    std::string err;
    if (!has_output) {
      GetField(t, "output");
      bool output_given = !lua_isnil(state_, -1);
      lua_pop(state_, 1);
      if (output_given) return label + ": a " + std::string(kind) + " has no output" + at;
    } else {
      err = ReadOutput(t, task, label, at);
      if (!err.empty()) return err;
    }
    err = FieldString(t, "label", task.label);
    if (err.empty()) err = ReadDeps(t, task);
    if (!err.empty()) return label + ": " + err + at;
    task.continue_on_fail = FieldBool(t, "continueOnFail");
    err = own(*this, t, node);
    if (!err.empty()) return label + ": " + err + at;
    return "";
  }

  // Timer.duration ("10m" or ms) or Timer.until (ISO 8601 or epoch ms).
  std::string ReadTime(int t, const char* name, bool is_until, int64_t& out) {
    GetField(t, name);
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
    GetField(t, "retryPolicy");
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

    GetField(t, "command");
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
      GetField(t, "env");
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
      bool set = false;
      err = SandboxProp(t, task.command.sandbox, &set);
      if (!err.empty()) return label + ": " + err + at;
      if (!set) task.command.sandbox = workflow_sandbox;
    } else {
      lua_pop(state_, 1);
      GetField(t, "sandbox");
      bool sandboxed = !lua_isnil(state_, -1);
      lua_pop(state_, 1);
      if (sandboxed) return label + ": \"sandbox\" applies to command tasks only" + at;
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
        task.compute = [module = &module_, fn](const ComputeContext& c) {
          return module->CallCompute(*fn, c);
        };
        return "";
      }
      case LUA_TSTRING: {
        task.mode = TaskMode::kAgent;
        task.prompt = lua_tostring(state_, body);
        lua_pop(state_, 1);
        GetField(t, "agent");
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
        if (std::string env_err = ReadAgentSettings(task.agent); !env_err.empty()) {
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

  // A declared environment: NAME = "value" (numbers and booleans as text) or
  // NAME = { secret = "env:VAR" | "file:/path" }, a literal reference that
  // SecretStore::CheckReference accepts (the Gateway's allow-list).
  std::string ReadEnv(const Json& env, std::map<std::string, std::string>& values,
                      std::map<std::string, std::string>& refs) const {
    if (Status split = base::SplitDeclaredEnv(env, &values, &refs); !split.ok()) {
      return split.message();
    }
    for (const auto& [k, ref] : refs) {
      if (!module_.LiteralInModule(ref)) {
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

  // A command task's `sandbox` (docs/sandbox.md): true (bubblewrap, no
  // network), false (none), or a table of runtime, allowNetwork, egress,
  // image, the limits memoryLimit, pidsLimit, cpuLimit, ports and volumes.
  // An unknown key is an error,
  // never ignored.
  static std::string ReadSandbox(const Json& j, std::optional<SandboxSpec>& out) {
    if (j.is_boolean()) {
      if (j.get<bool>()) out = SandboxSpec{};
      return "";
    }
    if (!j.is_object()) return "\"sandbox\" must be true, false or a table";
    SandboxSpec s;
    for (const auto& [k, v] : j.items()) {
      std::string bad;
      if (k == "runtime") {
        if (!v.is_string() || v.get<std::string>().empty()) bad = "a runtime's name (bubblewrap)";
        if (bad.empty()) s.runtime = v.get<std::string>();
      } else if (k == "allowNetwork") {
        if (!v.is_boolean()) bad = "a boolean";
        if (bad.empty()) s.allow_network = v.get<bool>();
      } else if (k == "egress") {
        if (!v.is_object() || !v.contains("allow") || v.size() != 1 || !v["allow"].is_array() ||
            v["allow"].empty()) {
          bad = "a table { allow = { \"host:port\", ... } }";
        } else {
          for (const Json& t : v["allow"]) {
            Status ok = t.is_string() ? CheckEgressTarget(t.get<std::string>())
                                      : InvalidArgumentError("a target is text, \"host:port\"");
            if (!ok.ok()) return "sandbox.egress.allow: " + ok.message();
            s.egress_allow.push_back(t.get<std::string>());
          }
        }
      } else if (k == "image") {
        if (!v.is_string() || v.get<std::string>().empty()) bad = "an image's name";
        if (bad.empty()) s.image = v.get<std::string>();
      } else if (k == "memoryLimit") {
        s.memory_limit_bytes = MemoryBytes(v);
        if (s.memory_limit_bytes < (4 << 20)) {
          bad = "bytes (a number, or text such as \"512m\" or \"2g\"), at least 4 MiB";
        }
      } else if (k == "pidsLimit") {
        if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 4194304) {
          bad = "a whole number of processes from 1 to 4194304";
        }
        if (bad.empty()) s.pids_limit = v.get<int64_t>();
      } else if (k == "cpuLimit") {
        if (!v.is_number() || v.get<double>() < 0.01 || v.get<double>() > 1024) {
          bad = "a number of cores from 0.01 to 1024 (0.5 = half a core)";
        }
        if (bad.empty()) s.cpu_limit = v.get<double>();
      } else if (k == "ports") {
        if (std::string e = ReadPorts(v, s.ports); !e.empty()) return "sandbox.ports: " + e;
      } else if (k == "volumes") {
        if (std::string e = ReadVolumes(v, s.volumes); !e.empty()) return "sandbox.volumes: " + e;
      } else {
        return "unknown prop sandbox." + k +
               " (known: runtime, allowNetwork, egress, image, memoryLimit, pidsLimit, cpuLimit, "
               "ports, volumes)";
      }
      if (!bad.empty()) return "sandbox." + k + " must be " + bad;
    }
    if (!s.ports.empty() && (s.runtime == "bubblewrap" || !s.allow_network)) {
      return "sandbox.ports: a port is published by a container runtime (podman, docker) from "
             "the container's network: set runtime and allowNetwork = true";
    }
    if (!s.egress_allow.empty() && s.allow_network) {
      return "sandbox.egress: the allow-list limits the network; it cannot go with "
             "allowNetwork = true";
    }
    if (!s.egress_allow.empty() && s.runtime != "bubblewrap") {
      return "sandbox.egress: the allow-list works with the bubblewrap runtime only";
    }
    if (!s.image.empty() && s.runtime == "bubblewrap") {
      return "sandbox.image: the bubblewrap runtime takes no image (it runs the host's programs); "
             "set runtime = \"podman\" or \"docker\" to run an image";
    }
    out = s;
    return "";
  }

  // sandbox.ports: each a port number (the same on both sides), text
  // "hostPort:containerPort", or "ip:hostPort:containerPort" (an IPv4
  // address); canonical "ip:host:container", 127.0.0.1 unless named.
  static std::string ReadPorts(const Json& v, std::vector<std::string>& out) {
    if (!v.is_array()) return "must be a list of ports (8080, \"8080:80\", \"0.0.0.0:8080:80\")";
    auto port = [](const std::string& t) {
      if (t.empty() || t.size() > 5 ||
          !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return 0;
      }
      int n = std::stoi(t);
      return n >= 1 && n <= 65535 ? n : 0;
    };
    for (const Json& p : v) {
      std::string text = p.is_number_integer() ? std::to_string(p.get<int64_t>())
                         : p.is_string()       ? p.get<std::string>()
                                               : "";
      std::vector<std::string> parts;
      for (size_t start = 0;;) {
        size_t colon = text.find(':', start);
        parts.push_back(text.substr(start, colon - start));
        if (colon == std::string::npos) break;
        start = colon + 1;
      }
      if (parts.size() == 1) parts.push_back(parts[0]);
      if (parts.size() == 2) parts.insert(parts.begin(), "127.0.0.1");
      int dots = 0;
      bool ip = parts.size() == 3 && !parts[0].empty() &&
                std::all_of(parts[0].begin(), parts[0].end(), [&dots](char c) {
                  dots += c == '.';
                  return (c >= '0' && c <= '9') || c == '.';
                });
      if (!ip || dots != 3 || port(parts[1]) == 0 || port(parts[2]) == 0) {
        return "\"" + (p.is_string() ? text : p.dump()) +
               "\" is not a port (a number from 1 to 65535, \"hostPort:containerPort\" or "
               "\"ip:hostPort:containerPort\")";
      }
      out.push_back(parts[0] + ":" + std::to_string(port(parts[1])) + ":" +
                    std::to_string(port(parts[2])));
    }
    return "";
  }

  // sandbox.volumes: each { host = "/abs", container = "/abs", readonly = true }.
  static std::string ReadVolumes(const Json& v, std::vector<SandboxSpec::Volume>& out) {
    if (!v.is_array()) return "must be a list of { host = ..., container = ..., readonly = ... }";
    for (const Json& e : v) {
      if (!e.is_object()) return "each volume is a table { host, container, readonly }";
      SandboxSpec::Volume vol;
      for (const auto& [k, x] : e.items()) {
        if (k == "host" || k == "container") {
          std::string path = x.is_string() ? x.get<std::string>() : "";
          if (path.empty() || path.front() != '/' ||
              path.find_first_of(",:\n") != std::string::npos) {
            return k + " must be an absolute path without ',' or ':'";
          }
          (k == "host" ? vol.host : vol.container) = path;
        } else if (k == "readonly") {
          if (!x.is_boolean()) return "readonly must be a boolean";
          vol.readonly = x.get<bool>();
        } else {
          return "unknown key \"" + k + "\" (known: host, container, readonly)";
        }
      }
      if (vol.host.empty() || vol.container.empty()) return "a volume needs host and container";
      out.push_back(std::move(vol));
    }
    return "";
  }

  // A memoryLimit: a number of bytes, or text of a whole number with an
  // optional unit b, k, m or g (powers of 1024, as docker reads them); 0
  // when it is neither.
  static int64_t MemoryBytes(const Json& v) {
    if (v.is_number_integer()) return v.get<int64_t>();
    if (!v.is_string()) return 0;
    const std::string& t = v.get_ref<const std::string&>();
    size_t digits = 0;
    while (digits < t.size() && digits < 12 &&
           std::isdigit(static_cast<unsigned char>(t[digits]))) {
      ++digits;
    }
    if (digits == 0) return 0;
    int64_t n = std::stoll(t.substr(0, digits));
    std::string unit = t.substr(digits);
    for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (unit.empty() || unit == "b") return n;
    if (unit == "k") return n << 10;
    if (unit == "m") return n << 20;
    if (unit == "g" && n <= (1 << 20)) return n << 30;
    return 0;
  }

  // The env and the sandbox of CLI agents, checked like a command task's:
  // numbers and booleans in env become text, and the sandbox its canonical
  // table (SandboxToJson; `false` removes it).
  std::string ReadAgentSettings(Json& agent) const {
    if (agent.is_array()) {
      for (Json& a : agent) {
        if (std::string e = ReadAgentSettings(a); !e.empty()) return e;
      }
      return "";
    }
    if (!agent.is_object()) return "";
    if (auto it = agent.find("env"); it != agent.end()) {
      std::map<std::string, std::string> values, refs;
      if (std::string e = ReadEnv(*it, values, refs); !e.empty()) return e;
      for (const auto& [k, v] : values) (*it)[k] = v;
    }
    if (auto it = agent.find("sandbox"); it != agent.end()) {
      std::optional<SandboxSpec> sandbox;
      if (std::string e = ReadSandbox(*it, sandbox); !e.empty()) return e;
      if (sandbox) {
        *it = SandboxToJson(*sandbox);
      } else {
        agent.erase(it);
      }
    }
    return "";
  }

  // `cache = true` or `cachePolicy = {scope, ttlMs, version, by}`. `by(ctx)` is
  // called now, with the render's ctx; if it fails, the task is not cached
  // for this render.
  std::string ToCachePolicy(int t, TaskSpec& task) {
    GetField(t, "cachePolicy");
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
        keys_.t = 0;  // Lua code runs: it may change the table's keys
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

 private:
  // The keys of the table at stack index t that GetField reads (CheckProps
  // took them); t = 0: none.
  struct Keys {
    int t = 0;
    PropKeys props;
  };
  // Gives GetField the enclosing table's keys back when a ToNode ends.
  class KeysScope {
   public:
    explicit KeysScope(NodeConverter& c) : c_(c), saved_(c.keys_) { c.keys_.t = 0; }
    ~KeysScope() { c_.keys_ = saved_; }
    KeysScope(const KeysScope&) = delete;
    KeysScope& operator=(const KeysScope&) = delete;

   private:
    NodeConverter& c_;
    Keys saved_;
  };

  lua_State* state_;
  ModuleScope& module_;
  int ctx_index_;             // the stack slot of the render's ctx while it is converted
  std::string& props_error_;  // the first bad prop ToNode met (CheckComponents)
  int depth_ = 0;             // of ToNode's recursion
  Keys keys_;                 // of the table GetField reads without lookups
};

namespace {

// ---- each component's reading (its row's to_node) ----

// A Workflow's `sandbox` is the default of the command tasks inside it
// (docs/sandbox.md); a task's own `sandbox` (false too) wins.
std::string WorkflowNode(NodeConverter& c, int t, Node& node, const Text& at) {
  node.kind = NodeKind::kWorkflow;
  std::string err = c.FieldString(t, "name", node.id);
  std::optional<SandboxSpec> sandbox;
  bool set = false;
  if (err.empty()) err = c.SandboxProp(t, sandbox, &set);
  std::optional<SandboxSpec> outer = c.workflow_sandbox;
  if (set) c.workflow_sandbox = sandbox;
  err = c.Container("Workflow", err, t, node, at);
  c.workflow_sandbox = outer;
  return err;
}

std::string SequenceNode(NodeConverter& c, int t, Node& node, const Text& at) {
  node.kind = NodeKind::kSequence;
  return c.Container("Sequence", "", t, node, at);
}

std::string ParallelNode(NodeConverter& c, int t, Node& node, const Text& at) {
  node.kind = NodeKind::kParallel;
  int64_t cap = 0;
  std::string err = c.FieldInt(t, "maxConcurrency", cap);
  node.max_concurrency = static_cast<int>(cap);
  return c.Container("Parallel", err, t, node, at);
}

std::string LoopNode(NodeConverter& c, int t, Node& node, const Text& at) {
  node.kind = NodeKind::kLoop;
  node.until = c.FieldBool(t, "until");
  int64_t max_it = 5;
  std::string err = c.FieldInt(t, "maxIterations", max_it);
  node.max_iterations = static_cast<int>(max_it);
  if (err.empty()) err = c.FieldString(t, "onMaxReached", node.on_max_reached);
  return c.Container("Loop", err, t, node, at);
}

std::string BranchNode(NodeConverter& c, int t, Node& node, const Text& at) {
  lua_State* ls = c.ls();
  node.kind = NodeKind::kBranch;
  node.condition = c.FieldBool(t, "if");
  std::string err;
  lua_getfield(ls, t, node.condition ? "then" : "else");
  if (!lua_isnil(ls, -1) && !(lua_isboolean(ls, -1) && !lua_toboolean(ls, -1))) {
    Node child;
    err = c.ToNode(lua_gettop(ls), child, node.condition ? "Branch \"then\"" : "Branch \"else\"");
    if (err.empty()) node.children.push_back(std::move(child));
  }
  lua_pop(ls, 1);
  if (!err.empty()) return err;
  lua_rawgeti(ls, t, 1);
  bool has_positional = !lua_isnil(ls, -1);
  lua_pop(ls, 1);
  if (has_positional) return "Branch takes [\"then\"] and [\"else\"], not children" + at;
  return "";
}

std::string TaskNode(NodeConverter& c, int t, Node& node, const Text& at) {
  return c.ToTask(t, node, at);
}

std::string ApprovalNode(NodeConverter& c, int t, Node& node, const Text& at) {
  return c.ToWait(t, node, "Approval", true, at, [](NodeConverter& c, int t, Node& node) {
    node.task.mode = TaskMode::kApproval;
    ApprovalSpec a;
    std::string err = c.ReadApproval(t, a);
    node.task.approval = std::make_shared<const ApprovalSpec>(std::move(a));
    return err;
  });
}

// Sandbox (docs/sandbox.md "The Sandbox component"): a child workflow run
// by a worker in a sandbox. Its runtime, network and limits are flat props
// (Smithers' names) read as a `sandbox` table is; its review's as an
// Approval's.
std::string SandboxNode(NodeConverter& c, int t, Node& node, const Text& at) {
  return c.ToWait(
      t, node, "Sandbox", true, at, [](NodeConverter& c, int t, Node& node) -> std::string {
        TaskSpec& task = node.task;
        task.mode = TaskMode::kSandbox;
        auto st = std::make_shared<SandboxTaskSpec>();
        SandboxTaskSpec& s = *st;
        int64_t n = 0;
        std::string err = c.FieldInt(t, "retries", n);
        task.retries = static_cast<int>(n);
        if (err.empty()) err = c.FieldInt(t, "timeoutMs", task.timeout_ms);
        if (err.empty()) err = c.FieldInt(t, "heartbeatTimeoutMs", task.heartbeat_timeout_ms);
        if (err.empty()) err = c.FieldString(t, "workflow", s.workflow);
        if (err.empty() && s.workflow.empty()) err = "needs a workflow (the child module's file)";
        if (err.empty()) err = c.FieldString(t, "rootDir", s.root_dir);
        if (err.empty()) err = c.FieldStrings(t, "files", s.files);
        if (err.empty()) err = c.FieldStrings(t, "command", s.command);
        if (err.empty()) err = c.FieldInt(t, "maxBundleBytes", s.max_bundle_bytes);
        if (err.empty()) err = c.FieldInt(t, "maxManifestBytes", s.max_manifest_bytes);
        if (err.empty()) {
          int64_t patches = s.max_patches;
          err = c.FieldInt(t, "maxPatches", patches);
          s.max_patches = static_cast<int>(std::clamp<int64_t>(patches, 0, 1 << 30));
        }
        if (err.empty() &&
            (s.max_bundle_bytes <= 0 || s.max_manifest_bytes <= 0 || s.max_patches < 0)) {
          err = "maxBundleBytes and maxManifestBytes must be > 0, maxPatches >= 0";
        }
        if (!err.empty()) return err;
        if (task.retries < 0) return std::string("\"retries\" must be >= 0");
        std::filesystem::path wf(s.workflow);
        if (wf.is_relative()) wf = std::filesystem::path(c.module().Dir()) / wf;
        // The child is one of this module's own files: its folder (and what
        // the worker ships of it) is the module's, never a path the input
        // names elsewhere on the host.
        std::error_code ec;
        std::filesystem::path dir = std::filesystem::weakly_canonical(c.module().Dir(), ec);
        std::filesystem::path child = std::filesystem::weakly_canonical(wf, ec);
        if (ec || !base::PathWithin(dir, child) || child == dir) {
          return "\"workflow\" must be a module in this module's folder (" + dir.string() +
                 "), not \"" + s.workflow + "\"";
        }
        s.workflow = child.string();
        if (!s.root_dir.empty() && !std::filesystem::path(s.root_dir).is_absolute()) {
          return "\"rootDir\" must be an absolute path, not \"" + s.root_dir + "\"";
        }
        s.review_diffs = !c.FieldIsFalse(t, "reviewDiffs");
        s.auto_accept_diffs = c.FieldBool(t, "autoAcceptDiffs");
        c.GetField(t, "input");
        if (!lua_isnil(c.state(), -1)) {
          err = lua_istable(c.state(), -1) ? ToJson(c.state(), -1, s.input) : "not a table";
          if (!err.empty() || !s.input.is_object()) err = "\"input\" must be a table";
        }
        lua_pop(c.state(), 1);
        if (!err.empty()) return err;
        c.GetField(t, "env");
        if (lua_istable(c.state(), -1)) {
          Json env;
          std::string e = ToJson(c.state(), -1, env);
          if (!e.empty() || !env.is_object()) err = "\"env\" must be a table of strings";
          if (err.empty()) err = c.ReadEnv(env, s.env, s.secret_env);
        } else if (!lua_isnil(c.state(), -1)) {
          err = "\"env\" must be a table";
        }
        lua_pop(c.state(), 1);
        if (!err.empty()) return err;
        // The runtime's props, read as a `sandbox` table.
        Json box = Json::object();
        for (const char* k : {"runtime", "allowNetwork", "image", "memoryLimit", "pidsLimit",
                              "cpuLimit", "egress", "ports", "volumes"}) {
          c.GetField(t, k);
          if (!lua_isnil(c.state(), -1)) {
            Json v;
            err = ToJson(c.state(), -1, v);
            if (err.empty()) box[k] = v;
          }
          lua_pop(c.state(), 1);
          if (!err.empty()) return "\"" + std::string(k) + "\": " + err;
        }
        std::optional<SandboxSpec> sandbox;
        err = NodeConverter::ReadSandbox(box, sandbox);
        if (!err.empty()) return err.substr(err.rfind("sandbox.", 0) == 0 ? 8 : 0);
        s.sandbox = sandbox ? *sandbox : SandboxSpec{};
        ApprovalSpec review;
        err = c.ReadApproval(t, review);
        if (!err.empty()) return err;
        if (review.on_deny != "fail" && review.on_deny != "skip") {
          return std::string(
              "\"onDeny\" must be \"fail\" or \"skip\" (a denied review uses none of the "
              "worker's result)");
        }
        if (review.request.empty()) {
          review.request = {{"title", "Review the changes of sandbox " + node.id}};
        }
        task.review = std::make_shared<const ApprovalSpec>(std::move(review));
        task.sandbox_task = std::move(st);
        return std::string();
      });
}

// WaitForEvent, and Signal, whose event is its id unless it names one.
std::string EventWait(NodeConverter& c, int t, Node& node, bool signal) {
  node.task.mode = TaskMode::kWaitForEvent;
  auto wait = std::make_shared<EventWaitSpec>();
  EventWaitSpec& w = *wait;
  node.task.wait = wait;
  if (signal) w.event = node.id;
  std::string err = c.FieldString(t, "event", w.event);
  if (err.empty()) err = c.FieldString(t, "correlationId", w.correlation_id);
  if (err.empty()) err = c.FieldInt(t, "timeoutMs", w.timeout_ms);
  if (err.empty()) err = c.FieldString(t, "onTimeout", w.on_timeout);
  if (err.empty() && w.timeout_ms < 0) err = "\"timeoutMs\" must be >= 0";
  return err;
}

std::string WaitForEventNode(NodeConverter& c, int t, Node& node, const Text& at) {
  return c.ToWait(t, node, "WaitForEvent", true, at,
                  [](NodeConverter& c, int t, Node& node) { return EventWait(c, t, node, false); });
}

std::string SignalNode(NodeConverter& c, int t, Node& node, const Text& at) {
  return c.ToWait(t, node, "Signal", true, at,
                  [](NodeConverter& c, int t, Node& node) { return EventWait(c, t, node, true); });
}

std::string TimerNode(NodeConverter& c, int t, Node& node, const Text& at) {
  return c.ToWait(t, node, "Timer", false, at, [](NodeConverter& c, int t, Node& node) {
    node.task.mode = TaskMode::kTimer;
    std::string err = c.ReadTime(t, "duration", false, node.task.timer.duration_ms);
    if (err.empty()) err = c.ReadTime(t, "until", true, node.task.timer.until_ms);
    return err;
  });
}

// ---- constructors ----

// smithers.<Component> { ... }: checks the props and tags the table with its
// kind (upvalue 1) and where it was made.
int Construct(lua_State* ls) {
  const char* kind = lua_tostring(ls, lua_upvalueindex(1));
  if (lua_type(ls, 1) != LUA_TTABLE) {
    return luaL_error(ls, "%s expects a table, e.g. %s { ... }", kind, kind);
  }
  if (PushPropsError(ls, 1, kind)) return lua_error(ls);
  lua_pushvalue(ls, lua_upvalueindex(1));
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

}  // namespace

const std::vector<ComponentRow>& ComponentRows() {
  static const auto* const kRows = new std::vector<ComponentRow>{
      {"Workflow",
       "",
       {"id", "name", "skipIf", "sandbox"},
       {{"cache", "set cache or cachePolicy on each Task"}},
       WorkflowNode},
      {"Sequence",
       "",
       {"id", "skipIf"},
       {{"label", ""}, {"failurePolicy", "use continueOnFail on the tasks"}},
       SequenceNode},
      {"Parallel",
       "",
       {"id", "skipIf", "maxConcurrency"},
       {{"subtreeConcurrency", "use maxConcurrency"},
        {"priority", ""},
        {"failurePolicy", "use continueOnFail on the tasks"}},
       ParallelNode},
      {"Branch", "", {"id", "skipIf", "if", "then", "else"}, {}, BranchNode},
      {"Loop",
       "Ralph",
       {"id", "skipIf", "until", "maxIterations", "onMaxReached"},
       {{"continueAsNewEvery", ""}},
       LoopNode},
      {"Task",
       "",
       {"id", "skipIf", "output", "label", "retries", "retryPolicy", "timeoutMs",
        "heartbeatTimeoutMs", "heartbeatTimeout", "continueOnFail", "cache", "cachePolicy",
        // needsApproval and the approval's props
        "needsApproval", "owner", "fallbackOwner", "escalateAfterMs", "onDeny", "request",
        "allowedUsers", "allowedScopes",
        // command tasks
        "command", "cwd", "env", "parse", "sandbox",
        // agent tasks
        "agent",
        // dependencies
        "dependsOn", "needs", "deps", "depsOptional"},
       {{"outputSchema", "use output = outputs.NAME"},
        {"fallbackAgent", "give a list: agent = { primary, fallback }"},
        {"fork", ""},
        {"allowTools", "list the agent's tools"},
        {"async", ""},
        {"noRetry", "use retries = 0"},
        {"maxSchemaRetries", "set it on the agent"},
        {"scorers", ""},
        {"groundTruth", ""},
        {"context", ""},
        {"memory", ""},
        {"hijack", ""},
        {"onHijackExit", ""},
        {"sideEffect", ""},
        {"priority", ""},
        {"failurePolicy", "use continueOnFail"},
        {"bind", ""},
        {"meta", ""},
        {"key", ""}},
       TaskNode},
      {"Approval",
       "",
       {"id", "skipIf", "output", "label", "continueOnFail", "owner", "fallbackOwner",
        "escalateAfterMs", "onDeny", "request", "allowedUsers", "allowedScopes", "mode",
        "dependsOn", "needs", "deps", "depsOptional"},
       {{"options", "only mode = \"approve\" is supported"},
        {"autoApprove", ""},
        {"async", ""},
        {"retries", ""},
        {"timeoutMs", "use escalateAfterMs with a fallbackOwner"}},
       ApprovalNode},
      {"WaitForEvent",
       "",
       {"id", "skipIf", "output", "label", "continueOnFail", "event", "correlationId", "timeoutMs",
        "onTimeout", "dependsOn", "needs", "deps", "depsOptional"},
       {{"tagged", ""}, {"async", ""}},
       WaitForEventNode},
      {"Signal",
       "",
       {"id", "skipIf", "output", "label", "continueOnFail", "event", "correlationId", "timeoutMs",
        "onTimeout", "dependsOn", "needs", "deps", "depsOptional"},
       {{"schema", "use output = outputs.NAME"}, {"tagged", ""}, {"async", ""}},
       SignalNode},
      {"Sandbox",
       "",
       {"id",
        "skipIf",
        "output",
        "label",
        "continueOnFail",
        "retries",
        "timeoutMs",
        "heartbeatTimeoutMs",
        "workflow",
        "input",
        "rootDir",
        "files",
        "command",
        "env",
        "runtime",
        "allowNetwork",
        "image",
        "memoryLimit",
        "pidsLimit",
        "cpuLimit",
        "egress",
        "ports",
        "volumes",
        "reviewDiffs",
        "autoAcceptDiffs",
        "owner",
        "fallbackOwner",
        "escalateAfterMs",
        "onDeny",
        "request",
        "allowedUsers",
        "allowedScopes",
        "maxBundleBytes",
        "maxManifestBytes",
        "maxPatches",
        "dependsOn",
        "needs",
        "deps",
        "depsOptional"},
       {{"provider", "choose a runtime"},
        {"allowNested", ""},
        {"ports", ""},
        {"volumes", ""},
        {"workspace", "name the files to ship (files = {...})"}},
       SandboxNode},
      {"Timer",
       "",
       // output: refused by the converter ("a Timer has no output")
       {"id", "skipIf", "label", "continueOnFail", "duration", "until", "output", "dependsOn",
        "needs", "deps", "depsOptional"},
       {{"every", "put a Timer in a Loop"}},
       TimerNode},
  };
  return *kRows;
}

const ComponentRow* FindComponent(std::string_view name) {
  for (const ComponentRow& row : ComponentRows()) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

void AddConstructors(lua_State* ls) {
  for (const ComponentRow& row : ComponentRows()) {
    for (std::string_view name : {row.name, row.alias}) {
      if (name.empty()) continue;
      lua_pushlstring(ls, row.name.data(), row.name.size());
      lua_pushcclosure(ls, Construct, 1);
      lua_setfield(ls, -2, std::string(name).c_str());
    }
  }
  static const luaL_Reg kAgents[] = {{"Agent", CAgent},
                                     {"ClaudeCodeAgent", CClaudeCodeAgent},
                                     {"CodexAgent", CCodexAgent},
                                     {"GeminiAgent", CGeminiAgent},
                                     {nullptr, nullptr}};
  luaL_setfuncs(ls, kAgents, 0);
}

std::string ToNodeTree(lua_State* ls, int idx, Node& root, ModuleScope& module, int ctx_index,
                       std::string& props_error) {
  NodeConverter converter(ls, module, ctx_index, props_error);
  return converter.ToNode(idx, root, "the render function's result");
}

}  // namespace smithers::script
