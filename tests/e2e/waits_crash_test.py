#!/usr/bin/env python3
"""SIGKILL around durable waits: while a run waits in-process, while a decision
or a signal is being recorded (the `approve`/`signal` process is killed at a
random moment), and while the run applies them. After every kill the run is
resumed; in the end every decision and every signal was applied exactly once.

Seeded: CRASH_SEED=<n> reproduces a failing run (the seed is printed)."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import time

from smithers_e2e import BIN, E2ETest, main

WORKFLOW = r"""
local outputs = smithers.outputs {
  decision = smithers.approvalDecision,
  ev = z.object { n = z.integer() },
  step = z.object { node = z.string() },
}
local function after(id, log)
  return Task { id = id .. "-done", output = outputs.step,
    command = { "sh", "-c", [[echo "$SMITHERS_NODE_ID $$" >> ]] .. log ..
                [[; sleep 0.15; printf '{"node":"%s"}' "$SMITHERS_NODE_ID"]] } }
end
return smithers(function(ctx)
  local log = ctx.input.log
  return Workflow { name = "waits-crash",
    Parallel {
      Sequence { smithers.Approval { id = "a1", output = outputs.decision, owner = "alice" },
                 after("a1", log) },
      Sequence { smithers.Approval { id = "a2", output = outputs.decision, owner = "bob",
                                     onDeny = "continue" },
                 after("a2", log) },
      Sequence { smithers.WaitForEvent { id = "e1", output = outputs.ev, event = "go" },
                 after("e1", log) },
      Sequence { smithers.WaitForEvent { id = "d1", output = outputs.ev, event = "dup" },
                 after("d1", log) },
      Sequence { smithers.WaitForEvent { id = "d2", output = outputs.ev, event = "dup" },
                 after("d2", log) },
      Sequence { Task { id = "slow", output = outputs.step,
                        command = { "sh", "-c", "sleep 0.5; echo '{\"node\":\"slow\"}'" } } },
    },
  }
end)
"""

# What the test sends, in a random order: (command args, description).
ACTIONS = [
    (["approve", "r", "--node", "a1", "--by", "alice"], "approve a1"),
    (["deny", "r", "--node", "a2", "--by", "bob", "--note", "no"], "deny a2"),
    (["signal", "r", "go", "--data", '{"n": 1}'], "signal go"),
    (["signal", "r", "dup", "--data", '{"n": 2}'], "signal dup"),
    (["signal", "r", "dup", "--data", '{"n": 3}'], "signal dup"),
]


class WaitsCrashTest(E2ETest):
    # FULL, explicitly: that nothing is lost across kills is what is tested.
    synchronous = "FULL"

    def test_kills_around_waits_lose_nothing_and_double_nothing(self):
        seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
        print("CRASH_SEED=%d" % seed)
        rng = random.Random(seed)
        kills = 0
        for trial in range(4):
            with self.subTest(trial=trial, seed=seed):
                kills += self.trial(rng, "t%d" % trial)
        print("%d SIGKILLs of `up` over 4 runs" % kills)
        self.assertGreater(kills, 0, "the schedule never killed a run (seed %d)" % seed)

    def cli(self, args, kill_after=None):
        """Runs a CLI command, SIGKILLing it after `kill_after` s. True if it exited 0."""
        p = subprocess.Popen([BIN] + args + ["--db", self.db] + self.sync_args(), cwd=self.dir,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kill_after is not None:
            time.sleep(kill_after)
            p.kill()
        _, err = p.communicate(timeout=30)
        return p.returncode, err

    def run_exists(self):
        """Whether run r is in the database (which a kill may have left half-created)."""
        if not os.path.exists(self.db):
            return False
        try:
            return bool(self.query("SELECT 1 FROM _smithers_runs WHERE run_id = 'r'"))
        except sqlite3.OperationalError:  # killed before the first migration committed
            return False

    def recorded(self, desc):
        """How many times the action `desc` is in the database (decisions: 0 or 1)."""
        if desc.startswith(("approve", "deny")):
            node = desc.split()[1]
            rows = self.query("SELECT status FROM _smithers_approvals WHERE node_id = ?", node)
            return int(bool(rows) and rows[0]["status"] != "requested")
        name = desc.split()[1]
        return self.query("SELECT COUNT(*) AS n FROM _smithers_signals WHERE name = ?",
                          name)[0]["n"]

    def trial(self, rng, name):
        self.db = self.path(name + ".db")
        wf = self.write(name + ".lua", WORKFLOW)
        log = self.path(name + ".log")
        inp = json.dumps({"log": log})
        pending = list(ACTIONS)
        rng.shuffle(pending)
        started = False
        kills = 0
        for _ in range(25):
            args = ["up", wf, "--run-id", "r", "--db", self.db] + self.sync_args()
            args += ["--resume"] if started else ["--input", inp]
            up = subprocess.Popen([BIN] + args, cwd=self.dir, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
            self._procs.append(up)
            deadline = time.monotonic() + rng.uniform(0.01, 0.7)
            # Meanwhile, send the next action (killing its process at random).
            if pending and self.run_exists():
                cmd, desc = pending[0]
                before = self.recorded(desc)
                kill_after = rng.choice([None, None, rng.uniform(0, 0.02)])
                code, err = self.cli(cmd, kill_after)
                after = self.recorded(desc)
                self.assertLessEqual(after - before, 1, desc + " recorded twice")
                if after > before:
                    pending.pop(0)
                else:
                    # Killed before its commit (or refused: the decision must wait
                    # until the run has asked for it): nothing was recorded.
                    self.assertNotEqual(code, 0, "%s exited 0 but is not recorded: %s" % (desc, err))
            remaining = deadline - time.monotonic()
            if remaining > 0:
                try:
                    up.wait(timeout=remaining)
                except subprocess.TimeoutExpired:
                    pass
            if up.poll() is None:
                up.send_signal(signal.SIGKILL)
                kills += 1
            out, err = up.communicate(timeout=30)
            started = started or self.run_exists()
            if up.returncode == 0:
                break
            self.assertIn(up.returncode, (3, -signal.SIGKILL), err)
        # Whatever was not sent yet goes now (the run has asked for every decision).
        while pending:
            cmd, desc = pending.pop(0)
            code, err = self.cli(cmd)
            self.assertEqual(code, 0, err)
        r = self.run_cli("up", wf, "--run-id", "r", "--resume", timeout=60)
        self.assertEqual(r.code, 0, r)
        self.check(r.json(), log, kills)
        return kills

    def check(self, out, log, kills):
        outs = out["outputs"]
        self.assertEqual(outs["decision"]["a1"]["approved"], True)
        self.assertEqual(outs["decision"]["a2"]["approved"], False)
        self.assertEqual(outs["ev"]["e1"], {"n": 1})
        self.assertEqual(sorted([outs["ev"]["d1"]["n"], outs["ev"]["d2"]["n"]]), [2, 3])
        signals = self.query("SELECT * FROM _smithers_signals ORDER BY seq")
        self.assertEqual(len(signals), 3, "each signal stored once")
        self.assertTrue(all(s["status"] == "consumed" for s in signals), signals)
        consumers = [(s["consumed_by_node"], s["consumed_iteration"]) for s in signals]
        self.assertEqual(len(set(consumers)), 3, "distinct consumers: %s" % consumers)
        by_seq = {s["seq"]: json.loads(s["payload_json"]) for s in signals}
        for s in signals:
            self.assertEqual(outs["ev"][s["consumed_by_node"]], by_seq[s["seq"]])
        events = self.events("r")
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        types = [e["type"] for e in events]
        self.assertEqual(types.count("ApprovalGranted"), 1)
        self.assertEqual(types.count("ApprovalDenied"), 1)
        self.assertEqual(types.count("SignalReceived"), 3)
        consumed = [e["payload"]["signalSeq"] for e in events if e["type"] == "SignalConsumed"]
        self.assertEqual(sorted(consumed), [0, 1, 2], "each signal consumed once")
        finished = [e["payload"]["nodeId"] for e in events if e["type"] == "NodeFinished"]
        self.assertEqual(len(finished), len(set(finished)), "a node finished twice: %s" % finished)
        rows = self.query("SELECT node_id FROM _smithers_outputs")
        self.assertEqual(len(rows), 11)


if __name__ == "__main__":
    main()
