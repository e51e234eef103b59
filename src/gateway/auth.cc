#include "gateway/auth.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "base/hash.h"
#include "base/json_limits.h"
#include "gateway/methods.h"
#include "smithers/json.h"

namespace smithers::gateway {
namespace {

// run:admin > run:write > run:read, and the like: `a` implies `b`.
bool Implies(std::string_view a, std::string_view b) {
  if (a == b || a == "*") return true;
  if (a == "run:admin") return b == "run:write" || b == "run:read" || b == "audit:read";
  if (a == "run:write") return b == "run:read";
  if (a == "cron:write") return b == "cron:read";
  if (a == "approval:submit") return b == "approval:read";
  return false;
}

// The legacy ranked grants of SPEC 5.5.
bool RankedAllows(std::string_view grant, std::string_view required) {
  // The audit log is for those who administer runs, never a legacy grant's.
  if (required == "audit:read") return false;
  if (grant == "admin") return true;
  bool read = required.size() > 5 && required.substr(required.size() - 5) == ":read";
  if (grant == "read") return read;
  bool execute = required == "run:read" || required == "run:write" || required == "signal:submit" ||
                 required == "cron:read" || required == "cron:write";
  if (grant == "execute") return read || execute;
  if (grant == "approve") return read || execute || required == "approval:submit";
  return false;
}

}  // namespace

std::string_view RequiredScope(std::string_view method) {
  const Method* m = FindMethod(method);
  return m != nullptr ? m->scope : "run:read";
}

bool ReadsOnly(std::string_view method) { return RequiredScope(method).ends_with(":read"); }

const std::vector<ContentScope>& ContentScopes() {
  static const std::vector<ContentScope> kTable = {
      {"snapshot.runs", "run:read", "listRuns"},
      {"snapshot.approvals", "approval:read", "listApprovals"},
      // Run events that carry an approval's request, owners or decision.
      {"event.ApprovalRequested", "approval:read", "listApprovals"},
      {"event.ApprovalEscalated", "approval:read", "listApprovals"},
      {"event.ApprovalGranted", "approval:read", "listApprovals"},
      {"event.ApprovalDenied", "approval:read", "listApprovals"},
      {"event.NodeWaitingApproval", "approval:read", "listApprovals"},
      {"output.approvalDecision", "approval:read", "listApprovals"},
      {"push.cron.triggered", "cron:read", "cronList"},
  };
  return kTable;
}

std::string_view ContentRequiredScope(std::string_view content) {
  for (const ContentScope& c : ContentScopes()) {
    if (c.content == content) return c.scope;
  }
  return "";
}

bool MaySee(const std::vector<std::string>& granted, std::string_view content) {
  for (const ContentScope& c : ContentScopes()) {
    if (c.content == content) return ScopesAllow(granted, c.method, c.scope);
  }
  return true;
}

bool IsKnownScope(std::string_view scope) {
  static constexpr std::array<std::string_view, 15> kScopes = {"*",
                                                               "run:read",
                                                               "run:write",
                                                               "run:admin",
                                                               "approval:read",
                                                               "approval:submit",
                                                               "signal:submit",
                                                               "cron:read",
                                                               "cron:write",
                                                               "audit:read",
                                                               "read",
                                                               "execute",
                                                               "approve",
                                                               "admin",
                                                               "observability:read"};
  return std::find(kScopes.begin(), kScopes.end(), scope) != kScopes.end();
}

bool ScopesAllow(const std::vector<std::string>& granted, std::string_view method,
                 std::string_view required) {
  for (const std::string& g : granted) {
    if (Implies(g, required) || RankedAllows(g, required)) return true;
    // A grant naming the method (or a prefix of it ending in '*'); honoured
    // only when the method's own scope implies what is required.
    bool named = g == method;
    if (!named && !g.empty() && g.back() == '*') {
      std::string_view prefix = std::string_view(g).substr(0, g.size() - 1);
      if (!prefix.empty() && prefix.back() == '.') prefix.remove_suffix(1);
      named = !prefix.empty() && method.substr(0, prefix.size()) == prefix;
    }
    // Never the audit log: audit:read is granted by name or by run:admin.
    if (named && required != "audit:read" && Implies(RequiredScope(method), required)) {
      return true;
    }
  }
  return false;
}

std::string Base64UrlEncode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

bool Base64UrlDecode(std::string_view text, std::string* bytes) {
  bytes->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else {
      return false;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // A lone trailing character cannot be valid, and the unused low bits of
  // the last one must be zero (one encoding per byte string).
  return bits < 6 && (acc & ((1u << bits) - 1)) == 0;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return {reinterpret_cast<const char*>(out), len};
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string TokenHash(std::string_view token) { return base::Sha256Hex(token); }

Result<MintedToken> MintToken() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return InternalError("no random bytes for a token");
  MintedToken t;
  t.token = "smithers_" + Base64UrlEncode({reinterpret_cast<const char*>(raw), sizeof raw});
  OPENSSL_cleanse(raw, sizeof raw);
  t.hash = TokenHash(t.token);
  t.id = t.hash.substr(0, 16);
  return t;
}

Result<JwtClaims> VerifyJwt(std::string_view token, const JwtConfig& config, int64_t now_ms) {
  size_t d1 = token.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
    return InvalidArgumentError("not a JWT (three dot-separated parts expected)");
  }
  std::string header_raw, payload_raw, signature;
  if (!Base64UrlDecode(token.substr(0, d1), &header_raw) ||
      !Base64UrlDecode(token.substr(d1 + 1, d2 - d1 - 1), &payload_raw) ||
      !Base64UrlDecode(token.substr(d2 + 1), &signature)) {
    return InvalidArgumentError("JWT parts are not base64url");
  }
  if (!base::CheckJsonDepth(header_raw, base::MaxJsonDepth()).ok() ||
      !base::CheckJsonDepth(payload_raw, base::MaxJsonDepth()).ok()) {
    return InvalidArgumentError("JWT header or payload nests too deep");
  }
  Json header = Json::parse(header_raw, nullptr, false);
  if (!header.is_object() || header.value("alg", "") != "HS256") {
    return InvalidArgumentError("JWT alg must be HS256");
  }
  if (config.secret.empty()) return InvalidArgumentError("JWT secret is not configured");
  if (!ConstantTimeEquals(HmacSha256(config.secret, token.substr(0, d2)), signature)) {
    return InvalidArgumentError("JWT signature does not verify");
  }
  Json claims = Json::parse(payload_raw, nullptr, false);
  if (!claims.is_object()) return InvalidArgumentError("JWT payload is not a JSON object");
  auto seconds = [&](const char* name) -> int64_t {
    auto it = claims.find(name);
    return it != claims.end() && it->is_number() ? it->get<int64_t>() * 1000 : 0;
  };
  int64_t exp = seconds("exp"), nbf = seconds("nbf");
  if (exp > 0 && now_ms > exp + config.clock_skew_ms) return InvalidArgumentError("JWT expired");
  if (nbf > 0 && now_ms + config.clock_skew_ms < nbf) {
    return InvalidArgumentError("JWT not valid yet (nbf)");
  }
  if (!config.issuer.empty() && claims.value("iss", "") != config.issuer) {
    return InvalidArgumentError("JWT issuer does not match");
  }
  if (!config.audience.empty()) {
    auto aud = claims.find("aud");
    bool match = aud != claims.end() &&
                 ((aud->is_string() && *aud == config.audience) ||
                  (aud->is_array() &&
                   std::find(aud->begin(), aud->end(), Json(config.audience)) != aud->end()));
    if (!match) return InvalidArgumentError("JWT audience does not match");
  }
  JwtClaims out;
  out.subject = claims.value("sub", "");
  out.role = claims.value("role", "operator");
  out.expires_at_ms = exp;
  auto scope = claims.find("scope");
  if (scope == claims.end()) scope = claims.find("scopes");
  if (scope != claims.end() && scope->is_array()) {
    for (const Json& s : *scope) {
      if (s.is_string()) out.scopes.push_back(s.get<std::string>());
    }
  } else if (scope != claims.end() && scope->is_string()) {
    std::string all = scope->get<std::string>();
    std::replace(all.begin(), all.end(), ',', ' ');
    size_t start = 0;
    while (start < all.size()) {
      size_t end = all.find(' ', start);
      if (end == std::string::npos) end = all.size();
      if (end > start) out.scopes.push_back(all.substr(start, end - start));
      start = end + 1;
    }
  } else {
    out.scopes = config.default_scopes;
  }
  return out;
}

// ---- trusted proxies ----

namespace {

// An address (16 bytes; IPv4 as IPv4-mapped IPv6) and how many leading bits
// of it count.
struct Block {
  std::array<unsigned char, 16> bytes{};
  int bits = 0;
};

bool ParseAddress(const std::string& text, std::array<unsigned char, 16>* out, bool* v4) {
  in_addr a4{};
  if (inet_pton(AF_INET, text.c_str(), &a4) == 1) {
    *out = {};
    (*out)[10] = (*out)[11] = 0xff;
    memcpy(out->data() + 12, &a4, 4);
    *v4 = true;
    return true;
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, text.c_str(), &a6) != 1) return false;
  memcpy(out->data(), &a6, 16);
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  *v4 = memcmp(out->data(), kMapped, 12) == 0;
  return true;
}

std::optional<Block> ParseBlock(const std::string& entry) {
  size_t slash = entry.find('/');
  Block b;
  bool v4 = false;
  if (!ParseAddress(entry.substr(0, slash), &b.bytes, &v4)) return std::nullopt;
  int max_bits = v4 ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string::npos) {
    std::string n = entry.substr(slash + 1);
    if (n.empty() || n.size() > 3 ||
        !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    bits = std::stoi(n);
    if (bits > max_bits) return std::nullopt;
  }
  b.bits = v4 ? 96 + bits : bits;
  return b;
}

}  // namespace

