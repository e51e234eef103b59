#!/usr/bin/env python3
"""The binary on a real PostgreSQL server (docs/postgres.md): `--db
postgresql://...` for `up`, the read commands, approvals, the audit log,
`supervise` and `gateway`, as on SQLite.

Each test gets a schema of its own in the test server's database (CREATE
SCHEMA through psql, dropped at the end) and a URL naming it
(`options=-csearch_path%3DNAME`), an audit key file (a server has none beside
it) and reads the state back through the binary (`inspect`, `events`, `ps`,
`audit`) or psql, never sqlite3.

The server: CTest's fixture `postgres` (tests/CMakeLists.txt) starts one and
gives its folder in SMITHERS_TEST_PG_DIR (the URL is in its file `url`);
SMITHERS_TEST_PG_URL names one directly. By hand:

    scripts/pg-test-server start build/pg
    SMITHERS_TEST_PG_DIR=build/pg SMITHERS_BIN=build/smithers tests/e2e/postgres_test.py -v
"""

import glob
import hashlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import unittest
import urllib.parse

import gateway_test
from gateway_test import read_until_completed, spawn_gateway
from smithers_e2e import BIN, E2ETest, kill_quietly, main, pid_alive
from ws_client import Closed


def server_url():
    """The test server's URL, or None when no server was given."""
    url = os.environ.get("SMITHERS_TEST_PG_URL")
    if url:
        return url.strip()
    folder = os.environ.get("SMITHERS_TEST_PG_DIR")
    if not folder:
        return None
    with open(os.path.join(folder, "url")) as f:  # missing: the fixture failed
        return f.read().strip()


def pg_program(name):
    """A PostgreSQL client program: on PATH, else the newest installed one."""
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: [int(x) for x in p.split("/")[-2].split(".") if x.isdigit()],
                    reverse=True):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    raise RuntimeError("no %s (install postgresql-client)" % name)


def with_query(url, **params):
    """`url` with `params` added to its query string."""
    sep = "&" if "?" in url else "?"
    return url + sep + urllib.parse.urlencode(params, safe="")


def with_schema(url, schema):
    # libpq reads options=-csearch_path=NAME; "=" inside a value is %3D.
    return with_query(url, options="-csearch_path=" + schema)


def with_user(url, user, password):
    """`url` with user:password@ as its user info (the host stays)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = "%s:%s@%s" % (user, urllib.parse.quote(password, safe=""), host)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def children(pid):
    """The pids whose parent is `pid`."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.split("/")[2]))
    return found


