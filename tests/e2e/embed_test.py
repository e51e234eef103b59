#!/usr/bin/env python3
"""End-to-end test of examples/embed.cc: the hello workflow built with the C++ API.

Runs the real embed_example binary (EMBED_BIN, set by ctest) and checks its
printed outputs, its exit code, and that a second invocation with the same
database and run id resumes the finished run instead of running it again.
"""
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import unittest

EMBED_BIN = os.environ.get("EMBED_BIN", "build/embed_example")


def run(*args):
    p = subprocess.run([EMBED_BIN, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


class EmbedExampleTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.db = os.path.join(self.tmp.name, "embed.db")

    def tearDown(self):
        self.tmp.cleanup()

    def test_runs_hello_and_prints_outputs(self):
        code, out, err = run(self.db, "", "Ada")
        self.assertEqual(code, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["status"], "finished")
        self.assertEqual(doc["outputs"], {
            "greeting": {"greet": {"message": "Hello, Ada"}},
            "length": {"measure": {"n": len("Hello, Ada")}},
        })
        self.assertFalse(doc["resumed"])
        # The run is durable: its rows are in the database file we named.
        with contextlib.closing(sqlite3.connect(self.db)) as c:
            status, = c.execute("SELECT status FROM _smithers_runs WHERE run_id = ?",
                                (doc["runId"],)).fetchone()
            self.assertEqual(status, "finished")

    def test_second_run_with_same_id_resumes(self):
        code, out, err = run(self.db, "run-1")
        self.assertEqual(code, 0, err)
        first = json.loads(out)
        self.assertEqual(first["runId"], "run-1")
        self.assertFalse(first["resumed"])
        self.assertIn("NodeFinished", err)

        code, out, err = run(self.db, "run-1")
        self.assertEqual(code, 0, err)
        second = json.loads(out)
        self.assertTrue(second["resumed"])
        self.assertEqual(second["status"], "finished")
        self.assertEqual(second["outputs"], first["outputs"])
        self.assertNotIn("NodeStarted", err, "a finished run must not execute tasks again")
        with contextlib.closing(sqlite3.connect(self.db)) as c:
            runs, = c.execute("SELECT COUNT(*) FROM _smithers_runs").fetchone()
            attempts, = c.execute(
                "SELECT COUNT(*) FROM _smithers_attempts WHERE run_id = 'run-1'").fetchone()
        self.assertEqual(runs, 1)
        self.assertEqual(attempts, 2)  # greet and measure, once each

    def test_resume_with_other_input_is_refused(self):
        code, _, err = run(self.db, "run-2", "Ada")
        self.assertEqual(code, 0, err)
        code, out, err = run(self.db, "run-2", "Grace")
        self.assertEqual(code, 4)
        self.assertEqual(out, "")
        self.assertIn("input", err)

    def test_default_database_is_a_temp_file(self):
        env = dict(os.environ, TMPDIR=self.tmp.name)
        p = subprocess.run([EMBED_BIN], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["outputs"]["length"]["measure"]["n"],
                         len("Hello, world"))
        self.assertTrue(any(f.startswith("smithers-embed-") for f in os.listdir(self.tmp.name)))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + ["-v"] + sys.argv[1:])
