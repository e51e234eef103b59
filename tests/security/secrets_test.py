#!/usr/bin/env python3
"""Secrets (issue 11, items 5 and 6), replayed against a real CLI and Gateway:

- a run:write user's command task prints its environment, /proc/self/environ
  and the Gateway's /proc/PID/environ: the JWT signing secret and the provider
  key appear nowhere (output, getNodeOutput for run:read, database, WAL);
- key shapes in command and compute outputs ("key=sk-...", "export K=sk-...",
  short keys) are stored redacted, a SecretRedacted event names the node and
  field, and the downstream task reads the redacted row;
- an agent's token counts stay numbers;
- a provider key known at start-up is redacted by a freshly resumed process
  that never called an agent;
- secret references (env:, file:) reach a command's environment; one built
  from input is refused; the Gateway refuses one outside [secrets] allow;
- run input holding a secret-shaped value is refused naming the field (up,
  launchRun, cronCreate).

    SMITHERS_BIN=build/smithers tests/security/secrets_test.py -v
"""

import glob
import hashlib
import json
import os
import time

from security_e2e import PYTHON, E2ETest, main
from security_e2e import jwt_hs256 as jwt
from gateway_case import GatewayCase

JWT_SECRET = "jwt-signing-secret-for-the-gateway-7f3a"  # not key-shaped: only known values catch it
PROVIDER_KEY = "provider-key-value-not-key-shaped-42"
KEY_SHAPES = ["sk-abcdef123456", "sk-proj-Zq7Xv2Lm9Pw4Rt6Yb1Nc", "sk-abcd1234"]




def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


# Prints everything a child can see of the environments around it.
PRINT_ENV = """
local outputs = smithers.outputs {
  dump = z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() } }
return smithers(function(ctx)
  local script = "env; echo ---; tr '\\\\0' '\\\\n' < /proc/self/environ; echo ---; " ..
                 "tr '\\\\0' '\\\\n' < /proc/" .. ctx.input.pid .. "/environ 2>&1; " ..
                 "tr '\\\\0' '\\\\n' < /proc/$PPID/environ 2>&1; true"
  return Workflow { name = "leak",
    Task { id = "dump", output = outputs.dump, parse = "text",
           command = { "/bin/sh", "-c", script } } }
end, { input = z.object { pid = z.integer() } })
"""

# A literal reference, resolved into the command's environment; the command
# prints digests (the values themselves would be redacted).
REFS = """
local outputs = smithers.outputs { r = z.object { a = z.string(), b = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "refs",
    Task { id = "use", output = outputs.r,
           env = { A = { secret = "env:SMITHERS_TEST_TOKEN" }, B = { secret = "file:%s" } },
           command = { "%s", "-c", "import hashlib, json, os; h = lambda v: hashlib.sha256(v.encode()).hexdigest(); print(json.dumps({'a': h(os.environ.get('A', '')), 'b': h(os.environ.get('B', ''))}))" } } }
end)
"""


def db_bytes(db):
    """The database, its WAL and shared memory, as bytes."""
    data = b""
    for path in glob.glob(db + "*"):
        with open(path, "rb") as f:
            data += f.read()
    return data


