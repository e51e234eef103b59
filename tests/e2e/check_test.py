#!/usr/bin/env python3
"""`smithers check` (docs/operations.md "Checking modules before promotion"):
each finding on a small module, one behind a Branch that mounts only once a
made-up output grows the tree, a clean module, the --json document, a module
that cannot load, folders, no database touched, and every module of
examples/ passing."""

import json
import os

from smithers_e2e import SOURCE_DIR, E2ETest, main

CLEAN = """
local outputs = smithers.outputs { v = z.object { n = z.integer() }, d = smithers.approvalDecision }
return smithers(function(ctx)
  local a = ctx:outputMaybe(outputs.v, "a")
  return Workflow { name = "clean",
    Task { id = "a", output = outputs.v, { n = ctx.input.n } },
    a and Task { id = "b", output = outputs.v, function() return { n = a.n + 1 } end } or nil,
    smithers.Approval { id = "gate", output = outputs.d, request = { title = "Go?" },
                        owner = "alice", fallbackOwner = "bob", escalateAfterMs = 60000 },
  }
end, { input = z.object { n = z.integer() } })
"""

DUPLICATE = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  return Workflow { name = "dup",
    Task { id = "a", output = outputs.v, { n = 1 } },
    Sequence { Task { id = "a", output = outputs.v, { n = 2 } } },
  }
end)
"""

# The approval mounts only once "a" has an output: the first render (the one
# `up` checks before it writes anything) does not see it.
BEHIND_BRANCH = """
local outputs = smithers.outputs { v = z.object { n = z.integer() }, d = smithers.approvalDecision }
return smithers(function(ctx)
  local a = ctx:outputMaybe(outputs.v, "a")
  return Workflow { name = "gated",
    Task { id = "a", output = outputs.v, { n = 1 } },
    Branch { ["if"] = a ~= nil,
             ["then"] = smithers.Approval { id = "gate", output = outputs.d,
                                            request = { title = "Go?" } } },
  }
end)
"""

FALLBACK = """
local outputs = smithers.outputs { d = smithers.approvalDecision }
return smithers(function(ctx)
  return Workflow { name = "fallback",
    smithers.Approval { id = "lonely", output = outputs.d, request = { title = "Go?" },
                        owner = "alice" },
    smithers.Approval { id = "shared", output = outputs.d, request = { title = "Go?" },
                        owner = "alice", allowedUsers = { "carol" } },
    smithers.Approval { id = "never-asked", output = outputs.d, request = { title = "Go?" },
                        owner = "alice", fallbackOwner = "bob" },
  }
end)
"""

WARNINGS = """
local outputs = smithers.outputs { v = z.object { n = z.integer() }, r = z.object { text = z.string() } }
local model = smithers.Agent { provider = "openai", model = "m", baseUrl = "http://127.0.0.1:9" }
return smithers(function(ctx)
  return Workflow { name = "warns",
    Task { id = "cached", output = outputs.v, cachePolicy = { scope = "workflow" },
           function() return { n = 1 } end },
    Task { id = "versioned", output = outputs.v, cachePolicy = { version = "v1" },
           function() return { n = 1 } end },
    Task { id = "ask", output = outputs.r, agent = model, "Say hi." },
    Task { id = "ask-bounded", output = outputs.r, agent = model, timeoutMs = 60000, "Say hi." },
  }
end)
"""

SECRET_KEY = "sk-" + "abcdefghijklmnopqrstuvwx"
SECRETS = """
local outputs = smithers.outputs { v = z.object { n = z.integer() }, r = z.object { text = z.string() } }
local model = smithers.Agent { provider = "openai", model = "m" }
return smithers(function(ctx)
  return Workflow { name = "leaks",
    Task { id = "env", output = outputs.v, command = { "true" }, timeoutMs = 1000,
           env = { API = "%(key)s", OK = "plain" } },
    Task { id = "prompt", output = outputs.r, agent = model, timeoutMs = 1000,
           "Use the key %(key)s to call the API." },
    Task { id = "ref", output = outputs.v, command = { "true" },
           env = { API = { secret = "env:MY_KEY" } } },
  }
end)
""" % {"key": SECRET_KEY}

UNCONFINED = """
local outputs = smithers.outputs { v = z.object { n = z.integer() }, r = z.object { text = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "unconfined",
    Task { id = "bare", output = outputs.v, command = { "true" } },
    Task { id = "boxed", output = outputs.v, command = { "true" }, sandbox = true },
    Task { id = "coder", output = outputs.r, timeoutMs = 1000,
           agent = smithers.ClaudeCodeAgent { executable = "claude" }, "Fix it." },
  }
end)
"""

# An unknown prop on a task that mounts only once "a" is done: a render error
# no first render shows.
BAD_PROP_LATER = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  local a = ctx:outputMaybe(outputs.v, "a")
  return Workflow { name = "later",
    Task { id = "a", output = outputs.v, { n = 1 } },
    a and Task { id = "b", output = outputs.v, retrys = 2, { n = 2 } } or nil,
  }
end)
"""

