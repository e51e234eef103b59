#!/usr/bin/env python3
"""Task modes and task options end to end: static, compute, command (json/text),
retries and backoff, timeouts, skipIf, continueOnFail, output validation, and the
per-output SQL views."""

import json
import os
import time

from smithers_e2e import PYTHON, E2ETest, main, pid_alive


class TaskModesTest(E2ETest):
    def test_static_value(self):
        wf = self.write("static.lua", """
            local outputs = smithers.outputs {
              info = z.object { name = z.string(), n = z.integer(), tags = z.array(z.string()) },
            }
            return smithers(function(ctx)
              return Workflow { name = "static",
                Task { id = "s", output = outputs.info,
                       { name = ctx.input.who, n = 7, tags = { "x", "y" } } },
              }
            end)
            """)
        out = self.up_ok(wf, {"who": "ann"})
        self.assertEqual(out["outputs"], {"info": {"s": {"name": "ann", "n": 7, "tags": ["x", "y"]}}})
        node = self.node(out["runId"], "s")
        self.assertEqual(node["state"], "finished")
        self.assertEqual([a["state"] for a in node["attempts"]], ["finished"])

    def test_compute_function(self):
        wf = self.write("compute.lua", """
            local outputs = smithers.outputs {
              sq = z.object { v = z.integer(), runId = z.string(), nodeId = z.string(),
                              attempt = z.integer(), iteration = z.integer() },
            }
            return smithers(function(ctx)
              return Workflow { name = "compute",
                Task { id = "square", output = outputs.sq, function(c)
                  return { v = ctx.input.x * ctx.input.x, runId = c.runId, nodeId = c.nodeId,
                           attempt = c.attempt, iteration = c.iteration }
                end },
              }
            end)
            """)
        out = self.up_ok(wf, {"x": 12}, "run-compute")
        self.assertEqual(out["runId"], "run-compute")
        self.assertEqual(out["outputs"]["sq"]["square"],
                         {"v": 144, "runId": "run-compute", "nodeId": "square", "attempt": 1,
                          "iteration": 0})

    def command_module(self, name, command, schema, parse=None, extra=""):
        parse_prop = "" if parse is None else 'parse = "%s",' % parse
        return self.write(name, """
            local outputs = smithers.outputs { r = %s }
            return smithers(function(ctx)
              return Workflow { name = "cmd",
                Task { id = "c", output = outputs.r, %s %s command = %s },
              }
            end)
            """ % (schema, parse_prop, extra, command))

    def test_command_parse_json(self):
        wf = self.command_module(
            "json.lua",
            """{ %r, "-c", [[import json; print(json.dumps({"sum": 1 + 2, "word": "hi"}))]] }"""
            % PYTHON,
            "z.object { sum = z.integer(), word = z.string() }")
        out = self.up_ok(wf)
        self.assertEqual(out["outputs"]["r"]["c"], {"sum": 3, "word": "hi"})
        rows = self.query("SELECT payload_json FROM _smithers_outputs WHERE node_id = 'c'")
        self.assertEqual([json.loads(r["payload_json"]) for r in rows], [{"sum": 3, "word": "hi"}])

    def test_command_json_must_match_the_schema(self):
        wf = self.command_module(
            "json_bad_schema.lua", """{ "echo", [[{"sum": "three"}]] }""",
            "z.object { sum = z.integer() }")
        r = self.up(wf)
        self.assertEqual(r.code, 1, r)
        out = r.json()
        self.assertEqual(out["status"], "failed")
        cause = out["error"]["cause"]
        self.assertEqual(cause["code"], "INVALID_OUTPUT")
        self.assertIn("$.sum", cause["message"])
        self.assertEqual(out["outputs"], {})

    def test_command_invalid_json_fails_the_attempt(self):
        wf = self.command_module("json_bad.lua", """{ "echo", "this is not json" }""",
                                 "z.object { sum = z.integer() }")
        r = self.up(wf)
        self.assertEqual(r.code, 1, r)
        out = r.json()
        self.assertEqual(out["error"]["code"], "TASK_FAILED")
        self.assertEqual(out["error"]["cause"]["code"], "INVALID_OUTPUT")
        self.assertIn("not JSON", out["error"]["cause"]["message"])
        node = self.node(out["runId"], "c")
        self.assertEqual(node["state"], "failed")
        self.assertEqual(node["attempts"][0]["state"], "failed")
        self.assertEqual(node["attempts"][0]["error"]["code"], "INVALID_OUTPUT")
        self.assertEqual(self.query("SELECT * FROM _smithers_outputs"), [])

    def test_command_parse_text(self):
        wf = self.command_module(
            "text.lua", """{ "sh", "-c", [[echo out-line; echo err-line >&2]] }""",
            "z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() }",
            parse="text")
        out = self.up_ok(wf)
        self.assertEqual(out["outputs"]["r"]["c"],
                         {"exitCode": 0, "stdout": "out-line\n", "stderr": "err-line\n"})

    def test_command_nonzero_exit_is_a_failed_attempt(self):
        for parse in ("json", "text"):
            with self.subTest(parse=parse):
                wf = self.command_module(
                    "exit_%s.lua" % parse,
                    """{ "sh", "-c", [[echo '{}'; echo something broke >&2; exit 3]] }""",
                    "z.object { exitCode = z.optional(z.integer()) }", parse=parse)
                r = self.up(wf)
                self.assertEqual(r.code, 1, r)
                out = r.json()
                cause = out["error"]["cause"]
                self.assertEqual(cause["code"], "COMMAND_FAILED")
                self.assertEqual(cause["exitCode"], 3)
                self.assertIn("something broke", cause["stderr"])
                node = self.node(out["runId"], "c")
                self.assertEqual(node["state"], "failed")
                self.assertEqual([a["state"] for a in node["attempts"]], ["failed"])
                self.assertEqual(node["attempts"][0]["error"]["exitCode"], 3)

    def test_command_cwd_env_and_smithers_variables(self):
        work = self.path("work")
        os.mkdir(work)
        script = ("import json, os; print(json.dumps({'cwd': os.getcwd(), "
                  "'greeting': os.environ.get('GREETING'), 'num': os.environ.get('NUM'), "
                  "'runId': os.environ.get('SMITHERS_RUN_ID'), "
                  "'nodeId': os.environ.get('SMITHERS_NODE_ID'), "
                  "'iteration': os.environ.get('SMITHERS_ITERATION'), "
                  "'attempt': os.environ.get('SMITHERS_ATTEMPT'), "
                  "'inherited': os.environ.get('TZ'), "
                  "'leaked': os.environ.get('E2E_NOT_INHERITED', 'no')}))")
        wf = self.command_module(
            "env.lua", "{ %r, \"-c\", %r }" % (PYTHON, script),
            "z.object { cwd = z.string(), greeting = z.string(), num = z.string(), "
            "runId = z.string(), nodeId = z.string(), iteration = z.string(), "
            "attempt = z.string(), inherited = z.string(), leaked = z.string() }",
            extra="cwd = %r, env = { GREETING = \"hello there\", NUM = 42 }," % work)
        # The engine's environment reaches the command only through the
        # allow-list (PATH HOME LANG TZ TMPDIR LC_*) and what the task declares.
        saved_tz = os.environ.get("TZ")
        os.environ["TZ"] = "Etc/UTC"
        os.environ["E2E_NOT_INHERITED"] = "yes"
        try:
            out = self.up_ok(wf, None, "env-run")
        finally:
            del os.environ["E2E_NOT_INHERITED"]
            if saved_tz is None:
                del os.environ["TZ"]
            else:
                os.environ["TZ"] = saved_tz
        self.assertEqual(out["outputs"]["r"]["c"], {
            "cwd": os.path.realpath(work), "greeting": "hello there", "num": "42",
            "runId": "env-run", "nodeId": "c", "iteration": "0", "attempt": "1",
            "inherited": "Etc/UTC", "leaked": "no"})

    def test_command_that_cannot_start(self):
        wf = self.command_module("missing.lua", """{ "/nonexistent/smithers-e2e-tool" }""",
                                 "z.object {}")
        r = self.up(wf)
        self.assertEqual(r.code, 1, r)
        cause = r.json()["error"]["cause"]
        self.assertEqual(cause["code"], "COMMAND_NOT_STARTED")
        self.assertIn("/nonexistent/smithers-e2e-tool", cause["message"])


