-- A code review by a model, with tools confined to this folder.
--
--   OPENAI_API_KEY=sk-... smithers up examples/review.lua --input '{"path": "src/engine"}'
--   (or ANTHROPIC_API_KEY=... and provider = "anthropic"; any OpenAI-compatible
--   server works through baseUrl, e.g. a local llama.cpp or vLLM)
local smithers = require("smithers")
local Workflow, Task = smithers.Workflow, smithers.Task
local z = smithers.schema

local outputs = smithers.outputs {
  review = z.object {
    summary = z.string(),
    findings = z.array(z.object { file = z.string(), severity = z.enum { "low", "medium", "high" },
                                  note = z.string() }),
  },
}

local reviewer = smithers.Agent {
  provider = os.getenv("SMITHERS_REVIEW_PROVIDER") or "openai",
  model = os.getenv("SMITHERS_REVIEW_MODEL") or "gpt-4.1-mini",
  baseUrl = os.getenv("SMITHERS_REVIEW_BASE_URL"),  -- nil = the provider's own endpoint
  instructions = "You review C++ code for correctness bugs. Use the tools to read files.",
  tools = { "read", "grep" },
  rootDir = ".",
  maxTurns = 12,
  stream = true,
  price = { input = 0.4, output = 1.6 },  -- USD per million tokens, for `inspect`
}

return smithers(function(ctx)
  return Workflow { name = "review",
    Task { id = "review", output = outputs.review, agent = reviewer, retries = 1, timeoutMs = 300000,
           "Review the code under " .. ctx.input.path .. " and list real bugs only." },
  }
end, { input = z.object { path = z.string() } })
