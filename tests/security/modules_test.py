#!/usr/bin/env python3
"""Modules the Gateway serves run with the restricted Lua library (docs/engine.md
"Restricted modules"): a module that reaches for a process, native code, the debug
library, bytecode or files outside its folder fails with a clear error and runs
nothing; `trusted_modules` (gateway.toml) or `--trusted-modules` gives the full
library back; the module cannot recover the originals. The Gateway survives every
attempt.

    SMITHERS_BIN=build/smithers tests/security/modules_test.py -v
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

TRIVIAL = """
local outputs = smithers.outputs { out = z.object { ok = z.boolean() } }
return smithers(function(ctx)
  return Workflow { name = "ok", Task { id = "t", output = outputs.out, { ok = true } } }
end)
"""


class ModulesTest(E2ETest):
    def setUp(self):
        super().setUp()
        self.wf_dir = self.path("workflows")
        os.makedirs(self.wf_dir)
        self.marker = self.path("marker")
        self.port = None

    # ---- a Gateway and its RPC ----

    def start(self, *extra, config=None):
        argv = [BIN, "--db", self.db, "gateway", "--port", "0",
                "--access-log", self.path("access.log")]
        if config is not None:
            argv += ["--config", config]
        else:
            argv += ["--workflows", self.wf_dir]
        # A variable a module must not read (os.getenv is narrowed).
        env = {"SMITHERS_MODULES_TEST_SECRET": "s3cret"}
        p, self.port, _ = gateway_test.spawn_gateway(self, argv + list(extra), env=env,
                                                     cwd=self.dir)
        self.gateway = p
        r = self.run_cli("token", "issue", "--scopes", "run:read,run:write", "--ttl", "1h")
        self.assertEqual(r.code, 0, r)
        self.tok = r.stdout.strip()
        return p

    def stop(self):
        self.gateway.send_signal(signal.SIGTERM)
        self.gateway.wait(timeout=10)

    def rpc(self, method, params):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("POST", "/v1/rpc/" + method, body=json.dumps(params),
                  headers={"Authorization": "Bearer " + self.tok})
        r = c.getresponse()
        body = json.loads(r.read().decode())
        c.close()
        return r.status, body

    def workflows(self):
        code, r = self.rpc("listWorkflows", {})
        self.assertEqual(code, 200, r)
        return {w["key"]: w for w in r["payload"]}

    def assert_alive(self):
        self.assertIsNone(self.gateway.poll(), "the Gateway died")
        code, r = self.rpc("health", {})
        self.assertEqual(code, 200, r)

    def wait_run(self, run_id, statuses):
        last = {}

        def done():
            nonlocal last
            code, last = self.rpc("getRun", {"runId": run_id})
            return code == 200 and last["payload"]["status"] in statuses
        self.wait_for(done, timeout=20, what="run %s in %s (last %s)" % (run_id, statuses, last))
        return last["payload"]

    # ---- attacks ----

    def attacks(self):
        """name -> (module source, what its error must say). Each would create
        the marker file (or kill the Gateway) with the full library."""
        m = self.marker
        so = self.path("workflows/evil.so")
        with open(so, "w") as f:
            f.write("not an ELF file")
        return {
            "popen": ('io.popen("touch %s"):close()' % m, "attempt to call a nil value (field 'popen')"),
            "execute": ('os.execute("touch %s")' % m, "attempt to call a nil value (field 'execute')"),
            "exit": ("os.exit(3)", "attempt to call a nil value (field 'exit')"),
            "loadlib": ('package.loadlib("libc.so.6", "system")("touch %s")' % m,
                        "attempt to call a nil value (field 'loadlib')"),
            "cmodule": ('package.cpath = "%s/?.so"; require("evil")' % self.wf_dir,
                        "module 'evil' not found"),
            "bytecode": ('assert(load(string.dump(function() os.execute("touch %s") end)))()' % m,
                         "attempt to call a nil value (field 'dump')"),
            "binary": ('assert(load("\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10"))()',
                       "attempt to load a binary chunk"),
            "write": ('assert(io.open("%s", "w")):write("x")' % m,
                      "a restricted module writes no files"),
            "read": ('assert(io.open("/etc/passwd")):read("a")',
                     "a restricted module reads files only in its own folder"),
            "dofile": ('dofile("/etc/passwd")', "reads files only in"),
            "debug": ('debug.sethook(function() end, "l")', "attempt to index a nil value (global 'debug')"),
            "stderr": ('io.stderr:write("{\\"event\\":\\"forged\\"}\\n")',
                       "attempt to index a nil value (field 'stderr')"),
        }

    def test_attacks_at_load_fail_clearly_and_run_nothing(self):
        attacks = self.attacks()
        for name, (lua, _) in attacks.items():
            self.write("workflows/%s.lua" % name, lua + "\n" + TRIVIAL)
        self.start()
        listed = self.workflows()
        for name, (lua, expected) in attacks.items():
            with self.subTest(attack=name):
                self.assertIn(name, listed)
                self.assertIn(expected, listed[name].get("error", ""), listed[name])
                self.assertIn("%s.lua:" % name, listed[name]["error"])
                code, r = self.rpc("launchRun", {"workflow": name, "input": {}})
                self.assertEqual(code, 400, r)
                self.assertEqual(r["error"]["code"], "InvalidInput", r)
                self.assertIn(expected, r["error"]["message"])
        self.assertFalse(os.path.exists(self.marker), "an attack ran")
        self.assert_alive()
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_runs")[0]["n"], 0)
        with open(self.path("access.log")) as f:
            self.assertNotIn('"forged"', f.read())

    def test_attacks_in_a_compute_function_fail_the_task_and_run_nothing(self):
        # The render is fine; the attack runs when the task does.
        for name, lua in {"popen": 'io.popen("touch %s")' % self.marker,
                          "execute": 'os.execute("touch %s")' % self.marker,
                          "exit": "os.exit(9)"}.items():
            self.write("workflows/%s.lua" % name, """
                local outputs = smithers.outputs { out = z.object { ok = z.boolean() } }
                return smithers(function(ctx)
                  return Workflow { name = "%s",
                    Task { id = "t", output = outputs.out, function() %s return { ok = true } end } }
                end)
                """ % (name, lua))
        self.start()
        for name in ("popen", "execute", "exit"):
            with self.subTest(attack=name):
                code, r = self.rpc("launchRun", {"workflow": name, "input": {}})
                self.assertEqual(code, 200, r)
                run = self.wait_run(r["payload"]["runId"], ("failed", "finished"))
                self.assertEqual(run["status"], "failed", run)
        self.assertFalse(os.path.exists(self.marker), "an attack ran")
        self.assert_alive()

    def test_trusted_modules_get_the_full_library(self):
        self.write("workflows/popen.lua", 'io.popen("touch %s"):close()\n' % self.marker + TRIVIAL)
        # By the configuration file ...
        self.write("gateway.toml", 'workflows = "workflows"\ntrusted_modules = true\n')
        self.start(config=self.path("gateway.toml"))
        self.assertNotIn("error", self.workflows()["popen"])
        self.wait_for(lambda: os.path.exists(self.marker), what="the trusted module's popen")
        self.stop()
        # ... and by the flag.
        os.unlink(self.marker)
        self.start("--trusted-modules")
        self.assertNotIn("error", self.workflows()["popen"])
        self.wait_for(lambda: os.path.exists(self.marker), what="the trusted module's popen")

    def test_the_originals_cannot_be_recovered(self):
        self.write("workflows/recover.lua", r"""
            local found = {}
            local function check(name, f)
              local ok, v = pcall(f)
              if ok and v ~= nil and v ~= false then found[#found + 1] = name end
            end
            check("package.loaded.io.popen", function() return package.loaded.io.popen end)
            check("package.loaded.os.execute", function() return package.loaded.os.execute end)
            check("package.loaded.debug", function() return package.loaded.debug end)
            check("require debug", function() return require("debug") end)
            check("require io.popen", function() return require("io").popen end)
            check("string metatable dump", function() return getmetatable("").__index.dump end)
            check("file metatable popen", function()
              local f = assert(io.open("%s/recover.lua"))
              return getmetatable(f).__index.popen end)
            check("package.loadlib", function() return package.loadlib end)
            check("C searcher", function() return package.searchers[3] or package.searchers[4] end)
            check("_G.debug", function() return _G.debug end)
            check("rawget debug", function() return rawget(_G, "debug") end)
            check("coroutine env", function()
              return coroutine.wrap(function() return os.execute end)() end)
            check("load env", function() return load("return os.execute")() end)
            check("load bytecode", function()
              return load("\27Lua\84\0\25\147\13\10\26\10", "x", "b") end)
            check("getenv secret", function() return os.getenv("SMITHERS_MODULES_TEST_SECRET") end)
            check("schema metatable", function() return type(getmetatable(z.string())) == "table" end)
            check("collectgarbage reopen", function()
              collectgarbage() return package.loaded.io.popen end)
            check("loadfile outside", function() return loadfile("/etc/passwd") end)
            local outputs = smithers.outputs { out = z.object { found = z.array(z.string()) } }
            return smithers(function(ctx)
              return Workflow { name = "recover",
                Task { id = "t", output = outputs.out, function()
                  check("compute os.execute", function() return os.execute end)
                  return { found = smithers.array(found) } end } }
            end)
            """ % self.wf_dir)
        self.start()
        self.assertNotIn("error", self.workflows()["recover"])
        code, r = self.rpc("launchRun", {"workflow": "recover", "input": {}})
        self.assertEqual(code, 200, r)
        run_id = r["payload"]["runId"]
        self.assertEqual(self.wait_run(run_id, ("finished", "failed"))["status"], "finished")
        code, r = self.rpc("getNodeOutput", {"runId": run_id, "nodeId": "t"})
        self.assertEqual(code, 200, r)
        self.assertEqual(r["payload"]["row"]["found"], [], r)

    def test_forged_ctx_handles_and_schema_finalizers_do_not_crash_the_gateway(self):
        self.write("workflows/forge.lua", """
            local outputs = smithers.outputs { out = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              -- The ctx's own methods hold its handle: replacing the field
              -- changes nothing; a table with a forged one is refused.
              ctx.__handle = z.string()
              ctx:outputMaybe(outputs.out, "t")
              ctx.outputMaybe({ __handle = z.string() }, outputs.out, "t")
              return Workflow { name = "forge", Task { id = "t", output = outputs.out, { ok = true } } }
            end)
            """)
        self.write("workflows/gc.lua", """
            local s = z.string()
            local mt = getmetatable(s)
            if type(mt) == "table" then mt.__gc(s) mt.__gc(s) end
            """ + TRIVIAL)
        self.write("workflows/meta.lua", """
            return setmetatable({}, { __index = function() error("boom") end })
            """)
        self.start()
        code, r = self.rpc("launchRun", {"workflow": "forge", "input": {}})
        self.assertEqual(code, 400, r)
        self.assertIn("ctx can only be read while the workflow renders", r["error"]["message"])
        self.assertNotIn("error", self.workflows()["gc"])
        self.assertIn("must return smithers(", self.workflows()["meta"]["error"])
        self.assert_alive()

    def test_reads_stay_in_the_folder_and_writes_in_the_workspace(self):
        self.write("workflows/data.txt", "from the folder", prelude=False)
        os.makedirs(self.path("ws"))
        self.write("workflows/files.lua", """
            local here = "%s"
            local text = assert(io.open(here .. "/data.txt")):read("a")
            local f = assert(io.open("%s/out.txt", "w"))
            f:write(text) f:close()
            """ % (self.wf_dir, self.path("ws")) + TRIVIAL)
        self.start("--module-workspace", self.path("ws"))
        self.assertNotIn("error", self.workflows()["files"])
        with open(self.path("ws/out.txt")) as f:
            self.assertEqual(f.read(), "from the folder")


if __name__ == "__main__":
    main()
