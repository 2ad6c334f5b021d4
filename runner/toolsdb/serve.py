"""``toolsdb serve``: Claude Code's http hooks, stored as ``toolsdb hook`` stores them.

``POST /hooks`` takes the JSON a command hook gets on stdin, with
``Authorization: Bearer tdb_...``. The token (``toolsdb.api_tokens``) decides
the user, agent and project recorded with the event and the row-level security
context it is written under. The answer is ``200 {}`` only once the event is
durable: committed (synchronous commit) or appended to the spool and fsynced.

One writer thread takes whatever requests are waiting and stores them in one
transaction: per event a savepoint, then one statement that authenticates the
token (``toolsdb.authenticate_api_token``), sets the transaction-local context
(``set_config(..., true)``: nothing outlives the transaction, as a transaction
pooler needs) and calls ``toolsdb.hook_ingest``. A bad event fails alone (400,
or 401 for a token that is not in force); the others commit. Every event gets
an idempotency key ``serve:<instance>:<n>`` when it is received, so an event
whose commit is lost with the connection can be spooled and replayed without
being stored twice.

Spool: when PostgreSQL cannot be reached the events go to an append-only file
(one JSON line each, with the identity of its token and its key), fsynced
before the answer. While the spool holds anything, new events go there too, so
order is kept. A replayer thread sends the spool in order through the same
SQL, the record's key as idempotency key, and records how far it got; cut
short (a crash, a kill -9) it starts again from the last recorded offset and
the keys make each event stored exactly once.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors

from . import pooler
from .errors import ToolsdbError
from .hook import JSONB_REFUSALS, jsonb_safe, parse
from .target import first_line, redact

logger = logging.getLogger("toolsdb.serve")

TOKEN_RE = re.compile(r"tdb_[0-9a-f]{64}")
MAX_BODY = 16 << 20  # bytes: a hook payload is far smaller
MAX_BATCH = 256  # events in one transaction
REPLAY_BATCH = 500  # spooled events in one replay transaction
TOKEN_CACHE_SECONDS = 900.0  # a token verified this recently is accepted while the database is down
STATEMENT_TIMEOUT_MS = 5000

# One statement per live event: authenticate the token, set the
# transaction-local context from it, store the event. The subquery (offset 0:
# never flattened) sets the context before the outer hook_ingest() runs; no
# row when the token is not in force.
INGEST_AS_TOKEN = """
select toolsdb.hook_ingest(%s::jsonb, %s::jsonb || jsonb_strip_nulls(jsonb_build_object(
    'user_id', a.user_id, 'agent_id', a.agent_id, 'project_id', a.project_id))),
    a.token_id, a.user_id, a.agent_id, a.project_id
