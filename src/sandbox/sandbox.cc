#include "sandbox/sandbox.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "base/paths.h"
#include "base/subprocess.h"
#include "sandbox/egress.h"
#include "sandbox/runtimes.h"

namespace smithers::sandbox {
namespace fs = std::filesystem;
namespace {

// Folders of the host a sandbox replaces or never shows, beside the
// read-only system folders.
constexpr const char* kHostFolders[] = {"/proc", "/dev", "/sys", "/boot", "/run"};

struct Runtime {
  const char* name;
  const char* program;  // the default
  std::vector<std::string> (*argv)(const Confinement&, const std::string&,
                                   const std::vector<std::string>&);
  bool enforces_limits;  // false: the engine holds them in cgroups
  bool container;        // runs an image (required), not the host's programs
  // A docker-like client runs the container (argv[0]): `ps` finds its
  // containers, `rm --force` removes them (ContainerReaper).
  bool docker_cli = false;
  // What the runtime cannot do, refused before anything starts; null: none.
  Status (*check)(const Confinement&) = nullptr;
};

// The registration point: one row per runtime.
constexpr Runtime kRuntimes[] = {
    {.name = "bubblewrap",
     .program = "bwrap",
     .argv = BubblewrapArgv,
     .enforces_limits = false,
     .container = false},
    {.name = "podman",
     .program = "podman",
     .argv = ContainerArgv,
     .enforces_limits = true,
     .container = true,
     .docker_cli = true},
    {.name = "docker",
     .program = "docker",
     .argv = ContainerArgv,
     .enforces_limits = true,
     .container = true,
     .docker_cli = true},
    // Its client (this binary's `sandbox kube-job`) deletes the Job itself.
    {.name = "kubernetes",
     .program = "kubectl",
     .argv = KubernetesArgv,
     .enforces_limits = true,
     .container = true,
     .check = CheckKubernetes},
};

// Runs the container engine's client (`rm`, `ps`) and waits for it.
Result<base::ProcessResult> RunClient(const std::string& program, std::vector<std::string> args) {
  base::ProcessSpec spec;
  spec.argv = {program};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  spec.max_stdout_bytes = spec.max_stderr_bytes = 1 << 20;
  spec.deadline_ms = SystemClock().MonotonicMs() + 30000;
  return base::RunProcess(spec);
}

// The container removals under way, each on a thread of its own: `rm
// --force` of a container that is still stopping takes seconds, and the
// engine's thread, which drops a finished attempt's hold, never waits for
// it. Never destroyed, so a removal still running at exit touches no freed
// state; DrainContainerRemovals waits for them.
class Removals {
 public:
  static Removals& Get() {
    static auto* removals = new Removals();
    return *removals;
  }

  void Start(std::string program, std::string name) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++pending_;
    }
    std::thread([this, program = std::move(program), name = std::move(name)] {
      (void)RunClient(program, {"rm", "--force", name});  // none after a clean --rm exit
      std::lock_guard<std::mutex> lock(mu_);
      --pending_;
      done_.notify_all();
    }).detach();
  }

