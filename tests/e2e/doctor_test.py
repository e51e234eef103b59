#!/usr/bin/env python3
"""`smithers doctor` (docs/operations.md "The release checklist: smithers
doctor"): a well-configured deployment passes; each item of a badly
configured one fails (or warns) with its reason; without a gateway config
its items warn; bad input exits 4."""

import os
import sqlite3

from smithers_e2e import E2ETest, main

GOOD = """
local outputs = smithers.outputs { d = smithers.approvalDecision }
return smithers(function(ctx)
  return Workflow { name = "good",
    smithers.Approval { id = "gate", output = outputs.d, request = { title = "Go?" },
                        owner = "alice", fallbackOwner = "bob", escalateAfterMs = 60000 } }
end)
"""

# The approval mounts only once "a" has an output (found by rendering on).
NO_OWNER = """
local outputs = smithers.outputs { v = z.object { n = z.integer() }, d = smithers.approvalDecision }
return smithers(function(ctx)
  local a = ctx:outputMaybe(outputs.v, "a")
  return Workflow { name = "noowner",
    Task { id = "a", output = outputs.v, { n = 1 } },
    Branch { ["if"] = a ~= nil,
             ["then"] = smithers.Approval { id = "gate", output = outputs.d,
                                            request = { title = "Go?" } } } }
end)
"""

NO_FALLBACK = """
local outputs = smithers.outputs { d = smithers.approvalDecision }
return smithers(function(ctx)
  return Workflow { name = "nofallback",
    smithers.Approval { id = "lonely", output = outputs.d, request = { title = "Go?" },
                        owner = "alice" } }
end)
"""

DAY_MS = 24 * 3600 * 1000


