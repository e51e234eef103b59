// The Gateway's RPC methods under libFuzzer: mode 4 of gateway_fuzz.cc.
#ifndef SMITHERS_TESTS_FUZZ_RPC_FUZZ_H_
#define SMITHERS_TESTS_FUZZ_RPC_FUZZ_H_

#include <cstddef>
#include <cstdint>

namespace smithers::gateway::fuzz {

// Calls one RPC method of a real Gateway (over a seeded SQLite database in a
// temp folder, set up at the first call) with parameters made from `data`:
//   [method byte] [connection byte] [params: JSON text, or bytes a generator reads]
// and traps when a reply breaks an invariant (rpc_fuzz.cc lists them).
void FuzzRpc(const uint8_t* data, size_t size);

}  // namespace smithers::gateway::fuzz

#endif  // SMITHERS_TESTS_FUZZ_RPC_FUZZ_H_
