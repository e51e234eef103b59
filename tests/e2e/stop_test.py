#!/usr/bin/env python3
"""Graceful stop (docs/engine.md "Stopping"): on SIGTERM or SIGINT `smithers
up`, the Gateway and `smithers supervise` start no new task, let the tasks in
flight finish up to --stop-grace, then release the run (no owner) so any
process resumes it at once; a second signal stops at once, like a crash.
Everything waits on files and rows, never on time."""

import http.client
import json
import os
import signal
import subprocess

from gateway_test import spawn_gateway
from smithers_e2e import BIN, E2ETest, main, pid_alive

# `a` writes its pid and a start mark, waits for the gate file, then answers;
# `b` (after `a`) logs that it ran. Each run of a command appends to calls.log.
GATED = """
local outputs = smithers.outputs { r = z.object { v = z.number() } }
return smithers(function(ctx)
  return Workflow { name = "gated",
    Task { id = "a", output = outputs.r, env = { D = %(dir)r },
           command = { "sh", "-c", [[echo a >> "$D/calls.log"; echo $$ > "$D/a.pid";
                                    while [ ! -f "$D/gate" ]; do sleep 0.02; done;
                                    echo '{"v": 1}']] } },
    Task { id = "b", output = outputs.r, env = { D = %(dir)r },
           command = { "sh", "-c", [[echo b >> "$D/calls.log"; echo '{"v": 2}']] } },
  }
end)
"""


