#!/usr/bin/env python3
"""Unknown props and components are bad input, never ignored (docs/engine.md
"Props"): `smithers up` exits 4 naming the prop, the component and the file:line
of the component's constructor, with "did you mean" for near misses, and writes
nothing; props Smithers defines that we do not implement yet are refused the same
way; the Gateway refuses launchRun with InvalidInput and shows the error in
listWorkflows.

    SMITHERS_BIN=build/smithers tests/security/props_test.py -v
"""

import http.client
import json
import os
import signal
import sys

from security_e2e import *  # noqa: F401,F403
from security_e2e import BIN, E2ETest, main

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import gateway_test  # noqa: E402  (spawn_gateway; its classes stay out of this suite)

OUTPUTS = 'local outputs = smithers.outputs { out = z.object { n = z.integer() } }\n'


def module(body):
    """A module whose render returns `body` (one component)."""
    return OUTPUTS + "return smithers(function(ctx)\n  return %s\nend)\n" % body


# (module, text the error must contain, marker on the constructor's line)
CASES = {
    "timeoutMS": (module('Workflow { name = "w",\n'
                         '    Task { id = "build", output = outputs.out, timeoutMS = 500, { n = 1 } } }'),
                  ['Task "build": unknown prop "timeoutMS" (did you mean "timeoutMs"?)'], "timeoutMS"),
    "retrys": (module('Task { id = "a", output = outputs.out, retrys = 3, { n = 1 } }'),
               ['Task "a": unknown prop "retrys" (did you mean "retries"?)'], "retrys"),
    "noRetry": (module('Sequence {\n'
                       '    Task { id = "a", output = outputs.out, { n = 1 } },\n'
                       '    Task { id = "b", output = outputs.out, noRetry = true, { n = 2 } } }'),
                ['Task "b": prop "noRetry" is not supported yet'], "noRetry"),
    "async": (module('Task { id = "a", output = outputs.out, async = true, { n = 1 } }'),
              ['prop "async" is not supported yet'], "async"),
    "failurePolicy": (module('Parallel { id = "p", failurePolicy = "quarantine",\n'
                             '    Task { id = "a", output = outputs.out, { n = 1 } } }'),
                      ['Parallel "p": prop "failurePolicy" is not supported yet'], "failurePolicy"),
    "mergequeue": (module('smithers.MergeQueue {\n'
                          '    Task { id = "a", output = outputs.out, { n = 1 } } }'),
                   ["smithers.MergeQueue is not supported yet"], "MergeQueue"),
    "typo_component": (module('smithers.Sequense { Task { id = "a", output = outputs.out, { n = 1 } } }'),
                       ['smithers has no "Sequense" (did you mean "Sequence"?)'], "Sequense"),
    "approval_mode": (OUTPUTS.replace("out = z.object { n = z.integer() }", "d = smithers.approvalDecision")
                      + 'return smithers(function(ctx)\n'
                        '  return smithers.Approval { id = "ok", output = outputs.d, mode = "select" }\n'
                        'end)\n',
                      ['Approval "ok": mode "select" is not supported yet'], "mode"),
    "agent": (OUTPUTS + 'local a = smithers.Agent { provider = "openai", modle = "gpt-4.1" }\n'
              + 'return smithers(function(ctx) return Task { id = "a", output = outputs.out, agent = a, "hi" } end)\n',
              ['Agent: unknown prop "modle" (did you mean "model"?)'], "modle"),
    "options": (OUTPUTS + 'local function render(ctx) return Task { id = "a", output = outputs.out, { n = 1 } } end\n'
                'return smithers(render, { nmae = "x" })\n',
                ['smithers(render, opts): unknown prop "nmae" (did you mean "name"?)'], "nmae"),
}


class PropsTest(E2ETest):
    def test_up_refuses_with_exit_4_naming_prop_component_and_line(self):
        for name, (src, expected, marker) in CASES.items():
            with self.subTest(case=name):
                path = self.write(name + ".lua", src)
                r = self.up(path)
                self.assertEqual(r.code, 4, r)
                for text in expected:
                    self.assertIn(text, r.stderr, r)
                self.assertIn("%s.lua:%d:" % (name, self.line_of(path, marker)), r.stderr, r)
                self.assert_nothing_written()

    def test_a_prop_of_a_later_render_fails_the_run_not_the_process(self):
        # Mounted only once "a" has an output: the first render is fine, the
        # second refuses the prop, and the run fails with that message.
        path = self.write("later.lua", OUTPUTS + """
            return smithers(function(ctx)
              local a = ctx:outputMaybe(outputs.out, "a")
              return Sequence {
                Task { id = "a", output = outputs.out, { n = 1 } },
                a and Task { id = "b", output = outputs.out, retrys = 2, { n = 2 } } or nil }
            end)
            """)
        r = self.up(path)
        self.assertEqual(r.code, 1, r)
        self.assertIn('unknown prop "retrys" (did you mean "retries"?)', r.stdout + r.stderr)

    def test_the_gateway_refuses_launch_and_lists_the_error(self):
        wf_dir = self.path("workflows")
        os.makedirs(wf_dir)
        for name, (src, _, _) in CASES.items():
            self.write("workflows/%s.lua" % name, src)
        argv = [BIN, "--db", self.db, "gateway", "--workflows", wf_dir, "--port", "0",
                "--access-log", self.path("access.log")]
        p, port, _ = gateway_test.spawn_gateway(self, argv, cwd=self.dir)
        r = self.run_cli("token", "issue", "--scopes", "run:read,run:write", "--ttl", "1h")
        self.assertEqual(r.code, 0, r)
        token = r.stdout.strip()

        def rpc(method, params):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("POST", "/v1/rpc/" + method, body=json.dumps(params),
                      headers={"Authorization": "Bearer " + token})
            resp = c.getresponse()
            body = json.loads(resp.read().decode())
            c.close()
            return resp.status, body

        code, listed = rpc("listWorkflows", {})
        self.assertEqual(code, 200, listed)
        listed = {w["key"]: w for w in listed["payload"]}
        for name, (_, expected, marker) in CASES.items():
            with self.subTest(case=name):
                err = listed[name].get("error", "")
                for text in expected:
                    self.assertIn(text, err, listed[name])
                line = self.line_of(self.path("workflows/%s.lua" % name), marker)
                self.assertIn("%s.lua:%d:" % (name, line), err)
                code, r = rpc("launchRun", {"workflow": name, "input": {}})
                self.assertEqual(code, 400, r)
                self.assertEqual(r["error"]["code"], "InvalidInput", r)
                for text in expected:
                    self.assertIn(text, r["error"]["message"])
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_runs")[0]["n"], 0)
        self.assertIsNone(p.poll())
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)


if __name__ == "__main__":
    main()
