"""A read replica of the embedded server: a streaming hot standby on the same machine.

``toolsdb replica create`` copies the running embedded server with
``pg_basebackup -R -X stream -C -S toolsdb_replica`` (over its Unix socket, as
its superuser, run as the server user) into ``.toolsdb/replica/`` (``data``,
``log``, ``run``) and starts it: its own socket folder, its own port (the
primary's + 1 unless --port; TCP on 127.0.0.1 with --tcp, the primary's
password). The physical replication slot ``toolsdb_replica`` on the primary
keeps the WAL the standby has not received yet, so ``toolsdb replica remove``
drops it with the folder. Applications send read-only work to the URL of
``toolsdb replica url`` (``DATABASE_REPLICA_URL``); every write there fails
with SQLSTATE 25006 (read_only_sql_transaction).

For ``toolsdb health``: :func:`replication_status` (on the primary: every
standby streaming from it, with its lag), :func:`standby_lag` (on a standby:
how far its replay is) and :func:`replication_slots` (on the primary: the WAL
each slot retains). Plain SQL that runs on PostgreSQL 15 to 18.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg.rows import dict_row

from .clicommon import Settings, common_options, print_table
from .errors import ToolsdbError
from .server import SUPERUSER, EmbeddedServer, ServerInfo, _free_port
from .target import connect, resolve

SLOT = "toolsdb_replica"
SETTINGS_FILE = "replica.json"


# -- monitoring (for `toolsdb health`) -------------------------------------------------------

_REPLICATION_STATUS = """
select r.pid,
       r.application_name,
       r.client_addr::text as client_addr,
       r.state,
       r.sync_state,
       s.slot_name,
       r.sent_lsn::text as sent_lsn,
       r.write_lsn::text as write_lsn,
       r.flush_lsn::text as flush_lsn,
       r.replay_lsn::text as replay_lsn,
       extract(epoch from r.write_lag)::float8 as write_lag,
       extract(epoch from r.flush_lag)::float8 as flush_lag,
       extract(epoch from r.replay_lag)::float8 as replay_lag,
       pg_wal_lsn_diff(
           case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end,
           r.replay_lsn
       )::bigint as bytes_behind,
       r.reply_time
  from pg_stat_replication as r
  left join pg_replication_slots as s on s.active_pid = r.pid
 order by r.application_name, r.pid
"""


def replication_status(primary_conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every standby streaming from this server (pg_stat_replication), one dict each.

    Keys: pid, application_name (a toolsdb replica's is its slot name,
    ``toolsdb_replica``), client_addr (None on the Unix socket), state
    ('streaming' once caught up with the backup; 'startup', 'catchup',
    'backup', 'stopping'), sync_state, slot_name, sent_lsn, write_lsn,
    flush_lsn, replay_lsn (text, e.g. '0/3000148'), write_lag, flush_lag,
    replay_lag (seconds as float, None when PostgreSQL has no recent sample,
    e.g. on an idle primary), bytes_behind (WAL bytes written here but not yet
    replayed there) and reply_time. Empty when nothing streams. Columns other
    than pid/application_name/state are None for a role without superuser or
    pg_read_all_stats.
    """
    with primary_conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(_REPLICATION_STATUS).fetchall())


_STANDBY_LAG = """
select pg_is_in_recovery() as in_recovery,
       pg_last_wal_receive_lsn()::text as receive_lsn,
       pg_last_wal_replay_lsn()::text as replay_lsn,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint as replay_bytes_pending,
       pg_last_xact_replay_timestamp() as last_replay_at,
       extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as seconds_since_replay,
       case
           when not pg_is_in_recovery() then null
           when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0::float8
           else greatest(extract(epoch from now() - pg_last_xact_replay_timestamp())::float8, 0)
       end as lag_seconds,
       (select status from pg_stat_wal_receiver) as receiver_status
"""


def standby_lag(replica_conn: psycopg.Connection) -> dict[str, Any]:
    """How far behind this standby's replay is.

    Keys: in_recovery (False on a primary: the other values are then None),
    receive_lsn / replay_lsn (text), replay_bytes_pending (received but not
    yet replayed), last_replay_at (commit time of the last replayed
    transaction), seconds_since_replay (now() - last_replay_at: grows while
    the primary is idle too), lag_seconds (0 when everything received is
    replayed, else seconds_since_replay) and receiver_status ('streaming'
    while connected to the primary, None when the WAL receiver is not
    running).
    """
    with replica_conn.cursor(row_factory=dict_row) as cur:
        return dict(cur.execute(_STANDBY_LAG).fetchone())


