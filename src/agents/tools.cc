// The built-in tools. Every path goes through Confine(): resolved against the
// root with every symlink followed, it must stay under the root, and must not
// be the engine's state (the database, .smithers/).
#include "agents/tools.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "base/paths.h"
#include "base/secrets.h"
#include "base/subprocess.h"
#include "sandbox/sandbox.h"

namespace smithers::agents {
namespace fs = std::filesystem;
namespace {

ToolResult Err(std::string message) { return {.ok = false, .output = std::move(message)}; }

std::string Bound(std::string s, size_t max) {
  if (s.size() <= max) return s;
  s.resize(max);
  return s + "\n[output truncated at " + std::to_string(max) + " bytes]";
}

// The engine's state under the root, which no tool may see: `.smithers/`,
// every hidden path (the database) with its -wal/-shm/-journal siblings, both
// as written and resolved, and the files' identities (a hard link or a bind
// mount of the database is the database).
struct HiddenSet {
  std::vector<fs::path> paths;
  std::set<std::pair<dev_t, ino_t>> ids;

  // `real` (a resolved path) is, or is inside, a hidden path, or is a hidden file.
  bool Covers(const fs::path& real) const {
    for (const fs::path& h : paths) {
      if (base::PathWithin(h, real)) return true;
    }
    struct stat st;
    return !ids.empty() && ::stat(real.c_str(), &st) == 0 && ids.count({st.st_dev, st.st_ino}) > 0;
  }
};

HiddenSet Hidden(const ToolContext& c, const fs::path& real_root) {
  HiddenSet out;
  std::error_code ec;
  std::set<fs::path> paths = {real_root / ".smithers"};
  for (const std::string& h : c.hidden_paths) {
    if (h.empty()) continue;
    fs::path abs = fs::absolute(h, ec).lexically_normal();
    if (ec) continue;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      fs::path written = abs.string() + suffix;
      paths.insert(written);
      fs::path real = fs::weakly_canonical(written, ec);
      if (!ec) paths.insert(real);
    }
  }
  for (const fs::path& p : paths) {
    // The root itself (or a folder holding it) would hide everything: that is
    // a mistake in the caller, and the sandbox ignores it the same way.
    if (p.empty() || base::PathWithin(p, real_root)) continue;
    out.paths.push_back(p);
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) out.ids.insert({st.st_dev, st.st_ino});
  }
  return out;
}

std::string HiddenError(const std::string& text) {
  return "\"" + text + "\": the path is the engine's state and is not visible to tools";
}

