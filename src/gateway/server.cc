// The Gateway's network side: one io thread serving HTTP/1.1 and WebSocket,
// plain or TLS (Boost.Beast over Asio, OpenSSL), with the limits of
// docs/gateway.md "Limits": body and frame sizes, connection caps, bounded
// outbound queues, header and connect timeouts.
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cctype>
#include <chrono>
#include <csignal>
#include <optional>

#include "base/hash.h"
#include "base/json_limits.h"
#include "gateway/combining_stream.h"
#include "gateway/deployment.h"
#include "gateway/gateway_internal.h"
#include "gateway/protocol.h"
#include "smithers/engine.h"

namespace smithers::gateway {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using Tcp = net::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

constexpr size_t kHardFrameLimit = 16u << 20;  // above max_frame_bytes: refused with an error
constexpr int kCloseGraceMs = 2000;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "host[:port]" or "[v6][:port]" -> host and port (0 when none is given).
void SplitHostPort(const std::string& text, std::string* host, int* port) {
  *port = 0;
  std::string rest;
  if (!text.empty() && text.front() == '[') {
    size_t end = text.find(']');
    *host = text.substr(0, end == std::string::npos ? std::string::npos : end + 1);
    rest = end == std::string::npos ? "" : text.substr(end + 1);
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    *host = text.substr(0, text.find(':'));
    rest = text.substr(text.find(':'));
  } else {
    *host = text;
  }
  if (rest.size() > 1 && rest[0] == ':' && rest.size() <= 6 &&
      std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    *port = std::stoi(rest.substr(1));
  } else if (!rest.empty()) {
    *port = -1;  // not a port
  }
}

// An Origin as browsers send it ("scheme://host[:port]"), lower-cased
// without a trailing slash, for comparing with allowed_origins.
std::string NormalizeOrigin(std::string origin) {
  origin = Lower(std::move(origin));
  while (!origin.empty() && origin.back() == '/') origin.pop_back();
  return origin;
}

// Why a request may not be served for its Host or Origin header, or "" when
// it may (docs/gateway.md "Host and Origin"). The same check guards the
// WebSocket upgrade and every HTTP request:
// - any auth mode: a request that carries an Origin must name one of
//   allowed_origins when that list is set (requests without Origin pass);
// - --auth none (DNS rebinding): the Host must be a loopback name (with the
//   bound port, if it names one), and an Origin must be a loopback origin at
//   the bound port or an allowed one.
std::string RefusedHostOrOrigin(const Request& req, const GatewayOptions& o, int bound_port,
                                bool tls) {
  auto origin_field = req.find(http::field::origin);
  const bool has_origin = origin_field != req.end();
  const std::string origin = has_origin ? NormalizeOrigin(std::string(origin_field->value())) : "";
  const bool allowed =
      has_origin && std::any_of(o.allowed_origins.begin(), o.allowed_origins.end(),
                                [&](const std::string& a) { return NormalizeOrigin(a) == origin; });
  if (o.auth == "none") {
    auto host_field = req.find(http::field::host);
    if (host_field != req.end()) {
      std::string host;
      int port = 0;
      SplitHostPort(Lower(std::string(host_field->value())), &host, &port);
      if (!IsLoopbackHost(host) || (port != 0 && port != bound_port)) {
        return "foreign Host \"" + std::string(host_field->value()) +
               "\" (under --auth none only localhost, 127.0.0.1 or [::1] at port " +
               std::to_string(bound_port) + ")";
      }
    }
    if (has_origin && !allowed) {
      size_t scheme_end = origin.find("://");
      std::string scheme = scheme_end == std::string::npos ? "" : origin.substr(0, scheme_end);
      std::string host;
      int port = 0;
      SplitHostPort(scheme_end == std::string::npos ? "" : origin.substr(scheme_end + 3), &host,
                    &port);
      if (port == 0) port = scheme == "https" ? 443 : scheme == "http" ? 80 : -1;
      bool same = (scheme == "http" || scheme == "https") && (scheme == "https") == tls &&
                  IsLoopbackHost(host) && port == bound_port;
      if (!same) {
        return "foreign Origin \"" + std::string(origin_field->value()) +
               "\" (under --auth none only this Gateway's loopback origin, or one of "
               "allowed_origins)";
      }
    }
    return "";
  }
  if (has_origin && !o.allowed_origins.empty() && !allowed) {
    return "Origin \"" + std::string(origin_field->value()) + "\" is not in allowed_origins";
  }
  return "";
}

Credentials CredentialsOf(const Request& req) {
  Credentials c;
  auto auth = req.find(http::field::authorization);
  if (auth != req.end()) {
    std::string v(auth->value());
    if (v.size() > 7 && (v.rfind("Bearer ", 0) == 0 || v.rfind("bearer ", 0) == 0)) {
      c.bearer = v.substr(7);
    }
  }
  if (c.bearer.empty()) {
    auto key = req.find("x-smithers-key");
    if (key != req.end()) c.bearer = std::string(key->value());
  }
  auto field = [&](const char* name) {
    auto it = req.find(name);
    return it == req.end() ? std::string() : std::string(it->value());
  };
  c.proxy_user = field("x-user-id");
  c.proxy_scopes = field("x-user-scopes");
  c.proxy_role = field("x-user-role");
  return c;
}

// The address of "ADDRESS:PORT" (as DoAccept names a peer; IPv6 included).
std::string PeerOf(const std::string& remote) { return remote.substr(0, remote.rfind(':')); }

Json ErrorJson(const Reply& r) {
  Json e = {{"code", r.code}, {"message", r.message}};
  if (r.details.is_object()) {
    if (r.details.contains("requiredScope")) e["requiredScope"] = r.details["requiredScope"];
    if (r.details.contains("refresh")) e["refresh"] = r.details["refresh"];
    e["details"] = r.details;
  }
  return e;
}

// A `res` frame's text, with the keys in the order a Json object would have
// them; the payload is serialized in place, not copied into a frame object.
std::string ResponseText(const Json& id, const Reply& r) {
  std::string text = "{\"id\":" + Frame(id);
  if (r.ok) {
    text += ",\"ok\":true,\"payload\":" + Frame(r.payload);
  } else {
    text += ",\"error\":" + Frame(ErrorJson(r)) + ",\"ok\":false";
  }
  text += ",\"type\":\"res\"}";
  return text;
}

Reply Unauthorized(const Status& why) {
  Json details = Json::object();
  const std::string& m = why.message();
  if (m.find("expired") != std::string::npos || m.find("revoked") != std::string::npos) {
    details["refresh"] = "smithers token issue";
  }
  return Reply::Err("Unauthorized", m, details);
}

class Server;

// ---- WebSocket ----

template <class Stream>
class WsSession final : public Connection {
 public:
  WsSession(Stream&& stream, Server& server, std::string remote, Credentials upgrade_credentials);
  void Start(Request req);

