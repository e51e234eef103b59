#include "base/subprocess.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "base/unique_fd.h"

namespace smithers::base {
namespace {

std::atomic<int> g_fault{static_cast<int>(SpawnFaultForTesting::kNone)};

// True (once) when a test injected `fault`.
bool Injected(SpawnFaultForTesting fault) {
  int expected = static_cast<int>(fault);
  return g_fault.compare_exchange_strong(expected, static_cast<int>(SpawnFaultForTesting::kNone));
}

struct Pipe {
  UniqueFd read, write;
};

// A close-on-exec pipe; `last` is where an injected pipe fault hits.
Status MakePipe(Pipe& p, bool last) {
  int fds[2];
  if (last && Injected(SpawnFaultForTesting::kPipe)) {
    return UnavailableError("pipe: " + std::string(strerror(EMFILE)));
  }
  if (pipe2(fds, O_CLOEXEC) != 0) return UnavailableError("pipe: " + std::string(strerror(errno)));
  p.read.reset(fds[0]);
  p.write.reset(fds[1]);
  return Status::Ok();
}

// What the child writes to the status pipe when it cannot exec.
struct ChildFailure {
  enum Stage : int { kSetup, kJoin, kChdir, kExec } stage;
  int error;
  int index;  // kJoin: which of join_files
};

[[noreturn]] void ChildFail(int status_fd, ChildFailure::Stage stage, int index = 0) {
  ChildFailure f{stage, errno, index};
  (void)!write(status_fd, &f, sizeof f);
  _exit(127);
}

// In the child: `src` becomes `target`, inherited across exec.
bool MoveTo(int src, int target) {
  if (src == target) return fcntl(target, F_SETFD, 0) == 0;
  return dup2(src, target) == target;
}

// In the child: every descriptor from `first` up is closed at exec.
void CloseFromOnExec(int first) {
  if (syscall(SYS_close_range, static_cast<unsigned>(first), ~0U, CLOSE_RANGE_CLOEXEC) == 0) {
    return;
  }
  rlimit lim{};
  int top = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY
                ? static_cast<int>(std::min<rlim_t>(lim.rlim_cur, 1 << 20))
                : 1 << 16;
  for (int fd = first; fd < top; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
}

std::string CannotRun(const ProcessSpec& spec, const ChildFailure& f) {
  const std::string& exe = spec.argv[0];
  std::string why = strerror(f.error);
  if (f.stage == ChildFailure::kSetup) return "cannot start \"" + exe + "\": " + why;
  if (f.stage == ChildFailure::kJoin) {
    return "cannot start \"" + exe + "\": cannot join \"" +
           spec.join_files[static_cast<size_t>(f.index)] + "\": " + why;
  }
  // ENOENT with a cwd: the folder, or a relative program in it, is missing.
  if (spec.cwd.empty() || f.error != ENOENT) return "cannot run \"" + exe + "\": " + why;
  return "cannot run \"" + exe + "\" in \"" + spec.cwd + "\": " + why;
}

}  // namespace

void InjectSpawnFaultForTesting(SpawnFaultForTesting fault) {
  g_fault.store(static_cast<int>(fault));
}

Subprocess::Subprocess(const ProcessSpec& spec, Clock& clock)
    : clock_(clock),
      own_group_(spec.own_process_group),
      kill_group_on_exit_(spec.kill_group_on_exit),
      deadline_ms_(spec.deadline_ms),
      grace_ms_(spec.kill_grace_ms),
      max_out_(spec.max_stdout_bytes),
      max_err_(spec.max_stderr_bytes),
      stdin_data_(spec.stdin_data.value_or("")) {}

Result<std::unique_ptr<Subprocess>> Subprocess::Spawn(const ProcessSpec& spec, Clock& clock) {
  using Output = ProcessSpec::Output;
  if (spec.argv.empty()) return InvalidArgumentError("a process needs a non-empty argv");
  if (spec.stdin_data && !spec.stdin_file.empty()) {
    return InvalidArgumentError("a process takes stdin_data or stdin_file, not both");
  }
  if (spec.stdout_mode == Output::kToStdout) {
    return InvalidArgumentError("only stderr can go to stdout");
  }
  std::set<int> targets;
  int floor = 3;  // the child's descriptors below this are its stdio and extra_fds
  for (const auto& x : spec.extra_fds) {
    if (x.child_fd <= 2 || x.parent_fd < 0 || !targets.insert(x.child_fd).second) {
      return InvalidArgumentError("extra_fds: child descriptors must be distinct and above 2");
    }
    floor = std::max(floor, x.child_fd + 1);
  }

  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> argv_copy = spec.argv, env_copy = spec.env;
  std::vector<char*> argv, envp;
  for (auto& s : argv_copy) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_copy) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<int> is_target(static_cast<size_t>(floor), 0);
  for (int t : targets) is_target[static_cast<size_t>(t)] = 1;
  std::vector<std::pair<int, int>> extra;  // (parent fd, child fd), rewritten in the child
  for (const auto& x : spec.extra_fds) extra.emplace_back(x.parent_fd, x.child_fd);
  const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  std::vector<const char*> join;
  for (const std::string& f : spec.join_files) join.push_back(f.c_str());

