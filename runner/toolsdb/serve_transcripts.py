"""Transcripts through ``toolsdb serve`` (docs/transcripts.md section 5).

``POST /transcripts``: a client on another machine (``toolsdb hook --post``,
``toolsdb import-transcripts --post``) sends the new bytes of a transcript
file; the server owns the file's offset (``transcript_files`` row with
source_host ``serve:<the token's user id>`` and the client's path), checks
that the bytes follow what it imported, parses them with the same
``transcripts.FileImporter`` as a local import and calls
``toolsdb.transcript_ingest()`` per batch. Answers: 200 {"offset", ...}; 409
{"expected_offset"} when the client starts elsewhere, with "rewritten": true
(and expected_offset 0) when the bytes before its start offset are not those
imported; 401 without a token in force; 400 bad headers; 413 too large; 503
when the database cannot be reached (nothing is spooled: the client's next
request sends everything after the server's offset again).

``--read-transcripts``: the server reads ``transcript_path`` itself (http
hooks of this machine), in a background thread, after the event is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import re
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import psycopg

from . import transcripts
from .serve import AUTHENTICATE, Identity, is_event_error
from .target import first_line

logger = logging.getLogger("toolsdb.serve")

MAX_SEND = 8 << 20  # bytes of lines per request
MAX_BODY = MAX_SEND + transcripts.HASH_SPAN  # with the bytes before the start offset
STATEMENT_TIMEOUT_MS = 60_000
BUSY = 4  # transcript requests importing at once (the others wait)
HEX64 = re.compile(r"(?:sha256:)?([0-9a-f]{64})")
NUMBER = re.compile(r"\d{1,15}")


class BadRequest(Exception):
    pass


def _ingest(conn: psycopg.Connection) -> transcripts.Ingest:
    def ingest(file_json: str, lines_json: str) -> dict:
        with conn.transaction():
            conn.execute(f"set local statement_timeout = {STATEMENT_TIMEOUT_MS}")
            row = conn.execute(
                "select toolsdb.transcript_ingest(%s::jsonb, %s::jsonb)", (file_json, lines_json), prepare=False
            ).fetchone()
        assert row is not None
        return row[0]

    return ingest


def _state(conn: psycopg.Connection, host: str, path: str) -> dict | None:
    row = conn.execute(transcripts.FILE_STATE_SQL.replace("$1", "%s").replace("$2", "%s"), (host, path)).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def _ids(identity: Identity | None) -> dict[str, str]:
    if identity is None:
        return {}
    pairs = (("user_id", identity.user_id), ("agent_id", identity.agent_id), ("project_id", identity.project_id))
    return {k: v for k, v in pairs if v}


class Connections:
    """A few psycopg connections in autocommit, taken and given back."""

    def __init__(self, conninfo: str, name: str) -> None:
        self.conninfo = conninfo
        self.name = name
        self.idle: list[psycopg.Connection] = []
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self):
        with self.lock:
            conn = self.idle.pop() if self.idle else None
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=2, application_name=self.name, prepare_threshold=None
            )
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        else:
            with self.lock:
                self.idle.append(conn)

    def close(self) -> None:
        with self.lock:
            for conn in self.idle:
                with contextlib.suppress(Exception):
                    conn.close()
            self.idle.clear()


def _header(headers, name: str, pattern: re.Pattern | None = NUMBER, required: bool = True) -> str | None:
    value = headers.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"the header {name} is required")
        return None
    if pattern is not None and not pattern.fullmatch(value):
        raise BadRequest(f"the header {name} is not valid: {value[:80]!r}")
    return value


class TranscriptReceiver:
    """POST /transcripts: checks and imports one request's bytes (called in a worker thread)."""

    def __init__(self, conninfo: str) -> None:
        self.pool = Connections(conninfo, "toolsdb-serve-transcripts")
        self.busy = threading.BoundedSemaphore(BUSY)

    def receive(self, token: str, headers, body: bytes) -> tuple[int, dict]:
        try:
            request = self._parse(headers, body)
        except (BadRequest, ValueError) as exc:  # ValueError: a path that is not percent-encoded UTF-8
            return 400, {"error": str(exc)}
        with self.busy:
            try:
                with self.pool.connection() as conn:
                    return self._import(conn, token, *request)
            except psycopg.Error as exc:
                if is_event_error(exc):
                    return 400, {"error": first_line(exc)}
                logger.warning("toolsdb serve: POST /transcripts: database unavailable: %s", first_line(exc))
                return 503, {"error": f"the database is unavailable ({first_line(exc)}); send again later"}

    @staticmethod
    def _parse(headers, body: bytes) -> tuple:
        path = unquote(_header(headers, "x-toolsdb-path", None) or "", errors="strict")
        if not 1 <= len(path) <= 4096 or "\x00" in path:
            raise BadRequest("X-Toolsdb-Path names the file (1 to 4096 characters, percent-encoded)")
        start = int(_header(headers, "x-toolsdb-start-offset") or 0)
        context_length = int(_header(headers, "x-toolsdb-context-length") or 0)
        size = int(_header(headers, "x-toolsdb-file-size") or 0)
        head_length = int(_header(headers, "x-toolsdb-head-length") or 0)
        head_hash = HEX64.fullmatch(_header(headers, "x-toolsdb-head-hash", HEX64) or "")
        mtime = _header(headers, "x-toolsdb-file-mtime", transcripts.TIMESTAMP, required=False)
        rewrite = (headers.get("x-toolsdb-rewrite") or "") in ("1", "true")
        if context_length != min(transcripts.HASH_SPAN, start) or context_length > len(body):
            raise BadRequest(
                f"the body starts with the {min(transcripts.HASH_SPAN, start)} bytes before the start offset "
                f"(X-Toolsdb-Context-Length), {context_length} given"
            )
        if head_length > transcripts.HASH_SPAN or size < start + len(body) - context_length:
            raise BadRequest("X-Toolsdb-File-Size or X-Toolsdb-Head-Length does not fit the body")
        if rewrite and start != 0:
            raise BadRequest("a rewritten file is sent from offset 0")
        context, data = body[:context_length], body[context_length:]
        assert head_hash is not None
        return path, start, context, data, size, mtime, head_length, head_hash.group(1), rewrite

    def _import(
        self,
        conn: psycopg.Connection,
        token: str,
        path: str,
        start: int,
        context: bytes,
        data: bytes,
        size: int,
        mtime: str | None,
        head_length: int,
        head_hash: str,
        rewrite: bool,
    ) -> tuple[int, dict]:
        row = conn.execute(AUTHENTICATE, (token,)).fetchone()
        if row is None:
            return 401, {"error": "the bearer token is unknown, revoked or expired"}
        identity = Identity(*(str(v) if v is not None else None for v in row))  # type: ignore[arg-type]
        host = f"serve:{identity.user_id}"
        state = _state(conn, host, path)
        expected = int(state["read_offset"]) if state else 0
        if not rewrite:
            if start != expected:
                return 409, {"expected_offset": expected}
            if state and start > 0:
                # The bytes before the start offset must be those imported: the
                # 4 kB before it (all of it under 4 kB), and the head when its
                # length is the one recorded.
                same_tail = hashlib.sha256(context).hexdigest() == state.get("tail_hash")
                recorded_head = int(state.get("head_length") or 0)
                same_head = recorded_head != head_length or head_hash == state.get("head_hash")
                if not (same_tail and same_head):
                    return 409, {"expected_offset": 0, "rewritten": True}
        importer = transcripts.FileImporter(_ingest(conn), host, _ids(identity))
        result = importer.run_bytes(
            path,
            data,
            start,
            context=context,
            size=size,
            mtime=mtime,
            head_length=head_length,
            head_hash=head_hash,
            rewrite=rewrite and state is not None,
            lines_before=0 if rewrite or not state else int(state.get("lines_read") or 0),
        )
        if result.conflict is not None:
            return 409, {"expected_offset": result.conflict}
        if result.error:
            return 400, {"error": result.error}
        return 200, {
            "offset": result.offset,
            "lines": result.lines,
            "messages": result.messages,
            "usage": result.usage,
            "malformed": len(result.malformed),
            "sessions_created": importer.sessions_created,
            "rewritten": result.rewritten,
        }

    def close(self) -> None:
        self.pool.close()


