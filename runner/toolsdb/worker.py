"""``toolsdb worker``: turns hook events into notifications and delivers them.

The rules live in SQL (repeatable/47_notification_rules.sql,
repeatable/44_notifications.sql); this module is transport:

* ``toolsdb.route_events()`` claims events, applies the notification rules,
  queues notifications and marks the events processed, in one transaction;
* ``toolsdb.settle_and_claim_notifications()`` settles the previous job (sent,
  or failed with its error and the receiver's Retry-After) and claims the next
  one in the same call: one round trip and one commit per job;
* each notification goes to its destination (``toolsdb.notification_destinations``),
  whose URL or SMTP settings are an encrypted config secret decrypted here:
  Slack (POST ``{"text"}``), Discord (POST ``{"content"}``), a generic webhook
  (POST the notification as JSON) or email over SMTP;
* it LISTENs on ``toolsdb_events`` and ``toolsdb_notifications`` on a direct
  connection (``DATABASE_DIRECT_URL`` when set: LISTEN does not survive a
  transaction-pooling proxy), drains both queues before it waits, and polls
  every ``poll`` seconds anyway;
* ``stop()`` (SIGTERM, SIGINT): the send in flight finishes and is settled,
  the claimed notifications not yet tried are released (their attempt given
  back), and ``run`` returns.

Several workers side by side never send a notification twice while it is
leased: claims skip locked rows, and a settlement checks the claim token
(a send whose lease ended meanwhile is refused at settlement: raise the
lease above the slowest send).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.message
import json
import logging
import os
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from psycopg.rows import dict_row

from . import config as cfg
from . import pooler
from .errors import ToolsdbError
from .target import first_line

logger = logging.getLogger("toolsdb.worker")

DIRECT_URL_ENV = pooler.DIRECT_URL_ENV
CHANNELS = ("toolsdb_events", "toolsdb_notifications")
APPLICATION_NAME = "toolsdb-worker"
RECONNECT_FIRST = 0.5  # seconds before the first reconnection attempt; doubles up to RECONNECT_MAX
RECONNECT_MAX = 30.0
ERROR_CHARS = 500  # of a delivery error kept in last_error
DISCORD_LIMIT = 2000  # characters of a Discord message
SETTLE_AND_CLAIM = (
    "select * from toolsdb.settle_and_claim_notifications("
    "%(token)s::uuid, %(sent)s::bigint[], %(failed)s::bigint[], %(errors)s::text[], "
    "%(retry_after)s::float8[], %(batch)s::integer, %(lease)s::interval, %(worker)s::text)"
)


class DeliveryError(Exception):
    """A delivery that failed; ``retry_after``: seconds the receiver asked to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(" ".join(str(message).split())[:ERROR_CHARS] or "unknown error")
        self.retry_after = retry_after


@dataclasses.dataclass
class Destination:
    name: str
    backend: str
    secret: str  # the URL, or the SMTP URL


