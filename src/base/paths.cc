#include "base/paths.h"

namespace smithers::base {

bool PathWithin(const std::filesystem::path& root, const std::filesystem::path& p) {
  auto r = root.begin(), x = p.begin();
  for (; r != root.end(); ++r, ++x) {
    if (r->empty()) continue;  // a trailing separator
    if (x == p.end() || *r != *x) return false;
  }
  return true;
}

}  // namespace smithers::base