  void SendEvent(const std::string& event, const std::string& payload_json) override;
  int Room() const override;
  bool Overflowing() const override;
  void Close(int code, const std::string& reason) override;
  void Tick();

 private:
  void Send(std::string text);
  void DoRead();
  void OnRead(beast::error_code ec);
  void Handle(const std::string& text);
  void HandleConnect(const Json& id, const Json& params);
  void DoWrite();
  void StartClose();
  void Finish();

  websocket::stream<CombiningStream<Stream>> ws_;
  Server& server_;
  Gateway& gw_;
  std::string remote_;
  Credentials upgrade_credentials_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  int64_t write_started_ms_ = 0;
  int64_t seq_ = 0;
  bool counted_preauth_ = false;
  bool finished_ = false;
  bool close_sent_ = false;
  websocket::close_reason close_reason_;
  net::steady_timer connect_timer_;
  net::steady_timer close_timer_;
};

// ---- HTTP ----

template <class Stream>
class HttpSession final : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(Stream&& stream, Server& server, std::string remote)
      : stream_(std::move(stream)), server_(server), remote_(std::move(remote)) {}
  void Start();

 private:
  void DoRead();
  void OnRead(beast::error_code ec);
  // Answers a request Beast could not parse with 400 and closes.
  void BadRequest(beast::error_code ec);
  // Answers `req` through `respond`, at once or later (an RPC method that
  // waits for a run; the session is held until then).
  struct Answer {
    Response res;
    std::string user, method;
  };
  using Respond = std::function<void(Answer)>;
  void HandleRequest(const Request& req, const Respond& respond);
  // Sends an answer to `req` (its version, keep-alive and log line).
  void Finish(const Request& req, int64_t t0, Answer answer);
  void Write(Response res, bool close);
  void Shutdown();
  // After a close: reads and drops what the client still sends, so the
  // kernel does not reset the connection (and lose our last response)
  // because unread bytes are left; ends at EOF, an error or 5 s.
  void Drain();

  Stream stream_;
  Server& server_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
};

class Server {
 public:
  Server(Gateway& gw, net::io_context& ioc, std::optional<ssl::context>& tls)
      : gw(gw),
        ioc(ioc),
        tls(tls),
        acceptor_(ioc),
        pump_timer_(ioc),
        tick_timer_(ioc),
        second_timer_(ioc),
        retention_timer_(ioc) {}

