#!/usr/bin/env python3
"""Whole-run deletion and retention (docs/operations.md "Deleting runs"):
`smithers runs delete` removes a run with every row that depends on it and the
Sandbox bundles its attempts left on disk, leaves every other run as it was,
refuses a run that is not over unless forced; `smithers runs prune` deletes by
age, and its dry run deletes nothing."""

import glob
import json
import os
import sqlite3

from smithers_e2e import E2ETest, main

HELLO = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  local a = ctx:outputMaybe(outputs.v, "a")
  return Workflow { name = "hello",
    Task { id = "a", output = outputs.v, { n = ctx.input.n } },
    a and Task { id = "b", output = outputs.v, function() return { n = a.n + 1 } end } or nil }
end, { input = z.object { n = z.integer() } })
"""

FAILS = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "fails",
    Task { id = "boom", output = outputs.v, function() error("no") end } }
end)
"""

WAITS = """
local outputs = smithers.outputs { d = z.object { approved = z.boolean() } }
return smithers(function(ctx)
  return Workflow { name = "waits",
    smithers.Approval { id = "gate", output = outputs.d, owner = "ops",
                        request = { title = "Go?" } } }
end)
"""

SLOW = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "slow",
    Task { id = "nap", output = outputs.v, command = { "sh", "-c", "touch started; sleep 60" } } }
end)
"""

SANDBOXED = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "sandboxed",
    smithers.Sandbox { id = "box", output = outputs.v, workflow = "child.lua",
      rootDir = ctx.input.ws, files = { "src" }, autoAcceptDiffs = true } }
end, { input = z.object { ws = z.string() } })
"""

CHILD = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "child",
    Task { id = "edit", output = outputs.v,
      command = { "sh", "-c", "echo new > src/b.txt; echo '{\\"n\\":7}'" } } }
