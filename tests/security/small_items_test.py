#!/usr/bin/env python3
"""The smaller defects of issue 11, replayed against the real CLI and Gateway:

- token lifetimes: `--ttl never` and overflowing or over-long TTLs are refused,
  `--no-expiry` is explicit and flagged, tokens-file grants without an expiry
  or beyond the maximum are ignored (logged), never accepted;
- trusted-proxy identities only from configured peers;
- the test clock (SMITHERS_CLOCK_OFFSET_MS) never moves token expiry and is
  refused off loopback;
- database, WAL, SHM and logs 0600 in 0700 folders (0640/0750 with
  --group-readable);
- read commands work for a user who may only read the database;
- SIGHUP reopens the access log (rotation by rename loses no line);
- malformed HTTP framing gets a 400, then close;
- the loser of two concurrent `up --resume` always exits 4.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time

from security_e2e import *  # noqa: F401,F403
from security_e2e import BIN, E2ETest, main
from security_e2e import jwt_hs256 as jwt

import gateway_test  # tests/e2e, on sys.path through security_e2e
from ws_client import WebSocket

DAY_MS = 86400 * 1000
HOUR_MS = 3600 * 1000


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)




class GatewayBase(E2ETest):
    """The helpers of tests/e2e/gateway_test.py's GatewayTest, without its tests."""
    def setUp(self):
        super().setUp()
        self.wf_dir = self.path("workflows")
        os.makedirs(self.wf_dir)
        self.write("workflows/hello.lua", gateway_test.HELLO)
        self.access_log = self.path("access.log")
        self.gateway = None

    start = gateway_test.GatewayTest.start
    stop = gateway_test.GatewayTest.stop
    http = gateway_test.GatewayTest.http
    rpc = gateway_test.GatewayTest.rpc


