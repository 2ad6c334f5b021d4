"""The ASGI application of ``toolsdb serve`` (Starlette) and its metrics (prometheus_client).

Needs the ``serve`` extra; ``toolsdb.serve`` (writer, spool, replayer) does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
import zlib
from collections.abc import Iterator

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .hook import git_branch, parse
from .serve import MAX_BODY, TOKEN_RE, Ingestor, Item, Outcome, answer_each, now_iso
from .serve_transcripts import MAX_BODY as MAX_TRANSCRIPT_BODY
from .serve_transcripts import LocalReader, TranscriptReceiver

EMPTY = b"{}"
JSON = "application/json"
EVENT_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_EVENT_TYPES = 100  # label values of events_ingested; further ones count as "other"
QUEUE_CACHE_SECONDS = 5.0

QUEUE_SQL = """
select 'events', count(*), coalesce(extract(epoch from now() - min(e.visible_at)), 0)
from toolsdb.events as e where e.processed_at is null and e.visible_at <= now()
union all
select 'notifications', count(*), coalesce(extract(epoch from now() - min(n.next_attempt_at)), 0)
from toolsdb.notifications as n
where n.status in ('pending', 'sending', 'failed') and n.next_attempt_at <= now()
"""
DELIVERIES_SQL = "select n.backend, n.status, count(*) from toolsdb.notifications as n group by 1, 2"


def error(status: int, message: str) -> Response:
    """A one-line JSON error (never plain text: Claude Code would add it to the model's context)."""
    return Response(json.dumps({"error": " ".join(message.split())}), status_code=status, media_type=JSON)


class QueueCollector:
    """Queue depths, oldest ready age and deliveries by backend and status, from SQL, cached a few seconds."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.lock = threading.Lock()
        self.at = 0.0
        self.queues: list[tuple] = []
        self.deliveries: list[tuple] = []
        self.ok = False

    def _refresh(self) -> None:
        with self.lock:
            if time.monotonic() - self.at < QUEUE_CACHE_SECONDS:
                return
            self.at = time.monotonic()
            try:
                with psycopg.connect(
                    self.conninfo,
                    connect_timeout=2,
                    application_name="toolsdb-serve-metrics",
                    prepare_threshold=None,
                ) as conn:
                    conn.read_only = True
                    with conn.transaction():  # the timeout is the transaction's (a pooler may be in between)
                        conn.execute("set local statement_timeout = 2000")
                        self.queues = conn.execute(QUEUE_SQL).fetchall()
                        self.deliveries = conn.execute(DELIVERIES_SQL).fetchall()
                    self.ok = True
            except psycopg.Error:
                self.ok = False

    def describe(self) -> list:
        """Nothing: registering the collector must not query the database."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self._refresh()
        up = GaugeMetricFamily("toolsdb_serve_queue_stats_up", "1 when the last queue query succeeded")
        up.add_metric([], 1.0 if self.ok else 0.0)
        yield up
        depth = GaugeMetricFamily("toolsdb_queue_ready", "Rows ready to be claimed, by queue", labels=["queue"])
        age = GaugeMetricFamily(
            "toolsdb_queue_oldest_ready_age_seconds", "Age of the oldest ready row, by queue", labels=["queue"]
        )
        for name, count, oldest in self.queues:
            depth.add_metric([name], float(count))
            age.add_metric([name], float(oldest))
        yield depth
        yield age
        deliveries = GaugeMetricFamily(
            "toolsdb_notifications",
            "Notifications by backend and status (sent, failed, dead: delivery outcomes; pending, sending)",
            labels=["backend", "status"],
        )
        for backend, status, count in self.deliveries:
            deliveries.add_metric([backend, status], float(count))
        yield deliveries


class Metrics:
    """The server's own registry (never prometheus_client's global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ingested = Counter(
            "toolsdb_serve_events_ingested", "Events stored in the database, by hook event", ["event_type"], registry=r
        )
        self.requests = Counter("toolsdb_serve_requests", "POST /hooks answers, by status code", ["code"], registry=r)
        self.latency = Histogram(
            "toolsdb_serve_request_seconds",
            "POST /hooks from request to answer",
            buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.spool_events = Gauge("toolsdb_serve_spool_events", "Events in the spool, not yet replayed", registry=r)
        self.spool_bytes = Gauge("toolsdb_serve_spool_bytes", "Bytes of the spool not yet replayed", registry=r)
        self.spooled = Gauge("toolsdb_serve_events_spooled_total", "Events written to the spool", registry=r)
        self.replayed = Gauge("toolsdb_serve_events_replayed_total", "Spooled events stored by replay", registry=r)
        self.rejected = Gauge(
            "toolsdb_serve_events_rejected_total", "Spooled events the database refused (rejected.jsonl)", registry=r
        )
        self.batches = Gauge("toolsdb_serve_transactions_total", "Transactions of the writer", registry=r)
        self.batch_events = Gauge("toolsdb_serve_transaction_events_total", "Events in those transactions", registry=r)
        self.db_up = Gauge("toolsdb_serve_database_up", "1 when the last write reached the database", registry=r)
        self._types: set[str] = set()
        self._types_lock = threading.Lock()

    def count_ingested(self, event_type: str) -> None:
        label = event_type if EVENT_TYPE_RE.fullmatch(event_type) else "other"
        if label not in self._types:
            with self._types_lock:
                if len(self._types) >= MAX_EVENT_TYPES:
                    label = "other"
                else:
                    self._types.add(label)
        self.ingested.labels(label).inc()

    def update(self, ingestor: Ingestor) -> None:
        stats = ingestor.stats
        self.spool_events.set(ingestor.spool.events)
        self.spool_bytes.set(ingestor.spool.bytes)
        self.spooled.set(stats.spooled)
        self.replayed.set(stats.replayed)
        self.rejected.set(stats.rejected)
        self.batches.set(stats.batches)
        self.batch_events.set(stats.batch_events)
        self.db_up.set(1 if stats.db_up else 0)


def bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer tdb_...`` header, or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value if TOKEN_RE.fullmatch(value) else None


class BranchCache:
    """git_branch(cwd), remembered a few seconds per folder (a hook per tool call need not read .git each time)."""

    def __init__(self, seconds: float = 5.0, size: int = 1024) -> None:
        self.seconds = seconds
        self.size = size
        self.known: dict[str, tuple[str | None, float]] = {}

    def __call__(self, cwd: str) -> str | None:
        now = time.monotonic()
        hit = self.known.get(cwd)
        if hit is not None and now - hit[1] < self.seconds:
            return hit[0]
        if len(self.known) >= self.size:
            self.known.clear()
        branch = git_branch(cwd)
        self.known[cwd] = (branch, now)
        return branch


def _json_response(status: int, body: bytes) -> dict:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }


def create_app(
    ingestor: Ingestor,
    metrics: Metrics,
    conninfo: str,
    receiver: TranscriptReceiver | None = None,
    reader: LocalReader | None = None,
):
    """The ASGI application: POST /hooks (plain ASGI: it is the hot path), and
    through Starlette POST /transcripts (``receiver``), GET /healthz and GET
    /metrics (and 404/405 for the rest). ``reader``: --read-transcripts, the
    transcripts of stored Stop, SubagentStop, PreCompact and SessionEnd events
    read from this machine's disk in the background."""
    metrics.registry.register(QueueCollector(conninfo))  # type: ignore[arg-type]
    branches = BranchCache()

    async def hooks(scope: dict, receive, send) -> None:
        started = time.perf_counter()
        status, body = await _hooks(scope, receive)
        await send(_json_response(status, body))
        await send({"type": "http.response.body", "body": body})
        metrics.latency.observe(time.perf_counter() - started)
        metrics.requests.labels(str(status)).inc()

    def failed(status: int, message: str) -> tuple[int, bytes]:
        """A one-line JSON error (never plain text: Claude Code would add it to the model's context)."""
        return status, json.dumps({"error": " ".join(message.split())}).encode()

    async def _hooks(scope: dict, receive) -> tuple[int, bytes]:
        authorization = ""
        length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        token = bearer(authorization)
        if token is None:
            return failed(401, "a bearer token is required: Authorization: Bearer tdb_... (toolsdb token create)")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            return failed(413, f"the hook payload is larger than {MAX_BODY >> 20} MiB")
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return failed(400, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return failed(413, f"the hook payload is larger than {MAX_BODY >> 20} MiB")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks).decode("utf-8", errors="replace")
        try:
            payload = parse(raw)
        except ValueError as exc:
            return failed(400, f"the hook payload is not JSON: {exc}")
        if payload is None:
            return failed(400, "the hook payload nests too deeply")
        if not isinstance(payload, dict):
            return failed(400, f"the hook payload is a JSON object, not {type(payload).__name__}")
        session_id = payload.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            return failed(400, "the hook payload has no session_id string")
        cwd = payload.get("cwd")
        branch = branches(cwd) if isinstance(cwd, str) and cwd else None
        name = payload.get("hook_event_name")
        loop = asyncio.get_running_loop()
        if ingestor.answer_many is answer_each:
            # One hop to this loop per batch, not one per request.
            ingestor.answer_many = lambda answers: loop.call_soon_threadsafe(answer_each, answers)
        future: asyncio.Future[Outcome] = loop.create_future()

        def done(outcome: Outcome) -> None:
            _resolve(future, outcome)

        item = Item(
            raw=raw,
            payload=payload,
            token=token,
            context={"git_branch": branch} if branch else {},
            key=ingestor.next_key(),
            received_at=now_iso(),
            event_type=name if isinstance(name, str) and name else "unknown",
            done=done,
        )
        ingestor.submit(item)
        outcome = await future
        if outcome.status == 200:
            if reader is not None:
                reader.submit(payload, item.identity)
            return 200, EMPTY
        return failed(outcome.status, outcome.error or "failed")

    async def transcripts_endpoint(request: Request) -> Response:
        if receiver is None:
            return error(404, "not found")
        token = bearer(request.headers.get("authorization", ""))
        if token is None:
            return error(401, "a bearer token is required: Authorization: Bearer tdb_... (toolsdb token create)")
        too_large = f"a transcript request carries at most {MAX_TRANSCRIPT_BODY} bytes (once unzipped)"
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_TRANSCRIPT_BODY:
            return error(413, too_large)
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_TRANSCRIPT_BODY:
                return error(413, too_large)
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding == "gzip":
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflate.decompress(body, MAX_TRANSCRIPT_BODY + 1)
            except zlib.error as exc:
                return error(400, f"the body is not gzip: {exc}")
            if len(body) > MAX_TRANSCRIPT_BODY or inflate.unconsumed_tail:
                return error(413, too_large)
        elif encoding not in ("identity", ""):
            return error(415, f"Content-Encoding {encoding} (gzip or none)")
        status, answer = await run_in_threadpool(receiver.receive, token, request.headers, body)
        metrics.requests.labels(str(status)).inc()
        return Response(json.dumps(answer), status_code=status, media_type=JSON)

    async def healthz(request: Request) -> Response:
        body = {
            "status": "ok",
            "database": {True: "up", False: "down", None: "unknown"}[ingestor.stats.db_up],
            "spool_events": ingestor.spool.events,
        }
        return Response(json.dumps(body), media_type=JSON)

    async def metrics_endpoint(request: Request) -> Response:
        metrics.update(ingestor)
        data = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    async def not_post(request: Request) -> Response:
        return error(405, "POST /hooks only")

    rest = Starlette(
        routes=[
            Route("/hooks", not_post, methods=["GET", "PUT", "DELETE", "PATCH"]),
            Route("/transcripts", transcripts_endpoint, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )

    async def app(scope: dict, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/hooks" and scope["method"] == "POST":
            await hooks(scope, receive, send)
        else:
            await rest(scope, receive, send)

    return app


def _resolve(future: asyncio.Future, outcome: Outcome) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):
        future.set_result(outcome)
