#!/usr/bin/env python3
"""The Sandbox component (docs/sandbox.md "The Sandbox component"), run by the
real binary in real bubblewrap: a child module run by `smithers sandbox worker`
on a copy of the files it names; its changes applied at once (autoAcceptDiffs)
or after a durable review decided through the CLI or the Gateway; a denied or
conflicting review, and result bundles crafted to escape, change nothing."""

import glob
import json
import os
import signal
import subprocess
import time

from gateway_test import spawn_gateway
from smithers_e2e import BIN, E2ETest, main

# The child: edits the shipped files, says who it ran as and what it saw.
CHILD = """
local outputs = smithers.outputs { fix = z.object { uid = z.integer(), seen = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "child",
    Task { id = "edit", output = outputs.fix,
      command = { "sh", "-c", SCRIPT } } }
end)
"""
EDIT = (r"""printf "hello\nthere\nworld\n" > src/a.txt; rm src/b.txt; echo new > src/c.txt; """
        r"""printf '{"uid":%s,"seen":"%s"}' "$(id -u)" "$(ls | tr '\n' ' ')" """)

PARENT = """
local outputs = smithers.outputs { fix = z.object { uid = z.integer(), seen = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "parent",
    smithers.Sandbox { id = "fix", output = outputs.fix, workflow = "child.lua",
      rootDir = ctx.input.ws, files = { "src" }, owner = "alice", PROPS } }
end, { input = z.object { ws = z.string() } })
"""


