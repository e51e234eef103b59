#!/usr/bin/env python3
"""Command tasks in the podman runtime (docs/sandbox.md "Containers"), run by
the real binary in real podman with an image built here from Debian's
busybox-static (nothing is pulled): what the container may do, and its
limits, its network and the engine's database refused; a missing image runs
nothing; a task killed on its timeout leaves no container behind."""

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

from smithers_e2e import E2ETest, main

IMAGE = "localhost/smithers-e2e-busybox:2"
APPLETS = ["sh", "id", "cat", "echo", "touch", "head", "od", "ls", "sleep", "seq", "true",
           "printf", "tr", "wc", "env", "grep", "readlink", "cut", "date", "mount"]
# What this machine kind needs of podman (docs/sandbox.md "Containers"): crun
# refuses its mix of cgroup v1 and v2, and rlimits cannot be raised here.
CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""
CONF_PATH = "/etc/containers/containers.conf"

TASK = """
local outputs = smithers.outputs { r = z.object { exitCode = z.integer(), stdout = z.string(),
                                                  stderr = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "ctr",
    Task { id = "probe", output = outputs.r, parse = "text", EXTRA
           sandbox = { runtime = "podman", image = ctx.input.image, SANDBOX },
           command = { "sh", "-c", ctx.input.script } } }
end)
"""


def podman(*args, **kw):
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=300, **kw)