# Escalates to nobody: the render refuses it, with real values only.
ESCALATES = """
local outputs = smithers.outputs { d = smithers.approvalDecision }
return smithers(function(ctx)
  return Workflow { name = "escalates",
    smithers.Approval { id = "escalates", output = outputs.d, request = { title = "Go?" },
                        owner = "alice", escalateAfterMs = 60000 } }
end)
"""

# A render that refuses the sample input ("sample" is not an absolute path):
# the made-up value may be the cause, so a warning; a real input decides.
NEEDS_REAL_INPUT = """
local outputs = smithers.outputs { v = z.object { n = z.integer() } }
return smithers(function(ctx)
  assert(ctx.input.dir:sub(1, 1) == "/", "dir must be an absolute path")
  return Workflow { name = "real",
    Task { id = "a", output = outputs.v, cwd = ctx.input.dir, command = { "true" } } }
end, { input = z.object { dir = z.string() } })
"""

# Two branches on a made-up boolean: the second pass (true) mounts "yes".
BOOLEAN_BRANCH = """
local outputs = smithers.outputs { ok = z.object { ok = z.boolean() }, v = z.object { n = z.integer() } }
return smithers(function(ctx)
  local ok = ctx:outputMaybe(outputs.ok, "decide")
  return Workflow { name = "bool",
    Task { id = "decide", output = outputs.ok, { ok = true } },
    ok and Branch { ["if"] = ok.ok,
                    ["then"] = Task { id = "yes", output = outputs.v, cache = true, { n = 1 } },
                    ["else"] = Task { id = "no", output = outputs.v, { n = 0 } } } or nil,
  }
end)
"""

SYNTAX_ERROR = """
return smithers(function(ctx)
  return Workflow { name = "broken",
end)
"""


