// `smithers sandbox selftest`: escape attempts run inside a runtime on this
// machine, each one reported as enforced (the attempt failed) or not. The
// guide's release check, "verify your chosen runtime actually enforces these
// limits", as a command a deployment runs (docs/sandbox.md "Self-test").
//
//   Result<SelfTestReport> r = sandbox::SelfTest("bubblewrap");
//   for (const ProbeResult& p : r->probes) ... p.name, p.enforced, p.detail
#ifndef SMITHERS_SANDBOX_SELFTEST_H_
#define SMITHERS_SANDBOX_SELFTEST_H_

#include <functional>
#include <string>
#include <vector>

#include "smithers/status.h"

namespace smithers::sandbox {

struct ProbeResult {
  std::string name;  // what is tried, e.g. "write outside the workspace"
  bool enforced = false;
  std::string detail;  // what happened
};

struct SelfTestReport {
  std::string runtime;
  std::vector<ProbeResult> probes;
  std::vector<std::string> cgroups;  // DescribeControllers()
  bool all_enforced() const {
    for (const ProbeResult& p : probes) {
      if (!p.enforced) return false;
    }
    return !probes.empty();
  }
};

// Runs every probe in `runtime` (each in a fresh sandbox over a scratch
// workspace holding a decoy database), in `image` for a container runtime
// ("" for the others). FailedPrecondition when the runtime cannot start
// here; InvalidArgument when it is unknown or the image is missing or not
// wanted. `progress` (may be null) is called after each probe.
Result<SelfTestReport> SelfTest(const std::string& runtime, const std::string& image = "",
                                const std::function<void(const ProbeResult&)>& progress = nullptr);

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_SELFTEST_H_
