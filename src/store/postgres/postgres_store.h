// The PostgreSQL backend's entry point for OpenStore. Production code opens
// stores with smithers::OpenStore() (smithers/store.h).
#ifndef SMITHERS_STORE_POSTGRES_POSTGRES_STORE_H_
#define SMITHERS_STORE_POSTGRES_POSTGRES_STORE_H_

#include <memory>
#include <string>

#include "smithers/status.h"
#include "smithers/store.h"

namespace smithers::store {

// OpenStore's PostgreSQL backend: connects to location.url, creates or
// migrates the tables in the URL's schema (its search_path) unless
// options.read_only, and returns the store on that one connection.
Result<std::unique_ptr<Store>> OpenPostgresStoreAt(const StoreLocation& location,
                                                   const StoreOptions& options);

// The text the PostgreSQL store prepares for statement `statement_id`
// (store/sql/statements.h), for tests of the dialect rewrite.
std::string PostgresSqlForTesting(int statement_id);

}  // namespace smithers::store

#endif  // SMITHERS_STORE_POSTGRES_POSTGRES_STORE_H_
