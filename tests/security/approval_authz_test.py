#!/usr/bin/env python3
"""Who may decide an approval (docs/engine.md "Who may decide"), attacked
through the CLI and through the Gateway: a user who is not a decider
(mallory) is refused with a message naming who may decide, and nothing is
recorded; the owner, the fallback owner after escalation, allowedUsers and
allowedScopes may; an override needs run:admin (the CLI: write access to the
database) and is recorded as one; the Gateway takes the actor from the
credentials only, and under --auth none records a named, unauthenticated one.

Time is moved with SMITHERS_CLOCK_OFFSET_MS, never by sleeping."""

from security_e2e import *  # noqa: F401,F403

import json
import os
import pwd

from gateway_case import GatewayCase

HOUR = 3600 * 1000
OS_USER = pwd.getpwuid(os.geteuid()).pw_name

APPROVAL = """
local outputs = smithers.outputs { decision = smithers.approvalDecision,
                                   done = z.object { ok = z.boolean() } }
return smithers(function(ctx)
  return Workflow { name = "authz",
    Sequence {
      smithers.Approval { id = "ship", output = outputs.decision, owner = "%(owner)s",
                          request = { title = "Ship it?" } %(extra)s },
      Task { id = "after", output = outputs.done, { ok = true } } } }
end)
"""


def module(owner="alice", extra=""):
    return APPROVAL % {"owner": owner, "extra": extra}


FULL = (', fallbackOwner = "bob", escalateAfterMs = %d, allowedUsers = { "carol" }, '
        'allowedScopes = { "run:admin" }' % HOUR)


