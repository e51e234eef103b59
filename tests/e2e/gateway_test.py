#!/usr/bin/env python3
"""The Gateway end to end: the real binary, a real WebSocket client
(tests/e2e/ws_client.py) and plain HTTP. Checked: the handshake, every method,
the scope matrix over the whole method table, token TTL and revocation (an
open socket is closed), durable event seqs across a Gateway restart, cron
(including one fire for slots missed while down), limits (malformed and
oversized frames, a slow consumer) and that no token reaches the database or
the access log."""

import glob
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time

from smithers_e2e import BIN, E2ETest, main
from ws_client import Closed, WebSocket

HELLO = """
local outputs = smithers.outputs { greeting = z.object { message = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "hello",
    Task { id = "greet", output = outputs.greeting,
           { message = "Hello, " .. (ctx.input.name or "world") } } }
end)
"""

GATE = """
local outputs = smithers.outputs { decision = smithers.approvalDecision,
                                   done = z.object { ok = z.boolean() } }
return smithers(function(ctx)
  return Workflow { name = "gate",
    Sequence {
      smithers.Approval { id = "ship", output = outputs.decision, owner = "ops",
                          request = { title = "Ship it?" } },
      Task { id = "after", output = outputs.done, { ok = true } } } }
end)
"""

# Many events: a loop of static tasks.
CHATTY = """
local outputs = smithers.outputs { n = z.object { i = z.integer() } }
return smithers(function(ctx)
  local kids = {}
  for i = 1, (ctx.input.n or 50) do
    kids[#kids + 1] = Task { id = "t" .. i, output = outputs.n, { i = i } }
  end
  return Workflow { name = "chatty", Sequence(kids) }
end)
"""

# Events before and after a command that blocks until the file `gate` exists
# in the directory GATE_DIR (it creates `gate.started` first), so a test can
# subscribe while the run is provably mid-run.
GATED = """
local outputs = smithers.outputs { n = z.object { i = z.integer() } }
return smithers(function(ctx)
  local kids = {}
  for i = 1, 20 do kids[#kids + 1] = Task { id = "a" .. i, output = outputs.n, { i = i } } end
  kids[#kids + 1] = Task { id = "gate", output = outputs.n, command = { "sh", "-c",
    [[cd "$GATE_DIR"; touch gate.started; while [ ! -f gate ]; do sleep 0.02; done; echo '{"i": 0}']] },
    env = { GATE_DIR = [==[GATE_DIR]==] } }
  for i = 1, 20 do kids[#kids + 1] = Task { id = "b" .. i, output = outputs.n, { i = i } } end
  return Workflow { name = "gated", Sequence(kids) }
end)
"""

# A module whose load is held: while the file `hold` exists in HOLD_DIR, its
# top level creates `loading` there and loops until `release` appears (no
# sleep: a test releases it once it has seen what it waits for). Without
# `hold` (the catalog's load at start-up) it loads at once.
HELD_LOAD = """
local dir = [==[HOLD_DIR]==]
local function exists(name)
  local f = io.open(dir .. "/" .. name, "r")
  if f then f:close() end
  return f ~= nil
end
if exists("hold") then
  io.open(dir .. "/loading", "w"):close()
  while not exists("release") do end
end
local outputs = smithers.outputs { n = z.object { i = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "held",
    Sequence { Task { id = "one", output = outputs.n, { i = 1 } },
               Task { id = "two", output = outputs.n, { i = 2 } } } }
end)
"""

# Every method of the table with parameters that make sense for it.
def method_params(run_id):
    return {
        "health": {}, "listWorkflows": {}, "getRun": {"runId": run_id},
        "listRuns": {}, "getNodeOutput": {"runId": run_id, "nodeId": "greet"},
        "listRunTokenUsage": {"runId": run_id},
        "streamRunEvents": {"runId": run_id}, "subscribe": {"runId": run_id},
        "unsubscribe": {"streamId": "nope"},
        "launchRun": {"workflow": "hello", "input": {"name": "x"}},
        "resumeRun": {"runId": run_id}, "cancelRun": {"runId": run_id},
        "listApprovals": {}, "submitApproval": {"runId": run_id, "nodeId": "greet", "approved": True},
        "submitSignal": {"runId": run_id, "signalName": "s"},
        "cronList": {}, "cronCreate": {"workflow": "hello", "pattern": "0 0 1 1 *"},
        "cronDelete": {"cronId": "nope"}, "cronRun": {"workflow": "hello"},
        "deleteRun": {"runId": "not-" + run_id}, "listAudit": {},
        "listSandboxes": {"runId": run_id},
        "getSandboxDiff": {"runId": run_id, "nodeId": "greet"},
    }

SCOPES = ["run:read", "run:write", "run:admin", "approval:read", "approval:submit",
          "signal:submit", "cron:read", "cron:write", "audit:read"]
# The method table (src/gateway/auth.cc), which the matrix walks.
TABLE = {
    "health": "run:read", "listWorkflows": "run:read", "getRun": "run:read",
    "listRuns": "run:read", "getNodeOutput": "run:read", "streamRunEvents": "run:read",
    "listRunTokenUsage": "run:read",
    "subscribe": "run:read", "unsubscribe": "run:read", "launchRun": "run:write",
    "resumeRun": "run:write", "cancelRun": "run:write", "listApprovals": "approval:read",
    "submitApproval": "approval:submit", "submitSignal": "signal:submit",
    "cronList": "cron:read", "cronCreate": "cron:write", "cronDelete": "cron:write",
    "cronRun": "cron:write", "deleteRun": "run:admin", "listAudit": "audit:read",
    "listSandboxes": "run:read", "getSandboxDiff": "approval:read",
}
IMPLIES = {"run:admin": {"run:write", "run:read", "audit:read"}, "run:write": {"run:read"},
           "cron:write": {"cron:read"}, "approval:submit": {"approval:read"}}


def spawn_gateway(test, argv, env=None, cwd=None, drop_env=()):
    """Starts `argv` (a smithers gateway), registered with the test's processes,
    with the test's --synchronous mode unless argv has one; returns (process,
    port, the "listening on" line) or fails the test."""
    if "--synchronous" not in argv:
        argv = argv[:1] + test.sync_args() + argv[1:]
    e = dict(os.environ)
    for name in drop_env:
        e.pop(name, None)
    e.update(env or {})
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=e, cwd=cwd)
    test._procs.append(p)
    line = p.stdout.readline()
    m = re.search(r"listening on https?://[^:]+:(\d+)", line)
    if not m:
        p.kill()
        test.fail("gateway did not start: %r %s" % (line, p.stderr.read()))
    return p, int(m.group(1)), line


def read_until_completed(w, events):
    """Reads frames, adding run.event payloads to `events`, until run.completed;
    returns its payload."""
    while True:
        f = w.recv_json()
        if f["event"] == "run.event":
            events.append(f["payload"])
        elif f["event"] == "run.completed":
            return f["payload"]


