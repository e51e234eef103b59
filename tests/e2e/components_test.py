#!/usr/bin/env python3
"""Components end to end: Sequence, Parallel, Branch, Loop, conditional children."""

from smithers_e2e import E2ETest, main

# A Parallel child that proves overlap with files, not clocks. It marks itself
# running ($D/running/$ID), logs "S <id> <tasks running now>" and then waits
# until as many children run at once as the cap allows (CAP, or what is left
# of the N children), which it can only see if the engine started them
# together: a schedule more serial than the cap fails after a bounded wait
# (10 s) instead of hanging. It unmarks itself before it exits, so with the
# cap honoured no child ever sees more than CAP running.
OVERLAP_COMMAND = """{ "sh", "-c", [[
mkdir -p "$D/running" "$D/done"; touch "$D/running/$ID"
echo "S $ID $(ls "$D/running" | wc -l)" >> "$D/starts.log"
i=0
while :; do
  r=$(ls "$D/running" | wc -l); d=$(ls "$D/done" | wc -l)
  left=$((N - d)); want=$((CAP < left ? CAP : left))
  [ "$r" -ge "$want" ] && break
  i=$((i + 1))
  if [ "$i" -gt 500 ]; then echo "$ID: waited 10 s for $want running, saw $r" >&2; exit 3; fi
  sleep 0.02
done
touch "$D/done/$ID"; rm "$D/running/$ID"; echo '{"ok":true}']] }"""


def max_running(log_text):
    """The most children running at once that any child saw when it started."""
    return max(int(line.split()[2]) for line in log_text.split("\n") if line.strip())


class SequenceTest(E2ETest):
    def test_children_start_in_order_each_after_the_previous_finished(self):
        order = self.path("order.txt")
        wf = self.write("seq.lua", """
            local outputs = smithers.outputs { step = z.object { id = z.string() } }
            local function step(id)
              return Task { id = id, output = outputs.step, function()
                local f = assert(io.open(%r, "a")); f:write(id, "\\n"); f:close()
                return { id = id }
              end }
            end
            return smithers(function(ctx)
              return Workflow { name = "seq",
                Sequence { step("a"), step("b"), step("c") },
                Task { id = "d", output = outputs.step, { id = "d" } },
              }
            end)
            """ % order)
        out = self.up_ok(wf)
        run = out["runId"]
        self.assertEqual(self.read("order.txt").split(), ["a", "b", "c"])
        self.assertEqual(sorted(out["outputs"]["step"]), ["a", "b", "c", "d"])
        events = self.events(run)
        self.assert_started_in_order(events, ["a", "b", "c", "d"])
        # Each task starts only after the one before it finished.
        def seq_of(kind, node):
            return next(e["seq"] for e in events
                        if e["type"] == kind and e["payload"].get("nodeId") == node)
        for prev, nxt in [("a", "b"), ("b", "c"), ("c", "d")]:
            self.assertLess(seq_of("NodeFinished", prev), seq_of("NodeStarted", nxt))
        for n in self.inspect(run)["nodes"]:
            self.assertEqual(n["state"], "finished", n)


