#!/usr/bin/env python3
"""The audit log against the real binary (docs/operations.md "Audit log"):
what the CLI does is recorded with the OS user, in the transaction of the
action; the sqlite3 shell cannot change or delete a row; `audit verify` finds
an edited, removed or re-chained row and, against an anchor, a cut tail; a
missing or wrong key refuses the action (nothing runs), and a key held in a
variable never reaches a task."""

import os
import pwd
import shutil
import sqlite3

from smithers_e2e import E2ETest, main

WAITS = """
local outputs = smithers.outputs { d = smithers.approvalDecision,
                                   v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "waits",
    Sequence {
      smithers.Approval { id = "gate", output = outputs.d, owner = "ops",
                          request = { title = "Go?" } },
      Task { id = "after", output = outputs.v, { n = 1 } } } }
end)
"""

HELLO = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "hello", Task { id = "a", output = outputs.v, { n = 1 } } }
end)
"""

# A command that tries to read a variable by secret reference.
PEEK = """
local outputs = smithers.outputs { v = z.object { s = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "peek",
    Task { id = "p", output = outputs.v,
      command = { "sh", "-c", "printf '{\\"s\\":\\"%s\\"}' \\"$K\\"" },
      env = { K = { secret = "env:AUDIT_HMAC" } } } }
end)
"""

ME = pwd.getpwuid(os.geteuid()).pw_name


class AuditTest(E2ETest):
    def audit(self, *args):
        r = self.run_cli("audit", *args, "--json")
        self.assertEqual(r.code, 0, r)
        return r.json()["rows"]

    def actions(self):
        return [(r["action"], r["target"]) for r in self.audit()]

    def test_cli_actions_are_recorded_with_the_os_user(self):
        waits = self.write("waits.lua", WAITS)
        hello = self.write("hello.lua", HELLO)
        self.assertEqual(self.up(waits, None, "w1").code, 3)
        self.assertEqual(self.up(waits, None, "w2").code, 3)
        r = self.run_cli("signal", "w1", "ping", "--data", '{"password": "hunter2hunter2"}')
        self.assertEqual(r.code, 0, r)
        r = self.run_cli("approve", "w1", "-n", "gate", "--by", "ops", "--note", "ok")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.up(waits, None, "w1", "--resume").code, 0)
        self.assertEqual(self.run_cli("cancel", "w2").code, 0)
        issued = self.run_cli("token", "issue", "--scopes", "run:read", "--json")
        self.assertEqual(issued.code, 0, issued)
        tid = issued.json()["tokenId"]
        rotated = self.run_cli("token", "rotate", tid, "--json")
        self.assertEqual(rotated.code, 0, rotated)
        new_tid = rotated.json()["tokenId"]
        self.assertEqual(self.run_cli("token", "revoke", new_tid).code, 0)
        self.assertEqual(self.run_cli("runs", "delete", "w2").code, 0)
        self.up_ok(hello, None, "h1")
        backup = self.path("b.db")
        self.assertEqual(self.run_cli("db", "backup", backup).code, 0)

        rows = self.audit()
        self.assertEqual([(r["action"], r["target"]) for r in rows], [
            ("run.launch", "w1"), ("run.launch", "w2"), ("signal.send", "w1"),
            ("approval.decide", "w1"), ("run.resume", "w1"), ("run.cancel", "w2"),
            ("token.issue", tid), ("token.rotate", new_tid), ("token.revoke", new_tid),
            ("run.delete", "w2"), ("run.launch", "h1"), ("db.backup", backup)])
        self.assertEqual({(r["actor"], r["actorVia"]) for r in rows}, {(ME, "os")})
        self.assertEqual([r["seq"] for r in rows], list(range(1, len(rows) + 1)))
        decide = rows[3]
        self.assertEqual(decide["details"]["approved"], True)
        self.assertEqual(decide["details"]["note"], "ok")
        self.assertEqual(rows[7]["details"]["replaces"], tid)
        # w1's chain: launch, signal, decision, resume; w2's outlives the run.
        self.assertEqual([r["action"] for r in self.audit("--run", "w1")],
                         ["run.launch", "signal.send", "approval.decide", "run.resume"])
        self.assertEqual([r["chainSeq"] for r in self.audit("--run", "w2")], [1, 2, 3])
        self.assertEqual(self.run_cli("inspect", "w2").code, 4)
        # Secrets: neither the tokens nor a secret-shaped value are in the log.
        export = self.run_cli("audit", "export")
        self.assertEqual(export.code, 0, export)
        self.assertEqual(len(export.stdout.splitlines()), len(rows))
        for secret in (issued.json()["token"], rotated.json()["token"], "hunter2hunter2"):
            self.assertNotIn(secret, export.stdout)
        self.assertEqual(self.run_cli("audit", "--actor", "nobody", "--json").json()["rows"], [])
        self.assertEqual(self.run_cli("audit", "--since", "yesterday").code, 4)
        v = self.run_cli("audit", "verify", "--json")
        self.assertEqual(v.code, 0, v)
        self.assertEqual((v.json()["ok"], v.json()["rows"]), (True, len(rows)))
        # The backup holds the log, verifiable with the same key.
        key = "file:" + self.db + ".audit-key"
        v = self.run_cli("audit", "verify", "--audit-key", key, db=backup)
        self.assertEqual(v.code, 0, v)

    def test_tampering_is_refused_or_found(self):
        hello = self.write("hello.lua", HELLO)
        for i in range(4):
            self.up_ok(hello, None, "r%d" % i)
        anchor = self.run_cli("audit", "anchor").stdout.strip()
        self.assertRegex(anchor, r"^4:[0-9a-f]{64}$")
        conn = sqlite3.connect(self.db)
        self.addCleanup(conn.close)
        for sql in ("UPDATE _smithers_audit SET actor = 'eve'", "DELETE FROM _smithers_audit"):
            with self.assertRaises(sqlite3.DatabaseError) as e:
                conn.execute(sql)
            self.assertIn("append-only", str(e.exception))
        conn.rollback()
        # Without the triggers: an edit is found.
        saved = self.path("saved.db")
        shutil.copy(self.db, saved)
        conn.executescript("DROP TRIGGER _smithers_audit_no_update;"
                           "DROP TRIGGER _smithers_audit_no_delete;"
                           "UPDATE _smithers_audit SET actor = 'eve' WHERE seq = 2;")
        v = self.run_cli("audit", "verify")
        self.assertEqual(v.code, 1, v)
        self.assertIn("row 2", v.stdout)
        self.assertIn("edited", v.stdout)
        conn.executescript("UPDATE _smithers_audit SET actor = '%s' WHERE seq = 2;"
                           "DELETE FROM _smithers_audit WHERE seq = 3;" % ME)
        v = self.run_cli("audit", "verify")
        self.assertEqual(v.code, 1, v)
        self.assertIn("missing", v.stdout)
        conn.executescript("DELETE FROM _smithers_audit WHERE seq = 4;")
        self.assertEqual(self.run_cli("audit", "verify").code, 0, "a cut tail needs the anchor")
        v = self.run_cli("audit", "verify", "--anchor", anchor)
        self.assertEqual(v.code, 1, v)
        self.assertIn("anchor", v.stdout)
        self.assertEqual(self.run_cli("audit", "verify", "--anchor", "x").code, 4)

    def test_a_missing_or_wrong_key_refuses_the_action(self):
        hello = self.write("hello.lua", HELLO)
        self.up_ok(hello, None, "r1")
        key_file = self.db + ".audit-key"
        moved = self.path("kept.key")
        os.rename(key_file, moved)
        r = self.up(hello, None, "r2")
        self.assertEqual(r.code, 4, r)
        self.assertIn("key file", r.stderr)
        self.assertFalse(os.path.exists(key_file), "no key is made up for a log with rows")
        self.assertEqual(self.run_cli("inspect", "r2").code, 4, "the run was not started")
        self.assertEqual(self.run_cli("audit", "verify").code, 4, "no key, no verdict")
        with open(self.path("other.key"), "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        r = self.up(hello, None, "r2", "--audit-key", "file:" + self.path("other.key"))
        self.assertEqual(r.code, 4, r)
        self.assertIn("written under key", r.stderr)
        self.up_ok(hello, None, "r2", "--audit-key", "file:" + moved)
        # A key held in a variable: used by the store, never by a task.
        with open(moved) as f:
            value = f.read().strip()
        env = {"SMITHERS_AUDIT_KEY": "env:AUDIT_HMAC", "AUDIT_HMAC": value}
        self.assertEqual(self.up(hello, None, "r3", env=env).code, 0)
        peek = self.write("peek.lua", PEEK)
        r = self.up(peek, None, "p1", env=env)
        self.assertNotEqual(r.code, 0, r)
        self.assertNotIn(value, r.stdout + r.stderr)
        if self.run_cli("inspect", "p1").code == 0:
            self.assertNotIn(value, "".join(str(e) for e in self.events("p1")))
        self.assertEqual([r["action"] for r in self.audit("--run", "r3")], ["run.launch"])


if __name__ == "__main__":
    main()
