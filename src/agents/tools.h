// Built-in tools for agents: read, write, edit, grep, bash, confined to a root
// folder (docs/agents.md "Tools").
#ifndef SMITHERS_AGENTS_TOOLS_H_
#define SMITHERS_AGENTS_TOOLS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "agents/model.h"

namespace smithers::agents {

struct ToolContext {
  std::string root_dir;                         // absolute; every path is confined here
  bool allow_network = false;                   // bash: network namespace unless true
  int64_t timeout_ms = 30000;                   // per call
  size_t max_output_bytes = size_t{64} * 1024;  // results are cut (and say so) beyond this
};

struct ToolResult {
  bool ok = false;
  std::string output;  // the result, or the error message, bounded
};

// The specs of the named built-ins, in order. InvalidArgument for an unknown name.
Result<std::vector<ToolSpec>> BuiltinToolSpecs(const std::vector<std::string>& names);

// Runs one call. Escapes (absolute paths outside root, "..", symlinks that
// resolve outside) and bad arguments are errors (ok = false), never thrown.
ToolResult RunTool(const ToolContext& context, const std::string& name, const Json& arguments);

// True when bubblewrap can isolate bash from the network on this machine.
bool NetworkIsolationAvailable();

}  // namespace smithers::agents

#endif  // SMITHERS_AGENTS_TOOLS_H_
