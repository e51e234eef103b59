// The egress allow-list (docs/sandbox.md "Egress"): a sandbox without
// network reaches listed hosts through a proxy the engine runs outside it.
//
// Outside, EgressProxy listens on a Unix socket in a folder of its own and
// answers HTTP CONNECT for the listed "host:port" targets only (403 for the
// rest), recording every attempt. Inside, RunEgressBridge (the engine's own
// binary, `smithers sandbox egress-bridge`) listens on 127.0.0.1:PORT of the
// sandbox's own loopback, relays each connection to that socket, and runs
// the command with HTTPS_PROXY and HTTP_PROXY pointing at it.
//
//   Result<std::unique_ptr<EgressProxy>> p = EgressProxy::Start({"api.openai.com:443"});
//   ... bind (*p)->dir() into the sandbox, run the bridge there ...
//   Json attempts = (*p)->Attempts();  // [{"target": "x:443", "allowed": false}, ...]
#ifndef SMITHERS_SANDBOX_EGRESS_H_
#define SMITHERS_SANDBOX_EGRESS_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers::sandbox {

// Where the proxy's folder is bound inside a sandbox, and the bridge's port.
inline constexpr char kEgressDirInside[] = "/run/smithers-egress";
inline constexpr char kEgressBridgeInside[] = "/run/smithers-bridge";
inline constexpr int kEgressBridgePort = 3128;

class EgressProxy {
 public:
  static Result<std::unique_ptr<EgressProxy>> Start(std::vector<std::string> allow);
  EgressProxy(const EgressProxy&) = delete;
  EgressProxy& operator=(const EgressProxy&) = delete;
  // Closes every connection, waits for its threads, removes its folder.
  ~EgressProxy();

  const std::string& dir() const { return dir_; }  // holds proxy.sock
  // Every CONNECT so far, in order: {target, allowed} (at most 1,000).
  Json Attempts() const;

 private:
  explicit EgressProxy(std::vector<std::string> allow) : allow_(allow.begin(), allow.end()) {}
  void AcceptLoop();
  void Serve(int client);

  std::set<std::string> allow_;
  std::string dir_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // written on shutdown: every poll wakes
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  Json attempts_ = Json::array();     // guarded by mu_
  std::vector<std::thread> threads_;  // guarded by mu_
  std::thread accept_;
};

// `smithers sandbox egress-bridge`: inside the sandbox, listens on
// 127.0.0.1:`port`, relays to the Unix socket `socket`, runs `argv` with
// the proxy variables set, and returns its exit code (128 + a signal).
int RunEgressBridge(const std::string& socket, int port, const std::vector<std::string>& argv);

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_EGRESS_H_