class TokenLifetimeTest(GatewayBase):
    def issue(self, *args):
        return self.run_cli("token", "issue", "--scopes", "run:read", *args)

    def listed(self, *args):
        r = self.run_cli("token", "list", "--json", *args)
        self.assertEqual(r.code, 0, r)
        return r.json()["tokens"]

    def test_ttl_never_is_refused_and_no_expiry_is_explicit(self):
        r = self.issue("--ttl", "never")
        self.assertEqual(r.code, 4, r)
        self.assertIn("--no-expiry", r.stderr)
        self.assertEqual(self.listed(), [])
        r = self.issue("--no-expiry", "--ttl", "1h")
        self.assertEqual(r.code, 4, r)
        self.assertIn("exclude each other", r.stderr)
        r = self.issue("--no-expiry")
        self.assertEqual(r.code, 0, r)
        self.assertIn("NO EXPIRY", r.stderr)
        [t] = self.listed()
        self.assertTrue(t["noExpiry"])
        self.assertIsNone(t["expiresAtMs"])
        self.assertTrue(t["overMaxTtl"], "a grant without expiry is over any maximum")
        text = self.run_cli("token", "list")
        self.assertIn("expires=NO-EXPIRY", text.stdout)
        self.assertIn("over-max-ttl(30d)", text.stdout)
        # it still works: the flag was explicit
        self.start()
        self.assertEqual(self.rpc("listRuns", {}, r.stdout.strip())[0], 200)

    def test_overflowing_and_over_long_ttls_are_refused(self):
        for ttl in ("99999999999999d", "9223372036854775808", "99999999999999999999s"):
            r = self.issue("--ttl", ttl)
            self.assertEqual(r.code, 4, r)
            self.assertIn("not a duration", r.stderr)
        r = self.issue("--ttl", "31d")
        self.assertEqual(r.code, 4, r)
        self.assertIn("longer than the maximum token lifetime 30d", r.stderr)
        self.assertEqual(self.listed(), [], "a refused issue stores nothing")
        self.assertEqual(self.issue("--ttl", "30d").code, 0)
        self.assertEqual(self.issue("--ttl", "90d", "--max-ttl", "90d").code, 0)
        r = self.issue("--ttl", "1h", "--max-ttl", "99999999999999d")
        self.assertEqual(r.code, 4, r)
        issued = self.listed()
        self.assertEqual(len(issued), 2)
        self.assertEqual(issued[0]["expiresAtMs"] - issued[0]["issuedAtMs"], 30 * DAY_MS)
        self.assertFalse(issued[0]["overMaxTtl"])
        self.assertTrue(issued[1]["overMaxTtl"])  # 90d, over the default 30d
        self.assertFalse(self.listed("--max-ttl", "90d")[1]["overMaxTtl"])

    def test_rotation_keeps_no_expiry_and_the_maximum(self):
        self.assertEqual(self.issue("--no-expiry").code, 0)
        tid = self.listed()[0]["tokenId"]
        r = self.run_cli("token", "rotate", tid, "--json")
        self.assertEqual(r.code, 0, r)
        self.assertTrue(r.json()["noExpiry"])
        r = self.run_cli("token", "rotate", r.json()["tokenId"], "--ttl", "60d")
        self.assertEqual(r.code, 4, r)

    def write_tokens(self, tokens):
        path = self.path("tokens.json")
        with open(path, "w") as f:
            json.dump({"version": 2, "tokens": tokens}, f)
        os.chmod(path, 0o600)
        return path

    def test_tokens_file_grants_without_expiry_or_over_the_maximum_are_ignored(self):
        now = int(time.time() * 1000)
        good, never, far, old = ("smithers_good", "smithers_never", "smithers_far",
                                 "smithers_old")
        path = self.write_tokens({
            good: {"scopes": ["run:read"], "expiresAtMs": now + DAY_MS},
            never: {"scopes": ["*"]},
            far: {"scopes": ["*"], "expiresAtMs": now + 400 * DAY_MS},
            # issued long ago for a year: over the maximum even if it expires soon
            old: {"scopes": ["*"], "issuedAtMs": now - 360 * DAY_MS,
                  "expiresAtMs": now + DAY_MS},
        })
        p = self.start("--tokens", path)
        self.assertEqual(self.rpc("listRuns", {}, good)[0], 200)
        for bearer in (never, far, old):
            code, r = self.rpc("listRuns", {}, bearer)
            self.assertEqual(code, 401, (bearer, r))
            self.assertIn("refused", r["error"]["message"])
        # logged, by token id, never by bearer
        with open(self.access_log) as f:
            log = [json.loads(l) for l in f if l.strip()]
        [loaded] = [l for l in log if l.get("event") == "tokens.loaded"]
        self.assertEqual(loaded["grants"], 1)
        self.assertEqual(len(loaded["refused"]), 3)
        self.assertTrue(any("no expiresAtMs" in x["error"] for x in loaded["refused"]))
        for bearer in (good, never, far, old):
            self.assertNotIn(bearer, json.dumps(loaded))
        self.stop()
        self.assertIn("is ignored: no expiresAtMs", p.stderr.read())
        # token list shows them as refused
        states = {t["tokenId"]: t["state"] for t in self.listed("--tokens", path)}
        self.assertEqual(sorted(states.values()), ["active", "refused", "refused", "refused"])
        # a larger maximum admits the far one (still not the one without expiry)
        self.start("--tokens", path, "--max-token-ttl", "400d")
        self.assertEqual(self.rpc("listRuns", {}, far)[0], 200)
        self.assertEqual(self.rpc("listRuns", {}, never)[0], 401)

    def test_the_test_clock_never_moves_token_expiry(self):
        token = self.issue("--ttl", "1h").stdout.strip()
        # two hours "later" for runs and cron: the token is still an hour from expiry
        self.start(env={"SMITHERS_CLOCK_OFFSET_MS": str(2 * HOUR_MS)})
        self.assertEqual(self.rpc("listRuns", {}, token)[0], 200)
        self.stop()
        # and an hour "earlier" does not revive a token that expired
        short = self.issue("--ttl", "1s").stdout.strip()
        self.start(env={"SMITHERS_CLOCK_OFFSET_MS": str(-HOUR_MS)})
        self.wait_for(lambda: self.rpc("listRuns", {}, short)[0] == 401, timeout=10,
                      what="the 1 s token to expire on the real clock")
        # the token is stored with real times
        t = [t for t in self.listed() if t["expiresAtMs"] - t["issuedAtMs"] == 1000][0]
        self.assertLess(abs(t["issuedAtMs"] - time.time() * 1000), 60000)

    def test_jwt_exp_uses_the_real_clock(self):
        secret = "a-test-secret-that-is-long-enough"
        now = int(time.time())
        live = jwt(secret, {"sub": "alice", "scope": "run:read", "exp": now + 3600})
        dead = jwt(secret, {"sub": "bob", "scope": "run:read", "exp": now - 3600})
        self.start("--auth", "jwt", "--jwt-secret-env", "JWT_SECRET",
                   env={"JWT_SECRET": secret,
                        "SMITHERS_CLOCK_OFFSET_MS": str(-2 * HOUR_MS)})
        self.assertEqual(self.rpc("listRuns", {}, live)[0], 200)
        self.assertEqual(self.rpc("listRuns", {}, dead)[0], 401)

    def test_the_test_clock_is_refused_off_loopback(self):
        r = self.run_cli("gateway", "--workflows", self.wf_dir, "--port", "0", "--host",
                         "0.0.0.0", "--insecure", env={"SMITHERS_CLOCK_OFFSET_MS": "1000"})
        self.assertEqual(r.code, 4, r)
        self.assertIn("SMITHERS_CLOCK_OFFSET_MS is a test hook", r.stderr)
        self.assertFalse(os.path.exists(self.db), "nothing opened before the refusal")


