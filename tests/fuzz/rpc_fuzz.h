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

// Deep and wide documents, generated (libFuzzer's inputs are too short to
// hold them): the bytes pick a depth (around the JSON depth limit, or up to
// 200,000 levels), a width (up to 20,000 siblings), arrays, objects or both,
// leaves (strings with brackets and escaped quotes), and where the value
// goes: launchRun's input, submitSignal's payload, cronCreate's input, a
// plain param or the frame's id. Traps unless the text scanner and the value
// check agree with the depth built, a frame past the limit is refused as
// InvalidInput before it is parsed (one within it is not), params past it
// are refused by the dispatcher, and the methods handle values up to it.
void FuzzDeep(const uint8_t* data, size_t size);

}  // namespace smithers::gateway::fuzz

#endif  // SMITHERS_TESTS_FUZZ_RPC_FUZZ_H_
