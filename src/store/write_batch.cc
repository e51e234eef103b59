#include <memory>
#include <new>
#include <utility>

#include "smithers/store.h"

namespace smithers {

using Op = WriteBatch::Op;

Op::Op(RunRecord r) : kind(Kind::kRun), run(std::make_unique<RunRecord>(std::move(r))) {}
Op::Op(NodeRecord r) : kind(Kind::kNode), node(std::move(r)) {}
Op::Op(AttemptRecord r) : kind(Kind::kAttempt), attempt(std::move(r)) {}
Op::Op(OutputRecord r) : kind(Kind::kOutput), output(std::move(r)) {}
Op::Op(FrameRecord r) : kind(Kind::kFrame), frame(std::move(r)) {}
Op::Op(LoopRecord r) : kind(Kind::kLoop), loop(std::move(r)) {}
Op::Op(EventRecord r) : kind(Kind::kEvent), event(std::move(r)) {}
Op::Op(CacheEntry r) : kind(Kind::kCache), cache(std::move(r)) {}
Op::Op(ApprovalRecord r)
    : kind(Kind::kApproval), approval(std::make_unique<ApprovalRecord>(std::move(r))) {}
Op::Op(SignalRecord r)
    : kind(Kind::kSignal), signal(std::make_unique<SignalRecord>(std::move(r))) {}
Op::Op(SandboxRecord r)
    : kind(Kind::kSandbox), sandbox(std::make_unique<SandboxRecord>(std::move(r))) {}

namespace {

// A boxed record: copied into a new box, or the box moved.
template <typename T>
std::unique_ptr<T> Box(const std::unique_ptr<T>& p) {
  return std::make_unique<T>(*p);
}
template <typename T>
std::unique_ptr<T> Box(std::unique_ptr<T>&& p) {
  return std::move(p);
}

// Constructs in `to` (whose union holds nothing) the record `from` holds;
// `from` is copied, or moved when an rvalue.
template <typename From>
void Construct(Op& to, From&& from) {
  to.kind = from.kind;
  switch (from.kind) {
    case Op::Kind::kRun: std::construct_at(&to.run, Box(std::forward<From>(from).run)); return;
    case Op::Kind::kNode: std::construct_at(&to.node, std::forward<From>(from).node); return;
    case Op::Kind::kAttempt:
      std::construct_at(&to.attempt, std::forward<From>(from).attempt);
      return;
    case Op::Kind::kOutput: std::construct_at(&to.output, std::forward<From>(from).output); return;
    case Op::Kind::kFrame: std::construct_at(&to.frame, std::forward<From>(from).frame); return;
    case Op::Kind::kLoop: std::construct_at(&to.loop, std::forward<From>(from).loop); return;
    case Op::Kind::kEvent: std::construct_at(&to.event, std::forward<From>(from).event); return;
    case Op::Kind::kCache: std::construct_at(&to.cache, std::forward<From>(from).cache); return;
    case Op::Kind::kApproval:
    case Op::Kind::kRenewApproval:
      std::construct_at(&to.approval, Box(std::forward<From>(from).approval));
      return;
    case Op::Kind::kSignal:
      std::construct_at(&to.signal, Box(std::forward<From>(from).signal));
      return;
    case Op::Kind::kSandbox:
      std::construct_at(&to.sandbox, Box(std::forward<From>(from).sandbox));
      return;
  }
}

void Destroy(Op& op) {
  switch (op.kind) {
    case Op::Kind::kRun: std::destroy_at(&op.run); return;
    case Op::Kind::kNode: std::destroy_at(&op.node); return;
    case Op::Kind::kAttempt: std::destroy_at(&op.attempt); return;
    case Op::Kind::kOutput: std::destroy_at(&op.output); return;
    case Op::Kind::kFrame: std::destroy_at(&op.frame); return;
    case Op::Kind::kLoop: std::destroy_at(&op.loop); return;
    case Op::Kind::kEvent: std::destroy_at(&op.event); return;
    case Op::Kind::kCache: std::destroy_at(&op.cache); return;
    case Op::Kind::kApproval:
    case Op::Kind::kRenewApproval: std::destroy_at(&op.approval); return;
    case Op::Kind::kSignal: std::destroy_at(&op.signal); return;
    case Op::Kind::kSandbox: std::destroy_at(&op.sandbox); return;
  }
}

}  // namespace

Op::Op(const Op& other) { Construct(*this, other); }
Op::Op(Op&& other) noexcept { Construct(*this, std::move(other)); }

Op& Op::operator=(const Op& other) {
  if (this != &other) {
    Op copy(other);  // may throw; *this is untouched if it does
    Destroy(*this);
    Construct(*this, std::move(copy));
  }
  return *this;
}

Op& Op::operator=(Op&& other) noexcept {
  if (this != &other) {
    Destroy(*this);
    Construct(*this, std::move(other));
  }
  return *this;
}

Op::~Op() { Destroy(*this); }

void WriteBatch::UpsertRun(RunRecord run) { ops_.emplace_back(std::move(run)); }
void WriteBatch::UpsertNode(NodeRecord node) { ops_.emplace_back(std::move(node)); }
void WriteBatch::UpsertAttempt(AttemptRecord attempt) { ops_.emplace_back(std::move(attempt)); }
void WriteBatch::PutOutput(OutputRecord output) { ops_.emplace_back(std::move(output)); }
void WriteBatch::PutFrame(FrameRecord frame) { ops_.emplace_back(std::move(frame)); }
void WriteBatch::UpsertLoop(LoopRecord loop) { ops_.emplace_back(std::move(loop)); }
void WriteBatch::PutCache(CacheEntry entry) { ops_.emplace_back(std::move(entry)); }
void WriteBatch::RequestApproval(ApprovalRecord approval) {
  ops_.emplace_back(std::move(approval));
}
void WriteBatch::RenewApproval(ApprovalRecord approval) {
  ops_.emplace_back(std::move(approval));
  ops_.back().kind = Op::Kind::kRenewApproval;
}
void WriteBatch::ConsumeSignal(SignalRecord signal) { ops_.emplace_back(std::move(signal)); }
void WriteBatch::PutSandbox(SandboxRecord sandbox) { ops_.emplace_back(std::move(sandbox)); }
void WriteBatch::AppendEvent(std::string run_id, std::string type, Json payload,
                             int64_t timestamp_ms) {
  std::optional<SandboxRecord> row = SandboxRowChange(run_id, type, payload, timestamp_ms);
  ops_.emplace_back(EventRecord{.run_id = std::move(run_id),
                                .timestamp_ms = timestamp_ms,
                                .type = std::move(type),
                                .payload = std::move(payload)});
  if (row) ops_.emplace_back(std::move(*row));
}

}  // namespace smithers
