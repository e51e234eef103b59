#!/usr/bin/env python3
"""Agent tasks end to end through the real binary.

Coding-agent CLIs (Claude Code, Codex, Gemini) are stand-in executables that
print each real CLI's JSON output format; HTTP providers are the local fake
server (tests/e2e/fake_model_server.py) speaking the OpenAI and Anthropic wire
formats. Checked: structured output parsed and validated, violations fed back,
fallback chains, a missing executable named, token accounting in `inspect`,
and that an API key never reaches the database, its WAL or the event log."""

import glob
import json
import os
import stat
import sys
import time

from smithers_e2e import PYTHON, E2ETest, main

# A stand-in CLI: answers from a queue of replies in replies.json beside it (one
# per call, the last repeated), logs its argv to calls.log beside it, prints the format of
# the CLI named by argv[1] of the script.
STAND_IN = r'''#!%s
import json, os, sys
kind = %r
# Beside the script: a CLI agent gets only PATH, HOME, LANG, TZ, TMPDIR, LC_*
# and what its agent declares in env, not the variables of the engine.
here = os.path.dirname(os.path.abspath(__file__))
log = os.environ.get("FAKE_LOG") or os.path.join(here, "calls.log")
with open(log, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
calls = sum(1 for _ in open(log))
replies = json.load(open(os.environ.get("FAKE_REPLIES") or os.path.join(here, "replies.json")))
text = replies[min(calls, len(replies)) - 1]
if kind == "claude":
    print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                      "result": text, "usage": {"input_tokens": 11, "output_tokens": 7}}))
elif kind == "codex":
    print(json.dumps({"type": "thread.started", "thread_id": "t1"}))
    print(json.dumps({"type": "item.completed", "item": {"id": "i1", "type": "agent_message", "text": text}}))
    print(json.dumps({"type": "turn.completed", "usage": {"input_tokens": 20, "cached_input_tokens": 0, "output_tokens": 5}}))
else:
    print(json.dumps({"response": text, "stats": {"models": {"gemini-2.5-pro": {"tokens": {"prompt": 30, "candidates": 9}}}}}))
'''


