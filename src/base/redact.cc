#include "base/redact.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "base/text.h"

namespace smithers::base {
namespace {

constexpr char kRedacted[] = "[REDACTED]";

// Characters of a word: what may not stand right before a key's prefix
// ("task-sk-1" is no key, "key=sk-..." and "\"sk-...\"" are).
bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}

// Characters a key or token may hold after its prefix (base64 and base64url,
// dots of a JWT).
bool IsTokenChar(char c) { return IsWordChar(c) || c == '.' || c == '/' || c == '+' || c == '='; }

// The end of the token that starts at `from`; a trailing '.' (the end of a
// sentence) is not part of it.
size_t TokenEnd(const std::string& text, size_t from) {
  size_t end = from;
  while (end < text.size() && IsTokenChar(text[end])) ++end;
  while (end > from && text[end - 1] == '.') --end;
  return end;
}

// Replaces the token that starts with `prefix` at a word boundary (and has at
// least `min_tail` token characters after it) wherever it occurs. Only
// `prefix` is matched case-sensitively. Returns whether anything was replaced.
bool RedactPrefixed(std::string& text, std::string_view prefix, size_t min_tail) {
  bool any = false;
  size_t pos = 0;
  while ((pos = text.find(prefix, pos)) != std::string::npos) {
    if (pos > 0 && IsWordChar(text[pos - 1])) {
      pos += prefix.size();
      continue;
    }
    size_t end = TokenEnd(text, pos + prefix.size());
    if (end - pos - prefix.size() >= min_tail) {
      text.replace(pos, end - pos, kRedacted);
      pos += sizeof kRedacted - 1;
      any = true;
    } else {
      pos = std::max(end, pos + prefix.size());
    }
  }
  return any;
}

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

// "key=value" / "key: value" pairs whose key names a secret ("api_key",
// "x_token", "DB_PASSWORD", ...). The key must end right before the
// separator (optionally quoted): "tokens: 12" is no pair of "token". Digits
// alone are never a secret (counts, ports).
void RedactAssignments(std::string& text) {
  static const char* const kKeys[] = {"api_key", "apikey",   "api-key", "token",
                                      "secret",  "password", "passwd"};
  std::string lower = base::AsciiLower(text);
  for (const char* key : kKeys) {
    size_t pos = 0;
    const size_t klen = std::string_view(key).size();
    while ((pos = lower.find(key, pos)) != std::string::npos) {
      size_t v = pos + klen;
      while (v < text.size() && (text[v] == '"' || text[v] == '\'')) ++v;
      if (v < text.size() && (text[v] == '=' || text[v] == ':')) {
        ++v;
        while (v < text.size() && (text[v] == ' ' || text[v] == '"' || text[v] == '\'')) ++v;
        size_t end = TokenEnd(text, v);
        std::string_view value(text.data() + v, end - v);
        if (value.size() >= 6 && !AllDigits(value) && value != kRedacted) {
          text.replace(v, end - v, kRedacted);
          lower.replace(v, end - v, kRedacted);
        }
      }
      pos += klen;
    }
  }
}

// The words of an object key: "inputTokens" -> input, tokens; "x-api-key" ->
// x, api, key; "CLIENT_SECRET" -> client, secret.
std::vector<std::string> KeyWords(std::string_view key) {
  std::vector<std::string> words;
  std::string cur;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    bool upper = std::isupper(static_cast<unsigned char>(c)) != 0;
    bool prev_lower = i > 0 && (std::islower(static_cast<unsigned char>(key[i - 1])) != 0 ||
                                std::isdigit(static_cast<unsigned char>(key[i - 1])) != 0);
    if (std::isalnum(static_cast<unsigned char>(c)) == 0) {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    if (upper && prev_lower && !cur.empty()) {
      words.push_back(std::move(cur));
      cur.clear();
    }
    cur += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

// Whether any shape Redact() knows could start in `text`: each has a '-',
// '_', '=' or ':' in its prefix or separator, or starts "AKIA", "AIza",
// "Bearer". Hashes, ids and most prose stop here.
bool MayHoldShape(std::string_view text) {
  if (text.find_first_of("-_=:") != std::string_view::npos) return true;
  return text.find("AKIA") != std::string_view::npos ||
         text.find("AIza") != std::string_view::npos ||
         text.find("Bearer") != std::string_view::npos;
}

}  // namespace

bool SecretKeyName(std::string_view key) {
  std::vector<std::string> w = KeyWords(key);
  for (size_t i = 0; i < w.size(); ++i) {
    const std::string& s = w[i];
    if (s == "authorization" || s == "cookie" || s == "token" || s == "password" || s == "passwd" ||
        s == "secret" || s == "credential" || s == "credentials" || s == "apikey" ||
        s == "passphrase") {
      return true;
    }
    if (i + 1 < w.size() && (s == "api" || s == "private") && w[i + 1] == "key") return true;
  }
  return false;
}

void SecretSet::Add(std::string_view value) {
  if (value.size() < 8) return;
  std::lock_guard<std::mutex> lock(mu_);
  values_.emplace(value);
}

std::string SecretSet::Apply(std::string text) const {
  if (text.size() < 8) return text;  // shorter than any known value
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

size_t SecretSet::PartialTail(std::string_view text) const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t tail = 0;
  for (const std::string& v : values_) {
    for (size_t k = std::min(v.size() - 1, text.size()); k > tail; --k) {
      if (text.substr(text.size() - k) == std::string_view(v).substr(0, k)) {
        tail = k;
        break;
      }
    }
  }
  return tail;
}

size_t SecretSet::SafeCut(std::string_view text, size_t cut) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (bool moved = true; moved && cut > 0;) {
    moved = false;
    for (const std::string& v : values_) {
      // An occurrence that starts before the cut and ends after it.
      const size_t from = cut >= v.size() ? cut - v.size() + 1 : 0;
      const size_t at = text.substr(0, std::min(text.size(), cut + v.size() - 1)).find(v, from);
      if (at != std::string_view::npos && at < cut) {
        cut = at;
        moved = true;
      }
    }
  }
  return cut;
}

bool SecretSet::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.empty();
}

