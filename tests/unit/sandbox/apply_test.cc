// Applying a sandbox's changes: all or none, never through a link or out of
// the workspace, and whole after a SIGKILL at any step once recovered.
#include "sandbox/apply.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "base/hash.h"

namespace smithers::sandbox {
namespace {

namespace fs = std::filesystem;

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smithers_apply_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ws_ = root_ + "/ws";
    journal_ = root_ + "/journal";
    fs::create_directories(ws_ + "/src");
    Put("src/main.c", "old main\n");
    Put("README", "old readme\n");
    Put("gone.txt", "to delete\n");
    fs::permissions(ws_ + "/src/main.c", fs::perms(0750));
  }
  void TearDown() override { fs::remove_all(root_); }

  void Put(const std::string& rel, const std::string& text) {
    std::ofstream(ws_ + "/" + rel) << text;
  }
  std::string Get(const std::string& rel) const {
    std::ifstream f(ws_ + "/" + rel);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  // Every file under the workspace and its content.
  std::map<std::string, std::string> Tree() const {
    std::map<std::string, std::string> t;
    for (const auto& e : fs::recursive_directory_iterator(ws_)) {
      if (e.is_regular_file())
        t[fs::relative(e.path(), ws_).string()] = Get(fs::relative(e.path(), ws_).string());
    }
    return t;
  }
  std::vector<FileChange> Changes() const {
    return {
        {.path = "src/main.c",
         .operation = "modify",
         .content = "new main\n",
         .base_sha256 = base::Sha256Hex("old main\n")},
        {.path = "src/lib/util.c", .operation = "add", .content = "util\n"},
        {.path = "gone.txt", .operation = "delete", .base_sha256 = base::Sha256Hex("to delete\n")}};
  }
  std::map<std::string, std::string> Applied() const {
    return {{"src/main.c", "new main\n"}, {"src/lib/util.c", "util\n"}, {"README", "old readme\n"}};
  }

  std::string root_, ws_, journal_;
};

TEST_F(ApplyTest, AllChangesLandKeepingModes) {
  ASSERT_TRUE(ApplyChanges(ws_, Changes(), journal_).ok());
  EXPECT_EQ(Tree(), Applied());
  EXPECT_EQ(fs::status(ws_ + "/src/main.c").permissions(), fs::perms(0750));
  EXPECT_FALSE(fs::exists(journal_ + "/journal.json"));
  EXPECT_FALSE(fs::exists(journal_ + "/staged"));
}

TEST_F(ApplyTest, AlreadyAppliedOnlyWhenEveryChangeIsInEffect) {
  Result<bool> before = AlreadyApplied(ws_, Changes());
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(*before);
  ASSERT_TRUE(ApplyChanges(ws_, Changes(), journal_).ok());
  Result<bool> after = AlreadyApplied(ws_, Changes());
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(*after);
  Put("src/main.c", "edited again\n");  // one change undone: not applied
  EXPECT_FALSE(*AlreadyApplied(ws_, Changes()));
  EXPECT_EQ(AlreadyApplied(ws_, {{.path = "../x", .operation = "delete"}}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ApplyTest, AConflictChangesNothingAndNamesEveryFile) {
  Put("src/main.c", "edited by a person meanwhile\n");
  fs::create_directories(ws_ + "/src/lib");
  Put("src/lib/util.c", "already here\n");
  auto before = Tree();
  Status s = ApplyChanges(ws_, Changes(), journal_);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("src/main.c (changed since it was shipped)"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("src/lib/util.c (added, but it exists)"), std::string::npos);
  EXPECT_EQ(Tree(), before);
  fs::remove(ws_ + "/gone.txt");
  fs::remove(ws_ + "/src/lib/util.c");
  Put("src/main.c", "old main\n");
  s = ApplyChanges(ws_, Changes(), journal_);
  EXPECT_NE(s.message().find("gone.txt (gone)"), std::string::npos) << s.message();
}

TEST_F(ApplyTest, NothingIsWrittenThroughALinkOrOutside) {
  fs::create_directories(root_ + "/outside");
  // A folder of the path is a symlink to outside the workspace.
  fs::create_directory_symlink(root_ + "/outside", ws_ + "/evil");
  Status s = ApplyChanges(ws_, {{.path = "evil/x", .operation = "add", .content = "x"}}, journal_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("goes through a symlink"), std::string::npos) << s.message();
  // The file itself is a symlink.
  fs::create_symlink(root_ + "/outside/target", ws_ + "/link.txt");
  s = ApplyChanges(ws_, {{.path = "link.txt", .operation = "modify", .content = "x"}}, journal_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is a symlink"), std::string::npos) << s.message();
  for (const char* bad : {"../outside/x", "/etc/passwd", "src/../../x", "./a"}) {
    s = ApplyChanges(ws_, {{.path = bad, .operation = "add", .content = "x"}}, journal_);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(fs::is_empty(root_ + "/outside"));
  EXPECT_FALSE(fs::exists(root_ + "/outside/target"));
  s = ApplyChanges(ws_, {{.path = "a", .operation = "chmod"}}, journal_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

// SIGKILL after each durable step, in a child: once recovered, the
// workspace is either untouched (before the journal's commit) or fully
// applied (after), never a mix.
TEST_F(ApplyTest, AKillAtAnyStepLeavesAllOrNoneOnceRecovered) {
  const auto before = Tree();
  int steps = 0;
  {  // how many steps a full apply takes, in a copy
    std::string ws2 = root_ + "/count";
    fs::copy(ws_, ws2, fs::copy_options::recursive);
    ASSERT_TRUE(ApplyChanges(ws2, Changes(), root_ + "/count-journal", [&](int step) {
                  steps = step + 1;
                }).ok());
    fs::remove_all(ws2);
  }
  ASSERT_GE(steps, 6);  // 2 staged, the commit, 3 changes, the journal's removal
  int applied = 0, untouched = 0;
  for (int kill_at = 0; kill_at < steps; ++kill_at) {
    fs::remove_all(ws_);
    fs::remove_all(journal_);
    fs::create_directories(ws_ + "/src");
    Put("src/main.c", "old main\n");
    Put("README", "old readme\n");
    Put("gone.txt", "to delete\n");
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      (void)ApplyChanges(ws_, Changes(), journal_, [&](int step) {
        if (step == kill_at) raise(SIGKILL);
      });
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "step " << kill_at;
    ASSERT_TRUE(RecoverApply(ws_, journal_).ok()) << "step " << kill_at;
    auto now = Tree();
    if (now == Applied()) {
      ++applied;
    } else {
      EXPECT_EQ(now, before) << "a mix after a kill at step " << kill_at;
      ++untouched;
    }
    EXPECT_FALSE(fs::exists(journal_ + "/journal.json"));
    EXPECT_FALSE(fs::exists(ws_ + "/src/.smithers-apply.tmp"));
    // A second recovery changes nothing.
    ASSERT_TRUE(RecoverApply(ws_, journal_).ok());
    EXPECT_EQ(Tree(), now);
  }
  EXPECT_EQ(untouched, 2);  // killed after staging a file, before the commit
  EXPECT_EQ(applied, steps - 2);
}

TEST_F(ApplyTest, AnUnfinishedApplyMustBeRecoveredFirst) {
  fs::create_directories(journal_);
  std::ofstream(journal_ + "/journal.json") << R"({"workspace":"/elsewhere","changes":[]})";
  EXPECT_EQ(ApplyChanges(ws_, Changes(), journal_).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(RecoverApply(ws_, journal_).code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace smithers::sandbox
