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

// The engine's state (its database, .smithers/) is not the agent's: the file
// tools refuse it however it is named, and grep skips it.
TEST_F(ToolsTest, FileToolsDoNotSeeTheEngineState) {
  fs::create_directories(root_ + "/.smithers");
  Write(root_ + "/.smithers/smithers.db", "DB SECRET\n");
  Write(root_ + "/.smithers/smithers.db-wal", "WAL SECRET\n");
  Write(root_ + "/top.db", "TOP SECRET\n");
  Write(root_ + "/top.db-shm", "SHM SECRET\n");
  ctx_.hidden_paths = {root_ + "/top.db"};
  auto refused = [&](const std::string& tool, const Json& args) {
    ToolResult r = Run(tool, args);
    EXPECT_FALSE(r.ok) << tool << " " << args.dump() << " -> " << r.output;
    EXPECT_NE(r.output.find("is the engine's state and is not visible to tools"), std::string::npos)
        << tool << " " << args.dump() << " -> " << r.output;
    EXPECT_EQ(r.output.find("SECRET"), std::string::npos) << r.output;
  };
  for (const std::string& path :
       {std::string(".smithers/smithers.db"), std::string(".smithers/smithers.db-wal"),
        std::string("./.smithers//smithers.db"), std::string(".smithers/./smithers.db"),
        root_ + "/.smithers/smithers.db", root_ + "/src/./../.smithers/smithers.db"}) {
    ToolResult r = Run("read", {{"path", path}});
    EXPECT_FALSE(r.ok) << path;
    EXPECT_EQ(r.output.find("SECRET"), std::string::npos) << r.output;
  }
  refused("read", {{"path", ".smithers/smithers.db"}});
  refused("read", {{"path", root_ + "/.smithers/smithers.db"}});
  refused("read", {{"path", ".smithers"}});
  refused("read", {{"path", "top.db"}});
  refused("read", {{"path", "top.db-shm"}});
  refused("write", {{"path", ".smithers/smithers.db"}, {"content", "x"}});
  refused("write", {{"path", ".smithers/new.txt"}, {"content", "x"}});
  refused("write", {{"path", "top.db-journal"}, {"content", "x"}});
  refused("edit", {{"path", ".smithers/smithers.db"}, {"old_string", "DB"}, {"new_string", "XX"}});
  refused("edit", {{"path", "top.db"}, {"old_string", "TOP"}, {"new_string", "XX"}});
  refused("grep", {{"pattern", "SECRET"}, {"path", ".smithers"}});
  refused("grep", {{"pattern", "SECRET"}, {"path", "top.db"}});
  // Symlinks (to the file, its folder, and through a folder) and a hard link.
  fs::create_symlink(root_ + "/.smithers/smithers.db", root_ + "/link.db");
  fs::create_symlink(".smithers", root_ + "/state");
  fs::create_directory_symlink(root_, root_ + "/src/up");
  fs::create_hard_link(root_ + "/top.db", root_ + "/src/hard.db");
  refused("read", {{"path", "link.db"}});
  refused("write", {{"path", "link.db"}, {"content", "x"}});
  refused("edit", {{"path", "link.db"}, {"old_string", "DB"}, {"new_string", "XX"}});
  refused("read", {{"path", "state/smithers.db"}});
  refused("write", {{"path", "state/new.txt"}, {"content", "x"}});
  refused("read", {{"path", "src/up/.smithers/smithers.db"}});
  refused("read", {{"path", "src/up/top.db"}});
  refused("read", {{"path", "src/hard.db"}});
  refused("grep", {{"pattern", "SECRET"}, {"path", "state"}});
  // Nothing was written.
  EXPECT_EQ(Read(root_ + "/.smithers/smithers.db"), "DB SECRET\n");
  EXPECT_EQ(Read(root_ + "/top.db"), "TOP SECRET\n");
  EXPECT_FALSE(fs::exists(root_ + "/.smithers/new.txt"));
  EXPECT_FALSE(fs::exists(root_ + "/top.db-journal"));
  // grep over the root skips the state without an error, and still finds the rest.
  Write(root_ + "/src/b.txt", "PUBLIC NOTE\n");
  ToolResult r = Run("grep", {{"pattern", "SECRET|NOTE"}});
  ASSERT_TRUE(r.ok) << r.output;
  EXPECT_NE(r.output.find("src/b.txt:1: PUBLIC NOTE"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("SECRET"), std::string::npos) << r.output;
  r = Run("grep", {{"pattern", "SECRET"}, {"path", "."}});
  ASSERT_TRUE(r.ok) << r.output;
  EXPECT_EQ(r.output, "no matches");
  // Other files, and names that only look alike, are fine.
  Write(root_ + "/.smithers-notes", "fine\n");
  Write(root_ + "/top.dbx", "fine\n");
  EXPECT_TRUE(Run("read", {{"path", ".smithers-notes"}}).ok);
  EXPECT_TRUE(Run("read", {{"path", "top.dbx"}}).ok);
  EXPECT_TRUE(Run("write", {{"path", "src/c.txt"}, {"content", "x"}}).ok);
  // A database in a folder of its own: the file and its siblings, not the folder.
  fs::create_directories(root_ + "/data");
  Write(root_ + "/data/run.db", "RUN SECRET\n");
  Write(root_ + "/data/readme.txt", "about\n");
  ctx_.hidden_paths = {root_ + "/data/run.db"};
  refused("read", {{"path", "data/run.db"}});
  refused("write", {{"path", "data/run.db-wal"}, {"content", "x"}});
  EXPECT_TRUE(Run("read", {{"path", "data/readme.txt"}}).ok);
  r = Run("grep", {{"pattern", "SECRET"}, {"path", "data"}});
  ASSERT_TRUE(r.ok) << r.output;
  EXPECT_EQ(r.output, "no matches");
  // .smithers/ is hidden even when hidden_paths is empty.
  ctx_.hidden_paths.clear();
  refused("read", {{"path", ".smithers/smithers.db"}});
}

// A result goes to the model as a JSON string: invalid UTF-8 (a binary file,
// a cut inside a character) is replaced, never thrown on when serialised.
TEST_F(ToolsTest, ResultsAreValidUtf8) {
  Write(root_ + "/bin.txt", std::string("ok\xff\xfe end\n\xc3\n\xed\xa0\x80\n", 13));
  ToolResult r = Run("read", {{"path", "bin.txt"}});
  ASSERT_TRUE(r.ok) << r.output;
  EXPECT_NO_THROW((void)Json(r.output).dump()) << r.output;
  EXPECT_NE(r.output.find("1\tok\xEF\xBF\xBD\xEF\xBF\xBD end"), std::string::npos) << r.output;
  ctx_.max_output_bytes = 5;  // "1\t", "é", then the first byte of the second "é"
  Write(root_ + "/e.txt", "\xc3\xa9\xc3\xa9\n");
  r = Run("read", {{"path", "e.txt"}});
  EXPECT_NO_THROW((void)Json(r.output).dump()) << r.output;
  EXPECT_EQ(r.output.rfind("1\t\xc3\xa9\xEF\xBF\xBD", 0), 0u) << r.output;
  r = Run("read", {{"path", "nope\xff.txt"}});
  EXPECT_FALSE(r.ok);
  EXPECT_NO_THROW((void)Json(r.output).dump()) << r.output;
}

TEST_F(ToolsTest, OutputIsBounded) {
  ctx_.max_output_bytes = 100;
  std::string big(5000, 'x');
  Write(root_ + "/big.txt", big + "\n");
  ToolResult r = Run("read", {{"path", "big.txt"}});
  EXPECT_LT(r.output.size(), 200u);
  EXPECT_NE(r.output.find("truncated at 100 bytes"), std::string::npos);
  if (Status s = SandboxStatus(); !s.ok()) GTEST_SKIP() << s.message();
  r = Run("bash", {{"command", "head -c 5000 /dev/zero | tr '\\\\0' y"}});
  EXPECT_LT(r.output.size(), 300u);
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
}

TEST_F(ToolsTest, BashRunsInTheRootAndTimesOut) {
  if (Status s = SandboxStatus(); !s.ok()) GTEST_SKIP() << s.message();
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
  if (Status s = SandboxStatus(); !s.ok()) GTEST_SKIP() << s.message();
  Listener l;
  std::string probe = "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", " +
                      std::to_string(l.port()) + "), timeout=2); print(\"CONNECTED\")'";
  ToolResult denied = Run("bash", {{"command", probe}});
  EXPECT_FALSE(denied.ok);
  EXPECT_EQ(denied.output.find("CONNECTED"), std::string::npos) << denied.output;
  ctx_.allow_network = true;
  ToolResult allowed = Run("bash", {{"command", probe + "; id -u"}});
  EXPECT_TRUE(allowed.ok) << allowed.output;
  EXPECT_NE(allowed.output.find("CONNECTED"), std::string::npos) << allowed.output;
  EXPECT_NE(allowed.output.find("\n65534\n"), std::string::npos) << allowed.output;  // still boxed
}

// Also (above all) when the tests run as root, as CI does: no capability, not
// uid 0, and none of the ways back to them.
TEST_F(ToolsTest, BashRunsAsNobodyWithoutCapabilities) {
  if (Status s = SandboxStatus(); !s.ok()) GTEST_SKIP() << s.message();
  for (bool net : {false, true}) {
    ctx_.allow_network = net;
    ToolResult r =
        Run("bash", {{"command", "id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status"}});
    ASSERT_TRUE(r.ok) << r.output;
    EXPECT_NE(r.output.find("\n65534\n65534\n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("CapEff:\t0000000000000000"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("CapPrm:\t0000000000000000"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("CapBnd:\t0000000000000000"), std::string::npos) << r.output;
  }
}

TEST_F(ToolsTest, BashCannotRemountOrUseCapabilities) {
  if (Status s = SandboxStatus(); !s.ok()) GTEST_SKIP() << s.message();
  std::string marker = "/var/tmp/smithers-remount-" + std::to_string(getpid());
  fs::remove(marker);
  // The attack of the report: remount / read-write, then write beside the host.
  ToolResult r =
      Run("bash", {{"command",
                    "mount -o remount,bind,rw / && echo REMOUNTED; mount -o remount,rw / "
                    "&& echo REMOUNTED; mkdir -p /var/tmp; echo pwned > " +
                        marker + " && echo WROTE"}});
  EXPECT_NE(r.output.find("must be superuser"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("REMOUNTED"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("WROTE"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(marker)) << r.output;
  fs::remove(marker);
  // Nothing outside the root is writable, nothing outside it but the system is there.
  r = Run("bash", {{"command",
                    "touch /usr/smithers-x || touch /etc/smithers-x || echo > /x || "
                    "echo NO_WRITE; cat " +
                        base_ + "/outside.txt || echo NO_READ"}});
  EXPECT_NE(r.output.find("NO_WRITE"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("NO_READ"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("OUTSIDE SECRET"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists("/usr/smithers-x"));
  // Capability use: chown, mknod, raw sockets, a nested user namespace, mount.
  for (const char* cmd :
       {"echo x > f && chown 0:0 f", "mknod dev c 1 3", "unshare -r true", "unshare -U true",
        "mount -t tmpfs none /tmp",
        "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)'",
        "cat /etc/shadow | grep -q root"}) {
    r = Run("bash", {{"command", cmd}});
    EXPECT_FALSE(r.ok) << cmd << " -> " << r.output;
    EXPECT_NE(r.output.find("exit code"), std::string::npos) << cmd << " -> " << r.output;
  }
}

// The engine's state (its database) is not the agent's: masked in the sandbox.
TEST_F(ToolsTest, BashDoesNotSeeTheEngineState) {
  if (Status s = SandboxStatus(); !s.ok()) GTEST_SKIP() << s.message();
  fs::create_directories(root_ + "/.smithers");
  Write(root_ + "/.smithers/smithers.db", "DB SECRET");
  Write(root_ + "/top.db", "TOP DB SECRET");
  Write(root_ + "/top.db-wal", "WAL SECRET");
  ctx_.hidden_paths = {root_ + "/top.db"};
  ToolResult r =
      Run("bash", {{"command",
                    "echo N=$(ls -A .smithers | wc -l); cat .smithers/smithers.db top.db "
                    "top.db-wal; echo x > .smithers/new; echo x > top.db; "
                    "rm -f top.db-wal; echo DONE"}});
  EXPECT_NE(r.output.find("N=0\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("DONE"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("SECRET"), std::string::npos) << r.output;
  EXPECT_EQ(Read(root_ + "/.smithers/smithers.db"), "DB SECRET");
  EXPECT_EQ(Read(root_ + "/top.db"), "TOP DB SECRET");
  EXPECT_EQ(Read(root_ + "/top.db-wal"), "WAL SECRET");
  EXPECT_FALSE(fs::exists(root_ + "/.smithers/new"));
  // A database in a folder of its own under the root: the folder is hidden.
  fs::create_directories(root_ + "/state");
  Write(root_ + "/state/run.db", "STATE SECRET");
  ctx_.hidden_paths = {root_ + "/state/run.db"};
  r = Run("bash", {{"command", "echo N=$(ls -A state | wc -l); cat state/run.db; echo DONE"}});
  EXPECT_NE(r.output.find("N=0\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("DONE"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("SECRET"), std::string::npos) << r.output;
}

// No isolation, no tool: a missing or failing bubblewrap runs nothing.
TEST_F(ToolsTest, BashFailsClosedWithoutASandbox) {
  ctx_.bwrap = base_ + "/no-such-bwrap";
  ToolResult r = Run("bash", {{"command", "touch ran.txt"}});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.not_run);
  EXPECT_NE(r.output.find("bubblewrap"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unisolatedTools = true"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(root_ + "/ran.txt"));
  EXPECT_FALSE(SandboxStatus(ctx_.bwrap).ok());
  // A bubblewrap that cannot set the sandbox up (no user namespaces, say).
  std::string failing = base_ + "/bwrap-fails";
  Write(failing, "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n");
  fs::permissions(failing, fs::perms::owner_all);
  ctx_.bwrap = failing;
  r = Run("bash", {{"command", "touch ran.txt"}});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.not_run);
  EXPECT_NE(r.output.find("could not start"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("setting up uid map: Permission denied"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(root_ + "/ran.txt"));
  // One that exits 0 without running anything is no better.
  Write(failing, "#!/bin/sh\nexit 0\n");
  r = Run("bash", {{"command", "touch ran.txt"}});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.not_run) << r.output;
  // bubblewrap is not looked up at all for an unisolated agent.
  ctx_.unisolated = true;
  r = Run("bash", {{"command", "touch ran.txt; id -u"}});
  EXPECT_TRUE(r.ok) << r.output;
  EXPECT_NE(r.output.find("\n" + std::to_string(getuid()) + "\n"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(root_ + "/ran.txt"));
}

}  // namespace
}  // namespace smithers::agents
