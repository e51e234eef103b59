// ReadSqliteSettings: the pragmas a deployment check reports
// (include/smithers/store.h).
#include <unistd.h>

#include <string>

#include "base/text.h"
#include "smithers/store.h"
#include "store/sqlite/sqlite_db.h"

namespace smithers {

Result<SqliteSettings> ReadSqliteSettings(const std::string& db_path) {
  if (access(db_path.c_str(), F_OK) != 0) {
    return FailedPreconditionError("no database at " + db_path);
  }
  SMITHERS_ASSIGN_OR_RETURN(store::Database db, store::Database::Open(db_path, /*read_only=*/true));
  sqlite3_busy_timeout(db.handle(), 10000);
  SqliteSettings out;
  SMITHERS_ASSIGN_OR_RETURN(std::string mode, db.QueryText("PRAGMA journal_mode"));
  out.journal_mode = base::AsciiLower(mode);
  // Per connection: what every store connection does, then read back (a
  // build without foreign-key support ignores the pragma silently).
  SMITHERS_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys=ON"));
  Result<std::string> fk = db.QueryText("PRAGMA foreign_keys");
  if (!fk.ok()) return fk.status();
  out.foreign_keys = fk->compare("1") == 0;
  return out;
}

}  // namespace smithers
