#!/usr/bin/env python3
"""Deeply nested JSON against a real Gateway and the CLI (docs/security.md "JSON
depth"): every JSON path has one depth limit (arrays and objects open at once,
default 64, --max-json-depth / gateway.toml max_json_depth), checked before
anything recurses. A deep document is refused (HTTP 400 InvalidInput naming the
limit and where it was exceeded, exit 4 on the CLI); the Gateway stays up
(/health after each attack), and a committed row that can no longer be loaded
fails its run with a clear error on resume instead of crashing every resume.

    SMITHERS_BIN=build/smithers tests/security/json_depth_test.py -v
"""

import json
import os
import signal
import sqlite3

from security_e2e import *  # noqa: F401,F403

import gateway_test as gt  # noqa: E402  (tests/e2e is on sys.path via security_e2e)

ECHO = """
local outputs = smithers.outputs { greeting = z.object { message = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "echo",
    Task { id = "greet", output = outputs.greeting,
           { message = "Hello, " .. tostring(ctx.input.name or "world") } } }
end)
"""

# A compute task whose result nests 200 levels; a command task that prints
# JSON nesting 200 levels.
DEEP_OUTPUTS = """
local outputs = smithers.outputs { any = z.object { v = z.any() } }
return smithers(function(ctx)
  local kind = ctx.input.kind
  if kind == "compute" then
    return Workflow { name = "deep",
      Task { id = "deep", output = outputs.any, function()
        local t = {}
        local cur = t
        for i = 1, 200 do cur.x = {} cur = cur.x end
        return { v = t }
      end } }
  end
  return Workflow { name = "deep",
    Task { id = "deep", output = outputs.any,
           command = { "python3", "-c", "print('{\\"v\\":' + '[' * 200 + ']' * 200 + '}')" } } }
end)
"""

SIGNAL = """
local outputs = smithers.outputs { ci = z.object { v = z.any() } }
return smithers(function(ctx)
  return Workflow { name = "sig",
    smithers.WaitForEvent { id = "ci", output = outputs.ci, event = "ci" } }
end)
"""

# A row the first task commits, an approval, then a task that reads the row.
ROWS = """
local outputs = smithers.outputs { data = z.object { v = z.any() },
                                   decision = smithers.approvalDecision,
                                   done = z.object { ok = z.boolean() } }
return smithers(function(ctx)
  local made = ctx:outputMaybe(outputs.data, "make")
  return Workflow { name = "rows",
    Sequence {
      Task { id = "make", output = outputs.data, { v = 1 } },
      smithers.Approval { id = "ship", output = outputs.decision, owner = "ops",
                          request = { title = "Ship?" } },
      Task { id = "after", output = outputs.done, { ok = made ~= nil } } } }
end)
"""


def nested(depth, leaf="1"):
    return "[" * depth + leaf + "]" * depth


