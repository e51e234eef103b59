// The `smithers` command (README.md, docs/architecture.md "Processes"): commands,
// --json on every read command, and exit codes 0 finished, 1 failed,
// 2 cancelled, 3 waiting, 4 bad usage or bad input.
#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "base/hash.h"
#include "base/json_limits.h"
#include "base/secrets.h"
#include "base/version.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "sandbox/sandbox.h"
#include "script/lua_workflow.h"
#include "smithers/engine.h"
#include "smithers/store.h"

namespace smithers::cli {
namespace {

// ---- up ----

struct UpArgs {
  std::string file;
  std::string input;
  std::string run_id;
  bool resume = false;
  bool force = false;
  int max_concurrency = 16;
  std::string claim_from;   // hidden: set by `smithers supervise`
  bool restricted = false;  // the Gateway's restricted Lua library
  std::string module_workspace;
  bool stats = false;              // add the render loop's timings to the result (bench/run)
  bool require_sandbox = false;    // every process a task starts must be confined
  std::string stop_grace = "10s";  // SIGTERM/SIGINT: how long tasks in flight may finish
};

// The first SIGTERM or SIGINT asks the run to stop gracefully
// (RunOptions::stop); a second one ends the process at once.
std::atomic<bool> g_stop_run{false};
volatile sig_atomic_t g_stop_signal = 0;

void OnStopSignal(int sig) {
  if (g_stop_signal != 0) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  g_stop_signal = sig;
  g_stop_run.store(true, std::memory_order_relaxed);
}

class Progress {
 public:
  explicit Progress(bool tty) : tty_(tty) {}
  void operator()(const EventRecord& e) {
    const Json& p = e.payload;
    std::string node = p.value("nodeId", "");
    int iteration = p.value("iteration", 0);
    std::string at = iteration > 0 ? node + " [" + std::to_string(iteration) + "]" : node;
    std::string line;
    if (e.type == "RunStarted") {
      line = tty_ ? "● run " + e.run_id : "run " + e.run_id + " started";
    } else if (e.type == "NodeStarted") {
      int attempt = p.value("attempt", 1);
      line = (tty_ ? "▶ " : "start ") + at +
             (attempt > 1 ? " (attempt " + std::to_string(attempt) + ")" : "");
    } else if (e.type == "NodeFinished") {
      line = (tty_ ? "✔ " : "finish ") + at + (p.value("cached", false) ? " (cached)" : "");
    } else if (e.type == "NodeFailed") {
      std::string msg = p.contains("error") ? p["error"].value("message", "") : "";
      line = (tty_ ? "✘ " : "fail ") + at + ": " + msg;
    } else if (e.type == "NodeRetrying") {
      line = (tty_ ? "↻ " : "retry ") + at + " (attempt " + std::to_string(p.value("attempt", 0)) +
             ")";
    } else if (e.type == "NodeSkipped") {
      line = (tty_ ? "⤼ " : "skip ") + at;
    } else if (e.type == "NodeCancelled") {
      line = (tty_ ? "■ " : "cancel ") + at + " (" + p.value("reason", "") + ")";
    } else if (e.type == "LoopAdvanced") {
      line = (tty_ ? "⟳ loop " : "loop ") + p.value("loopId", "") + " iteration " +
             std::to_string(p.value("iteration", 0));
    } else if (e.type == "RunStatusChanged" && p.value("resumed", false)) {
      line = (tty_ ? "● resumed run " : "run resumed ") + e.run_id;
    } else if (e.type == "ApprovalRequested") {
      line = (tty_ ? "⏸ " : "approval ") + at + " needs approval by " + p.value("owner", "");
    } else if (e.type == "ApprovalEscalated") {
      line = (tty_ ? "⏫ " : "escalate ") + at + " escalated from " + p.value("from", "") + " to " +
             p.value("to", "");
    } else if (e.type == "NodeWaitingEvent") {
      line = (tty_ ? "⏸ " : "wait ") + at + " waits for signal \"" + p.value("event", "") + "\"";
    } else if (e.type == "SignalRejected") {
      line = (tty_ ? "✘ " : "reject ") + at + ": signal " +
             std::to_string(p.value("signalSeq", 0)) +
             " does not match its schema: " + p["violations"].dump();
    } else if (e.type == "TimerCreated") {
      line = (tty_ ? "⏲ " : "timer ") + at + " due at " +
             base::FormatIsoTime(p.value("firesAtMs", int64_t{0}));
    } else {
      return;
    }
    std::cerr << line << "\n";
  }

