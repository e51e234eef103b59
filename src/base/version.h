// The version of this build, from one place: the top-level CMakeLists.txt's
// project(VERSION ...), compiled into version.cc only.
#ifndef SMITHERS_BASE_VERSION_H_
#define SMITHERS_BASE_VERSION_H_

namespace smithers::base {

// "MAJOR.MINOR.PATCH", as `smithers --version` and the Gateway's hello say it.
const char* Version();

// The commit the build was configured at (12 hex digits), or "unknown".
const char* BuildCommit();

}  // namespace smithers::base

#endif  // SMITHERS_BASE_VERSION_H_