class JsonDepthTest(E2ETest):
    # The Gateway helpers of tests/e2e/gateway_test.py, without its tests.
    start = gt.GatewayTest.start
    stop = gt.GatewayTest.stop
    http = gt.GatewayTest.http
    rpc = gt.GatewayTest.rpc
    ws = gt.GatewayTest.ws
    token = gt.GatewayTest.token
    wait_run = gt.GatewayTest.wait_run

    def setUp(self):
        super().setUp()
        self.wf_dir = self.path("workflows")
        os.makedirs(self.wf_dir)
        self.write("workflows/echo.lua", ECHO)
        self.write("workflows/deep.lua", DEEP_OUTPUTS)
        self.write("workflows/sig.lua", SIGNAL)
        self.write("workflows/rows.lua", ROWS)
        self.access_log = self.path("access.log")
        self.gateway = None

    def assert_up(self):
        code, r = self.http("GET", "/health")
        self.assertEqual(code, 200, r)
        self.assertTrue(r["ok"])
        self.assertIsNone(self.gateway.poll(), "the Gateway died")

    def assert_too_deep(self, code, r, where=None):
        self.assertEqual(code, 400, r)
        self.assertFalse(r["ok"], r)
        self.assertEqual(r["error"]["code"], "InvalidInput", r)
        self.assertIn("max_json_depth", r["error"]["message"])
        self.assertIn("deeper than", r["error"]["message"])
        if where is not None:
            self.assertIn(where, r["error"]["message"])
        self.assertNotIn("runId", r.get("payload") or {})

    # ---- the Gateway ----

    def test_deep_rpc_body_without_a_token_is_refused_and_the_gateway_stays_up(self):
        self.start()
        d = 100000
        body = '{"id":1,"method":"health","params":{"x":' + nested(d, "") + "}}"
        code, r = self.http("POST", "/rpc", body)
        self.assert_too_deep(code, r, "$.params.x")
        self.assert_up()
        # A deep id, and the same through /v1/rpc/<method> (the body is params).
        code, r = self.http("POST", "/rpc", '{"id":' + nested(d, "") + ',"method":"health"}')
        self.assert_too_deep(code, r, "$.id")
        code, r = self.http("POST", "/v1/rpc/health", '{"x":' + nested(d, "") + "}")
        self.assert_too_deep(code, r, "$.x")
        self.assert_up()
        # Objects nest the same way; no credentials were needed to be refused.
        code, r = self.http("POST", "/rpc", '{"id":1,"method":"health","params":' +
                            '{"a":' * d + "1" + "}" * d + "}")
        self.assert_too_deep(code, r)
        self.assert_up()

    def test_deep_websocket_frame_before_connect(self):
        self.start()
        w = self.ws()
        w.send_text('{"type":"req","id":"d","method":"connect","params":{"x":' +
                    nested(70000, "") + "}}")
        res = w.recv_json()
        self.assertFalse(res["ok"], res)
        self.assertEqual(res["error"]["code"], "InvalidInput", res)
        self.assertIn("max_json_depth", res["error"]["message"])
        # The socket still works: a proper connect succeeds.
        token = self.token("run:read")
        res = w.request("connect", {"minProtocol": 1, "maxProtocol": 1, "auth": {"token": token}})
        self.assertTrue(res["ok"], res)
        self.assert_up()

    def test_deep_submit_signal_payload(self):
        self.start()
        token = self.token("run:write,signal:submit")
        code, r = self.rpc("launchRun", {"workflow": "sig", "runId": "s1"}, token)
        self.assertEqual(code, 200, r)
        self.wait_run("s1", token, status=("waiting-event",))
        code, r = self.rpc("submitSignal", {"runId": "s1", "signalName": "ci",
                                            "payload": json.loads(nested(65, ""))}, token)
        self.assert_too_deep(code, r, "$.payload")
        code, r = self.http("POST", "/v1/rpc/submitSignal",
                            '{"runId":"s1","signalName":"ci","payload":' + nested(100000, "") + "}",
                            token)
        self.assert_too_deep(code, r)
        self.assert_up()
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_signals")[0]["n"], 0)
        # At the limit: accepted, consumed, and the run finishes with it.
        code, r = self.rpc("submitSignal", {"runId": "s1", "signalName": "ci",
                                            "payload": {"v": json.loads(nested(63))}}, token)
        self.assertEqual(code, 200, r)
        self.wait_run("s1", token)
        code, r = self.rpc("getNodeOutput", {"runId": "s1", "nodeId": "ci"}, token)
        self.assertEqual(r["payload"]["row"]["v"], json.loads(nested(63)))

    def test_deep_launch_input(self):
        self.start()
        token = self.token("run:write")
        # 60 levels crashed the Gateway inside Lua (no lua_checkstack): now it runs.
        code, r = self.rpc("launchRun", {"workflow": "echo", "runId": "d60",
                                         "input": {"name": "x", "deep": json.loads(nested(60))}},
                           token)
        self.assertEqual(code, 200, r)
        self.assertEqual(self.wait_run("d60", token)["status"], "finished")
        # Exactly the limit (64 with the input object itself), then one more.
        code, r = self.rpc("launchRun", {"workflow": "echo", "runId": "d64",
                                         "input": {"deep": json.loads(nested(63))}}, token)
        self.assertEqual(code, 200, r)
        self.wait_run("d64", token)
        code, r = self.rpc("launchRun", {"workflow": "echo", "runId": "d65",
                                         "input": {"deep": json.loads(nested(64))}}, token)
        self.assert_too_deep(code, r, "$.input.deep")
        code, r = self.rpc("getRun", {"runId": "d65"}, token)
        self.assertEqual(code, 404, r)
        self.assert_up()

    def test_deep_cron_input_is_refused_at_create_time(self):
        self.start()
        token = self.token("cron:write,run:write")
        code, r = self.rpc("cronCreate", {"workflow": "echo", "pattern": "* * * * *",
                                          "cronId": "deep",
                                          "input": {"deep": json.loads(nested(200))}}, token)
        self.assert_too_deep(code, r)
        code, r = self.rpc("cronList", {}, token)
        self.assertEqual(r["payload"], [])
        code, r = self.rpc("cronRun", {"workflow": "echo",
                                       "input": {"deep": json.loads(nested(64))}}, token)
        self.assert_too_deep(code, r)
        self.assert_up()

    def test_a_deep_cron_row_left_by_an_older_binary_never_fires_a_crash(self):
        # The row is written directly, as an older binary did; the slot is due.
        self.start()
        self.stop()
        conn = sqlite3.connect(self.db)
        conn.execute("INSERT INTO _smithers_cron (cron_id, workflow, pattern, time_zone, "
                     "input_json, enabled, created_at_ms, next_run_at_ms) "
                     "VALUES ('old', 'echo', '* * * * *', 'UTC', ?, 1, 1, 1)",
                     ('{"deep":' + nested(200) + "}",))
        conn.commit()
        conn.close()
        self.start()
        token = self.token("cron:read")
        row = self.wait_for(lambda: [c for c in self.rpc("cronList", {}, token)[1]["payload"]
                                     if c["lastError"]], what="the slot to fire")[0]
        self.assertIn("deeper than", row["lastError"])
        self.assert_up()

    def test_deep_task_outputs_fail_the_task_and_never_commit(self):
        self.start()
        token = self.token("run:write")
        for kind in ("compute", "command"):
            run_id = "deep-" + kind
            code, r = self.rpc("launchRun", {"workflow": "deep", "runId": run_id,
                                             "input": {"kind": kind}}, token)
            self.assertEqual(code, 200, r)
            run = self.wait_run(run_id, token, status=("failed",))
            self.assertIn("deeper than", json.dumps(run["error"]), run)
            rows = self.query("SELECT COUNT(*) AS n FROM _smithers_outputs WHERE run_id = ?",
                              run_id)
            self.assertEqual(rows[0]["n"], 0)
            self.assert_up()

    def test_max_json_depth_is_configurable(self):
        config = self.write("gateway.toml", "[limits]\nmax_json_depth = 8\n", prelude=False)
        self.start("--config", config)
        token = self.token("run:write")
        code, r = self.rpc("launchRun", {"workflow": "echo", "input": {"deep": json.loads(nested(8))}},
                           token)
        self.assert_too_deep(code, r)
        self.assertIn("deeper than 8 levels", r["error"]["message"])
        code, r = self.rpc("launchRun", {"workflow": "echo", "input": {"deep": json.loads(nested(7))}},
                           token)
        self.assertEqual(code, 200, r)
        self.stop()
        # The flag overrides the file.
        self.start("--config", config, "--max-json-depth", "100")
        code, r = self.rpc("launchRun", {"workflow": "echo", "input": {"deep": json.loads(nested(90))}},
                           token)
        self.assertEqual(code, 200, r)
        self.wait_run(r["payload"]["runId"], token)
        r = self.run_cli("gateway", "--workflows", self.wf_dir, "--max-json-depth", "0")
        self.assertEqual(r.code, 4, r)

    # ---- the CLI ----

    def test_cli_input_and_signal_data(self):
        echo = self.path("workflows/echo.lua")
        r = self.run_cli("up", echo, "--input", "-", stdin='{"deep":' + nested(100000) + "}")
        self.assertEqual(r.code, 4, r)
        self.assertIn("--input nests deeper than 64 levels", r.stderr)
        self.assertIn("$.deep", r.stderr)
        self.assertFalse(os.path.exists(self.db), "bad input must not create the database")
        out = self.up_ok(echo, {"name": "x", "deep": json.loads(nested(60))})
        self.assertEqual(out["outputs"]["greeting"]["greet"]["message"], "Hello, x")
        r = self.up(echo, {"deep": json.loads(nested(10))}, None, "--max-json-depth", "5")
        self.assertEqual(r.code, 4, r)
        self.assertIn("deeper than 5 levels", r.stderr)

        sig = self.path("workflows/sig.lua")
        r = self.up(sig, None, "sig1")
        self.assertEqual(r.code, 3, r)
        r = self.run_cli("signal", "sig1", "ci", "--data", nested(50000))  # under ARG_MAX
        self.assertEqual(r.code, 4, r)
        self.assertIn("--data nests deeper than 64 levels", r.stderr)
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_signals")[0]["n"], 0)

    def test_a_deep_signal_row_is_rejected_not_loaded(self):
        sig = self.path("workflows/sig.lua")
        self.assertEqual(self.up(sig, None, "sig2").code, 3)
        conn = sqlite3.connect(self.db)
        conn.execute("INSERT INTO _smithers_signals (run_id, seq, name, payload_json, "
                     "received_at_ms, status) VALUES ('sig2', 1, 'ci', ?, 1, 'pending')",
                     ('{"v":' + nested(5000) + "}",))
        conn.commit()
        conn.close()
        r = self.up(sig, None, "sig2", "--resume")
        self.assertEqual(r.code, 3, r)  # still waiting: the deep signal was rejected
        rows = self.query("SELECT status, rejection_json FROM _smithers_signals")
        self.assertEqual(rows[0]["status"], "rejected")
        self.assertIn("deeper than", rows[0]["rejection_json"])

    def test_deep_tokens_file(self):
        tokens = self.path("tokens.json")
        with open(tokens, "w") as f:
            f.write('{"version":2,"tokens":{"smithers_' + "a" * 43 + '":{"scopes":' +
                    nested(100000, '"run:read"') + "}}}")
        os.chmod(tokens, 0o600)
        r = self.run_cli("gateway", "--workflows", self.wf_dir, "--port", "0", "--tokens", tokens)
        self.assertEqual(r.code, 4, r)
        self.assertIn("max_json_depth", r.stderr)
        self.assertNotIn("smithers_aaaa", r.stderr, "a bearer must never be printed")
        r = self.run_cli("token", "list", "--tokens", tokens)
        self.assertNotEqual(r.code, 0, r)
        self.assertGreater(r.code, 0, "no crash: %r" % r)

    # ---- a committed row that can no longer be loaded ----

    def deepen_make_row(self, run_id, depth=200):
        conn = sqlite3.connect(self.db, timeout=10)
        conn.execute("UPDATE _smithers_outputs SET payload_json = ? "
                     "WHERE run_id = ? AND node_id = 'make'",
                     ('{"v":' + nested(depth) + "}", run_id))
        conn.commit()
        self.assertEqual(conn.total_changes, 1)
        conn.close()

    def test_an_unloadable_row_fails_its_run_on_resume(self):
        rows = self.path("workflows/rows.lua")
        r = self.up(rows, None, "r1")
        self.assertEqual(r.code, 3, r)
        self.deepen_make_row("r1")
        r = self.run_cli("approve", "r1", "--node", "ship", "--by", "ops")
        self.assertEqual(r.code, 0, r)
        for _ in range(2):  # and again: no crash, the same clear failure
            r = self.up(rows, None, "r1", "--resume")
            self.assertEqual(r.code, 1, r)
            self.assertIn("ROW_UNLOADABLE", r.stdout + r.stderr)
            self.assertIn("the stored output data of node make", r.stdout + r.stderr)
            run = self.query("SELECT status, error_json FROM _smithers_runs")[0]
            self.assertEqual(run["status"], "failed")
            self.assertIn("deeper than 64 levels", run["error_json"])

    def test_an_unloadable_row_fails_its_run_in_the_gateway(self):
        self.start()
        token = self.token("run:write,approval:submit", "--user", "ops")  # ROWS' owner
        code, r = self.rpc("launchRun", {"workflow": "rows", "runId": "r2"}, token)
        self.assertEqual(code, 200, r)
        self.wait_run("r2", token, status=("waiting-approval",))
        self.deepen_make_row("r2", 5000)
        code, r = self.rpc("submitApproval", {"runId": "r2", "nodeId": "ship", "approved": True},
                           token)
        self.assertEqual(code, 200, r)
        run = self.wait_run("r2", token, status=("failed",))
        self.assertEqual(run["error"]["code"], "ROW_UNLOADABLE", run)
        self.assert_up()
        # A restart does not trip over it either.
        self.stop()
        self.start()
        self.assert_up()
        self.assertEqual(self.wait_run("r2", token, status=("failed",))["status"], "failed")


if __name__ == "__main__":
    main()