def proc_file(pid, name):
    """/proc/PID/NAME as text, NULs as spaces ("" once the process is gone)."""
    try:
        with open("/proc/%d/%s" % (pid, name), "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class PgTest(E2ETest):
    """A test with its own schema: self.db is its URL, self.key_arg the
    --audit-key of a key file in the test directory."""

    def setUp(self):
        base = server_url()
        if base is None:
            self.skipTest("no PostgreSQL server: set SMITHERS_TEST_PG_DIR (scripts/pg-test-server "
                          "start DIR) or SMITHERS_TEST_PG_URL")
        self.base_url = base
        self.psql_bin = pg_program("psql")
        self.schema = "e2e_" + secrets.token_hex(6)
        self.roles = []  # dropped with the schema
        # Registered first, so it runs last: after E2ETest's clean-up has
        # stopped every process that might still hold a connection.
        self.addCleanup(self.drop_schema)
        super().setUp()
        self.psql("CREATE SCHEMA %s" % self.schema, url=self.base_url)
        self.db = with_schema(self.base_url, self.schema)
        key = self.path("audit.key")
        with open(key, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        self.key_arg = "file:" + key

    def drop_schema(self):
        sql = "SET lock_timeout = '20s'; DROP SCHEMA IF EXISTS %s CASCADE;" % self.schema
        for role in self.roles:
            sql += " DROP OWNED BY %s; DROP ROLE %s;" % (role, role)
        self.psql(sql, url=self.base_url)

    def psql(self, sql, url=None, check=True):
        """Runs `sql` with psql on the test's schema (or `url`); returns the
        rows, each a list of columns (unaligned, tab-separated)."""
        p = subprocess.run([self.psql_bin, "-X", "-q", "-t", "-A", "-F", "\t", "-v",
                            "ON_ERROR_STOP=1", "-d", url or self.db, "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if check:
            self.assertEqual(p.returncode, 0, "psql %r: %s" % (sql, p.stderr))
        return [line.split("\t") for line in p.stdout.splitlines() if line]

    def k(self, *args):
        """args, then --audit-key with the test's key."""
        return list(args) + ["--audit-key", self.key_arg]

    def query(self, sql, *params):
        raise AssertionError("a PostgreSQL test reads with psql or the binary, not sqlite3")

    def statuses(self):
        r = self.run_cli("ps", "--json")
        self.assertEqual(r.code, 0, r)
        return {run["runId"]: run["status"] for run in r.json()["runs"]}

    def outputs(self, run_id):
        return {o["nodeId"]: o["payload"] for o in self.inspect(run_id)["outputs"]}

    def progress(self, run_id):
        """(committed {node}, in progress {(node, attempt)}) from inspect."""
        view = self.inspect(run_id)
        committed = {o["nodeId"] for o in view["outputs"]}
        running = {(n["nodeId"], a["attempt"]) for n in view["nodes"]
                   for a in n["attempts"] if a["state"] == "in-progress"}
        return committed, running

    def assert_gapless_events(self, run_id):
        events = self.events(run_id)
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)),
                         "event seqs are not 1..N")
        return events


# A chain of command tasks, each mounted once the previous one is done and
# given its output in argv, beside a static value.
CHAIN = r"""
local outputs = smithers.outputs {
  step = z.object { n = z.integer(), trail = z.string() },
  info = z.object { label = z.string(), version = z.integer() },
}
local STEP = [[printf '{"n":%d,"trail":"%s"}\n' "$(( $1 * 2 + 1 ))" "$2"]]
return smithers(function(ctx)
  local function step(i, prev)
    return Task { id = "s" .. i, output = outputs.step,
      command = { "sh", "-c", STEP, "step", tostring(prev and prev.n or 0),
                  (prev and prev.trail or "") .. "s" .. i } }
  end
  local s1 = ctx:outputMaybe(outputs.step, "s1")
  local s2 = ctx:outputMaybe(outputs.step, "s2")
  return Workflow { name = "chain",
    Sequence {
      Task { id = "info", output = outputs.info, { label = ctx.input.label, version = 3 } },
      step(1, nil),
      s1 and step(2, s1) or nil,
      s2 and step(3, s2) or nil,
    },
  }
end, { input = z.object { label = z.string() } })
"""

GATE = """
local outputs = smithers.outputs { d = smithers.approvalDecision,
                                   v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "gate",
    Sequence {
      smithers.Approval { id = "gate", output = outputs.d, owner = "alice",
                          request = { title = "Ship?" } },
      Task { id = "after", output = outputs.v, { n = 1 } } } }
end)
"""

HELLO = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "hello", Task { id = "a", output = outputs.v, { n = 1 } } }
end)
"""


class PostgresRunTest(PgTest):
    def test_a_workflow_runs_and_reads_back(self):
        wf = self.write("chain.lua", CHAIN)
        r = self.up(wf, {"label": "pg"}, "c1", *self.k())
        self.assertEqual(r.code, 0, r)
        out = r.json()
        self.assertEqual(out["status"], "finished", r)
        self.assertEqual(out["outputs"]["step"], {
            "s1": {"n": 1, "trail": "s1"},
            "s2": {"n": 3, "trail": "s1s2"},
            "s3": {"n": 7, "trail": "s1s2s3"}})
        self.assertEqual(out["outputs"]["info"], {"info": {"label": "pg", "version": 3}})

        r = self.run_cli("ps", "--json")
        self.assertEqual(r.code, 0, r)
        [run] = r.json()["runs"]
        self.assertEqual((run["runId"], run["status"], run["workflowName"], run["input"]),
                         ("c1", "finished", "chain", {"label": "pg"}))

        view = self.inspect("c1")
        self.assertEqual(view["run"]["status"], "finished")
        self.assertIsNone(view["run"]["runtimeOwnerId"])
        self.assertEqual({(n["nodeId"], n["state"], len(n["attempts"])) for n in view["nodes"]},
                         {(n, "finished", 1) for n in ("info", "s1", "s2", "s3")})
        self.assertEqual(self.outputs("c1")["s3"], {"n": 7, "trail": "s1s2s3"})

        events = self.assert_gapless_events("c1")
        types = [e["type"] for e in events]
        self.assertEqual((types[0], types[-1]), ("RunStarted", "RunFinished"))
        self.assertEqual(sorted(e["payload"]["nodeId"] for e in events
                                if e["type"] == "NodeFinished"), ["info", "s1", "s2", "s3"])
        self.assert_started_in_order(events, ["s1", "s2", "s3"])
        # `--since` pages the same log.
        self.assertEqual([e["seq"] for e in self.events("c1", since=3)],
                         [e["seq"] for e in events if e["seq"] > 3])

        # Each output schema is a view (its columns as text).
        self.assertEqual(self.psql("SELECT node_id, n, trail FROM step ORDER BY node_id"),
                         [["s1", "1", "s1"], ["s2", "3", "s1s2"], ["s3", "7", "s1s2s3"]])

    def test_without_an_audit_key_nothing_starts(self):
        wf = self.write("hello.lua", HELLO)
        r = self.up(wf, None, "h1")
        self.assertEqual(r.code, 4, r)
        self.assertIn("--audit-key", r.stderr, r)
        self.assertEqual(self.statuses(), {}, "no run was started")
        self.assertEqual(self.psql("SELECT COUNT(*) FROM _smithers_audit"), [["0"]])
        # The key in a variable works as the flag does.
        r = self.up(wf, None, "h1", env={"SMITHERS_AUDIT_KEY": self.key_arg})
        self.assertEqual(r.code, 0, r)

    def test_an_approval_waits_then_resumes(self):
        wf = self.write("gate.lua", GATE)
        r = self.up(wf, None, "g1", *self.k())
        self.assertEqual(r.code, 3, r)
        self.assertEqual(r.json()["status"], "waiting-approval")
        r = self.run_cli("approvals", "--json")
        self.assertEqual(r.code, 0, r)
        self.assertIn("g1", r.stdout)

        # A decision is audited: no key, no decision.
        r = self.run_cli("approve", "g1", "--node", "gate", "--by", "alice")
        self.assertEqual(r.code, 4, r)
        self.assertIn("--audit-key", r.stderr, r)
        self.assertEqual(self.inspect("g1")["approvals"][0]["status"], "requested")

        r = self.run_cli(*self.k("approve", "g1", "--node", "gate", "--by", "alice",
                                 "--note", "ok"))
        self.assertEqual(r.code, 0, r)
        r = self.up(wf, None, "g1", "--resume", *self.k())
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["status"], "finished")
        self.assertEqual(self.outputs("g1")["gate"]["decidedBy"], "alice")
        self.assertEqual(self.outputs("g1")["after"], {"n": 1})
        types = [e["type"] for e in self.assert_gapless_events("g1")]
        self.assertEqual(types.count("ApprovalGranted"), 1)
        self.assertEqual(types.count("RunFinished"), 1)

        # The audit log: listing needs no key, verifying does.
        r = self.run_cli("audit", "--run", "g1", "--json")
        self.assertEqual(r.code, 0, r)
        rows = r.json()["rows"]
        self.assertEqual([row["action"] for row in rows],
                         ["run.launch", "approval.decide", "run.resume"])
        self.assertEqual(rows[1]["details"]["note"], "ok")
        v = self.run_cli(*self.k("audit", "verify", "--json"))
        self.assertEqual(v.code, 0, v)
        self.assertEqual((v.json()["ok"], v.json()["rows"]), (True, 3))
        anchor = self.run_cli("audit", "anchor")
        self.assertEqual(anchor.code, 0, anchor)
        self.assertRegex(anchor.stdout.strip(), r"^3:[0-9a-f]{64}$")
        v = self.run_cli(*self.k("audit", "verify", "--anchor", anchor.stdout.strip()))
        self.assertEqual(v.code, 0, v)
        export = self.run_cli("audit", "export")
        self.assertEqual(export.code, 0, export)
        self.assertEqual(len(export.stdout.splitlines()), 3)

        v = self.run_cli("audit", "verify")
        self.assertEqual(v.code, 4, v)
        self.assertIn("--audit-key", v.stderr, v)  # says how to give the key
        with open(self.path("other.key"), "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        v = self.run_cli("audit", "verify", "--audit-key", "file:" + self.path("other.key"))
        self.assertEqual(v.code, 1, v)
        self.assertIn("not by this key", v.stdout)

        # The log refuses an edit on the server too.
        p = subprocess.run([self.psql_bin, "-X", "-d", self.db, "-c",
                            "UPDATE _smithers_audit SET actor = 'eve'"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("append-only", p.stderr)


# Every task logs "<node> <smithers pid> <attempt>" outside the database
# before it holds for $1 seconds, then prints its output.
TASK_SH = r"""#!/bin/sh
echo "$SMITHERS_NODE_ID $PPID $SMITHERS_ATTEMPT" >> "$CRASH_LOG"
sleep "$1"
printf '{"node":"%s","pid":%s,"attempt":%s}\n' "$SMITHERS_NODE_ID" "$PPID" "$SMITHERS_ATTEMPT"
"""

CRASH = """
local outputs = smithers.outputs {
  step = z.object { node = z.string(), pid = z.integer(), attempt = z.integer() } }