// The real path of `arg` if it stays under the root and is not the engine's
// state, following symlinks in every existing component; what does not exist
// yet is appended as written.
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
  if (!base::PathWithin(real_root, real)) {
    return InvalidArgumentError("\"" + text + "\" is outside the agent's root folder" +
                                (fs::is_symlink(p, ec) ? " (through a symlink)" : ""));
  }
  if (Hidden(c, real_root).Covers(real)) return InvalidArgumentError(HiddenError(text));
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
  HiddenSet hidden = Hidden(c, real_root);
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
      // The engine's state is skipped without a word, like .git.
      if (hidden.Covers(it->path()) || (it->is_directory(ec) && it->path().filename() == ".git")) {
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

// ---- bash: always inside bubblewrap, unless the agent sets unisolatedTools ----

constexpr char kSandboxHint[] =
    "\nThe bash tool runs only inside its sandbox: install bubblewrap (scripts/install-deps) "
    "where user namespaces are allowed, or set unisolatedTools = true on the agent to run its "
    "tools without isolation.";

ToolResult NotRun(std::string message) {
  return {.ok = false, .output = std::move(message), .not_run = true};
}

// `name` itself when it holds a '/', else the first executable `name` on PATH.
std::string FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string p = (dir.empty() ? "." : dir) + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string Nonce() {
  std::random_device rd;
  char buf[64];
  std::snprintf(buf, sizeof buf, "smithers-sandbox-%08x%08x%08x", rd(), rd(), rd());
  return buf;
}

// bubblewrap's argv for `command` (sandbox/bubblewrap.cc says what it
// confines). The shell first prints `nonce`, so the caller can tell a
// command that ran from a sandbox that never started.
Result<std::vector<std::string>> SandboxArgv(const ToolContext& c, const std::string& bwrap,
                                             const std::string& nonce, const std::string& command) {
  return sandbox::ConfinedArgv(
      {.runtime = "bubblewrap",
       .allow_network = c.allow_network,
       .workspace = c.root_dir,
       .hidden_paths = c.hidden_paths,
       .program = bwrap},
      {"/bin/sh", "-c", "printf '%s\\n' \"$1\" && exec /bin/sh -c \"$2\"", "sh", nonce, command});
}

ToolResult Bash(const ToolContext& c, const Json& a) {
  std::string command = Str(a, "command");
  if (command.empty()) return Err("\"command\" must be a non-empty string");
  std::vector<std::string> argv;
  std::string nonce;  // empty: unisolated
  if (c.root_dir.empty()) return Err("the root folder does not exist");
  if (c.unisolated) {
    argv = {"/bin/sh", "-c", command};
  } else {
    std::error_code ec;
    if (!fs::is_directory(c.root_dir, ec)) return Err("the root folder does not exist");
    std::string bwrap = FindExecutable(c.bwrap);
    if (bwrap.empty()) {
      return NotRun("bash: bubblewrap (\"" + c.bwrap + "\") was not found" +
                    (c.bwrap.find('/') == std::string::npos ? " on PATH" : "") +
                    ", so the command was not run." + kSandboxHint);
    }
    nonce = Nonce();
    Result<std::vector<std::string>> confined = SandboxArgv(c, bwrap, nonce, command);
    if (!confined.ok()) return NotRun("bash: " + confined.status().message());
    argv = std::move(confined).value();
  }
  // Only the allow-list of the engine's environment (base/secrets.h): no key,
  // no token reaches the command, sandboxed or not.
  Result<std::vector<std::string>> env = base::BuildChildEnvironment();
  if (!env.ok()) return Err(env.status().message());
  base::ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.env = std::move(env).value();
  spec.cwd = c.root_dir;
  spec.stderr_mode = base::ProcessSpec::Output::kToStdout;  // one stream, as a terminal shows it
  spec.max_stdout_bytes = c.max_output_bytes * 2;
  Clock& clock = c.clock != nullptr ? *c.clock : SystemClock();
  spec.deadline_ms = clock.MonotonicMs() + c.timeout_ms;
  spec.kill_grace_ms = 1000;
  // What the command started in the background may outlive it, as in a shell.
  spec.kill_group_on_exit = false;
  Result<base::ProcessResult> proc = base::RunProcess(spec, nullptr, nullptr, clock);
  if (!proc.ok()) return Err(proc.status().message());
  std::string output = std::move(proc->out);
  bool timed_out = proc->timed_out;
  int code = proc->exit_code;
  if (!nonce.empty()) {
    // The sandbox prints the nonce before the command runs: without it,
    // bubblewrap failed (its message is the output) and nothing ran.
    size_t at = output.find(nonce + "\n");
    if (at == std::string::npos) {
      if (timed_out) return Err("timed out after " + std::to_string(c.timeout_ms) + " ms");
      while (!output.empty() && std::isspace(static_cast<unsigned char>(output.back()))) {
        output.pop_back();
      }
      return NotRun("bash: the sandbox (bubblewrap) could not start, so the command was not run: " +
                    Bound(output.empty() ? "exit code " + std::to_string(code) : output, 2000) +
                    kSandboxHint);
    }
    output.erase(0, at + nonce.size() + 1);  // and whatever bubblewrap said before
  }
  if (timed_out) return Err("timed out after " + std::to_string(c.timeout_ms) + " ms");
  return {.ok = code == 0,
          .output = "exit code " + std::to_string(code) + "\n" + Bound(output, c.max_output_bytes)};
}

Json Schema(std::initializer_list<std::pair<const char*, const char*>> props,
            std::initializer_list<const char*> required) {
  Json p = Json::object();
  for (const auto& [name, type] : props) p[name] = {{"type", type}};
  Json r = Json::array();
  for (const char* x : required) r.push_back(x);
  return {{"type", "object"}, {"properties", p}, {"required", r}};
}

// `s` with every invalid UTF-8 sequence replaced by U+FFFD: a result goes to
// the model as a JSON string, and a binary file (or a cut in the middle of a
// character) must not make that request throw.
std::string ValidUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (b(i + k) & 0xC0) == 0x80;
    if (ok && len > 1) {  // no overlong forms, surrogates or code points past U+10FFFF
      uint32_t cp = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (b(i + k) & 0x3F);
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
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
  ToolResult r;
  try {
    if (name == "read") {
      r = Read(context, arguments);
    } else if (name == "write") {
      r = Write(context, arguments);
    } else if (name == "edit") {
      r = Edit(context, arguments);
    } else if (name == "grep") {
      r = Grep(context, arguments);
    } else if (name == "bash") {
      r = Bash(context, arguments);
    } else {
      r = Err("unknown tool \"" + name + "\"");
    }
  } catch (const std::exception& e) {
    r = Err(std::string(name) + " failed: " + e.what());
  }
  r.output = ValidUtf8(r.output);
  return r;
}

Status SandboxStatus(const std::string& bwrap) {
  static std::mutex mu;
  static std::map<std::string, Status> probed;
  std::lock_guard<std::mutex> lock(mu);
  auto it = probed.find(bwrap);
  if (it != probed.end()) return it->second;
  std::error_code ec;
  fs::path dir = fs::temp_directory_path(ec);
  ToolContext c{.root_dir = ec ? "/tmp" : dir.string(), .bwrap = bwrap, .timeout_ms = 10000};
  ToolResult r = Bash(c, {{"command", "true"}});
  Status s = r.ok ? Status() : FailedPreconditionError(r.output);
  probed.emplace(bwrap, s);
  return s;
}

}  // namespace smithers::agents
