"""A Gateway under test for the security suites: a real `smithers gateway`
on a free loopback port, tokens issued with the CLI, plain HTTP (with any
Host/Origin headers) and WebSocket clients. Built on the e2e harness
(tests/e2e/smithers_e2e.py, gateway_test.spawn_gateway, ws_client)."""

import http.client
import json
import os
import signal
import socket
import time

from security_e2e import BIN, E2ETest
from gateway_test import spawn_gateway
from ws_client import WebSocket


class GatewayCase(E2ETest):
    """An E2ETest with a workflows folder and one Gateway at a time."""

    def setUp(self):
        super().setUp()
        self.wf_dir = self.path("workflows")
        os.makedirs(self.wf_dir)
        self.gateway = None
        self.port = None

    def workflow(self, key, source):
        self.write("workflows/%s.lua" % key, source)

    def start(self, *extra, env=None):
        argv = [BIN, "--db", self.db, "gateway", "--workflows", self.wf_dir, "--port", "0",
                "--access-log", self.path("access.log")] + list(extra)
        self.gateway, self.port, _ = spawn_gateway(self, argv, env)
        return self.gateway

    def stop(self):
        self.gateway.send_signal(signal.SIGTERM)
        self.gateway.wait(timeout=10)

    def token(self, scopes, user=None):
        args = ["token", "issue", "--scopes", scopes]
        if user is not None:
            args += ["--user", user]
        r = self.run_cli(*args)
        self.assertEqual(r.code, 0, r)
        return r.stdout.strip()

    def http(self, method, path, body=None, token=None, headers=None):
        """(status, JSON body or text). `headers` may replace Host."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = None if body is None else json.dumps(body)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def rpc(self, method, params, token=None, headers=None):
        return self.http("POST", "/v1/rpc/" + method, params, token, headers)

    def ws(self, token, headers=None):
        """An authenticated WebSocket; its hello is w.hello."""
        w = WebSocket("127.0.0.1", self.port, headers=headers)
        self.addCleanup(w.close)
        self.assertEqual(w.recv_json()["event"], "connect.challenge")
        res = w.request("connect", {"minProtocol": 1, "maxProtocol": 1,
                                    "client": {"id": "security", "version": "1", "platform": "py"},
                                    "auth": {"token": token}})
        self.assertTrue(res["ok"], res)
        w.hello = res["payload"]
        w.events = []
        return w

    def upgrade_status(self, headers):
        """The HTTP status of a WebSocket upgrade sent with `headers` (101 = accepted)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            lines = ["GET / HTTP/1.1", "Host: 127.0.0.1:%d" % self.port, "Upgrade: websocket",
                     "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                     "Sec-WebSocket-Version: 13"]
            lines += ["%s: %s" % kv for kv in headers.items()]
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = b""
            while b"\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
        return int(head.split(b" ", 2)[1])

    def wait_status(self, run_id, token, status, timeout=20):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            code, r = self.rpc("getRun", {"runId": run_id}, token)
            last = r
            if code == 200 and r["payload"]["status"] in status:
                return r["payload"]
            time.sleep(0.05)
        self.fail("run %s never reached %s (last: %s)" % (run_id, status, last))

    def approval_row(self, run_id, node_id="ship"):
        rows = self.query("SELECT * FROM _smithers_approvals WHERE run_id = ? AND node_id = ?",
                          run_id, node_id)
        self.assertEqual(len(rows), 1, rows)
        return rows[0]
