#!/usr/bin/env python3
"""Bad usage and bad input: exit code 4, a message that says what and where, and
nothing written. Each case runs twice: with no database (none may be created)
and with a copy of a database that already holds a run (no row, table or view
may change)."""

import os
import shutil
import sqlite3
import subprocess
import tempfile

from smithers_e2e import BIN, SOURCE_DIR, E2ETest, main

HELLO = os.path.join(SOURCE_DIR, "examples", "hello.lua")


def snapshot(db):
    """Every table's row count plus the schema, so any write shows up."""
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        schema = conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        counts = {name: conn.execute('SELECT COUNT(*) FROM "%s"' % name).fetchone()[0]
                  for (kind, name, _) in schema if kind == "table"}
        return {"schema": schema, "counts": counts}
    finally:
        conn.close()


class BadInputTest(E2ETest):
    @classmethod
    def setUpClass(cls):
        cls.seed_dir = tempfile.mkdtemp(prefix="smithers-e2e-seed-")
        cls.seed_db = os.path.join(cls.seed_dir, "seed.db")
        p = subprocess.run([BIN, "up", HELLO, "--input", '{"name":"seed"}', "--run-id",
                            "seed-run", "--db", cls.seed_db],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.seed_dir, ignore_errors=True)

    def check_bad(self, *args, expect=(), fresh=True):
        """Runs `smithers ARGS` against no database and against a copy of the seeded
        one; both must exit 4 with every `expect` string in stderr and write
        nothing. Returns the stderr of the first run."""
        stderr = None
        if fresh:
            r = self.run_cli(*args)
            self.assertEqual(r.code, 4, r)
            for e in expect:
                self.assertIn(e, r.stderr, r)
            self.assertEqual(r.stdout, "", r)
            self.assertFalse(os.path.exists(self.db),
                             "bad input created the database: %r" % (r,))
            stderr = r.stderr
        seeded = self.path("seeded.db")
        shutil.copy(self.seed_db, seeded)
        before = snapshot(seeded)
        r = self.run_cli(*args, db=seeded)
        self.assertEqual(r.code, 4, r)
        for e in expect:
            self.assertIn(e, r.stderr, r)
        self.assertEqual(snapshot(seeded), before, "bad input changed the database: %r" % (r,))
        return stderr if stderr is not None else r.stderr

    # ---- the module ----

    def test_lua_syntax_error_names_file_and_line(self):
        wf = self.write("syntax.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { name = "broken",
                Task { id = "t", output = outputs.r, { } }
              end -- the table is never closed
            end)
            """)
        line = self.line_of(wf, "the table is never closed")
        err = self.check_bad("up", wf, expect=["syntax", "syntax.lua:%d" % line])
        self.assertNotIn("stack traceback", err)

    def test_lua_runtime_error_at_load_names_file_and_line(self):
        wf = self.write("load_error.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            local config = nil
            local retries = config.retries -- boom at load
            return smithers(function(ctx) return Workflow {} end)
            """)
        line = self.line_of(wf, "boom at load")
        self.check_bad("up", wf, expect=["load_error.lua:%d" % line, "config"])

    def test_lua_error_call_at_load(self):
        wf = self.write("raise.lua", """
            error("refusing to load") -- raise
            """)
        line = self.line_of(wf, "-- raise")
        self.check_bad("up", wf, expect=["raise.lua:%d" % line, "refusing to load"])

    def test_lua_runtime_error_in_render_names_file_and_line(self):
        wf = self.write("render_error.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              local deep = ctx.input.settings.depth -- boom in render
              return Workflow { Task { id = "t", output = outputs.r, {} } }
            end)
            """)
        line = self.line_of(wf, "boom in render")
        self.check_bad("up", wf, "--input", '{"other": 1}',
                       expect=["render", "render_error.lua:%d" % line, "settings"])

    def test_render_returning_a_plain_table(self):
        wf = self.write("plain.lua", """
            return smithers(function(ctx) return { "not a component" } end)
            """)
        self.check_bad("up", wf, expect=["not a component"])

    def test_module_not_returning_a_workflow(self):
        wf = self.write("noreturn.lua", """
            local x = 1
            """)
        self.check_bad("up", wf, expect=["noreturn.lua", "must return smithers("])

    def test_missing_module_file(self):
        self.check_bad("up", self.path("nowhere.lua"), expect=["nowhere.lua"])

    def test_duplicate_task_id_names_both_places(self):
        wf = self.write("dup.lua", """
            local outputs = smithers.outputs { r = z.object { n = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "dup",
                Task { id = "same", output = outputs.r, { n = 1 } }, -- first
                Parallel {
                  Task { id = "other", output = outputs.r, { n = 2 } },
                  Task { id = "same", output = outputs.r, { n = 3 } }, -- second
                },
              }
            end)
            """)
        first, second = self.line_of(wf, "-- first"), self.line_of(wf, "-- second")
        self.check_bad("up", wf, expect=['"same"', "dup.lua:%d" % first, "dup.lua:%d" % second])

    def test_task_without_output(self):
        wf = self.write("noout.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { Task { id = "lonely", {} } } -- here
            end)
            """)
        line = self.line_of(wf, "-- here")
        self.check_bad("up", wf, expect=['"lonely"', "output", "missing", "noout.lua:%d" % line])

    def test_task_with_undeclared_output(self):
        wf = self.write("undeclared.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { Task { id = "t", output = "nosuch", {} } }
            end)
            """)
        self.check_bad("up", wf, expect=['"t"', '"nosuch"'])

    def test_invalid_loop_option(self):
        wf = self.write("badloop.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { Loop { id = "l", onMaxReached = "sometimes",
                Task { id = "t", output = outputs.r, {} } } }
            end)
            """)
        self.check_bad("up", wf, expect=['"l"', "onMaxReached"])

    # ---- the input ----

    def test_invalid_input_json_names_the_position(self):
        self.check_bad("up", HELLO, "--input", '{"name": "x",}', expect=["line 1, column 14"])
        self.check_bad("up", HELLO, "--input", '{"name":\n  tru}', expect=["line 2"])

    def test_input_from_stdin(self):
        r = self.run_cli("up", HELLO, "--input", "-", stdin='{"name": oops}')
        self.assertEqual(r.code, 4, r)
        self.assertIn("line 1, column", r.stderr)
        self.assertFalse(os.path.exists(self.db))
        r = self.run_cli("up", HELLO, "--input", "-", stdin='{"name": "stdin"}')
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.json()["outputs"]["greeting"]["greet"]["message"], "Hello, stdin")

    def test_input_must_be_an_object(self):
        self.check_bad("up", HELLO, "--input", "[1, 2]", expect=["object"])

    def test_input_schema_violations_are_each_listed_with_their_path(self):
        wf = self.write("typed.lua", """
            local outputs = smithers.outputs { r = z.object {} }
            return smithers(function(ctx)
              return Workflow { Task { id = "t", output = outputs.r, {} } }
            end, { input = z.object { name = z.string(), count = z.integer(),
                                      mode = z.enum { "fast", "slow" },
                                      limits = z.object { max = z.number() } } })
            """)
        err = self.check_bad("up", wf, "--input",
                             '{"name": 5, "mode": "medium", "limits": {"max": "high"}}',
                             expect=["input schema", "$.name", "$.count", "$.mode",
                                     "$.limits.max"])
        violations = [l for l in err.splitlines() if l.strip().startswith("$.")]
        self.assertEqual(len(violations), 4, err)

    # ---- the command line ----

    def test_unknown_option(self):
        self.check_bad("up", HELLO, "--bogus", expect=["--bogus"])
        self.check_bad("ps", "--frobnicate", expect=["--frobnicate"])
        # a misspelt status is an error naming the statuses, not an empty list
        self.check_bad("ps", "--status", "finshed", expect=["finshed", "waiting-approval"])

    def test_unknown_subcommand_and_missing_arguments(self):
        self.check_bad("frobnicate")
        self.check_bad("up")
        self.check_bad("up", HELLO, "--max-concurrency", "0")

    def test_resume_of_a_nonexistent_run(self):
        self.check_bad("up", HELLO, "--resume", "--run-id", "no-such-run",
                       expect=['"no-such-run"'])

    def test_resume_without_a_run_id(self):
        self.check_bad("up", HELLO, "--resume", expect=["--run-id"])

    def test_run_id_that_already_exists(self):
        self.check_bad("up", HELLO, "--input", '{"name":"again"}', "--run-id", "seed-run",
                       expect=['"seed-run"', "already exists", "--resume"], fresh=False)

    def test_read_commands_on_an_unknown_run(self):
        for cmd in ("inspect", "events", "cancel"):
            with self.subTest(cmd=cmd):
                self.check_bad(cmd, "no-such-run", expect=["no-such-run"], fresh=False)


if __name__ == "__main__":
    main()
