// The Gateway's RPC parameter handling under libFuzzer (mode 4 of
// gateway_fuzz.cc). A real Gateway runs over a real SQLite database in a temp
// folder, seeded once by running a small Lua workflow: a finished run with
// nodes and outputs, a failed one, two waiting for an approval (one decided,
// not acted on yet), two waiting for an event (one held by a live owner),
// plus two cron rows. Each input calls one method, by name, as a caller
// holding `*`:
//
//   name\n   the method's name, up to the first '\n' (no '\n': the whole
//            input is the name). A name the method table (Methods()) does
//            not list must be refused with METHOD_NOT_FOUND.
//   byte     the connection: bits 0-1 = none (as over HTTP), or a WebSocket
//            with room for 1000 frames, for 1, or for none and overflowing;
//            bit 2 = it already streams run fz-done as stream "fz-stream"
//   rest     params: the JSON text when it parses (any JSON: the dispatcher
//            refuses a non-object), else bytes that drive a generator of
//            objects built from the methods' parameter names and the seeded
//            ids, so that mutated bytes still reach deep into each method.
//
// Invariants (a violation prints the call and traps):
//   - no exception escapes Call();
//   - an ok reply's payload is an object;
//   - an error has a code, HttpStatusFor() knows it (not its 500 fallback),
//     it is not Forbidden or METHOD_NOT_FOUND (the caller holds `*` and the
//     method is in the table; a name not in the table gets METHOD_NOT_FOUND
//     and nothing else), and it is not Internal: the database is
//     healthy and nothing else writes to it, so a 500 would be a client's
//     input turned into a server error;
//   - the reply frames (Frame(), as the server sends it) and every event sent
//     to the connection is JSON.
//
// Each input starts from the seeded database: when a call wrote to it (its
// -wal file changed), the Gateway is closed and the database copied back
// from the pristine file. Crashes thus reproduce from the one input.
//
// Runs: launchRun, cronRun and resumeRun (and the supervisor sweep that
// submitApproval and submitSignal trigger) start a thread per run. Those
// threads cannot pile up: the Gateway's db (which only run threads
// open; the Gateway's own store is the one passed in) names a file inside a
// regular file, so each run thread (after a launch's module load and input
// check, which come first) fails to open its store, marks itself done and is
// joined (ReapRuns) before the next input. The whole RPC path (parameter
// checks, workflow load and input validation, RunExists, ownership claims,
// the thread's start and end, the reply it posts back) runs; the run itself,
// the engine's business, does not. Calls go through CallForTesting: it runs
// what the run threads post back (there is no io loop) until the reply came.
#include "rpc_fuzz.h"

#include <fuzzer/FuzzedDataProvider.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/json_limits.h"
#include "gateway/auth.h"
#include "gateway/gateway_internal.h"
#include "gateway/methods.h"
#include "gateway/protocol.h"
#include "script/lua_workflow.h"
#include "smithers/clock.h"
#include "smithers/engine.h"
#include "smithers/store.h"

namespace smithers::gateway::fuzz {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNowMs = 1800000000000;  // 2027-01-15, fixed: replies do not depend on when

// The one workflow of the folder (fz.lua): a static task, then by input.mode
// an approval, a wait for an event, or a compute task that fails.
constexpr char kWorkflow[] = R"lua(
local smithers = require("smithers")
local Workflow, Sequence, Task = smithers.Workflow, smithers.Sequence, smithers.Task
local z = smithers.schema
local outputs = smithers.outputs {
  greeting = z.object { message = z.string() },
  decision = smithers.approvalDecision,
  ci = z.object { sha = z.string() },
  never = z.object { n = z.integer() },
}
return smithers(function(ctx)
  local mode = ctx.input.mode
  local steps = { Task { id = "greet", output = outputs.greeting,
                         { message = "hi " .. ctx.input.name } } }
  if mode == "gate" then
    steps[#steps + 1] = smithers.Approval { id = "gate", output = outputs.decision,
      owner = "alice", fallbackOwner = "bob", escalateAfterMs = 60000,
      request = { title = "Ship?" } }
  elseif mode == "event" then
    steps[#steps + 1] = smithers.WaitForEvent { id = "ci", output = outputs.ci,
      event = "ci-green", timeoutMs = 3600000 }
  elseif mode == "fail" then
    steps[#steps + 1] = Task { id = "boom", output = outputs.never,
                               function() error("boom") end }
  end
  return Workflow { name = "fz", Sequence(steps) }
end, { input = z.object { name = z.string(),
                          mode = z.optional(z.enum { "gate", "event", "fail" }),
                          n = z.optional(z.integer()),
                          tags = z.optional(z.array(z.string())) } })
)lua";