bool PeerAllowed(const std::vector<std::string>& allowed, std::string_view peer) {
  std::array<unsigned char, 16> p{};
  bool v4 = false;
  if (!ParseAddress(std::string(peer), &p, &v4)) return false;
  for (const std::string& entry : allowed) {
    std::optional<Block> b = ParseBlock(entry);
    if (!b) continue;
    bool match = true;
    for (int i = 0; i < 16 && match; ++i) {
      int bits = std::clamp(b->bits - i * 8, 0, 8);
      unsigned char mask = static_cast<unsigned char>(0xff00 >> bits);
      match = (p[i] & mask) == (b->bytes[i] & mask);
    }
    if (match) return true;
  }
  return false;
}

Status CheckPeerList(const std::vector<std::string>& allowed) {
  for (const std::string& entry : allowed) {
    if (!ParseBlock(entry)) {
      return InvalidArgumentError("trusted proxy \"" + entry +
                                  "\" is not an IP address or a CIDR block (10.0.0.0/8)");
    }
  }
  return Status::Ok();
}

// ---- token lifetimes ----

std::string FormatDurationMs(int64_t ms) {
  static constexpr std::pair<int64_t, const char*> kUnits[] = {
      {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
  for (const auto& [size, name] : kUnits) {
    if (ms != 0 && ms % size == 0) return std::to_string(ms / size) + name;
  }
  return std::to_string(ms) + "ms";
}

Result<int64_t> ParseMaxTokenTtl(std::string_view text) {
  long long ms = 0;
  if (!base::ParseDurationMs(text, &ms) || ms <= 0) {
    return InvalidArgumentError("\"" + std::string(text) + "\" is not a duration like 30d");
  }
  return static_cast<int64_t>(ms);
}

Result<int64_t> ParseTokenTtl(std::string_view text, int64_t max_ttl_ms) {
  if (text == "never") {
    return InvalidArgumentError(
        "\"never\" is not a lifetime; a token that never expires needs --no-expiry");
  }
  long long ms = 0;
  if (!base::ParseDurationMs(text, &ms) || ms <= 0) {
    return InvalidArgumentError("\"" + std::string(text) + "\" is not a duration like 1h");
  }
  if (ms > max_ttl_ms) {
    return InvalidArgumentError(std::string(text) + " is longer than the maximum token lifetime " +
                                FormatDurationMs(max_ttl_ms) + " (--max-ttl)");
  }
  return static_cast<int64_t>(ms);
}

Status CheckGrantLifetime(int64_t issued_at_ms, int64_t expires_at_ms, int64_t max_ttl_ms,
                          int64_t now_ms) {
  if (expires_at_ms == 0) {
    return InvalidArgumentError(
        "no expiresAtMs (every grant of a tokens file must expire, at most " +
        FormatDurationMs(max_ttl_ms) + " after it is issued)");
  }
  int64_t from = issued_at_ms != 0 ? std::min(issued_at_ms, now_ms) : now_ms;
  int64_t lifetime = 0;
  if (__builtin_sub_overflow(expires_at_ms, from, &lifetime) || lifetime > max_ttl_ms) {
    return InvalidArgumentError(
        "expiresAtMs is more than the maximum token lifetime " + FormatDurationMs(max_ttl_ms) +
        " after " + (issued_at_ms != 0 && issued_at_ms <= now_ms ? "issuedAtMs" : "now"));
  }
  return Status::Ok();
}

int ApplyTokenPolicy(FileGrants* grants, int64_t max_ttl_ms, int64_t now_ms) {
  int refused = 0;
  for (auto& [hash, g] : grants->by_hash) {
    Status ok = CheckGrantLifetime(g.issued_at_ms, g.expires_at_ms, max_ttl_ms, now_ms);
    g.refused = ok.ok() ? "" : ok.message();
    refused += ok.ok() ? 0 : 1;
  }
  return refused;
}

// ---- tokens file ----

namespace {

constexpr size_t kMaxTokenFileBytes = 16 << 20;

bool IsHexSha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return isxdigit(static_cast<unsigned char>(c));
         });
}

