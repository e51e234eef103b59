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
#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store_url.h"

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
  // A server: the whole URL is the connection string (libpq reads it).
  bool server = false;
};

// Every backend, by URL scheme. A bare path is the first one's.
const Backend kBackends[] = {
    {"sqlite", "SQLite", {"sqlite"}, store::OpenSqliteStoreAt, "sqlite:PATH"},
    {"postgres",
     "PostgreSQL",
     {"postgres", "postgresql"},
     store::OpenPostgresStoreAt,
     "postgres://USER@HOST/DB",
     /*server=*/true},
};

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
  size_t n = store::SchemeLength(url);
  const std::string scheme = base::AsciiLower(std::string_view(url).substr(0, n));
  const Backend* backend = n > 0 ? BackendForScheme(scheme) : nullptr;
  const bool slashes = n > 0 && url.compare(n + 1, 2, "//") == 0;
  if (backend == nullptr && !slashes) {
    // No scheme, or one we do not know not followed by "//": a file path
    // (`a:b.db`), which the first backend (SQLite) keeps.
    return StoreLocation{.backend = std::string(kBackends[0].name), .path = url};
  }
  const std::string shown = RedactStoreUrl(url);
  if (backend == nullptr) {
    return InvalidArgumentError("store URL " + shown + ": unknown scheme \"" + scheme +
                                ":\"; give " + AcceptedForms());
  }
  if (backend->open == nullptr) {
    return InvalidArgumentError("store URL " + shown + ": this build has no " +
                                std::string(backend->display) +
                                " store (not supported yet); give " + AcceptedForms());
  }
  if (backend->server) {
    if (!slashes) {
      return InvalidArgumentError("store URL " + shown + ": write " + scheme +
                                  "://USER@HOST:PORT/DATABASE (host, port and user may be left "
                                  "out: " +
                                  scheme + ":///DATABASE), or sqlite:PATH for a SQLite file");
    }
    return StoreLocation{.backend = std::string(backend->name), .url = url};
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
