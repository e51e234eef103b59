#!/usr/bin/env python3
"""--db is a store URL (docs/store_format.md "Store URLs"): a path or
sqlite:PATH opens SQLite; postgres:// is a backend this build does not have
and any other scheme:// is bad input: exit 4, nothing created (it used to
create a SQLite file named `postgres:/...`)."""

import os

from smithers_e2e import SOURCE_DIR, E2ETest, main

HELLO = os.path.join(SOURCE_DIR, "examples", "hello.lua")


class StoreUrlTest(E2ETest):
    def created(self):
        """Every file and folder under the test directory, relative to it."""
        found = []
        for root, dirs, files in os.walk(self.dir):
            for name in dirs + files:
                found.append(os.path.relpath(os.path.join(root, name), self.dir))
        return sorted(found)

    def check_refused(self, db, expect):
        for args in (["up", HELLO, "--input", '{"name":"x"}'], ["ps"], ["supervise"]):
            r = self.run_cli(*args, db=db)
            self.assertEqual(r.code, 4, r)
            self.assertIn(expect, r.stderr, r)
            self.assertIn("sqlite:PATH", r.stderr, r)  # names the accepted forms
            self.assertEqual(self.created(), [], r)

    def test_a_postgres_url_needs_its_slashes(self):
        # postgres:// URLs open PostgreSQL (tests/e2e/postgres_test.py);
        # without "//" the value is refused, never taken for a file.
        self.check_refused("POSTGRES:db", "write postgres://USER@HOST:PORT/DATABASE")
        self.check_refused("postgresql:u@h/db", "write postgresql://USER@HOST:PORT/DATABASE")

    def test_unknown_scheme_is_bad_input(self):
        self.check_refused("foo://bar", 'unknown scheme "foo:"')

    def test_gateway_refuses_a_bad_url(self):
        r = self.run_cli("gateway", "--workflows", self.dir, "--port", "0", db="foo://bar")
        self.assertEqual(r.code, 4, r)
        self.assertIn('unknown scheme "foo:"', r.stderr, r)
        self.write("gateway.toml", 'workflows = "."\ndb = "postgres:y"\n')
        r = self.run_cli("gateway", "--config", self.path("gateway.toml"), db=False)
        self.assertEqual(r.code, 4, r)
        self.assertIn("gateway.toml", r.stderr, r)
        self.assertIn("write postgres://USER@HOST:PORT/DATABASE", r.stderr, r)
        self.assertEqual(self.created(), ["gateway.toml"])

    def test_sqlite_urls_and_paths(self):
        r = self.run_cli("up", HELLO, "--input", '{"name":"a"}', db="sqlite:a.db")
        self.assertEqual(r.code, 0, r)
        self.assertTrue(os.path.exists(self.path("a.db")))
        absolute = self.path("abs.db")
        r = self.run_cli("ps", "--json", db="sqlite://" + absolute)
        self.assertEqual(r.code, 0, r)
        self.assertTrue(os.path.exists(absolute))
        # A colon without "//" after an unknown scheme is part of a file name.
        r = self.run_cli("up", HELLO, "--input", '{"name":"b"}', db="a:b.db")
        self.assertEqual(r.code, 0, r)
        self.assertTrue(os.path.exists(self.path("a:b.db")))
        # The same database, by path and by URL.
        r = self.run_cli("ps", "--json", db="sqlite:" + self.path("a.db"))
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(r.json()), 1, r)
        # sqlite:// with a host is refused rather than read as /x.db.
        r = self.run_cli("ps", db="sqlite://x.db")
        self.assertEqual(r.code, 4, r)
        self.assertIn("absolute path", r.stderr, r)


if __name__ == "__main__":
    main()