class RetryTest(E2ETest):
    def test_fails_twice_then_succeeds(self):
        counter = self.path("counter")
        wf = self.write("retry.lua", """
            local outputs = smithers.outputs { r = z.object { n = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "retry",
                Task { id = "flaky", output = outputs.r, retries = 2, env = { C = %r },
                       command = { "sh", "-c", [[
                         n=$(cat "$C" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$C"
                         if [ $n -lt 3 ]; then echo "attempt $n failed" >&2; exit 1; fi
                         echo "{\\"n\\": $n}"]] } },
              }
            end)
            """ % counter)
        out = self.up_ok(wf)
        self.assertEqual(out["outputs"]["r"]["flaky"], {"n": 3})
        self.assertEqual(self.read("counter").strip(), "3")
        node = self.node(out["runId"], "flaky")
        self.assertEqual(node["state"], "finished")
        self.assertEqual(node["lastAttempt"], 3)
        self.assertEqual([(a["attempt"], a["state"]) for a in node["attempts"]],
                         [(1, "failed"), (2, "failed"), (3, "finished")])
        self.assertIn("attempt 1 failed", node["attempts"][0]["error"]["stderr"])
        rows = self.query("SELECT attempt, state FROM _smithers_attempts WHERE node_id = 'flaky' "
                          "ORDER BY attempt")
        self.assertEqual([(r["attempt"], r["state"]) for r in rows],
                         [(1, "failed"), (2, "failed"), (3, "finished")])
        events = self.events(out["runId"])
        self.assertEqual([e["payload"]["attempt"] for e in events if e["type"] == "NodeRetrying"],
                         [2, 3])
        self.assertEqual([e["payload"]["attempt"] for e in events if e["type"] == "NodeStarted"],
                         [1, 2, 3])

    def test_retries_exhausted_fails_the_run(self):
        wf = self.write("exhaust.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { name = "exhaust",
                Task { id = "never", output = outputs.r, retries = 1,
                       function(c) error("nope " .. c.attempt) end },
              }
            end)
            """)
        r = self.up(wf)
        self.assertEqual(r.code, 1, r)
        out = r.json()
        self.assertIn("nope 2", out["error"]["cause"]["message"])
        node = self.node(out["runId"], "never")
        self.assertEqual([a["state"] for a in node["attempts"]], ["failed", "failed"])

    def backoff_gaps(self, backoff, delay_ms, retries=3):
        wf = self.write("backoff_%s.lua" % backoff, """
            local outputs = smithers.outputs { r = z.object { attempt = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "backoff",
                Task { id = "b", output = outputs.r, retries = %d,
                       retryPolicy = { backoff = "%s", initialDelayMs = %d },
                       function(c)
                         if c.attempt <= %d then error("not yet") end
                         return { attempt = c.attempt }
                       end },
              }
            end)
            """ % (retries, backoff, delay_ms, retries))
        out = self.up_ok(wf)
        self.assertEqual(out["outputs"]["r"]["b"], {"attempt": retries + 1})
        attempts = self.node(out["runId"], "b")["attempts"]
        self.assertEqual(len(attempts), retries + 1)
        # What was scheduled, as persisted: each failure's NodeRetrying event
        # carries the retry time, computed from the failure's own timestamp;
        # no attempt started before its retry time. (Not checked: how soon
        # after it an attempt started, which depends on the machine's load.)
        retrying = [e["payload"] for e in self.events(out["runId"]) if e["type"] == "NodeRetrying"]
        self.assertEqual([r["attempt"] for r in retrying], list(range(2, retries + 2)))
        delays = []
        for i, r in enumerate(retrying):
            delays.append(r["retryAtMs"] - attempts[i]["finishedAtMs"])
            self.assertGreaterEqual(attempts[i + 1]["startedAtMs"], r["retryAtMs"], attempts)
        return delays

    def test_exponential_backoff(self):
        self.assertEqual(self.backoff_gaps("exponential", 100), [100, 200, 400])

    def test_linear_backoff(self):
        self.assertEqual(self.backoff_gaps("linear", 80), [80, 160, 240])

    def test_fixed_backoff(self):
        self.assertEqual(self.backoff_gaps("fixed", 100, retries=2), [100, 100])


class TimeoutTest(E2ETest):
    def test_command_timeout_kills_the_process_group(self):
        pidfile = self.path("sleep.pid")
        wf = self.write("timeout.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { name = "timeout",
                Task { id = "slow", output = outputs.r, timeoutMs = 300, env = { P = %r },
                       command = { "sh", "-c", [[sleep 30 & echo $! > "$P"; wait]] } },
              }
            end)
            """ % pidfile)
        start = time.monotonic()
        r = self.up(wf)
        self.assertEqual(r.code, 1, r)
        self.assertLess(time.monotonic() - start, 4.5, "the timeout did not stop the command")
        out = r.json()
        self.assertEqual(out["error"]["cause"]["code"], "TASK_TIMEOUT")
        node = self.node(out["runId"], "slow")
        self.assertEqual(node["state"], "failed")
        self.assertEqual(node["attempts"][0]["error"]["code"], "TASK_TIMEOUT")
        self.assertGreaterEqual(
            node["attempts"][0]["finishedAtMs"] - node["attempts"][0]["startedAtMs"], 290)
        sleep_pid = int(self.read("sleep.pid"))
        self.wait_for(lambda: not pid_alive(sleep_pid), timeout=3,
                      what="the timed-out command's child to die")

    def test_compute_timeout_stops_an_infinite_loop(self):
        wf = self.write("spin.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { name = "spin",
                Task { id = "spin", output = outputs.r, timeoutMs = 300,
                       function() while true do end end },
              }
            end)
            """)
        start = time.monotonic()
        r = self.up(wf, timeout=20)
        self.assertEqual(r.code, 1, r)
        self.assertLess(time.monotonic() - start, 5)
        out = r.json()
        self.assertEqual(out["error"]["cause"]["code"], "TASK_TIMEOUT")
        node = self.node(out["runId"], "spin")
        self.assertEqual(node["attempts"][0]["error"]["code"], "TASK_TIMEOUT")


    def test_timed_out_attempts_are_retried(self):
        wf = self.write("timeout_retry.lua", """
            local outputs = smithers.outputs { r = z.object { v = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "timeout_retry",
                Task { id = "cmd", output = outputs.r, retries = 1, timeoutMs = 200,
                       command = { "sh", "-c", [[
                         if [ "$SMITHERS_ATTEMPT" = 1 ]; then sleep 10; fi; echo '{"v": 1}']] } },
                Task { id = "fn", output = outputs.r, retries = 1, timeoutMs = 200,
                       function(c)
                         if c.attempt == 1 then while true do end end
                         return { v = 2 }
                       end },
              }
            end)
            """)
        out = self.up_ok(wf)
        self.assertEqual(out["outputs"]["r"], {"cmd": {"v": 1}, "fn": {"v": 2}})
        for node_id in ("cmd", "fn"):
            attempts = self.node(out["runId"], node_id)["attempts"]
            self.assertEqual([a["state"] for a in attempts], ["failed", "finished"])
            self.assertEqual(attempts[0]["error"]["code"], "TASK_TIMEOUT")


class FailureTest(E2ETest):
    def test_a_failure_cancels_running_siblings(self):
        pidfile = self.path("long.pid")
        wf = self.write("siblings.lua", """
            local outputs = smithers.outputs { r = z.object { v = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "siblings",
                Parallel {
                  Task { id = "long", output = outputs.r, env = { P = %r },
                         command = { "sh", "-c", [[echo $$ > "$P"; exec sleep 30]] } },
                  -- fails once "long" has written its pid: provably while it runs
                  Task { id = "bad", output = outputs.r, env = { P = %r },
                         command = { "sh", "-c",
                                     [[while [ ! -s "$P" ]; do sleep 0.02; done; exit 2]] } },
                },
                Task { id = "after", output = outputs.r, { v = "never" } },
              }
            end)
            """ % (pidfile, pidfile))
        start = time.monotonic()
        r = self.up(wf)
        self.assertEqual(r.code, 1, r)
        self.assertLess(time.monotonic() - start, 4)
        out = r.json()
        self.assertEqual(out["error"]["nodeId"], "bad")
        self.assertEqual(out["error"]["cause"]["code"], "COMMAND_FAILED")
        run = out["runId"]
        self.assertEqual(self.node(run, "bad")["state"], "failed")
        # The sibling was stopped because the run failed: cancelled, not failed.
        long = self.node(run, "long")
        self.assertEqual(long["state"], "cancelled")
        self.assertEqual(long["attempts"][0]["state"], "cancelled")
        self.assertEqual(long["attempts"][0]["error"]["code"], "TASK_CANCELLED")
        self.assertFalse(pid_alive(int(self.read("long.pid"))))
        events = self.events(run)
        failed = [e["payload"]["nodeId"] for e in events if e["type"] == "NodeFailed"]
        cancelled = [e["payload"]["nodeId"] for e in events if e["type"] == "NodeCancelled"]
        self.assertEqual((failed, cancelled), (["bad"], ["long"]))
        self.assertEqual(events[-1]["type"], "RunFailed")
        self.assertNotIn("after", out["outputs"].get("r", {}))

    def test_compute_error_names_file_and_line(self):
        wf = self.write("compute_error.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { name = "compute_error",
                Task { id = "oops", output = outputs.r, function()
                  local cfg = nil
                  return cfg.value -- boom
                end },
              }
            end)
            """)
        line = self.line_of(wf, "-- boom")
        r = self.up(wf)
        self.assertEqual(r.code, 1, r)
        cause = r.json()["error"]["cause"]
        self.assertIn("compute_error.lua:%d" % line, cause["message"])

    def test_render_failure_mid_run_fails_the_run(self):
        wf = self.write("render_late.lua", """
            local outputs = smithers.outputs { r = z.object { v = z.string() } }
            return smithers(function(ctx)
              if ctx:outputMaybe(outputs.r, "first") then
                error("cannot render after first") -- late
              end
              return Workflow { name = "render_late",
                Task { id = "first", output = outputs.r, { v = "1" } },
                Task { id = "second", output = outputs.r, { v = "2" } },
              }
            end)
            """)
        line = self.line_of(wf, "-- late")
        r = self.up(wf)
        self.assertEqual(r.code, 1, r)
        out = r.json()
        self.assertEqual(out["status"], "failed")
        self.assertEqual(out["error"]["code"], "RENDER_FAILED")
        self.assertIn("render_late.lua:%d" % line, out["error"]["message"])
        self.assertEqual(out["outputs"], {"r": {"first": {"v": "1"}}})
        self.assertEqual(self.inspect(out["runId"])["run"]["status"], "failed")


