#include "sandbox/sandbox_task.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include "base/hash.h"
#include "base/paths.h"
#include "base/secrets.h"
#include "base/subprocess.h"
#include "base/unique_fd.h"
#include "sandbox/diff.h"
#include "sandbox/fd_io.h"
#include "sandbox/runtimes.h"
#include "sandbox/sandbox.h"

namespace smithers::sandbox {
namespace fs = std::filesystem;
namespace {

constexpr size_t kTail = 2000;
// How many files the request may ship, and child module files.
constexpr size_t kMaxShippedFiles = 20000;
constexpr size_t kMaxModuleFiles = 1000;

Json Error(const std::string& code, const std::string& message) {
  return {{"code", code}, {"message", message}};
}

AttemptOutcome Failed(const std::string& code, const std::string& message, bool retryable) {
  return {.ok = false, .error = Error(code, message), .retryable = retryable};
}

std::string Tail(const std::string& s) {
  return s.size() <= kTail ? s : "..." + s.substr(s.size() - kTail);
}

// An id as one file name: itself when plain, else a hash of it.
std::string Component(const std::string& id) {
  bool plain =
      !id.empty() && id.size() <= 100 && id.front() != '.' &&
      std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
      });
  return plain ? id : "h-" + base::Sha256Hex(id).substr(0, 24);
}

// The whole of a plain file, never through a link.
Result<std::string> ReadPlain(const std::string& path) {
  base::UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) return NotFoundError("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return InvalidArgumentError(path + " is not a plain file");
  }
  return ReadAll(fd.get(), path);
}

Status WritePlain(const std::string& path, const std::string& data, mode_t mode = 0644) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  base::UniqueFd fd(
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode));
  if (fd.get() < 0) return InternalError("cannot write " + path + ": " + std::strerror(errno));
  return WriteAll(fd.get(), data, path);
}

// The files and folders a request ships, copied (plain files only) into
// each of `into`. A link, a device or the engine's state folder is refused.
class Shipper {
 public:
  // `hidden`: files never shipped (the engine's database, with its
  // -wal, -shm and -journal).
  Shipper(std::string root, int64_t max_bytes, const std::vector<std::string>& hidden)
      : root_(std::move(root)), max_bytes_(max_bytes) {
    std::error_code ec;
    for (const std::string& h : hidden) {
      fs::path p = fs::weakly_canonical(h, ec);
      if (ec) continue;
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        hidden_.insert(p.string() + suffix);
      }
    }
  }

  Status Ship(const std::string& rel, const std::vector<std::string>& into) {
    SMITHERS_RETURN_IF_ERROR(CheckBundlePath(rel, 1024));
    if (rel == ".smithers" || rel.rfind(".smithers/", 0) == 0) {
      return InvalidArgumentError("files: \"" + rel + "\" is the engine's state, never shipped");
    }
    // Every folder on the way must be a folder, not a link to one.
    std::string at;
    for (size_t start = 0;;) {
      size_t slash = rel.find('/', start);
      at = rel.substr(0, slash);
      std::error_code ec;
      fs::file_status st = fs::symlink_status(fs::path(root_) / at, ec);
      if (ec || !fs::exists(st)) return NotFoundError("files: \"" + rel + "\" does not exist");
      if (fs::is_symlink(st)) {
        return InvalidArgumentError("files: \"" + at +
                                    "\" is a symlink; a sandbox ships plain files and folders");
      }
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return Walk(rel, into);
  }

  const std::vector<ShippedFile>& files() const { return files_; }
  int64_t bytes() const { return bytes_; }

 private:
  Status Walk(const std::string& rel, const std::vector<std::string>& into) {
    fs::path p = fs::path(root_) / rel;
    std::error_code ec;
    fs::file_status st = fs::symlink_status(p, ec);
    if (ec) return InternalError("files: cannot read " + rel + ": " + ec.message());
    if (fs::is_symlink(st)) {
      return InvalidArgumentError("files: \"" + rel +
                                  "\" is a symlink; a sandbox ships plain files and folders");
    }
    if (fs::is_directory(st)) {
      std::vector<std::string> names;
      for (const auto& e : fs::directory_iterator(p, ec)) {
        names.push_back(e.path().filename().string());
      }
      if (ec) return InternalError("files: cannot list " + rel + ": " + ec.message());
      std::sort(names.begin(), names.end());
      for (const std::string& n : names) SMITHERS_RETURN_IF_ERROR(Walk(rel + "/" + n, into));
      return Status::Ok();
    }
    if (!fs::is_regular_file(st)) {
      return InvalidArgumentError("files: \"" + rel + "\" is not a plain file or folder");
    }
    if (hidden_.count(fs::weakly_canonical(p, ec).string()) != 0) {
      return InvalidArgumentError("files: \"" + rel + "\" is the engine's database, never shipped");
    }
    if (!seen_.insert(rel).second) return Status::Ok();  // named twice
    SMITHERS_RETURN_IF_ERROR(CheckBundlePath(rel, 1024));
    if (files_.size() >= kMaxShippedFiles) {
      return InvalidArgumentError("files: more than " + std::to_string(kMaxShippedFiles) +
                                  " files to ship");
    }
    SMITHERS_ASSIGN_OR_RETURN(std::string text, ReadPlain(p.string()));
    bytes_ += static_cast<int64_t>(text.size());
    if (bytes_ > max_bytes_) {
      return InvalidArgumentError("files: the files to ship pass maxBundleBytes (" +
                                  std::to_string(max_bytes_) + " bytes)");
    }
    auto mode = static_cast<mode_t>(st.permissions() & fs::perms::mask);
    for (const std::string& dir : into) {
      SMITHERS_RETURN_IF_ERROR(WritePlain(dir + "/" + rel, text, mode));
      fs::permissions(dir + "/" + rel, st.permissions(), ec);
    }
    files_.push_back(
        {.path = rel, .sha256 = base::Sha256Hex(text), .bytes = static_cast<int64_t>(text.size())});
    return Status::Ok();
  }

  std::string root_;
  int64_t max_bytes_;
  int64_t bytes_ = 0;
  std::vector<ShippedFile> files_;
  std::set<std::string> seen_;
  std::set<std::string> hidden_;
};