class CheckTest(E2ETest):
    def check(self, *args, env=None):
        """`smithers check` run in the test directory with no --db."""
        return self.run_cli("check", *args, db=False, env=env)

    def findings(self, module, *args):
        """(exit code, the module's findings as {(code, node): severity}, the result)."""
        r = self.check(module, "--json", *args)
        doc = r.json()
        self.assertEqual(len(doc["modules"]), 1, r)
        return r.code, {(f["code"], f["node"]): f["severity"]
                        for f in doc["modules"][0]["findings"]}, r

    def test_clean_module_exits_0(self):
        path = self.write("clean.lua", CLEAN)
        r = self.check(path)
        self.assertEqual(r.code, 0, r)
        self.assertIn("clean.lua: ok (3 tasks", r.stdout)
        self.assertIn("1 module, 0 errors, 0 warnings", r.stdout)
        # The sample input came from the schema; "b" mounted after "a"'s made-up output.
        doc = self.check(path, "--json").json()
        m = doc["modules"][0]
        self.assertEqual(m["input"], {"n": 0})
        self.assertTrue(m["inputGenerated"])
        self.assertEqual(m["tasks"], ["a", "gate", "b"])

    def test_duplicate_ids(self):
        code, found, r = self.findings(self.write("dup.lua", DUPLICATE))
        self.assertEqual(code, 1, r)
        self.assertEqual(found, {("duplicate-id", "a"): "error"})
        text = self.check(self.path("dup.lua"))
        self.assertRegex(text.stdout, r"dup\.lua: error: node a: task id \"a\" is used twice in "
                                      r"one render: at \S*dup\.lua:\d+ and at \S*dup\.lua:\d+")
        self.assertEqual(text.code, 1, text)

    def test_approval_behind_a_branch_is_seen(self):
        path = self.write("gated.lua", BEHIND_BRANCH)
        # `up` checks the first render only: the run starts, runs "a", then fails.
        up = self.up(path)
        self.assertEqual(up.code, 1, up)
        self.assertIn("names no owner", up.stderr)
        code, found, r = self.findings(path)
        self.assertEqual(code, 1, r)
        self.assertEqual(found[("approval-owner", "gate")], "error", r)
        self.assertNotIn(("plan", ""), found, r)  # the same problem, said once
        self.assertEqual(r.json()["modules"][0]["tasks"], ["a", "gate"])

    def test_fallback_owners(self):
        code, found, r = self.findings(self.write("fallback.lua", FALLBACK))
        self.assertEqual(code, 0, r)
        self.assertEqual(found, {("approval-fallback-owner", "lonely"): "warn",
                                 ("approval-escalation", "never-asked"): "warn"})
        code, found, r = self.findings(self.write("escalates.lua", ESCALATES))
        self.assertEqual((code, found), (1, {("render", ""): "error"}), r)
        self.assertIn('needs a "fallbackOwner"', r.json()["modules"][0]["findings"][0]["message"])

    def test_warnings_alone_exit_0(self):
        code, found, r = self.findings(self.write("warns.lua", WARNINGS))
        self.assertEqual(code, 0, r)
        self.assertEqual(found, {("cache-version", "cached"): "warn",
                                 ("agent-timeout", "ask"): "warn"})
        text = self.check(self.path("warns.lua"))
        self.assertIn("warns.lua: warn: node cached: cached without a version", text.stdout)
        self.assertIn("1 module, 0 errors, 2 warnings", text.stdout)

    def test_secret_literals(self):
        code, found, r = self.findings(self.write("leaks.lua", SECRETS))
        self.assertEqual(code, 1, r)
        self.assertEqual(found, {("secret-literal", "env"): "error",
                                 ("secret-literal", "prompt"): "error"})
        messages = [f["message"] for f in r.json()["modules"][0]["findings"]]
        self.assertTrue(any(m.startswith("env API holds") for m in messages), messages)
        self.assertTrue(any(m.startswith("the prompt holds") for m in messages), messages)
        text = self.check(self.path("leaks.lua"))
        for out in (r.stdout, r.stderr, text.stdout, text.stderr):
            self.assertNotIn(SECRET_KEY, out)

    def test_require_sandbox(self):
        path = self.write("unconfined.lua", UNCONFINED)
        code, found, r = self.findings(path)
        self.assertEqual((code, found), (0, {}), r)
        code, found, r = self.findings(path, "--require-sandbox")
        self.assertEqual(code, 1, r)
        self.assertEqual(found, {("sandbox-required", "bare"): "error",
                                 ("sandbox-required", "coder"): "error"})

    def test_render_error_after_growth(self):
        code, found, r = self.findings(self.write("later.lua", BAD_PROP_LATER))
        self.assertEqual(code, 1, r)
        self.assertEqual(list(found), [("render", "")], r)
        message = r.json()["modules"][0]["findings"][0]["message"]
        self.assertIn("with made-up outputs of a", message)
        self.assertIn("retrys", message)

    def test_render_error_with_made_up_input(self):
        path = self.write("real.lua", NEEDS_REAL_INPUT)
        code, found, r = self.findings(path)
        self.assertEqual((code, found), (0, {("render", ""): "warn"}), r)
        message = r.json()["modules"][0]["findings"][0]["message"]
        self.assertIn('with the sample input {"dir":"sample"}: ', message)
        self.assertIn("dir must be an absolute path", message)
        self.assertIn("pass --input", message)
        code, found, r = self.findings(path, "--input", json.dumps({"dir": self.dir}))
        self.assertEqual((code, found), (0, {}), r)
        # A given input the render refuses is an error: `up` would refuse it too.
        code, found, r = self.findings(path, "--input", '{"dir": "relative"}')
        self.assertEqual((code, found), (1, {("render", ""): "error"}), r)

    def test_both_sides_of_a_boolean(self):
        code, found, r = self.findings(self.write("bool.lua", BOOLEAN_BRANCH))
        self.assertEqual(code, 0, r)
        self.assertEqual(found, {("cache-version", "yes"): "warn"})
        self.assertEqual(sorted(r.json()["modules"][0]["tasks"]), ["decide", "no", "yes"])

    def test_json_document(self):
        clean = self.write("clean.lua", CLEAN)
        dup = self.write("dup.lua", DUPLICATE)
        r = self.check(clean, dup, "--json")
        self.assertEqual(r.code, 1, r)
        doc = r.json()
        self.assertEqual(set(doc), {"ok", "modules", "counts"})
        self.assertFalse(doc["ok"])
        self.assertEqual(doc["counts"],
                         {"modules": 2, "errors": 1, "warnings": 0, "unloadable": 0})
        first, second = doc["modules"]
        self.assertEqual((first["module"], first["loaded"], first["errors"]), (clean, True, 0))
        self.assertEqual(first["workflow"], "clean")
        self.assertEqual(second["findings"][0]["severity"], "error")
        self.assertEqual(set(second["findings"][0]),
                         {"severity", "code", "node", "where", "message"})
        self.assertRegex(second["findings"][0]["where"], r"dup\.lua:\d+")

    def test_module_that_cannot_load(self):
        clean = self.write("clean.lua", CLEAN)
        broken = self.write("broken.lua", SYNTAX_ERROR)
        r = self.check(clean, broken, self.path("missing.lua"))
        self.assertEqual(r.code, 4, r)
        self.assertIn("clean.lua: ok", r.stdout)
        self.assertIn("broken.lua: error: cannot load: ", r.stdout)
        self.assertIn("missing.lua: error: cannot load: ", r.stdout)
        doc = self.check(broken, "--json")
        self.assertEqual(doc.code, 4, doc)
        m = doc.json()["modules"][0]
        self.assertFalse(m["loaded"])
        self.assertEqual(m["findings"][0]["code"], "load")
        self.assertEqual(doc.json()["counts"]["unloadable"], 1)

    def test_restricted(self):
        # The restricted library (a Gateway's) has no `debug`.
        path = self.write("debug.lua", "assert(debug, 'needs the debug library')\n" + CLEAN)
        r = self.check(path)
        self.assertEqual(r.code, 0, r)
        r = self.check(path, "--restricted")
        self.assertEqual(r.code, 4, r)
        self.assertIn("debug.lua: error: cannot load: ", r.stdout)
        self.assertIn("needs the debug library", r.stdout)

    def test_input(self):
        path = self.write("clean.lua", CLEAN)
        r = self.check(path, "--input", '{"n": 5}', "--json")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["modules"][0]["input"], {"n": 5})
        self.assertFalse(r.json()["modules"][0]["inputGenerated"])
        code, found, r = self.findings(path, "--input", '{"n": "five"}')
        self.assertEqual((code, found), (1, {("input", ""): "error"}), r)
        for bad in ("{not json", "[1]"):
            r = self.check(path, "--input", bad)
            self.assertEqual(r.code, 4, r)

    def test_folder_and_no_database(self):
        os.mkdir(self.path("flows"))
        self.write("flows/clean.lua", CLEAN)
        self.write("flows/dup.lua", DUPLICATE)
        # A --db that CheckDb would refuse, and one in a folder that does not exist:
        # check opens neither.
        for db in (["--db", "nosuch://x"], ["--db", self.path("none/smithers.db")]):
            r = self.check(self.path("flows"), *db)
            self.assertEqual(r.code, 1, r)
            self.assertIn("flows/clean.lua: ok", r.stdout)
            self.assertIn("flows/dup.lua: error: node a:", r.stdout)
            self.assertIn("2 modules, 1 error, 0 warnings", r.stdout)
        self.assertFalse(os.path.exists(self.path(".smithers")))
        self.assertFalse(os.path.exists(self.path("none")))
        r = self.check(self.path("nothing-here"))
        self.assertEqual(r.code, 4, r)

    def test_examples_pass(self):
        examples = os.path.join(SOURCE_DIR, "examples")
        lua = sorted(f for f in os.listdir(examples) if f.endswith(".lua"))
        r = self.check(examples, "--json")
        self.assertEqual(r.code, 0, r)
        doc = r.json()
        self.assertEqual([os.path.basename(m["module"]) for m in doc["modules"]], lua)
        self.assertEqual(doc["counts"]["errors"], 0, r)
        # Made-up values: sandbox_component.lua needs an absolute repo, which
        # "sample" is not (a warning, not an error).
        warned = {(os.path.basename(m["module"]), f["code"])
                  for m in doc["modules"] for f in m["findings"]}
        self.assertEqual(warned, {("sandbox_component.lua", "render")}, r)
        # With an input that fits every example (extra properties are allowed),
        # every task is seen; the one warning left is the demo review's single
        # owner (the user running it).
        both = {"name": "world", "path": "src", "workspace": self.dir, "repo": self.dir}
        r = self.check(examples, "--json", "--input", json.dumps(both))
        self.assertEqual(r.code, 0, r)
        found = set()
        for m in r.json()["modules"]:
            self.assertTrue(m["loaded"], m)
            self.assertGreater(len(m["tasks"]), 0, m)
            found |= {(os.path.basename(m["module"]), f["code"], f["node"]) for f in m["findings"]}
        self.assertEqual(found, {("sandbox_component.lua", "approval-fallback-owner", "edit")})


if __name__ == "__main__":
    main()
