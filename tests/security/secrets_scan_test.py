#!/usr/bin/env python3
"""Secrets kept out, provably: every secret-bearing path is run through the
real binary with a fresh random value, then every place the engine writes to
is scanned, as bytes, for each value and for any 12 bytes of its random part
(a truncated or split copy is a leak too). None may appear anywhere.

Paths (each value distinct; most are plain random text, so the redactor's key
shapes are not what catches them):

- model agents: OPENAI_API_KEY (an `sk-` key) and ANTHROPIC_API_KEY (plain)
  sent to a local fake provider (asserted received), which answers with the
  keys in a structured reply, in a streamed reply (split in 4-byte pieces) and
  in a 401 error body;
- command tasks with `{ secret = "env:NAME" }` and `{ secret = "file:/abs" }`
  printing both to stdout and stderr and exiting 3, and returning them in their
  JSON output;
- a bubblewrap-sandboxed command and a `Sandbox` worker with a secret in `env`;
- a run resumed by `smithers supervise` whose task uses a secret named in
  `SMITHERS_SECRET_ENV` and the captured provider key;
- the audit key as `SMITHERS_AUDIT_KEY=env:NAME` for every process;
- Gateway bearer tokens (`smithers token issue`, HTTP and WebSocket, plus an
  unknown bearer), JWTs and their HS256 secret from `--jwt-secret-env` and
  `--jwt-secret-file` (plus a JWT signed with a wrong secret), a Gateway run
  using a secret reference.

Sinks: the database, its -wal and -shm (read while a Gateway holds them open,
and at the end), a `db backup`, `events --json` of every run (and the text of
its streamed NodeOutput events joined), `inspect --json` of every run,
`audit export`, the access logs, `supervise`'s run log, the Sandbox bundles on
disk, the Gateways' stdout and stderr, every CLI command's stdout and stderr,
every Gateway reply. Non-secret markers written beside each secret must show
up in those sinks (as must `[REDACTED]`), so a scan of empty or wrong files
cannot pass.

    SMITHERS_BIN=build/smithers tests/security/secrets_scan_test.py -v
"""

import glob
import json
import os
import random
import signal
import string
import subprocess
import time

from security_e2e import BIN, Result, jwt_hs256, main
from gateway_case import GatewayCase
from gateway_test import spawn_gateway

_rng = random.SystemRandom()


def plain_secret():
    """40 random lowercase letters and digits: no key shape the redactor knows."""
    return "".join(_rng.choice(string.ascii_lowercase + string.digits) for _ in range(40))


def secret_material(value):
    """The random part of a secret: a JWT's signature, a token or key without
    its fixed prefix, else all of it."""
    if value.count(".") == 2:
        return value.rsplit(".", 1)[1]
    for prefix in ("smithers_", "sk-"):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


AGENTS = """
local outputs = smithers.outputs { said = z.object { text = z.string() } }
local oa = smithers.Agent { provider = "openai", model = "m", baseUrl = "URL/v1" }
local bad = smithers.Agent { provider = "openai", model = "m", baseUrl = "URL/bad/v1" }
local an = smithers.Agent { provider = "anthropic", model = "m", baseUrl = "URL", stream = true }
return smithers(function(ctx)
  return Workflow { name = "agents",
    Task { id = "oa", output = outputs.said, agent = oa, "Say the key" },
    Task { id = "an", output = outputs.said, agent = an, "Stream the key" },
    Task { id = "bad", output = outputs.said, agent = bad, retries = 0, continueOnFail = true,
           "Fail with the key" },
  }
end)
"""

COMMANDS = """
local outputs = smithers.outputs {
  text = z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() },
  val = z.object { value = z.string(), note = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "commands",
    Task { id = "loud", output = outputs.text, parse = "text", retries = 0, continueOnFail = true,
           env = { A = { secret = "env:SCAN_DEPLOY_TOKEN" }, B = { secret = "file:FILE" } },
           command = { "sh", "-c", [[echo "MARKER-3 $A $B"; echo "MARKER-3 $A $B" >&2; exit 3]] } },
    Task { id = "json", output = outputs.val,
           env = { A = { secret = "env:SCAN_DEPLOY_TOKEN" }, B = { secret = "file:FILE" } },
           command = { "sh", "-c", [[printf '{"value":"%s","note":"MARKER-4 %s"}' "$A" "$B"]] } },
  }
end)
"""

