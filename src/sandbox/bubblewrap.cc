// The bubblewrap runtime (Debian's `bubblewrap`, docs/sandbox.md).
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "sandbox/runtimes.h"

namespace smithers::sandbox {
namespace fs = std::filesystem;

// Its own user namespace with uid/gid 65534 and no capabilities (also when
// the engine is root: as root, bwrap makes no user namespace unless told to,
// and keeps every capability), no further user namespaces, its own
// pid/ipc/uts/cgroup (and, unless allow_network, network) namespaces, the
// system folders read-only (with the well-known secrets in /etc masked), a
// fresh /proc, /dev and /tmp, the workspace the only writable bind, the
// engine's state (the database) masked, the rest of the filesystem absent,
// and the process killed with the engine.
std::vector<std::string> BubblewrapArgv(const Confinement& c, const std::string& program,
                                        const std::vector<std::string>& argv) {
  std::vector<std::string> v = {program,
                                "--unshare-user",
                                "--uid",
                                "65534",
                                "--gid",
                                "65534",
                                "--disable-userns",
                                "--cap-drop",
                                "ALL",
                                "--unshare-pid",
                                "--unshare-ipc",
                                "--unshare-uts",
                                "--unshare-cgroup-try",
                                "--die-with-parent",
                                "--new-session"};
  if (!c.allow_network) v.push_back("--unshare-net");
  std::error_code ec;
  for (const char* d : kReadOnlySystemFolders) {
    if (fs::is_symlink(d, ec)) {
      v.insert(v.end(), {"--symlink", fs::read_symlink(d, ec).string(), d});
    } else if (fs::is_directory(d, ec)) {
      v.insert(v.end(), {"--ro-bind", d, d});
    }
  }
  // Readable by their owner, and as root the sandbox's files are root's.
  std::vector<std::string> secret_files = {"/etc/shadow",  "/etc/shadow-",
                                           "/etc/gshadow", "/etc/gshadow-",
                                           "/etc/sudoers", "/etc/security/opasswd"};
  for (const auto& e : fs::directory_iterator("/etc/ssh", ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("ssh_host_", 0) == 0 && name.find(".pub") == std::string::npos) {
      secret_files.push_back(e.path().string());
    }
  }
  for (const std::string& f : secret_files) {
    if (fs::is_regular_file(f, ec)) v.insert(v.end(), {"--ro-bind", "/dev/null", f});
  }
  for (const char* d : {"/etc/ssl/private", "/etc/sudoers.d"}) {
    if (fs::is_directory(d, ec) && !fs::is_symlink(d, ec)) {
      v.insert(v.end(), {"--tmpfs", d, "--remount-ro", d});
    }
  }
  if (c.allow_network) {  // /etc/resolv.conf may point here
    v.insert(v.end(), {"--ro-bind-try", "/run/systemd/resolve", "/run/systemd/resolve"});
  }
  v.insert(v.end(), {"--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--bind", c.workspace,
                     c.workspace});
  for (const auto& [host, inside] : c.binds) v.insert(v.end(), {"--bind", host, inside});
  for (const auto& [host, inside] : c.ro_binds) v.insert(v.end(), {"--ro-bind", host, inside});
  Masked masked = MaskedPaths(c);
  for (const std::string& d : masked.dirs) v.insert(v.end(), {"--tmpfs", d, "--remount-ro", d});
  for (const std::string& f : masked.files) v.insert(v.end(), {"--ro-bind", "/dev/null", f});
  v.insert(v.end(), {"--remount-ro", "/", "--chdir", c.workspace, "--"});
  v.insert(v.end(), argv.begin(), argv.end());
  return v;
}

}  // namespace smithers::sandbox
