// Hashes and identifiers shared by every module.
#ifndef SMITHERS_BASE_HASH_H_
#define SMITHERS_BASE_HASH_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace smithers::base {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// SHA-256 over data given in pieces; a copy continues from the same state
// (so a caller can keep the state after a prefix and hash several endings).
//
//   Sha256 h;
//   h.Update("ab");
//   Sha256 after_ab = h;
//   h.Update("c");
//   h.HexDigest() == Sha256Hex("abc");
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);
  void Update(std::string_view data);
  // The digest of what was given so far, lower-case hex; more may follow.
  std::string HexDigest() const;

 private:
  void* ctx_;  // EVP_MD_CTX (OpenSSL stays out of this header)
};

// Lower-case hex HMAC-SHA-256 of `data` under `key` (RFC 2104).
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// `bytes` random bytes from the OS CSPRNG, as lower-case hex.
std::string RandomHex(size_t bytes);

// A random RFC 4122 version-4 UUID from the OS CSPRNG, lower-case.
std::string NewUuid();

// Formats epoch milliseconds as ISO 8601 UTC, e.g. "2026-11-28T12:00:00.000Z".
std::string FormatIsoTime(long long epoch_ms);

// Parses "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)" into epoch
// milliseconds. False when `text` is not such a time.
bool ParseIsoTime(std::string_view text, long long* epoch_ms);

// Parses a duration "500ms", "30s", "5m", "2h", "7d" (or a bare number of
// milliseconds) into milliseconds. False when malformed, negative, or more
// milliseconds than a long long holds (never a wrapped value).
bool ParseDurationMs(std::string_view text, long long* ms);

}  // namespace smithers::base

#endif  // SMITHERS_BASE_HASH_H_