// Where a parse error is, by line and column, without quoting the text (it
// may hold bearers).
std::string PositionOf(std::string_view text, size_t byte) {
  byte = std::min(byte, text.size());
  size_t line = 1, column = 1;
  for (size_t i = 0; i + 1 < byte; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// One entry of `tokens`. `label` names it in errors: the entry's own name,
// or "token ID" when its key is (or may be) a bearer.
Status ParseGrant(const std::string& label, const Json& entry, FileGrant* g) {
  if (!entry.is_object()) return InvalidArgumentError(label + ": a grant must be a JSON object");
  auto bad = [&](const std::string& field, const char* want) {
    return InvalidArgumentError(label + ": " + field + " must be " + want);
  };
  bool has_scopes = false;
  for (const auto& [field, value] : entry.items()) {
    if (field == "role") {
      if (!value.is_string() || value.get<std::string>().empty()) return bad(field, "a string");
      g->role = value.get<std::string>();
    } else if (field == "scopes") {
      if (!value.is_array()) return bad(field, "an array of strings");
      for (const Json& scope : value) {
        if (!scope.is_string() || scope.get<std::string>().empty()) {
          return bad(field, "an array of strings");
        }
        g->scopes.push_back(scope.get<std::string>());
      }
      has_scopes = true;
    } else if (field == "userId") {
      if (!value.is_null() && !value.is_string()) return bad(field, "a string or null");
      g->user_id = value.is_string() ? value.get<std::string>() : "";
    } else if (field == "issuedAtMs" || field == "expiresAtMs" || field == "revokedAtMs") {
      if (!value.is_null() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
        return bad(field, "milliseconds since 1970 (an integer) or null");
      }
      int64_t ms = value.is_null() ? 0 : value.get<int64_t>();
      (field == "issuedAtMs"    ? g->issued_at_ms
       : field == "expiresAtMs" ? g->expires_at_ms
                                : g->revoked_at_ms) = ms;
    } else if (field == "tokenId" || field == "tokenHash") {
      // Read by the caller; checked here for their type.
      if (!value.is_string() || value.get<std::string>().empty()) return bad(field, "a string");
    } else if (field == "secret" || field == "label" || field == "replacedBy") {
      // Written by other token stores; not used here.
      if (!value.is_null() && !value.is_string()) return bad(field, "a string or null");
    } else {
      return InvalidArgumentError(label + ": unknown field \"" + field +
                                  "\" (known: tokenId, tokenHash, role, scopes, userId, "
                                  "issuedAtMs, expiresAtMs, revokedAtMs)");
    }
  }
  if (!has_scopes) return InvalidArgumentError(label + ": scopes is missing");
  return Status::Ok();
}

}  // namespace

Result<FileGrants> ParseTokenFile(std::string_view text) {
  // Checked before it is parsed. Without the path: the file's keys are bearers.
  if (!base::CheckJsonDepth(text, base::MaxJsonDepth()).ok()) {
    return InvalidArgumentError("nests deeper than " + std::to_string(base::MaxJsonDepth()) +
                                " levels of arrays and objects (max_json_depth)");
  }
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const Json::parse_error& e) {
    // Not e.what(): it quotes the text around the error, which may be a bearer.
    return InvalidArgumentError("not valid JSON (" + PositionOf(text, e.byte) + ")");
  }
  if (!doc.is_object()) return InvalidArgumentError("not a JSON object");
  int version = 2;
  for (const auto& [key, value] : doc.items()) {
    if (key == "version") {
      if (!value.is_number_integer() || (value.get<int64_t>() != 1 && value.get<int64_t>() != 2)) {
        return InvalidArgumentError("version must be 1 or 2");
      }
      version = value.get<int>();
    } else if (key != "tokens" && key != "actionTokens" && key != "audit") {
      return InvalidArgumentError("unknown key \"" + key +
                                  "\" (known: version, tokens, actionTokens, audit)");
    }
  }
  auto tokens = doc.find("tokens");
  if (tokens == doc.end() || !tokens->is_object()) {
    return InvalidArgumentError("\"tokens\" must be an object of grants");
  }
  FileGrants out;
  for (const auto& [key, entry] : tokens->items()) {
    // An entry is keyed by its bearer (v2), unless it gives a tokenHash that
    // is not the key's: then the key is a name (v1: the token id) and the
    // bearer is known only by its hash.
    std::string key_hash = TokenHash(key);
    std::string hash;
    if (entry.is_object()) {
      auto h = entry.find("tokenHash");
      if (h != entry.end() && h->is_string()) hash = h->get<std::string>();
    }
    std::transform(hash.begin(), hash.end(), hash.begin(),
                   [](unsigned char c) { return static_cast<char>(tolower(c)); });
    bool named = !hash.empty() && hash != key_hash;
    auto id = entry.is_object() ? entry.find("tokenId") : entry.end();
    std::string label =
        named ? "entry \"" + key + "\""
              : "token " + (id != entry.end() && id->is_string() ? id->get<std::string>()
                                                                 : key_hash.substr(0, 16));
    if (key.empty()) return InvalidArgumentError("an entry has an empty key");
    if (!hash.empty() && !IsHexSha256(hash)) {
      return InvalidArgumentError(label + ": tokenHash must be 64 hex digits (SHA-256)");
    }
    if (hash.empty() && version == 1) {
      return InvalidArgumentError(label +
                                  ": a version 1 entry is keyed by its token id and needs "
                                  "tokenHash");
    }
    FileGrant g;
    SMITHERS_RETURN_IF_ERROR(ParseGrant(label, entry, &g));
    g.token_hash = named ? hash : key_hash;
    if (id != entry.end()) {
      g.token_id = id->get<std::string>();
    } else {
      g.token_id = named && key != hash ? key : g.token_hash.substr(0, 16);
    }
    if (!named) out.holds_bearers = true;
    auto secret = entry.find("secret");
    if (secret != entry.end() && secret->is_string() && !secret->get<std::string>().empty()) {
      out.holds_bearers = true;
    }
    std::string hash_key = g.token_hash;
    if (!out.by_hash.emplace(hash_key, std::move(g)).second) {
      return InvalidArgumentError(label + ": a second entry for the same token");
    }
  }
  return out;
}

