// Gateway access control (docs/gateway.md "Access control"): the scope every
// RPC method needs, how a grant's scopes satisfy it, bearer tokens (minted,
// hashed, looked up) and HS256 JWTs.
#ifndef SMITHERS_GATEWAY_AUTH_H_
#define SMITHERS_GATEWAY_AUTH_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smithers/status.h"

namespace smithers::gateway {

// One row of the method table: a method and the scope it requires.
struct MethodScope {
  std::string_view method;
  std::string_view scope;
};

// Every RPC method the Gateway serves, with its scope. The one table the
// dispatcher and the scope-matrix test both walk.
const std::vector<MethodScope>& MethodScopes();

// The scope `method` requires: the table's, or run:read for a method it does
// not list (SPEC 5.5 "unmapped").
std::string_view RequiredScope(std::string_view method);

// True when a grant holding `granted` may call `method` (which requires
// `required`): `*`; the scope itself or one implying it (run:admin > run:write
// > run:read, cron:write > cron:read, approval:submit > approval:read); the
// method's own name or a prefix wildcard (`cron*`, `cron.*`) when the
// method's scope implies the requirement; or a legacy ranked grant (`read`,
// `execute`, `approve`, `admin`).
bool ScopesAllow(const std::vector<std::string>& granted, std::string_view method,
                 std::string_view required);

// Every scope name a grant may hold (for validating `token issue --scopes`).
bool IsKnownScope(std::string_view scope);

// A freshly minted bearer token: `smithers_` + 43 base64url characters of 32
// random bytes. Only `hash` (SHA-256 hex) and `id` (its first 16 digits) are
// ever stored.
struct MintedToken {
  std::string token;
  std::string hash;
  std::string id;
};
Result<MintedToken> MintToken();
std::string TokenHash(std::string_view token);

// HS256 JSON Web Tokens (SPEC 5.4 "jwt").
struct JwtConfig {
  std::string secret;
  std::string issuer;    // "" = not checked
  std::string audience;  // "" = not checked
  int64_t clock_skew_ms = 60000;
  std::vector<std::string> default_scopes;
};
struct JwtClaims {
  std::string subject;
  std::string role = "operator";
  std::vector<std::string> scopes;
  int64_t expires_at_ms = 0;  // 0 = no exp claim
};
// Checks the signature (constant time), alg, iss, aud, exp and nbf (with the
// skew). InvalidArgument with the reason on any failure.
Result<JwtClaims> VerifyJwt(std::string_view token, const JwtConfig& config, int64_t now_ms);

// Base64url without padding (RFC 4648 section 5).
std::string Base64UrlEncode(std::string_view bytes);
bool Base64UrlDecode(std::string_view text, std::string* bytes);
// HMAC-SHA256 of `data` under `key`, raw bytes.
std::string HmacSha256(std::string_view key, std::string_view data);
// Equal contents, in time independent of where they differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_AUTH_H_
