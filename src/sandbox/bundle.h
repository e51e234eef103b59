// A sandbox worker's result bundle (docs/sandbox.md "Result bundles"). The
// worker is untrusted, so its bundle is data to check, never paths to
// follow: ReadResultBundle walks it without following anything, refuses
// what a bundle may not hold, and only then returns what it says.
//
//   Result<sandbox::ResultBundle> b = sandbox::ReadResultBundle(dir);
//   if (!b.ok()) ... fail the task with b.status().message(), change nothing
//   for (const BundlePatch& p : b->patches) ... p.path (checked), p.file
//
// Layout, under `dir`:
//   README.md            the manifest, one JSON object:
//                        {"status": "finished" | "failed" | "cancelled",
//                         "outputs": {...}, "runId": "...",
//                         "patches": [{"path": "src/a.c", "operation":
//                                      "add" | "modify" | "delete",
//                                      "file": "patches/0001.patch"}]}
//   patches/             one file per added or modified path
//   artifacts/           anything, listed by path
//   logs/stream.ndjson   the worker's log
#ifndef SMITHERS_SANDBOX_BUNDLE_H_
#define SMITHERS_SANDBOX_BUNDLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers::sandbox {

// Smithers' limits (SPEC §7), each configurable.
struct BundleLimits {
  int64_t max_bundle_bytes = 100 << 20;  // every file's bytes together
  int64_t max_manifest_bytes = 5 << 20;  // README.md
  int max_patches = 1000;                // entries, and files under patches/
  int max_entries = 20000;               // files and folders walked
  int max_folder_depth = 32;
  size_t max_path_length = 1024;
  size_t max_run_id_length = 256;
  int max_output_depth = 16;
  size_t max_output_array = 512;
  size_t max_output_string = 64 << 10;
};

struct BundlePatch {
  std::string path;       // the workspace file it changes: relative, checked
  std::string operation;  // add, modify, delete
  std::string file;       // the bundle's file with the new content ("" for delete)
};

struct ResultBundle {
  std::string status;
  Json outputs = Json::object();
  std::string run_id;
  std::string error;  // why, when status is failed
  std::vector<BundlePatch> patches;
  std::vector<std::string> artifacts;  // bundle-relative, sorted
  int64_t bytes = 0;                   // every file's bytes
};

// The validated bundle at `dir`; InvalidArgument naming the first thing
// wrong: a symlink, a hard link, a device, fifo or socket anywhere; an
// entry outside README.md, patches/, artifacts/ and logs/; a limit passed;
// a manifest that is not the JSON above; a patch whose path is absolute,
// has a ".." or "." part, or whose file is not a file under patches/.
// NotFound when `dir` or its README.md is missing.
Result<ResultBundle> ReadResultBundle(const std::string& dir, const BundleLimits& limits = {});

// A path a bundle may name: relative, at most `max_length` bytes, no empty,
// "." or ".." part, no NUL, no backslash. InvalidArgument saying why.
Status CheckBundlePath(const std::string& path, size_t max_length);

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_BUNDLE_H_
