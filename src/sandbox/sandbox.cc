#include "sandbox/sandbox.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/paths.h"
#include "base/subprocess.h"
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
};

// The registration point: one row per runtime.
constexpr Runtime kRuntimes[] = {
    {.name = "bubblewrap", .program = "bwrap", .argv = BubblewrapArgv, .enforces_limits = false},
};

Result<const Runtime*> Find(const std::string& name) {
  for (const Runtime& r : kRuntimes) {
    if (name == r.name) return &r;
  }
  std::string known;
  for (const std::string& n : RuntimeNames()) known += (known.empty() ? "" : ", ") + n;
  return InvalidArgumentError("unknown sandbox runtime \"" + name + "\" (known: " + known + ")");
}

// The folders a sandbox keeps read-only or makes fresh: a workspace that is
// one of them, inside one, or above one (/) would make it writable.
bool SystemFolder(const fs::path& p) {
  auto clashes = [&p](const fs::path& sys) {
    return base::PathWithin(sys, p) || base::PathWithin(p, sys);
  };
  return std::any_of(std::begin(kReadOnlySystemFolders), std::end(kReadOnlySystemFolders),
                     clashes) ||
         std::any_of(std::begin(kHostFolders), std::end(kHostFolders), clashes);
}

}  // namespace

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
  // A program named by its path must be one the sandbox shows: in the
  // system folders or the workspace (a name is looked up on PATH inside).
  if (fs::path exe(argv[0]); exe.is_absolute()) {
    fs::path at = fs::weakly_canonical(exe, ec).lexically_normal();
    auto within = [&at](const char* d) { return base::PathWithin(d, at); };
    if (ec || (!base::PathWithin(real.lexically_normal(), at) &&
               std::none_of(std::begin(kReadOnlySystemFolders), std::end(kReadOnlySystemFolders),
                            within))) {
      return InvalidArgumentError("the program \"" + argv[0] +
                                  "\" is outside what the sandbox shows (the system folders and "
                                  "the workspace \"" +
                                  c.workspace +
                                  "\"); install it there or run it from the workspace");
    }
  }
  return r->argv(c, c.program.empty() ? r->program : c.program, argv);
}

Status Usable(const std::string& runtime, const std::string& program) {
  static std::mutex mu;
  static std::map<std::pair<std::string, std::string>, Status> probed;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(runtime, program);
  if (auto it = probed.find(key); it != probed.end()) return it->second;
  std::error_code ec;
  fs::path tmp = fs::temp_directory_path(ec);
  Confinement c{.runtime = runtime, .workspace = ec ? "/tmp" : tmp.string(), .program = program};
  Result<std::vector<std::string>> argv = ConfinedArgv(c, {"/bin/true"});
  if (!argv.ok()) return argv.status();  // unknown: not cached, nothing was probed
  base::ProcessSpec spec;
  spec.argv = std::move(argv).value();
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.stderr_mode = base::ProcessSpec::Output::kToStdout;
  spec.max_stdout_bytes = 4000;
  spec.deadline_ms = SystemClock().MonotonicMs() + 10000;
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
                                    const std::vector<std::string>& argv) {
  SMITHERS_ASSIGN_OR_RETURN(const Runtime* r, Find(spec.runtime));
  SMITHERS_RETURN_IF_ERROR(Usable(spec.runtime));
  Confinement c{.runtime = spec.runtime,
                .allow_network = spec.allow_network,
                .workspace = workspace,
                .hidden_paths = hidden_paths,
                .limits = {.memory_bytes = spec.memory_limit_bytes,
                           .pids = spec.pids_limit,
                           .cpus = spec.cpu_limit}};
  ConfinedProcess p;
  SMITHERS_ASSIGN_OR_RETURN(p.argv, ConfinedArgv(c, argv));
  if (c.limits.any() && !r->enforces_limits) {
    Result<std::unique_ptr<Cgroup>> cg = Cgroup::Create(c.limits);
    if (!cg.ok()) {
      return FailedPreconditionError("the sandbox's limits cannot be enforced here: " +
                                     cg.status().message());
    }
    std::shared_ptr<Cgroup> held = std::move(cg).value();
    p.join_files = held->join_files();
    p.limit_reached = [held] { return held->LimitReached(); };
    p.hold = held;
  }
  return p;
}

}  // namespace smithers::sandbox
