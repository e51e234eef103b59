// /metrics: the Prometheus text of the run counts, the counters and the RPC
// latency histograms.
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

#include "gateway/gateway_internal.h"

namespace smithers::gateway {

void Metrics::ObserveRpc(const std::string& method, const std::string& outcome, double seconds) {
  std::lock_guard<std::mutex> lock(mu);
  RpcStats& s = rpc[method];
  static constexpr double kBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
  for (size_t i = 0; i < std::size(kBounds); ++i) {
    if (seconds <= kBounds[i]) s.buckets[i]++;
  }
  s.count++;
  s.sum += seconds;
  outcomes[method + "\x1f" + outcome]++;
}

std::string Gateway::MetricsText() {
  std::ostringstream o;
  o << "# HELP smithers_runs Runs in the database by status.\n# TYPE smithers_runs gauge\n";
  std::map<std::string, int64_t> by_status;
  if (Result<std::map<std::string, int64_t>> counts = store_->CountRunsByStatus(); counts.ok()) {
    by_status = std::move(counts).value();
  }
  for (RunStatus s : kAllRunStatuses) by_status.emplace(Name(s), 0);
  for (const auto& [status, n] : by_status) {
    o << "smithers_runs{status=\"" << status << "\"} " << n << "\n";
  }
  auto counter = [&](const char* name, const char* help, int64_t v) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
      << name << " " << v << "\n";
  };
  counter("smithers_runs_launched_total", "Runs started or resumed by this Gateway.",
          metrics_.runs_launched.load());
  counter("smithers_tasks_started_total", "Task attempts started.", metrics_.tasks_started.load());
  counter("smithers_tasks_finished_total", "Tasks finished.", metrics_.tasks_finished.load());
  counter("smithers_tasks_failed_total", "Task attempts failed.", metrics_.tasks_failed.load());
  counter("smithers_events_sent_total", "Event frames sent to WebSocket clients.",
          metrics_.events_sent.load());
  counter("smithers_auth_failures_total",
          "Requests refused for missing or bad credentials or scope.",
          metrics_.auth_failures.load());
  counter("smithers_backpressure_disconnects_total", "Slow consumers disconnected.",
          metrics_.backpressure_disconnects.load());
  counter("smithers_cron_sweeps_total", "Cron sweeps completed (one a second).",
          metrics_.cron_sweeps.load());
  counter("smithers_retention_sweeps_total",
          "Retention sweeps completed (gateway.toml [retention]), their deletions done.",
          metrics_.retention_sweeps.load());
  counter("smithers_retention_runs_deleted_total", "Runs deleted by retention sweeps.",
          metrics_.retention_runs_deleted.load());
  counter("smithers_token_file_reads_total",
          "Reads of the --tokens file: the first, each changed version, each retry of a failed "
          "one.",
          token_file_.Reads());
  o << "# HELP smithers_connections Open WebSocket connections.\n# TYPE smithers_connections "
       "gauge\n"
    << "smithers_connections " << metrics_.connections.load() << "\n";
  std::lock_guard<std::mutex> lock(metrics_.mu);
  o << "# HELP smithers_rpc_requests_total RPC requests by method and outcome.\n"
    << "# TYPE smithers_rpc_requests_total counter\n";
  for (const auto& [key, n] : metrics_.outcomes) {
    size_t sep = key.find('\x1f');
    o << "smithers_rpc_requests_total{method=\"" << key.substr(0, sep) << "\",code=\""
      << key.substr(sep + 1) << "\"} " << n << "\n";
  }
  o << "# HELP smithers_rpc_duration_seconds RPC latency by method.\n"
    << "# TYPE smithers_rpc_duration_seconds histogram\n";
  static constexpr const char* kLe[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                        "0.05",   "0.1",   "0.25",   "0.5",   "1",    "2.5"};
  for (const auto& [method, s] : metrics_.rpc) {
    for (size_t i = 0; i < std::size(kLe); ++i) {
      o << "smithers_rpc_duration_seconds_bucket{method=\"" << method << "\",le=\"" << kLe[i]
        << "\"} " << s.buckets[i] << "\n";
    }
    o << "smithers_rpc_duration_seconds_bucket{method=\"" << method << "\",le=\"+Inf\"} " << s.count
      << "\n";
    o << "smithers_rpc_duration_seconds_sum{method=\"" << method << "\"} " << s.sum << "\n";
    o << "smithers_rpc_duration_seconds_count{method=\"" << method << "\"} " << s.count << "\n";
  }
  return o.str();
}

}  // namespace smithers::gateway
