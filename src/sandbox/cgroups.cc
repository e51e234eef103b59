#include "sandbox/cgroups.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace smithers::sandbox {
namespace fs = std::filesystem;
namespace {

// Where one controller's cgroups go: the engine's own cgroup in the
// hierarchy that holds the controller.
struct Hierarchy {
  std::string dir;  // the engine's cgroup folder
  bool v2 = false;
};

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) out.push_back(part);
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteFile(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return FailedPreconditionError("cannot open " + path + ": " + strerror(errno));
  ssize_t n = write(fd, value.data(), value.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return FailedPreconditionError("cannot write \"" + value + "\" to " + path + ": " +
                                   strerror(err));
  }
  return Status::Ok();
}

// The engine's cgroup path in each hierarchy: "memory" -> "/a/b" (v1, by
// controller) and "" -> the v2 path.
std::vector<std::pair<std::string, std::string>> OwnCgroups() {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(ReadFile("/proc/self/cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {
      out.emplace_back("", path);
      continue;
    }
    for (const std::string& c : Split(controllers, ',')) out.emplace_back(c, path);
  }
  return out;
}

// Where `controller` lives here, or why it cannot be used.
Result<Hierarchy> Find(const std::string& controller) {
  std::string own_v1, own_v2;
  bool has_v1 = false, has_v2 = false;
  for (const auto& [c, path] : OwnCgroups()) {
    if (c == controller) own_v1 = path, has_v1 = true;
    if (c.empty()) own_v2 = path, has_v2 = true;
  }
  std::string v1_mount, v1_root, v2_mount, v2_root;
  std::istringstream in(ReadFile("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(in, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::vector<std::string> pre = Split(line.substr(0, dash), ' ');
    std::vector<std::string> post = Split(line.substr(dash + 3), ' ');
    if (pre.size() < 5 || post.size() < 3) continue;
    if (post[0] == "cgroup") {
      for (const std::string& opt : Split(post[2], ',')) {
        if (opt == controller) v1_mount = pre[4], v1_root = pre[3];
      }
    } else if (post[0] == "cgroup2" && v2_mount.empty()) {
      v2_mount = pre[4], v2_root = pre[3];
    }
  }
  auto under = [](const std::string& mount, const std::string& root, std::string path) {
    if (root != "/" && path.rfind(root, 0) == 0) path = path.substr(root.size());
    return (fs::path(mount) / fs::path(path).relative_path()).lexically_normal().string();
  };
  if (!v1_mount.empty() && has_v1) return Hierarchy{under(v1_mount, v1_root, own_v1), false};
  if (v2_mount.empty() || !has_v2) {
    return FailedPreconditionError("the " + controller +
                                   " cgroup controller is not mounted on this machine");
  }
  std::string dir = under(v2_mount, v2_root, own_v2);
  std::vector<std::string> offered = Split(ReadFile(dir + "/cgroup.controllers"), ' ');
  for (std::string& o : offered) {
    while (!o.empty() && o.back() == '\n') o.pop_back();
  }
  if (std::find(offered.begin(), offered.end(), controller) == offered.end()) {
    return FailedPreconditionError("the " + controller +
                                   " cgroup controller is not available to the engine's cgroup " +
                                   dir + " (cgroup v2; it is bound elsewhere or not delegated)");
  }
  std::string enabled = ReadFile(dir + "/cgroup.subtree_control");
  if ((" " + enabled + " ").find(" " + controller) == std::string::npos) {
    if (Status s = WriteFile(dir + "/cgroup.subtree_control", "+" + controller); !s.ok()) {
      return FailedPreconditionError(
          "the " + controller + " cgroup controller cannot be enabled below the engine's cgroup " +
          dir + " (" + s.message() +
          "); under cgroup v2 the engine must run in a cgroup delegated to it, e.g. a systemd "
          "unit with Delegate=yes");
    }
  }
  return Hierarchy{dir, true};
}

// Removes the cgroups left by engines that died (a SIGKILL skips the
// destructor): "smithers-<pid>-<n>" whose pid is gone. Once per folder.
void SweepStale(const std::string& dir) {
  static std::mutex mu;
  static std::set<std::string> swept;
  std::lock_guard<std::mutex> lock(mu);
  if (!swept.insert(dir).second) return;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (!LeftByAGoneEngine(name, "smithers-")) continue;
    rmdir(e.path().c_str());  // fails harmlessly while something is still inside
  }
}