// The child module and the .lua files of its folder (its siblings), into
// `into`; returns the module's path relative to `into`.
Result<std::string> ShipModule(const std::string& module, const std::string& into, int64_t* bytes) {
  fs::path file(module);
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(file, ec))) {
    return NotFoundError("the Sandbox's workflow " + module + " is not a plain file");
  }
  fs::path dir = file.parent_path();
  size_t count = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    fs::file_status st = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_directory(st) && (name.front() == '.' || name == "node_modules")) {
      it.disable_recursion_pending();
      continue;
    }
    if (!fs::is_regular_file(st) || p.extension() != ".lua") continue;
    if (++count > kMaxModuleFiles) {
      return InvalidArgumentError("the Sandbox's workflow folder " + dir.string() +
                                  " has more than " + std::to_string(kMaxModuleFiles) +
                                  " .lua files to ship");
    }
    SMITHERS_ASSIGN_OR_RETURN(std::string text, ReadPlain(p.string()));
    *bytes += static_cast<int64_t>(text.size());
    SMITHERS_RETURN_IF_ERROR(WritePlain(into + "/" + p.lexically_relative(dir).string(), text));
  }
  if (ec) return InternalError("cannot read the Sandbox's workflow folder: " + ec.message());
  return file.filename().string();
}

BundleLimits LimitsOf(const SandboxTaskSpec& s) {
  BundleLimits l;
  l.max_bundle_bytes = s.max_bundle_bytes;
  l.max_manifest_bytes = s.max_manifest_bytes;
  l.max_patches = s.max_patches;
  return l;
}

// The task's output from the child's outputs: the rows of the table named
// as the task's output (Subflow's rule): one row is the output, none is
// null, several are a list in node id order.
Json PickOutput(const Json& outputs, const std::string& name) {
  if (name.empty() || !outputs.is_object() || !outputs.contains(name)) return nullptr;
  const Json& rows = outputs[name];
  if (!rows.is_object() || rows.empty()) return nullptr;
  if (rows.size() == 1) return rows.begin().value();
  Json list = Json::array();
  for (const auto& [node, row] : rows.items()) list.push_back(row);
  return list;
}

