#include "base/version.h"

#ifndef SMITHERS_VERSION
#error "SMITHERS_VERSION is set by CMakeLists.txt from project(VERSION)"
#endif

namespace smithers::base {

const char* Version() { return SMITHERS_VERSION; }

}  // namespace smithers::base