class TrustedProxyTest(GatewayBase):
    IDENTITY = {"x-user-id": "mallory", "x-user-scopes": "*"}

    def test_trusted_proxy_mode_needs_peers(self):
        r = self.run_cli("gateway", "--workflows", self.wf_dir, "--port", "0", "--auth",
                         "trusted-proxy")
        self.assertEqual(r.code, 4, r)
        self.assertIn("--trusted-proxy", r.stderr)
        r = self.run_cli("gateway", "--workflows", self.wf_dir, "--port", "0", "--auth",
                         "trusted-proxy", "--trusted-proxy", "banana")
        self.assertEqual(r.code, 4, r)
        self.assertIn("\"banana\" is not an IP address", r.stderr)
        conf = self.write("gateway.toml", """\
            [auth]
            mode = "trusted-proxy"
            trusted_proxies = ["10.0.0.0/33"]
            """)
        r = self.run_cli("gateway", "--config", conf, "--workflows", self.wf_dir)
        self.assertEqual(r.code, 4, r)
        self.assertIn("gateway.toml:3:", r.stderr)
        self.assertIn("auth.trusted_proxies", r.stderr)

    def test_identity_headers_from_another_peer_are_refused(self):
        self.start("--auth", "trusted-proxy", "--trusted-proxy", "10.0.0.0/8",
                   "--trusted-proxy", "fd00::/8")
        code, r = self.http("POST", "/v1/rpc/listRuns", {}, headers=self.IDENTITY)
        self.assertEqual(code, 401, r)
        self.assertIn("not a trusted proxy", r["error"]["message"])
        code, r = self.http("POST", "/v1/rpc/launchRun", {"workflow": "hello"},
                            headers=self.IDENTITY)
        self.assertEqual(code, 401, r)
        self.assertEqual(self.run_cli("ps", "--json").json()["runs"], [])
        # nor over a WebSocket upgrade
        w = WebSocket("127.0.0.1", self.port, headers=self.IDENTITY)
        self.addCleanup(w.close)
        w.recv_json()  # the challenge
        res = w.request("connect", {"minProtocol": 1, "maxProtocol": 1,
                                    "client": {"id": "t", "version": "1", "platform": "py"}})
        self.assertFalse(res["ok"], res)
        self.assertIn("not a trusted proxy", res["error"]["message"])

    def test_identity_headers_from_a_configured_peer_count(self):
        for peer in ("127.0.0.1", "127.0.0.0/8"):
            self.start("--auth", "trusted-proxy", "--trusted-proxy", peer)
            code, r = self.http("POST", "/v1/rpc/listRuns", {}, headers=self.IDENTITY)
            self.assertEqual(code, 200, (peer, r))
            self.stop()
        conf = self.write("gateway.toml", """\
            [auth]
            mode = "trusted-proxy"
            trusted_proxies = ["127.0.0.1"]
            """)
        argv = [BIN, "--db", self.db, "gateway", "--config", conf, "--workflows", self.wf_dir,
                "--port", "0"]
        _, self.port, _ = gateway_test.spawn_gateway(self, argv)
        code, r = self.http("POST", "/v1/rpc/listRuns", {}, headers=self.IDENTITY)
        self.assertEqual(code, 200, r)


