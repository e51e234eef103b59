// The subcommands that live outside main.cc.
#ifndef SMITHERS_CLI_COMMANDS_H_
#define SMITHERS_CLI_COMMANDS_H_

#include <cstdint>
#include <string>

#include "cli/common.h"
#include "smithers/engine.h"

namespace smithers::cli {

struct DecideArgs {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  std::string by;
  std::string note;
};
// `smithers approve` / `smithers deny`.
int Decide(const Global& g, const DecideArgs& a, bool approved);
// `smithers approvals`: pending requests, escalating the due ones first.
int Approvals(const Global& g, const std::string& run_id);

struct SignalArgs {
  std::string run_id;
  std::string name;
  std::string data;  // JSON; "" = {}
  std::string correlation_id;
  std::string by;
};
int Signal(const Global& g, const SignalArgs& a);

// What `up` prints when a run stops to wait (stderr), and how to go on.
void PrintWaiting(const RunResult& r, const std::string& file);

struct SuperviseArgs {
  int64_t interval_ms = 5000;
  int64_t stale_threshold_ms = 30000;
  int max_concurrent = 3;
  bool once = false;  // one poll, wait for the runs it resumed, exit
};
int Supervise(const Global& g, const SuperviseArgs& a, const std::string& self_exe);

}  // namespace smithers::cli

#endif  // SMITHERS_CLI_COMMANDS_H_
