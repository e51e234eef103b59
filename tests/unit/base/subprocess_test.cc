// The subprocess primitive: exec failures are errors, no descriptor leaks on
// any path, the whole process group dies on cancel, deadline and destruction,
// output caps, stdin and the environment are exactly as asked.
#include "base/subprocess.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace smithers::base {
namespace {

int OpenFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

// A process is gone once it is reaped or a zombie (it can run no more).
bool Dead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');
  return paren == std::string::npos || line.substr(paren + 2, 1) == "Z";
}

// Waits (bounded) for a condition that a SIGKILL makes true soon after it is
// sent; the kernel, not the test, sets the pace.
bool BecomesDead(pid_t pid) {
  for (int i = 0; i < 5000; ++i) {
    if (Dead(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

ProcessSpec Sh(const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  return spec;
}

// Polls until stdout holds a full first line; returns it.
std::string FirstLine(Subprocess& p) {
  while (true) {
    bool done = p.Poll();
    const std::string& out = p.result().out;
    size_t nl = out.find('\n');
    if (nl != std::string::npos) return out.substr(0, nl);
    if (done) return "";
    pollfd fd{p.WaitFd(), POLLIN, 0};
    poll(&fd, 1, 100);
  }
}

// A grandchild `sleep` in the child's group, whose pid is the first line.
constexpr const char* kGrandchild = "sleep 1000 & echo $!; wait";

TEST(Subprocess, RunsAndCollectsOutput) {
  Result<ProcessResult> r = RunProcess(Sh("echo out; echo err >&2; exit 3"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->timed_out || r->cancelled || r->out_truncated || r->err_truncated);
}

TEST(Subprocess, StderrMergedIntoStdout) {
  ProcessSpec spec = Sh("echo a; echo b >&2; echo c");
  spec.stderr_mode = ProcessSpec::Output::kToStdout;
  Result<ProcessResult> r = RunProcess(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "a\nb\nc\n");
  EXPECT_EQ(r->err, "");
}

TEST(Subprocess, ExecFailureIsAnError) {
  ProcessSpec spec;
  spec.argv = {"/nonexistent/smithers-no-such-tool", "x"};
  Result<std::unique_ptr<Subprocess>> p = Subprocess::Spawn(spec);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(p.status().message(),
            "cannot run \"/nonexistent/smithers-no-such-tool\": No such file or directory");

  spec.argv = {"smithers-no-such-tool-on-path"};
  p = Subprocess::Spawn(spec);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kFailedPrecondition);

  // Not executable: EACCES, not a guess from an exit code.
  char dir[] = "/tmp/smithers-subprocess-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string file = std::string(dir) + "/plain";
  std::ofstream(file) << "not a program\n";
  spec.argv = {file};
  p = Subprocess::Spawn(spec);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "cannot run \"" + file + "\": Permission denied");

  // A missing working folder.
  spec = Sh("true");
  spec.cwd = std::string(dir) + "/missing";
  p = Subprocess::Spawn(spec);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(),
            "cannot run \"/bin/sh\" in \"" + spec.cwd + "\": No such file or directory");
  unlink(file.c_str());
  rmdir(dir);
}

TEST(Subprocess, BadSpecsAreRejected) {
  ProcessSpec spec;
  EXPECT_EQ(Subprocess::Spawn(spec).status().code(), StatusCode::kInvalidArgument);
  spec = Sh("true");
  spec.stdin_data = "x";
  spec.stdin_file = "/dev/null";
  EXPECT_EQ(Subprocess::Spawn(spec).status().code(), StatusCode::kInvalidArgument);
  spec = Sh("true");
  spec.extra_fds = {{0, 2}};
  EXPECT_EQ(Subprocess::Spawn(spec).status().code(), StatusCode::kInvalidArgument);
  spec = Sh("true");
  spec.stdin_file = "/nonexistent/smithers-stdin";
  EXPECT_EQ(Subprocess::Spawn(spec).status().code(), StatusCode::kFailedPrecondition);
}

TEST(Subprocess, NoDescriptorLeaksOnAnyPath) {
  int before = OpenFds();
  ASSERT_GT(before, 0);
  for (int round = 0; round < 3; ++round) {
    ProcessSpec missing;
    missing.argv = {"/nonexistent/smithers-no-such-tool"};
    EXPECT_FALSE(Subprocess::Spawn(missing).ok());

    ProcessSpec with_stdin = Sh("cat; echo done >&2");
    with_stdin.stdin_data = "hello";
    Result<ProcessResult> ok = RunProcess(with_stdin);
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->out, "hello");

    InjectSpawnFaultForTesting(SpawnFaultForTesting::kPipe);
    Result<std::unique_ptr<Subprocess>> p = Subprocess::Spawn(with_stdin);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(p.status().message().rfind("pipe: ", 0), 0u) << p.status().message();

    InjectSpawnFaultForTesting(SpawnFaultForTesting::kFork);
    p = Subprocess::Spawn(with_stdin);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(p.status().message().rfind("fork: ", 0), 0u) << p.status().message();

    ProcessSpec bad_stdin = Sh("true");
    bad_stdin.stdin_file = "/nonexistent/smithers-stdin";
    EXPECT_FALSE(Subprocess::Spawn(bad_stdin).ok());

    // Destroyed while running.
    p = Subprocess::Spawn(Sh("sleep 1000"));
    ASSERT_TRUE(p.ok());
    p->reset();
  }
  EXPECT_EQ(OpenFds(), before);
}

TEST(Subprocess, ChildInheritsOnlyWhatItIsGiven) {
  // A descriptor without close-on-exec, as a library might leave one.
  int stray = open("/dev/null", O_RDONLY);
  ASSERT_GE(stray, 0);
  int pass[2];
  ASSERT_EQ(pipe2(pass, O_CLOEXEC), 0);
  std::string s = std::to_string(stray);
  ProcessSpec spec =
      Sh("if [ -e /proc/$$/fd/" + s + " ]; then echo open; else echo closed; fi; echo via-7 >&7");
  spec.extra_fds = {{pass[1], 7}};
  Result<ProcessResult> r = RunProcess(spec);
  close(pass[1]);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "closed\n");
  char buf[64] = {};
  ASSERT_EQ(read(pass[0], buf, sizeof buf - 1), 6);
  EXPECT_STREQ(buf, "via-7\n");
  close(pass[0]);
  close(stray);
}

