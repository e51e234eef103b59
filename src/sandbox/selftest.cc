#include "sandbox/selftest.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/subprocess.h"
#include "sandbox/cgroups.h"
#include "sandbox/sandbox.h"

namespace smithers::sandbox {
namespace fs = std::filesystem;
namespace {

constexpr const char* kDecoy = "SMITHERS-SELFTEST-DECOY";

// A scratch workspace with a decoy database in it and in its .smithers/,
// and a file outside it; removed with everything the probes left.
class Scratch {
 public:
  Status Make() {
    char tmpl[] = "/tmp/smithers-selftest-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return UnavailableError("cannot make a scratch folder");
    root_ = tmpl;
    std::error_code ec;
    fs::create_directories(workspace() + "/.smithers", ec);
    fs::create_directories(root_ + "/outside", ec);
    if (ec) return UnavailableError("cannot make " + workspace() + ": " + ec.message());
    std::ofstream(workspace() + "/.smithers/smithers.db") << kDecoy;
    std::ofstream(database()) << kDecoy;
    std::ofstream(root_ + "/outside/secret") << kDecoy;
    // Writable for the sandbox's uid 65534 (the engine may be root).
    fs::permissions(workspace(), fs::perms::all, ec);
    return Status::Ok();
  }
  ~Scratch() {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }
  std::string workspace() const { return root_ + "/workspace"; }
  std::string database() const { return workspace() + "/smithers.db"; }
  std::string outside() const { return root_ + "/outside"; }

 private:
  std::string root_;
};

// A loopback listener of the host's that a sandbox without network must
// not reach (connections complete in the backlog, nothing accepts them).
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        listen(fd_, 16) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
  }
  ~Listener() {
    if (fd_ >= 0) close(fd_);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > 300) s = s.substr(0, 300) + "...";
  return s;
}

std::string OwnNamespace(const char* kind) {
  std::error_code ec;
  return fs::read_symlink(std::string("/proc/self/ns/") + kind, ec).string();
}

struct Probe {
  const char* name;
  // Run in `sh -c`; exit 0 means the attempt failed: enforced. What it
  // prints is the detail.
  std::string script;
  Limits limits;
  // For limits: what the cgroup says of the limit met, "" when it was not
  // (then the probe was not enforced).
  std::function<std::string(const Cgroup&)> met;
};

class Runner {
 public:
  Runner(std::string runtime, const Scratch& scratch)
      : runtime_(std::move(runtime)), scratch_(scratch) {}

  ProbeResult Run(const Probe& p) {
    ProbeResult out{.name = p.name};
    Confinement c{.runtime = runtime_,
                  .workspace = scratch_.workspace(),
                  .hidden_paths = {scratch_.database()},
                  .limits = p.limits};
    Result<std::vector<std::string>> argv = ConfinedArgv(c, {"/bin/sh", "-c", p.script});
    if (!argv.ok()) {
      out.detail = argv.status().message();
      return out;
    }
    std::unique_ptr<Cgroup> cg;
    base::ProcessSpec spec;
    if (p.limits.any()) {
      Result<std::unique_ptr<Cgroup>> made = Cgroup::Create(p.limits);
      if (!made.ok()) {
        out.detail = "the limit cannot be set: " + made.status().message();
        return out;
      }
      cg = std::move(made).value();
      spec.join_files = cg->join_files();
    }
    spec.argv = std::move(argv).value();
    spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + scratch_.workspace(), "LANG=C"};
    spec.stderr_mode = base::ProcessSpec::Output::kToStdout;
    spec.max_stdout_bytes = 8192;
    spec.deadline_ms = SystemClock().MonotonicMs() + 30000;
    Result<base::ProcessResult> r = base::RunProcess(spec);
    if (!r.ok()) {
      out.detail = "the probe did not start: " + r.status().message();
      return out;
    }
    if (p.met) {
      out.detail = p.met(*cg);
      out.enforced = !out.detail.empty();
      if (!out.enforced) {
        out.detail = "the limit was never met (exit code " + std::to_string(r->exit_code) +
                     "): " + Trim(r->out);
      }
      return out;
    }
    out.enforced = r->exit_code == 0 && !r->timed_out;
    out.detail = Trim(r->out);
    return out;
  }

 private:
  std::string runtime_;
  const Scratch& scratch_;
};

}  // namespace