class CliSecretsTest(E2ETest):
    def db_bytes(self):
        return db_bytes(self.db)

    def test_outputs_of_commands_and_compute_are_redacted_and_read_downstream(self):
        # From a file: the module's own source is stored as written.
        with open(self.path("keys.txt"), "w") as f:
            f.write("key=%s\nexport K=%s\nshort %s\njson {\"k\":\"%s\"}\n" % (
                KEY_SHAPES[0], KEY_SHAPES[1], KEY_SHAPES[2], KEY_SHAPES[0]))
        with open(self.path("compute-key.txt"), "w") as f:
            f.write("the key is sk-abcdef987654")
        wf = self.write("out.lua", """
            local outputs = smithers.outputs {
              text = z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() },
              comp = z.object { key = z.string(), count = z.integer(), inputTokens = z.integer() },
              seen = z.object { stdout = z.string(), key = z.string() } }
            return smithers(function(ctx)
              local t = ctx:outputMaybe(outputs.text, "print")
              local c = ctx:outputMaybe(outputs.comp, "compute")
              return Workflow { name = "out",
                Task { id = "print", output = outputs.text, parse = "text",
                       command = { "cat", %r } },
                Task { id = "compute", output = outputs.comp,
                       function() return { key = io.open(%r):read("a"),
                                           count = 123456789, inputTokens = 42 } end },
                t and c and Task { id = "after", output = outputs.seen,
                       function() return { stdout = t.stdout, key = c.key } end } or nil,
              }
            end)
            """ % (self.path("keys.txt"), self.path("compute-key.txt")))
        r = self.up(wf, None, "o1")
        self.assertEqual(r.code, 0, r)
        out = r.json()["outputs"]
        stdout = out["text"]["print"]["stdout"]
        self.assertEqual(stdout, "key=[REDACTED]\nexport K=[REDACTED]\nshort [REDACTED]\n"
                                 'json {"k":"[REDACTED]"}\n')
        self.assertEqual(out["comp"]["compute"],
                         {"key": "the key is [REDACTED]", "count": 123456789, "inputTokens": 42})
        # The downstream task read the stored (redacted) rows.
        self.assertEqual(out["seen"]["after"], {"stdout": stdout, "key": "the key is [REDACTED]"})
        events = self.events("o1")
        redacted = [e for e in events if e["type"] == "SecretRedacted"]
        by_node = {e["payload"]["nodeId"]: e["payload"]["fields"] for e in redacted}
        self.assertEqual(by_node, {"print": ["stdout"], "compute": ["key"]})
        everything = r.stdout + r.stderr + json.dumps(events)
        data = self.db_bytes()
        for k in KEY_SHAPES + ["sk-abcdef987654"]:
            self.assertNotIn(k, everything)
            self.assertNotIn(k.encode(), data)
        self.assertIn(b"123456789", data)

    def test_a_known_key_is_redacted_by_a_freshly_resumed_process(self):
        with open(self.path("key.txt"), "w") as f:
            f.write("the key: %s\n" % PROVIDER_KEY)
        wf = self.write("resume.lua", """
            local outputs = smithers.outputs {
              decision = smithers.approvalDecision,
              text = z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "resume",
                smithers.Approval { id = "gate", output = outputs.decision, owner = "ops" },
                Task { id = "cat", output = outputs.text, parse = "text",
                       command = { "cat", %r } },
                Task { id = "ref", output = outputs.text, parse = "text",
                       env = { K = { secret = "env:OPENAI_API_KEY" } },
                       command = { "/bin/sh", "-c", "echo \\"$K\\"" } },
              }
            end)
            """ % self.path("key.txt"))
        env = {"OPENAI_API_KEY": PROVIDER_KEY}
        r = self.up(wf, None, "k1", env=env)
        self.assertEqual(r.code, 3, r)
        r = self.run_cli("approve", "k1", "--node", "gate", "--by", "ops")
        self.assertEqual(r.code, 0, r)
        # A new process, no agent call in it: the key is known from its start.
        r = self.up(wf, None, "k1", "--resume", env=env)
        self.assertEqual(r.code, 0, r)
        out = r.json()["outputs"]["text"]
        self.assertEqual(out["cat"]["stdout"], "the key: [REDACTED]\n")
        self.assertEqual(out["ref"]["stdout"], "[REDACTED]\n")
        self.assertNotIn(PROVIDER_KEY.encode(), self.db_bytes())
        self.assertNotIn(PROVIDER_KEY, r.stdout + r.stderr)

    def test_the_engine_environment_does_not_reach_commands(self):
        wf = self.write("env.lua", """
            local outputs = smithers.outputs {
              text = z.object { exitCode = z.integer(), stdout = z.string(), stderr = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "env",
                Task { id = "env", output = outputs.text, parse = "text",
                       env = { DECLARED = "yes" }, command = { "env" } } }
            end)
            """)
        r = self.up(wf, None, "e1", env={"OPENAI_API_KEY": PROVIDER_KEY,
                                         "SOME_SERVICE_TOKEN": "plain-token-value-1",
                                         "TZ": "Etc/UTC"})
        self.assertEqual(r.code, 0, r)
        names = sorted(l.split("=", 1)[0] for l in
                       r.json()["outputs"]["text"]["env"]["stdout"].splitlines())
        allowed = {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "DECLARED", "SMITHERS_RUN_ID",
                   "SMITHERS_NODE_ID", "SMITHERS_ITERATION", "SMITHERS_ATTEMPT"}
        self.assertTrue(set(n for n in names if not n.startswith("LC_")) <= allowed, names)
        self.assertIn("DECLARED", names)
        self.assertIn("TZ", names)
        self.assertNotIn("SOME_SERVICE_TOKEN", names)
        self.assertNotIn("OPENAI_API_KEY", names)

    def test_secret_references_resolve_and_input_built_ones_are_refused(self):
        with open(self.path("token-file"), "w") as f:
            f.write("file-secret-value-0042\n")
        wf = self.write("refs.lua", REFS % (self.path("token-file"), PYTHON))
        r = self.up(wf, None, "r1", env={"SMITHERS_TEST_TOKEN": "env-secret-value-0042"})
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["r"]["use"],
                         {"a": sha256("env-secret-value-0042"),
                          "b": sha256("file-secret-value-0042")})
        # A reference built from input is no literal of the module.
        bad = self.write("built.lua", """
            local outputs = smithers.outputs { r = z.object { exitCode = z.integer(),
              stdout = z.string(), stderr = z.string() } }
            return smithers(function(ctx)
              return Workflow { name = "built",
                Task { id = "use", output = outputs.r, parse = "text",
                       env = { A = { secret = "env:" .. ctx.input.name } },
                       command = { "/bin/sh", "-c", "echo $A" } } }
            end)
            """)
        r = self.up(bad, {"name": "SMITHERS_TEST_TOKEN"}, "r2",
                    env={"SMITHERS_TEST_TOKEN": "env-secret-value-0042"})
        self.assertEqual(r.code, 4, r)
        self.assertIn('"env:SMITHERS_TEST_TOKEN" is not written as a literal', r.stderr)
        self.assertNotIn("env-secret-value-0042", r.stdout + r.stderr)
        # A malformed reference is bad input too.
        worse = self.write("worse.lua", REFS.replace("file:%s", "file:../x") %
                           (PYTHON,))
        r = self.up(worse, None, "r3")
        self.assertEqual(r.code, 4, r)
        self.assertIn("file:../x", r.stderr)

    def test_secret_shaped_input_is_refused_naming_the_field(self):
        wf = self.write("in.lua", """
            local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "in", Task { id = "t", output = outputs.r, { ok = true } } }
            end)
            """)
        r = self.up(wf, {"repo": "x", "auth": {"header": "Bearer abcdefghijkl123"}}, "i1")
        self.assertEqual(r.code, 4, r)
        self.assertIn('"auth.header"', r.stderr)
        self.assertNotIn("abcdefghijkl123", r.stdout + r.stderr)
        self.assert_nothing_written()
        # Numbers and ordinary strings are fine, also under key-like names.
        r = self.up(wf, {"maxTokens": 4096, "token_budget": "large", "task": "sk-x"}, "i2")
        self.assertEqual(r.code, 0, r)


