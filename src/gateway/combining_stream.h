// A stream layer under the WebSocket that combines writes. Beast writes each
// message with its own system call; on loopback and on busy servers that
// call (and, for TLS, the record around it) costs more than building the
// message. This layer accepts the bytes of consecutive writes into one buffer
// and hands them to the socket in one write once the session stops producing
// them: responses to pipelined requests already read, a burst of events.
//
// Order and framing are kept: Beast issues one write at a time on its next
// layer (its own pongs and close frames included), and every byte goes
// through the one buffer in the order written. A write completes at once
// while under kLimit bytes wait; past that it completes only after the
// buffer was handed to the socket, so a client that stops reading still
// stalls the WebSocket's writes (the slow-consumer check sees it).
//
// Single-threaded: every call comes from the session's strand.
#ifndef SMITHERS_GATEWAY_COMBINING_STREAM_H_
#define SMITHERS_GATEWAY_COMBINING_STREAM_H_

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

namespace smithers::gateway {

template <class Next>
class CombiningStream {
 public:
  using executor_type = typename Next::executor_type;
  // Combined bytes past which a write waits for the socket.
  static constexpr size_t kLimit = size_t{64} * 1024;
  // Passes of the executor a flush waits while new bytes keep arriving.
  static constexpr int kMaxYields = 64;

  template <class... Args>
  explicit CombiningStream(Args&&... args)
      : next_(std::forward<Args>(args)...), state_(std::make_shared<State>(next_.get_executor())) {
    state_->next = &next_;
  }
  CombiningStream(CombiningStream&&) = delete;
  CombiningStream& operator=(CombiningStream&&) = delete;
  ~CombiningStream() { state_->next = nullptr; }

  executor_type get_executor() noexcept { return next_.get_executor(); }
  Next& next_layer() noexcept { return next_; }
  const Next& next_layer() const noexcept { return next_; }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return next_.async_read_some(buffers, std::forward<Token>(token));
  }

  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, size_t)>(
        [this](auto handler, const Buffers& b) { Write(state_, b, std::move(handler)); }, token,
        buffers);
  }

  // Calls `fn` once every accepted byte was handed to the socket (or the
  // socket failed). Used before tearing the connection down.
  template <class Fn>
  void AfterDrained(Fn fn) {
    Drain(state_, std::move(fn));
  }

 private:
  struct State {
    explicit State(const executor_type& ex) : executor(ex), drained(ex) {
      drained.expires_at(std::chrono::steady_clock::time_point::max());
    }
    Next* next = nullptr;  // null once the stream is gone
    executor_type executor;
    std::string pending;    // accepted, not yet handed to the socket
    std::string in_flight;  // being written
    bool writing = false;
    bool flush_posted = false;
    bool urgent = false;  // a drain waits: flush without yielding
    int yields = 0;
    size_t seen = 0;  // pending.size() when the flush last looked
    boost::beast::error_code error;
    boost::asio::steady_timer drained;  // cancelled whenever a socket write ends
  };
  using StatePtr = std::shared_ptr<State>;

  template <class Buffers, class Handler>
  static void Write(const StatePtr& s, const Buffers& buffers, Handler handler) {
    namespace net = boost::asio;
    if (s->error || s->next == nullptr) {
      boost::beast::error_code ec = s->error ? s->error : net::error::operation_aborted;
      return net::post(s->executor, boost::beast::bind_front_handler(std::move(handler), ec, 0));
    }
    if (s->pending.size() >= kLimit) {
      // Wait for the socket, then try again (the buffers stay valid until
      // the handler runs).
      ScheduleFlush(s);
      s->drained.async_wait(
          [s, buffers, handler = std::move(handler)](boost::beast::error_code) mutable {
            Write(s, buffers, std::move(handler));
          });
      return;
    }
    size_t n = net::buffer_size(buffers);
    size_t at = s->pending.size();
    s->pending.resize(at + n);
    net::buffer_copy(net::buffer(s->pending.data() + at, n), buffers);
    ScheduleFlush(s);
    net::post(s->executor,
              boost::beast::bind_front_handler(std::move(handler), boost::beast::error_code(), n));
  }

  static void ScheduleFlush(const StatePtr& s) {
    if (s->flush_posted || s->writing) return;
    s->flush_posted = true;
    s->seen = s->pending.size();
    boost::asio::post(s->executor, [s] { Flush(s); });
  }

  static void Flush(const StatePtr& s) {
    s->flush_posted = false;
    if (s->writing || s->next == nullptr) return;
    if (s->pending.empty()) {
      s->drained.cancel();
      return;
    }
    // While the session keeps adding bytes (requests already read, events
    // of one pump), wait one more pass of the executor.
    if (!s->urgent && s->pending.size() != s->seen && s->pending.size() < kLimit &&
        s->yields < kMaxYields) {
      s->yields++;
      ScheduleFlush(s);
      return;
    }
    s->yields = 0;
    s->writing = true;
    s->in_flight.swap(s->pending);
    boost::asio::async_write(*s->next, boost::asio::buffer(s->in_flight),
                             [s](boost::beast::error_code ec, size_t) {
                               s->writing = false;
                               s->in_flight.clear();
                               if (ec && !s->error) s->error = ec;
                               s->drained.cancel();
                               if (!s->pending.empty() && !s->error) ScheduleFlush(s);
                             });
  }

  template <class Fn>
  static void Drain(const StatePtr& s, Fn fn) {
    if (s->error || s->next == nullptr || (!s->writing && s->pending.empty())) {
      return boost::asio::post(s->executor, std::move(fn));
    }
    s->urgent = true;
    ScheduleFlush(s);
    s->drained.async_wait(
        [s, fn = std::move(fn)](boost::beast::error_code) mutable { Drain(s, std::move(fn)); });
  }

  Next next_;
  StatePtr state_;
};

// Beast tears the connection down through these (found by argument-dependent
// lookup): the combined bytes (the close frame among them) go out first.
template <class Next>
void teardown(  // NOLINT(readability-identifier-naming): Beast's customization point
    boost::beast::role_type role, CombiningStream<Next>& stream, boost::beast::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, stream.next_layer(), ec);
}

template <class Next, class Handler>
void async_teardown(  // NOLINT(readability-identifier-naming): Beast's customization point
    boost::beast::role_type role, CombiningStream<Next>& stream, Handler&& handler) {
  stream.AfterDrained([role, &stream, h = std::forward<Handler>(handler)]() mutable {
    using boost::beast::websocket::async_teardown;
    async_teardown(role, stream.next_layer(), std::move(h));
  });
}

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_COMBINING_STREAM_H_