// What the review shows of each change, and the lines in all.
Json Summary(const std::string& dir, const AttemptChanges& a, int64_t* total_lines) {
  std::map<std::string, const ShippedFile*> shipped;
  for (const ShippedFile& f : a.shipped) shipped[f.path] = &f;
  Json patches = Json::array();
  *total_lines = 0;
  for (const FileChange& c : a.changes) {
    std::string old_text;
    if (c.operation != "add") {
      Result<std::string> t = ReadPlain(dir + "/request/workspace/" + c.path);
      if (t.ok()) old_text = std::move(t).value();
    }
    LineDiff d = DiffLines(old_text, c.content);
    Json p = {{"path", c.path}, {"operation", c.operation}, {"bytes", c.content.size()}};
    if (d.binary) {
      p["binary"] = true;
    } else {
      p["added"] = d.added;
      p["removed"] = d.removed;
      *total_lines += d.added + d.removed;
    }
    patches.push_back(std::move(p));
  }
  return patches;
}

class WorkerExecution final : public Execution {
 public:
  WorkerExecution(std::unique_ptr<base::Subprocess> proc, ConfinedProcess confined,
                  const TaskSpec& task, std::string workspace, std::string dir, Json meta,
                  std::vector<std::pair<std::string, Json>> events)
      : proc_(std::move(proc)),
        confined_(std::move(confined)),
        spec_(*task.sandbox_task),
        output_(task.output),
        workspace_(std::move(workspace)),
        dir_(std::move(dir)),
        meta_(std::move(meta)),
        events_(std::move(events)) {}

  int WaitFd() const override { return proc_->WaitFd(); }
  bool TakeActivity() override { return proc_->TakeActivity(); }
  // SandboxShipped, once: the worker started on the request bundle.
  std::vector<std::pair<std::string, Json>> TakeEvents() override { return std::move(events_); }
  void Cancel(const std::string& reason) override {
    if (!cancel_reason_.empty()) return;
    cancel_reason_ = reason;
    proc_->Cancel();
  }

  std::optional<AttemptOutcome> Poll() override {
    if (!proc_->Poll()) return std::nullopt;
    std::string limit;
    if (confined_.limit_reached) limit = confined_.limit_reached();
    if (confined_.report) {
      if (Json seen = confined_.report(); !seen.is_null()) meta_["egressAttempts"] = seen;
    }
    confined_.hold.reset();  // the container is removed before its result is read
    AttemptOutcome o = Outcome(proc_->result(), limit);
    // The worker's own folders go; the request and the result stay (the
    // review reads them, and they are the record of what ran).
    std::error_code ec;
    fs::remove_all(dir_ + "/work", ec);
    fs::remove_all(dir_ + "/state", ec);
    if (!limit.empty()) meta_["limitReached"] = limit;
    o.meta = {{"sandbox", meta_}};
    if (!o.ok) {
      o.events.emplace_back("SandboxFailed", Json{{"runtime", spec_.sandbox.runtime},
                                                  {"error", o.error.value("code", "")},
                                                  {"message", o.error.value("message", "")}});
    }
    return o;
  }

