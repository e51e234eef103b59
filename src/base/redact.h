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
#include <set>
#include <string>
#include <string_view>

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

 private:
  mutable std::mutex mu_;
  std::set<std::string, std::greater<>> values_;  // longest-first for overlapping values
};

// The process-wide set.
SecretSet& Secrets();

// Known secret values, then key shapes: "sk-...", "sk-ant-...", "pk-...",
// "ghp_...", "xox[abp]-...", "AKIA...", "Bearer <token>", and the values of
// "api_key=", "token=", "secret=", "password=" pairs.
std::string Redact(std::string_view text);

// Redact() on every string of `value`; the values of object keys that name a
// secret (authorization, cookie, api_key, apikey, token, password, secret,
// credential) are replaced whole.
Json RedactJson(const Json& value);

}  // namespace smithers::base

#endif  // SMITHERS_BASE_REDACT_H_
