// The secret store: the secret-bearing variables of this process's
// environment, taken once at start-up, and the one builder of every child
// process's environment (docs/engine.md "Environment and secrets").
//
//   int main() {
//     base::CaptureStartupSecrets();   // before any thread starts
//     ...
//   }
//   // an agent's key
//   std::optional<std::string> key = base::ProcessSecrets().Get("OPENAI_API_KEY");
//   // a command task's environment
//   Result<std::vector<std::string>> env =
//       base::BuildChildEnvironment({{"MODE", "fast"}}, {{"TOKEN", "env:GITHUB_TOKEN"}});
//
// Captured values are removed from the environment (unsetenv) and added to the
// redactor (base/redact.h), so they are redacted from the start of the
// process and no child inherits them.
#ifndef SMITHERS_BASE_SECRETS_H_
#define SMITHERS_BASE_SECRETS_H_

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers::base {

// Thread-safe, but Capture() changes the environment: call it before any
// thread starts.
class SecretStore {
 public:
  // Moves the variable `name` into the store: its value is kept and given to
  // the redactor, and the variable is removed from the environment (and from
  // the start-up snapshot). `usable`: may tasks and agents use it (an agent's
  // key, a reference "env:NAME"); false for the Gateway's JWT secret.
  // Nothing happens when the variable is not set (or is empty).
  // REQUIRES: no other thread is running (unsetenv is not thread-safe).
  void Capture(const std::string& name, bool usable = true);

  // A captured value that tasks may use; nullopt when `name` was not
  // captured, or not as usable.
  std::optional<std::string> Get(std::string_view name) const;
  // Any captured value (the Gateway reads its JWT secret with it).
  std::optional<std::string> GetInternal(std::string_view name) const;
  // Every captured variable: what `smithers supervise` passes to the engines
  // it starts (the same binary, which captures them again).
  std::vector<std::pair<std::string, std::string>> All() const;

  // Keeps a copy of the environment as it is now (after the captures): where
  // "env:NAME" references to variables that were not captured are resolved.
  void SnapshotEnvironment();

  // Under the Gateway: the only references tasks may resolve, each "env:NAME"
  // or "file:/absolute/path", where '*' matches any run of characters
  // (gateway.toml [secrets] allow). Never called: any reference.
  void RestrictReferences(std::vector<std::string> allowed);

  // InvalidArgument naming `ref` when it is malformed ("env:NAME",
  // "file:/absolute/path" with no "." or ".." component), names a variable no
  // task may use, or matches no allow-list entry.
  Status CheckReference(const std::string& ref) const;

  // The value `ref` names, read now: "env:NAME" from the store or the
  // start-up snapshot (the environment when none was taken), "file:PATH"
  // from the file (at most 1 MiB, trailing whitespace dropped; its real path
  // must be allowed too). The value is given to the redactor.
  // FailedPrecondition when it is not set or cannot be read; InvalidArgument
  // as CheckReference.
  Result<std::string> Resolve(const std::string& ref) const;

 private:
  struct Entry {
    std::string value;
    bool usable = true;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> captured_;
  std::map<std::string, std::string, std::less<>> snapshot_;
  bool snapshotted_ = false;  // else "env:" reads the environment (embedders)
  std::optional<std::vector<std::string>> allowed_;
};

// The process-wide store.
SecretStore& ProcessSecrets();

// The provider keys every engine knows (OPENAI_API_KEY, ANTHROPIC_API_KEY,
// GEMINI_API_KEY, GOOGLE_API_KEY), every other variable whose name ends in
// _API_KEY, and those listed in SMITHERS_SECRET_ENV (comma-separated; the
// list itself is removed too): captured as usable, then the environment is
// snapshotted. REQUIRES: no other thread is running.
void CaptureStartupSecrets();

// The variables a child process gets from the engine's environment: PATH,
// HOME, LANG, TZ, TMPDIR and LC_*.
bool InheritedByChildren(std::string_view name);

// The environment of a child process, as "NAME=value" strings: the inherited
// variables (InheritedByChildren) of the engine's environment, then
// `values` (literal), then `secret_refs` (NAME -> "env:X" / "file:PATH",
// resolved now). Every spawner (command tasks, CLI agents, the bash tool)
// builds its child's environment here. Fails as SecretStore::Resolve, the
// message naming the variable and the reference.
Result<std::vector<std::string>> BuildChildEnvironment(
    const std::map<std::string, std::string>& values = {},
    const std::map<std::string, std::string>& secret_refs = {});

// A declared environment (a command task's or a CLI agent's `env`): each
// NAME maps to a string (numbers and booleans as their text), into `values`,
// or to {secret = "env:X" | "file:/path"}, whose reference goes into `refs`
// unchecked (SecretStore::CheckReference checks it). InvalidArgument naming
// the first entry that is neither, or a name with '='.
Status SplitDeclaredEnv(const Json& env, std::map<std::string, std::string>* values,
                        std::map<std::string, std::string>* refs);

// The contents of the regular file `path` (at most 1 MiB) without trailing
// white space; `mode`, when given, receives the permission bits of the file
// that was read. FailedPrecondition with the reason (strerror, "not a
// regular file", "larger than 1 MiB"). Secret references and the Gateway's
// --jwt-secret-file read through it.
Result<std::string> ReadSecretFile(const std::string& path, unsigned* mode = nullptr);

// A "NAME=value" vector as execve wants it (pointers into `env`, then null).
std::vector<char*> EnvPointers(std::vector<std::string>& env);

}  // namespace smithers::base

#endif  // SMITHERS_BASE_SECRETS_H_
