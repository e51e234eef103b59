#!/usr/bin/env python3
"""The Gateway resumes a run with the run's STORED input (issue: resumes started
from a default {} input, the engine refused "a run's input cannot change", and an
approved run stayed waiting-approval, a run cut off by kill -9 stayed running
across restarts). Each run here is launched through the Gateway with a non-empty
input, resumed after an approval, a signal, a timer, a kill -9 of the Gateway, a
plain restart and an explicit resumeRun, and must finish with outputs that used
the input. Also: launchRun/cronCreate/submitSignal refuse parameters of the
wrong type instead of ignoring them.

    SMITHERS_BIN=build/smithers tests/security/gateway_resume_test.py -v
"""

import json
import os
import signal

from security_e2e import *  # noqa: F401,F403

import gateway_test as gt  # noqa: E402

# Each module: something to wait for, then a task whose row is made from the input.
GATE = """
local outputs = smithers.outputs { decision = smithers.approvalDecision,
                                   done = z.object { message = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "gate",
    Sequence {
      smithers.Approval { id = "ship", output = outputs.decision, owner = "ops",
                          request = { title = "Ship?" } },
      Task { id = "after", output = outputs.done, { message = "after " .. ctx.input.name } } } }
end, { input = z.object { name = z.string() } })
"""

SIGNAL = """
local outputs = smithers.outputs { ci = z.object { sha = z.string() },
                                   done = z.object { message = z.string() } }
return smithers(function(ctx)
  local ci = ctx:outputMaybe(outputs.ci, "ci")
  return Workflow { name = "sig",
    Sequence {
      smithers.WaitForEvent { id = "ci", output = outputs.ci, event = "ci-green" },
      Task { id = "after", output = outputs.done,
             { message = "after " .. ctx.input.name .. " " .. (ci and ci.sha or "?") } } } }
end, { input = z.object { name = z.string() } })
"""

TIMER = """
local outputs = smithers.outputs { done = z.object { message = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "timer",
    Sequence {
      smithers.Timer { id = "wait", duration = ctx.input.wait },
      Task { id = "after", output = outputs.done, { message = "after " .. ctx.input.name } } } }
end, { input = z.object { name = z.string(), wait = z.string() } })
"""

# A command that blocks until the test creates the file `input.release`, so the
# Gateway can be killed (or stopped) while the run is in flight.
BLOCK = """
local outputs = smithers.outputs { r = z.object { ok = z.boolean() },
                                   done = z.object { message = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "block",
    Sequence {
      Task { id = "block", output = outputs.r,
             command = { "sh", "-c", "touch \\"$0.started\\"; while [ ! -f \\"$0\\" ]; do sleep 0.05; done; echo '{\\"ok\\":true}'",
                         ctx.input.release } },
      Task { id = "after", output = outputs.done, { message = "after " .. ctx.input.name } } } }
end, { input = z.object { name = z.string(), release = z.string() } })
"""


