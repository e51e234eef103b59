#!/usr/bin/env python3
"""The step-result cache end to end: hits across runs per scope, TTL expiry,
version bumps, schema changes, a tampered row, `by(ctx)`, and what `inspect`
and the event log show."""

import json
import sqlite3

from smithers_e2e import PYTHON, E2ETest, main

COUNTER = """[[import json, sys
with open(sys.argv[1], "a") as f:
    f.write("x")
print(json.dumps({"n": 7}))]]"""


class CacheTest(E2ETest):
    def module(self, name, policy, workflow="cached", schema="z.object { n = z.integer() }"):
        """A workflow with one command task `c` that appends to counter.txt."""
        return self.write(name, """
            local outputs = smithers.outputs { r = %s }
            return smithers(function(ctx)
              return Workflow { name = "%s",
                Task { id = "c", output = outputs.r, %s,
                       command = { %r, "-c", %s, %r } },
              }
            end)
            """ % (schema, workflow, policy, PYTHON, COUNTER, self.path("counter.txt")))

    def runs_of_command(self):
        try:
            return len(self.read("counter.txt"))
        except FileNotFoundError:
            return 0

    def cache_events(self, run_id):
        return [(e["type"], e["payload"]) for e in self.events(run_id)
                if e["type"] in ("CacheHit", "CacheMiss")]

    def attempts(self, run_id):
        return self.node(run_id, "c")["attempts"]

    def test_workflow_scope_hits_on_the_second_run(self):
        wf = self.module("wf.lua", "cache = true")
        first = self.up_ok(wf, None, "run-1")
        second = self.up_ok(wf, None, "run-2")
        self.assertEqual(self.runs_of_command(), 1)
        self.assertEqual(first["outputs"], {"r": {"c": {"n": 7}}})
        self.assertEqual(second["outputs"], first["outputs"])

        [(kind, miss)] = self.cache_events("run-1")
        self.assertEqual((kind, miss["reason"]), ("CacheMiss", "absent"))
        [(kind, hit)] = self.cache_events("run-2")
        self.assertEqual(kind, "CacheHit")
        self.assertEqual(hit["cacheKey"], miss["cacheKey"])
        self.assertEqual((hit["nodeId"], hit["iteration"]), ("c", 0))
        types = [e["type"] for e in self.events("run-2")]
        self.assertNotIn("NodeStarted", types)
        self.assertIn("NodeFinished", types)

        self.assertEqual([a["cached"] for a in self.attempts("run-1")], [False])
        self.assertEqual([(a["state"], a["cached"]) for a in self.attempts("run-2")],
                         [("finished", True)])
        text = self.run_cli("inspect", "run-2")
        self.assertEqual(text.code, 0, text)
        self.assertIn("(cached)", text.stdout)
        self.assertNotIn("(cached)", self.run_cli("inspect", "run-1").stdout)
        rows = self.query("SELECT workflow_name, node_id, output_table, payload_json "
                          "FROM _smithers_cache")
        self.assertEqual(rows, [{"workflow_name": "cached", "node_id": "c", "output_table": "r",
                                 "payload_json": json.dumps({"n": 7}, separators=(",", ":"))}])

    def test_workflow_scope_is_per_workflow_name(self):
        self.up_ok(self.module("a.lua", "cache = true", workflow="a"))
        self.up_ok(self.module("b.lua", "cache = true", workflow="b"))
        self.assertEqual(self.runs_of_command(), 2)

    def test_global_scope_is_shared_across_workflow_names(self):
        policy = 'cachePolicy = { scope = "global" }'
        self.up_ok(self.module("a.lua", policy, workflow="a"))
        out = self.up_ok(self.module("b.lua", policy, workflow="b"))
        self.assertEqual(self.runs_of_command(), 1)
        self.assertEqual([k for k, _ in self.cache_events(out["runId"])], ["CacheHit"])

    def test_run_scope_is_not_reused_across_runs_but_stable_within_one(self):
        wf = self.module("run.lua", 'cachePolicy = { scope = "run" }')
        self.up_ok(wf, None, "run-1")
        self.up_ok(wf, None, "run-2")
        self.assertEqual(self.runs_of_command(), 2)
        key1 = self.cache_events("run-1")[0][1]["cacheKey"]
        key2 = self.cache_events("run-2")[0][1]["cacheKey"]
        self.assertNotEqual(key1, key2)

        # Within one run the key is stable: a loop re-running the same command
        # reuses the first iteration's result.
        loop = self.write("loop.lua", """
            local outputs = smithers.outputs { r = z.object { n = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "loop",
                Loop { id = "l", ["until"] = ctx:iterationCount(outputs.r, "c") >= 3,
                       maxIterations = 5,
                  Task { id = "c", output = outputs.r, cachePolicy = { scope = "run" },
                         command = { %r, "-c", %s, %r } },
                },
              }
            end)
            """ % (PYTHON, COUNTER, self.path("loop.txt")))
        out = self.up_ok(loop, None, "run-loop")
        self.assertEqual(len(self.read("loop.txt")), 1)
        events = self.cache_events(out["runId"])
        self.assertEqual([k for k, _ in events], ["CacheMiss", "CacheHit", "CacheHit"])
        self.assertEqual(len({p["cacheKey"] for _, p in events}), 1)
        self.assertEqual([p["iteration"] for _, p in events], [0, 1, 2])

    def test_ttl_expiry_is_a_miss_and_refreshes_the_row(self):
        # The entry is aged by rewriting its timestamp rather than by sleeping,
        # so a slow machine (or ASan) cannot turn the hits into misses.
        wf = self.module("ttl.lua", "cachePolicy = { ttlMs = 60000 }")
        self.up_ok(wf, None, "run-1")
        self.up_ok(wf, None, "run-2")
        self.assertEqual(self.runs_of_command(), 1)
        conn = sqlite3.connect(self.db, timeout=10)
        conn.execute("UPDATE _smithers_cache SET created_at_ms = created_at_ms - 120000")
        conn.commit()
        conn.close()
        [before] = self.query("SELECT created_at_ms FROM _smithers_cache")
        self.up_ok(wf, None, "run-3")
        self.assertEqual(self.runs_of_command(), 2)
        [(kind, miss)] = self.cache_events("run-3")
        self.assertEqual((kind, miss["reason"]), ("CacheMiss", "expired"))
        [after] = self.query("SELECT created_at_ms FROM _smithers_cache")
        self.assertGreater(after["created_at_ms"], before["created_at_ms"] + 60000)
        self.up_ok(wf, None, "run-4")
        self.assertEqual(self.runs_of_command(), 2)

    def test_version_bump_misses(self):
        self.up_ok(self.module("v.lua", 'cachePolicy = { version = "v1" }'))
        self.up_ok(self.module("v.lua", 'cachePolicy = { version = "v1" }'))
        self.assertEqual(self.runs_of_command(), 1)
        out = self.up_ok(self.module("v.lua", 'cachePolicy = { version = "v2" }'))
        self.assertEqual(self.runs_of_command(), 2)
        self.assertEqual([(k, p["reason"]) for k, p in self.cache_events(out["runId"])],
                         [("CacheMiss", "absent")])

    def test_schema_change_misses(self):
        self.up_ok(self.module("s.lua", "cache = true"))
        # A compatible change (a new optional property) still changes the hash.
        changed = "z.object { n = z.integer(), note = z.optional(z.string()) }"
        out = self.up_ok(self.module("s.lua", "cache = true", schema=changed))
        self.assertEqual(self.runs_of_command(), 2)
        self.assertEqual([k for k, _ in self.cache_events(out["runId"])], ["CacheMiss"])
        self.up_ok(self.module("s.lua", "cache = true", schema=changed))
        self.assertEqual(self.runs_of_command(), 2)

    def test_an_invalid_cached_row_is_a_miss_and_is_replaced(self):
        wf = self.module("bad.lua", "cache = true")
        self.up_ok(wf)
        conn = sqlite3.connect(self.db, timeout=10)
        conn.execute("""UPDATE _smithers_cache SET payload_json = '{"n": "seven"}'""")
        conn.commit()
        conn.close()
        out = self.up_ok(wf)
        self.assertEqual(out["outputs"], {"r": {"c": {"n": 7}}})
        self.assertEqual(self.runs_of_command(), 2)
        self.assertEqual([(k, p["reason"]) for k, p in self.cache_events(out["runId"])],
                         [("CacheMiss", "invalid")])
        [row] = self.query("SELECT payload_json FROM _smithers_cache")
        self.assertEqual(json.loads(row["payload_json"]), {"n": 7})
        self.up_ok(wf)
        self.assertEqual(self.runs_of_command(), 2)

    def test_by_keys_on_the_render_context(self):
        policy = "cachePolicy = { by = function(ctx) return { who = ctx.input.who } end }"
        wf = self.module("by.lua", policy)
        self.up_ok(wf, {"who": "ann"})
        self.up_ok(wf, {"who": "ann"})
        self.assertEqual(self.runs_of_command(), 1)
        self.up_ok(wf, {"who": "bob"})
        self.assertEqual(self.runs_of_command(), 2)

    def test_a_failing_by_disables_caching_for_that_render(self):
        wf = self.module("byerr.lua", 'cachePolicy = { by = function(ctx) error("no key") end }')
        out = self.up_ok(wf)
        self.up_ok(wf)
        self.assertEqual(self.runs_of_command(), 2)
        self.assertEqual(self.cache_events(out["runId"]), [])
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_cache"), [{"n": 0}])

    def test_a_failed_attempt_is_never_cached(self):
        wf = self.write("fail.lua", """
            local outputs = smithers.outputs { r = z.object { n = z.integer() } }
            return smithers(function(ctx)
              return Workflow { name = "fail",
                Task { id = "c", output = outputs.r, cache = true, command = { "false" } },
              }
            end)
            """)
        self.assertEqual(self.up(wf).code, 1)
        self.assertEqual(self.query("SELECT COUNT(*) AS n FROM _smithers_cache"), [{"n": 0}])

    def test_bad_cache_policy_is_refused(self):
        wf = self.module("badpolicy.lua", 'cachePolicy = { scope = "planet" }')
        r = self.up(wf)
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("cachePolicy.scope", r.stderr)


if __name__ == "__main__":
    main()
