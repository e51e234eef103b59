#include "script/props.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <set>
#include <unordered_set>
#include <vector>

#include "base/text.h"
#include "script/components.h"

namespace smithers::script {
namespace {

struct Component {
  std::string_view kind;
  bool children;  // positive integer keys are children (checked by the converter)
  std::vector<std::string_view> props;
  std::vector<UnsupportedProp> unsupported;
};

// The tables that are not components: agents, options, a Task's sub-tables.
std::vector<Component> OtherTables() {
  return {
      {"Agent",
       false,
       {"provider", "kind", "model", "baseUrl", "apiKeyEnv", "instructions", "tools", "rootDir",
        "maxTurns", "maxSchemaRetries", "timeoutMs", "temperature", "maxTokens", "headers",
        "stream", "allowNetwork", "price", "unisolatedTools"},
       {{"systemPrompt", "use instructions"}, {"id", ""}}},
      {"ClaudeCodeAgent",
       false,
       {"kind", "model", "executable", "tools", "rootDir", "maxSchemaRetries", "timeoutMs", "price",
        "unisolatedTools", "env", "sandbox"},
       {{"id", ""},
        {"systemPrompt", ""},
        {"cwd", "use rootDir"},
        {"yolo", ""},
        {"idleTimeoutMs", "use timeoutMs"},
        {"maxOutputBytes", ""},
        {"extraArgs", ""}}},
      {"CodexAgent",
       false,
       {"kind", "model", "executable", "rootDir", "maxSchemaRetries", "timeoutMs", "price",
        "unisolatedTools", "env", "sandbox"},
       {{"tools", "only ClaudeCodeAgent and Agent take a tool list"},
        {"id", ""},
        {"systemPrompt", ""},
        {"cwd", "use rootDir"},
        {"yolo", ""},
        {"idleTimeoutMs", "use timeoutMs"},
        {"maxOutputBytes", ""},
        {"extraArgs", ""}}},
      {"GeminiAgent",
       false,
       {"kind", "model", "executable", "rootDir", "maxSchemaRetries", "timeoutMs", "price",
        "unisolatedTools", "env", "sandbox"},
       {{"tools", "only ClaudeCodeAgent and Agent take a tool list"},
        {"id", ""},
        {"systemPrompt", ""},
        {"cwd", "use rootDir"},
        {"yolo", ""},
        {"idleTimeoutMs", "use timeoutMs"},
        {"maxOutputBytes", ""},
        {"extraArgs", ""}}},
      // smithers(render, opts) and opts.schedule
      {"options", false, {"input", "name", "defaultApprovalOwner", "schedule"}, {}},
      {"schedule", false, {"cron", "timeZone", "input", "enabled"}, {}},
      // a Task's sub-tables
      {"cachePolicy", false, {"scope", "ttlMs", "version", "by"}, {{"key", "use by"}}},
      {"retryPolicy", false, {"backoff", "initialDelayMs"}, {}},
  };
}

// The one table of props: the components' own (their rows in components.cc),
// then the agents', the options' and a Task's sub-tables'. Every field the
// converter (components.cc) or the agent executor (src/agents) reads must be
// here; `__kind` and `__src` (set by the constructors) and an agent's `kind`
// are accepted everywhere.
const std::vector<Component>& Components() {
  static const auto* const kTable = new std::vector<Component>([] {
    std::vector<Component> table;
    for (const ComponentRow& row : ComponentRows()) {
      table.push_back({row.name, true, row.props, row.unsupported});
    }
    for (Component& other : OtherTables()) table.push_back(std::move(other));
    return table;
  }());
  return *kTable;
}

// Members of the smithers table Smithers defines that we do not implement yet.
const std::map<std::string_view, std::string_view>& UnsupportedMembers() {
  static const auto* const kMembers = new std::map<std::string_view, std::string_view>{
      {"MergeQueue", "use Parallel { maxConcurrency = 1 }"},
      {"Worktree", ""},
      {"Subflow", ""},
      {"Sandbox", ""},
      {"HumanTask", "use an Approval"},
      {"ContinueAsNew", ""},
      {"continueAsNew", ""},
      {"Saga", ""},
      {"TryCatchFinally", "use continueOnFail and ctx:outputMaybe"},
      {"Aspects", ""},
      {"Memory", ""},
      {"ApprovalGate", "use an Approval in a Branch"},
      {"EscalationChain", "use an Approval with escalateAfterMs and fallbackOwner"},
      {"DecisionTable", "use Branch"},
      {"ReviewLoop", "use a Loop"},
      {"Optimizer", ""},
      {"ContentPipeline", ""},
      {"Sidecar", ""},
      {"DriftDetector", ""},
      {"ScanFixVerify", ""},
      {"Poller", "put a Timer in a Loop"},
      {"Runbook", ""},
      {"Supervisor", ""},
      {"CheckSuite", ""},
      {"ClassifyAndRoute", ""},
      {"GatherAndSynthesize", ""},
      {"Panel", ""},
      {"Debate", ""},
      {"Kanban", ""},
      {"SuperSmithers", ""},
      {"Monitor", ""},
      {"DelegationChain", ""},
      {"Trellis", ""},
      {"UI", ""},
      {"AnthropicAgent", "use smithers.Agent { provider = \"anthropic\", ... }"},
      {"OpenAIAgent", "use smithers.Agent { provider = \"openai\", ... }"},
  };
  return *kMembers;
}

const Component* Find(std::string_view kind) {
  for (const Component& c : Components()) {
    if (c.kind == kind) return &c;
  }
  return nullptr;
}

bool Has(const std::vector<std::string_view>& list, std::string_view name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// `(did you mean "a" or "b"?)`, or "" when nothing is 2 edits or fewer away.
std::string NearMisses(std::string_view name, const std::vector<std::string_view>& candidates) {
  int best = 3;
  std::vector<std::string_view> closest;
  for (std::string_view c : candidates) {
    int d = EditDistance(name, c);
    if (d < best) {
      best = d;
      closest.clear();
    }
    if (d == best && !Has(closest, c)) closest.push_back(c);
  }
  if (closest.empty()) return "";
  std::string out = " (did you mean ";
  for (size_t i = 0; i < closest.size(); ++i) {
    if (i > 0) out += i + 1 == closest.size() ? " or " : ", ";
    out += Quote(closest[i]);
  }
  return out + "?)";
}

// What is wrong with prop `name` of `c`, or "" when it is known.
std::string CheckName(const Component& c, std::string_view name) {
  if (name == "__kind" || name == "__src" || Has(c.props, name)) return "";
  for (const UnsupportedProp& u : c.unsupported) {
    if (u.prop == name) {
      return "prop " + Quote(name) + " is not supported yet" +
             (u.hint.empty() ? "" : " (" + std::string(u.hint) + ")");
    }
  }
  std::string msg = "unknown prop " + Quote(name);
  std::string near = NearMisses(name, c.props);
  if (!near.empty()) return msg + near;
  if (FindComponent(c.kind) != nullptr) {  // a component: which others take it
    std::vector<std::string_view> owners;
    for (const ComponentRow& row : ComponentRows()) {
      if (Has(row.props, name)) owners.push_back(row.name);
    }
    if (!owners.empty())
      return msg + " (a prop of " + base::Join(owners) + ", not of " + std::string(c.kind) + ")";
  }
  return msg + " (" + std::string(c.kind) + " takes " + base::Join(c.props) + ")";
}

// Raw reads: a metamethod could raise a Lua error over our C++ locals.
int RawField(lua_State* ls, int t, const char* name) {
  lua_pushstring(ls, name);
  return lua_rawget(ls, t);
}

// The table's field `name` as a string, or "".
std::string StringField(lua_State* ls, int t, const char* name) {
  RawField(ls, t, name);
  std::string out = lua_type(ls, -1) == LUA_TSTRING ? lua_tostring(ls, -1) : "";
  lua_pop(ls, 1);
  return out;
}

bool HasField(lua_State* ls, int t, const char* name) {
  RawField(ls, t, name);
  bool has = !lua_isnil(ls, -1);
  lua_pop(ls, 1);
  return has;
}

std::string Label(lua_State* ls, int t, const Component& c) {
  if (c.kind == "options") return "smithers(render, opts)";
  if (c.kind == "schedule") return "smithers(render, opts): opts.schedule";
  std::string label(c.kind);
  if (!c.children) return label;
  std::string id = StringField(ls, t, c.kind == "Workflow" ? "name" : "id");
  return id.empty() ? label : label + " " + Quote(id);
}

// Each component's props (and __kind, __src) as a hash set, by position in Components().
const std::unordered_set<std::string_view>& KnownProps(const Component& c) {
  static const auto* const kSets = [] {
    auto* sets = new std::vector<std::unordered_set<std::string_view>>();
    for (const Component& comp : Components()) {
      std::unordered_set<std::string_view> known(comp.props.begin(), comp.props.end());
      known.insert({"__kind", "__src"});
      sets->push_back(std::move(known));
    }
    return sets;
  }();
  return (*kSets)[static_cast<size_t>(&c - Components().data())];
}

// A Task's props that TaskProblems never looks at. TaskProblems must find no
// problem in a Task whose props are all in this list (CheckProps skips it then).
bool PlainTaskProp(std::string_view name) {
  static const auto* const kPlain = new std::unordered_set<std::string_view>{
      "__kind",           "__src",         "id",
      "skipIf",           "output",        "label",
      "retries",          "timeoutMs",     "heartbeatTimeoutMs",
      "heartbeatTimeout", "continueOnFail"};
  return kPlain->count(name) != 0;
}

// The common case, decided without allocating: every key of `t` is a prop of
// `c` or (when `c` takes children) a positive integer, and none of them is one
// the component's further checks look at (TaskProblems, an Approval's mode).
// False means "look closer" (Problems and the rest), not "bad".
bool PlainlyValid(lua_State* ls, int t, const Component& c, PropKeys* keys) {
  if (!lua_checkstack(ls, 3)) return false;
  int count = 0;  // string keys; past PropKeys::kMax they are not recorded
  const auto& known = KnownProps(c);
  const bool task = c.kind == "Task";
  const bool approval = c.kind == "Approval";
  lua_pushnil(ls);
  while (lua_next(ls, t) != 0) {
    lua_pop(ls, 1);
    bool ok = false;
    int type = lua_type(ls, -1);
    if (type == LUA_TSTRING) {
      size_t len = 0;
      const char* s = lua_tolstring(ls, -1, &len);
      std::string_view name(s, len);
      // Lua interns short strings, so the same prop name comes back at the
      // same address: a small cache by address skips the two hash lookups.
      // An entry is trusted only when the text at that address still is the
      // name it was found for (an address may be reused after a collection).
      struct Entry {
        const char* at = nullptr;
        const Component* component = nullptr;
        std::string_view name;  // the props table's own copy
      };
      thread_local std::array<Entry, 256> cache;
      Entry& e = cache[(reinterpret_cast<uintptr_t>(s) >> 4) & 255];
      if (e.at == s && e.component == &c && e.name == name) {
        ok = true;
      } else {
        auto it = known.find(name);
        ok = it != known.end() && (!task || PlainTaskProp(name)) && (!approval || name != "mode");
        if (ok) e = Entry{.at = s, .component = &c, .name = *it};
      }
      // The props table's copy of the name (static), never Lua's string.
      if (ok && keys != nullptr && count < PropKeys::kMax) keys->names[count] = e.name;
      ++count;
    } else if (type == LUA_TNUMBER) {
      ok = c.children && lua_isinteger(ls, -1) && lua_tointeger(ls, -1) > 0;
    }
    if (!ok) {
      lua_pop(ls, 1);
      return false;
    }
  }
  if (keys != nullptr && count <= PropKeys::kMax) {
    keys->taken = true;
    keys->count = count;
  }
  return true;
}

// The problems with the keys of table `t` (no label).
std::vector<std::string> Problems(lua_State* ls, int t, const Component& c) {
  std::vector<std::string> names;
  std::vector<std::string> problems;
  if (!lua_checkstack(ls, 3)) return {"too deeply nested"};
  lua_pushnil(ls);
  while (lua_next(ls, t) != 0) {
    lua_pop(ls, 1);
    int type = lua_type(ls, -1);
    if (type == LUA_TSTRING) {
      names.emplace_back(lua_tostring(ls, -1));
    } else if (type == LUA_TNUMBER && lua_isinteger(ls, -1) && lua_tointeger(ls, -1) > 0) {
      if (!c.children) problems.push_back("takes no positional entries, only named props");
    } else {
      problems.push_back(std::string("a key of type ") + lua_typename(ls, type) +
                         (type == LUA_TNUMBER ? " (not 1, 2, ...)" : "") +
                         " is neither a prop nor a child");
    }
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    std::string p = CheckName(c, n);
    if (!p.empty()) problems.push_back(std::move(p));
  }
  std::sort(problems.begin(), problems.end());
  problems.erase(std::unique(problems.begin(), problems.end()), problems.end());
  return problems;
}

// A Task's sub-tables and props that only mean something with another one.
void TaskProblems(lua_State* ls, int t, std::vector<std::string>& problems) {
  for (const char* sub : {"cachePolicy", "retryPolicy"}) {
    RawField(ls, t, sub);
    if (lua_istable(ls, -1) && lua_getmetatable(ls, -1)) {
      lua_pop(ls, 1);
      problems.push_back(std::string(sub) + " must be a plain table (it has a metatable)");
    } else if (lua_istable(ls, -1)) {
      for (const std::string& p : Problems(ls, lua_gettop(ls), *Find(sub))) {
        problems.push_back(std::string(sub) + ": " + p);
      }
    }
    lua_pop(ls, 1);
  }
  RawField(ls, t, "cache");
  if (!lua_isnil(ls, -1) && !lua_isboolean(ls, -1)) {
    problems.emplace_back(
        "\"cache\" must be true or false (a policy goes in cachePolicy = { scope, ttlMs, "
        "version, by })");
  }
  lua_pop(ls, 1);
  if (!HasField(ls, t, "needsApproval")) {
    for (const char* p : {"owner", "fallbackOwner", "escalateAfterMs", "onDeny", "request",
                          "allowedUsers", "allowedScopes"}) {
      if (HasField(ls, t, p)) {
        problems.push_back(Quote(p) + " applies only with needsApproval (or use an Approval)");
      }
    }
  }
  if (!HasField(ls, t, "command")) {
    for (const char* p : {"cwd", "env", "parse"}) {
      if (HasField(ls, t, p))
        problems.push_back(Quote(p) + " applies only with command = {argv...}");
    }
  }
}

}  // namespace

int EditDistance(std::string_view a, std::string_view b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (same ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string CheckProps(lua_State* ls, int idx, std::string_view kind, PropKeys* keys) {
  if (keys != nullptr) keys->taken = false;
  const Component* c = Find(kind);
  if (c == nullptr) return "unknown component " + Quote(kind);
  int t = lua_absindex(ls, idx);
  if (lua_getmetatable(ls, t)) {  // its fields could run code and raise errors when read
    lua_pop(ls, 1);
    return std::string(kind) + ": the table must not have a metatable";
  }
  if (PlainlyValid(ls, t, *c, keys)) return "";
  std::vector<std::string> problems = Problems(ls, t, *c);
  if (kind == "Task") TaskProblems(ls, t, problems);
  if (kind == "Approval") {
    std::string mode = StringField(ls, t, "mode");
    if (HasField(ls, t, "mode") && mode != "approve") {
      problems.push_back("mode " + (mode.empty() ? std::string("must be a string") : Quote(mode)) +
                         " is not supported yet (only \"approve\")");
    }
  }
  if (problems.empty()) return "";
  std::string msg = Label(ls, t, *c) + ": ";
  for (size_t i = 0; i < problems.size(); ++i) msg += (i > 0 ? "; " : "") + problems[i];
  return msg;
}

std::string UnknownMember(lua_State* ls, int idx, std::string_view table_name,
                          std::string_view key) {
  std::string where = std::string(table_name) + "." + std::string(key);
  auto it = UnsupportedMembers().find(key);
  if (table_name == "smithers" && it != UnsupportedMembers().end()) {
    return where + " is not supported yet" +
           (it->second.empty() ? "" : " (" + std::string(it->second) + ")");
  }
  int t = lua_absindex(ls, idx);
  std::vector<std::string> names;
  if (!lua_checkstack(ls, 3)) return where + " is not defined";
  lua_pushnil(ls);
  while (lua_next(ls, t) != 0) {
    lua_pop(ls, 1);
    if (lua_type(ls, -1) == LUA_TSTRING) names.emplace_back(lua_tostring(ls, -1));
  }
  std::sort(names.begin(), names.end());
  std::vector<std::string_view> views(names.begin(), names.end());
  std::string near = NearMisses(key, views);
  return std::string(table_name) + " has no " + Quote(key) +
         (near.empty() ? " (it has " + base::Join(views) + ")" : near);
}

namespace {

// Pushes "FILE:LINE: " of the nearest Lua function up the stack (the
// constructor may be called through pcall, a C function), or "".
void PushWhere(lua_State* ls) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(ls, level, &ar) != 0; ++level) {
    if (lua_getinfo(ls, "Sl", &ar) != 0 && ar.currentline > 0) {
      lua_pushfstring(ls, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(ls, "");
}

}  // namespace

bool PushPropsError(lua_State* ls, int idx, std::string_view kind) {
  bool bad = false;
  {
    std::string err = CheckProps(ls, idx, kind);
    if (!err.empty()) {
      bad = true;
      PushWhere(ls);
      lua_pushlstring(ls, err.data(), err.size());
      lua_concat(ls, 2);
    }
  }
  if (bad) {
    lua_pushvalue(ls, -1);
    lua_setfield(ls, LUA_REGISTRYINDEX, kPropsErrorKey);
  }
  return bad;
}

int IndexUnknownMember(lua_State* ls) {
  if (lua_type(ls, 2) != LUA_TSTRING) {
    lua_pushnil(ls);  // t[1], t[true]: not a name, plain nil
    return 1;
  }
  {
    std::string err =
        UnknownMember(ls, 1, lua_tostring(ls, lua_upvalueindex(1)), lua_tostring(ls, 2));
    PushWhere(ls);
    lua_pushlstring(ls, err.data(), err.size());
    lua_concat(ls, 2);
  }
  lua_pushvalue(ls, -1);
  lua_setfield(ls, LUA_REGISTRYINDEX, kPropsErrorKey);
  return lua_error(ls);
}

}  // namespace smithers::script