SANDBOXED = """
local outputs = smithers.outputs {
  text = z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "sandboxed",
    Task { id = "confined", output = outputs.text, parse = "text", sandbox = true,
           env = { S = { secret = "env:SCAN_SANDBOX_SECRET" } },
           command = { "sh", "-c", [[echo "MARKER-5 $S"; echo "MARKER-5 $S" >&2]] } },
  }
end)
"""

SANDBOX_CHILD = """
local outputs = smithers.outputs { r = z.object { seen = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "child",
    Task { id = "echo", output = outputs.r, env = { S = { secret = "env:S" } },
           command = { "sh", "-c", [[echo "MARKER-8 $S" >&2; printf '{"seen":"MARKER-8 %s"}' "$S"]] } } }
end)
"""

SANDBOX_PARENT = """
local outputs = smithers.outputs { r = z.object { seen = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "parent",
    smithers.Sandbox { id = "box", output = outputs.r, workflow = "child.lua",
      rootDir = "WS", files = { "src" }, autoAcceptDiffs = true,
      env = { S = { secret = "env:SCAN_SANDBOX_SECRET" } } } }
end)
"""

SUPERVISED = """
local outputs = smithers.outputs {
  d = smithers.approvalDecision,
  text = z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "supervised",
    Sequence {
      smithers.Approval { id = "gate", output = outputs.d, owner = "ops" },
      Task { id = "after", output = outputs.text, parse = "text",
             env = { S = { secret = "env:SCAN_SUPERVISE_SECRET" }, K = { secret = "env:OPENAI_API_KEY" } },
             command = { "sh", "-c", [[echo "MARKER-6 $S $K"; echo "MARKER-6 $S $K" >&2]] } },
    } }
end)
"""

GATEWAY_WF = """
local outputs = smithers.outputs {
  text = z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "gw",
    Task { id = "use", output = outputs.text, parse = "text",
           env = { X = { secret = "env:SCAN_GW_SECRET" } },
           command = { "sh", "-c", [[echo "MARKER-7 $X"; echo "MARKER-7 $X" >&2]] } } }
end)
"""


