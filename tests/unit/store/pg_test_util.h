// The PostgreSQL server the store tests run against: SMITHERS_TEST_PG_URL, or
// the throwaway server CTest's `postgres` fixture started (scripts/
// pg-test-server; its URL in $SMITHERS_TEST_PG_DIR/url). Each test gets a
// schema of its own, dropped when the test binary ends.
#ifndef SMITHERS_TESTS_UNIT_STORE_PG_TEST_UTIL_H_
#define SMITHERS_TESTS_UNIT_STORE_PG_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "base/hash.h"
#include "smithers/status.h"

namespace smithers::store {

// The server's URL, or "" when no server was given.
inline std::string PgTestServerUrl() {
  if (const char* url = std::getenv("SMITHERS_TEST_PG_URL"); url != nullptr && *url != '\0') {
    return url;
  }
  const char* dir = std::getenv("SMITHERS_TEST_PG_DIR");
  if (dir == nullptr || *dir == '\0') return "";
  std::ifstream in(std::string(dir) + "/url");
  std::string url;
  std::getline(in, url);
  while (!url.empty() && (url.back() == '\n' || url.back() == ' ')) url.pop_back();
  return url;
}

// Runs `sql` on a connection of its own; the error's text, or "".
inline std::string PgTestExec(const std::string& url, const std::string& sql) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(url.c_str()), PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) return PQerrorMessage(conn.get());
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(conn.get(), sql.c_str()), PQclear);
  ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return PQresultErrorMessage(result.get());
  }
  return "";
}

// Drops the schemas PgTestSchemaUrl made once every test has run.
class PgTestSchemas : public ::testing::Environment {
 public:
  static PgTestSchemas& Get() {
    static PgTestSchemas* schemas = [] {
      auto* env = new PgTestSchemas;
      ::testing::AddGlobalTestEnvironment(env);
      return env;
    }();
    return *schemas;
  }
  void Add(const std::string& server, const std::string& schema) {
    std::lock_guard<std::mutex> lock(mu_);
    server_ = server;
    schemas_.insert(schema);
  }
  void TearDown() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& schema : schemas_) {
      PgTestExec(server_, "DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
    }
    schemas_.clear();
  }

 private:
  std::mutex mu_;
  std::string server_;
  std::set<std::string> schemas_;
};

// A URL whose search_path is a schema named after `key` (a test's scratch
// folder: the same key reaches the same data), created when missing.
inline Result<std::string> PgTestSchemaUrl(const std::string& key) {
  const std::string server = PgTestServerUrl();
  if (server.empty()) {
    return FailedPreconditionError(
        "no PostgreSQL server for the tests: run them through ctest (its `postgres` fixture "
        "starts one) or set SMITHERS_TEST_PG_URL");
  }
  const std::string schema = "t_" + base::Sha256Hex(key).substr(0, 20);
  // IF NOT EXISTS still races another creator (a unique violation): the
  // second try finds the schema.
  std::string error = PgTestExec(server, "CREATE SCHEMA IF NOT EXISTS \"" + schema + "\"");
  if (!error.empty()) error = PgTestExec(server, "CREATE SCHEMA IF NOT EXISTS \"" + schema + "\"");
  if (!error.empty()) return UnavailableError("create schema " + schema + ": " + error);
  PgTestSchemas::Get().Add(server, schema);
  const char* sep = server.find('?') == std::string::npos ? "?" : "&";
  return server + sep + "options=-csearch_path%3D" + schema;
}

}  // namespace smithers::store

#endif  // SMITHERS_TESTS_UNIT_STORE_PG_TEST_UTIL_H_
