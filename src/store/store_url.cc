#include "store/store_url.h"

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "smithers/store.h"

namespace smithers {
namespace store {
namespace {

// Where each password of `url` sits: {offset, length}.
std::vector<std::pair<size_t, size_t>> PasswordSpans(const std::string& url) {
  std::vector<std::pair<size_t, size_t>> spans;
  const size_t n = SchemeLength(url);
  if (n == 0 || url.compare(n + 1, 2, "//") != 0) return spans;
  const size_t authority = n + 3;
  const size_t end = url.find_first_of("/?#", authority);
  const size_t at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
  if (at != std::string::npos && at >= authority) {
    const size_t colon = url.find(':', authority);
    if (colon != std::string::npos && colon < at) spans.emplace_back(colon + 1, at - colon - 1);
  }
  constexpr std::string_view kKey = "password=";
  for (size_t pos = url.find(kKey); pos != std::string::npos; pos = url.find(kKey, pos + 1)) {
    if (pos == 0 || (url[pos - 1] != '?' && url[pos - 1] != '&')) continue;
    const size_t value = pos + kKey.size();
    const size_t value_end = url.find('&', value);
    spans.emplace_back(value, (value_end == std::string::npos ? url.size() : value_end) - value);
  }
  return spans;
}

void ReplaceAll(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
}

}  // namespace

size_t SchemeLength(const std::string& url) {
  if (url.empty() || std::isalpha(static_cast<unsigned char>(url[0])) == 0) return 0;
  size_t i = 1;
  while (i < url.size() && (std::isalnum(static_cast<unsigned char>(url[i])) != 0 ||
                            url[i] == '+' || url[i] == '-' || url[i] == '.')) {
    ++i;
  }
  return i < url.size() && url[i] == ':' ? i : 0;
}

std::vector<std::string> UrlPasswords(const std::string& url) {
  std::vector<std::string> passwords;
  for (auto [offset, length] : PasswordSpans(url)) {
    if (length > 0) passwords.push_back(url.substr(offset, length));
  }
  return passwords;
}

std::string ScrubUrlSecrets(std::string text, const std::string& url) {
  ReplaceAll(text, url, RedactStoreUrl(url));
  for (const std::string& password : UrlPasswords(url)) ReplaceAll(text, password, "***");
  return text;
}

}  // namespace store

std::string RedactStoreUrl(const std::string& url) {
  std::string out = url;
  auto spans = store::PasswordSpans(url);
  // From the last, so earlier offsets stay valid.
  for (auto it = spans.rbegin(); it != spans.rend(); ++it)
    out.replace(it->first, it->second, "***");
  return out;
}

}  // namespace smithers