TEST(Subprocess, OwnProcessGroupAsSoonAsSpawnReturns) {
  Result<std::unique_ptr<Subprocess>> p = Subprocess::Spawn(Sh("sleep 1000"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(getpgid((*p)->pid()), (*p)->pid());
  EXPECT_NE(getpgid((*p)->pid()), getpgrp());
}

TEST(Subprocess, CancelEndsTheWholeGroup) {
  Result<std::unique_ptr<Subprocess>> p = Subprocess::Spawn(Sh(kGrandchild));
  ASSERT_TRUE(p.ok());
  pid_t grandchild = std::atoi(FirstLine(**p).c_str());
  ASSERT_GT(grandchild, 0);
  ASSERT_FALSE(Dead(grandchild));
  (*p)->Cancel();
  const ProcessResult& r = (*p)->Wait();
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + SIGTERM);
  EXPECT_TRUE(BecomesDead(grandchild));
}

TEST(Subprocess, CancelFlagStopsAWait) {
  Result<std::unique_ptr<Subprocess>> p = Subprocess::Spawn(Sh(kGrandchild));
  ASSERT_TRUE(p.ok());
  pid_t grandchild = std::atoi(FirstLine(**p).c_str());
  ASSERT_GT(grandchild, 0);
  std::atomic<bool> cancel{true}, activity{false};
  const ProcessResult& r = (*p)->Wait(&cancel, &activity);
  EXPECT_TRUE(r.cancelled);
  EXPECT_TRUE(activity.load());  // the pid line was output
  EXPECT_TRUE(BecomesDead(grandchild));
}

TEST(Subprocess, DeadlineThenSigkillAfterTheGrace) {
  ManualClock clock(1000);
  // TERM is ignored by the shell and (inherited) by its sleep: only the
  // SIGKILL after the grace period ends them.
  ProcessSpec spec = Sh(std::string("trap '' TERM; ") + kGrandchild);
  spec.deadline_ms = 5000;
  spec.kill_grace_ms = 2000;
  Result<std::unique_ptr<Subprocess>> p = Subprocess::Spawn(spec, clock);
  ASSERT_TRUE(p.ok());
  pid_t grandchild = std::atoi(FirstLine(**p).c_str());
  ASSERT_GT(grandchild, 0);
  clock.AdvanceMs(4000);       // at the deadline
  EXPECT_FALSE((*p)->Poll());  // SIGTERM, ignored
  EXPECT_TRUE((*p)->result().timed_out);
  EXPECT_FALSE((*p)->Poll());
  EXPECT_FALSE(Dead(grandchild));
  clock.AdvanceMs(2000);  // the grace is over
  const ProcessResult& r = (*p)->Wait();
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.cancelled);
  EXPECT_EQ(r.exit_code, 128 + SIGKILL);
  EXPECT_TRUE(BecomesDead(grandchild));
}

