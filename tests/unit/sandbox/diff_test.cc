// Line diffs for a Sandbox's review: golden unified diffs in the format
// `diff -u` writes (and `git apply` reads), and, on random texts, edit
// scripts that are shortest (checked against the LCS) and rebuild both sides.
#include "sandbox/diff.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace smithers::sandbox {
namespace {

TEST(DiffTest, GoldenUnifiedDiffs) {
  EXPECT_EQ(UnifiedDiff("a\nb\n", "a\nb\n", "a/x", "b/x"), "");
  EXPECT_EQ(UnifiedDiff("hello\nworld\n", "hello\nthere\nworld\n", "a/x", "b/x"),
            "--- a/x\n+++ b/x\n@@ -1,2 +1,3 @@\n hello\n+there\n world\n");
  EXPECT_EQ(UnifiedDiff("", "new\n", "/dev/null", "b/c"),
            "--- /dev/null\n+++ b/c\n@@ -0,0 +1 @@\n+new\n");
  EXPECT_EQ(UnifiedDiff("bye\n", "", "a/b", "/dev/null"),
            "--- a/b\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n");
  EXPECT_EQ(UnifiedDiff("x\n", "x", "a/n", "b/n"),
            "--- a/n\n+++ b/n\n@@ -1 +1 @@\n-x\n+x\n\\ No newline at end of file\n");
  EXPECT_EQ(UnifiedDiff(std::string("a\0b", 3), "ab", "a/bin", "b/bin"),
            "Binary files a/bin and b/bin differ\n");
  // Two changes far apart are two hunks; near ones share one.
  std::string a;
  for (int i = 1; i <= 20; ++i) a += std::to_string(i) + "\n";
  std::string b = a;
  b.replace(b.find("2\n"), 2, "two\n");
  b.replace(b.find("19\n"), 3, "nineteen\n");
  EXPECT_EQ(UnifiedDiff(a, b, "a/n", "b/n"),
            "--- a/n\n+++ b/n\n"
            "@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n"
            "@@ -16,5 +16,5 @@\n 16\n 17\n 18\n-19\n+nineteen\n 20\n");
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t nl = s.find('\n', start);
    size_t end = nl == std::string::npos ? s.size() : nl + 1;
    out.push_back(s.substr(start, end - start));
    start = end;
  }
  return out;
}

int64_t Lcs(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::vector<int64_t>> t(a.size() + 1, std::vector<int64_t>(b.size() + 1, 0));
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      t[i][j] = a[i - 1] == b[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
    }
  }
  return t[a.size()][b.size()];
}

TEST(DiffTest, RandomScriptsAreShortestAndRebuildBothSides) {
  std::mt19937 rng(7);
  for (int round = 0; round < 400; ++round) {
    auto text = [&] {
      std::string s;
      int n = static_cast<int>(rng() % 30);
      for (int i = 0; i < n; ++i) s += std::string(1, static_cast<char>('a' + rng() % 4)) + "\n";
      if (rng() % 5 == 0) s += "z";  // no final newline
      return s;
    };
    std::string a = text();
    std::string b = text();
    LineDiff d = DiffLines(a, b);
    std::vector<std::string> la = Split(a);
    std::vector<std::string> lb = Split(b);
    ASSERT_FALSE(d.whole);
    int64_t lcs = Lcs(la, lb);
    EXPECT_EQ(d.added, static_cast<int64_t>(lb.size()) - lcs) << a << "|" << b;
    EXPECT_EQ(d.removed, static_cast<int64_t>(la.size()) - lcs) << a << "|" << b;
    std::string old_side;
    std::string new_side;
    for (const DiffOp& op : d.ops) {
      if (op.kind != DiffOp::kAdd) old_side += la[op.old_line];
      if (op.kind != DiffOp::kRemove) new_side += lb[op.new_line];
      if (op.kind == DiffOp::kKeep) {
        EXPECT_EQ(la[op.old_line], lb[op.new_line]);
      }
    }
    EXPECT_EQ(old_side, a);
    EXPECT_EQ(new_side, b);
  }
}

TEST(DiffTest, PastTheWorkBoundTheScriptIsWhole) {
  std::string a;
  std::string b;
  for (int i = 0; i < 3000; ++i) {
    a += "a" + std::to_string(i) + "\n";
    b += "b" + std::to_string(i) + "\n";
  }
  LineDiff d = DiffLines(a, b);
  EXPECT_TRUE(d.whole);
  EXPECT_EQ(d.added, 3000);
  EXPECT_EQ(d.removed, 3000);
}

}  // namespace
}  // namespace smithers::sandbox
