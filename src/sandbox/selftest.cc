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
  // For limits in a container runtime (which holds them in cgroups of its
  // own): from the probe's exit code and output, what shows the limit met,
  // or "".
  std::function<std::string(int exit_code, const std::string& out)> seen;
  // Run with this egress allow-list (bubblewrap only).
  std::vector<std::string> egress;
};

class Runner {
 public:
  Runner(std::string runtime, std::string image, const Scratch& scratch)
      : runtime_(std::move(runtime)), image_(std::move(image)), scratch_(scratch) {}

  // Runs the probe confined and judges it: by its cgroup (`met`) on the
  // host's runtimes, by what it saw (`seen`) in a container, else by its
  // exit code. A container or an egress allow-list goes through
  // ConfineTask, as a task would; the rest through ConfinedArgv and a
  // cgroup of the probe's own, whose counters `met` reads.
  ProbeResult Run(const Probe& p) {
    ProbeResult out{.name = p.name};
    base::ProcessSpec spec;
    std::unique_ptr<Cgroup> cg;
    ConfinedProcess confined;  // holds the container or the proxy until the end
    std::function<std::string(int, const std::string&)> judge;
    if (image_.empty() && p.egress.empty()) {
      Confinement c{.runtime = runtime_,
                    .workspace = scratch_.workspace(),
                    .hidden_paths = {scratch_.database()},
                    .limits = p.limits};
      Result<std::vector<std::string>> argv = ConfinedArgv(c, {"/bin/sh", "-c", p.script});
      if (!argv.ok()) {
        out.detail = argv.status().message();
        return out;
      }
      spec.argv = std::move(argv).value();
      if (p.limits.any()) {
        Result<std::unique_ptr<Cgroup>> made = Cgroup::Create(p.limits);
        if (!made.ok()) {
          out.detail = "the limit cannot be set: " + made.status().message();
          return out;
        }
        cg = std::move(made).value();
      }
      if (p.met) judge = [&](int, const std::string&) { return p.met(*cg); };
    } else {
      SandboxSpec s{.runtime = runtime_,
                    .memory_limit_bytes = p.limits.memory_bytes,
                    .pids_limit = p.limits.pids,
                    .cpu_limit = p.limits.cpus,
                    .image = image_,
                    .egress_allow = p.egress};
      Result<ConfinedProcess> made =
          ConfineTask(s, scratch_.workspace(), {scratch_.database()}, {"sh", "-c", p.script});
      if (!made.ok()) {
        out.detail = made.status().message();
        return out;
      }
      confined = std::move(made).value();
      spec.argv = confined.argv;
      judge = p.seen;
    }
    if (cg) spec.join_files = cg->join_files();
    if (!confined.join_files.empty()) spec.join_files = confined.join_files;
    spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + scratch_.workspace(), "LANG=C"};
    spec.stderr_mode = base::ProcessSpec::Output::kToStdout;
    spec.max_stdout_bytes = 8192;
    spec.deadline_ms = SystemClock().MonotonicMs() + 60000;
    Result<base::ProcessResult> r = base::RunProcess(spec);
    if (!r.ok()) {
      out.detail = "the probe did not start: " + r.status().message();
      return out;
    }
    if (judge) {
      out.detail = judge(r->exit_code, r->out);
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
  std::string image_;  // "" for a runtime of the host's programs
  const Scratch& scratch_;
};

}  // namespace