  bool Drain(int64_t timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return done_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                          [this] { return pending_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable done_;
  int pending_ = 0;
};

// Removes a container when the process that ran it is over: a client that
// was killed (a timeout, a cancel) leaves its container running. The
// removal runs off the caller's thread (Removals).
class ContainerReaper {
 public:
  ContainerReaper(std::string program, std::string name)
      : program_(std::move(program)), name_(std::move(name)) {}
  ContainerReaper(const ContainerReaper&) = delete;
  ContainerReaper& operator=(const ContainerReaper&) = delete;
  ~ContainerReaper() { Removals::Get().Start(std::move(program_), std::move(name_)); }

 private:
  std::string program_, name_;
};

// smithers-sandbox-<engine pid>-<random>: the pid tells a later engine on
// this host whether the container's engine is gone (SweepStaleContainers).
constexpr char kContainerPrefix[] = "smithers-sandbox-";

std::string ContainerName() {
  std::random_device rd;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%d-%08x%08x", kContainerPrefix, static_cast<int>(getpid()),
                rd(), rd());
  return buf;
}

// Containers left by an engine of this host that died without removing
// them (SIGKILL: no reaper ran), removed once per process and program.
void SweepStaleContainers(const std::string& program) {
  static std::mutex mu;
  static std::set<std::string> swept;
  std::lock_guard<std::mutex> lock(mu);
  if (!swept.insert(program).second) return;
  Result<base::ProcessResult> ps = RunClient(
      program,
      {"ps", "--all", "--filter", "label=" + ContainerHostLabel(), "--format", "{{.Names}}"});
  if (!ps.ok() || ps->exit_code != 0) return;  // the probe that follows says why
  std::istringstream names(ps->out);
  for (std::string name; std::getline(names, name);) {
    if (!LeftByAGoneEngine(name, kContainerPrefix)) continue;
    (void)RunClient(program, {"rm", "--force", name});
  }
}

Result<const Runtime*> Find(const std::string& name) {
  for (const Runtime& r : kRuntimes) {
    if (name == r.name) return &r;
  }
  std::string known;
  for (const std::string& n : RuntimeNames()) known += (known.empty() ? "" : ", ") + n;
  return InvalidArgumentError("unknown sandbox runtime \"" + name + "\" (known: " + known + ")");
}

// A volume's host path, made canonical, if it may be shown inside: it
// exists and holds none of the engine's state (the hidden paths with their
// -wal/-shm/-journal, a `.smithers` folder); its
// container path is absolute and neither a system folder nor the worker's
// own (/run/smithers). InvalidArgument saying why not.
Result<std::string> CheckVolume(const SandboxSpec::Volume& v,
                                const std::vector<std::string>& hidden_paths) {
  const std::string what = "sandbox.volumes: \"" + v.host + "\" -> \"" + v.container + "\": ";
  if (v.host.empty() || v.host.front() != '/' || v.container.empty() ||
      v.container.front() != '/' || v.host.find(',') != std::string::npos ||
      v.container.find(',') != std::string::npos) {
    return InvalidArgumentError(what + "both paths must be absolute, without ','");
  }
  std::error_code ec;
  fs::path host = fs::canonical(v.host, ec);
  if (ec) return InvalidArgumentError(what + "the host path does not exist");
  for (const fs::path& part : host) {
    if (part == ".smithers") {
      return InvalidArgumentError(what + "the engine's state folder is never shown to a sandbox");
    }
  }
  for (const std::string& h : hidden_paths) {
    fs::path hidden = fs::weakly_canonical(h, ec);
    if (ec) continue;
    bool journal = false;
    for (const char* suffix : {"-wal", "-shm", "-journal"}) {
      journal = journal || host.string() == hidden.string() + suffix;
    }
    if (base::PathWithin(host, hidden) || journal) {
      return InvalidArgumentError(what + "it holds the engine's database (" + hidden.string() +
                                  ")");
    }
  }
  fs::path inside = fs::path(v.container).lexically_normal();
  if (SystemFolder(inside) || base::PathWithin("/run/smithers", inside) || inside == "/") {
    return InvalidArgumentError(what +
                                "the container path is /, a system folder or the "
                                "sandbox's own");
  }
  return host.string();
}

}  // namespace

bool SystemFolder(const fs::path& p) {
  auto clashes = [&p](const fs::path& sys) {
    return base::PathWithin(sys, p) || base::PathWithin(p, sys);
  };
  return std::any_of(std::begin(kReadOnlySystemFolders), std::end(kReadOnlySystemFolders),
                     clashes) ||
         std::any_of(std::begin(kHostFolders), std::end(kHostFolders), clashes);
}

Masked MaskedPaths(const Confinement& c) {
  std::error_code ec;
  fs::path root = fs::weakly_canonical(c.workspace, ec);
  std::set<fs::path> dirs = {root / ".smithers"}, files;
  for (const std::string& h : c.hidden_paths) {
    fs::path p = fs::weakly_canonical(h, ec);
    if (ec || p == root || !base::PathWithin(root, p)) continue;
    if (p.parent_path() != root) {
      dirs.insert(p.parent_path());
    } else {
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) files.insert(p.string() + suffix);
    }
  }
  Masked m;
  for (const fs::path& d : dirs) {
    if (fs::is_directory(d, ec) && !fs::is_symlink(d, ec)) m.dirs.push_back(d.string());
  }
  for (const fs::path& f : files) {
    if (fs::is_regular_file(f, ec) && !fs::is_symlink(f, ec)) m.files.push_back(f.string());
  }
  return m;
}

bool DrainContainerRemovals(int64_t timeout_ms) { return Removals::Get().Drain(timeout_ms); }

bool RunsImages(const std::string& runtime) {
  Result<const Runtime*> r = Find(runtime);
  return r.ok() && (*r)->container;
}

std::vector<std::string> RuntimeNames() {
  std::vector<std::string> names;
  for (const Runtime& r : kRuntimes) names.emplace_back(r.name);
  return names;
}

