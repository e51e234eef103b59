-- Untrusted code in a sandbox (docs/sandbox.md): each step runs in
-- bubblewrap as uid 65534 with no capabilities and no network, the system
-- read-only, its workspace the only folder it can write, the database
-- masked, and bounded memory, processes and CPU.
--
--   mkdir -p /tmp/ws
--   smithers up examples/sandbox.lua --input '{"workspace":"/tmp/ws"}' --require-sandbox
--   smithers sandbox selftest          # what this machine enforces
local smithers = require("smithers")
local Workflow, Sequence, Task = smithers.Workflow, smithers.Sequence, smithers.Task
local z = smithers.schema

local outputs = smithers.outputs {
  build = z.object { lines = z.integer(), uid = z.integer() },
  probe = z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() },
}

return smithers(function(ctx)
  local ws = ctx.input.workspace
  return Workflow { name = "sandboxed",
    -- The default of every command task below; a task can set its own.
    sandbox = { memoryLimit = "256m", pidsLimit = 64, cpuLimit = 1 },
    Sequence {
      -- Writes into its workspace and prints its output as JSON.
      Task { id = "build", output = outputs.build, cwd = ws,
             command = { "sh", "-c", 'n=$(seq 1 1000 | tee numbers.txt | wc -l); '
                                     .. 'printf \'{"lines":%s,"uid":%s}\' "$n" "$(id -u)"' } },
      -- Tries its way out; every attempt is refused (parse = "text": the
      -- exit code and both streams are the output).
      Task { id = "probe", output = outputs.probe, cwd = ws, parse = "text",
             command = { "sh", "-c", 'touch /etc/escape 2>&1; ls "$HOME" 2>&1; '
                                     .. 'grep CapEff /proc/self/status; exit 0' } },
    },
  }
end, { input = z.object { workspace = z.string() } })