  Status Listen(const std::string& host, int port) {
    beast::error_code ec;
    auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) return InvalidArgumentError("--host \"" + host + "\" is not an IP address");
    Tcp::endpoint ep(address, static_cast<uint16_t>(port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                              ec.message());
    }
    bound_port = acceptor_.local_endpoint().port();
    return Status::Ok();
  }

  void Start() {
    gw.request_pump = [this]() { net::post(ioc, [this] { gw.PumpAll(); }); };
    // From run threads too: what they hand to the io thread (replies that
    // waited for a run). A delayed one gets its own timer, made on the io
    // thread; when the io loop stops, what is still queued is dropped.
    gw.post_to_io = [&ioc = ioc](std::function<void()> fn, int64_t delay_ms) {
      if (delay_ms <= 0) return net::post(ioc, std::move(fn));
      net::post(ioc, [&ioc, fn = std::move(fn), delay_ms]() mutable {
        auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(delay_ms));
        timer->async_wait([timer, fn = std::move(fn)](beast::error_code ec) {
          if (!ec) fn();
        });
      });
    };
    DoAccept();
    PumpLoop();
    TickLoop();
    SecondLoop();
    // The first retention sweep once the io loop runs (after the recovery
    // sweep RunGateway starts), then one every retention.every.
    if (gw.options().retention.keep_ms > 0) net::post(ioc, [this] { RetentionLoop(); });
  }

  void Stop() {
    beast::error_code ec;
    acceptor_.close(ec);
    pump_timer_.cancel();
    tick_timer_.cancel();
    second_timer_.cancel();
    retention_timer_.cancel();
    for (auto& w : gw.connections()) {
      if (auto c = w.lock()) c->Close(1001, "server shutting down");
    }
  }

  Gateway& gw;
  net::io_context& ioc;
  std::optional<ssl::context>& tls;
  int bound_port = 0;
  int preauth = 0;
  int authenticated = 0;

 private:
  void DoAccept() {
    acceptor_.async_accept(net::make_strand(ioc), [this](beast::error_code ec, Tcp::socket s) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        beast::error_code rec;
        auto ep = s.remote_endpoint(rec);
        std::string remote = rec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
        s.set_option(Tcp::no_delay(true), rec);
        if (tls) {
          std::make_shared<HttpSession<beast::ssl_stream<beast::tcp_stream>>>(
              beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(s)), *tls), *this,
              remote)
              ->Start();
        } else {
          std::make_shared<HttpSession<beast::tcp_stream>>(beast::tcp_stream(std::move(s)), *this,
                                                           remote)
              ->Start();
        }
      }
      DoAccept();
    });
  }

  void PumpLoop() {
    gw.PumpAll();
    pump_timer_.expires_after(std::chrono::milliseconds(100));
    pump_timer_.async_wait([this](beast::error_code ec) {
      if (!ec) PumpLoop();
    });
  }

  void TickLoop() {
    tick_timer_.expires_after(std::chrono::milliseconds(gw.options().heartbeat_ms));
    tick_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      auto& conns = gw.connections();
      conns.erase(std::remove_if(conns.begin(), conns.end(),
                                 [](const std::weak_ptr<Connection>& w) { return w.expired(); }),
                  conns.end());
      for (auto& w : conns) {
        if (auto c = w.lock(); c && c->authenticated && !c->closing) {
          c->SendEvent("tick", Frame({{"ts", gw.clock().NowMs()}}));
          // An expired or revoked credential closes the socket it opened.
          Status still = gw.Revalidate(c->caller);
          if (!still.ok()) c->Close(1008, still.message());
        }
      }
      TickLoop();
    });
  }

  void SecondLoop() {
    second_timer_.expires_after(std::chrono::milliseconds(1000));
    second_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      gw.ScanWorkflows();
      gw.Supervise();
      gw.FireDueCron();
      gw.Heartbeats();
      SecondLoop();
    });
  }

  void RetentionLoop() {
    gw.SweepRetention();
    retention_timer_.expires_after(std::chrono::milliseconds(gw.options().retention.every_ms));
    retention_timer_.async_wait([this](beast::error_code ec) {
      if (!ec) RetentionLoop();
    });
  }

  Tcp::acceptor acceptor_;
  net::steady_timer pump_timer_, tick_timer_, second_timer_, retention_timer_;
};

// ---- HttpSession ----

template <class Stream>
void HttpSession<Stream>::Start() {
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->DoRead(); });
  } else {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
    stream_.async_handshake(ssl::stream_base::server,
                            [self = this->shared_from_this()](beast::error_code ec) {
                              if (!ec) self->DoRead();
                            });
  }
}

