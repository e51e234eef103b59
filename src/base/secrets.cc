#include "base/secrets.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "base/redact.h"

extern char** environ;

namespace smithers::base {
namespace {

// Overwrites the value of NAME in the environment block before removing it:
// the strings the process started with stay readable in
// /proc/<pid>/environ after unsetenv, which only drops the pointer.
void ScrubAndUnset(const std::string& name) {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, name.c_str(), name.size()) == 0 && (*e)[name.size()] == '=') {
      char* value = *e + name.size() + 1;
      std::memset(value, 'x', std::strlen(value));
    }
  }
  unsetenv(name.c_str());
}

bool Matches(const std::string& pattern, const std::string& ref) {
  return fnmatch(pattern.c_str(), ref.c_str(), 0) == 0;
}

// A path that names itself: absolute, no "." or ".." component, no "//".
bool PlainAbsolutePath(std::string_view p) {
  if (p.empty() || p[0] != '/' || p.find("//") != std::string_view::npos) return false;
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(start, end - start);
    if (part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

bool ValidEnvName(std::string_view n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0])) != 0) return false;
  for (char c : n) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_') return false;
  }
  return true;
}

}  // namespace

Result<std::string> ReadSecretFile(const std::string& path, unsigned* mode) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FailedPreconditionError(std::string(strerror(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return FailedPreconditionError("not a regular file");
  }
  if (mode != nullptr) *mode = static_cast<unsigned>(st.st_mode & 07777);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1u << 20)) {
      close(fd);
      return FailedPreconditionError("larger than 1 MiB");
    }
  }
  close(fd);
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back())) != 0) out.pop_back();
  return out;
}

void SecretStore::Capture(const std::string& name, bool usable) {
  const char* v = std::getenv(name.c_str());
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_.erase(name);
  auto it = captured_.find(name);
  if (it != captured_.end() && !usable) it->second.usable = false;  // once internal, always
  if (v == nullptr) return;
  std::string value = v;
  ScrubAndUnset(name);
  if (value.empty()) return;
  Secrets().Add(value);
  auto [entry, inserted] = captured_.try_emplace(name);
  entry->second.value = std::move(value);
  entry->second.usable = inserted ? usable : entry->second.usable && usable;
}

std::optional<std::string> SecretStore::Get(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = captured_.find(name);
  if (it == captured_.end() || !it->second.usable) return std::nullopt;
  return it->second.value;
}

std::optional<std::string> SecretStore::GetInternal(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = captured_.find(name);
  if (it == captured_.end()) return std::nullopt;
  return it->second.value;
}

std::vector<std::pair<std::string, std::string>> SecretStore::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, e] : captured_) out.emplace_back(k, e.value);
  return out;
}

void SecretStore::SnapshotEnvironment() {
  std::lock_guard<std::mutex> lock(mu_);
  snapshotted_ = true;
  snapshot_.clear();
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    std::string name(*e, static_cast<size_t>(eq - *e));
    if (captured_.count(name) == 0) snapshot_[name] = eq + 1;
  }
}

void SecretStore::RestrictReferences(std::vector<std::string> allowed) {
  std::lock_guard<std::mutex> lock(mu_);
  allowed_ = std::move(allowed);
}

Status SecretStore::CheckReference(const std::string& ref) const {
  std::string_view r = ref;
  if (r.substr(0, 4) == "env:") {
    if (!ValidEnvName(r.substr(4))) {
      return InvalidArgumentError("secret reference \"" + ref + "\": not a variable name");
    }
  } else if (r.substr(0, 5) == "file:") {
    if (!PlainAbsolutePath(r.substr(5))) {
      return InvalidArgumentError("secret reference \"" + ref +
                                  "\": a file reference needs an absolute path without "
                                  "\".\" or \"..\"");
    }
  } else {
    return InvalidArgumentError("secret reference \"" + ref +
                                "\" must be \"env:NAME\" or \"file:/absolute/path\"");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (r.substr(0, 4) == "env:") {
    auto it = captured_.find(r.substr(4));
    if (it != captured_.end() && !it->second.usable) {
      return InvalidArgumentError("secret reference \"" + ref +
                                  "\": the Gateway's own secret is not for tasks");
    }
  }
  if (allowed_) {
    for (const std::string& p : *allowed_) {
      if (Matches(p, ref)) return Status::Ok();
    }
    return InvalidArgumentError("secret reference \"" + ref +
                                "\" is not allowed here (gateway.toml [secrets] allow)");
  }
  return Status::Ok();
}

Result<std::string> SecretStore::Resolve(const std::string& ref) const {
  SMITHERS_RETURN_IF_ERROR(CheckReference(ref));
  std::string value;
  if (ref.rfind("env:", 0) == 0) {
    std::string name = ref.substr(4);
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = captured_.find(name); it != captured_.end()) {
      value = it->second.value;
    } else if (auto s = snapshot_.find(name); s != snapshot_.end()) {
      value = s->second;
    } else if (const char* v = snapshotted_ ? nullptr : std::getenv(name.c_str())) {
      value = v;  // a program embedding the engine, which took no snapshot
    } else {
      return FailedPreconditionError("secret reference \"" + ref + "\": $" + name + " is not set");
    }
  } else {
    std::string path = ref.substr(5);
    char real[PATH_MAX];
    if (realpath(path.c_str(), real) == nullptr) {
      return FailedPreconditionError("secret reference \"" + ref + "\": " + strerror(errno));
    }
    // A link inside an allowed folder must not lead out of it.
    if (path != real) SMITHERS_RETURN_IF_ERROR(CheckReference("file:" + std::string(real)));
    Result<std::string> read = ReadSecretFile(real);
    if (!read.ok()) {
      return FailedPreconditionError("secret reference \"" + ref +
                                     "\": " + read.status().message());
    }
    value = std::move(read).value();
  }
  Secrets().Add(value);
  return value;
}

