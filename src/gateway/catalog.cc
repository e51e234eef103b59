// The workflow catalog (catalog.h): the scans on the catalog's thread, and
// on the io thread what a scan's result changes (the pinned sources, the
// cron rows of the schedules modules declare, the entries methods read).
#include "gateway/catalog.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "gateway/cron.h"
#include "gateway/gateway_internal.h"

namespace smithers::gateway {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Catalog::Catalog(std::string dir, script::ModuleOptions module_options, Clock& clock,
                 std::function<void(Json)> log)
    : dir_(std::move(dir)),
      module_options_(std::move(module_options)),
      clock_(clock),
      log_(std::move(log)) {}

Catalog::~Catalog() { Stop(); }

Result<std::vector<ModuleFile>> ListModuleFiles(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return InvalidArgumentError("cannot read the folder \"" + dir + "\"");
  std::vector<ModuleFile> found;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 4) != ".lua") continue;
    std::string path = (!dir.empty() && dir.back() == '/' ? dir : dir + "/") + name;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    found.push_back({.key = name.substr(0, name.size() - 4),
                     .path = std::move(path),
                     .mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                     .size = st.st_size});
  }
  closedir(d);
  std::sort(found.begin(), found.end(),
            [](const ModuleFile& a, const ModuleFile& b) { return a.path < b.path; });
  return found;
}

CatalogScan Catalog::ScanNow() {
  CatalogScan scan;
  Result<std::vector<ModuleFile>> files = ListModuleFiles(dir_);
  if (!files.ok()) {
    scan.entries = entries_;
    return scan;
  }
  scan.changed = !scanned_once_;
  for (const ModuleFile& file : *files) {
    const std::string& key = file.key;
    const std::string& path = file.path;
    const int64_t mtime_ns = file.mtime_ns;
    auto old = entries_.find(key);
    if (old != entries_.end() && old->second.mtime_ns == mtime_ns &&
        old->second.size == file.size) {
      scan.entries[key] = old->second;
      continue;
    }
    char resolved[4096];
    std::string source = ReadFile(path);
    WorkflowEntry w{.key = key,
                    .path = realpath(path.c_str(), resolved) != nullptr ? resolved : path,
                    .revision = base::Sha256Hex(source),
                    .mtime_ns = mtime_ns,
                    .size = file.size,
                    .loaded_at_ms = clock_.NowMs()};
    if (old != entries_.end() && old->second.revision == w.revision) {
      w.schedule = old->second.schedule;  // touched, not changed
      w.error = old->second.error;
      w.loaded_at_ms = old->second.loaded_at_ms;
    } else {
      LoadEntry(w, source, scan.loaded);
      scan.changed = true;
      if (old != entries_.end()) {
        log_({{"event", "workflow.reloaded"}, {"workflow", key}, {"revision", w.revision}});
      }
    }
    scan.entries[key] = std::move(w);
  }
  for (const auto& [key, w] : entries_) scan.changed = scan.changed || scan.entries.count(key) == 0;
  entries_ = scan.entries;
  scanned_once_ = true;
  return scan;
}

// A new or changed module is loaded once here: its source is pinned by
// revision (a run that starts with it, or resumes later, runs that code
// whatever the file holds then) and its declared schedule is recorded.
void Catalog::LoadEntry(WorkflowEntry& w, const std::string& source,
                        std::vector<ModuleSource>& loaded) {
  Result<std::unique_ptr<script::LuaWorkflow>> module =
      script::LoadWorkflowModuleSource(w.path, source, {}, module_options_);
  if (!module.ok()) {
    w.error = module.status().message();
    log_({{"event", "workflow.load_failed"}, {"workflow", w.key}, {"error", w.error}});
    return;
  }
  // An unknown prop or component in what it renders for an empty input is
  // shown now (listWorkflows), not first at a launch.
  if (Status checked = (*module)->CheckComponents(Json::object()); !checked.ok()) {
    w.error = checked.message();
    log_({{"event", "workflow.load_failed"}, {"workflow", w.key}, {"error", w.error}});
    return;
  }
  // The revision covers the siblings it required (LuaWorkflow::source()).
  w.revision = (*module)->definition().source_hash;
  loaded.push_back({.revision = w.revision,
                    .path = w.path,
                    .source = source,
                    .created_at_ms = clock_.NowMs(),
                    .siblings = (*module)->siblings()});
  w.schedule = (*module)->schedule();
  if (w.schedule) {
    Result<CronSchedule> parsed = ParseCron(w.schedule->cron, w.schedule->time_zone);
    if (!parsed.ok()) {
      w.error = "schedule: " + parsed.status().message();
      log_({{"event", "workflow.schedule_invalid"}, {"workflow", w.key}, {"error", w.error}});
    }
  }
}