  UniqueFd stdin_file;
  if (!spec.stdin_file.empty()) {
    stdin_file.reset(open(spec.stdin_file.c_str(), O_RDONLY | O_CLOEXEC));
    if (stdin_file.get() < 0) {
      return FailedPreconditionError("cannot read stdin file \"" + spec.stdin_file +
                                     "\": " + strerror(errno));
    }
  }
  Pipe status, in, out, err;
  bool want_in = spec.stdin_data.has_value(), want_out = spec.stdout_mode == Output::kCapture,
       want_err = spec.stderr_mode == Output::kCapture;
  SMITHERS_RETURN_IF_ERROR(MakePipe(status, !want_in && !want_out && !want_err));
  if (want_in) SMITHERS_RETURN_IF_ERROR(MakePipe(in, !want_out && !want_err));
  if (want_out) SMITHERS_RETURN_IF_ERROR(MakePipe(out, !want_err));
  if (want_err) SMITHERS_RETURN_IF_ERROR(MakePipe(err, true));

  pid_t parent = getpid();
  pid_t pid = -1;
  if (Injected(SpawnFaultForTesting::kFork)) {
    errno = EAGAIN;
  } else {
    pid = fork();
  }
  if (pid < 0) return UnavailableError("fork: " + std::string(strerror(errno)));
  if (pid == 0) {
    if (spec.own_process_group) setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // Lift every descriptor we hand on above the child's final slots, so no
    // dup2 below overwrites one still to be moved.
    auto lift = [&](int fd) {
      if (fd < 0 || fd >= floor) return fd;
      int moved = fcntl(fd, F_DUPFD_CLOEXEC, floor);
      if (moved < 0) ChildFail(status.write.get(), ChildFailure::kSetup);
      return moved;
    };
    int status_fd = lift(status.write.get());
    int in_src = lift(want_in ? in.read.get() : stdin_file.get());
    int out_src = lift(out.write.get());
    int err_src = lift(err.write.get());
    for (auto& [from, to] : extra) from = lift(from);
    if (in_src < 0) in_src = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in_src < 0 || !MoveTo(in_src, 0)) ChildFail(status_fd, ChildFailure::kSetup);
    if (out_src < 0) out_src = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (out_src < 0 || !MoveTo(out_src, 1)) ChildFail(status_fd, ChildFailure::kSetup);
    if (spec.stderr_mode == Output::kToStdout) {
      err_src = 1;
    } else if (err_src < 0) {
      err_src = open("/dev/null", O_WRONLY | O_CLOEXEC);
    }
    if (err_src < 0 || !MoveTo(err_src, 2)) ChildFail(status_fd, ChildFailure::kSetup);
    for (const auto& [from, to] : extra) {
      if (!MoveTo(from, to)) ChildFail(status_fd, ChildFailure::kSetup);
    }
    for (int fd = 3; fd < floor; ++fd) {
      if (is_target[static_cast<size_t>(fd)] == 0) close(fd);
    }
    CloseFromOnExec(floor);
    for (size_t i = 0; i < join.size(); ++i) {
      int fd = open(join[i], O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, "0", 1) != 1) {
        ChildFail(status_fd, ChildFailure::kJoin, static_cast<int>(i));
      }
      close(fd);
    }
    if (cwd != nullptr && chdir(cwd) != 0) ChildFail(status_fd, ChildFailure::kChdir);
    execvpe(argv[0], argv.data(), envp.data());
    ChildFail(status_fd, ChildFailure::kExec);
  }

  // Also from the parent, so signalling the group works at once (whichever
  // side runs first; after the child's exec this fails harmlessly).
  if (spec.own_process_group) setpgid(pid, pid);
  status.write.reset();
  in.read.reset();
  out.write.reset();
  err.write.reset();
  stdin_file.reset();
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(status.read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return FailedPreconditionError(CannotRun(spec, failure));
  }

  std::unique_ptr<Subprocess> p(new Subprocess(spec, clock));
  p->pid_ = pid;
  for (UniqueFd* fd : {&in.write, &out.read, &err.read}) {
    if (fd->get() >= 0) fcntl(fd->get(), F_SETFL, fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
  }
  p->in_fd_ = in.write.release();
  p->out_fd_ = out.read.release();
  p->err_fd_ = err.read.release();
  // Readable when the child exits (Linux 5.3+); without it, waits poll.
  p->pid_fd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (p->pid_fd_ < 0) p->pid_fd_ = -1;
  p->PumpStdin();
  return p;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !exited_) {
    Signal(SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  for (int fd : {in_fd_, out_fd_, err_fd_, pid_fd_}) {
    if (fd >= 0) close(fd);
  }
}

void Subprocess::Signal(int sig) const { kill(own_group_ ? -pid_ : pid_, sig); }

void Subprocess::Terminate() {
  if (exited_ || kill_at_ != 0) return;
  Signal(SIGTERM);
  kill_at_ = clock_.MonotonicMs() + grace_ms_;
}

void Subprocess::Cancel() {
  if (exited_ || kill_at_ != 0) return;
  result_.cancelled = true;
  Terminate();
}

bool Subprocess::TakeActivity() { return std::exchange(activity_, false); }

int Subprocess::WaitFd() const {
  if (finished_) return -1;
  if (out_fd_ >= 0) return out_fd_;
  if (err_fd_ >= 0) return err_fd_;
  return pid_fd_;
}

void Subprocess::PumpStdin() {
  if (in_fd_ < 0) return;
  // A child that closed its stdin makes write() raise SIGPIPE: keep it off
  // this thread and take it back if it was ours.
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  bool done = false;
  while (stdin_written_ < stdin_data_.size()) {
    ssize_t n =
        write(in_fd_, stdin_data_.data() + stdin_written_, stdin_data_.size() - stdin_written_);
    if (n > 0) {
      stdin_written_ += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      done = n < 0 && errno != EAGAIN;  // EPIPE: the child will not read the rest
      break;
    }
  }
  if (!was_pending) {
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) == 1) {
      timespec zero{};
      sigtimedwait(&pipe_set, nullptr, &zero);
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (done || stdin_written_ >= stdin_data_.size()) {
    close(in_fd_);
    in_fd_ = -1;
    stdin_data_.clear();
  }
}

void Subprocess::Drain(int& fd, std::string& into, size_t cap, bool& truncated, bool block) {
  if (fd < 0) return;
  if (block) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      activity_ = true;  // output is a heartbeat
      size_t got = static_cast<size_t>(n);
      size_t keep = into.size() < cap ? std::min(got, cap - into.size()) : 0;
      into.append(buf, keep);
      if (keep < got) truncated = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || errno != EAGAIN) {
      close(fd);
      fd = -1;
    }
    return;
  }
}