_REPLICATION_SLOTS = """
select slot_name,
       slot_type,
       active,
       active_pid,
       restart_lsn::text as restart_lsn,
       wal_status,
       pg_wal_lsn_diff(
           case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end,
           restart_lsn
       )::bigint as retained_bytes
  from pg_replication_slots
 order by slot_name
"""


def replication_slots(primary_conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every replication slot of this server and the WAL it keeps (retained_bytes).

    An inactive slot keeps WAL forever: a removed replica whose slot was not
    dropped fills the disk. Keys: slot_name, slot_type, active, active_pid,
    restart_lsn, wal_status, retained_bytes.
    """
    with primary_conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(_REPLICATION_SLOTS).fetchall())


def current_lsn(primary_conn: psycopg.Connection) -> str:
    """The primary's current WAL position (text), to wait for with :func:`wait_for_replay`."""
    return primary_conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]


def wait_for_replay(replica_conn: psycopg.Connection, lsn: str, timeout: float = 30) -> bool:
    """Wait until the standby has replayed WAL position ``lsn``; False after ``timeout`` seconds.

    Read-your-writes: take :func:`current_lsn` on the primary after the
    commit, then wait for it here before reading.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001  # replay usually takes a few ms: poll fast first, then back off to 50 ms
    while True:
        done = replica_conn.execute(
            "select coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)", (lsn,)
        ).fetchone()[0]
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def drop_slot(primary_conn: psycopg.Connection, slot: str, timeout: float = 30) -> bool:
    """Drop replication slot ``slot`` (ending its walsender first); False if there was none."""
    deadline = time.monotonic() + timeout
    while True:
        row = primary_conn.execute(
            "select active_pid from pg_replication_slots where slot_name = %s", (slot,)
        ).fetchone()
        if row is None:
            return False
        if row[0] is not None:
            # The standby is gone (stopped first) but its walsender may linger a moment.
            primary_conn.execute("select pg_terminate_backend(%s)", (row[0],))
        try:
            primary_conn.execute("select pg_drop_replication_slot(%s)", (slot,))
            return True
        except psycopg.errors.ObjectInUse:
            pass
        except psycopg.errors.UndefinedObject:
            return False
        if time.monotonic() >= deadline:
            raise ToolsdbError(f"replication slot {slot} is still in use after {timeout:.0f}s; drop it later")
        time.sleep(0.1)


# -- the replica -----------------------------------------------------------------------------


class Replica:
    """The streaming hot standby of one embedded server, in ``<primary root>/replica``."""

    def __init__(self, primary: EmbeddedServer, root: Path | None = None, slot: str = SLOT):
        self.primary = primary
        self.root = (root or primary.root / "replica").absolute()
        self.slot = slot
        self.server = EmbeddedServer(root=self.root, bindir=primary.bindir, dbname=primary.dbname, standby=True)
        # The standby is a copy of the primary: same roles, same passwords.
        self.server.password_file = primary.password_file
        self.settings_file = self.root / SETTINGS_FILE

    # -- state --------------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return self.root.exists()

    def info(self) -> ServerInfo | None:
        return self.server.info()

    def _settings(self) -> dict[str, Any]:
        try:
            return json.loads(self.settings_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _save_settings(self, tcp: bool, port: int) -> None:
        self.settings_file.write_text(json.dumps({"tcp": tcp, "port": port, "slot": self.slot}) + "\n")

    def _require(self) -> None:
        if not self.server.initialized:
            if self.exists:
                raise ToolsdbError(
                    f"{self.root} holds no complete replica (an interrupted create?): "
                    "`toolsdb replica remove` deletes it, then `toolsdb replica create`"
                )
            raise ToolsdbError(f"no replica in {self.root}: `toolsdb replica create` makes one")

    def primary_conninfo(self, primary_info: ServerInfo) -> str:
        """How the standby reaches the primary: its socket, as the superuser, named after the slot."""
        return f"host={primary_info.socket_dir} port={primary_info.port} user={SUPERUSER} application_name={self.slot}"

    def _primary_info(self) -> ServerInfo:
        return self.primary.info() or self.primary.start()

    def _pick_port(self, tcp: bool, primary_port: int) -> int:
        candidate = primary_port + 1 if primary_port < 65535 else primary_port - 1
        if not tcp:
            return candidate  # its own socket folder: no clash with the primary
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
                return candidate
            except OSError:
                return _free_port()

    # -- lifecycle ----------------------------------------------------------------------------
    def create(self, tcp: bool = False, port: int | None = None) -> ServerInfo:
        """Copy the primary (pg_basebackup), create the slot, start the standby.

        Refuses when the replica folder exists. On any failure nothing is
        left: no folder, no slot.
        """
        primary_info = self._primary_info()
        self.root.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.root.mkdir()  # the claim: a second create fails here
        except FileExistsError:
            raise ToolsdbError(
                f"a replica exists already in {self.root}: `toolsdb replica start` runs it, "
                "`toolsdb replica remove` deletes it"
            ) from None
        slot_is_ours = False
        try:
            with self._connect_primary(primary_info) as conn:
                if conn.execute("select 1 from pg_replication_slots where slot_name = %s", (self.slot,)).fetchone():
                    raise ToolsdbError(
                        f"the primary has a replication slot {self.slot} already (a replica made elsewhere?): "
                        "`toolsdb replica remove` drops it"
                    )
                wal_level = conn.execute("show wal_level").fetchone()[0]
                if wal_level == "minimal":
                    raise ToolsdbError("the primary runs with wal_level=minimal: a replica needs replica or logical")
            slot_is_ours = True
            self.server.basebackup(f"{primary_info.conninfo('postgres')} application_name={self.slot}", self.slot)
            port = port or self._pick_port(tcp, primary_info.port)
            self._save_settings(tcp, port)
            return self.start()
        except ToolsdbError as exc:
            # The folder goes, and the server log with it: keep its reason in the message.
            reason = self._log_reason()
            self._discard(drop=slot_is_ours)
            message = exc.message.split(" (log: ")[0]
            raise ToolsdbError(
                f"replica create failed: {message}"
                + (f" ({reason})" if reason else "")
                + ("; nothing was kept" if slot_is_ours else "")
            ) from None
        except BaseException:
            self._discard(drop=slot_is_ours)
            raise

    def _log_reason(self) -> str:
        """The standby's last FATAL line (and a bind failure), from its server log."""
        try:
            lines = self.server.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        picked = [ln for ln in lines if "could not bind" in ln][-1:]
        picked += [ln for ln in lines if "FATAL:" in ln or "PANIC:" in ln][-1:]
        return "; ".join(" ".join(ln.split(":  ", 1)[-1].split()) for ln in picked)

    def start(self, tcp: bool | None = None, port: int | None = None) -> ServerInfo:
        """Start the standby (the primary too, if it is stopped); settings of create unless given."""
        self._require()
        current = self.info()
        if current is not None:
            return current
        saved = self._settings()
        saved_tcp = bool(saved.get("tcp", False))
        if tcp is None:
            tcp = saved_tcp
        if port is None and tcp == saved_tcp:
            port = saved.get("port")  # else pick again: a socket-only port may be taken on TCP
        primary_info = self._primary_info()
        port = port or self._pick_port(tcp, primary_info.port)
        self._save_settings(tcp, port)
        # The primary's socket and port as they are now (a --tcp primary changes port on each start).
        settings = {"primary_conninfo": self.primary_conninfo(primary_info), "primary_slot_name": self.slot}
        return self.server.start(tcp, port, settings=settings)

    def stop(self) -> bool:
        """Stop the standby; False if it was not running (or does not exist)."""
        if not self.server.initialized or not self.server.is_running():
            return False
        return self.server.stop()

    def remove(self) -> tuple[bool, bool]:
        """Stop the standby, delete its folder, drop its slot on the primary.

        Returns (folder removed, slot dropped). The primary is started when
        stopped, so that the slot goes too.
        """
        self.stop()
        existed = self.exists
        self._delete_folder()
        dropped = False
        if self.primary.initialized:
            with self._connect_primary(self._primary_info()) as conn:
                dropped = drop_slot(conn, self.slot)
        return existed, dropped

    def _discard(self, drop: bool) -> None:
        """Undo a failed create: stop, delete the folder, drop the slot if we made it."""
        with contextlib.suppress(Exception):
            if self.server.initialized and self.server.is_running():
                self.server.stop()
        self._delete_folder()
        if drop:
            with contextlib.suppress(Exception), self._connect_primary(self._primary_info()) as conn:
                drop_slot(conn, self.slot)

    def _delete_folder(self) -> None:
        sockdir = self.server.socket_dir()
        shutil.rmtree(self.root, ignore_errors=True)
        if not sockdir.is_relative_to(self.root):
            with contextlib.suppress(OSError):
                sockdir.rmdir()  # the short /tmp folder of a long path; empty once stopped

    # -- addresses and lag -----------------------------------------------------------------------
    def _connect_primary(self, primary_info: ServerInfo | None = None) -> psycopg.Connection:
        info = primary_info or self.primary.info()
        if info is None:
            raise ToolsdbError("the embedded server is not running: `toolsdb server start`")
        return connect(info.conninfo("postgres"), autocommit=True)

    def conninfo(self, dbname: str | None = None) -> str:
        info = self.info()
        if info is None:
            raise ToolsdbError("the replica is not running: `toolsdb replica start`")
        return info.conninfo(dbname or self.primary.dbname)

    def url(self, tcp: bool = False, dbname: str | None = None) -> str:
        """The standby's postgresql:// URL (its socket, or 127.0.0.1 with ``tcp``)."""
        info = self.info()
        if info is None:
            raise ToolsdbError("the replica is not running: `toolsdb replica start`")
        if tcp and "127.0.0.1" not in info.listen_addresses:
            raise ToolsdbError(
                "the replica listens on its Unix socket only: `toolsdb replica stop && toolsdb replica start --tcp`"
            )
        return self.server.url(info, tcp=tcp, dbname=dbname)

    def status(self) -> dict[str, Any]:
        """Running or not, pid, port, the slot and the lag (bytes from the primary, seconds from the standby)."""
        info = self.info()
        out: dict[str, Any] = {
            "root": self.root,
            "running": info is not None,
            "pid": info.pid if info else None,
            "port": info.port if info else self._settings().get("port"),
            "socket_dir": info.socket_dir if info else None,
            "tcp": bool(info and "127.0.0.1" in info.listen_addresses),
            "slot": self.slot,
            "primary_running": self.primary.is_running(),
            "slot_exists": None,
            "slot_active": None,
            "retained_bytes": None,
            "state": None,
            "bytes_behind": None,
            "lag_seconds": None,
        }
        if out["primary_running"]:
            with self._connect_primary() as conn:
                slot = next((s for s in replication_slots(conn) if s["slot_name"] == self.slot), None)
                out["slot_exists"] = slot is not None
                if slot is not None:
                    out["slot_active"] = slot["active"]
                    out["retained_bytes"] = slot["retained_bytes"]
                streaming = next((r for r in replication_status(conn) if r["slot_name"] == self.slot), None)
                if streaming is not None:
                    out["state"] = streaming["state"]
                    out["bytes_behind"] = streaming["bytes_behind"]
        if info is not None:
            with connect(info.conninfo("postgres"), autocommit=True) as conn:
                out["lag_seconds"] = standby_lag(conn)["lag_seconds"]
        return out