template <class Stream>
void HttpSession<Stream>::DoRead() {
  parser_.emplace();
  parser_->body_limit(server_.gw.options().max_body_bytes);
  parser_->header_limit(16 * 1024);
  beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
  http::async_read(
      stream_, buffer_, *parser_,
      [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
}

template <class Stream>
void HttpSession<Stream>::OnRead(beast::error_code ec) {
  if (ec == http::error::end_of_stream) return Shutdown();
  if (ec && ec != http::error::body_limit &&
      ec.category() == beast::error_code(http::error::bad_version).category()) {
    // Malformed framing (a bad request line or Content-Length, headers over
    // 16 KiB, bare LF line ends, ...): say so before closing.
    return BadRequest(ec);
  }
  if (ec == http::error::body_limit) {
    Reply r = Reply::Err(
        "PayloadTooLarge",
        "request body over " + std::to_string(server_.gw.options().max_body_bytes) + " bytes");
    Response res{http::status::payload_too_large, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = ResponseText(nullptr, r);
    return Write(std::move(res), true);
  }
  if (ec) return;
  Request req = parser_->release();
  const GatewayOptions& o = server_.gw.options();
  // DNS rebinding and foreign origins, before anything else is looked at.
  std::string refused = RefusedHostOrOrigin(req, o, server_.bound_port, server_.tls.has_value());
  if (!refused.empty()) {
    server_.gw.metrics().auth_failures++;
    server_.gw.Log({{"event", "http.forbidden_origin"},
                    {"remote", remote_},
                    {"path", std::string(req.target()).substr(0, 200)},
                    {"reason", refused}});
    Response res{http::status::forbidden, req.version()};
    res.set(http::field::content_type, "application/json");
    res.set("X-Smithers-API-Version", "v1");
    res.body() = ResponseText(nullptr, Reply::Err("Forbidden", refused));
    return Write(std::move(res), true);
  }
  if (websocket::is_upgrade(req)) {
    beast::get_lowest_layer(stream_).expires_never();
    if (server_.preauth >= o.max_preauth_connections) {
      Response res{http::status::service_unavailable, req.version()};
      res.body() = "too many connections awaiting connect\n";
      return Write(std::move(res), true);
    }
    Credentials creds = CredentialsOf(req);
    creds.peer = PeerOf(remote_);
    auto session =
        std::make_shared<WsSession<Stream>>(std::move(stream_), server_, remote_, std::move(creds));
    session->Start(std::move(req));
    return;
  }
  int64_t t0 = server_.gw.clock().MonotonicMs();
  // The request is shared with a reply that comes later. The next request is
  // read only once this one is answered (Write), as HTTP/1.1 wants.
  auto shared_req = std::make_shared<Request>(std::move(req));
  auto answered = std::make_shared<bool>(false);
  Respond respond = [self = this->shared_from_this(), shared_req, t0, answered](Answer a) {
    if (*answered) return;
    *answered = true;
    self->Finish(*shared_req, t0, std::move(a));
  };
  try {
    HandleRequest(*shared_req, respond);
  } catch (const std::exception& e) {
    // A bug costs this request, never the server.
    server_.gw.Log({{"event", "http.error"}, {"remote", remote_}, {"error", e.what()}});
    Response res{http::status::internal_server_error, shared_req->version()};
    res.set(http::field::content_type, "application/json");
    res.body() = ResponseText(nullptr, Reply::Err("Internal", "internal error"));
    respond({.res = std::move(res)});
  }
}

template <class Stream>
void HttpSession<Stream>::Finish(const Request& req, int64_t t0, Answer answer) {
  Response& res = answer.res;
  const std::string& user = answer.user;
  const std::string& method = answer.method;
  res.version(req.version());
  res.set("X-Smithers-API-Version", "v1");
  res.prepare_payload();
  res.keep_alive(req.keep_alive());
  std::string target(req.target());
  if (server_.gw.logging() && target != "/health" && target != "/metrics") {
    server_.gw.Log(
        {{"event", "http"},
         {"remote", remote_},
         {"userId", user.empty() ? Json() : Json(user)},
         {"method", method.empty() ? Json(std::string(req.method_string())) : Json(method)},
         {"path", target.substr(0, target.find('?'))},
         {"status", res.result_int()},
         {"latencyMs", server_.gw.clock().MonotonicMs() - t0}});
  }
  Write(std::move(res), !req.keep_alive());
}

template <class Stream>
void HttpSession<Stream>::BadRequest(beast::error_code ec) {
  if (server_.gw.logging()) {
    server_.gw.Log({{"event", "http"},
                    {"remote", remote_},
                    {"status", 400},
                    {"error", "malformed request: " + ec.message()}});
  }
  Response res{http::status::bad_request, 11};
  res.set(http::field::content_type, "text/plain");
  res.body() = "bad request: " + ec.message() + "\n";
  Write(std::move(res), true);
}

namespace {

// An HTTP reply's id (clients require a string): the client's
// `x-request-id` when it is 1 to 128 visible ASCII characters, else a new
// UUID. POST /rpc prefers the body's own id.
Json HttpRequestId(const Request& req) {
  auto it = req.find("x-request-id");
  if (it != req.end()) {
    std::string_view v = it->value();
    bool visible = std::all_of(v.begin(), v.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    if (!v.empty() && v.size() <= 128 && visible) return std::string(v);
  }
  return base::NewUuid();
}

}  // namespace

template <class Stream>
void HttpSession<Stream>::HandleRequest(const Request& req, const Respond& respond) {
  Gateway& gw = server_.gw;
  std::string target(req.target());
  std::string path = target.substr(0, target.find('?'));
  Answer answer{.res = Response{http::status::ok, req.version()}};
  Response& res = answer.res;
  std::string* method = &answer.method;
  res.set(http::field::content_type, "application/json");
  auto reply = [&](const Json& id, const Reply& r) {
    res.result(r.ok ? 200 : HttpStatusFor(r.code));
    res.body() = ResponseText(id, r);
    respond(std::move(answer));
  };
  if (req.method() == http::verb::get && path == "/health") {
    res.body() = Frame(gw.Health().payload);
    return respond(std::move(answer));
  }
  if (req.method() == http::verb::get && path == "/metrics") {
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.body() = gw.MetricsText();
    return respond(std::move(answer));
  }
  const Json request_id = HttpRequestId(req);  // not for /health and /metrics: no res frame
  Json id = request_id, params = Json::object();
  // The body's depth is checked before it is parsed, and so before anything
  // copies it (recursively): a value in params may nest max_json_depth levels.
  const int max_depth = base::MaxJsonDepth();
  auto too_deep = [&](int envelope) {
    Status depth = base::CheckJsonDepth(req.body(), max_depth, "a value in the request", envelope);
    if (depth.ok()) return false;
    reply(request_id, Reply::Err("InvalidInput", depth.message(),
                                 {{"limit", "max_json_depth"}, {"maxJsonDepth", max_depth}}));
    return true;
  };
  if (req.method() == http::verb::get && path == "/workflows") {
    *method = "listWorkflows";
  } else if (req.method() == http::verb::post && path.rfind("/v1/rpc/", 0) == 0) {
    *method = path.substr(8);
    if (!req.body().empty()) {
      if (too_deep(kRequestEnvelopeDepth - 1)) return;  // the body is the params
      params = Json::parse(req.body(), nullptr, false);
      if (params.is_discarded()) {
        return reply(request_id, Reply::Err("InvalidRequest", "the body is not JSON"));
      }
    }
  } else if (req.method() == http::verb::post && path == "/rpc") {
    if (too_deep(kRequestEnvelopeDepth)) return;
    Json body = Json::parse(req.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("method") ||
        !body["method"].is_string()) {
      return reply(request_id, Reply::Err("InvalidRequest", "expected {id, method, params}"));
    }
    if (body.contains("id") && !body["id"].is_null()) id = body["id"];
    *method = body["method"].get<std::string>();
    params = body.value("params", Json::object());
  } else {
    res.result(http::status::not_found);
    res.body() = Frame({{"ok", false}, {"error", {{"code", "NOT_FOUND"}, {"message", path}}}});
    return respond(std::move(answer));
  }
  std::optional<ReadScope> snapshot;
  if (ReadsOnly(*method)) snapshot.emplace(gw.store());
  Credentials creds = CredentialsOf(req);
  creds.peer = PeerOf(remote_);
  Result<Caller> caller = gw.Authenticate(creds);
  if (!caller.ok()) {
    gw.metrics().auth_failures++;
    return reply(id, Unauthorized(caller.status()));
  }
  answer.user = caller->user_id;
  const bool workflows = path == "/workflows";
  const std::string name = *method;
  // `done` may run after this returns (a method that waits for a run): it
  // holds copies, and `respond` holds the session.
  gw.Call(*caller, name, params, nullptr,
          [answer = std::move(answer), id, workflows, respond](const Reply& r) mutable {
            Response& out = answer.res;
            if (workflows && r.ok) {
              out.body() = Frame(r.payload);
            } else {
              out.result(r.ok ? 200 : HttpStatusFor(r.code));
              out.body() = ResponseText(id, r);
            }
            respond(std::move(answer));
          });
}

template <class Stream>
void HttpSession<Stream>::Write(Response res, bool close) {
  auto sp = std::make_shared<Response>(std::move(res));
  sp->keep_alive(!close);
  sp->prepare_payload();
  beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(60));
  http::async_write(stream_, *sp,
                    [self = this->shared_from_this(), sp, close](beast::error_code ec, size_t) {
                      if (ec) return;
                      if (close) return self->Shutdown();
                      self->DoRead();
                    });
}

template <class Stream>
void HttpSession<Stream>::Shutdown() {
  beast::error_code ec;
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    stream_.socket().shutdown(Tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(5));
    Drain();
  } else {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
  }
}

template <class Stream>
void HttpSession<Stream>::Drain() {
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(16384),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec) self->Drain();
                            });
  }
}

