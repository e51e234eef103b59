// Gateway access control (docs/gateway.md "Access control"): the scope every
// RPC method needs, how a grant's scopes satisfy it, bearer tokens (minted,
// hashed, looked up), grants read from a tokens file, and HS256 JWTs.
#ifndef SMITHERS_GATEWAY_AUTH_H_
#define SMITHERS_GATEWAY_AUTH_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers::gateway {

// The scope `method` requires: its row's in the method table (Methods(),
// gateway/methods.h), or run:read for a method the table does not list (SPEC 5.5 "unmapped").
std::string_view RequiredScope(std::string_view method);

// True for a method whose scope is a `:read` one: it writes nothing, so its
// reads (and the token check before them) can share one read snapshot.
bool ReadsOnly(std::string_view method);

// True when a grant holding `granted` may call `method` (which requires
// `required`): `*`; the scope itself or one implying it (run:admin > run:write
// > run:read, cron:write > cron:read, approval:submit > approval:read); the
// method's own name or a prefix wildcard (`cron*`, `cron.*`) when the
// method's scope implies the requirement; or a legacy ranked grant (`read`,
// `execute`, `approve`, `admin`).
bool ScopesAllow(const std::vector<std::string>& granted, std::string_view method,
                 std::string_view required);

// ---- what a caller may see (docs/gateway.md "What each scope sees") ----
//
// Besides each method's own scope, some of what the Gateway pushes or
// returns needs one more: approvals (their requests, owners, decisions) need
// approval:read, cron events cron:read. One table names that content; every
// push and reply that carries it asks MaySee. Content names:
//   snapshot.runs, snapshot.approvals       hello's snapshot
//   event.<RunEventType>                    a run.event frame's payload
//   push.<event>                            a broadcast event (cron.triggered)
//   output.approvalDecision                 getNodeOutput of an Approval node
struct ContentScope {
  std::string_view content;
  std::string_view scope;   // what the caller must hold
  std::string_view method;  // a method whose name, granted, also allows it
};
const std::vector<ContentScope>& ContentScopes();

// The scope `content` needs beyond the method that carries it; "" when the
// table does not list it (the method's own scope decides).
std::string_view ContentRequiredScope(std::string_view content);

// True when a grant holding `granted` may receive `content` (ScopesAllow with
// the table's scope and method; true for content the table does not list).
bool MaySee(const std::vector<std::string>& granted, std::string_view content);

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

// ---- token lifetimes (docs/gateway.md "Token lifetimes") ----

// The longest lifetime a token may be issued with (`token issue --max-ttl`)
// and a tokens-file grant may have (`auth.max_token_ttl`), unless changed.
constexpr int64_t kDefaultMaxTokenTtlMs = 30LL * 24 * 60 * 60 * 1000;

// A duration for messages: "30d", "90m", "1500ms" (the largest unit that
// divides it exactly).
std::string FormatDurationMs(int64_t ms);

// A maximum lifetime: a duration like 30d, above zero. InvalidArgument
// "\"TEXT\" is not a duration like 30d" otherwise (also when it overflows).
Result<int64_t> ParseMaxTokenTtl(std::string_view text);

// A token lifetime `--ttl TEXT` under `max_ttl_ms`: a duration above zero
// and at most the maximum. InvalidArgument saying why (a malformed or
// overflowing duration, "never" (which is --no-expiry), above the maximum).
Result<int64_t> ParseTokenTtl(std::string_view text, int64_t max_ttl_ms);

// Whether a tokens-file grant's lifetime is acceptable under `max_ttl_ms`:
// it must expire (expiresAtMs set), and no later than the maximum after its
// issue (issuedAtMs, or `now_ms` when it is absent or in the future).
// InvalidArgument saying why otherwise.
Status CheckGrantLifetime(int64_t issued_at_ms, int64_t expires_at_ms, int64_t max_ttl_ms,
                          int64_t now_ms);

// ---- grants from a tokens file (`--tokens`; docs/gateway.md "Tokens file") ----
//
//   Result<FileGrants> grants = ReadTokenFile("tokens.json");  // at start-up
//   TokenFile file("tokens.json");                             // while serving
//   if (std::optional<Json> line = file.Refresh(now)) Log(*line);
//   Result<std::optional<FileGrant>> g = file.Check(TokenHash(bearer), now);

