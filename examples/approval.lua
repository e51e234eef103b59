-- A deploy gated by a person, with a signal from CI and a cool-down timer.
--
--   smithers up examples/approval.lua --run-id d1        # exits 3: waiting
--   smithers approvals                                     # who must decide
--   smithers approve d1 --node ship-it --by alice --note "LGTM"
--   smithers signal d1 ci-green --data '{"sha": "abc123"}'
--   smithers up examples/approval.lua --resume --run-id d1  # or: smithers supervise
local smithers = require("smithers")
local Workflow, Sequence, Task = smithers.Workflow, smithers.Sequence, smithers.Task
local Approval, WaitForEvent, Timer = smithers.Approval, smithers.WaitForEvent, smithers.Timer
local z = smithers.schema

local outputs = smithers.outputs {
  plan = z.object { steps = z.array(z.string()) },
  decision = smithers.approvalDecision,
  ci = z.object { sha = z.string() },
  deployed = z.object { sha = z.string(), approvedBy = z.string() },
}

return smithers(function(ctx)
  local decision = ctx:outputMaybe(outputs.decision, "ship-it")
  local ci = ctx:outputMaybe(outputs.ci, "ci-green")
  return Workflow { name = "deploy",
    Sequence {
      Task { id = "plan", output = outputs.plan, { steps = { "build", "migrate", "roll out" } } },
      Approval { id = "ship-it", output = outputs.decision,
                 request = { title = "Ship the release?", summary = "3 steps, no schema change" },
                 owner = "alice", fallbackOwner = "bob", escalateAfterMs = 3600000,
                 onDeny = "continue" },
      WaitForEvent { id = "ci-green", output = outputs.ci, event = "ci-green",
                     timeoutMs = 86400000 },
      Timer { id = "cool-down", duration = "1s" },
      decision and decision.approved and ci and Task { id = "deploy", output = outputs.deployed,
        { sha = ci.sha, approvedBy = decision.decidedBy } } or nil,
    },
  }
end, { defaultApprovalOwner = "ops" })
