// The subcommands that live outside main.cc.
#ifndef SMITHERS_CLI_COMMANDS_H_
#define SMITHERS_CLI_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/common.h"
#include "gateway/gateway.h"
#include "smithers/engine.h"

namespace CLI {  // NOLINT(readability-identifier-naming): CLI11's own namespace
class App;
}

namespace smithers::cli {

struct DecideArgs {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  std::string by;  // "" = the OS user
  std::string note;
  bool override = false;  // decide without being a decider (recorded as an override)
};
// `smithers approve` / `smithers deny`.
int Decide(const Global& g, const DecideArgs& a, bool approved);
// `smithers approvals`: pending requests, escalating the due ones first.
int Approvals(const Global& g, const std::string& run_id);

// `smithers diff RUN --node ID`: the changes a Sandbox's attempt made (the
// one under review, else the latest that returned a bundle), as a unified
// diff against the files it was given.
struct DiffArgs {
  std::string run_id;
  std::string node_id;
  int iteration = 0;
  int attempt = 0;  // 0 = the latest with a bundle
  bool stat = false;
};
int Diff(const Global& g, const DiffArgs& a);

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
  int64_t stale_threshold_ms = kStaleOwnerMs;
  int max_concurrent = 3;
  bool once = false;  // one poll, wait for the runs it resumed, exit
  // On SIGTERM/SIGINT each resumed run gets SIGTERM and this long to finish
  // its tasks in flight before it releases the run (`up --stop-grace`).
  std::string stop_grace = "10s";
};
int Supervise(const Global& g, const SuperviseArgs& a, const std::string& self_exe);

struct TokenIssueArgs {
  std::string scopes = "run:read";
  std::string ttl = "1h";
  bool ttl_given = false;       // --ttl was on the command line
  bool no_expiry = false;       // --no-expiry: a token that never expires (explicit)
  std::string max_ttl = "30d";  // --max-ttl: the longest --ttl accepted
  std::string user;
  std::string role = "operator";
  std::string label;
};

// `smithers gateway` and `smithers token ...`: registered on construction;
// Run() returns the exit code of the one the command line chose, or -1.
class ServerCommands {
 public:
  ServerCommands(CLI::App& app, Global& g);
  int Run();

 private:
  // `gateway`: the options over --config's, with the flags given on the
  // command line over both.
  int Gateway();

  CLI::App& app_;
  Global& g_;
  gateway::GatewayOptions gw_;
  std::string config_path_, jwt_secret_env_, jwt_secret_file_, proxy_scopes_;
  std::vector<std::string> trusted_proxies_;
  std::string max_token_ttl_;
  std::string stop_grace_;  // --stop-grace, parsed into gw_.stop_grace_ms
  TokenIssueArgs issue_;
  CLI::App* gw_cmd_ = nullptr;
  CLI::App* token_cmd_ = nullptr;
  CLI::App* issue_cmd_ = nullptr;
  CLI::App* list_cmd_ = nullptr;
  CLI::App* revoke_cmd_ = nullptr;
  CLI::App* rotate_cmd_ = nullptr;
  std::string token_id_, overlap_ = "5m", rotate_ttl_, rotate_max_ttl_ = "30d";
  bool rotate_no_expiry_ = false;
  std::string list_tokens_file_;  // token list --tokens
  std::string list_max_ttl_;      // token list --max-ttl: flag grants over it
};

// `smithers sandbox selftest` (sandbox_cmd.cc): registered on construction;
// Run() returns the exit code, or -1 when the command line chose another.
// `smithers sandbox worker` (sandbox_worker.cc): runs a Sandbox's request
// bundle inside its sandbox and writes the result bundle; its exit code.
int SandboxWorker();

class SandboxCommands {
 public:
  explicit SandboxCommands(CLI::App& app);
  int Run();
  // `smithers sandbox egress-bridge --socket S --port N -- ARGV...`, which
  // the engine runs inside a sandbox with an egress allow-list (never typed
  // by hand): its exit code, or nullopt for any other command line.
  static std::optional<int> RunEgressBridgeIfAsked(int argc, char** argv);
  // `smithers sandbox kube-job --kubectl K --manifest JSON`, the kubernetes
  // runtime's client (never typed by hand): its exit code, or nullopt for
  // any other command line.
  static std::optional<int> RunKubeJobIfAsked(int argc, char** argv);

