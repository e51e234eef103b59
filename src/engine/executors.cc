#include "engine/executors.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/secrets.h"

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
  CommandExecution(Clock& clock, int64_t grace_ms, pid_t pid, int out_fd, int err_fd,
                   std::string parse, int64_t deadline, std::unique_ptr<DepsFile> deps_file)
      : deps_file_(std::move(deps_file)),
        clock_(clock),
        grace_ms_(grace_ms),
        pid_(pid),
        out_fd_(out_fd),
        err_fd_(err_fd),
        parse_(std::move(parse)),
        deadline_(deadline) {}

  ~CommandExecution() override {
    if (!exited_) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  int WaitFd() const override { return out_fd_ >= 0 ? out_fd_ : err_fd_; }
  bool TakeActivity() override { return std::exchange(activity_, false); }

  void Cancel(const std::string& reason) override {
    if (exited_ || cancel_reason_.size() > 0) return;
    cancel_reason_ = reason;
    kill(-pid_, SIGTERM);
    kill_at_ = clock_.MonotonicMs() + grace_ms_;
  }

  std::optional<AttemptOutcome> Poll() override {
    Drain(out_fd_, out_);
    Drain(err_fd_, err_);
    int64_t now = clock_.MonotonicMs();
    if (!exited_ && deadline_ > 0 && now >= deadline_ && cancel_reason_.empty()) {
      timed_out_ = true;
      Cancel("timeout");
    }
    if (!exited_ && kill_at_ > 0 && now >= kill_at_) kill(-pid_, SIGKILL);
    if (!exited_) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        status_ = status;
        // The group may hold grandchildren that keep the pipes open: end them.
        kill(-pid_, SIGKILL);
      }
    }
    if (!exited_) return std::nullopt;
    // Read what is left; grandchildren were killed so the pipes reach EOF.
    Drain(out_fd_, out_, /*block=*/true);
    Drain(err_fd_, err_, /*block=*/true);
    return Outcome();
  }

 private:
  void Drain(int& fd, std::string& into, bool block = false) {
    if (fd < 0) return;
    if (block) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    char buf[65536];
    while (true) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        activity_ = true;  // output is a heartbeat
        if (into.size() < kMaxCapturedBytes)
          into.append(buf, static_cast<size_t>(n));
        else
          overflow_ = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (n < 0 && errno != EAGAIN)) {
        close(fd);
        fd = -1;
      }
      return;
    }
  }

  static std::string Tail(const std::string& s) {
    constexpr size_t kTail = 2000;
    return s.size() <= kTail ? s : "..." + s.substr(s.size() - kTail);
  }

  AttemptOutcome Outcome() {
    int exit_code = WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
    if (timed_out_) {
      return {.ok = false, .error = ErrorJson("TASK_TIMEOUT", "command timed out")};
    }
    if (!cancel_reason_.empty()) {
      return {.ok = false,
              .error = ErrorJson("TASK_CANCELLED", "command cancelled: " + cancel_reason_),
              .retryable = false};
    }
    if (overflow_) {
      return {.ok = false,
              .error = ErrorJson("OUTPUT_TOO_LARGE", "command output exceeded 16 MiB")};
    }
    if (parse_ == "text") {
      if (exit_code != 0) return Failed(exit_code);
      return {.ok = true, .output = {{"exitCode", exit_code}, {"stdout", out_}, {"stderr", err_}}};
    }
    if (exit_code != 0) return Failed(exit_code);
    Json parsed = Json::parse(out_, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      Json e = ErrorJson("INVALID_OUTPUT", "command stdout is not JSON: " + Tail(out_));
      return {.ok = false, .error = e};
    }
    return {.ok = true, .output = std::move(parsed)};
  }

  AttemptOutcome Failed(int exit_code) {
    Json e = ErrorJson("COMMAND_FAILED", "command exited with code " + std::to_string(exit_code));
    e["exitCode"] = exit_code;
    e["stderr"] = Tail(err_);
    return {.ok = false, .error = e};
  }

  std::unique_ptr<DepsFile> deps_file_;  // removed when the attempt is over
  Clock& clock_;
  int64_t grace_ms_;
  pid_t pid_;
  int out_fd_;
  int err_fd_;
  std::string parse_;
  int64_t deadline_;
  bool activity_ = false;
  std::string out_, err_;
  bool exited_ = false;
  bool overflow_ = false;
  bool timed_out_ = false;
  int status_ = 0;
  std::string cancel_reason_;
  int64_t kill_at_ = 0;
};