 private:
  AttemptOutcome Outcome(const base::ProcessResult& r, const std::string& limit) {
    if (r.cancelled) {
      return Failed("TASK_CANCELLED", "sandbox worker cancelled: " + cancel_reason_, false);
    }
    if (r.timed_out) return Failed("TASK_TIMEOUT", "the sandbox worker timed out", true);
    if (r.exit_code != 0) {
      if (!limit.empty()) {
        return Failed("SANDBOX_LIMIT_EXCEEDED",
                      limit + " (exit code " + std::to_string(r.exit_code) + ")", true);
      }
      AttemptOutcome o = Failed("SANDBOX_WORKER_FAILED",
                                "the sandbox worker exited with code " +
                                    std::to_string(r.exit_code) + ": " + Tail(r.err + r.out),
                                true);
      o.error["exitCode"] = r.exit_code;
      return o;
    }
    Result<AttemptChanges> read = ReadAttempt(dir_, LimitsOf(spec_));
    if (!read.ok()) {
      // The worker is untrusted: a bad bundle is its fault, and the same
      // worker would send it again.
      return Failed(
          "SANDBOX_BUNDLE_INVALID",
          "the result bundle was refused, nothing was changed: " + read.status().message(), false);
    }
    AttemptChanges& a = *read;
    meta_["bundleBytes"] = a.bundle.bytes;
    meta_["patches"] = a.changes.size();
    if (!a.bundle.run_id.empty()) meta_["remoteRunId"] = a.bundle.run_id;
    AttemptOutcome o;
    Json received = {{"bundleSizeBytes", a.bundle.bytes},
                     {"patchCount", a.changes.size()},
                     {"hasOutputs", !a.bundle.outputs.empty()}};
    if (!a.bundle.run_id.empty()) received["remoteRunId"] = a.bundle.run_id;
    o.events.emplace_back("SandboxBundleReceived", std::move(received));
    if (a.bundle.status != "finished") {
      AttemptOutcome f =
          Failed("SANDBOX_CHILD_FAILED",
                 "the child workflow ended " + a.bundle.status +
                     (a.bundle.error.empty() ? std::string() : ": " + a.bundle.error),
                 a.bundle.status == "failed");
      f.events = std::move(o.events);
      return f;
    }
    o.ok = true;
    o.output = PickOutput(a.bundle.outputs, output_);
    if (a.changes.empty()) {
      o.events.emplace_back(
          "SandboxCompleted",
          Json{{"runtime", spec_.sandbox.runtime}, {"status", "finished"}, {"patchCount", 0}});
      return o;
    }
    int64_t lines = 0;
    Json patches = Summary(dir_, a, &lines);
    if (spec_.review_diffs) {
      o.events.emplace_back("SandboxDiffReviewRequested",
                            Json{{"patchCount", a.changes.size()}, {"totalDiffLines", lines}});
    }
    if (spec_.review_diffs && !spec_.auto_accept_diffs) {
      Json req = {{"kind", "sandbox-diff"},
                  {"summary", std::to_string(a.changes.size()) + " file" +
                                  (a.changes.size() == 1 ? "" : "s") + " changed, " +
                                  std::to_string(lines) + " lines; see `smithers diff`"},
                  {"patches", patches},
                  {"totalDiffLines", lines}};
      o.review = std::move(req);
      return o;
    }
    // No review, or one that accepts by itself: applied now.
    Status applied = ApplyChanges(workspace_, a.changes, dir_ + "/journal");
    if (!applied.ok()) {
      AttemptOutcome f =
          Failed(applied.code() == StatusCode::kFailedPrecondition ? "SANDBOX_DIFF_CONFLICT"
                                                                   : "SANDBOX_APPLY_FAILED",
                 "the sandbox's changes were not applied: " + applied.message(), false);
      f.events = std::move(o.events);
      return f;
    }
    o.events.emplace_back(
        "SandboxDiffAccepted",
        Json{{"patchCount", a.changes.size()},
             {"by", spec_.review_diffs ? "autoAcceptDiffs" : "reviewDiffs=false"}});
    o.events.emplace_back("SandboxCompleted", Json{{"runtime", spec_.sandbox.runtime},
                                                   {"status", "finished"},
                                                   {"patchCount", a.changes.size()}});
    meta_["applied"] = true;
    return o;
  }

  std::unique_ptr<base::Subprocess> proc_;
  ConfinedProcess confined_;
  SandboxTaskSpec spec_;
  std::string output_;
  std::string workspace_;
  std::string dir_;
  Json meta_;
  std::vector<std::pair<std::string, Json>> events_;
  std::string cancel_reason_;
};

class DoneExecution final : public Execution {
 public:
  explicit DoneExecution(AttemptOutcome o) : o_(std::move(o)) {}
  std::optional<AttemptOutcome> Poll() override { return o_; }
  void Cancel(const std::string& /*reason*/) override {}

 private:
  AttemptOutcome o_;
};

// The worker was not started: the attempt fails, and so does its sandbox.
std::unique_ptr<Execution> NotStarted(const std::string& code, const std::string& message,
                                      bool retryable) {
  AttemptOutcome o = Failed(code, message + "; the worker was not started", retryable);
  o.events.emplace_back("SandboxFailed", Json{{"error", code}, {"message", o.error["message"]}});
  return std::make_unique<DoneExecution>(std::move(o));
}

Result<std::string> Workspace(const SandboxTaskSpec& s) {
  std::error_code ec;
  fs::path w = s.root_dir.empty() ? fs::current_path(ec) : fs::path(s.root_dir);
  if (ec) return FailedPreconditionError("the Sandbox's workspace: " + ec.message());
  fs::path real = fs::canonical(w, ec);
  if (ec || !fs::is_directory(real)) {
    return FailedPreconditionError("the Sandbox's rootDir " + w.string() + " is not a folder");
  }
  if (SystemFolder(real)) {
    return FailedPreconditionError("the Sandbox's rootDir cannot be " + real.string() +
                                   ": it is /, a system folder or one inside it");
  }
  return real.string();
}

