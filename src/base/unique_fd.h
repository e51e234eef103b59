// An owned file descriptor, closed when it goes out of scope, so that every
// early return closes what was opened.
//
//   base::UniqueFd fd(openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
//   if (fd.get() < 0) return ...;
#ifndef SMITHERS_BASE_UNIQUE_FD_H_
#define SMITHERS_BASE_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace smithers::base {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace smithers::base

#endif  // SMITHERS_BASE_UNIQUE_FD_H_
