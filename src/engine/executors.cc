#include "engine/executors.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/secrets.h"
#include "base/subprocess.h"

namespace smithers::engine {

Json ErrorJson(const std::string& code, const std::string& message) {
  return {{"code", code}, {"message", message}};
}

namespace {

class StaticExecutor final : public Executor {
 public:
  Result<std::unique_ptr<Execution>> Start(const TaskSpec& task, const AttemptInfo&) override {
    return std::unique_ptr<Execution>(
        std::make_unique<ImmediateExecution>(AttemptOutcome{.ok = true, .output = task.value}));
  }
};

class ComputeExecutor final : public Executor {
 public:
  Result<std::unique_ptr<Execution>> Start(const TaskSpec& task, const AttemptInfo& info) override {
    if (!task.compute) return InvalidArgumentError("compute task without a function");
    ComputeContext ctx{.run_id = info.run_id,
                       .node_id = info.node_id,
                       .iteration = info.iteration,
                       .attempt = info.attempt,
                       .deadline_monotonic_ms = info.deadline_monotonic_ms,
                       .clock = info.clock,
                       .deps = info.deps};
    Result<Json> r = task.compute(ctx);
    AttemptOutcome outcome;
    if (r.ok()) {
      outcome = {.ok = true, .output = std::move(r).value()};
    } else if (r.status().code() == StatusCode::kDeadlineExceeded) {
      outcome = {.ok = false, .error = ErrorJson("TASK_TIMEOUT", r.status().message())};
    } else {
      outcome = {.ok = false, .error = ErrorJson("TASK_FAILED", r.status().message())};
    }
    return std::unique_ptr<Execution>(std::make_unique<ImmediateExecution>(std::move(outcome)));
  }
};

constexpr size_t kMaxCapturedBytes = 16 << 20;

// An attempt that fails before its process starts.
std::unique_ptr<Execution> NotStarted(const std::string& code, const std::string& message,
                                      bool retryable = true) {
  return std::make_unique<ImmediateExecution>(
      AttemptOutcome{.ok = false, .error = ErrorJson(code, message), .retryable = retryable});
}

// The file SMITHERS_DEPS_FILE names: the rows a command reads, as JSON (an
// environment string is capped at 128 KiB, a row is not). It lives in a
// private directory (0700, file 0600) under $TMPDIR (else /tmp) and is
// removed with the attempt.
class DepsFile {
 public:
  DepsFile() = default;
  DepsFile(const DepsFile&) = delete;
  DepsFile& operator=(const DepsFile&) = delete;
  ~DepsFile() {
    if (!file_.empty()) unlink(file_.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
  }

  Status Write(const Json& rows) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp == '/' ? tmp : "/tmp") + "/smithers-deps-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      return UnavailableError("cannot create a folder for the deps file: " +
                              std::string(strerror(errno)));
    }
    dir_ = tmpl;
    file_ = dir_ + "/deps.json";
    int fd = open(file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      Status st = UnavailableError("cannot create " + file_ + ": " + strerror(errno));
      file_.clear();
      return st;
    }
    std::string text = rows.dump(-1, ' ', false, Json::error_handler_t::replace);
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = write(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Status st = UnavailableError("cannot write " + file_ + ": " + strerror(errno));
        close(fd);
        return st;
      }
      done += static_cast<size_t>(n);
    }
    close(fd);
    return Status::Ok();
  }

  const std::string& path() const { return file_; }

 private:
  std::string dir_;
  std::string file_;
};

class CommandExecution final : public Execution {
 public:
  // `sandbox`: the task's sandbox (SandboxToJson), null without one.
  CommandExecution(std::unique_ptr<base::Subprocess> proc, std::string parse,
                   std::unique_ptr<DepsFile> deps_file, ConfinedProcess confined, Json sandbox)
      : sandbox_(std::move(sandbox)),
        confined_(std::move(confined)),
        deps_file_(std::move(deps_file)),
        proc_(std::move(proc)),
        parse_(std::move(parse)) {}

  int WaitFd() const override { return proc_->WaitFd(); }
  bool TakeActivity() override { return proc_->TakeActivity(); }  // output is a heartbeat
  // SandboxShipped, once, for a confined command: it started in its sandbox.
  std::vector<std::pair<std::string, Json>> TakeEvents() override {
    if (sandbox_.is_null() || shipped_) return {};
    shipped_ = true;
    Json p = Json::object();
    if (!confined_.container.empty()) p["containerId"] = confined_.container;
    return {{"SandboxShipped", std::move(p)}};
  }

