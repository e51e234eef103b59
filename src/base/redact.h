// Redaction: the one function every string passes through on its way from the
// process to storage, events or logs (docs/security.md). It knows the secret
// values this process loaded (API keys read from the environment) and the
// common shapes of keys and tokens, and replaces both.
//
//   base::Secrets().Add(getenv("OPENAI_API_KEY"));
//   std::string safe = base::Redact(error_message);
//   Json safe_payload = base::RedactJson(payload);
#ifndef SMITHERS_BASE_REDACT_H_
#define SMITHERS_BASE_REDACT_H_

#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "smithers/json.h"

namespace smithers::base {

// The secret values known to this process. Thread-safe.
class SecretSet {
 public:
  // Remembers `value` (values shorter than 8 bytes are ignored: they would
  // match innocent text, and no real key is that short).
  void Add(std::string_view value);
  // Replaces every known value in `text` with "[REDACTED]".
  std::string Apply(std::string text) const;
  bool empty() const;
  // The length of the longest end of `text` that begins a known value (and
  // may go on in the text that follows); 0 when none.
  size_t PartialTail(std::string_view text) const;
  // The largest position <= `cut` that falls inside no known value found
  // whole in `text`.
  size_t SafeCut(std::string_view text, size_t cut) const;

 private:
  mutable std::mutex mu_;
  std::set<std::string, std::greater<>> values_;  // longest-first for overlapping values
};

// The process-wide set. Values are added at start-up by the secret store
// (base/secrets.h) and by whatever resolves a secret later.
SecretSet& Secrets();

// Known secret values, then key shapes at a word boundary ("key=sk-...",
// "export K=sk-...", "\"sk-...\"" are caught, "task-sk-1" is not): "sk-" with
// at least 8 characters after it (also "sk-ant-...", "sk-proj-..."), "pk-...",
// "ghp_/gho_/ghs_/github_pat_...", "glpat-...", "xox[abp]-...", "AKIA...",
// "AIza...", "Bearer <token>", and the values of "api_key=", "token=",
// "secret=", "password=" pairs (never a value of digits alone).
std::string Redact(std::string_view text);

// Redacts text that arrives in pieces (a task's streamed output): the end
// of what has arrived is held back until it can no longer be part of a
// secret, so a value or a key split across pieces is still seen whole.
// What is passed on ends at a space or line break (before the key of a
// "password: value" pair whose value may still be coming; after 64 KiB
// without either, anywhere), never inside a known value, and never within
// an end that begins one.
//
//   StreamRedactor r;
//   for (piece : pieces) emit(r.Push(piece));
//   emit(r.Finish());
class StreamRedactor {
 public:
  // The redacted text that may be passed on now ("" while all is held).
  std::string Push(std::string_view piece);
  // Everything still held, redacted: the stream ended.
  std::string Finish();

 private:
  std::string pending_;
};

// Whether Redact() would change `text`.
bool LooksSecret(std::string_view text);

// Whether an object key names a secret: one of its words (camelCase,
// snake_case and kebab-case split) is authorization, cookie, token,
// password, passwd, passphrase, secret, credential(s) or apikey, or two are
// api/private + key. "inputTokens", "maxTokens", "tokens" are not.
bool SecretKeyName(std::string_view key);

// Redact() on every string of `value`; the string values of object keys that
// name a secret (SecretKeyName) are replaced whole. Numbers, booleans and null
// are returned as they are. When `paths` is given, the path of every string
// that changed is appended ("stdout", "items[2].key", "$" for a top-level
// string), never the value. `secret_keys = false` leaves key names out (log
// lines, whose "tokenId" is an id).
Json RedactJson(const Json& value, std::vector<std::string>* paths = nullptr,
                bool secret_keys = true);
// The same on `value` itself: only the strings that change are replaced (what
// the engine does to every event payload and output it owns).
void RedactJsonInPlace(Json& value, std::vector<std::string>* paths = nullptr,
                       bool secret_keys = true);

// The path (as RedactJson names it) of the first string in `value` that looks
// like a secret (LooksSecret: a known value or a key shape), or nullopt.
// Object keys alone do not count: {"token": "abc"} is not refused.
std::optional<std::string> FindSecretShaped(const Json& value);

}  // namespace smithers::base

#endif  // SMITHERS_BASE_REDACT_H_
