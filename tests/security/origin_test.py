#!/usr/bin/env python3
"""Host and Origin (docs/gateway.md "Host and Origin"). DNS rebinding: under
--auth none an HTTP request naming a foreign Host or Origin is refused with
403 before it does anything (the attack: a page on evil.example, re-resolved
to 127.0.0.1, POSTs /v1/rpc/launchRun). allowed_origins / --allowed-origin:
in every auth mode, a request that carries an Origin must name a listed one;
requests without Origin pass."""

from security_e2e import *  # noqa: F401,F403

import os

from gateway_case import GatewayCase

HELLO = """
local outputs = smithers.outputs { greeting = z.object { message = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "hello",
    Task { id = "greet", output = outputs.greeting, { message = "hi" } } }
end)
"""


class OriginTest(GatewayCase):
    def setUp(self):
        super().setUp()
        self.workflow("hello", HELLO)

    def runs(self):
        if not os.path.exists(self.db):
            return 0
        return self.query("SELECT COUNT(*) AS n FROM _smithers_runs")[0]["n"]

    def assert_refused(self, code, r):
        self.assertEqual(code, 403, r)
        self.assertEqual(r["error"]["code"], "Forbidden", r)

    def test_auth_none_refuses_a_foreign_host_or_origin_over_http(self):
        self.start("--auth", "none")
        here = "127.0.0.1:%d" % self.port
        launch = {"workflow": "hello", "runId": "rebound"}
        for headers in ({"Host": "evil.example"},
                        {"Host": "evil.example:%d" % self.port},
                        {"Host": "localhost:%d" % (self.port + 1)},
                        {"Host": here, "Origin": "http://evil.example"},
                        {"Host": here, "Origin": "http://localhost:3000"},
                        {"Host": here, "Origin": "null"}):
            code, r = self.rpc("launchRun", launch, headers=headers)
            self.assert_refused(code, r)
            code, r = self.http("POST", "/rpc", {"id": 1, "method": "launchRun",
                                                 "params": launch}, headers=headers)
            self.assert_refused(code, r)
        self.assertEqual(self.runs(), 0, "a refused request created a run")
        # the WebSocket upgrade: refused the same way
        self.assertEqual(self.upgrade_status({"Origin": "http://evil.example"}), 403)
        self.assertEqual(self.upgrade_status({"Origin": "http://localhost:%d" % self.port}), 101)
        # this Gateway's own names pass
        for headers in ({"Host": here},
                        {"Host": "localhost:%d" % self.port},
                        {"Host": "localhost"},
                        {"Host": "[::1]:%d" % self.port},
                        {"Host": here, "Origin": "http://localhost:%d" % self.port}):
            code, r = self.rpc("listRuns", {}, headers=headers)
            self.assertEqual(code, 200, (headers, r))
        code, r = self.rpc("launchRun", launch, headers={"Host": here})
        self.assertEqual(code, 200, r)
        self.assertEqual(self.runs(), 1)

    def test_allowed_origins_apply_with_a_token(self):
        self.start("--allowed-origin", "https://app.example.com",
                   "--allowed-origin", "http://localhost:8080")
        token = self.token("run:read,run:write", "alice")
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "x1"}, token,
                           headers={"Origin": "https://evil.example"})
        self.assert_refused(code, r)
        self.assertIn("allowed_origins", r["error"]["message"])
        self.assertEqual(self.runs(), 0)
        self.assertEqual(self.upgrade_status({"Origin": "https://evil.example"}), 403)
        for origin in ("https://app.example.com", "HTTPS://APP.EXAMPLE.COM/",
                       "http://localhost:8080"):
            code, r = self.rpc("listRuns", {}, token, headers={"Origin": origin})
            self.assertEqual(code, 200, (origin, r))
        w = self.ws(token, headers={"Origin": "https://app.example.com"})
        self.assertEqual(w.hello["auth"]["userId"], "alice")
        # no Origin (curl, scripts): no browser, nothing to check
        code, r = self.rpc("launchRun", {"workflow": "hello", "runId": "x2"}, token)
        self.assertEqual(code, 200, r)
        # a foreign Host is not refused with a token (TLS and tokens guard it)
        code, r = self.rpc("listRuns", {}, token, headers={"Host": "gateway.internal"})
        self.assertEqual(code, 200, r)

    def test_allowed_origins_from_the_configuration_file_and_with_auth_none(self):
        cfg = self.write("gateway.toml", """
            workflows = "workflows"
            allowed_origins = ["https://console.example.com"]
            [auth]
            mode = "none"
            """)
        self.start("--config", cfg)
        here = "127.0.0.1:%d" % self.port
        code, r = self.rpc("listRuns", {}, headers={"Host": here,
                                                    "Origin": "https://console.example.com"})
        self.assertEqual(code, 200, r)
        code, r = self.rpc("listRuns", {}, headers={"Host": here,
                                                    "Origin": "https://other.example.com"})
        self.assert_refused(code, r)
        # an allowed Origin does not make a foreign Host acceptable
        code, r = self.rpc("listRuns", {}, headers={"Host": "evil.example",
                                                    "Origin": "https://console.example.com"})
        self.assert_refused(code, r)

    def test_a_malformed_allowed_origin_is_refused_at_start(self):
        for bad in ("app.example.com", "https://app.example.com/path", "ftp://x"):
            r = self.run_cli("gateway", "--workflows", self.wf_dir, "--port", "0",
                             "--allowed-origin", bad)
            self.assertEqual(r.code, 4, (bad, r))
            self.assertIn("allowed origin", r.stderr)


if __name__ == "__main__":
    main()
