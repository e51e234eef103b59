// Frames: the rendered tree of every render, stored compactly. See
// docs/frame_format.md for the format.
#ifndef SMITHERS_CORE_FRAME_CODEC_H_
#define SMITHERS_CORE_FRAME_CODEC_H_

#include <string>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "smithers/status.h"
#include "smithers/workflow.h"

namespace smithers::core {

// The tree as canonical lines: one compact JSON object per node, depth first.
std::vector<std::string> TreeLines(const Node& root);

struct EncodedFrame {
  std::string encoding;  // "keyframe" or "delta"
  std::string data;      // JSON text
  std::string hash;      // SHA-256 of the full tree's lines
};

// Encodes successive frames of one run as deltas of the previous frame, with a
// keyframe whenever the deltas since the last keyframe would outweigh a full
// copy. That bounds storage to about twice the sum of the changes.
class FrameEncoder {
 public:
  // Continues after a frame decoded from storage (on resume).
  void Reset(std::vector<std::string> lines, size_t delta_bytes_since_keyframe);
  EncodedFrame Encode(std::vector<std::string> lines);
  const std::vector<std::string>& lines() const { return lines_; }
  bool has_previous() const { return has_previous_; }

 private:
  // HashLines(lines), resuming from the last checkpoint within the first
  // `prefix` lines (those equal to the previous frame's).
  std::string Hash(const std::vector<std::string>& lines, size_t prefix);

  std::vector<std::string> lines_;
  bool has_previous_ = false;
  size_t delta_bytes_ = 0;
  // The hash's state after lines_[0 .. (k + 1) * kHashEvery), for each k: a
  // render changes the tail of a growing tree, so most of a frame's hash is
  // the previous frame's.
  static constexpr size_t kHashEvery = 16;
  std::vector<base::Sha256> checkpoints_;
};

// Rebuilds the lines of the last of `frames` ((encoding, data) in frame order,
// starting at or before a keyframe). DataLoss on a malformed frame.
Result<std::vector<std::string>> DecodeFrames(
    const std::vector<std::pair<std::string, std::string>>& frames);

std::string HashLines(const std::vector<std::string>& lines);

}  // namespace smithers::core

#endif  // SMITHERS_CORE_FRAME_CODEC_H_