// ---- WsSession ----

template <class Stream>
WsSession<Stream>::WsSession(Stream&& stream, Server& server, std::string remote,
                             Credentials upgrade_credentials)
    : ws_(std::move(stream)),
      server_(server),
      gw_(server.gw),
      remote_(std::move(remote)),
      upgrade_credentials_(std::move(upgrade_credentials)),
      connect_timer_(ws_.get_executor()),
      close_timer_(ws_.get_executor()) {}

template <class Stream>
void WsSession<Stream>::Start(Request req) {
  ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set("X-Smithers-API-Version", "v1"); }));
  ws_.read_message_max(kHardFrameLimit);
  server_.preauth++;
  counted_preauth_ = true;
  auto self = std::static_pointer_cast<WsSession>(shared_from_this());
  ws_.async_accept(req, [self](beast::error_code ec) {
    if (ec) return self->Finish();
    self->gw_.connections().push_back(self);
    self->gw_.metrics().connections++;
    unsigned char raw[16];
    RAND_bytes(raw, sizeof raw);
    std::string nonce = base::Sha256Hex(std::string(reinterpret_cast<char*>(raw), sizeof raw));
    self->SendEvent("connect.challenge",
                    Frame({{"nonce", nonce.substr(0, 32)}, {"ts", self->gw_.clock().NowMs()}}));
    self->connect_timer_.expires_after(
        std::chrono::milliseconds(self->gw_.options().connect_timeout_ms));
    self->connect_timer_.async_wait([self](beast::error_code tec) {
      if (!tec && !self->authenticated) self->Close(1008, "no connect within the timeout");
    });
    self->DoRead();
  });
}

