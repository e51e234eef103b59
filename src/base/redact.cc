#include "base/redact.h"

#include <cctype>
#include <vector>

namespace smithers::base {
namespace {

constexpr char kRedacted[] = "[REDACTED]";

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' ||
         c == '/' || c == '+' || c == '=';
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Replaces the token that starts with `prefix` (and has at least `min_tail`
// token characters after it) wherever it occurs.
void RedactPrefixed(std::string& text, std::string_view prefix, size_t min_tail) {
  size_t pos = 0;
  while ((pos = text.find(prefix, pos)) != std::string::npos) {
    // Only at a word boundary: "task-x" must not match "sk-".
    if (pos > 0 && IsTokenChar(text[pos - 1])) {
      pos += prefix.size();
      continue;
    }
    size_t end = pos + prefix.size();
    while (end < text.size() && IsTokenChar(text[end])) ++end;
    if (end - pos - prefix.size() >= min_tail) {
      text.replace(pos, end - pos, kRedacted);
      pos += sizeof kRedacted - 1;
    } else {
      pos = end;
    }
  }
}

// "key=value" / "key: value" pairs whose key names a secret.
void RedactAssignments(std::string& text) {
  static const char* const kKeys[] = {"api_key", "apikey", "token", "secret", "password"};
  std::string lower = Lower(text);
  for (const char* key : kKeys) {
    size_t pos = 0;
    const size_t klen = std::string_view(key).size();
    while ((pos = lower.find(key, pos)) != std::string::npos) {
      size_t v = pos + klen;
      while (v < text.size() && (text[v] == '"' || text[v] == '\'')) ++v;
      if (v < text.size() && (text[v] == '=' || text[v] == ':')) {
        ++v;
        while (v < text.size() && (text[v] == ' ' || text[v] == '"' || text[v] == '\'')) ++v;
        size_t end = v;
        while (end < text.size() && IsTokenChar(text[end])) ++end;
        if (end - v >= 6) {
          text.replace(v, end - v, kRedacted);
          lower.replace(v, end - v, kRedacted);
        }
      }
      pos += klen;
    }
  }
}

bool SecretKeyName(const std::string& key) {
  std::string k = Lower(key);
  for (const char* s : {"authorization", "cookie", "api_key", "apikey", "api-key", "token",
                        "password", "passwd", "secret", "credential"}) {
    if (k.find(s) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

void SecretSet::Add(std::string_view value) {
  if (value.size() < 8) return;
  std::lock_guard<std::mutex> lock(mu_);
  values_.emplace(value);
}

std::string SecretSet::Apply(std::string text) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& v : values_) {
    size_t pos = 0;
    while ((pos = text.find(v, pos)) != std::string::npos) {
      text.replace(pos, v.size(), kRedacted);
      pos += sizeof kRedacted - 1;
    }
  }
  return text;
}

bool SecretSet::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.empty();
}

SecretSet& Secrets() {
  static SecretSet* set = new SecretSet();
  return *set;
}

std::string Redact(std::string_view text) {
  std::string out = Secrets().Apply(std::string(text));
  RedactPrefixed(out, "sk-", 16);
  RedactPrefixed(out, "pk-", 16);
  RedactPrefixed(out, "ghp_", 20);
  RedactPrefixed(out, "github_pat_", 20);
  RedactPrefixed(out, "xoxb-", 10);
  RedactPrefixed(out, "xoxp-", 10);
  RedactPrefixed(out, "xoxa-", 10);
  RedactPrefixed(out, "AKIA", 16);
  RedactPrefixed(out, "Bearer ", 8);
  RedactAssignments(out);
  return out;
}

Json RedactJson(const Json& value) {
  if (value.is_string()) return Redact(value.get<std::string>());
  if (value.is_array()) {
    Json out = Json::array();
    for (const auto& v : value) out.push_back(RedactJson(v));
    return out;
  }
  if (value.is_object()) {
    Json out = Json::object();
    for (const auto& [k, v] : value.items()) {
      out[k] =
          SecretKeyName(k) && (v.is_string() || v.is_number()) ? Json(kRedacted) : RedactJson(v);
    }
    return out;
  }
  return value;
}

}  // namespace smithers::base
