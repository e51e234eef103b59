// The Gateway (docs/gateway.md): serves the workflow modules of a folder over
// WebSocket RPC and HTTP, runs what it launches in-process, resumes runs whose
// wait is over, fires cron schedules, and streams every run's durable events.
// The module's one public header: the CLI's `smithers gateway` uses it.
#ifndef SMITHERS_GATEWAY_GATEWAY_H_
#define SMITHERS_GATEWAY_GATEWAY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gateway/auth.h"
#include "smithers/clock.h"
#include "smithers/engine.h"
#include "smithers/status.h"
#include "smithers/store.h"
#include "smithers/workflow.h"

namespace smithers::gateway {

// Retention (gateway.toml [retention]; docs/gateway.md "Retention"): runs
// with one of `statuses` that ended more than `keep_ms` ago are deleted
// (DeleteRun, never forced), at start-up and then every `every_ms`; a run
// the Gateway is running is never touched. keep_ms 0 = off.
struct RetentionOptions {
  int64_t keep_ms = 0;
  std::vector<RunStatus> statuses = {RunStatus::kFinished, RunStatus::kFailed,
                                     RunStatus::kCancelled};
  int64_t every_ms = 60LL * 60 * 1000;
};
// The bounds gateway.toml and RunGateway hold retention to.
constexpr int64_t kMinRetentionKeepMs = 60LL * 60 * 1000;              // 1h
constexpr int64_t kMinRetentionEveryMs = 60LL * 1000;                  // 1m
constexpr int64_t kMaxRetentionEveryMs = 365LL * 24 * 60 * 60 * 1000;  // 365d

struct GatewayOptions {
  std::string workflows_dir;  // every *.lua in it is a workflow, keyed by file name
  std::string host = "127.0.0.1";
  int port = 7331;  // 0 = any free port
  // The store, as OpenStore reads it (docs/store_format.md "Store URLs"): a
  // path or sqlite:PATH. The Gateway and each run thread open it through a
  // StoreFactory.
  std::string db = ".smithers/smithers.db";
  std::string synchronous = "FULL";  // SQLite's synchronous mode: FULL or NORMAL
  std::string audit_key;             // the audit log's key reference (StoreOptions::audit_key)
  std::string tls_cert, tls_key;     // both or neither (PEM files)
  bool insecure = false;             // allow a non-loopback bind without TLS
  // token (grants in the database), jwt, trusted-proxy, or none (loopback only).
  std::string auth = "token";
  // With auth token: a tokens file (docs/gateway.md "Tokens file") whose
  // grants work besides the database's, re-read when it changes. "" = none.
  // RunGateway does not refuse a bad file (its grants are then missing and
  // the log says why): check it first with ReadTokenFile.
  std::string tokens_file;
  JwtConfig jwt;
  std::vector<std::string> proxy_default_scopes;  // trusted-proxy without x-user-scopes
  // trusted-proxy: the peers (addresses or CIDR blocks) whose identity
  // headers are believed; required in that mode, requests from any other
  // peer are refused (401).
  std::vector<std::string> trusted_proxies;
  // The longest lifetime a tokens-file grant may have; a grant without an
  // expiry or beyond it is ignored (logged). Database tokens are checked
  // when issued (`token issue --max-ttl`).
  int64_t max_token_ttl_ms = kDefaultMaxTokenTtlMs;
  // Database, WAL and access log 0640 in 0750 folders (for an operators'
  // group) instead of 0600 in 0700.
  bool group_readable = false;
  int64_t heartbeat_ms = 15000;        // WebSocket `tick` period
  int64_t connect_timeout_ms = 10000;  // to send `connect` after the challenge
  size_t max_body_bytes = 1 << 20;     // HTTP request body
  size_t max_frame_bytes = 1 << 20;    // WebSocket message
  int max_connections = 1000;          // authenticated WebSockets
  int max_preauth_connections = 64;
  size_t max_queue_bytes = 8 << 20;  // per-connection outbound queue
  int max_queue_frames = 1000;       // ... and its frames (run.error BackpressureDisconnect)
  int64_t slow_consumer_ms = 10000;  // a write to a client stalled this long: disconnect
  // On SIGTERM/SIGINT: how long runs in flight may finish their tasks before
  // they release their runs (docs/gateway.md "Stopping").
  int64_t stop_grace_ms = 10000;
  // How deep a JSON value may nest (arrays and objects): request params,
  // run input, signal data, task outputs, cron input (base/json_limits.h).
  // Process-wide: the Gateway sets base::SetMaxJsonDepth() from it.
  int max_json_depth = 64;
  std::string access_log;  // "" = stderr; "-" = off; else a file appended to
  // Modules run with the restricted Lua library (docs/engine.md "Restricted
  // modules") unless trusted_modules; module_workspace is the one folder a
  // restricted module may write files in ("" = none).
  bool trusted_modules = false;
  std::string module_workspace;
  // Runs start processes only in a sandbox (RunOptions::require_sandbox;
  // gateway.toml require_sandbox, --require-sandbox; docs/sandbox.md).
  bool require_sandbox = false;
  // The secret references tasks may resolve ("env:NAME", "file:/run/secrets/*";
  // '*' matches anything): gateway.toml [secrets] allow, --allow-secret.
  // Empty: none. The process-wide store applies it (base/secrets.h).
  std::vector<std::string> secret_refs_allowed;
  // Deleting old runs on a schedule (gateway.toml [retention]); off by default.
  RetentionOptions retention;
  // Runs, timers and cron; nullptr = SystemClock(). Token and JWT expiry
  // always use SystemClock().
  Clock* clock = nullptr;
  // `clock` is shifted by a test hook (SMITHERS_CLOCK_OFFSET_MS): refused
  // unless the Gateway listens on a loopback address.
  bool test_clock = false;
  // Adds executors for modes the engine lacks (agents) to a run's options;
  // the returned objects must outlive the run. Called on the run's thread.
  std::function<std::vector<std::unique_ptr<Executor>>(const WorkflowDefinition&, RunOptions&)>
      add_executors;
  // The unified diff of a Sandbox attempt's bundle folder (getSandboxDiff;
  // the CLI gives sandbox::AttemptDiff). Null: the method answers Unavailable.
  std::function<Result<std::string>(const std::string& bundle_dir)> sandbox_diff;
  // Told the bound address once the Gateway listens (host, port).
  std::function<void(const std::string&, int)> on_listening;
  // Browser origins ("https://app.example.com") whose requests are served, in
  // every auth mode: a request with an Origin not listed gets 403. Empty = no
  // list (requests without Origin always pass; docs/gateway.md "Host and Origin").
  std::vector<std::string> allowed_origins;
};

// How the Gateway opens its store (OpenStore's options from GatewayOptions).
inline StoreOptions GatewayStoreOptions(const GatewayOptions& o) {
  return {
      .group_readable = o.group_readable, .synchronous = o.synchronous, .audit_key = o.audit_key};
}

// Serves until SIGINT or SIGTERM (then stops accepting, asks in-process runs
// to stop and waits for them); SIGHUP reopens the access log file.
// InvalidArgument for bad options (a missing folder, TLS half configured, a
// non-loopback bind without TLS or --insecure, auth none or a test clock off
// loopback, trusted-proxy without trusted proxies, retention out of its
// bounds); Unavailable when the port
// cannot be bound.
Status RunGateway(const GatewayOptions& options);

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_GATEWAY_H_