template <class Stream>
void WsSession<Stream>::DoRead() {
  auto self = std::static_pointer_cast<WsSession>(shared_from_this());
  ws_.async_read(buffer_, [self](beast::error_code ec, size_t) { self->OnRead(ec); });
}

template <class Stream>
void WsSession<Stream>::OnRead(beast::error_code ec) {
  if (ec) return Finish();
  if (closing) return;
  std::string text = beast::buffers_to_string(buffer_.data());
  buffer_.consume(buffer_.size());
  // The next read first: a request already received is handled before the
  // combined responses are written (CombiningStream), so pipelined requests
  // share one write.
  DoRead();
  try {
    Handle(text);
  } catch (const std::exception& e) {
    // A bug costs this socket, never the server.
    gw_.Log({{"event", "ws.error"}, {"remote", remote_}, {"error", e.what()}});
    Send(ResponseText(nullptr, Reply::Err("Internal", "internal error")));
    Close(1011, "internal error");
  }
}

template <class Stream>
void WsSession<Stream>::Handle(const std::string& text) {
  auto fail = [&](const Json& id, const Reply& r) { Send(ResponseText(id, r)); };
  RequestFrame req = ParseRequestFrame(text, gw_.options().max_frame_bytes, base::MaxJsonDepth());
  if (!req.ok) return fail(req.id, Reply::Err(req.error_code, req.error_message));
  const Json& id = req.id;
  const std::string& method = req.method;
  const Json& params = req.params;
  int64_t t0 = gw_.clock().MonotonicMs();
  // Sends the reply and logs the request; called at once, or later for a
  // method that waits for a run (the session is held until then; a reply
  // for a connection that closed meanwhile is dropped by Send). Replies
  // carry the request's id: a later one may follow replies to later requests.
  auto self = std::static_pointer_cast<WsSession>(shared_from_this());
  auto answer = [self, id, method, t0](const Reply& r) {
    self->Send(ResponseText(id, r));
    Gateway& gw = self->gw_;
    if (!gw.logging()) return;
    gw.Log({{"event", "ws"},
            {"remote", self->remote_},
            {"userId", self->caller.user_id.empty() ? Json() : Json(self->caller.user_id)},
            {"method", method},
            {"status", r.ok ? 200 : HttpStatusFor(r.code)},
            {"latencyMs", gw.clock().MonotonicMs() - t0}});
  };
  if (method == "connect") {
    if (authenticated) return answer(Reply::Err("InvalidRequest", "already connected"));
    return HandleConnect(id, params);
  }
  if (!authenticated) return answer(Reply::Err("UNAUTHORIZED", "send connect first"));
  // A read method's token check and reads share one read snapshot.
  std::optional<ReadScope> snapshot;
  if (ReadsOnly(method)) snapshot.emplace(gw_.store());
  if (Status still = gw_.Revalidate(caller); !still.ok()) {
    gw_.metrics().auth_failures++;
    fail(id, Unauthorized(still));
    return Close(1008, still.message());
  }
  gw_.Call(caller, method, params, this, answer);
}

template <class Stream>
void WsSession<Stream>::HandleConnect(const Json& id, const Json& params) {
  auto fail = [&](const Reply& r, int close_code) {
    Send(ResponseText(id, r));
    if (close_code != 0) Close(close_code, r.message);
  };
  ConnectRequest connect = ParseConnect(params);
  if (!connect.ok) {
    // A protocol mismatch ends the socket; malformed params may be retried.
    return fail(Reply::Err(connect.error_code, connect.error_message),
                connect.error_code == "PROTOCOL_UNSUPPORTED" ? 1002 : 0);
  }
  Credentials creds = upgrade_credentials_;
  if (!connect.token.empty()) creds.bearer = connect.token;
  Result<Caller> who = gw_.Authenticate(creds);
  if (!who.ok()) {
    gw_.metrics().auth_failures++;
    gw_.Log({{"event", "ws.connect"},
             {"remote", remote_},
             {"status", 401},
             {"error", who.status().message()}});
    return fail(Unauthorized(who.status()), 1008);
  }
  if (server_.authenticated >= gw_.options().max_connections) {
    return fail(Reply::Err("CONNECTION_LIMIT", "too many connections"), 1013);
  }
  caller = std::move(who).value();
  authenticated = true;
  server_.authenticated++;
  server_.preauth--;
  counted_preauth_ = false;
  connect_timer_.cancel();
  Send(ResponseText(id, Reply::Ok(gw_.Hello(caller))));
  gw_.Log(
      {{"event", "ws.connect"}, {"remote", remote_}, {"userId", caller.user_id}, {"status", 200}});
}