class StopTest(E2ETest):
    def setUp(self):
        super().setUp()
        self.module = self.write("gated.lua", GATED % {"dir": self.dir})

    def calls(self):
        return self.read("calls.log").split() if os.path.exists(self.path("calls.log")) else []

    def event_types(self, run_id):
        return [e["type"] for e in self.events(run_id)]

    def wait_started(self):
        self.wait_for(lambda: os.path.exists(self.path("a.pid"))
                      and os.path.getsize(self.path("a.pid")) > 0, what="task a to start")
        return int(self.read("a.pid"))

    def assert_released(self, run_id):
        run = self.inspect(run_id)["run"]
        self.assertEqual(run["status"], "running")
        self.assertIsNone(run["runtimeOwnerId"])
        types = self.event_types(run_id)
        self.assertIn("RunStopping", types)
        self.assertEqual(types[-1], "RunReleased")

    def test_sigterm_lets_the_task_in_flight_finish_then_releases_the_run(self):
        p = self.start_up(self.module, None, "s1")
        self.wait_started()
        p.send_signal(signal.SIGTERM)
        self.wait_for(lambda: "RunStopping" in self.event_types("s1"), what="RunStopping")
        self.write("gate", "", prelude=False)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 128 + signal.SIGTERM, err)
        self.assertIn("stopped by SIGTERM", err)
        self.assertIn("--resume", err)
        self.assert_released("s1")
        # a finished within the grace and its output is kept; b never started.
        self.assertEqual(self.node("s1", "a")["state"], "finished")
        self.assertEqual(self.calls(), ["a"])
        # Released: a plain resume takes it at once and runs only b.
        r = self.up(self.module, None, "s1", "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["status"], "finished")
        self.assertEqual(self.calls(), ["a", "b"])

    def test_after_the_grace_the_task_is_stopped_and_resume_runs_it_again(self):
        p = self.start_up(self.module, None, "s2", "--stop-grace", "0s")
        pid = self.wait_started()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 128 + signal.SIGINT, err)
        self.assertFalse(pid_alive(pid), "the task's process is stopped before the release")
        self.assert_released("s2")
        self.write("gate", "", prelude=False)
        r = self.up(self.module, None, "s2", "--resume")
        self.assertEqual(r.code, 0, r)
        attempts = self.node("s2", "a")["attempts"]
        self.assertEqual([a["state"] for a in attempts], ["cancelled", "finished"])
        self.assertEqual(attempts[0]["error"]["code"], "ATTEMPT_ABANDONED")
        self.assertEqual(self.calls(), ["a", "a", "b"])

    def test_a_second_signal_stops_at_once(self):
        p = self.start_up(self.module, None, "s3")
        self.wait_started()
        p.send_signal(signal.SIGTERM)
        self.wait_for(lambda: "RunStopping" in self.event_types("s3"), what="RunStopping")
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
        self.assertEqual(p.returncode, -signal.SIGTERM)
        # Like a crash: still owned by the dead process, which resume sees.
        self.assertNotIn("RunReleased", self.event_types("s3"))
        self.write("gate", "", prelude=False)
        r = self.up(self.module, None, "s3", "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.node("s3", "b")["state"], "finished")

    def test_bad_stop_grace_is_bad_input(self):
        r = self.up(self.module, None, "s4", "--stop-grace", "soon")
        self.assertEqual(r.code, 4, r)
        self.assertIn("--stop-grace", r.stderr)


class GatewayStopTest(E2ETest):
    def rpc(self, port, method, params, token):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/v1/rpc/" + method, body=json.dumps(params),
                  headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        body = json.loads(r.read().decode())
        c.close()
        return r.status, body

    def test_sigterm_finishes_the_task_in_flight_and_releases_the_run(self):
        wf = self.path("workflows")
        os.makedirs(wf)
        self.write("workflows/gated.lua", GATED % {"dir": self.dir})
        token = self.run_cli("token", "issue", "--scopes", "run:write").stdout.strip()
        argv = [BIN, "--db", self.db, "gateway", "--workflows", wf, "--port", "0"]
        gw, port, _ = spawn_gateway(self, argv)
        code, r = self.rpc(port, "launchRun", {"workflow": "gated", "runId": "g1"}, token)
        self.assertEqual(code, 200, r)
        self.wait_for(lambda: os.path.exists(self.path("a.pid")), what="task a to start")
        gw.send_signal(signal.SIGTERM)
        self.wait_for(lambda: "RunStopping" in [e["type"] for e in self.events("g1")],
                      what="RunStopping")
        self.assertIsNone(gw.poll(), "the Gateway waits for the task in flight")
        self.write("gate", "", prelude=False)
        out, err = gw.communicate(timeout=30)
        self.assertEqual(gw.returncode, 0, err)
        self.assertIn("smithers gateway: stopped", err)
        run = self.inspect("g1")["run"]
        self.assertEqual((run["status"], run["runtimeOwnerId"]), ("running", None))
        self.assertEqual(self.node("g1", "a")["state"], "finished")
        # A second Gateway on the same database resumes it at its first sweep.
        gw2, port2, _ = spawn_gateway(self, argv)
        self.wait_for(lambda: self.inspect("g1")["run"]["status"] == "finished",
                      timeout=30, what="the second Gateway to finish the run")
        self.assertEqual(self.read("calls.log").split(), ["a", "b"])
        gw2.send_signal(signal.SIGTERM)
        self.assertEqual(gw2.wait(timeout=30), 0)


class SuperviseStopTest(E2ETest):
    def test_sigterm_passes_to_the_resumed_runs_which_release_them(self):
        module = self.write("gated.lua", GATED % {"dir": self.dir})
        # A run whose owner died mid-task: supervise resumes it.
        p = self.start_up(module, None, "v1")
        self.wait_for(lambda: os.path.exists(self.path("a.pid")), what="task a to start")
        p.kill()
        p.wait()
        os.remove(self.path("a.pid"))
        sup = subprocess.Popen([BIN, "--db", self.db, "supervise", "--interval", "100ms",
                                "--stop-grace", "30s"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=self.dir)
        self._procs.append(sup)
        self.wait_for(lambda: os.path.exists(self.path("a.pid"))
                      and os.path.getsize(self.path("a.pid")) > 0,
                      timeout=30, what="the resumed run to start task a again")
        sup.send_signal(signal.SIGTERM)
        self.wait_for(lambda: "RunStopping" in [e["type"] for e in self.events("v1")],
                      what="the resumed run to stop")
        self.write("gate", "", prelude=False)
        out, err = sup.communicate(timeout=60)
        self.assertEqual(sup.returncode, 0, err)
        self.assertIn("stopping: 1 resumed runs", out)
        run = self.inspect("v1")["run"]
        self.assertEqual((run["status"], run["runtimeOwnerId"]), ("running", None))
        self.assertEqual(self.node("v1", "a")["state"], "finished")
        self.assertEqual(self.calls_of_b(), 0)

    def calls_of_b(self):
        return self.read("calls.log").split().count("b")


if __name__ == "__main__":
    main()
