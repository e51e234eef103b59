#include "cli/common.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <utility>
#include <vector>

#include "agents/agent_executor.h"
#include "base/json_limits.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox_task.h"
#include "smithers/engine.h"

namespace smithers::cli {

int Fail(int code, const std::string& message) {
  std::cerr << "smithers: " << message << "\n";
  return code;
}

int ExitFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAlreadyExists:
    case StatusCode::kNotFound:
    case StatusCode::kPermissionDenied: return kExitBadInput;
    default: return kExitFailed;
  }
}

Status CheckDb(Global& g) {
  SMITHERS_ASSIGN_OR_RETURN(StoreLocation location, ParseStoreUrl(g.db));
  g.db_file = location.path;
  return Status::Ok();
}

std::string OsUser() {
  uid_t uid = geteuid();
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr && found->pw_name[0] != '\0') {
    return found->pw_name;
  }
  return "uid:" + std::to_string(uid);
}

Result<Json> ParseInputArg(const std::string& text) {
  std::string body = text;
  if (text == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    body = ss.str();
  }
  SMITHERS_ASSIGN_OR_RETURN(Json j, base::ParseJsonLimited(body, base::MaxJsonDepth(), "--input"));
  if (!j.is_object()) return InvalidArgumentError("--input must be a JSON object");
  return j;
}

AuditEntry CliAudit(std::string action, std::string target, Json details) {
  return {.actor = OsUser(),
          .actor_via = "os",
          .action = std::move(action),
          .target = std::move(target),
          .details = std::move(details)};
}

AuditEntry CliRunAudit(std::string action, const std::string& run_id, Json details) {
  AuditEntry e = CliAudit(std::move(action), run_id, std::move(details));
  e.run_id = run_id;
  return e;
}

Result<std::unique_ptr<Store>> Open(const Global& g) {
  return OpenStore(
      g.db,
      {.group_readable = g.group_readable, .synchronous = g.synchronous, .audit_key = g.audit_key});
}

Result<std::unique_ptr<Store>> OpenForRead(const Global& g) {
  if (!g.db_file.empty() && access(g.db_file.c_str(), F_OK) != 0 && errno == ENOENT) {
    return Open(g);
  }
  return OpenStore(g.db, {.read_only = true, .synchronous = g.synchronous});
}

namespace {

class OffsetClock final : public Clock {
 public:
  explicit OffsetClock(int64_t offset_ms) : offset_ms_(offset_ms) {}
  int64_t NowMs() const override { return SystemClock().NowMs() + offset_ms_; }
  int64_t MonotonicMs() const override { return SystemClock().MonotonicMs(); }

 private:
  int64_t offset_ms_;
};

std::string Span(int64_t ms) {
  int64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

}  // namespace

Clock& CliClock() {
  static OffsetClock* clock = [] {
    const char* v = std::getenv("SMITHERS_CLOCK_OFFSET_MS");
    int64_t offset = v != nullptr ? std::strtoll(v, nullptr, 10) : 0;
    return new OffsetClock(offset);
  }();
  return *clock;
}

bool ClockShifted() { return std::getenv("SMITHERS_CLOCK_OFFSET_MS") != nullptr; }

std::vector<std::unique_ptr<Executor>> AddRunExecutors(const WorkflowDefinition& wf,
                                                       const std::vector<std::string>& hidden,
                                                       RunOptions& ro) {
  std::vector<std::unique_ptr<Executor>> keep;
  keep.push_back(agents::NewAgentExecutor(
      {.outputs = wf.outputs, .hidden_paths = hidden, .require_sandbox = ro.require_sandbox}));
  ro.executors[TaskMode::kAgent] = keep.back().get();
  keep.push_back(sandbox::NewSandboxTaskExecutor({.hidden_paths = hidden}));
  ro.executors[TaskMode::kSandbox] = keep.back().get();
  ro.confine = [hidden](const SandboxSpec& spec, const std::string& workspace,
                        const std::vector<std::string>& argv,
                        const std::vector<std::string>& env_names) {
    return sandbox::ConfineTask(spec, workspace, hidden, argv, env_names);
  };
  return keep;
}

Result<int64_t> AgentHeartbeatTimeoutMs() {
  const char* v = std::getenv("SMITHERS_TASK_HEARTBEAT_MS");
  if (v == nullptr || *v == '\0') return RunOptions{}.agent_heartbeat_timeout_ms;
  errno = 0;
  char* end = nullptr;
  long long ms = std::strtoll(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || ms <= 0) {
    return InvalidArgumentError(std::string("SMITHERS_TASK_HEARTBEAT_MS=\"") + v +
                                "\" is not a positive number of milliseconds");
  }
  return static_cast<int64_t>(ms);
}

std::string Ago(int64_t then_ms) {
  if (then_ms == 0) return "-";
  return Span(CliClock().NowMs() - then_ms) + " ago";
}

std::string In(int64_t at_ms) {
  int64_t d = at_ms - CliClock().NowMs();
  return d <= 0 ? "now" : "in " + Span(d);
}

}  // namespace smithers::cli