template <class Stream>
void WsSession<Stream>::SendEvent(const std::string& event, const std::string& payload_json) {
  gw_.metrics().events_sent++;
  // seq counts this connection's frames; stateVersion is the Gateway's (it
  // grows with every run event the Gateway reads), as Smithers' frames carry.
  Send("{\"type\":\"event\",\"event\":\"" + event + "\",\"payload\":" + payload_json + ",\"seq\":" +
       std::to_string(++seq_) + ",\"stateVersion\":" + std::to_string(gw_.state_version()) + "}");
}

template <class Stream>
int WsSession<Stream>::Room() const {
  const GatewayOptions& o = gw_.options();
  if (queued_bytes_ >= o.max_queue_bytes / 2) return 0;
  return std::max(0, o.max_queue_frames / 2 - static_cast<int>(queue_.size()));
}

template <class Stream>
bool WsSession<Stream>::Overflowing() const {
  const GatewayOptions& o = gw_.options();
  return static_cast<int>(queue_.size()) >= o.max_queue_frames ||
         queued_bytes_ >= o.max_queue_bytes ||
         (writing_ && gw_.clock().MonotonicMs() - write_started_ms_ > o.slow_consumer_ms);
}

template <class Stream>
void WsSession<Stream>::Send(std::string text) {
  if (finished_) return;
  queued_bytes_ += text.size();
  queue_.push_back(std::move(text));
  if (!writing_) DoWrite();
}

template <class Stream>
void WsSession<Stream>::DoWrite() {
  if (queue_.empty()) {
    writing_ = false;
    if (closing) StartClose();
    return;
  }
  writing_ = true;
  write_started_ms_ = gw_.clock().MonotonicMs();
  ws_.text(true);
  auto self = std::static_pointer_cast<WsSession>(shared_from_this());
  ws_.async_write(net::buffer(queue_.front()), [self](beast::error_code ec, size_t) {
    if (ec) return self->Finish();
    bool had_room = self->HasRoom();
    self->queued_bytes_ -= self->queue_.front().size();
    self->queue_.pop_front();
    // A stream paused at the high-water mark goes on once the queue drains.
    if (!had_room && self->HasRoom() && !self->streams.empty() && !self->closing) {
      self->gw_.PumpConnection(*self);
    }
    self->DoWrite();
  });
}

template <class Stream>
void WsSession<Stream>::Close(int code, const std::string& reason) {
  if (closing) return;
  closing = true;
  close_reason_ =
      websocket::close_reason(static_cast<websocket::close_code>(code), reason.substr(0, 120));
  auto self = std::static_pointer_cast<WsSession>(shared_from_this());
  // Queued frames (the error that explains the close) go first, but not for
  // long: a client that does not read is cut off.
  close_timer_.expires_after(std::chrono::milliseconds(kCloseGraceMs));
  close_timer_.async_wait([self](beast::error_code ec) {
    if (ec) return;
    beast::error_code ignored;
    beast::get_lowest_layer(self->ws_).socket().close(ignored);
    self->Finish();
  });
  if (!writing_) StartClose();
}

template <class Stream>
void WsSession<Stream>::StartClose() {
  if (close_sent_ || finished_) return;
  close_sent_ = true;
  auto self = std::static_pointer_cast<WsSession>(shared_from_this());
  ws_.async_close(close_reason_, [self](beast::error_code) { self->Finish(); });
}

template <class Stream>
void WsSession<Stream>::Finish() {
  if (finished_) return;
  finished_ = true;
  closing = true;
  close_timer_.cancel();
  connect_timer_.cancel();
  if (counted_preauth_) server_.preauth--;
  counted_preauth_ = false;
  if (authenticated) server_.authenticated--;
  authenticated = false;
  gw_.metrics().connections--;
  queue_.clear();
  queued_bytes_ = 0;
  streams.clear();
}

// After the first stop signal: a second one ends the process at once.
void OnSecondStopSignal(int sig) { _exit(128 + sig); }

}  // namespace

