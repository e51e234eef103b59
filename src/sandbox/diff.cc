#include "sandbox/diff.h"

#include <algorithm>
#include <string_view>

namespace smithers::sandbox {
namespace {

// The work bound: edit scripts longer than this many steps are reported
// whole (its trace is d^2 / 2 integers: 8 MB at 2,048).
constexpr int64_t kMaxEdits = 2048;
constexpr int64_t kContext = 3;

// The lines of `s`, each with its '\n' (the last may have none).
std::vector<std::string_view> Lines(const std::string& s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t nl = s.find('\n', start);
    size_t end = nl == std::string::npos ? s.size() : nl + 1;
    out.emplace_back(s.data() + start, end - start);
    start = end;
  }
  return out;
}

// Myers' O((N+M)D) search over the middle part [lo, a_hi) x [lo, b_hi),
// appending its script to `ops`; false past kMaxEdits.
bool Middle(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b,
            int64_t lo, int64_t a_hi, int64_t b_hi, std::vector<DiffOp>& ops) {
  const int64_t n = a_hi - lo;
  const int64_t m = b_hi - lo;
  const int64_t max = std::min(n + m, kMaxEdits);
  const int64_t off = max + 1;
  std::vector<int64_t> v(static_cast<size_t>(2 * off + 1), 0);
  std::vector<std::vector<int64_t>> trace;  // v[-d..d] before step d
  int64_t found = -1;
  for (int64_t d = 0; d <= max && found < 0; ++d) {
    trace.emplace_back(v.begin() + (off - d), v.begin() + (off + d + 1));
    for (int64_t k = -d; k <= d; k += 2) {
      int64_t x = (k == -d || (k != d && v[off + k - 1] < v[off + k + 1])) ? v[off + k + 1]
                                                                           : v[off + k - 1] + 1;
      int64_t y = x - k;
      while (x < n && y < m && a[lo + x] == b[lo + y]) ++x, ++y;
      v[off + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
  }
  if (found < 0) return false;
  // Back from (n, m) through the saved rows.
  std::vector<DiffOp> rev;
  int64_t x = n;
  int64_t y = m;
  for (int64_t d = found; d > 0; --d) {
    const std::vector<int64_t>& row = trace[d];  // v[-d..d] as it was before step d
    auto at = [&row, d](int64_t k) { return row[k + d]; };
    int64_t k = x - y;
    bool down = k == -d || (k != d && at(k - 1) < at(k + 1));
    int64_t prev_k = down ? k + 1 : k - 1;
    int64_t prev_x = at(prev_k);
    int64_t prev_y = prev_x - prev_k;
    while (x > prev_x + (down ? 0 : 1) && y > prev_y + (down ? 1 : 0)) {
      --x, --y;
      rev.push_back({DiffOp::kKeep, lo + x, lo + y});
    }
    if (down) {
      --y;
      rev.push_back({DiffOp::kAdd, -1, lo + y});
    } else {
      --x;
      rev.push_back({DiffOp::kRemove, lo + x, -1});
    }
  }
  while (x > 0 && y > 0) {
    --x, --y;
    rev.push_back({DiffOp::kKeep, lo + x, lo + y});
  }
  ops.insert(ops.end(), rev.rbegin(), rev.rend());
  return true;
}

void Count(LineDiff& d) {
  for (const DiffOp& op : d.ops) {
    d.added += op.kind == DiffOp::kAdd ? 1 : 0;
    d.removed += op.kind == DiffOp::kRemove ? 1 : 0;
  }
}

std::string Range(int64_t start, int64_t count) {
  // GNU's form: a one-line range is its line; an empty one names the line before.
  if (count == 1) return std::to_string(start + 1);
  return std::to_string(count == 0 ? start : start + 1) + "," + std::to_string(count);
}

void Line(std::string& out, char sign, std::string_view line) {
  out += sign;
  out.append(line);
  if (line.empty() || line.back() != '\n') out += "\n\\ No newline at end of file\n";
}

}  // namespace

LineDiff DiffLines(const std::string& a, const std::string& b) {
  LineDiff d;
  if (a.find('\0') != std::string::npos || b.find('\0') != std::string::npos) {
    d.binary = true;
    return d;
  }
  std::vector<std::string_view> la = Lines(a);
  std::vector<std::string_view> lb = Lines(b);
  auto n = static_cast<int64_t>(la.size());
  auto m = static_cast<int64_t>(lb.size());
  int64_t head = 0;
  while (head < n && head < m && la[head] == lb[head]) ++head;
  int64_t tail = 0;
  while (tail < n - head && tail < m - head && la[n - 1 - tail] == lb[m - 1 - tail]) ++tail;
  for (int64_t i = 0; i < head; ++i) d.ops.push_back({DiffOp::kKeep, i, i});
  if (!Middle(la, lb, head, n - tail, m - tail, d.ops)) {
    d.whole = true;
    for (int64_t i = head; i < n - tail; ++i) d.ops.push_back({DiffOp::kRemove, i, -1});
    for (int64_t j = head; j < m - tail; ++j) d.ops.push_back({DiffOp::kAdd, -1, j});
  }
  for (int64_t i = 0; i < tail; ++i) {
    d.ops.push_back({DiffOp::kKeep, n - tail + i, m - tail + i});
  }
  Count(d);
  return d;
}

std::string UnifiedDiff(const std::string& a, const std::string& b, const std::string& label_a,
                        const std::string& label_b) {
  if (a == b) return "";
  LineDiff d = DiffLines(a, b);
  if (d.binary) return "Binary files " + label_a + " and " + label_b + " differ\n";
  std::vector<std::string_view> la = Lines(a);
  std::vector<std::string_view> lb = Lines(b);
  std::string out = "--- " + label_a + "\n+++ " + label_b + "\n";
  const auto& ops = d.ops;
  const auto total = static_cast<int64_t>(ops.size());
  int64_t i = 0;
  while (i < total) {
    while (i < total && ops[i].kind == DiffOp::kKeep) ++i;
    if (i == total) break;
    // A hunk: from kContext kept lines before the change to kContext after
    // the last change that follows within 2 * kContext kept lines.
    int64_t begin = std::max<int64_t>(0, i - kContext);
    int64_t end = i;
    while (true) {
      while (end < total && ops[end].kind != DiffOp::kKeep) ++end;
      int64_t keep = end;
      while (keep < total && ops[keep].kind == DiffOp::kKeep) ++keep;
      if (keep < total && keep - end <= 2 * kContext) {
        end = keep;
        continue;
      }
      end = std::min(total, end + kContext);
      break;
    }
    int64_t old_start = -1;
    int64_t new_start = -1;
    int64_t old_count = 0;
    int64_t new_count = 0;
    for (int64_t j = begin; j < end; ++j) {
      const DiffOp& op = ops[j];
      if (op.kind != DiffOp::kAdd) {
        if (old_start < 0) old_start = op.old_line;
        ++old_count;
      }
      if (op.kind != DiffOp::kRemove) {
        if (new_start < 0) new_start = op.new_line;
        ++new_count;
      }
    }
    // An empty side starts after the lines that come before the hunk.
    auto before = [&](bool old_side) {
      int64_t n = 0;
      for (int64_t j = 0; j < begin; ++j) {
        n += (old_side ? ops[j].kind != DiffOp::kAdd : ops[j].kind != DiffOp::kRemove) ? 1 : 0;
      }
      return n;
    };
    if (old_start < 0) old_start = before(true);
    if (new_start < 0) new_start = before(false);
    out += "@@ -" + Range(old_start, old_count) + " +" + Range(new_start, new_count) + " @@\n";
    for (int64_t j = begin; j < end; ++j) {
      const DiffOp& op = ops[j];
      switch (op.kind) {
        case DiffOp::kKeep: Line(out, ' ', la[op.old_line]); break;
        case DiffOp::kRemove: Line(out, '-', la[op.old_line]); break;
        case DiffOp::kAdd: Line(out, '+', lb[op.new_line]); break;
      }
    }
    i = end;
  }
  return out;
}

}  // namespace smithers::sandbox