return smithers(function(ctx)
  local seq = {}
  for i = 1, 6 do
    seq[#seq + 1] = Task { id = "t" .. i, output = outputs.step,
      command = { "sh", ctx.input.script, ctx.input.hold }, env = { CRASH_LOG = ctx.input.log } }
  end
  return Workflow { name = "pgcrash", Sequence(seq) }
end)
"""

TASKS = ["t%d" % i for i in range(1, 7)]

# TASK_SH's tasks around an approval that alice decides.
APPROVED = """
local outputs = smithers.outputs {
  step = z.object { node = z.string(), pid = z.integer(), attempt = z.integer() },
  d = smithers.approvalDecision }
return smithers(function(ctx)
  local function step(id)
    return Task { id = id, output = outputs.step,
      command = { "sh", ctx.input.script, ctx.input.hold }, env = { CRASH_LOG = ctx.input.log } }
  end
  return Workflow { name = "pgapproved",
    Sequence { step("t1"),
               smithers.Approval { id = "gate", output = outputs.d, owner = "alice",
                                   request = { title = "Ship?" } },
               step("t2"), step("t3") } }
end)
"""


def task_log_lines(path):
    """[(byte offset, node, pid, attempt)] of TASK_SH's log at `path`."""
    lines, offset = [], 0
    if not os.path.exists(path):
        return lines
    with open(path, "rb") as f:
        for raw in f.read().splitlines(keepends=True):
            node, pid, attempt = raw.decode().split()
            lines.append((offset, node, int(pid), int(attempt)))
            offset += len(raw)
    return lines


class PostgresCrashTest(PgTest):
    """SIGKILL `up` while a task runs and right after one committed, resume,
    and check from outside that nothing committed ran twice."""

    def log_lines(self):
        return task_log_lines(self.log)

    def state(self):
        return self.progress("k1")

    def test_kills_at_several_points_then_resume(self):
        script = self.write("task.sh", TASK_SH)
        self.log = self.path("tasks.log")
        wf = self.write("crash.lua", CRASH)
        inp = {"script": script, "hold": "0.4", "log": self.log}
        # (what to wait for, task): the task's log line (it is running) or
        # its committed output.
        plan = [("running", "t1"), ("running", "t3"), ("committed", "t4"), ("running", "t6")]
        kills = []  # (pid, committed, in progress, log length) right after each kill
        for n, (point, task) in enumerate(plan):
            if n == 0:
                p = self.start_up(wf, inp, "k1", *self.k())
            else:
                p = self.start_up(wf, None, "k1", "--resume", *self.k())
            if point == "running":
                self.wait_for(lambda: any(node == task and pid == p.pid
                                          for _, node, pid, _ in self.log_lines())
                              or p.poll() is not None, timeout=30, interval=0.02,
                              what="%s to start under up #%d" % (task, n + 1))
            else:
                self.wait_for(lambda: task in self.state()[0] or p.poll() is not None,
                              timeout=30, interval=0.02, what="%s's output" % task)
            if p.poll() is not None:
                self.fail("up #%d exited before the kill: %s" % (n + 1, p.communicate()[1]))
            p.kill()
            p.communicate()
            committed, running = self.state()
            kills.append((p.pid, committed, running, os.path.getsize(self.log)))
            if point == "running":
                self.assertNotIn(task, committed, "the kill came after %s committed" % task)
                self.assertIn(task, {node for node, _ in running})
            else:
                self.assertIn(task, committed)
            self.assertEqual(self.inspect("k1")["run"]["status"], "running")

        r = self.up(wf, None, "k1", "--resume", *self.k(), timeout=60)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["status"], "finished")

        view = self.inspect("k1")
        self.assertEqual((view["run"]["status"], view["run"]["runtimeOwnerId"]),
                         ("finished", None))
        # Every task has exactly one output, the one a logged attempt printed.
        keys = [o["nodeId"] for o in view["outputs"]]
        self.assertEqual(sorted(keys), TASKS, "one output per task")
        lines = self.log_lines()
        ran = [(node, attempt) for _, node, _, attempt in lines]
        self.assertEqual(len(ran), len(set(ran)), "an attempt ran its command twice")
        logged = {(node, pid, attempt) for _, node, pid, attempt in lines}
        for o in view["outputs"]:
            pl = o["payload"]
            self.assertEqual(pl["node"], o["nodeId"])
            self.assertIn((pl["node"], pl["pid"], pl["attempt"]), logged)
        # Committed outputs only grow, and none ran again after a kill.
        for (_, a, _, _), (_, b, _, _) in zip(kills, kills[1:]):
            self.assertLessEqual(a, b, "outputs disappeared")
        for pid, committed, _, log_len in kills:
            again = sorted({node for off, node, _, _ in lines
                            if off >= log_len and node in committed})
            self.assertEqual(again, [], "tasks committed before the kill of %d ran again" % pid)
        # Attempts: the last of each task finished, every earlier one (those
        # running at a kill) was abandoned.
        abandoned = set()
        for node in view["nodes"]:
            attempts = sorted(node["attempts"], key=lambda a: a["attempt"])
            self.assertEqual([a["attempt"] for a in attempts], list(range(1, len(attempts) + 1)))
            self.assertEqual(attempts[-1]["state"], "finished", node["nodeId"])
            for a in attempts[:-1]:
                self.assertEqual((a["state"], (a.get("error") or {}).get("code")),
                                 ("cancelled", "ATTEMPT_ABANDONED"), (node["nodeId"], a))
                abandoned.add((node["nodeId"], a["attempt"]))
        in_progress_at_kills = set().union(*(running for _, _, running, _ in kills))
        self.assertEqual(abandoned, in_progress_at_kills)
        self.assertGreaterEqual(len(abandoned), 3)

        events = self.assert_gapless_events("k1")
        types = [e["type"] for e in events]
        self.assertEqual(sorted(e["payload"]["nodeId"] for e in events
                                if e["type"] == "NodeFinished"), TASKS)
        self.assertEqual((types.count("RunStarted"), types.count("RunFinished")), (1, 1))


