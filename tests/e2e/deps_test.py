#!/usr/bin/env python3
"""Smithers' dependency props end to end: dependsOn, needs, deps, depsOptional.
Rows reach compute functions and commands (SMITHERS_DEPS_FILE), the cache key
covers them, missing rows and unmounted dependencies fail clearly, cycles are
bad input, and a killed deps chain resumes running every task once."""

import json
import os
import signal

from smithers_e2e import E2ETest, main, pid_alive

STEP = 'local outputs = smithers.outputs { step = z.object { value = z.integer() } }\n'


class DepsTest(E2ETest):
    def chain(self, name, n, middle=""):
        """The static chain of the benchmarks: s_i reads s_{i-1}'s row through needs/deps.
        Every function appends its id to log.txt; `middle` replaces task s<n//2>."""
        return self.write(name, STEP + """
            local log = %r
            local function note(id) local f = io.open(log, "a"); f:write(id, "\\n"); f:close() end
            return smithers(function(ctx)
              local tasks = { Task { id = "s0", output = outputs.step,
                                     function() note("s0"); return { value = 1 } end } }
              for i = 1, ctx.input.n - 1 do
                local id = "s" .. i
                if i == ctx.input.n // 2 and %s then
                  tasks[#tasks + 1] = %s
                else
                  tasks[#tasks + 1] = Task { id = id, output = outputs.step,
                    needs = { prev = "s" .. (i - 1) }, deps = { prev = outputs.step },
                    function(deps) note(id); return { value = deps.prev.value + 1 } end }
                end
              end
              return Workflow { name = "chain", Sequence(tasks) }
            end)
            """ % (self.path("log.txt"), "true" if middle else "false", middle or "nil"))

    def test_the_static_chain_passes_each_row_to_the_next_task(self):
        out = self.up_ok(self.chain("chain.lua", 50), {"n": 50})
        self.assertEqual(out["outputs"]["step"], {"s%d" % i: {"value": i + 1} for i in range(50)})
        self.assertEqual(self.read("log.txt").split(), ["s%d" % i for i in range(50)])
        # The frame records the dependency, with the alias resolved.
        frames = self.query("SELECT data FROM _smithers_frames ORDER BY frame_no")
        self.assertIn('"deps":{"prev":{"id":"s0","output":"step"}}', frames[0]["data"])

    def test_dependson_orders_a_parallel_and_info_stays_readable(self):
        wf = self.write("order.lua", STEP + """
            return smithers(function(ctx)
              return Workflow { name = "order", Parallel {
                Task { id = "last", output = outputs.step, dependsOn = { "first", "mid" },
                       function(deps, info) return { value = info.attempt + deps.attempt } end },
                Task { id = "mid", output = outputs.step, needs = { before = "first" },
                       function() return { value = 2 } end },
                Task { id = "first", output = outputs.step, function() return { value = 1 } end },
              } }
            end)
            """)
        out = self.up_ok(wf, None, "order")
        self.assertEqual(out["outputs"]["step"]["last"], {"value": 2})
        self.assert_started_in_order(self.events("order"), ["first", "mid", "last"])

    def test_a_command_reads_its_rows_from_smithers_deps_file(self):
        seen = self.path("seen.txt")
        wf = self.write("cmd.lua", """
            local outputs = smithers.outputs {
              page = z.object { size = z.integer(), text = z.string() },
              r = z.object { n = z.integer(), mode = z.string() },
            }
            return smithers(function(ctx)
              return Workflow { name = "cmd",
                Task { id = "fetch", output = outputs.page,
                       { size = 7, text = string.rep("x", 200000) } },
                Task { id = "report", output = outputs.r, needs = { src = "fetch" },
                       deps = { src = outputs.page }, env = { SEEN = %r },
                       command = { "python3", "-c", [[
import json, os, stat
p = os.environ["SMITHERS_DEPS_FILE"]
open(os.environ["SEEN"], "w").write(p)
rows = json.load(open(p))
mode = oct(stat.S_IMODE(os.stat(p).st_mode)) + oct(stat.S_IMODE(os.stat(os.path.dirname(p)).st_mode))
print(json.dumps({"n": rows["src"]["size"] + len(rows["src"]["text"]), "mode": mode}))
]] } },
              }
            end)
            """ % seen)
        out = self.up_ok(wf)
        self.assertEqual(out["outputs"]["r"]["report"], {"n": 200007, "mode": "0o6000o700"})
        path = self.read("seen.txt")
        self.assertFalse(os.path.exists(path), "the deps file outlived its attempt")
        self.assertFalse(os.path.exists(os.path.dirname(path)))

    def test_the_cache_key_covers_the_rows(self):
        wf = self.write("cache.lua", STEP + """
            return smithers(function(ctx)
              return Workflow { name = "cached",
                Task { id = "a", output = outputs.step, { value = ctx.input.v } },
                Task { id = "b", output = outputs.step, cache = true, deps = { a = outputs.step },
                       function(deps) return { value = deps.a.value * 10 } end },
              }
            end)
            """)

        def cache_event(run_id):
            return [e["type"] for e in self.events(run_id) if e["type"].startswith("Cache")]

        self.assertEqual(self.up_ok(wf, {"v": 1}, "r1")["outputs"]["step"]["b"], {"value": 10})
        self.assertEqual(cache_event("r1"), ["CacheMiss"])
        self.assertEqual(self.up_ok(wf, {"v": 1}, "r2")["outputs"]["step"]["b"], {"value": 10})
        self.assertEqual(cache_event("r2"), ["CacheHit"])
        self.assertEqual(self.up_ok(wf, {"v": 2}, "r3")["outputs"]["step"]["b"], {"value": 20})
        self.assertEqual(cache_event("r3"), ["CacheMiss"])

    def test_a_missing_row_fails_the_task_unless_deps_optional(self):
        wf = self.write("opt.lua", STEP + """
            return smithers(function(ctx)
              return Workflow { name = "opt",
                Task { id = "a", output = outputs.step, skipIf = true, { value = 1 } },
                Task { id = "b", output = outputs.step, function() return { value = 2 } end },
                Task { id = "c", output = outputs.step, deps = { a = outputs.step, b = outputs.step },
                       depsOptional = ctx.input.optional,
                       function(deps)
                         return { value = (deps.a and 100 or 0) + deps.b.value }
                       end },
              }
            end)
            """)
        out = self.up_ok(wf, {"optional": True}, "opt")
        self.assertEqual(out["outputs"]["step"]["c"], {"value": 2})
        r = self.up(wf, {"optional": False}, "strict")
        self.assertEqual(r.code, 1, r)
        c = self.node("strict", "c")
        self.assertEqual(c["state"], "failed")
        err = c["attempts"][-1]["error"]
        self.assertEqual(err["code"], "DEPS_MISSING")
        self.assertIn('deps.a: task "a"', err["message"])
        self.assertIn("skipped", err["message"])

    def test_a_dependency_never_mounted_fails_the_run_naming_it(self):
        wf = self.write("missing.lua", STEP + """
            return smithers(function(ctx)
              return Workflow { name = "missing", Parallel {
                Task { id = "a", output = outputs.step, function() return { value = 1 } end },
                Task { id = "b", output = outputs.step, dependsOn = { "ghost" },
                       function() return { value = 2 } end },
              } }
            end)
            """)
        r = self.up(wf, None, "ghost")
        self.assertEqual(r.code, 1, r)
        run = self.inspect("ghost")["run"]
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["error"]["code"], "DEPENDENCY_DEADLOCK")
        self.assertIn('"ghost"', run["error"]["message"])
        self.assertEqual(run["error"]["missing"], ["ghost"])
        self.assertEqual(self.node("ghost", "a")["state"], "finished")

    def test_a_dependency_mounted_later_is_waited_for(self):
        wf = self.write("later.lua", STEP + """
            return smithers(function(ctx)
              local a = ctx:outputMaybe(outputs.step, "a")
              return Workflow { name = "later", Parallel {
                Task { id = "a", output = outputs.step, function() return { value = 1 } end },
                Task { id = "c", output = outputs.step, deps = { b = outputs.step },
                       function(deps) return { value = deps.b.value + 1 } end },
                a and Task { id = "b", output = outputs.step,
                             function() return { value = a.value + 1 } end } or nil,
              } }
            end)
            """)
        out = self.up_ok(wf)
        self.assertEqual(out["outputs"]["step"], {"a": {"value": 1}, "b": {"value": 2},
                                                  "c": {"value": 3}})

    def test_a_cycle_in_the_first_render_is_bad_input_and_writes_nothing(self):
        for name, body in {
            "self": 'Task { id = "a", output = outputs.step, dependsOn = { "a" }, { value = 1 } }',
            "pair": 'Parallel { Task { id = "a", output = outputs.step, dependsOn = { "b" }, { value = 1 } },'
                    ' Task { id = "b", output = outputs.step, deps = { a = outputs.step }, { value = 1 } } }',
            "later_sibling": 'Sequence { Task { id = "a", output = outputs.step, dependsOn = { "b" },'
                             ' { value = 1 } }, Task { id = "b", output = outputs.step, { value = 2 } } }',
        }.items():
            with self.subTest(case=name):
                wf = self.write(name + ".lua", STEP + """
                    return smithers(function(ctx) return Workflow { name = "w", %s } end)
                    """ % body)
                r = self.up(wf)
                self.assertEqual(r.code, 4, r)
                self.assertIn("dependency cycle", r.stderr)
                self.assertIn('"a"', r.stderr)
                self.assert_nothing_written()

    def test_a_cycle_in_a_later_render_fails_the_run_naming_it(self):
        wf = self.write("late_cycle.lua", STEP + """
            return smithers(function(ctx)
              local go = ctx:outputMaybe(outputs.step, "go")
              return Workflow { name = "late",
                Task { id = "go", output = outputs.step, { value = 1 } },
                go and Parallel {
                  Task { id = "x", output = outputs.step, dependsOn = { "y" }, { value = 1 } },
                  Task { id = "y", output = outputs.step, dependsOn = { "x" }, { value = 1 } },
                } or nil,
              }
            end)
            """)
        r = self.up(wf, None, "late")
        self.assertEqual(r.code, 1, r)
        run = self.inspect("late")["run"]
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["error"]["code"], "RENDER_FAILED")
        self.assertIn("dependency cycle", run["error"]["message"])
        self.assertIn('"x"', run["error"]["message"])
        self.assertIn('"y"', run["error"]["message"])

    def test_wrong_output_and_bad_props_are_bad_input(self):
        cases = {
            "wrong_output": ('Sequence { Task { id = "a", output = outputs.step, { value = 1 } },'
                             ' Task { id = "b", output = outputs.other, deps = { a = outputs.other },'
                             ' { value = 1 } } }',
                             'deps.a reads output "other" of task "a", which writes "step"'),
            "needs_type": ('Task { id = "b", output = outputs.step, needs = { p = 3 }, { value = 1 } }',
                           '"needs" must map names to task ids'),
            "deps_type": ('Task { id = "b", output = outputs.step, deps = { p = "step" }, { value = 1 } }',
                          '"deps" must map keys to outputs'),
        }
        for name, (body, expected) in cases.items():
            with self.subTest(case=name):
                wf = self.write(name + ".lua", """
                    local outputs = smithers.outputs { step = z.object { value = z.integer() },
                                                       other = z.object { value = z.integer() } }
                    return smithers(function(ctx) return Workflow { name = "w", %s } end)
                    """ % body)
                r = self.up(wf)
                self.assertEqual(r.code, 4, r)
                self.assertIn(expected, r.stderr)
                self.assert_nothing_written()

    def test_in_a_loop_rows_come_from_this_iteration_and_outside_ones_from_theirs(self):
        wf = self.write("loop.lua", STEP + """
            return smithers(function(ctx)
              local done = ctx:iterationCount(outputs.step, "b") >= 3
              return Workflow { name = "loop",
                Task { id = "seed", output = outputs.step, { value = 100 } },
                Loop { id = "L", ["until"] = done, maxIterations = 5,
                  Task { id = "a", output = outputs.step,
                         function(deps, info) return { value = info.iteration * 10 } end },
                  Task { id = "b", output = outputs.step,
                         deps = { a = outputs.step, seed = outputs.step },
                         function(deps) return { value = deps.a.value + deps.seed.value } end },
                },
              }
            end)
            """)
        out = self.up_ok(wf, None, "loop")
        rows = self.query("SELECT node_id, iteration, payload_json FROM _smithers_outputs"
                          " WHERE node_id = 'b' ORDER BY iteration")
        self.assertEqual([(r["iteration"], json.loads(r["payload_json"])["value"]) for r in rows],
                         [(0, 100), (1, 110), (2, 120)])
        self.assertEqual(out["outputs"]["step"]["b"], {"value": 120})

    def test_an_agent_gets_the_rows_after_its_prompt(self):
        url = self.serve_model({"/v1/chat/completions": [
            {"reply": {"structured": {"value": 8}}}]})
        wf = self.write("agent.lua", STEP + """
            local a = smithers.Agent { provider = "openai", model = "m", baseUrl = %r }
            return smithers(function(ctx)
              return Workflow { name = "agent",
                Task { id = "seed", output = outputs.step, { value = 7 } },
                Task { id = "ask", output = outputs.step, agent = a, needs = { prev = "seed" },
                       deps = { prev = outputs.step }, "Add one to prev.value." },
              }
            end)
            """ % (url + "/v1"))
        r = self.up(wf, None, "agent", env={"OPENAI_API_KEY": "sk-test-" + "Zq7Xv2Lm9Pw4Rt6Yb1Nc"})
        self.assertEqual(r.code, 0, r)
        with open(self.path("requests.jsonl")) as f:
            body = json.dumps(json.loads(f.readline())["body"]["messages"])
        self.assertIn("Add one to prev.value.", body)
        self.assertIn('{\\"prev\\":{\\"value\\":7}}', body)

    def test_a_deps_chain_killed_midway_resumes_running_each_task_once(self):
        pidfile = self.path("sleep.pid")
        middle = """Task { id = id, output = outputs.step, needs = { prev = "s" .. (i - 1) },
                           deps = { prev = outputs.step }, env = { P = %r, LOG = %r },
                           command = { "sh", "-c", [[
                             echo "$SMITHERS_NODE_ID" >> "$LOG"
                             if [ "$SMITHERS_ATTEMPT" = 1 ]; then echo $$ > "$P"; exec sleep 30; fi
                             python3 -c 'import json,os; r=json.load(open(os.environ["SMITHERS_DEPS_FILE"])); print(json.dumps({"value": r["prev"]["value"] + 1}))'
                           ]] } }""" % (pidfile, self.path("cmd_log.txt"))
        wf = self.chain("kill.lua", 10, middle)
        proc = self.start_up(wf, {"n": 10}, "killed")
        self.wait_for(lambda: os.path.exists(pidfile) and os.path.getsize(pidfile) > 0,
                      what="the middle command to start")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        sleep_pid = int(self.read("sleep.pid"))
        self.wait_for(lambda: not pid_alive(sleep_pid), timeout=5, what="the orphan to die")

        r = self.up(wf, None, "killed", "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["step"],
                         {"s%d" % i: {"value": i + 1} for i in range(10)})
        ran = self.read("log.txt").split()
        self.assertEqual(sorted(ran), sorted("s%d" % i for i in range(10) if i != 5))
        self.assertEqual(len(ran), len(set(ran)), "a compute task ran twice: %s" % ran)
        self.assertEqual(self.read("cmd_log.txt").split(), ["s5", "s5"])  # abandoned, then done
        s5 = self.node("killed", "s5")
        self.assertEqual([a["state"] for a in s5["attempts"]], ["cancelled", "finished"])
        for i in range(10):
            if i != 5:
                attempts = self.node("killed", "s%d" % i)["attempts"]
                self.assertEqual([a["state"] for a in attempts], ["finished"], i)


if __name__ == "__main__":
    main()
