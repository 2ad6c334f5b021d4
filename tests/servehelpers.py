"""Helpers of the ``toolsdb serve`` tests and benchmark: start the real console
script (``toolsdb serve --port 0``), wait for its "listening on" line, POST hooks."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .conftest import clean_env, run_cli, toolsdb_exe

LISTENING = re.compile(r"toolsdb serve: listening on http://127\.0\.0\.1:(\d+)")


@dataclass
class Served:
    """A running ``toolsdb serve`` subprocess."""

    process: subprocess.Popen
    port: int
    spool: Path
    stderr: list[str] = field(default_factory=list)

    def post(self, payload: dict | str | bytes, token: str | None, timeout: float = 30) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
            headers = {"Content-Type": "application/json"}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            conn.request("POST", "/hooks", body, headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def health(self) -> dict:
        return json.loads(self.get("/healthz")[1])

    def wait_spool_empty(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health()["spool_events"] == 0 and not list(self.spool.glob("*.jsonl")):
                return
            time.sleep(0.1)
        raise AssertionError(f"the spool was not replayed within {timeout} s: {self.health()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_serve(url: str, spool: Path, *extra: str, env: dict | None = None, timeout: float = 60) -> Served:
    """``toolsdb serve --port 0`` on ``url``; returns once it printed its listening line."""
    process = subprocess.Popen(
        [toolsdb_exe(), "serve", "--database", url, "--port", "0", "--spool", str(spool), *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean_env(), **(env or {})},
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = LISTENING.search(line)
        if found:
            served = Served(process, int(found.group(1)), spool, lines)
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=_drain, args=(process, lines), daemon=True).start()
            return served
    process.kill()
    process.wait()
    raise AssertionError(f"toolsdb serve did not start: {''.join(lines)}")


def _drain(process: subprocess.Popen, lines: list[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)


def create_token(url: str, *args: str) -> str:
    made = run_cli("token", "create", "--database", url, *args)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert re.fullmatch(r"tdb_[0-9a-f]{64}", token), made.stdout
    return token


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