// One grant of a tokens file. Only the SHA-256 of its bearer is kept.
struct FileGrant {
  std::string token_id;    // tokenId, else sha256(bearer)[0:16] (or the entry's name)
  std::string token_hash;  // SHA-256 hex of the bearer
  std::string role = "operator";
  std::string user_id;  // "" = none
  std::vector<std::string> scopes;
  int64_t issued_at_ms = 0;
  int64_t expires_at_ms = 0;  // 0 = never
  int64_t revoked_at_ms = 0;  // 0 = not revoked
  // Why the grant authenticates nobody (ApplyTokenPolicy: no expiry, or a
  // lifetime over the maximum); "" = usable.
  std::string refused;
};

// The grants of one tokens file, by token hash.
struct FileGrants {
  std::map<std::string, FileGrant> by_hash;
  bool holds_bearers = false;  // some entry gives its bearer in plain text
};

// Parses a tokens file: SPEC 5.11 version 2 (`tokens` keyed by bearer),
// version 1 (keyed by token id, with `tokenHash`), and entries keyed by any
// name that give only `tokenHash`. InvalidArgument naming the entry (by its
// name or token id, never by its bearer) and what is wrong with it.
Result<FileGrants> ParseTokenFile(std::string_view text);

// Marks the grants whose lifetime CheckGrantLifetime refuses (their
// `refused` says why): such a grant is ignored, the others still work.
// Returns how many were refused.
int ApplyTokenPolicy(FileGrants* grants, int64_t max_ttl_ms, int64_t now_ms);

// Reads and parses `path`. InvalidArgument "PATH: reason" when it cannot be
// read, is not a regular file, lets group or other users read or write it
// (mode & 077), or does not parse.
Result<FileGrants> ReadTokenFile(const std::string& path);

// The grants of a tokens file while the Gateway serves: re-read whenever the
// file changes, so an edit (a revocation, an expiry, a new grant) applies to
// the next request. A file that fails to read keeps the last good grants.
// Thread-safe.
class TokenFile {
 public:
  // "" = no file: Check always finds nothing. Reads nothing until Refresh.
  // Grants over `max_ttl_ms` (or without an expiry) are refused, see
  // ApplyTokenPolicy.
  explicit TokenFile(std::string path, int64_t max_ttl_ms = kDefaultMaxTokenTtlMs);

  // Re-reads the file when it changed (inode, size, mtime, ctime or mode)
  // since it was last read, and retries a failed read once a second. Costs
  // one stat() when nothing changed. Returns a line for the Gateway's log
  // when it read the file: `tokens.loaded {file, grants, refused}` (refused:
  // [{tokenId, error}] of the grants ApplyTokenPolicy refused), or
  // `tokens.load_failed {file, error, grants}` (once per failing version of
  // the file; the grants kept are the last good ones).
  std::optional<Json> Refresh(int64_t now_ms);

  // The file's grant for a bearer's SHA-256 as of the last Refresh: nullopt
  // when the file has none; InvalidArgument when it is refused, revoked or
  // expired at `now_ms`.
  Result<std::optional<FileGrant>> Check(const std::string& token_hash, int64_t now_ms) const;

  // How many times Refresh has read the file: the first read, each changed
  // version and each retry of a failed one (/metrics exports it).
  int64_t Reads() const;

  // What tells one version of the file from another.
  struct Version {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtime_ns = 0, ctime_ns = 0;
    mode_t mode = 0;
    bool operator==(const Version&) const = default;
  };

 private:
  const std::string path_;
  const int64_t max_ttl_ms_;
  mutable std::mutex mu_;
  bool read_once_ = false;                    // guarded by mu_
  Version version_;                           // guarded by mu_: of the last read
  std::map<std::string, FileGrant> by_hash_;  // guarded by mu_: the last good grants
  std::string error_;                         // guarded by mu_: of the last read, "" = ok
  int64_t last_read_ms_ = 0;                  // guarded by mu_
  int64_t reads_ = 0;                         // guarded by mu_
};

// ---- trusted proxies (--auth trusted-proxy) ----

// True when `peer` (an IP address as the socket reports it, no port) is one
// of `allowed`: IP addresses or CIDR blocks ("127.0.0.1", "10.0.0.0/8",
// "::1", "fd00::/8"). An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) matches as
// IPv4. An entry that does not parse matches nothing.
bool PeerAllowed(const std::vector<std::string>& allowed, std::string_view peer);

// InvalidArgument naming the first entry that is not an address or a CIDR
// block.
Status CheckPeerList(const std::vector<std::string>& allowed);

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
