// One HTTP POST over libcurl, for the model providers (model.cc). Private to
// the agents module.
//
//   HttpRequest req{.url = url, .headers = {"Content-Type: application/json"},
//                   .body = payload.dump(), .timeout_ms = 30000, .cancel = &flag};
//   SMITHERS_ASSIGN_OR_RETURN(HttpResponse res, HttpPost(req));
#ifndef SMITHERS_AGENTS_HTTP_H_
#define SMITHERS_AGENTS_HTTP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "smithers/status.h"

namespace smithers::agents {

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  int64_t timeout_ms = 0;                     // whole transfer; 0 = none
  const std::atomic<bool>* cancel = nullptr;  // polled every few tens of ms
  // When set, a 2xx reply whose Content-Type is text/event-stream is handed to
  // this sink chunk by chunk as it arrives (and not kept in HttpResponse::body).
  // Returning false stops the transfer: HttpPost then returns Aborted and the
  // caller reports its own reason.
  std::function<bool(std::string_view)> event_stream_sink;
};

struct HttpResponse {
  long status = 0;                             // NOLINT(google-runtime-int): libcurl's type
  std::map<std::string, std::string> headers;  // names lower-cased; the last value wins
  std::string body;
  bool streamed = false;  // the body went to event_stream_sink
};

// Sends `request`. Any HTTP status is a successful Result; errors are about
// the transfer: Cancelled (the cancel flag was set), DeadlineExceeded
// (timeout_ms passed), Unavailable (could not connect, connection dropped),
// InvalidArgument (bad URL), Aborted (the sink stopped it). Messages name the
// libcurl failure, never a header value. Thread-safe (one handle per call).
Result<HttpResponse> HttpPost(const HttpRequest& request);

}  // namespace smithers::agents

#endif  // SMITHERS_AGENTS_HTTP_H_
