// Event feeds: a run's events read from the database once into a ring and
// sent to every stream that follows the run, paced by each connection's
// queue; heartbeats and broadcasts.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gateway/auth.h"
#include "gateway/gateway_internal.h"

namespace smithers::gateway {
namespace {

constexpr int kEventPage = 500;
constexpr size_t kRingSize = 2048;  // recent events a feed keeps for fan-out

}  // namespace

// Subscribes `conn` to the run's events after `after` (nullopt: after the
// last one there is now).
Reply Gateway::OpenStream(Connection& conn, const std::string& run_id,
                          std::optional<int64_t> after) {
  Feed& feed = feeds_[run_id];
  Poll(run_id, feed);
  int64_t cursor = after.value_or(feed.last_seq);
  if (cursor > feed.last_seq) {
    return Reply::Err("SeqOutOfRange", "afterSeq " + std::to_string(cursor) +
                                           " is past the run's last event " +
                                           std::to_string(feed.last_seq));
  }
  if (conn.streams.size() >= 64)
    return Reply::Err("RateLimited", "too many streams on this connection");
  std::string stream_id = "s" + std::to_string(++next_stream_id_);
  conn.streams[stream_id] = run_id;
  feed.subs.push_back({.conn = conn.weak_from_this(), .stream_id = stream_id, .cursor = cursor});
  Reply r = Reply::Ok({{"streamId", stream_id},
                       {"runId", run_id},
                       {"afterSeq", cursor},
                       {"currentSeq", feed.last_seq}});
  // The events follow the response: replayed once the reply is queued.
  request_pump();
  return r;
}

void Gateway::AutoSubscribe(Reply& reply, Connection* conn, bool from_start) {
  if (!reply.ok || conn == nullptr || !reply.payload.contains("runId")) return;
  const std::string run_id = reply.payload["runId"].get<std::string>();
  for (const auto& [id, streamed] : conn->streams) {
    if (streamed == run_id) return;
  }
  Reply sub = OpenStream(*conn, run_id, from_start ? std::optional<int64_t>(0) : std::nullopt);
  if (!sub.ok) return;
  std::string stream_id = sub.payload["streamId"].get<std::string>();
  reply.payload["streamId"] = stream_id;
  conn->auto_streams.insert(stream_id);
}

// Reads the events after what the feed holds and the run's status.
void Gateway::Poll(const std::string& run_id, Feed& feed) {
  // The status first: a terminal status read before the events guarantees
  // that the events read next include the run's last one (read after, a run
  // that ended in between would look complete with its last events unread).
  Result<RunRecord> run = store_->GetRun(run_id);
  std::optional<RunStatus> status = run.ok() ? std::optional(run->status) : feed.status;
  while (true) {
    Result<std::vector<EventRecord>> events = store_->ListEvents(run_id, feed.last_seq, kEventPage);
    if (!events.ok()) return;
    for (const EventRecord& e : *events) {
      feed.ring.push_back(MakeRingEvent(e));
      feed.last_seq = e.seq;
      if (feed.ring.size() > kRingSize) feed.ring.pop_front();
      state_version_++;
    }
    if (events->size() < static_cast<size_t>(kEventPage)) break;
  }
  feed.status = status;
}

// A run event's frame (docs/gateway.md "Event streams"): Smithers' name in
// `event`, ours in `type`.
std::string Gateway::EventPayload(const EventRecord& e) {
  WireEventName name = SmithersEventName(e.type);
  const Json* payload = &e.payload;
  Json completed;
  if (name.run_completed) {
    completed = e.payload.is_object() ? e.payload : Json::object();
    completed["runId"] = e.run_id;
    completed["status"] = name.status;
    payload = &completed;
  }
  return Frame({{"type", e.type},
                {"runId", e.run_id},
                {"seq", e.seq},
                {"event", name.event},
                {"timestampMs", e.timestamp_ms},
                {"payload", *payload}});
}

RingEvent Gateway::MakeRingEvent(const EventRecord& e) {
  RingEvent r{.seq = e.seq, .frame = std::make_shared<const std::string>(EventPayload(e))};
  std::string content = "event." + e.type;
  std::string_view scope = ContentRequiredScope(content);
  if (scope.empty()) return r;
  // The seq stays (a reader sees no gap); what the event says does not.
  Json kept = {{"withheld", true}, {"requiredScope", scope}};
  for (const char* key : {"nodeId", "iteration"}) {
    if (e.payload.is_object() && e.payload.contains(key)) kept[key] = e.payload[key];
  }
  EventRecord shown = e;
  shown.payload = std::move(kept);
  r.content = std::move(content);
  r.withheld = std::make_shared<const std::string>(EventPayload(shown));
  return r;
}

namespace {

// A run.event payload as one subscription receives it: the shared frame of
// the event with the subscription's streamId first (clients keep the frames
// of their own streams by it).
std::string ForStream(const std::string& stream_id, const std::string& frame) {
  return "{\"streamId\":" + Frame(Json(stream_id)) + "," + frame.substr(1);
}

}  // namespace

const std::string& Gateway::FrameFor(const Connection& conn, const RingEvent& e) {
  if (e.content.empty() || MaySee(conn.caller.scopes, e.content)) return *e.frame;
  return *e.withheld;
}

// Sends `sub` what it has not seen, oldest first: from the ring when it holds
// them, else from the database; stops at the connection's high-water mark
// (the rest follows when its queue drains). Returns false when the
// subscription is over (connection gone, stream closed or run completed).
bool Gateway::Pump(const std::string& run_id, Feed& feed, Subscriber& sub) {
  std::shared_ptr<Connection> conn = sub.conn.lock();
  if (!conn || conn->closing) return false;
  auto open = conn->streams.find(sub.stream_id);
  if (open == conn->streams.end()) return false;
  while (sub.cursor < feed.last_seq && conn->HasRoom()) {
    if (!feed.ring.empty() && feed.ring.front().seq <= sub.cursor + 1) {
      size_t i = static_cast<size_t>(sub.cursor + 1 - feed.ring.front().seq);
      for (; i < feed.ring.size() && conn->HasRoom(); ++i) {
        conn->SendEvent("run.event", ForStream(sub.stream_id, FrameFor(*conn, feed.ring[i])));
        sub.cursor = feed.ring[i].seq;
      }
      continue;
    }
    // Only what the connection has room for: a page read and thrown away
    // would make a slow reader cost the io thread a query per frame.
    Result<std::vector<EventRecord>> page =
        store_->ListEvents(run_id, sub.cursor, std::min(kEventPage, conn->Room()));
    if (!page.ok() || page->empty()) break;
    for (const EventRecord& e : *page) {
      conn->SendEvent("run.event", ForStream(sub.stream_id, FrameFor(*conn, MakeRingEvent(e))));
      sub.cursor = e.seq;
      if (!conn->HasRoom()) break;
    }
  }
  if (conn->Overflowing()) {
    metrics_.backpressure_disconnects++;
    conn->SendEvent("run.error", Frame({{"streamId", sub.stream_id},
                                        {"runId", run_id},
                                        {"code", "BackpressureDisconnect"},
                                        {"message", "the client reads too slowly"}}));
    conn->Close(1013, "BackpressureDisconnect");
    return false;
  }
  if (sub.cursor >= feed.last_seq && feed.status && IsTerminal(*feed.status)) {
    conn->SendEvent("run.completed", Frame({{"streamId", sub.stream_id},
                                            {"runId", run_id},
                                            {"status", *feed.status},
                                            {"lastSeq", feed.last_seq}}));
    conn->streams.erase(sub.stream_id);
    conn->auto_streams.erase(sub.stream_id);
    return false;
  }
  return true;
}

void Gateway::PumpAll() {
  wake_pending_ = false;
  for (auto it = feeds_.begin(); it != feeds_.end();) {
    Feed& feed = it->second;
    if (!feed.subs.empty()) Poll(it->first, feed);
    for (size_t i = 0; i < feed.subs.size();) {
      if (Pump(it->first, feed, feed.subs[i])) {
        ++i;
      } else {
        feed.subs.erase(feed.subs.begin() + static_cast<long>(i));
      }
    }
    it = feed.subs.empty() ? feeds_.erase(it) : std::next(it);
  }
}

void Gateway::PumpConnection(Connection& conn) {
  std::vector<std::pair<std::string, std::string>> open(conn.streams.begin(), conn.streams.end());
  for (const auto& [stream_id, run_id] : open) {
    auto feed = feeds_.find(run_id);
    if (feed == feeds_.end()) continue;
    auto& subs = feed->second.subs;
    for (size_t i = 0; i < subs.size(); ++i) {
      if (subs[i].stream_id != stream_id) continue;
      if (!Pump(run_id, feed->second, subs[i])) subs.erase(subs.begin() + static_cast<long>(i));
      break;
    }
  }
}

void Gateway::Heartbeats() {
  for (auto& [run_id, feed] : feeds_) {
    for (Subscriber& sub : feed.subs) {
      std::shared_ptr<Connection> conn = sub.conn.lock();
      if (!conn || conn->closing) continue;
      conn->SendEvent(
          "run.heartbeat",
          Frame({{"streamId", sub.stream_id}, {"runId", run_id}, {"ts", clock_.NowMs()}}));
    }
  }
}

void Gateway::Broadcast(const std::string& event, const Json& payload) {
  std::string body = Frame(payload);
  const std::string content = "push." + event;
  for (const std::weak_ptr<Connection>& w : connections_) {
    if (std::shared_ptr<Connection> c = w.lock();
        c && c->authenticated && !c->closing && MaySee(c->caller.scopes, content)) {
      c->SendEvent(event, body);
    }
  }
}

}  // namespace smithers::gateway