# -- command line ------------------------------------------------------------------------------


def replica_of_target(settings: Settings, *, start: bool) -> Replica:
    """The replica of the embedded server; one line when the target is another server."""
    target = resolve(settings.database, start=start)
    if target.server is None:
        raise ToolsdbError(
            f"a replica is made of the embedded server only, and {target.source} names another database: "
            "unset it (or drop --database) to use the embedded server in .toolsdb"
        )
    return Replica(target.server)


@click.group("replica")
def replica_group() -> None:
    """A read replica: a streaming hot standby of the embedded server (in .toolsdb/replica).

    Send read-only work to it with the URL of `toolsdb replica url` (e.g. as
    DATABASE_REPLICA_URL); writes there fail with SQLSTATE 25006. The
    replica holds the replication slot toolsdb_replica on the primary:
    `toolsdb replica remove` drops it with the replica.
    """


@replica_group.command("create")
@click.option("--tcp", is_flag=True, help="Also listen on 127.0.0.1 (password of .toolsdb/password).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Port of the replica (default: the primary's + 1, or a free one if that is taken on TCP).",
)
@common_options
def replica_create(settings: Settings, tcp: bool, port: int | None) -> None:
    """Copy the embedded server (pg_basebackup) into .toolsdb/replica and start it.

    Starts the embedded server first if needed. Not idempotent: refuses when
    a replica exists (`toolsdb replica remove` first). A failed create
    leaves neither folder nor slot behind.
    """
    replica = replica_of_target(settings, start=True)
    info = replica.create(tcp=tcp, port=port)
    click.echo(f"created the replica in {replica.root} (slot {replica.slot}), started (pid {info.pid})")
    click.echo(replica.url(tcp=tcp))


