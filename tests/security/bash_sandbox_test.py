#!/usr/bin/env python3
"""The agents' bash tool and its sandbox (issue 11, item 7).

A real agent (the fake OpenAI server, tests/e2e/fake_model_server.py) calls the
bash tool through the real binary; what the commands printed comes back to the
model as tool results, which the fake server logs. Checked, as the user the
suite runs as (root in CI, and that is the case that matters):

- the command runs as uid 65534 with no capabilities, with or without
  allowNetwork;
- the remount attack (`mount -o remount,bind,rw /`, then a write into the
  host's /var/tmp) and other capability use fail, and nothing lands on the host;
- no network without allowNetwork (only `lo`, a loopback listener unreachable);
- no sandbox, no tool: without bubblewrap, or with one that cannot start, the
  call fails with a clear error and runs nothing;
- `unisolatedTools = true` runs the command unisolated and is recorded in the
  attempt (meta and `inspect --json`);
- the database is not visible inside the sandbox, even under rootDir.
"""

import json
import os
import socket
import uuid

from security_e2e import *  # noqa: F401,F403

ZERO_CAPS = "CapEff:\t0000000000000000"


class BashSandboxTest(E2ETest):
    def serve(self, script):
        return self.serve_model(script) + "/v1"

    def bash(self, commands, agent_extra="", root=None, env=None, run_id="b1"):
        """One model turn calls bash once per command, the next one answers.
        Returns (up's result, the tool results the model saw, in order)."""
        root = root or self.path("repo")
        os.makedirs(root, exist_ok=True)
        calls = [{"id": "c%d" % i, "name": "bash", "arguments": {"command": c}}
                 for i, c in enumerate(commands)]
        url = self.serve({"/v1/chat/completions": [
            {"reply": {"tool_calls": calls}},
            {"reply": {"structured": {"done": True}}},
        ]})
        wf = self.write("bash.lua", """
            local outputs = smithers.outputs { r = z.object { done = z.boolean() } }
            local a = smithers.Agent { provider = "openai", model = "m", baseUrl = %r,
              tools = { "bash" }, rootDir = %r, %s }
            return smithers(function(ctx)
              return Workflow { name = "bash",
                Task { id = "t", output = outputs.r, agent = a, "Run the commands" } }
            end)
            """ % (url, root, agent_extra))
        r = self.up(wf, None, run_id, env=dict({"OPENAI_API_KEY": "k"}, **(env or {})))
        self.assertEqual(r.code, 0, r)
        with open(self.path("requests.jsonl")) as f:
            reqs = [json.loads(l) for l in f]
        self.assertEqual(len(reqs), 2, reqs)
        tool_msgs = [m for m in reqs[1]["body"]["messages"] if m["role"] == "tool"]
        self.assertEqual([m["tool_call_id"] for m in tool_msgs], [c["id"] for c in calls])
        return r, [m["content"] for m in tool_msgs]

    def agent_meta(self):
        return json.loads(self.query("SELECT meta_json FROM _smithers_attempts")[0]
                          ["meta_json"])["agents"][0]

    def test_the_command_runs_as_nobody_with_no_capabilities(self):
        for extra in ("", "allowNetwork = true"):
            self.setUp_again()
            _, out = self.bash(["id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status"],
                               extra)
            self.assertTrue(out[0].startswith("exit code 0\n65534\n65534\n"), out[0])
            for cap in ("CapEff", "CapPrm", "CapBnd"):
                self.assertIn(cap + ":\t0000000000000000", out[0])

    def test_the_remount_attack_fails_and_writes_nothing_on_the_host(self):
        marker = "/var/tmp/smithers-sandbox-%s" % uuid.uuid4().hex
        self.addCleanup(lambda: os.path.exists(marker) and os.unlink(marker))
        _, out = self.bash([
            "mount -o remount,bind,rw / && echo REMOUNTED; mount -o remount,rw / && echo "
            "REMOUNTED; mount -o remount,bind,rw /usr && echo REMOUNTED; mkdir -p /var/tmp; "
            "echo pwned > %s && echo WROTE; echo pwned > /usr/%s && echo WROTE"
            % (marker, os.path.basename(marker)),
            "echo x > f && chown 0:0 f",
            "mknod d c 1 3",
            "unshare -r true",
            "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)'",
            "mount -t tmpfs none /tmp",
        ])
        self.assertIn("must be superuser", out[0])
        self.assertNotIn("REMOUNTED", out[0])
        self.assertNotIn("WROTE", out[0])
        self.assertFalse(os.path.exists(marker), out[0])
        self.assertFalse(os.path.exists("/usr/" + os.path.basename(marker)), out[0])
        for o in out[1:]:
            self.assertFalse(o.startswith("exit code 0\n"), o)
        self.assertTrue(all(c["ok"] is False for c in self.agent_meta()["toolCalls"]))

    def test_no_network_without_allow_network(self):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            probe = ("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", %d), "
                     "timeout=2); print(\"CONNECTED\")'" % listener.getsockname()[1])
            _, out = self.bash(["cat /proc/net/dev", probe])
            ifaces = [l.split(":")[0].strip() for l in out[0].splitlines() if ":" in l]
            self.assertEqual(ifaces, ["lo"], out[0])
            self.assertNotIn("CONNECTED", out[1])
            self.assertFalse(out[1].startswith("exit code 0\n"), out[1])
            # allowNetwork shares the network, and nothing else.
            self.setUp_again()
            _, out = self.bash([probe + "; id -u; grep CapEff /proc/self/status"],
                               "allowNetwork = true")
            self.assertTrue(out[0].startswith("exit code 0\nCONNECTED\n65534\n"), out[0])
            self.assertIn(ZERO_CAPS, out[0])

    def test_without_bubblewrap_the_call_fails_and_runs_nothing(self):
        marker = os.path.join(self.path("repo"), "ran.txt")
        # No bubblewrap on PATH at all.
        _, out = self.bash(["touch %s" % marker], env={"PATH": self.path("empty-bin")})
        self.assertIn("bubblewrap", out[0])
        self.assertIn("was not found on PATH", out[0])
        self.assertIn("not run", out[0])
        self.assertFalse(os.path.exists(marker))
        call = self.agent_meta()["toolCalls"][0]
        self.assertFalse(call["ok"])
        self.assertIn("bubblewrap", call["error"])
        # A bubblewrap that cannot build the sandbox (as in a container without
        # user namespaces): its message is passed on, nothing runs.
        self.setUp_again()
        os.makedirs(self.path("bin"))
        with open(self.path("bin/bwrap"), "w") as f:
            f.write("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\n"
                    "exit 1\n")
        os.chmod(self.path("bin/bwrap"), 0o755)
        _, out = self.bash(["touch %s" % marker],
                           env={"PATH": self.path("bin") + ":" + os.environ["PATH"]})
        self.assertIn("could not start", out[0])
        self.assertIn("No permissions to creating new namespace", out[0])
        self.assertIn("unisolatedTools = true", out[0])
        self.assertFalse(os.path.exists(marker))
        self.assertIn("could not start", self.agent_meta()["toolCalls"][0]["error"])

    def test_unisolated_tools_run_unisolated_and_are_recorded(self):
        marker = os.path.join(self.path("repo"), "ran.txt")
        _, out = self.bash(["touch %s; id -u" % marker], "unisolatedTools = true")
        self.assertEqual(out[0], "exit code 0\n%d\n" % os.getuid())
        self.assertTrue(os.path.exists(marker))
        self.assertIs(self.agent_meta()["unisolatedTools"], True)
        attempts = self.node("b1", "t")["attempts"]
        self.assertIs(attempts[0]["unisolatedTools"], True)
        r = self.run_cli("inspect", "b1")
        self.assertIn("unisolated", r.stdout)
        # A sandboxed agent records nothing of the kind.
        self.setUp_again()
        self.bash(["true"])
        self.assertNotIn("unisolatedTools", self.agent_meta())
        self.assertNotIn("unisolatedTools", self.node("b1", "t")["attempts"][0])

    def test_the_sandbox_switches_must_be_booleans(self):
        for prop, value in (("unisolatedTools", '"yes"'), ("unisolatedTools", "1"),
                            ("allowNetwork", '"false"')):
            wf = self.write("bad.lua", """
                local a = smithers.Agent { provider = "openai", tools = { "bash" }, %s = %s }
                return smithers(function(ctx)
                  return Workflow { name = "bad", Task { id = "t", agent = a, "x" } }
                end)
                """ % (prop, value))
            r = self.up(wf)
            self.assertEqual(r.code, 4, r)
            self.assertIn("%s must be true or false" % prop, r.stderr)
            self.assertFalse(os.path.exists(self.db), "nothing runs, nothing is written")

    def test_the_database_is_not_visible_even_under_root_dir(self):
        # rootDir is the folder that holds the database itself.
        _, out = self.bash(["head -c 15 %s; echo; ls" % os.path.basename(self.db),
                            "echo garbage > %s" % os.path.basename(self.db)], root=self.dir)
        self.assertNotIn("SQLite format 3", out[0])
        self.assertFalse(out[1].startswith("exit code 0\n"), out[1])
        with open(self.db, "rb") as f:
            self.assertEqual(f.read(15), b"SQLite format 3")
        self.assertEqual(self.inspect("b1")["run"]["status"], "finished")

    def setUp_again(self):
        """A fresh directory and database for a second run in the same test."""
        self._cleanup()
        self.setUp()


if __name__ == "__main__":
    main()