class SandboxTaskExecutor final : public Executor {
 public:
  explicit SandboxTaskExecutor(SandboxTaskOptions options) : options_(std::move(options)) {}

  Result<std::unique_ptr<Execution>> Start(const TaskSpec& task, const AttemptInfo& info) override {
    if (!task.sandbox_task) return InvalidArgumentError("a Sandbox task without its settings");
    const SandboxTaskSpec& s = *task.sandbox_task;
    Result<std::string> workspace = Workspace(s);
    if (!workspace.ok())
      return NotStarted("SANDBOX_UNAVAILABLE", workspace.status().message(), false);
    const std::string dir =
        AttemptDir(*workspace, info.run_id, info.node_id, info.iteration, info.attempt);
    std::error_code ec;
    fs::remove_all(dir, ec);  // a leftover of an attempt a crash cut short
    for (const char* sub : {"request/module", "request/workspace", "result", "state", "work"}) {
      fs::create_directories(dir + "/" + sub, ec);
      if (ec) {
        return NotStarted("SANDBOX_UNAVAILABLE",
                          "cannot make the sandbox's folder " + dir + ": " + ec.message(), true);
      }
    }
    // The request bundle: the files, the module, the manifest.
    Shipper ship(*workspace, s.max_bundle_bytes, options_.hidden_paths);
    for (const std::string& f : s.files) {
      if (Status st = ship.Ship(f, {dir + "/request/workspace", dir + "/work"}); !st.ok()) {
        return NotStarted("SANDBOX_REQUEST_INVALID", st.message(), false);
      }
    }
    int64_t module_bytes = 0;
    Result<std::string> module = ShipModule(s.workflow, dir + "/request/module", &module_bytes);
    if (!module.ok())
      return NotStarted("SANDBOX_REQUEST_INVALID", module.status().message(), false);
    Json files = Json::array();
    for (const ShippedFile& f : ship.files()) {
      files.push_back({{"path", f.path}, {"sha256", f.sha256}, {"bytes", f.bytes}});
    }
    Json manifest = {{"status", "pending"},
                     {"sandboxId", info.node_id},
                     {"runId", info.run_id},
                     {"iteration", info.iteration},
                     {"attempt", info.attempt},
                     {"runtime", s.sandbox.runtime},
                     {"workflow", "module/" + *module},
                     {"input", s.input},
                     {"files", files},
                     {"limits",
                      {{"maxBundleBytes", s.max_bundle_bytes},
                       {"maxManifestBytes", s.max_manifest_bytes},
                       {"maxPatches", s.max_patches}}}};
    if (Status st = WritePlain(dir + "/request/README.md", manifest.dump(2) + "\n"); !st.ok()) {
      return NotStarted("SANDBOX_UNAVAILABLE", st.message(), true);
    }
    // A container's user (65534) owns what it writes, as bubblewrap's
    // mapped user does.
    if (RunsImages(s.sandbox.runtime) && geteuid() == 0) {
      for (const char* sub : {"result", "state", "work"}) {
        for (auto it = fs::recursive_directory_iterator(dir + "/" + sub, ec);
             !ec && it != fs::end(it); it.increment(ec)) {
          (void)lchown(it->path().c_str(), 65534, 65534);
        }
        (void)lchown((dir + "/" + sub).c_str(), 65534, 65534);
      }
    }
    const int64_t shipped_bytes = ship.bytes() + module_bytes;
    std::vector<std::string> argv = s.command;
    Mounts mounts;
    mounts.ro_binds.emplace_back(dir + "/request", kWorkerRequestInside);
    mounts.binds.emplace_back(dir + "/result", kWorkerResultInside);
    mounts.binds.emplace_back(dir + "/state", kWorkerStateInside);
    if (argv.empty()) {
      fs::path self = fs::read_symlink("/proc/self/exe", ec);
      if (ec) return NotStarted("SANDBOX_UNAVAILABLE", "cannot find the engine's binary", false);
      mounts.ro_binds.emplace_back(self.string(), kWorkerBinaryInside);
      argv = {kWorkerBinaryInside, "sandbox", "worker"};
    }
    std::map<std::string, std::string> declared = s.env;
    declared["SMITHERS_SANDBOX_REQUEST_PATH"] = kWorkerRequestInside;
    declared["SMITHERS_SANDBOX_RESULT_PATH"] = kWorkerResultInside;
    declared["SMITHERS_SANDBOX_STATE_PATH"] = kWorkerStateInside;
    std::vector<std::string> env_names;
    env_names.reserve(declared.size() + s.secret_env.size());
    for (const auto& [name, value] : declared) env_names.push_back(name);
    for (const auto& [name, ref] : s.secret_env) env_names.push_back(name);
    Result<ConfinedProcess> confined =
        ConfineTask(s.sandbox, dir + "/work", options_.hidden_paths, argv, env_names, mounts);
    if (!confined.ok()) {
      return NotStarted("SANDBOX_UNAVAILABLE", confined.status().message(), false);
    }
    // Secrets are resolved now, into the worker's environment only.
    Result<std::vector<std::string>> env = base::BuildChildEnvironment(declared, s.secret_env);
    if (!env.ok()) {
      bool not_allowed = env.status().code() == StatusCode::kInvalidArgument;
      return NotStarted(not_allowed ? "SECRET_NOT_ALLOWED" : "SECRET_UNAVAILABLE",
                        env.status().message(), !not_allowed);
    }
    base::ProcessSpec ps;
    ps.argv = confined->argv;
    ps.join_files = confined->join_files;
    ps.env = std::move(env).value();
    ps.cwd = dir + "/work";
    ps.max_stdout_bytes = ps.max_stderr_bytes = 1 << 20;
    ps.deadline_ms = info.deadline_monotonic_ms;
    Clock& clock = info.clock != nullptr ? *info.clock : SystemClock();
    Result<std::unique_ptr<base::Subprocess>> proc = base::Subprocess::Spawn(ps, clock);
    if (!proc.ok()) return NotStarted("SANDBOX_UNAVAILABLE", proc.status().message(), true);
    Json meta = SandboxToJson(s.sandbox);
    meta["bundle"] = dir;
    meta["shippedFiles"] = ship.files().size();
    meta["shippedBytes"] = shipped_bytes;
    Json shipped = {
        {"bundleSizeBytes", shipped_bytes}, {"files", files.size()}, {"bundlePath", dir}};
    if (!confined->container.empty()) shipped["containerId"] = confined->container;
    std::vector<std::pair<std::string, Json>> events = {{"SandboxShipped", std::move(shipped)}};
    return std::unique_ptr<Execution>(std::make_unique<WorkerExecution>(
        std::move(proc).value(), std::move(confined).value(), task, *workspace, dir,
        std::move(meta), std::move(events)));
  }

