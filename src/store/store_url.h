// Pieces of store URLs shared by OpenStore (src/store/open/) and the server
// backends, which must never show a password they were given.
#ifndef SMITHERS_STORE_STORE_URL_H_
#define SMITHERS_STORE_STORE_URL_H_

#include <cstddef>
#include <string>
#include <vector>

namespace smithers::store {

// The length of the scheme `url` starts with ("sqlite" in "sqlite:x"), or 0.
size_t SchemeLength(const std::string& url);

// The passwords a SCHEME://... URL holds (user:PASSWORD@, ?password=), as
// written in it; none for a path.
std::vector<std::string> UrlPasswords(const std::string& url);

// `text` (an error message about `url`) with `url` shown redacted and every
// password of it replaced by "***".
std::string ScrubUrlSecrets(std::string text, const std::string& url);

}  // namespace smithers::store

#endif  // SMITHERS_STORE_STORE_URL_H_