class ParallelTest(E2ETest):
    def parallel_module(self, cap, n=3):
        cap_prop = "" if cap is None else "maxConcurrency = %d," % cap
        tasks = ",\n".join(
            'Task { id = "p%d", output = outputs.done, command = %s,\n'
            '       env = { D = D, ID = "p%d", N = "%d", CAP = "%d" } }'
            % (i, OVERLAP_COMMAND, i, n, n if cap is None else cap) for i in range(n))
        return self.write("par.lua", """
            local D = %r
            local outputs = smithers.outputs { done = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "par",
                Parallel { %s
                  %s
                },
                Task { id = "after", output = outputs.done, { ok = true } },
              }
            end)
            """ % (self.dir, cap_prop, tasks))

    def check_run(self, out, n=3):
        run = out["runId"]
        self.assertEqual(sorted(out["outputs"]["done"]),
                         sorted(["p%d" % i for i in range(n)] + ["after"]))
        events = self.events(run)
        finished = {e["payload"]["nodeId"]: e["seq"] for e in events
                    if e["type"] == "NodeFinished"}
        started_after = next(e["seq"] for e in events
                             if e["type"] == "NodeStarted" and e["payload"]["nodeId"] == "after")
        # The task after the Parallel waits for all of its children.
        for i in range(n):
            self.assertLess(finished["p%d" % i], started_after)
        return self.read("starts.log")

    def test_all_children_run_concurrently_without_a_cap(self):
        log = self.check_run(self.up_ok(self.parallel_module(None)))
        self.assertEqual(log.count("S "), 3)
        self.assertEqual(max_running(log), 3, log)

    def test_max_concurrency_1_runs_one_at_a_time(self):
        log = self.check_run(self.up_ok(self.parallel_module(1)))
        self.assertEqual(log.count("S "), 3)
        self.assertEqual(max_running(log), 1, log)

    def test_max_concurrency_3_runs_three_at_once(self):
        log = self.check_run(self.up_ok(self.parallel_module(3)))
        self.assertEqual(max_running(log), 3, log)

    def test_max_concurrency_2_of_4(self):
        log = self.check_run(self.up_ok(self.parallel_module(2, n=4)), n=4)
        self.assertEqual(log.count("S "), 4)
        self.assertEqual(max_running(log), 2, log)


class BranchTest(E2ETest):
    def module(self):
        return self.write("branch.lua", """
            local outputs = smithers.outputs { pick = z.object { side = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "branch",
                Branch { ["if"] = ctx.input.flag,
                  ["then"] = Task { id = "yes", output = outputs.pick, { side = "then" } },
                  ["else"] = Sequence {
                    Task { id = "no", output = outputs.pick, { side = "else" } },
                  },
                },
                Task { id = "after", output = outputs.pick, { side = "after" } },
              }
            end, { input = z.object { flag = z.boolean() } })
            """)

    def test_then(self):
        out = self.up_ok(self.module(), {"flag": True})
        self.assertEqual(out["outputs"]["pick"],
                         {"yes": {"side": "then"}, "after": {"side": "after"}})
        ids = sorted(n["nodeId"] for n in self.inspect(out["runId"])["nodes"])
        self.assertEqual(ids, ["after", "yes"])

    def test_else(self):
        out = self.up_ok(self.module(), {"flag": False})
        self.assertEqual(out["outputs"]["pick"],
                         {"no": {"side": "else"}, "after": {"side": "after"}})
        ids = sorted(n["nodeId"] for n in self.inspect(out["runId"])["nodes"])
        self.assertEqual(ids, ["after", "no"])