SecretSet& Secrets() {
  static auto* set = new SecretSet();
  return *set;
}

std::string Redact(std::string_view text) {
  std::string out = Secrets().Apply(std::string(text));
  // Shorter than the shortest shape ("sk-" and 8 characters, "token=" and 6):
  // most strings of an event (ids, states) stop here.
  if (out.size() < 11 || !MayHoldShape(out)) return out;
  RedactPrefixed(out, "sk-", 8);
  RedactPrefixed(out, "pk-", 16);
  RedactPrefixed(out, "ghp_", 20);
  RedactPrefixed(out, "gho_", 20);
  RedactPrefixed(out, "ghs_", 20);
  RedactPrefixed(out, "github_pat_", 20);
  RedactPrefixed(out, "glpat-", 16);
  RedactPrefixed(out, "xoxb-", 10);
  RedactPrefixed(out, "xoxp-", 10);
  RedactPrefixed(out, "xoxa-", 10);
  RedactPrefixed(out, "AKIA", 16);
  RedactPrefixed(out, "AIza", 30);
  RedactPrefixed(out, "Bearer ", 8);
  RedactAssignments(out);
  return out;
}

bool LooksSecret(std::string_view text) { return Redact(text) != text; }

namespace {

// `path` is null when nobody asked for the paths (the hot path: event
// payloads): no path text is built then.
void RedactIn(Json& value, const std::string* path, std::vector<std::string>* paths,
              bool secret_keys) {
  if (value.is_string()) {
    auto& s = value.get_ref<std::string&>();
    std::string r = Redact(s);
    if (r == s) return;
    s = std::move(r);
    if (paths != nullptr) paths->push_back(path->empty() ? "$" : *path);
  } else if (value.is_array()) {
    size_t i = 0;
    for (Json& item : value) {
      if (paths == nullptr) {
        RedactIn(item, nullptr, nullptr, secret_keys);
        continue;
      }
      std::string at = *path + "[" + std::to_string(i++) + "]";
      RedactIn(item, &at, paths, secret_keys);
    }
  } else if (value.is_object()) {
    for (auto& [k, item] : value.items()) {
      std::string at;
      if (paths != nullptr) at = path->empty() ? k : *path + "." + k;
      if (secret_keys && item.is_string() && !item.get_ref<const std::string&>().empty() &&
          item.get_ref<const std::string&>() != kRedacted && SecretKeyName(k)) {
        item = kRedacted;
        if (paths != nullptr) paths->push_back(at);
      } else {
        RedactIn(item, paths != nullptr ? &at : nullptr, paths, secret_keys);
      }
    }
  }
  // Numbers, booleans and null are never secrets.
}

}  // namespace

