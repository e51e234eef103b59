// The secret store and the child environment: captured variables leave the
// environment and are redacted; children get the allow-list plus what was
// declared; references resolve from the store, a snapshot or a file, and only
// within an allow-list when one is set.
#include "base/secrets.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "base/redact.h"

namespace smithers::base {
namespace {

bool Has(const std::vector<std::string>& env, const std::string& kv) {
  return std::find(env.begin(), env.end(), kv) != env.end();
}

bool HasName(const std::vector<std::string>& env, const std::string& name) {
  return std::any_of(env.begin(), env.end(),
                     [&](const std::string& kv) { return kv.rfind(name + "=", 0) == 0; });
}

TEST(SecretStore, CaptureMovesTheValueOutOfTheEnvironment) {
  SecretStore store;
  setenv("SMITHERS_TEST_KEY_A", "value-of-test-key-a-123", 1);
  store.Capture("SMITHERS_TEST_KEY_A");
  EXPECT_EQ(getenv("SMITHERS_TEST_KEY_A"), nullptr);
  EXPECT_EQ(store.Get("SMITHERS_TEST_KEY_A"), "value-of-test-key-a-123");
  EXPECT_EQ(Redact("x value-of-test-key-a-123 y"), "x [REDACTED] y");
  store.Capture("SMITHERS_TEST_NOT_SET");
  EXPECT_EQ(store.Get("SMITHERS_TEST_NOT_SET"), std::nullopt);
}

TEST(SecretStore, InternalSecretsAreNotForTasks) {
  SecretStore store;
  setenv("SMITHERS_TEST_JWT", "the-jwt-signing-secret-xyz", 1);
  store.Capture("SMITHERS_TEST_JWT", /*usable=*/false);
  EXPECT_EQ(store.Get("SMITHERS_TEST_JWT"), std::nullopt);
  EXPECT_EQ(store.GetInternal("SMITHERS_TEST_JWT"), "the-jwt-signing-secret-xyz");
  Result<std::string> r = store.Resolve("env:SMITHERS_TEST_JWT");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("env:SMITHERS_TEST_JWT"), std::string::npos);
}

TEST(SecretStore, ReferencesResolveFromStoreSnapshotAndFiles) {
  SecretStore store;
  setenv("SMITHERS_TEST_KEY_B", "value-b-0123456789", 1);
  setenv("SMITHERS_TEST_PLAIN", "plain-value", 1);
  store.Capture("SMITHERS_TEST_KEY_B");
  store.SnapshotEnvironment();
  EXPECT_EQ(store.Resolve("env:SMITHERS_TEST_KEY_B").value(), "value-b-0123456789");
  EXPECT_EQ(store.Resolve("env:SMITHERS_TEST_PLAIN").value(), "plain-value");
  EXPECT_EQ(store.Resolve("env:SMITHERS_TEST_NOWHERE").status().code(),
            StatusCode::kFailedPrecondition);
  char dir[] = "/tmp/smithers-secrets-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string file = std::string(dir) + "/token";
  std::ofstream(file) << "file-secret-value-42\n";
  EXPECT_EQ(store.Resolve("file:" + file).value(), "file-secret-value-42");
  EXPECT_EQ(Redact("file-secret-value-42"), "[REDACTED]");
  for (const char* bad :
       {"file:relative/x", "file:/a/../etc/passwd", "file:/a/./b", "vault:x", "env:", "env:A-B"}) {
    EXPECT_EQ(store.CheckReference(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
  // An allow-list: only what matches it, and a link may not lead out of it.
  store.RestrictReferences({"env:SMITHERS_TEST_KEY_B", "file:" + std::string(dir) + "/*"});
  EXPECT_TRUE(store.Resolve("env:SMITHERS_TEST_KEY_B").ok());
  EXPECT_TRUE(store.Resolve("file:" + file).ok());
  Result<std::string> refused = store.Resolve("env:SMITHERS_TEST_PLAIN");
  ASSERT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("\"env:SMITHERS_TEST_PLAIN\" is not allowed"),
            std::string::npos);
  ASSERT_EQ(symlink("/etc/hostname", (std::string(dir) + "/link").c_str()), 0);
  EXPECT_EQ(store.Resolve("file:" + std::string(dir) + "/link").status().code(),
            StatusCode::kInvalidArgument);
  unlink((std::string(dir) + "/link").c_str());
  unlink(file.c_str());
  rmdir(dir);
}

TEST(ChildEnvironment, AllowListPlusDeclared) {
  setenv("SMITHERS_TEST_ENGINE_ONLY", "engine", 1);
  setenv("LC_TIME", "C", 1);
  setenv("TZ", "UTC", 1);
  Result<std::vector<std::string>> env =
      BuildChildEnvironment({{"MODE", "fast"}, {"TZ", "Europe/Paris"}});
  ASSERT_TRUE(env.ok()) << env.status().message();
  EXPECT_FALSE(HasName(*env, "SMITHERS_TEST_ENGINE_ONLY"));
  EXPECT_TRUE(Has(*env, "MODE=fast"));
  EXPECT_TRUE(Has(*env, "TZ=Europe/Paris"));  // declared wins
  EXPECT_TRUE(Has(*env, "LC_TIME=C"));
  EXPECT_TRUE(HasName(*env, "PATH"));
  for (const char* name : {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "LC_ALL"}) {
    EXPECT_TRUE(InheritedByChildren(name)) << name;
  }
  for (const char* name : {"OPENAI_API_KEY", "USER", "SMITHERS_JWT_SECRET", "LD_PRELOAD"}) {
    EXPECT_FALSE(InheritedByChildren(name)) << name;
  }
  Result<std::vector<std::string>> bad = BuildChildEnvironment({}, {{"K", "env:NOT_SET_XYZ_1"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("env K"), std::string::npos);
  std::vector<std::string> strings = {"A=1", "B=2"};
  std::vector<char*> ptrs = EnvPointers(strings);
  ASSERT_EQ(ptrs.size(), 3u);
  EXPECT_EQ(ptrs[2], nullptr);
}

}  // namespace
}  // namespace smithers::base
