#include "base/hash.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <string>

namespace smithers::base {

namespace {

std::string Hex(const unsigned char* digest, unsigned int len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(static_cast<size_t>(len) * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

EVP_MD_CTX* Ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }

// OpenSSL fails these only when out of memory, which nothing here recovers from.
void Check(int ok, const char* what) {
  if (ok != 1) throw std::runtime_error(std::string("SHA-256: ") + what + " failed");
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr);
  return Hex(digest.data(), len);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  Check(ctx_ != nullptr ? 1 : 0, "EVP_MD_CTX_new");
  Check(EVP_DigestInit_ex(Ctx(ctx_), EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() { EVP_MD_CTX_free(Ctx(ctx_)); }

Sha256::Sha256(const Sha256& other) : ctx_(EVP_MD_CTX_new()) {
  Check(ctx_ != nullptr ? 1 : 0, "EVP_MD_CTX_new");
  Check(EVP_MD_CTX_copy_ex(Ctx(ctx_), Ctx(other.ctx_)), "EVP_MD_CTX_copy_ex");
}

Sha256& Sha256::operator=(const Sha256& other) {
  if (this != &other) {
    Check(EVP_MD_CTX_copy_ex(Ctx(ctx_), Ctx(other.ctx_)), "EVP_MD_CTX_copy_ex");
  }
  return *this;
}

void Sha256::Update(std::string_view data) {
  Check(EVP_DigestUpdate(Ctx(ctx_), data.data(), data.size()), "EVP_DigestUpdate");
}

std::string Sha256::HexDigest() const {
  Sha256 copy(*this);  // finishing a digest ends its context
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  Check(EVP_DigestFinal_ex(Ctx(copy.ctx_), digest.data(), &len), "EVP_DigestFinal_ex");
  return Hex(digest.data(), len);
}

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  const unsigned char* out =
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data(), &len);
  if (out == nullptr) throw std::runtime_error("HMAC-SHA-256 failed");
  return Hex(digest.data(), len);
}

std::string RandomHex(size_t bytes) {
  std::string b(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(b.data()), static_cast<int>(b.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return Hex(reinterpret_cast<const unsigned char*>(b.data()), static_cast<unsigned int>(bytes));
}

std::string NewUuid() {
  std::array<unsigned char, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    // The CSPRNG failing is not recoverable in any meaningful way.
    throw std::runtime_error("RAND_bytes failed");
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  char buf[37];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return buf;
}

std::string FormatIsoTime(long long epoch_ms) {
  std::time_t secs = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(epoch_ms % 1000));
  return buf;
}

bool ParseIsoTime(std::string_view text, long long* epoch_ms) {
  std::string t(text);
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, used = 0;
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
      used != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
    return false;
  }
  size_t i = 19;
  long long frac_ms = 0;
  if (i < t.size() && t[i] == '.') {
    long long scale = 100;
    ++i;
    size_t start = i;
    while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) {
      frac_ms += (t[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == start) return false;
  }
  long long offset_min = 0;
  if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) {
    ++i;
  } else if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    int oh = 0, om = 0, n = 0;
    if (std::sscanf(t.c_str() + i + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5) return false;
    offset_min = (oh * 60LL + om) * (t[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return false;
  }
  if (i != t.size()) return false;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  long long secs = timegm(&tm);
  *epoch_ms = (secs - offset_min * 60) * 1000 + frac_ms;
  return true;
}

bool ParseDurationMs(std::string_view text, long long* ms) {
  size_t i = 0;
  long long n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (__builtin_mul_overflow(n, 10LL, &n) || __builtin_add_overflow(n, text[i] - '0', &n)) {
      return false;
    }
    ++i;
  }
  if (i == 0) return false;
  std::string_view unit = text.substr(i);
  long long mult = 0;
  if (unit.empty() || unit == "ms") mult = 1;
  if (unit == "s") mult = 1000;
  if (unit == "m") mult = 60LL * 1000;
  if (unit == "h") mult = 60LL * 60 * 1000;
  if (unit == "d") mult = 24LL * 60 * 60 * 1000;
  if (mult == 0) return false;
  // A value past what milliseconds since 1970 can hold is malformed, not a
  // wrapped (negative or small) duration.
  long long out = 0;
  if (__builtin_mul_overflow(n, mult, &out)) return false;
  *ms = out;
  return true;
}

}  // namespace smithers::base