class FileModesTest(E2ETest):
    TIMER = """
        local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
        return smithers(function(ctx)
          return Workflow { name = "timer",
            Sequence {
              smithers.Timer { id = "wait", duration = "1h" },
              Task { id = "after", output = outputs.r, { ok = true } } } }
        end)
        """

    def test_database_wal_shm_and_logs_are_private_by_default(self):
        wf = self.write("wf.lua", self.TIMER)
        r = self.run_cli("up", wf, "--run-id", "m1", db=False)  # default .smithers/smithers.db
        self.assertEqual(r.code, 3, r)
        folder = self.path(".smithers")
        self.assertEqual(mode_of(folder), 0o700)
        for name in ("smithers.db", "smithers.db-wal", "smithers.db-shm", "smithers.db.audit-key"):
            self.assertEqual(mode_of(os.path.join(folder, name)), 0o600, name)
        db = os.path.join(folder, "smithers.db")
        r = self.run_cli("supervise", "--once", db=db,
                         env={"SMITHERS_CLOCK_OFFSET_MS": str(HOUR_MS + 1000)})
        self.assertEqual(r.code, 0, r)
        self.assertEqual(mode_of(os.path.join(folder, "logs")), 0o700)
        self.assertEqual(mode_of(os.path.join(folder, "logs", "m1.log")), 0o600)

    def test_group_readable_gives_0640_in_0750(self):
        wf = self.write("wf.lua", self.TIMER)
        db = self.path("ops/state/smithers.db")
        r = self.run_cli("--group-readable", "up", wf, "--run-id", "g1", db=db)
        self.assertEqual(r.code, 3, r)
        self.assertEqual(mode_of(self.path("ops")), 0o750)
        self.assertEqual(mode_of(self.path("ops/state")), 0o750)
        for suffix in ("", "-wal", "-shm"):
            self.assertEqual(mode_of(db + suffix), 0o640, suffix)
        # The audit key is the owner's alone: a reader of the log has no use for it.
        self.assertEqual(mode_of(db + ".audit-key"), 0o600)
        r = self.run_cli("--group-readable", "supervise", "--once", db=db,
                         env={"SMITHERS_CLOCK_OFFSET_MS": str(HOUR_MS + 1000)})
        self.assertEqual(r.code, 0, r)
        self.assertEqual(mode_of(self.path("ops/state/logs")), 0o750)
        self.assertEqual(mode_of(self.path("ops/state/logs/g1.log")), 0o640)

    def test_an_existing_folder_keeps_its_mode(self):
        os.makedirs(self.path("shared"))
        os.chmod(self.path("shared"), 0o755)
        wf = self.write("wf.lua", self.TIMER)
        self.assertEqual(self.run_cli("up", wf, db=self.path("shared/s.db")).code, 3)
        self.assertEqual(mode_of(self.path("shared")), 0o755)
        self.assertEqual(mode_of(self.path("shared/s.db")), 0o600)

    def test_the_gateways_database_and_access_log(self):
        os.makedirs(self.path("workflows"))
        argv = [BIN, "--db", self.path("gw/smithers.db"), "gateway", "--workflows",
                self.path("workflows"), "--port", "0", "--access-log", self.path("access.log"),
                "--auth", "none"]
        p, port, _ = gateway_test.spawn_gateway(self, argv)
        self.assertEqual(mode_of(self.path("gw")), 0o700)
        self.assertEqual(mode_of(self.path("gw/smithers.db")), 0o600)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/v1/rpc/listRuns", body="{}")
        self.assertEqual(c.getresponse().status, 200)
        c.close()
        self.wait_for(lambda: os.path.exists(self.path("access.log")), what="the access log")
        self.assertEqual(mode_of(self.path("access.log")), 0o600)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)


RUNAS = shutil.which("setpriv")


