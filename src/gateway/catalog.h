// The workflow catalog: the modules of the workflows folder, each loaded
// once when it appears or changes. Loading a module runs its code (up to
// ModuleOptions::max_render_ms when restricted), so scans run on the
// catalog's own thread, never on the Gateway's io thread: a scan hands its
// result to the io thread (Start's `publish`), which pins the sources it
// loaded and records the schedules they declare (Gateway::ApplyScan).
#ifndef SMITHERS_GATEWAY_CATALOG_H_
#define SMITHERS_GATEWAY_CATALOG_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "script/lua_workflow.h"
#include "smithers/clock.h"
#include "smithers/json.h"
#include "smithers/store.h"

namespace smithers::gateway {

struct WorkflowEntry {
  std::string key;
  std::string path;
  std::string revision;  // SHA-256 of the source
  int64_t mtime_ns = 0;
  int64_t size = 0;
  int64_t loaded_at_ms = 0;
  std::optional<script::ModuleSchedule> schedule;  // declared by the module
  std::string error;  // why the module failed to load, or its schedule is invalid
};

using WorkflowEntries = std::map<std::string, WorkflowEntry>;

// One workflow module file of a folder.
struct ModuleFile {
  std::string key;   // the file name without ".lua"
  std::string path;  // dir/name
  int64_t mtime_ns = 0;
  int64_t size = 0;
};

// The workflow modules a Gateway with `--workflows dir` serves: the regular
// *.lua files of `dir` (not of its subfolders), sorted by name. Catalog
// scans, `smithers check FOLDER` and `smithers doctor` list them here.
// InvalidArgument when the folder cannot be read.
Result<std::vector<ModuleFile>> ListModuleFiles(const std::string& dir);

// What one scan found.
struct CatalogScan {
  WorkflowEntries entries;  // by key (the file name without ".lua")
  // Sources loaded by this scan, to pin by revision (Store::PutModuleSource).
  std::vector<ModuleSource> loaded;
  bool changed = false;  // a module appeared, changed, or went away
};

class Catalog {
 public:
  // Called on the catalog's thread after a scan: the scan, and the `then`s
  // of the RequestScan calls it answers.
  using PublishFn = std::function<void(CatalogScan, std::vector<std::function<void()>>)>;

  Catalog(std::string dir, script::ModuleOptions module_options, Clock& clock,
          std::function<void(Json)> log);
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // One scan on the caller's thread (the Gateway's start, before Start).
  CatalogScan ScanNow();
  // Starts the catalog's thread.
  void Start(PublishFn publish);
  // Asks for a scan soon (thread-safe). `then`, if set, is published with
  // the first scan that starts after this call: a file written before the
  // call is in it. Requests made while a scan runs share the next one.
  void RequestScan(std::function<void()> then = nullptr);
  // Stops and joins the thread; a scan in progress finishes first and is
  // not published. Idempotent.
  void Stop();
  // Whether the thread is scanning (loading modules) now.
  bool busy() const { return scanning_.load(); }

 private:
  void Loop();
  // Loads a new or changed module into `w`; its source goes to `loaded`.
  void LoadEntry(WorkflowEntry& w, const std::string& source, std::vector<ModuleSource>& loaded);

  const std::string dir_;
  const script::ModuleOptions module_options_;
  Clock& clock_;
  const std::function<void(Json)> log_;
  WorkflowEntries entries_;  // the last scan's; only the scanning thread touches it
  bool scanned_once_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::atomic<bool> scanning_{false};
  std::vector<std::function<void()>> waiting_;  // guarded by mu_
  PublishFn publish_;
  std::thread thread_;
};

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_CATALOG_H_
