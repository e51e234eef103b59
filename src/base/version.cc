#include "base/version.h"

#ifndef SMITHERS_VERSION
#error "SMITHERS_VERSION is set by CMakeLists.txt from project(VERSION)"
#endif
#ifndef SMITHERS_BUILD_COMMIT
#error "SMITHERS_BUILD_COMMIT is set by CMakeLists.txt (git rev-parse at configure time)"
#endif

namespace smithers::base {

const char* Version() { return SMITHERS_VERSION; }

const char* BuildCommit() { return SMITHERS_BUILD_COMMIT; }

}  // namespace smithers::base