// What the generator builds params from, '|'-separated: every parameter name
// the methods read (and the keys nested in filter, options, decision and
// input); the ids the database holds and other strings the methods compare
// with, "" the first.
constexpr char kKeysText[] =
    "runId|nodeId|iteration|workflow|input|options|filter|decision|approved|note|signalName|"
    "name|payload|cronId|pattern|timeZone|correlationKey|correlationId|enabled|afterSeq|"
    "streamId|status|limit|offset|mode|maxConcurrency|force|n|tags";
constexpr char kStringsText[] =
    "|fz-done|fz-gate|fz-event|fz-fail|fz-decided|fz-owned|fz-new|fz|greet|gate|ci|boom|"
    "ci-green|nightly|paused|fz-stream|s1|UTC|Europe/Paris|America/New_York|0 3 * * *|"
    "*/5 * * * *|@daily|requested|approved|any|waiting|finished|event|fail|-|A|..";

std::vector<std::string> Split(std::string_view text) {
  std::vector<std::string> words;
  for (size_t start = 0;;) {
    size_t bar = text.find('|', start);
    words.emplace_back(text.substr(start, bar - start));
    if (bar == std::string_view::npos) return words;
    start = bar + 1;
  }
}

std::string Trimmed(const std::string& s) {
  return s.size() <= 2000 ? s : s.substr(0, 2000) + "...";
}

[[noreturn]] void Violation(const std::string& what, const std::string& method, const Json& params,
                            const std::string& reply) {
  fprintf(stderr, "gateway_fuzz: %s\n  method: %s\n  params: %s\n  reply:  %s\n", what.c_str(),
          method.c_str(), Trimmed(Frame(params)).c_str(), Trimmed(reply).c_str());
  __builtin_trap();
}

[[noreturn]] void SetupFailed(const std::string& what) {
  fprintf(stderr, "gateway_fuzz: setting up the RPC mode: %s\n", what.c_str());
  abort();
}

// A WebSocket as the core sees it; checks what the Gateway sends it.
class FuzzConnection final : public Connection {
 public:
  FuzzConnection(int room, bool overflowing) : room_(room), overflowing_(overflowing) {
    authenticated = true;
  }
  void SendEvent(const std::string& event, const std::string& payload_json) override {
    if (event.empty() || !Json::accept(payload_json)) {
      fprintf(stderr, "gateway_fuzz: event \"%s\" with a payload that is not JSON: %s\n",
              event.c_str(), Trimmed(payload_json).c_str());
      __builtin_trap();
    }
    if (room_ > 0) room_--;
  }
  int Room() const override { return room_; }
  bool Overflowing() const override { return overflowing_; }
  void Close(int /*code*/, const std::string& /*reason*/) override { closing = true; }

 private:
  int room_;
  bool overflowing_;
};

// Params from bytes that are not JSON.
class ParamGenerator {
 public:
  ParamGenerator(const uint8_t* data, size_t size) : p_(data, size) {}

  Json Params() { return Object(0); }

 private:
  Json Value(int depth) {
    switch (p_.ConsumeIntegralInRange<int>(0, depth >= 3 ? 7 : 9)) {
      case 0: return nullptr;
      case 1: return p_.ConsumeBool();
      case 2: return p_.ConsumeIntegralInRange<int64_t>(-2, 3);
      case 3: return p_.ConsumeIntegral<int64_t>();
      case 4: return p_.ConsumeIntegral<uint64_t>();
      case 5: return p_.ConsumeFloatingPoint<double>();
      case 6: return Pick(kStrings);
      case 7: return p_.ConsumeRandomLengthString(80);
      case 8: {
        Json a = Json::array();
        for (int n = p_.ConsumeIntegralInRange<int>(0, 3); n > 0; --n) {
          a.push_back(Value(depth + 1));
        }
        return a;
      }
      default: return Object(depth + 1);
    }
  }

  Json Object(int depth) {
    Json o = Json::object();
    for (int n = p_.ConsumeIntegralInRange<int>(0, 5); n > 0; --n) {
      std::string key = p_.ConsumeBool() ? Pick(kKeys) : p_.ConsumeRandomLengthString(16);
      o[key] = Value(depth);
    }
    return o;
  }