class SkipAndContinueTest(E2ETest):
    def test_skip_if(self):
        marker = self.path("ran")
        wf = self.write("skip.lua", """
            local outputs = smithers.outputs { r = z.object { v = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "skip",
                Task { id = "skipped", output = outputs.r, skipIf = ctx.input.skip,
                       command = { "sh", "-c", [[touch %s; echo '{"v":"ran"}']] } },
                Task { id = "downstream", output = outputs.r, { v = "down" } },
              }
            end)
            """ % marker)
        out = self.up_ok(wf, {"skip": True})
        run = out["runId"]
        self.assertFalse(os.path.exists(marker), "a skipped task ran")
        self.assertEqual(out["outputs"], {"r": {"downstream": {"v": "down"}}})
        self.assertEqual(self.node(run, "skipped")["state"], "skipped")
        self.assertEqual(self.node(run, "skipped")["attempts"], [])
        self.assertEqual(self.node(run, "downstream")["state"], "finished")
        events = self.events(run)
        skipped = [e for e in events if e["type"] == "NodeSkipped"]
        self.assertEqual([e["payload"]["nodeId"] for e in skipped], ["skipped"])
        started = next(e for e in events
                       if e["type"] == "NodeStarted" and e["payload"]["nodeId"] == "downstream")
        self.assertLess(skipped[0]["seq"], started["seq"])
        # skipIf false: the task runs.
        out = self.up_ok(wf, {"skip": False})
        self.assertTrue(os.path.exists(marker))
        self.assertEqual(out["outputs"]["r"]["skipped"], {"v": "ran"})

    def test_continue_on_fail(self):
        wf = self.write("cont.lua", """
            local outputs = smithers.outputs { r = z.object { v = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "cont",
                Task { id = "broken", output = outputs.r, continueOnFail = true,
                       command = { "sh", "-c", "exit 5" } },
                Task { id = "next", output = outputs.r, { v = "still ran" } },
              }
            end)
            """)
        out = self.up_ok(wf)
        run = out["runId"]
        self.assertEqual(out["outputs"], {"r": {"next": {"v": "still ran"}}})
        insp = self.inspect(run)
        self.assertEqual(insp["run"]["status"], "finished")
        self.assertEqual(self.node(run, "broken")["state"], "failed")
        self.assertEqual(self.node(run, "next")["state"], "finished")
        self.assertEqual(
            self.query("SELECT COUNT(*) AS n FROM _smithers_outputs WHERE node_id = 'broken'"),
            [{"n": 0}])
        self.assertEqual(self.query("SELECT node_id FROM r"), [{"node_id": "next"}])


