#include "store/postgres/pq_api.h"

#include <dlfcn.h>

#include <string>

namespace smithers::store::pg {
namespace {

struct Loaded {
  PqApi api{};
  bool ok = false;
  std::string error;
};

template <typename T>
bool Bind(void* lib, const char* name, T& out, std::string& error) {
  out = reinterpret_cast<T>(dlsym(lib, name));  // NOLINT: dlsym returns void*
  if (out == nullptr && error.empty()) error = std::string("libpq lacks ") + name;
  return out != nullptr;
}

Loaded Load() {
  Loaded l;
  void* lib = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* e = dlerror();
    l.error = std::string("cannot load libpq (install libpq5): ") + (e != nullptr ? e : "?");
    return l;
  }
  PqApi& a = l.api;
  // Every symbol is looked up (no short-circuit), so the error names the first missing.
  bool ok = true;
  ok = Bind(lib, "PQconnectdb", a.connectdb, l.error) && ok;
  ok = Bind(lib, "PQstatus", a.status, l.error) && ok;
  ok = Bind(lib, "PQerrorMessage", a.error_message, l.error) && ok;
  ok = Bind(lib, "PQfinish", a.finish, l.error) && ok;
  ok = Bind(lib, "PQreset", a.reset, l.error) && ok;
  ok = Bind(lib, "PQexec", a.exec, l.error) && ok;
  ok = Bind(lib, "PQresultStatus", a.result_status, l.error) && ok;
  ok = Bind(lib, "PQclear", a.clear, l.error) && ok;
  ok = Bind(lib, "PQresultErrorField", a.result_error_field, l.error) && ok;
  ok = Bind(lib, "PQprepare", a.prepare, l.error) && ok;
  ok = Bind(lib, "PQdescribePrepared", a.describe_prepared, l.error) && ok;
  ok = Bind(lib, "PQnparams", a.nparams, l.error) && ok;
  ok = Bind(lib, "PQparamtype", a.paramtype, l.error) && ok;
  ok = Bind(lib, "PQexecPrepared", a.exec_prepared, l.error) && ok;
  ok = Bind(lib, "PQcmdTuples", a.cmd_tuples, l.error) && ok;
  ok = Bind(lib, "PQcmdStatus", a.cmd_status, l.error) && ok;
  ok = Bind(lib, "PQntuples", a.ntuples, l.error) && ok;
  ok = Bind(lib, "PQgetisnull", a.getisnull, l.error) && ok;
  ok = Bind(lib, "PQgetvalue", a.getvalue, l.error) && ok;
  ok = Bind(lib, "PQgetlength", a.getlength, l.error) && ok;
  ok = Bind(lib, "PQsetNoticeProcessor", a.set_notice_processor, l.error) && ok;
  ok = Bind(lib, "PQconninfoParse", a.conninfo_parse, l.error) && ok;
  ok = Bind(lib, "PQconninfoFree", a.conninfo_free, l.error) && ok;
  ok = Bind(lib, "PQfreemem", a.freemem, l.error) && ok;
  ok = Bind(lib, "PQenterPipelineMode", a.enter_pipeline_mode, l.error) && ok;
  ok = Bind(lib, "PQexitPipelineMode", a.exit_pipeline_mode, l.error) && ok;
  ok = Bind(lib, "PQpipelineStatus", a.pipeline_status, l.error) && ok;
  ok = Bind(lib, "PQpipelineSync", a.pipeline_sync, l.error) && ok;
  ok = Bind(lib, "PQsendQueryParams", a.send_query_params, l.error) && ok;
  ok = Bind(lib, "PQsendQueryPrepared", a.send_query_prepared, l.error) && ok;
  ok = Bind(lib, "PQgetResult", a.get_result, l.error) && ok;
  l.ok = ok;
  return l;
}

const Loaded& Library() {
  static const Loaded* loaded = new Loaded(Load());
  return *loaded;
}

}  // namespace

const PqApi* LoadPq(const char** error) {
  const Loaded& loaded = Library();
  if (!loaded.ok) {
    if (error != nullptr) *error = loaded.error.c_str();
    return nullptr;
  }
  return &loaded.api;
}

const PqApi& Pq() { return Library().api; }

}  // namespace smithers::store::pg
