#!/usr/bin/env python3
"""Backups that are proven (docs/operations.md "Backups"): `smithers db
backup` copies the database while a run commits every few milliseconds and
the copy holds everything committed before it began, restores, and resumes;
`db restore` refuses a database another process has open, a damaged backup
and one from a newer schema; `db restore --drill` loads and renders a backup
in a scratch folder and records the drill in `db history`."""

import os
import signal
import sqlite3
import stat

import subprocess

from smithers_e2e import BIN, E2ETest, main

# A growing chain: task i is mounted once task i-1's output exists and reads it.
CHAIN = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  local kids, prev = {}, { n = 0 }
  for i = 1, ctx.input.n do
    local o = prev
    kids[#kids + 1] = Task { id = "t" .. i, output = outputs.v,
                             function() return { n = o.n + 1 } end }
    prev = ctx:outputMaybe(outputs.v, "t" .. i)
    if not prev then break end
  end
  return Workflow { name = "chain", Sequence(kids) }
end, { input = z.object { n = z.integer() } })
"""

WAITS = """
local outputs = smithers.outputs { d = z.object { approved = z.boolean() } }
return smithers(function(ctx)
  return Workflow { name = "waits",
    smithers.Approval { id = "gate", output = outputs.d, owner = "ops",
                        request = { title = "Go?" } } }
end)
"""


class DbBackupTest(E2ETest):
    def outputs_of(self, db, run_id):
        conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
        try:
            return {r[0]: r[1] for r in conn.execute(
                "SELECT node_id, payload_json FROM _smithers_outputs WHERE run_id = ?",
                (run_id,))}
        finally:
            conn.close()

    def run_ids(self):
        """The runs in the test's database, read on a connection closed at
        once (an open one would rightly make a restore refuse)."""
        conn = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=10)
        try:
            return sorted(r[0] for r in conn.execute("SELECT run_id FROM _smithers_runs"))
        finally:
            conn.close()

    def test_a_backup_under_load_holds_every_earlier_commit_and_resumes(self):
        chain = self.write("chain.lua", CHAIN)
        n = 1000
        p = self.start_up(chain, {"n": n}, "load")
        self.wait_for(lambda: len(self.outputs_of(self.db, "load")) >= 100, timeout=60,
                      what="100 committed outputs")
        before = self.outputs_of(self.db, "load")
        backup = self.path("backup.db")
        r = self.run_cli("db", "backup", backup, "--json", timeout=60)
        self.assertEqual(r.code, 0, r)
        self.assertIsNone(p.poll(), "the run must still be going after the backup")
        self.assertIn("pages (100%)", r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(backup).st_mode), 0o600)
        self.assertFalse([f for f in os.listdir(self.dir) if ".partial-" in f])
        self.assertFalse(os.path.exists(backup + "-wal"))
        copied = self.outputs_of(backup, "load")
        # Everything committed before the backup began is in it, unchanged;
        # the run went on meanwhile and the copy is one consistent moment.
        for node, payload in before.items():
            self.assertEqual(copied.get(node), payload, node)
        self.assertLess(len(copied), n)
        self.assertEqual(sorted(int(k[1:]) for k in copied), list(range(1, len(copied) + 1)))
        os.kill(p.pid, signal.SIGKILL)
        p.communicate()

        # Restored elsewhere, the copy resumes and finishes, once given the
        # key its audit log was written with (it is not in the copy).
        restored = self.path("restored/smithers.db")
        key = "file:" + self.db + ".audit-key"
        r = self.run_cli("db", "restore", backup, "--to", restored, "--audit-key", key)
        self.assertEqual(r.code, 0, r)
        self.assertNotIn("not recorded", r.stderr)
        r = self.run_cli("up", chain, "--resume", "--run-id", "load", db=restored)
        self.assertEqual(r.code, 4, r)
        self.assertIn("--audit-key", r.stderr)
        self.assertEqual(self.run_cli("up", chain, "--resume", "--run-id", "load",
                                      "--audit-key", key, db=restored, timeout=120).code, 0)
        v = self.run_cli("audit", "verify", "--audit-key", key, db=restored)
        self.assertEqual(v.code, 0, v)
        final = self.outputs_of(restored, "load")
        self.assertEqual(len(final), n)
        self.assertIn('"n":%d' % n, final["t%d" % n].replace(" ", ""))
        conn = sqlite3.connect(restored)
        self.addCleanup(conn.close)
        starts = conn.execute(
            "SELECT json_extract(payload_json, '$.nodeId') AS node, COUNT(*) FROM "
            "_smithers_events WHERE run_id = 'load' AND type = 'NodeStarted' GROUP BY node "
            "HAVING COUNT(*) > 1").fetchall()
        # The task in flight at the backup (started, no output) runs again;
        # none whose output the copy held does.
        self.assertEqual([node for node, _ in starts if node in copied], [])
        self.assertLessEqual(len(starts), 1, starts)
        self.assertEqual(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        kinds = [row[0] for row in conn.execute("SELECT kind FROM _smithers_maintenance")]
        self.assertEqual(kinds, ["restore"])

    def test_restore_refuses_a_database_in_use_and_bad_backups(self):
        hello = self.write("waits.lua", WAITS)
        self.assertEqual(self.up(hello, None, "w1").code, 3)
        backup = self.path("b.db")
        self.assertEqual(self.run_cli("db", "backup", backup).code, 0)
        again = self.run_cli("db", "backup", backup)
        self.assertEqual(again.code, 4, again)
        self.assertIn("exists", again.stderr)
        self.assertEqual(self.up(hello, None, "w2").code, 3)

        # Another process (this test) holds the database open, idle.
        holder = sqlite3.connect(self.db)
        holder.execute("SELECT COUNT(*) FROM _smithers_runs").fetchall()
        r = self.run_cli("db", "restore", backup)
        self.assertEqual(r.code, 4, r)
        self.assertIn("open in another process (process %d)" % os.getpid(), r.stderr)
        holder.close()
        self.assertEqual(self.run_ids(), ["w1", "w2"], "a refused restore changes nothing")

        # Damaged, foreign and too-new backups are refused before anything changes.
        with open(self.path("junk.db"), "wb") as f:
            f.write(b"SQLite format 3\x00" + os.urandom(5000))
        with open(backup, "rb") as f:
            data = f.read()
        with open(self.path("short.db"), "wb") as f:
            f.write(data[:len(data) // 2])
        sqlite3.connect(self.path("other.db")).execute("CREATE TABLE t(x)").connection.close()
        newer = self.path("newer.db")
        with open(newer, "wb") as f:
            f.write(data)
        c = sqlite3.connect(newer)
        c.execute("INSERT INTO _smithers_schema_migrations VALUES (99, 'future', 1, 'x')")
        c.commit()
        c.close()
        for name, words in (("junk.db", ""), ("short.db", ""), ("other.db", "not a Smithers"),
                            ("newer.db", "newer Smithers"), ("missing.db", "")):
            for cmd in (["db", "check", self.path(name)], ["db", "restore", self.path(name)]):
                r = self.run_cli(*cmd)
                self.assertNotEqual(r.code, 0, r)
                self.assertIn(words, r.stderr)
        self.assertEqual(self.run_ids(), ["w1", "w2"])

        # Nobody holds it now: the restore puts w1 back alone, and it still waits.
        r = self.run_cli("db", "restore", backup)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.run_ids(), ["w1"])
        self.assertEqual(self.inspect("w1")["run"]["status"], "waiting-approval")
        self.assertEqual(self.run_cli("approve", "w1", "-n", "gate", "--by", "ops").code, 0)

    def test_a_drill_loads_and_renders_and_is_recorded(self):
        chain = self.write("chain.lua", CHAIN)
        waits = self.write("waits.lua", WAITS)
        self.up_ok(chain, {"n": 5}, "c1")
        self.assertEqual(self.up(waits, None, "w1").code, 3)
        backup = self.path("b.db")
        self.assertEqual(self.run_cli("db", "backup", backup).code, 0)
        # The module files may be gone: the drill renders the pinned revisions.
        os.remove(chain)
        os.remove(waits)
        r = self.run_cli("db", "restore", "--drill", backup, "--json")
        self.assertEqual(r.code, 0, r)
        report = r.json()
        self.assertTrue(report["ok"], report)
        self.assertEqual(report["runs"], 2)
        self.assertEqual(sorted((x["runId"], x["tasks"]) for x in report["rendered"]),
                         [("c1", 5), ("w1", 1)])
        self.assertEqual(report["rows"]["outputs"], 5)
        self.assertEqual(report["rows"]["approvals"], 1)
        self.assertNotIn("scratch", report)
        # The live database is as it was, plus the records.
        self.assertEqual(self.inspect("w1")["run"]["status"], "waiting-approval")
        hist = self.run_cli("db", "history", "--json").json()["history"]
        self.assertEqual([(h["kind"], h["ok"]) for h in hist], [("drill", True), ("backup", True)])
        self.assertEqual(hist[1]["detail"]["runs"], 2)
        self.assertEqual(hist[0]["path"], backup)

        # A drill of a damaged backup fails, and says so in the history.
        with open(self.path("bad.db"), "wb") as f:
            f.write(b"SQLite format 3\x00" + os.urandom(5000))
        bad = self.run_cli("db", "restore", "--drill", self.path("bad.db"), "--json")
        self.assertNotEqual(bad.code, 0, bad)
        self.assertFalse(bad.json()["ok"])
        last = self.run_cli("db", "history", "--kind", "drill", "--limit", "1", "--json")
        self.assertEqual([h["ok"] for h in last.json()["history"]], [False])


    def listed_runs(self, db):
        """The runs `smithers ps` lists in database `db`."""
        r = self.run_cli("ps", "--json", db=db)
        self.assertEqual(r.code, 0, r)
        return {x["runId"] for x in r.json()["runs"]}

    def test_a_restore_killed_at_any_point_leaves_one_whole_database(self):
        chain = self.write("chain.lua", CHAIN)
        source = self.path("source.db")
        self.assertEqual(self.run_cli("up", chain, "--input", '{"n": 2}', "--run-id", "new1",
                                      db=source).code, 0)
        backup = self.path("big.bak")
        self.assertEqual(self.run_cli("db", "backup", backup, db=source).code, 0)
        # Bulk beside Smithers' tables, so that the copy takes many steps.
        conn = sqlite3.connect(backup)
        conn.execute("CREATE TABLE filler (x BLOB)")
        for _ in range(200):
            conn.execute("INSERT INTO filler VALUES (randomblob(262144))")
        conn.commit()
        conn.close()
        outcomes = []
        for percent in (10, 30, 50, 70, 90):
            target = self.path("t%d/smithers.db" % percent)
            self.assertEqual(self.run_cli("up", chain, "--input", '{"n": 1}', "--run-id", "old1",
                                          db=target).code, 0)
            p = subprocess.Popen([BIN, "db", "restore", backup, "--db", target],
                                 stderr=subprocess.PIPE, text=True)
            self._procs.append(p)
            for line in p.stderr:
                if "(%d%%)" % percent in line:
                    p.kill()  # SIGKILL, mid-copy
                    break
            p.wait()
            # The next process that opens it for writing finds one whole
            # database: the old one (SQLite rolls the copy back) or, had the
            # copy committed before the kill, the new one.
            r = self.run_cli("runs", "prune", "--older-than", "3650d", "--dry-run", db=target)
            self.assertEqual(r.code, 0, r)
            ids = self.listed_runs(target)
            self.assertIn(ids, ({"old1"}, {"new1"}), percent)
            check = sqlite3.connect("file:%s?mode=ro" % target, uri=True)
            self.assertEqual(check.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            check.close()
            outcomes.append(ids)
            # ... and a second restore goes through.
            r = self.run_cli("db", "restore", backup, db=target, timeout=120)
            self.assertEqual(r.code, 0, r)
            self.assertEqual(self.listed_runs(target), {"new1"})
        # At 10% most of the copy was still to come: that kill found the old one.
        self.assertEqual(outcomes[0], {"old1"}, outcomes)


if __name__ == "__main__":
    main()