namespace {

TokenFile::Version VersionOf(const struct stat& st) {
  return {.dev = st.st_dev,
          .ino = st.st_ino,
          .size = st.st_size,
          .mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
          .ctime_ns = st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec,
          .mode = st.st_mode};
}

// Reads and parses `path`; `version` is what fstat saw of the file read.
Result<FileGrants> ReadGrants(const std::string& path, TokenFile::Version* version) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return InvalidArgumentError(path + ": " + strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return InvalidArgumentError(path + ": " + strerror(err));
  }
  *version = VersionOf(st);
  auto fail = [&](const std::string& why) -> Result<FileGrants> {
    close(fd);
    return InvalidArgumentError(path + ": " + why);
  };
  if (!S_ISREG(st.st_mode)) return fail("not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(std::string("other users may read or change it (mode ") + mode + "); chmod 600 " +
                path);
  }
  if (static_cast<size_t>(st.st_size) > kMaxTokenFileBytes) return fail("larger than 16 MiB");
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(strerror(errno));
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxTokenFileBytes) return fail("larger than 16 MiB");
  }
  close(fd);
  Result<FileGrants> grants = ParseTokenFile(text);
  OPENSSL_cleanse(text.data(), text.size());  // it may hold bearers
  OPENSSL_cleanse(buf, sizeof buf);
  if (!grants.ok()) return InvalidArgumentError(path + ": " + grants.status().message());
  return grants;
}

}  // namespace

