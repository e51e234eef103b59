// Between opening (sqlite_open.cc) and the store (sqlite_store.cc).
#ifndef SMITHERS_STORE_SQLITE_SQLITE_STORE_IMPL_H_
#define SMITHERS_STORE_SQLITE_SQLITE_STORE_IMPL_H_

#include <memory>
#include <string>

#include "smithers/status.h"
#include "smithers/store.h"
#include "store/audit.h"
#include "store/sqlite/sqlite_db.h"

namespace smithers::store {

// The store on an open, migrated connection; prepares the statements of
// migrations up to `max_migration`.
Result<std::unique_ptr<Store>> NewSqliteStore(Database db, int max_migration,
                                              AuditKeySource audit_key);

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQLITE_SQLITE_STORE_IMPL_H_
