// Line diffs of a Sandbox's changes, for its review: the counts an approver
// sees in the request, and the unified diff `smithers diff` prints (the
// format `diff -u` and `git apply` read).
//
//   sandbox::LineDiff d = sandbox::DiffLines(old_text, new_text);
//   d.added, d.removed;                    // lines
//   std::string text = sandbox::UnifiedDiff(old_text, new_text, "a/src/x.c", "b/src/x.c");
#ifndef SMITHERS_SANDBOX_DIFF_H_
#define SMITHERS_SANDBOX_DIFF_H_

#include <cstdint>
#include <string>
#include <vector>

namespace smithers::sandbox {

// One line of an edit script: kept, removed from the old text, or added.
struct DiffOp {
  enum Kind { kKeep, kRemove, kAdd } kind;
  int64_t old_line;  // 0-based, for kKeep and kRemove
  int64_t new_line;  // 0-based, for kKeep and kAdd
};

struct LineDiff {
  std::vector<DiffOp> ops;
  int64_t added = 0;
  int64_t removed = 0;
  // Past the work bound (very long files with many changes): the script
  // removes every old line and adds every new one.
  bool whole = false;
  bool binary = false;  // either text has a NUL: no lines are compared
};

// A shortest edit script between the lines of `a` and `b` (Myers), with the
// common head and tail taken off first.
LineDiff DiffLines(const std::string& a, const std::string& b);

// The unified diff (3 lines of context) from `a` to `b` under the labels;
// "" when they are equal. A binary file is one line, "Binary files ... differ".
// A text without a final newline is marked "\ No newline at end of file".
std::string UnifiedDiff(const std::string& a, const std::string& b, const std::string& label_a,
                        const std::string& label_b);

}  // namespace smithers::sandbox

#endif  // SMITHERS_SANDBOX_DIFF_H_