class DoctorTest(E2ETest):
    def setUp(self):
        super().setUp()
        self.key = self.path("audit.key")
        with open(os.open(self.key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        self.env = {"SMITHERS_AUDIT_KEY": "file:" + self.key}
        os.mkdir(self.path("workflows"))
        self.log = self.path("access.log")

    def cli(self, *args, **kw):
        kw.setdefault("env", self.env)
        r = self.run_cli(*args, **kw)
        return r

    def seed(self, backup=True, drill=True):
        """A database with a read-only token, a backup and a drill."""
        r = self.cli("token", "issue", "--scopes", "run:read", "--ttl", "1h")
        self.assertEqual(r.code, 0, r)
        if backup:
            b = self.path("backup.db")
            self.assertEqual(self.cli("db", "backup", b).code, 0)
            if drill:
                self.assertEqual(self.cli("db", "restore", b, "--drill").code, 0)

    def config(self, extra="", top="", retention='keep = "30d"', modules=(GOOD,)):
        for i, m in enumerate(modules):
            self.write("workflows/m%d.lua" % i, m)
        with open(os.open(self.log, os.O_WRONLY | os.O_CREAT, 0o600), "a") as f:
            f.write("{}\n")
        text = ('workflows = "workflows"\ndb = "smithers.db"\nsynchronous = "FULL"\n'
                'trusted_modules = true\naccess_log = "access.log"\n'
                'audit_key = "file:%s"\n%s\n' % (self.key, top))
        if retention is not None:
            text += "[retention]\n%s\n" % retention
        text += extra
        return self.write("gateway.toml", text)

    def doctor(self, *args, env=None, config=True):
        argv = ["doctor", "--json"] + (["--gateway-config", self.path("gateway.toml")]
                                       if config else []) + list(args)
        r = self.run_cli(*argv, db=False, env=env or {})
        return r

    def items(self, r):
        doc = r.json()
        out = {}
        for i in doc["items"]:
            out.setdefault(i["id"], []).append((i["status"], i["message"]))
        return doc, out

    def status(self, items, key):
        return {s for s, _ in items[key]}

    def test_a_well_configured_deployment_passes(self):
        self.seed()
        self.config()
        r = self.doctor()
        self.assertEqual(r.code, 0, r)
        doc, items = self.items(r)
        self.assertTrue(doc["ok"], r)
        self.assertEqual(doc["counts"]["fail"], 0, r)
        for key in ("tls", "database", "tokens.scopes", "tokens.ttl", "tokens.rotation",
                    "approvals", "backup", "drill", "retention", "access-log", "audit.key",
                    "audit.log", "sqlite.journal-mode", "sqlite.foreign-keys",
                    "sqlite.synchronous", "files"):
            self.assertEqual(self.status(items, key), {"pass"}, (key, items[key]))
        self.assertEqual(items["sandbox"][0][0], "warn")
        self.assertIn("sandbox not required", items["sandbox"][0][1])
        # Text: one line per item.
        t = self.run_cli("doctor", "--gateway-config", self.path("gateway.toml"), db=False)
        self.assertEqual(t.code, 0, t)
        self.assertRegex(t.stdout, r"(?m)^PASS  tls: binds loopback 127\.0\.0\.1")
        self.assertRegex(t.stdout, r"(?m)^WARN  sandbox: ")
        self.assertRegex(t.stdout, r"(?m)^\d+ passed, 1 warned, 0 failed$")

    def test_each_bad_setting_fails_with_its_reason(self):
        self.seed(backup=False)
        self.assertEqual(self.cli("token", "issue", "--scopes", "*", "--ttl", "1h").code, 0)
        self.assertEqual(self.cli("token", "issue", "--scopes", "run:write",
                                  "--no-expiry").code, 0)
        self.config(top='host = "0.0.0.0"\ninsecure = true', retention='keep = "7d"',
                    modules=(GOOD, NO_OWNER, NO_FALLBACK))
        os.chmod(self.db, 0o644)
        r = self.doctor("--rotation-period", "1ms")
        self.assertEqual(r.code, 1, r)
        doc, items = self.items(r)
        self.assertFalse(doc["ok"])
        msg = lambda key: " | ".join(m for _, m in items[key])
        self.assertEqual(self.status(items, "tls"), {"fail"})
        self.assertIn("0.0.0.0 (not loopback) without TLS", msg("tls"))
        self.assertEqual(self.status(items, "tokens.scopes"), {"fail"})
        self.assertIn("[*]", msg("tokens.scopes"))
        self.assertEqual(self.status(items, "tokens.ttl"), {"fail"})
        self.assertIn("never expires", msg("tokens.ttl"))
        self.assertEqual(self.status(items, "tokens.rotation"), {"fail"})
        self.assertIn("not rotated within 1ms", msg("tokens.rotation"))
        self.assertEqual(self.status(items, "approvals"), {"fail"})
        self.assertIn("m1.lua: node gate", msg("approvals"))
        self.assertIn("m2.lua: node lonely", msg("approvals"))
        self.assertIn("fallbackOwner", msg("approvals"))
        self.assertNotIn("m0.lua", msg("approvals"))
        self.assertEqual(self.status(items, "backup"), {"fail"})
        self.assertIn("no backup that succeeded", msg("backup"))
        self.assertEqual(self.status(items, "drill"), {"fail"})
        self.assertEqual(self.status(items, "retention"), {"fail"})
        self.assertIn("keep = 7d is under the minimum 30d", msg("retention"))
        self.assertEqual(self.status(items, "files"), {"fail"})
        self.assertIn("smithers.db is readable or writable by other users (0644)", msg("files"))
        self.assertEqual(self.status(items, "audit.log"), {"pass"})

    def test_ages_access_log_audit_and_journal_mode(self):
        self.seed()
        self.config(retention=None)
        # Eight days on: the backup is too old, the drill (30d) is not; the
        # access log has not been written for a day.
        r = self.doctor(env={"SMITHERS_CLOCK_OFFSET_MS": str(8 * DAY_MS)})
        self.assertEqual(r.code, 1, r)
        _, items = self.items(r)
        self.assertEqual(self.status(items, "backup"), {"fail"})
        self.assertIn("older than 7d (--max-backup-age)", items["backup"][0][1])
        self.assertEqual(self.status(items, "drill"), {"pass"})
        self.assertEqual(self.status(items, "access-log"), {"warn"})
        self.assertEqual(self.status(items, "retention"), {"fail"})
        self.assertIn("no [retention] table", items["retention"][0][1])
        self.assertEqual(self.doctor("--max-backup-age", "9d", "--min-retention", "1h",
                                     env={"SMITHERS_CLOCK_OFFSET_MS": str(8 * DAY_MS)}).code, 1)
        # The access log missing.
        os.remove(self.log)
        _, items = self.items(self.doctor())
        self.assertEqual(items["access-log"][0][0], "fail")
        self.assertIn("does not exist", items["access-log"][0][1])
        # An edited audit row is found.
        conn = sqlite3.connect(self.db)
        conn.executescript("DROP TRIGGER _smithers_audit_no_update;"
                           "UPDATE _smithers_audit SET actor = 'eve' WHERE seq = 1;")
        conn.close()
        r = self.doctor()
        self.assertEqual(r.code, 1, r)
        _, items = self.items(r)
        self.assertEqual(items["audit.log"][0][0], "fail")
        self.assertIn("does NOT verify", items["audit.log"][0][1])
        # A copy switched back to rollback journaling (as a file copied by
        # hand and opened by another tool may be).
        restored = self.path("restored.db")
        self.assertEqual(self.cli("db", "restore", self.path("backup.db"), "--to",
                                  restored).code, 0)
        conn = sqlite3.connect(restored)
        self.assertEqual(conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0], "delete")
        conn.close()
        r = self.run_cli("doctor", "--json", db=restored, env=self.env)
        _, items = self.items(r)
        self.assertEqual(items["sqlite.journal-mode"][0][0], "fail", r)
        self.assertIn("journal_mode = delete", items["sqlite.journal-mode"][0][1])
        self.assertEqual(items["sqlite.synchronous"][0][0], "warn")  # the test's NORMAL

    def test_without_a_config_and_with_the_default_key(self):
        r = self.run_cli("token", "issue", "--scopes", "run:read", "--ttl", "1h")
        self.assertEqual(r.code, 0, r)
        r = self.run_cli("doctor", "--json")
        self.assertEqual(r.code, 1, r)  # no backup, no drill
        _, items = self.items(r)
        for key in ("tls", "retention", "access-log", "approvals", "sandbox"):
            self.assertEqual(items[key], [("warn", "no gateway config given (--gateway-config)")])
        self.assertEqual(items["audit.key"][0][0], "warn")
        self.assertIn("smithers.db.audit-key beside the database", items["audit.key"][0][1])
        self.assertEqual(items["audit.log"][0][0], "pass")

    def test_a_required_sandbox_is_self_tested_and_an_access_log_off_fails(self):
        self.seed()
        self.config()
        text = self.read("gateway.toml").replace('access_log = "access.log"', 'access_log = "-"')
        self.write("gateway.toml", "require_sandbox = true\n" + text)
        r = self.doctor()
        self.assertEqual(r.code, 1, r)
        _, items = self.items(r)
        self.assertEqual(items["access-log"], [("fail", 'the access log is off (access_log = "-")')])
        # The self-test runs for real: it passes where bubblewrap confines,
        # and says why not where it cannot.
        selftest = self.run_cli("sandbox", "selftest", db=False)
        want = "pass" if selftest.code == 0 else "fail"
        self.assertEqual(self.status(items, "sandbox"), {want}, (items["sandbox"], selftest))
        r = self.doctor("--sandbox-runtime", "no-such-runtime")
        _, items = self.items(r)
        self.assertEqual(self.status(items, "sandbox"), {"fail"}, items["sandbox"])

    def test_bad_input_exits_4(self):
        r = self.run_cli("doctor", "--max-backup-age", "soon")
        self.assertEqual(r.code, 4, r)
        self.assertIn("--max-backup-age \"soon\" is not a duration", r.stderr)
        r = self.run_cli("doctor", "--gateway-config", self.path("missing.toml"))
        self.assertEqual(r.code, 4, r)
        self.write("gateway.toml", "nonsense = 1\n")
        r = self.run_cli("doctor", "--gateway-config", self.path("gateway.toml"))
        self.assertEqual(r.code, 4, r)
        self.assertFalse(os.path.exists(self.db), "doctor creates nothing")


if __name__ == "__main__":
    main()
