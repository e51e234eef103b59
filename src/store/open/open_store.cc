// OpenStore: the one place that knows every store backend. A backend lives in
// its folder of src/store/ (its CMakeLists.txt builds smithers_store_NAME,
// which the top-level CMakeLists.txt links here) and is registered by one row
// of kBackends below.
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <utility>

#include "base/text.h"
#include "smithers/status.h"
#include "smithers/store.h"
#include "store/sqlite/sqlite_store.h"

namespace smithers {
namespace {

// Opens the store at `location` (ParseStoreUrl's result).
using OpenFn = Result<std::unique_ptr<Store>> (*)(const StoreLocation& location,
                                                  const StoreOptions& options);

struct Backend {
  std::string_view name;     // StoreLocation::backend
  std::string_view display;  // in messages
  std::initializer_list<std::string_view> schemes;
  OpenFn open;  // null: a backend this build does not have
  // How to spell the URL in an error message.
  std::string_view form;
};

// Every backend, by URL scheme. A bare path is the first one's.
const Backend kBackends[] = {
    {"sqlite", "SQLite", {"sqlite"}, store::OpenSqliteStoreAt, "sqlite:PATH"},
    {"postgres", "PostgreSQL", {"postgres", "postgresql"}, nullptr, "postgres://..."},
};

// The length of the scheme `url` starts with ("sqlite" in "sqlite:x"), or 0.
size_t SchemeLength(const std::string& url) {
  if (url.empty() || std::isalpha(static_cast<unsigned char>(url[0])) == 0) return 0;
  size_t i = 1;
  while (i < url.size() && (std::isalnum(static_cast<unsigned char>(url[i])) != 0 ||
                            url[i] == '+' || url[i] == '-' || url[i] == '.')) {
    ++i;
  }
  return i < url.size() && url[i] == ':' ? i : 0;
}

const Backend* BackendForScheme(const std::string& scheme) {
  for (const Backend& b : kBackends) {
    if (std::find(b.schemes.begin(), b.schemes.end(), scheme) != b.schemes.end()) return &b;
  }
  return nullptr;
}

std::string AcceptedForms() {
  std::string forms = "a file path";
  for (const Backend& b : kBackends) {
    if (b.open != nullptr) forms += " or " + std::string(b.form);
  }
  return forms;
}

}  // namespace

Result<StoreLocation> ParseStoreUrl(const std::string& url) {
  if (url.empty())
    return InvalidArgumentError("the store URL (--db) is empty: give " + AcceptedForms());
  size_t n = SchemeLength(url);
  const std::string scheme = base::AsciiLower(std::string_view(url).substr(0, n));
  const Backend* backend = n > 0 ? BackendForScheme(scheme) : nullptr;
  const bool slashes = n > 0 && url.compare(n + 1, 2, "//") == 0;
  if (backend == nullptr && !slashes) {
    // No scheme, or one we do not know not followed by "//": a file path
    // (`a:b.db`), which the first backend (SQLite) keeps.
    return StoreLocation{.backend = std::string(kBackends[0].name), .path = url};
  }
  if (backend == nullptr) {
    return InvalidArgumentError("store URL " + url + ": unknown scheme \"" + scheme + ":\"; give " +
                                AcceptedForms());
  }
  if (backend->open == nullptr) {
    return InvalidArgumentError("store URL " + url + ": this build has no " +
                                std::string(backend->display) +
                                " store (not supported yet); give " + AcceptedForms());
  }
  std::string rest = url.substr(n + 1);
  if (rest.rfind("//", 0) == 0) {
    // sqlite:///abs/path: an absolute path after the empty authority.
    if (rest.size() < 3 || rest[2] != '/') {
      return InvalidArgumentError("store URL " + url + ": " + scheme +
                                  ":// takes an absolute path (" + scheme +
                                  ":///var/lib/smithers.db) or write " + scheme + ":PATH");
    }
    rest = rest.substr(2);
  }
  if (rest.empty()) return InvalidArgumentError("store URL " + url + ": no database path");
  return StoreLocation{.backend = std::string(backend->name), .path = rest};
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options) {
  SMITHERS_ASSIGN_OR_RETURN(StoreLocation location, ParseStoreUrl(url));
  for (const Backend& b : kBackends) {
    if (b.name == location.backend) return b.open(location, options);
  }
  return InternalError("no backend " + location.backend);
}

StoreFactory MakeStoreFactory(std::string url, StoreOptions options) {
  return [url = std::move(url), options = std::move(options)] { return OpenStore(url, options); };
}

}  // namespace smithers
