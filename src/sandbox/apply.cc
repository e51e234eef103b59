#include "sandbox/apply.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "base/unique_fd.h"
#include "sandbox/bundle.h"
#include "sandbox/fd_io.h"
#include "smithers/json.h"

namespace smithers::sandbox {
namespace fs = std::filesystem;
namespace {

constexpr char kJournal[] = "journal.json";
constexpr char kStaged[] = "staged";
constexpr char kTemp[] = ".smithers-apply.tmp";

Status Errno(const std::string& what) { return InternalError(what + ": " + std::strerror(errno)); }

// The folder holding `rel` inside the workspace, opened one part at a time
// without following a link (made when `create`), and the file's name.
Result<std::pair<base::UniqueFd, std::string>> OpenParent(const std::string& workspace,
                                                          const std::string& rel, bool create) {
  SMITHERS_RETURN_IF_ERROR(CheckBundlePath(rel, 4096));
  base::UniqueFd dir(open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir.get() < 0) return Errno("cannot open the workspace " + workspace);
  size_t start = 0;
  while (true) {
    size_t slash = rel.find('/', start);
    if (slash == std::string::npos) return std::make_pair(std::move(dir), rel.substr(start));
    std::string part = rel.substr(start, slash - start);
    int fd = openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
        return Errno("cannot make the folder of " + rel);
      }
      fd = openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return InvalidArgumentError("\"" + rel + "\" goes through a symlink or a file (\"" +
                                    rel.substr(0, slash) + "\")");
      }
      if (errno == ENOENT) return NotFoundError(rel);
      return Errno("cannot open the folder of " + rel);
    }
    dir = base::UniqueFd(fd);
    start = slash + 1;
  }
}

// What is at a change's path now: absent, or a plain file with its hash
// and mode; a symlink or anything else is an error.
struct Current {
  bool exists = false;
  std::string sha256;
  mode_t mode = 0644;
};

Result<Current> Inspect(const std::string& workspace, const std::string& rel) {
  Result<std::pair<base::UniqueFd, std::string>> parent =
      OpenParent(workspace, rel, /*create=*/false);
  if (!parent.ok()) {
    if (parent.status().code() == StatusCode::kNotFound) return Current{};
    return parent.status();
  }
  const auto& [dir, name] = *parent;
  struct stat st {};
  if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Current{};
    return Errno("cannot read " + rel);
  }
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgumentError("\"" + rel + "\" is a symlink or not a plain file");
  }
  base::UniqueFd fd(openat(dir.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) return Errno("cannot open " + rel);
  SMITHERS_ASSIGN_OR_RETURN(std::string text, ReadAll(fd.get(), rel));
  return Current{.exists = true, .sha256 = base::Sha256Hex(text), .mode = st.st_mode & 07777};
}

Status SyncDir(const std::string& dir) {
  base::UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || fsync(fd.get()) != 0) return Errno("cannot sync " + dir);
  return Status::Ok();
}