void Catalog::Start(PublishFn publish) {
  publish_ = std::move(publish);
  thread_ = std::thread([this] { Loop(); });
}

void Catalog::RequestScan(std::function<void()> then) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    requested_ = true;
    if (then) waiting_.push_back(std::move(then));
  }
  cv_.notify_one();
}

void Catalog::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Catalog::Loop() {
  for (;;) {
    std::vector<std::function<void()>> answered;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return requested_ || stopping_; });
      if (stopping_) return;
      requested_ = false;
      answered.swap(waiting_);
      scanning_ = true;
    }
    CatalogScan scan = ScanNow();
    scanning_ = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    if (scan.changed || !answered.empty()) publish_(std::move(scan), std::move(answered));
  }
}

// ---- the io thread's side ----

void Gateway::ScanWorkflows() { catalog_.RequestScan(); }

void Gateway::RefreshCatalog(std::function<void()> then) { catalog_.RequestScan(std::move(then)); }

void Gateway::ApplyScan(CatalogScan scan) {
  for (const ModuleSource& m : scan.loaded) {
    Status pinned = store_->PutModuleSource(m);
    if (!pinned.ok()) {
      Log({{"event", "workflow.pin_failed"}, {"path", m.path}, {"error", pinned.message()}});
    }
  }
  workflows_ = std::move(scan.entries);
  if (scan.changed) SyncSchedules();
}

// One row `gateway:<key>` per module that declares a schedule (SPEC 5.8). A
// changed schedule replaces the row (next fire from now); an unchanged one
// keeps it, so a slot missed while the Gateway was down still fires once. A
// module that no longer declares one, or is gone, loses its row; a module
// that fails to load keeps the row it had.
void Gateway::SyncSchedules() {
  Result<std::vector<CronRecord>> rows = store_->ListCron();
  if (!rows.ok()) return;
  std::map<std::string, CronRecord> existing;
  for (CronRecord& c : *rows) {
    if (c.cron_id.rfind("gateway:", 0) == 0) existing[c.cron_id] = std::move(c);
  }
  int64_t now = clock_.NowMs();
  for (const auto& [key, w] : workflows_) {
    std::string id = "gateway:" + key;
    auto old = existing.find(id);
    if (!w.error.empty()) {
      if (old != existing.end()) existing.erase(old);  // keep it as it is
      continue;
    }
    if (!w.schedule) continue;  // deleted below if it has a row
    const script::ModuleSchedule& s = *w.schedule;
    if (old != existing.end()) {
      const CronRecord& c = old->second;
      bool same = c.workflow == key && c.pattern == s.cron && c.time_zone == s.time_zone &&
                  c.input == s.input && c.enabled == s.enabled;
      existing.erase(old);
      if (same) continue;
    }
    Result<CronSchedule> parsed = ParseCron(s.cron, s.time_zone);
    if (!parsed.ok()) continue;  // LoadEntry recorded the error
    CronRecord c{.cron_id = id,
                 .workflow = key,
                 .pattern = s.cron,
                 .time_zone = s.time_zone,
                 .input = s.input,
                 .enabled = s.enabled,
                 .created_at_ms = now,
                 .next_run_at_ms = s.enabled ? parsed->NextAfterMs(now) : 0};
    // A module's declared schedule, written by the Gateway as it loads it.
    Status put = store_->Audited(
        SystemAudit("cron.create", id,
                    {{"workflow", key}, {"pattern", s.cron}, {"declaredBy", "module"}}),
        [&] { return store_->PutCron(c); });
    Log({{"event", "cron.declared"},
         {"cronId", id},
         {"pattern", s.cron},
         {"timeZone", s.time_zone},
         {"ok", put.ok()}});
  }
  for (const auto& [id, c] : existing) {
    Status gone = store_->Audited(SystemAudit("cron.delete", id, {{"declaredBy", "module"}}),
                                  [&, &cron_id = id] { return store_->DeleteCron(cron_id); });
    if (gone.ok()) Log({{"event", "cron.removed"}, {"cronId", id}});
  }
}

std::string Gateway::WorkflowKey(const std::string& path) const {
  for (const auto& [k, w] : workflows_) {
    if (w.path == path) return k;
  }
  return "";
}

// A run as the list and get methods return it: its record, its workflow's
// key, and Smithers' `system` flag (no workflow of a folder is a system one).
Json Gateway::RunSummary(RunRecord run) {
  std::string key = WorkflowKey(run.workflow_path);
  Json j = RunRecordJson(std::move(run));
  j["workflowKey"] = key.empty() ? Json() : Json(key);
  j["system"] = false;
  return j;
}

}  // namespace smithers::gateway