Result<FileGrants> ReadTokenFile(const std::string& path) {
  TokenFile::Version ignored;
  return ReadGrants(path, &ignored);
}

TokenFile::TokenFile(std::string path, int64_t max_ttl_ms)
    : path_(std::move(path)), max_ttl_ms_(max_ttl_ms) {}

std::optional<Json> TokenFile::Refresh(int64_t now_ms) {
  if (path_.empty()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  if (read_once_) {
    struct stat st {};
    // All zero when the file is gone: unlike any version read.
    Version now_version = stat(path_.c_str(), &st) == 0 ? VersionOf(st) : Version{};
    bool retry = !error_.empty() && now_ms - last_read_ms_ >= 1000;
    if (now_version == version_ && !retry) return std::nullopt;
  }
  Version seen;
  Result<FileGrants> grants = ReadGrants(path_, &seen);
  reads_++;
  last_read_ms_ = now_ms;
  bool first = !read_once_;
  read_once_ = true;
  if (!grants.ok()) {
    // Once per failing version of the file: a retry of the same bytes that
    // fails the same way says nothing new.
    bool repeat = !first && seen == version_ && grants.status().message() == error_;
    version_ = seen;
    error_ = grants.status().message();
    if (repeat) return std::nullopt;
    return Json{{"event", "tokens.load_failed"},
                {"file", path_},
                {"error", error_},
                {"grants", by_hash_.size()}};
  }
  version_ = seen;
  error_.clear();
  ApplyTokenPolicy(&*grants, max_ttl_ms_, now_ms);
  Json refused = Json::array();
  for (const auto& [hash, g] : grants->by_hash) {
    if (!g.refused.empty()) refused.push_back({{"tokenId", g.token_id}, {"error", g.refused}});
  }
  by_hash_ = std::move(grants->by_hash);
  return Json{{"event", "tokens.loaded"},
              {"file", path_},
              {"grants", by_hash_.size() - refused.size()},
              {"refused", std::move(refused)}};
}

int64_t TokenFile::Reads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reads_;
}

Result<std::optional<FileGrant>> TokenFile::Check(const std::string& token_hash,
                                                  int64_t now_ms) const {
  if (path_.empty()) return std::optional<FileGrant>();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_hash_.find(token_hash);
  if (it == by_hash_.end()) return std::optional<FileGrant>();
  const FileGrant& g = it->second;
  if (!g.refused.empty())
    return InvalidArgumentError("token " + g.token_id + " refused: " + g.refused);
  if (g.revoked_at_ms != 0 && g.revoked_at_ms <= now_ms) {
    return InvalidArgumentError("token " + g.token_id + " was revoked");
  }
  if (g.expires_at_ms != 0 && g.expires_at_ms <= now_ms) {
    return InvalidArgumentError("token " + g.token_id + " expired");
  }
  return std::optional<FileGrant>(g);
}

}  // namespace smithers::gateway