class PostgresMigrationTest(PgTest):
    def test_concurrent_first_opens_migrate_once(self):
        # A read command creates nothing: on a fresh schema it says so.
        r = self.run_cli("ps", "--json")
        self.assertEqual(r.code, 4, r)
        self.assertIn("smithers db migrate", r.stderr)
        self.assertEqual(self.psql("SELECT COUNT(*) FROM pg_tables WHERE schemaname = '%s'" %
                                   self.schema), [["0"]])

        wf = self.write("hello.lua", HELLO)
        procs = [self.start_up(wf, None, "m%d" % i, *self.k()) for i in range(4)]
        for p in procs:
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(json.loads(out)["status"], "finished")
        migrations = self.psql("SELECT id, COUNT(*) FROM _smithers_schema_migrations "
                               "GROUP BY id ORDER BY id")
        self.assertTrue(migrations)
        self.assertEqual(migrations, [[str(i), "1"] for i in range(1, len(migrations) + 1)],
                         "one ledger row per migration")
        self.assertEqual(self.psql("SELECT COUNT(*) FROM _smithers_commits"), [["1"]])
        self.assertEqual(self.statuses(), {"m%d" % i: "finished" for i in range(4)})
        # Serialized writers: the audit log's seqs are 1..4.
        self.assertEqual(self.psql("SELECT seq FROM _smithers_audit ORDER BY seq"),
                         [["1"], ["2"], ["3"], ["4"]])
        # A second open finds nothing to do.
        self.assertEqual(self.run_cli("ps").code, 0)
        r = self.up(wf, None, "m4", *self.k())
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.psql("SELECT id FROM _smithers_schema_migrations")),
                         len(migrations))

    def test_a_schema_that_does_not_exist_is_refused(self):
        missing = with_schema(self.base_url, self.schema + "_missing")
        wf = self.write("hello.lua", HELLO)
        r = self.run_cli(*self.k("up", wf), db=missing)
        self.assertEqual(r.code, 4, r)
        self.assertIn("no schema to create the tables in", r.stderr)
        self.assertEqual(self.psql("SELECT COUNT(*) FROM pg_namespace WHERE nspname = '%s'" %
                                   (self.schema + "_missing")), [["0"]])
        self.assertEqual(self.psql("SELECT COUNT(*) FROM pg_tables WHERE tablename = "
                                   "'_smithers_runs' AND schemaname = 'public'"), [["0"]])


# Fails (a command exits 3).
FAILING = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "fails",
    Task { id = "boom", output = outputs.v, command = { "sh", "-c", "echo oops >&2; exit 3" } } }
end)
"""

# Waits for an approval, then a task that dumps its environment to env.txt,
# says it started, and holds until the file `go` exists (at most 30 s).
HELD = """
local outputs = smithers.outputs { d = smithers.approvalDecision,
                                   v = z.object { ok = z.boolean() } }
return smithers(function(ctx)
  return Workflow { name = "held",
    Sequence {
      smithers.Approval { id = "gate", output = outputs.d, owner = "alice" },
      Task { id = "hold", output = outputs.v, command = { "sh", "-c", [[
        env > env.txt; echo started > started
        for i in $(seq 600); do [ -e go ] && break; sleep 0.05; done
        echo '{"ok": true}']] } } } }
end)
"""


class PostgresPasswordTest(PgTest):
    """A password in the URL reaches libpq and nothing else: not the output,
    not a table, not the argv or the tasks of `supervise`'s children."""

    def setUp(self):
        super().setUp()
        self.role = self.schema + "_user"
        self.password = "hunter2-" + secrets.token_hex(8)
        # The test server trusts local connections: any password would do;
        # what is tested is where the text goes.
        self.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (self.role, self.password))
        self.roles.append(self.role)
        self.psql("GRANT USAGE, CREATE ON SCHEMA %s TO %s" % (self.schema, self.role))
        self.admin_db = self.db
        self.db = with_user(self.db, self.role, self.password)
        self.assertIn(":" + self.password + "@", self.db)
        self.seen = []  # every text the binary produced

    def run_cli(self, *args, **kw):
        r = super().run_cli(*args, **kw)
        self.seen.append(("the output of smithers " + r.args[0], r.stdout + r.stderr))
        return r

    def assert_no_password(self, text, where):
        self.assertNotIn(self.password, text, "the password is in " + where)
        self.assertNotIn(urllib.parse.quote(self.password), text, "the password is in " + where)

    def assert_nothing_leaked(self):
        for where, text in self.seen:
            self.assert_no_password(text, where)
        dump = subprocess.run([pg_program("pg_dump"), "--data-only", "--schema", self.schema,
                               "-d", self.base_url], capture_output=True, text=True, timeout=60)
        self.assertEqual(dump.returncode, 0, dump.stderr)
        self.assertIn("_smithers_events", dump.stdout)
        self.assert_no_password(dump.stdout, "pg_dump --data-only")
        for table in ("_smithers_runs", "_smithers_events", "_smithers_audit",
                      "_smithers_attempts", "_smithers_frames"):
            rows = self.psql("SELECT t::text FROM %s t" % table, url=self.admin_db)
            self.assert_no_password(json.dumps(rows), table)

    def test_a_failing_run_and_a_bad_url(self):
        wf = self.write("fails.lua", FAILING)
        r = self.up(wf, None, "f1", *self.k())
        self.assertEqual(r.code, 1, r)
        self.assertEqual(r.json()["status"], "failed")
        self.assertEqual(self.psql("SELECT current_user", url=self.db), [[self.role]])
        self.assertEqual(self.psql("SELECT tableowner FROM pg_tables WHERE tablename = "
                                   "'_smithers_runs' AND schemaname = '%s'" % self.schema),
                         [[self.role]], "the tables were made through the password URL")
        for args in (["ps"], ["inspect", "f1"], ["events", "f1"], ["audit"]):
            r = self.run_cli(*args)
            self.assertEqual(r.code, 0, r)
        r = self.run_cli("inspect", "nope")
        self.assertEqual(r.code, 4, r)
        # A server that is not there: a socket folder that does not exist.
        for url in (with_query(self.db, host=self.path("no-such-dir")),
                    with_query(with_user(self.base_url, self.role, self.password),
                               host=self.path("no-such-dir"), password=self.password)):
            for args in (["ps"], self.k("up", wf), ["supervise", "--once"]):
                r = self.run_cli(*args, db=url)
                self.assertNotEqual(r.code, 0, r)
                self.assertIn("no-such-dir", r.stderr, r)  # says where it tried
                self.assert_no_password(r.stdout + r.stderr, "the output of %s" % r.args[0])
        self.assert_nothing_leaked()

    def test_a_malformed_url_does_not_echo_the_password(self):
        for url in (with_user(self.base_url, self.role, self.password).replace("@", "@[::1", 1),
                    "postgresql://%s:%s@[::1]x/db" % (self.role, self.password),
                    "postgresql://%s:%s%%zz@/db" % (self.role, self.password)):
            r = self.run_cli("ps", db=url)
            self.assertEqual(r.code, 4, r)  # bad input, not a server to retry
            self.assert_no_password(r.stdout + r.stderr, "the error for a malformed URL")

    def test_doctor_does_not_print_it(self):
        self.up_ok(self.write("hello.lua", HELLO), None, "d1", *self.k())
        for args in (["doctor"], ["doctor", "--json"]):
            r = self.run_cli(*self.k(*args))
            self.assertIn("database", r.stdout, r)
            self.assert_no_password(r.stdout + r.stderr, "the output of smithers doctor")

    def test_the_gateway_does_not_print_it(self):
        os.mkdir(self.path("workflows"))
        gw = subprocess.Popen([BIN, "gateway", "--workflows", self.path("workflows"), "--port", "0",
                               "--db", self.db, "--audit-key", self.key_arg],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=self.dir)
        self._procs.append(gw)
        ready, _, _ = select.select([gw.stdout], [], [], 30)
        self.assertTrue(ready, "the Gateway printed nothing in 30 s")
        line = gw.stdout.readline()
        gw.send_signal(signal.SIGTERM)
        out, err = gw.communicate(timeout=30)
        self.assertIn("listening on", line, err)
        self.assert_no_password(line + out + err, "the Gateway's output")

    def test_supervise_children_never_see_it(self):
        wf = self.write("held.lua", HELD)
        r = self.up(wf, None, "s1", *self.k())
        self.assertEqual(r.code, 3, r)
        r = self.run_cli(*self.k("approve", "s1", "--node", "gate", "--by", "alice"))
        self.assertEqual(r.code, 0, r)
        argv = [BIN, "supervise", "--db", self.db, "--interval", "200ms", "--audit-key",
                self.key_arg]
        sup = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=self.dir)
        self._procs.append(sup)
        self.wait_for(lambda: os.path.exists(self.path("started")), timeout=30,
                      what="the resumed run's task to start")
        ups = [pid for pid in children(sup.pid) if "up" in proc_file(pid, "cmdline").split()]
        self.assertEqual(len(ups), 1, [proc_file(p, "cmdline") for p in children(sup.pid)])
        cmdline = proc_file(ups[0], "cmdline")
        self.assertIn("--resume", cmdline)
        self.assert_no_password(cmdline, "the argv of supervise's child " + cmdline)
        self.assertIn(self.password, proc_file(ups[0], "environ"),
                      "the child gets the URL in SMITHERS_DB")
        for task in children(ups[0]):
            self.assert_no_password(proc_file(task, "cmdline"), "a task's argv")
        with open(self.path("env.txt")) as f:
            self.assert_no_password(f.read(), "a task's environment")
        open(self.path("go"), "w").close()
        self.wait_for(lambda: self.statuses()["s1"] == "finished", timeout=30,
                      what="the run to finish")
        sup.send_signal(signal.SIGTERM)
        out, err = sup.communicate(timeout=30)
        self.assertIn("resume s1", out)
        self.assert_no_password(out + err, "supervise's output")
        for log in glob.glob(self.path(".smithers/logs/*")):
            with open(log) as f:
                self.assert_no_password(f.read(), log)
        self.assert_nothing_leaked()


