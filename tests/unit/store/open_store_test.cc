// OpenStore and ParseStoreUrl: which --db values open which backend, and
// which are bad input (docs/store_format.md "Store URLs").
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "smithers/store.h"
#include "store_test_util.h"

namespace smithers::store {
namespace {

StoreLocation Parse(const std::string& url) {
  Result<StoreLocation> location = ParseStoreUrl(url);
  EXPECT_TRUE(location.ok()) << url << ": " << location.status().ToString();
  return location.ok() ? *location : StoreLocation{};
}

std::string Refusal(const std::string& url) {
  Result<StoreLocation> location = ParseStoreUrl(url);
  EXPECT_FALSE(location.ok()) << url << " was accepted as " << location->path;
  if (location.ok()) return "";
  EXPECT_EQ(location.status().code(), StatusCode::kInvalidArgument) << url;
  return location.status().message();
}

TEST(ParseStoreUrlTest, PathsAndSqliteUrlsAreSqliteFiles) {
  EXPECT_EQ(Parse("runs.db").backend, "sqlite");
  EXPECT_EQ(Parse("runs.db").path, "runs.db");
  EXPECT_EQ(Parse("/var/lib/s.db").path, "/var/lib/s.db");
  EXPECT_EQ(Parse("sqlite:runs.db").path, "runs.db");
  EXPECT_EQ(Parse("SQLite:runs.db").path, "runs.db");
  EXPECT_EQ(Parse("sqlite:/abs/runs.db").path, "/abs/runs.db");
  EXPECT_EQ(Parse("sqlite:///abs/runs.db").path, "/abs/runs.db");
  // A colon that does not start a URL is part of the file name.
  EXPECT_EQ(Parse("./a:b.db").path, "./a:b.db");
  EXPECT_EQ(Parse("a:b.db").path, "a:b.db");
  EXPECT_EQ(Parse("1x://y").path, "1x://y");  // a scheme starts with a letter
  EXPECT_EQ(Parse("dir/x://y").path, "dir/x://y");
  EXPECT_EQ(Parse("sqlite:a:b.db").path, "a:b.db");
}

TEST(ParseStoreUrlTest, PostgresUrlsAreKeptWholeForLibpq) {
  for (const char* url : {"postgres://h/db", "postgresql://u@h:5432/db?sslmode=require",
                          "PostgreSQL:///db?host=/run/pg"}) {
    StoreLocation location = Parse(url);
    EXPECT_EQ(location.backend, "postgres") << url;
    EXPECT_EQ(location.url, url);
    EXPECT_EQ(location.path, "") << url;  // no file to hide or check
  }
}

TEST(ParseStoreUrlTest, RefusesWhatItCannotOpen) {
  std::string why = Refusal("POSTGRES:db");
  EXPECT_NE(why.find("write postgres://USER@HOST:PORT/DATABASE"), std::string::npos) << why;
  why = Refusal("foo://bar");
  EXPECT_NE(why.find("unknown scheme \"foo:\""), std::string::npos) << why;
  EXPECT_NE(why.find("a file path or sqlite:PATH or postgres://USER@HOST/DB"), std::string::npos)
      << why;
  EXPECT_NE(Refusal("").find("empty"), std::string::npos);
  EXPECT_NE(Refusal("sqlite:").find("no database path"), std::string::npos);
  EXPECT_NE(Refusal("sqlite://host/x.db").find("absolute path"), std::string::npos);
}

TEST(ParseStoreUrlTest, PasswordsAreRedactedWhereverAUrlIsShown) {
  EXPECT_EQ(RedactStoreUrl("postgres://app:s3cret@db.example:5432/runs"),
            "postgres://app:***@db.example:5432/runs");
  EXPECT_EQ(RedactStoreUrl("postgresql://app:p%40ss@h/db?password=two&sslmode=require"),
            "postgresql://app:***@h/db?password=***&sslmode=require");
  EXPECT_EQ(RedactStoreUrl("postgres://h/db?sslmode=require&password=x"),
            "postgres://h/db?sslmode=require&password=***");
  EXPECT_EQ(RedactStoreUrl("postgres://app@h/db"), "postgres://app@h/db");
  EXPECT_EQ(RedactStoreUrl("/var/lib/a:b@c.db"), "/var/lib/a:b@c.db");
  std::string why = Refusal("foo://u:hunter2@h/x");
  EXPECT_EQ(why.find("hunter2"), std::string::npos) << why;
}

TEST(OpenStoreTest, OpensSqliteAndCreatesNothingForABadUrl) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/s.db";
  STORE_ASSERT_OK_AND_ASSIGN(auto store, OpenStore("sqlite:" + path));
  EXPECT_EQ(store->BackendName(), "sqlite");
  EXPECT_TRUE(std::filesystem::exists(path));

  const std::string cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  Result<std::unique_ptr<Store>> bad = OpenStore("postgres:y");
  std::filesystem::current_path(cwd);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/postgres:y"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/y"));
}

TEST(OpenStoreTest, FactoryOpensOneConnectionPerCall) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  StoreFactory open = MakeStoreFactory(dir.path() + "/f.db", {.synchronous = "NORMAL"});
  STORE_ASSERT_OK_AND_ASSIGN(auto a, open());
  STORE_ASSERT_OK_AND_ASSIGN(auto b, open());
  EXPECT_NE(a.get(), b.get());
  WriteBatch batch;
  batch.UpsertRun({.run_id = "r1", .workflow_name = "w", .status = RunStatus::kRunning});
  STORE_ASSERT_OK(a->Commit(batch));
  STORE_ASSERT_OK_AND_ASSIGN(RunRecord seen, b->GetRun("r1"));
  EXPECT_EQ(seen.workflow_name, "w");
  StoreFactory read = MakeStoreFactory(dir.path() + "/f.db", {.read_only = true});
  STORE_ASSERT_OK_AND_ASSIGN(auto ro, read());
  EXPECT_EQ(ro->Commit(batch).status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace smithers::store
