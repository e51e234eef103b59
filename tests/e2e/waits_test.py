#!/usr/bin/env python3
"""Durable waits end to end: approvals (approve, deny with each onDeny, gates,
owners, escalation with an injected clock, double decisions), signals (before
and after the wait, invalid data, correlation, timeouts), timers across
restarts, `ps --status waiting-*`, and cancelling a waiting run.

Time is moved forward with SMITHERS_CLOCK_OFFSET_MS, never by sleeping."""

import json
import os

from smithers_e2e import PYTHON, E2ETest, main

HOUR = 3600 * 1000

APPEND = """[[import json, sys
with open(sys.argv[1], "a") as f:
    f.write(sys.argv[2] + "\\n")
print(json.dumps({"ok": True}))]]"""


class WaitsTest(E2ETest):
    def later(self, ms):
        return {"SMITHERS_CLOCK_OFFSET_MS": str(ms)}

    def up_waiting(self, module, run_id, *extra, env=None):
        r = self.up(module, None, run_id, *extra, env=env)
        self.assertEqual(r.code, 3, r)
        out = r.json()
        self.assertTrue(out["status"].startswith("waiting-"), r)
        return r, out

    def resume(self, module, run_id, env=None):
        return self.up(module, None, run_id, "--resume", env=env)

    def types(self, run_id):
        return [e["type"] for e in self.events(run_id)]

    def log_lines(self, name="log.txt"):
        try:
            return self.read(name).split()
        except FileNotFoundError:
            return []

    def approval_module(self, name="wf.lua", on_deny="fail", extra=""):
        return self.write(name, """
            local outputs = smithers.outputs {
              decision = smithers.approvalDecision,
              after = z.object { approved = z.boolean(), by = z.string() },
            }
            return smithers(function(ctx)
              local d = ctx:outputMaybe(outputs.decision, "gate")
              return Workflow { name = "approve",
                Sequence {
                  smithers.Approval { id = "gate", output = outputs.decision,
                    request = { title = "Ship it?", summary = "v2" }, onDeny = "%s",
                    owner = "alice" %s },
                  d and Task { id = "after", output = outputs.after,
                               { approved = d.approved, by = d.decidedBy } } or nil,
                },
              }
            end)
            """ % (on_deny, extra))

    # ---- approvals ----

    def test_approve_continues_with_the_decision_as_output(self):
        wf = self.approval_module()
        r, out = self.up_waiting(wf, "a1")
        self.assertEqual(out["status"], "waiting-approval")
        self.assertEqual(out["waiting"][0]["kind"], "approval")
        self.assertEqual(out["waiting"][0]["owner"], "alice")
        self.assertIn("smithers approve a1 --node gate", r.stderr)
        self.assertEqual(self.node("a1", "gate")["state"], "waiting-approval")
        self.assertIsNone(self.inspect("a1")["run"]["runtimeOwnerId"])

        ps = self.run_cli("ps", "--status", "waiting-approval", "--json").json()
        self.assertEqual([x["runId"] for x in ps["runs"]], ["a1"])

        d = self.run_cli("approve", "a1", "--node", "gate", "--by", "alice", "--note", "LGTM")
        self.assertEqual(d.code, 0, d)
        self.assertIn("approved", d.stderr)
        self.assertIn("--resume --run-id a1", d.stderr)

        r = self.resume(wf, "a1")
        self.assertEqual(r.code, 0, r)
        out = r.json()
        dec = out["outputs"]["decision"]["gate"]
        self.assertEqual((dec["approved"], dec["note"], dec["decidedBy"]), (True, "LGTM", "alice"))
        self.assertRegex(dec["decidedAt"], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(out["outputs"]["after"]["after"], {"approved": True, "by": "alice"})
        types = self.types("a1")
        for t in ("ApprovalRequested", "NodeWaitingApproval", "ApprovalGranted", "RunFinished"):
            self.assertEqual(types.count(t), 1, (t, types))
        row = self.query("SELECT * FROM _smithers_approvals WHERE run_id = 'a1'")[0]
        self.assertEqual((row["status"], row["decided_by"], row["note"]),
                         ("approved", "alice", "LGTM"))
        self.assertEqual(json.loads(row["request_json"])["title"], "Ship it?")

    def test_deny_with_on_deny_fail_fails_the_run(self):
        # bob is not the owner: allowedUsers lets him decide (tests/security has the refusals)
        wf = self.approval_module(on_deny="fail", extra=', allowedUsers = { "bob" }')
        self.up_waiting(wf, "d1")
        self.assertEqual(self.run_cli("deny", "d1", "-n", "gate", "--by", "bob",
                                      "--note", "not today").code, 0)
        r = self.resume(wf, "d1")
        self.assertEqual(r.code, 1, r)
        err = r.json()["error"]
        self.assertEqual(err["nodeId"], "gate")
        self.assertEqual(err["cause"]["code"], "APPROVAL_DENIED")
        self.assertIn("bob", err["cause"]["message"])
        self.assertIn("not today", err["cause"]["message"])
        self.assertEqual(self.node("d1", "gate")["state"], "failed")
        self.assertIn("ApprovalDenied", self.types("d1"))

    def test_deny_with_on_deny_continue_records_the_denial(self):
        wf = self.approval_module(on_deny="continue", extra=', allowedUsers = { "bob" }')
        self.up_waiting(wf, "d2")
        self.run_cli("deny", "d2", "-n", "gate", "--by", "bob")
        r = self.resume(wf, "d2")
        self.assertEqual(r.code, 0, r)
        out = r.json()["outputs"]
        self.assertEqual(out["decision"]["gate"]["approved"], False)
        self.assertIsNone(out["decision"]["gate"]["note"])
        self.assertEqual(out["after"]["after"], {"approved": False, "by": "bob"})

    def test_deny_with_on_deny_skip_skips_the_node(self):
        wf = self.approval_module(on_deny="skip", extra=', allowedUsers = { "bob" }')
        self.up_waiting(wf, "d3")
        self.run_cli("deny", "d3", "-n", "gate", "--by", "bob")
        r = self.resume(wf, "d3")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"], {})
        self.assertEqual(self.node("d3", "gate")["state"], "skipped")

    def test_needs_approval_gates_a_command(self):
        wf = self.write("gate.lua", """
            local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "gated",
                Task { id = "deploy", output = outputs.r, needsApproval = true,
                       owner = "alice", request = { title = "Deploy?" },
                       command = { %r, "-c", %s, %r, "deploy" } },
              }
            end)
            """ % (PYTHON, APPEND, self.path("log.txt")))
        self.up_waiting(wf, "g1")
        self.assertEqual(self.log_lines(), [], "the command ran before its approval")
        self.assertEqual(self.node("g1", "deploy")["attempts"], [])
        self.run_cli("approve", "g1", "--node", "deploy", "--by", "alice")
        r = self.resume(wf, "g1")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.log_lines(), ["deploy"])
        self.assertEqual(r.json()["outputs"]["r"]["deploy"], {"ok": True})

        # Denied: the command never runs, the run fails.
        self.up_waiting(wf, "g2")
        self.run_cli("deny", "g2", "--node", "deploy", "--by", "alice")
        r = self.resume(wf, "g2")
        self.assertEqual(r.code, 1, r)
        self.assertEqual(self.log_lines(), ["deploy"])

    def test_a_second_decision_is_refused(self):
        wf = self.approval_module()
        self.up_waiting(wf, "x1")
        self.assertEqual(self.run_cli("approve", "x1", "--node", "gate", "--by", "alice").code, 0)
        r = self.run_cli("deny", "x1", "--node", "gate", "--by", "mallory")
        self.assertEqual(r.code, 4, r)
        self.assertIn("already approved by alice", r.stderr)
        row = self.query("SELECT status, decided_by FROM _smithers_approvals")[0]
        self.assertEqual((row["status"], row["decided_by"]), ("approved", "alice"))
        self.assertEqual(self.types("x1").count("ApprovalDenied"), 0)

    def test_deciding_a_node_that_is_not_waiting_is_an_error(self):
        wf = self.approval_module()
        self.up_waiting(wf, "n1")
        r = self.run_cli("approve", "n1", "--node", "nope", "--by", "alice")
        self.assertEqual(r.code, 4, r)
        self.assertIn("not waiting for approval", r.stderr)
        r = self.run_cli("approve", "n1", "--node", "gate", "--iteration", "2", "--by", "alice")
        self.assertEqual(r.code, 4, r)
        r = self.run_cli("approve", "no-such-run", "--node", "gate", "--by", "alice")
        self.assertEqual(r.code, 4, r)
        self.assertEqual(self.query("SELECT status FROM _smithers_approvals")[0]["status"],
                         "requested")

    def test_an_approval_needs_an_owner_or_a_default(self):
        wf = self.write("noowner.lua", """
            local outputs = smithers.outputs { decision = smithers.approvalDecision }
            return smithers(function(ctx)
              return Workflow { name = "w",
                smithers.Approval { id = "gate", output = outputs.decision } }
            end)
            """)
        r = self.up(wf, None, "o1")
        self.assertEqual(r.code, 4, r)
        self.assertIn("names no owner", r.stderr)
        self.assertIn("defaultApprovalOwner", r.stderr)
        self.assert_nothing_written()

        wf = self.write("default.lua", """
            local outputs = smithers.outputs { decision = smithers.approvalDecision }
            return smithers(function(ctx)
              return Workflow { name = "w",
                smithers.Approval { id = "gate", output = outputs.decision } }
            end, { defaultApprovalOwner = "ops-team" })
            """)
        _, out = self.up_waiting(wf, "o2")
        self.assertEqual(out["waiting"][0]["owner"], "ops-team")

    def test_escalation_hands_the_request_to_the_fallback_owner(self):
        wf = self.approval_module(extra=', fallbackOwner = "bob", escalateAfterMs = %d' % HOUR)
        self.up_waiting(wf, "e1")
        now = self.run_cli("approvals", "--json").json()["approvals"]
        self.assertEqual(len(now), 1)
        self.assertEqual((now[0]["owner"], now[0]["fallbackOwner"]), ("alice", "bob"))
        self.assertEqual(now[0]["request"]["title"], "Ship it?")
        self.assertNotIn("escalatedAtMs", now[0])
        self.assertNotIn("ApprovalEscalated", self.types("e1"))

        later = self.run_cli("approvals", "--json", env=self.later(HOUR + 1000)).json()
        [a] = later["approvals"]
        self.assertEqual((a["owner"], a["originalOwner"]), ("bob", "alice"))
        self.assertIn("escalatedAtMs", a)
        self.assertGreaterEqual(a["ageMs"], HOUR)
        text = self.run_cli("approvals", env=self.later(HOUR + 2000))
        self.assertIn("bob (escalated)", text.stdout)
        esc = [e for e in self.events("e1") if e["type"] == "ApprovalEscalated"]
        self.assertEqual(len(esc), 1, "escalation must happen once")
        self.assertEqual((esc[0]["payload"]["from"], esc[0]["payload"]["to"]), ("alice", "bob"))

        self.run_cli("approve", "e1", "--node", "gate", "--by", "bob")
        self.assertEqual(self.resume(wf, "e1").code, 0)
        self.assertEqual(self.run_cli("approvals", "--json").json()["approvals"], [])

    def test_a_decision_reaches_a_run_that_is_still_running(self):
        wf = self.write("live.lua", """
            local outputs = smithers.outputs {
              decision = smithers.approvalDecision, r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "live",
                Parallel {
                  smithers.Approval { id = "gate", output = outputs.decision, owner = "alice" },
                  Task { id = "slow", output = outputs.r, command = { "sh", "-c",
                         [[touch "$D/slow.started"; while [ ! -f "$D/release" ]; do sleep 0.02; done;
                           echo '{"ok": true}']] }, env = { D = %r } },
                },
              }
            end)
            """ % self.dir)
        p = self.start_up(wf, None, "live1")
        self.wait_for(lambda: self.run_cli("approvals", "--json").json()["approvals"],
                      what="the approval request")
        self.wait_for(lambda: os.path.exists(self.path("slow.started")), what="slow to start")
        self.assertEqual(self.run_cli("approve", "live1", "--node", "gate", "--by", "alice").code, 0)
        # The running process takes the decision while `slow` still blocks.
        self.wait_for(lambda: [e for e in self.events("live1") if e["type"] == "NodeFinished"
                               and e["payload"]["nodeId"] == "gate"],
                      what="the running engine to finish the gate")
        self.assertIsNone(p.poll(), "the run is still running")
        self.assertNotEqual(self.node("live1", "slow")["state"], "finished")
        with open(self.path("release"), "w"):
            pass
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err)
        self.assertTrue(json.loads(out)["outputs"]["decision"]["gate"]["approved"])

    # ---- signals ----

    def signal_module(self, name="sig.lua", wait_props="", before=""):
        return self.write(name, """
            local outputs = smithers.outputs {
              ci = z.object { sha = z.string() },
              r = z.object { ok = z.boolean() },
            }
            return smithers(function(ctx)
              local ci = ctx:outputMaybe(outputs.ci, "ci")
              return Workflow { name = "sig",
                Sequence {
                  %s
                  smithers.WaitForEvent { id = "ci", output = outputs.ci, event = "ci-green" %s },
                  Task { id = "after", output = outputs.r, { ok = ci ~= nil } },
                },
              }
            end)
            """ % (before, wait_props))

    def test_a_signal_after_the_wait_is_consumed_on_resume(self):
        wf = self.signal_module()
        r, out = self.up_waiting(wf, "s1")
        self.assertEqual(out["status"], "waiting-event")
        self.assertIn("smithers signal s1 ci-green", r.stderr)
        s = self.run_cli("signal", "s1", "ci-green", "--data", '{"sha": "abc"}', "--json")
        self.assertEqual(s.code, 0, s)
        self.assertEqual(s.json()["seq"], 0)
        r = self.resume(wf, "s1")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["ci"]["ci"], {"sha": "abc"})
        row = self.query("SELECT * FROM _smithers_signals WHERE run_id = 's1'")[0]
        self.assertEqual((row["status"], row["consumed_by_node"]), ("consumed", "ci"))
        types = self.types("s1")
        self.assertEqual(types.count("SignalReceived"), 1)
        self.assertEqual(types.count("SignalConsumed"), 1)

    def test_a_signal_sent_before_the_wait_is_kept_until_it_gets_there(self):
        # The wait is behind a command that blocks on a file; the signal
        # arrives while it runs, and only then is the command released.
        slow = ('Task { id = "first", output = outputs.r, env = { D = %r }, command = { "sh", "-c", '
                '[[touch "$D/first.started"; while [ ! -f "$D/release" ]; do sleep 0.02; done; '
                'echo \'{"ok": true}\']] } },' % self.dir)
        wf = self.signal_module(before=slow)
        p = self.start_up(wf, None, "s2")
        self.wait_for(lambda: os.path.exists(self.path("first.started")),
                      what="the first task to start")
        s = self.run_cli("signal", "s2", "ci-green", "--data", '{"sha": "early"}')
        self.assertEqual(s.code, 0, s)
        self.assertNotIn("NodeWaitingEvent", self.types("s2"))
        with open(self.path("release"), "w"):
            pass
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(json.loads(out)["outputs"]["ci"]["ci"], {"sha": "early"})
        types = self.types("s2")
        self.assertLess(types.index("SignalReceived"), types.index("NodeWaitingEvent"))

    def test_a_signal_for_a_wait_not_yet_mounted_is_stored(self):
        # The Signal mounts only after the gate's task has an output.
        wf = self.write("late.lua", """
            local outputs = smithers.outputs {
              a = z.object { ok = z.boolean() }, ev = z.object { n = z.integer() } }
            return smithers(function(ctx)
              local a = ctx:outputMaybe(outputs.a, "a")
              return Workflow { name = "late",
                Task { id = "a", output = outputs.a, needsApproval = true, owner = "alice",
                       { ok = true } },
                a and smithers.Signal { id = "go", output = outputs.ev } or nil,
              }
            end)
            """)
        self.up_waiting(wf, "s3")
        s = self.run_cli("signal", "s3", "go", "--data", '{"n": 5}')
        self.assertEqual(s.code, 0, s)
        self.assertIn("no wait for \"go\" yet", s.stderr)
        self.run_cli("approve", "s3", "--node", "a", "--by", "alice")
        r = self.resume(wf, "s3")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["ev"]["go"], {"n": 5})

    def test_invalid_signal_data_is_refused_with_the_violations(self):
        wf = self.signal_module()
        self.up_waiting(wf, "s4")
        r = self.run_cli("signal", "s4", "ci-green", "--data", '{"sha": 42, "x": 1}')
        self.assertEqual(r.code, 4, r)
        self.assertIn("$.sha", r.stderr)
        self.assertIn("does not match output \"ci\"", r.stderr)
        r = self.run_cli("signal", "s4", "ci-green", "--data", '{"sha": ')
        self.assertEqual(r.code, 4, r)
        self.assertIn("not valid JSON", r.stderr)
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_signals")[0]["n"], 0)
        self.assertNotIn("SignalReceived", self.types("s4"))

    def test_correlation_and_one_consumer_per_signal(self):
        wf = self.write("corr.lua", """
            local outputs = smithers.outputs { ev = z.object { n = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "corr",
                Sequence {
                  smithers.WaitForEvent { id = "w1", output = outputs.ev, event = "e",
                                          correlationId = "order-1" },
                  smithers.WaitForEvent { id = "w2", output = outputs.ev, event = "e" },
                },
              }
            end)
            """)
        self.up_waiting(wf, "c1")
        self.run_cli("signal", "c1", "e", "--data", '{"n": 1}', "--correlation-id", "order-2")
        r = self.resume(wf, "c1")
        self.assertEqual(r.code, 3, r)  # w1 ignores order-2
        self.run_cli("signal", "c1", "e", "--data", '{"n": 2}', "--correlation-id", "order-1")
        r = self.resume(wf, "c1")
        self.assertEqual(r.code, 0, r)
        out = r.json()["outputs"]["ev"]
        # w1 took the matching signal; w2 (any correlation) the older order-2 one.
        self.assertEqual(out, {"w1": {"n": 2}, "w2": {"n": 1}})
        rows = self.query("SELECT seq, status, consumed_by_node FROM _smithers_signals "
                          "ORDER BY seq")
        self.assertEqual([(x["seq"], x["status"], x["consumed_by_node"]) for x in rows],
                         [(0, "consumed", "w2"), (1, "consumed", "w1")])

    def test_wait_timeouts_apply_on_timeout(self):
        for on_timeout, code, state in (("fail", 1, "failed"), ("continue", 0, "finished"),
                                        ("skip", 0, "skipped")):
            wf = self.signal_module("t-%s.lua" % on_timeout,
                                    ', timeoutMs = %d, onTimeout = "%s"' % (HOUR, on_timeout))
            run = "to-" + on_timeout
            _, out = self.up_waiting(wf, run)
            self.assertIn("timeoutAtMs", out["waiting"][0])
            self.assertEqual(self.resume(wf, run).code, 3)  # not yet
            r = self.resume(wf, run, env=self.later(HOUR + 1000))
            self.assertEqual(r.code, code, r)
            self.assertEqual(self.node(run, "ci")["state"], state, on_timeout)
            if on_timeout == "fail":
                self.assertEqual(r.json()["error"]["cause"]["code"], "WAIT_TIMEOUT")
            else:
                self.assertEqual(r.json()["outputs"]["r"]["after"], {"ok": False})

    # ---- timers ----

    def test_a_timer_survives_restarts_and_fires_once(self):
        wf = self.write("timer.lua", """
            local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "timer",
                Sequence {
                  smithers.Timer { id = "cool", duration = "1h" },
                  Task { id = "after", output = outputs.r, { ok = true } },
                },
              }
            end)
            """)
        r, out = self.up_waiting(wf, "t1")
        self.assertEqual(out["status"], "waiting-timer")
        due = out["waiting"][0]["firesAtMs"]
        self.assertIn("timer \"cool\" is due at", r.stderr)
        r2, out2 = self.up_waiting(wf, "t1", "--resume", env=self.later(HOUR // 2))
        self.assertEqual(out2["waiting"][0]["firesAtMs"], due, "the fire time must not move")
        r = self.resume(wf, "t1", env=self.later(HOUR + 1000))
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["r"]["after"], {"ok": True})
        types = self.types("t1")
        self.assertEqual((types.count("TimerCreated"), types.count("TimerFired")), (1, 1))
        fired = [e for e in self.events("t1") if e["type"] == "TimerFired"][0]["payload"]
        self.assertEqual(fired["firesAtMs"], due)
        self.assertEqual(self.node("t1", "cool")["state"], "finished")
        # Resuming the finished run does not fire it again.
        self.assertEqual(self.resume(wf, "t1", env=self.later(2 * HOUR)).code, 0)
        self.assertEqual(self.types("t1").count("TimerFired"), 1)

    def test_a_timer_until_a_past_time_fires_at_once(self):
        wf = self.write("until.lua", """
            local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "until",
                smithers.Timer { id = "t", ["until"] = "2020-01-01T00:00:00Z" },
                Task { id = "after", output = outputs.r, { ok = true } },
              }
            end)
            """)
        self.up_ok(wf, None, "t2")

    def test_bad_timers_are_refused(self):
        for props, msg in (('duration = "soon"', "not a duration"),
                           ('["until"] = "tomorrow"', "not an ISO 8601 time"),
                           ('duration = "1s", ["until"] = "2030-01-01T00:00:00Z"',
                            "exactly one of duration and until"),
                           ("", "exactly one of duration and until")):
            wf = self.write("bad.lua", """
                local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
                return smithers(function(ctx)
                  return Workflow { name = "bad", smithers.Timer { id = "t", %s } }
                end)
                """ % props)
            r = self.up(wf, None, "bad")
            self.assertEqual(r.code, 4, r)
            self.assertIn(msg, r.stderr)
        self.assert_nothing_written()

    def test_bad_wait_props_are_refused_before_anything_is_written(self):
        cases = (
            ('smithers.Approval { id = "a", output = outputs.d, owner = "x", onDeny = "maybe" }',
             'onDeny must be'),
            ('smithers.Approval { id = "a", output = outputs.d, owner = "x", escalateAfterMs = 5 }',
             'needs a "fallbackOwner"'),
            ('smithers.Approval { id = "a", output = outputs.d, owner = "x", request = 5 }',
             '"request" must be a table'),
            ('Task { id = "t", output = outputs.d, needsApproval = true, owner = "x", '
             'onDeny = "continue", { approved = true } }', 'needs an Approval node'),
            ('smithers.WaitForEvent { id = "w", output = outputs.d }', 'needs an event'),
            ('smithers.WaitForEvent { id = "w", output = outputs.d, event = "e", '
             'onTimeout = "later" }', 'onTimeout must be'),
            ('smithers.WaitForEvent { id = "w", event = "e" }', '"output"'),
            ('smithers.Timer { id = "t", duration = "1s", output = outputs.d }', 'has no output'),
        )
        for component, msg in cases:
            wf = self.write("bad.lua", """
                local outputs = smithers.outputs { d = smithers.approvalDecision }
                return smithers(function(ctx)
                  return Workflow { name = "bad", %s }
                end)
                """ % component)
            r = self.up(wf, None, "bad")
            self.assertEqual(r.code, 4, (component, r))
            self.assertIn(msg, r.stderr, component)
        self.assert_nothing_written()

    def test_inspect_shows_approvals_and_signals(self):
        wf = self.signal_module()
        self.up_waiting(wf, "i1")
        self.run_cli("signal", "i1", "ci-green", "--data", '{"sha": "s"}', "--by", "ci-bot")
        self.resume(wf, "i1")
        j = self.inspect("i1")
        [sig] = j["signals"]
        self.assertEqual((sig["name"], sig["status"], sig["receivedBy"], sig["payload"]),
                         ("ci-green", "consumed", "ci-bot", {"sha": "s"}))
        self.assertEqual(sig["consumedBy"], {"nodeId": "ci", "iteration": 0})
        text = self.run_cli("inspect", "i1").stdout
        self.assertIn("#0 ci-green consumed by ci", text)

    # ---- cancel ----

    def test_cancelling_a_waiting_run(self):
        wf = self.approval_module()
        self.up_waiting(wf, "k1")
        r = self.run_cli("cancel", "k1")
        self.assertEqual(r.code, 0, r)
        j = self.inspect("k1")
        self.assertEqual(j["run"]["status"], "cancelled")
        self.assertEqual(self.node("k1", "gate")["state"], "cancelled")
        r = self.run_cli("approve", "k1", "--node", "gate", "--by", "alice")
        self.assertEqual(r.code, 4, r)
        self.assertIn("is cancelled", r.stderr)
        self.assertEqual(self.run_cli("approvals", "--json").json()["approvals"], [])


if __name__ == "__main__":
    main()