class OutputValidationTest(E2ETest):
    def test_static_value_not_matching_the_schema_fails_the_run(self):
        wf = self.write("invalid.lua", """
            local outputs = smithers.outputs {
              r = z.object { n = z.integer(), inner = z.object { tags = z.array(z.string()) } },
            }
            return smithers(function(ctx)
              return Workflow { name = "invalid",
                Task { id = "bad", output = outputs.r, retries = 3,
                       { n = "seven", inner = { tags = { "ok", 3 } } } },
              }
            end)
            """)
        r = self.up(wf)
        self.assertEqual(r.code, 1, r)
        out = r.json()
        self.assertEqual(out["status"], "failed")
        self.assertEqual(out["error"]["nodeId"], "bad")
        cause = out["error"]["cause"]
        self.assertEqual(cause["code"], "INVALID_OUTPUT")
        self.assertIn("$.n", cause["message"])
        self.assertIn("$.inner.tags[1]", cause["message"])
        self.assertIn("INVALID_OUTPUT", json.dumps(self.inspect(out["runId"])["run"]["error"]))
        # A static value cannot change: it is not retried.
        node = self.node(out["runId"], "bad")
        self.assertEqual(len(node["attempts"]), 1)
        self.assertEqual(self.query("SELECT * FROM _smithers_outputs"), [])
        self.assertIn("$.n", r.stderr)


