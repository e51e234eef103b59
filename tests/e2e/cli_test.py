#!/usr/bin/env python3
"""The read commands and cancel end to end: ps --status, inspect --json,
events --since --json, cancel (with and without a live owner), --help."""

import hashlib
import json
import os
import signal
import time

from smithers_e2e import SOURCE_DIR, E2ETest, main, pid_alive

HELLO = os.path.join(SOURCE_DIR, "examples", "hello.lua")


class ReadCommandsTest(E2ETest):
    def make_runs(self):
        ok = self.up_ok(HELLO, {"name": "ps"}, "run-ok")
        bad = self.write("bad.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { name = "bad",
                Task { id = "boom", output = outputs.r, command = { "false" } } }
            end)
            """)
        r = self.up(bad, None, "run-bad")
        self.assertEqual(r.code, 1, r)
        return ok

    def test_up_stats_counts_renders_and_nodes(self):
        # A growing chain of 3: renders of 1, 2 and 3 tasks (plus the Workflow
        # and the Sequence each); s2's output is read by no render.
        chain = self.write("chain.lua", """
            local outputs = smithers.outputs { step = z.object { value = z.integer() } }
            return smithers(function(ctx)
              local tasks = {}
              for i = 0, 2 do
                local prev = i > 0 and ctx:outputMaybe(outputs.step, "s" .. (i - 1)) or nil
                if i == 0 or prev then
                  tasks[#tasks + 1] = Task { id = "s" .. i, output = outputs.step,
                    function() return { value = (prev and prev.value or 0) + 1 } end }
                end
              end
              return Workflow { name = "chain", Sequence(tasks) }
            end)
            """)
        out = self.up_ok(chain, None, None, "--stats")
        self.assertEqual(out["outputs"]["step"]["s2"], {"value": 3})
        stats = out["stats"]
        self.assertEqual((stats["renders"], stats["nodes"]), (3, 3 + 4 + 5), stats)
        for k in ("renderNs", "planNs", "frameNs"):
            self.assertGreater(stats[k], 0, k)
        self.assertAlmostEqual(stats["nsPerNode"],
                               (stats["renderNs"] + stats["planNs"] + stats["frameNs"]) / 12)
        self.assertNotIn("stats", self.up_ok(chain))

    def test_ps_filters_by_status(self):
        self.make_runs()
        r = self.run_cli("ps", "--json")
        self.assertEqual(r.code, 0, r)
        runs = r.json()["runs"]
        self.assertEqual(sorted((x["runId"], x["status"]) for x in runs),
                         [("run-bad", "failed"), ("run-ok", "finished")])
        self.assertEqual(runs[0]["runId"], "run-bad", "newest first")
        for status, want in [("failed", ["run-bad"]), ("finished", ["run-ok"]),
                             ("cancelled", [])]:
            r = self.run_cli("ps", "--status", status, "--json")
            self.assertEqual(r.code, 0, r)
            self.assertEqual([x["runId"] for x in r.json()["runs"]], want, status)
        r = self.run_cli("ps", "--limit", "1", "--json")
        self.assertEqual([x["runId"] for x in r.json()["runs"]], ["run-bad"])
        r = self.run_cli("ps", "-s", "failed")
        self.assertEqual(r.code, 0, r)
        self.assertIn("run-bad", r.stdout)
        self.assertNotIn("run-ok", r.stdout)

    def test_inspect_json(self):
        self.make_runs()
        with open(HELLO, "rb") as f:
            source_hash = hashlib.sha256(f.read()).hexdigest()
        j = self.inspect("run-ok")
        run = j["run"]
        self.assertEqual(run["runId"], "run-ok")
        self.assertEqual(run["status"], "finished")
        self.assertEqual(run["workflowName"], "hello")
        self.assertEqual(run["workflowHash"], source_hash)
        self.assertEqual(run["input"], {"name": "ps"})
        self.assertIsNone(run["error"])
        self.assertIsNone(run["runtimeOwnerId"])
        self.assertGreaterEqual(run["finishedAtMs"], run["startedAtMs"])
        self.assertEqual([(n["nodeId"], n["state"], n["lastAttempt"]) for n in j["nodes"]],
                         [("greet", "finished", 1), ("measure", "finished", 1)])
        self.assertEqual(j["nodes"][0]["outputTable"], "greeting")
        self.assertEqual(sorted((o["nodeId"], o["outputTable"], json.dumps(o["payload"]))
                                for o in j["outputs"]),
                         [("greet", "greeting", '{"message": "Hello, ps"}'),
                          ("measure", "length", '{"n": 9}')])
        self.assertGreaterEqual(j["lastFrameNo"], 1)
        bad = self.inspect("run-bad")
        self.assertEqual(bad["run"]["status"], "failed")
        self.assertEqual(bad["run"]["error"]["code"], "TASK_FAILED")
        self.assertEqual(bad["nodes"][0]["attempts"][0]["error"]["code"], "COMMAND_FAILED")
        # Without --json: a readable table.
        r = self.run_cli("inspect", "run-ok")
        self.assertEqual(r.code, 0, r)
        self.assertIn("greet", r.stdout)
        self.assertIn("finished", r.stdout)

    def test_events_since(self):
        self.make_runs()
        events = self.events("run-ok")
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, list(range(1, len(events) + 1)), "seqs must be gapless from 1")
        self.assertEqual(events[0]["type"], "RunStarted")
        self.assertEqual(events[-1]["type"], "RunFinished")
        for e in events:
            self.assertEqual(e["runId"], "run-ok")
            self.assertIsInstance(e["timestampMs"], int)
        times = [e["timestampMs"] for e in events]
        self.assertEqual(times, sorted(times))
        types = [e["type"] for e in events]
        for t in ("FrameCommitted", "NodePending", "NodeStarted", "NodeFinished"):
            self.assertIn(t, types)
        later = self.events("run-ok", since=3)
        self.assertEqual(later, events[3:])
        self.assertEqual(self.events("run-ok", since=seqs[-1]), [])
        self.assertEqual(self.events("run-ok", since=0), events)
        # Each run has its own sequence.
        bad = [e["seq"] for e in self.events("run-bad")]
        self.assertEqual(bad, list(range(1, len(bad) + 1)))
        # --follow on an ended run prints every event (one JSON object a line) and stops.
        r = self.run_cli("events", "run-ok", "--follow", "--json", "--since", "1", timeout=10)
        self.assertEqual(r.code, 0, r)
        self.assertEqual([json.loads(l) for l in r.stdout.splitlines()], events[1:])

    def test_help_of_every_command(self):
        for cmd in ([], ["up"], ["ps"], ["inspect"], ["events"], ["cancel"]):
            with self.subTest(cmd=cmd):
                r = self.run_cli(*(cmd + ["--help"]), db=False)
                self.assertEqual(r.code, 0, r)
                self.assertIn("Usage", r.stdout + r.stderr)
        r = self.run_cli("up", "--help", db=False)
        self.assertIn("--resume", r.stdout)
        self.assertIn("Exit codes", r.stdout)
        r = self.run_cli("--version", db=False)
        self.assertEqual(r.code, 0, r)
        self.assertIn("smithers", r.stdout)
        self.assertFalse(os.path.exists(self.db))


class VersionTest(E2ETest):
    def test_version_comes_from_the_cmake_project(self):
        import re
        with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
            version = re.search(r"project\(smithers VERSION (\S+)", f.read()).group(1)
        r = self.run_cli("--version", db=False)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.stdout.strip(), "smithers " + version)


class CancelTest(E2ETest):
    def sleeper(self):
        self.pidfile = self.path("sleep.pid")
        return self.write("sleeper.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { name = "sleeper",
                Task { id = "quick", output = outputs.r, {} },
                Task { id = "nap", output = outputs.r, env = { P = %r },
                       command = { "sh", "-c", [[echo $$ > "$P"; exec sleep 30]] } },
                Task { id = "never", output = outputs.r, {} },
              }
            end)
            """ % self.pidfile)

    def start_and_wait(self, run_id):
        proc = self.start_up(self.sleeper(), None, run_id)
        self.wait_for(lambda: os.path.exists(self.pidfile) and os.path.getsize(self.pidfile) > 0,
                      what="the command to start")
        self.wait_for(lambda: self.node(run_id, "nap")["state"] == "in-progress",
                      what="the node to be in progress")
        return proc, int(self.read("sleep.pid"))

    def test_cancel_a_running_command(self):
        proc, sleep_pid = self.start_and_wait("cancel-run")
        self.assertTrue(pid_alive(sleep_pid))
        start = time.monotonic()
        r = self.run_cli("cancel", "cancel-run")
        self.assertEqual(r.code, 0, r)
        stdout, stderr = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 2, stderr)
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(json.loads(stdout)["status"], "cancelled")
        self.wait_for(lambda: not pid_alive(sleep_pid), timeout=3, what="sleep to be gone")
        j = self.inspect("cancel-run")
        self.assertEqual(j["run"]["status"], "cancelled")
        self.assertIsNone(j["run"]["runtimeOwnerId"])
        nap = self.node("cancel-run", "nap")
        self.assertEqual(nap["state"], "cancelled")
        self.assertEqual(nap["attempts"][0]["state"], "cancelled")
        self.assertEqual(nap["attempts"][0]["error"]["code"], "TASK_CANCELLED")
        self.assertEqual(self.node("cancel-run", "quick")["state"], "finished")
        self.assertNotIn("never", [n["nodeId"] for n in j["nodes"] if n["state"] != "pending"])
        events = self.events("cancel-run")
        self.assertEqual(events[-1]["type"], "RunCancelled")
        self.assertIn("NodeCancelled", [e["type"] for e in events])
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        r = self.run_cli("ps", "--status", "cancelled", "--json")
        self.assertEqual([x["runId"] for x in r.json()["runs"]], ["cancel-run"])
        # Cancelling again is refused.
        r = self.run_cli("cancel", "cancel-run")
        self.assertEqual(r.code, 4, r)
        self.assertIn("already cancelled", r.stderr)

    def test_cancel_a_run_without_a_live_owner(self):
        proc, sleep_pid = self.start_and_wait("orphan-run")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.wait_for(lambda: not pid_alive(sleep_pid), timeout=5, what="the orphan to die")
        self.assertEqual(self.inspect("orphan-run")["run"]["status"], "running")
        r = self.run_cli("cancel", "orphan-run")
        self.assertEqual(r.code, 0, r)
        self.assertIn("cancelled", r.stderr)
        j = self.inspect("orphan-run")
        self.assertEqual(j["run"]["status"], "cancelled")
        self.assertIsNotNone(j["run"]["finishedAtMs"])
        self.assertIn("cancelRequestedAtMs", j["run"])
        nap = self.node("orphan-run", "nap")
        self.assertEqual(nap["state"], "cancelled")
        # The attempt the dead process left running ends too.
        self.assertEqual(nap["attempts"][0]["state"], "cancelled")
        self.assertEqual(nap["attempts"][0]["error"]["code"], "ATTEMPT_ABANDONED")
        self.assertIsNotNone(nap["attempts"][0]["finishedAtMs"])
        self.assertEqual(self.node("orphan-run", "quick")["state"], "finished")
        events = self.events("orphan-run")
        self.assertEqual(events[-1]["type"], "RunCancelled")
        self.assertEqual([e["payload"]["nodeId"] for e in events
                          if e["type"] == "NodeCancelled"], ["nap"])
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))

    def test_resume_a_cancelled_run(self):
        # The sleeper only sleeps on its first attempt.
        self.pidfile = self.path("sleep.pid")
        wf = self.write("once.lua", """
            local outputs = smithers.outputs { r = z.object { attempt = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "once",
                Task { id = "nap", output = outputs.r, env = { P = %r },
                       command = { "sh", "-c", [[
                         if [ "$SMITHERS_ATTEMPT" = 1 ]; then echo $$ > "$P"; exec sleep 30; fi
                         echo "{\\"attempt\\": \\"$SMITHERS_ATTEMPT\\"}"]] } },
              }
            end)
            """ % self.pidfile)
        proc = self.start_up(wf, None, "again-run")
        self.wait_for(lambda: os.path.exists(self.pidfile) and os.path.getsize(self.pidfile) > 0,
                      what="the command to start")
        self.assertEqual(self.run_cli("cancel", "again-run").code, 0)
        proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 2)
        r = self.up(wf, None, "again-run", "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["r"]["nap"], {"attempt": "2"})
        self.assertNotIn("cancelRequestedAtMs", self.inspect("again-run")["run"])


if __name__ == "__main__":
    main()
