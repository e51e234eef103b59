#!/usr/bin/env python3
"""Black-box crash loop: SIGKILL the real `smithers up` at random moments.

docs/engine.md "Durability" promises that a task whose output row is committed is
never executed again, whatever crashes. This suite checks it from outside:

- a workflow module of `command` tasks (a Sequence of 5, a Parallel of 6 with
  maxConcurrency 3, a Loop of 4 iterations with 2 tasks each); every command
  first appends "<nodeId> <iteration> <smithers pid> <attempt>" to a log file
  kept outside the database, sleeps 10-80 ms, then prints its output as JSON;
- `smithers up --run-id X` is SIGKILLed at random moments (seeded; the seed is
  printed on failure, rerun with CRASH_SEED=<seed>); after each kill the test
  reads the database read-only (committed outputs, attempts in progress) and
  the log's length; then it resumes with `up --run-id X --resume` (or starts
  again with plain `up` if the kill came before the run's first commit);
- when the run finishes: every task has exactly one output; no task committed
  before a kill appears in the log after that kill (it never ran again); no
  attempt ran twice; `events --json` seqs are 1..N; every attempt in
  progress at a kill ends cancelled with ATTEMPT_ABANDONED and a later
  attempt of the same task finished.

Environment: SMITHERS_BIN (the binary; default build/smithers under
SMITHERS_SOURCE_DIR or the repo root), CRASH_SEED (optional).
"""

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SMITHERS_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN = os.path.abspath(os.environ.get("SMITHERS_BIN") or
                      os.path.join(SOURCE_DIR, "build", "smithers"))

# The command every task runs. $PPID is the smithers process that started it
# (the executor execs `sh` directly), so a log line says which `up` ran it.
TASK_SH = r"""#!/bin/sh
echo "$SMITHERS_NODE_ID $SMITHERS_ITERATION $PPID $SMITHERS_ATTEMPT" >> "$CRASH_LOG"
sleep "$1"
printf '{"node":"%s","iteration":%s,"pid":%s,"attempt":%s}\n' \
  "$SMITHERS_NODE_ID" "$SMITHERS_ITERATION" "$PPID" "$SMITHERS_ATTEMPT"
"""

# Each task sleeps 10-80 ms, a deterministic function of its id, iteration and
# the run's seed (so the argv, and hence the frames, do not change per render).
WORKFLOW_LUA = r"""
local smithers = require("smithers")
local Workflow, Sequence, Parallel, Loop, Task =
  smithers.Workflow, smithers.Sequence, smithers.Parallel, smithers.Loop, smithers.Task
local z = smithers.schema

local outputs = smithers.outputs {
  step = z.object { node = z.string(), iteration = z.integer(),
                    pid = z.integer(), attempt = z.integer() },
}

return smithers(function(ctx)
  local function cmd(id, iteration)
    local h = 0
    for c in (id .. ":" .. iteration .. ":" .. ctx.input.seed):gmatch(".") do
      h = (h * 31 + c:byte()) % 1000003
    end
    return Task { id = id, output = outputs.step,
      command = { "sh", ctx.input.script, string.format("0.%03d", 10 + h % 71) },
      env = { CRASH_LOG = ctx.input.log } }
  end
  local seq, par = {}, { maxConcurrency = 3 }
  for i = 1, 5 do seq[#seq + 1] = cmd("s" .. i, 0) end
  for i = 1, 6 do par[#par + 1] = cmd("p" .. i, 0) end
  return Workflow { name = "crash",
    Sequence(seq),
    Parallel(par),
    Loop { id = "loop", maxIterations = 4,
      cmd("l1", ctx.iteration), cmd("l2", ctx.iteration) },
  }
end)
"""

EXPECTED = ({("s%d" % i, 0) for i in range(1, 6)} |
            {("p%d" % i, 0) for i in range(1, 7)} |
            {(n, it) for it in range(4) for n in ("l1", "l2")})