# A quick task, then one that logs each start and holds until `go` exists.
SLOW = """
local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
return smithers(function(ctx)
  return Workflow { name = "slow",
    Sequence {
      Task { id = "quick", output = outputs.r, command = { "sh", "-c", [[
        echo quick >> log.txt; echo '{"ok": true}']] } },
      Task { id = "nap", output = outputs.r, command = { "sh", "-c", [[
        echo nap >> log.txt
        for i in $(seq 600); do [ -e go ] && break; sleep 0.05; done
        echo '{"ok": true}']] } } } }
end)
"""


class PostgresSuperviseTest(PgTest):
    def log(self):
        try:
            return self.read("log.txt").split()
        except FileNotFoundError:
            return []

    def test_takes_over_a_run_whose_owner_died(self):
        wf = self.write("slow.lua", SLOW)
        p = self.start_up(wf, None, "dead1", *self.k())
        self.wait_for(lambda: self.log() == ["quick", "nap"], timeout=30,
                      what="the second task to start")
        p.kill()  # SIGKILL: the run stays `running`, owned by a dead process
        p.communicate()
        self.assertEqual(self.statuses(), {"dead1": "running"})
        # The URL reaches supervise in SMITHERS_DB, as it reaches its children.
        sup = subprocess.Popen([BIN, "supervise", "--interval", "200ms"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=self.dir,
                               env=dict(os.environ, SMITHERS_DB=self.db,
                                        SMITHERS_AUDIT_KEY=self.key_arg))
        self._procs.append(sup)
        self.wait_for(lambda: self.log() == ["quick", "nap", "nap"] or sup.poll() is not None,
                      timeout=30, what="a new attempt by the supervisor's child")
        if sup.poll() is not None:
            self.fail("supervise exited: %s" % (sup.communicate(),))
        attempts = self.node("dead1", "nap")["attempts"]
        self.assertEqual([a["state"] for a in attempts], ["cancelled", "in-progress"])
        self.assertEqual(attempts[0]["error"]["code"], "ATTEMPT_ABANDONED")
        self.assertIsNotNone(self.inspect("dead1")["run"]["runtimeOwnerId"])
        open(self.path("go"), "w").close()
        self.wait_for(lambda: self.statuses()["dead1"] == "finished", timeout=30,
                      what="the run to finish")
        sup.send_signal(signal.SIGTERM)
        out, _ = sup.communicate(timeout=30)
        self.assertIn("resume dead1 (owner", out)
        self.assertEqual(self.log(), ["quick", "nap", "nap"], "quick ran once")
        self.assertTrue(os.path.exists(self.path(".smithers/logs/dead1.log")))
        types = [e["type"] for e in self.assert_gapless_events("dead1")]
        self.assertEqual(types.count("RunFinished"), 1)


class PgGatewayTest(PgTest):
    """A test of `smithers gateway` on the test's URL, with the workflows
    CRASH (`pgcrash`) and APPROVED (`pgapproved`), whose tasks run TASK_SH."""

    # The Gateway suite's clients (they talk to self.port).
    token = gateway_test.GatewayTest.token
    http = gateway_test.GatewayTest.http
    rpc = gateway_test.GatewayTest.rpc
    ws = gateway_test.GatewayTest.ws
    stream = gateway_test.GatewayTest.stream
    wait_run = gateway_test.GatewayTest.wait_run

    def setUp(self):
        super().setUp()
        self.wf_dir = self.path("workflows")
        os.mkdir(self.wf_dir)
        self.write("workflows/pgcrash.lua", CRASH)
        self.write("workflows/pgapproved.lua", APPROVED)
        self.script = self.write("task.sh", TASK_SH)
        self.log = self.path("tasks.log")

    def start(self, *extra, cwd=None):
        """A Gateway on the test's URL (in folder `cwd`); returns its process
        (its port is self.port and the process's .port)."""
        p, self.port, _ = spawn_gateway(self, [BIN, "gateway", "--workflows", self.wf_dir,
                                               "--port", "0", "--access-log", "-",
                                               "--db", self.db, "--audit-key", self.key_arg]
                                        + list(extra), cwd=cwd)
        p.port = self.port
        return p

    def launch(self, token, run_id, hold, workflow="pgcrash"):
        """launchRun over HTTP; the run's tasks each hold `hold` seconds."""
        code, r = self.rpc("launchRun", {"workflow": workflow, "runId": run_id,
                                         "input": {"script": self.script, "hold": hold,
                                                   "log": self.log}}, token)
        self.assertEqual(code, 200, r)

    def wait_for_task(self, gw, node):
        """Waits for `node`'s log line from `gw`'s process."""
        self.wait_for(lambda: any(n == node and pid == gw.pid
                                  for _, n, pid, _ in task_log_lines(self.log))
                      or gw.poll() is not None, timeout=30, interval=0.02,
                      what="%s to start in the Gateway" % node)
        self.assertIsNone(gw.poll(), "the Gateway exited")

    def assert_streamed(self, events, completed, run_id):
        """A stream of the whole run: 1..N, once each, as `smithers events` reads it."""
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "streamed seqs are not 1..N")
        self.assertEqual((completed["status"], completed["lastSeq"]), ("finished", seqs[-1]))
        self.assertEqual([(e["seq"], e["type"]) for e in events],
                         [(e["seq"], e["type"]) for e in self.assert_gapless_events(run_id)])