class ReadOnlyUserTest(E2ETest):
    """A user who may read the database (group nogroup, --group-readable) but
    not write it or create files beside it."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0 or RUNAS is None:
            self.skipTest("needs root and setpriv to act as another user")
        # The binary must be reachable by the other user.
        probe = self.as_nobody(BIN, "--version")
        if probe.returncode != 0:
            self.skipTest("the binary is not executable by uid 65534: %s" % probe.stderr)

    def as_nobody(self, *argv):
        return subprocess.run([RUNAS, "--reuid", "65534", "--regid", "65534", "--clear-groups",
                               "--"] + [str(a) for a in argv],
                              capture_output=True, text=True, timeout=30, cwd="/")

    def test_read_commands_work_read_only(self):
        wf = self.write("wf.lua", FileModesTest.TIMER)
        db = self.path("state/smithers.db")
        self.assertEqual(self.run_cli("--group-readable", "up", wf, "--run-id", "r1", db=db).code,
                         3)
        self.assertEqual(self.run_cli("--group-readable", "token", "issue", "--scopes",
                                      "run:read", db=db).code, 0)
        # every writer has exited: the WAL and SHM stay for readers
        self.assertTrue(os.path.exists(db + "-wal") and os.path.exists(db + "-shm"))
        os.chmod(self.dir, 0o711)
        for p in (self.path("state"), db, db + "-wal", db + "-shm"):
            os.chown(p, 0, 65534)
        before = {p: os.stat(p).st_mtime_ns for p in (db, db + "-wal", db + "-shm")}

        r = self.as_nobody(BIN, "--db", db, "ps", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([x["runId"] for x in json.loads(r.stdout)["runs"]], ["r1"])
        r = self.as_nobody(BIN, "--db", db, "inspect", "r1", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["run"]["status"], "waiting-timer")
        r = self.as_nobody(BIN, "--db", db, "events", "r1", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("TimerCreated", [e["type"] for e in json.loads(r.stdout)["events"]])
        r = self.as_nobody(BIN, "--db", db, "token", "list", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["tokens"]), 1)
        r = self.as_nobody(BIN, "--db", db, "approvals", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("read-only for you", r.stderr)
        # a write says why it cannot, not "cannot commit"
        r = self.as_nobody(BIN, "--db", db, "cancel", "r1")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("read-only for this user", r.stderr)
        self.assertNotIn("cannot commit", r.stderr)
        # nothing was written by the reader
        self.assertEqual(before, {p: os.stat(p).st_mtime_ns for p in before})
        # and the writer still works afterwards
        self.assertEqual(self.run_cli("inspect", "r1", "--json", db=db).code, 0)

    def test_a_private_database_is_refused_clearly(self):
        wf = self.write("wf.lua", FileModesTest.TIMER)
        db = self.path("state/smithers.db")
        self.assertEqual(self.run_cli("up", wf, "--run-id", "p1", db=db).code, 3)
        os.chmod(self.dir, 0o711)
        os.chmod(self.path("state"), 0o711)  # reachable, but the files are 0600
        r = self.as_nobody(BIN, "--db", db, "ps")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("cannot commit", r.stderr)
        self.assertIn(db, r.stderr)


class AccessLogRotationTest(GatewayBase):
    def lines(self, path):
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def test_sighup_reopens_the_access_log(self):
        token = self.run_cli("token", "issue", "--scopes", "*").stdout.strip()
        self.start()
        for _ in range(3):
            self.assertEqual(self.rpc("listRuns", {}, token)[0], 200)
        rotated = self.access_log + ".1"
        os.rename(self.access_log, rotated)
        # between the rename and the signal: still the old (renamed) file
        self.assertEqual(self.rpc("cronList", {}, token)[0], 200)
        self.gateway.send_signal(signal.SIGHUP)
        self.wait_for(lambda: os.path.exists(self.access_log) and any(
            l.get("event") == "log.reopened" for l in self.lines(self.access_log)),
                      what="the reopened log")
        for _ in range(2):
            self.assertEqual(self.rpc("listApprovals", {}, token)[0], 200)
        self.assertIsNone(self.gateway.poll(), "SIGHUP must not stop the Gateway")
        old = [l.get("method") for l in self.lines(rotated) if l.get("event") == "http"]
        new = [l.get("method") for l in self.lines(self.access_log) if l.get("event") == "http"]
        self.assertEqual(old, ["listRuns"] * 3 + ["cronList"])
        self.assertEqual(new, ["listApprovals"] * 2)
        self.assertEqual(mode_of(self.access_log), 0o600)
        # a second rotation works the same way
        os.rename(self.access_log, self.access_log + ".2")
        self.gateway.send_signal(signal.SIGHUP)
        self.wait_for(lambda: os.path.exists(self.access_log), what="the second reopen")
        self.assertEqual(self.rpc("getRun", {"runId": "nope"}, token)[0], 404)
        self.wait_for(lambda: [l for l in self.lines(self.access_log)
                               if l.get("method") == "getRun"], what="the getRun line")


class MalformedFramingTest(GatewayBase):
    def raw(self, data):
        """Sends `data`, returns everything the server sends until it closes."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            s.sendall(data)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk
        finally:
            s.close()

    def assert_400(self, data, why):
        out = self.raw(data)
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), (why, out[:200]))
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"bad request", body, why)
        self.assertLess(len(body), 200, why)
        self.assertIn(b"Connection: close", head, why)

    def test_malformed_requests_get_a_400_then_close(self):
        self.start()
        cases = {
            "bad Content-Length": b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            "two Content-Lengths": (b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                    b"Content-Length: 3\r\n\r\n{}"),
            "headers over 16 KiB": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                    b"a" * 20000 + b"\r\n\r\n"),
            "HTTP/0.9": b"GET /\r\n\r\n",
            "bare LF": b"GET /health HTTP/1.1\nHost: x\n\n",
            "bad version": b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
            "bad chunk": (b"POST /rpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"zz\r\n"),
            "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
        }
        for why, data in cases.items():
            self.assert_400(data, why)
        # logged, and the server is fine
        with open(self.access_log) as f:
            log = [json.loads(l) for l in f if l.strip()]
        bad = [l for l in log if l.get("status") == 400 and "malformed" in l.get("error", "")]
        self.assertEqual(len(bad), len(cases))
        code, r = self.http("GET", "/health")
        self.assertEqual(code, 200, r)