class ContainerTest(E2ETest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if shutil.which("podman") is None or shutil.which("busybox") is None:
            raise unittest.SkipTest("podman or busybox is not installed (scripts/install-deps)")
        if not os.path.exists(CONF_PATH):
            try:
                with open(CONF_PATH, "w") as f:
                    f.write(CONF)
                cls.addClassCleanup(os.remove, CONF_PATH)
            except OSError as e:
                print("container_test: cannot write %s: %s" % (CONF_PATH, e))
        if podman("image", "exists", IMAGE).returncode != 0:
            root = tempfile.mkdtemp(prefix="smithers-image-")
            try:
                os.makedirs(os.path.join(root, "bin"))
                os.makedirs(os.path.join(root, "tmp"))
                shutil.copy("/usr/bin/busybox", os.path.join(root, "bin", "busybox"))
                for applet in APPLETS:
                    os.symlink("busybox", os.path.join(root, "bin", applet))
                tar = os.path.join(root, "..", os.path.basename(root) + ".tar")
                with tarfile.open(tar, "w") as t:
                    t.add(root, arcname=".")
                r = podman("import", "--change", "ENV PATH=/bin", tar, IMAGE)
                os.remove(tar)
                assert r.returncode == 0, r.stderr
            finally:
                shutil.rmtree(root)
        # The machine itself, before any code of ours: a host whose kernel or
        # policy lets no container start is skipped, saying why.
        r = podman("run", "--rm", "--network", "none", IMAGE, "true")
        if r.returncode != 0:
            raise unittest.SkipTest("podman cannot run a container on this machine: " +
                                    r.stderr.strip())

    def setUp(self):
        super().setUp()
        # The container runs as uid 65534 (docker and podman cannot map it to
        # the engine's user as bubblewrap does): the workspace is writable to it.
        os.chmod(self.dir, 0o777)

    def run_task(self, script, sandbox="", extra=""):
        path = self.write("ctr.lua", TASK.replace("SANDBOX", sandbox).replace("EXTRA", extra))
        return self.run_cli("up", path, "--input", json.dumps({"script": script, "image": IMAGE}),
                            cwd=self.dir, timeout=120)

    def test_a_sandbox_component_runs_its_worker_in_a_container(self):
        # The image has no libc for the engine's binary: a worker of our own
        # (busybox sh) writes the bundle; the engine checks it and applies it.
        os.makedirs(self.path("ws/src"))
        os.chmod(self.path("ws"), 0o777)
        with open(self.path("ws/src/a.txt"), "w") as f:
            f.write("old\n")
        worker = ('touch "$SMITHERS_SANDBOX_REQUEST_PATH/x" 2>/dev/null && ro=false || ro=true; '
                  'cd "$SMITHERS_SANDBOX_RESULT_PATH" && mkdir patches && echo new > patches/1 && '
                  'printf \'{"status":"finished","outputs":{"r":{"w":{"uid":%s,"ro":%s}}},'
                  '"patches":[{"path":"src/a.txt","operation":"modify","file":"patches/1"}]}\' '
                  '"$(id -u)" "$ro" > README.md')
        self.write("child.lua", "return smithers(function() return Workflow { name = 'c' } end)")
        path = self.write("box.lua", """
            local outputs = smithers.outputs { r = z.object { uid = z.integer(), ro = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "box",
                smithers.Sandbox { id = "w", output = outputs.r, workflow = "child.lua",
                  runtime = "podman", image = ctx.input.image, rootDir = ctx.input.ws,
                  files = { "src" }, autoAcceptDiffs = true,
                  command = { "sh", "-c", ctx.input.worker } } }
            end)
            """)
        r = self.run_cli("up", path, "--input", json.dumps(
            {"image": IMAGE, "ws": self.path("ws"), "worker": worker}), timeout=300)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["r"]["w"], {"uid": 65534, "ro": True})
        with open(self.path("ws/src/a.txt")) as f:
            self.assertEqual(f.read(), "new\n")

    def test_the_container_is_confined_to_its_workspace(self):
        self.run_task("true")  # the database exists from here on
        os.makedirs(self.path(".smithers"))
        with open(self.path(".smithers/state"), "w") as f:
            f.write("engine state")
        r = self.run_task(
            "id -u; id -g; echo \"$GREETING\"; echo made > made-inside; "
            "touch /etc/escape /bin/escape 2>&1; head -c 16 smithers.db | od -c | head -1; "
            "cat .smithers/state; ls /sys/class/net; echo end",
            sandbox="memoryLimit = '64m'", extra='env = { GREETING = "hello" },')
        self.assertEqual(r.code, 0, r)
        out = r.json()["outputs"]["r"]["probe"]
        lines = out["stdout"].splitlines()
        self.assertEqual(lines[:3], ["65534", "65534", "hello"], out)
        self.assertEqual(self.read("made-inside"), "made\n")
        self.assertIn("Read-only file system", out["stdout"])
        self.assertNotIn("S   Q   L   i   t   e", out["stdout"])  # masked: /dev/null
        self.assertNotIn("engine state", out["stdout"])  # .smithers/: an empty tmpfs
        net = lines[lines.index("end") - 1]
        self.assertEqual(net, "lo", out)  # --network none: a loopback of its own only
        self.assertEqual(lines[-1], "end")
        self.assertFalse(os.path.exists("/etc/escape"))
        # The container is gone after the task.
        left = podman("ps", "-a", "--filter", "label=smithers.sandbox", "--format", "{{.Names}}")
        self.assertEqual(left.stdout.strip(), "", left)

    def test_limits_hold(self):
        # 40 sleepers with room for 8 processes: forks are refused.
        # (busybox's shell gives up at the first refused fork.)
        r = self.run_task("for i in $(seq 40); do sleep 30 & echo $i > forked; done; exit 3",
                          sandbox="pidsLimit = 8")
        self.assertEqual(r.code, 1, r)
        self.assertLess(int(self.read("forked")), 40)
        self.assertNotIn("code 3", r.json()["error"]["cause"]["message"], r)  # never got there
        # 64 MiB held by a shell allowed 16 MiB: the kernel kills it.
        r = self.run_task("x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x} > held",
                          sandbox="memoryLimit = '16m'")
        self.assertEqual(r.code, 1, r)
        self.assertFalse(os.path.exists(self.path("held")))

    def test_a_missing_image_runs_nothing(self):
        path = self.write("ctr.lua", TASK.replace("SANDBOX", "").replace("EXTRA", ""))
        r = self.run_cli("up", path, "--input", json.dumps(
            {"script": "touch ran", "image": "localhost/no-such-image:0"}), cwd=self.dir,
            timeout=120)
        self.assertEqual(r.code, 1, r)
        cause = r.json()["error"]["cause"]
        self.assertEqual(cause["code"], "SANDBOX_UNAVAILABLE", cause)
        self.assertIn("the podman sandbox cannot start here", cause["message"])
        self.assertFalse(os.path.exists(self.path("ran")))

    def test_a_timed_out_task_leaves_no_container(self):
        r = self.run_task("touch started; exec sleep 300", extra="timeoutMs = 3000,")
        self.assertEqual(r.code, 1, r)
        self.assertEqual(r.json()["error"]["cause"]["code"], "TASK_TIMEOUT", r)
        self.assertTrue(os.path.exists(self.path("started")))
        left = podman("ps", "-a", "--filter", "label=smithers.sandbox", "--format", "{{.Names}}")
        self.assertEqual(left.stdout.strip(), "", left)

    def test_a_container_of_a_killed_engine_is_removed_by_the_next(self):
        # SIGKILL the engine while its container runs: nothing removed it, so
        # it is still there; the next engine on this host removes it.
        path = self.write("ctr.lua", TASK.replace("SANDBOX", "").replace("EXTRA", ""))
        engine = self.start_up(path, {"script": "touch started; exec sleep 300", "image": IMAGE})
        self.wait_for(lambda: os.path.exists(self.path("started")), timeout=60,
                      what="the container's task")
        mine = "smithers-sandbox-%d-" % engine.pid
        names = lambda: podman("ps", "--all", "--filter", "label=smithers.sandbox",  # noqa: E731
                               "--format", "{{.Names}}").stdout.split()
        self.assertTrue(any(n.startswith(mine) for n in names()), names())
        engine.kill()
        engine.wait()
        self.assertTrue(any(n.startswith(mine) for n in names()), "killed with its engine?")
        os.remove(self.db)
        r = self.run_task("echo next")
        self.assertEqual(r.code, 0, r)
        self.assertEqual([n for n in names() if n.startswith(mine)], [])

    def test_selftest_refuses_every_attempt(self):
        r = self.run_cli("sandbox", "selftest", "--runtime", "podman", "--image", IMAGE, "--json",
                         timeout=300)
        self.assertEqual(r.code, 0, r)
        report = r.json()
        self.assertTrue(report["allRefused"], report)
        self.assertEqual((report["runtime"], report["image"]), ("podman", IMAGE))
        attempts = {p["attempt"]: p for p in report["probes"]}
        self.assertEqual(len(attempts), 11, attempts)
        self.assertIn("uid 65534", attempts["run as root"]["detail"])
        self.assertIn("memory limit of 16 MiB was reached",
                      attempts["allocate past memoryLimit = 16 MiB"]["detail"])
        self.assertIn("process limit of 8 was reached",
                      attempts["fork past pidsLimit = 8"]["detail"])
        # An image is required by a container runtime, refused by bubblewrap.
        r = self.run_cli("sandbox", "selftest", "--runtime", "podman")
        self.assertEqual(r.code, 4, r)
        self.assertIn("name one with --image", r.stderr)
        r = self.run_cli("sandbox", "selftest", "--image", IMAGE)
        self.assertEqual(r.code, 4, r)
        self.assertIn("the bubblewrap runtime takes no image", r.stderr)


if __name__ == "__main__":
    main()