// Puts one journalled change in place: the staged bytes copied beside the
// target and renamed over it, or the target removed. Safe to repeat.
Status RollForwardOne(const std::string& workspace, const std::string& journal_dir, const Json& c) {
  std::string rel = c.value("path", "");
  std::string op = c.value("operation", "");
  SMITHERS_ASSIGN_OR_RETURN(auto parent, OpenParent(workspace, rel, /*create=*/op != "delete"));
  const auto& [dir, name] = parent;
  if (op == "delete") {
    struct stat st {};
    if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
      return InvalidArgumentError("\"" + rel + "\" is no longer a plain file");
    }
    if (unlinkat(dir.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      return Errno("cannot remove " + rel);
    }
  } else {
    std::string staged = journal_dir + "/" + c.value("staged", "");
    base::UniqueFd in(open(staged.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (in.get() < 0) return Errno("cannot open the staged " + staged);
    SMITHERS_ASSIGN_OR_RETURN(std::string content, ReadAll(in.get(), staged));
    unlinkat(dir.get(), kTemp, 0);
    auto mode = static_cast<mode_t>(c.value("mode", 0644));
    base::UniqueFd out(
        openat(dir.get(), kTemp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (out.get() < 0) return Errno("cannot write beside " + rel);
    SMITHERS_RETURN_IF_ERROR(WriteAll(out.get(), content, rel));
    if (fchmod(out.get(), mode) != 0) return Errno("cannot set the mode of " + rel);
    struct stat st {};
    if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
      return InvalidArgumentError("\"" + rel + "\" is now a folder");
    }
    if (renameat(dir.get(), kTemp, dir.get(), name.c_str()) != 0) {
      return Errno("cannot put " + rel + " in place");
    }
  }
  if (fsync(dir.get()) != 0) return Errno("cannot sync the folder of " + rel);
  return Status::Ok();
}

Status RollForward(const std::string& workspace, const std::string& journal_dir, const Json& j,
                   const std::function<void(int)>& after_step, int& step) {
  for (const Json& c : j.value("changes", Json::array())) {
    SMITHERS_RETURN_IF_ERROR(RollForwardOne(workspace, journal_dir, c));
    if (after_step) after_step(step++);
  }
  if (unlink((journal_dir + "/" + kJournal).c_str()) != 0 && errno != ENOENT) {
    return Errno("cannot remove the journal");
  }
  SMITHERS_RETURN_IF_ERROR(SyncDir(journal_dir));
  if (after_step) after_step(step++);
  std::error_code ec;
  fs::remove_all(journal_dir + "/" + kStaged, ec);
  return Status::Ok();
}

}  // namespace

Status WriteAll(int fd, const std::string& data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("cannot write " + what);
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return Errno("cannot sync " + what);
  return Status::Ok();
}

Result<std::string> ReadAll(int fd, const std::string& what) {
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot read " + what);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

Result<bool> AlreadyApplied(const std::string& workspace, const std::vector<FileChange>& changes) {
  for (const FileChange& c : changes) {
    if (Status s = CheckBundlePath(c.path, 4096); !s.ok()) {
      return InvalidArgumentError("change \"" + c.path + "\": " + s.message());
    }
    SMITHERS_ASSIGN_OR_RETURN(Current now, Inspect(workspace, c.path));
    bool done = c.operation == "delete" ? !now.exists
                                        : now.exists && now.sha256 == base::Sha256Hex(c.content);
    if (!done) return false;
  }
  return true;
}

Status ApplyChanges(const std::string& workspace, const std::vector<FileChange>& changes,
                    const std::string& journal_dir, const std::function<void(int)>& after_step) {
  if (!fs::path(workspace).is_absolute() || !fs::path(journal_dir).is_absolute()) {
    return InvalidArgumentError("the workspace and the journal folder must be absolute paths");
  }
  // Every check before anything is written.
  std::vector<std::string> conflicts;
  std::vector<mode_t> modes;
  std::set<std::string> seen;
  for (const FileChange& c : changes) {
    if (Status s = CheckBundlePath(c.path, 4096); !s.ok()) {
      return InvalidArgumentError("change \"" + c.path + "\": " + s.message());
    }
    if (!seen.insert(c.path).second) {
      return InvalidArgumentError("\"" + c.path + "\" is changed twice");
    }
    if (c.operation != "add" && c.operation != "modify" && c.operation != "delete") {
      return InvalidArgumentError("change \"" + c.path +
                                  "\": operation must be add, modify or delete");
    }
    SMITHERS_ASSIGN_OR_RETURN(Current now, Inspect(workspace, c.path));
    if (c.operation == "add" && now.exists) {
      conflicts.push_back(c.path + " (added, but it exists)");
    } else if (c.operation != "add" && !now.exists) {
      conflicts.push_back(c.path + " (gone)");
    } else if (c.operation != "add" && now.sha256 != c.base_sha256) {
      conflicts.push_back(c.path + " (changed since it was shipped)");
    }
    modes.push_back(now.mode);
  }
  if (!conflicts.empty()) {
    std::string list;
    for (const std::string& c : conflicts) list += (list.empty() ? "" : ", ") + c;
    return FailedPreconditionError("the workspace no longer matches what the sandbox was given: " +
                                   list + "; nothing was changed");
  }
  std::error_code ec;
  fs::create_directories(journal_dir + "/" + kStaged, ec);
  if (ec) return InternalError("cannot make " + journal_dir + ": " + ec.message());
  if (fs::exists(journal_dir + "/" + kJournal, ec)) {
    return FailedPreconditionError("an earlier apply in " + journal_dir +
                                   " did not finish; recover it first");
  }
  int step = 0;
  Json journal = {{"workspace", workspace}, {"changes", Json::array()}};
  for (size_t i = 0; i < changes.size(); ++i) {
    const FileChange& c = changes[i];
    Json entry = {{"path", c.path}, {"operation", c.operation}};
    if (c.operation != "delete") {
      std::string staged = std::string(kStaged) + "/" + std::to_string(i);
      base::UniqueFd fd(open((journal_dir + "/" + staged).c_str(),
                             O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (fd.get() < 0) return Errno("cannot stage " + c.path);
      SMITHERS_RETURN_IF_ERROR(WriteAll(fd.get(), c.content, "the staged " + c.path));
      entry["staged"] = staged;
      entry["mode"] = static_cast<int>(modes[i]);
      if (after_step) after_step(step++);
    }
    journal["changes"].push_back(std::move(entry));
  }
  SMITHERS_RETURN_IF_ERROR(SyncDir(journal_dir + "/" + kStaged));
  // The commit: the journal, complete, renamed into place.
  std::string tmp = journal_dir + "/" + kJournal + ".tmp";
  {
    base::UniqueFd fd(
        open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0) return Errno("cannot write the journal");
    SMITHERS_RETURN_IF_ERROR(WriteAll(fd.get(), journal.dump(), "the journal"));
  }
  if (rename(tmp.c_str(), (journal_dir + "/" + kJournal).c_str()) != 0) {
    return Errno("cannot commit the journal");
  }
  SMITHERS_RETURN_IF_ERROR(SyncDir(journal_dir));
  if (after_step) after_step(step++);
  return RollForward(workspace, journal_dir, journal, after_step, step);
}

Status RecoverApply(const std::string& workspace, const std::string& journal_dir) {
  std::string path = journal_dir + "/" + kJournal;
  base::UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  std::error_code ec;
  if (fd.get() < 0) {
    if (errno != ENOENT) return Errno("cannot open " + path);
    fs::remove_all(journal_dir + "/" + kStaged, ec);  // staged, never committed
    fs::remove(path + ".tmp", ec);
    return Status::Ok();
  }
  SMITHERS_ASSIGN_OR_RETURN(std::string text, ReadAll(fd.get(), path));
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || j.value("workspace", "") != workspace) {
    return DataLossError("the journal " + path + " is not an apply of " + workspace);
  }
  int step = 0;
  return RollForward(workspace, journal_dir, j, nullptr, step);
}

}  // namespace smithers::sandbox
