"""A real PgBouncer (Debian's package) in transaction pooling mode in front of
a test server, started and stopped by the test run.

It listens on a Unix socket in a short folder of its own, trusts the test
users (``auth_type = trust``: the server behind it trusts them too) and keeps
few server connections (``default_pool_size``, 4 as in the field report of
issue 20), so clients share them. It runs as the test server's unprivileged
user when the tests run as root (PgBouncer refuses root, as PostgreSQL does).
Where the binary is missing the tests are skipped, unless
TOOLSDB_REQUIRE_PGBOUNCER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from toolsdb.server import SUPERUSER, _free_port

POOL_SIZE = 4


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


@dataclass
class Bouncer:
    socket_dir: Path
    port: int
    process: subprocess.Popen
    log: Path

    def conninfo(self, dbname: str, user: str = SUPERUSER) -> str:
        return f"host={self.socket_dir} port={self.port} user={user} dbname={dbname}"

    def url(self, dbname: str, user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def running(server_socket_dir: str, server_port: int, users: list[str], run_as=None) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of the server at (socket dir, port).
    ``run_as``: a pwd entry to run as (the test server's user when root)."""
    exe = binary()
    assert exe is not None, "pgbouncer is not installed"
    folder = Path(tempfile.mkdtemp(prefix="pgb-"))  # short: a Unix socket path is at most ~100 bytes
    port = _free_port()
    userlist = folder / "userlist.txt"
    userlist.write_text("".join(f'"{u}" ""\n' for u in users))
    ini = folder / "pgbouncer.ini"
    log = folder / "pgbouncer.log"
    ini.write_text(
        "[databases]\n"
        f"* = host={server_socket_dir} port={server_port}\n"
        "[pgbouncer]\n"
        "listen_addr =\n"
        f"listen_port = {port}\n"
        f"unix_socket_dir = {folder}\n"
        "auth_type = trust\n"
        f"auth_file = {userlist}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {POOL_SIZE}\n"
        "min_pool_size = 0\n"
        "reserve_pool_size = 0\n"
        "max_client_conn = 400\n"
        "max_db_connections = 0\n"
        f"admin_users = {SUPERUSER}\n"
        f"logfile = {log}\n"
        f"pidfile = {folder / 'pgbouncer.pid'}\n"
        "server_login_retry = 1\n"
        "query_wait_timeout = 60\n"
    )
    kwargs: dict = {}
    if run_as is not None:
        for path in (folder, userlist, ini):
            os.chown(path, run_as.pw_uid, run_as.pw_gid)
        kwargs = {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}
    process = subprocess.Popen(
        [exe, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(folder), **kwargs
    )
    bouncer = Bouncer(folder, port, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(bouncer.conninfo("postgres"), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                    raise RuntimeError(f"pgbouncer did not start: {err} {bouncer.log_text()[-2000:]}") from None
                time.sleep(0.1)
        yield bouncer
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # SIGINT: safe shutdown
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