class PostgresGatewayTest(PgGatewayTest):
    """`smithers gateway` on the server: a token issued by the CLI on the URL
    launches CRASH's tasks (launchRun over WebSocket, or HTTP) and a client
    streams their events; a Gateway killed mid-task leaves its run to the
    next one on the URL, which recovers it at start-up (its owner's process
    is gone) without re-running a committed task."""

    def test_a_cli_token_launches_and_streams_a_run(self):
        gw = self.start()
        token = self.token("run:read,run:write", *self.k())
        code, r = self.rpc("listRuns", {}, "smithers_" + "A" * 43)
        self.assertEqual(code, 401, r)
        w = self.ws(token)  # fails unless the Gateway accepts the token
        res = w.request("launchRun", {"workflow": "pgcrash", "runId": "g1", "input": {
            "script": self.script, "hold": "0.05", "log": self.log}})
        self.assertTrue(res["ok"], res)
        # launchRun subscribed the connection: what arrived before its reply,
        # then the rest, live.
        events = [f["payload"] for f in getattr(w, "events", []) if f.get("event") == "run.event"]
        completed = read_until_completed(w, events)
        self.assertEqual({e["streamId"] for e in events}, {res["payload"]["streamId"]})
        self.assert_streamed(events, completed, "g1")
        self.assertEqual(sorted(e["payload"]["nodeId"] for e in events
                                if e["type"] == "NodeFinished"), TASKS)
        # Each task ran once, in the Gateway's process, and printed its output.
        self.assertEqual([(node, pid, attempt) for _, node, pid, attempt in
                          task_log_lines(self.log)], [(t, gw.pid, 1) for t in TASKS])
        self.assertEqual(self.outputs("g1"), {t: {"node": t, "pid": gw.pid, "attempt": 1}
                                              for t in TASKS})
        code, r = self.rpc("getRun", {"runId": "g1"}, token)
        self.assertEqual((code, r["payload"]["status"]), (200, "finished"), r)
        self.assertEqual(self.statuses(), {"g1": "finished"})

    def test_a_killed_gateways_run_is_recovered_by_the_next(self):
        gw1 = self.start()
        token = self.token("run:read,run:write", *self.k())
        self.launch(token, "k1", "0.5")
        self.wait_for_task(gw1, "t3")
        gw1.kill()
        gw1.communicate()
        log_len = os.path.getsize(self.log)
        committed, running = self.progress("k1")
        self.assertEqual(committed, {"t1", "t2"}, "the kill came after t3 committed")
        self.assertEqual(running, {("t3", 1)})
        view = self.inspect("k1")
        self.assertEqual(view["run"]["status"], "running")
        self.assertIsNotNone(view["run"]["runtimeOwnerId"], "the dead Gateway still owns it")

        # The next Gateway on the URL: the token is the database's, and the
        # run is recovered at start-up; a client streams it from seq 1.
        gw2 = self.start()
        w = self.ws(token)
        _, events, completed = self.stream(w, "k1")
        self.assert_streamed(events, completed, "k1")

        view = self.inspect("k1")
        self.assertEqual((view["run"]["status"], view["run"]["runtimeOwnerId"]),
                         ("finished", None))
        lines = task_log_lines(self.log)
        self.assertEqual(sorted({node for off, node, _, _ in lines if off >= log_len}),
                         ["t3", "t4", "t5", "t6"], "what ran after the kill")
        ran = [(node, attempt) for _, node, _, attempt in lines]
        self.assertEqual(len(ran), len(set(ran)), "an attempt ran its command twice")
        self.assertEqual(ran, [("t1", 1), ("t2", 1), ("t3", 1), ("t3", 2), ("t4", 1),
                               ("t5", 1), ("t6", 1)])
        self.assertEqual({t: o["pid"] for t, o in self.outputs("k1").items()},
                         {"t1": gw1.pid, "t2": gw1.pid, "t3": gw2.pid, "t4": gw2.pid,
                          "t5": gw2.pid, "t6": gw2.pid})
        attempts = self.node("k1", "t3")["attempts"]
        self.assertEqual([(a["attempt"], a["state"]) for a in attempts],
                         [(1, "cancelled"), (2, "finished")])
        self.assertEqual(attempts[0]["error"]["code"], "ATTEMPT_ABANDONED")
        types = [e["type"] for e in events]
        self.assertEqual(sorted(e["payload"]["nodeId"] for e in events
                                if e["type"] == "NodeFinished"), TASKS)
        self.assertEqual((types.count("RunStarted"), types.count("RunFinished")), (1, 1))
        self.assertIsNone(gw2.poll(), "the second Gateway is still serving")


