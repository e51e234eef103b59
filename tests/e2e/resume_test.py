#!/usr/bin/env python3
"""Resume rules end to end: a finished run is not run again, a run's input and
module source cannot change (unless --force for the source), failed, cancelled
and crashed runs continue where they stopped without re-running finished tasks."""

import hashlib
import os
import signal

from smithers_e2e import E2ETest, main, pid_alive


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# A task that appends a line to $COUNT each time it runs, then prints {"n": <lines>}.
COUNTING = ('command = { "sh", "-c", [[echo x >> "$COUNT"; '
            'echo "{\\"n\\": $(wc -l < "$COUNT")}"]] }')


class ResumeTest(E2ETest):
    def counting_module(self, name="wf.lua", second="", input_schema=True):
        schema = (", { input = z.object { who = z.string() } }" if input_schema else "")
        return self.write(name, """
            local outputs = smithers.outputs { r = z.object { n = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "counting",
                Task { id = "count", output = outputs.r, env = { COUNT = %r }, %s },
                %s
              }
            end%s)
            """ % (self.path("count.txt"), COUNTING, second, schema))

    def attempts(self, run):
        return self.query("SELECT node_id, attempt, state FROM _smithers_attempts "
                          "WHERE run_id = ? ORDER BY node_id, attempt", run)

    def test_resume_a_finished_run_returns_its_outputs_and_runs_nothing(self):
        wf = self.counting_module()
        first = self.up_ok(wf, {"who": "a"}, "done-run")
        self.assertEqual(first["outputs"]["r"]["count"], {"n": 1})
        events = self.events("done-run")
        attempts = self.attempts("done-run")
        r = self.up(wf, None, "done-run", "--resume")
        self.assertEqual(r.code, 0, r)
        again = r.json()
        self.assertEqual(again["status"], "finished")
        self.assertEqual(again["outputs"], first["outputs"])
        self.assertEqual(self.read("count.txt"), "x\n", "a finished task ran again")
        self.assertEqual(self.events("done-run"), events)
        self.assertEqual(self.attempts("done-run"), attempts)
        # The same input may be given again.
        r = self.up(wf, {"who": "a"}, "done-run", "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.read("count.txt"), "x\n")

    def test_resume_with_a_different_input_is_refused(self):
        wf = self.counting_module()
        self.up_ok(wf, {"who": "first"}, "in-run")
        events = self.events("in-run")
        r = self.up(wf, {"who": "second"}, "in-run", "--resume")
        self.assertEqual(r.code, 4, r)
        self.assertIn('{"who":"first"}', r.stderr)
        self.assertIn('{"who":"second"}', r.stderr)
        self.assertEqual(self.events("in-run"), events)
        self.assertEqual(self.inspect("in-run")["run"]["input"], {"who": "first"})

    def test_resume_after_editing_the_module_needs_force(self):
        wf = self.write("wf.lua", """
            local outputs = smithers.outputs { r = z.object { n = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "edited",
                Task { id = "count", output = outputs.r, env = { COUNT = %r }, %s },
                Task { id = "fragile", output = outputs.r,
                       command = { "sh", "-c", [[echo broken >&2; exit 1]] } },
              }
            end)
            """ % (self.path("count.txt"), COUNTING))
        old_hash = sha256_file(wf)
        r = self.up(wf, None, "edit-run")
        self.assertEqual(r.code, 1, r)
        self.assertEqual(r.json()["error"]["nodeId"], "fragile")
        # Fix the module.
        with open(wf) as f:
            source = f.read()
        with open(wf, "w") as f:
            f.write(source.replace("echo broken >&2; exit 1", "echo '{\"n\": 99}'"))
        new_hash = sha256_file(wf)
        events = self.events("edit-run")

        r = self.up(wf, None, "edit-run", "--resume")
        self.assertEqual(r.code, 4, r)
        self.assertIn("changed", r.stderr)
        self.assertIn(old_hash[:12], r.stderr)
        self.assertIn(new_hash[:12], r.stderr)
        self.assertIn("--force", r.stderr)
        self.assertEqual(self.events("edit-run"), events, "a refused resume wrote events")
        self.assertEqual(self.inspect("edit-run")["run"]["status"], "failed")

        r = self.up(wf, None, "edit-run", "--resume", "--force")
        self.assertEqual(r.code, 0, r)
        out = r.json()
        self.assertEqual(out["outputs"]["r"], {"count": {"n": 1}, "fragile": {"n": 99}})
        self.assertEqual(self.read("count.txt"), "x\n", "a finished task ran again")
        run = self.inspect("edit-run")["run"]
        self.assertEqual(run["status"], "finished")
        self.assertEqual(run["workflowHash"], new_hash)
        forced = run["config"]["forcedSourceChange"]
        self.assertEqual((forced["from"], forced["to"]), (old_hash, new_hash))
        self.assertIsInstance(forced["atMs"], int)
        self.assertEqual([(a["node_id"], a["attempt"], a["state"]) for a in self.attempts("edit-run")],
                         [("count", 1, "finished"), ("fragile", 1, "failed"),
                          ("fragile", 2, "finished")])
        seqs = [e["seq"] for e in self.events("edit-run")]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))

    def test_resume_a_failed_run_retries_only_what_failed(self):
        flag = self.path("fixed")
        wf = self.counting_module(second="""
                Task { id = "gate", output = outputs.r,
                       command = { "sh", "-c", [[test -e %s && echo '{"n": 7}']] } },
            """ % flag, input_schema=False)
        r = self.up(wf, None, "fail-run")
        self.assertEqual(r.code, 1, r)
        self.assertEqual(self.inspect("fail-run")["run"]["status"], "failed")
        open(flag, "w").close()
        r = self.up(wf, None, "fail-run", "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["r"], {"count": {"n": 1}, "gate": {"n": 7}})
        self.assertEqual(self.read("count.txt"), "x\n")
        events = self.events("fail-run")
        resumed = [e for e in events if e["type"] == "RunStatusChanged"]
        self.assertEqual(len(resumed), 1)
        self.assertEqual(resumed[0]["payload"]["previous"], "failed")
        self.assertTrue(resumed[0]["payload"]["resumed"])

    def test_resume_after_the_process_was_killed(self):
        pidfile = self.path("sleep.pid")
        wf = self.counting_module(second="""
                Task { id = "slow", output = outputs.r, env = { P = %r },
                       command = { "sh", "-c", [[
                         if [ "$SMITHERS_ATTEMPT" = 1 ]; then echo $$ > "$P"; exec sleep 30; fi
                         echo '{"n": 5}']] } },
            """ % pidfile, input_schema=False)
        proc = self.start_up(wf, None, "crash-run")
        self.wait_for(lambda: os.path.exists(pidfile) and os.path.getsize(pidfile) > 0,
                      what="the slow command to start")
        self.assertEqual(self.node("crash-run", "slow")["state"], "in-progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        sleep_pid = int(self.read("sleep.pid"))
        # The command dies with its engine (PR_SET_PDEATHSIG).
        self.wait_for(lambda: not pid_alive(sleep_pid), timeout=5, what="the orphan to die")
        self.assertEqual(self.inspect("crash-run")["run"]["status"], "running")

        r = self.up(wf, None, "crash-run", "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["r"], {"count": {"n": 1}, "slow": {"n": 5}})
        self.assertEqual(self.read("count.txt"), "x\n", "a finished task ran again")
        slow = self.node("crash-run", "slow")
        self.assertEqual([a["state"] for a in slow["attempts"]], ["cancelled", "finished"])
        self.assertEqual(slow["attempts"][0]["error"]["code"], "ATTEMPT_ABANDONED")
        seqs = [e["seq"] for e in self.events("crash-run")]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))


if __name__ == "__main__":
    main()