class GatewayResumeTest(E2ETest):
    start = gt.GatewayTest.start
    stop = gt.GatewayTest.stop
    http = gt.GatewayTest.http
    rpc = gt.GatewayTest.rpc
    token = gt.GatewayTest.token
    wait_run = gt.GatewayTest.wait_run

    def setUp(self):
        super().setUp()
        self.wf_dir = self.path("workflows")
        os.makedirs(self.wf_dir)
        self.write("workflows/gate.lua", GATE)
        self.write("workflows/sig.lua", SIGNAL)
        self.write("workflows/timer.lua", TIMER)
        self.write("workflows/block.lua", BLOCK)
        self.access_log = self.path("access.log")
        self.gateway = None

    def launch(self, workflow, run_id, input, token):
        code, r = self.rpc("launchRun", {"workflow": workflow, "runId": run_id, "input": input},
                           token)
        self.assertEqual(code, 200, r)
        self.assertEqual(r["payload"]["runId"], run_id)

    def after_row(self, run_id, token):
        run = self.wait_run(run_id, token, status=("finished", "failed", "cancelled"))
        self.assertEqual(run["status"], "finished", run)
        code, r = self.rpc("getNodeOutput", {"runId": run_id, "nodeId": "after"}, token)
        self.assertEqual(code, 200, r)
        return r["payload"]["row"]["message"]

    def no_input_refusals(self):
        with open(self.access_log) as f:
            text = f.read()
        self.assertNotIn("input cannot change", text)

    def test_resume_after_approval(self):
        self.start()
        token = self.token("run:write,approval:submit", "--user", "ops")  # GATE's owner
        self.launch("gate", "g1", {"name": "alice"}, token)
        self.wait_run("g1", token, status=("waiting-approval",))
        code, r = self.rpc("submitApproval", {"runId": "g1", "nodeId": "ship", "approved": True},
                           token)
        self.assertEqual(code, 200, r)
        self.assertEqual(self.after_row("g1", token), "after alice")
        self.no_input_refusals()

    def test_resume_after_signal(self):
        self.start()
        token = self.token("run:write,signal:submit")
        self.launch("sig", "s1", {"name": "bob"}, token)
        self.wait_run("s1", token, status=("waiting-event",))
        code, r = self.rpc("submitSignal", {"runId": "s1", "signalName": "ci-green",
                                            "payload": {"sha": "abc"}}, token)
        self.assertEqual(code, 200, r)
        self.assertEqual(self.after_row("s1", token), "after bob abc")
        self.no_input_refusals()

    def test_resume_after_timer(self):
        self.start()
        token = self.token("run:write")
        self.launch("timer", "t1", {"name": "carol", "wait": "1s"}, token)
        self.assertEqual(self.after_row("t1", token), "after carol")
        self.no_input_refusals()

    def test_resume_after_restart_and_an_explicit_resume_run(self):
        self.start()
        token = self.token("run:write", "--ttl", "3h")  # valid an hour later too
        self.launch("timer", "t2", {"name": "dave", "wait": "1h"}, token)
        self.wait_run("t2", token, status=("waiting-timer",))
        # The parked status is committed before the run's thread ends; until it
        # has (its run.ended line), resumeRun rightly answers "running".
        parked = '"runId":"t2","status":"waiting-timer"'
        self.wait_for(lambda: self.read("access.log").count(parked) >= 1,
                      what="the run to park and its thread to end")
        # resumeRun before the timer is due: the run resumes with its input and
        # parks again (it used to fail on the {} input and stay claimed).
        code, r = self.rpc("resumeRun", {"runId": "t2"}, token)
        self.assertEqual((code, r["payload"]["status"]), (200, "resume_requested"), r)
        self.wait_for(lambda: self.read("access.log").count(parked) >= 2,
                      what="the resumed run to park again")
        self.stop()
        # An hour later the timer is due: the restarted Gateway resumes the run.
        self.start(env={"SMITHERS_CLOCK_OFFSET_MS": str(3600 * 1000 + 5000)})
        self.assertEqual(self.after_row("t2", token), "after dave")
        self.no_input_refusals()

    def blocked_run(self, run_id, name, token):
        release = self.path(run_id + ".release")
        self.launch("block", run_id, {"name": name, "release": release}, token)
        self.wait_for(lambda: os.path.exists(release + ".started"), what="the command to start")
        self.wait_run(run_id, token, status=("running",))
        return release

    def test_resume_after_kill_9_of_the_gateway(self):
        gw = self.start()
        token = self.token("run:write")
        release = self.blocked_run("k1", "erin", token)
        os.kill(gw.pid, signal.SIGKILL)
        gw.wait(timeout=10)
        self.start()  # recovers the run whose owner died
        self.wait_for(lambda: self.query("SELECT COUNT(*) AS n FROM _smithers_attempts "
                                         "WHERE run_id = 'k1' AND node_id = 'block'")[0]["n"] >= 2,
                      timeout=20, what="the recovered run to start the command again")
        with open(release, "w"):
            pass
        self.assertEqual(self.after_row("k1", token), "after erin")
        self.no_input_refusals()

    def test_resume_after_a_plain_restart(self):
        # No grace: SIGTERM stops the blocked command at once and releases the
        # run (docs/gateway.md "Stopping"); the next start resumes it.
        self.start("--stop-grace", "0s")
        token = self.token("run:write")
        release = self.blocked_run("p1", "frank", token)
        self.stop()
        self.start()
        with open(release, "w"):
            pass
        self.assertEqual(self.after_row("p1", token), "after frank")
        self.no_input_refusals()

    # ---- parameters of the wrong type are refused, never ignored ----

    def test_launch_run_refuses_a_null_input_and_a_run_id_of_the_wrong_type(self):
        self.start()
        token = self.token("run:write,cron:write,signal:submit")
        for params, code_name in [
                ({"workflow": "gate", "input": None}, "InvalidRequest"),
                ({"workflow": "gate", "input": [1]}, "InvalidRequest"),
                ({"workflow": "gate", "input": "x"}, "InvalidRequest"),
                ({"workflow": "gate", "input": {"name": "x"}, "runId": 7}, "InvalidRunId"),
                ({"workflow": "gate", "input": {"name": "x"}, "runId": {"a": 1}}, "InvalidRunId"),
                ({"workflow": "gate", "input": {"name": "x"}, "runId": ""}, "InvalidRunId"),
                ({"workflow": "gate", "input": {"name": "x"}, "options": {"runId": 7}},
                 "InvalidRunId"),
                ({"workflow": "gate", "input": {"name": "x"}, "options": None}, "InvalidRequest"),
                ({"workflow": "gate", "input": {"name": "x"}, "options": {"maxConcurrency": "2"}},
                 "InvalidRequest")]:
            code, r = self.rpc("launchRun", params, token)
            self.assertEqual(code, 400, (params, r))
            self.assertFalse(r["ok"], r)
            self.assertEqual(r["error"]["code"], code_name, (params, r))
            self.assertNotIn("payload", r)
        # Over /rpc too, and no run was made by any of them.
        code, r = self.http("POST", "/rpc", json.dumps(
            {"id": 1, "method": "launchRun", "params": {"workflow": "gate", "input": None}}), token)
        self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"), r)
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_runs")[0]["n"], 0)
        for params in [{"workflow": "gate", "pattern": "* * * * *", "input": None},
                       {"workflow": "gate", "pattern": "* * * * *", "input": [1]},
                       {"workflow": "gate", "pattern": "* * * * *", "cronId": 5}]:
            code, r = self.rpc("cronCreate", params, token)
            self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"), (params, r))
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_cron")[0]["n"], 0)
        code, r = self.rpc("cronRun", {"workflow": "gate", "input": None}, token)
        self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"), r)
        self.launch("sig", "s9", {"name": "x"}, token)
        for params in [{"runId": "s9", "signalName": 5, "name": "ci-green"},
                       {"runId": "s9", "signalName": "ci-green", "correlationId": 5}]:
            code, r = self.rpc("submitSignal", params, token)
            self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"), (params, r))
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_signals")[0]["n"], 0)
        code, r = self.rpc("resumeRun", {"runId": "s9", "options": 5}, token)
        self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"), r)


if __name__ == "__main__":
    main()
