// One way to run a child process: command tasks, CLI agents and the agents'
// bash tool all start theirs here, and a sandbox runtime wraps the same
// ProcessSpec (it rewrites argv, e.g. prefixes it with bwrap, and runs it).
//
//   base::ProcessSpec spec;
//   spec.argv = {"sh", "-c", "echo hi"};
//   spec.env = {"PATH=/usr/bin:/bin"};
//   Result<base::ProcessResult> r = base::RunProcess(spec);
//   // r->exit_code == 0, r->out == "hi\n"
//
// Guarantees, on every path:
//  - A Subprocess owns its pid and descriptors; destroying one that has not
//    been reaped SIGKILLs its process group (or the process alone) and reaps it.
//  - The child is put in its own process group from both sides of fork(), so
//    signalling the group works as soon as Spawn returns.
//  - The child holds only its stdin/stdout/stderr and the requested
//    extra_fds: every other descriptor is closed at exec.
//  - A program that cannot be started (not found, not executable, cwd
//    missing) is a FailedPrecondition from Spawn, reported through a
//    close-on-exec status pipe, never an exit code 127 to guess about.
//  - No descriptor is left open when pipe(), fork() or exec fails.
#ifndef SMITHERS_BASE_SUBPROCESS_H_
#define SMITHERS_BASE_SUBPROCESS_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "smithers/clock.h"
#include "smithers/status.h"

namespace smithers::base {

// What to run and how. A plain struct: a wrapper (a sandbox runtime) may
// rewrite any field before Spawn.
struct ProcessSpec {
  enum class Output {
    kCapture,   // a pipe read by the parent, kept up to the cap
    kToStdout,  // (stderr only) the same pipe as stdout, one merged stream
    kNull,      // /dev/null
  };

  // argv[0] is looked up on the engine's PATH unless it holds a '/'.
  // REQUIRES: non-empty.
  std::vector<std::string> argv;
  // Exactly the child's environment, "NAME=value" each; nothing is inherited.
  std::vector<std::string> env;
  // The child's working folder; empty: the engine's.
  std::string cwd;
  // stdin: the bytes of stdin_data (then EOF), else the file stdin_file,
  // else /dev/null. At most one of the two may be set.
  std::optional<std::string> stdin_data;
  std::string stdin_file;
  Output stdout_mode = Output::kCapture;
  Output stderr_mode = Output::kCapture;
  // Bytes kept of each captured stream. Output past the cap is still read
  // (so the child never blocks on a full pipe) but dropped, and the result
  // says it was truncated.
  size_t max_stdout_bytes = 16u << 20;
  size_t max_stderr_bytes = 16u << 20;
  // When to stop the child, on the Clock's MonotonicMs(); 0 = never.
  int64_t deadline_ms = 0;
  // After a deadline or Cancel: SIGTERM, then SIGKILL this much later.
  int64_t kill_grace_ms = 2000;
  // The child leads a new process group, and every signal goes to the group.
  bool own_process_group = true;
  // When the child exits, SIGKILL what is left of its group (grandchildren
  // that would hold the pipes open) and read the pipes to their end. When
  // false, what is already in the pipes is read and the group is left alone.
  bool kill_group_on_exit = true;
  // Further descriptors the child inherits: parent_fd becomes child_fd.
  // REQUIRES: child_fd > 2, all distinct.
  struct ExtraFd {
    int parent_fd;
    int child_fd;
  };
  std::vector<ExtraFd> extra_fds;
  // Files the child writes "0" into before it execs: the cgroup.procs of
  // the cgroups that hold a sandbox's limits, so the child joins them and
  // the limits hold from its first instruction. A write that fails fails
  // the Spawn (FailedPrecondition, naming the file); nothing runs.
  std::vector<std::string> join_files;
};

// How a child ended and what it wrote.
struct ProcessResult {
  int exit_code = -1;  // its exit status, or 128 + the signal that ended it
  std::string out;     // stdout (with stderr when merged), up to the cap
  std::string err;     // stderr, up to the cap
  bool out_truncated = false;
  bool err_truncated = false;
  bool timed_out = false;  // the deadline passed and it was stopped
  bool cancelled = false;  // Cancel() stopped it
};

// A running (or finished) child. Not thread-safe: one thread drives it.
class Subprocess {
 public:
  // Starts spec.argv. Errors: InvalidArgument (bad spec), Unavailable (pipe
  // or fork failed: try again later), FailedPrecondition (the program or its
  // cwd or stdin file could not be used; the message names which and why).
  static Result<std::unique_ptr<Subprocess>> Spawn(const ProcessSpec& spec,
                                                   Clock& clock = SystemClock());

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }

  // Never blocks: writes pending stdin, reads available output, applies the
  // deadline and the SIGKILL after the grace period, reaps. True once the
  // child has been reaped and its output read; then result() is final.
  bool Poll();

  // A descriptor that becomes readable when Poll has something to do
  // (output, or the child's exit); -1 once finished. Changes as pipes close.
  // It does not signal room in the stdin pipe: with stdin_data larger than a
  // pipe (64 KiB), drive the child with Wait, or Poll on a timer as well.
  int WaitFd() const;

  // Stops the child: SIGTERM now, SIGKILL after kill_grace_ms (sent by a
  // later Poll or Wait). No effect once it is stopping or has exited.
  void Cancel();

  // Polls until finished. `cancel` (may be null) is checked as it waits;
  // `activity` (may be null) is set whenever output arrives.
  const ProcessResult& Wait(const std::atomic<bool>* cancel = nullptr,
                            std::atomic<bool>* activity = nullptr);

  // True when output arrived since the last call (a heartbeat).
  bool TakeActivity();

  // REQUIRES: Poll() returned true (or Wait returned).
  const ProcessResult& result() const { return result_; }

 private:
  Subprocess(const ProcessSpec& spec, Clock& clock);
  void Terminate();
  void Signal(int sig) const;
  void PumpStdin();
  void Drain(int& fd, std::string& into, size_t cap, bool& truncated, bool block);
  void Finish();

  Clock& clock_;
  pid_t pid_ = -1;
  bool own_group_ = true;
  bool kill_group_on_exit_ = true;
  int64_t deadline_ms_ = 0;
  int64_t grace_ms_ = 0;
  size_t max_out_ = 0, max_err_ = 0;
  int in_fd_ = -1, out_fd_ = -1, err_fd_ = -1, pid_fd_ = -1;
  std::string stdin_data_;
  size_t stdin_written_ = 0;
  int64_t kill_at_ = 0;  // when Terminate's SIGKILL is due; 0: not stopping
  bool exited_ = false, finished_ = false, activity_ = false;
  int status_ = 0;
  ProcessResult result_;
};

// Spawn, then Wait: the whole run. Errors as Spawn's.
Result<ProcessResult> RunProcess(const ProcessSpec& spec, const std::atomic<bool>* cancel = nullptr,
                                 std::atomic<bool>* activity = nullptr,
                                 Clock& clock = SystemClock());

// Tests only: the next Spawn on any thread fails as if that step had failed
// (after the descriptors before it were opened), to check nothing leaks.
enum class SpawnFaultForTesting { kNone, kPipe, kFork };
void InjectSpawnFaultForTesting(SpawnFaultForTesting fault);

}  // namespace smithers::base

#endif  // SMITHERS_BASE_SUBPROCESS_H_
