// Result bundles crafted the ways a hostile worker would: every one is
// refused before anything in it is read as an output or a patch.
#include "sandbox/bundle.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace smithers::sandbox {
namespace {

namespace fs = std::filesystem;

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smithers_bundle_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/result";
    fs::create_directories(dir_ + "/patches");
    fs::create_directories(dir_ + "/artifacts/reports");
    fs::create_directories(dir_ + "/logs");
    Write("patches/0001.patch", "int main() { return 0; }\n");
    Write("artifacts/reports/coverage.txt", "91%\n");
    Write("logs/stream.ndjson", "{}\n");
    Manifest(Good());
  }
  void TearDown() override { fs::remove_all(root_); }

  static Json Good() {
    return {{"status", "finished"},
            {"runId", "child-1"},
            {"outputs", {{"report", {{"ok", true}, {"lines", {1, 2, 3}}}}}},
            {"patches",
             {{{"path", "src/main.c"}, {"operation", "modify"}, {"file", "patches/0001.patch"}},
              {{"path", "old.txt"}, {"operation", "delete"}}}}};
  }
  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(dir_ + "/" + rel) << text;
  }
  void Manifest(const Json& m) { Write("README.md", m.dump()); }
  // The message of the refusal (the test fails when the bundle is accepted).
  std::string Refusal(const BundleLimits& limits = {}) {
    Result<ResultBundle> b = ReadResultBundle(dir_, limits);
    EXPECT_FALSE(b.ok()) << "accepted";
    if (b.ok()) return "";
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << b.status().ToString();
    return b.status().message();
  }
  std::string Patched(const std::string& path, const std::string& file = "patches/0001.patch") {
    Json m = Good();
    m["patches"] = {{{"path", path}, {"operation", "add"}, {"file", file}}};
    Manifest(m);
    return Refusal();
  }

  std::string root_, dir_;
};

TEST_F(BundleTest, AWellFormedBundleIsRead) {
  Result<ResultBundle> b = ReadResultBundle(dir_);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->status, "finished");
  EXPECT_EQ(b->run_id, "child-1");
  EXPECT_EQ(b->outputs["report"]["lines"], Json({1, 2, 3}));
  ASSERT_EQ(b->patches.size(), 2u);
  EXPECT_EQ(b->patches[0].path, "src/main.c");
  EXPECT_EQ(b->patches[0].file, "patches/0001.patch");
  EXPECT_EQ(b->patches[1].operation, "delete");
  EXPECT_EQ(b->artifacts, std::vector<std::string>{"artifacts/reports/coverage.txt"});
  EXPECT_EQ(b->bytes, static_cast<int64_t>(25 + 4 + 3 + Good().dump().size()));
}

TEST_F(BundleTest, PatchPathsThatLeaveTheWorkspaceAreRefused) {
  EXPECT_NE(Patched("../etc/passwd").find("\"..\" part"), std::string::npos);
  EXPECT_NE(Patched("src/../../x").find("\"..\" part"), std::string::npos);
  EXPECT_NE(Patched("/etc/passwd").find("is absolute"), std::string::npos);
  EXPECT_NE(Patched("./a").find("\".\""), std::string::npos);
  EXPECT_NE(Patched("a//b").find("empty"), std::string::npos);
  EXPECT_NE(Patched("").find("an empty path"), std::string::npos);
  EXPECT_NE(Patched(std::string("a\0b", 3)).find("NUL"), std::string::npos);
  EXPECT_NE(Patched("a\\..\\b").find("backslash"), std::string::npos);
  EXPECT_NE(Patched(std::string(1100, 'a')).find("longer than 1024"), std::string::npos);
  // The patch's own file must be a file of patches/, named exactly.
  for (const char* file : {"patches/../README.md", "artifacts/reports/coverage.txt", "/etc/passwd",
                           "patches/missing.patch", "patches/"}) {
    EXPECT_NE(Patched("a.c", file).find("is not a file of the bundle's patches/ folder"),
              std::string::npos)
        << file;
  }
}

