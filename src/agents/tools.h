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
  bool allow_network = false;                   // bash: the sandbox keeps the host's network
  bool unisolated = false;                      // bash: no sandbox (unisolatedTools = true)
  std::vector<std::string> hidden_paths;        // bash: masked in the sandbox (the database)
  std::string bwrap = "bwrap";                  // bubblewrap: a name on PATH or a path
  int64_t timeout_ms = 30000;                   // per call
  size_t max_output_bytes = size_t{64} * 1024;  // results are cut (and say so) beyond this
  Clock* clock = nullptr;                       // bash's deadline; nullptr = SystemClock()
};

struct ToolResult {
  bool ok = false;
  std::string output;    // the result, or the error message, bounded
  bool not_run = false;  // bash: refused before running (no usable sandbox)
};

// The specs of the named built-ins, in order. InvalidArgument for an unknown name.
Result<std::vector<ToolSpec>> BuiltinToolSpecs(const std::vector<std::string>& names);

// Runs one call. Escapes (absolute paths outside root, "..", symlinks that
// resolve outside) and bad arguments are errors (ok = false), never thrown.
ToolResult RunTool(const ToolContext& context, const std::string& name, const Json& arguments);

// Why the bash tool's sandbox cannot start here (bubblewrap missing, no user
// namespaces, ...), or OK when it can. Probed once per binary name.
Status SandboxStatus(const std::string& bwrap = "bwrap");

}  // namespace smithers::agents

#endif  // SMITHERS_AGENTS_TOOLS_H_