Status RunGateway(const GatewayOptions& options) {
  GatewayOptions o = options;
  struct stat st {};
  if (o.workflows_dir.empty() || stat(o.workflows_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgumentError("--workflows \"" + o.workflows_dir + "\" is not a folder");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  bool loopback = IsLoopbackHost(o.host);
  bool tls_on = !o.tls_cert.empty();
  if (o.auth != "token" && o.auth != "jwt" && o.auth != "trusted-proxy" && o.auth != "none") {
    return InvalidArgumentError("--auth must be token, jwt, trusted-proxy or none");
  }
  if (o.auth == "none" && !loopback) {
    return InvalidArgumentError("--auth none is only allowed on a loopback address");
  }
  for (const std::string& origin : o.allowed_origins) {
    std::string n = NormalizeOrigin(origin);
    size_t scheme_end = n.find("://");
    bool ok = (n.rfind("http://", 0) == 0 || n.rfind("https://", 0) == 0) &&
              n.size() > scheme_end + 3 && n.find('/', scheme_end + 3) == std::string::npos;
    if (!ok) {
      return InvalidArgumentError("allowed origin \"" + origin +
                                  "\" must be scheme://host[:port] (e.g. https://app.example.com)");
    }
  }
  if (o.auth == "jwt" && o.jwt.secret.empty()) {
    return InvalidArgumentError("--auth jwt needs a secret (--jwt-secret-env NAME)");
  }
  if (o.auth == "trusted-proxy") {
    if (o.trusted_proxies.empty()) {
      return InvalidArgumentError(
          "--auth trusted-proxy needs the proxy's address: --trusted-proxy ADDR (or "
          "auth.trusted_proxies in --config); identity headers from any other peer are refused");
    }
    SMITHERS_RETURN_IF_ERROR(CheckPeerList(o.trusted_proxies));
  }
  if (o.test_clock && !loopback) {
    return InvalidArgumentError(
        "SMITHERS_CLOCK_OFFSET_MS is a test hook: it is refused when the Gateway listens on a "
        "non-loopback address (" +
        o.host + "); unset it");
  }
  if (!loopback && !tls_on) {
    if (!o.insecure) {
      return InvalidArgumentError("listening on " + o.host +
                                  " without TLS needs --insecure (or --tls-cert/--tls-key)");
    }
    fprintf(stderr,
            "smithers gateway: WARNING: serving %s without TLS: tokens cross the network in "
            "clear text\n",
            o.host.c_str());
  }
  const RetentionOptions& retention = o.retention;
  if (retention.keep_ms != 0) {
    if (retention.keep_ms < kMinRetentionKeepMs) {
      return InvalidArgumentError("retention.keep must be at least 1h");
    }
    if (retention.every_ms < kMinRetentionEveryMs || retention.every_ms > kMaxRetentionEveryMs) {
      return InvalidArgumentError("retention.every must be between 1m and 365d");
    }
    if (retention.statuses.empty() ||
        !std::all_of(retention.statuses.begin(), retention.statuses.end(),
                     [](RunStatus s) { return IsTerminal(s); })) {
      return InvalidArgumentError(
          "retention.statuses must name finished, failed or cancelled, and nothing else");
    }
  }
  std::optional<ssl::context> tls;
  if (tls_on) {
    tls.emplace(ssl::context::tls_server);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    beast::error_code ec;
    tls->use_certificate_chain_file(o.tls_cert, ec);
    if (ec) return InvalidArgumentError("--tls-cert " + o.tls_cert + ": " + ec.message());
    tls->use_private_key_file(o.tls_key, ssl::context::pem, ec);
    if (ec) return InvalidArgumentError("--tls-key " + o.tls_key + ": " + ec.message());
  }
  Result<std::unique_ptr<Store>> store = OpenStore(o.db, GatewayStoreOptions(o));
  if (!store.ok()) return store.status();
  Gateway gw(o, std::move(store).value());
  net::io_context ioc(1);
  Server server(gw, ioc, tls);
  SMITHERS_RETURN_IF_ERROR(server.Listen(o.host, o.port));
  server.Start();
  // Recovery of runs whose process died: started before the first client is
  // served, not waited for (each run's thread loads its module and renders).
  gw.Supervise();
  if (o.on_listening) o.on_listening(o.host, server.bound_port);
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  int stop_signal = 0;
  signals.async_wait([&](beast::error_code ec, int sig) {
    if (ec) return;
    stop_signal = sig;
    server.Stop();
    net::post(ioc, [&ioc] { ioc.stop(); });
  });
  // SIGHUP: reopen the access log (after logrotate renamed it).
  net::signal_set hangup(ioc, SIGHUP);
  std::function<void()> on_hangup = [&] {
    hangup.async_wait([&](beast::error_code ec, int) {
      if (ec) return;
      gw.ReopenLog();
      on_hangup();
    });
  };
  on_hangup();
  ioc.run();
  // Graceful stop (docs/gateway.md "Stopping"): no request, cron fire or
  // sweep runs any more; a catalog scan in progress finishes (its result is
  // dropped with the io loop); each run in flight finishes its tasks in
  // flight (up to --stop-grace) and releases its run, so another process
  // resumes it at once. A second signal ends the process at once, like a
  // crash (a committed task never runs again).
  signals.cancel();
  signal(SIGINT, OnSecondStopSignal);
  signal(SIGTERM, OnSecondStopSignal);
  if (gw.CatalogBusy()) {
    fprintf(stderr,
            "smithers gateway: stopping: the workflow catalog is loading a module; its scan "
            "finishes first; a second signal stops at once\n");
  }
  gw.StopCatalog();
  gw.StopRetention();  // a sweep's listing in progress (its deletions are the io loop's)
  if (gw.ReapRuns() > 0) {
    fprintf(stderr,
            "smithers gateway: stopping: %zu runs finish their tasks in flight (up to %lld ms) "
            "and release their runs; a second signal stops at once\n",
            gw.ReapRuns(), static_cast<long long>(o.stop_grace_ms));
    gw.StopRuns();
  }
  if (stop_signal != 0) fprintf(stderr, "smithers gateway: stopped\n");
  return Status::Ok();
}

}  // namespace smithers::gateway