// SIGKILLs what is in `dir`, then removes it; gives up after about a second
// (a process the kernel is still tearing down keeps it busy until then).
void Remove(const std::string& dir) {
  for (int i = 0; i < 200; ++i) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    std::istringstream procs(ReadFile(dir + "/cgroup.procs"));
    long pid = 0;
    while (procs >> pid) {
      if (pid > 0) kill(static_cast<pid_t>(pid), SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// The value of `key` in a flat-keyed cgroup file ("oom_kill 1\n..."), or -1.
int64_t Counter(const std::string& file, const std::string& key) {
  std::istringstream in(ReadFile(file));
  std::string k;
  int64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return -1;
}

std::string Mib(int64_t bytes) {
  if (bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

bool LeftByAGoneEngine(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return false;
  long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
  return pid > 0 && pid != getpid() && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

Result<std::unique_ptr<Cgroup>> Cgroup::Create(const Limits& limits) {
  static std::atomic<uint64_t> next{0};
  std::unique_ptr<Cgroup> cg(new Cgroup(limits));
  std::string name = "smithers-" + std::to_string(getpid()) + "-" + std::to_string(next++);
  // Makes the controller's cgroup (v2: one folder serves every controller).
  auto make = [&](const std::string& controller, bool& v2) -> Result<std::string> {
    SMITHERS_ASSIGN_OR_RETURN(Hierarchy h, Find(controller));
    v2 = h.v2;
    std::string dir = h.dir + "/" + name;
    for (const std::string& d : cg->dirs_) {
      if (d == dir) return dir;
    }
    SweepStale(h.dir);
    if (mkdir(dir.c_str(), 0700) != 0) {
      return FailedPreconditionError("cannot make the cgroup " + dir + ": " + strerror(errno));
    }
    cg->dirs_.push_back(dir);
    cg->join_files_.push_back(dir + "/cgroup.procs");
    return dir;
  };
  if (limits.memory_bytes > 0) {
    SMITHERS_ASSIGN_OR_RETURN(cg->memory_dir_, make("memory", cg->memory_v2_));
    const std::string& d = cg->memory_dir_;
    std::string bytes = std::to_string(limits.memory_bytes);
    if (cg->memory_v2_) {
      SMITHERS_RETURN_IF_ERROR(WriteFile(d + "/memory.max", bytes));
      if (fs::exists(d + "/memory.swap.max")) {
        SMITHERS_RETURN_IF_ERROR(WriteFile(d + "/memory.swap.max", "0"));
      }
    } else {
      SMITHERS_RETURN_IF_ERROR(WriteFile(d + "/memory.limit_in_bytes", bytes));
      if (fs::exists(d + "/memory.memsw.limit_in_bytes")) {
        SMITHERS_RETURN_IF_ERROR(WriteFile(d + "/memory.memsw.limit_in_bytes", bytes));
      } else {
        SMITHERS_RETURN_IF_ERROR(WriteFile(d + "/memory.swappiness", "0"));
      }
    }
  }
  if (limits.pids > 0) {
    SMITHERS_ASSIGN_OR_RETURN(cg->pids_dir_, make("pids", cg->pids_v2_));
    SMITHERS_RETURN_IF_ERROR(WriteFile(cg->pids_dir_ + "/pids.max", std::to_string(limits.pids)));
  }
  if (limits.cpus > 0) {
    bool v2 = false;
    SMITHERS_ASSIGN_OR_RETURN(cg->cpu_dir_, make("cpu", v2));
    const std::string& d = cg->cpu_dir_;
    constexpr int64_t kPeriodUs = 100000;
    auto quota = std::max<int64_t>(1000, std::llround(limits.cpus * kPeriodUs));
    if (v2) {
      SMITHERS_RETURN_IF_ERROR(
          WriteFile(d + "/cpu.max", std::to_string(quota) + " " + std::to_string(kPeriodUs)));
    } else {
      SMITHERS_RETURN_IF_ERROR(WriteFile(d + "/cpu.cfs_period_us", std::to_string(kPeriodUs)));
      SMITHERS_RETURN_IF_ERROR(WriteFile(d + "/cpu.cfs_quota_us", std::to_string(quota)));
    }
  }
  return cg;
}

Cgroup::~Cgroup() {
  for (const std::string& d : dirs_) Remove(d);
}

std::string Cgroup::LimitReached() const {
  std::string why;
  if (!memory_dir_.empty()) {
    int64_t kills = memory_v2_ ? Counter(memory_dir_ + "/memory.events", "oom_kill")
                               : Counter(memory_dir_ + "/memory.oom_control", "oom_kill");
    if (kills > 0) {
      why = "the sandbox's memory limit of " + Mib(limits_.memory_bytes) +
            " was reached: the kernel killed its process";
    }
  }
  if (!pids_dir_.empty()) {
    int64_t refused = Counter(pids_dir_ + "/pids.events", "max");
    if (refused > 0) {
      why += std::string(why.empty() ? "" : "; ") + "the sandbox's process limit of " +
             std::to_string(limits_.pids) + " was reached: " + std::to_string(refused) + " fork" +
             (refused == 1 ? " was" : "s were") + " refused";
    }
  }
  return why;
}

int64_t Cgroup::CpuThrottled() const {
  if (cpu_dir_.empty()) return 0;
  return std::max<int64_t>(0, Counter(cpu_dir_ + "/cpu.stat", "nr_throttled"));
}

std::vector<std::string> DescribeControllers() {
  std::vector<std::string> out;
  for (const char* c : {"memory", "pids", "cpu"}) {
    Result<Hierarchy> h = Find(c);
    out.push_back(std::string(c) + ": " +
                  (h.ok() ? std::string(h->v2 ? "cgroup v2" : "cgroup v1") + " below " + h->dir
                          : h.status().message()));
  }
  return out;
}

}  // namespace smithers::sandbox
