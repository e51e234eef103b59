// approve, deny, approvals, signal: the commands that satisfy durable waits.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "base/hash.h"
#include "base/json_limits.h"
#include "cli/commands.h"
#include "sandbox/sandbox_task.h"
#include "smithers/schema.h"

namespace smithers::cli {
namespace {

std::string DefaultActor(const std::string& by) { return by.empty() ? OsUser() : by; }

// How to continue a parked run.
void PrintResumeHint(const RunRecord& run) {
  if (!run.runtime_owner_id.empty()) return;  // its owner picks the change up
  std::cerr << "run " << run.run_id << " is " << run.status << "; continue it with:\n  smithers up "
            << run.workflow_path << " --resume --run-id " << run.run_id
            << "\n(or let `smithers supervise` resume it)\n";
}

}  // namespace

int Decide(const Global& g, const DecideArgs& a, bool approved) {
  auto store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Store& s = **store;
  auto run = s.GetRun(a.run_id);
  if (!run.ok()) return Fail(ExitFor(run.status()), run.status().message());
  std::string what = "node \"" + a.node_id + "\" (iteration " + std::to_string(a.iteration) +
                     ") of run " + a.run_id;
  if (IsTerminal(run->status)) {
    return Fail(kExitBadInput, "run " + a.run_id + " is " + std::string(Name(run->status)) + "; " +
                                   what + " can no longer be decided");
  }
  auto approvals = s.ListApprovals({.run_id = a.run_id});
  if (!approvals.ok()) return Fail(kExitFailed, approvals.status().message());
  bool requested = false;
  for (const auto& r : *approvals) {
    requested = requested || (r.node_id == a.node_id && r.iteration == a.iteration);
  }
  if (!requested) {
    // Say what the node is doing instead, if it exists.
    std::string state;
    auto nodes = s.ListNodes(a.run_id);
    if (nodes.ok()) {
      for (const auto& n : *nodes) {
        if (n.node_id == a.node_id && n.iteration == a.iteration) state = Name(n.state);
      }
    }
    return Fail(kExitBadInput,
                what + " is not waiting for approval" +
                    (state.empty() ? " (no such node yet)" : " (it is " + state + ")"));
  }
  // The CLI decides with the authority of whoever can write the database:
  // --by names the decider (the OS user by default) and must be one, unless
  // --override; the OS user is recorded beside it either way.
  const std::string os_user = OsUser();
  Decider who{
      .actor = DefaultActor(a.by), .via = "cli", .os_user = os_user, .override = a.override};
  const AuditEntry audit = CliRunAudit("approval.decide", a.run_id,
                                       {{"nodeId", a.node_id},
                                        {"iteration", a.iteration},
                                        {"approved", approved},
                                        {"decidedBy", who.actor},
                                        {"override", a.override},
                                        {"note", a.note}});
  auto decided = AuditedValue<ApprovalRecord>(s, audit, [&] {
    return DecideApproval(s,
                          {.run_id = a.run_id,
                           .node_id = a.node_id,
                           .iteration = a.iteration,
                           .approved = approved,
                           .note = a.note},
                          who, CliClock().NowMs());
  });
  if (!decided.ok()) return Fail(ExitFor(decided.status()), decided.status().message());
  if (g.json) {
    std::cout << Json{{"runId", a.run_id},
                      {"nodeId", a.node_id},
                      {"iteration", a.iteration},
                      {"approved", approved},
                      {"decidedBy", decided->decided_by},
                      {"osUser", decided->decided_os_user},
                      {"override", decided->decided_override},
                      {"decidedAtMs", decided->decided_at_ms}}
                     .dump(2)
              << std::endl;
  }
  std::cerr << (approved ? "approved " : "denied ") << what << " (by " << decided->decided_by
            << (decided->decided_os_user != decided->decided_by
                    ? ", OS user " + decided->decided_os_user
                    : "")
            << (decided->decided_override ? ", as an override" : "") << ")\n";
  PrintResumeHint(*run);
  return kExitOk;
}

int Approvals(const Global& g, const std::string& run_id) {
  // A user who may only read the database still sees the requests.
  bool writable = g.db_file.empty() || access(g.db_file.c_str(), F_OK) != 0 ||
                  access(g.db_file.c_str(), W_OK) == 0;
  auto store = writable ? Open(g) : OpenForRead(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Store& s = **store;
  int64_t now = CliClock().NowMs();
  // Whoever looks sees the current owner: hand over what is due first.
  if (writable) {
    auto escalated = s.EscalateDueApprovals(run_id, now);
    if (!escalated.ok()) return Fail(kExitFailed, escalated.status().message());
  } else {
    std::cerr << "note: " << g.db << " is read-only for you; due escalations are left to the "
              << "Gateway or `smithers supervise`\n";
  }
  auto rows = s.ListApprovals({.run_id = run_id, .status = ApprovalStatus::kRequested});
  if (!rows.ok()) return Fail(kExitFailed, rows.status().message());
  Json list = Json::array();
  for (const auto& a : *rows) {
    auto run = s.GetRun(a.run_id);
    if (!run.ok() || IsTerminal(run->status)) continue;  // nobody can decide it any more
    Json j = {{"runId", a.run_id},
              {"workflowName", run->workflow_name},
              {"nodeId", a.node_id},
              {"iteration", a.iteration},
              {"owner", a.owner},
              {"originalOwner", a.original_owner},
              {"fallbackOwner", a.fallback_owner.empty() ? Json() : Json(a.fallback_owner)},
              {"requestedAtMs", a.requested_at_ms},
              {"ageMs", now - a.requested_at_ms},
              {"request", a.request},
              {"onDeny", a.on_deny}};
    if (a.escalate_after_ms > 0) j["escalateAfterMs"] = a.escalate_after_ms;
    if (!a.allowed_users.empty()) j["allowedUsers"] = a.allowed_users;
    if (!a.allowed_scopes.empty()) j["allowedScopes"] = a.allowed_scopes;
    if (a.escalated_at_ms > 0) j["escalatedAtMs"] = a.escalated_at_ms;
    list.push_back(std::move(j));
  }
  if (g.json) {
    std::cout << Json{{"approvals", list}}.dump(2) << std::endl;
    return kExitOk;
  }
  if (list.empty()) {
    std::cout << "no pending approvals\n";
    return kExitOk;
  }
  std::printf("%-36s  %-20s  %-4s  %-16s  %-8s  %s\n", "RUN", "NODE", "ITER", "OWNER", "AGE",
              "REQUEST");
  for (const auto& j : list) {
    std::string owner = j["owner"].get<std::string>();
    if (j.contains("escalatedAtMs")) owner += " (escalated)";
    const Json& req = j["request"];
    std::string title = req.value("title", req.dump());
    if (req.contains("summary") && req["summary"].is_string()) {
      title += ": " + req["summary"].get<std::string>();
    }
    std::printf("%-36s  %-20s  %-4d  %-16s  %-8s  %s\n", j["runId"].get<std::string>().c_str(),
                j["nodeId"].get<std::string>().c_str(), j["iteration"].get<int>(), owner.c_str(),
                Ago(j["requestedAtMs"].get<int64_t>()).c_str(), title.c_str());
  }
  return kExitOk;
}

int Diff(const Global& g, const DiffArgs& a) {
  Result<std::unique_ptr<Store>> store = OpenForRead(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Result<RunRecord> run = (*store)->GetRun(a.run_id);
  if (!run.ok()) return Fail(ExitFor(run.status()), run.status().message());
  Result<AttemptRecord> pick =
      SandboxBundleAttempt(**store, a.run_id, a.node_id, a.iteration, a.attempt);
  if (!pick.ok()) {
    return Fail(pick.status().code() == StatusCode::kNotFound ? kExitBadInput : kExitFailed,
                pick.status().message());
  }
  const Json& sb = pick->meta["sandbox"];
  Result<std::string> diff = sandbox::AttemptDiff(sb["bundle"].get<std::string>());
  if (!diff.ok()) {
    return Fail(kExitFailed,
                "attempt " + std::to_string(pick->attempt) + ": " + diff.status().message());
  }
  if (a.stat) {
    // One line per file: +added -removed path.
    int64_t added = 0;
    int64_t removed = 0;
    std::string file;
    auto flush = [&] {
      if (!file.empty())
        std::printf("+%-6lld -%-6lld %s\n", static_cast<long long>(added),
                    static_cast<long long>(removed), file.c_str());
      added = removed = 0;
    };
    size_t pos = 0;
    const std::string& d = *diff;
    while (pos < d.size()) {
      size_t nl = d.find('\n', pos);
      std::string line = d.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? d.size() : nl + 1;
      if (line.rfind("--- ", 0) == 0) {
        flush();
        file = line.substr(4);
      } else if (line.rfind("+++ ", 0) == 0) {
        if (line != "+++ /dev/null") file = line.substr(4);
        if (file.rfind("a/", 0) == 0 || file.rfind("b/", 0) == 0) file = file.substr(2);
      } else if (line.rfind("Binary files ", 0) == 0) {
        std::printf("binary         %s\n", line.c_str());
      } else if (!line.empty() && line[0] == '+') {
        ++added;
      } else if (!line.empty() && line[0] == '-') {
        ++removed;
      }
    }
    flush();
    return kExitOk;
  }
  std::cout << *diff;
  return kExitOk;
}

int Signal(const Global& g, const SignalArgs& a) {
  Json data = Json::object();
  if (!a.data.empty()) {
    Result<Json> parsed = base::ParseJsonLimited(a.data, base::MaxJsonDepth(), "--data");
    if (!parsed.ok()) return Fail(kExitBadInput, parsed.status().message());
    data = std::move(parsed).value();
  }
  auto store = Open(g);
  if (!store.ok()) return Fail(ExitFor(store.status()), store.status().message());
  Store& s = **store;
  auto run = s.GetRun(a.run_id);
  if (!run.ok()) return Fail(ExitFor(run.status()), run.status().message());
  if (IsTerminal(run->status)) {
    return Fail(kExitBadInput, "run " + a.run_id + " is " + std::string(Name(run->status)) +
                                   "; it takes no more signals");
  }
  // The schema of the output the signal will become, once the run has
  // mounted a wait for it; bad data is refused now, not found later.
  const Json& known = run->config.value("signalSchemas", Json::object());
  if (known.contains(a.name)) {
    const Json& entry = known[a.name];
    auto v = schema::Validate(entry["schema"], data);
    if (!v.empty()) {
      std::string msg = "signal \"" + a.name + "\" data does not match output \"" +
                        entry.value("output", "") + "\":";
      for (const auto& x : v) msg += "\n  " + x.path + ": " + x.message;
      return Fail(kExitBadInput, msg);
    }
  } else {
    std::cerr << "note: run " << a.run_id << " has no wait for \"" << a.name
              << "\" yet; the signal is kept and checked when one consumes it\n";
  }
  const AuditEntry audit = CliRunAudit("signal.send", a.run_id,
                                       {{"signalName", a.name},
                                        {"correlationId", a.correlation_id},
                                        {"receivedBy", DefaultActor(a.by)}});
  auto stored = AuditedValue<SignalRecord>(s, audit, [&] {
    return s.AppendSignal({.run_id = a.run_id,
                           .name = a.name,
                           .correlation_id = a.correlation_id,
                           .payload = data,
                           .received_at_ms = CliClock().NowMs(),
                           .received_by = DefaultActor(a.by)});
  });
  if (!stored.ok()) return Fail(ExitFor(stored.status()), stored.status().message());
  if (g.json) {
    std::cout << Json{{"runId", a.run_id},
                      {"signalName", a.name},
                      {"correlationId", a.correlation_id.empty() ? Json() : Json(a.correlation_id)},
                      {"seq", stored->seq}}
                     .dump(2)
              << std::endl;
  }
  std::cerr << "signal \"" << a.name << "\" delivered to run " << a.run_id << " (signal seq "
            << stored->seq << ")\n";
  PrintResumeHint(*run);
  return kExitOk;
}

void PrintWaiting(const RunResult& r, const std::string& file) {
  for (const auto& w : r.waiting) {
    std::string node = w.value("nodeId", "");
    int it = w.value("iteration", 0);
    std::string kind = w.value("kind", "");
    std::string iter_flag = it > 0 ? " --iteration " + std::to_string(it) : "";
    if (kind == "approval") {
      std::cerr << "waiting: approval of \"" << node << "\" by " << w.value("owner", "") << "\n"
                << "  smithers approve " << r.run_id << " --node " << node << iter_flag
                << "   (or deny; --by NAME, default: your OS user)\n";
    } else if (kind == "event") {
      std::string corr = w.value("correlationId", "");
      std::cerr << "waiting: signal \"" << w.value("event", "") << "\" for \"" << node << "\""
                << (corr.empty() ? "" : " (correlation " + corr + ")");
      if (w.contains("timeoutAtMs")) {
        std::cerr << ", times out at " << base::FormatIsoTime(w["timeoutAtMs"].get<int64_t>());
      }
      std::cerr << "\n  smithers signal " << r.run_id << " " << w.value("event", "")
                << " --data JSON" << (corr.empty() ? "" : " --correlation-id " + corr) << "\n";
    } else {
      int64_t at = w.value("firesAtMs", int64_t{0});
      std::cerr << "waiting: timer \"" << node << "\" is due at " << base::FormatIsoTime(at) << " ("
                << In(at) << ")\n";
    }
  }
  std::cerr << "run " << r.run_id << " is " << r.status << "; continue it with:\n  smithers up "
            << file << " --resume --run-id " << r.run_id
            << "\n(or run `smithers supervise`, which resumes it when the wait is over)\n";
}

}  // namespace smithers::cli
