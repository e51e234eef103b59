#!/usr/bin/env python3
"""A local stand-in for the OpenAI and Anthropic HTTP APIs, for tests.

    fake_model_server.py --script script.json --log requests.jsonl

Listens on 127.0.0.1 (port 0 unless --port) and prints "PORT <n>" on its first
line of stdout. Python standard library only.

Script (JSON): {"<path>": [response, ...], ...}. Each POST to <path> takes the
next response of its queue; the last one repeats forever (so a single 500
means "500 forever"). A path with no queue gets a default reply (an echo of
the last user message) in the wire format its path implies:
/chat/completions -> OpenAI, /messages -> Anthropic.

A response is either raw, sent exactly as written:

    {"status": 200, "headers": {"Retry-After": "1"},
     "body": {...} | "text",            # JSON is serialized; a string is sent as is
     "sse_events": [{"event": "message_start", "data": {...} | "[DONE]"}, ...],
     "delay_s": 0.0,                    # before the status line (a hang: 30)
     "chunk_delay_s": 0.0}              # between SSE events

or a provider-neutral reply, rendered in the path's wire format, streamed
(SSE) when the request asked for "stream": true:

    {"reply": {"text": "hi", "tool_calls": [{"id", "name", "arguments": {}}],
               "structured": {...}, "input_tokens": 3, "output_tokens": 2,
               "stop_reason": "stop"}, "delay_s": 0.0, "chunk_delay_s": 0.0}

"structured" becomes the message content (OpenAI) or a tool_use of the tool
named by the request's tool_choice (Anthropic).

Control (for a server shared by several tests):
    POST /_script    replaces the script with the JSON body (queues restart)
    GET  /_requests  the requests received so far, as a JSON array

Every other request is appended to --log as one JSON line:
{"method", "path", "headers": {name: value}, "body": <JSON or text>}.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"script": {}, "positions": {}, "requests": [], "log": None}


def next_response(path):
    with LOCK:
        queue = STATE["script"].get(path)
        if not queue:
            return None
        i = STATE["positions"].get(path, 0)
        STATE["positions"][path] = i + 1
        return queue[min(i, len(queue) - 1)]


def is_anthropic(path):
    return path.rstrip("/").endswith("/messages")


def last_user_text(req):
    for m in reversed(req.get("messages", []) if isinstance(req, dict) else []):
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c
        if isinstance(c, list):
            return " ".join(b.get("text", "") for b in c if b.get("type") == "text")
    return ""


def split_text(text):
    """Pieces of a streamed text (a few characters each)."""
    return [text[i:i + 4] for i in range(0, len(text), 4)] or []


def render_openai(reply, req, stream):
    model = req.get("model", "fake") if isinstance(req, dict) else "fake"
    text = reply.get("text")
    if "structured" in reply:
        text = json.dumps(reply["structured"])
    calls = reply.get("tool_calls", [])
    usage = {"prompt_tokens": reply.get("input_tokens", 0),
             "completion_tokens": reply.get("output_tokens", 0)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    finish = reply.get("stop_reason", "tool_calls" if calls else "stop")
    if not stream:
        message = {"role": "assistant", "content": text if (text or not calls) else None}
        if text is None and not calls:
            message["content"] = ""
        if calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
                for c in calls]
        return {"body": {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                         "model": model,
                         "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                         "usage": usage}}
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}

    def chunk(delta, finish_reason=None):
        return dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish_reason}])

    events = [chunk({"role": "assistant", "content": ""})]
    for piece in split_text(text or ""):
        events.append(chunk({"content": piece}))
    for i, c in enumerate(calls):
        args = json.dumps(c.get("arguments", {}))
        events.append(chunk({"tool_calls": [{"index": i, "id": c["id"], "type": "function",
                                             "function": {"name": c["name"], "arguments": ""}}]}))
        for j in range(0, len(args), 5):
            events.append(chunk({"tool_calls": [{"index": i,
                                                 "function": {"arguments": args[j:j + 5]}}]}))
    events.append(chunk({}, finish))
    events.append(dict(base, choices=[], usage=usage))
    return {"sse_events": [{"data": e} for e in events] + [{"data": "[DONE]"}]}


def render_anthropic(reply, req, stream):
    model = req.get("model", "fake") if isinstance(req, dict) else "fake"
    blocks = []
    if reply.get("text"):
        blocks.append({"type": "text", "text": reply["text"]})
    for c in reply.get("tool_calls", []):
        blocks.append({"type": "tool_use", "id": c["id"], "name": c["name"],
                       "input": c.get("arguments", {})})
    if "structured" in reply:
        choice = req.get("tool_choice", {}) if isinstance(req, dict) else {}
        blocks.append({"type": "tool_use", "id": "toolu_output",
                       "name": choice.get("name", "output"), "input": reply["structured"]})
    uses_tool = any(b["type"] == "tool_use" for b in blocks)
    stop = reply.get("stop_reason", "tool_use" if uses_tool else "end_turn")
    usage = {"input_tokens": reply.get("input_tokens", 0),
             "output_tokens": reply.get("output_tokens", 0)}
    message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
               "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage}
    if not stream:
        return {"body": message}
    start = dict(message, content=[], stop_reason=None,
                 usage={"input_tokens": usage["input_tokens"], "output_tokens": 1})
    events = [("message_start", {"type": "message_start", "message": start}),
              ("ping", {"type": "ping"})]
    for i, b in enumerate(blocks):
        if b["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            for piece in split_text(b["text"]):
                events.append(("content_block_delta",
                               {"type": "content_block_delta", "index": i,
                                "delta": {"type": "text_delta", "text": piece}}))
        else:
            events.append(("content_block_start",
                           {"type": "content_block_start", "index": i,
                            "content_block": {"type": "tool_use", "id": b["id"],
                                              "name": b["name"], "input": {}}}))
            args = json.dumps(b["input"])
            for j in range(0, len(args), 5):
                events.append(("content_block_delta",
                               {"type": "content_block_delta", "index": i,
                                "delta": {"type": "input_json_delta",
                                          "partial_json": args[j:j + 5]}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return {"sse_events": [{"event": n, "data": d} for n, d in events]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: tests read the request log instead
        pass

    def send_json(self, status, value, headers=None):
        data = value if isinstance(value, str) else json.dumps(value)
        data = data.encode()
        self.send_response(status)
        names = {k.lower() for k in (headers or {})}
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_requests":
            with LOCK:
                self.send_json(200, STATE["requests"])
            return
        self.send_json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        if self.path == "/_script":
            with LOCK:
                STATE["script"] = body if isinstance(body, dict) else {}
                STATE["positions"] = {}
            self.send_json(200, {"ok": True})
            return
        record = {"method": "POST", "path": self.path,
                  "headers": {k: v for k, v in self.headers.items()}, "body": body}
        with LOCK:
            STATE["requests"].append(record)
            if STATE["log"]:
                with open(STATE["log"], "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
        resp = next_response(self.path)
        stream = isinstance(body, dict) and body.get("stream") is True
        anthropic = is_anthropic(self.path)
        if resp is None:
            resp = {"reply": {"text": "echo: " + last_user_text(body),
                              "input_tokens": 1, "output_tokens": 1}}
        if "reply" in resp:
            render = render_anthropic if anthropic else render_openai
            resp = dict(resp, **render(resp["reply"], body, stream))
        try:
            self.respond(resp)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout, cancel): expected in tests

    def respond(self, resp):
        delay = float(resp.get("delay_s", 0))
        if delay > 0:
            time.sleep(delay)
        status = int(resp.get("status", 200))
        headers = resp.get("headers", {})
        if "sse_events" not in resp:
            self.send_json(status, resp.get("body", ""), headers)
            return
        self.send_response(status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk_delay = float(resp.get("chunk_delay_s", 0))
        for ev in resp["sse_events"]:
            data = ev.get("data", "")
            data = data if isinstance(data, str) else json.dumps(data)
            text = ""
            if ev.get("event"):
                text += "event: %s\n" % ev["event"]
            text += "".join("data: %s\n" % line for line in data.split("\n")) + "\n"
            self.wfile.write(text.encode())
            self.wfile.flush()
            if chunk_delay > 0:
                time.sleep(chunk_delay)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--script", help="JSON file: {path: [response, ...]}")
    ap.add_argument("--log", help="append every request here as a JSON line")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            STATE["script"] = json.load(f)
    STATE["log"] = args.log
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