from (
    select t.token_id, t.user_id, t.agent_id, t.project_id,
        pg_catalog.set_config('toolsdb.user_id', t.user_id::text, true) as set_user,
        pg_catalog.set_config('toolsdb.agent_id', coalesce(t.agent_id::text, ''), true) as set_agent,
        pg_catalog.set_config('toolsdb.project_id', coalesce(t.project_id::text, ''), true) as set_project
    from toolsdb.authenticate_api_token(%s) as t
    offset 0
) as a
"""

# One statement per replayed event: the identity recorded in the spool.
INGEST_AS_IDENTITY = """
select toolsdb.hook_ingest(%s::jsonb, %s::jsonb)
from (
    select pg_catalog.set_config('toolsdb.user_id', %s, true) as set_user,
        pg_catalog.set_config('toolsdb.agent_id', %s, true) as set_agent,
        pg_catalog.set_config('toolsdb.project_id', %s, true) as set_project
    offset 0
) as s
"""

AUTHENTICATE = "select token_id, user_id, agent_id, project_id from toolsdb.authenticate_api_token(%s)"
# After "begin": the transaction's own settings (set local, in one statement).
SETTINGS = (
    "select pg_catalog.set_config('synchronous_commit', 'on', true), "
    f"pg_catalog.set_config('statement_timeout', '{STATEMENT_TIMEOUT_MS}', true)"
)


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/toolsdb/spool`` (``~/.local/state/toolsdb/spool``)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "toolsdb" / "spool"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


def is_event_error(exc: BaseException) -> bool:
    """An error of the event itself (its data), not of the database: SQLSTATE classes 22, 23 and P0."""
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in ("22", "23", "P0")


@dataclass(frozen=True)
class Identity:
    token_id: str
    user_id: str
    agent_id: str | None
    project_id: str | None


@dataclass
class Outcome:
    status: int  # 200, 400, 401, 503
    error: str | None = None
    event_id: int | None = None
    spooled: bool = False


@dataclass
class Item:
    """One request on its way to the database or the spool."""

    raw: str
    payload: dict
    token: str
    context: dict
    key: str
    received_at: str
    event_type: str
    done: Callable[[Outcome], None]
    identity: Identity | None = None


# ---------------------------------------------------------------------------
# The spool
# ---------------------------------------------------------------------------


class Spool:
    """Append-only JSON-lines segments in a folder, replayed oldest first.

    Segment ``<ns>-<instance>.jsonl``; beside it ``<segment>.done`` holds the
    byte offset replayed so far. The folder is locked (flock on ``.lock``) by
    one server at a time.
    """

    def __init__(self, folder: Path, instance: str) -> None:
        self.folder = folder
        self.instance = instance
        self.lock = threading.Lock()  # appends, and the switch back to live writes
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock_file = open(folder / ".lock", "a+")  # noqa: SIM115 (held for the server's life)
        except OSError as exc:
            raise ToolsdbError(f"cannot use the spool folder {folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise ToolsdbError(
                f"the spool folder {folder} is in use by another toolsdb serve (--spool picks another)"
            ) from None
        self.current: Path | None = None
        self._fd: int | None = None  # the current segment, while spooling
        self.events = 0  # spooled, not yet replayed
        self.bytes = 0
        for segment in self.segments():
            with open(segment, "rb") as handle:
                handle.seek(self.offset(segment))
                while chunk := handle.read(1 << 20):
                    self.events += chunk.count(b"\n")
                    self.bytes += len(chunk)

    @property
    def active(self) -> bool:
        return self.events > 0 or self.current is not None

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl"))

    @staticmethod
    def offset(segment: Path) -> int:
        try:
            return int(Path(f"{segment}.done").read_text() or 0)
        except (OSError, ValueError):
            return 0

    def append(self, records: list[dict]) -> None:
        """Write the records at the end of the current segment and fsync (call with ``lock`` held)."""
        data = b"".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in records)
        if self._fd is None:
            self.current = self.folder / f"{time.time_ns():020d}-{self.instance}.jsonl"
            self._fd = os.open(self.current, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            directory = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            # A disk full half-way: take the partial records back, so the next
            # append does not follow half a line (those events get a 503).
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise
        self.events += len(records)
        self.bytes += len(data)

    def replayed(self, segment: Path, offset: int, events: int, size: int) -> None:
        """Record progress: ``offset`` of ``segment`` is in the database."""
        done = Path(f"{segment}.done")
        temp = done.with_suffix(".tmp")
        temp.write_text(str(offset))
        os.replace(temp, done)
        with self.lock:
            self.events -= events
            self.bytes -= size

    def finish(self, segment: Path, offset: int, torn: bool = False) -> bool:
        """Remove a segment replayed up to ``offset`` if nothing was added since
        (``torn``: what follows is an incomplete last record); True when removed."""
        with self.lock:
            if segment == self.current:
                if self._fd is not None and os.fstat(self._fd).st_size != offset:
                    return False
                if self._fd is not None:
                    os.close(self._fd)
                self._fd = None
                self.current = None
            elif segment.stat().st_size != offset and not torn:
                return False
            segment.unlink(missing_ok=True)
            Path(f"{segment}.done").unlink(missing_ok=True)
            if not self.segments():
                self.events = 0
                self.bytes = 0
            return True

    def close(self) -> None:
        with self.lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        self._lock_file.close()


# ---------------------------------------------------------------------------
# The server's state: writer and replayer threads
# ---------------------------------------------------------------------------


@dataclass
class Stats:
    """What the metrics report (counters kept by the threads)."""

    batches: int = 0
    batch_events: int = 0
    spooled: int = 0
    replayed: int = 0
    rejected: int = 0
    db_up: bool | None = None  # the last write or replay reached the database; None: none tried yet
    ingested: dict[str, int] = field(default_factory=dict)


class Ingestor:
    """The writer thread (live transactions, or the spool), the replayer thread and the token cache."""

    def __init__(
        self,
        conninfo: str,
        spool_dir: Path,
        on_ingested: Callable[[str], None] | None = None,
        writers: int = 1,
        prepare: bool | None = None,
    ) -> None:
        self.conninfo = conninfo
        # Server-side prepared statements (psycopg prepares every statement at
        # once): a third less database CPU per event; a transaction pooler must
        # support them (PgBouncer 1.21+ with max_prepared_statements), else off.
        # None: on unless behind a transaction pooler (pooler.py; decided at
        # the first connection, which the database being down may delay).
        self.prepare = prepare
        self.instance = str(uuid.uuid4())
        self.spool = Spool(spool_dir, self.instance)
        self.queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self.seq = 0
        self.seq_lock = threading.Lock()
        self.tokens: dict[bytes, tuple[Identity, float]] = {}
        self.stats = Stats()
        self.on_ingested = on_ingested or (lambda event_type: None)
        # Answers a batch's items (the HTTP app replaces it with one hop to its event loop).
        self.answer_many: Callable[[list[tuple[Item, Outcome]]], None] = answer_each
        self.stopping = threading.Event()
        self.wake_replayer = threading.Event()
        self._local = threading.local()  # each writer's connection
        self._threads = [
            *(
                threading.Thread(target=self._write_loop, name=f"toolsdb-serve-writer-{n}", daemon=True)
                for n in range(writers)
            ),
            threading.Thread(target=self._replay_loop, name="toolsdb-serve-replayer", daemon=True),
        ]

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.queue.put(None)
        self.wake_replayer.set()
        for thread in self._threads:
            thread.join(timeout)
        self.spool.close()

    def next_key(self) -> str:
        with self.seq_lock:
            self.seq += 1
            return f"serve:{self.instance}:{self.seq}"

    def submit(self, item: Item) -> None:
        self.queue.put(item)

    # -- the database --------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(
            self.conninfo,
            autocommit=True,
            connect_timeout=2,
            application_name="toolsdb-serve",
            prepare_threshold=self.prepare_threshold(),
        )

    def prepare_threshold(self) -> int | None:
        if self.prepare is None:
            self.prepare = not pooler.behind_transaction_pooler(self.conninfo)
        return 0 if self.prepare else None

    def connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            self._local.conn = None
            conn = self._local.conn = self._connect()
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        self._local.conn = None
        self.stats.db_up = False

    # -- the writer ----------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                self.queue.put(None)  # for the other writers
                self._drop_connection()
                return
            items = [first]
            while len(items) < MAX_BATCH:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.queue.put(None)
                    break
                items.append(more)
            try:
                self._write(items)
            except Exception as exc:  # never lose the thread; answer what is unanswered
                logger.exception("toolsdb serve: writer failed")
                failed = Outcome(503, f"internal error: {type(exc).__name__}: {exc}")
                with contextlib.suppress(Exception):
                    self.answer_many([(item, failed) for item in items])

    def _write(self, items: list[Item]) -> None:
        if not self.spool.active:
            try:
                self._store_live(items)
                return
            except psycopg.Error as exc:
                logger.warning("toolsdb serve: database unavailable, spooling: %s", first_line(exc))
                self._drop_connection()
        self._store_spool(items)

    def _store_live(self, items: list[Item]) -> None:
        """One transaction for the batch (run_batch); answers each item after the commit."""
        conn = self.connection()
        statements = []
        for item in items:
            ctx = json.dumps({**item.context, "idempotency_key": item.key, "received_at": item.received_at})
            statements.append(
                Statement(
                    INGEST_AS_TOKEN,
                    (item.raw, ctx, item.token),
                    lambda item=item, ctx=ctx: (
                        json.dumps(jsonb_safe(item.payload), ensure_ascii=False),
                        ctx,
                        item.token,
                    ),
                )
            )
        results = run_batch(conn, statements)
        self.stats.db_up = True
        self.stats.batches += 1
        self.stats.batch_events += len(items)
        stamp = time.monotonic()
        answers: list[tuple[Item, Outcome]] = []
        for item, result in zip(items, results, strict=True):
            if isinstance(result, psycopg.Error):
                answers.append((item, Outcome(400, first_line(result))))
            elif result is None:
                answers.append((item, Outcome(401, "the bearer token is unknown, revoked or expired")))
            else:
                item.identity = Identity(*(str(v) if v is not None else None for v in result[1:]))  # type: ignore[arg-type]
                self.tokens[token_hash(item.token)] = (item.identity, stamp)
                self.on_ingested(item.event_type)
                answers.append((item, Outcome(200, event_id=result[0])))
        self.answer_many(answers)

    def _identity_for_spool(self, item: Item) -> Identity | str | None:
        """The identity of ``item``'s token while spooling: from the cache, else
        the database if it answers; "unverified" when neither can tell."""
        hit = self.tokens.get(token_hash(item.token))
        if hit is not None and time.monotonic() - hit[1] < TOKEN_CACHE_SECONDS:
            return hit[0]
        try:
            row = self.connection().execute(AUTHENTICATE, (item.token,)).fetchone()
        except psycopg.Error:
            self._drop_connection()
            return "unverified"
        if row is None:
            return None
        identity = Identity(*(str(v) if v is not None else None for v in row))  # type: ignore[arg-type]
        self.tokens[token_hash(item.token)] = (identity, time.monotonic())
        return identity

    def _store_spool(self, items: list[Item]) -> None:
        records: list[dict] = []
        accepted: list[Item] = []
        answers: list[tuple[Item, Outcome]] = []
        for item in items:
            identity = item.identity or self._identity_for_spool(item)
            if identity is None:
                answers.append((item, Outcome(401, "the bearer token is unknown, revoked or expired")))
                continue
            if isinstance(identity, str):
                answers.append((item, Outcome(503, "the database is unavailable and this token was not seen recently")))
                continue
            item.identity = identity
            records.append(
                {
                    "key": item.key,
                    "received_at": item.received_at,
                    "token_id": identity.token_id,
                    "user_id": identity.user_id,
                    "agent_id": identity.agent_id,
                    "project_id": identity.project_id,
                    "context": item.context,
                    "event_type": item.event_type,
                    "payload": item.raw,
                }
            )
            accepted.append(item)
        if records:
            try:
                with self.spool.lock:
                    self.spool.append(records)
            except OSError as exc:
                answers.extend(
                    (item, Outcome(503, f"cannot write the spool: {exc.strerror or exc}")) for item in accepted
                )
            else:
                self.stats.spooled += len(records)
                self.wake_replayer.set()
                answers.extend((item, Outcome(200, spooled=True)) for item in accepted)
        self.answer_many(answers)

    # -- the replayer --------------------------------------------------------

    def _replay_loop(self) -> None:
        delay = 0.05
        conn: psycopg.Connection | None = None
        while not self.stopping.is_set():
            if not self.spool.segments():
                self.wake_replayer.wait(1.0)
                self.wake_replayer.clear()
                continue
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self._connect()
                if self._replay_some(conn):
                    delay = 0.05
                    continue
            except psycopg.Error as exc:
                self.stats.db_up = False
                logger.info("toolsdb serve: replay waits for the database: %s", first_line(exc))
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
            except OSError as exc:
                logger.error("toolsdb serve: cannot read the spool: %s", exc)
            self.stopping.wait(delay)
            delay = min(delay * 2, 1.0)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _replay_some(self, conn: psycopg.Connection) -> bool:
        """Replay up to REPLAY_BATCH records of the oldest segment; True when something moved."""
        segments = self.spool.segments()
        if not segments:
            return False
        segment = segments[0]
        start = self.spool.offset(segment)
        with open(segment, "rb") as handle:
            handle.seek(start)
            lines: list[bytes] = []
            end = start
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # being written, or torn by a crash before its fsync (never answered)
                lines.append(line)
                end += len(line)
                if len(lines) >= REPLAY_BATCH:
                    break
        if not lines:
            if segment != self.spool.current and segment.stat().st_size > start:
                # A torn last line of a closed segment: never acknowledged.
                logger.warning("toolsdb serve: %s ends with an incomplete record (dropped)", segment)
                return self.spool.finish(segment, start, torn=True)
            return self.spool.finish(segment, start)
        records: list[tuple[bytes, dict]] = []
        statements: list[Statement] = []
        for line in lines:
            try:
                record = json.loads(line)
                statements.append(replay_statement(record))
            except (ValueError, KeyError, TypeError, AttributeError):
                self._reject(line, "not a spool record")
                continue
            records.append((line, record))
        results = run_batch(conn, statements) if statements else []
        stored = 0
        for (line, record), result in zip(records, results, strict=True):
            if isinstance(result, psycopg.Error):
                self._reject(line, first_line(result))
            else:
                stored += 1
                self.on_ingested(record.get("event_type") or "unknown")
        self.stats.db_up = True
        self.stats.replayed += stored
        self.spool.replayed(segment, end, len(lines), end - start)
        self.spool.finish(segment, end)
        return True

    def _reject(self, line: bytes, why: str) -> None:
        """A spooled record the database refuses for good: kept in rejected.jsonl, not retried."""
        self.stats.rejected += 1
        logger.error("toolsdb serve: a spooled event was refused: %s", why)
        with open(self.spool.folder / "rejected.jsonl", "ab") as handle:
            handle.write(json.dumps({"error": why, "record": line.decode(errors="replace")}).encode() + b"\n")


def answer_each(answers: list[tuple[Item, Outcome]]) -> None:
    for item, outcome in answers:
        item.done(outcome)


@dataclass
class Statement:
    """One event's statement: its parameters, and a function giving those to
    retry with when jsonb refuses the payload (a NUL character, say)."""

    sql: str
    params: tuple
    safe_params: Callable[[], tuple] | None = None


def replay_statement(record: dict) -> Statement:
    """The statement storing a spool record under the identity and key it was received with."""
    ctx = json.dumps(
        {
            **(record.get("context") or {}),
            "user_id": record.get("user_id"),
            "agent_id": record.get("agent_id"),
            "project_id": record.get("project_id"),
            "idempotency_key": record["key"],
            "received_at": record.get("received_at"),
        }
    )
    ids = tuple(record.get(name) or "" for name in ("user_id", "agent_id", "project_id"))
    raw = record["payload"]
    if not isinstance(raw, str):
        raise TypeError("payload")
    return Statement(
        INGEST_AS_IDENTITY,
        (raw, ctx, *ids),
        lambda: (json.dumps(jsonb_safe(parse(raw)), ensure_ascii=False), ctx, *ids),
    )


def run_batch(conn: psycopg.Connection, statements: list[Statement]) -> list[Any]:
    """Run the statements in one committed transaction; per statement its first
    row (None when it returned none) or the event's own error.

    Fast path: begin, the settings, every statement and commit sent as one
    pipeline (one round trip). Should a statement fail for its data (SQLSTATE
    22, 23, P0), that transaction rolls back whole and the batch runs again
    one statement at a time, each in a savepoint of its own, so only the bad
    one fails. Any other error (the connection lost, a timeout) is raised: the
    caller spools or retries, and the idempotency keys make that safe whether
    or not the commit happened.
    """
    cursors: list[psycopg.Cursor] = []
    try:
        with conn.pipeline():
            conn.execute("begin")
            conn.execute(SETTINGS)
            for statement in statements:
                cursor = conn.cursor()
                cursor.execute(statement.sql, statement.params)
                cursors.append(cursor)
            conn.execute("commit")
        return [cursor.fetchone() for cursor in cursors]
    except psycopg.Error as exc:
        if conn.broken or not is_event_error(exc):
            raise
        conn.execute("rollback")
    results: list[Any] = []
    with conn.cursor() as cur:
        cur.execute("begin")
        cur.execute(SETTINGS)
        try:
            for statement in statements:
                results.append(_one_in_savepoint(cur, statement))
            cur.execute("commit")
        except BaseException:
            with contextlib.suppress(Exception):
                cur.execute("rollback")
            raise
    return results


def _one_in_savepoint(cur: psycopg.Cursor, statement: Statement) -> Any:
    params = statement.params
    for attempt in range(2):
        cur.execute("savepoint event")
        try:
            row = cur.execute(statement.sql, params).fetchone()
        except psycopg.Error as exc:
            if not is_event_error(exc):
                raise
            cur.execute("rollback to savepoint event")
            cur.execute("release savepoint event")
            if attempt == 0 and exc.sqlstate in JSONB_REFUSALS and statement.safe_params is not None:
                # As toolsdb hook does: what jsonb cannot hold, replaced.
                params = statement.safe_params()
                continue
            return exc
        cur.execute("release savepoint event")
        return row
    return None


def describe_target(conninfo: str) -> str:
    return redact(conninfo) or "the PG* variables server"
