// `smithers supervise`: resumes runs whose wait is over and runs whose owner
// died, each in its own `smithers up --resume` process.
//
// The lease is the run's owner column: a supervisor takes a run with a
// compare-and-swap from the owner it saw (Store::ClaimRun) and hands it to the
// child with --claim-from, which takes it over with a second compare-and-swap.
// Two supervisors on one database therefore never resume the same run twice.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <iostream>
#include <map>
#include <vector>

#include "base/secrets.h"
#include "cli/commands.h"

namespace smithers::cli {
namespace {

// How many stop signals arrived: the first stops gracefully, a second at once.
volatile sig_atomic_t g_stop = 0;
void OnStop(int) { g_stop = g_stop + 1; }

void Log(const std::string& line) { std::cout << "supervise: " << line << std::endl; }

std::string Absolute(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) != nullptr) return buf;
  return path;
}

}  // namespace

int Supervise(const Global& g, const SuperviseArgs& a, const std::string& self_exe) {
  if (!g.db_file.empty() && access(g.db_file.c_str(), F_OK) != 0) {
    return Fail(kExitBadInput, "no database at " + g.db + " (pass --db)");
  }
  auto store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Store& s = **store;
  // A database file: its absolute path for the children, the logs beside
  // it. A server (PostgreSQL): its URL reaches the children in SMITHERS_DB,
  // never in their argv (another user can read /proc/PID/cmdline, and the
  // URL may hold a password); the logs go in ./.smithers/logs.
  const bool server = g.db_file.empty();
  const std::string db = server ? g.db : Absolute(g.db_file);
  // Like the database: the owner only (0700, logs 0600), or with
  // --group-readable the group too; an existing folder keeps its mode.
  const mode_t log_dir_mode = g.group_readable ? 0750 : 0700;
  const mode_t log_mode = g.group_readable ? 0640 : 0600;
  if (server && mkdir(".smithers", log_dir_mode) == 0) chmod(".smithers", log_dir_mode);
  const std::string state_dir = server ? Absolute(".smithers") : db.substr(0, db.rfind('/'));
  const std::string log_dir = state_dir + "/logs";
  if (mkdir(log_dir.c_str(), log_dir_mode) == 0) chmod(log_dir.c_str(), log_dir_mode);
  const std::string& me = ThisProcessOwnerId();
  signal(SIGINT, OnStop);
  signal(SIGTERM, OnStop);
  Log("started as " + me + " (every " + std::to_string(a.interval_ms) + " ms, owners stale after " +
      std::to_string(a.stale_threshold_ms) + " ms, up to " + std::to_string(a.max_concurrent) +
      " runs at once; logs in " + log_dir + ")");

  std::map<pid_t, std::string> children;  // pid -> run id
  std::map<std::string, int> failures;    // run id -> resumes that never took the run
  constexpr int kGiveUpAfter = 3;

  auto reap = [&](bool block) {
    while (!children.empty()) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, block ? 0 : WNOHANG);
      if (pid <= 0) return;
      auto it = children.find(pid);
      if (it == children.end()) continue;
      std::string run_id = it->second;
      children.erase(it);
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      auto run = s.GetRun(run_id);
      std::string st = run.ok() ? std::string(Name(run->status)) : "unknown";
      Log("run " + run_id + " exited " + std::to_string(code) + " (" + st + ")");
      // The child died before taking the lease: give the run back.
      if (run.ok() && run->runtime_owner_id == me) {
        (void)s.ClaimRun(run_id, me, "", CliClock().NowMs());
        if (++failures[run_id] >= kGiveUpAfter) {
          Log("giving up on run " + run_id + " after " + std::to_string(kGiveUpAfter) +
              " failed resumes; see " + log_dir + "/" + run_id + ".log");
        }
      }
    }
  };

  auto spawn = [&](const RunRecord& run, const std::string& reason) {
    int64_t now = CliClock().NowMs();
    Status claimed = s.ClaimRun(run.run_id, run.runtime_owner_id, me, now);
    if (!claimed.ok()) return;  // another supervisor (or process) got there first
    std::string log = log_dir + "/" + run.run_id + ".log";
    std::string cwd = run.config.value("cwd", std::string());
    // The child is this binary, the engine itself: it gets this process's
    // environment plus the secrets captured at its start-up (provider keys,
    // named again in SMITHERS_SECRET_ENV), which it captures and unsets in
    // turn (base/secrets.h). Its own children get only the allow-list.
    std::vector<std::string> env;
    std::string names;
    for (char** e = environ; *e != nullptr; ++e) {
      if (server && std::string_view(*e).starts_with("SMITHERS_DB=")) continue;
      env.emplace_back(*e);
    }
    if (server) env.push_back("SMITHERS_DB=" + db);
    for (const auto& [name, value] : base::ProcessSecrets().All()) {
      env.push_back(name + "=" + value);
      names += (names.empty() ? "" : ",") + name;
    }
    if (!names.empty()) env.push_back("SMITHERS_SECRET_ENV=" + names);
    std::vector<char*> envp = base::EnvPointers(env);
    pid_t pid = fork();
    if (pid < 0) {
      (void)s.ClaimRun(run.run_id, me, run.runtime_owner_id, now);
      Log("fork failed for run " + run.run_id);
      return;
    }
    if (pid == 0) {
      setsid();  // the run outlives a Ctrl-C of the supervisor
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, log_mode);
      if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
      }
      if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
      std::vector<std::string> args = {self_exe};
      if (!server) args.insert(args.end(), {"--db", db});
      if (!g.audit_key.empty()) args.insert(args.end(), {"--audit-key", g.audit_key});
      args.insert(args.end(),
                  {"--synchronous", g.synchronous, "up", run.workflow_path, "--resume", "--run-id",
                   run.run_id, "--claim-from", me, "--stop-grace", a.stop_grace});
      std::vector<char*> argv;
      argv.reserve(args.size() + 1);
      for (auto& x : args) argv.push_back(x.data());
      argv.push_back(nullptr);
      execve(self_exe.c_str(), argv.data(), envp.data());
      _exit(127);
    }
    children[pid] = run.run_id;
    Log("resume " + run.run_id + " (" + reason + ") as pid " + std::to_string(pid));
  };

  while (g_stop == 0) {
    int64_t now = CliClock().NowMs();
    auto escalated = s.EscalateDueApprovals("", now);
    if (escalated.ok()) {
      for (const auto& e : *escalated) {
        Log("approval of " + e.node_id + " in run " + e.run_id + " escalated to " + e.owner);
      }
    }
    auto consider = [&](const RunRecord& run, const std::string& reason) {
      if (reason.empty() || static_cast<int>(children.size()) >= a.max_concurrent) return;
      if (failures[run.run_id] >= kGiveUpAfter) return;
      for (const auto& [pid, id] : children) {
        if (id == run.run_id) return;
      }
      spawn(run, reason);
    };
    auto due = FindResumableRuns(s, me, now, a.stale_threshold_ms);
    if (!due.ok()) {
      Log("cannot list the runs to resume: " + due.status().message());
    } else {
      for (const ResumableRun& r : *due) consider(r.run, r.reason);
    }
    if (a.once) {
      reap(true);
      break;
    }
    for (int64_t slept = 0; slept < a.interval_ms && g_stop == 0; slept += 50) {
      reap(false);
      CliClock().SleepMs(50);
    }
  }
  if (g_stop != 0 && !children.empty()) {
    // Graceful stop: each resumed run finishes its tasks in flight (up to
    // --stop-grace), then releases its run for any process to resume.
    Log("stopping: " + std::to_string(children.size()) +
        " resumed runs finish their tasks in flight (up to " + a.stop_grace +
        ") and release their runs; a second signal stops at once");
    for (const auto& [pid, id] : children) kill(pid, SIGTERM);
    while (!children.empty() && g_stop < 2) {
      reap(false);
      CliClock().SleepMs(50);
    }
  }
  Log(children.empty() ? "stopped"
                       : "stopped at once; " + std::to_string(children.size()) +
                             " resumed runs are still releasing their runs");
  return kExitOk;
}

}  // namespace smithers::cli