  // The review approved attempt `info.attempt`: its patches, checked again,
  // are applied all or none (finishing an apply a crash interrupted), and
  // its output becomes the task's.
  AttemptOutcome Accept(const TaskSpec& task, const AttemptInfo& info) override {
    if (!task.sandbox_task) return Failed("REVIEW_UNSUPPORTED", "not a Sandbox task", false);
    const SandboxTaskSpec& s = *task.sandbox_task;
    Result<std::string> workspace = Workspace(s);
    if (!workspace.ok()) return Failed("SANDBOX_APPLY_FAILED", workspace.status().message(), false);
    const std::string dir =
        AttemptDir(*workspace, info.run_id, info.node_id, info.iteration, info.attempt);
    if (Status r = RecoverApply(*workspace, dir + "/journal"); !r.ok()) {
      return Failed("SANDBOX_APPLY_FAILED", "finishing an earlier apply: " + r.message(), false);
    }
    Result<AttemptChanges> read = ReadAttempt(dir, LimitsOf(s));
    if (!read.ok()) {
      return Failed("SANDBOX_BUNDLE_INVALID",
                    "the approved result bundle was refused at apply time, nothing was changed: " +
                        read.status().message(),
                    false);
    }
    const AttemptChanges& a = *read;
    Result<bool> done = AlreadyApplied(*workspace, a.changes);
    Status applied = done.ok() ? Status::Ok() : done.status();
    if (done.ok() && !*done) applied = ApplyChanges(*workspace, a.changes, dir + "/journal");
    if (!applied.ok()) {
      return Failed(applied.code() == StatusCode::kFailedPrecondition ? "SANDBOX_DIFF_CONFLICT"
                                                                      : "SANDBOX_APPLY_FAILED",
                    "the approved changes were not applied: " + applied.message(), false);
    }
    Json meta = SandboxToJson(s.sandbox);
    meta["bundle"] = dir;
    meta["patches"] = a.changes.size();
    meta["applied"] = true;
    return {.ok = true,
            .output = PickOutput(a.bundle.outputs, task.output),
            .meta = {{"sandbox", meta}},
            .events = {{"SandboxDiffAccepted", Json{{"patchCount", a.changes.size()}}},
                       {"SandboxCompleted", Json{{"runtime", s.sandbox.runtime},
                                                 {"status", "finished"},
                                                 {"patchCount", a.changes.size()}}}}};
  }

