-- A child workflow in a sandbox worker, its changes reviewed before they
-- land (docs/sandbox.md "The Sandbox component").
--
--   mkdir -p /tmp/repo/src && printf 'hello\nworld\n' > /tmp/repo/src/greeting.txt
--   smithers up examples/sandbox_component.lua --input '{"repo":"/tmp/repo"}'   # exits 3: waiting
--   smithers diff RUN_ID --node edit           # what the worker changed
--   smithers approve RUN_ID --node edit --by "$USER"
--   smithers up examples/sandbox_component.lua --resume --run-id RUN_ID     # applies it
local smithers = require("smithers")
local z = smithers.schema

local outputs = smithers.outputs {
  edit = z.object { lines = z.integer() },
}

return smithers(function(ctx)
  return smithers.Workflow { name = "reviewed-edit",
    smithers.Sandbox { id = "edit", output = outputs.edit,
      workflow = "sandbox_component_worker.lua",   -- runs inside, on a copy of src/
      rootDir = ctx.input.repo, files = { "src" },
      memoryLimit = "256m", pidsLimit = 64,
      owner = os.getenv("USER") or "root",
      request = { title = "Review the greeting change" } },
  }
end, { input = z.object { repo = z.string() } })
