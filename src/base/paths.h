// Path relations shared by the modules that confine files (the agents'
// tools, the sandbox runtimes).
#ifndef SMITHERS_BASE_PATHS_H_
#define SMITHERS_BASE_PATHS_H_

#include <filesystem>

namespace smithers::base {

// Whether `p` is `root` or inside it, comparing whole components (/usr is
// not within /us) of the paths as given: canonicalise both first when links
// or `..` matter. A trailing separator on `root` is ignored.
bool PathWithin(const std::filesystem::path& root, const std::filesystem::path& p);

}  // namespace smithers::base

#endif  // SMITHERS_BASE_PATHS_H_
