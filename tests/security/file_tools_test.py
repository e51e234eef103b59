#!/usr/bin/env python3
"""The agents' file tools and the engine's state (issue 11, item 7).

The bash tool runs in a sandbox that masks the database; `read`, `write`,
`edit` and `grep` run in the engine and are confined to rootDir. When the
database lives under rootDir they must still not reach it: a real agent (the
fake OpenAI server, tests/e2e/fake_model_server.py) calls the tools through the
real binary, with the database at `rootDir/.smithers/smithers.db`, and what the
tools answered comes back to the model as tool results, which the fake server
logs. Checked:

- `read`, `write` and `edit` of `.smithers/smithers.db` (relative, absolute,
  through a symlink, its -wal) are tool errors that say why, and the run goes on;
- `grep` over rootDir answers, finds ordinary files and prints nothing of the
  engine's state;
- the database is intact and the run finishes;
- a file that is not UTF-8 (a binary file) is read with U+FFFD for the bad
  bytes: the result goes to the model as a JSON string, and such a file used
  to abort the engine.
"""

import json
import os

from security_e2e import *  # noqa: F401,F403

REFUSED = "is the engine's state and is not visible to tools"


class FileToolsTest(E2ETest):
    def serve(self, script):
        return self.serve_model(script) + "/v1"

    def tools(self, calls):
        """One model turn makes `calls` ((name, arguments) pairs) with rootDir the
        test directory, the next one answers. Returns the tool results the model saw."""
        url = self.serve({"/v1/chat/completions": [
            {"reply": {"tool_calls": [{"id": "c%d" % i, "name": n, "arguments": a}
                                      for i, (n, a) in enumerate(calls)]}},
            {"reply": {"structured": {"done": True}}},
        ]})
        wf = self.write("files.lua", """
            local outputs = smithers.outputs { r = z.object { done = z.boolean() } }
            local a = smithers.Agent { provider = "openai", model = "m", baseUrl = %r,
              tools = { "read", "write", "edit", "grep" }, rootDir = %r }
            return smithers(function(ctx)
              return Workflow { name = "files",
                Task { id = "t", output = outputs.r, agent = a, "Look around" } }
            end)
            """ % (url, self.dir))
        r = self.up(wf, None, "f1", env={"OPENAI_API_KEY": "k"})
        self.assertEqual(r.code, 0, r)
        with open(self.path("requests.jsonl")) as f:
            reqs = [json.loads(l) for l in f]
        self.assertEqual(len(reqs), 2, reqs)
        out = [m["content"] for m in reqs[1]["body"]["messages"] if m["role"] == "tool"]
        self.assertEqual(len(out), len(calls), out)
        self.assertEqual(self.inspect("f1")["run"]["status"], "finished")
        return out

    def test_read_write_edit_grep_do_not_reach_the_database_under_root_dir(self):
        os.makedirs(self.path(".smithers"))
        self.db = self.path(".smithers/smithers.db")
        os.symlink(".smithers/smithers.db", self.path("db-link"))
        self.write("notes.txt", "a visible note\n", prelude=False)
        calls = [
            ("read", {"path": ".smithers/smithers.db"}),
            ("read", {"path": self.db}),
            ("read", {"path": "db-link"}),
            ("read", {"path": ".smithers/smithers.db-wal"}),
            ("write", {"path": ".smithers/smithers.db", "content": "garbage"}),
            ("edit", {"path": "db-link", "old_string": "SQLite", "new_string": "XXXXXX"}),
            ("grep", {"pattern": "visible|_smithers_|SQLite"}),
        ]
        out = self.tools(calls)
        for (name, args), text in zip(calls[:-1], out[:-1]):
            self.assertIn(REFUSED, text, (name, args))
            self.assertNotIn("SQLite format", text)
        grep = out[-1]
        self.assertIn("notes.txt:1: a visible note", grep)
        self.assertNotIn(REFUSED, grep)
        files = {line.split(":", 1)[0] for line in grep.splitlines()}
        self.assertIn("notes.txt", files)
        self.assertFalse([f for f in files if f.startswith(".smithers") or f == "db-link"],
                         grep)
        with open(self.db, "rb") as f:
            self.assertEqual(f.read(15), b"SQLite format 3")

    def test_a_file_that_is_not_utf8_is_read_not_a_crash(self):
        # The result goes to the model as a JSON string; this aborted the engine.
        with open(self.path("image.bin"), "wb") as f:
            f.write(b"head\xff\xfe\xc3 tail\n")
        out = self.tools([("read", {"path": "image.bin"}), ("grep", {"pattern": "tail"})])
        self.assertEqual(out[0], "1\thead\ufffd\ufffd\ufffd tail\n")
        self.assertIn("image.bin:1: head\ufffd\ufffd\ufffd tail", out[1])


if __name__ == "__main__":
    main()