 private:
  bool tty_;
};

int Up(const Global& g, const UpArgs& a) {
  // The user's own module: the full Lua library unless --restricted.
  Result<std::unique_ptr<script::LuaWorkflow>> module = script::LoadWorkflowModule(
      a.file, {.restricted = a.restricted, .workspace = a.module_workspace});
  if (!module.ok()) return Fail(kExitBadInput, module.status().message());
  const WorkflowDefinition& wf = (*module)->definition();
  Json input = nullptr;
  if (!a.input.empty()) {
    Result<Json> parsed = ParseInputArg(a.input);
    if (!parsed.ok()) return Fail(kExitBadInput, parsed.status().message());
    input = *parsed;
  }
  if (!a.resume) {
    // Everything that can be checked without the database is checked before
    // it is opened, so bad input writes nothing.
    Status s = CheckWorkflow(wf, input.is_null() ? Json::object() : input);
    if (!s.ok()) return Fail(kExitBadInput, s.message());
  } else if (a.run_id.empty()) {
    return Fail(kExitBadInput, "--resume needs --run-id");
  } else if (!g.db_file.empty() && access(g.db_file.c_str(), F_OK) != 0) {
    // Opening would create an empty database: there is nothing to resume.
    return Fail(kExitBadInput,
                "no run \"" + a.run_id + "\" to resume (no database at " + g.db + ")");
  }
  Result<std::unique_ptr<Store>> store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  if (!a.resume) {
    // The code this run starts with, kept by revision: a Gateway that resumes
    // it later runs this code even if the file changed (docs/gateway.md).
    Status pinned = (*store)->PutModuleSource({.revision = wf.source_hash,
                                               .path = wf.source_path,
                                               .source = (*module)->source(),
                                               .created_at_ms = CliClock().NowMs(),
                                               .siblings = (*module)->siblings()});
    if (!pinned.ok()) return Fail(ExitFor(pinned), pinned.message());
  }

  long long stop_grace_ms = 0;
  if (!base::ParseDurationMs(a.stop_grace, &stop_grace_ms) || stop_grace_ms < 0) {
    return Fail(kExitBadInput, "--stop-grace \"" + a.stop_grace + "\" is not a duration like 10s");
  }
  Result<int64_t> agent_heartbeat = AgentHeartbeatTimeoutMs();
  if (!agent_heartbeat.ok()) return Fail(kExitBadInput, agent_heartbeat.status().message());
  Progress progress(isatty(STDERR_FILENO) != 0);
  RunOptions opts;
  opts.agent_heartbeat_timeout_ms = *agent_heartbeat;
  opts.stop = &g_stop_run;
  opts.stop_grace_ms = stop_grace_ms;
  signal(SIGTERM, OnStopSignal);
  signal(SIGINT, OnStopSignal);
  opts.run_id = a.run_id;
  opts.input = input;
  opts.resume = a.resume;
  opts.force = a.force;
  opts.max_concurrency = a.max_concurrency;
  opts.claim_from = a.claim_from;
  // Neither the agents' bash nor a sandboxed command sees the database.
  const std::vector<std::string> hidden =
      g.db_file.empty() ? std::vector<std::string>{} : std::vector{g.db_file};
  opts.require_sandbox = a.require_sandbox;
  std::vector<std::unique_ptr<Executor>> executors = AddRunExecutors(wf, hidden, opts);
  opts.clock = &CliClock();
  opts.on_event = [&progress](const EventRecord& e) { progress(e); };
  // The OS user from the password database, never $USER (which anyone sets).
  opts.auth = {{"triggeredBy", OsUser()}, {"role", "operator"}};
  Json audit_details = {{"module", wf.source_path}};
  if (!a.claim_from.empty()) audit_details["claimedFrom"] = a.claim_from;  // by supervise
  if (a.force) audit_details["force"] = true;
  opts.audit = CliAudit("", "", std::move(audit_details));
  RenderStats stats;
  if (a.stats) opts.render_stats = &stats;
  Result<RunResult> r = RunWorkflow(wf, **store, opts);
  if (!r.ok() && g_stop_signal != 0 && r.status().code() == StatusCode::kUnavailable) {
    // Stopped and released (docs/engine.md "Stopping"): 128 + the signal, as
    // a shell reports a process the signal ended.
    int sig = g_stop_signal;
    return Fail(128 + sig, std::string("stopped by ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                               ": " + r.status().message() + "; resume it with `smithers up " +
                               a.file + " --resume --run-id RUN_ID`");
  }
  if (!r.ok()) return Fail(ExitFor(r.status()), r.status().message());
  Json out = {{"runId", r->run_id}, {"status", r->status}, {"outputs", r->outputs}};
  if (a.stats) {
    out["stats"] = {{"renders", stats.renders},    {"nodes", stats.nodes},
                    {"renderNs", stats.render_ns}, {"planNs", stats.plan_ns},
                    {"frameNs", stats.frame_ns},   {"nsPerNode", stats.NsPerNode()}};
  }
  if (!r->error.is_null()) out["error"] = r->error;
  if (!r->waiting.empty()) out["waiting"] = r->waiting;
  std::cout << out.dump(2) << std::endl;
  if (r->status == RunStatus::kFailed) {
    std::string cause;
    if (r->error.contains("cause") && r->error["cause"].is_object()) {
      cause = ": " + r->error["cause"].value("message", "");
    }
    std::cerr << "smithers: run " << r->run_id << " failed: " << r->error.value("message", "")
              << cause << "\n";
  }
  if (r->ExitCode() == kExitWaiting) PrintWaiting(*r, a.file);
  return r->ExitCode();
}

// ---- read commands ----

// Agent tokens (and cost, with a price table) over `attempts`.
Json TokenTotals(const std::vector<AttemptRecord>& attempts) {
  Json t = {{"input", 0}, {"output", 0}};
  for (const auto& a : attempts) {
    if (!a.meta.contains("tokens")) continue;
    for (const char* k : {"input", "output"}) {
      t[k] = t[k].get<int64_t>() + a.meta["tokens"].value(k, int64_t{0});
    }
    if (a.meta.contains("costUsd")) {
      t["costUsd"] = t.value("costUsd", 0.0) + a.meta["costUsd"].get<double>();
    }
  }
  return t;
}

int Ps(const Global& g, const std::string& status, int limit) {
  Result<RunFilter> filter = RunFilterForStatus(status, limit);
  if (!filter.ok()) return Fail(kExitBadInput, filter.status().message());
  auto store = OpenForRead(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  auto runs = (*store)->ListRuns(*filter);
  if (!runs.ok()) return Fail(kExitFailed, runs.status().message());
  if (g.json) {
    Json arr = Json::array();
    for (const auto& r : *runs) {
      Json j = RunRecordJson(r);
      auto attempts = (*store)->ListAttempts(r.run_id);
      if (attempts.ok()) j["tokens"] = TokenTotals(*attempts);
      arr.push_back(std::move(j));
    }
    std::cout << Json{{"runs", arr}}.dump(2) << std::endl;
    return kExitOk;
  }
  std::printf("%-36s  %-18s  %-20s  %s\n", "RUN", "STATUS", "WORKFLOW", "STARTED");
  for (const auto& r : *runs) {
    std::printf("%-36s  %-18s  %-20s  %s\n", r.run_id.c_str(), std::string(Name(r.status)).c_str(),
                r.workflow_name.c_str(), Ago(r.started_at_ms).c_str());
  }
  return kExitOk;
}

int Inspect(const Global& g, const std::string& run_id) {
  auto store = OpenForRead(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Store& s = **store;
  auto run = s.GetRun(run_id);
  if (!run.ok()) return Fail(ExitFor(run.status()), run.status().message());
  auto nodes = s.ListNodes(run_id);
  auto attempts = s.ListAttempts(run_id);
  auto outputs = s.ListOutputs(run_id);
  auto loops = s.ListLoops(run_id);
  auto last_frame = s.LastFrame(run_id);
  auto approvals = s.ListApprovals({.run_id = run_id});
  auto signals = s.ListSignals(run_id);
  auto sandboxes = s.ListSandboxes(run_id);
  for (const Status& st :
       {nodes.status(), attempts.status(), outputs.status(), loops.status(), last_frame.status(),
        approvals.status(), signals.status(), sandboxes.status()}) {
    if (!st.ok()) return Fail(kExitFailed, st.message());
  }
  Json j = {{"run", RunRecordJson(*run)},
            {"nodes", Json::array()},
            {"outputs", Json::array()},
            {"loops", Json::array()}};
  for (const auto& n : *nodes) {
    Json nj = {{"nodeId", n.node_id},
               {"iteration", n.iteration},
               {"state", n.state},
               {"lastAttempt", n.last_attempt},
               {"outputTable", n.output_table},
               {"updatedAtMs", n.updated_at_ms},
               {"attempts", Json::array()}};
    if (!n.label.empty()) nj["label"] = n.label;
    nj["mounted"] = n.mounted;  // false: the task left the rendered tree
    std::vector<AttemptRecord> mine;
    for (const auto& a : *attempts) {
      if (a.node_id == n.node_id && a.iteration == n.iteration) mine.push_back(a);
    }
    // Agent attempts: tokens (and cost, with a price table) per task.
    if (std::any_of(mine.begin(), mine.end(),
                    [](const AttemptRecord& a) { return a.meta.contains("tokens"); })) {
      nj["tokens"] = TokenTotals(mine);
    }
    for (const auto& a : mine) {
      Json aj = {{"attempt", a.attempt},
                 {"state", a.state},
                 {"startedAtMs", a.started_at_ms},
                 {"finishedAtMs", a.finished_at_ms == 0 ? Json() : Json(a.finished_at_ms)},
                 {"cached", a.cached}};
      if (!a.error.is_null()) aj["error"] = a.error;
      if (a.meta.contains("sandbox")) aj["sandbox"] = a.meta["sandbox"];
      if (a.meta.contains("review")) aj["review"] = a.meta["review"];
      // An agent that ran its tools without the sandbox, by its own choice.
      if (a.meta.contains("agents") && a.meta["agents"].is_array()) {
        for (const Json& ag : a.meta["agents"]) {
          if (ag.is_object() && ag.contains("unisolatedTools") && ag["unisolatedTools"] == true) {
            aj["unisolatedTools"] = true;
          }
        }
      }
      nj["attempts"].push_back(aj);
    }
    j["nodes"].push_back(nj);
  }
  for (const auto& o : *outputs) {
    j["outputs"].push_back({{"nodeId", o.node_id},
                            {"iteration", o.iteration},
                            {"outputTable", o.output_table},
                            {"payload", o.payload}});
  }
  for (const auto& l : *loops) {
    j["loops"].push_back({{"loopId", l.loop_id}, {"iteration", l.iteration}, {"done", l.done}});
  }
  if (*last_frame) j["lastFrameNo"] = (*last_frame)->frame_no;
  j["tokens"] = TokenTotals(*attempts);
  j["approvals"] = Json::array();
  for (const auto& a : *approvals) {
    Json aj = {{"nodeId", a.node_id}, {"iteration", a.iteration},           {"status", a.status},
               {"owner", a.owner},    {"requestedAtMs", a.requested_at_ms}, {"request", a.request}};
    if (a.escalated_at_ms > 0) aj["escalatedAtMs"] = a.escalated_at_ms;
    if (a.status != ApprovalStatus::kRequested) {
      aj["decidedBy"] = a.decided_by;
      aj["decidedAtMs"] = a.decided_at_ms;
      aj["note"] = a.note;
      aj["decidedVia"] = a.decided_via;
      if (!a.decided_os_user.empty()) aj["osUser"] = a.decided_os_user;
      aj["override"] = a.decided_override;
    }
    if (!a.allowed_users.empty()) aj["allowedUsers"] = a.allowed_users;
    if (!a.allowed_scopes.empty()) aj["allowedScopes"] = a.allowed_scopes;
    j["approvals"].push_back(aj);
  }
  j["signals"] = Json::array();
  for (const auto& sig : *signals) {
    Json sj = {{"seq", sig.seq},
               {"name", sig.name},
               {"correlationId", sig.correlation_id},
               {"status", sig.status},
               {"receivedAtMs", sig.received_at_ms},
               {"receivedBy", sig.received_by},
               {"payload", sig.payload}};
    if (sig.status != SignalStatus::kPending) {
      sj["consumedBy"] = {{"nodeId", sig.consumed_by_node}, {"iteration", sig.consumed_iteration}};
    }
    if (!sig.rejection.is_null()) sj["rejection"] = sig.rejection;
    j["signals"].push_back(sj);
  }
  j["sandboxes"] = Json::array();
  for (const SandboxRecord& sb : *sandboxes) j["sandboxes"].push_back(SandboxRecordJson(sb));
  if (g.json) {
    std::cout << j.dump(2) << std::endl;
    return kExitOk;
  }
  const RunRecord& r = *run;
  std::printf("run       %s\nworkflow  %s (%s)\nstatus    %s\nstarted   %s\n", r.run_id.c_str(),
              r.workflow_name.c_str(), r.workflow_path.c_str(), std::string(Name(r.status)).c_str(),
              r.started_at_ms ? base::FormatIsoTime(r.started_at_ms).c_str() : "-");
  if (r.finished_at_ms)
    std::printf("finished  %s\n", base::FormatIsoTime(r.finished_at_ms).c_str());
  std::printf("input     %s\n", r.input.dump().c_str());
  if (j["tokens"]["input"].get<int64_t>() + j["tokens"]["output"].get<int64_t>() > 0) {
    std::printf("tokens    %lld in, %lld out%s\n",
                static_cast<long long>(j["tokens"]["input"].get<int64_t>()),
                static_cast<long long>(j["tokens"]["output"].get<int64_t>()),
                j["tokens"].contains("costUsd")
                    ? (", $" + std::to_string(j["tokens"]["costUsd"].get<double>())).c_str()
                    : "");
  }
  if (!r.error.is_null()) std::printf("error     %s\n", r.error.dump().c_str());
  std::printf("\n%-32s  %-5s  %-12s  %s\n", "NODE", "ITER", "STATE", "ATTEMPTS");
  for (const auto& n : j["nodes"]) {
    std::printf("%-32s  %-5d  %-12s  %d%s\n", n["nodeId"].get<std::string>().c_str(),
                n["iteration"].get<int>(), n["state"].get<std::string>().c_str(),
                n["lastAttempt"].get<int>(), n["mounted"] == false ? "  (unmounted)" : "");
    for (const auto& a : n["attempts"]) {
      if (a.value("cached", false)) {
        std::printf("    attempt %d %s (cached)\n", a["attempt"].get<int>(),
                    a["state"].get<std::string>().c_str());
      }
      if (a.contains("sandbox")) {
        const Json& sb = a["sandbox"];
        std::string what;
        if (sb.contains("limitReached")) what = ": " + sb["limitReached"].get<std::string>();
        // A Sandbox's worker: what it returned and what became of it.
        if (sb.contains("patches")) {
          what += ": " + std::to_string(sb["patches"].get<int64_t>()) + " changed file(s)";
          if (sb.value("applied", false)) what += ", applied";
          if (a.value("review", "") == "requested") {
            what += ", review requested (smithers diff RUN --node ID)";
          }
        }
        std::printf("    attempt %d: in the %s sandbox%s\n", a["attempt"].get<int>(),
                    sb.value("runtime", "").c_str(), what.c_str());
      }
      if (a.contains("unisolatedTools")) {
        std::printf("    attempt %d: tools ran unisolated (unisolatedTools = true)\n",
                    a["attempt"].get<int>());
      }
      if (a.contains("error")) {
        std::printf("    attempt %d %s: %s\n", a["attempt"].get<int>(),
                    a["state"].get<std::string>().c_str(), a["error"].value("message", "").c_str());
      }
    }
  }
  if (!j["approvals"].empty()) std::printf("\nAPPROVALS\n");
  for (const auto& a : j["approvals"]) {
    std::string who = a["status"] == "requested"
                          ? "owner " + a["owner"].get<std::string>()
                          : "by " + a.value("decidedBy", "") +
                                (a.value("override", false) ? ", an override" : "");
    std::printf("  %s [%d] %s (%s)\n", a["nodeId"].get<std::string>().c_str(),
                a["iteration"].get<int>(), a["status"].get<std::string>().c_str(), who.c_str());
  }
  if (!sandboxes->empty()) {
    std::printf("\nSANDBOXES\n");
    std::printf("  %-24s  %-5s  %-7s  %-8s  %-10s  %-9s  %s\n", "SANDBOX", "ITER", "ATTEMPT",
                "KIND", "RUNTIME", "STATUS", "DETAIL");
  }
  for (const SandboxRecord& sb : *sandboxes) {
    std::string detail;
    auto add = [&detail](const std::string& part) {
      detail += (detail.empty() ? "" : ", ") + part;
    };
    if (sb.patch_count >= 0) add(std::to_string(sb.patch_count) + " patch(es)");
    if (!sb.review.empty()) {
      add("review " + sb.review + (sb.reviewed_by.empty() ? "" : " by " + sb.reviewed_by));
    }
    if (!sb.error_code.empty()) add(sb.error_code);
    if (!sb.container_id.empty()) add("container " + sb.container_id);
    if (sb.heartbeat_at_ms > 0 && (sb.status == "pending" || sb.status == "shipped")) {
      add("heartbeat " + Ago(sb.heartbeat_at_ms));
    }
    std::printf("  %-24s  %-5d  %-7d  %-8s  %-10s  %-9s  %s\n", sb.sandbox_id.c_str(), sb.iteration,
                sb.attempt, sb.kind.c_str(), sb.runtime.c_str(), sb.status.c_str(), detail.c_str());
  }
  if (!j["signals"].empty()) std::printf("\nSIGNALS\n");
  for (const auto& x : j["signals"]) {
    std::printf("  #%lld %s %s%s\n", static_cast<long long>(x["seq"].get<int64_t>()),
                x["name"].get<std::string>().c_str(), x["status"].get<std::string>().c_str(),
                x.contains("consumedBy")
                    ? (" by " + x["consumedBy"]["nodeId"].get<std::string>()).c_str()
                    : "");
  }
  if (!j["outputs"].empty()) std::printf("\nOUTPUTS\n");
  for (const auto& o : j["outputs"]) {
    std::printf("  %s [%d] (%s): %s\n", o["nodeId"].get<std::string>().c_str(),
                o["iteration"].get<int>(), o["outputTable"].get<std::string>().c_str(),
                o["payload"].dump().c_str());
  }
  return kExitOk;
}

int Events(const Global& g, const std::string& run_id, int64_t since, bool follow) {
  auto store = OpenForRead(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Store& s = **store;
  auto run = s.GetRun(run_id);
  if (!run.ok()) return Fail(ExitFor(run.status()), run.status().message());
  int64_t after = since;
  Json all = Json::array();
  auto print = [&](const EventRecord& e) {
    if (g.json && !follow) {
      all.push_back(EventRecordJson(e));
    } else if (g.json) {
      std::cout << EventRecordJson(e).dump() << "\n";
    } else {
      std::cout << e.seq << "  " << base::FormatIsoTime(e.timestamp_ms) << "  " << e.type << "  "
                << e.payload.dump() << "\n";
    }
  };
  while (true) {
    auto events = s.ListEvents(run_id, after, 1000);
    if (!events.ok()) return Fail(kExitFailed, events.status().message());
    for (const auto& e : *events) {
      print(e);
      after = e.seq;
    }
    if (events->size() == 1000) continue;
    if (!follow) break;
    std::cout.flush();
    auto latest = s.GetRun(run_id);
    if (!latest.ok()) return Fail(kExitFailed, latest.status().message());
    if (IsTerminal(latest->status)) {
      // One last read: events committed with the final status.
      auto rest = s.ListEvents(run_id, after, 100000);
      if (rest.ok()) {
        for (const auto& e : *rest) print(e);
      }
      break;
    }
    CliClock().SleepMs(200);
  }
  if (g.json && !follow) std::cout << Json{{"runId", run_id}, {"events", all}}.dump(2) << "\n";
  std::cout.flush();
  return kExitOk;
}

int Cancel(const Global& g, const std::string& run_id) {
  auto store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Store& s = **store;
  auto run = s.GetRun(run_id);
  if (!run.ok()) return Fail(ExitFor(run.status()), run.status().message());
  if (IsTerminal(run->status)) {
    return Fail(kExitBadInput, "run " + run_id + " is already " + std::string(Name(run->status)) +
                                   "; nothing to cancel");
  }
  Result<RunStatus> now_status =
      AuditedValue<RunStatus>(s, CliRunAudit("run.cancel", run_id, {{"status", Name(run->status)}}),
                              [&] { return CancelRun(s, run_id, CliClock()); });
  if (!now_status.ok()) return Fail(ExitFor(now_status.status()), now_status.status().message());
  if (*now_status == RunStatus::kCancelled) {
    std::cerr << "run " << run_id << " cancelled\n";
  } else {
    std::cerr << "cancel requested; " << run->runtime_owner_id << " will stop the run\n";
  }
  return kExitOk;
}

}  // namespace

int Main(int argc, char** argv) {
  // Inside a sandbox, the egress bridge hands the command its environment
  // untouched: it runs before anything else.
  if (std::optional<int> bridged = SandboxCommands::RunEgressBridgeIfAsked(argc, argv)) {
    return *bridged;
  }
  // The kubernetes runtime's client reads the task's environment as given
  // (a key the engine would capture is the task's to pass on).
  if (std::optional<int> job = SandboxCommands::RunKubeJobIfAsked(argc, argv)) return *job;
  // Before any thread starts: provider keys leave the environment for the
  // secret store and are redacted from here on (base/secrets.h).
  base::CaptureStartupSecrets();
  CLI::App app{"smithers: durable workflows for AI agents (Lua modules, SQLite store)", "smithers"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  app.set_version_flag("--version", std::string("smithers ") + base::Version());
  Global g;
  app.add_option("--db", g.db,
                 "The store: a SQLite database file (PATH or sqlite:PATH), or a PostgreSQL "
                 "database (postgres://USER@HOST:PORT/DB; docs/postgres.md)")
      ->capture_default_str()
      ->envname("SMITHERS_DB");
  app.add_option("--max-json-depth", g.max_json_depth,
                 "How deep a JSON value (input, signal data, task output, request) may nest: "
                 "arrays and objects open at once")
      ->capture_default_str()
      ->check(CLI::Range(1, base::kMaxJsonDepthCeiling));
  app.add_option("--synchronous", g.synchronous,
                 "SQLite synchronous mode: FULL (durable, default) or NORMAL")
      ->capture_default_str();
  app.add_option("--audit-key", g.audit_key,
                 "The audit log's HMAC key: file:/absolute/path or env:NAME (default: the file "
                 "DB.audit-key beside a SQLite database, created 0600 on first use; a "
                 "PostgreSQL store has no default: give it)")
      ->envname("SMITHERS_AUDIT_KEY");
  app.add_flag("--group-readable", g.group_readable,
               "Create the database, its folder and logs readable by the group (0640 in 0750) "
               "instead of by the owner only (0600 in 0700)");

  UpArgs up;
  auto* up_cmd = app.add_subcommand("up", "Run a workflow module (or resume a run)");
  up_cmd->add_option("file", up.file, "The workflow module (.lua)")->required();
  up_cmd->add_option("-i,--input", up.input, "Run input as a JSON object, or - for stdin");
  up_cmd->add_option("-r,--run-id", up.run_id, "Run id (default: a new UUID)");
  up_cmd->add_flag("--resume", up.resume, "Resume the run given by --run-id");
  up_cmd->add_flag("--force", up.force,
                   "On resume: accept a changed workflow source and take over a live owner");
  up_cmd->add_option("-c,--max-concurrency", up.max_concurrency, "Tasks in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  up_cmd->add_flag("--restricted", up.restricted,
                   "Load the module with the restricted Lua library, as the Gateway does "
                   "(docs/engine.md \"Restricted modules\")");
  up_cmd->add_option("--module-workspace", up.module_workspace,
                     "With --restricted: the one folder the module may write files in");
  up_cmd->add_flag("--require-sandbox", up.require_sandbox,
                   "Run processes only in a sandbox: a command task or CLI agent without one, or "
                   "unisolatedTools, fails with SANDBOX_REQUIRED and runs nothing "
                   "(docs/sandbox.md)");
  up_cmd->add_flag("--stats", up.stats,
                   "Add the render loop's timings to the result: renders, nodes (summed over "
                   "renders), renderNs, planNs, frameNs, nsPerNode (bench/README.md)");
  up_cmd
      ->add_option("--stop-grace", up.stop_grace,
                   "On SIGTERM or SIGINT: start no new task, let the tasks in flight finish "
                   "for this long, then release the run for any process to resume (a second "
                   "signal stops at once)")
      ->capture_default_str();
  up_cmd->footer(
      "Exit codes: 0 finished, 1 failed, 2 cancelled, 3 waiting, 4 bad usage or input, "
      "128+N stopped by signal N (the run released, resumable).");

  std::string ps_status;
  int ps_limit = 50;
  auto* ps_cmd = app.add_subcommand("ps", "List runs, newest first");
  ps_cmd->add_option("-s,--status", ps_status,
                     "Only runs with this status (running, waiting-approval, waiting-event, "
                     "waiting-timer, finished, failed, cancelled; \"waiting\" = any waiting-*)");
  ps_cmd->add_option("-l,--limit", ps_limit, "At most this many runs")->capture_default_str();

  std::string run_id;
  auto* inspect_cmd = app.add_subcommand("inspect", "Show a run: nodes, attempts, outputs");
  inspect_cmd->add_option("run", run_id, "Run id")->required();

  int64_t since = 0;
  bool follow = false;
  auto* events_cmd = app.add_subcommand("events", "Print a run's events in seq order");
  events_cmd->add_option("run", run_id, "Run id")->required();
  events_cmd
      ->add_option("--since", since,
                   "Only events with seq greater than this (a run's events are numbered from 1)")
      ->capture_default_str();
  events_cmd->add_flag("-f,--follow", follow,
                       "Keep printing new events until the run ends (with --json: one JSON "
                       "object per line)");

  auto* cancel_cmd = app.add_subcommand(
      "cancel",
      "Cancel a run: its running commands get SIGTERM (SIGKILL after 5 s), no new task starts, "
      "waiting tasks are cancelled");
  cancel_cmd->add_option("run", run_id, "Run id")->required();

  DecideArgs decide;
  auto add_decide = [&](const char* name, const char* help) {
    auto* cmd = app.add_subcommand(name, help);
    cmd->add_option("run", decide.run_id, "Run id")->required();
    cmd->add_option("-n,--node", decide.node_id, "The waiting node's id")->required();
    cmd->add_option("--iteration", decide.iteration, "The node's loop iteration")
        ->capture_default_str();
    cmd->add_option("--by", decide.by,
                    "Who decides: the owner, the fallback owner after escalation, or one of "
                    "allowedUsers (recorded beside your OS user; default: your OS user)");
    cmd->add_flag("--override", decide.override,
                  "Decide although --by is not a decider: an admin override, recorded as one "
                  "(anyone who can write the database has this authority)");
    cmd->add_option("--note", decide.note, "A note recorded with the decision");
    return cmd;
  };
  auto* approve_cmd = add_decide("approve", "Approve a node that waits for approval");
  auto* deny_cmd = add_decide("deny", "Deny a node that waits for approval (its onDeny applies)");

  std::string approvals_run;
  auto* approvals_cmd =
      app.add_subcommand("approvals", "List pending approval requests with owner, age and request");
  approvals_cmd->add_option("--run", approvals_run, "Only this run's");

  DiffArgs diff;
  auto* diff_cmd = app.add_subcommand(
      "diff",
      "Print the changes a Sandbox's worker returned (the attempt under review, else the latest) "
      "as a unified diff against the files it was given");
  diff_cmd->add_option("run", diff.run_id, "Run id")->required();
  diff_cmd->add_option("-n,--node", diff.node_id, "The Sandbox's node id")->required();
  diff_cmd->add_option("--iteration", diff.iteration, "The node's loop iteration")
      ->capture_default_str();
  diff_cmd->add_option("--attempt", diff.attempt, "An attempt's number (default: the latest)");
  diff_cmd->add_flag("--stat", diff.stat, "One line per file: lines added, removed, path");
  diff_cmd->footer(
      "The result bundle is checked again before it is read. Exit codes: 0 printed; 1 the "
      "bundle is gone or refused; 4 no such run, node or Sandbox attempt.");

  SignalArgs sig;
  auto* signal_cmd = app.add_subcommand(
      "signal", "Deliver a named signal to a run (kept until a WaitForEvent consumes it)");
  signal_cmd->add_option("run", sig.run_id, "Run id")->required();
  signal_cmd->add_option("name", sig.name, "Signal (event) name")->required();
  signal_cmd->add_option("-d,--data", sig.data, "Payload as JSON (default {})");
  signal_cmd->add_option("--correlation-id,--correlation", sig.correlation_id,
                         "Correlation id the wait must match");
  signal_cmd->add_option("--by", sig.by, "Who sends it (recorded; default: your OS user)");

  SuperviseArgs sup;
  std::string sup_interval = "5s", sup_stale = std::to_string(kStaleOwnerMs / 1000) + "s";
  auto* supervise_cmd = app.add_subcommand(
      "supervise",
      "Resume runs whose wait is over (decision, signal, timer) and runs whose owner died");
  supervise_cmd->add_option("-i,--interval", sup_interval, "How often to look (500ms, 5s, 1m)")
      ->capture_default_str();
  supervise_cmd
      ->add_option("--stop-grace", sup.stop_grace,
                   "On SIGTERM or SIGINT: each resumed run finishes its tasks in flight for up "
                   "to this long, then releases its run (a second signal stops at once)")
      ->capture_default_str();
  supervise_cmd
      ->add_option("-t,--stale-threshold", sup_stale,
                   "A running run whose owner has not heart-beaten for this long is "
                   "taken over")
      ->capture_default_str();
  supervise_cmd->add_option("-c,--max-concurrent", sup.max_concurrent, "Runs resumed at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  supervise_cmd->add_flag("--once", sup.once, "Look once, wait for the runs it resumed, and exit");
  supervise_cmd->footer(
      "Each run is resumed by a `smithers up --resume` process (log: <db folder>/logs/RUN.log). "
      "The run's owner column is the lease, taken by compare-and-swap, so several supervisors "
      "may watch one database.");
  up_cmd->add_option("--claim-from", up.claim_from)->group("");  // hidden, for supervise

  ServerCommands server_cmds(app, g);
  SandboxCommands sandbox_cmds(app);
  AdminCommands admin_cmds(app);
  DbCommands db_cmds(app);
  AuditCommands audit_cmds(app);
  DoctorCommands doctor_cmds(app);
  CheckCommands check_cmds(app);

  for (auto* cmd :
       {ps_cmd, inspect_cmd, events_cmd, approvals_cmd, approve_cmd, deny_cmd, signal_cmd}) {
    cmd->add_flag("--json", g.json, "Print one JSON document on stdout");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitBadInput;
  }

  base::SetMaxJsonDepth(g.max_json_depth);
  if (int code = check_cmds.Run(); code >= 0) return code;  // no database: before CheckDb
  if (Status db = CheckDb(g); !db.ok()) return Fail(kExitBadInput, db.message());
  if (int code = server_cmds.Run(); code >= 0) return code;
  if (int code = sandbox_cmds.Run(); code >= 0) return code;
  if (int code = admin_cmds.Run(g); code >= 0) return code;
  if (int code = db_cmds.Run(g); code >= 0) return code;
  if (int code = audit_cmds.Run(g); code >= 0) return code;
  if (int code = doctor_cmds.Run(g); code >= 0) return code;
  if (*up_cmd) return Up(g, up);
  if (*ps_cmd) return Ps(g, ps_status, ps_limit);
  if (*inspect_cmd) return Inspect(g, run_id);
  if (*events_cmd) return Events(g, run_id, since, follow);
  if (*cancel_cmd) return Cancel(g, run_id);
  if (*approve_cmd) return Decide(g, decide, true);
  if (*deny_cmd) return Decide(g, decide, false);
  if (*approvals_cmd) return Approvals(g, approvals_run);
  if (*signal_cmd) return Signal(g, sig);
  if (*diff_cmd) return Diff(g, diff);
  if (*supervise_cmd) {
    long long ms = 0;
    if (!base::ParseDurationMs(sup_interval, &ms) || ms <= 0) {
      return Fail(kExitBadInput, "--interval \"" + sup_interval + "\" is not a duration like 5s");
    }
    sup.interval_ms = ms;
    if (!base::ParseDurationMs(sup_stale, &ms) || ms <= 0) {
      return Fail(kExitBadInput,
                  "--stale-threshold \"" + sup_stale + "\" is not a duration like 30s");
    }
    sup.stale_threshold_ms = ms;
    if (!base::ParseDurationMs(sup.stop_grace, &ms) || ms < 0) {
      return Fail(kExitBadInput,
                  "--stop-grace \"" + sup.stop_grace + "\" is not a duration like 10s");
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return Fail(kExitFailed, "cannot find this executable (/proc/self/exe)");
    exe[n] = 0;
    return Supervise(g, sup, exe);
  }
  return kExitBadInput;
}

}  // namespace smithers::cli

int main(int argc, char** argv) {
  // Every render and commit frees and reallocates a few hundred KB (Lua
  // tables, the rendered tree, SQLite's page cache once the database outgrows
  // it). Without padding, glibc hands the top of the heap back to the kernel
  // and faults it in again each time: a 4,000-iteration loop took 110,000
  // page faults and twice the system time.
  mallopt(M_TOP_PAD, 1 << 20);
  int code = smithers::cli::Main(argc, argv);
  // A finished container task's removal runs off the engine's thread.
  (void)smithers::sandbox::DrainContainerRemovals(30000);
  return code;
}
