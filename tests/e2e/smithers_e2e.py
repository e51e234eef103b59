"""Shared helpers for the end-to-end suites: they drive the real `smithers` binary.

Every test gets its own temporary directory, with the database (`--db`) inside
it. The binary writes it with `--synchronous NORMAL` (E2ETest.synchronous): in
WAL mode a killed process loses nothing, only an OS crash or power loss could,
which no suite simulates; a suite where FULL is what is tested says so. The binary comes from $SMITHERS_BIN (ctest sets it); by hand:

    SMITHERS_BIN=build/smithers tests/e2e/components_test.py -v
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

SOURCE_DIR = os.environ.get(
    "SMITHERS_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _find_binary():
    path = os.environ.get("SMITHERS_BIN")
    if path:
        return os.path.abspath(path)
    for candidate in ("build/smithers", "build-e2e/smithers"):
        p = os.path.join(SOURCE_DIR, candidate)
        if os.path.exists(p):
            return p
    raise RuntimeError("set SMITHERS_BIN to the smithers binary")


BIN = _find_binary()
PYTHON = sys.executable

# The header most modules start with.
PRELUDE = """\
local smithers = require("smithers")
local Workflow, Sequence, Parallel = smithers.Workflow, smithers.Sequence, smithers.Parallel
local Branch, Loop, Task = smithers.Branch, smithers.Loop, smithers.Task
local z = smithers.schema
"""


class Result:
    """What one invocation of the binary did."""

    def __init__(self, args, code, stdout, stderr, elapsed):
        self.args = args
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    def json(self):
        try:
            return json.loads(self.stdout)
        except ValueError as e:
            raise AssertionError("stdout is not JSON (%s): %r\nstderr: %s" %
                                 (e, self.stdout, self.stderr))

    def __repr__(self):
        return "smithers %s -> exit %s\n--- stdout\n%s--- stderr\n%s" % (
            " ".join(self.args), self.code, self.stdout, self.stderr)


class E2ETest(unittest.TestCase):
    """A test case with a private directory and database."""

    # SQLite's synchronous mode for `up`, `resume`, the Gateway and every other
    # command run with the test's database: NORMAL unless FULL is what a suite
    # tests; None passes no flag (the binary's default, FULL, or a config's).
    synchronous = "NORMAL"

    def sync_args(self):
        """["--synchronous", mode] for the test's mode, or [] when it is None."""
        return ["--synchronous", self.synchronous] if self.synchronous else []

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="smithers-e2e-")
        self.db = os.path.join(self.dir, "smithers.db")
        self._procs = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for p in self._procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- servers ----

    def serve_model(self, script):
        """Starts tests/e2e/fake_model_server.py (the OpenAI and Anthropic wire
        formats) scripted by `script`, logging requests to requests.jsonl in the
        test directory; returns its base URL (http://127.0.0.1:PORT)."""
        with open(self.path("script.json"), "w") as f:
            json.dump(script, f)
        server = os.path.join(SOURCE_DIR, "tests", "e2e", "fake_model_server.py")
        p = subprocess.Popen([PYTHON, server, "--script", self.path("script.json"),
                              "--log", self.path("requests.jsonl")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._procs.append(p)
        line = p.stdout.readline()
        self.assertTrue(line.startswith("PORT "), line)
        return "http://127.0.0.1:%d" % int(line.split()[1])

    # ---- files ----

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text, prelude=True):
        """Writes a file in the test directory (dedented); returns its path."""
        body = textwrap.dedent(text)
        if prelude and name.endswith(".lua"):
            body = PRELUDE + body
        p = self.path(name)
        with open(p, "w") as f:
            f.write(body)
        return p

    def line_of(self, path, marker):
        """The 1-based number of the first line of `path` containing `marker`."""
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if marker in line:
                    return i
        self.fail("no %r in %s" % (marker, path))

    def read(self, name):
        with open(self.path(name)) as f:
            return f.read()

    # ---- running the binary ----

    def run_cli(self, *args, timeout=30, db=True, stdin=None, cwd=None, env=None):
        """Runs the binary with `--db` (the test's database, or the path `db`).
        `env` adds to (overrides) the environment."""
        argv = [BIN] + [str(a) for a in args]
        if db:
            argv += ["--db", self.db if db is True else db]
            if "--synchronous" not in argv:
                argv += self.sync_args()
        start = time.monotonic()
        full_env = dict(os.environ, **env) if env else None
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           input=stdin, cwd=cwd or self.dir, env=full_env)
        return Result(argv[1:], p.returncode, p.stdout, p.stderr, time.monotonic() - start)

    def up(self, module, input=None, run_id=None, *extra, timeout=30, env=None):
        args = ["up", module]
        if input is not None:
            args += ["--input", input if isinstance(input, str) else json.dumps(input)]
        if run_id is not None:
            args += ["--run-id", run_id]
        args += list(extra)
        return self.run_cli(*args, timeout=timeout, env=env)

    def up_ok(self, module, input=None, run_id=None, *extra):
        r = self.up(module, input, run_id, *extra)
        self.assertEqual(r.code, 0, r)
        out = r.json()
        self.assertEqual(out["status"], "finished", r)
        return out

    def start_up(self, module, input=None, run_id=None, *extra):
        """Starts `up` in the background; returns the Popen."""
        argv = [BIN, "up", module, "--db", self.db] + self.sync_args()
        if input is not None:
            argv += ["--input", json.dumps(input)]
        if run_id is not None:
            argv += ["--run-id", run_id]
        argv += list(extra)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=self.dir)
        self._procs.append(p)
        return p

    def inspect(self, run_id):
        r = self.run_cli("inspect", run_id, "--json")
        self.assertEqual(r.code, 0, r)
        return r.json()

    def events(self, run_id, since=None):
        args = ["events", run_id, "--json"]
        if since is not None:
            args += ["--since", since]
        r = self.run_cli(*args)
        self.assertEqual(r.code, 0, r)
        return r.json()["events"]

    def node(self, run_id, node_id, iteration=0):
        for n in self.inspect(run_id)["nodes"]:
            if n["nodeId"] == node_id and n["iteration"] == iteration:
                return n
        self.fail("no node %s[%d] in run %s" % (node_id, iteration, run_id))

    def wait_for(self, predicate, timeout=10, interval=0.05, what="condition"):
        """Polls predicate until it is truthy. A database the process under
        test is still creating (file there, schema not yet committed) reads
        as "not yet", not as an error."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                v = predicate()
            except sqlite3.OperationalError as e:
                last_error, v = e, None
            if v:
                return v
            time.sleep(interval)
        self.fail("timed out waiting for %s%s" % (
            what, " (last error: %s)" % last_error if last_error else ""))

    # ---- the database ----

    def connect(self):
        """A read-only connection to the test's database (rows as sqlite3.Row)."""
        self.assertTrue(os.path.exists(self.db), "no database at " + self.db)
        conn = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        self.addCleanup(conn.close)
        return conn

    def query(self, sql, *params):
        return [dict(r) for r in self.connect().execute(sql, params).fetchall()]

    def assert_nothing_written(self, existed_before=False, runs_before=0):
        """Bad input: no database was created, or it holds no new run."""
        if not existed_before:
            self.assertFalse(os.path.exists(self.db),
                             "bad input must not create the database " + self.db)
            return
        rows = self.query("SELECT COUNT(*) AS n FROM _smithers_runs")
        self.assertEqual(rows[0]["n"], runs_before, "bad input must not add a run")
        rows = self.query("SELECT COUNT(*) AS n FROM _smithers_events")
        return rows[0]["n"]

    # ---- assertions ----

    def assert_started_in_order(self, events, node_ids):
        seqs = [next(e["seq"] for e in events
                     if e["type"] == "NodeStarted" and e["payload"]["nodeId"] == n)
                for n in node_ids]
        self.assertEqual(seqs, sorted(seqs), "tasks started out of order: %s" % node_ids)
        return seqs


def pid_alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def kill_quietly(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def jwt_hs256(secret, claims):
    """An HS256 JWT for `claims`, signed with `secret`."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


def main():
    unittest.main(verbosity=2)