class CliDecidersTest(E2ETest):
    def waiting(self, run_id, source):
        wf = self.write("wf_%s.lua" % run_id, source)
        r = self.up(wf, None, run_id)
        self.assertEqual(r.code, 3, r)
        return wf

    def row(self, run_id, node="ship"):
        [row] = self.query("SELECT * FROM _smithers_approvals WHERE run_id = ? AND node_id = ?",
                           run_id, node)
        return row

    def decisions(self, run_id):
        return [e for e in self.events(run_id)
                if e["type"] in ("ApprovalGranted", "ApprovalDenied")]

    def assert_undecided(self, run_id, node="ship"):
        self.assertEqual(self.row(run_id, node)["status"], "requested")
        self.assertEqual(self.decisions(run_id), [])

    def test_mallory_is_refused_and_told_who_may_decide(self):
        self.waiting("m1", module(extra=FULL))
        for verb in ("approve", "deny"):
            r = self.run_cli(verb, "m1", "--node", "ship", "--by", "mallory")
            self.assertEqual(r.code, 4, r)
            for part in ("mallory may not decide", "owner alice", "fallback owner bob",
                         "once it escalates", "allowedUsers carol", "allowedScopes run:admin",
                         "--override"):
                self.assertIn(part, r.stderr)
        self.assert_undecided("m1")

    def test_the_owner_decides_and_the_os_user_is_recorded_beside(self):
        wf = self.waiting("a1", module(extra=FULL))
        r = self.run_cli("approve", "a1", "--node", "ship", "--by", "alice", "--json")
        self.assertEqual(r.code, 0, r)
        out = r.json()
        self.assertEqual((out["decidedBy"], out["osUser"], out["override"]),
                         ("alice", OS_USER, False))
        row = self.row("a1")
        self.assertEqual((row["status"], row["decided_by"], row["decided_via"],
                          row["decided_os_user"], row["decided_override"]),
                         ("approved", "alice", "cli", OS_USER, 0))
        [ev] = self.decisions("a1")
        self.assertEqual((ev["payload"]["decidedBy"], ev["payload"]["osUser"],
                          ev["payload"]["via"], ev["payload"]["override"]),
                         ("alice", OS_USER, "cli", False))
        self.assertEqual(self.up(wf, None, "a1", "--resume").code, 0)

    def test_the_fallback_owner_only_after_escalation(self):
        self.waiting("f1", module(extra=FULL))
        r = self.run_cli("approve", "f1", "--node", "ship", "--by", "bob")
        self.assertEqual(r.code, 4, r)
        self.assertIn("once it escalates", r.stderr)
        self.assert_undecided("f1")
        # an hour later: the escalation is recorded first, then bob's decision
        later = {"SMITHERS_CLOCK_OFFSET_MS": str(HOUR + 1000)}
        r = self.run_cli("approve", "f1", "--node", "ship", "--by", "bob", env=later)
        self.assertEqual(r.code, 0, r)
        types = [e["type"] for e in self.events("f1")]
        self.assertLess(types.index("ApprovalEscalated"), types.index("ApprovalGranted"))
        self.assertEqual(self.row("f1")["decided_by"], "bob")

    def test_the_owner_may_still_decide_after_escalation(self):
        self.waiting("f2", module(extra=FULL))
        later = {"SMITHERS_CLOCK_OFFSET_MS": str(HOUR + 1000)}
        r = self.run_cli("deny", "f2", "--node", "ship", "--by", "alice", env=later)
        self.assertEqual(r.code, 0, r)
        r = self.run_cli("approve", "f2", "--node", "ship", "--by", "mallory", env=later)
        self.assertEqual(r.code, 4, r)  # already decided
        self.assertEqual(self.row("f2")["decided_by"], "alice")

    def test_allowed_users_decide_at_any_time(self):
        self.waiting("u1", module(extra=FULL))
        r = self.run_cli("deny", "u1", "--node", "ship", "--by", "carol")
        self.assertEqual(r.code, 0, r)
        self.assertEqual((self.row("u1")["status"], self.row("u1")["decided_by"]),
                         ("denied", "carol"))

    def test_allowed_users_on_a_needs_approval_task(self):
        wf = self.write("gated.lua", """
            local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "gated",
                Task { id = "t", output = outputs.r, needsApproval = true, owner = "alice",
                       allowedUsers = { "dave" }, { ok = true } } }
            end)
            """)
        self.assertEqual(self.up(wf, None, "g1").code, 3)
        self.assertEqual(self.run_cli("approve", "g1", "--node", "t", "--by", "mallory").code, 4)
        self.assertEqual(self.run_cli("approve", "g1", "--node", "t", "--by", "dave").code, 0)
        self.assertEqual(self.up(wf, None, "g1", "--resume").code, 0)

    def test_override_is_allowed_and_recorded_as_one(self):
        wf = self.waiting("o1", module())
        r = self.run_cli("approve", "o1", "--node", "ship", "--by", "mallory", "--override")
        self.assertEqual(r.code, 0, r)
        self.assertIn("override", r.stderr)
        row = self.row("o1")
        self.assertEqual((row["decided_by"], row["decided_override"], row["decided_os_user"]),
                         ("mallory", 1, OS_USER))
        [ev] = self.decisions("o1")
        self.assertIs(ev["payload"]["override"], True)
        [a] = self.inspect("o1")["approvals"]
        self.assertIs(a["override"], True)
        self.assertEqual(self.up(wf, None, "o1", "--resume").code, 0)

    def test_by_defaults_to_the_os_user_not_dollar_user(self):
        self.waiting("d1", module(owner="alice"))
        # $USER is whatever the caller says; the password database is not
        r = self.run_cli("approve", "d1", "--node", "ship", env={"USER": "alice",
                                                                 "LOGNAME": "alice"})
        self.assertEqual(r.code, 4, r)
        self.assertIn(OS_USER + " may not decide", r.stderr)
        self.assert_undecided("d1")
        self.waiting("d2", module(owner=OS_USER))
        r = self.run_cli("approve", "d2", "--node", "ship", env={"USER": "alice"})
        self.assertEqual(r.code, 0, r)
        row = self.row("d2")
        self.assertEqual((row["decided_by"], row["decided_os_user"]), (OS_USER, OS_USER))

    def test_bad_decider_props_are_bad_input(self):
        for extra, message in ((', allowedUsers = "carol"', "allowedUsers"),
                               (', allowedUsers = { "carol", 5 }', "allowedUsers"),
                               (', allowedScopes = { x = "run:admin" }', "allowedScopes"),
                               (', allowedUsers = { "" }', "allowedUsers")):
            wf = self.write("bad.lua", module(extra=extra))
            r = self.up(wf, None, "bad")
            self.assertEqual(r.code, 4, (extra, r))
            self.assertIn(message, r.stderr)


OWNED = module()  # owner alice, nothing else
SCOPED = module(extra=', allowedScopes = { "run:admin" }, allowedUsers = { "carol" }')


