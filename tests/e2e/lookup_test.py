#!/usr/bin/env python3
"""Lookups resolve to the node's own iteration; nodes that leave the tree are
unmounted (docs/engine.md "Reading outputs", "Unmounted nodes"). Real binary,
real SQLite: every task runs exactly once, counted in _smithers_attempts."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smithers_e2e import E2ETest, main  # noqa: E402

# A command that marks it started, then waits for a file.
WAIT_SH = 'touch "$S"; while [ ! -f "$F" ]; do sleep 0.02; done; echo "{}"'


class LookupTest(E2ETest):
    def attempts(self, run_id):
        return {(r["node_id"], r["iteration"]): r["c"] for r in self.query(
            "SELECT node_id, iteration, count(*) AS c FROM _smithers_attempts WHERE run_id = ? "
            "GROUP BY node_id, iteration", run_id)}

    def test_loops_branches_and_parallel_reading_outside_nodes_run_each_task_once(self):
        wf = self.write("mix.lua", """
            local outputs = smithers.outputs { n = z.object { n = z.integer() } }
            return smithers(function(ctx)
              local seed = ctx:outputMaybe(outputs.n, "seed")
              local body = ctx:outputMaybe(outputs.n, "body")
              local kids = { Task { id = "seed", output = outputs.n, function() return { n = 1 } end } }
              if seed then
                kids[#kids + 1] = Parallel {
                  Loop { id = "L", ["until"] = ctx:iterationCount(outputs.n, "body") >= 3,
                         maxIterations = 10,
                    Task { id = "body", output = outputs.n,
                           function() return { n = seed.n + ctx.iteration } end } },
                  Branch { ["if"] = seed.n == 1,
                           ["then"] = Task { id = "yes", output = outputs.n, function() return { n = 1 } end },
                           ["else"] = Task { id = "no", output = outputs.n, function() return { n = 0 } end } },
                  Loop { id = "A", ["until"] = ctx:iterationCount(outputs.n, "y") >= 2, maxIterations = 5,
                    Sequence {
                      Loop { id = "B", ["until"] = ctx:iterationCount(outputs.n, "x") >= 2, maxIterations = 5,
                        Task { id = "x", output = outputs.n, function() return { n = seed.n } end } },
                      Task { id = "y", output = outputs.n, function() return { n = 2 } end } } },
                }
                -- The body read from outside its loop, at its last iteration once done.
                if body and ctx:iterationCount(outputs.n, "body") >= 3 then
                  kids[#kids + 1] = Branch { ["if"] = seed.n == 1,
                    ["then"] = Task { id = "after", output = outputs.n, function() return { n = body.n } end } }
                end
              end
              return Workflow { name = "mix", Sequence(kids) }
            end)
            """)
        out = self.up_ok(wf)
        run = out["runId"]
        counts = self.attempts(run)
        self.assertEqual(counts.get(("seed", 0)), 1)
        self.assertEqual({i for (n, i) in counts if n == "body"}, {0, 1, 2})
        self.assertTrue(all(c == 1 for c in counts.values()), counts)
        self.assertIn(("yes", 0), counts)
        self.assertNotIn(("no", 0), counts)
        self.assertIn(("after", 0), counts)
        self.assertEqual(counts.get(("x@@A=0", 0)), 1)
        self.assertEqual(counts.get(("x@@A=1", 1)), 1)
        types = [e["type"] for e in self.events(run)]
        self.assertEqual([e["payload"] for e in self.events(run) if e["type"] == "NodeUnmounted"], [])

    def flip_module(self, tail=""):
        return self.write("flip.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            local SH = %r
            return smithers(function(ctx)
              local flipped = ctx:outputMaybe(outputs.r, "flipper") ~= nil
              return Workflow { name = "flip", Sequence {
                Parallel {
                  Task { id = "flipper", output = outputs.r, env = { S = %r, F = %r },
                         command = { "sh", "-c", SH } },
                  Branch { ["if"] = not flipped,
                    ["then"] = Task { id = "slow", output = outputs.r, env = { S = %r, F = %r },
                                      command = { "sh", "-c", SH } },
                    ["else"] = Task { id = "other", output = outputs.r, function() return {} end } },
                },
                %s
              } }
            end)
            """ % (WAIT_SH, self.path("flipper.started"), self.path("flip"),
                   self.path("slow.started"), self.path("never"), tail))

    def test_a_flipping_branch_cancels_the_task_in_flight_and_unmounts_it(self):
        wf = self.flip_module()
        p = self.start_up(wf, None, "flip")
        self.wait_for(lambda: os.path.exists(self.path("slow.started")), what="slow to start")
        open(self.path("flip"), "w").close()
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err)
        slow = self.node("flip", "slow")
        self.assertFalse(slow["mounted"])
        self.assertEqual(slow["state"], "cancelled")
        self.assertEqual(slow["attempts"][0]["error"]["code"], "UNMOUNTED")
        self.assertTrue(self.node("flip", "other")["mounted"])
        ev = [e for e in self.events("flip") if e["type"] == "NodeUnmounted"]
        self.assertEqual([(e["payload"]["nodeId"], e["payload"]["state"]) for e in ev],
                         [("slow", "cancelled")])
        text = self.run_cli("inspect", "flip")
        self.assertIn("(unmounted)", text.stdout)
        self.assertEqual(self.attempts("flip"), {("flipper", 0): 1, ("slow", 0): 1, ("other", 0): 1})

    def test_unmounted_state_survives_sigkill_and_resume(self):
        wf = self.flip_module(tail='Task { id = "hold", output = outputs.r, env = { S = %r, F = %r }, '
                              'command = { "sh", "-c", SH } },' % (self.path("hold.started"),
                                                                  self.path("release")))
        p = self.start_up(wf, None, "flip")
        self.wait_for(lambda: os.path.exists(self.path("slow.started")), what="slow to start")
        open(self.path("flip"), "w").close()
        self.wait_for(lambda: os.path.exists(self.path("hold.started")), what="hold to start")
        p.send_signal(signal.SIGKILL)
        p.communicate()
        self.assertEqual(self.query(
            "SELECT mounted, state FROM _smithers_nodes WHERE run_id = 'flip' AND node_id = 'slow'"),
            [{"mounted": 0, "state": "cancelled"}])
        open(self.path("release"), "w").close()
        r = self.up(wf, None, "flip", "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertFalse(self.node("flip", "slow")["mounted"])
        counts = self.attempts("flip")
        self.assertEqual(counts[("slow", 0)], 1)
        self.assertEqual(counts[("other", 0)], 1)
        self.assertEqual(counts[("hold", 0)], 2)  # the killed attempt, then the resumed one


if __name__ == "__main__":
    main()
