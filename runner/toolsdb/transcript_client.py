"""Sending a transcript's new bytes to ``toolsdb serve`` (``POST /transcripts``).

The client side of the live import without a shared filesystem
(docs/transcripts.md section 5): ``toolsdb hook --post URL`` after a Stop,
SubagentStop, PreCompact or SessionEnd event, and ``toolsdb import-transcripts
--post URL``. Standard library only (the hook imports it).

The server owns the offset (its ``transcript_files`` row). The client keeps
the last offset the server acknowledged in a small cache file per (server,
path), so the usual event costs one request; the cache is only a guess: a
409 answer names the server's offset and the client sends from there, or
from 0 when the server found that the bytes before that offset changed (the
file was rewritten). Each request carries the file's min(4096, start) bytes
before its start offset (the server checks them against the hash of what it
imported: the client never decides alone that a file is an append) and the
whole lines after it, at most MAX_SEND bytes, gzipped when large.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import http.client
import json
import os
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

HASH_SPAN = 4096
MAX_SEND = 8 << 20  # bytes of lines per request (the server refuses more: 413)
GZIP_FROM = 32 << 10  # bodies at least this large go gzipped
MAX_ROUNDS = 16  # requests per file and run (a 409 costs one)
REQUEST_TIMEOUT = 300.0  # seconds, when the deadline is further (import-transcripts --post)


class SendError(Exception):
    """Why a transcript could not be sent (one line)."""


def transcripts_url(post_url: str) -> str:
    """``.../hooks`` -> ``.../transcripts`` on the same server (the URL's last segment replaced)."""
    parts = urlsplit(post_url)
    base = parts.path.rsplit("/", 1)[0] if "/" in parts.path else ""
    return f"{parts.scheme}://{parts.netloc}{base}/transcripts"


def default_state_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "toolsdb" / "sent"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mtime(st: os.stat_result) -> str:
    return dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).isoformat().replace("+00:00", "Z")


class Cache:
    """The last offset ``url`` acknowledged for a path: one small JSON file per
    (url, path), replaced atomically. Lost or stale, it costs a 409, no data."""

    def __init__(self, folder: Path | None, url: str, path: str) -> None:
        self.file = None if folder is None else folder / (_sha(f"{url}\0{path}".encode())[:40] + ".json")

    def read(self) -> dict:
        if self.file is None:
            return {}
        try:
            data = json.loads(self.file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write(self, offset: int, mtime: str) -> None:
        if self.file is None:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            temp = self.file.with_suffix(f".{os.getpid()}.tmp")
            temp.write_text(json.dumps({"offset": offset, "mtime": mtime}))
            os.replace(temp, self.file)
        except OSError:
            pass  # a cache: the next run asks the server


def send_file(
    url: str,
    token: str,
    path: str,
    deadline: float,
    state_dir: Path | None = None,
    connection: list | None = None,
) -> dict:
    """Send what the server has not got of ``path``; returns {"offset", "size",
    "requests", "done"} ("done": everything up to the file's last newline is
    on the server). Stops at ``deadline`` (monotonic): the next run goes on.
    Raises SendError (the file cannot be read, the server refuses)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SendError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return _send(url, token, path, fd, deadline, Cache(state_dir, url, path), connection)
    except OSError as exc:
        raise SendError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _send(url: str, token: str, path: str, fd: int, deadline: float, cache: Cache, connection: list | None) -> dict:
    st = os.fstat(fd)
    size, mtime = st.st_size, _mtime(st)
    known = cache.read()
    start = known.get("offset") if isinstance(known.get("offset"), int) else 0
    outcome = {"offset": start, "size": size, "requests": 0, "done": False}
    if start == size and known.get("mtime") == mtime:
        outcome["done"] = True  # nothing new since the server acknowledged it all
        return outcome
    head = os.pread(fd, HASH_SPAN, 0)
    rewrite = False
    parts = urlsplit(url)
    conns = connection if connection is not None else []
    try:
        verified = False  # a 200 of this run: the server has what precedes start
        for _ in range(MAX_ROUNDS):
            if start > size:  # the server (or the cache) is past the end: the file was cut
                start, rewrite = 0, True
            data = os.pread(fd, min(MAX_SEND, size - start), start)
            cut = data.rfind(b"\n")
            if cut < 0 and len(data) >= MAX_SEND:
                raise SendError(
                    f"{path}: the line at offset {start} is longer than {MAX_SEND >> 20} MiB, "
                    "more than one request to toolsdb serve carries"
                )
            if cut < 0 and (verified or (known.get("offset") == start and known.get("mtime") == mtime)):
                outcome.update(offset=start, done=True)  # nothing whole after start
                return outcome
            # No whole line, but the file changed since the server acknowledged
            # it (or the cache is lost): a request without lines, so the server
            # checks the bytes before start (a rewrite of the same length, say).
            data = data[: cut + 1]
            left = deadline - time.monotonic()
            if left <= 0:
                return outcome
            context = os.pread(fd, min(HASH_SPAN, start), start - min(HASH_SPAN, start))
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
                "X-Toolsdb-Path": quote(path, safe="/"),
                "X-Toolsdb-Start-Offset": str(start),
                "X-Toolsdb-Context-Length": str(len(context)),
                "X-Toolsdb-File-Size": str(size),
                "X-Toolsdb-File-Mtime": mtime,
                "X-Toolsdb-Head-Length": str(len(head)),
                "X-Toolsdb-Head-Hash": "sha256:" + _sha(head),
            }
            if rewrite:
                headers["X-Toolsdb-Rewrite"] = "1"
            body = context + data
            if len(body) >= GZIP_FROM:
                body = gzip.compress(body, compresslevel=1)
                headers["Content-Encoding"] = "gzip"
            status, answer = _request(conns, parts, body, headers, left)
            outcome["requests"] += 1
            if status == 200:
                offset = int(answer.get("offset", start))
                cache.write(offset, mtime)
                known = {"offset": offset, "mtime": mtime}
                outcome["offset"] = offset
                rewrite, verified = False, True
                if offset <= start:  # nothing moved (a request without lines): all is there
                    outcome["done"] = not data
                    return outcome
                start = offset
                continue
            if status == 409:
                if answer.get("rewritten"):
                    start, rewrite = 0, True
                else:
                    start, rewrite = int(answer.get("expected_offset", 0)), False
                continue
            detail = answer.get("error") or ""
            raise SendError(f"{url} answered {status}" + (f": {detail}" if detail else ""))
        return outcome
    finally:
        if connection is None:
            for conn in conns:
                conn.close()


def _request(conns: list, parts, body: bytes, headers: dict, timeout: float) -> tuple[int, dict]:
    """POST on the kept connection (made on first use); (status, JSON answer)."""
    timeout = min(timeout, REQUEST_TIMEOUT)
    if not conns:
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conns.append(kind(parts.hostname, parts.port, timeout=max(0.05, timeout)))
    conn = conns[0]
    if conn.sock is not None:
        conn.sock.settimeout(max(0.05, timeout))
    else:
        conn.timeout = max(0.05, timeout)
    try:
        conn.request("POST", parts.path or "/transcripts", body=body, headers=headers)
        response = conn.getresponse()
        text = response.read(1 << 16)
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise SendError(f"{parts.geturl()}: {exc or type(exc).__name__}") from None
    try:
        answer = json.loads(text) if text else {}
    except ValueError:
        answer = {"error": " ".join(text.decode("utf-8", "replace").split())[:300]}
    return response.status, answer if isinstance(answer, dict) else {}
