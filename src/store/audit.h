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

// Where the store's audit key comes from (StoreOptions::audit_key): read on
// the first audited write, not at open (a reader never needs it).
struct AuditKeySource {
  std::string ref;      // "" = <db_path>.audit-key, created when missing
  std::string db_path;  // ":memory:" = a random key
  // A server's database has no folder to keep a key file beside it: `ref`
  // must name the key (every process writing the log needs the same one).
  bool server = false;
};

}  // namespace smithers::store

#endif  // SMITHERS_STORE_AUDIT_H_
