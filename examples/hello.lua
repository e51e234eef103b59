-- The smallest useful workflow: a static task, then a compute task that reads
-- its output. Run it with: smithers up examples/hello.lua --input '{"name":"world"}'
local smithers = require("smithers")
local Workflow, Task = smithers.Workflow, smithers.Task
local z = smithers.schema

local outputs = smithers.outputs {
  greeting = z.object { message = z.string() },
  length   = z.object { n = z.integer() },
}

return smithers(function(ctx)
  local g = ctx:outputMaybe(outputs.greeting, "greet")
  return Workflow { name = "hello",
    Task { id = "greet", output = outputs.greeting,
           { message = "Hello, " .. ctx.input.name } },            -- static value
    g and Task { id = "measure", output = outputs.length,
           function() return { n = #g.message } end } or nil,      -- compute
  }
end, { input = z.object { name = z.string() } })
