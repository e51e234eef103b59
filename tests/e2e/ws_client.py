"""A small RFC 6455 WebSocket client for the Gateway tests (standard library
only: the test machines have no websocket package). Text frames, masking,
fragmentation on receive, ping/pong, close codes, optional TLS."""

import base64
import json
import os
import socket
import ssl
import struct
import time


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__("closed %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class WebSocket:
    def __init__(self, host, port, path="/", headers=None, tls=None, rcvbuf=None, timeout=10):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(timeout)
        raw.connect((host, port))
        if tls is not None:
            raw = tls.wrap_socket(raw, server_hostname=host)
        self.sock = raw
        self.buf = b""
        self.pos = 0
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode()
        self.status = int(status.split()[1])
        if self.status != 101:
            raise ConnectionError("upgrade refused: " + status)
        self.closed = None
        self.next_id = 0

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        self.pos = 0
        return head

    def _read_exact(self, n):
        # self.buf[self.pos:] is unread; compacted only when a recv is needed,
        # so many small frames in one chunk cost no copying of the rest.
        while len(self.buf) - self.pos < n:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise Closed(1006, "connection dropped")
            self.buf = self.buf[self.pos:] + chunk
            self.pos = 0
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def _send_frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 1 << 16 else \
            (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")
             ).to_bytes(n, "big")
        self.sock.sendall(header + mask + masked)

    def send_text(self, text):
        self._send_frame(0x1, text.encode() if isinstance(text, str) else text)

    def send_json(self, value):
        self.send_text(json.dumps(value))

    def recv(self, timeout=10):
        """The next text message, as a string. Raises Closed on a close frame."""
        self.sock.settimeout(timeout)
        message = b""
        while True:
            b0, b1 = self._read_exact(2)
            opcode, fin = b0 & 0x0F, b0 & 0x80
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read_exact(8))[0]
            payload = self._read_exact(n)
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.closed = (code, payload[2:].decode(errors="replace"))
                try:
                    self._send_frame(0x8, payload[:2])
                except OSError:
                    pass
                raise Closed(*self.closed)
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if fin:
                return message.decode()

    def recv_json(self, timeout=10):
        return json.loads(self.recv(timeout))

    def request(self, method, params=None, timeout=10, skip_events=True):
        """Sends a req and returns its res frame (events that arrive first are kept in .events)."""
        self.next_id += 1
        rid = str(self.next_id)
        frame = {"type": "req", "id": rid, "method": method}
        if params is not None:
            frame["params"] = params
        self.send_json(frame)
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_json(max(0.1, deadline - time.monotonic()))
            if f.get("type") == "res" and f.get("id") == rid:
                return f
            if not hasattr(self, "events"):
                self.events = []
            self.events.append(f)

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


def tls_context_trusting(cert_path):
    ctx = ssl.create_default_context(cafile=cert_path)
    ctx.check_hostname = False
    return ctx