class GatewayDecidersTest(GatewayCase):
    def setUp(self):
        super().setUp()
        self.workflow("owned", OWNED)
        self.workflow("scoped", SCOPED)

    def launch(self, workflow, run_id, token):
        code, r = self.rpc("launchRun", {"workflow": workflow, "runId": run_id}, token)
        self.assertEqual(code, 200, r)
        self.wait_status(run_id, token, ("waiting-approval",))

    def submit(self, run_id, token, **extra):
        params = {"runId": run_id, "nodeId": "ship", "approved": True}
        params.update(extra)
        return self.rpc("submitApproval", params, token)

    def test_token_users_are_checked_against_the_deciders(self):
        self.start()
        launcher = self.token("run:read,run:write")
        mallory = self.token("approval:submit", "mallory")
        alice = self.token("approval:submit", "alice")
        self.launch("owned", "t1", launcher)
        code, r = self.submit("t1", mallory)
        self.assertEqual((code, r["error"]["code"]), (403, "Forbidden"), r)
        self.assertIn("mallory may not decide", r["error"]["message"])
        self.assertIn("owner alice", r["error"]["message"])
        self.assertEqual(self.approval_row("t1")["status"], "requested")
        # decidedBy in params cannot impersonate the owner
        code, r = self.submit("t1", mallory, decidedBy="alice")
        self.assertEqual((code, r["error"]["code"]), (403, "Forbidden"), r)
        self.assertIn("taken from your credentials", r["error"]["message"])
        self.assertEqual(self.approval_row("t1")["status"], "requested")
        # alice may; naming herself is allowed
        code, r = self.submit("t1", alice, decidedBy="alice", note="ok")
        self.assertEqual(code, 200, r)
        self.assertEqual((r["payload"]["decidedBy"], r["payload"]["via"], r["payload"]["override"]),
                         ("alice", "token", False))
        row = self.approval_row("t1")
        self.assertEqual((row["decided_by"], row["decided_via"], row["decided_override"]),
                         ("alice", "token", 0))
        self.wait_status("t1", launcher, ("finished",))

    def test_allowed_scopes_and_allowed_users(self):
        self.start()
        launcher = self.token("run:read,run:write")
        self.launch("scoped", "s1", launcher)
        self.launch("scoped", "s2", launcher)
        plain = self.token("approval:submit", "frank")
        code, r = self.submit("s1", plain)
        self.assertEqual(code, 403, r)
        self.assertIn("allowedScopes run:admin", r["error"]["message"])
        erin = self.token("approval:submit,run:admin", "erin")  # holds a listed scope
        code, r = self.submit("s1", erin)
        self.assertEqual(code, 200, r)
        self.assertEqual(r["payload"]["override"], False)
        carol = self.token("approval:submit", "carol")
        self.assertEqual(self.submit("s2", carol, approved=False)[0], 200)
        self.assertEqual(self.approval_row("s2")["decided_by"], "carol")

    def test_override_needs_run_admin_and_is_recorded(self):
        self.start()
        launcher = self.token("run:read,run:write")
        self.launch("owned", "o1", launcher)
        submitter = self.token("approval:submit", "sam")
        code, r = self.submit("o1", submitter, override=True)
        self.assertEqual((code, r["error"]["code"]), (403, "Forbidden"), r)
        self.assertEqual(r["error"]["requiredScope"], "run:admin")
        code, r = self.submit("o1", submitter, override="yes")
        self.assertEqual(code, 400, r)
        self.assertEqual(self.approval_row("o1")["status"], "requested")
        admin = self.token("approval:submit,run:admin", "root-admin")
        code, r = self.submit("o1", admin, override=True)
        self.assertEqual(code, 200, r)
        self.assertIs(r["payload"]["override"], True)
        row = self.approval_row("o1")
        self.assertEqual((row["decided_by"], row["decided_override"]), ("root-admin", 1))
        granted = [e for e in self.events("o1") if e["type"] == "ApprovalGranted"]
        self.assertIs(granted[0]["payload"]["override"], True)

    def test_auth_none_needs_a_named_decider_recorded_as_unauthenticated(self):
        self.start("--auth", "none")
        self.launch("owned", "n1", None)
        code, r = self.submit("n1", None)
        self.assertEqual((code, r["error"]["code"]), (400, "InvalidRequest"), r)
        self.assertIn("decidedBy", r["error"]["message"])
        code, r = self.submit("n1", None, decidedBy="mallory")
        self.assertEqual((code, r["error"]["code"]), (403, "Forbidden"), r)
        self.assertEqual(self.approval_row("n1")["status"], "requested")
        code, r = self.submit("n1", None, decidedBy="alice")
        self.assertEqual(code, 200, r)
        row = self.approval_row("n1")
        self.assertEqual((row["decided_by"], row["decided_via"]), ("alice", "unauthenticated"))


if __name__ == "__main__":
    main()
