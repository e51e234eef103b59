#include "agents/http.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>

#include "agents/curl_api.h"

namespace smithers::agents {
namespace {

// How often the transfer loop wakes to look at the cancel flag when the
// connection is idle (a hung server): the bound on cancellation latency.
constexpr int kPollIntervalMs = 20;

struct EasyDeleter {
  void operator()(CURL* h) const { Curl()->easy_cleanup(h); }
};
struct MultiDeleter {
  void operator()(CURLM* m) const { Curl()->multi_cleanup(m); }
};
class HeaderList {
 public:
  HeaderList() = default;
  HeaderList(const HeaderList&) = delete;
  HeaderList& operator=(const HeaderList&) = delete;
  ~HeaderList() { Curl()->slist_free_all(head_); }
  bool Add(const std::string& line) {
    curl_slist* next = Curl()->slist_append(head_, line.c_str());
    if (next == nullptr) return false;
    head_ = next;
    return true;
  }
  curl_slist* get() const { return head_; }

 private:
  curl_slist* head_ = nullptr;
};

// State shared with libcurl's callbacks during one transfer.
struct Transfer {
  const HttpRequest* request = nullptr;
  CURL* easy = nullptr;
  HttpResponse response;
  bool sink_stopped = false;
};

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string Trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b])) != 0) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])) != 0) --e;
  return std::string(s.substr(b, e - b));
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->response.headers.clear();  // a new response (after 100 Continue or a redirect)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    t->response.headers[Lower(Trim(line.substr(0, colon)))] = Trim(line.substr(colon + 1));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view chunk(data, size * n);
  long status = 0;  // NOLINT(google-runtime-int): libcurl's type
  Curl()->easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  auto type = t->response.headers.find("content-type");
  bool event_stream = status >= 200 && status < 300 && t->request->event_stream_sink &&
                      type != t->response.headers.end() &&
                      Lower(type->second).rfind("text/event-stream", 0) == 0;
  if (!event_stream) {
    t->response.body.append(chunk);
    return chunk.size();
  }
  t->response.streamed = true;
  if (!t->request->event_stream_sink(chunk)) {
    t->sink_stopped = true;
    return 0;  // makes libcurl fail the transfer with CURLE_WRITE_ERROR
  }
  return chunk.size();
}

Status TransferError(CURLcode code, const char* detail) {
  std::string message = std::string(Curl()->easy_strerror(code));
  if (detail != nullptr && detail[0] != '\0') message += " (" + std::string(detail) + ")";
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT: return DeadlineExceededError("request timed out: " + message);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return InvalidArgumentError("bad URL: " + message);
    default: return UnavailableError("connection failed: " + message);
  }
}

}  // namespace

Result<HttpResponse> HttpPost(const HttpRequest& request) {
  const char* load_error = nullptr;
  if (Curl(&load_error) == nullptr) return FailedPreconditionError(load_error);
  std::unique_ptr<CURL, EasyDeleter> easy(Curl()->easy_init());
  std::unique_ptr<CURLM, MultiDeleter> multi(Curl()->multi_init());
  if (!easy || !multi) return InternalError("libcurl: could not create a handle");
  HeaderList headers;
  for (const std::string& line : request.headers) {
    if (!headers.Add(line)) return InternalError("libcurl: out of memory");
  }
  // No "Expect: 100-continue" round trip for large bodies.
  if (!headers.Add("Expect:")) return InternalError("libcurl: out of memory");

  Transfer t;
  t.request = &request;
  t.easy = easy.get();
  char error_buffer[CURL_ERROR_SIZE] = {0};
  CURL* h = easy.get();
  Curl()->easy_setopt(h, CURLOPT_URL, request.url.c_str());
  Curl()->easy_setopt(h, CURLOPT_POST, 1L);
  Curl()->easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
  Curl()->easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  Curl()->easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  Curl()->easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnHeader);
  Curl()->easy_setopt(h, CURLOPT_HEADERDATA, &t);
  Curl()->easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnBody);
  Curl()->easy_setopt(h, CURLOPT_WRITEDATA, &t);
  Curl()->easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  Curl()->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  Curl()->easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl can decode
  Curl()->easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
  if (request.timeout_ms > 0) {
    Curl()->easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout_ms));  // NOLINT
  }
  // Providers never redirect a POST worth following; a redirect would also
  // resend the key to wherever it points.
  Curl()->easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);

  if (Curl()->multi_add_handle(multi.get(), h) != CURLM_OK) {
    return InternalError("libcurl: could not start the transfer");
  }
  // The multi loop (rather than curl_easy_perform) wakes every
  // kPollIntervalMs even when the server sends nothing, so a cancel is seen
  // promptly; libcurl's progress callback can be a second apart when idle.
  CURLcode result = CURLE_OK;
  bool cancelled = false;
  for (;;) {
    int running = 0;
    CURLMcode mc = Curl()->multi_perform(multi.get(), &running);
    if (mc != CURLM_OK) {
      Curl()->multi_remove_handle(multi.get(), h);
      return InternalError(std::string("libcurl: ") + Curl()->multi_strerror(mc));
    }
    if (running == 0) {
      int left = 0;
      while (CURLMsg* msg = Curl()->multi_info_read(multi.get(), &left)) {
        if (msg->msg == CURLMSG_DONE) result = msg->data.result;
      }
      break;
    }
    if (request.cancel != nullptr && request.cancel->load()) {
      cancelled = true;
      break;
    }
    mc = Curl()->multi_poll(multi.get(), nullptr, 0, kPollIntervalMs, nullptr);
    if (mc != CURLM_OK) {
      Curl()->multi_remove_handle(multi.get(), h);
      return InternalError(std::string("libcurl: ") + Curl()->multi_strerror(mc));
    }
  }
  Curl()->multi_remove_handle(multi.get(), h);
  if (cancelled) return CancelledError("request cancelled");
  if (t.sink_stopped) return AbortedError("stopped while reading the event stream");
  if (result != CURLE_OK) return TransferError(result, error_buffer);
  Curl()->easy_getinfo(h, CURLINFO_RESPONSE_CODE, &t.response.status);
  return std::move(t.response);
}

}  // namespace smithers::agents