  void Cancel(const std::string& reason) override {
    if (!cancel_reason_.empty()) return;
    cancel_reason_ = reason;
    proc_->Cancel();
  }

  // A sandboxed attempt's meta records its sandbox, and the limit that
  // ended it (inspect shows both).
  std::optional<AttemptOutcome> Poll() override {
    if (!proc_->Poll()) return std::nullopt;
    AttemptOutcome o = Outcome(proc_->result());
    if (!sandbox_.is_null()) {
      if (!limit_reached_.empty()) sandbox_["limitReached"] = limit_reached_;
      if (confined_.report) {
        if (Json seen = confined_.report(); !seen.is_null()) sandbox_["egressAttempts"] = seen;
      }
      o.meta = {{"sandbox", sandbox_}};
    }
    return o;
  }

 private:
  static std::string Tail(const std::string& s) {
    constexpr size_t kTail = 2000;
    return s.size() <= kTail ? s : "..." + s.substr(s.size() - kTail);
  }

  AttemptOutcome Outcome(const base::ProcessResult& r) {
    if (r.timed_out) {
      return {.ok = false, .error = ErrorJson("TASK_TIMEOUT", "command timed out")};
    }
    if (r.cancelled) {
      return {.ok = false,
              .error = ErrorJson("TASK_CANCELLED", "command cancelled: " + cancel_reason_),
              .retryable = false};
    }
    if (r.out_truncated || r.err_truncated) {
      return {.ok = false,
              .error = ErrorJson("OUTPUT_TOO_LARGE", "command output exceeded 16 MiB")};
    }
    if (r.exit_code != 0) {
      AttemptOutcome failed = Failed(r);
      if (confined_.limit_reached) limit_reached_ = confined_.limit_reached();
      if (!limit_reached_.empty()) {
        failed.error["code"] = "SANDBOX_LIMIT_EXCEEDED";
        failed.error["message"] =
            limit_reached_ + " (exit code " + std::to_string(r.exit_code) + ")";
      }
      return failed;
    }
    if (parse_ == "text") {
      return {.ok = true,
              .output = {{"exitCode", r.exit_code}, {"stdout", r.out}, {"stderr", r.err}}};
    }
    Json parsed = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      Json e = ErrorJson("INVALID_OUTPUT", "command stdout is not JSON: " + Tail(r.out));
      return {.ok = false, .error = e};
    }
    return {.ok = true, .output = std::move(parsed)};
  }

  static AttemptOutcome Failed(const base::ProcessResult& r) {
    Json e = ErrorJson("COMMAND_FAILED", "command exited with code " + std::to_string(r.exit_code));
    e["exitCode"] = r.exit_code;
    e["stderr"] = Tail(r.err);
    return {.ok = false, .error = e};
  }

  Json sandbox_;
  bool shipped_ = false;
  std::string limit_reached_;
  ConfinedProcess confined_;                // its cgroups go after the process
  std::unique_ptr<DepsFile> deps_file_;     // removed when the attempt is over
  std::unique_ptr<base::Subprocess> proc_;  // killed and reaped before the deps file goes
  std::string parse_;
  std::string cancel_reason_;
};

class CommandExecutor final : public Executor {
 public:
  CommandExecutor(Clock& clock, int64_t grace_ms, ConfineFn confine, bool require_sandbox)
      : clock_(clock),
        grace_ms_(grace_ms),
        confine_(std::move(confine)),
        require_sandbox_(require_sandbox) {}