class PostgresTwoGatewaysTest(PgGatewayTest):
    """Two Gateways on one URL and schema (one audit key, each in a folder of
    its own), as a team runs several on one database: a token revoked is
    refused by both at once, and an approval, a cancel or a stream sent to B
    acts on a run that A launched and executes. B ticks every 200 ms, A every
    15 s (the default)."""

    def setUp(self):
        super().setUp()
        os.mkdir(self.path("gw-a"))
        os.mkdir(self.path("gw-b"))
        self.a = self.start(cwd=self.path("gw-a"))
        self.b = self.start("--heartbeat-ms", "200", cwd=self.path("gw-b"))

    def on(self, gw):
        """Points the clients (rpc, ws, wait_run, launch) at Gateway `gw`."""
        self.port = gw.port
        return self

    def assert_both_serve(self):
        self.assertEqual((self.a.poll(), self.b.poll()), (None, None), "a Gateway exited")

    def test_a_token_revoked_is_refused_by_both_at_once(self):
        token = self.token("run:read", *self.k())
        token_id = hashlib.sha256(token.encode()).hexdigest()[:16]
        self.assertIn(token_id, [t["tokenId"] for t in
                                 self.run_cli("token", "list", "--json").json()["tokens"]])
        for gw in (self.a, self.b):
            code, r = self.on(gw).rpc("listRuns", {}, token)
            self.assertEqual(code, 200, r)
        wa = self.on(self.a).ws(token)
        wb = self.on(self.b).ws(token)
        # The Gateways have no RPC to revoke (docs/gateway.md): the CLI, on the URL.
        r = self.run_cli(*self.k("token", "revoke", token_id))
        self.assertEqual(r.code, 0, r)
        for gw in (self.b, self.a):
            code, r = self.on(gw).rpc("listRuns", {}, token)
            self.assertEqual((code, r["error"]["code"], r["error"].get("refresh")),
                             (401, "Unauthorized", "smithers token issue"), r)
        # A's open socket: its next request is refused; B's is closed at its next tick.
        res = wa.request("listRuns", {})
        self.assertFalse(res["ok"], res)
        self.assertEqual(res["error"]["code"], "Unauthorized", res)
        with self.assertRaises(Closed) as c:
            while True:
                wb.recv_json(timeout=5)
        self.assertEqual(c.exception.code, 1008)
        self.assert_both_serve()

    def test_an_approval_sent_to_the_other_gateway_finishes_the_run(self):
        launcher = self.token("run:read,run:write", *self.k())
        approver = self.token("approval:submit", "--user", "alice", *self.k())  # the owner
        self.on(self.a).launch(launcher, "ap1", "0.05", workflow="pgapproved")
        self.on(self.a).wait_run("ap1", launcher, status=("waiting-approval",), timeout=60)
        self.assertEqual([(n, pid, att) for _, n, pid, att in task_log_lines(self.log)],
                         [("t1", self.a.pid, 1)])
        code, r = self.on(self.b).rpc("submitApproval", {"runId": "ap1", "nodeId": "gate",
                                                         "approved": True, "note": "via b"},
                                      approver)
        self.assertEqual((code, r["payload"]["decidedBy"]), (200, "alice"), r)
        end = self.on(self.b).wait_run("ap1", launcher, timeout=60,
                                       status=("finished", "failed", "cancelled"))
        self.assertEqual(end["status"], "finished", end)
        # Each task ran once; t2 and t3 in the one Gateway that resumed the run.
        lines = task_log_lines(self.log)
        self.assertEqual([(n, att) for _, n, _, att in lines], [("t1", 1), ("t2", 1), ("t3", 1)])
        resumers = {pid for _, n, pid, _ in lines if n != "t1"}
        self.assertEqual(len(resumers), 1, lines)
        self.assertIn(resumers.pop(), (self.a.pid, self.b.pid))
        outputs = self.outputs("ap1")
        self.assertEqual({n: (o["node"], o["pid"], o["attempt"]) for n, o in outputs.items()
                          if n != "gate"}, {n: (n, pid, att) for _, n, pid, att in lines})
        self.assertEqual((outputs["gate"]["approved"], outputs["gate"]["decidedBy"]),
                         (True, "alice"))
        view = self.inspect("ap1")
        self.assertEqual((view["run"]["status"], view["run"]["runtimeOwnerId"]),
                         ("finished", None))
        events = self.assert_gapless_events("ap1")
        types = [e["type"] for e in events]
        self.assertEqual([types.count(t) for t in ("RunStarted", "ApprovalGranted",
                                                   "RunFinished")], [1, 1, 1])
        self.assertEqual(sorted(e["payload"]["nodeId"] for e in events
                                if e["type"] == "NodeFinished"), ["gate", "t1", "t2", "t3"])
        self.assert_both_serve()

    def test_a_cancel_sent_to_the_other_gateway_stops_the_run(self):
        token = self.token("run:read,run:write", *self.k())
        self.on(self.a).launch(token, "c1", "600")  # t1 sleeps 600 s
        self.wait_for_task(self.a, "t1")
        # The task's processes: A's child running TASK_SH, and its sleep.
        [task] = [pid for pid in children(self.a.pid) if self.script in proc_file(pid, "cmdline")]
        sleep = self.wait_for(lambda: children(task), timeout=30, what="the task's sleep")
        procs = [task] + sleep
        for pid in procs:  # should the test fail: no sleep outlives it
            self.addCleanup(lambda pid=pid: "600" in proc_file(pid, "cmdline")
                            and kill_quietly(pid))
        code, r = self.on(self.b).rpc("cancelRun", {"runId": "c1"}, token)
        # "cancelling": A holds the run, so B asks and A stops it.
        self.assertEqual((code, r["payload"]), (200, {"runId": "c1", "status": "cancelling",
                                                      "runStatus": "cancelling"}), r)
        self.on(self.b).wait_run("c1", token, status=("cancelled",), timeout=30)
        self.wait_for(lambda: not any(pid_alive(pid) for pid in procs), timeout=10,
                      what="the task's processes to be gone")
        view = self.inspect("c1")
        self.assertEqual((view["run"]["status"], view["run"]["runtimeOwnerId"]),
                         ("cancelled", None))
        self.assertEqual([a["state"] for a in self.node("c1", "t1")["attempts"]], ["cancelled"])
        self.assertEqual([n for _, n, _, _ in task_log_lines(self.log)], ["t1"])
        types = [e["type"] for e in self.assert_gapless_events("c1")]
        self.assertEqual((types.count("RunCancelled"), types[-1]), (1, "RunCancelled"))
        self.assert_both_serve()

    def test_a_client_of_one_gateway_streams_a_run_of_the_other(self):
        token = self.token("run:read,run:write", *self.k())
        self.on(self.a).launch(token, "s1", "0.3")
        self.wait_for_task(self.a, "t1")
        w = self.on(self.b).ws(token)
        info, events, completed = self.stream(w, "s1")
        self.assertEqual({e["streamId"] for e in events}, {info["streamId"]})
        self.assertLess(info["currentSeq"], completed["lastSeq"], "the rest of it came live")
        self.assert_streamed(events, completed, "s1")
        # Payloads too: the run's end carries Smithers' {runId, status} besides ours.
        stored = [(e["seq"], e["type"], e["payload"]) for e in self.events("s1")]
        stored[-1][2].update(runId="s1", status="finished")
        self.assertEqual([(e["seq"], e["type"], e["payload"]) for e in events], stored)
        # It ran in A, each task once.
        self.assertEqual([(n, pid, att) for _, n, pid, att in task_log_lines(self.log)],
                         [(t, self.a.pid, 1) for t in TASKS])
        self.assert_both_serve()


