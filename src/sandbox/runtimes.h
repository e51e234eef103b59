// The runtimes' argv builders, one file each (sandbox.h is the interface).
#ifndef SMITHERS_SANDBOX_RUNTIMES_H_
#define SMITHERS_SANDBOX_RUNTIMES_H_

#include <filesystem>
#include <string>
#include <vector>

#include "sandbox/sandbox.h"

namespace smithers::sandbox {

// The host's system folders a runtime shows read-only (and ConfinedArgv
// never accepts as a workspace).
inline constexpr const char* kReadOnlySystemFolders[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"};

// The folders a sandbox keeps read-only or makes fresh: a workspace that is
// one of them, inside one, or above one (/) would make it writable (and a
// Sandbox's rootDir there would ship system files).
bool SystemFolder(const std::filesystem::path& p);

// The engine's state under the workspace, which every runtime masks: the
// folders (.smithers/, and the database's folder) and, when the database
// is in the workspace itself, its files with their -wal/-shm/-journal;
// those that exist, as canonical paths.
struct Masked {
  std::vector<std::string> dirs, files;
};
Masked MaskedPaths(const Confinement& c);

// bubblewrap (bubblewrap.cc).
std::vector<std::string> BubblewrapArgv(const Confinement& c, const std::string& program,
                                        const std::vector<std::string>& argv);
// docker and podman (container.cc): c.image is set. Every
// container carries the label ContainerHostLabel() (smithers.host=<this
// host's name>) beside smithers.sandbox=1.
std::string ContainerHostLabel();

std::vector<std::string> ContainerArgv(const Confinement& c, const std::string& program,
                                       const std::vector<std::string>& argv);

// kubernetes (kubernetes.cc): what it cannot do, refused (pidsLimit, ports,
// host paths); the manifest (a List of a NetworkPolicy and a Job) of
// `argv` run as `c` says; the argv that runs it through this binary's
// `sandbox kube-job` with `program` (kubectl).
Status CheckKubernetes(const Confinement& c);
Json KubernetesManifest(const Confinement& c, const std::vector<std::string>& argv);
std::vector<std::string> KubernetesArgv(const Confinement& c, const std::string& program,
                                        const std::vector<std::string>& argv);

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_RUNTIMES_H_