  Result<std::unique_ptr<Execution>> Start(const TaskSpec& task, const AttemptInfo& info) override {
    const CommandSpec& cmd = task.command;
    if (cmd.argv.empty()) return InvalidArgumentError("command task with an empty argv");
    if (cmd.parse != "json" && cmd.parse != "text") {
      return InvalidArgumentError("parse must be \"json\" or \"text\", got \"" + cmd.parse + "\"");
    }
    // Refusals that are the same on every attempt (no retry), before any
    // secret is resolved or file written: nothing runs unconfined.
    if (require_sandbox_ && !cmd.sandbox) {
      return NotStarted("SANDBOX_REQUIRED",
                        "this engine runs command tasks only in a sandbox (--require-sandbox) and "
                        "the task has none; the command was not run",
                        /*retryable=*/false);
    }
    ConfinedProcess confined{.argv = cmd.argv};
    if (cmd.sandbox) {
      Result<ConfinedProcess> c = Confine(*cmd.sandbox, cmd);
      if (!c.ok()) {
        return NotStarted("SANDBOX_UNAVAILABLE", c.status().message(), /*retryable=*/false);
      }
      confined = std::move(c).value();
    }
    // Everything the child needs is built before fork: after it, only
    // async-signal-safe calls.
    std::map<std::string, std::string> declared = cmd.env;
    declared["SMITHERS_RUN_ID"] = info.run_id;
    declared["SMITHERS_NODE_ID"] = info.node_id;
    declared["SMITHERS_ITERATION"] = std::to_string(info.iteration);
    declared["SMITHERS_ATTEMPT"] = std::to_string(info.attempt);
    std::unique_ptr<DepsFile> deps_file;
    if (info.deps != nullptr) {
      deps_file = std::make_unique<DepsFile>();
      SMITHERS_RETURN_IF_ERROR(deps_file->Write(*info.deps));
      declared["SMITHERS_DEPS_FILE"] = deps_file->path();
    }
    Result<std::vector<std::string>> built = base::BuildChildEnvironment(declared, cmd.secret_env);
    if (!built.ok()) {
      // A reference that is not allowed or cannot be resolved: the same on
      // every attempt, so no retry.
      bool not_allowed = built.status().code() == StatusCode::kInvalidArgument;
      return NotStarted(not_allowed ? "SECRET_NOT_ALLOWED" : "SECRET_UNAVAILABLE",
                        built.status().message(), /*retryable=*/!not_allowed);
    }
    base::ProcessSpec spec;
    spec.argv = confined.argv;
    spec.join_files = confined.join_files;
    spec.env = std::move(built).value();
    spec.cwd = cmd.cwd;
    spec.max_stdout_bytes = spec.max_stderr_bytes = kMaxCapturedBytes;
    spec.deadline_ms = info.deadline_monotonic_ms;
    spec.kill_grace_ms = grace_ms_;
    Result<std::unique_ptr<base::Subprocess>> proc = base::Subprocess::Spawn(spec, clock_);
    if (!proc.ok()) {
      if (proc.status().code() != StatusCode::kFailedPrecondition) return proc.status();
      return NotStarted("COMMAND_NOT_STARTED", proc.status().message());
    }
    return std::unique_ptr<Execution>(std::make_unique<CommandExecution>(
        std::move(proc).value(), cmd.parse, std::move(deps_file), std::move(confined),
        cmd.sandbox ? SandboxToJson(*cmd.sandbox) : Json()));
  }

 private:
  // The task's workspace is its cwd, else the engine's, made absolute.
  Result<ConfinedProcess> Confine(const SandboxSpec& sandbox, const CommandSpec& cmd) {
    if (!confine_) {
      return FailedPreconditionError(
          "the task asks for a sandbox (runtime \"" + sandbox.runtime +
          "\") and this engine has no sandbox runtimes, so the command was not run");
    }
    std::error_code ec;
    std::filesystem::path workspace = std::filesystem::absolute(
        cmd.cwd.empty() ? std::filesystem::current_path(ec) : std::filesystem::path(cmd.cwd), ec);
    if (ec) return FailedPreconditionError("the sandbox's workspace: " + ec.message());
    std::vector<std::string> env_names;
    for (const auto& [name, value] : cmd.env) env_names.push_back(name);
    for (const auto& [name, ref] : cmd.secret_env) env_names.push_back(name);
    Result<ConfinedProcess> confined =
        confine_(sandbox, workspace.lexically_normal().string(), cmd.argv, env_names);
    if (!confined.ok()) {
      return FailedPreconditionError(confined.status().message() + "; the command was not run");
    }
    return confined;
  }

  Clock& clock_;
  int64_t grace_ms_;
  ConfineFn confine_;
  bool require_sandbox_;
};

}  // namespace

std::unique_ptr<Executor> NewStaticExecutor() { return std::make_unique<StaticExecutor>(); }
std::unique_ptr<Executor> NewComputeExecutor() { return std::make_unique<ComputeExecutor>(); }
std::unique_ptr<Executor> NewCommandExecutor(Clock& clock, int64_t cancel_grace_ms,
                                             ConfineFn confine, bool require_sandbox) {
  return std::make_unique<CommandExecutor>(clock, cancel_grace_ms, std::move(confine),
                                           require_sandbox);
}

}  // namespace smithers::engine