Result<std::vector<std::string>> ConfinedArgv(const Confinement& c,
                                              const std::vector<std::string>& argv) {
  SMITHERS_ASSIGN_OR_RETURN(const Runtime* r, Find(c.runtime));
  if (!fs::path(c.workspace).is_absolute()) {
    return InvalidArgumentError("the sandbox's workspace must be an absolute path, not \"" +
                                c.workspace + "\"");
  }
  std::error_code ec;
  fs::path real = fs::weakly_canonical(c.workspace, ec);
  if (ec || SystemFolder(real.lexically_normal())) {
    return InvalidArgumentError("the sandbox's workspace (the task's cwd) cannot be \"" +
                                c.workspace +
                                "\": it is /, a system folder or one inside it, which the sandbox "
                                "keeps read-only; give the task a cwd of its own");
  }
  if (argv.empty()) return InvalidArgumentError("nothing to run in the sandbox");
  if (r->container) {
    if (c.image.empty()) {
      return InvalidArgumentError("the " + c.runtime + " runtime needs an image (sandbox.image)");
    }
    // An image is a reference (name[:tag][@digest]), never an option of
    // the engine's command line.
    bool reference =
        c.image.front() != '-' && std::all_of(c.image.begin(), c.image.end(), [](char ch) {
          return std::isalnum(static_cast<unsigned char>(ch)) != 0 ||
                 std::string_view("._/:@-").find(ch) != std::string_view::npos;
        });
    if (!reference) {
      return InvalidArgumentError("sandbox.image \"" + c.image +
                                  "\" is not an image reference (name[:tag][@digest])");
    }
    // --mount's fields are separated by commas.
    for (const std::string& p : c.hidden_paths) {
      if (p.find(',') != std::string::npos) {
        return InvalidArgumentError("a path with a comma cannot be masked in a container: " + p);
      }
    }
    if (c.workspace.find(',') != std::string::npos) {
      return InvalidArgumentError(
          "the " + c.runtime +
          " runtime cannot bind a workspace whose path has a comma: " + c.workspace);
    }
    if (r->check != nullptr) SMITHERS_RETURN_IF_ERROR(r->check(c));
    return r->argv(c, c.program.empty() ? r->program : c.program, argv);
  }
  if (!c.image.empty()) {
    return InvalidArgumentError("the " + c.runtime +
                                " runtime takes no image (it runs the host's programs)");
  }
  // A program named by its path must be one the sandbox shows: in the
  // system folders or the workspace (a name is looked up on PATH inside).
  if (fs::path exe(argv[0]); exe.is_absolute()) {
    fs::path at = fs::weakly_canonical(exe, ec).lexically_normal();
    auto within = [&at](const char* d) { return base::PathWithin(d, at); };
    bool bound = std::any_of(c.ro_binds.begin(), c.ro_binds.end(),
                             [&](const auto& b) { return argv[0] == b.second; });
    if (!bound && (ec || (!base::PathWithin(real.lexically_normal(), at) &&
                          std::none_of(std::begin(kReadOnlySystemFolders),
                                       std::end(kReadOnlySystemFolders), within)))) {
      return InvalidArgumentError("the program \"" + argv[0] +
                                  "\" is outside what the sandbox shows (the system folders and "
                                  "the workspace \"" +
                                  c.workspace +
                                  "\"); install it there or run it from the workspace");
    }
  }
  return r->argv(c, c.program.empty() ? r->program : c.program, argv);
}

Status Usable(const std::string& runtime, const std::string& program, const std::string& image) {
  static std::mutex mu;
  static std::map<std::tuple<std::string, std::string, std::string>, Status> probed;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(runtime, program, image);
  if (auto it = probed.find(key); it != probed.end()) return it->second;
  SMITHERS_ASSIGN_OR_RETURN(const Runtime* rt, Find(runtime));
  std::error_code ec;
  fs::path tmp = fs::temp_directory_path(ec);
  Confinement c{.runtime = runtime,
                .workspace = ec ? "/tmp" : tmp.string(),
                .program = program,
                .image = image,
                .name = rt->container ? ContainerName() : ""};
  Result<std::vector<std::string>> argv = ConfinedArgv(c, {rt->container ? "true" : "/bin/true"});
  if (!argv.ok()) return argv.status();  // bad input: not cached, nothing was probed
  std::unique_ptr<ContainerReaper> reaper;
  if (rt->docker_cli) {
    SweepStaleContainers(argv->front());
    reaper = std::make_unique<ContainerReaper>(argv->front(), c.name);
  }
  base::ProcessSpec spec;
  spec.argv = std::move(argv).value();
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  // kubectl reads its cluster from $HOME/.kube/config (tasks get HOME too).
  if (const char* home = std::getenv("HOME"); home != nullptr && !rt->docker_cli) {
    spec.env.push_back(std::string("HOME=") + home);
  }
  spec.stderr_mode = base::ProcessSpec::Output::kToStdout;
  spec.max_stdout_bytes = 4000;
  // A container engine's first start (storage, an image's layers) is slow.
  spec.deadline_ms = SystemClock().MonotonicMs() + (rt->container ? 120000 : 10000);
  Result<base::ProcessResult> r = base::RunProcess(spec);
  Status s;
  if (!r.ok()) {
    s = FailedPreconditionError("the " + runtime +
                                " sandbox cannot start: " + r.status().message());
  } else if (r->exit_code != 0) {
    std::string said = r->out;
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
    s = FailedPreconditionError("the " + runtime + " sandbox cannot start here (exit code " +
                                std::to_string(r->exit_code) + (said.empty() ? "" : ": " + said) +
                                ")");
  }
  probed.emplace(key, s);
  return s;
}