class SandboxComponentTest(E2ETest):
    def setUp(self):
        super().setUp()
        self.ws = self.path("ws")
        os.makedirs(os.path.join(self.ws, "src"))
        self.put("src/a.txt", "hello\nworld\n")
        self.put("src/b.txt", "bye\n")
        self.put("secret.txt", "not shipped\n")

    def put(self, rel, text):
        with open(os.path.join(self.ws, rel), "w") as f:
            f.write(text)

    def read(self, rel):
        p = os.path.join(self.ws, rel)
        if not os.path.exists(p):
            return None
        with open(p) as f:
            return f.read()

    def snapshot(self):
        out = {}
        for root, dirs, files in os.walk(self.ws):
            dirs[:] = [d for d in dirs if d != ".smithers"]
            for f in files:
                p = os.path.join(root, f)
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, self.ws)] = fh.read()
        return out

    def modules(self, props="", script=EDIT, dir=None):
        dir = dir or self.dir
        self.write(os.path.join(dir, "child.lua"), CHILD.replace("SCRIPT", json.dumps(script)))
        return self.write(os.path.join(dir, "parent.lua"), PARENT.replace("PROPS", props))

    def events(self, run_id):
        r = self.run_cli("events", run_id, "--json")
        self.assertEqual(r.code, 0, r)
        return r.json()["events"]

    def types(self, run_id):
        return [e["type"] for e in self.events(run_id)]

    def sandbox_row(self, run_id):
        """The run's one _smithers_sandboxes row, as `inspect --json` shows it."""
        r = self.run_cli("inspect", run_id, "--json")
        self.assertEqual(r.code, 0, r)
        rows = r.json()["sandboxes"]
        self.assertEqual(len(rows), 1, rows)
        return rows[0]

    def test_auto_accept_applies_the_changes_and_the_childs_row_is_the_output(self):
        parent = self.modules("autoAcceptDiffs = true")
        r = self.up(parent, {"ws": self.ws})
        self.assertEqual(r.code, 0, r)
        out = r.json()["outputs"]["fix"]["fix"]
        # Confined (uid 65534), and it saw the shipped files only: not the
        # workspace's other files, not the engine's state.
        self.assertEqual(out["uid"], 65534, out)
        self.assertEqual(out["seen"].split(), ["src"], out)
        self.assertEqual(self.read("src/a.txt"), "hello\nthere\nworld\n")
        self.assertIsNone(self.read("src/b.txt"))
        self.assertEqual(self.read("src/c.txt"), "new\n")
        self.assertEqual(self.read("secret.txt"), "not shipped\n")
        types = self.types(r.json()["runId"])
        want = ["SandboxCreated", "SandboxShipped", "SandboxBundleReceived",
                "SandboxDiffReviewRequested", "SandboxDiffAccepted", "SandboxCompleted",
                "NodeFinished"]
        self.assertEqual([t for t in types if t in want], want)
        # The request and result bundles stay as the record; the worker's
        # own folders are gone.
        attempt = glob.glob(os.path.join(self.ws, ".smithers/sandboxes/*/fix.0/1"))
        self.assertEqual(len(attempt), 1)
        self.assertEqual(sorted(os.listdir(attempt[0])), ["journal", "request", "result"])
        # The record: what ran, where, how it ended and who accepted it.
        row = self.sandbox_row(r.json()["runId"])
        self.assertEqual((row["sandboxId"], row["iteration"], row["attempt"], row["kind"],
                          row["runtime"], row["status"]),
                         ("fix", 0, 1, "sandbox", "bubblewrap", "finished"), row)
        self.assertEqual(row["bundlePath"], os.path.realpath(attempt[0]))
        self.assertEqual((row["patchCount"], row["review"], row["reviewedBy"]),
                         (3, "accepted", "autoAcceptDiffs"), row)
        self.assertGreater(row["requestBytes"], 0)
        self.assertGreater(row["bundleBytes"], 0)
        self.assertIsNotNone(row["remoteRunId"])
        self.assertEqual(row["config"], {"runtime": "bubblewrap", "allowNetwork": False})
        self.assertLessEqual(row["createdAtMs"], row["shippedAtMs"])
        self.assertLessEqual(row["shippedAtMs"], row["completedAtMs"])
        self.assertIsNone(row["errorCode"])
        text = self.run_cli("inspect", r.json()["runId"])
        self.assertIn("SANDBOXES", text.stdout)
        self.assertIn("review accepted by autoAcceptDiffs", text.stdout)

    def test_a_review_is_durable_and_approving_it_applies_the_diff(self):
        parent = self.modules()
        before = self.snapshot()
        r = self.up(parent, {"ws": self.ws})
        self.assertEqual(r.code, 3, r)  # waiting
        run_id = r.json()["runId"]
        self.assertEqual(self.snapshot(), before)  # nothing applied before the decision
        waiting = r.json()["waiting"][0]
        self.assertEqual((waiting["kind"], waiting["owner"]), ("approval", "alice"))
        req = waiting["request"]
        self.assertEqual(req["kind"], "sandbox-diff")
        self.assertEqual(req["title"], "Review the changes of sandbox fix")
        self.assertEqual(sorted((p["path"], p["operation"], p.get("added"), p.get("removed"))
                                for p in req["patches"]),
                         [("src/a.txt", "modify", 1, 0), ("src/b.txt", "delete", 0, 1),
                          ("src/c.txt", "add", 1, 0)])
        self.assertEqual(req["totalDiffLines"], 3)
        listed = self.run_cli("approvals")
        self.assertIn("3 files changed", listed.stdout)
        # The full diff applies to the files as they were with git apply.
        d = self.run_cli("diff", run_id, "--node", "fix")
        self.assertEqual(d.code, 0, d)
        self.assertIn("+there\n", d.stdout)
        copy = self.path("copy")
        subprocess.run(["cp", "-r", self.ws, copy], check=True)
        subprocess.run(["git", "apply", "-p1", "--unsafe-paths", "--directory", "."],
                       input=d.stdout, text=True, cwd=copy, check=True)
        with open(os.path.join(copy, "src/a.txt")) as f:
            self.assertEqual(f.read(), "hello\nthere\nworld\n")
        self.assertFalse(os.path.exists(os.path.join(copy, "src/b.txt")))
        stat = self.run_cli("diff", run_id, "--node", "fix", "--stat")
        self.assertIn("src/c.txt", stat.stdout)
        row = self.sandbox_row(run_id)
        self.assertEqual((row["status"], row["review"], row["patchCount"]),
                         ("shipped", "requested", 3), row)
        # Only a decider may approve; alice may.
        self.assertNotEqual(self.run_cli("approve", run_id, "-n", "fix", "--by", "mallory").code, 0)
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.run_cli("approve", run_id, "-n", "fix", "--by", "alice").code, 0)
        r = self.up(parent, None, run_id, "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["fix"]["fix"]["uid"], 65534)
        self.assertEqual(self.read("src/a.txt"), "hello\nthere\nworld\n")
        self.assertEqual(self.read("src/c.txt"), "new\n")
        self.assertIsNone(self.read("src/b.txt"))
        types = self.types(run_id)
        self.assertLess(types.index("ApprovalGranted"), types.index("SandboxDiffAccepted"))
        row = self.sandbox_row(run_id)
        self.assertEqual((row["attempt"], row["status"], row["review"], row["reviewedBy"]),
                         (1, "finished", "accepted", "alice"), row)
        # Resuming again runs nothing twice.
        r = self.up(parent, None, run_id, "--resume")
        self.assertEqual(self.types(run_id).count("SandboxDiffAccepted"), 1)

    def test_a_denied_review_fails_the_task_and_changes_nothing(self):
        parent = self.modules()
        before = self.snapshot()
        r = self.up(parent, {"ws": self.ws})
        run_id = r.json()["runId"]
        self.assertEqual(self.run_cli("deny", run_id, "-n", "fix", "--by", "alice",
                                      "--note", "too broad").code, 0)
        r = self.up(parent, None, run_id, "--resume")
        self.assertEqual(r.code, 1, r)
        self.assertEqual(self.snapshot(), before)
        ins = self.run_cli("inspect", run_id, "--json")
        self.assertIn("SANDBOX_DIFF_REJECTED", ins.stdout)
        ev = [e for e in self.events(run_id) if e["type"] == "SandboxDiffRejected"]
        self.assertEqual(len(ev), 1)
        self.assertIn("too broad", ev[0]["payload"]["reason"])
        row = self.sandbox_row(run_id)
        self.assertEqual((row["status"], row["review"], row["reviewedBy"], row["errorCode"]),
                         ("failed", "rejected", "alice", "SANDBOX_DIFF_REJECTED"), row)

    def test_deny_with_on_deny_skip_skips_it(self):
        parent = self.modules('onDeny = "skip"')
        r = self.up(parent, {"ws": self.ws})
        run_id = r.json()["runId"]
        self.run_cli("deny", run_id, "-n", "fix", "--by", "alice")
        r = self.up(parent, None, run_id, "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertIn("NodeSkipped", self.types(run_id))
        self.assertIsNotNone(self.read("src/b.txt"))

    def test_a_file_changed_after_shipping_is_a_conflict_and_nothing_is_applied(self):
        parent = self.modules()
        r = self.up(parent, {"ws": self.ws})
        run_id = r.json()["runId"]
        self.put("src/b.txt", "edited meanwhile\n")
        before = self.snapshot()
        self.run_cli("approve", run_id, "-n", "fix", "--by", "alice")
        r = self.up(parent, None, run_id, "--resume")
        self.assertEqual(r.code, 1, r)
        self.assertEqual(self.snapshot(), before)  # all or none: a.txt untouched too
        ins = self.run_cli("inspect", run_id, "--json")
        self.assertIn("SANDBOX_DIFF_CONFLICT", ins.stdout)
        self.assertIn("src/b.txt", ins.stdout)
        # Resumed, the Sandbox runs a new worker on the files as they are now,
        # and its result needs a decision of its own: the earlier approval
        # does not apply it.
        r = self.up(parent, None, run_id, "--resume")
        self.assertEqual(r.code, 3, r)
        self.assertEqual(r.json()["waiting"][0]["request"]["attempt"], 3)
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.run_cli("approve", run_id, "-n", "fix", "--by", "alice").code, 0)
        r = self.up(parent, None, run_id, "--resume")
        self.assertEqual(r.code, 0, r)
        self.assertIsNone(self.read("src/b.txt"))
        self.assertEqual(self.read("src/c.txt"), "new\n")

    def crafted(self, script, props=""):
        """A worker of our own (the `command` prop) that writes `script`'s
        bundle; returns the failed task's error after checking that nothing
        changed in the workspace or outside it."""
        parent = self.modules('command = { "sh", "-c", %s }%s' % (json.dumps(script), props))
        before = self.snapshot()
        r = self.up(parent, {"ws": self.ws})
        self.assertEqual(r.code, 1, r)
        self.assertEqual(self.snapshot(), before)
        self.assertFalse(os.path.exists(self.path("escaped")))
        ins = json.loads(self.run_cli("inspect", r.json()["runId"], "--json").stdout)
        node = [n for n in ins["nodes"] if n["nodeId"] == "fix"][0]
        return node["attempts"][-1]["error"]

    def test_crafted_bundles_are_refused_with_the_reason(self):
        R = 'cd "$SMITHERS_SANDBOX_RESULT_PATH" && mkdir -p patches && echo x > patches/1 && '
        M = 'printf \'{"status":"finished","outputs":{},"patches":[%s]}\' > README.md'
        cases = {
            "traversal": (R + M % '{"path":"../escaped","operation":"add","file":"patches/1"}',
                          r"\.\."),
            "absolute": (R + M % ('{"path":"%s","operation":"add","file":"patches/1"}'
                                  % self.path("escaped")), "absolute"),
            "symlink": ('cd "$SMITHERS_SANDBOX_RESULT_PATH" && mkdir patches && '
                        'ln -s /etc/passwd patches/1 && '
                        + M % '{"path":"src/a.txt","operation":"modify","file":"patches/1"}',
                        "symlink"),
            "unshipped": (R + M % '{"path":"secret.txt","operation":"delete"}', "not shipped"),
            "manifest": (R + r'head -c 5000 /dev/zero | tr "\0" " " > README.md', "README.md"),
        }
        for name, (script, reason) in cases.items():
            with self.subTest(name):
                err = self.crafted(script, ", maxManifestBytes = 4096")
                self.assertEqual(err["code"], "SANDBOX_BUNDLE_INVALID", err)
                self.assertRegex(err["message"], reason)

    def test_the_database_and_system_folders_are_never_shipped(self):
        parent = self.write("p.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { name = "p",
                smithers.Sandbox { id = "fix", output = outputs.r, workflow = "p.lua",
                  rootDir = ctx.input.root, files = { ctx.input.file }, autoAcceptDiffs = true } }
            end)
            """)
        for root, f, why in ((self.dir, "smithers.db", "database"),
                             ("/etc", "passwd", "system folder")):
            with self.subTest(f):
                r = self.up(parent, {"root": root, "file": f})
                self.assertEqual(r.code, 1, r)
                ins = self.run_cli("inspect", r.json()["runId"], "--json")
                self.assertIn(why, ins.stdout)

    def test_bad_props_are_refused_before_anything_runs(self):
        for props, want in (('runtime = "nope"', "unknown sandbox runtime"),
                            ('onDeny = "continue"', "onDeny"),
                            ('ports = { 80 }', "ports"),
                            ('memoryLimit = "1k"', "memoryLimit"),
                            ('workflow = "/etc/x.lua"', "this module's folder")):
            with self.subTest(props):
                r = self.up(self.modules(props), {"ws": self.ws})
                self.assertIn(r.code, (1, 4), r)
                self.assertIn(want, r.stderr + r.stdout)

    def test_a_sigkilled_engine_leaves_no_change_and_resume_runs_a_new_worker(self):
        # The first attempt's child blocks (the test kills the engine while
        # it runs); the second's finishes.
        script = ('if grep -q \'"attempt": 1,\' /run/smithers/request/README.md; then '
                  'touch started; sleep 600; fi; ' + EDIT)
        parent = self.modules("autoAcceptDiffs = true", script=script)
        p = subprocess.Popen([BIN, "--db", self.db] + self.sync_args() +
                             ["up", parent, "--input", json.dumps({"ws": self.ws}),
                              "--run-id", "k1"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self._procs.append(p)
        deadline = time.monotonic() + 30
        marker = os.path.join(self.ws, ".smithers/sandboxes/k1/fix.0/1/work/started")
        while not os.path.exists(marker) and time.monotonic() < deadline:
            self.assertIsNone(p.poll(), p.stderr.read() if p.poll() is not None else "")
            time.sleep(0.02)
        self.assertTrue(os.path.exists(marker))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        self.assertEqual(self.read("src/b.txt"), "bye\n")
        # The record of the killed worker: shipped, committed before it ran.
        row = self.sandbox_row("k1")
        self.assertEqual((row["attempt"], row["status"]), (1, "shipped"), row)
        self.assertIsNotNone(row["shippedAtMs"])
        r = self.up(parent, None, "k1", "--resume", "--force")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.read("src/c.txt"), "new\n")
        row = self.sandbox_row("k1")
        self.assertEqual((row["attempt"], row["status"]), (2, "finished"), row)
        abandoned = [e for e in self.events("k1") if e["type"] == "NodeCancelled"]
        self.assertEqual([e["payload"]["reason"] for e in abandoned], ["abandoned"])
        # The killed worker is gone with its engine (bubblewrap dies with its parent).
        ps = subprocess.run(["pgrep", "-f", "sleep 600"], capture_output=True, text=True)
        self.assertEqual(ps.stdout.strip(), "")

    def test_a_review_approved_through_the_gateway(self):
        wf = self.path("workflows")
        os.makedirs(wf)
        self.modules(dir=wf)
        argv = [BIN, "--db", self.db, "gateway", "--workflows", wf, "--port", "0",
                "--auth", "none"]
        _, port, _ = spawn_gateway(self, argv)
        import http.client

        def rpc(method, params):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/v1/rpc/" + method, json.dumps(params),
                      {"Content-Type": "application/json"})
            try:
                resp = c.getresponse()
                return resp.status, json.loads(resp.read())
            finally:
                c.close()

        def status():
            return rpc("getRun", {"runId": "g1"})[1]["payload"]["status"]

        code, r = rpc("launchRun", {"workflow": "parent", "runId": "g1",
                                    "input": {"ws": self.ws}})
        self.assertEqual(code, 200, r)
        deadline = time.monotonic() + 30
        while status() != "waiting-approval" and time.monotonic() < deadline:
            time.sleep(0.05)
        code, r = rpc("listApprovals", {})
        self.assertEqual(code, 200, r)
        [a] = r["payload"]
        self.assertEqual(a["request"]["kind"], "sandbox-diff")
        self.assertEqual(len(a["request"]["patches"]), 3)
        self.assertEqual(self.read("src/b.txt"), "bye\n")
        # The approver reads the whole diff through the Gateway: what
        # `smithers diff` prints.
        code, r = rpc("getSandboxDiff", {"runId": "g1", "nodeId": "fix"})
        self.assertEqual(code, 200, r)
        d = r["payload"]
        self.assertEqual((d["attempt"], d["patchCount"], d["applied"], d["truncated"]),
                         (1, 3, False, False), d)
        self.assertEqual(d["diff"], self.run_cli("diff", "g1", "--node", "fix").stdout)
        self.assertIn("+there\n", d["diff"])
        self.assertEqual(d["diffBytes"], len(d["diff"].encode()))
        code, r = rpc("getSandboxDiff", {"runId": "g1", "nodeId": "nope"})
        self.assertEqual(r["error"]["code"], "NodeNotFound", r)
        code, r = rpc("getSandboxDiff", {"runId": "g1", "nodeId": "fix", "attempt": 7})
        self.assertEqual(r["error"]["code"], "NodeNotFound", r)
        code, r = rpc("getSandboxDiff", {"runId": "nope", "nodeId": "fix"})
        self.assertEqual(r["error"]["code"], "RunNotFound", r)
        code, r = rpc("listSandboxes", {"runId": "g1"})
        self.assertEqual(code, 200, r)
        [row] = r["payload"]["sandboxes"]
        self.assertEqual((row["sandboxId"], row["status"], row["review"]),
                         ("fix", "shipped", "requested"), row)
        code, r = rpc("submitApproval", {"runId": "g1", "nodeId": "fix", "approved": True,
                                         "note": "ok", "decidedBy": "alice"})
        self.assertEqual(code, 200, r)
        while status() != "finished" and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(status(), "finished")
        self.assertEqual(self.read("src/a.txt"), "hello\nthere\nworld\n")
        self.assertIsNone(self.read("src/b.txt"))
        [row] = rpc("listSandboxes", {"runId": "g1"})[1]["payload"]["sandboxes"]
        self.assertEqual((row["status"], row["review"], row["reviewedBy"]),
                         ("finished", "accepted", "alice"), row)


if __name__ == "__main__":
    main()
