// A sandbox's resource limits, held by cgroups made for one process
// (docs/sandbox.md "Limits"). bubblewrap starts no cgroup of its own, so
// the engine makes them: beside its own cgroup, one per controller, with
// the limits written before the process starts; the child joins them
// between fork and exec (base::ProcessSpec::join_files), so the limits hold
// from its first instruction, for everything it forks.
//
//   Result<std::unique_ptr<sandbox::Cgroup>> cg = sandbox::Cgroup::Create(
//       {.memory_bytes = 256 << 20, .pids = 64});
//   spec.join_files = (*cg)->join_files();
//   ... run, reap ...
//   std::string why = (*cg)->LimitReached();  // "" unless a limit ended it
//   cg->reset();                              // kills what is left, removes them
//
// A controller the machine does not offer (not mounted, or cgroup v2 without
// it delegated to the engine's cgroup) is an error naming it: a limit is
// enforced or refused, never ignored. Both the v1 hierarchies (one per
// controller) and the v2 unified one are used, per controller.
#ifndef SMITHERS_SANDBOX_CGROUPS_H_
#define SMITHERS_SANDBOX_CGROUPS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "smithers/status.h"

namespace smithers::sandbox {

struct Limits {
  int64_t memory_bytes = 0;  // 0 = none; swap is not allowed past it
  int64_t pids = 0;          // processes and threads; 0 = none
  double cpus = 0;           // CPU time per wall second (0.5 = half a core); 0 = none
  bool any() const { return memory_bytes > 0 || pids > 0 || cpus > 0; }
};

class Cgroup {
 public:
  // The cgroups holding `limits` (REQUIRES: limits.any()). FailedPrecondition
  // when a controller cannot be used here, with what the machine lacks.
  static Result<std::unique_ptr<Cgroup>> Create(const Limits& limits);

  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  // SIGKILLs what is left inside, then removes the folders.
  ~Cgroup();

  // The cgroup.procs files the process writes "0" into to join.
  const std::vector<std::string>& join_files() const { return join_files_; }
  // The folders made, one per controller used (tests read the limits there).
  const std::vector<std::string>& dirs() const { return dirs_; }

  // After the process ended: which limit ended or hindered it ("the memory
  // limit of 64 MiB was reached: the kernel killed the process"), or "".
  std::string LimitReached() const;
  // How many times the CPU limit held the process back (cpu.stat's
  // nr_throttled); 0 without a CPU limit.
  int64_t CpuThrottled() const;

 private:
  explicit Cgroup(Limits limits) : limits_(limits) {}

  Limits limits_;
  std::vector<std::string> dirs_;
  std::vector<std::string> join_files_;
  std::string memory_dir_, pids_dir_, cpu_dir_;  // "" when that limit is unset
  bool memory_v2_ = false, pids_v2_ = false;
};

// Whether `name` is `prefix` followed by the pid of an engine that is gone
// (not this process, and no process of that pid): what every sweep of the
// leftovers of a killed engine (cgroups, containers, egress folders) asks.
bool LeftByAGoneEngine(const std::string& name, const std::string& prefix);

// What each controller would use here ("memory: cgroup v1 at
// /sys/fs/cgroup/memory/...", or why none), for `smithers sandbox selftest`.
std::vector<std::string> DescribeControllers();

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_CGROUPS_H_