TEST(Subprocess, DestructionEndsAndReapsTheGroup) {
  Result<std::unique_ptr<Subprocess>> p = Subprocess::Spawn(Sh(kGrandchild));
  ASSERT_TRUE(p.ok());
  pid_t child = (*p)->pid();
  pid_t grandchild = std::atoi(FirstLine(**p).c_str());
  ASSERT_GT(grandchild, 0);
  p->reset();
  errno = 0;
  EXPECT_EQ(waitpid(child, nullptr, WNOHANG), -1);  // already reaped
  EXPECT_EQ(errno, ECHILD);
  EXPECT_TRUE(BecomesDead(grandchild));
}

TEST(Subprocess, ExitKillsWhatTheChildLeftBehind) {
  // The shell exits at once; its sleep holds stdout open.
  Result<ProcessResult> r = RunProcess(Sh("sleep 1000 & echo $!"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_TRUE(BecomesDead(std::atoi(r->out.c_str())));
}

TEST(Subprocess, OutputPastTheCapIsDroppedAndReported) {
  ProcessSpec spec = Sh("head -c 300000 /dev/zero; head -c 5000 /dev/zero >&2");
  spec.max_stdout_bytes = 1000;
  spec.max_stderr_bytes = 4096;
  Result<ProcessResult> r = RunProcess(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);  // never blocked on a full pipe
  EXPECT_EQ(r->out.size(), 1000u);
  EXPECT_TRUE(r->out_truncated);
  EXPECT_EQ(r->err.size(), 4096u);
  EXPECT_TRUE(r->err_truncated);
}

TEST(Subprocess, StdinIsDelivered) {
  std::string big(300000, 'x');
  for (size_t i = 0; i < big.size(); i += 7) big[i] = static_cast<char>('a' + i % 26);
  ProcessSpec spec = Sh("cat");
  spec.stdin_data = big;
  Result<ProcessResult> r = RunProcess(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, big);

  // A child that does not read its stdin: no SIGPIPE for us, no hang.
  spec = Sh("exec 0<&-; echo closed");
  spec.stdin_data = big;
  r = RunProcess(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "closed\n");

  char path[] = "/tmp/smithers-stdin-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "from a file", 11), 11);
  close(fd);
  spec = Sh("cat");
  spec.stdin_file = path;
  r = RunProcess(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "from a file");
  unlink(path);

  r = RunProcess(Sh("cat; echo eof"));  // no stdin: /dev/null
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "eof\n");
}

TEST(Subprocess, EnvironmentIsExactlyAsGiven) {
  setenv("SMITHERS_SUBPROCESS_TEST_PARENT_ONLY", "leak", 1);
  ProcessSpec spec;
  spec.argv = {"env"};  // found on the engine's PATH
  spec.env = {"A=1", "B=two words", "EMPTY="};
  Result<ProcessResult> r = RunProcess(spec);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->out, "A=1\nB=two words\nEMPTY=\n");
  unsetenv("SMITHERS_SUBPROCESS_TEST_PARENT_ONLY");
}

TEST(Subprocess, RunsInTheGivenFolder) {
  ProcessSpec spec = Sh("pwd");
  spec.cwd = "/";
  Result<ProcessResult> r = RunProcess(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "/\n");
}

}  // namespace
}  // namespace smithers::base