class PostgresSqliteOnlyTest(PgTest):
    """`db backup` and `db restore` copy a SQLite file: on a server URL they
    refuse (exit 4), write nothing and say what to use instead."""

    def sqlite_backup(self):
        """A backup of a SQLite database with one run; returns its path."""
        db = self.path("s.db")
        r = self.run_cli("up", self.write("hello.lua", HELLO), "--run-id", "sq1", db=db)
        self.assertEqual(r.code, 0, r)
        backup = self.path("s-backup.db")
        r = self.run_cli("db", "backup", backup, db=db)
        self.assertEqual(r.code, 0, r)
        return backup

    def assert_refused(self, r, what):
        self.assertEqual(r.code, 4, r)
        self.assertIn("db %s copies a SQLite database file" % what, r.stderr)
        self.assertIn("pg_dump", r.stderr)

    def test_backup_and_restore_refuse(self):
        self.up_ok(self.write("hello.lua", HELLO), None, "p1", *self.k())
        backup = self.path("pg-backup.db")
        r = self.run_cli(*self.k("db", "backup", backup))
        self.assert_refused(r, "backup")
        self.assertFalse(os.path.exists(backup))

        sqlite_backup = self.sqlite_backup()
        r = self.run_cli(*self.k("db", "restore", sqlite_backup))
        self.assert_refused(r, "restore")
        self.assertEqual(self.statuses(), {"p1": "finished"}, "nothing was restored")

        r = self.run_cli(*self.k("db", "history", "--json"))
        self.assertEqual(r.code, 0, r)
        self.assertNotIn("sq1", r.stdout)

    def test_a_drill_refuses(self):
        # docs/postgres.md "Backups": db backup, restore and drill refuse on
        # a PostgreSQL URL. A drill of some SQLite file recorded in the
        # server's history would tell `doctor` a backup of it was proven.
        r = self.run_cli(*self.k("db", "restore", "--drill", self.sqlite_backup()))
        self.assertEqual(r.code, 4, r)



class PostgresCopyTest(PgTest):
    """`db copy` moves a deployment: a SQLite file to PostgreSQL and back,
    verified table by table; a run waiting on an approval continues on the
    new backend, and the audit log verifies there under the same key."""

    def export(self, db):
        r = self.run_cli("inspect", "g1", "--json", db=db)
        self.assertEqual(r.code, 0, r)
        return r.json()

    def test_sqlite_to_postgres_and_back(self):
        sqlite_db = self.path("s.db")
        wf = self.write("gate.lua", GATE)
        self.assertEqual(self.run_cli("up", wf, "--run-id", "g1", db=sqlite_db).code, 3)
        self.assertEqual(self.run_cli("up", self.write("hello.lua", HELLO), "--run-id", "h1",
                                      db=sqlite_db).code, 0)
        # The SQLite log's key (the file beside it) is the key on the server too.
        key = ["--audit-key", "file:" + sqlite_db + ".audit-key"]
        before = self.export(sqlite_db)

        r = self.run_cli("db", "copy", "--from", sqlite_db, "--to", self.db, "--json", *key,
                         db=False)
        self.assertEqual(r.code, 0, r)
        doc = r.json()
        self.assertTrue(doc["verified"], doc)
        rows = {t["table"]: t["rows"] for t in doc["tables"]}
        self.assertEqual(rows["_smithers_runs"], 2)
        self.assertEqual(rows["_smithers_approvals"], 1)
        self.assertGreater(rows["_smithers_events"], 5)
        count, = self.psql("SELECT COUNT(*) FROM _smithers_events")[0]
        self.assertEqual(int(count), rows["_smithers_events"])
        self.assertEqual(self.export(self.db), before)  # inspect reads the same run

        # The waiting run continues on PostgreSQL.
        r = self.run_cli("approve", "g1", "--node", "gate", "--by", "alice", *key)
        self.assertEqual(r.code, 0, r)
        r = self.up(wf, None, "g1", "--resume", *key)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["status"], "finished")
        self.assert_gapless_events("g1")
        r = self.run_cli("audit", "verify", *key)
        self.assertEqual(r.code, 0, r)
        r = self.run_cli("audit", "--json")
        self.assertIn("db.copy", [row["action"] for row in r.json()["rows"]])

        # And back into a new SQLite file: every row of the server's.
        back = self.path("back.db")
        r = self.run_cli("db", "copy", "--from", self.db, "--to", back, "--json", *key, db=False)
        self.assertEqual(r.code, 0, r)
        self.assertTrue(r.json()["verified"])
        self.assertEqual(self.export(back), self.export(self.db))
        r = self.run_cli("audit", "verify", *key, db=back)
        self.assertEqual(r.code, 0, r)

    def test_a_destination_with_rows_is_refused(self):
        self.up_ok(self.write("hello.lua", HELLO), None, "p1", *self.k())
        sqlite_db = self.path("s.db")
        self.assertEqual(self.run_cli("up", self.write("h.lua", HELLO), "--run-id", "s1",
                                      db=sqlite_db).code, 0)
        r = self.run_cli("db", "copy", "--from", sqlite_db, "--to", self.db, *self.k(), db=False)
        self.assertEqual(r.code, 4, r)
        self.assertIn("not empty", r.stderr)
        self.assertEqual(self.statuses(), {"p1": "finished"}, "nothing was copied in")

if __name__ == "__main__":
    main()