@replica_group.command("start")
@click.option(
    "--tcp/--no-tcp", default=None, help="Also listen on 127.0.0.1, or not (default: as the last start or create)."
)
@click.option("--port", type=click.IntRange(1, 65535), help="Port to use (default: as before).")
@common_options
def replica_start(settings: Settings, tcp: bool | None, port: int | None) -> None:
    """Start the replica (and the embedded server, if it is stopped)."""
    replica = replica_of_target(settings, start=False)
    running = replica.info()
    if running is not None:
        click.echo(f"already running (pid {running.pid}): {replica.url()}")
        return
    info = replica.start(tcp=tcp, port=port)
    click.echo(f"started (pid {info.pid}): {replica.url()}")


@replica_group.command("stop")
@common_options
def replica_stop(settings: Settings) -> None:
    """Stop the replica (the embedded server keeps running)."""
    replica = replica_of_target(settings, start=False)
    replica._require()
    click.echo("stopped" if replica.stop() else "not running")


@replica_group.command("status")
@common_options
def replica_status(settings: Settings) -> None:
    """Say whether the replica runs, where, and how far behind it is; exit 3 if stopped."""
    replica = replica_of_target(settings, start=False)
    replica._require()
    st = replica.status()
    rows: list[tuple[str, object]] = [
        ("data", replica.server.data),
        ("running", f"yes, pid {st['pid']}" if st["running"] else "no"),
        ("port", st["port"]),
    ]
    if st["running"]:
        rows += [("socket", st["socket_dir"]), ("tcp", "127.0.0.1" if st["tcp"] else "off"), ("url", replica.url())]
    if not st["primary_running"]:
        rows.append(("primary", "not running (`toolsdb server start`)"))
    else:
        slot = "missing" if not st["slot_exists"] else ("active" if st["slot_active"] else "inactive")
        rows += [
            ("slot", f"{st['slot']} ({slot})"),
            ("state", st["state"] or "not streaming"),
            ("lag bytes", "" if st["bytes_behind"] is None else st["bytes_behind"]),
            ("retained WAL bytes", "" if st["retained_bytes"] is None else st["retained_bytes"]),
        ]
    if st["running"]:
        rows.append(("lag seconds", "" if st["lag_seconds"] is None else f"{st['lag_seconds']:.3f}"))
    print_table(["property", "value"], rows)
    if not st["running"]:
        sys.exit(3)  # as pg_ctl status: not running


@replica_group.command("url")
@click.option("--tcp", is_flag=True, help="Print the TCP URL (with password) instead of the socket one.")
@common_options
def replica_url(settings: Settings, tcp: bool) -> None:
    """Print the replica's URL (for DATABASE_REPLICA_URL); starts it if needed."""
    replica = replica_of_target(settings, start=False)
    if replica.info() is None:
        replica.start()
    click.echo(replica.url(tcp=tcp))


@replica_group.command("remove")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@common_options
def replica_remove(settings: Settings, force: bool) -> None:
    """Stop the replica, delete .toolsdb/replica and drop its slot on the embedded server."""
    replica = replica_of_target(settings, start=False)
    if not force:
        if not sys.stdin.isatty():
            raise ToolsdbError("remove needs confirmation: run it in a terminal or pass --force")
        click.confirm(f"Stop and delete the replica in {replica.root} and drop slot {replica.slot}?", abort=True)
    existed, dropped = replica.remove()
    if not existed and not dropped:
        click.echo(f"no replica in {replica.root}: nothing to remove")
        return
    parts = []
    if existed:
        parts.append(f"removed the replica in {replica.root}")
    if dropped:
        parts.append(f"dropped slot {replica.slot}")
    click.echo(" and ".join(parts))
