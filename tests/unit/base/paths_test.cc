#include "base/paths.h"

#include <gtest/gtest.h>

namespace smithers::base {
namespace {

TEST(PathWithin, WholeComponentsOnly) {
  EXPECT_TRUE(PathWithin("/work/repo", "/work/repo"));
  EXPECT_TRUE(PathWithin("/work/repo", "/work/repo/src/a.cc"));
  EXPECT_TRUE(PathWithin("/work/repo/", "/work/repo/src"));
  EXPECT_TRUE(PathWithin("/", "/etc"));
  EXPECT_FALSE(PathWithin("/work/repo", "/work/repo2"));
  EXPECT_FALSE(PathWithin("/work/repo", "/work"));
  EXPECT_FALSE(PathWithin("/usr", "/usrdata"));
}

}  // namespace
}  // namespace smithers::base
