// The conformance suite every Store implementation must pass. A backend joins
// it by instantiating the suite with a factory:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
//                            ::testing::Values(StoreBackend{"Sqlite", OpenSqliteInDir}),
//                            StoreBackendName);
#ifndef SMITHERS_TESTS_UNIT_STORE_STORE_CONFORMANCE_H_
#define SMITHERS_TESTS_UNIT_STORE_STORE_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "smithers/store.h"
#include "store_test_util.h"

namespace smithers::store {

struct StoreBackend {
  std::string name;
  // Opens the store kept under `scratch_dir`, an empty directory private to
  // the test. Called again with the same directory it must reach the same data
  // (the test closes the previous store first).
  std::function<Result<std::unique_ptr<Store>>(const std::string& scratch_dir)> open;
};

inline std::string StoreBackendName(const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param.name;
}

class StoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed";
    Reopen();
  }

  // Closes the store and opens it again on the same data.
  void Reopen() {
    store_.reset();
    Result<std::unique_ptr<Store>> store = GetParam().open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  // Commits `batch` and returns the seqs, failing the test on error.
  std::vector<int64_t> MustCommit(const WriteBatch& batch) {
    Result<std::vector<int64_t>> seqs = store_->Commit(batch);
    EXPECT_TRUE(seqs.ok()) << seqs.status().ToString();
    return seqs.ok() ? *seqs : std::vector<int64_t>();
  }

  void PutRun(const RunRecord& run) {
    WriteBatch batch;
    batch.UpsertRun(run);
    MustCommit(batch);
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace smithers::store

#endif  // SMITHERS_TESTS_UNIT_STORE_STORE_CONFORMANCE_H_
