"""Stand-ins for what toolsdb worker delivers to, on loopback: an HTTP server
answering like Slack, Discord or a webhook (scripted statuses, Retry-After,
a delay, every request recorded) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"


@dataclass
class Received:
    path: str
    body: Any
    at: float


class StandIn:
    """A loopback HTTP server: ``script(path, replies)`` queues the answers of a path
    (then 200 ok); ``delay`` seconds before each answer; ``received`` records each POST."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[Received] = []
        self.replies: dict[str, collections.deque[Reply]] = collections.defaultdict(collections.deque)
        self.lock = threading.Lock()
        self.first_request = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with stand_in.lock:
                    stand_in.received.append(Received(self.path, body, time.monotonic()))
                    queue = stand_in.replies[self.path]
                    reply = queue.popleft() if queue else Reply()
                stand_in.first_request.set()
                if stand_in.delay:
                    time.sleep(stand_in.delay)
                data = reply.body.encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.replies[path].extend(replies)

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received if r.path == path]


@contextmanager
def stand_in(delay: float = 0.0) -> Iterator[StandIn]:
    server = StandIn(delay)
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@contextmanager
def smtp_stand_in() -> Iterator[tuple[int, list[Any]]]:
    """An aiosmtpd server on loopback; yields its port and the list of messages it receives."""
    from aiosmtpd.controller import Controller

    messages: list[Any] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope) -> str:
            messages.append(envelope)
            return "250 Message accepted for delivery"

    with socket.socket() as probe:  # a free port (the controller cannot report one it picked)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, messages
    finally:
        controller.stop()


@contextmanager
def running(worker: Any, join_timeout: float = 40.0) -> Iterator[Any]:
    """A toolsdb Worker running in a thread for the block; stopped and joined after it."""
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(join_timeout)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def destination(conn, name: str, backend: str, url: str, user_id=None, keys=None) -> None:
    """What `toolsdb notify destination set` does, in process: the URL stored as an
    encrypted secret (``keys``: the key ring, else TOOLSDB_KEY or the key file)."""
    from toolsdb import config as cfg
    from toolsdb.worker_cli import secret_key_for

    key = secret_key_for(name)
    cfg.set_secret(conn, key, url, keys=keys)
    conn.execute("select toolsdb.notification_destination_set(%s, %s, %s, %s)", (name, backend, key, user_id))