Result<ConfinedProcess> ConfineTask(const SandboxSpec& spec, const std::string& workspace,
                                    const std::vector<std::string>& hidden_paths,
                                    const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env_names,
                                    const Mounts& mounts) {
  SMITHERS_ASSIGN_OR_RETURN(const Runtime* r, Find(spec.runtime));
  Confinement c{.runtime = spec.runtime,
                .allow_network = spec.allow_network,
                .workspace = workspace,
                .hidden_paths = hidden_paths,
                .limits = {.memory_bytes = spec.memory_limit_bytes,
                           .pids = spec.pids_limit,
                           .cpus = spec.cpu_limit},
                .image = spec.image,
                .name = r->container ? ContainerName() : "",
                .env_names = env_names,
                .binds = mounts.binds,
                .ro_binds = mounts.ro_binds};
  if (!spec.ports.empty() && (!r->container || !spec.allow_network)) {
    return InvalidArgumentError(
        "sandbox.ports need a container runtime (podman, docker) and allowNetwork = true");
  }
  c.ports = spec.ports;
  for (const SandboxSpec::Volume& v : spec.volumes) {
    SMITHERS_ASSIGN_OR_RETURN(std::string host, CheckVolume(v, hidden_paths));
    (v.readonly ? c.ro_binds : c.binds).emplace_back(host, v.container);
  }
  ConfinedProcess p;
  // The egress allow-list: the proxy outside, its folder and the engine's
  // binary (the bridge) inside, the command run by the bridge.
  std::shared_ptr<EgressProxy> proxy;
  std::vector<std::string> run = argv;
  if (!spec.egress_allow.empty()) {
    if (r->container || spec.allow_network) {
      return InvalidArgumentError(
          "sandbox.egress works with the bubblewrap runtime and without allowNetwork only");
    }
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return FailedPreconditionError("the egress bridge: cannot find the engine's binary");
    SMITHERS_ASSIGN_OR_RETURN(proxy, EgressProxy::Start(spec.egress_allow));
    const std::string inside = kEgressDirInside;
    c.binds.emplace_back(proxy->dir(), inside);
    c.ro_binds.emplace_back(self.string(), kEgressBridgeInside);
    run = {kEgressBridgeInside,
           "sandbox",
           "egress-bridge",
           "--socket",
           inside + "/proxy.sock",
           "--port",
           std::to_string(kEgressBridgePort),
           "--"};
    run.insert(run.end(), argv.begin(), argv.end());
    p.report = [proxy] { return proxy->Attempts(); };
  }
  SMITHERS_ASSIGN_OR_RETURN(p.argv, ConfinedArgv(c, run));  // bad input before any probe
  SMITHERS_RETURN_IF_ERROR(Usable(spec.runtime, "", spec.image));
  if (r->container) {
    if (r->docker_cli) p.hold = std::make_shared<ContainerReaper>(p.argv.front(), c.name);
    p.container = c.name;
    return p;
  }
  std::shared_ptr<Cgroup> cgroup;
  if (c.limits.any() && !r->enforces_limits) {
    Result<std::unique_ptr<Cgroup>> cg = Cgroup::Create(c.limits);
    if (!cg.ok()) {
      return FailedPreconditionError("the sandbox's limits cannot be enforced here: " +
                                     cg.status().message());
    }
    cgroup = std::move(cg).value();
    p.join_files = cgroup->join_files();
    p.limit_reached = [cgroup] { return cgroup->LimitReached(); };
  }
  if (cgroup || proxy) {
    p.hold = std::make_shared<std::pair<std::shared_ptr<Cgroup>, std::shared_ptr<EgressProxy>>>(
        cgroup, proxy);
  }
  return p;
}

}  // namespace smithers::sandbox