TEST_F(BundleTest, LinksDevicesAndStrangersAnywhereAreRefused) {
  fs::create_symlink("/etc/passwd", dir_ + "/artifacts/passwd");
  EXPECT_NE(Refusal().find("artifacts/passwd: a symlink"), std::string::npos);
  fs::remove(dir_ + "/artifacts/passwd");
  fs::create_directory_symlink("/etc", dir_ + "/artifacts/etc");
  EXPECT_NE(Refusal().find("artifacts/etc: a symlink"), std::string::npos);
  fs::remove(dir_ + "/artifacts/etc");
  // A hard link to a file outside: its content would be read as the bundle's.
  std::ofstream(root_ + "/outside") << "secret";
  fs::create_hard_link(root_ + "/outside", dir_ + "/patches/0002.patch");
  EXPECT_NE(Refusal().find("patches/0002.patch: a hard link"), std::string::npos);
  fs::remove(dir_ + "/patches/0002.patch");
  ASSERT_EQ(mkfifo((dir_ + "/logs/pipe").c_str(), 0600), 0);
  EXPECT_NE(Refusal().find("logs/pipe: a device, fifo or socket"), std::string::npos);
  fs::remove(dir_ + "/logs/pipe");
  Write("run.sh", "#!/bin/sh\n");
  EXPECT_NE(Refusal().find("run.sh: not part of a bundle"), std::string::npos);
  fs::remove(dir_ + "/run.sh");
  fs::create_directories(dir_ + "/patches/sub");
  EXPECT_NE(Refusal().find("patches/ is flat"), std::string::npos);
  fs::remove(dir_ + "/patches/sub");
  // The bundle folder itself, and its manifest, as links.
  fs::create_directory_symlink(dir_, root_ + "/link");
  Result<ResultBundle> via = ReadResultBundle(root_ + "/link");
  EXPECT_EQ(via.status().code(), StatusCode::kInvalidArgument);
  fs::rename(dir_ + "/README.md", root_ + "/manifest");
  fs::create_symlink(root_ + "/manifest", dir_ + "/README.md");
  EXPECT_NE(Refusal().find("README.md: a symlink"), std::string::npos);
  fs::remove(dir_ + "/README.md");
  EXPECT_EQ(ReadResultBundle(dir_).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(ReadResultBundle(dir_ + "-missing").status().code() == StatusCode::kNotFound);
}

TEST_F(BundleTest, EachLimitHolds) {
  Write("README.md", std::string(64, ' ') + Good().dump());
  EXPECT_NE(Refusal({.max_manifest_bytes = 64}).find("README.md: larger than 64 bytes"),
            std::string::npos);
  Manifest(Good());
  EXPECT_NE(Refusal({.max_bundle_bytes = 100}).find("larger than 100 bytes"), std::string::npos);
  Write("patches/0002.patch", "x");
  EXPECT_NE(Refusal({.max_patches = 1}).find("more than 1 files"), std::string::npos);
  Json many = Good();
  many["patches"] = Json::array();
  for (int i = 0; i < 3; ++i) {
    many["patches"].push_back({{"path", "f" + std::to_string(i)}, {"operation", "delete"}});
  }
  Manifest(many);
  EXPECT_NE(Refusal({.max_patches = 2}).find("more than 2 patches"), std::string::npos);
  Json deep = 1;
  for (int i = 0; i < 17; ++i) deep = Json::array({deep});
  Json m = Good();
  m["outputs"] = {{"x", deep}};
  Manifest(m);
  EXPECT_NE(Refusal().find("nests deeper"), std::string::npos);
  m["outputs"] = {{"x", Json(std::vector<int>(513, 0))}};
  Manifest(m);
  EXPECT_NE(Refusal().find("outputs.x is an array of more than 512 items"), std::string::npos);
  m["outputs"] = {{"x", std::string((64 << 10) + 1, 'a')}};
  Manifest(m);
  EXPECT_NE(Refusal().find("outputs.x is a string longer than 65536 bytes"), std::string::npos);
  m = Good();
  m["runId"] = std::string(257, 'r');
  Manifest(m);
  EXPECT_NE(Refusal().find("\"runId\" must be text of at most 256 bytes"), std::string::npos);
  Manifest(Good());
  EXPECT_NE(Refusal({.max_entries = 3}).find("more than 3 files and folders"), std::string::npos);
}

TEST_F(BundleTest, AManifestThatIsNotTheFormatIsRefused) {
  Write("README.md", "# Result\nall good");
  EXPECT_NE(Refusal().find("not a JSON object"), std::string::npos);
  Json m = Good();
  m["status"] = "done";
  Manifest(m);
  EXPECT_NE(Refusal().find("\"status\" must be finished, failed or cancelled"), std::string::npos);
  m = Good();
  m["command"] = "rm -rf /";
  Manifest(m);
  EXPECT_NE(Refusal().find("unknown field \"command\""), std::string::npos);
  m = Good();
  m["patches"] = {{{"path", "a"}, {"operation", "chmod"}, {"file", "patches/0001.patch"}}};
  Manifest(m);
  EXPECT_NE(Refusal().find("operation must be add, modify or delete"), std::string::npos);
  m["patches"] = {{{"path", "a"}, {"operation", "delete"}},
                  {{"path", "a"}, {"operation", "delete"}}};
  Manifest(m);
  EXPECT_NE(Refusal().find("patched twice"), std::string::npos);
  m["patches"] = {{{"path", "a"}, {"operation", "delete"}, {"mode", "4755"}}};
  Manifest(m);
  EXPECT_NE(Refusal().find("only path, operation and file"), std::string::npos);
}

}  // namespace
}  // namespace smithers::sandbox
