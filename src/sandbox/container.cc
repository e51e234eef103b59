// The container runtimes, docker and podman (docs/sandbox.md "Containers"):
// one argv for both, whose command lines agree on every flag used here.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "sandbox/runtimes.h"

namespace smithers::sandbox {

std::string ContainerHostLabel() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string("smithers.host=") + host;
}

// A container of `c.image` named `c.name`, removed when it exits: no
// network unless allowed, a read-only root with a fresh /tmp, no
// capabilities and no privilege gain, uid and gid 65534, the limits set,
// the workspace bound read-write at its own path and the working folder,
// the engine's state under it masked, and the variables `c.env_names`
// forwarded by name (their values go to the engine's client process, never
// into the argv).
std::vector<std::string> ContainerArgv(const Confinement& c, const std::string& program,
                                       const std::vector<std::string>& argv) {
  std::vector<std::string> v = {program,
                                "run",
                                "--rm",
                                "--pull=never",
                                "--name",
                                c.name.empty() ? std::string("smithers-sandbox") : c.name,
                                "--label",
                                "smithers.sandbox=1",
                                "--label",
                                ContainerHostLabel(),
                                "--read-only",
                                "--cap-drop",
                                "ALL",
                                "--security-opt",
                                "no-new-privileges",
                                "--user",
                                "65534:65534"};
  // A fresh /tmp, unless the workspace is /tmp itself.
  if (c.workspace != "/tmp") v.insert(v.end(), {"--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777"});
  if (!c.allow_network) v.insert(v.end(), {"--network", "none"});
  if (c.limits.memory_bytes > 0) {
    std::string bytes = std::to_string(c.limits.memory_bytes);
    v.insert(v.end(), {"--memory", bytes, "--memory-swap", bytes});  // no swap past it
  }
  if (c.limits.pids > 0) v.insert(v.end(), {"--pids-limit", std::to_string(c.limits.pids)});
  if (c.limits.cpus > 0) {
    char cpus[32];
    std::snprintf(cpus, sizeof cpus, "%g", c.limits.cpus);
    v.insert(v.end(), {"--cpus", cpus});
  }
  v.insert(v.end(), {"--mount", "type=bind,source=" + c.workspace + ",destination=" + c.workspace});
  // podman fills a tmpfs with what was under it unless told not to.
  Masked masked = MaskedPaths(c);
  for (const std::string& d : masked.dirs) {
    v.insert(v.end(), {"--mount", "type=tmpfs,destination=" + d +
                                      (c.runtime == "podman" ? ",notmpcopyup" : "")});
  }
  for (const std::string& f : masked.files) {
    v.insert(v.end(), {"--mount", "type=bind,source=/dev/null,destination=" + f + ",readonly"});
  }
  for (const auto& [host, inside] : c.binds) {
    v.insert(v.end(), {"--mount", "type=bind,source=" + host + ",destination=" + inside});
  }
  for (const auto& [host, inside] : c.ro_binds) {
    v.insert(v.end(),
             {"--mount", "type=bind,source=" + host + ",destination=" + inside + ",readonly"});
  }
  for (const std::string& p : c.ports) v.insert(v.end(), {"--publish", p});
  v.insert(v.end(), {"--workdir", c.workspace});
  for (const std::string& name : c.env_names) v.push_back("--env=" + name);
  v.push_back(c.image);
  v.insert(v.end(), argv.begin(), argv.end());
  return v;
}

}  // namespace smithers::sandbox