Result<SelfTestReport> SelfTest(const std::string& runtime, const std::string& image,
                                const std::function<void(const ProbeResult&)>& progress) {
  const bool container = RunsImages(runtime);
  if (container && image.empty()) {
    return InvalidArgumentError("the " + runtime +
                                " runtime runs an image: name one with --image (it needs sh and "
                                "the usual tools: id, grep, readlink, seq, sleep, head, tr, cut)");
  }
  if (!container && !image.empty()) {
    return InvalidArgumentError("the " + runtime + " runtime takes no image");
  }
  SMITHERS_RETURN_IF_ERROR(Usable(runtime, "", image));
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
      // (An image has a /root of its own: only the host's can be told.)
      {.name = "read files outside the workspace",
       .script = "for f in " + scratch.outside() + "/secret " + (container ? "" : home) +
                 "; do if test -e \"$f\"; then echo \"$f is visible\"; exit 1; fi; done; "
                 "echo 'absent: " +
                 (container ? "" : home + ", ") + scratch.outside() + "'"},
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
       .script = "for i in $(seq 40); do sleep 30 & done 2>/dev/null; "
                 "echo \"procs $(ls /proc | grep -c '^[0-9]*$')\"",
       .limits = {.pids = 8},
       .met = [](const Cgroup& cg) { return cg.LimitReached(); },
       // The processes of its pid namespace: at most 8 when the limit holds
       // (a shell that could not fork at all prints nothing).
       .seen = [](int, const std::string& out) -> std::string {
         size_t at = out.find("procs ");
         long procs = at == std::string::npos ? 0 : std::strtol(out.c_str() + at + 6, nullptr, 10);
         if (procs >= 40) return "";
         return "the process limit of 8 was reached: " +
                (at == std::string::npos ? std::string("the shell could not fork")
                                         : std::to_string(procs) + " processes at most");
       }},
      {.name = "allocate past memoryLimit = 16 MiB",
       .script = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo \"held ${#x} bytes\"",
       .limits = {.memory_bytes = 16 << 20},
       .met = [](const Cgroup& cg) { return cg.LimitReached(); },
       .seen = [](int code, const std::string& out) -> std::string {
         return code != 0 && out.find("held 67108864") == std::string::npos
                    ? "the memory limit of 16 MiB was reached: killed (exit code " +
                          std::to_string(code) + ")"
                    : "";
       }},
      // The shell's own CPU time (clock ticks, /proc/self/stat's utime and
      // stime) over a second of spinning: about 100 unlimited, 10 at 0.1.
      {.name = "use more CPU than cpuLimit = 0.1",
       .script = "end=$(( $(date +%s) + 2 )); while [ $(date +%s) -le $end ]; do :; done; "
                 "set -- $(cut -d' ' -f14,15 /proc/$$/stat); echo \"ticks $(( $1 + $2 ))\"",
       .limits = {.cpus = 0.1},
       .met = [](const Cgroup& cg) -> std::string {
         int64_t n = cg.CpuThrottled();
         return n > 0 ? "held back " + std::to_string(n) + " times by the CPU limit" : "";
       },
       .seen = [](int, const std::string& out) -> std::string {
         size_t at = out.find("ticks ");
         if (at == std::string::npos) return "";
         long ticks = std::strtol(out.c_str() + at + 6, nullptr, 10);
         // 2 to 3 s of wall time: unlimited, 200 or more ticks; at 0.1, about 30.
         return ticks < 100 ? std::to_string(ticks) + " ticks of CPU in 2 s of spinning" : "";
       }},
  };
  // Through the egress proxy, a target not on its list: 403. (Container
  // runtimes take no allow-list.)
  if (!container) {
    probes.push_back(
        {.name = "reach a host not on the egress list",
         .script =
             "command -v bash >/dev/null || { echo 'no bash to speak to the proxy'; exit 1; }; "
             "bash -c 'exec 3<>/dev/tcp/127.0.0.1/3128 && printf \"CONNECT 127.0.0.1:" +
             port +
             " HTTP/1.1\\r\\n\\r\\n\" >&3 && read -r line <&3 && echo \"$line\" && "
             "case \"$line\" in *\" 403 \"*) exit 0;; *) exit 1;; esac'",
         .egress = {"smithers-selftest.invalid:443"}});
  }
  SelfTestReport report{.runtime = runtime, .cgroups = DescribeControllers()};
  Runner runner(runtime, image, scratch);
  for (const Probe& p : probes) {
    ProbeResult r = runner.Run(p);
    if (progress) progress(r);
    report.probes.push_back(std::move(r));
  }
  return report;
}

}  // namespace smithers::sandbox
