#include "sandbox/bundle.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/json_limits.h"
#include "base/unique_fd.h"

namespace smithers::sandbox {
namespace {

Status Bad(const std::string& where, const std::string& why) {
  return InvalidArgumentError("result bundle: " + (where.empty() ? "" : where + ": ") + why);
}

// The top level a bundle may hold, and whether each is a folder.
const std::map<std::string, bool>& TopLevel() {
  static const auto* const kTop = new std::map<std::string, bool>{
      {"README.md", false}, {"patches", true}, {"artifacts", true}, {"logs", true}};
  return *kTop;
}

// Every entry under the bundle, walked through directory fds without
// following a link: what is there is what is checked.
class Walk {
 public:
  explicit Walk(const BundleLimits& limits) : limits_(limits) {}

  Status Folder(int fd, const std::string& rel, int depth) {
    if (depth > limits_.max_folder_depth) {
      return Bad(rel, "folders nested deeper than " + std::to_string(limits_.max_folder_depth));
    }
    int own = dup(fd);
    DIR* dir = own >= 0 ? fdopendir(own) : nullptr;
    if (dir == nullptr) {
      if (own >= 0) close(own);
      return Bad(rel, std::string("cannot be listed: ") + std::strerror(errno));
    }
    std::vector<std::string> names;
    while (dirent* e = readdir(dir)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      SMITHERS_RETURN_IF_ERROR(Entry(fd, rel, name, depth));
    }
    return Status::Ok();
  }

  int64_t bytes() const { return bytes_; }
  const std::map<std::string, int64_t>& files() const { return files_; }

 private:
  Status Entry(int fd, const std::string& rel, const std::string& name, int depth) {
    std::string path = rel.empty() ? name : rel + "/" + name;
    if (++entries_ > limits_.max_entries) {
      return Bad("", "more than " + std::to_string(limits_.max_entries) + " files and folders");
    }
    if (path.size() > limits_.max_path_length) {
      return Bad(path.substr(0, 64) + "...",
                 "a path longer than " + std::to_string(limits_.max_path_length) + " bytes");
    }
    struct stat st {};
    if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Bad(path, std::string("cannot be read: ") + std::strerror(errno));
    }
    if (depth == 0) {
      auto top = TopLevel().find(name);
      if (top == TopLevel().end()) {
        return Bad(path, "not part of a bundle (README.md, patches/, artifacts/, logs/)");
      }
      if (top->second != S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
        return Bad(path, top->second ? "must be a folder" : "must be a file");
      }
    }
    if (S_ISLNK(st.st_mode)) return Bad(path, "a symlink (a bundle holds no links)");
    if (S_ISDIR(st.st_mode)) {
      if (rel == "patches") return Bad(path, "a folder in patches/ (patches/ is flat)");
      base::UniqueFd child(
          openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (child.get() < 0)
        return Bad(path, std::string("cannot be opened: ") + std::strerror(errno));
      return Folder(child.get(), path, depth + 1);
    }
    if (!S_ISREG(st.st_mode)) return Bad(path, "a device, fifo or socket (only files and folders)");
    if (st.st_nlink > 1) return Bad(path, "a hard link (a bundle holds no links)");
    bytes_ += st.st_size;
    if (bytes_ > limits_.max_bundle_bytes) {
      return Bad("", "larger than " + std::to_string(limits_.max_bundle_bytes) + " bytes");
    }
    if (rel == "patches" && ++patch_files_ > limits_.max_patches) {
      return Bad("patches", "more than " + std::to_string(limits_.max_patches) + " files");
    }
    files_[path] = st.st_size;
    return Status::Ok();
  }

