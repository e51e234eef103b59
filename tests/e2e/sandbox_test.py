#!/usr/bin/env python3
"""Command tasks with a `sandbox` (docs/sandbox.md), run by the real binary
in real bubblewrap: what the confined process may do (its workspace) and every
way out it tries (the database, files outside the workspace, the network,
the engine's environment) refused; an unknown or unusable runtime fails the
task without running anything."""

import glob
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading

from gateway_test import spawn_gateway
from smithers_e2e import BIN, SOURCE_DIR, E2ETest, main, pid_alive

# One command task; its output is {exitCode, stdout, stderr}.
TASK = """
local outputs = smithers.outputs { r = z.object { exitCode = z.integer(), stdout = z.string(),
                                                  stderr = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "sbx",
    Task { id = "probe", output = outputs.r, parse = "text", SANDBOX,
           command = { "sh", "-c", ctx.input.script } } }
end)
"""


class SandboxTest(E2ETest):
    def probe(self, script, sandbox="sandbox = true", env=None):
        """Runs `script` in a sandboxed command task whose workspace is the
        test's directory (where the database is); returns its output."""
        path = self.write("probe.lua", TASK.replace("SANDBOX", sandbox))
        r = self.run_cli("up", path, "--input", json.dumps({"script": script}), cwd=self.dir,
                         env=env)
        self.assertEqual(r.code, 0, r)
        return r.json()["outputs"]["r"]["probe"]

    def test_the_workspace_is_writable_and_nothing_else_is(self):
        out = self.probe("id -u; echo hi > made-inside; cat made-inside; "
                         "touch /etc/escape /usr/escape \"$HOME/escape\" 2>&1; "
                         "ls /root /home 2>&1; echo done")
        self.assertEqual(out["exitCode"], 0, out)
        lines = out["stdout"].splitlines()
        self.assertEqual(lines[:2], ["65534", "hi"], out)
        self.assertEqual(lines[-1], "done")
        with open(self.path("made-inside")) as f:
            self.assertEqual(f.read(), "hi\n")
        for p in ("/etc/escape", "/usr/escape", os.path.expanduser("~/escape")):
            self.assertFalse(os.path.exists(p), p)
        self.assertRegex(out["stdout"], r"/etc/escape': Read-only file system")

    def test_volumes_are_shown_read_only_unless_asked_and_never_the_database(self):
        data = tempfile.mkdtemp(prefix="smithers-vol-")
        cache = tempfile.mkdtemp(prefix="smithers-vol-")
        self.addCleanup(shutil.rmtree, data, True)
        self.addCleanup(shutil.rmtree, cache, True)
        with open(os.path.join(data, "fixture.txt"), "w") as f:
            f.write("fixture\n")
        os.chmod(cache, 0o777)  # the sandbox's uid 65534 writes in it
        sandbox = ('sandbox = { volumes = { { host = "%s", container = "/fixtures" }, '
                   '{ host = "%s", container = "/cache", readonly = false } } }' % (data, cache))
        out = self.probe("cat /fixtures/fixture.txt; echo x > /fixtures/new 2>&1; "
                         "echo cached > /cache/made; echo end", sandbox)
        self.assertEqual(out["exitCode"], 0, out)
        self.assertIn("fixture\n", out["stdout"])
        self.assertRegex(out["stderr"], r"/fixtures/new: Read-only file system")
        self.assertFalse(os.path.exists(os.path.join(data, "new")))
        with open(os.path.join(cache, "made")) as f:
            self.assertEqual(f.read(), "cached\n")
        # The folder holding the database, and a port without a container,
        # fail the task before anything runs.
        path = self.write("probe.lua", TASK.replace(
            "SANDBOX", 'sandbox = { volumes = { { host = "%s", container = "/d" } } }' % self.dir))
        r = self.run_cli("up", path, "--input", json.dumps({"script": "touch ran"}), cwd=self.dir)
        self.assertEqual(r.code, 1, r)
        self.assertIn("holds the engine's database", r.stdout + r.stderr)
        self.assertFalse(os.path.exists(self.path("ran")))
        path = self.write("probe.lua", TASK.replace(
            "SANDBOX", "sandbox = { allowNetwork = true, ports = { 8080 } }"))
        r = self.run_cli("up", path, "--input", json.dumps({"script": "touch ran"}), cwd=self.dir)
        self.assertEqual(r.code, 4, r)
        self.assertIn("sandbox.ports", r.stderr)

    def test_the_database_is_never_visible(self):
        self.probe("true")  # the database exists from here on
        self.assertTrue(os.path.getsize(self.db) > 0)
        out = self.probe("for f in smithers.db smithers.db-wal smithers.db-shm; do "
                         "head -c 16 $f | od -c | head -1; done 2>&1; "
                         "cp smithers.db stolen 2>&1; echo end")
        self.assertNotIn("SQLite", out["stdout"], out)
        self.assertFalse(os.path.exists(self.path("stolen")) and
                         open(self.path("stolen"), "rb").read(6) == b"SQLite")

    def test_no_network_unless_allowed(self):
        # A loopback listener of the test's: the sandbox has a network of its
        # own (nothing listens there) unless allowNetwork.
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        self.addCleanup(server.close)
        port = server.getsockname()[1]
        accepted = []

        def accept():
            try:
                while True:
                    c, _ = server.accept()
                    accepted.append(c)
                    c.close()
            except OSError:
                pass

        threading.Thread(target=accept, daemon=True).start()
        script = ("python3 -c 'import socket,sys; s=socket.socket(); "
                  "r=s.connect_ex((\"127.0.0.1\", %d)); print(r)'" % port)
        refused = self.probe(script)
        self.assertNotEqual(refused["stdout"].strip(), "0", refused)
        self.assertEqual(accepted, [])
        allowed = self.probe(script, "sandbox = { allowNetwork = true }")
        self.assertEqual(allowed["stdout"].strip(), "0", allowed)
        self.wait_for(lambda: accepted, what="the allowed connection")

    def test_the_engine_environment_does_not_reach_it(self):
        out = self.probe("env", env={"SMITHERS_TEST_SECRET": "hunter2-not-for-children"})
        self.assertNotIn("hunter2", out["stdout"])
        self.assertIn("PATH=", out["stdout"])

    def test_an_unknown_or_unusable_runtime_runs_nothing(self):
        marker = self.path("ran")
        for sandbox, why in (('sandbox = { runtime = "chroot" }',
                              'unknown sandbox runtime "chroot" (known: bubblewrap, podman, docker, kubernetes)'),):
            path = self.write("probe.lua", TASK.replace("SANDBOX", sandbox))
            r = self.run_cli("up", path, "--input", json.dumps({"script": "touch " + marker}),
                             cwd=self.dir)
            self.assertEqual(r.code, 1, r)
            cause = r.json()["error"]["cause"]
            self.assertEqual(cause["code"], "SANDBOX_UNAVAILABLE", r)
            self.assertIn(why, cause["message"])
            self.assertFalse(os.path.exists(marker), "the command ran unconfined")
            failed = [e for e in self.events(r.json()["runId"]) if e["type"] == "SandboxFailed"]
            self.assertEqual(failed[0]["payload"]["error"], "SANDBOX_UNAVAILABLE", failed)
        # A workspace the sandbox would have to make writable: /, or a
        # system folder.
        for cwd in ("/", "/etc"):
            path = self.write("probe.lua", TASK.replace("SANDBOX", "sandbox = true, cwd = %r" % cwd))
            r = self.run_cli("up", path, "--input", json.dumps({"script": "touch " + marker}),
                             cwd=self.dir)
            self.assertEqual(r.code, 1, r)
            cause = r.json()["error"]["cause"]
            self.assertEqual(cause["code"], "SANDBOX_UNAVAILABLE", r)
            self.assertIn("a system folder", cause["message"])
            self.assertFalse(os.path.exists(marker))
        # Bad props are refused before anything runs.
        for sandbox, why in (("sandbox = { network = true }",
                              "unknown prop sandbox.network (known: runtime, allowNetwork, egress, image, "
                              "memoryLimit, pidsLimit, cpuLimit, ports, volumes)"),
                             ("sandbox = { image = '' }", "sandbox.image must be an image's name"),
                             ("sandbox = { image = 'debian' }",
                              "the bubblewrap runtime takes no image"),
                             ("sandbox = { memoryLimit = 'lots' }",
                              "sandbox.memoryLimit must be bytes"),
                             ("sandbox = { memoryLimit = '1k' }", "at least 4 MiB"),
                             ("sandbox = { pidsLimit = 0 }",
                              "sandbox.pidsLimit must be a whole number of processes"),
                             ("sandbox = { cpuLimit = -1 }", "sandbox.cpuLimit must be a number"),
                             ("sandbox = 'yes'", '"sandbox" must be true, false or a table'),
                             ("sandbox = { allowNetwork = 1 }", "sandbox.allowNetwork must be a boolean")):
            path = self.write("probe.lua", TASK.replace("SANDBOX", sandbox))
            r = self.run_cli("up", path, "--input", json.dumps({"script": "touch " + marker}),
                             cwd=self.dir)
            self.assertEqual(r.code, 4, r)
            self.assertIn(why, r.stderr)
            self.assertFalse(os.path.exists(marker))
        static = self.write("static.lua", """
            local outputs = smithers.outputs { v = z.object { x = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "s", Task { id = "t", output = outputs.v, sandbox = true,
                                                   { x = 1 } } }
            end)
            """)
        r = self.run_cli("up", static)
        self.assertEqual(r.code, 4, r)
        self.assertIn('"sandbox" applies to command tasks only', r.stderr)

    def limited(self, sandbox, script):
        """Runs `script` in a task with `sandbox`; returns the run's error cause."""
        path = self.write("limited.lua", TASK.replace("SANDBOX", sandbox))
        r = self.run_cli("up", path, "--input", json.dumps({"script": script}), cwd=self.dir)
        self.assertEqual(r.code, 1, r)
        return r.json()["error"]["cause"]

    def test_memory_and_process_limits_hold_and_are_reported(self):
        # 40 sleepers at once in a sandbox that holds 8 processes (bubblewrap's
        # two included): forks are refused, and the failure says why.
        marker = self.path("forked")
        cause = self.limited("sandbox = { pidsLimit = 8 }",
                             "n=0; for i in $(seq 40); do sleep 30 & n=$((n+1)); done 2>/dev/null; "
                             "echo $n > forked; exit 1")
        self.assertEqual(cause["code"], "SANDBOX_LIMIT_EXCEEDED", cause)
        self.assertIn("the sandbox's process limit of 8 was reached", cause["message"])
        self.assertFalse(os.path.exists(marker) and open(marker).read().strip() == "40")
        # 64 MiB held by a shell with a 16 MiB limit: the kernel kills it.
        cause = self.limited("sandbox = { memoryLimit = '16m' }",
                             "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x} > held")
        self.assertEqual(cause["code"], "SANDBOX_LIMIT_EXCEEDED", cause)
        self.assertIn("the sandbox's memory limit of 16 MiB was reached", cause["message"])
        self.assertFalse(os.path.exists(self.path("held")))
        # The attempt records its sandbox and the limit that ended it.
        run_id = self.query("SELECT run_id FROM _smithers_runs ORDER BY created_at_ms DESC "
                            "LIMIT 1")[0]["run_id"]
        attempt = self.inspect(run_id)["nodes"][0]["attempts"][0]
        self.assertEqual(attempt["sandbox"]["memoryLimit"], 16 << 20, attempt)
        self.assertIn("memory limit of 16 MiB was reached", attempt["sandbox"]["limitReached"])
        human = self.run_cli("inspect", run_id)
        self.assertIn("attempt 1: in the bubblewrap sandbox: the sandbox's memory limit",
                      human.stdout)
        # And its events: the sandbox made, then failed with the reason.
        sandbox_events = [e for e in self.events(run_id) if e["type"].startswith("Sandbox")]
        self.assertEqual([e["type"] for e in sandbox_events],
                         ["SandboxCreated", "SandboxShipped", "SandboxFailed"])
        self.assertEqual(sandbox_events[0]["payload"]["sandbox"]["memoryLimit"], 16 << 20)
        self.assertEqual(sandbox_events[2]["payload"]["error"], "SANDBOX_LIMIT_EXCEEDED")
        self.assertIn("memory limit of 16 MiB", sandbox_events[2]["payload"]["limitReached"])
        # Its record says the same.
        [row] = self.inspect(run_id)["sandboxes"]
        self.assertEqual((row["kind"], row["status"], row["errorCode"]),
                         ("command", "failed", "SANDBOX_LIMIT_EXCEEDED"), row)
        # Within its limits a task runs as usual, and its frame records them.
        out = self.probe("echo fine", "sandbox = { memoryLimit = 64 * 1024 * 1024, pidsLimit = 64, "
                         "cpuLimit = 0.5 }")
        self.assertEqual(out["stdout"], "fine\n", out)
        # No cgroup of an engine that has ended is left behind (other tests'
        # engines may hold theirs right now).
        self.assertEqual(self.cgroups(lambda pid: not pid_alive(pid)), [])

    def cli_agent(self, exe_body, sandbox, *extra, exe_dir=None):
        """Runs a task whose agent is a stand-in claude (`exe_body`, a shell
        script) with `sandbox`; returns the Result and the executable's path."""
        exe = os.path.join(exe_dir or self.dir, "claude")
        with open(exe, "w") as f:
            f.write("#!/bin/sh\n" + exe_body)
        os.chmod(exe, 0o755)
        path = self.write("cli.lua", """
            local outputs = smithers.outputs { seen = z.object { uid = z.integer(),
                                                                 db = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "cli",
                Task { id = "agent", output = outputs.seen,
                       agent = smithers.ClaudeCodeAgent { executable = %s, sandbox = %s },
                       "Say who you are" } }
            end)
            """ % (json.dumps(exe), sandbox))
        return self.run_cli("up", path, *extra, cwd=self.dir), exe

    def test_a_cli_agent_runs_in_its_sandbox(self):
        # A stand-in claude in the workspace (rootDir): it runs as 65534,
        # cannot read the database beside it, and writes into rootDir; with
        # --require-sandbox it is allowed because it is confined.
        reply = ('u=$(id -u); if head -c 15 smithers.db 2>/dev/null | grep -q SQLite; then d=1; '
                 'else d=0; fi; echo made > made-by-agent; '
                 'printf \'{"type":"result","subtype":"success","is_error":false,'
                 '"result":"{\\\\"uid\\\\":%s,\\\\"db\\\\":%s}"}\\n\' "$u" "$d"\n')
        r, _ = self.cli_agent(reply, "true", "--require-sandbox")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["seen"]["agent"], {"uid": 65534, "db": 0}, r)
        self.assertEqual(self.read("made-by-agent"), "made\n")
        meta = json.loads(self.query("SELECT meta_json FROM _smithers_attempts")[0]["meta_json"])
        self.assertEqual(meta["agents"][0]["sandbox"],
                         {"runtime": "bubblewrap", "allowNetwork": False})
        # Unconfined, the same agent reads the database: the sandbox made the
        # difference.
        os.remove(self.db)
        r, _ = self.cli_agent(reply, "false")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["seen"]["agent"]["db"], 1, r)

    def test_a_cli_agent_egress_attempts_are_recorded_in_its_meta(self):
        # The stand-in claude asks the engine's proxy for a host that is not
        # listed (refused, 403), then answers; the attempt is in its meta.
        reply = ("python3 -c '\n"
                 "import http.client\n"
                 "c = http.client.HTTPConnection(\"127.0.0.1\", 3128, timeout=10)\n"
                 "c.set_tunnel(\"127.0.0.1\", 9)\n"
                 "try:\n"
                 "    c.connect()\n"
                 "except OSError:\n"
                 "    pass\n' >/dev/null 2>&1\n"
                 'printf \'{"type":"result","subtype":"success","is_error":false,'
                 '"result":"{\\\\"uid\\\\":%s,\\\\"db\\\\":0}"}\\n\' "$(id -u)"\n')
        r, _ = self.cli_agent(reply, "{ egress = { allow = { 'api.example.invalid:443' } } }")
        self.assertEqual(r.code, 0, r)
        meta = json.loads(self.query("SELECT meta_json FROM _smithers_attempts")[0]["meta_json"])
        self.assertEqual(meta["agents"][0]["egressAttempts"],
                         [{"target": "127.0.0.1:9", "allowed": False}], meta)

    def test_a_cli_agent_past_its_limit_or_out_of_sight_fails_closed(self):
        # Past its memory limit: killed, and the failure says why.
        r, _ = self.cli_agent("x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}\n",
                              "{ memoryLimit = '16m' }")
        self.assertEqual(r.code, 1, r)
        cause = r.json()["error"]["cause"]
        self.assertEqual(cause["code"], "SANDBOX_LIMIT_EXCEEDED", cause)
        self.assertIn("memory limit of 16 MiB was reached", cause["message"])
        # An executable the sandbox would not show: refused before it starts,
        # not retried.
        elsewhere = tempfile.mkdtemp(prefix="smithers-e2e-exe-")
        self.addCleanup(shutil.rmtree, elsewhere)
        os.remove(self.db)
        r, exe = self.cli_agent("touch %s/ran\n" % elsewhere, "true", exe_dir=elsewhere)
        self.assertEqual(r.code, 1, r)
        cause = r.json()["error"]["cause"]
        self.assertEqual(cause["code"], "SANDBOX_UNAVAILABLE", cause)
        self.assertIn('the program "%s" is outside what the sandbox shows' % exe,
                      cause["message"])
        self.assertFalse(os.path.exists(os.path.join(elsewhere, "ran")))
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_attempts")[0]["n"], 1)
        # A bad sandbox on an agent is bad input.
        r, _ = self.cli_agent("exit 0\n", "{ allowNetwork = true, bogus = 1 }")
        self.assertEqual(r.code, 4, r)
        self.assertIn("unknown prop sandbox.bogus", r.stderr)

    def test_the_example_runs_confined(self):
        ws = self.path("ws")
        os.mkdir(ws)
        r = self.run_cli("up", os.path.join(SOURCE_DIR, "examples", "sandbox.lua"), "--input",
                         json.dumps({"workspace": ws}), "--require-sandbox")
        self.assertEqual(r.code, 0, r)
        out = r.json()["outputs"]
        self.assertEqual(out["build"]["build"], {"lines": 1000, "uid": 65534}, r)
        self.assertEqual(len(self.read("ws/numbers.txt").splitlines()), 1000)
        probe = out["probe"]["probe"]["stdout"]
        self.assertIn("/etc/escape': Read-only file system", probe)
        self.assertIn("CapEff:\t0000000000000000", probe)
        self.assertFalse(os.path.exists("/etc/escape"))

    @staticmethod
    def cgroups(owner):
        """The sandbox cgroup folders (smithers-<engine pid>-<n>) whose
        engine pid satisfies `owner`."""
        found = []
        for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu"):
            for dirpath, dirnames, _ in os.walk(root):
                for d in dirnames:
                    if d.startswith("smithers-") and owner(int(d.split("-")[1])):
                        found.append(os.path.join(dirpath, d))
        return found

    # A task that sleeps in its sandbox on its first attempt and prints
    # "again" on the next: started in the background, up to its sleep.
    RESUMABLE = "if [ -f started ]; then echo again; else touch started; exec sleep 300; fi"

    def start_sleeping(self, sandbox, run_id):
        path = self.write(run_id + ".lua", TASK.replace("SANDBOX", sandbox))
        engine = self.start_up(path, {"script": self.RESUMABLE}, run_id)
        self.wait_for(lambda: os.path.exists(self.path("started")), what="the sandboxed task")
        return path, engine

    def resume_again(self, path, run_id):
        """Resumes the killed run: the task, never completed, runs once more."""
        r = self.run_cli("up", path, "--run-id", run_id, "--resume", cwd=self.dir)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["r"]["probe"]["stdout"], "again\n", r)

    def test_an_engine_killed_mid_task_leaves_no_sandbox_behind(self):
        # SIGKILL the engine while its limited sandbox runs: the sandbox dies
        # with it, the resumed run runs the task again (it never completed),
        # and the dead engine's cgroups are removed.
        path, engine = self.start_sleeping("sandbox = { pidsLimit = 32, memoryLimit = '64m' }",
                                           "killed-run")
        held = self.wait_for(lambda: self.cgroups(lambda pid: pid == engine.pid),
                             what="the task's cgroups")
        self.assertEqual(len(held), 2, held)  # memory and pids
        sleepers = self.read_procs(held)
        self.assertTrue(sleepers, held)
        engine.kill()
        engine.wait()
        self.wait_for(lambda: not any(pid_alive(p) for p in sleepers), what="the sandbox to die")
        self.resume_again(path, "killed-run")
        self.assertEqual(self.cgroups(lambda pid: pid == engine.pid), [])

    def test_an_engine_killed_mid_task_leaves_no_egress_proxy_behind(self):
        path, engine = self.start_sleeping(
            "sandbox = { egress = { allow = { 'example.invalid:443' } } }", "egress-killed")
        mine = glob.glob("/tmp/smithers-egress-%d-*" % engine.pid)
        self.assertEqual(len(mine), 1, mine)
        self.assertTrue(os.path.exists(os.path.join(mine[0], "proxy.sock")))
        engine.kill()
        engine.wait()
        self.assertTrue(os.path.isdir(mine[0]), "nothing of the killed engine's removed it")
        self.resume_again(path, "egress-killed")
        self.assertFalse(os.path.exists(mine[0]), "the next engine removes it")

    @staticmethod
    def read_procs(dirs):
        pids = set()
        for d in dirs:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(line) for line in f if line.strip())
        return pids

    def test_selftest_refuses_every_attempt(self):
        r = self.run_cli("sandbox", "selftest", "--json")
        self.assertEqual(r.code, 0, r)
        report = r.json()
        self.assertTrue(report["allRefused"], report)
        attempts = {p["attempt"]: p for p in report["probes"]}
        for name in ("run as root", "use a capability", "write outside the workspace",
                     "remount a system folder read-write", "read the engine's database",
                     "read files outside the workspace", "see the engine's processes",
                     "reach the host's network without allowNetwork", "fork past pidsLimit = 8",
                     "allocate past memoryLimit = 16 MiB", "use more CPU than cpuLimit = 0.1",
                     "reach a host not on the egress list"):
            self.assertIn(name, attempts)
            self.assertTrue(attempts[name]["refused"], attempts[name])
        self.assertIn("uid 65534", attempts["run as root"]["detail"])
        self.assertIn("403 Forbidden", attempts["reach a host not on the egress list"]["detail"])
        self.assertIn("memory limit of 16 MiB was reached",
                      attempts["allocate past memoryLimit = 16 MiB"]["detail"])
        human = self.run_cli("sandbox", "selftest")
        self.assertEqual(human.code, 0, human)
        self.assertIn("12 of 12 escape attempts refused by bubblewrap", human.stdout)
        self.assertIn("refused       write outside the workspace", human.stderr)
        unknown = self.run_cli("sandbox", "selftest", "--runtime", "chroot")
        self.assertEqual(unknown.code, 4, unknown)
        self.assertIn('unknown sandbox runtime "chroot"', unknown.stderr)

    def test_a_listener_in_another_network_namespace_is_unreachable(self):
        # A namespace of the test's joined to the host by a veth pair, with a
        # listener in it: the host reaches it; a sandbox without allowNetwork
        # does not.
        ns, host_if = "smt%d" % os.getpid(), "smh%d" % os.getpid()
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", ns])
        subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "peer0",
                        "netns", ns], check=True)
        self.addCleanup(subprocess.run, ["ip", "link", "del", host_if], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "addr", "add", "10.213.7.1/30", "dev", host_if], check=True)
        subprocess.run(["ip", "link", "set", host_if, "up"], check=True)
        for cmd in (["ip", "addr", "add", "10.213.7.2/30", "dev", "peer0"],
                    ["ip", "link", "set", "peer0", "up"], ["ip", "link", "set", "lo", "up"]):
            subprocess.run(["ip", "netns", "exec", ns] + cmd, check=True)
        ready = self.path("listening")
        listener = subprocess.Popen(
            ["ip", "netns", "exec", ns, "python3", "-c",
             "import socket; s=socket.socket(); s.bind(('10.213.7.2', 8765)); s.listen(8); "
             "open(%r, 'w').close(); [s.accept()[0].close() for _ in iter(int, 1)]" % ready])
        self.addCleanup(listener.wait)
        self.addCleanup(listener.kill)
        self.wait_for(lambda: os.path.exists(ready), what="the namespace's listener")
        probe = socket.create_connection(("10.213.7.2", 8765), timeout=5)
        probe.close()  # the host reaches it
        script = ("python3 -c 'import socket; s=socket.socket(); s.settimeout(3); "
                  "print(s.connect_ex((\"10.213.7.2\", 8765)))'")
        refused = self.probe(script)
        self.assertNotEqual(refused["stdout"].strip(), "0", refused)
        allowed = self.probe(script, "sandbox = { allowNetwork = true }")
        self.assertEqual(allowed["stdout"].strip(), "0", allowed)

    def test_egress_reaches_only_the_listed_hosts(self):
        # Two listeners of the host's: through the engine's proxy the sandbox
        # reaches the listed one only, and neither directly; every attempt
        # is recorded in the attempt's meta.
        ports = []
        for _ in range(2):
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen(8)
            self.addCleanup(server.close)
            ports.append(server.getsockname()[1])

            def serve(s=server):
                while True:
                    try:
                        conn, _ = s.accept()
                    except OSError:
                        return
                    # It speaks second: nothing of its can arrive with the
                    # proxy's reply to CONNECT (http.client reads ahead).
                    conn.recv(16)
                    conn.sendall(b"hello from %d" % s.getsockname()[1])
                    conn.close()
            threading.Thread(target=serve, daemon=True).start()
        allowed, denied = ports
        script = ("python3 -c '\n"
                  "import http.client, os, socket\n"
                  "print(os.environ.get(\"HTTPS_PROXY\"))\n"
                  "for port in (%d, %d):\n"
                  "    c = http.client.HTTPConnection(\"127.0.0.1\", 3128, timeout=10)\n"
                  "    c.set_tunnel(\"127.0.0.1\", port)\n"
                  "    try:\n"
                  "        c.connect(); c.sock.sendall(b\"hi\"); print(c.sock.recv(100).decode())\n"
                  "    except OSError as e:\n"
                  "        print(\"refused\", e)\n"
                  "try:\n"
                  "    socket.create_connection((\"127.0.0.1\", %d), timeout=5); print(\"direct reached\")\n"
                  "except OSError:\n"
                  "    print(\"direct refused\")\n'") % (allowed, denied, allowed)
        out = self.probe(script, 'sandbox = { egress = { allow = { "127.0.0.1:%d" } } }' % allowed)
        lines = out["stdout"].splitlines()
        self.assertEqual(lines[0], "http://127.0.0.1:3128", out)
        self.assertEqual(lines[1], "hello from %d" % allowed, out)
        self.assertIn("refused", lines[2])
        self.assertIn("403", lines[2])
        self.assertEqual(lines[3], "direct refused", out)
        run_id = self.query("SELECT run_id FROM _smithers_runs ORDER BY created_at_ms DESC "
                            "LIMIT 1")[0]["run_id"]
        attempt = self.inspect(run_id)["nodes"][0]["attempts"][0]
        self.assertEqual(attempt["sandbox"]["egress"], {"allow": ["127.0.0.1:%d" % allowed]})
        self.assertEqual(attempt["sandbox"]["egressAttempts"],
                         [{"target": "127.0.0.1:%d" % allowed, "allowed": True},
                          {"target": "127.0.0.1:%d" % denied, "allowed": False}])
        done = [e for e in self.events(run_id) if e["type"] == "SandboxCompleted"]
        self.assertEqual(done[0]["payload"]["egressAttempts"], attempt["sandbox"]["egressAttempts"])
        # The allow-list is checked as the module loads.
        for sandbox, why in (
                ("sandbox = { allowNetwork = true, egress = { allow = { 'a.b:1' } } }",
                 "it cannot go with allowNetwork = true"),
                ("sandbox = { runtime = 'podman', image = 'x', egress = { allow = { 'a.b:1' } } }",
                 "the allow-list works with the bubblewrap runtime only"),
                ("sandbox = { egress = { allow = { 'a.b' } } }", '"a.b" is not host:port'),
                ("sandbox = { egress = { allow = { 'a/b:1' } } }", "a host is letters"),
                ("sandbox = { egress = { allow = { 'a.b:70000' } } }", "a port is 1 to 65535"),
                ("sandbox = { egress = { allow = {} } }", "sandbox.egress must be a table")):
            path = self.write("probe.lua", TASK.replace("SANDBOX", sandbox))
            r = self.run_cli("up", path, "--input", json.dumps({"script": "true"}), cwd=self.dir)
            self.assertEqual(r.code, 4, r)
            self.assertIn(why, r.stderr)

    def test_a_workflow_default_and_require_sandbox(self):
        # The Workflow's sandbox applies to its command tasks; a task's own
        # (false too) wins.
        path = self.write("mixed.lua", """
            local outputs = smithers.outputs { r = z.object { exitCode = z.integer(),
                                                              stdout = z.string(),
                                                              stderr = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "mixed", sandbox = true, Sequence {
                Task { id = "inherits", output = outputs.r, parse = "text",
                       command = { "id", "-u" } },
                Task { id = "optsOut", output = outputs.r, parse = "text", sandbox = false,
                       command = { "id", "-u" } } } }
            end)
            """)
        r = self.run_cli("up", path, cwd=self.dir)
        self.assertEqual(r.code, 0, r)
        rows = r.json()["outputs"]["r"]
        self.assertEqual(rows["inherits"]["stdout"].strip(), "65534", rows)
        self.assertEqual(rows["optsOut"]["stdout"].strip(), str(os.getuid()), rows)
        # --require-sandbox: the unconfined task fails and runs nothing; the
        # confined one runs.
        marker = self.path("unconfined-ran")
        strict = self.write("strict.lua", """
            local outputs = smithers.outputs { r = z.object { exitCode = z.integer(),
                                                              stdout = z.string(),
                                                              stderr = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "strict", Parallel {
                Task { id = "confined", output = outputs.r, parse = "text", sandbox = true,
                       command = { "true" } },
                Task { id = "bare", output = outputs.r, parse = "text", continueOnFail = true,
                       command = { "touch", "MARKER" } } } }
            end)
            """.replace("MARKER", marker))
        r = self.run_cli("up", strict, "--require-sandbox", "--run-id", "strict", cwd=self.dir)
        self.assertEqual(r.code, 0, r)
        self.assertFalse(os.path.exists(marker), "an unconfined task ran under --require-sandbox")
        self.assertIn("confined", r.json()["outputs"]["r"])
        inspect = self.run_cli("inspect", "strict")
        self.assertIn("only in a sandbox (--require-sandbox) and the task has none", inspect.stdout,
                      inspect)
        # Without the flag it runs.
        r = self.run_cli("up", strict, cwd=self.dir)
        self.assertEqual(r.code, 0, r)
        self.assertTrue(os.path.exists(marker))

    def test_a_gateway_run_is_confined_too(self):
        wf_dir = self.path("workflows")
        os.makedirs(wf_dir)
        self.write("workflows/probe.lua", TASK.replace("SANDBOX", "sandbox = true"))
        token = self.run_cli("token", "issue", "--scopes", "run:write").stdout.strip()
        gateway, port, _ = spawn_gateway(
            self, [BIN, "--db", self.db, "gateway", "--workflows", wf_dir, "--port", "0"],
            cwd=self.dir)

        def rpc(method, params):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/v1/rpc/" + method, json.dumps(params),
                      {"Authorization": "Bearer " + token})
            reply = json.loads(c.getresponse().read())
            c.close()
            return reply

        script = "id -u; head -c 6 smithers.db; echo; echo end"
        r = rpc("launchRun", {"workflow": "probe", "input": {"script": script}})
        self.assertTrue(r["ok"], r)
        run_id = r["payload"]["runId"]
        out = self.wait_for(lambda: rpc("getNodeOutput", {"runId": run_id, "nodeId": "probe"})
                            ["payload"].get("row"), timeout=30, what="the probe's output")
        self.assertEqual(out["stdout"].splitlines()[0], "65534", out)
        self.assertNotIn("SQLite", out["stdout"], out)
        gateway.terminate()
        gateway.wait(timeout=30)


if __name__ == "__main__":
    main()
