// What every `smithers` subcommand shares: global options, opening the
// store, error reporting and exit codes, the clock.
#ifndef SMITHERS_CLI_COMMON_H_
#define SMITHERS_CLI_COMMON_H_

#include <memory>
#include <string>
#include <vector>

#include "smithers/clock.h"
#include "smithers/engine.h"
#include "smithers/store.h"

namespace smithers::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitWaiting = 3;
constexpr int kExitBadInput = 4;

struct Global {
  // --db: the store URL (OpenStore; docs/store_format.md "Store URLs").
  std::string db = ".smithers/smithers.db";
  // The database file `db` names, set by CheckDb ("" for a backend that
  // keeps no file): what existence checks and agents' hidden paths use.
  std::string db_file;
  std::string synchronous = "FULL";  // SQLite's synchronous mode (--synchronous)
  bool json = false;
  // How deep a JSON value may nest (base/json_limits.h); --max-json-depth.
  int max_json_depth = 64;
  // --group-readable: a new database (and its -wal, -shm, folders, logs)
  // 0640 in 0750 folders instead of 0600 in 0700.
  bool group_readable = false;
  // --audit-key / $SMITHERS_AUDIT_KEY: the audit log's key reference
  // ("file:/abs/path", "env:NAME"); "" = <database>.audit-key.
  std::string audit_key;
};

// Prints "smithers: MESSAGE" on stderr and returns `code`.
int Fail(int code, const std::string& message);

// Errors the user can fix by changing what they typed exit 4; the rest 1.
int ExitFor(const Status& s);

// Reads g.db (ParseStoreUrl) and sets g.db_file. InvalidArgument for a
// value that is neither a path nor an accepted URL: nothing is created.
Status CheckDb(Global& g);

// Opens the database for reading and writing, creating it (and its folder)
// if needed.
Result<std::unique_ptr<Store>> Open(const Global& g);
// Opens it read-only (ps, inspect, events, token list): works for a user who
// may only read the files. A database that does not exist yet is created by
// Open as before (there is nothing to read).
Result<std::unique_ptr<Store>> OpenForRead(const Global& g);

// The wall clock, shifted by SMITHERS_CLOCK_OFFSET_MS when that is set (a
// test hook to move time forward across processes: timers, escalations,
// cron). Token lifetimes never use it: they use SystemClock().
Clock& CliClock();
// True when SMITHERS_CLOCK_OFFSET_MS is set (to anything).
bool ClockShifted();

// RunOptions::agent_heartbeat_timeout_ms from SMITHERS_TASK_HEARTBEAT_MS
// (milliseconds, > 0); the engine's default when unset or empty.
// InvalidArgument for any other value.
Result<int64_t> AgentHeartbeatTimeoutMs();

// What a run of this process needs beyond the engine's own executors, set
// in `ro`: the agents (kAgent), Sandbox workers (kSandbox) and the
// confinement of sandboxed commands (RunOptions::confine), all with
// `hidden` (the database) never visible to what they start. Reads
// ro.require_sandbox; the result must outlive the run.
std::vector<std::unique_ptr<Executor>> AddRunExecutors(const WorkflowDefinition& wf,
                                                       const std::vector<std::string>& hidden,
                                                       RunOptions& ro);

// The OS user running this process, from the password database (not $USER,
// which the caller sets at will); "uid:N" when the uid has no entry.
std::string OsUser();

// --input: a JSON object, or "-" for one read from stdin (depth-limited).
Result<Json> ParseInputArg(const std::string& text);

// An audit entry for what this CLI process does: the OS user acts.
AuditEntry CliAudit(std::string action, std::string target, Json details = Json::object());
// The same for an action on run `run_id` (its target and its chain).
AuditEntry CliRunAudit(std::string action, const std::string& run_id,
                       Json details = Json::object());

// "3s ago", "5m ago", ...
std::string Ago(int64_t then_ms);
// "in 5m", "in 2h", or "now".
std::string In(int64_t at_ms);

}  // namespace smithers::cli

#endif  // SMITHERS_CLI_COMMON_H_