# A stand-in `claude` that reports the names in its environment and digests of
# two values (the values themselves would be redacted).
FAKE_CLAUDE = r'''#!%s
import hashlib, json, os
h = lambda v: hashlib.sha256(v.encode()).hexdigest()
reply = {"names": ",".join(sorted(os.environ)), "a": h(os.environ.get("TOKEN", "")),
         "k": h(os.environ.get("ANTHROPIC_API_KEY", ""))}
print(json.dumps({"type": "result", "is_error": False, "result": json.dumps(reply),
                  "usage": {"input_tokens": 1, "output_tokens": 1}}))
'''


class CliAgentEnvTest(E2ETest):
    def test_a_cli_agent_gets_its_key_and_its_declared_env_only(self):
        exe = self.path("fake-claude")
        with open(exe, "w") as f:
            f.write(FAKE_CLAUDE % PYTHON)
        os.chmod(exe, 0o755)
        wf = self.write("cli.lua", """
            local outputs = smithers.outputs {
              r = z.object { names = z.string(), a = z.string(), k = z.string() } }
            local a = smithers.ClaudeCodeAgent { executable = %r,
              env = { TOKEN = { secret = "env:SMITHERS_TEST_TOKEN" }, MODE = "review" } }
            return smithers(function(ctx)
              return Workflow { name = "cli", Task { id = "a", output = outputs.r, agent = a, "Go" } }
            end)
            """ % exe)
        r = self.up(wf, None, "c1", env={"ANTHROPIC_API_KEY": PROVIDER_KEY,
                                         "OPENAI_API_KEY": "another-provider-key-value-1",
                                         "SMITHERS_TEST_TOKEN": "env-secret-value-0042",
                                         "SOME_SERVICE_TOKEN": "plain-token-value-1"})
        self.assertEqual(r.code, 0, r)
        row = r.json()["outputs"]["r"]["a"]
        names = set(row["names"].split(","))
        self.assertEqual(row["a"], sha256("env-secret-value-0042"))
        self.assertEqual(row["k"], sha256(PROVIDER_KEY), "claude gets ANTHROPIC_API_KEY")
        allowed = {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "TOKEN", "MODE", "ANTHROPIC_API_KEY"}
        self.assertTrue(set(n for n in names if not n.startswith("LC_")) <= allowed, names)
        self.assertIn("MODE", names)


