// The built-in tools: what they do, and every way out of the root they refuse.
#include "agents/tools.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

namespace smithers::agents {
namespace {

namespace fs = std::filesystem;

class ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smithers_tools_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ + "/r";
    fs::create_directories(root_ + "/src");
    fs::create_directories(base_ + "/r2");
    Write(root_ + "/src/a.txt", "alpha\nbeta\ngamma\n");
    Write(base_ + "/r2/secret.txt", "SIBLING SECRET\n");
    Write(base_ + "/outside.txt", "OUTSIDE SECRET\n");
    ctx_.root_dir = root_;
  }
  void TearDown() override { fs::remove_all(base_); }

  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  ToolResult Run(const std::string& name, const Json& args) { return RunTool(ctx_, name, args); }

  void ExpectRefused(const std::string& tool, const Json& args) {
    ToolResult r = Run(tool, args);
    EXPECT_FALSE(r.ok) << tool << " " << args.dump() << " -> " << r.output;
    EXPECT_EQ(r.output.find("SECRET"), std::string::npos) << r.output;
  }

  std::string base_, root_;
  ToolContext ctx_;
};

TEST_F(ToolsTest, ReadWriteEditGrep) {
  ToolResult r = Run("read", {{"path", "src/a.txt"}});
  ASSERT_TRUE(r.ok) << r.output;
  EXPECT_NE(r.output.find("2\tbeta"), std::string::npos) << r.output;
  EXPECT_TRUE(Run("write", {{"path", "new/dir/b.txt"}, {"content", "one two two"}}).ok);
  EXPECT_EQ(Read(root_ + "/new/dir/b.txt"), "one two two");
  r = Run("edit", {{"path", "new/dir/b.txt"}, {"old_string", "two"}, {"new_string", "2"}});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.output.find("2 times"), std::string::npos) << r.output;
  r = Run("edit", {{"path", "new/dir/b.txt"}, {"old_string", "zzz"}, {"new_string", "2"}});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(Run("edit", {{"path", "new/dir/b.txt"},
                           {"old_string", "two"},
                           {"new_string", "2"},
                           {"replace_all", true}})
                  .ok);
  EXPECT_EQ(Read(root_ + "/new/dir/b.txt"), "one 2 2");
  r = Run("grep", {{"pattern", "^gam"}});
  ASSERT_TRUE(r.ok);
  EXPECT_NE(r.output.find("src/a.txt:3: gamma"), std::string::npos) << r.output;
  // An absolute path inside the root is fine.
  EXPECT_TRUE(Run("read", {{"path", root_ + "/src/a.txt"}}).ok);
}

TEST_F(ToolsTest, EscapesAreRefused) {
  ExpectRefused("read", {{"path", "../outside.txt"}});
  ExpectRefused("read", {{"path", "src/../../outside.txt"}});
  ExpectRefused("read", {{"path", base_ + "/outside.txt"}});
  ExpectRefused("read", {{"path", "/etc/passwd"}});
  ExpectRefused("read", {{"path", base_ + "/r2/secret.txt"}});  // "/r" must not admit "/r2"
  fs::create_symlink(base_ + "/outside.txt", root_ + "/link.txt");
  ExpectRefused("read", {{"path", "link.txt"}});
  ExpectRefused("write", {{"path", "link.txt"}, {"content", "x"}});
  EXPECT_EQ(Read(base_ + "/outside.txt"), "OUTSIDE SECRET\n");
  fs::create_directory_symlink(base_ + "/r2", root_ + "/dirlink");
  ExpectRefused("read", {{"path", "dirlink/secret.txt"}});
  ExpectRefused("write", {{"path", "dirlink/new.txt"}, {"content", "x"}});
  EXPECT_FALSE(fs::exists(base_ + "/r2/new.txt"));
  ExpectRefused("grep", {{"pattern", "SECRET"}, {"path", "dirlink"}});
  // grep over the root does not follow the links out.
  ToolResult r = Run("grep", {{"pattern", "SECRET"}});
  EXPECT_EQ(r.output.find("SECRET"), std::string::npos) << r.output;
  EXPECT_FALSE(Run("read", {{"path", 5}}).ok);
  EXPECT_FALSE(Run("nope", Json::object()).ok);
  EXPECT_FALSE(BuiltinToolSpecs({"read", "rm"}).ok());
}

TEST_F(ToolsTest, OutputIsBounded) {
  ctx_.max_output_bytes = 100;
  std::string big(5000, 'x');
  Write(root_ + "/big.txt", big + "\n");
  ToolResult r = Run("read", {{"path", "big.txt"}});
  EXPECT_LT(r.output.size(), 200u);
  EXPECT_NE(r.output.find("truncated at 100 bytes"), std::string::npos);
  r = Run("bash", {{"command", "head -c 5000 /dev/zero | tr '\\\\0' y"}});
  EXPECT_LT(r.output.size(), 300u);
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
}

TEST_F(ToolsTest, BashRunsInTheRootAndTimesOut) {
  ToolResult r = Run("bash", {{"command", "pwd; echo hi > made.txt"}});
  ASSERT_TRUE(r.ok) << r.output;
  EXPECT_TRUE(fs::exists(root_ + "/made.txt"));
  r = Run("bash", {{"command", "exit 3"}});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.output.find("exit code 3"), std::string::npos) << r.output;
  ctx_.timeout_ms = 300;
  auto t0 = std::chrono::steady_clock::now();
  r = Run("bash", {{"command", "sleep 30"}});
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.output.find("timed out"), std::string::npos) << r.output;
  EXPECT_LT(ms, 5000);
}

// A listener on 127.0.0.1; bash tries to reach it with /dev/tcp (bash) or
// python3.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);  // NOLINT: the sockets API
    listen(fd_, 4);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);  // NOLINT
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

TEST_F(ToolsTest, BashHasNoNetworkUnlessAllowed) {
  if (!NetworkIsolationAvailable()) GTEST_SKIP() << "bubblewrap cannot run here";
  Listener l;
  std::string probe = "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", " +
                      std::to_string(l.port()) + "), timeout=2); print(\"CONNECTED\")'";
  ToolResult denied = Run("bash", {{"command", probe}});
  EXPECT_FALSE(denied.ok);
  EXPECT_EQ(denied.output.find("CONNECTED"), std::string::npos) << denied.output;
  ctx_.allow_network = true;
  ToolResult allowed = Run("bash", {{"command", probe}});
  EXPECT_TRUE(allowed.ok) << allowed.output;
  EXPECT_NE(allowed.output.find("CONNECTED"), std::string::npos) << allowed.output;
}

}  // namespace
}  // namespace smithers::agents
