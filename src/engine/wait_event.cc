// WaitForEvent (docs/engine.md "Signals"): the task waits for a signal of
// its event (and correlation id, if it has one); the oldest pending one that
// fits its output schema is consumed and becomes its output, in the commit
// that finishes the task. A signal that does not fit is rejected (kept, with
// the violations). An optional timeout fails, skips or continues the task.
#include "base/json_limits.h"
#include "engine/executors.h"
#include "engine/wait_meta.h"
#include "engine/waits.h"
#include "smithers/schema.h"

namespace smithers::engine {
namespace {

class EventWait : public WaitKind {
 public:
  NodeState state() const override { return NodeState::kWaitingEvent; }
  RunStatus parked_status() const override { return RunStatus::kWaitingEvent; }

  Result<bool> Begin(WaitHost& host, int t) override {
    const TaskSpec& spec = host.task(t).node->task;
    if (spec.mode != TaskMode::kWaitForEvent) return false;
    const EventWaitSpec& w = *spec.wait;
    NodeInfo& info = host.node(t);
    AttemptRecord a = NewWaitingAttempt(host, t);
    info.wake_at_ms = w.timeout_ms > 0 ? a.started_at_ms + w.timeout_ms : 0;
    a.meta = EncodeWaitMeta(
        {.event = w.event, .correlation_id = w.correlation_id, .timeout_at_ms = info.wake_at_ms});
    Json ev = a.meta;  // NodeWaitingEvent carries what the wait waits for
    host.batch().UpsertAttempt(a);
    host.SetState(t, NodeState::kWaitingEvent, "NodeWaitingEvent", std::move(ev));
    host.CheckSoon();  // a signal stored already?
    SMITHERS_RETURN_IF_ERROR(host.Flush());
    return true;
  }

  void StartCheck() override { signals_.reset(); }

  Result<bool> Check(WaitHost& host, int t) override {
    if (!signals_) {
      SMITHERS_ASSIGN_OR_RETURN(signals_, host.store().ListSignals(host.run_id()));
    }
    SMITHERS_ASSIGN_OR_RETURN(bool done, TryConsume(host, t));
    if (done) return true;
    const NodeInfo& info = host.node(t);
    if (info.wake_at_ms > 0 && host.clock().NowMs() >= info.wake_at_ms) {
      SMITHERS_RETURN_IF_ERROR(TimeOut(host, t));
      return true;
    }
    if (info.wake_at_ms > 0) host.NoteWake(info.wake_at_ms);
    return false;
  }

  void Describe(WaitHost& host, int t, Json& w) override {
    const EventWaitSpec& spec = *host.task(t).node->task.wait;
    w["event"] = spec.event;
    w["correlationId"] = spec.correlation_id;
    if (int64_t timeout = host.node(t).wake_at_ms; timeout > 0) w["timeoutAtMs"] = timeout;
  }

  Result<std::string> ReadyReason(ParkedRun& run, const NodeRecord& n, const AttemptRecord* waiting,
                                  int64_t now) override {
    WaitMeta m = DecodeWaitMeta(waiting->meta);
    if (m.timeout_at_ms > 0 && m.timeout_at_ms <= now) return "wait " + n.node_id + " timed out";
    SMITHERS_ASSIGN_OR_RETURN(const std::vector<SignalRecord>* signals, run.signals());
    for (const auto& sig : *signals) {
      if (sig.status == SignalStatus::kPending && sig.name == m.event &&
          (m.correlation_id.empty() || sig.correlation_id == m.correlation_id)) {
        return "signal " + m.event + " arrived";
      }
    }
    return std::string();
  }

 private:
  // Consumes the oldest pending signal the task waits for, if any. A signal
  // whose data does not fit the output schema is rejected (kept, with the
  // violations) and the task goes on waiting.
  Result<bool> TryConsume(WaitHost& host, int t) {
    const core::TaskRef& ref = host.task(t);
    const TaskSpec& spec = ref.node->task;
    int64_t now = host.clock().NowMs();
    for (SignalRecord& sig : *signals_) {
      if (sig.status != SignalStatus::kPending || sig.name != spec.wait->event) continue;
      if (!spec.wait->correlation_id.empty() && sig.correlation_id != spec.wait->correlation_id) {
        continue;
      }
      sig.consumed_by_node = ref.node_id;
      sig.consumed_iteration = ref.iteration;
      sig.consumed_at_ms = now;
      std::vector<schema::Violation> v;
      if (Status d =
              base::CheckJsonValueDepth(sig.payload, base::MaxJsonDepth(), "the signal data");
          !d.ok()) {
        v.push_back({.path = "$", .message = d.message()});
        // Dropped here (nlohmann destroys iteratively): the batch below takes a
        // copy of the record, and copying a value is recursive.
        sig.payload = nullptr;
      } else {
        v = schema::Validate(host.workflow().outputs.at(spec.output), sig.payload);
      }
      Json ev = {{"nodeId", ref.node_id},
                 {"iteration", ref.iteration},
                 {"name", sig.name},
                 {"signalSeq", sig.seq}};
      if (!v.empty()) {
        sig.status = SignalStatus::kRejected;
        sig.rejection = Json::array();
        for (const auto& x : v) sig.rejection.push_back({{"path", x.path}, {"message", x.message}});
        host.batch().ConsumeSignal(sig);
        ev["violations"] = sig.rejection;
        host.Event("SignalRejected", ev);
        SMITHERS_RETURN_IF_ERROR(host.Flush());
        continue;
      }
      sig.status = SignalStatus::kConsumed;
      host.batch().ConsumeSignal(sig);
      host.Event("SignalConsumed", ev);
      // The consumption, the output and the finished node land together: a
      // signal is applied exactly once.
      SMITHERS_RETURN_IF_ERROR(
          host.CompleteWait(t, {.ok = true, .output = sig.payload}, spec.output));
      return true;
    }
    return false;
  }

  Status TimeOut(WaitHost& host, int t) {
    const core::TaskRef& ref = host.task(t);
    const EventWaitSpec& w = *ref.node->task.wait;
    if (w.on_timeout == "skip") {
      const NodeInfo& info = host.node(t);
      host.batch().UpsertAttempt(AttemptRecord{.run_id = host.run_id(),
                                               .node_id = ref.node_id,
                                               .iteration = ref.iteration,
                                               .attempt = info.row.last_attempt,
                                               .state = AttemptState::kCancelled,
                                               .started_at_ms = info.wait_started_at_ms,
                                               .finished_at_ms = host.clock().NowMs(),
                                               .error = ErrorJson("WAIT_TIMEOUT", "timed out")});
      host.SetState(t, NodeState::kSkipped, "NodeSkipped", {{"reason", "timed out"}});
      return host.Flush();
    }
    if (w.on_timeout == "continue") return host.CompleteWait(t, {.ok = true}, "");
    return host.CompleteWait(
        t,
        {.ok = false,
         .error = ErrorJson("WAIT_TIMEOUT", "no \"" + w.event + "\" signal within " +
                                                std::to_string(w.timeout_ms) + " ms"),
         .retryable = false},
        ref.node->task.output);
  }

  // The run's signals, read once per check of the waits.
  std::optional<std::vector<SignalRecord>> signals_;
};

}  // namespace

std::unique_ptr<WaitKind> NewEventWait() { return std::make_unique<EventWait>(); }

}  // namespace smithers::engine