Result<SelfTestReport> SelfTest(const std::string& runtime,
                                const std::function<void(const ProbeResult&)>& progress) {
  if (RunsImages(runtime)) {
    return InvalidArgumentError("the self-test runs the host's programs in the runtime; the " +
                                runtime +
                                " runtime runs an image, which it does not cover yet (docs/"
                                "sandbox.md \"Containers\" says what the tests check)");
  }
  SMITHERS_RETURN_IF_ERROR(Usable(runtime));
  Scratch scratch;
  SMITHERS_RETURN_IF_ERROR(scratch.Make());
  Listener listener;
  const char* home_env = std::getenv("HOME");
  std::string home = home_env != nullptr && *home_env != '\0' ? home_env : "/root";
  std::string decoy = kDecoy;
  std::string port = std::to_string(listener.port());
  std::vector<Probe> probes = {
      {.name = "run as root", .script = "u=$(id -u); echo \"uid $u\"; test \"$u\" != 0"},
      {.name = "use a capability",
       .script = "c=$(grep '^CapEff:' /proc/self/status); echo \"$c\"; "
                 "case \"${c#CapEff:}\" in *[1-9a-f]*) exit 1;; esac"},
      {.name = "write outside the workspace",
       .script = "for d in /etc /usr /bin /tmp/.. /; do if touch \"$d/smithers-probe\" "
                 "2>/dev/null; then echo \"wrote $d\"; exit 1; fi; done; "
                 "touch ./written && echo 'the workspace only'"},
      {.name = "remount a system folder read-write",
       .script = "for d in /usr /etc /; do if mount -o remount,rw \"$d\" 2>/dev/null; then "
                 "echo \"remounted $d\"; exit 1; fi; done; echo 'mount refused'"},
      {.name = "read the engine's database",
       .script = "if cat .smithers/smithers.db smithers.db 2>/dev/null | grep -q " + decoy +
                 "; then echo 'read it'; exit 1; fi; echo 'masked'"},
      {.name = "read files outside the workspace",
       .script = "for f in " + scratch.outside() + "/secret " + home +
                 "; do if test -e \"$f\"; then echo \"$f is visible\"; exit 1; fi; done; "
                 "echo 'absent: " +
                 home + ", " + scratch.outside() + "'"},
      {.name = "see the engine's processes",
       .script = "n=$(readlink /proc/self/ns/pid); echo \"$n\"; test \"$n\" != '" +
                 OwnNamespace("pid") + "'"},
      {.name = "reach the host's network without allowNetwork",
       .script = "n=$(readlink /proc/self/ns/net); if test \"$n\" = '" + OwnNamespace("net") +
                 "'; then echo 'the host network namespace'; exit 1; fi; "
                 "if command -v bash >/dev/null && bash -c 'exec 3<>/dev/tcp/127.0.0.1/" +
                 port + "' 2>/dev/null; then echo 'reached a host listener on 127.0.0.1:" + port +
                 "'; exit 1; fi; echo \"$n; 127.0.0.1:" + port + " unreachable\""},
      {.name = "fork past pidsLimit = 8",
       .script = "for i in $(seq 40); do sleep 30 & done 2>/dev/null; echo forked",
       .limits = {.pids = 8},
       .met = [](const Cgroup& cg) { return cg.LimitReached(); }},
      {.name = "allocate past memoryLimit = 16 MiB",
       .script = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo \"held ${#x} bytes\"",
       .limits = {.memory_bytes = 16 << 20},
       .met = [](const Cgroup& cg) { return cg.LimitReached(); }},
      {.name = "use more CPU than cpuLimit = 0.1",
       .script = "end=$(( $(date +%s) + 1 )); while [ $(date +%s) -le $end ]; do :; done; "
                 "echo spun",
       .limits = {.cpus = 0.1},
       .met = [](const Cgroup& cg) -> std::string {
         int64_t n = cg.CpuThrottled();
         return n > 0 ? "held back " + std::to_string(n) + " times by the CPU limit" : "";
       }},
  };
  SelfTestReport report{.runtime = runtime, .cgroups = DescribeControllers()};
  Runner runner(runtime, scratch);
  for (const Probe& p : probes) {
    ProbeResult r = runner.Run(p);
    if (progress) progress(r);
    report.probes.push_back(std::move(r));
  }
  return report;
}

}  // namespace smithers::sandbox