class OutputViewTest(E2ETest):
    def test_output_view_has_typed_columns(self):
        wf = self.write("views.lua", """
            local outputs = smithers.outputs {
              report = z.object { title = z.string(), count = z.integer(), ratio = z.number(),
                                  ok = z.boolean(), tags = z.array(z.string()),
                                  note = z.nullable(z.string()) },
            }
            return smithers(function(ctx)
              return Workflow { name = "views",
                Task { id = "one", output = outputs.report,
                       { title = "first", count = 3, ratio = 0.5, ok = true, tags = { "a", "b" },
                         note = smithers.null } },
                Task { id = "two", output = outputs.report, function()
                  return { title = "second", count = 40, ratio = 2.25, ok = false,
                           tags = smithers.array {}, note = "n" }
                end },
              }
            end)
            """)
        out = self.up_ok(wf, None, "views-run")
        conn = self.connect()
        cur = conn.execute("SELECT * FROM report ORDER BY node_id")
        columns = [d[0] for d in cur.description]
        for c in ("run_id", "node_id", "iteration", "title", "count", "ratio", "ok", "tags",
                  "note", "created_at_ms"):
            self.assertIn(c, columns)
        rows = [dict(r) for r in cur.fetchall()]
        self.assertEqual(len(rows), 2)
        one, two = rows
        self.assertEqual((one["run_id"], one["node_id"], one["iteration"]), ("views-run", "one", 0))
        self.assertEqual(one["title"], "first")
        self.assertIsInstance(one["count"], int)
        self.assertEqual(one["count"], 3)
        self.assertIsInstance(one["ratio"], float)
        self.assertEqual(one["ratio"], 0.5)
        self.assertEqual(one["ok"], 1)
        self.assertEqual(json.loads(one["tags"]), ["a", "b"])
        self.assertIsNone(one["note"])
        self.assertEqual((two["title"], two["count"], two["ratio"], two["ok"], two["note"]),
                         ("second", 40, 2.25, 0, "n"))
        self.assertEqual(json.loads(two["tags"]), [])
        self.assertIsInstance(one["created_at_ms"], int)
        self.assertEqual(out["outputs"]["report"]["two"]["tags"], [])


if __name__ == "__main__":
    main()
