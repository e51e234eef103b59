#include "agents/curl_api.h"

#include <dlfcn.h>

#include <string>

namespace smithers::agents {
namespace {

struct Loaded {
  CurlApi api{};
  bool ok = false;
  std::string error;
};

template <typename T>
bool Bind(void* lib, const char* name, T& out, std::string& error) {
  out = reinterpret_cast<T>(dlsym(lib, name));  // NOLINT: dlsym returns void*
  if (out == nullptr && error.empty()) error = std::string("libcurl lacks ") + name;
  return out != nullptr;
}

Loaded Load() {
  Loaded l;
  void* lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* e = dlerror();
    l.error = std::string("cannot load libcurl (install libcurl4): ") + (e != nullptr ? e : "?");
    return l;
  }
  CurlApi& a = l.api;
  // Every symbol is looked up (no short-circuit), so the error names the first missing.
  bool ok = true;
  ok = Bind(lib, "curl_global_init", a.global_init, l.error) && ok;
  ok = Bind(lib, "curl_easy_init", a.easy_init, l.error) && ok;
  ok = Bind(lib, "curl_easy_cleanup", a.easy_cleanup, l.error) && ok;
  ok = Bind(lib, "curl_easy_setopt", a.easy_setopt, l.error) && ok;
  ok = Bind(lib, "curl_easy_getinfo", a.easy_getinfo, l.error) && ok;
  ok = Bind(lib, "curl_easy_strerror", a.easy_strerror, l.error) && ok;
  ok = Bind(lib, "curl_multi_init", a.multi_init, l.error) && ok;
  ok = Bind(lib, "curl_multi_cleanup", a.multi_cleanup, l.error) && ok;
  ok = Bind(lib, "curl_multi_add_handle", a.multi_add_handle, l.error) && ok;
  ok = Bind(lib, "curl_multi_remove_handle", a.multi_remove_handle, l.error) && ok;
  ok = Bind(lib, "curl_multi_perform", a.multi_perform, l.error) && ok;
  ok = Bind(lib, "curl_multi_poll", a.multi_poll, l.error) && ok;
  ok = Bind(lib, "curl_multi_info_read", a.multi_info_read, l.error) && ok;
  ok = Bind(lib, "curl_multi_strerror", a.multi_strerror, l.error) && ok;
  ok = Bind(lib, "curl_slist_append", a.slist_append, l.error) && ok;
  ok = Bind(lib, "curl_slist_free_all", a.slist_free_all, l.error) && ok;
  ok = Bind(lib, "curl_getdate", a.getdate, l.error) && ok;
  if (!ok) return l;
  // Not thread-safe, hence here: the static below initialises once.
  a.global_init(CURL_GLOBAL_DEFAULT);
  l.ok = true;
  return l;
}

}  // namespace

const CurlApi* Curl(const char** error) {
  static const Loaded* loaded = new Loaded(Load());
  if (!loaded->ok) {
    if (error != nullptr) *error = loaded->error.c_str();
    return nullptr;
  }
  return &loaded->api;
}

}  // namespace smithers::agents
