-- The child of examples/sandbox_component.lua: it runs inside the sandbox,
-- with the shipped files as its workspace and no network. Its row of
-- `edit` is the Sandbox's output; the files it changes come back as patches.
local smithers = require("smithers")
local z = smithers.schema

local outputs = smithers.outputs {
  edit = z.object { lines = z.integer() },
}

return smithers(function(ctx)
  return smithers.Workflow { name = "greeting-edit",
    smithers.Task { id = "edit", output = outputs.edit,
      command = { "sh", "-c", 'printf "hello\\nthere\\nworld\\n" > src/greeting.txt; '
                              .. 'printf \'{"lines":%s}\' "$(wc -l < src/greeting.txt)"' } },
  }
end)
