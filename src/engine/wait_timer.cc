// A Timer (docs/engine.md "Timer"): the task waits until a time (now plus
// its duration, or its `until`) and then finishes with no output.
#include "engine/wait_meta.h"
#include "engine/waits.h"

namespace smithers::engine {
namespace {

class TimerWait : public WaitKind {
 public:
  NodeState state() const override { return NodeState::kWaitingTimer; }
  RunStatus parked_status() const override { return RunStatus::kWaitingTimer; }

  Result<bool> Begin(WaitHost& host, int t) override {
    const core::TaskRef& ref = host.task(t);
    const TaskSpec& spec = ref.node->task;
    if (spec.mode != TaskMode::kTimer) return false;
    NodeInfo& info = host.node(t);
    AttemptRecord a = NewWaitingAttempt(host, t);
    info.wake_at_ms = spec.timer.duration_ms >= 0 ? a.started_at_ms + spec.timer.duration_ms
                                                  : spec.timer.until_ms;
    a.meta = EncodeWaitMeta({.fires_at_ms = info.wake_at_ms});
    host.batch().UpsertAttempt(a);
    host.Event("TimerCreated", {{"nodeId", ref.node_id},
                                {"iteration", ref.iteration},
                                {"timerId", ref.node_id},
                                {"firesAtMs", info.wake_at_ms},
                                {"timerType", spec.timer.duration_ms >= 0 ? "duration" : "until"}});
    host.SetState(t, NodeState::kWaitingTimer, "NodeWaitingTimer",
                  {{"firesAtMs", info.wake_at_ms}});
    host.CheckSoon();  // already due?
    SMITHERS_RETURN_IF_ERROR(host.Flush());
    return true;
  }

  Result<bool> Check(WaitHost& host, int t) override {
    const core::TaskRef& ref = host.task(t);
    const NodeInfo& info = host.node(t);
    int64_t now = host.clock().NowMs();
    if (now < info.wake_at_ms) {
      host.NoteWake(info.wake_at_ms);
      return false;
    }
    host.Event("TimerFired", {{"nodeId", ref.node_id},
                              {"iteration", ref.iteration},
                              {"timerId", ref.node_id},
                              {"firesAtMs", info.wake_at_ms},
                              {"firedAtMs", now},
                              {"delayMs", now - info.wake_at_ms}});
    SMITHERS_RETURN_IF_ERROR(host.CompleteWait(t, {.ok = true}, ""));
    return true;
  }

  void Describe(WaitHost& host, int t, Json& w) override {
    w["firesAtMs"] = host.node(t).wake_at_ms;
  }

  Result<std::string> ReadyReason(ParkedRun& /*run*/, const NodeRecord& n,
                                  const AttemptRecord* waiting, int64_t now) override {
    if (DecodeWaitMeta(waiting->meta).fires_at_ms <= now) return "timer " + n.node_id + " due";
    return std::string();
  }
};

}  // namespace

std::unique_ptr<WaitKind> NewTimerWait() { return std::make_unique<TimerWait>(); }

}  // namespace smithers::engine