 private:
  SandboxTaskOptions options_;
};

}  // namespace

std::unique_ptr<Executor> NewSandboxTaskExecutor(const SandboxTaskOptions& options) {
  return std::make_unique<SandboxTaskExecutor>(options);
}

std::string AttemptDir(const std::string& workspace, const std::string& run_id,
                       const std::string& node_id, int iteration, int attempt) {
  return workspace + "/.smithers/sandboxes/" + Component(run_id) + "/" + Component(node_id) + "." +
         std::to_string(iteration) + "/" + std::to_string(attempt);
}

Result<AttemptChanges> ReadAttempt(const std::string& dir, const BundleLimits& limits) {
  AttemptChanges a;
  SMITHERS_ASSIGN_OR_RETURN(std::string text, ReadPlain(dir + "/request/README.md"));
  Json req = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!req.is_object() || !req.contains("files") || !req["files"].is_array()) {
    return InternalError("the request manifest in " + dir + " is not the engine's");
  }
  std::map<std::string, std::string> shipped;  // path -> sha256
  for (const Json& f : req["files"]) {
    a.shipped.push_back({.path = f.value("path", ""),
                         .sha256 = f.value("sha256", ""),
                         .bytes = f.value("bytes", int64_t{0})});
    shipped[a.shipped.back().path] = a.shipped.back().sha256;
  }
  SMITHERS_ASSIGN_OR_RETURN(a.bundle, ReadResultBundle(dir + "/result", limits));
  for (const BundlePatch& p : a.bundle.patches) {
    auto it = shipped.find(p.path);
    if (p.operation == "add" && it != shipped.end()) {
      return InvalidArgumentError("patch \"" + p.path + "\": added, but it was shipped");
    }
    if (p.operation != "add" && it == shipped.end()) {
      return InvalidArgumentError("patch \"" + p.path + "\": " + p.operation +
                                  " of a file that was not shipped");
    }
    FileChange c{.path = p.path,
                 .operation = p.operation,
                 .base_sha256 = it == shipped.end() ? "" : it->second};
    if (p.operation != "delete") {
      SMITHERS_ASSIGN_OR_RETURN(c.content, ReadPlain(dir + "/result/" + p.file));
    }
    a.changes.push_back(std::move(c));
  }
  return a;
}

Result<std::string> AttemptDiff(const std::string& dir) {
  SMITHERS_ASSIGN_OR_RETURN(std::string text, ReadPlain(dir + "/request/README.md"));
  Json req = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  BundleLimits limits;
  if (req.is_object() && req.contains("limits") && req["limits"].is_object()) {
    const Json& l = req["limits"];
    limits.max_bundle_bytes = l.value("maxBundleBytes", limits.max_bundle_bytes);
    limits.max_manifest_bytes = l.value("maxManifestBytes", limits.max_manifest_bytes);
    limits.max_patches = l.value("maxPatches", limits.max_patches);
  }
  SMITHERS_ASSIGN_OR_RETURN(AttemptChanges a, ReadAttempt(dir, limits));
  std::string out;
  for (const FileChange& c : a.changes) {
    std::string old_text;
    if (c.operation != "add") {
      SMITHERS_ASSIGN_OR_RETURN(old_text, ReadPlain(dir + "/request/workspace/" + c.path));
    }
    out += UnifiedDiff(old_text, c.content, c.operation == "add" ? "/dev/null" : "a/" + c.path,
                       c.operation == "delete" ? "/dev/null" : "b/" + c.path);
  }
  return out;
}

}  // namespace smithers::sandbox
