#include "smithers/store.h"

namespace smithers {

void WriteBatch::UpsertRun(RunRecord run) {
  ops_.push_back(Op{.kind = Op::Kind::kRun, .run = std::move(run)});
}
void WriteBatch::UpsertNode(NodeRecord node) {
  ops_.push_back(Op{.kind = Op::Kind::kNode, .node = std::move(node)});
}
void WriteBatch::UpsertAttempt(AttemptRecord attempt) {
  ops_.push_back(Op{.kind = Op::Kind::kAttempt, .attempt = std::move(attempt)});
}
void WriteBatch::PutOutput(OutputRecord output) {
  ops_.push_back(Op{.kind = Op::Kind::kOutput, .output = std::move(output)});
}
void WriteBatch::PutFrame(FrameRecord frame) {
  ops_.push_back(Op{.kind = Op::Kind::kFrame, .frame = std::move(frame)});
}
void WriteBatch::UpsertLoop(LoopRecord loop) {
  ops_.push_back(Op{.kind = Op::Kind::kLoop, .loop = std::move(loop)});
}
void WriteBatch::AppendEvent(std::string run_id, std::string type, Json payload,
                             int64_t timestamp_ms) {
  Op op{.kind = Op::Kind::kEvent};
  op.event.run_id = std::move(run_id);
  op.event.type = std::move(type);
  op.event.payload = std::move(payload);
  op.event.timestamp_ms = timestamp_ms;
  ops_.push_back(std::move(op));
}

}  // namespace smithers