  const std::string& Pick(const std::vector<std::string>& words) {
    return words[p_.ConsumeIntegralInRange<size_t>(0, words.size() - 1)];
  }

  static inline const std::vector<std::string> kKeys = Split(kKeysText);
  static inline const std::vector<std::string> kStrings = Split(kStringsText);
  FuzzedDataProvider p_;
};

// The Gateway, its database and the pristine copy it is reset from.
class RpcFuzzEnv {
 public:
  RpcFuzzEnv() {
    // In memory when we can: resetting the database is a copy and an fsync.
    std::error_code ec;
    fs::path parent =
        access("/dev/shm", W_OK) == 0 ? fs::path("/dev/shm") : fs::temp_directory_path(ec);
    RemoveFoldersOfDeadRuns(parent);
    std::string tmpl =
        (parent / ("smithers-fuzz-" + std::to_string(getpid()) + "-XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) SetupFailed("mkdtemp " + tmpl);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/workflows");
    std::ofstream(dir_ + "/workflows/fz.lua") << kWorkflow;
    std::ofstream(dir_ + "/not-a-dir") << "a file where a run thread wants a folder\n";
    db_ = dir_ + "/db/smithers.db";
    pristine_ = dir_ + "/pristine.db";
    opts_.workflows_dir = dir_ + "/workflows";
    opts_.db = dir_ + "/not-a-dir/smithers.db";  // run threads cannot open it (see the top)
    opts_.synchronous = "NORMAL";
    opts_.access_log = "-";
    opts_.clock = &clock_;
    Seed();
    Open();
  }

  ~RpcFuzzEnv() {
    if (std::getenv("SMITHERS_FUZZ_VERBOSE") != nullptr) {
      fprintf(stderr, "gateway_fuzz: %ld RPC calls, %ld database resets\n", calls_, resets_);
    }
    Close();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  void Run(const uint8_t* data, size_t size) {
    const char* begin = reinterpret_cast<const char*>(data);
    const char* newline = static_cast<const char*>(memchr(begin, '\n', size));
    std::string method(begin, newline != nullptr ? newline : begin + size);
    size_t skip = newline != nullptr ? static_cast<size_t>(newline - begin) + 1 : size;
    uint8_t conn_byte = skip < size ? data[skip] : 0;
    skip = std::min(size, skip + 1);
    if (FindMethod(method) == nullptr) {
      std::string code = Call(method, conn_byte, Json::object());
      if (code != "METHOD_NOT_FOUND") {
        Violation("a method not in the table got " + code, method, Json::object(), "");
      }
      return;
    }
    std::string_view text(reinterpret_cast<const char*>(data) + skip, size - skip);
    Json params = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (params.is_discarded()) {
      // As over the wire: valid UTF-8 (Frame replaces the rest), no NaN.
      Json generated = ParamGenerator(data + skip, size - skip).Params();
      params = Json::parse(Frame(generated), nullptr, false);
      if (params.is_discarded()) {
        Violation("Frame() wrote text that is not JSON", method, generated, "");
      }
    }
    Call(method, conn_byte, params);
  }

  // Calls `method` with `params` as `*` and checks the reply; returns its
  // error code ("" when ok).
  std::string Call(const std::string& method, uint8_t conn_byte, const Json& params) {
    std::shared_ptr<FuzzConnection> conn;
    switch (conn_byte & 3) {
      case 1: conn = std::make_shared<FuzzConnection>(1000, false); break;
      case 2: conn = std::make_shared<FuzzConnection>(1, false); break;
      case 3: conn = std::make_shared<FuzzConnection>(0, true); break;
      default: break;
    }
    if (conn != nullptr && (conn_byte & 4) != 0) conn->streams["fz-stream"] = "fz-done";

    // alice owns the fuzz workflow's approval: submitApproval reaches the
    // decision path, not only the decider refusal.
    Caller caller{.user_id = "alice", .role = "operator", .scopes = {"*"}, .via = "token"};
    Reply r;
    try {
      r = gw_->CallForTesting(caller, method, params, conn.get());
    } catch (const std::exception& e) {
      Violation(std::string("exception escaped Call(): ") + e.what(), method, params, "");
    } catch (...) {
      Violation("a non-std exception escaped Call()", method, params, "");
    }
    calls_++;
    Check(r, method, params);
    static const bool verbose = std::getenv("SMITHERS_FUZZ_VERBOSE") != nullptr;
    if (verbose) {
      fprintf(stderr, "%s %s -> %s\n", method.c_str(), Trimmed(Frame(params)).c_str(),
              Trimmed(r.ok ? Frame(r.payload) : r.code + ": " + r.message).c_str());
    }
    if (conn != nullptr) {
      // What the server does next: replay the stream's events, then the
      // connection goes away and its subscriptions are dropped.
      gw_->PumpAll();
      gw_->Heartbeats();
      conn.reset();
      gw_->PumpAll();
    }
    ReapAll();
    if (WalState() != wal_) {
      resets_++;
      Close();
      Open();
    }
    return r.ok ? std::string() : r.code;
  }

 private:
  static void Check(const Reply& r, const std::string& method, const Json& params) {
    Json framed = {{"ok", r.ok}};
    if (r.ok) {
      framed["payload"] = r.payload;
    } else {
      framed["error"] = {{"code", r.code}, {"message", r.message}, {"details", r.details}};
    }
    std::string text = Frame(framed);  // as the server sends it
    if (r.ok) {
      // The list methods reply with a bare array of rows, as Smithers'
      // client types them; every other method with an object.
      static const std::set<std::string> kLists = {"listRuns", "listWorkflows", "listApprovals",
                                                   "cronList"};
      if (kLists.count(method) != 0) {
        if (!r.payload.is_array()) {
          Violation("a list method's ok payload is not an array", method, params, text);
        }
        for (const Json& row : r.payload) {
          if (!row.is_object()) Violation("a list row is not an object", method, params, text);
        }
      } else if (!r.payload.is_object()) {
        Violation("an ok reply's payload is not an object", method, params, text);
      }
      return;
    }
    if (r.code.empty()) Violation("an error without a code", method, params, text);
    if (FindMethod(method) == nullptr) return;  // Run() checks its code
    if (r.code == "Forbidden" || r.code == "METHOD_NOT_FOUND") {
      Violation("a listed method refused to a caller holding *", method, params, text);
    }
    if (r.code == "Internal") {
      Violation("Internal (HTTP 500) from a healthy database: input became a server error", method,
                params, text);
    }
    if (HttpStatusFor(r.code) == 500) {
      Violation("an error code HttpStatusFor() does not know (HTTP 500)", method, params, text);
    }
  }

  // A crash (a trap, a sanitizer's abort) leaves its folder behind: the next
  // run removes those whose process is gone.
  static void RemoveFoldersOfDeadRuns(const fs::path& parent) {
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(parent, ec)) {
      std::string name = e.path().filename().string();
      if (name.rfind("smithers-fuzz-", 0) != 0) continue;
      pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + 14));
      if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
    }
  }

  // The rows every input starts from, written by real runs of fz.lua.
  void Seed() {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = pristine_});
    if (!store.ok()) SetupFailed(store.status().message());
    struct SeedRun {
      const char* run_id;
      Json input;
      RunStatus status;
    };
    const SeedRun runs[] = {
        {"fz-done", {{"name", "a"}, {"n", 1}, {"tags", {"x"}}}, RunStatus::kFinished},
        {"fz-gate", {{"name", "b"}, {"mode", "gate"}}, RunStatus::kWaitingApproval},
        {"fz-event", {{"name", "c"}, {"mode", "event"}}, RunStatus::kWaitingEvent},
        {"fz-fail", {{"name", "d"}, {"mode", "fail"}}, RunStatus::kFailed},
        {"fz-decided", {{"name", "e"}, {"mode", "gate"}}, RunStatus::kWaitingApproval},
        {"fz-owned", {{"name", "f"}, {"mode", "event"}}, RunStatus::kWaitingEvent},
    };
    for (const SeedRun& s : runs) {
      Result<std::unique_ptr<script::LuaWorkflow>> module =
          script::LoadWorkflowModule(opts_.workflows_dir + "/fz.lua");
      if (!module.ok()) SetupFailed(module.status().message());
      RunOptions ro;
      ro.run_id = s.run_id;
      ro.input = s.input;
      ro.clock = &clock_;
      Result<RunResult> r = RunWorkflow((*module)->definition(), **store, ro);
      if (!r.ok()) SetupFailed(std::string(s.run_id) + ": " + r.status().message());
      if (r->status != s.status)
        SetupFailed(std::string(s.run_id) + " ended " + std::string(Name(r->status)));
    }
    // An approval decided but not acted on yet (AlreadyDecided), and a run a
    // live process holds (Busy; cancelRun asks it to stop).
    Result<ApprovalRecord> decided = (*store)->DecideApproval(
        {.run_id = "fz-decided", .node_id = "gate", .approved = true, .decided_by = "alice"},
        kNowMs);
    if (!decided.ok()) SetupFailed(decided.status().message());
    Status owned = (*store)->ClaimRun("fz-owned", "", ThisProcessOwnerId(), kNowMs);
    if (!owned.ok()) SetupFailed(owned.message());
    const CronRecord crons[] = {{.cron_id = "nightly",
                                 .workflow = "fz",
                                 .pattern = "0 3 * * *",
                                 .input = {{"name", "n"}},
                                 .created_at_ms = kNowMs,
                                 .next_run_at_ms = kNowMs + 3600000},
                                {.cron_id = "paused",
                                 .workflow = "fz",
                                 .pattern = "*/5 * * * 1-5",
                                 .time_zone = "Europe/Paris",
                                 .input = {{"name", "p"}, {"mode", "gate"}},
                                 .enabled = false,
                                 .created_at_ms = kNowMs}};
    for (const CronRecord& c : crons) {
      Status put = (*store)->PutCron(c);
      if (!put.ok()) SetupFailed(put.message());
    }
    // Closing checkpoints the WAL into the file: pristine.db is the whole database.
  }

  void Open() {
    std::error_code ec;
    fs::create_directories(fs::path(db_).parent_path(), ec);
    fs::remove(db_ + "-wal", ec);
    fs::remove(db_ + "-shm", ec);
    if (!fs::copy_file(pristine_, db_, fs::copy_options::overwrite_existing, ec)) {
      SetupFailed("copy " + pristine_ + ": " + ec.message());
    }
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = db_, .synchronous = "NORMAL"});
    if (!store.ok()) SetupFailed(store.status().message());
    gw_ = std::make_unique<Gateway>(opts_, std::move(store).value());
    gw_->request_pump = [] {};  // Wake() calls it (from run threads too): no io loop here
    wal_ = WalState();
  }

  void Close() {
    if (gw_ == nullptr) return;
    ReapAll();
    gw_.reset();
  }

  void ReapAll() {
    while (gw_->ReapRuns() > 0) std::this_thread::yield();
  }

  // The -wal file's size and mtime: they change when a transaction commits.
  std::pair<int64_t, int64_t> WalState() const {
    struct stat st {};
    if (stat((db_ + "-wal").c_str(), &st) != 0) return {-1, 0};
    return {st.st_size, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
  }

  std::string dir_, db_, pristine_;
  ManualClock clock_{kNowMs};
  GatewayOptions opts_;
  std::unique_ptr<Gateway> gw_;
  std::pair<int64_t, int64_t> wal_{-1, 0};
  long calls_ = 0, resets_ = 0;
};