  const BundleLimits& limits_;
  int entries_ = 0;
  int patch_files_ = 0;
  int64_t bytes_ = 0;
  std::map<std::string, int64_t> files_;  // bundle-relative path -> size
};

// The manifest's text, read through the bundle's fd without following a
// link, and only when it is a single-linked file within the limit.
Result<std::string> ReadManifest(int root, const BundleLimits& limits) {
  base::UniqueFd fd(openat(root, "README.md", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return NotFoundError("result bundle: no README.md (the manifest)");
    return Bad("README.md", std::string("cannot be opened: ") + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    return Bad("README.md", "not a plain file");
  }
  if (st.st_size > limits.max_manifest_bytes) {
    return Bad("README.md", "larger than " + std::to_string(limits.max_manifest_bytes) + " bytes");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = read(fd.get(), text.data() + got, text.size() - got);
    if (n <= 0) return Bad("README.md", "cannot be read");
    got += static_cast<size_t>(n);
  }
  return text;
}

Status CheckOutput(const Json& v, const std::string& at, int depth, const BundleLimits& limits) {
  if (depth > limits.max_output_depth) {
    return Bad("README.md", at + " nests deeper than " + std::to_string(limits.max_output_depth));
  }
  if (v.is_string() && v.get_ref<const std::string&>().size() > limits.max_output_string) {
    return Bad("README.md", at + " is a string longer than " +
                                std::to_string(limits.max_output_string) + " bytes");
  }
  if (v.is_array()) {
    if (v.size() > limits.max_output_array) {
      return Bad("README.md", at + " is an array of more than " +
                                  std::to_string(limits.max_output_array) + " items");
    }
    for (size_t i = 0; i < v.size(); ++i) {
      SMITHERS_RETURN_IF_ERROR(
          CheckOutput(v[i], at + "[" + std::to_string(i) + "]", depth + 1, limits));
    }
  }
  if (v.is_object()) {
    for (const auto& [k, item] : v.items()) {
      if (k.size() > limits.max_output_string) return Bad("README.md", at + " has a key too long");
      SMITHERS_RETURN_IF_ERROR(CheckOutput(item, at + "." + k, depth + 1, limits));
    }
  }
  return Status::Ok();
}

Result<std::vector<BundlePatch>> ReadPatches(const Json& list,
                                             const std::map<std::string, int64_t>& files,
                                             const BundleLimits& limits) {
  if (!list.is_array()) return Bad("README.md", "\"patches\" must be a list");
  if (list.size() > static_cast<size_t>(limits.max_patches)) {
    return Bad("README.md", "more than " + std::to_string(limits.max_patches) + " patches");
  }
  std::vector<BundlePatch> out;
  std::set<std::string> paths;
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& p = list[i];
    std::string at = "patches[" + std::to_string(i) + "]";
    if (!p.is_object()) return Bad("README.md", at + " must be an object");
    for (const auto& [k, v] : p.items()) {
      if ((k != "path" && k != "operation" && k != "file") || !v.is_string()) {
        return Bad("README.md", at + "." + k + ": only path, operation and file, as text");
      }
    }
    BundlePatch patch{.path = p.value("path", ""),
                      .operation = p.value("operation", ""),
                      .file = p.value("file", "")};
    if (Status s = CheckBundlePath(patch.path, limits.max_path_length); !s.ok()) {
      return Bad("README.md", at + ".path: " + s.message());
    }
    if (!paths.insert(patch.path).second) {
      return Bad("README.md", at + ".path: \"" + patch.path + "\" is patched twice");
    }
    if (patch.operation == "delete") {
      if (!patch.file.empty()) return Bad("README.md", at + ": a delete has no file");
    } else if (patch.operation == "add" || patch.operation == "modify") {
      const std::string prefix = "patches/";
      if (patch.file.rfind(prefix, 0) != 0 ||
          patch.file.find('/', prefix.size()) != std::string::npos ||
          !CheckBundlePath(patch.file, limits.max_path_length).ok() ||
          files.count(patch.file) == 0) {
        return Bad("README.md", at + ".file: \"" + patch.file +
                                    "\" is not a file of the bundle's patches/ folder");
      }
    } else {
      return Bad("README.md", at + ".operation must be add, modify or delete");
    }
    out.push_back(std::move(patch));
  }
  return out;
}

}  // namespace

Status CheckBundlePath(const std::string& path, size_t max_length) {
  if (path.empty()) return InvalidArgumentError("an empty path");
  if (path.size() > max_length) {
    return InvalidArgumentError("a path longer than " + std::to_string(max_length) + " bytes");
  }
  if (path.front() == '/') return InvalidArgumentError("\"" + path + "\" is absolute");
  if (path.find('\0') != std::string::npos || path.find('\\') != std::string::npos) {
    return InvalidArgumentError("a path with a NUL or a backslash");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return InvalidArgumentError("\"" + path + "\" has an empty, \".\" or \"..\" part");
    }
    start = end + 1;
  }
  return Status::Ok();
}

Result<ResultBundle> ReadResultBundle(const std::string& dir, const BundleLimits& limits) {
  base::UniqueFd root(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (root.get() < 0) {
    if (errno == ENOENT) return NotFoundError("result bundle: no folder " + dir);
    return Bad(dir,
               std::string("cannot be opened (a symlink is refused): ") + std::strerror(errno));
  }
  Walk walk(limits);
  SMITHERS_RETURN_IF_ERROR(walk.Folder(root.get(), "", 0));
  SMITHERS_ASSIGN_OR_RETURN(std::string text, ReadManifest(root.get(), limits));
  if (!base::CheckJsonDepth(text, limits.max_output_depth + 4).ok()) {
    return Bad("README.md", "nests deeper than a manifest may");
  }
  Json m = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || !m.is_object()) return Bad("README.md", "not a JSON object");
  for (const auto& [k, v] : m.items()) {
    if (k != "status" && k != "outputs" && k != "runId" && k != "patches" && k != "error") {
      return Bad("README.md",
                 "unknown field \"" + k + "\" (status, outputs, runId, error, patches)");
    }
  }
  ResultBundle b;
  b.bytes = walk.bytes();
  b.status = m.value("status", "");
  if (b.status != "finished" && b.status != "failed" && b.status != "cancelled") {
    return Bad("README.md", "\"status\" must be finished, failed or cancelled");
  }
  if (m.contains("error")) {
    if (!m["error"].is_string() ||
        m["error"].get_ref<const std::string&>().size() > limits.max_output_string) {
      return Bad("README.md", "error must be text of at most " +
                                  std::to_string(limits.max_output_string) + " bytes");
    }
    b.error = m["error"].get<std::string>();
  }
  if (m.contains("runId")) {
    if (!m["runId"].is_string() ||
        m["runId"].get_ref<const std::string&>().size() > limits.max_run_id_length) {
      return Bad("README.md", "\"runId\" must be text of at most " +
                                  std::to_string(limits.max_run_id_length) + " bytes");
    }
    b.run_id = m["runId"].get<std::string>();
  }
  if (m.contains("outputs")) {
    if (!m["outputs"].is_object()) return Bad("README.md", "\"outputs\" must be an object");
    SMITHERS_RETURN_IF_ERROR(CheckOutput(m["outputs"], "outputs", 1, limits));
    b.outputs = m["outputs"];
  }
  if (m.contains("patches")) {
    SMITHERS_ASSIGN_OR_RETURN(b.patches, ReadPatches(m["patches"], walk.files(), limits));
  }
  for (const auto& [path, size] : walk.files()) {
    if (path.rfind("artifacts/", 0) == 0) b.artifacts.push_back(path);
  }
  return b;
}

}  // namespace smithers::sandbox
