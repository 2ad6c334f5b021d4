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


def default_root() -> Path:
    """Where the embedded server lives: ``TOOLSDB_HOME``, else ``.toolsdb/`` of the working directory."""
    home = os.environ.get("TOOLSDB_HOME")
    return Path(home) if home else Path.cwd() / ".toolsdb"


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