bool Subprocess::Poll() {
  if (finished_) return true;
  PumpStdin();
  Drain(out_fd_, result_.out, max_out_, result_.out_truncated, false);
  Drain(err_fd_, result_.err, max_err_, result_.err_truncated, false);
  int64_t now = clock_.MonotonicMs();
  if (!exited_ && deadline_ms_ > 0 && now >= deadline_ms_ && kill_at_ == 0) {
    result_.timed_out = true;
    Terminate();
  }
  if (!exited_ && kill_at_ > 0 && now >= kill_at_) Signal(SIGKILL);
  if (!exited_) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = status;
    }
  }
  if (!exited_) return false;
  Finish();
  return true;
}

void Subprocess::Finish() {
  if (in_fd_ >= 0) close(in_fd_);
  in_fd_ = -1;
  // Grandchildren may hold the pipes open: end them, then read to EOF.
  bool to_eof = kill_group_on_exit_ && own_group_;
  if (to_eof) kill(-pid_, SIGKILL);
  Drain(out_fd_, result_.out, max_out_, result_.out_truncated, to_eof);
  Drain(err_fd_, result_.err, max_err_, result_.err_truncated, to_eof);
  for (int* fd : {&out_fd_, &err_fd_, &pid_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  result_.exit_code = WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  finished_ = true;
}

const ProcessResult& Subprocess::Wait(const std::atomic<bool>* cancel,
                                      std::atomic<bool>* activity) {
  while (!Poll()) {
    if (activity != nullptr && TakeActivity()) *activity = true;
    if (cancel != nullptr && cancel->load()) Cancel();
    pollfd fds[4];
    nfds_t n = 0;
    for (int fd : {out_fd_, err_fd_, pid_fd_}) {
      if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
    }
    if (in_fd_ >= 0) fds[n++] = {in_fd_, POLLOUT, 0};
    // A cancel flag is looked at every 50 ms; without a pidfd, the exit too.
    int64_t timeout = cancel != nullptr ? 50 : -1;
    if (pid_fd_ < 0) timeout = timeout < 0 ? 10 : std::min<int64_t>(timeout, 10);
    int64_t now = clock_.MonotonicMs();
    for (int64_t at : {kill_at_ == 0 ? deadline_ms_ : 0, kill_at_}) {
      if (at <= 0) continue;
      int64_t left = std::max<int64_t>(0, at - now);
      timeout = timeout < 0 ? left : std::min(timeout, left);
    }
    clock_.Wait(fds, n, timeout);
  }
  if (activity != nullptr && TakeActivity()) *activity = true;
  return result_;
}

Result<ProcessResult> RunProcess(const ProcessSpec& spec, const std::atomic<bool>* cancel,
                                 std::atomic<bool>* activity, Clock& clock) {
  SMITHERS_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> p, Subprocess::Spawn(spec, clock));
  return p->Wait(cancel, activity);
}

}  // namespace smithers::base