RpcFuzzEnv& Env() {
  static RpcFuzzEnv env;  // closed, and its folder removed, at exit
  return env;
}

}  // namespace

void FuzzRpc(const uint8_t* data, size_t size) {
  if (size == 0) return;
  Env().Run(data, size);
}

namespace {

// One value of a generated shape, as JSON text; `depth` is its nesting.
struct Shape {
  std::string text;
  int depth = 0;
};

Shape BuildShape(int depth, int width, int kind, const std::string& leaf) {
  Shape s;
  s.text.reserve(static_cast<size_t>(depth) * 6 + static_cast<size_t>(width) * (leaf.size() + 6));
  std::vector<char> closers;
  for (int i = 0; i < depth; ++i) {
    bool array = kind == 0 || (kind == 2 && i % 2 == 0);
    s.text += array ? "[" : "{\"k\":";
    closers.push_back(array ? ']' : '}');
  }
  s.text += leaf;
  for (auto it = closers.rbegin(); it != closers.rend(); ++it) s.text += *it;
  s.depth = depth;
  if (width > 0) {
    // Wide: `width` siblings beside the deep one, in an array or an object.
    bool array = kind != 1;
    std::string wide = array ? "[" : "{";
    for (int i = 0; i < width; ++i) {
      wide += array ? leaf : "\"w" + std::to_string(i) + "\":" + leaf;
      wide += ',';
    }
    wide += array ? s.text : "\"deep\":" + s.text;
    wide += array ? ']' : '}';
    s.text = std::move(wide);
    s.depth += 1;
  }
  return s;
}

[[noreturn]] void DeepViolation(const std::string& what, const std::string& text) {
  fprintf(stderr, "gateway_fuzz (deep): %s\n  document: %s\n", what.c_str(), Trimmed(text).c_str());
  __builtin_trap();
}

}  // namespace

