// Whole-file reads and writes on an open descriptor, shared by the
// module's file code (apply.cc, sandbox_task.cc). Errors name `what`.
#ifndef SMITHERS_SANDBOX_FD_IO_H_
#define SMITHERS_SANDBOX_FD_IO_H_

#include <string>

#include "smithers/status.h"

namespace smithers::sandbox {

// Writes all of `data` to `fd` (retrying EINTR and short writes), then fsyncs.
Status WriteAll(int fd, const std::string& data, const std::string& what);

// Reads `fd` to its end.
Result<std::string> ReadAll(int fd, const std::string& what);

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_FD_IO_H_