class CliAgentTest(E2ETest):
    def stand_in(self, kind, replies):
        path = self.path("fake-" + kind)
        with open(path, "w") as f:
            f.write(STAND_IN % (PYTHON, kind))
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
        with open(self.path("replies.json"), "w") as f:
            json.dump(replies, f)
        return path

    def env(self):
        return {"FAKE_LOG": self.path("calls.log"), "FAKE_REPLIES": self.path("replies.json")}

    def calls(self):
        try:
            with open(self.path("calls.log")) as f:
                return [json.loads(l) for l in f]
        except FileNotFoundError:
            return []

    def module(self, agent_expr):
        return self.write("agent.lua", """
            local outputs = smithers.outputs {
              review = z.object { verdict = z.enum { "ok", "bad" }, score = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "review",
                Task { id = "review", output = outputs.review, agent = %s,
                       "Review the change: " .. ctx.input.change },
              }
            end)
            """ % agent_expr)

    def test_each_cli_format_gives_a_validated_output(self):
        for kind, ctor, tokens in (("claude", "ClaudeCodeAgent", (11, 7)),
                                   ("codex", "CodexAgent", (20, 5)),
                                   ("gemini", "GeminiAgent", (30, 9))):
            if os.path.exists(self.path("calls.log")):
                os.remove(self.path("calls.log"))
            exe = self.stand_in(kind, ['Here you go:\n```json\n{"verdict": "ok", "score": 3}\n```'])
            wf = self.module('smithers.%s { model = "m1", executable = %r }' % (ctor, exe))
            r = self.up(wf, {"change": "x"}, "run-" + kind, env=self.env())
            self.assertEqual(r.code, 0, r)
            self.assertEqual(r.json()["outputs"]["review"]["review"], {"verdict": "ok", "score": 3})
            [argv] = self.calls()
            prompt = next(a for a in argv if a.startswith("Review the change: x"))
            self.assertIn('"verdict"', prompt, "the schema goes into the prompt")
            self.assertIn("m1", argv)
            attempt = self.node("run-" + kind, "review")["attempts"][0]
            meta = self.query("SELECT meta_json FROM _smithers_attempts WHERE run_id = ?",
                              "run-" + kind)[0]["meta_json"]
            meta = json.loads(meta)
            self.assertEqual((meta["tokens"]["input"], meta["tokens"]["output"]), tokens, kind)
            self.assertEqual(attempt["state"], "finished")

    def test_violations_are_fed_back(self):
        exe = self.stand_in("claude", ['{"verdict": "maybe", "score": 1}',
                                       '{"verdict": "bad", "score": 1}'])
        wf = self.module('smithers.ClaudeCodeAgent { executable = %r }' % exe)
        r = self.up(wf, {"change": "x"}, "fb", env=self.env())
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["review"]["review"]["verdict"], "bad")
        first, second = self.calls()
        prompt2 = second[second.index("-p") + 1]
        self.assertIn("$.verdict", prompt2)
        self.assertIn('"verdict": "maybe"', prompt2)

    def test_require_sandbox_refuses_a_cli_agent_and_runs_nothing(self):
        exe = self.stand_in("claude", ['{"verdict": "ok", "score": 1}'])
        wf = self.module('smithers.ClaudeCodeAgent { executable = %r }' % exe)
        r = self.up(wf, {"change": "x"}, "strict", "--require-sandbox", env=self.env())
        self.assertEqual(r.code, 1, r)
        cause = r.json()["error"]["cause"]
        self.assertEqual(cause["code"], "SANDBOX_REQUIRED", r)
        self.assertIn("claude-code agent's process is not confined", cause["message"])
        self.assertFalse(os.path.exists(self.path("calls.log")), "the agent ran")
        attempts = self.query("SELECT COUNT(*) AS n FROM _smithers_attempts WHERE run_id = ?",
                              "strict")
        self.assertEqual(attempts[0]["n"], 1, "SANDBOX_REQUIRED is not retried")

    def test_invalid_output_after_the_retries_fails_the_task(self):
        exe = self.stand_in("gemini", ["not json at all"])
        wf = self.module('smithers.GeminiAgent { executable = %r, maxSchemaRetries = 1 }' % exe)
        r = self.up(wf, {"change": "x"}, "bad", env=self.env())
        self.assertEqual(r.code, 1, r)
        self.assertEqual(r.json()["error"]["cause"]["code"], "INVALID_OUTPUT")
        self.assertEqual(len(self.calls()), 2)

    def test_a_missing_executable_is_named_and_the_chain_falls_back(self):
        exe = self.stand_in("codex", ['{"verdict": "ok", "score": 9}'])
        wf = self.module('{ smithers.ClaudeCodeAgent { executable = "/nope/claude-missing" }, '
                         'smithers.CodexAgent { executable = %r } }' % exe)
        r = self.up(wf, {"change": "x"}, "chain", env=self.env())
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["review"]["review"]["score"], 9)
        meta = json.loads(self.query("SELECT meta_json FROM _smithers_attempts")[0]["meta_json"])
        self.assertEqual([a["ok"] for a in meta["agents"]], [False, True])
        self.assertIn("/nope/claude-missing", meta["agents"][0]["error"]["message"])

        wf = self.module('smithers.ClaudeCodeAgent { executable = "/nope/claude-missing" }')
        r = self.up(wf, {"change": "x"}, "missing", env=self.env())
        self.assertEqual(r.code, 1, r)
        self.assertIn("/nope/claude-missing", r.json()["error"]["cause"]["message"])

    def test_a_cli_agent_that_cannot_start_says_why(self):
        exe = self.stand_in("claude", ['{"verdict": "ok", "score": 1}'])
        missing = self.path("no-such-folder")
        wf = self.module('smithers.ClaudeCodeAgent { executable = %r, rootDir = %r }'
                         % (exe, missing))
        r = self.up(wf, {"change": "x"}, "nocwd", env=self.env())
        self.assertEqual(r.code, 1, r)
        cause = r.json()["error"]["cause"]
        self.assertEqual(cause["code"], "AGENT_REQUEST_FAILED")
        self.assertIn('cannot run "%s" in "%s": No such file or directory' % (exe, missing),
                      cause["message"])
        self.assertEqual(self.calls(), [])

    def test_what_a_cli_agent_leaves_running_is_ended_when_it_exits(self):
        # The CLI answers and exits; a child it started keeps its stdout open.
        # Its reply is used at once and the child is killed with its group.
        exe = self.path("fake-leaves-child")
        reply = json.dumps({"type": "result", "subtype": "success", "is_error": False,
                            "result": json.dumps({"verdict": "ok", "score": 4})})
        with open(exe, "w") as f:
            f.write("#!/bin/sh\nsleep 300 &\necho $! > %s\necho '%s'\n"
                    % (self.path("child.pid"), reply))
        os.chmod(exe, 0o755)
        wf = self.module('smithers.ClaudeCodeAgent { executable = %r }' % exe)
        r = self.up(wf, {"change": "x"}, "leftover")
        self.assertEqual(r.code, 0, r)
        self.assertLess(r.elapsed, 60)
        self.assertEqual(r.json()["outputs"]["review"]["review"]["score"], 4)
        with open(self.path("child.pid")) as f:
            pid = int(f.read())

        def gone():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except FileNotFoundError:
                return True
        self.wait_for(gone, what="the CLI's leftover child to be killed")

    def test_cancel_kills_a_hung_cli_agent(self):
        exe = self.path("fake-hang")
        with open(exe, "w") as f:
            f.write("#!/bin/sh\necho started >> %s\nexec sleep 60\n" % self.path("calls.log"))
        os.chmod(exe, 0o755)
        wf = self.module('smithers.ClaudeCodeAgent { executable = %r }' % exe)
        p = self.start_up(wf, {"change": "x"}, "hung")
        self.wait_for(lambda: os.path.exists(self.path("calls.log")), what="the agent to start")
        t0 = time.monotonic()
        self.assertEqual(self.run_cli("cancel", "hung").code, 0)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 2, err)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(self.node("hung", "review")["state"], "cancelled")

    def test_a_silent_cli_agent_fails_by_heartbeat_timeout_and_is_retried(self):
        exe = self.path("fake-silent")
        with open(exe, "w") as f:
            f.write("#!/bin/sh\necho started >> %s\nexec sleep 60\n" % self.path("calls.log"))
        os.chmod(exe, 0o755)
        wf = self.write("silent.lua", """
            local outputs = smithers.outputs { r = z.object { ok = z.boolean() } }
            return smithers(function(ctx)
              return Workflow { name = "silent",
                Task { id = "t", output = outputs.r, retries = 1, heartbeatTimeoutMs = 600,
                       agent = smithers.ClaudeCodeAgent { executable = %r }, "go" } }
            end)
            """ % exe)
        r = self.up(wf, None, "hb1")
        self.assertEqual(r.code, 1, r)
        self.assertLess(r.elapsed, 15)
        cause = r.json()["error"]["cause"]
        self.assertEqual(cause["code"], "TASK_HEARTBEAT_TIMEOUT", cause)
        self.assertGreaterEqual(cause["staleForMs"], 600)
        self.assertEqual(len(self.calls_lines()), 2, "the timeout is retryable: two attempts")
        timeouts = [e for e in self.events("hb1") if e["type"] == "TaskHeartbeatTimeout"]
        self.assertEqual([e["payload"]["attempt"] for e in timeouts], [1, 2])
        self.assertEqual(timeouts[0]["payload"]["timeoutMs"], 600)

    def test_the_default_heartbeat_timeout_comes_from_the_environment(self):
        exe = self.path("fake-silent")
        with open(exe, "w") as f:
            f.write("#!/bin/sh\nexec sleep 60\n")
        os.chmod(exe, 0o755)
        wf = self.module('smithers.ClaudeCodeAgent { executable = %r }' % exe)
        r = self.up(wf, {"change": "x"}, "hb2", env={"SMITHERS_TASK_HEARTBEAT_MS": "500"})
        self.assertEqual(r.code, 1, r)
        self.assertEqual(r.json()["error"]["cause"]["code"], "TASK_HEARTBEAT_TIMEOUT")
        # A value that is not a positive number of milliseconds is bad input:
        # refused before the run starts, never silently the default.
        for bad in ("abc", "0", "-5", "10s"):
            r = self.up(wf, {"change": "x"}, "hb3", env={"SMITHERS_TASK_HEARTBEAT_MS": bad})
            self.assertEqual(r.code, 4, (bad, r))
            self.assertIn("SMITHERS_TASK_HEARTBEAT_MS", r.stderr, bad)
        self.assertNotEqual(self.run_cli("inspect", "hb3").code, 0, "the refused run does not exist")

    def test_output_keeps_a_slow_cli_agent_alive(self):
        exe = self.path("fake-chatty")
        reply = json.dumps({"verdict": "ok", "score": 3})
        with open(exe, "w") as f:
            f.write("#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8; do echo working >&2; sleep 0.25; done\n"
                    "echo '%s'\n" % json.dumps({"type": "result", "subtype": "success",
                                                 "is_error": False, "result": reply}))
        os.chmod(exe, 0o755)
        wf = self.write("chatty.lua", """
            local outputs = smithers.outputs {
              review = z.object { verdict = z.enum { "ok", "bad" }, score = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "chatty",
                Task { id = "review", output = outputs.review, heartbeatTimeout = 800,
                       agent = smithers.ClaudeCodeAgent { executable = %r }, "go" } }
            end)
            """ % exe)
        r = self.up(wf, None, "hb3")
        self.assertEqual(r.code, 0, r)  # 2 s of work, never 0.8 s silent
        beats = [e for e in self.events("hb3") if e["type"] == "TaskHeartbeat"]
        self.assertGreaterEqual(len(beats), 1)
        self.assertEqual(beats[0]["payload"]["attempt"], 1)
        self.assertLessEqual(len(beats), 4, "at most one TaskHeartbeat per second")

    def calls_lines(self):
        with open(self.path("calls.log")) as f:
            return f.read().splitlines()

    def test_a_prompt_without_an_agent_is_bad_input(self):
        wf = self.module("nil")
        r = self.up(wf, {"change": "x"}, "noagent")
        self.assertEqual(r.code, 4, r)
        self.assertIn("a prompt needs an agent", r.stderr)