class AgentTokensTest(E2ETest):
    def test_token_counts_stay_numbers(self):
        url = self.serve_model({"/v1/chat/completions": [
            {"reply": {"structured": {"summary": "ok", "tokens": 7, "inputTokens": 3},
                       "input_tokens": 120, "output_tokens": 30}}]}) + "/v1"
        wf = self.write("agent.lua", """
            local outputs = smithers.outputs {
              s = z.object { summary = z.string(), tokens = z.integer(), inputTokens = z.integer() } }
            local a = smithers.Agent { provider = "openai", model = "m", baseUrl = %r }
            return smithers(function(ctx)
              return Workflow { name = "agent",
                Task { id = "a", output = outputs.s, agent = a, "Summarise" } }
            end)
            """ % url)
        r = self.up(wf, None, "t1", env={"OPENAI_API_KEY": "sk-test-Zq7Xv2Lm9Pw4Rt6Yb1Nc"})
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["s"]["a"],
                         {"summary": "ok", "tokens": 7, "inputTokens": 3})
        meta = json.loads(self.query("SELECT meta_json FROM _smithers_attempts")[0]["meta_json"])
        self.assertEqual(meta["tokens"], {"input": 120, "output": 30})
        agent = meta["agents"][0]
        self.assertEqual((agent["inputTokens"], agent["outputTokens"]), (120, 30))
        r = self.run_cli("inspect", "t1", "--json")
        self.assertNotIn("[REDACTED]", r.stdout)
        with open(self.path("requests.jsonl")) as f:
            auth = {k.lower(): v for k, v in json.loads(f.readline())["headers"].items()}
        self.assertEqual(auth["authorization"], "Bearer sk-test-Zq7Xv2Lm9Pw4Rt6Yb1Nc",
                         "the key comes from the secret store")


