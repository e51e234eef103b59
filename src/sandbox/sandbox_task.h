// The Sandbox component's executor (docs/sandbox.md "The Sandbox
// component"): ships a request bundle, runs a worker on it inside a
// sandbox runtime, checks the result bundle it returns before reading any
// of it, and turns its patches into the workspace's changes (at once, or
// after a review: Accept).
//
//   std::unique_ptr<Executor> e = sandbox::NewSandboxTaskExecutor({.hidden_paths = {db}});
//   opts.executors[TaskMode::kSandbox] = e.get();
//
// One attempt's folder, under the workspace (the Sandbox's rootDir):
//   .smithers/sandboxes/<run>/<node>.<iteration>/<attempt>/
//     request/README.md     the request manifest (written by the engine)
//     request/module/       the child module and the .lua files beside it
//     request/workspace/    the shipped files, as shipped
//     result/               the result bundle (bundle.h), written by the worker
//     journal/              ApplyChanges' journal
//   and, while the worker runs, work/ (its workspace) and state/ (its database).
// Inside the sandbox: request/ read-only at /run/smithers/request, result/
// and state/ at /run/smithers/result and /run/smithers/state, the engine's
// binary at /run/smithers/smithers, work/ as the workspace at its own path.
#ifndef SMITHERS_SANDBOX_SANDBOX_TASK_H_
#define SMITHERS_SANDBOX_SANDBOX_TASK_H_

#include <memory>
#include <string>
#include <vector>

#include "sandbox/apply.h"
#include "sandbox/bundle.h"
#include "smithers/engine.h"
#include "smithers/status.h"

namespace smithers::sandbox {

inline constexpr char kWorkerRequestInside[] = "/run/smithers/request";
inline constexpr char kWorkerResultInside[] = "/run/smithers/result";
inline constexpr char kWorkerStateInside[] = "/run/smithers/state";
inline constexpr char kWorkerBinaryInside[] = "/run/smithers/smithers";

struct SandboxTaskOptions {
  // Never visible to a worker (the engine's database).
  std::vector<std::string> hidden_paths;
};

std::unique_ptr<Executor> NewSandboxTaskExecutor(const SandboxTaskOptions& options);

// The folder of one attempt (above); its components are the ids, or a hash
// of an id that is not a plain file name.
std::string AttemptDir(const std::string& workspace, const std::string& run_id,
                       const std::string& node_id, int iteration, int attempt);

// A shipped file, as the request manifest lists it.
struct ShippedFile {
  std::string path;  // workspace-relative
  std::string sha256;
  int64_t bytes = 0;
};

// What one attempt's folder says: the request's shipped files, the checked
// result bundle, and the changes its patches make (each add or modify with
// its new content, each modify or delete with the shipped file's hash).
struct AttemptChanges {
  std::vector<ShippedFile> shipped;
  ResultBundle bundle;
  std::vector<FileChange> changes;
};

// Reads and checks attempt folder `dir`: the result bundle (ReadResultBundle
// with `limits`) and its patches against the request (a modify or delete
// of a file that was not shipped, or an add of one that was, is refused).
Result<AttemptChanges> ReadAttempt(const std::string& dir, const BundleLimits& limits);

// The unified diff of every change of `dir`'s attempt (against the files as
// shipped), one file after another; the bundle is checked with the limits
// its request recorded.
Result<std::string> AttemptDiff(const std::string& dir);

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_SANDBOX_TASK_H_
