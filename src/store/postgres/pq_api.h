// libpq, loaded with dlopen when a store first connects to PostgreSQL: a
// process on the SQLite default never maps libpq and the twenty-odd libraries
// it pulls in (Kerberos, LDAP, GnuTLS: 3.5-4 MB of resident memory per
// `smithers` process). Private to this folder.
#ifndef SMITHERS_STORE_POSTGRES_PQ_API_H_
#define SMITHERS_STORE_POSTGRES_PQ_API_H_

#include <libpq-fe.h>

namespace smithers::store::pg {

struct PqApi {
  decltype(&::PQconnectdb) connectdb;
  decltype(&::PQstatus) status;
  decltype(&::PQerrorMessage) error_message;
  decltype(&::PQfinish) finish;
  decltype(&::PQreset) reset;
  decltype(&::PQexec) exec;
  decltype(&::PQresultStatus) result_status;
  decltype(&::PQclear) clear;
  decltype(&::PQresultErrorField) result_error_field;
  decltype(&::PQprepare) prepare;
  decltype(&::PQdescribePrepared) describe_prepared;
  decltype(&::PQnparams) nparams;
  decltype(&::PQparamtype) paramtype;
  decltype(&::PQexecPrepared) exec_prepared;
  decltype(&::PQcmdTuples) cmd_tuples;
  decltype(&::PQcmdStatus) cmd_status;
  decltype(&::PQntuples) ntuples;
  decltype(&::PQgetisnull) getisnull;
  decltype(&::PQgetvalue) getvalue;
  decltype(&::PQgetlength) getlength;
  decltype(&::PQsetNoticeProcessor) set_notice_processor;
  decltype(&::PQconninfoParse) conninfo_parse;
  decltype(&::PQconninfoFree) conninfo_free;
  decltype(&::PQfreemem) freemem;
  decltype(&::PQenterPipelineMode) enter_pipeline_mode;
  decltype(&::PQexitPipelineMode) exit_pipeline_mode;
  decltype(&::PQpipelineStatus) pipeline_status;
  decltype(&::PQpipelineSync) pipeline_sync;
  decltype(&::PQsendQueryParams) send_query_params;
  decltype(&::PQsendQueryPrepared) send_query_prepared;
  decltype(&::PQgetResult) get_result;
};

// The loaded library, or nullptr when libpq.so.5 cannot be loaded; then
// *error says why.
const PqApi* LoadPq(const char** error = nullptr);

// The loaded library; only after a LoadPq() that succeeded (every PGconn
// comes from Database::Connect, which loads it first).
const PqApi& Pq();

}  // namespace smithers::store::pg

#endif  // SMITHERS_STORE_POSTGRES_PQ_API_H_
