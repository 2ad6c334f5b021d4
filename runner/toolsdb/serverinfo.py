"""Where the embedded server is and how to reach it, from its files alone.

Standard library only, so ``toolsdb hook`` can find the embedded server
without importing click or psycopg (see toolsdb.hook); ``toolsdb.server``
manages the server itself.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DBNAME = "toolsdb"
SUPERUSER = "postgres"


class ServerInfo:
    """What postmaster.pid says about a running server (a plain class: no dataclasses import)."""

    __slots__ = ("listen_addresses", "pid", "port", "socket_dir")

    def __init__(self, pid: int, port: int, socket_dir: str, listen_addresses: str) -> None:
        self.pid = pid
        self.port = port
        self.socket_dir = socket_dir
        self.listen_addresses = listen_addresses

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServerInfo) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    def __repr__(self) -> str:
        return f"ServerInfo(pid={self.pid}, port={self.port}, socket_dir={self.socket_dir!r})"

    def conninfo(self, dbname: str = DEFAULT_DBNAME) -> str:
        """libpq key=value string for the Unix socket, as the superuser."""
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={dbname}"


HOME_ENV = "TOOLSDB_HOME"


def record_file() -> Path:
    """Where ``make migrate`` records the per-user default server:
    ``$XDG_CONFIG_HOME/toolsdb/home`` (``~/.config/toolsdb/home``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "toolsdb" / "home"


def holds_server(root: Path) -> bool:
    """Whether ``root`` holds an initialized embedded server (``data/PG_VERSION``)."""
    try:
        return (root / "data" / "PG_VERSION").is_file()
    except PermissionError:  # data/ is the server account's, mode 0700: it exists
        return True
    except OSError:
        return False


def recorded_root() -> Path | None:
    """The folder the per-user record names, if it names one (checked by the caller)."""
    try:
        text = record_file().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return Path(text) if text and os.path.isabs(text) else None


def locate_root(cwd: Path | None = None) -> tuple[Path, str] | None:
    """The one embedded server every command uses, and how it was found, first match wins:

    1. ``TOOLSDB_HOME`` (whether or not a server is there yet);
    2. the nearest ``.toolsdb/`` holding a server in the working directory or
       one of its parents (the checkout, from any of its folders);
    3. the per-user default ``make migrate`` recorded (record_file()), when
       a server is still there.

    None when none is found: only the commands that create a server
    (``toolsdb migrate``, ``reset``, ``server start``) then create one in
    ``.toolsdb/`` of the working directory.
    """
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).absolute(), HOME_ENV
    try:
        here = (cwd or Path.cwd()).absolute()
    except OSError:  # the working directory was removed
        here = None
    if here is not None:
        for folder in (here, *here.parents):
            if holds_server(folder / ".toolsdb"):
                return folder / ".toolsdb", "the enclosing folder"
    recorded = recorded_root()
    if recorded is not None and holds_server(recorded):
        return recorded, f"the per-user default in {record_file()}"
    return None


def default_root() -> Path:
    """The embedded server's folder (locate_root()), else ``.toolsdb/`` of the working directory."""
    found = locate_root()
    return found[0] if found else Path.cwd() / ".toolsdb"


def no_server_message(root: Path) -> str:
    """One line: no embedded server to use, and how to point toolsdb at one."""
    if os.environ.get(HOME_ENV):
        return (
            f"no database: {HOME_ENV}={os.environ[HOME_ENV]} holds no embedded server; "
            f"create it with `{HOME_ENV}={os.environ[HOME_ENV]} toolsdb migrate`, or point {HOME_ENV} "
            "at the .toolsdb folder `make migrate` created, or set DATABASE_URL"
        )
    return (
        f"no database: no embedded server in {root.parent} or its parents and none recorded in {record_file()}; "
        f"run `make migrate` in the toolsdb checkout (or `toolsdb migrate` here to create one), "
        f"or set {HOME_ENV} to its .toolsdb folder, or DATABASE_URL"
    )


def read_server_info(data: Path) -> ServerInfo | None:
    """The running server of data folder ``data`` (from postmaster.pid), or None if stopped."""
    pidfile = data / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    if len(lines) < 6:
        return None
    try:
        pid = int(lines[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass  # alive, owned by another user
    return ServerInfo(pid=pid, port=int(lines[3]), socket_dir=lines[4], listen_addresses=lines[5].strip())