class Kill:
    """What the database and the log held right after one SIGKILL."""

    def __init__(self, pid, resumed, after_s, run_exists, committed, in_progress, log_len):
        self.pid = pid
        self.resumed = resumed            # the killed `up` had --resume
        self.after_s = after_s
        self.run_exists = run_exists
        self.committed = committed        # {(node, iteration)}
        self.in_progress = in_progress    # {(node, iteration, attempt)}
        self.log_len = log_len            # bytes

    def __repr__(self):
        return ("kill(%s pid %d after %.0f ms: %d outputs, in progress %s, log %d bytes)" %
                ("resume" if self.resumed else "up", self.pid, self.after_s * 1000,
                 len(self.committed), sorted(self.in_progress), self.log_len))


class CrashLoop:
    """One run driven through kills and resumes until it finishes."""

    def __init__(self, test, workdir, run_id, rng):
        self.test = test
        self.dir = workdir
        self.run_id = run_id
        self.rng = rng
        self.db = os.path.join(workdir, "smithers.db")
        self.log = os.path.join(workdir, run_id + ".log")
        self.script = os.path.join(workdir, "task.sh")
        self.module = os.path.join(workdir, "crash.lua")
        self.input = {"seed": rng.randrange(1 << 30), "script": self.script, "log": self.log}
        self.kills = []
        self.invocations = 0

    # ---- the database, read-only ----

    def _query(self, sql, args=()):
        # A SIGKILLed writer leaves a hot WAL, which even a mode=ro connection
        # must recover (it writes the -shm index), and closing the last
        # connection would checkpoint it. Reading a copy leaves the files
        # exactly as the kill left them, for the next `up` to recover.
        if not os.path.exists(self.db):
            return []
        snap = os.path.join(self.dir, "snapshot.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(snap + suffix):
                os.remove(snap + suffix)
            if os.path.exists(self.db + suffix):
                shutil.copyfile(self.db + suffix, snap + suffix)
        con = sqlite3.connect(snap, timeout=10)
        try:
            con.execute("PRAGMA query_only = ON")
            return con.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # killed before the first migration
                return []
            raise
        finally:
            con.close()

    def run_exists(self):
        return bool(self._query("SELECT 1 FROM _smithers_runs WHERE run_id = ?", (self.run_id,)))

    def outputs(self):
        return self._query("SELECT node_id, iteration, payload_json FROM _smithers_outputs "
                           "WHERE run_id = ?", (self.run_id,))

    def attempts(self):
        return self._query("SELECT node_id, iteration, attempt, state, error_json "
                           "FROM _smithers_attempts WHERE run_id = ?", (self.run_id,))

    def log_len(self):
        return os.path.getsize(self.log) if os.path.exists(self.log) else 0

    # ---- driving the binary ----

    def _up(self):
        # FULL, explicitly: durability across kills is what this suite tests
        # (the other suites run with NORMAL).
        args = [BIN, "--db", self.db, "--synchronous", "FULL", "up", self.module, "--run-id",
                self.run_id]
        if self.run_exists():
            args.append("--resume")
        else:
            args += ["--input", json.dumps(self.input)]
        self.invocations += 1
        self.resumed = "--resume" in args
        out = open(os.path.join(self.dir, "%s.up%d.out" % (self.run_id, self.invocations)), "wb")
        err = open(os.path.join(self.dir, "%s.up%d.err" % (self.run_id, self.invocations)), "wb")
        with out, err:
            return subprocess.Popen(args, stdout=out, stderr=err, cwd=self.dir)

    def _stderr(self, n):
        with open(os.path.join(self.dir, "%s.up%d.err" % (self.run_id, n)), "rb") as f:
            return f.read().decode(errors="replace")[-2000:]

    def step(self, delay_s):
        """Starts `up` and SIGKILLs it after `delay_s`. True when the run finished."""
        proc = self._up()
        try:
            rc = proc.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()  # reaped: the dead owner's pid no longer exists
            self.kills.append(Kill(
                pid=proc.pid, resumed=self.resumed, after_s=delay_s, run_exists=self.run_exists(),
                committed={(n, i) for n, i, _ in self.outputs()},
                in_progress={(n, i, a) for n, i, a, s, _ in self.attempts()
                             if s == "in-progress"},
                log_len=self.log_len()))
            return False
        self.test.assertEqual(rc, 0, "up #%d exited %d before it was killed:\n%s" %
                              (self.invocations, rc, self._stderr(self.invocations)))
        return True

    def finish(self):
        """Runs `up` without killing it; it must finish the run."""
        proc = self._up()
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.test.fail("the final up did not finish in 30 s")
        self.test.assertEqual(rc, 0, "the final up exited %d:\n%s" %
                              (rc, self._stderr(self.invocations)))

    # ---- invariants ----

    def check(self):
        t = self.test
        status = self._query("SELECT status, runtime_owner_id FROM _smithers_runs "
                             "WHERE run_id = ?", (self.run_id,))
        t.assertEqual(status, [("finished", None)], "the run row after the last up")

        # Committed outputs only grow from kill to kill.
        for a, b in zip(self.kills, self.kills[1:]):
            t.assertTrue(a.committed <= b.committed,
                         "outputs disappeared between %r and %r" % (a, b))

        # Every task's output exists exactly once.
        rows = self.outputs()
        keys = [(n, i) for n, i, _ in rows]
        t.assertEqual(len(keys), len(set(keys)), "duplicate output rows")
        t.assertEqual(set(keys), EXPECTED, "the outputs of the finished run")

        # The log: one line per attempt that got as far as running its command.
        with open(self.log) as f:
            text = f.read()
        lines = []
        offset = 0
        for raw in text.splitlines(keepends=True):
            node, it, pid, attempt = raw.split()
            lines.append((offset, node, int(it), int(pid), int(attempt)))
            offset += len(raw.encode())
        ran = [(n, i, a) for _, n, i, _, a in lines]
        t.assertEqual(len(ran), len(set(ran)), "an attempt ran its command twice: %s" %
                      sorted(x for x in ran if ran.count(x) > 1))
        attempts = {(n, i, a): (s, json.loads(e) if e else None)
                    for n, i, a, s, e in self.attempts()}
        for key in ran:
            t.assertIn(key, attempts, "a command ran for an attempt the database never recorded")

        # Each output is the one its attempt printed, and that attempt's line is logged.
        for n, i, payload in rows:
            p = json.loads(payload)
            t.assertEqual((p["node"], p["iteration"]), (n, i))
            t.assertIn((n, i, p["pid"], p["attempt"]),
                       {(x[1], x[2], x[3], x[4]) for x in lines},
                       "output of %s[%d] was not produced by a logged attempt" % (n, i))
            t.assertEqual(attempts[(n, i, p["attempt"])][0], "finished")

        # A task committed before a kill never ran again after it.
        for k in self.kills:
            again = sorted({(n, i) for off, n, i, _, _ in lines
                            if off >= k.log_len and (n, i) in k.committed})
            t.assertEqual(again, [], "tasks committed before %r ran again" % k)

        # Attempts: the last one of each task finished; every earlier one was
        # abandoned by a kill (nothing in this workflow fails).
        by_task = {}
        for (n, i, a), (s, e) in attempts.items():
            by_task.setdefault((n, i), []).append((a, s, e))
        t.assertEqual(set(by_task), EXPECTED)
        for key, lst in by_task.items():
            lst.sort()
            t.assertEqual([a for a, _, _ in lst], list(range(1, len(lst) + 1)), key)
            t.assertEqual(lst[-1][1], "finished", "last attempt of %s" % (key,))
            for a, s, e in lst[:-1]:
                t.assertEqual((s, (e or {}).get("code")), ("cancelled", "ATTEMPT_ABANDONED"),
                              "attempt %d of %s" % (a, key))
        for k in self.kills:
            for n, i, a in k.in_progress:
                s, e = attempts[(n, i, a)]
                t.assertEqual((s, (e or {}).get("code")), ("cancelled", "ATTEMPT_ABANDONED"),
                              "attempt %d of %s[%d], in progress at %r" % (a, n, i, k))
                t.assertTrue(any(b > a and st == "finished" for b, st, _ in by_task[(n, i)]),
                             "no later attempt of %s[%d] finished" % (n, i))

        # Events: seqs 0..N-1, and one NodeFinished per output.
        out = subprocess.run([BIN, "--db", self.db, "events", self.run_id, "--json"],
                             capture_output=True, timeout=30)
        t.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace"))
        events = json.loads(out.stdout)["events"]
        seqs = [e["seq"] for e in events]
        t.assertEqual(seqs, list(range(1, len(seqs) + 1)), "event seqs are not 1..N")
        finished = sorted((e["payload"]["nodeId"], e["payload"]["iteration"])
                          for e in events if e["type"] == "NodeFinished")
        t.assertEqual(finished, sorted(EXPECTED), "NodeFinished events")
        t.assertEqual([e["type"] for e in events].count("RunFinished"), 1)
        t.assertEqual([e["type"] for e in events].count("RunStarted"), 1)


class CrashTest(unittest.TestCase):
    def setUp(self):
        if not os.access(BIN, os.X_OK):
            self.skipTest("no smithers binary at %s (set SMITHERS_BIN)" % BIN)
        self.tmp = tempfile.TemporaryDirectory(prefix="smithers-crash-")
        self.dir = self.tmp.name
        with open(os.path.join(self.dir, "task.sh"), "w") as f:
            f.write(TASK_SH)
        with open(os.path.join(self.dir, "crash.lua"), "w") as f:
            f.write(WORKFLOW_LUA)
        env_seed = os.environ.get("CRASH_SEED")
        self.seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1 << 32)
        self.rng = random.Random(self.seed)

    def tearDown(self):
        if os.environ.get("CRASH_KEEP"):
            print("kept", self.dir, file=sys.stderr)
        else:
            self.tmp.cleanup()

    def _with_seed(self, body):
        """Runs `body`, adding the seed to any failure."""
        try:
            body()
        except BaseException as e:
            msg = "%s\n[crash_test seed %d; rerun with CRASH_SEED=%d, CRASH_KEEP=1 keeps %s]" % (
                e, self.seed, self.seed, self.dir)
            raise type(e)(msg) if isinstance(e, AssertionError) else AssertionError(msg) from e

    def test_random_kills(self):
        """At least 24 SIGKILLs at random moments, over as many runs as it takes."""
        def body():
            deadline = time.monotonic() + 40
            total = 0
            n = 0
            while total < 24:
                n += 1
                loop = CrashLoop(self, self.dir, "crash-%d" % n, self.rng)
                finished = False
                while not finished and time.monotonic() < deadline:
                    finished = loop.step(self.rng.uniform(0.005, 0.25))
                if not finished:
                    loop.finish()
                loop.check()
                total += len(loop.kills)
            print("\n  %d kills over %d runs (seed %d)" % (total, n, self.seed), file=sys.stderr)
        self._with_seed(body)

    def test_kills_during_start_up(self):
        """Kills in the first moments of an `up`: before, at and just after its first commit.

        For each of 3 runs: kills a fresh `up` 0-20 ms after it started until
        one gets as far as committing the run (the window widens by 5 ms after
        every 3 kills that were all too early, for slow machines), then kills 4
        resumes in the same window, then lets the run finish.
        """
        def body():
            window = 0.02
            counts = {"fresh, nothing committed": 0, "fresh, run committed": 0,
                      "resume": 0}
            for n in range(1, 4):
                loop = CrashLoop(self, self.dir, "early-%d" % n, self.rng)
                too_early = 0
                while not loop.run_exists():
                    self.assertLess(window, 1.0, "no up ever committed its run")
                    if loop.step(self.rng.uniform(0.0, window)):
                        break
                    if loop.run_exists():
                        counts["fresh, run committed"] += 1
                    else:
                        counts["fresh, nothing committed"] += 1
                        too_early += 1
                        if too_early % 3 == 0:
                            window += 0.005
                resumes = 0
                finished = False
                while resumes < 4 and not finished:
                    finished = loop.step(self.rng.uniform(0.0, window))
                    resumes += 0 if finished else 1
                counts["resume"] += resumes
                if not finished:
                    loop.finish()
                loop.check()
            print("\n  early kills: %s; window %.0f ms (seed %d)" %
                  (counts, window * 1000, self.seed), file=sys.stderr)
        self._with_seed(body)

if __name__ == "__main__":
    unittest.main(verbosity=2)
