// The runtimes' argv builders, one file each (sandbox.h is the interface).
#ifndef SMITHERS_SANDBOX_RUNTIMES_H_
#define SMITHERS_SANDBOX_RUNTIMES_H_

#include <string>
#include <vector>

#include "sandbox/sandbox.h"

namespace smithers::sandbox {

// The host's system folders a runtime shows read-only (and ConfinedArgv
// never accepts as a workspace).
inline constexpr const char* kReadOnlySystemFolders[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"};

// bubblewrap (bubblewrap.cc).
std::vector<std::string> BubblewrapArgv(const Confinement& c, const std::string& program,
                                        const std::vector<std::string>& argv);

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_RUNTIMES_H_
