#include "sandbox/egress.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "sandbox/cgroups.h"
#include "smithers/workflow.h"

namespace smithers::sandbox {
namespace {

constexpr size_t kMaxHead = 8192;
constexpr size_t kMaxAttempts = 1000;
constexpr int kConnectTimeoutMs = 10000;

bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool WriteAll(int fd, const std::string& s) { return WriteAll(fd, s.data(), s.size()); }

// Copies both ways until both sides have closed, one fails, or `wake`
// (-1: none) becomes readable.
void Relay(int a, int b, int wake) {
  bool a_open = true, b_open = true;
  char buf[16384];
  while (a_open || b_open) {
    pollfd p[3] = {{a, static_cast<short>(a_open ? POLLIN : 0), 0},
                   {b, static_cast<short>(b_open ? POLLIN : 0), 0},
                   {wake, POLLIN, 0}};
    if (poll(p, wake >= 0 ? 3 : 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (wake >= 0 && p[2].revents != 0) return;
    for (int i = 0; i < 2; ++i) {
      if (p[i].revents == 0) continue;
      int from = i == 0 ? a : b, to = i == 0 ? b : a;
      ssize_t n = recv(from, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        (i == 0 ? a_open : b_open) = false;
        shutdown(to, SHUT_WR);
        continue;
      }
      if (!WriteAll(to, buf, static_cast<size_t>(n))) return;
    }
  }
}

// A TCP connection to host:port within the timeout, or -1.
int Dial(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (s < 0) continue;
    bool ok = connect(s, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = poll(&p, 1, kConnectTimeoutMs) == 1 &&
           getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    if (!ok) {
      close(s);
      continue;
    }
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
    fd = s;
  }
  freeaddrinfo(res);
  return fd;
}

// /tmp/smithers-egress-<engine pid>-XXXXXX: the pid tells a later engine
// whether the folder's engine is gone (killed: its destructor never ran).
constexpr char kFolderPrefix[] = "/tmp/smithers-egress-";

// Removes the proxy folders of engines that are gone, once per process.
void SweepStaleProxyFolders() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::error_code ec;
    const std::string prefix = std::string(kFolderPrefix).substr(5);  // after "/tmp/"
    for (const auto& e : std::filesystem::directory_iterator("/tmp", ec)) {
      std::string name = e.path().filename().string();
      if (e.is_symlink(ec) || !e.is_directory(ec) || !LeftByAGoneEngine(name, prefix)) continue;
      std::filesystem::remove_all(e.path(), ec);
    }
  });
}

}  // namespace

Result<std::unique_ptr<EgressProxy>> EgressProxy::Start(std::vector<std::string> allow) {
  for (const std::string& t : allow) SMITHERS_RETURN_IF_ERROR(CheckEgressTarget(t));
  SweepStaleProxyFolders();
  std::unique_ptr<EgressProxy> p(new EgressProxy(std::move(allow)));
  std::string tmpl = std::string(kFolderPrefix) + std::to_string(getpid()) + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return UnavailableError("cannot make the egress proxy's folder");
  }
  p->dir_ = tmpl;
  std::string path = p->dir_ + "/proxy.sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  p->listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->listen_fd_ < 0 ||
      bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(p->listen_fd_, 64) != 0 || pipe2(p->wake_, O_CLOEXEC) != 0) {
    return UnavailableError(std::string("cannot start the egress proxy: ") + std::strerror(errno));
  }
  p->accept_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

EgressProxy::~EgressProxy() {
  stopping_ = true;
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  if (accept_.joinable()) accept_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) close(fd);
  }
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

Json EgressProxy::Attempts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return attempts_;
}

void EgressProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([this, client] { Serve(client); });
  }
}

void EgressProxy::Serve(int client_fd) {
  base::UniqueFd client(client_fd);
  // The request's head: "CONNECT host:port HTTP/1.1" and its headers.
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < kMaxHead) {
    pollfd p[2] = {{client.get(), POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(p, 2, kConnectTimeoutMs) <= 0 || p[1].revents != 0) return;
    ssize_t n = recv(client.get(), buf, sizeof buf, 0);
    if (n <= 0) return;
    head.append(buf, static_cast<size_t>(n));
  }
  size_t end = head.find("\r\n\r\n");
  std::string line = head.substr(0, head.find("\r\n"));
  std::string method = line.substr(0, line.find(' '));
  size_t t0 = line.find(' ');
  size_t t1 = t0 == std::string::npos ? t0 : line.find(' ', t0 + 1);
  std::string target = t0 == std::string::npos ? "" : line.substr(t0 + 1, t1 - t0 - 1);
  bool allowed = method == "CONNECT" && end != std::string::npos && allow_.count(target) > 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (attempts_.size() < kMaxAttempts) {
      attempts_.push_back({{"target", target.substr(0, 300)}, {"allowed", allowed}});
    }
  }
  if (!allowed) {
    WriteAll(client.get(), method == "CONNECT"
                               ? "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
                               : "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  size_t colon = target.rfind(':');
  base::UniqueFd upstream(Dial(target.substr(0, colon), target.substr(colon + 1)));
  if (upstream.get() < 0) {
    WriteAll(client.get(), "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  if (!WriteAll(client.get(), "HTTP/1.1 200 Connection established\r\n\r\n")) return;
  std::string early = head.substr(end + 4);  // bytes sent before the reply
  if (!early.empty() && !WriteAll(upstream.get(), early)) return;
  Relay(client.get(), upstream.get(), wake_[0]);
}

namespace {
int g_child_exited[2] = {-1, -1};
void OnChild(int) {
  int saved = errno;
  (void)!write(g_child_exited[1], "x", 1);
  errno = saved;
}
}  // namespace

int RunEgressBridge(const std::string& socket_path, int port,
                    const std::vector<std::string>& argv) {
  if (argv.empty()) return 2;
  base::UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (listener.get() < 0 || bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      listen(listener.get(), 64) != 0 || pipe2(g_child_exited, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::fprintf(stderr, "egress bridge: cannot listen on 127.0.0.1:%d: %s\n", port,
                 std::strerror(errno));
    return 126;
  }
  struct sigaction sa {};
  sa.sa_handler = OnChild;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, nullptr);
  std::string proxy = "http://127.0.0.1:" + std::to_string(port);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& s : argv) args.push_back(const_cast<char*>(s.c_str()));
  args.push_back(nullptr);
  pid_t child = fork();
  if (child < 0) return 126;
  if (child == 0) {
    for (const char* name : {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"}) {
      setenv(name, proxy.c_str(), 1);
    }
    setenv("NO_PROXY", "localhost,127.0.0.1", 1);
    setenv("no_proxy", "localhost,127.0.0.1", 1);
    execvp(args[0], args.data());
    std::fprintf(stderr, "egress bridge: cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  while (true) {
    int status = 0;
    pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    pollfd p[2] = {{listener.get(), POLLIN, 0}, {g_child_exited[0], POLLIN, 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR) return 126;
    if (p[1].revents != 0) {
      char drain[64];
      while (read(g_child_exited[0], drain, sizeof drain) > 0) {
      }
      continue;
    }
    if (p[0].revents == 0) continue;
    int in = accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (in < 0) continue;
    int out = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
    if (out < 0 || connect(out, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(in);
      if (out >= 0) close(out);
      continue;
    }
    std::thread([in, out] {
      Relay(in, out, -1);
      close(in);
      close(out);
    }).detach();
  }
}

}  // namespace smithers::sandbox