KEY = "sk-test-" + "Zq7Xv2Lm9Pw4Rt6Yb1Nc"  # a key shape the redactor knows, and a known value


class HttpAgentTest(E2ETest):
    def serve(self, script):
        return self.serve_model(script)

    def requests(self):
        with open(self.path("requests.jsonl")) as f:
            return [json.loads(l) for l in f]

    def test_tool_loop_reads_and_edits_a_file_and_the_key_goes_nowhere(self):
        os.makedirs(self.path("repo"))
        with open(self.path("repo/app.py"), "w") as f:
            f.write("def add(a, b):\n    return a - b\n")
        url = self.serve({"/v1/chat/completions": [
            {"reply": {"tool_calls": [{"id": "c1", "name": "read",
                                       "arguments": {"path": "app.py"}}],
                       "input_tokens": 100, "output_tokens": 10}},
            {"reply": {"tool_calls": [{"id": "c2", "name": "edit",
                                       "arguments": {"path": "app.py", "old_string": "a - b",
                                                     "new_string": "a + b"}}],
                       "input_tokens": 150, "output_tokens": 12}},
            {"reply": {"structured": {"fixed": True, "summary": "subtraction -> addition"},
                       "input_tokens": 200, "output_tokens": 20}},
        ]})
        wf = self.write("fix.lua", """
            local outputs = smithers.outputs {
              fix = z.object { fixed = z.boolean(), summary = z.string() } }
            local coder = smithers.Agent { provider = "openai", model = "gpt-test",
              baseUrl = %r, tools = { "read", "edit" }, rootDir = %r,
              instructions = "You fix bugs." }
            return smithers(function(ctx)
              return Workflow { name = "fix",
                Task { id = "fix", output = outputs.fix, agent = coder, "Fix add() in app.py" } }
            end)
            """ % (url + "/v1", self.path("repo")))
        r = self.up(wf, None, "fix1", env={"OPENAI_API_KEY": KEY})
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["fix"]["fix"],
                         {"fixed": True, "summary": "subtraction -> addition"})
        with open(self.path("repo/app.py")) as f:
            self.assertIn("return a + b", f.read())
        reqs = self.requests()
        self.assertEqual(len(reqs), 3)
        self.assertEqual(reqs[0]["body"]["model"], "gpt-test")
        self.assertEqual(reqs[0]["body"]["messages"][0],
                         {"role": "system", "content": "You fix bugs."})
        self.assertEqual(reqs[0]["body"]["response_format"]["type"], "json_schema")
        self.assertEqual([t["function"]["name"] for t in reqs[0]["body"]["tools"]],
                         ["read", "edit"])
        tool_msg = reqs[1]["body"]["messages"][-1]
        self.assertEqual((tool_msg["role"], tool_msg["tool_call_id"]), ("tool", "c1"))
        self.assertIn("a - b", tool_msg["content"])
        auth = {k.lower(): v for k, v in reqs[0]["headers"].items()}["authorization"]
        self.assertEqual(auth, "Bearer " + KEY)
        meta = json.loads(self.query("SELECT meta_json FROM _smithers_attempts")[0]["meta_json"])
        self.assertEqual(meta["tokens"], {"input": 450, "output": 42})
        calls = meta["agents"][0]["toolCalls"]
        self.assertEqual([(c["name"], c["ok"]) for c in calls], [("read", True), ("edit", True)])
        # The key is nowhere: database, WAL, events, output.
        everything = r.stdout + r.stderr + json.dumps(self.events("fix1"))
        for path in glob.glob(self.db + "*"):
            with open(path, "rb") as f:
                self.assertNotIn(KEY.encode(), f.read(), path)
        self.assertNotIn(KEY, everything)

    def test_an_escape_is_refused_and_reported_to_the_model(self):
        os.makedirs(self.path("repo"))
        os.symlink("/etc", self.path("repo/etc-link"))
        url = self.serve({"/v1/messages": [
            {"reply": {"tool_calls": [
                {"id": "t1", "name": "read", "arguments": {"path": "../secret.txt"}},
                {"id": "t2", "name": "read", "arguments": {"path": "etc-link/passwd"}}]}},
            {"reply": {"text": '```json\n{"fixed": false, "summary": "refused"}\n```'}},
        ]})
        with open(self.path("secret.txt"), "w") as f:
            f.write("TOP SECRET")
        wf = self.write("esc.lua", """
            local outputs = smithers.outputs {
              fix = z.object { fixed = z.boolean(), summary = z.string() } }
            local a = smithers.Agent { provider = "anthropic", model = "claude-test",
              baseUrl = %r, tools = { "read" }, rootDir = %r }
            return smithers(function(ctx)
              return Workflow { name = "esc",
                Task { id = "t", output = outputs.fix, agent = a, "Read the secrets" } }
            end)
            """ % (url, self.path("repo")))
        r = self.up(wf, None, "esc1", env={"ANTHROPIC_API_KEY": KEY})
        self.assertEqual(r.code, 0, r)
        reqs = self.requests()
        results = reqs[1]["body"]["messages"][-1]["content"]
        self.assertEqual([b["is_error"] for b in results], [True, True])
        for b in results:
            self.assertNotIn("TOP SECRET", json.dumps(b))
            self.assertNotIn("root:", json.dumps(b))
        self.assertIn("outside", results[1]["content"])
        headers = {k.lower(): v for k, v in reqs[0]["headers"].items()}
        self.assertEqual(headers["x-api-key"], KEY)
        self.assertEqual(headers["anthropic-version"], "2023-06-01")

    def test_429_with_retry_after_then_success(self):
        url = self.serve({"/v1/chat/completions": [
            {"status": 429, "headers": {"Retry-After": "1"},
             "body": {"error": {"message": "slow down"}}},
            {"reply": {"structured": {"fixed": True, "summary": "ok"}}},
        ]})
        wf = self.write("rl.lua", """
            local outputs = smithers.outputs {
              fix = z.object { fixed = z.boolean(), summary = z.string() } }
            local a = smithers.Agent { provider = "openai", model = "m", baseUrl = %r }
            return smithers(function(ctx)
              return Workflow { name = "rl",
                Task { id = "t", output = outputs.fix, agent = a, "go" } }
            end)
            """ % (url + "/v1"))
        r = self.up(wf, None, "rl1", env={"OPENAI_API_KEY": KEY})
        self.assertEqual(r.code, 0, r)
        self.assertGreaterEqual(r.elapsed, 0.9, "Retry-After: 1 was honoured")
        self.assertEqual(len(self.requests()), 2)

    def test_streamed_text_becomes_node_output_events(self):
        answer = '{"fixed": true, "summary": "' + "word " * 40 + '"}'
        url = self.serve({"/v1/messages": [
            {"reply": {"text": answer, "input_tokens": 5, "output_tokens": 60},
             "chunk_delay_s": 0.02}]})
        wf = self.write("stream.lua", """
            local outputs = smithers.outputs {
              fix = z.object { fixed = z.boolean(), summary = z.string() } }
            local a = smithers.Agent { provider = "anthropic", model = "m", baseUrl = %r,
                                       stream = true, price = { input = 3, output = 15 } }
            return smithers(function(ctx)
              return Workflow { name = "stream",
                Task { id = "t", output = outputs.fix, agent = a, "go" } }
            end)
            """ % url)
        r = self.up(wf, None, "st1", env={"ANTHROPIC_API_KEY": KEY})
        self.assertEqual(r.code, 0, r)
        self.assertTrue(self.requests()[0]["body"]["stream"])
        pieces = [e["payload"]["text"] for e in self.events("st1") if e["type"] == "NodeOutput"]
        self.assertGreater(len(pieces), 1, "streamed in several events")
        self.assertEqual("".join(pieces), answer)
        meta = json.loads(self.query("SELECT meta_json FROM _smithers_attempts")[0]["meta_json"])
        self.assertEqual(meta["tokens"], {"input": 5, "output": 60})
        self.assertAlmostEqual(meta["costUsd"], (5 * 3 + 60 * 15) / 1e6)
        tokens = self.inspect("st1")["tokens"]
        self.assertEqual(tokens, {"input": 5, "output": 60, "costUsd": meta["costUsd"]})
        [node] = self.inspect("st1")["nodes"]
        self.assertEqual(node["tokens"], tokens)
        [run] = self.run_cli("ps", "--json").json()["runs"]
        self.assertEqual(run["tokens"], tokens)

    def hanging_module(self, url, extra=""):
        return self.write("hang.lua", """
            local outputs = smithers.outputs {
              fix = z.object { fixed = z.boolean(), summary = z.string() } }
            local a = smithers.Agent { provider = "openai", model = "m", baseUrl = %r }
            return smithers(function(ctx)
              return Workflow { name = "hang",
                Task { id = "t", output = outputs.fix, agent = a, %s "go" } }
            end)
            """ % (url + "/v1", extra))

    def test_a_hang_past_the_timeout_fails_the_attempt(self):
        url = self.serve({"/v1/chat/completions": [{"reply": {"text": "{}"}, "delay_s": 30}]})
        r = self.up(self.hanging_module(url, "timeoutMs = 700,"), None, "to1",
                    env={"OPENAI_API_KEY": KEY})
        self.assertEqual(r.code, 1, r)
        self.assertLess(r.elapsed, 10)
        self.assertEqual(r.json()["error"]["cause"]["code"], "TASK_TIMEOUT")

    def test_a_silent_request_past_the_heartbeat_timeout_fails(self):
        url = self.serve({"/v1/chat/completions": [{"reply": {"text": "{}"}, "delay_s": 30}]})
        r = self.up(self.hanging_module(url, "heartbeatTimeoutMs = 700,"), None, "hb4",
                    env={"OPENAI_API_KEY": KEY})
        self.assertEqual(r.code, 1, r)
        self.assertLess(r.elapsed, 10)
        self.assertEqual(r.json()["error"]["cause"]["code"], "TASK_HEARTBEAT_TIMEOUT")
        self.assertIn("TaskHeartbeatTimeout", [e["type"] for e in self.events("hb4")])

    def test_cancel_aborts_the_request_in_flight(self):
        url = self.serve({"/v1/chat/completions": [{"reply": {"text": "{}"}, "delay_s": 30}]})
        p = self.start_up(self.hanging_module(url), None, "cx1")
        self.wait_for(lambda: os.path.exists(self.path("requests.jsonl")) and self.requests(),
                      what="the request to reach the server")
        t0 = time.monotonic()
        self.assertEqual(self.run_cli("cancel", "cx1").code, 0)
        out, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 2, err)
        self.assertLess(time.monotonic() - t0, 5, "the request was aborted, not waited out")
        self.assertEqual(self.node("cx1", "t")["state"], "cancelled")


if __name__ == "__main__":
    main()
