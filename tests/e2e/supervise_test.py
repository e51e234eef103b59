#!/usr/bin/env python3
"""`smithers supervise`: resumes runs whose wait is over and runs whose owner
died; two supervisors on one database never run the same task twice."""

import json
import os
import signal
import subprocess
import time

from smithers_e2e import BIN, PYTHON, E2ETest, main

HOUR = 3600 * 1000

# Appends "<run> <node>" to the log, then prints {"ok": true}.
APPEND = """[[import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(os.environ["SMITHERS_RUN_ID"] + " " + os.environ["SMITHERS_NODE_ID"] + "\\n")
print(json.dumps({"ok": True}))]]"""


class SuperviseTest(E2ETest):
    def log_lines(self):
        try:
            return self.read("log.txt").splitlines()
        except FileNotFoundError:
            return []

    def timer_module(self):
        return self.write("timer.lua", """
            local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "timed",
                Sequence {
                  smithers.Timer { id = "wait", duration = "1h" },
                  Task { id = "a", output = outputs.r, command = { %r, "-c", %s, %r } },
                  Task { id = "b", output = outputs.r, command = { %r, "-c", %s, %r } },
                },
              }
            end)
            """ % (PYTHON, APPEND, self.path("log.txt"), PYTHON, APPEND, self.path("log.txt")))

    def supervise(self, *extra, env=None):
        argv = ([BIN, "supervise", "--db", self.db, "--interval", "200ms"] + self.sync_args() +
                list(extra))
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=self.dir, env=dict(os.environ, **(env or {})))
        self._procs.append(p)
        return p

    def statuses(self):
        return {r["run_id"]: r["status"] for r in self.query("SELECT run_id, status FROM _smithers_runs")}

    def test_once_resumes_a_decided_approval(self):
        wf = self.write("gate.lua", """
            local outputs = smithers.outputs { d = smithers.approvalDecision }
            return smithers(function(ctx)
              return Workflow { name = "gate",
                smithers.Approval { id = "gate", output = outputs.d, owner = "alice" } }
            end)
            """)
        self.assertEqual(self.up(wf, None, "g1").code, 3)
        self.assertEqual(self.up(wf, None, "g2").code, 3)
        self.run_cli("approve", "g1", "--node", "gate", "--by", "alice")
        r = self.run_cli("supervise", "--once", timeout=60)
        self.assertEqual(r.code, 0, r)
        self.assertIn("resume g1 (approval of gate approved)", r.stdout)
        self.assertNotIn("resume g2", r.stdout)
        self.assertEqual(self.statuses(), {"g1": "finished", "g2": "waiting-approval"})
        self.assertTrue(os.path.exists(os.path.join(self.dir, "logs", "g1.log")))

    def test_two_supervisors_never_run_a_task_twice(self):
        wf = self.timer_module()
        runs = ["r%d" % i for i in range(8)]
        for run in runs:
            self.assertEqual(self.up(wf, None, run).code, 3)
        self.assertEqual(self.log_lines(), [])
        # Both see every timer due at once.
        later = {"SMITHERS_CLOCK_OFFSET_MS": str(HOUR + 1000)}
        sups = [self.supervise("--max-concurrent", "3", env=later) for _ in range(2)]
        self.wait_for(lambda: all(s == "finished" for s in self.statuses().values()),
                      timeout=60, interval=0.2, what="every run to finish")
        for p in sups:
            p.send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=10)[0] for p in sups]
        lines = self.log_lines()
        self.assertEqual(sorted(lines), sorted("%s %s" % (r, n) for r in runs for n in "ab"),
                         "every task exactly once")
        resumed = [l for out in outs for l in out.splitlines() if " resume " in " " + l]
        self.assertEqual(len(resumed), len(runs), "each run resumed once:\n" + "\n".join(outs))
        for run in runs:
            types = [e["type"] for e in self.events(run)]
            self.assertEqual(types.count("TimerFired"), 1, run)
            self.assertEqual(types.count("RunFinished"), 1, run)

    def test_takes_over_a_run_whose_owner_died(self):
        wf = self.write("slow.lua", """
            local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "slow",
                Sequence {
                  Task { id = "nap", output = outputs.r,
                         command = { %r, "-c", "import time, json; time.sleep(60)" } },
                },
              }
            end)
            """ % PYTHON)
        p = self.start_up(wf, None, "dead1")
        self.wait_for(lambda: os.path.exists(self.db) and self.query(
            "SELECT 1 FROM _smithers_nodes WHERE run_id = 'dead1' AND state = 'in-progress'"),
                      what="the task to start")
        p.kill()  # SIGKILL: the run stays `running`, owned by a dead process
        p.communicate()
        sup = self.supervise()
        self.wait_for(lambda: len(self.node("dead1", "nap")["attempts"]) >= 2, timeout=30,
                      what="a new attempt by the supervisor's child")
        a = self.node("dead1", "nap")["attempts"]
        self.assertEqual(a[0]["error"]["code"], "ATTEMPT_ABANDONED")
        self.assertEqual(a[1]["state"], "in-progress")
        owner = self.inspect("dead1")["run"]["runtimeOwnerId"]
        self.assertIsNotNone(owner)
        self.run_cli("cancel", "dead1")
        self.wait_for(lambda: self.statuses()["dead1"] == "cancelled", timeout=30,
                      what="the cancel")
        sup.send_signal(signal.SIGTERM)
        out, _ = sup.communicate(timeout=10)
        self.assertIn("resume dead1 (owner", out)

    def test_bad_arguments(self):
        r = self.run_cli("supervise", "--interval", "soon")
        self.assertEqual(r.code, 4, r)
        self.assertIn("not a duration", r.stderr)
        r = self.run_cli("supervise", "--once")
        self.assertEqual(r.code, 4, r)
        self.assertIn("no database", r.stderr)


if __name__ == "__main__":
    main()
