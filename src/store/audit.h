// The audit log's internals shared by the store backends (src/store/audit.cc).
#ifndef SMITHERS_STORE_AUDIT_H_
#define SMITHERS_STORE_AUDIT_H_

#include <string>

#include "smithers/status.h"

namespace smithers::store {

// Creates the default audit key file <db_path>.audit-key (32 random bytes
// as hex, 0600): written whole under a private name, linked into place and
// its folder synced, so a concurrent creator never reads half a key and no
// row signed with it outlives its name. Ok when another process made it
// first (that key is the one to load).
Status CreateDefaultAuditKey(const std::string& db_path);

}  // namespace smithers::store

#endif  // SMITHERS_STORE_AUDIT_H_
