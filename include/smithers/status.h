// Status and Result<T>: how every fallible function in Smithers reports failure.
//
//   smithers::Result<int> Parse(std::string_view s);
//   SMITHERS_ASSIGN_OR_RETURN(int n, Parse(text));
//   SMITHERS_RETURN_IF_ERROR(store.Commit(batch));
//
// Codes carry retry meaning (as Abseil's): kUnavailable = retry the call;
// kAborted = reload and retry; kInvalidArgument / kFailedPrecondition = never
// retry; kDataLoss = stop and alert. Neither type throws.
#ifndef SMITHERS_STATUS_H_
#define SMITHERS_STATUS_H_

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace smithers {

enum class StatusCode {
  kOk = 0,
  kCancelled,
  kInvalidArgument,
  kDeadlineExceeded,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kAborted,
  kUnavailable,
  kDataLoss,
  kInternal,
  kPermissionDenied,  // the caller may not do this (who may is in the message)
};

// Returns the code's stable name, e.g. "INVALID_ARGUMENT".
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", or "OK".
  std::string ToString() const;
  // Returns a copy whose message is `prefix + ": " + message()`.
  Status WithContext(const std::string& prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status FailedPreconditionError(std::string message);
Status AbortedError(std::string message);
Status UnavailableError(std::string message);
Status DataLossError(std::string message);
Status InternalError(std::string message);
Status DeadlineExceededError(std::string message);
Status CancelledError(std::string message);
Status PermissionDeniedError(std::string message);

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.ok()) status_ = InternalError("Result constructed from an OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace smithers

#define SMITHERS_CONCAT_INNER_(a, b) a##b
#define SMITHERS_CONCAT_(a, b) SMITHERS_CONCAT_INNER_(a, b)

#define SMITHERS_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::smithers::Status smithers_status_ = (expr);        \
    if (!smithers_status_.ok()) return smithers_status_; \
  } while (0)

#define SMITHERS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

#define SMITHERS_ASSIGN_OR_RETURN(lhs, expr) \
  SMITHERS_ASSIGN_OR_RETURN_IMPL_(SMITHERS_CONCAT_(smithers_result_, __LINE__), lhs, expr)

#endif  // SMITHERS_STATUS_H_