class CommandExecutor final : public Executor {
 public:
  CommandExecutor(Clock& clock, int64_t grace_ms) : clock_(clock), grace_ms_(grace_ms) {}

  Result<std::unique_ptr<Execution>> Start(const TaskSpec& task, const AttemptInfo& info) override {
    const CommandSpec& cmd = task.command;
    if (cmd.argv.empty()) return InvalidArgumentError("command task with an empty argv");
    if (cmd.parse != "json" && cmd.parse != "text") {
      return InvalidArgumentError("parse must be \"json\" or \"text\", got \"" + cmd.parse + "\"");
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
      AttemptOutcome o{.ok = false,
                       .error = ErrorJson(built.status().code() == StatusCode::kInvalidArgument
                                              ? "SECRET_NOT_ALLOWED"
                                              : "SECRET_UNAVAILABLE",
                                          built.status().message()),
                       .retryable = built.status().code() != StatusCode::kInvalidArgument};
      return std::unique_ptr<Execution>(std::make_unique<ImmediateExecution>(std::move(o)));
    }
    std::vector<std::string> env_strings = std::move(built).value();
    std::vector<char*> envp = base::EnvPointers(env_strings);
    std::vector<std::string> argv_copy = cmd.argv;
    std::vector<char*> argv;
    argv.reserve(argv_copy.size() + 1);
    for (auto& s : argv_copy) argv.push_back(s.data());
    argv.push_back(nullptr);

    int out_pipe[2], err_pipe[2], exec_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0)
      return UnavailableError("pipe: " + std::string(strerror(errno)));
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
      close(out_pipe[0]);
      close(out_pipe[1]);
      return UnavailableError("pipe: " + std::string(strerror(errno)));
    }
    if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
      for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
      return UnavailableError("pipe: " + std::string(strerror(errno)));
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      for (int fd :
           {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], exec_pipe[0], exec_pipe[1]}) {
        close(fd);
      }
      return UnavailableError("fork: " + std::string(strerror(errno)));
    }
    if (pid == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      signal(SIGPIPE, SIG_DFL);
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, 0);
      dup2(out_pipe[1], 1);
      dup2(err_pipe[1], 2);
      if (!cmd.cwd.empty() && chdir(cmd.cwd.c_str()) != 0) {
        int e = errno;
        (void)!write(exec_pipe[1], &e, sizeof e);
        _exit(127);
      }
      execvpe(argv[0], argv.data(), envp.data());
      int e = errno;
      (void)!write(exec_pipe[1], &e, sizeof e);
      _exit(127);
    }
    setpgid(pid, pid);  // also from the parent, so kill(-pid) works at once
    close(out_pipe[1]);
    close(err_pipe[1]);
    close(exec_pipe[1]);
    int child_errno = 0;
    ssize_t n;
    do {
      n = read(exec_pipe[0], &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    close(exec_pipe[0]);
    fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
    if (n == sizeof child_errno) {
      waitpid(pid, nullptr, 0);
      close(out_pipe[0]);
      close(err_pipe[0]);
      std::string what = cmd.cwd.empty() || child_errno != ENOENT
                             ? "cannot run \"" + cmd.argv[0] + "\": " + strerror(child_errno)
                             : "cannot run \"" + cmd.argv[0] + "\" in \"" + cmd.cwd +
                                   "\": " + strerror(child_errno);
      AttemptOutcome o{.ok = false, .error = ErrorJson("COMMAND_NOT_STARTED", what)};
      return std::unique_ptr<Execution>(std::make_unique<ImmediateExecution>(std::move(o)));
    }
    return std::unique_ptr<Execution>(std::make_unique<CommandExecution>(
        clock_, grace_ms_, pid, out_pipe[0], err_pipe[0], cmd.parse, info.deadline_monotonic_ms,
        std::move(deps_file)));
  }

 private:
  Clock& clock_;
  int64_t grace_ms_;
};

}  // namespace

std::unique_ptr<Executor> NewStaticExecutor() { return std::make_unique<StaticExecutor>(); }
std::unique_ptr<Executor> NewComputeExecutor() { return std::make_unique<ComputeExecutor>(); }
std::unique_ptr<Executor> NewCommandExecutor(Clock& clock, int64_t cancel_grace_ms) {
  return std::make_unique<CommandExecutor>(clock, cancel_grace_ms);
}

}  // namespace smithers::engine