class LoopTest(E2ETest):
    def module(self, until, max_iterations, on_max=None):
        on_max_prop = "" if on_max is None else 'onMaxReached = "%s",' % on_max
        return self.write("loop.lua", """
            local outputs = smithers.outputs {
              step = z.object { n = z.integer() },
              total = z.object { count = z.integer() },
            }
            return smithers(function(ctx)
              local count = ctx:iterationCount(outputs.step, "step")
              return Workflow { name = "loop",
                Loop { id = "l", ["until"] = %s, maxIterations = %d, %s
                  Task { id = "step", output = outputs.step,
                         function(c) return { n = c.iteration * 10 } end },
                },
                Task { id = "total", output = outputs.total,
                       function() return { count = count } end },
              }
            end)
            """ % (until, max_iterations, on_max_prop))

    def step_rows(self, run):
        return self.query("SELECT iteration, n FROM step WHERE run_id = ? ORDER BY iteration",
                          run)

    def test_until_stops_the_loop(self):
        out = self.up_ok(self.module("count >= 3", 10))
        run = out["runId"]
        self.assertEqual(self.step_rows(run), [{"iteration": i, "n": i * 10} for i in range(3)])
        # The latest iteration's output is the one reported.
        self.assertEqual(out["outputs"]["step"]["step"], {"n": 20})
        self.assertEqual(out["outputs"]["total"]["total"], {"count": 3})
        insp = self.inspect(run)
        self.assertEqual(insp["loops"], [{"loopId": "l", "iteration": 2, "done": True}])
        steps = sorted((n["iteration"], n["state"]) for n in insp["nodes"]
                       if n["nodeId"] == "step")
        self.assertEqual(steps, [(0, "finished"), (1, "finished"), (2, "finished")])
        events = self.events(run)
        advanced = [e["payload"]["iteration"] for e in events if e["type"] == "LoopAdvanced"]
        self.assertEqual(advanced, [1, 2])
        self.assertEqual(len([e for e in events if e["type"] == "LoopFinished"]), 1)

    def test_max_iterations_return_last(self):
        out = self.up_ok(self.module("false", 4, "return-last"))
        run = out["runId"]
        self.assertEqual([r["iteration"] for r in self.step_rows(run)], [0, 1, 2, 3])
        self.assertEqual(out["outputs"]["step"]["step"], {"n": 30})
        self.assertEqual(out["outputs"]["total"]["total"], {"count": 4})

    def test_max_iterations_default_is_return_last(self):
        out = self.up_ok(self.module("false", 2))
        self.assertEqual([r["iteration"] for r in self.step_rows(out["runId"])], [0, 1])

    def test_on_max_reached_fail(self):
        r = self.up(self.module("false", 3, "fail"))
        self.assertEqual(r.code, 1, r)
        out = r.json()
        self.assertEqual(out["status"], "failed")
        self.assertEqual(out["error"]["code"], "RALPH_MAX_REACHED")
        self.assertIn("RALPH_MAX_REACHED", out["error"]["code"])
        self.assertIn('"l"', out["error"]["message"])
        run = out["runId"]
        self.assertEqual([x["iteration"] for x in self.step_rows(run)], [0, 1, 2])
        insp = self.inspect(run)
        self.assertEqual(insp["run"]["status"], "failed")
        self.assertEqual(insp["run"]["error"]["code"], "RALPH_MAX_REACHED")
        # The task after the loop never ran.
        self.assertEqual(self.node(run, "total")["state"], "pending")
        self.assertNotIn("total", out["outputs"])
        events = self.events(run)
        self.assertNotIn("total", [e["payload"].get("nodeId") for e in events
                                   if e["type"] == "NodeStarted"])
        self.assertEqual(events[-1]["type"], "RunFailed")


class ConditionalChildrenTest(E2ETest):
    def test_nil_children_are_skipped_anywhere_and_mounted_later(self):
        wf = self.write("cond.lua", """
            local outputs = smithers.outputs { v = z.object { s = z.string() } }
            return smithers(function(ctx)
              local a = ctx:outputMaybe(outputs.v, "a")
              local b = ctx:outputMaybe(outputs.v, "b")
              return Workflow { name = "cond",
                b and Task { id = "first", output = outputs.v, { s = "first" } } or nil,
                Sequence {
                  nil,
                  Task { id = "a", output = outputs.v, { s = "A" } },
                  nil,
                  a and Task { id = "b", output = outputs.v,
                               function() return { s = a.s .. "B" } end } or nil,
                  false,
                },
                nil,
                Task { id = "c", output = outputs.v, { s = "C" } },
                a and Task { id = "last", output = outputs.v, { s = "last" } } or nil,
              }
            end)
            """)
        out = self.up_ok(wf)
        v = out["outputs"]["v"]
        self.assertEqual(v["a"], {"s": "A"})
        self.assertEqual(v["b"], {"s": "AB"})
        self.assertEqual(v["c"], {"s": "C"})
        self.assertEqual(v["first"], {"s": "first"})
        self.assertEqual(v["last"], {"s": "last"})
        events = self.events(out["runId"])
        pending = [e["payload"]["nodeId"] for e in events if e["type"] == "NodePending"]
        # a and c mount at once; b and last when a's output appears; first after b's.
        self.assertEqual(pending[:2], ["a", "c"])
        self.assertLess(pending.index("b"), pending.index("first"))
        self.assertEqual(sorted(pending), ["a", "b", "c", "first", "last"])
        # "b" mounted only after "a" finished.
        seq = {(e["type"], e["payload"].get("nodeId")): e["seq"] for e in events}
        self.assertLess(seq[("NodeFinished", "a")], seq[("NodePending", "b")])
        self.assertLess(seq[("NodeFinished", "b")], seq[("NodePending", "first")])
        # More than one frame: the tree grew while the run went on.
        frames = [e for e in events if e["type"] == "FrameCommitted"]
        self.assertGreaterEqual(len(frames), 3)


if __name__ == "__main__":
    main()