class GatewayTest(E2ETest):
    def setUp(self):
        super().setUp()
        self.wf_dir = self.path("workflows")
        os.makedirs(self.wf_dir)
        self.write("workflows/hello.lua", HELLO)
        self.write("workflows/gate.lua", GATE)
        self.write("workflows/chatty.lua", CHATTY)
        self.access_log = self.path("access.log")
        self.gateway = None

    def token(self, scopes, *extra):
        r = self.run_cli("token", "issue", "--scopes", scopes, *extra)
        self.assertEqual(r.code, 0, r)
        token = r.stdout.strip()
        self.assertRegex(token, r"^smithers_[A-Za-z0-9_-]{43}$")
        return token

    def start(self, *extra, env=None):
        argv = [BIN, "--db", self.db, "gateway", "--workflows", self.wf_dir, "--port", "0",
                "--access-log", self.access_log] + list(extra)
        p, self.port, _ = spawn_gateway(self, argv, env)
        self.gateway = p
        return p

    def stop(self):
        self.gateway.send_signal(signal.SIGTERM)
        self.gateway.wait(timeout=10)

    def http(self, method, path, body=None, token=None, headers=None, timeout=60):
        # Generous: under ASan a 12,000-task run keeps the machine busy.
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def rpc(self, method, params, token):
        return self.http("POST", "/v1/rpc/" + method, params, token)

    def ws(self, token=None, **kw):
        w = WebSocket("127.0.0.1", self.port, **kw)
        self.addCleanup(w.close)
        challenge = w.recv_json()
        self.assertEqual(challenge["event"], "connect.challenge")
        self.assertIn("nonce", challenge["payload"])
        # Every event frame carries the Gateway's stateVersion (Smithers'
        # clients refuse a frame without one).
        self.assertIsInstance(challenge["stateVersion"], int)
        if token is not None:
            res = w.request("connect", {"minProtocol": 1, "maxProtocol": 1,
                                        "client": {"id": "test", "version": "1", "platform": "py"},
                                        "auth": {"token": token}})
            self.assertTrue(res["ok"], res)
            w.hello = res["payload"]
        return w

    def cron_sweeps(self):
        """smithers_cron_sweeps_total from /metrics: cron sweeps completed."""
        code, text = self.http("GET", "/metrics")
        self.assertEqual(code, 200, text)
        return int(re.search(r"^smithers_cron_sweeps_total (\d+)$", text, re.M).group(1))

    def wait_run(self, run_id, token, status=("finished",), timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, r = self.rpc("getRun", {"runId": run_id}, token)
            if code == 200 and r["payload"]["status"] in status:
                return r["payload"]
            time.sleep(0.05)
        self.fail("run %s never reached %s (last: %s)" % (run_id, status, r))

    def stream(self, w, run_id, after=None):
        params = {"runId": run_id}
        if after is not None:
            params["afterSeq"] = after
        res = w.request("streamRunEvents", params)
        self.assertTrue(res["ok"], res)
        # Frames before the reply belong to the stream launchRun opened
        # automatically, which this one replaces.
        events = []
        w.events = []
        completed = read_until_completed(w, events)
        return res["payload"], events, completed

    # ---- the handshake and the protocol ----

    def test_handshake_hello_and_errors(self):
        self.start("--heartbeat-ms", "200")
        token = self.token("run:read", "--user", "alice")
        w = self.ws()
        res = w.request("getRun", {"runId": "x"})
        self.assertEqual(res["error"]["code"], "UNAUTHORIZED")
        res = w.request("connect", {"maxProtocol": 1})
        self.assertEqual(res["error"]["code"], "INVALID_REQUEST")
        # a token of the wrong type once crashed the Gateway (an exception
        # out of the handler): now an error, and the socket may try again
        for auth in (5, {"token": 5}, {"token": ["x"]}):
            res = w.request("connect", {"minProtocol": 1, "maxProtocol": 1, "auth": auth})
            self.assertEqual(res["error"]["code"], "INVALID_REQUEST", (auth, res))
        res = w.request("connect", {"minProtocol": 1, "maxProtocol": 1, "auth": {"token": token}})
        self.assertTrue(res["ok"], res)
        hello = res["payload"]
        self.assertEqual(hello["protocol"], 1)
        self.assertEqual(hello["auth"]["userId"], "alice")
        self.assertEqual(hello["auth"]["scopes"], ["run:read"])
        self.assertEqual(hello["policy"]["heartbeatMs"], 200)
        self.assertIn("identity", hello)
        # tick heartbeats arrive, with the frame's seq and stateVersion
        f = w.recv_json(timeout=3)
        self.assertEqual(f["event"], "tick")
        self.assertEqual((type(f["seq"]), type(f["stateVersion"])), (int, int), f)
        # malformed, unknown, wrong types, oversized: each an error, the socket lives
        w.send_text("{not json")
        self.assertEqual(w.recv_json()["error"]["code"], "InvalidRequest")
        self.assertEqual(w.request("noSuchMethod", {})["error"]["code"], "METHOD_NOT_FOUND")
        self.assertEqual(w.request("getRun", {"runId": 7})["error"]["code"], "InvalidRequest")
        self.assertEqual(w.request("listRuns", {"filter": {"limit": "many"}})["error"]["code"],
                         "InvalidRequest")
        # numbers out of range or not integers (the fuzzer's finds): refused, not wrapped
        for method, params in [("listRuns", {"filter": {"limit": 1e300}}),
                               ("listRuns", {"filter": {"offset": 2147483647}}),
                               ("listRuns", {"filter": {"limit": 4294967297}}),
                               # a status that names none, or not a string
                               ("listRuns", {"filter": {"status": "finshed"}}),
                               ("listRuns", {"filter": {"status": 3}}),
                               ("getNodeOutput", {"runId": "x", "nodeId": "n", "iteration": 1.5}),
                               ("getNodeOutput", {"runId": "x", "nodeId": "n", "iteration": -1})]:
            res = w.request(method, params)
            self.assertEqual(res["error"]["code"], "InvalidRequest", (method, params, res))
        self.assertEqual(len(w.request("listRuns", {"filter": {"limit": 1000, "offset": 5}})
                             ["payload"]), 0)
        big = w.request("getRun", {"runId": "x" * (1100 * 1024)})
        self.assertEqual(big["error"]["code"], "PayloadTooLarge")
        self.assertTrue(w.request("health", {})["ok"])
        # a client offering only protocol 2, or one whose range would wrap to
        # 1 as a 32-bit int, is refused and closed
        for offer in ({"minProtocol": 2, "maxProtocol": 3},
                      {"minProtocol": 4294967297, "maxProtocol": 4294967297},
                      {"minProtocol": -4294967295, "maxProtocol": 0}):
            w2 = self.ws()
            res = w2.request("connect", offer)
            self.assertEqual(res["error"]["code"], "PROTOCOL_UNSUPPORTED", (offer, res))
            with self.assertRaises(Closed):
                while True:
                    w2.recv_json(timeout=5)

    def test_connect_timeout_and_bad_token_close_the_socket(self):
        self.start("--heartbeat-ms", "5000")
        w = self.ws()
        res = w.request("connect", {"minProtocol": 1, "maxProtocol": 1,
                                    "auth": {"token": "smithers_" + "A" * 43}})
        self.assertEqual(res["error"]["code"], "Unauthorized")
        with self.assertRaises(Closed) as c:
            w.recv_json(timeout=5)
        self.assertEqual(c.exception.code, 1008)

    def test_http_surface(self):
        self.start()
        token = self.token("run:read,run:write")
        code, health = self.http("GET", "/health")
        self.assertEqual(code, 200)
        self.assertTrue(health["ok"])
        self.assertEqual(health["protocol"], 1)
        code, r = self.rpc("listWorkflows", {}, None)
        self.assertEqual(code, 401)
        self.assertEqual(r["error"]["code"], "Unauthorized")
        code, r = self.rpc("listWorkflows", {}, token)
        self.assertEqual(code, 200)
        keys = sorted(w["key"] for w in r["payload"])
        self.assertEqual(keys, ["chatty", "gate", "hello"])
        code, r = self.http("POST", "/rpc", {"id": 9, "method": "launchRun",
                                             "params": {"workflow": "hello", "runId": "h1",
                                                        "input": {"name": "http"}}}, token)
        self.assertEqual((code, r["id"], r["ok"]), (200, 9, True), r)
        self.wait_run("h1", token)
        code, r = self.rpc("getNodeOutput", {"runId": "h1", "nodeId": "greet"}, token)
        self.assertEqual(r["payload"]["status"], "produced")
        self.assertEqual(r["payload"]["row"], {"message": "Hello, http"})
        code, r = self.rpc("getRun", {"runId": "nope"}, token)
        self.assertEqual((code, r["error"]["code"]), (404, "RunNotFound"))
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "h1"}, token)
        self.assertEqual((code, r["error"]["code"]), (409, "RunExists"))
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "Bad Id"}, token)
        self.assertEqual(code, 400)
        code, r = self.http("POST", "/v1/rpc/getRun", "{oops", token)
        self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"))
        # a body over the limit: 413 before the server reads it all
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(("POST /v1/rpc/getRun HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % (2 << 20, token)).encode() + b"x" * 65536)
        self.assertIn(b" 413 ", s.recv(4096))
        s.close()
        code, text = self.http("GET", "/metrics")
        self.assertEqual(code, 200)
        self.assertIn('smithers_runs{status="finished"} 1', text)
        self.assertRegex(text, r'smithers_rpc_duration_seconds_count\{method="getRun"\} \d+')
        self.assertRegex(text, r"smithers_auth_failures_total [1-9]")
        # the access log: a JSON line per request, no token in it
        with open(self.access_log) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        http_lines = [l for l in lines if l.get("event") == "http"]
        self.assertTrue(any(l["method"] == "launchRun" and l["status"] == 200 for l in http_lines))
        for l in http_lines:
            self.assertTrue({"time", "remote", "method", "status", "latencyMs"} <= set(l), l)

    # ---- runs and streams ----

    def test_launch_stream_and_reconnect_across_a_restart(self):
        self.start()
        token = self.token("run:read,run:write")
        w = self.ws(token)
        res = w.request("launchRun", {"workflow": "chatty", "runId": "c1", "input": {"n": 30}})
        self.assertTrue(res["ok"], res)
        info, events, completed = self.stream(w, "c1")
        self.assertEqual(completed["status"], "finished")
        self.assertEqual({e["streamId"] for e in events}, {info["streamId"]},
                         "every run.event names its stream")
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "every event once, in seq order")
        cli = self.run_cli("events", "c1", "--json").json()["events"]
        self.assertEqual([(e["seq"], e["type"]) for e in cli],
                         [(e["seq"], e["type"]) for e in events],
                         "the stream carries the durable seqs of `smithers events`")
        # reconnect after a restart: exactly the events after N
        self.stop()
        self.start()
        w2 = self.ws(token)
        info, tail, completed = self.stream(w2, "c1", after=40)
        self.assertEqual([e["seq"] for e in tail], list(range(41, len(seqs) + 1)))
        self.assertEqual(info["currentSeq"], len(seqs))
        res = w2.request("streamRunEvents", {"runId": "c1", "afterSeq": 10 ** 6})
        self.assertEqual(res["error"]["code"], "SeqOutOfRange")

    def test_an_idempotency_key_is_per_token_and_survives_a_restart(self):
        self.start()
        alice = self.token("run:write", "--user", "alice")
        bob = self.token("run:write", "--user", "bob")
        launch = {"workflow": "hello", "options": {"idempotencyKey": "k1"}}
        code, first = self.rpc("launchRun", launch, alice)
        self.assertEqual(code, 200, first)
        run_id = first["payload"]["runId"]
        self.stop()
        self.start()
        self.assertEqual(self.rpc("launchRun", launch, alice)[1]["payload"]["runId"], run_id)
        # Another token's key of the same name is its own.
        code, other = self.rpc("launchRun", launch, bob)
        self.assertEqual(code, 200, other)
        self.assertNotEqual(other["payload"]["runId"], run_id)
        # A refused launch does not hold its key.
        bad = {"workflow": "nope", "options": {"idempotencyKey": "k2"}}
        self.assertEqual(self.rpc("launchRun", bad, alice)[1]["error"]["code"], "WorkflowNotFound")
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "Bad Id",
                                         "options": {"idempotencyKey": "k2"}}, alice)
        self.assertEqual(r["error"]["code"], "InvalidRunId")
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "k2-run",
                                         "options": {"idempotencyKey": "k2"}}, alice)
        self.assertEqual((code, r["payload"]["runId"]), (200, "k2-run"), r)
        code, r = self.rpc("launchRun", {"workflow": "hello", "input": 5,
                                         "options": {"idempotencyKey": "k3"}}, alice)
        self.assertEqual(code, 400, r)
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "k3-run",
                                         "options": {"idempotencyKey": "k3"}}, alice)
        self.assertEqual((code, r["payload"]["runId"]), (200, "k3-run"), r)
        # A new key with the id of an existing run: RunExists, and the key
        # stays free.
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "k3-run",
                                         "options": {"idempotencyKey": "k4"}}, alice)
        self.assertEqual((code, r["error"]["code"]), (409, "RunExists"), r)
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "k4-run",
                                         "options": {"idempotencyKey": "k4"}}, alice)
        self.assertEqual((code, r["payload"]["runId"]), (200, "k4-run"), r)
        for bad_key in ("", "x" * 257, 5):
            code, r = self.rpc("launchRun", {"workflow": "hello",
                                             "options": {"idempotencyKey": bad_key}}, alice)
            self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"), r)

    def test_live_stream_hands_over_without_gap_or_duplicate(self):
        # The run blocks on a gate file, so the subscription is provably
        # mid-run: what was committed is replayed, the rest arrives live.
        self.write("workflows/gated.lua", GATED.replace("GATE_DIR]==]", self.dir + "]==]"))
        self.start()
        token = self.token("run:read,run:write")
        w = self.ws(token)
        self.assertTrue(w.request("launchRun", {"workflow": "gated", "runId": "c2"})["ok"])
        self.wait_for(lambda: os.path.exists(self.path("gate.started")), timeout=20,
                      what="the gate task to start")
        res = w.request("streamRunEvents", {"runId": "c2"})
        self.assertTrue(res["ok"], res)
        current = res["payload"]["currentSeq"]
        # The replay: every committed event up to currentSeq, the gate's start
        # among them, and nothing of what follows the gate.
        replayed = []
        while not replayed or replayed[-1]["seq"] < current:
            f = w.recv_json()
            if f["event"] == "run.event":
                replayed.append(f["payload"])
        self.assertEqual([e["seq"] for e in replayed], list(range(1, current + 1)))
        started = [e["payload"].get("nodeId") for e in replayed if e["type"] == "NodeStarted"]
        self.assertEqual(started[-1], "gate")
        self.assertNotIn("b1", started)
        # Live: released only now, so everything after the gate is new.
        with open(self.path("gate"), "w"):
            pass
        live = []
        completed = read_until_completed(w, live)
        events = replayed + live
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "no gap and no duplicate at the handover")
        self.assertGreater(len(live), 20, "the tasks after the gate arrive live")
        self.assertIn(("NodeFinished", "b20"),
                      [(e["type"], e["payload"].get("nodeId")) for e in live])
        self.assertEqual(completed["lastSeq"], seqs[-1])
        self.assertEqual((events[-1]["type"], events[-1]["event"]), ("RunFinished", "run.completed"))

    def test_approval_by_a_token_records_the_user_and_resumes_the_run(self):
        self.start()
        launcher = self.token("run:read,run:write")
        approver = self.token("approval:submit", "--user", "ops")  # GATE's owner
        code, r = self.rpc("launchRun", {"workflow": "gate", "runId": "g1"}, launcher)
        self.assertEqual(code, 200, r)
        self.wait_run("g1", launcher, status=("waiting-approval",))
        # launching does not grant approving
        code, r = self.rpc("submitApproval", {"runId": "g1", "nodeId": "ship", "approved": True},
                           launcher)
        self.assertEqual((code, r["error"]["code"]), (403, "Forbidden"))
        self.assertEqual(r["error"]["requiredScope"], "approval:submit")
        code, r = self.rpc("listApprovals", {}, approver)
        self.assertEqual([a["nodeId"] for a in r["payload"]], ["ship"])
        for status in ("pending", 7):  # names no approval status: refused, not an empty list
            code, r = self.rpc("listApprovals", {"filter": {"status": status}}, approver)
            self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"), r)
        code, r = self.rpc("submitApproval", {"runId": "g1", "nodeId": "ship", "approved": True,
                                              "note": "lgtm"}, approver)
        self.assertEqual(code, 200, r)
        self.assertEqual(r["payload"]["decidedBy"], "ops")
        self.wait_run("g1", launcher)
        code, r = self.rpc("submitApproval", {"runId": "g1", "nodeId": "ship", "approved": False},
                           approver)
        self.assertEqual((code, r["error"]["code"]), (409, "AlreadyDecided"))
        ev = [e for e in self.run_cli("events", "g1", "--json").json()["events"]
              if e["type"] == "ApprovalGranted"]
        self.assertEqual(ev[0]["payload"]["decidedBy"], "ops")
        self.assertEqual(ev[0]["payload"]["via"], "token")

    def test_cancel_and_resume(self):
        self.start()
        token = self.token("run:write")
        code, r = self.rpc("launchRun", {"workflow": "gate", "runId": "g2"}, token)
        self.wait_run("g2", token, status=("waiting-approval",))
        code, r = self.rpc("cancelRun", {"runId": "g2"}, token)
        self.assertEqual((code, r["payload"]), (200, {"runId": "g2", "status": "cancelling",
                                                      "runStatus": "cancelled"}), r)
        code, r = self.rpc("cancelRun", {"runId": "g2"}, token)
        self.assertEqual((code, r["payload"]["runStatus"]), (200, "cancelled"), "idempotent")
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "h2"}, token)
        self.wait_run("h2", token)
        code, r = self.rpc("cancelRun", {"runId": "h2"}, token)
        self.assertEqual((code, r["error"]["code"]), (409, "RUN_NOT_ACTIVE"), r)
        code, r = self.rpc("resumeRun", {"runId": "h2"}, token)
        self.assertEqual(r["payload"]["status"], "already_terminal")

    def test_delete_run(self):
        self.write("workflows/gated.lua", GATED.replace("GATE_DIR]==]", self.dir + "]==]"))
        self.start()
        writer = self.token("run:write")
        admin = self.token("run:admin")
        for run_id, wf in (("d1", "hello"), ("d2", "gate"), ("keep", "hello")):
            code, r = self.rpc("launchRun", {"workflow": wf, "runId": run_id}, writer)
            self.assertEqual(code, 200, r)
        self.wait_run("d1", writer)
        self.wait_run("keep", writer)
        self.wait_run("d2", writer, status=("waiting-approval",))
        # run:write may cancel but not delete.
        code, r = self.rpc("deleteRun", {"runId": "d1"}, writer)
        self.assertEqual((code, r["error"]["requiredScope"]), (403, "run:admin"), r)
        code, r = self.rpc("deleteRun", {"runId": "d1"}, admin)
        self.assertEqual(code, 200, r)
        self.assertEqual((r["payload"]["deleted"], r["payload"]["status"]), (True, "finished"))
        self.assertEqual(self.rpc("getRun", {"runId": "d1"}, admin)[0], 404)
        self.assertEqual(self.rpc("deleteRun", {"runId": "d1"}, admin)[0], 404)
        code, r = self.rpc("deleteRun", {"runId": "d2", "force": "yes"}, admin)
        self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"), r)
        code, r = self.rpc("deleteRun", {"runId": "d2"}, admin)
        self.assertEqual((code, r["error"]["code"]), (409, "RunNotOver"), r)
        code, r = self.rpc("deleteRun", {"runId": "d2", "force": True}, admin)
        self.assertEqual((code, r["payload"]["status"]), (200, "cancelled"), r)
        self.assertEqual(self.rpc("getRun", {"runId": "keep"}, admin)[0], 200)
        # A run this Gateway is running: asked to stop (Busy), deleted once it has.
        code, r = self.rpc("launchRun", {"workflow": "gated", "runId": "d3"}, writer)
        self.assertEqual(code, 200, r)
        self.wait_for(lambda: os.path.exists(self.path("gate.started")), timeout=20,
                      what="the gate task to start")
        code, r = self.rpc("deleteRun", {"runId": "d3"}, admin)
        self.assertEqual((code, r["error"]["code"]), (409, "RunNotOver"), r)
        code, r = self.rpc("deleteRun", {"runId": "d3", "force": True}, admin)
        self.assertEqual((code, r["error"]["code"]), (409, "Busy"), r)
        self.wait_for(lambda: self.rpc("deleteRun", {"runId": "d3", "force": True}, admin)[0]
                      == 200, timeout=20, what="the run to stop and be deleted")
        self.assertEqual(self.rpc("getRun", {"runId": "d3"}, admin)[0], 404)
        runs = [r["runId"] for r in self.rpc("listRuns", {}, admin)[1]["payload"]]
        self.assertEqual(runs, ["keep"])

    def test_audit_log_records_the_authenticated_actor(self):
        self.start()
        alice = self.token("run:write,approval:submit,signal:submit,cron:write",
                           "--user", "alice")
        admin = self.token("run:admin", "--user", "root-admin")
        auditor = self.token("audit:read", "--user", "auditor")
        self.assertEqual(self.rpc("launchRun", {"workflow": "gate", "runId": "a1"}, alice)[0], 200)
        self.wait_run("a1", alice, status=("waiting-approval",))
        code, r = self.rpc("submitApproval", {"runId": "a1", "nodeId": "ship", "approved": True,
                                              "decidedBy": "mallory"}, alice)
        self.assertEqual(code, 403, "decidedBy cannot name someone else")
        code, r = self.rpc("submitSignal", {"runId": "a1", "signalName": "s"}, alice)
        self.assertEqual(code, 200, r)
        code, r = self.rpc("cronCreate", {"workflow": "hello", "pattern": "0 0 1 1 *",
                                          "cronId": "c1"}, alice)
        self.assertEqual(code, 200, r)
        self.assertEqual(self.rpc("cronDelete", {"cronId": "c1"}, alice)[0], 200)
        self.assertEqual(self.rpc("cancelRun", {"runId": "a1"}, alice)[0], 200)
        self.wait_run("a1", alice, status=("cancelled",))
        self.assertEqual(self.rpc("deleteRun", {"runId": "a1"}, admin)[0], 200)
        # run:write may not read the log; audit:read and run:admin may.
        self.assertEqual(self.rpc("listAudit", {}, alice)[0], 403)
        code, r = self.rpc("listAudit", {}, auditor)
        self.assertEqual(code, 200, r)
        rows = r["payload"]["rows"]
        got = [(x["action"], x["actor"], x["actorVia"]) for x in rows
               if x["action"] not in ("token.issue",)]
        self.assertEqual(got, [("run.launch", "alice", "token"),
                               ("signal.send", "alice", "token"),
                               ("cron.create", "alice", "token"),
                               ("cron.delete", "alice", "token"),
                               ("run.cancel", "alice", "token"),
                               ("run.delete", "root-admin", "token")])
        self.assertTrue(all(x["details"]["role"] == "operator" for x in rows
                            if x["actorVia"] == "token"))
        launch = rows[[x["action"] for x in rows].index("run.launch")]
        self.assertEqual((launch["runId"], launch["chain"], launch["chainSeq"]),
                         ("a1", "run:a1", 1))
        self.assertEqual(len(launch["moduleRevision"]), 64)
        # Pages by seq.
        code, r = self.rpc("listAudit", {"limit": 2, "runId": "a1"}, admin)
        self.assertEqual(code, 200, r)
        page = r["payload"]
        self.assertEqual(len(page["rows"]), 2)
        code, r = self.rpc("listAudit", {"runId": "a1", "afterSeq": page["nextAfterSeq"]}, admin)
        self.assertEqual([x["action"] for x in r["payload"]["rows"]],
                         ["run.cancel", "run.delete"])
        self.assertEqual(self.rpc("listAudit", {"limit": 0}, admin)[0], 400)
        # The whole log verifies under its key, and no token is in it.
        v = self.run_cli("audit", "verify", "--json")
        self.assertEqual(v.code, 0, v)
        self.assertTrue(v.json()["ok"])
        dump = self.run_cli("audit", "export").stdout
        for t in (alice, admin, auditor):
            self.assertNotIn(t, dump)

    # ---- access control ----

    def test_scope_matrix(self):
        self.start()
        admin = self.token("*")
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "m1"}, admin)
        self.assertEqual(code, 200, r)
        self.wait_run("m1", admin)
        tokens = {s: self.token(s) for s in SCOPES}
        for method, required in TABLE.items():
            params = method_params("m1")[method]
            for scope, token in tokens.items():
                allowed = scope == required or required in IMPLIES.get(scope, ())
                code, r = self.rpc(method, params, token)
                if allowed:
                    self.assertNotIn(code, (401, 403), (method, scope, r))
                else:
                    self.assertEqual(code, 403, (method, scope, r))
                    self.assertEqual(r["error"]["code"], "Forbidden")
                    self.assertEqual(r["error"]["requiredScope"], required)
            code, r = self.rpc(method, params, None)
            self.assertEqual(code, 401, method)
        # method-name grants, wildcards and the legacy ranked grants
        named = self.token("getRun")
        self.assertEqual(self.rpc("getRun", {"runId": "m1"}, named)[0], 200)
        self.assertEqual(self.rpc("listRuns", {}, named)[0], 403)
        cron = self.token("cron*")
        self.assertEqual(self.rpc("cronList", {}, cron)[0], 200)
        self.assertEqual(self.rpc("getRun", {"runId": "m1"}, cron)[0], 403)
        read = self.token("read")
        self.assertEqual(self.rpc("cronList", {}, read)[0], 200)
        self.assertEqual(self.rpc("cancelRun", {"runId": "m1"}, read)[0], 403)
        # The audit log: never through a legacy grant or a method wildcard.
        for grant in ("admin", "read", "list*"):
            code, r = self.rpc("listAudit", {}, self.token(grant))
            self.assertEqual(code, 403, (grant, r))
        execute = self.token("execute")
        self.assertEqual(self.rpc("submitSignal", {"runId": "m1", "signalName": "s"}, execute)[0],
                         200)
        self.assertEqual(self.rpc("submitApproval", {"runId": "m1", "nodeId": "x"}, execute)[0],
                         403)

    def test_expired_and_revoked_tokens(self):
        # Token expiry is the real clock's (SMITHERS_CLOCK_OFFSET_MS never
        # moves it): a token of one second expires while we watch.
        expiring = self.token("run:read", "--ttl", "1s")
        live = self.token("run:read", "--ttl", "3h")
        self.start("--heartbeat-ms", "200")
        self.wait_for(lambda: self.rpc("listRuns", {}, expiring)[0] == 401, timeout=10,
                      what="the 1 s token to expire")
        code, r = self.rpc("listRuns", {}, expiring)
        self.assertEqual(code, 401)
        self.assertEqual(r["error"]["refresh"], "smithers token issue")
        self.assertEqual(self.rpc("listRuns", {}, live)[0], 200)
        w = self.ws(live)
        tid = self.run_cli("token", "list", "--json").json()["tokens"][1]["tokenId"]
        self.assertEqual(self.run_cli("token", "revoke", tid).code, 0)
        self.assertEqual(self.rpc("listRuns", {}, live)[0], 401)
        # the open socket is closed at its next tick
        with self.assertRaises(Closed) as c:
            while True:
                w.recv_json(timeout=5)
        self.assertEqual(c.exception.code, 1008)

    def test_rotation_keeps_the_old_token_for_the_overlap(self):
        old = self.token("run:read", "--user", "bob")
        tid = self.run_cli("token", "list", "--json").json()["tokens"][0]["tokenId"]
        self.start()
        self.assertEqual(self.rpc("listRuns", {}, old)[0], 200)
        # An hour: the checks below cannot outlast it, however slow the machine.
        r = self.run_cli("token", "rotate", tid, "--overlap", "1h", "--json")
        self.assertEqual(r.code, 0, r)
        new = r.json()["token"]
        self.assertEqual(self.rpc("listRuns", {}, old)[0], 200)
        self.assertEqual(self.rpc("listRuns", {}, new)[0], 200)
        listed = self.run_cli("token", "list", "--json").json()["tokens"]
        self.assertEqual(listed[0]["state"], "rotating")
        self.assertEqual(listed[1]["userId"], "bob")
        # A rotation whose overlap ends: on the real clock (the test clock
        # never moves it), so a short one, waited for as a condition.
        r = self.run_cli("token", "rotate", listed[1]["tokenId"], "--overlap", "1s", "--json")
        self.assertEqual(r.code, 0, r)
        newer = r.json()["token"]
        self.wait_for(lambda: self.rpc("listRuns", {}, new)[0] == 401, timeout=15,
                      what="the rotated token to stop working once its overlap ended")
        self.assertEqual(self.rpc("listRuns", {}, newer)[0], 200)
        self.assertEqual(self.rpc("listRuns", {}, old)[0], 200, "its own overlap goes on")

    def test_no_token_reaches_the_database_or_the_logs(self):
        tokens = [self.token("*"), self.token("run:read")]
        self.start()
        for t in tokens:
            self.rpc("launchRun", {"workflow": "hello"}, t)
            w = self.ws(t)
            w.request("listRuns", {})
        self.stop()
        files = glob.glob(self.db + "*") + [self.access_log]
        for t in tokens:
            for path in files:
                with open(path, "rb") as f:
                    data = f.read()
                self.assertNotIn(t.encode(), data, path)
                self.assertNotIn(t[9:].encode(), data, path)

    def test_auth_none_only_on_loopback_and_non_loopback_needs_tls_or_insecure(self):
        r = self.run_cli("gateway", "--workflows", self.wf_dir, "--host", "0.0.0.0",
                         "--port", "0")
        self.assertEqual(r.code, 4)
        self.assertIn("--insecure", r.stderr)
        r = self.run_cli("gateway", "--workflows", self.wf_dir, "--host", "0.0.0.0",
                         "--port", "0", "--auth", "none", "--insecure")
        self.assertEqual(r.code, 4)
        self.assertIn("loopback", r.stderr)
        self.start("--auth", "none")
        self.assertEqual(self.rpc("listRuns", {}, None)[0], 200)

    def pipelined(self, w, n=300):
        """Sends n requests without reading (getRun, listRuns, an unknown
        method, a frame that is not JSON, in turn), then reads: every request
        is answered once, in order, with the right result, however the server
        combines its writes."""
        kinds = [('{"type":"req","id":"%d","method":"getRun","params":{"runId":"nope"}}',
                  "RunNotFound"),
                 ('{"type":"req","id":"%d","method":"listRuns","params":{}}', None),
                 ('{"type":"req","id":"%d","method":"noSuchMethod","params":{}}',
                  "METHOD_NOT_FOUND"),
                 ('{"type":"req","id":"%d", oops', "InvalidRequest")]
        for i in range(n):
            w.send_text(kinds[i % 4][0] % i)
        answered = []
        while len(answered) < n:
            f = w.recv_json(timeout=30)
            if f.get("type") != "res":
                continue
            i = len(answered)
            want = kinds[i % 4][1]
            if i % 4 == 3:
                self.assertIsNone(f["id"], f)  # not parsed, so no id to echo
            else:
                self.assertEqual(f["id"], str(i), f)
            if want is None:
                self.assertTrue(f["ok"], f)
            else:
                self.assertEqual(f["error"]["code"], want, f)
            answered.append(f["id"])
        self.assertTrue(w.request("health", {})["ok"])

    def test_pipelined_requests_are_answered_once_and_in_order(self):
        self.start()
        self.pipelined(self.ws(self.token("run:read")), 1000)

    def test_tls(self):
        cert, key = self.path("cert.pem"), self.path("key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        self.start("--tls-cert", cert, "--tls-key", key, "--host", "0.0.0.0")
        token = self.token("run:read")
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=ctx)
        c.request("POST", "/v1/rpc/listRuns", body="{}",
                  headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertTrue(json.loads(r.read())["ok"])
        w = WebSocket("127.0.0.1", self.port, tls=ctx)
        self.addCleanup(w.close)
        self.assertEqual(w.recv_json()["event"], "connect.challenge")
        res = w.request("connect", {"minProtocol": 1, "maxProtocol": 1, "auth": {"token": token}})
        self.assertTrue(res["ok"], res)
        self.pipelined(w)
        # plain HTTP to the TLS port gets nothing useful
        with self.assertRaises(Exception):
            self.http("GET", "/health")

    # ---- cron ----

    def test_cron_crud_run_and_one_fire_for_missed_slots(self):
        self.start()
        token = self.token("cron:write,run:read")
        code, r = self.rpc("cronCreate", {"workflow": "hello", "pattern": "*/5 * * * *",
                                          "cronId": "every5", "input": {"name": "cron"}}, token)
        self.assertEqual(code, 200, r)
        nxt = r["payload"]["nextRunAtMs"]
        self.assertEqual(nxt % (5 * 60000), 0)
        self.assertGreater(nxt, time.time() * 1000)
        code, r = self.rpc("cronCreate", {"workflow": "hello", "pattern": "61 * * * *"}, token)
        self.assertEqual((code, r["error"]["code"]), (400, "InvalidInput"))
        self.assertIn("61", r["error"]["message"])
        code, r = self.rpc("cronRun", {"cronId": "every5"}, token)
        self.assertEqual(code, 200, r)
        self.wait_run(r["payload"]["runId"], token)
        self.stop()
        # 20 minutes later: four slots were missed; one run fires
        self.start(env={"SMITHERS_CLOCK_OFFSET_MS": str(20 * 60 * 1000)})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            code, r = self.rpc("cronList", {}, token)
            row = r["payload"][0]
            if row["lastRunId"]:
                break
            time.sleep(0.1)
        self.assertTrue(row["lastRunId"].startswith("cron-"), row)
        self.assertGreater(row["nextRunAtMs"], nxt + 15 * 60000)
        # Two more whole sweeps after the fire was seen: still one run.
        sweeps = self.cron_sweeps()
        self.wait_for(lambda: self.cron_sweeps() >= sweeps + 2, timeout=20,
                      what="two more cron sweeps")
        runs = self.rpc("listRuns", {}, token)[1]["payload"]
        self.assertEqual(len([x for x in runs if x["runId"].startswith("cron-")]), 1)
        self.wait_run(row["lastRunId"], token)
        self.assertEqual(self.rpc("cronDelete", {"cronId": "every5"}, token)[0], 200)
        self.assertEqual(self.rpc("cronDelete", {"cronId": "every5"}, token)[0], 404)

    # ---- hot reload, declared schedules, auto-subscribe ----

    def rows(self, method, token, params=None):
        """The rows a list method returns (a bare array, as Smithers' client
        types them)."""
        code, r = self.rpc(method, params or {}, token)
        self.assertEqual(code, 200, r)
        self.assertIsInstance(r["payload"], list, r)
        return r["payload"]

    def launch_to_gate(self, workflow, run_id, token):
        """Launches a GATE-shaped workflow and waits for its approval gate."""
        self.assertEqual(self.rpc("launchRun", {"workflow": workflow, "runId": run_id},
                                  token)[0], 200)
        self.wait_run(run_id, token, status=("waiting-approval",))

    def approve_and_read_after(self, run_id, token):
        """Approves a GATE run's `ship`, waits for the run to finish and
        returns the row its task `after` wrote."""
        code, r = self.rpc("submitApproval", {"runId": run_id, "nodeId": "ship", "approved": True},
                           token)
        self.assertEqual(code, 200, r)
        self.assertEqual(self.wait_run(run_id, token)["status"], "finished")
        code, r = self.rpc("getNodeOutput", {"runId": run_id, "nodeId": "after"}, token)
        self.assertEqual(code, 200, r)
        return r["payload"]["row"]

    def test_a_run_keeps_the_revision_it_started_with_across_reload_and_restart(self):
        self.start()
        token = self.token("run:read,run:write,approval:submit", "--user", "ops")
        self.launch_to_gate("gate", "old", token)
        before = {w["key"]: w["revision"] for w in self.rows("listWorkflows", token)}
        # the file changes while the run waits: the Gateway reloads it ...
        self.write("workflows/gate.lua", GATE.replace("{ ok = true }", "{ ok = false }"))
        self.wait_for(lambda: {w["key"]: w["revision"] for w in
                               self.rows("listWorkflows", token)}["gate"]
                      != before["gate"], what="the reload")
        # ... and is restarted: the old revision lives in the database
        self.stop()
        self.start()
        self.assertEqual(self.approve_and_read_after("old", token), {"ok": True},
                         "the code the run started with")
        # a run launched now runs the new revision
        self.launch_to_gate("gate", "new", token)
        self.assertEqual(self.approve_and_read_after("new", token), {"ok": False})
        revisions = self.query("SELECT revision FROM _smithers_modules")
        self.assertIn(before["gate"], [x["revision"] for x in revisions])

    def test_a_run_keeps_the_siblings_it_required_when_they_change(self):
        gate_lib = GATE.replace("return smithers(function(ctx)",
                                'local lib = require("lib.shared")\nreturn smithers(function(ctx)')
        gate_lib = gate_lib.replace("{ ok = true }", "{ ok = lib.ok }")
        self.assertNotEqual(gate_lib, GATE)
        os.makedirs(self.path("workflows/lib"))
        self.write("workflows/lib/shared.lua", "return { ok = true }\n", prelude=False)
        self.write("workflows/gatelib.lua", gate_lib)
        self.start()
        token = self.token("run:read,run:write,approval:submit", "--user", "ops")
        self.launch_to_gate("gatelib", "old", token)
        # only the sibling changes, then the Gateway restarts: the waiting run
        # resumes with the sibling it was launched with
        self.write("workflows/lib/shared.lua", "return { ok = false }\n", prelude=False)
        self.stop()
        self.start()
        self.assertEqual(self.approve_and_read_after("old", token), {"ok": True},
                         "the sibling the run started with")
        # a run launched now gets the new sibling, under a new revision
        self.launch_to_gate("gatelib", "new", token)
        self.assertEqual(self.approve_and_read_after("new", token), {"ok": False})
        runs = {x["run_id"]: x["workflow_hash"] for x in
                self.query("SELECT run_id, workflow_hash FROM _smithers_runs")}
        self.assertNotEqual(runs["old"], runs["new"])
        pinned = self.query("SELECT revision, name, source FROM _smithers_module_requires")
        self.assertEqual(sorted((x["revision"], x["name"], x["source"]) for x in pinned
                                if x["revision"] in (runs["old"], runs["new"])),
                         sorted([(runs["old"], "lib.shared", "return { ok = true }\n"),
                                 (runs["new"], "lib.shared", "return { ok = false }\n")]))

    def test_a_schedule_declared_by_a_module_gets_one_cron_row(self):
        nightly = HELLO.replace(
            "\nend)\n", "\nend, { schedule = { cron = '*/5 * * * *', timeZone = 'Europe/Berlin', "
            "input = { name = 'sched' } } })\n")
        self.assertNotEqual(nightly, HELLO)
        self.write("workflows/nightly.lua", nightly)
        self.start()
        token = self.token("cron:read,run:read")
        crons = self.rows("cronList", token)
        self.assertEqual([c["cronId"] for c in crons], ["gateway:nightly"])
        row = crons[0]
        self.assertEqual((row["workflow"], row["pattern"], row["timeZone"], row["input"]),
                         ("nightly", "*/5 * * * *", "Europe/Berlin", {"name": "sched"}))
        nxt = row["nextRunAtMs"]
        self.assertEqual(nxt % (5 * 60000), 0)
        wf = {w["key"]: w for w in self.rows("listWorkflows", token)}
        self.assertEqual(wf["nightly"]["schedule"]["cronId"], "gateway:nightly")
        # a restart keeps the row as it is (one row, same next fire)
        self.stop()
        self.start()
        self.assertEqual(self.rows("cronList", token), crons)
        # the slot passes while the Gateway is down: it fires once, with the input
        self.stop()
        self.start(env={"SMITHERS_CLOCK_OFFSET_MS": str(12 * 60 * 1000)})
        row = self.wait_for(lambda: [c for c in self.rows("cronList", token)
                                     if c["lastRunId"]], what="the missed fire")[0]
        self.wait_run(row["lastRunId"], token)
        code, r = self.rpc("getNodeOutput", {"runId": row["lastRunId"], "nodeId": "greet"}, token)
        self.assertEqual(r["payload"]["row"], {"message": "Hello, sched"})
        self.assertEqual(self.run_cli("events", row["lastRunId"], "--json").code, 0)
        # an invalid schedule is reported and leaves the row alone
        self.write("workflows/nightly.lua", nightly.replace("*/5 * * * *", "61 * * * *"))
        wf = self.wait_for(lambda: [w for w in self.rows("listWorkflows", token)
                                    if w["key"] == "nightly" and "error" in w],
                           what="the schedule error")[0]
        self.assertIn("61", wf["error"])
        self.assertEqual([c["pattern"] for c in self.rows("cronList", token)],
                         ["*/5 * * * *"])
        # a changed schedule replaces the row; none declared removes it
        self.write("workflows/nightly.lua", nightly.replace("*/5 * * * *", "0 3 * * *"))
        self.wait_for(lambda: [c["pattern"] for c in self.rows("cronList", token)]
                      == ["0 3 * * *"], what="the changed schedule")
        self.write("workflows/nightly.lua", HELLO)
        self.wait_for(lambda: self.rows("cronList", token) == [],
                      what="the row removed")

    def test_launch_and_approval_subscribe_the_connection(self):
        self.start()
        token = self.token("run:read,run:write,approval:submit", "--user", "ops")
        w = self.ws(token)
        res = w.request("launchRun", {"workflow": "gate", "runId": "a1"})
        self.assertTrue(res["ok"], res)
        stream_id = res["payload"]["streamId"]
        seen = list(getattr(w, "events", []))
        while not any(f.get("payload", {}).get("type") == "ApprovalRequested" for f in seen):
            seen.append(w.recv_json())
        events = [f["payload"] for f in seen if f.get("event") == "run.event"]
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        # approving on another connection: the decision and the rest arrive here
        w2 = self.ws(token)
        res2 = w2.request("submitApproval", {"runId": "a1", "nodeId": "ship", "approved": True})
        self.assertTrue(res2["ok"], res2)
        self.assertIn("streamId", res2["payload"])
        w.events = []
        completed = read_until_completed(w, events)
        self.assertEqual(completed["streamId"], stream_id)
        self.assertEqual(completed["status"], "finished")
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)),
                         "every event once, in order")
        self.assertEqual((events[-1]["type"], events[-1]["event"]), ("RunFinished", "run.completed"))
        # over HTTP there is no connection to subscribe
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "a2"}, token)
        self.assertNotIn("streamId", r["payload"])

    def test_a_launch_held_in_its_module_load_does_not_hold_up_other_clients(self):
        # The module's load (and first render, and the wait for the first
        # commit) is the run thread's: the io thread serves everyone else
        # meanwhile, and the launch is answered once its run committed.
        hold_dir = self.path("hold")
        os.makedirs(hold_dir)
        self.write("workflows/held.lua", HELD_LOAD.replace("HOLD_DIR", hold_dir))
        self.start("--trusted-modules")  # io.open in the module
        token = self.token("run:read,run:write")
        w = self.ws(token)
        open(os.path.join(hold_dir, "hold"), "w").close()
        w.send_json({"type": "req", "id": "launch", "method": "launchRun",
                     "params": {"workflow": "held", "runId": "held-1"}})
        self.wait_for(lambda: os.path.exists(os.path.join(hold_dir, "loading")),
                      what="the launch to be held in the module's load")
        # Another client, over HTTP: answered while the load is held (before
        # the change this waited for the load, which never ends unless released).
        code, health = self.http("GET", "/health", timeout=10)
        self.assertEqual(code, 200, health)
        code, runs = self.http("POST", "/v1/rpc/listRuns", {}, token, timeout=10)
        self.assertEqual(code, 200, runs)
        self.assertNotIn("held-1", [r["runId"] for r in runs["payload"]])
        # The id is taken while the launch is held.
        code, again = self.http("POST", "/v1/rpc/launchRun", {"workflow": "hello", "runId": "held-1"},
                                token, timeout=10)
        self.assertEqual((code, again["error"]["code"]), (409, "RunExists"), again)
        # The same connection: a later request is answered first.
        res = w.request("health", {})
        self.assertTrue(res["ok"], res)
        self.assertEqual(getattr(w, "events", []), [], "nothing for the held launch yet")
        self.assertFalse(os.path.exists(os.path.join(hold_dir, "release")))
        open(os.path.join(hold_dir, "release"), "w").close()
        # The launch's reply, then its stream from the run's first event:
        # launchRun subscribed the connection before any event was sent.
        f = w.recv_json(timeout=30)
        while f.get("type") == "event" and f["event"] == "tick":
            f = w.recv_json(timeout=30)
        self.assertEqual((f.get("type"), f.get("id")), ("res", "launch"), f)
        self.assertTrue(f["ok"], f)
        self.assertEqual(f["payload"]["runId"], "held-1")
        stream_id = f["payload"]["streamId"]
        events = []
        completed = read_until_completed(w, events)
        self.assertEqual(completed["streamId"], stream_id)
        self.assertEqual(completed["status"], "finished")
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)),
                         "every event from the first, once, in order")
        self.assertEqual((events[-1]["type"], events[-1]["event"]), ("RunFinished", "run.completed"))

    def test_a_module_held_in_the_catalogs_load_does_not_hold_up_the_gateway(self):
        # The catalog loads a new or changed module on its own thread: while
        # one load is held, every client is served, a known workflow
        # launches and runs, and a launch of a workflow the catalog has not
        # seen yet is answered once the scan that finds it ends.
        hold_dir = self.path("hold")
        os.makedirs(hold_dir)
        self.start("--trusted-modules")  # io.open in the module
        token = self.token("run:read,run:write")
        open(os.path.join(hold_dir, "hold"), "w").close()
        self.write("workflows/held.lua", HELD_LOAD.replace("HOLD_DIR", hold_dir))
        self.wait_for(lambda: os.path.exists(os.path.join(hold_dir, "loading")),
                      what="the catalog's scan to be held in the module's load")
        code, health = self.http("GET", "/health", timeout=10)
        self.assertEqual(code, 200, health)
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "known"}, token)
        self.assertEqual(code, 200, r)
        self.assertEqual(self.wait_run("known", token)["status"], "finished")
        # A workflow written now: its launch waits for a scan that starts
        # after the held one.
        self.write("workflows/later.lua", HELLO)
        w = self.ws(token)
        w.send_json({"type": "req", "id": "later", "method": "launchRun",
                     "params": {"workflow": "later", "runId": "later-1"}})
        res = w.request("listWorkflows", {})
        self.assertTrue(res["ok"], res)
        self.assertNotIn("held", [x["key"] for x in res["payload"]])
        self.assertEqual(getattr(w, "events", []), [], "nothing for the held launch yet")
        open(os.path.join(hold_dir, "release"), "w").close()
        f = w.recv_json(timeout=30)
        while f.get("type") == "event":
            f = w.recv_json(timeout=30)
        self.assertEqual((f.get("type"), f.get("id")), ("res", "later"), f)
        self.assertTrue(f["ok"], f)
        self.assertEqual(self.wait_run("later-1", token)["status"], "finished")
        keys = [x["key"] for x in self.rpc("listWorkflows", {}, token)[1]["payload"]]
        self.assertIn("held", keys)
        self.assertIn("later", keys)

    def test_a_stop_waits_for_a_catalog_load_and_a_second_signal_ends_it(self):
        # A module whose load never ends (trusted: no load budget) holds the
        # catalog's scan; SIGTERM says so and waits for it, a second SIGTERM
        # ends the process at once (128 + 15).
        hold_dir = self.path("hold")
        os.makedirs(hold_dir)
        p = self.start("--trusted-modules")
        open(os.path.join(hold_dir, "hold"), "w").close()
        self.write("workflows/held.lua", HELD_LOAD.replace("HOLD_DIR", hold_dir))
        self.wait_for(lambda: os.path.exists(os.path.join(hold_dir, "loading")),
                      what="the catalog's scan to be held in the module's load")
        p.send_signal(signal.SIGTERM)
        seen = []
        while not seen or "the workflow catalog is loading a module" not in seen[-1]:
            line = p.stderr.readline()
            self.assertTrue(line, "no 'loading a module' line before EOF: %r" % seen)
            seen.append(line)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=10), 128 + signal.SIGTERM)

    def test_http_replies_carry_a_string_id(self):
        # Smithers' clients refuse a reply without a string id: the
        # request's x-request-id, else a new UUID; /rpc's body id first.
        self.start()
        token = self.token("run:read")
        uuid = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
        code, r = self.http("POST", "/v1/rpc/listRuns", {}, token, headers={"x-request-id": "req-7"})
        self.assertEqual((code, r["id"], r["ok"]), (200, "req-7", True), r)
        code, r = self.http("POST", "/v1/rpc/listRuns", {}, token)
        self.assertRegex(r["id"], uuid)
        code, again = self.http("POST", "/v1/rpc/listRuns", {}, token)
        self.assertNotEqual(again["id"], r["id"], "a new id per request")
        for bad in ("x" * 129, "has space"):
            code, r = self.http("POST", "/v1/rpc/listRuns", {}, token, headers={"x-request-id": bad})
            self.assertRegex(r["id"], uuid, bad)
        # Errors too: unknown method, no credentials, a body that is not JSON.
        code, r = self.http("POST", "/v1/rpc/nope", {}, token, headers={"x-request-id": "e1"})
        self.assertEqual((code, r["id"], r["ok"]), (404, "e1", False), r)
        code, r = self.http("POST", "/v1/rpc/listRuns", {}, None, headers={"x-request-id": "e2"})
        self.assertEqual((code, r["id"]), (401, "e2"), r)
        code, r = self.http("POST", "/v1/rpc/listRuns", "{not json", token,
                            headers={"x-request-id": "e3"})
        self.assertEqual((code, r["id"], r["error"]["code"]), (400, "e3", "InvalidRequest"), r)
        code, r = self.http("POST", "/rpc", {"id": "body-1", "method": "listRuns", "params": {}},
                            token, headers={"x-request-id": "hdr"})
        self.assertEqual((code, r["id"]), (200, "body-1"), r)
        code, r = self.http("POST", "/rpc", {"method": "listRuns", "params": {}}, token,
                            headers={"x-request-id": "hdr"})
        self.assertEqual((code, r["id"]), (200, "hdr"), r)

    # ---- limits ----

    def test_slow_consumer_is_disconnected(self):
        self.start("--max-queue-frames", "40", "--slow-consumer-ms", "500")
        token = self.token("run:read,run:write")
        code, r = self.rpc("launchRun", {"workflow": "chatty", "runId": "big",
                                         "input": {"n": 8000}}, token)
        self.assertEqual(code, 200, r)
        self.wait_run("big", token, timeout=120)
        w = self.ws(token, rcvbuf=4096, timeout=60)
        w.send_json({"type": "req", "id": "s", "method": "streamRunEvents",
                     "params": {"runId": "big"}})
        # Read nothing until the server has cut the connection off: its writes
        # stall once the socket buffers are full (~4 MB here, the run's events
        # are ~6 MB), however slowly it produces them (a sanitizer build).
        self.wait_for(lambda: re.search(r"smithers_backpressure_disconnects_total [1-9]",
                                        self.http("GET", "/metrics")[1]),
                      timeout=120, interval=0.2, what="the backpressure disconnect")
        got, ended = [], None
        try:
            while True:
                got.append(w.recv_json(timeout=30))
        except Closed as e:
            ended = e.code
        errors = [f for f in got if f.get("event") == "run.error"]
        self.assertIsNotNone(ended, "the server closed the connection")
        self.assertNotIn("run.completed", [f.get("event") for f in got])
        if errors:
            self.assertEqual(errors[0]["payload"]["code"], "BackpressureDisconnect")
        self.assertLess(len([f for f in got if f.get("event") == "run.event"]), 40000)
        _, text = self.http("GET", "/metrics")
        self.assertRegex(text, r"smithers_backpressure_disconnects_total [1-9]")
        # the server is fine
        self.assertEqual(self.rpc("getRun", {"runId": "big"}, token)[0], 200)


if __name__ == "__main__":
    main()