class GatewaySecretsTest(GatewayCase):
    def launch(self, workflow, run_id, input, token):
        return self.rpc("launchRun", {"workflow": workflow, "runId": run_id, "input": input},
                        token)

    def test_a_run_write_user_cannot_take_the_jwt_secret(self):
        self.workflow("leak", PRINT_ENV)
        gw = self.start("--auth", "jwt", "--jwt-secret-env", "SMITHERS_JWT_SECRET",
                        env={"SMITHERS_JWT_SECRET": JWT_SECRET, "OPENAI_API_KEY": PROVIDER_KEY})
        now = int(time.time())
        writer = jwt(JWT_SECRET, {"sub": "mallory", "scope": "run:read run:write",
                                  "exp": now + 3600})
        reader = jwt(JWT_SECRET, {"sub": "eve", "scope": "run:read", "exp": now + 3600})
        code, r = self.launch("leak", "l1", {"pid": gw.pid}, writer)
        self.assertEqual(code, 200, r)
        run = self.wait_status("l1", reader, ("finished", "failed"))
        self.assertEqual(run["status"], "finished", run)
        code, r = self.rpc("getNodeOutput", {"runId": "l1", "nodeId": "dump"}, reader)
        self.assertEqual(code, 200, r)
        text = json.dumps(r)
        self.assertIn("SMITHERS_RUN_ID=l1", text, "the dump ran")
        for secret in (JWT_SECRET, PROVIDER_KEY):
            self.assertNotIn(secret, text)
            self.assertNotIn(secret.encode(), db_bytes(self.db))
        env, self_environ = r["payload"]["row"]["stdout"].split("---\n")[:2]
        for name in ("SMITHERS_JWT_SECRET", "OPENAI_API_KEY", "SMITHERS_BIN"):
            self.assertNotIn(name + "=", env + self_environ, "the child's environment")
        # The test (same user) cannot read the Gateway's environment either,
        # or reads it scrubbed (root reads it whatever the dumpable flag).
        try:
            with open("/proc/%d/environ" % gw.pid, "rb") as f:
                environ = f.read()
        except PermissionError:
            environ = b""
        self.assertNotIn(JWT_SECRET.encode(), environ)
        self.assertNotIn(PROVIDER_KEY.encode(), environ)

    def test_references_need_the_allow_list_and_input_is_checked(self):
        with open(self.path("token-file"), "w") as f:
            f.write("file-secret-value-0042\n")
        self.workflow("refs", REFS % (self.path("token-file"), PYTHON))
        self.workflow("plain", """
            local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "plain", Task { id = "t", output = outputs.r, { ok = true } } }
            end)
            """)
        env = {"SMITHERS_TEST_TOKEN": "env-secret-value-0042"}
        # No [secrets] allow: no reference at all.
        self.start(env=env)
        token = self.token("run:read,run:write,cron:write")
        code, r = self.launch("refs", "g1", {}, token)
        self.assertEqual(r["error"]["code"], "InvalidInput", r)
        self.assertIn('"env:SMITHERS_TEST_TOKEN" is not allowed', r["error"]["message"])
        # Secret-shaped input: launchRun and cronCreate name the field.
        code, r = self.launch("plain", "g2", {"deep": ["x", "key=sk-abcdef123456"]}, token)
        self.assertEqual(r["error"]["code"], "InvalidInput", r)
        self.assertIn('"deep[1]"', r["error"]["message"])
        self.assertNotIn("sk-abcdef123456", json.dumps(r))
        code, r = self.rpc("cronCreate", {"workflow": "plain", "pattern": "0 * * * *",
                                          "input": {"k": "sk-abcdef123456"}}, token)
        self.assertEqual(r["error"]["code"], "InvalidInput", r)
        self.assertIn('"k"', r["error"]["message"])
        self.stop()
        # Allowed by gateway.toml: the run gets both values.
        with open(self.path("gateway.toml"), "w") as f:
            f.write('[secrets]\nallow = ["env:SMITHERS_TEST_TOKEN", "file:%s/*"]\n' % self.dir)
        self.start("--config", self.path("gateway.toml"), env=env)
        code, r = self.launch("refs", "g3", {}, token)
        self.assertEqual(code, 200, r)
        run = self.wait_status("g3", token, ("finished", "failed"))
        self.assertEqual(run["status"], "finished", run)
        code, r = self.rpc("getNodeOutput", {"runId": "g3", "nodeId": "use"}, token)
        self.assertEqual(r["payload"]["row"], {"a": sha256("env-secret-value-0042"),
                                               "b": sha256("file-secret-value-0042")})


if __name__ == "__main__":
    main()