end)
"""

# Every table that holds a run's rows, with the column that names the run.
RUN_TABLES = ["_smithers_nodes", "_smithers_attempts", "_smithers_frames", "_smithers_events",
              "_smithers_approvals", "_smithers_signals", "_smithers_outputs"]


class RunsDeleteTest(E2ETest):
    def rows_of(self, run_id):
        """How many rows each table holds for run_id (tables with a run_id
        column, found from the schema so that a new table is not missed;
        not the audit log, whose rows outlive the run by design)."""
        conn = self.connect()
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'") if r[0] != "_smithers_audit"]
        counts = {}
        for t in tables:
            cols = [c[1] for c in conn.execute("PRAGMA table_info(%s)" % t)]
            if "run_id" in cols:
                n = conn.execute("SELECT COUNT(*) FROM %s WHERE run_id = ?" % t,
                                 (run_id,)).fetchone()[0]
                if n:
                    counts[t] = n
        return counts

    def assert_consistent(self):
        conn = sqlite3.connect(self.db)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA foreign_key_check").fetchall(), [])
        self.assertEqual(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok")

    def make(self, name, text):
        return self.write(name, text)

    def test_deletes_a_run_with_every_row_and_leaves_the_others(self):
        hello = self.make("hello.lua", HELLO)
        fails = self.make("fails.lua", FAILS)
        self.up_ok(hello, {"n": 1}, "keep")
        self.up_ok(hello, {"n": 2}, "gone")
        self.assertEqual(self.up(fails, None, "broken").code, 1)
        keep_before = self.rows_of("keep")
        self.assertIn("_smithers_events", self.rows_of("gone"))
        self.assertIn("_smithers_attempts", self.rows_of("gone"))

        r = self.run_cli("runs", "delete", "gone", "broken", "--json")
        self.assertEqual(r.code, 0, r)
        deleted = r.json()["deleted"]
        self.assertEqual([(d["runId"], d["status"]) for d in deleted],
                         [("gone", "finished"), ("broken", "failed")])
        self.assertEqual(self.rows_of("gone"), {})
        self.assertEqual(self.rows_of("broken"), {})
        self.assertEqual(self.rows_of("keep"), keep_before)
        self.assert_consistent()
        # Each leaves a tombstone in its audit chain, after its launch.
        for run_id in ("gone", "broken"):
            self.assertEqual(
                [r["action"] for r in self.query(
                    "SELECT action FROM _smithers_audit WHERE run_id = ? ORDER BY seq", run_id)],
                ["run.launch", "run.delete"])
        # Gone for every command, and the kept run still reads whole.
        self.assertEqual(self.run_cli("inspect", "gone").code, 4)
        self.assertEqual(self.inspect("keep")["run"]["status"], "finished")
        again = self.run_cli("runs", "delete", "gone")
        self.assertEqual(again.code, 4, again)
        self.assertIn("no run gone", again.stderr)
        # The deleted run's id may be used again: the new run starts from scratch.
        out = self.up_ok(hello, {"n": 5}, "gone")
        self.assertEqual(out["outputs"]["v"]["b"]["n"], 6, out)

    def test_a_run_that_is_not_over_is_refused_unless_forced(self):
        waits = self.make("waits.lua", WAITS)
        self.assertEqual(self.up(waits, None, "w").code, 3)
        r = self.run_cli("runs", "delete", "w")
        self.assertEqual(r.code, 4, r)
        self.assertIn("waiting-approval", r.stderr)
        self.assertIn("_smithers_approvals", self.rows_of("w"))
        forced = self.run_cli("runs", "delete", "w", "--force", "--json")
        self.assertEqual(forced.code, 0, forced)
        self.assertEqual(forced.json()["deleted"][0]["status"], "cancelled")
        self.assertEqual(self.rows_of("w"), {})
        self.assert_consistent()

    def test_forcing_a_run_a_live_process_runs_stops_it_then_deletes_it(self):
        slow = self.make("slow.lua", SLOW)
        p = self.start_up(slow, None, "live")
        self.wait_for(lambda: os.path.exists(self.path("started")), timeout=20,
                      what="the task to start")
        refused = self.run_cli("runs", "delete", "live")
        self.assertEqual(refused.code, 4, refused)
        r = self.run_cli("runs", "delete", "live", "--force", "--wait", "20s", timeout=40)
        self.assertEqual(r.code, 0, r)
        self.assertIn("deleted run live (cancelled", r.stdout)
        p.communicate(timeout=20)
        self.assertEqual(self.rows_of("live"), {})
        self.assert_consistent()

    def test_the_run_s_sandbox_bundles_go_with_it(self):
        ws = self.path("ws")
        os.makedirs(os.path.join(ws, "src"))
        with open(os.path.join(ws, "src", "a.txt"), "w") as f:
            f.write("a\n")
        self.make("child.lua", CHILD)
        parent = self.make("sandboxed.lua", SANDBOXED)
        for run_id in ("s1", "s2"):
            r = self.up(parent, {"ws": ws}, run_id)
            self.assertEqual(r.code, 0, r)
        bundles = os.path.join(ws, ".smithers", "sandboxes")
        self.assertEqual(sorted(os.listdir(bundles)), ["s1", "s2"])
        self.assertTrue(glob.glob(os.path.join(bundles, "s1", "box.0", "1", "result")))
        r = self.run_cli("runs", "delete", "s1", "--json")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["deleted"][0]["bundleDirs"], [os.path.join(bundles, "s1")])
        self.assertEqual(os.listdir(bundles), ["s2"])
        # A bundle folder swapped for a link is not followed: the rows go, the
        # link's target stays, and the delete says why it left the link.
        target = self.path("elsewhere")
        os.makedirs(target)
        with open(os.path.join(target, "keep.txt"), "w") as f:
            f.write("x")
        os.rename(os.path.join(bundles, "s2"), self.path("s2-moved"))
        os.symlink(target, os.path.join(bundles, "s2"))
        r = self.run_cli("runs", "delete", "s2")
        self.assertEqual(r.code, 0, r)
        self.assertIn("left in place", r.stderr)
        self.assertTrue(os.path.exists(os.path.join(target, "keep.txt")))
        self.assertEqual(self.rows_of("s2"), {})

    def test_prune_deletes_by_age_and_a_dry_run_deletes_nothing(self):
        hello = self.make("hello.lua", HELLO)
        waits = self.make("waits.lua", WAITS)
        fails = self.make("fails.lua", FAILS)
        day = 24 * 3600 * 1000
        # Runs "ended" 40 and 10 days ago (the clock shifted back), and today.
        self.run_cli("up", hello, "--input", '{"n":1}', "-r", "old",
                     env={"SMITHERS_CLOCK_OFFSET_MS": str(-40 * day)})
        self.run_cli("up", fails, "-r", "oldfail",
                     env={"SMITHERS_CLOCK_OFFSET_MS": str(-40 * day)})
        self.run_cli("up", waits, "-r", "oldwait",
                     env={"SMITHERS_CLOCK_OFFSET_MS": str(-40 * day)})
        self.run_cli("up", hello, "--input", '{"n":1}', "-r", "mid",
                     env={"SMITHERS_CLOCK_OFFSET_MS": str(-10 * day)})
        self.up_ok(hello, {"n": 1}, "new")
        statuses = {r["run_id"]: r["status"] for r in
                    self.query("SELECT run_id, status FROM _smithers_runs")}
        self.assertEqual(statuses, {"old": "finished", "oldfail": "failed",
                                    "oldwait": "waiting-approval", "mid": "finished",
                                    "new": "finished"})

        dry = self.run_cli("runs", "prune", "--older-than", "30d", "--dry-run", "--json")
        self.assertEqual(dry.code, 0, dry)
        self.assertEqual(sorted(d["runId"] for d in dry.json()["wouldDelete"]),
                         ["old", "oldfail"])
        self.assertEqual(len(self.query("SELECT run_id FROM _smithers_runs")), 5)

        only_failed = self.run_cli("runs", "prune", "--older-than", "30d", "--status", "failed")
        self.assertEqual(only_failed.code, 0, only_failed)
        self.assertIn("deleted run oldfail", only_failed.stdout)
        r = self.run_cli("runs", "prune", "--older-than", "7d", "--json")
        self.assertEqual(r.code, 0, r)
        self.assertEqual([d["runId"] for d in r.json()["deleted"]], ["old", "mid"])
        # A waiting run is never pruned, however old; today's run stays.
        left = sorted(r["run_id"] for r in self.query("SELECT run_id FROM _smithers_runs"))
        self.assertEqual(left, ["new", "oldwait"])
        self.assert_consistent()

        for bad in (["--older-than", "soon"], ["--older-than", "1d", "--status", "waiting"],
                    ["--older-than", "1d", "--status", "finished,bogus"]):
            b = self.run_cli("runs", "prune", *bad)
            self.assertEqual(b.code, 4, b)
        self.assertEqual(len(self.query("SELECT run_id FROM _smithers_runs")), 2)


if __name__ == "__main__":
    main()
