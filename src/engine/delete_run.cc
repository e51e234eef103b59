// Whole-run deletion (docs/operations.md "Deleting runs"): the run's rows in
// one transaction, then the Sandbox bundles its attempts left on disk.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "smithers/engine.h"
#include "smithers/store.h"

namespace smithers {
namespace {

constexpr std::string_view kBundleRoot = "/.smithers/sandboxes/";

// The folder that holds all of a run's bundles, from one attempt's bundle
// path <rootDir>/.smithers/sandboxes/<run>/<node>.<iteration>/<attempt>: the
// path up to <run>. "" for a path not of that shape.
std::string RunBundleDir(const std::string& bundle) {
  if (bundle.empty() || bundle.front() != '/') return "";
  const size_t at = bundle.rfind(kBundleRoot);
  if (at == std::string::npos) return "";
  const size_t name = at + kBundleRoot.size();
  const size_t slash = bundle.find('/', name);
  std::string dir = bundle.substr(0, slash);
  const std::string run = dir.substr(name);
  if (run.empty() || run == "." || run == "..") return "";
  for (const std::filesystem::path& part : std::filesystem::path(dir)) {
    if (part == "." || part == "..") return "";
  }
  return dir;
}

// A real folder, not a link to one (lstat).
bool IsPlainDir(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Removes `dir` and what it holds, never through a link: each folder on the
// way from <rootDir>/.smithers down must be a real one, and remove_all
// removes links inside without following them. "" or why not.
std::string RemoveBundleDir(const std::string& dir) {
  const size_t at = dir.rfind(kBundleRoot);
  const std::string smithers_dir = dir.substr(0, at) + "/.smithers";
  for (const std::string& d : {smithers_dir, smithers_dir + "/sandboxes", dir}) {
    if (!IsPlainDir(d)) {
      struct stat st {};
      if (d == dir && lstat(d.c_str(), &st) != 0 && errno == ENOENT) return "";  // gone already
      return d + " is not a folder (a link, or missing); left in place";
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return ec ? "cannot remove " + dir + ": " + ec.message() : "";
}

}  // namespace

Result<DeletedRun> DeleteRun(Store& store, const std::string& run_id, bool force, Clock& clock,
                             const AuditEntry* audit) {
  SMITHERS_ASSIGN_OR_RETURN(RunRecord run, store.GetRun(run_id));
  if (!IsTerminal(run.status)) {
    if (!force) {
      return FailedPreconditionError("run " + run_id + " is " + std::string(Name(run.status)) +
                                     "; cancel it first, or delete with force");
    }
    SMITHERS_ASSIGN_OR_RETURN(RunStatus now, CancelRun(store, run_id, clock));
    if (!IsTerminal(now)) {
      return UnavailableError("run " + run_id +
                              " is running in a live process: it was asked to stop; delete it "
                              "again once it is cancelled");
    }
  }
  // The bundle folders, read before the rows that name them go.
  std::set<std::string> dirs;
  SMITHERS_ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, store.ListAttempts(run_id));
  for (const AttemptRecord& a : attempts) {
    if (!a.meta.is_object() || !a.meta.contains("sandbox")) continue;
    const Json& sandbox = a.meta["sandbox"];
    if (!sandbox.is_object() || !sandbox.contains("bundle") || !sandbox["bundle"].is_string()) {
      continue;
    }
    std::string dir = RunBundleDir(sandbox["bundle"].get<std::string>());
    if (!dir.empty()) dirs.insert(std::move(dir));
  }
  DeletedRun deleted;
  if (audit == nullptr) {
    SMITHERS_ASSIGN_OR_RETURN(deleted.run, store.DeleteRun(run_id));
  } else {
    AuditEntry entry = *audit;
    entry.run_id = entry.target = run_id;
    entry.action = "run.delete";
    entry.details["force"] = force;
    SMITHERS_RETURN_IF_ERROR(store.Audited(entry, [&]() -> Status {
      SMITHERS_ASSIGN_OR_RETURN(deleted.run, store.DeleteRun(run_id));
      return Status::Ok();
    }));
  }
  // After the commit: a crash here leaves folders no row names, which a
  // second delete cannot find; never rows whose files are gone.
  for (const std::string& dir : dirs) {
    std::string why = RemoveBundleDir(dir);
    if (why.empty()) {
      deleted.bundle_dirs.push_back(dir);
    } else {
      deleted.warnings.push_back(std::move(why));
    }
  }
  return deleted;
}

int64_t RunEndedAtMs(const RunRecord& run) {
  return run.finished_at_ms != 0 ? run.finished_at_ms : run.created_at_ms;
}

Result<std::vector<RunRecord>> RunsToPrune(Store& store, const std::vector<RunStatus>& statuses,
                                           int64_t ended_before_ms) {
  std::vector<RunRecord> due;
  for (RunStatus status : statuses) {
    if (!IsTerminal(status)) {
      return InvalidArgumentError("only runs that are over are pruned, not " +
                                  std::string(Name(status)) + " ones");
    }
    SMITHERS_ASSIGN_OR_RETURN(std::vector<RunRecord> runs,
                              store.ListRuns({.status = status, .limit = INT_MAX}));
    for (RunRecord& run : runs) {
      if (RunEndedAtMs(run) < ended_before_ms) due.push_back(std::move(run));
    }
  }
  std::sort(due.begin(), due.end(), [](const RunRecord& a, const RunRecord& b) {
    return RunEndedAtMs(a) != RunEndedAtMs(b) ? RunEndedAtMs(a) < RunEndedAtMs(b)
                                              : a.run_id < b.run_id;
  });
  return due;
}

}  // namespace smithers
