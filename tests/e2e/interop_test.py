#!/usr/bin/env python3
"""Interoperability: Smithers' published Gateway client
(@smithers-orchestrator/gateway-client 0.32.0, unmodified, under Bun; both
fetched by scripts/install-deps into .deps/interop/) drives a real Gateway.
The scenarios are tests/interop/gateway_client.test.ts; this suite starts the
Gateway they talk to and runs them with `bun test`."""

import os
import re
import subprocess

from gateway_test import GATE, HELLO, spawn_gateway
from smithers_e2e import BIN, SOURCE_DIR, E2ETest, main

INTEROP = os.path.join(SOURCE_DIR, ".deps", "interop")
BUN = os.path.join(INTEROP, "node_modules", ".bin", "bun")
CLIENT = os.path.join(INTEROP, "gateway-client", "src")
SUITE = os.path.join(SOURCE_DIR, "tests", "interop", "gateway_client.test.ts")


class InteropTest(E2ETest):
    def token(self, scopes, user):
        r = self.run_cli("token", "issue", "--scopes", scopes, "--user", user)
        self.assertEqual(r.code, 0, r)
        return r.stdout.strip()

    def test_the_published_client_unmodified(self):
        # Not skipped when missing: `make test` installs it (fail closed).
        self.assertTrue(os.access(BUN, os.X_OK) and os.path.isdir(CLIENT),
                        "the interop client is missing: run scripts/install-deps")
        wf_dir = self.path("workflows")
        os.makedirs(wf_dir)
        self.write("workflows/hello.lua", HELLO)
        self.write("workflows/gate.lua", GATE)
        # The gate's approval is owned by "ops".
        admin = self.token("run:admin,approval:submit,signal:submit,cron:write", "ops")
        reader = self.token("run:read", "interop-reader")
        gateway, port, _ = spawn_gateway(
            self, [BIN, "--db", self.db, "gateway", "--workflows", wf_dir, "--port", "0"])
        env = dict(os.environ, SMITHERS_INTEROP_CLIENT=CLIENT,
                   SMITHERS_URL="http://127.0.0.1:%d" % port, SMITHERS_TOKEN=admin,
                   SMITHERS_READ_TOKEN=reader, NO_COLOR="1")
        r = subprocess.run([BUN, "test", "--timeout", "60000", SUITE], cwd=self.dir, env=env,
                           capture_output=True, text=True, timeout=300)
        report = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, report)
        with open(SUITE) as f:
            scenarios = len(re.findall(r"^test\(", f.read(), re.M))
        self.assertGreater(scenarios, 0)
        self.assertEqual(report.count("(pass)"), scenarios, report)
        self.assertIn(" 0 fail", report)
        gateway.terminate()
        gateway.wait(timeout=30)


if __name__ == "__main__":
    main()