class ResumeRaceTest(E2ETest):
    BLOCKING = """
        local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
        return smithers(function(ctx)
          local tag = ctx.input.tag
          return Workflow { name = "race",
            Sequence {
              smithers.Timer { id = "wait", duration = "1h" },
              Task { id = "hold", output = outputs.r,
                     command = { "sh", "-c", "touch started-" .. tag ..
                                 "; while [ ! -e release-" .. tag .. " ]; do sleep 0.02; done" ..
                                 "; echo '{\\"ok\\":true}'" } } } }
        end)
        """
    LATER = {"SMITHERS_CLOCK_OFFSET_MS": str(HOUR_MS + 1000)}

    def resume(self, wf, run_id):
        argv = [BIN, "--db", self.db, "up", wf, "--resume", "--run-id", run_id] + self.sync_args()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=self.dir, env=dict(os.environ, **self.LATER))
        self._procs.append(p)
        return p

    def test_the_loser_of_two_concurrent_resumes_always_exits_4(self):
        wf = self.write("race.lua", self.BLOCKING)
        reps = 16
        for i in range(reps):
            run = "race%d" % i
            self.assertEqual(self.up(wf, {"tag": str(i)}, run).code, 3)
            a, b = self.resume(wf, run), self.resume(wf, run)
            # exactly one of them takes the run and waits on the release file
            loser = self.wait_for(lambda: next((p for p in (a, b) if p.poll() is not None),
                                               None), timeout=30, what="one resume to give up")
            winner = b if loser is a else a
            out, err = loser.communicate(timeout=10)
            self.assertEqual(loser.returncode, 4, "rep %d: %s" % (i, err))
            self.assertIn("the run belongs to another live process", err)
            self.wait_for(lambda: os.path.exists(self.path("started-%d" % i)),
                          timeout=30, what="the winner to run the task")
            # a third one while the winner holds it: the same answer
            r = self.run_cli("up", wf, "--resume", "--run-id", run, env=self.LATER)
            self.assertEqual(r.code, 4, r)
            self.assertIn("the run belongs to another live process", r.stderr)
            open(self.path("release-%d" % i), "w").close()
            out, err = winner.communicate(timeout=30)
            self.assertEqual(winner.returncode, 0, err)
            self.assertEqual(json.loads(out)["status"], "finished")
            types = [e["type"] for e in self.events(run)]
            self.assertEqual(types.count("TimerFired"), 1, run)
            self.assertEqual(types.count("RunFinished"), 1, run)


if __name__ == "__main__":
    main()
