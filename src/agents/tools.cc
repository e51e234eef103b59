// The built-in tools. Every path goes through Confine(): resolved against the
// root with every symlink followed, it must stay under the root.
#include "agents/tools.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace smithers::agents {
namespace fs = std::filesystem;
namespace {

ToolResult Err(std::string message) { return {.ok = false, .output = std::move(message)}; }

std::string Bound(std::string s, size_t max) {
  if (s.size() <= max) return s;
  s.resize(max);
  return s + "\n[output truncated at " + std::to_string(max) + " bytes]";
}

bool Under(const fs::path& root, const fs::path& p) {
  auto r = root.begin(), x = p.begin();
  for (; r != root.end(); ++r, ++x) {
    if (r->empty()) continue;  // a trailing separator
    if (x == p.end() || *r != *x) return false;
  }
  return true;
}

// The real path of `arg` if it stays under the root, following symlinks in
// every existing component; what does not exist yet is appended as written.
Result<fs::path> Confine(const ToolContext& c, const Json& arg) {
  if (!arg.is_string() || arg.get<std::string>().empty()) {
    return InvalidArgumentError("\"path\" must be a non-empty string");
  }
  std::string text = arg.get<std::string>();
  fs::path root = fs::path(c.root_dir);
  fs::path p = fs::path(text).is_absolute() ? fs::path(text) : root / text;
  for (const auto& part : fs::path(text)) {
    if (part == "..") return InvalidArgumentError("\"" + text + "\": \"..\" is not allowed");
  }
  std::error_code ec;
  fs::path real = fs::weakly_canonical(p, ec);
  if (ec) return InvalidArgumentError("\"" + text + "\": " + ec.message());
  fs::path real_root = fs::weakly_canonical(root, ec);
  if (ec) return InvalidArgumentError("the tool root does not exist");
  if (!Under(real_root, real)) {
    return InvalidArgumentError("\"" + text + "\" is outside the agent's root folder" +
                                (fs::is_symlink(p, ec) ? " (through a symlink)" : ""));
  }
  return real;
}

std::string Str(const Json& args, const char* key) {
  return args.contains(key) && args[key].is_string() ? args[key].get<std::string>() : "";
}

Result<std::string> ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + p.filename().string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ToolResult Read(const ToolContext& c, const Json& a) {
  auto p = Confine(c, a.value("path", Json()));
  if (!p.ok()) return Err(p.status().message());
  auto text = ReadFile(*p);
  if (!text.ok()) return Err(text.status().message());
  int64_t offset = a.value("offset", int64_t{1});
  int64_t limit = a.value("limit", int64_t{2000});
  std::istringstream in(*text);
  std::string line, out;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (n < offset) continue;
    if (n >= offset + limit) break;
    out += std::to_string(n) + "\t" + line + "\n";
  }
  return {.ok = true, .output = Bound(out, c.max_output_bytes)};
}

ToolResult Write(const ToolContext& c, const Json& a) {
  auto p = Confine(c, a.value("path", Json()));
  if (!p.ok()) return Err(p.status().message());
  if (!a.contains("content") || !a["content"].is_string())
    return Err("\"content\" must be a string");
  std::error_code ec;
  fs::create_directories(p->parent_path(), ec);
  std::ofstream out(*p, std::ios::binary | std::ios::trunc);
  if (!out) return Err("cannot write " + a["path"].get<std::string>());
  const std::string& content = a["content"].get_ref<const std::string&>();
  out << content;
  return {.ok = true, .output = "wrote " + std::to_string(content.size()) + " bytes"};
}

ToolResult Edit(const ToolContext& c, const Json& a) {
  auto p = Confine(c, a.value("path", Json()));
  if (!p.ok()) return Err(p.status().message());
  std::string old_s = Str(a, "old_string"), new_s = Str(a, "new_string");
  if (old_s.empty()) return Err("\"old_string\" must be a non-empty string");
  auto text = ReadFile(*p);
  if (!text.ok()) return Err(text.status().message());
  size_t count = 0;
  for (size_t pos = text->find(old_s); pos != std::string::npos;
       pos = text->find(old_s, pos + old_s.size())) {
    ++count;
  }
  bool all = a.value("replace_all", false);
  if (count == 0) return Err("old_string does not occur in the file");
  if (count > 1 && !all) {
    return Err("old_string occurs " + std::to_string(count) +
               " times; make it unique or set replace_all");
  }
  std::string out;
  size_t last = 0;
  for (size_t pos = text->find(old_s); pos != std::string::npos;
       pos = text->find(old_s, pos + old_s.size())) {
    out += text->substr(last, pos - last) + new_s;
    last = pos + old_s.size();
    if (!all) break;
  }
  out += text->substr(last);
  std::ofstream f(*p, std::ios::binary | std::ios::trunc);
  if (!f) return Err("cannot write the file");
  f << out;
  return {.ok = true, .output = "replaced " + std::to_string(all ? count : 1) + " occurrence(s)"};
}

