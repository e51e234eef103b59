#include "core/frame_codec.h"

#include <algorithm>
#include <charconv>
#include <string_view>

#include "base/hash.h"
#include "core/frame_line.h"
#include "core/task_modes.h"

namespace smithers::core {
namespace {

// `line` is scratch, cleared for each node.
void AddLines(const Node& node, int depth, FrameLine& line, std::vector<std::string>& out) {
  line.Clear();
  line["d"] = depth;
  line["k"] = NodeKindName(node.kind);
  if (!node.id.empty()) line["id"] = node.id;
  if (node.skip) line["skipIf"] = true;
  switch (node.kind) {
    case NodeKind::kParallel:
      if (node.max_concurrency > 0) line["maxConcurrency"] = node.max_concurrency;
      break;
    case NodeKind::kLoop:
      line["until"] = node.until;
      line["maxIterations"] = node.max_iterations;
      line["onMaxReached"] = node.on_max_reached;
      break;
    case NodeKind::kBranch: line["if"] = node.condition; break;
    case NodeKind::kTask: {
      const TaskSpec& t = node.task;
      line["output"] = t.output;
      const TaskModeTraits& mode = Traits(t.mode);
      line["mode"] = mode.frame_name;
      if (mode.frame_fields != nullptr) mode.frame_fields(t, line);
      if (t.approval) {
        line["approval"] = {{"owner", t.approval->owner}, {"onDeny", t.approval->on_deny}};
        if (t.mode != TaskMode::kApproval) line["needsApproval"] = true;
      }
      if (t.retries > 0) line["retries"] = t.retries;
      if (t.timeout_ms > 0) line["timeoutMs"] = t.timeout_ms;
      if (t.continue_on_fail) line["continueOnFail"] = true;
      if (!t.label.empty()) line["label"] = t.label;
      if (t.deps) {  // absent without dependencies: those lines stay as they were
        if (!t.deps->depends_on.empty()) line["dependsOn"] = t.deps->depends_on;
        if (!t.deps->rows.empty()) {
          Json rows = Json::object();
          for (const auto& [key, dep] : t.deps->rows) {
            rows[key] = {{"id", dep.task_id}, {"output", dep.output}};
          }
          line["deps"] = rows;  // written out at once: nothing to move
        }
        if (t.deps->optional) line["depsOptional"] = true;
      }
      break;
    }
    default: break;
  }
  out.push_back(line.Dump());
  for (const Node& child : node.children) AddLines(child, depth + 1, line, out);
}

std::string JoinArray(const std::vector<std::string>& lines, size_t from, size_t to) {
  std::string s = "[";
  for (size_t i = from; i < to; ++i) {
    if (i > from) s += ",";
    s += lines[i];
  }
  return s + "]";
}

}  // namespace

std::vector<std::string> TreeLines(const Node& root) {
  std::vector<std::string> out;
  FrameLine line;
  AddLines(root, 0, line, out);
  return out;
}

namespace {

// A frame's hash covers each line and its '\n' (HashLines, FrameEncoder).
void HashLine(base::Sha256& h, const std::string& line) {
  h.Update(line);
  h.Update("\n");
}

}  // namespace

std::string HashLines(const std::vector<std::string>& lines) {
  base::Sha256 h;
  for (const auto& l : lines) HashLine(h, l);
  return h.HexDigest();
}

void FrameEncoder::Reset(std::vector<std::string> lines, size_t delta_bytes_since_keyframe) {
  lines_ = std::move(lines);
  checkpoints_.clear();  // they describe the lines this encoder hashed
  has_previous_ = true;
  delta_bytes_ = delta_bytes_since_keyframe;
}

std::string FrameEncoder::Hash(const std::vector<std::string>& lines, size_t prefix) {
  size_t keep = std::min(checkpoints_.size(), prefix / kHashEvery);
  checkpoints_.erase(checkpoints_.begin() + static_cast<std::ptrdiff_t>(keep), checkpoints_.end());
  base::Sha256 h = keep > 0 ? checkpoints_.back() : base::Sha256();
  for (size_t i = keep * kHashEvery; i < lines.size(); ++i) {
    HashLine(h, lines[i]);
    if ((i + 1) % kHashEvery == 0) checkpoints_.push_back(h);
  }
  return h.HexDigest();
}

EncodedFrame FrameEncoder::Encode(std::vector<std::string> lines) {
  EncodedFrame f;
  const size_t max_common = has_previous_ ? std::min(lines_.size(), lines.size()) : 0;
  size_t prefix = 0;  // lines equal to the previous frame's, from the start
  while (prefix < max_common && lines_[prefix] == lines[prefix]) ++prefix;
  f.hash = Hash(lines, prefix);
  // The keyframe's size, without building it: most frames are small deltas.
  size_t full_size =
      std::string_view("{\"lines\":[]}").size() + (lines.empty() ? 0 : lines.size() - 1);
  for (const auto& l : lines) full_size += l.size();
  if (has_previous_) {
    size_t suffix = 0;
    while (suffix < max_common - prefix &&
           lines_[lines_.size() - 1 - suffix] == lines[lines.size() - 1 - suffix]) {
      ++suffix;
    }
    std::string delta = "{\"prefix\":" + std::to_string(prefix) +
                        ",\"suffix\":" + std::to_string(suffix) +
                        ",\"insert\":" + JoinArray(lines, prefix, lines.size() - suffix) + "}";
    if (delta_bytes_ + delta.size() <= full_size) {
      delta_bytes_ += delta.size();
      f.encoding = "delta";
      f.data = std::move(delta);
      lines_ = std::move(lines);
      return f;
    }
  }
  f.encoding = "keyframe";
  f.data = "{\"lines\":" + JoinArray(lines, 0, lines.size()) + "}";
  lines_ = std::move(lines);
  has_previous_ = true;
  delta_bytes_ = 0;
  return f;
}

Result<std::vector<std::string>> DecodeFrames(
    const std::vector<std::pair<std::string, std::string>>& frames) {
  std::vector<std::string> lines;
  bool have_key = false;
  for (const auto& [encoding, data] : frames) {
    Json j = Json::parse(data, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return DataLossError("malformed frame: " + data);
    if (encoding == "keyframe") {
      if (!j.contains("lines") || !j["lines"].is_array()) {
        return DataLossError("keyframe without lines");
      }
      lines.clear();
      for (const auto& l : j["lines"]) lines.push_back(l.dump());
      have_key = true;
    } else if (encoding == "delta") {
      if (!have_key) return DataLossError("delta frame before any keyframe");
      if (!j.contains("prefix") || !j.contains("suffix") || !j.contains("insert") ||
          !j["prefix"].is_number_unsigned() || !j["suffix"].is_number_unsigned() ||
          !j["insert"].is_array()) {
        return DataLossError("malformed delta frame: " + data);
      }
      size_t prefix = j["prefix"].get<size_t>();
      size_t suffix = j["suffix"].get<size_t>();
      if (prefix + suffix > lines.size()) return DataLossError("delta frame out of range");
      std::vector<std::string> next(lines.begin(), lines.begin() + static_cast<long>(prefix));
      for (const auto& l : j["insert"]) next.push_back(l.dump());
      next.insert(next.end(), lines.end() - static_cast<long>(suffix), lines.end());
      lines = std::move(next);
    } else {
      return DataLossError("unknown frame encoding \"" + encoding + "\"");
    }
  }
  return lines;
}

}  // namespace smithers::core
