// Sandbox runtimes: what confines a process the engine starts (a command
// task with a `sandbox` prop, the agents' bash tool). A runtime rewrites a
// process's argv so that it runs confined; it never runs anything itself,
// and an unknown or unusable runtime is an error, never an unconfined run
// (docs/sandbox.md).
//
//   sandbox::Confinement c{.workspace = "/work/repo", .hidden_paths = {db}};
//   Result<std::vector<std::string>> argv = sandbox::ConfinedArgv(c, {"make", "test"});
//   // argv: {"bwrap", "--unshare-user", ..., "--", "make", "test"}
//
// Adding a runtime is one row in sandbox.cc's table and its argv builder in
// a file of its own (bubblewrap.cc).
#ifndef SMITHERS_SANDBOX_SANDBOX_H_
#define SMITHERS_SANDBOX_SANDBOX_H_

#include <string>
#include <vector>

#include "sandbox/cgroups.h"
#include "smithers/engine.h"
#include "smithers/status.h"
#include "smithers/workflow.h"

namespace smithers::sandbox {

struct Confinement {
  std::string runtime = "bubblewrap";
  bool allow_network = false;
  // The only writable folder, and the working folder. REQUIRES: absolute.
  std::string workspace;
  // Never visible inside (the engine's database): a file under the
  // workspace is masked with its -wal/-shm/-journal siblings, and so is
  // `.smithers/` under the workspace.
  std::vector<std::string> hidden_paths;
  // The runtime's program ("" = its own default, e.g. "bwrap" on PATH).
  std::string program;
  // A runtime that enforces limits itself puts them in its argv; for the
  // others (bubblewrap) ConfineTask makes cgroups (cgroups.h).
  Limits limits;
  // Container runtimes (docker, podman): the image (required; the others
  // refuse one), the container's name (ConfineTask makes one; ""
  // = "smithers-sandbox"), and the variables forwarded by name.
  std::string image;
  std::string name;
  std::vector<std::string> env_names;
  // More host paths shown, {host, inside} (the egress proxy's folder
  // read-write, the engine's binary read-only, the sandbox's volumes).
  std::vector<std::pair<std::string, std::string>> binds, ro_binds;
  // Container runtimes: "ip:hostPort:containerPort" published.
  std::vector<std::string> ports;
};

// The argv that runs `argv` confined as `c` says. InvalidArgument for an
// unknown runtime (the message lists the known ones) or a relative
// workspace; argv[0] of `argv` is looked up on the child's PATH inside.
Result<std::vector<std::string>> ConfinedArgv(const Confinement& c,
                                              const std::vector<std::string>& argv);

// Whether the runtime can confine a process on this machine: it runs a
// trivial process confined (`true` in `image` for a container runtime),
// once per runtime, program and image (cached). FailedPrecondition with
// what the runtime said when it cannot.
Status Usable(const std::string& runtime, const std::string& program = "",
              const std::string& image = "");

// Waits up to `timeout_ms` for the container removals under way (a
// finished container runtime task's `rm --force` runs off the engine's
// thread); false when some are still running. The CLI calls it before it
// exits; a container left by a process that died anyway is removed by the
// next engine on this host (its name records its engine's pid).
bool DrainContainerRemovals(int64_t timeout_ms);

// `smithers sandbox kube-job --kubectl K --manifest JSON` (the kubernetes
// runtime's client, docs/sandbox.md "Kubernetes"): applies a Secret of the
// task's environment (the variables the Job names, from this process's
// own), then the manifest; waits for the Job to end (or SIGTERM); prints
// its log; deletes what it applied; returns the pod's exit code (125 when
// kubectl failed, 143 when stopped).
int RunKubernetesJob(const std::string& kubectl, const std::string& manifest);

// The names of the runtimes, in the table's order.
std::vector<std::string> RuntimeNames();
// Whether `runtime` runs an image (docker, podman) rather than the host's
// programs; false for an unknown one.
bool RunsImages(const std::string& runtime);

// What a command task's `sandbox` prop asks for, confined with the
// engine's hidden paths: Usable, the cgroups holding its limits (for a
// runtime that does not enforce them itself), then ConfinedArgv. A
// container runtime's container gets a name of its own, and is removed
// (`rm -f`) when the result's `hold` goes, also when its client was killed.
// The engine's RunOptions::confine for the CLI and the Gateway.
// `mounts`: more host folders shown inside, {host, inside} each (a Sandbox
// worker's request, result and state folders, the engine's binary).
struct Mounts {
  std::vector<std::pair<std::string, std::string>> binds, ro_binds;
};
Result<ConfinedProcess> ConfineTask(const SandboxSpec& spec, const std::string& workspace,
                                    const std::vector<std::string>& hidden_paths,
                                    const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env_names = {},
                                    const Mounts& mounts = {});

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_SANDBOX_H_