ToolResult Grep(const ToolContext& c, const Json& a) {
  std::string pattern = Str(a, "pattern");
  if (pattern.empty()) return Err("\"pattern\" must be a non-empty string");
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Err(std::string("bad pattern: ") + e.what());
  }
  auto base = Confine(c, a.contains("path") ? a["path"] : Json("."));
  if (!base.ok()) return Err(base.status().message());
  fs::path real_root = fs::weakly_canonical(c.root_dir);
  std::string out;
  std::error_code ec;
  auto scan = [&](const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::string line;
    for (int n = 1; std::getline(in, line) && out.size() <= c.max_output_bytes; ++n) {
      if (line.find('\0') != std::string::npos) return;  // binary
      if (std::regex_search(line, re)) {
        out += fs::relative(file, real_root, ec).string() + ":" + std::to_string(n) + ": " + line +
               "\n";
      }
    }
  };
  if (fs::is_regular_file(*base, ec)) {
    scan(*base);
  } else {
    for (auto it = fs::recursive_directory_iterator(
             *base, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->is_directory(ec) && it->path().filename() == ".git") {
        it.disable_recursion_pending();
        continue;
      }
      // Symlinks are not followed out of the root.
      if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
      scan(it->path());
      if (out.size() > c.max_output_bytes) break;
    }
  }
  return {.ok = true, .output = out.empty() ? "no matches" : Bound(out, c.max_output_bytes)};
}

ToolResult Bash(const ToolContext& c, const Json& a) {
  std::string command = Str(a, "command");
  if (command.empty()) return Err("\"command\" must be a non-empty string");
  std::vector<std::string> argv;
  std::string notice;
  if (!c.allow_network && NetworkIsolationAvailable()) {
    argv = {"bwrap",
            "--unshare-net",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--bind",
            c.root_dir,
            c.root_dir,
            "--chdir",
            c.root_dir,
            "/bin/sh",
            "-c",
            command};
  } else {
    if (!c.allow_network) {
      notice = "[network isolation unavailable (bubblewrap not usable here): ran with network]\n";
    }
    argv = {"/bin/sh", "-c", command};
  }
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Err("pipe failed");
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (auto& s : argv) args.push_back(s.data());
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return Err("fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    if (chdir(c.root_dir.c_str()) != 0) _exit(126);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  std::string output;
  auto start = std::chrono::steady_clock::now();
  bool timed_out = false, open_fd = true;
  int status = 0;
  while (true) {
    pollfd p{out[0], POLLIN, 0};
    if (!open_fd) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } else if (poll(&p, 1, 50) <= 0) {
      p.revents = 0;
    }
    // Only a readable (or closed) pipe is read: a read on a quiet one blocks.
    if (open_fd && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      char buf[8192];
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n > 0 && output.size() < c.max_output_bytes * 2)
        output.append(buf, static_cast<size_t>(n));
      if (n == 0) open_fd = false;
    }
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    if (!timed_out && ms > c.timeout_ms) {
      timed_out = true;
      kill(-pid, SIGTERM);
    }
    if (timed_out && ms > c.timeout_ms + 1000) kill(-pid, SIGKILL);
  }
  close(out[0]);
  if (timed_out) return Err("timed out after " + std::to_string(c.timeout_ms) + " ms");
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {.ok = code == 0,
          .output = notice + "exit code " + std::to_string(code) + "\n" +
                    Bound(output, c.max_output_bytes)};
}

Json Schema(std::initializer_list<std::pair<const char*, const char*>> props,
            std::initializer_list<const char*> required) {
  Json p = Json::object();
  for (const auto& [name, type] : props) p[name] = {{"type", type}};
  Json r = Json::array();
  for (const char* x : required) r.push_back(x);
  return {{"type", "object"}, {"properties", p}, {"required", r}};
}

}  // namespace

Result<std::vector<ToolSpec>> BuiltinToolSpecs(const std::vector<std::string>& names) {
  std::vector<ToolSpec> out;
  for (const std::string& n : names) {
    if (n == "read") {
      out.push_back(
          {n, "Read a text file (with line numbers) under the root folder.",
           Schema({{"path", "string"}, {"offset", "integer"}, {"limit", "integer"}}, {"path"})});
    } else if (n == "write") {
      out.push_back({n, "Create or overwrite a file under the root folder.",
                     Schema({{"path", "string"}, {"content", "string"}}, {"path", "content"})});
    } else if (n == "edit") {
      out.push_back({n, "Replace old_string (which must be unique unless replace_all) in a file.",
                     Schema({{"path", "string"},
                             {"old_string", "string"},
                             {"new_string", "string"},
                             {"replace_all", "boolean"}},
                            {"path", "old_string", "new_string"})});
    } else if (n == "grep") {
      out.push_back({n, "Search files under the root for a regular expression.",
                     Schema({{"pattern", "string"}, {"path", "string"}}, {"pattern"})});
    } else if (n == "bash") {
      out.push_back({n, "Run a shell command in the root folder (no network unless allowed).",
                     Schema({{"command", "string"}}, {"command"})});
    } else {
      return InvalidArgumentError("unknown tool \"" + n +
                                  "\" (built-ins: read, write, edit, grep, bash)");
    }
  }
  return out;
}

ToolResult RunTool(const ToolContext& context, const std::string& name, const Json& arguments) {
  if (!arguments.is_object()) return Err("arguments must be a JSON object");
  try {
    if (name == "read") return Read(context, arguments);
    if (name == "write") return Write(context, arguments);
    if (name == "edit") return Edit(context, arguments);
    if (name == "grep") return Grep(context, arguments);
    if (name == "bash") return Bash(context, arguments);
  } catch (const std::exception& e) {
    return Err(std::string(name) + " failed: " + e.what());
  }
  return Err("unknown tool \"" + name + "\"");
}

bool NetworkIsolationAvailable() {
  static const bool kAvailable = [] {
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) {
        dup2(devnull, STDOUT_FILENO);
        dup2(devnull, STDERR_FILENO);
      }
      execlp("bwrap", "bwrap", "--unshare-net", "--ro-bind", "/", "/", "--dev", "/dev", "true",
             static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }();
  return kAvailable;
}

}  // namespace smithers::agents