SecretStore& ProcessSecrets() {
  static auto* store = new SecretStore();
  return *store;
}

void CaptureStartupSecrets() {
  SecretStore& store = ProcessSecrets();
  // The audit log's key, when a variable holds it (SMITHERS_AUDIT_KEY=env:NAME):
  // first and not usable, so no task can name it (a later Capture of the
  // same name finds it gone from the environment and does nothing).
  if (const char* ref = std::getenv("SMITHERS_AUDIT_KEY");
      ref != nullptr && std::string_view(ref).substr(0, 4) == "env:") {
    const std::string name(std::string_view(ref).substr(4));
    if (ValidEnvName(name)) store.Capture(name, /*usable=*/false);
  }
  std::vector<std::string> names = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
                                    "GOOGLE_API_KEY"};
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv = *e;
    std::string_view name = kv.substr(0, kv.find('='));
    if (name.size() > 8 && name.substr(name.size() - 8) == "_API_KEY") names.emplace_back(name);
  }
  if (const char* list = std::getenv("SMITHERS_SECRET_ENV")) {
    std::string l = list;
    size_t start = 0;
    while (start <= l.size()) {
      size_t end = l.find(',', start);
      if (end == std::string::npos) end = l.size();
      std::string n = l.substr(start, end - start);
      if (ValidEnvName(n)) names.push_back(n);
      start = end + 1;
    }
    unsetenv("SMITHERS_SECRET_ENV");
  }
  for (const std::string& n : names) store.Capture(n, true);
  store.SnapshotEnvironment();
}

bool InheritedByChildren(std::string_view name) {
  return name == "PATH" || name == "HOME" || name == "LANG" || name == "TZ" || name == "TMPDIR" ||
         name.substr(0, 3) == "LC_";
}

Result<std::vector<std::string>> BuildChildEnvironment(
    const std::map<std::string, std::string>& values,
    const std::map<std::string, std::string>& secret_refs) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    std::string name(*e, static_cast<size_t>(eq - *e));
    if (InheritedByChildren(name)) env[name] = eq + 1;
  }
  for (const auto& [k, v] : values) env[k] = v;
  for (const auto& [k, ref] : secret_refs) {
    Result<std::string> v = ProcessSecrets().Resolve(ref);
    if (!v.ok()) {
      return Status(v.status().code(), "env " + k + ": " + v.status().message());
    }
    env[k] = std::move(v).value();
  }
  std::vector<std::string> out;
  out.reserve(env.size());
  for (auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

Status SplitDeclaredEnv(const Json& env, std::map<std::string, std::string>* values,
                        std::map<std::string, std::string>* refs) {
  if (!env.is_object()) return InvalidArgumentError("\"env\" must be a table");
  for (const auto& [k, v] : env.items()) {
    if (k.empty() || k.find('=') != std::string::npos) {
      return InvalidArgumentError("env: \"" + k + "\" is not a variable name");
    }
    if (v.is_string()) {
      (*values)[k] = v.get<std::string>();
    } else if (v.is_number() || v.is_boolean()) {
      (*values)[k] = v.dump();
    } else if (v.is_object() && v.size() == 1 && v.contains("secret") && v["secret"].is_string()) {
      (*refs)[k] = v["secret"].get<std::string>();
    } else {
      return InvalidArgumentError("env." + k +
                                  ": a value is a string or { secret = \"env:NAME\" }");
    }
  }
  return Status::Ok();
}

std::vector<char*> EnvPointers(std::vector<std::string>& env) {
  std::vector<char*> out;
  out.reserve(env.size() + 1);
  for (auto& s : env) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace smithers::base
