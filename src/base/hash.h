// Hashes and identifiers shared by every module.
#ifndef SMITHERS_BASE_HASH_H_
#define SMITHERS_BASE_HASH_H_

#include <string>
#include <string_view>

namespace smithers::base {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// A random RFC 4122 version-4 UUID from the OS CSPRNG, lower-case.
std::string NewUuid();

// Formats epoch milliseconds as ISO 8601 UTC, e.g. "2026-11-28T12:00:00.000Z".
std::string FormatIsoTime(long long epoch_ms);

}  // namespace smithers::base

#endif  // SMITHERS_BASE_HASH_H_