class SecretsScanTest(GatewayCase):
    def setUp(self):
        super().setUp()
        self.secrets = {
            "OPENAI_API_KEY": "sk-" + "".join(_rng.choice("0123456789abcdef") for _ in range(32)),
            "ANTHROPIC_API_KEY": plain_secret(),
            "env: reference": plain_secret(),
            "file: reference": plain_secret(),
            "sandbox env": plain_secret(),
            "supervised (SMITHERS_SECRET_ENV)": plain_secret(),
            "Gateway task reference": plain_secret(),
            "audit key": plain_secret(),
            "JWT secret (env)": plain_secret(),
            "JWT secret (file)": plain_secret(),
            "wrong JWT secret": plain_secret(),
            "unknown bearer": "smithers_" + plain_secret(),
        }
        self.sinks = []      # (name, bytes)
        self.db_views = []   # the database files, as read at several moments
        # Every process gets the audit key from a variable; nothing else of the
        # test's environment that looks like a key.
        self.base_env = {k: v for k, v in os.environ.items()
                         if not k.endswith("_API_KEY") and k != "SMITHERS_SECRET_ENV"}
        self.base_env.update({"SMITHERS_AUDIT_KEY": "env:SCAN_AUDIT_KEY",
                              "SCAN_AUDIT_KEY": self.secrets["audit key"]})

    # ---- running and recording ----

    def cli(self, *args, env=None, record=True):
        """run_cli with the base environment plus `env`; its stdout and stderr
        become sinks."""
        argv = [BIN] + [str(a) for a in args] + ["--db", self.db] + self.sync_args()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=self.dir,
                           env=dict(self.base_env, **(env or {})))
        r = Result(argv[1:], p.returncode, p.stdout, p.stderr, 0)
        if record:
            self.sink("smithers %s: stdout" % " ".join(args[:2]), p.stdout)
        self.sink("smithers %s: stderr" % " ".join(args[:2]), p.stderr)
        return r

    def sink(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        self.sinks.append((name, data))

    def file_sink(self, name, path):
        with open(path, "rb") as f:
            data = f.read()
        self.sink(name, data)
        return data

    def snapshot_db(self, when):
        """Reads the database, its -wal and -shm as they are now."""
        for p in sorted(glob.glob(self.db + "*")):
            with open(p, "rb") as f:
                self.db_views.append(("%s (%s)" % (os.path.basename(p), when), f.read()))

    def start_gateway(self, name, *extra, env=None):
        argv = [BIN, "--db", self.db, "gateway", "--workflows", self.wf_dir, "--port", "0",
                "--access-log", self.path(name + ".access.log")] + list(extra)
        gw, self.port, line = spawn_gateway(self, argv, dict(self.base_env, **(env or {})))
        gw.first_line = line
        gw.sink_name = name
        return gw

    def stop_gateway(self, gw):
        gw.send_signal(signal.SIGTERM)
        out, err = gw.communicate(timeout=20)
        self.sink(gw.sink_name + ": stdout", gw.first_line + out)
        self.sink(gw.sink_name + ": stderr", err)
        self.file_sink(gw.sink_name + ": access log", self.path(gw.sink_name + ".access.log"))

    def reply(self, what, code_and_body):
        code, body = code_and_body
        self.sink("reply to " + what, json.dumps(body))
        return code, body

    # ---- the paths ----

    def model_agents(self):
        s = self.secrets
        oa, an = s["OPENAI_API_KEY"], s["ANTHROPIC_API_KEY"]
        url = self.serve_model({
            "/v1/chat/completions": [{"reply": {
                "structured": {"text": "MARKER-1 %s and %s" % (oa, an)},
                "input_tokens": 3, "output_tokens": 4}}],
            "/v1/messages": [{"reply": {
                # Lines: the engine passes streamed output on by the line.
                "text": json.dumps({"text": "MARKER-2 %s and %s" % (an, oa)}, indent=1),
                "input_tokens": 3, "output_tokens": 40}, "chunk_delay_s": 0.03}],
            "/bad/v1/chat/completions": [{"status": 401, "body": {"error": {
                "message": "MARKER-9 Incorrect API key provided: %s (%s)" % (oa, an),
                "type": "invalid_request_error", "code": "invalid_api_key"}}}],
        })
        wf = self.write("agents.lua", AGENTS.replace("URL", url))
        r = self.cli("up", wf, "--run-id", "agents",
                     env={"OPENAI_API_KEY": oa, "ANTHROPIC_API_KEY": an})
        self.assertEqual(r.code, 0, r)  # the failing task continues on fail
        out = r.json()["outputs"]["said"]
        self.assertEqual(out["oa"]["text"], "MARKER-1 [REDACTED] and [REDACTED]", r)
        self.assertEqual(out["an"]["text"], "MARKER-2 [REDACTED] and [REDACTED]", r)
        # The keys really went to the provider, each from the secret store.
        with open(self.path("requests.jsonl")) as f:
            reqs = [json.loads(line) for line in f]
        by_path = {}
        for q in reqs:
            by_path.setdefault(q["path"], {k.lower(): v for k, v in q["headers"].items()})
        self.assertEqual(by_path["/v1/chat/completions"]["authorization"], "Bearer " + oa)
        self.assertEqual(by_path["/bad/v1/chat/completions"]["authorization"], "Bearer " + oa)
        self.assertEqual(by_path["/v1/messages"]["x-api-key"], an)
        # The scanner finds a key where one is (the fake provider's own log).
        self.assertTrue(self.leaks(self.file_bytes("requests.jsonl")))

    def commands(self):
        s = self.secrets
        secret_file = self.path("deploy.secret")
        with open(secret_file, "w") as f:
            f.write(s["file: reference"] + "\n")
        os.chmod(secret_file, 0o600)
        wf = self.write("commands.lua", COMMANDS.replace("FILE", secret_file))
        r = self.cli("up", wf, "--run-id", "cmds",
                     env={"SCAN_DEPLOY_TOKEN": s["env: reference"]})
        self.assertEqual(r.code, 0, r)  # the failing task continues on fail
        node = {n["nodeId"]: n for n in self.read_json("inspect", "cmds", record=False)["nodes"]}
        [attempt] = node["loud"]["attempts"]
        self.assertEqual(attempt["error"]["code"], "COMMAND_FAILED", attempt)
        self.assertIn("MARKER-3 [REDACTED] [REDACTED]", attempt["error"]["stderr"])
        self.assertEqual(r.json()["outputs"]["val"]["json"],
                         {"value": "[REDACTED]", "note": "MARKER-4 [REDACTED]"})

    def sandboxed(self):
        s = self.secrets
        wf = self.write("sandboxed.lua", SANDBOXED)
        r = self.cli("up", wf, "--run-id", "sbx", env={"SCAN_SANDBOX_SECRET": s["sandbox env"]})
        self.assertEqual(r.code, 0, r)
        out = r.json()["outputs"]["text"]["confined"]
        self.assertEqual((out["stdout"], out["stderr"]), ("MARKER-5 [REDACTED]\n",) * 2, out)
        # A Sandbox worker given the secret in its env.
        ws = self.path("ws")
        os.makedirs(os.path.join(ws, "src"))
        with open(os.path.join(ws, "src", "a.txt"), "w") as f:
            f.write("shipped\n")
        self.write("child.lua", SANDBOX_CHILD)
        wf = self.write("parent.lua", SANDBOX_PARENT.replace("WS", ws))
        r = self.cli("up", wf, "--run-id", "sbxc", env={"SCAN_SANDBOX_SECRET": s["sandbox env"]})
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["r"]["box"], {"seen": "MARKER-8 [REDACTED]"})
        bundles = [p for p in glob.glob(os.path.join(ws, ".smithers", "**"), recursive=True)
                   if os.path.isfile(p)]
        self.assertTrue(bundles, "the Sandbox left its bundles")
        for p in bundles:
            self.file_sink("Sandbox bundle " + os.path.relpath(p, ws), p)

    def supervised(self):
        s = self.secrets
        wf = self.write("supervised.lua", SUPERVISED)
        r = self.cli("up", wf, "--run-id", "sup")
        self.assertEqual(r.code, 3, r)
        r = self.cli("approve", "sup", "--node", "gate", "--by", "ops")
        self.assertEqual(r.code, 0, r)
        r = self.cli("supervise", "--once", env={
            "SCAN_SUPERVISE_SECRET": s["supervised (SMITHERS_SECRET_ENV)"],
            "SMITHERS_SECRET_ENV": "SCAN_SUPERVISE_SECRET",
            "OPENAI_API_KEY": s["OPENAI_API_KEY"]})
        self.assertEqual(r.code, 0, r)
        self.assertIn("resume sup", r.stdout)
        out = self.read_json("inspect", "sup", record=False)
        self.assertEqual(out["run"]["status"], "finished", out)
        log = self.file_sink("run log logs/sup.log", os.path.join(self.dir, "logs", "sup.log"))
        self.assertIn(b"MARKER-6 [REDACTED] [REDACTED]", log)

    def gateway_with_tokens(self, gw):
        s = self.secrets
        r = self.cli("token", "issue", "--scopes", "run:read,run:write", "--user", "alice",
                     record=False)
        self.assertEqual(r.code, 0, r)
        token = r.stdout.strip()
        self.assertTrue(token.startswith("smithers_"), r)
        self.secrets["bearer token"] = token
        # Printed once, to whoever issued it: that stdout is the one place it may be.
        self.sink("token issue stdout without the token", r.stdout.replace(token, ""))
        code, body = self.reply("launchRun", self.rpc(
            "launchRun", {"workflow": "gw", "runId": "gwt", "input": {}}, token))
        self.assertEqual(code, 200, body)
        run = self.wait_status("gwt", token, ("finished", "failed"))
        self.assertEqual(run["status"], "finished", run)
        code, body = self.reply("getNodeOutput", self.rpc(
            "getNodeOutput", {"runId": "gwt", "nodeId": "use"}, token))
        self.assertEqual(body["payload"]["row"]["stdout"], "MARKER-7 [REDACTED]\n", body)
        code, body = self.reply("unknown bearer", self.rpc(
            "listRuns", {}, s["unknown bearer"]))
        self.assertEqual(code, 401, body)
        w = self.ws(token)
        self.sink("WebSocket hello", json.dumps(w.hello))
        res = w.request("getRun", {"runId": "gwt"})
        self.sink("WebSocket getRun", json.dumps(res))
        self.assertTrue(res["ok"], res)
        w.close()
        self.snapshot_db("the token Gateway running")
        wal = self.db_views[-1][1] if self.db_views[-1][0].startswith("smithers.db-wal") else b""
        for n in (1, 2, 3, 4, 5, 7, 8, 9):  # the CLI's runs and the Gateway's
            self.assertIn(b"MARKER-%d" % n, wal, "the WAL holds the runs' rows")
        self.stop_gateway(gw)
        log = self.read("gateway-token.access.log")
        self.assertIn('"userId":"alice"', log.replace(" ", ""))

    def gateways_with_jwt(self):
        s = self.secrets
        now = int(time.time())
        claims = {"sub": "bob", "scope": "run:read run:write", "exp": now + 3600}
        # The secret in a variable.
        gw = self.start_gateway("gateway-jwt-env", "--auth", "jwt",
                                "--jwt-secret-env", "SCAN_JWT_SECRET",
                                "--allow-secret", "env:SCAN_GW_SECRET",
                                env={"SCAN_JWT_SECRET": s["JWT secret (env)"],
                                     "SCAN_GW_SECRET": s["Gateway task reference"]})
        good = jwt_hs256(s["JWT secret (env)"], claims)
        forged = jwt_hs256(s["wrong JWT secret"], claims)
        self.secrets["JWT (env secret)"] = good
        self.secrets["JWT (wrong secret)"] = forged
        code, body = self.reply("launchRun (JWT)", self.rpc(
            "launchRun", {"workflow": "gw", "runId": "gwj", "input": {}}, good))
        self.assertEqual(code, 200, body)
        run = self.wait_status("gwj", good, ("finished", "failed"))
        self.assertEqual(run["status"], "finished", run)
        code, body = self.reply("getNodeOutput (JWT)", self.rpc(
            "getNodeOutput", {"runId": "gwj", "nodeId": "use"}, good))
        self.assertEqual(body["payload"]["row"]["stdout"], "MARKER-7 [REDACTED]\n", body)
        code, body = self.reply("forged JWT", self.rpc("listRuns", {}, forged))
        self.assertEqual(code, 401, body)
        self.snapshot_db("the JWT Gateway running")
        self.stop_gateway(gw)
        # The secret in a file.
        secret_file = self.path("jwt.secret")
        with open(secret_file, "w") as f:
            f.write(s["JWT secret (file)"] + "\n")
        os.chmod(secret_file, 0o600)
        gw = self.start_gateway("gateway-jwt-file", "--auth", "jwt",
                                "--jwt-secret-file", secret_file)
        good = jwt_hs256(s["JWT secret (file)"], claims)
        self.secrets["JWT (file secret)"] = good
        code, body = self.reply("getRun (JWT)", self.rpc("getRun", {"runId": "gwj"}, good))
        self.assertEqual(code, 200, body)
        w = self.ws(good)
        self.sink("WebSocket hello (JWT)", json.dumps(w.hello))
        w.close()
        self.stop_gateway(gw)
        for name in ("gateway-jwt-env", "gateway-jwt-file"):
            self.assertIn('"userId":"bob"', self.read(name + ".access.log").replace(" ", ""))

    # ---- reading everything back ----

    def read_json(self, *args, record=True):
        r = self.cli(*args, "--json", record=record)
        self.assertEqual(r.code, 0, r)
        return r.json()

    def file_bytes(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def leaks(self, data, window=12):
        """The secrets of which `data` holds the whole value or any `window`
        bytes of its random part (a truncated copy is a leak too)."""
        found = []
        for name, value in self.secrets.items():
            material = secret_material(value).encode()
            windows = [material[i:i + window] for i in range(len(material) - window + 1)]
            if value.encode() in data or any(w in data for w in windows):
                found.append(name)
        return found

    def test_no_secret_reaches_any_sink(self):
        self.supervised()  # before any Gateway, which would resume the run itself
        # The token Gateway holds the database open while the CLI's runs write
        # it, so their rows are in the WAL when it is read.
        self.workflow("gw", GATEWAY_WF)
        gw = self.start_gateway("gateway-token", "--allow-secret", "env:SCAN_GW_SECRET",
                                env={"SCAN_GW_SECRET": self.secrets["Gateway task reference"],
                                     "OPENAI_API_KEY": self.secrets["OPENAI_API_KEY"]})
        self.model_agents()
        self.commands()
        self.sandboxed()
        self.gateway_with_tokens(gw)
        self.gateways_with_jwt()

        # Every run, read back by processes that know no secret but the audit key.
        runs = [r["runId"] for r in self.read_json("ps")["runs"]]
        self.assertEqual(sorted(runs), sorted(["agents", "cmds", "sbx", "sbxc", "sup", "gwt",
                                               "gwj"]))
        streamed, pieces = "", 0
        for run in runs:
            events = self.read_json("events", run)["events"]
            texts = [e["payload"].get("text", "") for e in events if e["type"] == "NodeOutput"]
            pieces += len(texts)
            streamed += "".join(texts)
            self.read_json("inspect", run)
        self.sink("the streamed NodeOutput pieces, joined", streamed)
        self.assertGreater(pieces, 1, "the reply was streamed in several events")
        self.assertIn("MARKER-2", streamed)
        r = self.cli("audit", "export")
        self.assertEqual(r.code, 0, r)
        self.assertIn('"token.issue"', r.stdout)
        self.assertIn('"run.launch"', r.stdout)
        r = self.cli("audit", "verify")
        self.assertEqual(r.code, 0, r)
        self.assertFalse(os.path.exists(self.db + ".audit-key"),
                         "the audit key came from $SCAN_AUDIT_KEY, not a file")
        backup = self.path("backup.db")
        r = self.cli("db", "backup", backup)
        self.assertEqual(r.code, 0, r)
        self.file_sink("db backup", backup)
        self.snapshot_db("at the end")
        self.sinks += self.db_views

        # Not vacuous: the files are there, and what was written beside each
        # secret is where the secret would have been.
        self.assertTrue(any(n.startswith("smithers.db-wal") and len(d) > 0
                            for n, d in self.db_views), "the WAL was read while in use")
        def sunk(prefix):
            return b"".join(d for n, d in self.sinks if n.startswith(prefix))

        database = b"".join(d for _, d in self.db_views)
        readers = b"".join(d for n, d in self.sinks
                           if n.startswith(("smithers events", "smithers inspect")))
        final_db = self.db_views[-3][1] if self.db_views[-3][0].startswith("smithers.db ") \
            else self.file_bytes("smithers.db")
        self.assertIn(b"[REDACTED]", final_db)
        for n in range(1, 10):
            marker = b"MARKER-%d" % n
            self.assertIn(marker, database, "marker %d in the database" % n)
            self.assertIn(marker, final_db, "marker %d in the database file" % n)
            self.assertIn(marker, readers, "marker %d in events or inspect" % n)
        self.assertIn(b"MARKER-6", self.file_bytes("logs/sup.log"))
        self.assertIn(b"MARKER-7", sunk("reply to getNodeOutput"))
        for name in ("gateway-token", "gateway-jwt-env", "gateway-jwt-file"):
            self.assertTrue(sunk(name + ": access log"), name + ": empty access log")
            self.assertIn(b"listening on", sunk(name + ": stdout"))
        with open(backup, "rb") as f:
            self.assertIn(b"MARKER-4", f.read())
        self.assertGreater(len(self.sinks), 60)

        # The scan.
        found = ["%s in %s" % (secret, name) for name, data in self.sinks
                 for secret in self.leaks(data)]
        # The streamed text is short: even 6 bytes of a key there are a leak.
        found += ["%s in the streamed NodeOutput text %r" % (secret, streamed)
                  for secret in self.leaks(streamed.encode(), window=6)]
        if found:
            self.fail("secrets leaked:\n  " + "\n  ".join(found))


if __name__ == "__main__":
    main()
