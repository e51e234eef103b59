// FaultInjectingStore: a Store that forwards to another and fails chosen
// commits, so tests can check what survives a write that never landed and a
// write that landed but was reported as failed (the "ambiguous commit": the
// disk synced, then the process lost the reply).
//
//   auto real = smithers::OpenSqliteStore({.path = dir + "/runs.db"});
//   smithers::store::FaultInjectingStore store(real->get());
//   store.FailCommit(3, FaultInjectingStore::Fault::kBeforeApply);  // nothing written
//   store.FailCommit(5, FaultInjectingStore::Fault::kAfterApply);   // written, error anyway
//   store.FailCommitsFrom(8);  // the database is gone from the 8th commit on
//
// Commits are counted from 1 over the object's life, including failed ones.
// Header-only so any test target can use it. Not thread-safe, like Store.
#ifndef SMITHERS_TESTS_UNIT_STORE_FAULT_INJECTING_STORE_H_
#define SMITHERS_TESTS_UNIT_STORE_FAULT_INJECTING_STORE_H_

#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "smithers/status.h"
#include "smithers/store.h"

namespace smithers::store {

class FaultInjectingStore : public StoreWrapper {
 public:
  enum class Fault {
    kBeforeApply,  // the commit fails without reaching the target store
    kAfterApply,   // the target applies the commit, then the caller sees `status`
  };

  using StoreWrapper::StoreWrapper;

  // The `n`th Commit() call fails as `fault` says, with `status`.
  void FailCommit(int n, Fault fault,
                  Status status = UnavailableError("injected fault: commit failed")) {
    faults_[n] = {fault, std::move(status)};
  }

  // Every Commit() from the `n`th on fails before applying.
  void FailCommitsFrom(int n, Status status = UnavailableError("injected fault: store gone")) {
    fail_from_ = n;
    fail_from_status_ = std::move(status);
  }

  // Removes every planned fault; the count of calls continues.
  void ClearFaults() {
    faults_.clear();
    fail_from_.reset();
  }

  // Commit() calls so far, failed or not.
  int commit_calls() const { return commit_calls_; }
  // Commit() calls that reached the target and succeeded there (including
  // kAfterApply ones the caller saw fail).
  int commits_applied() const { return commits_applied_; }

  Result<std::vector<int64_t>> Commit(const WriteBatch& batch) override {
    const int n = ++commit_calls_;
    if (fail_from_ && n >= *fail_from_) return fail_from_status_;
    auto planned = faults_.find(n);
    if (planned != faults_.end() && planned->second.fault == Fault::kBeforeApply) {
      return planned->second.status;
    }
    Result<std::vector<int64_t>> result = StoreWrapper::Commit(batch);
    if (!result.ok()) return result;  // a real failure wins over an injected one
    ++commits_applied_;
    if (planned != faults_.end()) return planned->second.status;
    return result;
  }

 private:
  struct PlannedFault {
    Fault fault;
    Status status;
  };

  std::map<int, PlannedFault> faults_;
  std::optional<int> fail_from_;
  Status fail_from_status_;
  int commit_calls_ = 0;
  int commits_applied_ = 0;
};

}  // namespace smithers::store

#endif  // SMITHERS_TESTS_UNIT_STORE_FAULT_INJECTING_STORE_H_
