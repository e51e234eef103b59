#include "gateway/auth.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>

#include "base/hash.h"
#include "smithers/json.h"

namespace smithers::gateway {
namespace {

// run:admin > run:write > run:read, and the like: `a` implies `b`.
bool Implies(std::string_view a, std::string_view b) {
  if (a == b || a == "*") return true;
  if (a == "run:admin") return b == "run:write" || b == "run:read";
  if (a == "run:write") return b == "run:read";
  if (a == "cron:write") return b == "cron:read";
  if (a == "approval:submit") return b == "approval:read";
  return false;
}

// The legacy ranked grants of SPEC 5.5.
bool RankedAllows(std::string_view grant, std::string_view required) {
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

const std::vector<MethodScope>& MethodScopes() {
  static const std::vector<MethodScope> kTable = {
      {"health", "run:read"},
      {"listWorkflows", "run:read"},
      {"getRun", "run:read"},
      {"listRuns", "run:read"},
      {"getNodeOutput", "run:read"},
      {"streamRunEvents", "run:read"},
      {"subscribe", "run:read"},
      {"unsubscribe", "run:read"},
      {"launchRun", "run:write"},
      {"resumeRun", "run:write"},
      {"cancelRun", "run:write"},
      {"listApprovals", "approval:read"},
      {"submitApproval", "approval:submit"},
      {"submitSignal", "signal:submit"},
      {"cronList", "cron:read"},
      {"cronCreate", "cron:write"},
      {"cronDelete", "cron:write"},
      {"cronRun", "cron:write"},
  };
  return kTable;
}

std::string_view RequiredScope(std::string_view method) {
  for (const MethodScope& m : MethodScopes()) {
    if (m.method == method) return m.scope;
  }
  return "run:read";
}

bool IsKnownScope(std::string_view scope) {
  static constexpr std::array<std::string_view, 14> kScopes = {"*",
                                                               "run:read",
                                                               "run:write",
                                                               "run:admin",
                                                               "approval:read",
                                                               "approval:submit",
                                                               "signal:submit",
                                                               "cron:read",
                                                               "cron:write",
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
    if (named && Implies(RequiredScope(method), required)) return true;
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

}  // namespace smithers::gateway