void RedactJsonInPlace(Json& value, std::vector<std::string>* paths, bool secret_keys) {
  const std::string root;
  RedactIn(value, paths != nullptr ? &root : nullptr, paths, secret_keys);
}

Json RedactJson(const Json& value, std::vector<std::string>* paths, bool secret_keys) {
  Json out = value;
  RedactJsonInPlace(out, paths, secret_keys);
  return out;
}

std::optional<std::string> FindSecretShaped(const Json& value) {
  std::vector<std::string> paths;
  RedactJson(value, &paths, /*secret_keys=*/false);
  if (paths.empty()) return std::nullopt;
  return paths.front();
}

namespace {

constexpr size_t kMaxHeld = size_t{64} * 1024;  // then any place outside a known value
constexpr size_t kPairReach = 64;               // how far back a pair's key is looked for

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// The start of the last word in text[from, cut) that names a secret in a
// "key: value" pair or a "Bearer value" (Redact()'s pairs), else npos: its
// value, which follows, must be redacted together with it.
size_t PairKeyBefore(std::string_view text, size_t cut) {
  static const char* const kWords[] = {"api_key",  "apikey", "api-key", "token",        "secret",
                                       "password", "passwd", "bearer",  "authorization"};
  const size_t from = cut > kPairReach ? cut - kPairReach : 0;
  std::string window = AsciiLower(text.substr(from, cut - from));
  size_t found = std::string::npos;
  for (const char* w : kWords) {
    const size_t at = window.rfind(w);
    if (at != std::string::npos && (found == std::string::npos || at < found)) found = at;
  }
  return found == std::string::npos ? found : from + found;
}

}  // namespace

std::string StreamRedactor::Push(std::string_view piece) {
  pending_.append(piece);
  const size_t hold = Secrets().PartialTail(pending_);
  if (pending_.size() <= hold) return "";
  const size_t limit = pending_.size() - hold;  // a cut is at most here
  // After the last space or line break: a key shape is a whole word by then.
  size_t cut = 0;
  for (size_t i = limit; i > 0; --i) {
    if (IsSpace(pending_[i - 1])) {
      cut = i;
      break;
    }
  }
  // Within a line, a pair's value may still be coming: keep its key with it.
  if (cut > 0 && pending_[cut - 1] != '\n') {
    const size_t key = PairKeyBefore(pending_, cut);
    if (key != std::string::npos) cut = key;
  }
  if (cut == 0 && pending_.size() >= kMaxHeld) cut = limit;
  cut = Secrets().SafeCut(pending_, cut);
  if (cut == 0) return "";
  std::string out = Redact(std::string_view(pending_).substr(0, cut));
  pending_.erase(0, cut);
  return out;
}

std::string StreamRedactor::Finish() {
  std::string out = Redact(pending_);
  pending_.clear();
  return out;
}

}  // namespace smithers::base
