// `smithers sandbox worker`: the inside of a Sandbox (docs/sandbox.md "The
// Sandbox component"). The engine starts it confined, with the request
// bundle read-only, the shipped files as its workspace (the working
// folder), and a result folder and a state folder of its own. It runs the
// child module with its own database, then writes the result bundle: the
// child's outputs, one patch per file it added, changed or removed, and its
// events as a log. The manifest is written last. The engine trusts none of
// it: it checks the whole bundle before reading any (sandbox/bundle.h).
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "agents/agent_executor.h"
#include "base/hash.h"
#include "cli/commands.h"
#include "script/lua_workflow.h"
#include "smithers/engine.h"
#include "smithers/json.h"
#include "smithers/store.h"

namespace smithers::cli {
namespace {
namespace fs = std::filesystem;

constexpr size_t kMaxLogBytes = 1 << 20;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

Result<std::string> Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status Put(const fs::path& p, const std::string& data) {
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) return InternalError("cannot write " + p.string());
  return Status::Ok();
}

// The workspace's plain files (without the engine's .smithers/), by
// relative path; anything else is an error: a sandbox returns files only.
Status ListFiles(const fs::path& root, std::map<std::string, fs::path>& out) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::string rel = it->path().lexically_relative(root).string();
    fs::file_status st = it->symlink_status(ec);
    if (ec) break;
    if (it.depth() == 0 && rel == ".smithers") {
      it.disable_recursion_pending();
      continue;
    }
    if (fs::is_directory(st)) continue;
    if (!fs::is_regular_file(st)) {
      return InvalidArgumentError("the child left \"" + rel +
                                  "\", which is not a plain file (a sandbox returns plain files)");
    }
    out[rel] = it->path();
  }
  if (ec) return InternalError("cannot list the workspace: " + ec.message());
  return Status::Ok();
}

// The child's run: its status, error and outputs for the manifest.
Json RunChild(const Json& request, const fs::path& request_dir, const fs::path& state_dir) {
  Json m = {{"status", "failed"}, {"outputs", Json::object()}};
  std::string module = (request_dir / request.value("workflow", "")).string();
  Result<std::unique_ptr<script::LuaWorkflow>> loaded = script::LoadWorkflowModule(module);
  if (!loaded.ok()) {
    m["error"] = loaded.status().message();
    return m;
  }
  const WorkflowDefinition& wf = (*loaded)->definition();
  Result<std::unique_ptr<Store>> store = OpenStore((state_dir / "worker.db").string());
  if (!store.ok()) {
    m["error"] = "the worker's database: " + store.status().message();
    return m;
  }
  RunOptions opts;
  opts.input = request.value("input", Json::object());
  std::unique_ptr<Executor> agents = agents::NewAgentExecutor({.outputs = wf.outputs});
  opts.executors[TaskMode::kAgent] = agents.get();
  // No runtimes in here (opts.confine unset): a sandboxed task, or a
  // nested Sandbox, is refused rather than run unconfined.
  Result<RunResult> r = RunWorkflow(wf, **store, opts);
  if (!r.ok()) {
    m["error"] = r.status().message();
    return m;
  }
  m["runId"] = r->run_id;
  m["outputs"] = r->outputs;
  switch (r->status) {
    case RunStatus::kFinished: m["status"] = "finished"; break;
    case RunStatus::kCancelled: m["status"] = "cancelled"; break;
    case RunStatus::kFailed:
      m["error"] = r->error.is_object() ? r->error.value("message", r->error.dump()) : "failed";
      break;
    default:
      m["error"] = "the child run waits (" + r->waiting.dump() +
                   "), which nothing can answer inside a sandbox";
      break;
  }
  // Its events, for the record (bounded).
  Result<std::vector<EventRecord>> events = (*store)->ListEvents(r->run_id, 0, 100000);
  if (events.ok()) {
    std::string log;
    for (const EventRecord& e : *events) {
      std::string line =
          Json{{"seq", e.seq}, {"type", e.type}, {"payload", e.payload}}.dump() + "\n";
      if (log.size() + line.size() > kMaxLogBytes) break;
      log += line;
    }
    m["__log"] = log;
  }
  return m;
}

}  // namespace

int SandboxWorker() {
  const fs::path request_dir = Env("SMITHERS_SANDBOX_REQUEST_PATH");
  const fs::path result_dir = Env("SMITHERS_SANDBOX_RESULT_PATH");
  const fs::path state_dir = Env("SMITHERS_SANDBOX_STATE_PATH");
  if (request_dir.empty() || result_dir.empty() || state_dir.empty()) {
    return Fail(kExitBadInput,
                "sandbox worker: SMITHERS_SANDBOX_REQUEST_PATH, _RESULT_PATH and _STATE_PATH "
                "must be set (the engine starts the worker; it is not run by hand)");
  }
  Result<std::string> text = Slurp(request_dir / "README.md");
  if (!text.ok()) return Fail(kExitFailed, "sandbox worker: " + text.status().message());
  Json request = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!request.is_object()) return Fail(kExitFailed, "sandbox worker: the request is not JSON");
  std::error_code ec;
  const fs::path workspace = fs::current_path(ec);
  if (ec) return Fail(kExitFailed, "sandbox worker: no working folder");

  Json manifest = RunChild(request, request_dir, state_dir);
  std::string log = manifest.value("__log", "");
  manifest.erase("__log");

  // The patches: what differs between the workspace now and as shipped.
  std::map<std::string, std::string> shipped;  // path -> sha256
  for (const Json& f : request.value("files", Json::array())) {
    shipped[f.value("path", "")] = f.value("sha256", "");
  }
  std::map<std::string, fs::path> now;
  Json patches = Json::array();
  if (Status listed = ListFiles(workspace, now); !listed.ok()) {
    manifest["status"] = "failed";
    manifest["error"] = listed.message();
  } else {
    int n = 0;
    for (const auto& [rel, path] : now) {
      Result<std::string> content = Slurp(path);
      if (!content.ok()) return Fail(kExitFailed, "sandbox worker: " + content.status().message());
      auto it = shipped.find(rel);
      if (it != shipped.end() && it->second == base::Sha256Hex(*content)) continue;
      char name[32];
      std::snprintf(name, sizeof name, "patches/%04d.patch", ++n);
      if (Status s = Put(result_dir / name, *content); !s.ok())
        return Fail(kExitFailed, s.message());
      patches.push_back(
          {{"path", rel}, {"operation", it == shipped.end() ? "add" : "modify"}, {"file", name}});
    }
    for (const auto& [rel, sha] : shipped) {
      if (now.count(rel) == 0) patches.push_back({{"path", rel}, {"operation", "delete"}});
    }
  }
  manifest["patches"] = patches;
  if (!log.empty()) {
    if (Status s = Put(result_dir / "logs" / "stream.ndjson", log); !s.ok()) {
      return Fail(kExitFailed, s.message());
    }
  }
  if (Status s = Put(result_dir / "README.md", manifest.dump(2) + "\n"); !s.ok()) {
    return Fail(kExitFailed, s.message());
  }
  return kExitOk;
}

}  // namespace smithers::cli