void FuzzDeep(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  const int limit = base::MaxJsonDepth();
  int depth = 0;
  switch (p.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: depth = limit - 3 + p.ConsumeIntegralInRange<int>(0, 6); break;  // around the limit
    case 1: depth = p.ConsumeIntegralInRange<int>(0, 300); break;
    case 2: depth = p.ConsumeIntegralInRange<int>(1000, 200000); break;
    default: depth = p.ConsumeIntegralInRange<int>(0, 2 * limit); break;
  }
  int width = p.ConsumeIntegralInRange<int>(0, 3) == 0 ? p.ConsumeIntegralInRange<int>(0, 20000)
                                                       : p.ConsumeIntegralInRange<int>(0, 3);
  int kind = p.ConsumeIntegralInRange<int>(0, 2);  // arrays, objects, alternating
  // Leaves: a number, or a string holding brackets and an escaped quote.
  std::string leaf = p.ConsumeBool() ? "1" : R"("]}[{\"\\")";
  int where = p.ConsumeIntegralInRange<int>(0, 4);
  uint8_t conn_byte = p.ConsumeIntegral<uint8_t>();
  Shape v = BuildShape(depth, width, kind, leaf);

  // The value in a request: launchRun's input, submitSignal's payload,
  // cronCreate's input, a plain param, or the frame's id.
  std::string method = "health", params_text, id_text = "\"d\"";
  int value_depth = v.depth;  // the nesting of the value params holds
  switch (where) {
    case 0:
      method = "launchRun";
      params_text = R"({"workflow":"fz","input":{"name":"x","deep":)" + v.text + "}}";
      value_depth = v.depth + 1;
      break;
    case 1:
      method = "submitSignal";
      params_text = R"({"runId":"fz-event","signalName":"ci-green","payload":)" + v.text + "}";
      break;
    case 2:
      method = "cronCreate";
      params_text =
          R"({"workflow":"fz","pattern":"0 3 * * *","input":{"name":"x","deep":)" + v.text + "}}";
      value_depth = v.depth + 1;
      break;
    case 3: params_text = R"({"x":)" + v.text + "}"; break;
    default:
      params_text = "{}";
      id_text = v.text;
      value_depth = 0;
      break;
  }
  std::string frame = R"({"type":"req","id":)" + id_text + R"(,"method":")" + method +
                      R"(","params":)" + params_text + "}";
  int frame_depth = std::max(2 + value_depth, 1 + (where == 4 ? v.depth : 0));

  // The scanner and the check of a parsed value agree, on the frame and on
  // the value alone, and match the depth the generator built.
  Status scanned = base::CheckJsonDepth(frame, limit, "a value in the request", 2);
  bool too_deep = frame_depth > limit + 2;
  if (scanned.ok() == too_deep) DeepViolation("the scanner missed the depth", frame);
  if (v.text.size() < (8u << 20)) {
    Json parsed = Json::parse(v.text, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) DeepViolation("the generator wrote text that is not JSON", v.text);
    Status a = base::CheckJsonDepth(v.text, limit);
    Status b = base::CheckJsonValueDepth(parsed, limit);
    if (a.ok() != b.ok() || a.message() != b.message() || a.ok() != (v.depth <= limit)) {
      DeepViolation("text and value checks disagree: " + a.message() + " / " + b.message(), v.text);
    }
  }

  // The transport: refused before parsing when too deep, with InvalidInput.
  RequestFrame f = ParseRequestFrame(frame, 1u << 30, limit);
  if (too_deep) {
    if (f.ok || f.error_code != "InvalidInput") DeepViolation("a deep frame got through", frame);
  } else if (where != 4 || v.depth == 0) {
    if (!f.ok) DeepViolation("a frame within the limit was refused: " + f.error_message, frame);
  }
  if (f.ok) {
    Env().Call(f.method, conn_byte, f.params);  // the method's own checks, as the server runs them
  } else if (where != 4 && value_depth <= 5000) {
    // Past the transport (a caller that builds params itself): the dispatcher
    // refuses them as InvalidInput, without recursing.
    Json params = Json::parse(params_text, nullptr, /*allow_exceptions=*/false);
    std::string code = Env().Call(method, conn_byte, params);
    if (code != "InvalidInput") DeepViolation("deep params got " + code, params_text);
  }
}

}  // namespace smithers::gateway::fuzz
