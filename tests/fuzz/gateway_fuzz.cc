// libFuzzer target for what the Gateway parses from the network and from
// clients: WebSocket request frames (and the params of `connect`), JWTs (and
// the base64url inside them), cron expressions with time zones, and the
// parameters of every RPC method (rpc_fuzz.cc: a real Gateway over a seeded
// SQLite database), and deep and wide documents generated from the bytes
// (rpc_fuzz.cc FuzzDeep: the JSON depth limit). Built and run by
// scripts/fuzz (clang, -fsanitize=fuzzer,address,undefined; CMake option
// SMITHERS_FUZZ). The first byte picks the mode, the rest is its input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/auth.h"
#include "gateway/cron.h"
#include "gateway/protocol.h"
#include "rpc_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smithers::gateway;  // NOLINT(google-build-using-namespace): a fuzz entry point
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      RequestFrame f = ParseRequestFrame(in, 4096, 64);
      // Invariants: an accepted frame has a method and object params; a
      // refused one says why.
      if (f.ok && !f.params.is_object()) __builtin_trap();
      if (!f.ok && f.error_code.empty()) __builtin_trap();
      if (f.ok && f.method == "connect") {
        // The handshake's params: accepted only for a range holding
        // protocol 1 (compared without wrapping), else a reason.
        ConnectRequest c = ParseConnect(f.params);
        if (c.ok != c.error_code.empty()) __builtin_trap();
        if (c.ok && (f.params["minProtocol"] > 1 || f.params["maxProtocol"] < 1)) __builtin_trap();
      }
      break;
    }
    case 1: {
      JwtConfig config{.secret = "fuzz-secret", .issuer = "iss", .audience = "aud"};
      (void)VerifyJwt(in, config, 1800000000000);
      break;
    }
    case 2: {
      // "expression|zone"
      size_t bar = in.find('|');
      std::string_view expr = in.substr(0, bar);
      std::string_view zone = bar == std::string_view::npos ? "UTC" : in.substr(bar + 1);
      auto schedule = ParseCron(expr, zone);
      if (schedule.ok()) {
        int64_t next = schedule->NextAfterMs(1800000000000);
        if (next != 0 && next <= 1800000000000) __builtin_trap();
      }
      break;
    }
    case 3: {
      std::string bytes;
      if (Base64UrlDecode(in, &bytes) && Base64UrlEncode(bytes) != in) __builtin_trap();
      break;
    }
    case 4:  // [method name]\n[connection byte][params]
      fuzz::FuzzRpc(data + 1, size - 1);
      break;
    default:  // bytes that pick a deep or wide document's shape
      fuzz::FuzzDeep(data + 1, size - 1);
      break;
  }
  return 0;
}