 private:
  CLI::App* sandbox_cmd_ = nullptr;
  CLI::App* selftest_cmd_ = nullptr;
  CLI::App* worker_cmd_ = nullptr;
  std::string runtime_ = "bubblewrap";
  std::string image_;
  bool json_ = false;
};

// `smithers runs delete|prune` (admin_cmds.cc): registered on construction;
// Run() returns the exit code, or -1 when the command line chose another.
class AdminCommands {
 public:
  explicit AdminCommands(CLI::App& app);
  int Run(const Global& g);

 private:
  int Delete(const Global& g);
  int Prune(const Global& g);

  CLI::App* runs_cmd_ = nullptr;
  CLI::App* delete_cmd_ = nullptr;
  CLI::App* prune_cmd_ = nullptr;
  std::vector<std::string> delete_ids_;
  bool force_ = false;
  std::string wait_ = "30s";
  std::string older_than_;
  std::string prune_status_ = "finished,failed,cancelled";
  bool dry_run_ = false;
  bool json_ = false;
};

// `smithers audit [list]|export|anchor|verify` (audit_cmds.cc): the audit
// log. Registered on construction; Run() returns the exit code, or -1.
class AuditCommands {
 public:
  explicit AuditCommands(CLI::App& app);
  int Run(const Global& g);

 private:
  int List(const Global& g, bool ndjson);
  int Anchor(const Global& g);
  int Verify(const Global& g);

  CLI::App* audit_cmd_ = nullptr;
  CLI::App* export_cmd_ = nullptr;
  CLI::App* anchor_cmd_ = nullptr;
  CLI::App* verify_cmd_ = nullptr;
  std::string run_;
  std::string actor_;
  std::string since_;
  int limit_ = 0;
  std::string format_ = "ndjson";
  std::string anchor_;
  bool json_ = false;
};

// `smithers db backup|check|restore|history` (db_cmds.cc): registered on
// construction; Run() returns the exit code, or -1 when the command line
// chose another.
class DbCommands {
 public:
  explicit DbCommands(CLI::App& app);
  int Run(const Global& g);

 private:
  int Backup(const Global& g);
  int Check();
  int Restore(const Global& g);
  int Drill(const Global& g);
  int History(const Global& g);
  int Migrate(const Global& g);
  int Copy(const Global& g);

  CLI::App* db_cmd_ = nullptr;
  CLI::App* migrate_cmd_ = nullptr;
  CLI::App* copy_cmd_ = nullptr;
  std::string copy_from_;
  std::string copy_to_;
  CLI::App* backup_cmd_ = nullptr;
  CLI::App* check_cmd_ = nullptr;
  CLI::App* restore_cmd_ = nullptr;
  CLI::App* history_cmd_ = nullptr;
  std::string file_;
  std::string to_;
  bool drill_ = false;
  bool keep_ = false;
  int sample_ = 20;
  std::string kind_;
  int limit_ = 50;
  bool json_ = false;
};

// `smithers check MODULE...` (check_cmd.cc): registered on construction;
// Run() returns the exit code, or -1 when the command line chose another.
// It opens no database.
class CheckCommands {
 public:
  explicit CheckCommands(CLI::App& app);
  int Run();

 private:
  CLI::App* check_cmd_ = nullptr;
  std::vector<std::string> modules_;
  std::string input_;
  bool require_sandbox_ = false;
  bool restricted_ = false;
  bool json_ = false;
};

// `smithers doctor` (doctor_cmd.cc): a deployment checked against the
// release checklist (docs/operations.md "The release checklist: smithers
// doctor"). Registered on construction; Run() returns the exit code (0 no
// item fails, 1 one does, 4 bad input), or -1 when the command line chose
// another.
class DoctorCommands {
 public:
  explicit DoctorCommands(CLI::App& app);
  int Run(const Global& g);

 private:
  CLI::App& app_;  // which global flags were given (they override the config's)
  CLI::App* doctor_cmd_ = nullptr;
  std::string config_path_;
  std::string max_backup_age_ = "7d";
  std::string max_drill_age_ = "30d";
  std::string min_retention_ = "30d";
  std::string rotation_period_ = "30d";
  std::string access_log_age_ = "1d";
  std::string sandbox_runtime_ = "bubblewrap";
  std::string sandbox_image_;
  bool json_ = false;
};

}  // namespace smithers::cli

#endif  // SMITHERS_CLI_COMMANDS_H_
