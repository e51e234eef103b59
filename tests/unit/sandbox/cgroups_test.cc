// The cgroups that hold a sandbox's limits, on this machine's real cgroup
// hierarchies: the limits written, a process joining them before exec, the
// limit it met reported, and the folders gone afterwards.
#include "sandbox/cgroups.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "base/subprocess.h"

namespace smithers::sandbox {
namespace {

namespace fs = std::filesystem;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// The folder of `dirs` whose controller files include `file`.
std::string DirWith(const std::vector<std::string>& dirs, const std::string& file) {
  for (const std::string& d : dirs) {
    if (fs::exists(d + "/" + file)) return d;
  }
  return "";
}

Result<base::ProcessResult> RunIn(const Cgroup& cg, const std::string& script) {
  base::ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.join_files = cg.join_files();
  return base::RunProcess(spec);
}

TEST(CgroupTest, WritesTheLimitsAndRemovesItsFolders) {
  Result<std::unique_ptr<Cgroup>> cg =
      Cgroup::Create({.memory_bytes = 64 << 20, .pids = 32, .cpus = 0.5});
  ASSERT_TRUE(cg.ok()) << cg.status().ToString();
  std::vector<std::string> dirs = (*cg)->dirs();
  ASSERT_FALSE(dirs.empty());
  ASSERT_EQ((*cg)->join_files().size(), dirs.size());
  std::string mem = DirWith(dirs, "memory.limit_in_bytes");
  if (!mem.empty()) {
    EXPECT_EQ(Read(mem + "/memory.limit_in_bytes"), std::to_string(64 << 20));
  } else {
    mem = DirWith(dirs, "memory.max");
    ASSERT_FALSE(mem.empty());
    EXPECT_EQ(Read(mem + "/memory.max"), std::to_string(64 << 20));
  }
  EXPECT_EQ(Read(DirWith(dirs, "pids.max") + "/pids.max"), "32");
  std::string cpu = DirWith(dirs, "cpu.cfs_quota_us");
  if (!cpu.empty()) {
    EXPECT_EQ(Read(cpu + "/cpu.cfs_quota_us"), "50000");
    EXPECT_EQ(Read(cpu + "/cpu.cfs_period_us"), "100000");
  } else {
    EXPECT_EQ(Read(DirWith(dirs, "cpu.max") + "/cpu.max"), "50000 100000");
  }
  for (const std::string& d : dirs) {
    EXPECT_NE(fs::path(d).filename().string().find("smithers-"), std::string::npos) << d;
  }
  // A process that joined and left a child behind: the destructor kills it.
  ASSERT_TRUE(RunIn(**cg, "sleep 600 >/dev/null 2>&1 & echo started").ok());
  cg->reset();
  for (const std::string& d : dirs) EXPECT_FALSE(fs::exists(d)) << d;
}

TEST(CgroupTest, AProcessStartsInsideAndItsChildrenStayThere) {
  Result<std::unique_ptr<Cgroup>> cg = Cgroup::Create({.pids = 16});
  ASSERT_TRUE(cg.ok()) << cg.status().ToString();
  std::string dir = (*cg)->dirs().at(0);
  Result<base::ProcessResult> r =
      RunIn(**cg, "cat /proc/self/cgroup; cat " + dir + "/pids.current");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  // Our own cgroup path ends with the cgroup's name, in the pids hierarchy.
  std::string name = fs::path(dir).filename().string();
  EXPECT_NE(r->out.find("pids:"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("/" + name + "\n"), std::string::npos) << r->out;
  EXPECT_EQ((*cg)->LimitReached(), "");
}

TEST(CgroupTest, TheProcessLimitRefusesForksAndSaysSo) {
  Result<std::unique_ptr<Cgroup>> cg = Cgroup::Create({.pids = 4});
  ASSERT_TRUE(cg.ok()) << cg.status().ToString();
  // 20 sleeping children at once, in a cgroup that holds 4 processes.
  Result<base::ProcessResult> r =
      RunIn(**cg, "for i in $(seq 20); do sleep 30 & done 2>/dev/null; true");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string why = (*cg)->LimitReached();
  EXPECT_NE(why.find("the sandbox's process limit of 4 was reached"), std::string::npos) << why;
  EXPECT_NE(why.find("refused"), std::string::npos) << why;
}

TEST(CgroupTest, TheMemoryLimitKillsAndSaysSo) {
  Result<std::unique_ptr<Cgroup>> cg = Cgroup::Create({.memory_bytes = 16 << 20});
  ASSERT_TRUE(cg.ok()) << cg.status().ToString();
  // 64 MiB held in one shell variable, four times the limit.
  Result<base::ProcessResult> r =
      RunIn(**cg, "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(r->exit_code, 0) << r->out;
  std::string why = (*cg)->LimitReached();
  EXPECT_NE(why.find("the sandbox's memory limit of 16 MiB was reached"), std::string::npos)
      << why << " exit " << r->exit_code << " " << r->out;
}

TEST(CgroupTest, AJoinFileThatCannotBeWrittenStartsNothing) {
  char tmpl[] = "/tmp/smithers_join_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string marker = std::string(tmpl) + "/ran";
  base::ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "touch " + marker};
  spec.join_files = {std::string(tmpl) + "/missing/cgroup.procs"};
  Result<base::ProcessResult> r = base::RunProcess(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(
      r.status().message().find("cannot join \"" + std::string(tmpl) + "/missing/cgroup.procs"),
      std::string::npos)
      << r.status().message();
  EXPECT_FALSE(fs::exists(marker));
  fs::remove_all(tmpl);
}

TEST(CgroupTest, EachControllerIsDescribed) {
  std::vector<std::string> lines = DescribeControllers();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].rfind("memory: ", 0), 0u);
  EXPECT_EQ(lines[1].rfind("pids: ", 0), 0u);
  EXPECT_EQ(lines[2].rfind("cpu: ", 0), 0u);
}

}  // namespace
}  // namespace smithers::sandbox