class LocalReader:
    """``toolsdb serve --read-transcripts``: after a Stop, SubagentStop,
    PreCompact or SessionEnd event is stored, one background thread imports
    the new part of its transcript file(s) from this machine's disk, as
    ``toolsdb import-transcripts`` would (same source_host, so they share the
    offset); the HTTP answer never waits for it. A file already waiting is
    not queued twice; a failure is logged and the next event goes on."""

    def __init__(self, conninfo: str) -> None:
        self.pool = Connections(conninfo, "toolsdb-serve-read-transcripts")
        self.queue: queue.SimpleQueue[tuple[str, Identity | None] | None] = queue.SimpleQueue()
        self.waiting: set[str] = set()
        self.lock = threading.Lock()
        self.host = transcripts.source_host()
        self.imported = 0  # files read (for the tests and /healthz)
        self.thread = threading.Thread(target=self._loop, name="toolsdb-serve-read-transcripts", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, payload: object, identity: Identity | None) -> None:
        for path in transcripts.live_paths(payload):
            with self.lock:
                if path in self.waiting:
                    continue
                self.waiting.add(path)
            self.queue.put((path, identity))

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            path, identity = item
            with self.lock:
                self.waiting.discard(path)
            started = time.monotonic()
            try:
                with self.pool.connection() as conn:
                    importer = transcripts.FileImporter(_ingest(conn), self.host, _ids(identity))
                    result = importer.run(Path(path), _state(conn, self.host, path))
            except psycopg.Error as exc:
                logger.warning("toolsdb serve: cannot import the transcript %s: %s", path, first_line(exc))
                continue
            except Exception:
                logger.exception("toolsdb serve: the transcript import of %s failed", path)
                continue
            self.imported += 1
            if result.error and result.conflict is None:
                logger.warning("toolsdb serve: transcript %s: %s", path, result.error)
            else:
                logger.info(
                    "toolsdb serve: transcript %s: %d line(s), %d message(s) in %.2f s",
                    path,
                    result.lines,
                    result.messages,
                    time.monotonic() - started,
                )

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(10)
        self.pool.close()