@dataclasses.dataclass
class Stats:
    routed_events: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0
    released: int = 0
    reconnects: int = 0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """An HTTP Retry-After header (seconds, or an HTTP date) as seconds; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def slack_escape(text: str) -> str:
    """Slack's three control characters (&, <, >) escaped: a message cannot ping @channel or fake a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Sender:
    """Delivers one notification to one destination; raises DeliveryError."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._http = None

    def http(self):
        if self._http is None:
            import httpx

            self._http = httpx.Client(
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
                follow_redirects=False,
                headers={"User-Agent": "toolsdb-worker"},
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def send(self, destination: Destination, row: dict[str, Any]) -> None:
        message = str((row.get("payload") or {}).get("message") or row["notification_type"])
        if destination.backend == "slack":
            self._post(destination, {"text": slack_escape(message)})
        elif destination.backend == "discord":
            self._post(destination, {"content": message[:DISCORD_LIMIT], "allowed_mentions": {"parse": []}})
        elif destination.backend == "webhook":
            self._post(destination, webhook_body(row))
        elif destination.backend == "email":
            self._mail(destination, row, message)
        else:
            raise DeliveryError(f"unknown backend {destination.backend!r}")

    def _post(self, destination: Destination, body: dict[str, Any]) -> None:
        import httpx

        try:
            response = self.http().post(destination.secret, json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{destination.backend} {destination.name}: {type(exc).__name__}: {exc}") from None
        if 200 <= response.status_code < 300:
            return
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if wait is None and response.status_code == 429:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                wait = max(0.0, float(response.json().get("retry_after")))  # Discord's body, in seconds
        raise DeliveryError(
            f"{destination.backend} {destination.name}: HTTP {response.status_code} {response.text[:200]}", wait
        )

    def _mail(self, destination: Destination, row: dict[str, Any], message: str) -> None:
        settings = smtp_settings(destination.secret)
        mail = email.message.EmailMessage()
        mail["From"] = settings["from"]
        mail["To"] = ", ".join(settings["to"])
        first = " ".join(message.split())[:120]
        mail["Subject"] = f"toolsdb {row['notification_type']}: {first}"
        mail.set_content(message)
        try:
            if settings["ssl"]:
                client = smtplib.SMTP_SSL(
                    settings["host"], settings["port"], timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(settings["host"], settings["port"], timeout=self.timeout)
            with client:
                if settings["starttls"]:
                    client.starttls(context=ssl.create_default_context())
                if settings["user"]:
                    client.login(settings["user"], settings["password"])
                client.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"email {destination.name}: {type(exc).__name__}: {exc}") from None


def smtp_settings(url: str) -> dict[str, Any]:
    """smtp://user:pass@host:port/?from=a@b&to=c@d,e@f&starttls=1 (smtps:// for SSL)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise DeliveryError("the email destination's secret is not an smtp:// or smtps:// URL")
    query = parse_qs(parts.query)
    recipients = [a for v in query.get("to", []) for a in v.split(",") if a.strip()]
    sender = (query.get("from") or [""])[0]
    if not recipients or not sender:
        raise DeliveryError("the email destination's URL needs from= and to= (smtp://host:port/?from=a@b&to=c@d)")
    return {
        "host": parts.hostname,
        "port": parts.port or (465 if parts.scheme == "smtps" else 25),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "from": sender,
        "to": recipients,
        "ssl": parts.scheme == "smtps",
        "starttls": (query.get("starttls") or ["0"])[0].lower() in ("1", "true", "yes"),
    }


def webhook_body(row: dict[str, Any]) -> dict[str, Any]:
    """What a generic webhook receives: the notification, JSON."""

    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    keys = ("notification_id", "event_id", "session_id", "notification_type", "attempts", "created_at", "payload")
    return {k: plain(row.get(k)) for k in keys}


def check_destination_url(backend: str, url: str) -> None:
    """One line when a destination's URL cannot be right for its backend."""
    scheme = urlsplit(url).scheme
    if backend == "email":
        smtp_settings(url)
    elif scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ToolsdbError(f"a {backend} destination needs an http:// or https:// URL")


