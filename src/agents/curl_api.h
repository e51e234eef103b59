// libcurl, loaded with dlopen the first time an agent makes a request: a
// workflow without HTTP agents never maps libcurl and its twenty-odd
// dependencies (5 MB of resident memory per `smithers` process).
// Private to the agents module.
#ifndef SMITHERS_AGENTS_CURL_API_H_
#define SMITHERS_AGENTS_CURL_API_H_

#include <curl/curl.h>

namespace smithers::agents {

struct CurlApi {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_multi_init) multi_init;
  decltype(&::curl_multi_cleanup) multi_cleanup;
  decltype(&::curl_multi_add_handle) multi_add_handle;
  decltype(&::curl_multi_remove_handle) multi_remove_handle;
  decltype(&::curl_multi_perform) multi_perform;
  decltype(&::curl_multi_poll) multi_poll;
  decltype(&::curl_multi_info_read) multi_info_read;
  decltype(&::curl_multi_strerror) multi_strerror;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
  decltype(&::curl_getdate) getdate;
};

// The loaded library (curl_global_init done), or nullptr when libcurl.so.4
// cannot be loaded; then *error says why.
const CurlApi* Curl(const char** error = nullptr);

}  // namespace smithers::agents

#endif  // SMITHERS_AGENTS_CURL_API_H_
