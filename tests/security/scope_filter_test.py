#!/usr/bin/env python3
"""What a token may see (docs/gateway.md "What each scope sees"): one scope
filter over everything the Gateway pushes or returns. A run:read token gets
no approvals in its hello snapshot, approval events with their contents
withheld (the seq stays, so its stream has no gap), no approval decision from
getNodeOutput and no cron.triggered event; approval:read (and cron:read) see
them."""

from security_e2e import *  # noqa: F401,F403

import json
import time

from gateway_case import GatewayCase

GATE = """
local outputs = smithers.outputs { decision = smithers.approvalDecision,
                                   done = z.object { ok = z.boolean() } }
return smithers(function(ctx)
  return Workflow { name = "gate",
    Sequence {
      smithers.Approval { id = "ship", output = outputs.decision, owner = "ops",
                          request = { title = "Secret launch codes?" } },
      Task { id = "after", output = outputs.done, { ok = true } } } }
end)
"""

HELLO = """
local outputs = smithers.outputs { greeting = z.object { message = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "hello",
    Task { id = "greet", output = outputs.greeting, { message = "hi" } } }
end)
"""

APPROVAL_EVENTS = {"ApprovalRequested", "ApprovalGranted", "ApprovalDenied",
                   "ApprovalEscalated", "NodeWaitingApproval"}


def run_events(frames):
    return [f["payload"] for f in frames if f.get("event") == "run.event"]


class ScopeFilterTest(GatewayCase):
    def setUp(self):
        super().setUp()
        self.workflow("gate", GATE)
        self.workflow("hello", HELLO)

    def read_stream(self, w, run_id, until):
        """Streams the run from its first event; reads frames until one of
        type `until` arrives. Returns the run.event payloads read."""
        res = w.request("streamRunEvents", {"runId": run_id, "afterSeq": 0})
        self.assertTrue(res["ok"], res)
        events = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            f = w.recv_json()
            if f.get("event") == "run.event":
                events.append(f["payload"])
                if f["payload"]["type"] == until:
                    return events
        self.fail("no %s in %s" % (until, events))

    def test_approvals_need_approval_read(self):
        self.start()
        launcher = self.token("run:read,run:write")
        reader = self.token("run:read", "reader")
        auditor = self.token("run:read,approval:read", "auditor")
        code, r = self.rpc("launchRun", {"workflow": "gate", "runId": "g1"}, launcher)
        self.assertEqual(code, 200, r)
        self.wait_status("g1", launcher, ("waiting-approval",))

        # hello: no approvals for run:read (left out, not an empty list)
        wr = self.ws(reader)
        self.assertIn("runs", wr.hello["snapshot"])
        self.assertNotIn("approvals", wr.hello["snapshot"])
        self.assertNotIn("Secret launch codes", json.dumps(wr.hello))
        wa = self.ws(auditor)
        self.assertEqual([a["nodeId"] for a in wa.hello["snapshot"]["approvals"]], ["ship"])

        # events: withheld for the reader, whole for the auditor, same seqs
        seen_r = self.read_stream(wr, "g1", "NodeWaitingApproval")
        seen_a = self.read_stream(wa, "g1", "NodeWaitingApproval")
        self.assertEqual([e["seq"] for e in seen_r], list(range(1, len(seen_r) + 1)), "no gap")
        self.assertEqual([e["seq"] for e in seen_r], [e["seq"] for e in seen_a])
        for e in seen_r:
            if e["type"] in APPROVAL_EVENTS:
                self.assertEqual(e["payload"]["withheld"], True, e)
                self.assertEqual(e["payload"]["requiredScope"], "approval:read")
                self.assertEqual(e["payload"]["nodeId"], "ship")
        self.assertNotIn("Secret launch codes", json.dumps(seen_r))
        self.assertNotIn('"ops"', json.dumps(seen_r))
        [req] = [e for e in seen_a if e["type"] == "ApprovalRequested"]
        self.assertEqual(req["payload"]["request"]["title"], "Secret launch codes?")
        self.assertEqual(req["payload"]["owner"], "ops")

        # the decision: withheld on the reader's stream, and from getNodeOutput
        ops = self.token("approval:submit", "ops")
        self.assertEqual(self.rpc("submitApproval", {"runId": "g1", "nodeId": "ship",
                                                     "approved": True, "note": "n0te"}, ops)[0],
                         200)
        more_r = [e for e in run_events(wr.events)]
        deadline = time.monotonic() + 20
        while not any(e["type"] == "ApprovalGranted" for e in more_r):
            self.assertLess(time.monotonic(), deadline, more_r)
            f = wr.recv_json()
            if f.get("event") == "run.event":
                more_r.append(f["payload"])
        [granted] = [e for e in more_r if e["type"] == "ApprovalGranted"]
        self.assertEqual(granted["payload"]["withheld"], True)
        self.assertNotIn("n0te", json.dumps(more_r))
        self.wait_status("g1", launcher, ("finished",))
        code, r = self.rpc("getNodeOutput", {"runId": "g1", "nodeId": "ship"}, reader)
        self.assertEqual((code, r["error"]["code"]), (403, "Forbidden"), r)
        self.assertEqual(r["error"]["requiredScope"], "approval:read")
        code, r = self.rpc("getNodeOutput", {"runId": "g1", "nodeId": "after"}, reader)
        self.assertEqual(code, 200, r)
        self.assertEqual(r["payload"]["row"], {"ok": True})
        code, r = self.rpc("getNodeOutput", {"runId": "g1", "nodeId": "ship"}, auditor)
        self.assertEqual(code, 200, r)
        self.assertEqual((r["payload"]["row"]["decidedBy"], r["payload"]["row"]["note"]),
                         ("ops", "n0te"))
        # listApprovals itself needs approval:read (the method table)
        self.assertEqual(self.rpc("listApprovals", {}, reader)[0], 403)

    def test_cron_triggered_goes_only_to_cron_readers(self):
        # The Gateway's clock 10 s before a 5-minute boundary: a */5 schedule
        # created now fires within seconds.
        now = int(time.time() * 1000)
        boundary = (now // 300000 + 1) * 300000
        offset = boundary - 10000 - now
        if offset < 0:
            offset += 300000
        self.start(env={"SMITHERS_CLOCK_OFFSET_MS": str(offset)})
        reader = self.token("run:read", "reader")
        cron = self.token("cron:read", "scheduler")
        writer = self.token("cron:write,run:read")
        wr = self.ws(reader)
        wc = self.ws(cron)
        self.assertNotIn("runs", wc.hello["snapshot"], "cron:read alone sees no runs")
        code, r = self.rpc("cronCreate", {"workflow": "hello", "pattern": "*/5 * * * *",
                                          "cronId": "soon"}, writer)
        self.assertEqual(code, 200, r)
        deadline = time.monotonic() + 30
        fired = None
        while fired is None:
            self.assertLess(time.monotonic(), deadline, "no cron.triggered")
            f = wc.recv_json(timeout=30)
            if f.get("event") == "cron.triggered":
                fired = f["payload"]
        self.assertEqual(fired["cronId"], "soon")
        # Anything broadcast to the reader before now precedes this reply.
        res = wr.request("health", {})
        self.assertTrue(res["ok"], res)
        self.assertEqual([f for f in wr.events if f.get("event") == "cron.triggered"], [])
        self.wait_status(fired["runId"], reader, ("finished",))


if __name__ == "__main__":
    main()