class Worker:
    """Routes events and delivers notifications until stopped (or, ``once``, until nothing is due)."""

    def __init__(
        self,
        conninfo: str,
        direct_conninfo: str | None = None,
        name: str | None = None,
        batch_size: int = 1,
        lease: float = 60.0,
        poll: float = 5.0,
        timeout: float = 10.0,
        keys: cfg.KeyRing | None = None,
        sender: Sender | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.direct_conninfo = direct_conninfo or os.environ.get(DIRECT_URL_ENV) or conninfo
        self.name = name or f"toolsdb-worker-{os.uname().nodename}-{os.getpid()}"
        self.batch_size = batch_size
        self.lease = f"{lease} seconds"
        self.poll = poll
        self.keys = keys
        self.sender = sender or Sender(timeout)
        self.stats = Stats()
        self._stopping = threading.Event()
        self._connected = False  # connected once: later losses are reconnected
        self._warned_no_listen = False
        # (claim token, sent, failed, errors, waits) not yet settled when a connection was lost
        self._unsettled: tuple | None = None
        self._connected_at = 0.0
        self._destinations: dict[str, tuple[float, Destination | None]] = {}

    def stop(self) -> None:
        """Finish the send in flight, release the rest, return from run()."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop ---------------------------------------------------------

    def run(self, once: bool = False) -> Stats:
        """Work until stop() (or, ``once``, until nothing is due). A connection
        lost after the first one succeeded (a restart, a failover) is
        reconnected with backoff (0.5 s doubling to 30 s) instead of ending the
        worker; what it sent but had not settled is settled first on the new
        connection, under its claim while the lease lasts (see deliver()). The
        first connection failing, or any loss with ``once``, raises."""
        delay = RECONNECT_FIRST
        try:
            while True:
                try:
                    return self._run(once)
                except psycopg.OperationalError as exc:
                    if once or self.stopping or not self._connected:
                        raise
                    if time.monotonic() - self._connected_at > RECONNECT_MAX:
                        delay = RECONNECT_FIRST  # it worked for a while: start the backoff again
                    self.stats.reconnects += 1
                    logger.warning("database connection lost (%s); reconnecting in %.1f s", first_line(exc), delay)
                    self._stopping.wait(delay)
                    delay = min(delay * 2, RECONNECT_MAX)
                    if self.stopping:
                        return self.stats
        finally:
            self.sender.close()

    def _run(self, once: bool) -> Stats:
        with contextlib.ExitStack() as stack:
            pooled = pooler.behind_transaction_pooler(self.conninfo)
            conn = stack.enter_context(
                psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    application_name=APPLICATION_NAME,
                    prepare_threshold=None if pooled else 5,
                )
            )
            listener = None
            if not once and pooled and self.direct_conninfo == self.conninfo:
                if not self._warned_no_listen:
                    self._warned_no_listen = True
                    logger.warning(
                        "behind a transaction pooler LISTEN hears nothing: polling every %.1f s "
                        "(set %s to the server itself to be woken at once)",
                        self.poll,
                        DIRECT_URL_ENV,
                    )
            elif not once:
                listener = stack.enter_context(
                    psycopg.connect(self.direct_conninfo, autocommit=True, application_name=APPLICATION_NAME)
                )
                for channel in CHANNELS:
                    listener.execute(f"listen {channel}")
            self._connected = True
            self._connected_at = time.monotonic()
            while not self.stopping:
                # Drain both queues before waiting: what arrived while this
                # worker was busy woke nobody.
                worked = self.route(conn) + self.deliver(conn)
                if once and worked == 0:
                    break
                if listener is not None and worked == 0:
                    self._wait(listener)
                elif not once and worked == 0:
                    self._stopping.wait(self.poll)
        return self.stats

    def _wait(self, listener: psycopg.Connection) -> None:
        """Until a notification on our channels, ``poll`` seconds, or stop(); in short slices."""
        deadline = time.monotonic() + self.poll
        while not self.stopping and time.monotonic() < deadline:
            slice_ = min(0.25, max(0.0, deadline - time.monotonic()))
            if any(True for _ in listener.notifies(timeout=slice_, stop_after=1)):
                # Take whatever else is queued, without waiting.
                for _ in listener.notifies(timeout=0):
                    pass
                return

    def route(self, conn: psycopg.Connection) -> int:
        """route_events() until no event is left; returns how many events."""
        total = 0
        while not self.stopping:
            events, queued = conn.execute("select * from toolsdb.route_events(100, %s)", (self.name,)).fetchone()
            total += events
            self.stats.routed_events += events
            self.stats.queued += queued
            if events == 0:
                break
        return total

    def deliver(self, conn: psycopg.Connection) -> int:
        """Deliver what is due: settle each job and claim the next in one call; returns how many were tried.

        Outcomes not yet settled when the connection is lost (a failover)
        are kept in ``self._unsettled`` and settled first on the next
        connection, under the same claim token while its lease lasts: a
        notification sent once is not sent again because its settlement
        missed the old primary."""
        token, sent, failed, errors, waits = self._unsettled or (None, [], [], [], [])
        self._unsettled = None
        tried = 0
        while True:
            batch = 0 if self.stopping else self.batch_size
            if batch == 0 and not (sent or failed):
                break
            self._unsettled = (token, sent, failed, errors, waits)
            try:
                with conn.cursor(row_factory=dict_row) as cur:
                    claimed = cur.execute(
                        SETTLE_AND_CLAIM,
                        {
                            "token": token,
                            "sent": sent or None,
                            "failed": failed or None,
                            "errors": errors or None,
                            "retry_after": waits if any(w is not None for w in waits) else None,
                            "batch": batch,
                            "lease": self.lease,
                            "worker": self.name,
                        },
                    ).fetchall()
            except psycopg.errors.ObjectNotInPrerequisiteState as exc:
                # The lease ended while we sent: another worker owns those
                # rows now. Nothing was settled nor claimed; claim afresh.
                logger.warning("settling %s: %s", sent + failed, exc.diag.message_primary)
                sent, failed, errors, waits, token = [], [], [], [], None
                self._unsettled = None
                continue
            self._unsettled = None
            self.stats.sent += len(sent)
            self.stats.failed += len(failed)
            sent, failed, errors, waits = [], [], [], []
            if not claimed:
                break
            token = claimed[0]["claim_token"]
            self._unsettled = (token, sent, failed, errors, waits)  # filled as the batch is sent
            for index, row in enumerate(claimed):
                if self.stopping:
                    left = [r["notification_id"] for r in claimed[index:]]
                    self.stats.released += conn.execute(
                        "select toolsdb.release_notifications(%s::bigint[], %s::uuid)", (left, token)
                    ).fetchone()[0]
                    break
                tried += 1
                try:
                    self.sender.send(self.destination(conn, row["destination_name"]), row)
                    sent.append(row["notification_id"])
                except psycopg.OperationalError:
                    raise  # the database, not the delivery: reconnect, settle what was sent
                except Exception as exc:  # a failed delivery, whatever raised it, is recorded and retried
                    problem = exc if isinstance(exc, DeliveryError) else DeliveryError(f"{type(exc).__name__}: {exc}")
                    logger.info("notification %s: %s", row["notification_id"], problem)
                    failed.append(row["notification_id"])
                    errors.append(str(problem))
                    waits.append(problem.retry_after)
        return tried

    # -- destinations -----------------------------------------------------

    def destination(self, conn: psycopg.Connection, name: str | None, ttl: float = 10.0) -> Destination:
        """The destination (null: the one named default), its secret decrypted; cached ``ttl`` seconds."""
        wanted = name or "default"
        cached = self._destinations.get(wanted)
        if cached is None or cached[0] < time.monotonic():
            found = None
            row = conn.execute(
                "select backend, enabled, secret_key, secret_value, secret_key_id "
                "from toolsdb.notification_destination_secret(%s)",
                (wanted,),
            ).fetchone()
            if row is not None and row[1]:
                backend, _, key, token, key_id = row
                if self.keys is None:
                    try:
                        self.keys = cfg.KeyRing.load(create=False)
                    except ToolsdbError as exc:
                        raise DeliveryError(f"destination {wanted}: {exc}") from None
                try:
                    secret = cfg._decrypt(key, token, key_id, self.keys)
                except ToolsdbError as exc:
                    raise DeliveryError(f"destination {wanted}: {exc}") from None
                found = Destination(wanted, backend, secret)
            cached = (time.monotonic() + ttl, found)
            self._destinations[wanted] = cached
        if cached[1] is None:
            raise DeliveryError(f"no enabled destination {wanted!r}")
        return cached[1]


def install_signal_handlers(worker: Worker) -> Callable[[], None]:
    """SIGTERM and SIGINT stop the worker gently; returns a function putting the old handlers back."""
    import signal

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: object) -> None:
        worker.stop()

    for signum in previous:
        signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore


def describe(stats: Stats) -> str:
    return json.dumps(dataclasses.asdict(stats))
