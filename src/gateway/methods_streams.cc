// The stream methods (scope run:read, a WebSocket only): open a stream of a
// run's events, close one. The feeds behind them are in feeds.cc.
#include <algorithm>
#include <cstdint>
#include <string>

#include "gateway/methods.h"

namespace smithers::gateway {
namespace {

Reply StreamRunEvents(const MethodCall& call) {
  Gateway& gw = call.gw;
  const Json& params = call.params;
  Connection& conn = *call.conn;
  std::string run_id;
  if (auto bad = ReadRequired(params, {{"runId", &run_id}})) return *bad;
  Result<RunRecord> run = gw.store().GetRun(run_id);
  if (!run.ok()) return StoreError(run.status(), "RunNotFound");
  // Events are numbered from 1: afterSeq 0, like none, is from the start
  // (the reply's afterSeq is then null).
  Result<int64_t> after = IntParam(params, "afterSeq", -1, 0, INT64_MAX);  // -1: none given
  if (!after.ok()) return Reply::Err("InvalidRequest", after.status().message());
  // An explicit stream replaces an automatic one of the same run; the frames
  // the automatic one sent are all queued before this reply.
  for (auto it = conn.auto_streams.begin(); it != conn.auto_streams.end();) {
    auto open = conn.streams.find(*it);
    if (open != conn.streams.end() && open->second == run_id) {
      conn.streams.erase(open);
      it = conn.auto_streams.erase(it);
    } else {
      ++it;
    }
  }
  Reply r = gw.OpenStream(conn, run_id, std::max<int64_t>(*after, 0));
  if (r.ok && *after < 0) r.payload["afterSeq"] = nullptr;
  return r;
}

Reply Unsubscribe(const MethodCall& call) {
  const Json& params = call.params;
  Connection& conn = *call.conn;
  std::string stream_id = StringParam(params, "streamId");
  conn.auto_streams.erase(stream_id);
  if (conn.streams.erase(stream_id) == 0) {
    return Reply::Err("InvalidRequest", "no stream " + stream_id + " on this connection");
  }
  return Reply::Ok({{"streamId", stream_id}, {"unsubscribed", true}});
}

}  // namespace

std::span<const Method> StreamMethods() {
  static const Method kRows[] = {
      {.name = "streamRunEvents",
       .scope = "run:read",
       .needs_connection = true,
       .handler = StreamRunEvents},
      {.name = "subscribe",
       .scope = "run:read",
       .needs_connection = true,
       .handler = StreamRunEvents},
      {.name = "unsubscribe",
       .scope = "run:read",
       .needs_connection = true,
       .handler = Unsubscribe},
  };
  return kRows;
}

}  // namespace smithers::gateway
