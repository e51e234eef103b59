#!/usr/bin/env python3
"""`smithers gateway --config gateway.toml` and `--tokens tokens.json` end to end
(docs/gateway.md "Configuration file", "Tokens file"): the real binary, HTTP
and the WebSocket client of gateway_test.py. Checked: the file's settings
apply and flags override them; a bad file (unknown key, wrong type, inline
secret, syntax) exits 4 naming the key and starts nothing; the JWT secret
from a file; grants of a tokens file (bearer-keyed, hash-only, version 1)
with their scopes beside the database's; revoking, expiring and removing a
grant by editing the file refuses the next request and closes an open
socket; a corrupt file refuses the start, and a corrupt edit keeps the last
good grants (logged once); no bearer reaches the log; [retention] deletes
the runs that ended before `keep` (finished, failed, cancelled; never a
waiting one), and a bad [retention] refuses the start."""

import hashlib
import json
import os
import re
import socket
import subprocess
import time

import gateway_test
from smithers_e2e import BIN, E2ETest, main
from smithers_e2e import jwt_hs256 as jwt
from ws_client import Closed

HELLO = gateway_test.HELLO
GATE = gateway_test.GATE  # parks waiting for an approval
FAILS = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "fails",
    Task { id = "boom", output = outputs.v, function() error("no") end } }
