"""Stand-ins for the services a Claude Code turn talks to, on 127.0.0.1:
the Anthropic Messages API and a Slack incoming webhook. Standard library only.

``MessagesStandIn`` answers ``POST /v1/messages`` as the real API does,
streamed as Server-Sent Events when the request asks for ``stream: true``
(message_start, content_block_start, content_block_delta with text_delta or
input_json_delta, content_block_stop, message_delta with the stop_reason and
usage, message_stop), as one JSON message otherwise. The scripted turn:

* a request offering the tool ``TOOL`` whose last user or assistant message
  is the user's prompt (holding ``MARKER``) gets a tool_use block (``Bash`` running ``echo MARKER``) and
  ``stop_reason: tool_use``;
* the request that carries the tool_result back gets a text block and
  ``end_turn``;
* anything else (a title, a summary, a quota check: Claude Code's side
  requests) gets a short text and ``end_turn``.

``/v1/messages/count_tokens`` answers a token count; any other path is
logged and answered ``{}`` (200 to GET, 404 to others), so the log
(``requests``) shows what the client asked for when a run goes wrong.

``SlackStandIn`` records every POST body and answers ``ok`` as Slack does.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOOL = "Bash"
MARKER = "hello-from-toolsdb"
COMMAND = f"echo {MARKER}"
FINAL_TEXT = f"The command printed {MARKER}. Done."


@dataclass
class Logged:
    """One request the stand-in answered (for failure messages and checks)."""

    method: str
    path: str
    summary: str
    answer: str = ""

    def line(self) -> str:
        return f"{self.method} {self.path} {self.summary} -> {self.answer}"


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            block.get("text", "") for block in content if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def _tool_results(content: object) -> list[dict]:
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict) and block.get("type") == "tool_result"]


def _result_text(result: dict) -> str:
    content = result.get("content")
    return content if isinstance(content, str) else _text_of(content)


@dataclass
class Turn:
    """What the stand-in answers to one Messages request: content blocks and the stop reason."""

    blocks: list[dict]
    stop_reason: str
    kind: str


def decide(body: dict) -> Turn:
    """The scripted answer to a Messages request (see the module's docstring)."""
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    # The conversation's last turn: Claude Code may append messages of other
    # roles (a "system" one listing its agent types) after the user's.
    turns = [m for m in messages if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    last = turns[-1] if turns else {}
    tools = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    if last.get("role") == "user" and TOOL in tools:
        results = _tool_results(last.get("content"))
        if results:
            seen = " ".join(_result_text(r) for r in results)
            text = FINAL_TEXT if MARKER in seen else f"The tool answered without {MARKER}: {seen[:200]}"
            return Turn([{"type": "text", "text": text}], "end_turn", "final")
        if MARKER in _text_of(last.get("content")):
            tool_use = {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": TOOL,
                "input": {"command": COMMAND, "description": "Print the marker"},
            }
            return Turn([tool_use], "tool_use", "tool_use")
    return Turn([{"type": "text", "text": "toolsdb stand-in"}], "end_turn", "side")


def message_json(body: dict, turn: Turn) -> dict:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or "claude-standin",
        "content": turn.blocks,
        "stop_reason": turn.stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 8,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def sse_events(body: dict, turn: Turn) -> list[tuple[str, dict]]:
    """The Server-Sent Events of one streamed answer, in the API's order."""
    message = message_json(body, turn)
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    events: list[tuple[str, dict]] = [("message_start", {"type": "message_start", "message": start})]
    events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(turn.blocks):
        if block["type"] == "tool_use":
            opening = {**block, "input": {}}
            payload = json.dumps(block["input"])
            half = len(payload) // 2
            deltas = [{"type": "input_json_delta", "partial_json": part} for part in (payload[:half], payload[half:])]
        else:
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block["text"]}]
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opening})
        )
        for delta in deltas:
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class _Base:
    """An HTTP server on 127.0.0.1 in a daemon thread, with its request log."""

    host: str = "127.0.0.1"
    requests: list[Logged] = field(default_factory=list)

    def start(self) -> _Base:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet: the log is ``requests``
                pass

            def do_GET(self) -> None:
                standin.handle(self, "GET")

            def do_POST(self) -> None:
                standin.handle(self, "POST")

            def do_HEAD(self) -> None:
                standin.handle(self, "HEAD")

        self.server = _Server((self.host, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def log_lines(self) -> list[str]:
        return [entry.line() for entry in list(self.requests)]

    @staticmethod
    def read_body(handler: BaseHTTPRequestHandler) -> bytes:
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str = "application/json") -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError


@dataclass
class MessagesStandIn(_Base):
    """The Anthropic Messages API, scripted for one turn with one tool call."""

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path.split("?", 1)[0]
        raw = self.read_body(handler)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        entry = Logged(method, handler.path, "")
        self.requests.append(entry)
        if method == "POST" and path.rstrip("/").endswith("/v1/messages/count_tokens"):
            entry.answer = "count_tokens"
            self.reply(handler, 200, b'{"input_tokens": 12}')
            return
        if method == "POST" and path.rstrip("/").endswith("/v1/messages"):
            turn = decide(body)
            tools = len(body.get("tools") or [])
            entry.summary = f"model={body.get('model')} stream={bool(body.get('stream'))} tools={tools}"
            entry.answer = turn.kind
            if body.get("stream"):
                self.stream(handler, body, turn)
            else:
                self.reply(handler, 200, json.dumps(message_json(body, turn)).encode())
            return
        entry.answer = "unknown path"
        self.reply(handler, 200 if method in ("GET", "HEAD") else 404, b"{}")

    def stream(self, handler: BaseHTTPRequestHandler, body: dict, turn: Turn) -> None:
        data = b"".join(
            f"event: {name}\ndata: {json.dumps(event)}\n\n".encode() for name, event in sse_events(body, turn)
        )
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def kinds(self) -> list[str]:
        return [entry.answer for entry in list(self.requests)]


@dataclass
class SlackStandIn(_Base):
    """A Slack incoming webhook: records each POST body (as text), answers ``ok``."""

    bodies: list[str] = field(default_factory=list)

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        raw = self.read_body(handler)
        entry = Logged(method, handler.path, f"{len(raw)} bytes")
        self.requests.append(entry)
        if method == "POST":
            self.bodies.append(raw.decode("utf-8", "replace"))
            entry.answer = "ok"
            self.reply(handler, 200, b"ok", "text/plain")
            return
        entry.answer = "not a POST"
        self.reply(handler, 405, b"", "text/plain")
