// Applying a sandbox's file changes to the host workspace, all or none,
// also across a crash (docs/sandbox.md "Applying changes"). Every change
// is checked first (its path relative and free of links inside the
// workspace, the file still as the worker saw it); the new contents are
// written aside and a journal is committed; then each file is renamed in.
// A crash before the journal's commit changed nothing; after it,
// RecoverApply finishes the job. Nothing is ever written through a
// symlink or outside the workspace.
//
//   std::vector<sandbox::FileChange> changes = {
//       {.path = "src/a.c", .operation = "modify", .content = text,
//        .base_sha256 = Sha256Hex(what_was_shipped)}};
//   Status s = sandbox::ApplyChanges("/work/repo", changes, journal_dir);
//   // FailedPrecondition listing the conflicts: nothing was changed
#ifndef SMITHERS_SANDBOX_APPLY_H_
#define SMITHERS_SANDBOX_APPLY_H_

#include <functional>
#include <string>
#include <vector>

#include "smithers/status.h"

namespace smithers::sandbox {

struct FileChange {
  std::string path;       // workspace-relative (CheckBundlePath)
  std::string operation;  // add, modify, delete
  std::string content;    // add, modify: the new bytes
  // modify, delete: the SHA-256 (hex) the file must have now; add: the
  // file must not exist.
  std::string base_sha256;
};

// Applies `changes` to `workspace` (absolute), staging in `journal_dir`
// (absolute, made if missing, outside the workspace or inside .smithers/;
// one apply at a time per folder). InvalidArgument for a bad path or
// operation, or a path through a symlink; FailedPrecondition naming every
// file that is not as expected, or when an earlier apply's journal is
// still there (RecoverApply first). Nothing is changed unless all is.
// `after_step` (tests) is called after each durable step with its number.
Status ApplyChanges(const std::string& workspace, const std::vector<FileChange>& changes,
                    const std::string& journal_dir,
                    const std::function<void(int step)>& after_step = nullptr);

// Whether `changes` are all in effect in `workspace` already (every added
// or modified file has its new content, every deleted one is gone): an
// apply that finished before a crash. Errors as ApplyChanges' checks.
Result<bool> AlreadyApplied(const std::string& workspace, const std::vector<FileChange>& changes);

// Finishes an apply that was interrupted after its commit (a journal in
// `journal_dir`); does nothing when there is none. Idempotent.
Status RecoverApply(const std::string& workspace, const std::string& journal_dir);

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_APPLY_H_