end)
"""
DAY_MS = 24 * 3600 * 1000
BEARER_A = "smithers_" + "a" * 43   # run:read, keyed by itself
BEARER_B = "smithers_" + "b" * 43   # run:read,run:write, only its hash in the file
BEARER_C = "operator-chosen-secret-c"  # version 1 entry (keyed by token id)


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port




class GatewayConfigTest(E2ETest):
    # The HTTP and WebSocket helpers of the Gateway suite (its tests are not
    # inherited: only these functions are borrowed).
    token = gateway_test.GatewayTest.token
    http = gateway_test.GatewayTest.http
    rpc = gateway_test.GatewayTest.rpc
    ws = gateway_test.GatewayTest.ws

    def setUp(self):
        super().setUp()
        os.makedirs(self.path("conf/workflows"))
        self.write("conf/workflows/hello.lua", HELLO)
        self.wf_dir = self.path("conf/workflows")
        self.access_log = self.path("access.log")
        self.tokens = self.path("tokens.json")

    # What the config file and the flags set is tested here, synchronous too.
    synchronous = None

    def start(self, *args, env=None, db=True):
        """Starts `smithers gateway ARGS` (with the test's --db unless db is False)."""
        argv = [BIN, "gateway"] + [str(a) for a in args]
        if db:
            argv += ["--db", self.db]
        p, self.port, self.listening = gateway_test.spawn_gateway(
            self, argv, env, cwd=self.dir, drop_env=("SMITHERS_DB",))
        return p

    def stop(self, p):
        p.terminate()
        p.wait(timeout=10)

    def refused(self, *args, env=None):
        """Runs `smithers gateway ARGS`, which must exit 4 without starting."""
        e = dict(os.environ)
        e.pop("SMITHERS_DB", None)
        e.update(env or {})
        had_db = os.path.exists(self.db)
        p = subprocess.run([BIN, "gateway", "--db", self.db] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=20, env=e, cwd=self.dir)
        self.assertEqual(p.returncode, 4, (p.stdout, p.stderr))
        self.assertNotIn("listening", p.stdout)
        if not had_db:
            self.assertFalse(os.path.exists(self.db), "a refused start opened the database")
        return p.stderr

    def token_file_reads(self):
        """smithers_token_file_reads_total from /metrics."""
        code, text = self.http("GET", "/metrics")
        self.assertEqual(code, 200, text)
        return int(re.search(r"^smithers_token_file_reads_total (\d+)$", text, re.M).group(1))

    def metric(self, name):
        """A counter from /metrics."""
        code, text = self.http("GET", "/metrics")
        self.assertEqual(code, 200, text)
        return int(re.search(r"^%s (\d+)$" % re.escape(name), text, re.M).group(1))

    def write_tokens(self, doc, mode=0o600):
        """Replaces tokens.json in place (same inode, as an editor does), keeping its mode."""
        text = doc if isinstance(doc, str) else json.dumps(doc, indent=2)
        fd = os.open(self.tokens, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(self.tokens, mode)

    def grants(self, a=None, b=None, c=None):
        """A version 2 file: A by its bearer, B by its hash only, C as a v1-style entry.
        Each expires in a day unless told otherwise (a grant must expire)."""
        tokens = {}
        day = {"expiresAtMs": int(time.time() * 1000) + 86400000}
        if a is not None:
            tokens[BEARER_A] = dict(day, role="operator", scopes=["run:read"], userId="alice")
            tokens[BEARER_A].update(a)
        if b is not None:
            tokens["ci-bot"] = dict(day, tokenHash=sha(BEARER_B), scopes=["run:read", "run:write"])
            tokens["ci-bot"].update(b)
        if c is not None:
            tokens["c0ffee"] = dict(day, tokenHash=sha(BEARER_C), scopes=["*"])
            tokens["c0ffee"].update(c)
        return {"version": 2, "tokens": tokens}

    def log_lines(self):
        with open(self.access_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    # ---- --config ----

    def test_config_file_sets_everything_and_flags_override_it(self):
        port = free_port()
        self.write("conf/gateway.toml", """\
            # relative paths are relative to this file's folder
            workflows = "workflows"
            host = "127.0.0.1"
            port = %d
            db = "state/gw.db"
            synchronous = "normal"
            heartbeat_ms = 200
            access_log = "../access.log"

            [auth]
            mode = "none"

            [limits]
            max_body_bytes = 100
            max_connections = 1
            """ % port)
        os.makedirs(self.path("conf/state"))
        p = self.start("--config", "conf/gateway.toml", db=False)
        self.assertEqual(self.port, port)
        self.assertIn("auth none", self.listening)
        self.assertIn("conf/state/gw.db", self.listening)
        code, r = self.rpc("listWorkflows", {}, None)
        self.assertEqual(code, 200, r)
        self.assertEqual([w["key"] for w in r["payload"]], ["hello"])
        code, r = self.rpc("launchRun", {"workflow": "hello", "input": {"name": "x" * 200}}, None)
        self.assertEqual(code, 413, r)
        w = self.ws("")
        self.assertEqual(w.hello["policy"]["heartbeatMs"], 200)
        self.stop(p)
        self.assertTrue(os.path.exists(self.path("conf/state/gw.db")))
        self.assertTrue(any(l.get("path") == "/v1/rpc/listWorkflows" for l in self.log_lines()))

        # Flags given on the command line win; the rest still comes from the file.
        token = self.run_cli("token", "issue", "--scopes", "*", db=self.path("conf/state/gw.db"))
        self.assertEqual(token.code, 0, token)
        token = token.stdout.strip()
        self.start("--config", "conf/gateway.toml", "--port", "0", "--auth", "token",
                   "--max-body-bytes", "100000", db=False)
        self.assertNotEqual(self.port, port)
        self.assertIn("auth token", self.listening)
        self.assertEqual(self.rpc("listRuns", {}, None)[0], 401)
        code, r = self.rpc("launchRun", {"workflow": "hello", "input": {"name": "x" * 200}}, token)
        self.assertEqual(code, 200, r)
        # --db (a global flag) also overrides the file's db.
        self.start("--config", "conf/gateway.toml", "--port", "0")
        self.assertIn("db " + self.db, self.listening)

    def test_bad_config_exits_4_naming_the_key_and_starts_nothing(self):
        cases = [
            ('workflows = "workflows"\nport = 0\nlisten = "0.0.0.0"\n', "gateway.toml:3:1",
             "listen: unknown key"),
            ('workflows = "workflows"\n[limits]\nmax_body_bytes = "1MB"\n', "gateway.toml:3:18",
             "limits.max_body_bytes: must be an integer, not a string"),
            ('workflows = "workflows"\nport = 70000\n', "gateway.toml:2:8", "port: must be between"),
            ('workflows = "workflows"\n[auth]\nmode = "magic"\n', "gateway.toml:3:8",
             "auth.mode: must be one of"),
            ('workflows = "workflows"\n[auth.jwt]\nsecret = "hunter2"\n', "gateway.toml:3:10",
             "auth.jwt.secret: a secret is never read from the configuration file"),
            ('workflows = "workflows"\n[auth]\njwt = { sekret_env = "X" }\n', "gateway.toml:3:9",
             "auth.jwt.sekret_env: unknown key"),
            ('workflows = "workflows"\ninsecure = "yes"\n', "gateway.toml:2:12",
             "insecure: must be true or false"),
            ('workflows = "workflows\n', "gateway.toml:1:", ""),
        ]
        for text, where, what in cases:
            with self.subTest(text=text):
                self.write("conf/gateway.toml", text)
                err = self.refused("--config", "conf/gateway.toml", "--port", "0")
                self.assertIn(where, err)
                self.assertIn(what, err)
                self.assertNotIn("hunter2", err)
        err = self.refused("--config", "conf/missing.toml")
        self.assertIn("missing.toml", err)
        err = self.refused("--port", "0")
        self.assertIn("--workflows", err)

    def test_jwt_secret_from_a_file_or_a_variable_never_inline(self):
        secret_file = self.path("conf/jwt.secret")
        with open(secret_file, "w") as f:
            f.write("s3cret-from-file\n")
        os.chmod(secret_file, 0o644)
        self.write("conf/gateway.toml", """\
            workflows = "workflows"
            port = 0
            [auth]
            mode = "jwt"
            [auth.jwt]
            secret_file = "jwt.secret"
            issuer = "idp"
            """)
        err = self.refused("--config", "conf/gateway.toml")
        self.assertIn("chmod 600", err)
        self.assertNotIn("s3cret", err)
        os.chmod(secret_file, 0o600)
        p = self.start("--config", "conf/gateway.toml", "--access-log", self.access_log)
        good = jwt("s3cret-from-file", {"iss": "idp", "sub": "u1", "scope": "run:read",
                                        "exp": int(time.time()) + 600})
        self.assertEqual(self.rpc("listRuns", {}, good)[0], 200)
        bad = jwt("other", {"iss": "idp", "sub": "u1", "scope": "run:read"})
        self.assertEqual(self.rpc("listRuns", {}, bad)[0], 401)
        self.stop(p)
        # A flag names the variable instead; unset, it is refused.
        err = self.refused("--config", "conf/gateway.toml", "--jwt-secret-env", "NO_SUCH_VAR_X")
        self.assertIn("NO_SUCH_VAR_X", err)
        self.start("--config", "conf/gateway.toml", "--jwt-secret-env", "JWT_X",
                   env={"JWT_X": "from-env"})
        good = jwt("from-env", {"iss": "idp", "sub": "u1", "scope": "run:read"})
        self.assertEqual(self.rpc("listRuns", {}, good)[0], 200)

    # ---- [retention] ----

    def run_ids(self):
        return sorted(r["run_id"] for r in self.query("SELECT run_id FROM _smithers_runs"))

    def test_retention_deletes_the_runs_that_ended_before_keep_and_nothing_else(self):
        hello, fails, gate = (self.write(name, text) for name, text in
                              (("hello.lua", HELLO), ("fails.lua", FAILS), ("gate.lua", GATE)))
        # Runs that ended 40 days and 1 day ago (their clock shifted back), and
        # one waiting for an approval since 40 days ago.
        for module, run_id, days, code in ((hello, "old", 40, 0), (fails, "oldfail", 40, 1),
                                           (gate, "oldwait", 40, 3), (hello, "recent", 1, 0),
                                           (fails, "recentfail", 1, 1)):
            r = self.run_cli("up", module, "--run-id", run_id,
                             env={"SMITHERS_CLOCK_OFFSET_MS": str(-days * DAY_MS)})
            self.assertEqual(r.code, code, r)
        statuses = {r["run_id"]: r["status"] for r in
                    self.query("SELECT run_id, status FROM _smithers_runs")}
        self.assertEqual(statuses, {"old": "finished", "oldfail": "failed",
                                    "oldwait": "waiting-approval", "recent": "finished",
                                    "recentfail": "failed"})
        self.write("conf/gateway.toml", """\
            workflows = "workflows"
            port = 0
            access_log = "../access.log"
            [auth]
            mode = "none"
            [retention]
            keep = "30d"
            """)
        p = self.start("--config", "conf/gateway.toml")
        # The first sweep runs at start-up; counted once its deletions are done.
        self.wait_for(lambda: self.metric("smithers_retention_sweeps_total") >= 1, timeout=30,
                      what="the first retention sweep")
        self.assertEqual(self.run_ids(), ["oldwait", "recent", "recentfail"])
        for table in ("_smithers_nodes", "_smithers_attempts", "_smithers_events"):
            n = self.query("SELECT COUNT(*) AS n FROM %s WHERE run_id IN ('old', 'oldfail')"
                           % table)[0]["n"]
            self.assertEqual(n, 0, table)
        self.assertEqual(self.metric("smithers_retention_runs_deleted_total"), 2)
        code, r = self.rpc("getRun", {"runId": "old"}, None)
        self.assertEqual(code, 404, r)
        self.stop(p)
        _, err = p.communicate()
        # One stderr line per deleted run, oldest first; nothing about the others.
        deleted = re.findall(r"retention: deleted run (\S+) \((\w+), ended (\S+)\)", err)
        self.assertEqual([(run_id, status) for run_id, status, _ in deleted],
                         [("old", "finished"), ("oldfail", "failed")], err)
        for _, _, ended in deleted:
            self.assertRegex(ended, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertNotIn("oldwait", err)
        self.assertNotIn("recent", err)

        # Only the statuses listed, judged by the Gateway's clock (shifted 30
        # days on, the runs of yesterday are 31 days old).
        self.write("conf/gateway.toml", """\
            workflows = "workflows"
            port = 0
            access_log = "../access.log"
            [auth]
            mode = "none"
            [retention]
            keep = "30d"
            statuses = ["failed", "cancelled"]
            every = "1h"
            """)
        self.start("--config", "conf/gateway.toml",
                   env={"SMITHERS_CLOCK_OFFSET_MS": str(30 * DAY_MS)})
        self.wait_for(lambda: self.metric("smithers_retention_sweeps_total") >= 1, timeout=30,
                      what="the first retention sweep")
        self.assertEqual(self.run_ids(), ["oldwait", "recent"])
        self.assertEqual(self.metric("smithers_retention_runs_deleted_total"), 1)
        statuses = {r["run_id"]: r["status"] for r in
                    self.query("SELECT run_id, status FROM _smithers_runs")}
        self.assertEqual(statuses["oldwait"], "waiting-approval")

    def test_no_retention_table_deletes_nothing(self):
        r = self.run_cli("up", self.write("hello.lua", HELLO), "--run-id", "old",
                         env={"SMITHERS_CLOCK_OFFSET_MS": str(-400 * DAY_MS)})
        self.assertEqual(r.code, 0, r)
        self.write("conf/gateway.toml", """\
            workflows = "workflows"
            port = 0
            [auth]
            mode = "none"
            """)
        self.start("--config", "conf/gateway.toml", "--access-log", self.access_log)
        # Wait for a cron sweep: the io loop has run its start-up work.
        self.wait_for(lambda: self.metric("smithers_cron_sweeps_total") >= 1, timeout=30,
                      what="a cron sweep")
        self.assertEqual(self.metric("smithers_retention_sweeps_total"), 0)
        self.assertEqual(self.run_ids(), ["old"])

    def test_bad_retention_exits_4_naming_the_key(self):
        head = 'workflows = "workflows"\n[retention]\n'
        cases = [
            ('keep = "a month"\n', "gateway.toml:3:8",
             'retention.keep: "a month" is not a duration like 30d'),
            ('keep = "30"\n', "gateway.toml:3:8", 'retention.keep: must be at least 1h, not "30"'),
            ('keep = "59m"\n', "gateway.toml:3:8", "retention.keep: must be at least 1h"),
            ('keep = "30d"\nevery = "10s"\n', "gateway.toml:4:9",
             "retention.every: must be at least 1m"),
            ('keep = "30d"\nstatuses = ["finished", "waiting"]\n', "gateway.toml:4:25",
             'retention.statuses: "waiting" is not finished, failed or cancelled'),
            ('keep = "30d"\nstatuses = ["running"]\n', "gateway.toml:4:13",
             'retention.statuses: "running" is not finished, failed or cancelled'),
            ('keep = "30d"\nolder_than = "30d"\n', "gateway.toml:4:1",
             "retention.older_than: unknown key (known here: every, keep, statuses)"),
            ('every = "1h"\n', "gateway.toml:2:1", "retention.keep: required in [retention]"),
        ]
        for text, where, what in cases:
            with self.subTest(text=text):
                self.write("conf/gateway.toml", head + text)
                err = self.refused("--config", "conf/gateway.toml", "--port", "0")
                self.assertIn(where, err)
                self.assertIn(what, err)

    # ---- --tokens ----

    def test_file_grants_work_with_their_scopes_beside_the_database(self):
        self.write_tokens(self.grants(a={}, b={}, c={"tokenId": "c0ffee", "role": "admin"}))
        db_token = self.token("run:read")
        self.write("conf/gateway.toml", """\
            workflows = "workflows"
            port = 0
            [auth]
            tokens = "../tokens.json"
            """)
        self.start("--config", "conf/gateway.toml", "--access-log", self.access_log)
        self.assertIn("tokens.json", self.listening)
        # A: run:read by its bearer
        self.assertEqual(self.rpc("listRuns", {}, BEARER_A)[0], 200)
        code, r = self.rpc("launchRun", {"workflow": "hello"}, BEARER_A)
        self.assertEqual(code, 403, r)
        self.assertEqual(r["error"]["requiredScope"], "run:write")
        # B: known by its hash only; may launch
        code, r = self.rpc("launchRun", {"workflow": "hello"}, BEARER_B)
        self.assertEqual(code, 200, r)
        run_id = r["payload"]["runId"]
        code, r = self.rpc("getRun", {"runId": run_id}, BEARER_A)
        self.assertEqual(code, 200, r)
        # C: a version-1 style entry keyed by its token id
        self.assertEqual(self.rpc("cronList", {}, BEARER_C)[0], 200)
        # the database's tokens still work; unknown bearers do not
        self.assertEqual(self.rpc("listRuns", {}, db_token)[0], 200)
        self.assertEqual(self.rpc("listRuns", {}, "smithers_" + "z" * 43)[0], 401)
        # identity over the WebSocket: tokenId = sha256(bearer)[0:16], userId
        w = self.ws(BEARER_A)
        self.assertEqual(w.hello["auth"]["tokenId"], sha(BEARER_A)[:16])
        self.assertEqual(w.hello["auth"]["userId"], "alice")
        self.assertEqual(w.hello["auth"]["scopes"], ["run:read"])
        w = self.ws(BEARER_B)
        self.assertEqual(w.hello["auth"]["tokenId"], "ci-bot")
        self.assertEqual(w.hello["auth"]["userId"], "token:ci-bot")
        # the run records who launched it
        code, r = self.rpc("getRun", {"runId": run_id}, BEARER_C)
        self.assertEqual(code, 200, r)

    def test_revoking_expiring_or_removing_a_grant_in_the_file_takes_effect_at_once(self):
        self.write_tokens(self.grants(a={}, b={}, c={}))
        self.start("--workflows", self.wf_dir, "--port", "0", "--tokens", self.tokens,
                   "--heartbeat-ms", "200", "--access-log", self.access_log)
        for bearer in (BEARER_A, BEARER_B, BEARER_C):
            self.assertEqual(self.rpc("listRuns", {}, bearer)[0], 200)
        wa, wb, wc = self.ws(BEARER_A), self.ws(BEARER_B), self.ws(BEARER_C)
        now = int(time.time() * 1000)
        # revoke A, expire B, drop C
        self.write_tokens(self.grants(a={"revokedAtMs": now}, b={"expiresAtMs": now - 1}))
        code, r = self.rpc("listRuns", {}, BEARER_A)
        self.assertEqual(code, 401, r)
        self.assertIn("revoked", r["error"]["message"])
        self.assertEqual(r["error"]["refresh"], "smithers token issue")
        code, r = self.rpc("listRuns", {}, BEARER_B)
        self.assertEqual(code, 401, r)
        self.assertIn("expired", r["error"]["message"])
        self.assertEqual(self.rpc("listRuns", {}, BEARER_C)[0], 401)
        # each open socket is closed at its next tick
        for w in (wa, wb, wc):
            with self.assertRaises(Closed) as c:
                while True:
                    w.recv_json(timeout=5)
            self.assertEqual(c.exception.code, 1008)
        # a grant added to the file works at once
        self.write_tokens(self.grants(a={"revokedAtMs": now}, b={}))
        self.assertEqual(self.rpc("listRuns", {}, BEARER_B)[0], 200)
        # a rotation-style future revocation still works until then
        self.write_tokens(self.grants(a={"revokedAtMs": now + 3600 * 1000}))
        self.assertEqual(self.rpc("listRuns", {}, BEARER_A)[0], 200)

    def test_expired_grant_is_refused(self):
        self.write_tokens(self.grants(a={"expiresAtMs": 1000},
                                      b={"expiresAtMs": int(time.time() * 1000) + 3600000}))
        self.start("--workflows", self.wf_dir, "--port", "0", "--tokens", self.tokens,
                   "--access-log", self.access_log)
        code, r = self.rpc("listRuns", {}, BEARER_A)
        self.assertEqual(code, 401, r)
        self.assertIn("expired", r["error"]["message"])
        self.assertEqual(self.rpc("listRuns", {}, BEARER_B)[0], 200)

    def test_token_list_shows_a_tokens_files_grants_without_bearers(self):
        self.write_tokens(self.grants(a={"userId": "alice"}, b={"revokedAtMs": 1000},
                                      c={"tokenId": "c0ffee"}))
        issued = subprocess.run([BIN, "--db", self.db, "token", "issue", "--scopes", "run:read"],
                                capture_output=True, text=True, check=True).stdout.strip()
        p = subprocess.run([BIN, "--db", self.db, "token", "list", "--json", "--tokens",
                            self.tokens], capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        for secret in (BEARER_A, BEARER_B, BEARER_C, issued):
            self.assertNotIn(secret, p.stdout + p.stderr)
        tokens = json.loads(p.stdout)["tokens"]
        by_source = {}
        for t in tokens:
            by_source.setdefault(t["source"], []).append(t)
        self.assertEqual(len(by_source["database"]), 1)
        files = {",".join(t["scopes"]): t for t in by_source["file"]}
        self.assertEqual(len(files), 3, by_source["file"])
        self.assertEqual(files["run:read"]["userId"], "alice")
        self.assertEqual(files["run:read"]["state"], "active")
        self.assertEqual(files["run:read,run:write"]["state"], "revoked")
        self.assertEqual(files["*"]["tokenId"], "c0ffee")
        # the text form names the file; a bad file is refused like the Gateway's
        p = subprocess.run([BIN, "--db", self.db, "token", "list", "--tokens", self.tokens],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(p.stdout.count("source=" + self.tokens), 3, p.stdout)
        os.chmod(self.tokens, 0o644)
        p = subprocess.run([BIN, "--db", self.db, "token", "list", "--tokens", self.tokens],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("tokens.json", p.stderr)

    def test_a_bad_tokens_file_refuses_the_start(self):
        args = ["--workflows", self.wf_dir, "--port", "0", "--tokens", self.tokens]
        err = self.refused(*args)
        self.assertIn("tokens.json", err)
        # not JSON: the position, never the text (it may hold bearers)
        self.write_tokens('{"version": 2, "tokens": {"%s": {"scopes": [run:read]}}}' % BEARER_A)
        err = self.refused(*args)
        self.assertIn("tokens.json: not valid JSON (line 1, column", err)
        self.assertNotIn(BEARER_A, err)
        self.assertNotIn("a" * 20, err)
        # an unknown field, named by token id
        self.write_tokens(self.grants(a={"expiresAt": 5}))
        err = self.refused(*args)
        self.assertIn("token %s: unknown field \"expiresAt\"" % sha(BEARER_A)[:16], err)
        self.assertNotIn(BEARER_A, err)
        # a wrong type
        self.write_tokens(self.grants(b={"scopes": "run:read"}))
        err = self.refused(*args)
        self.assertIn("entry \"ci-bot\": scopes must be an array of strings", err)
        # a file other users may read
        self.write_tokens(self.grants(a={}), mode=0o644)
        err = self.refused(*args)
        self.assertIn("mode 0644", err)
        self.assertIn("chmod 600", err)
        # --tokens is for --auth token
        self.write_tokens(self.grants(a={}))
        err = self.refused(*args, "--auth", "trusted-proxy")
        self.assertIn("--tokens needs --auth token", err)

    def test_a_corrupt_edit_keeps_the_last_good_grants_and_is_logged_once(self):
        self.write_tokens(self.grants(a={}, b={}))
        p = self.start("--workflows", self.wf_dir, "--port", "0", "--tokens", self.tokens,
                       "--heartbeat-ms", "200", "--access-log", self.access_log)
        self.assertEqual(self.rpc("listRuns", {}, BEARER_A)[0], 200)
        w = self.ws(BEARER_A)
        reads = self.token_file_reads()
        # half a file, as a non-atomic writer leaves it for a moment
        self.write_tokens(json.dumps(self.grants(a={"revokedAtMs": 1}, b={}))[:60])
        # Requests (which refresh the grants) until the broken version was read
        # and then retried twice, each time keeping the last good grants.

        def retried_twice():
            self.assertEqual(self.rpc("listRuns", {}, BEARER_A)[0], 200)
            self.assertEqual(self.rpc("listRuns", {}, BEARER_B)[0], 200)
            return self.token_file_reads() >= reads + 3
        self.wait_for(retried_twice, timeout=20, interval=0.1,
                      what="two retries of the broken tokens file")
        w.request("listRuns", {})  # the socket is still open
        failed = [l for l in self.log_lines() if l.get("event") == "tokens.load_failed"]
        self.assertEqual(len(failed), 1, failed)
        self.assertEqual(failed[0]["grants"], 2)
        self.assertIn("not valid JSON", failed[0]["error"])
        # mended, with A revoked: applied at once
        self.write_tokens(self.grants(a={"revokedAtMs": 1}, b={}))
        self.assertEqual(self.rpc("listRuns", {}, BEARER_A)[0], 401)
        self.assertEqual(self.rpc("listRuns", {}, BEARER_B)[0], 200)
        loaded = [l for l in self.log_lines() if l.get("event") == "tokens.loaded"]
        self.assertEqual([l["grants"] for l in loaded], [2, 2])
        # an atomic replacement (a new inode) is seen too
        tmp = self.tokens + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.grants(a={}), f)
        os.rename(tmp, self.tokens)
        self.assertEqual(self.rpc("listRuns", {}, BEARER_A)[0], 200)
        self.assertEqual(self.rpc("listRuns", {}, BEARER_B)[0], 401)
        # no bearer in the log, the database or what the process printed
        self.stop(p)
        out, err = p.communicate()
        for bearer in (BEARER_A, BEARER_B):
            with open(self.access_log) as f:
                self.assertNotIn(bearer, f.read())
            self.assertNotIn(bearer, out + err)
            for name in os.listdir(self.dir):
                if name.startswith("smithers.db"):
                    with open(self.path(name), "rb") as f:
                        self.assertNotIn(bearer.encode(), f.read())


if __name__ == "__main__":
    main()
