"""``toolsdb cluster``: a local Citus cluster from the embedded server's binaries.

A coordinator and N workers on this machine, for development and tests
(docs/citus.md). Each node is an ``EmbeddedServer`` (its own data folder and
Unix socket; run as the unprivileged server user when toolsdb runs as root)
under ``.toolsdb/cluster/`` (``TOOLSDB_CLUSTER_HOME`` or ``--dir``), started
with ``shared_preload_libraries = 'citus,pg_stat_statements'``. Citus comes
from a build for PostgreSQL 18 (``TOOLSDB_CITUS_DIR``, else ``../shared/citus``
of the working directory or of the source checkout), copied into the embedded
installation by its ``install-into`` script.

Nodes talk to each other over their Unix sockets: a node's name in
``pg_dist_node`` is its socket folder. Every step checks before it acts, so
a start cut short by a signal or a crash is completed by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import psycopg

from .clicommon import print_table
from .errors import ToolsdbError
from .server import EmbeddedServer, ServerInfo, embedded_bindir

CLUSTER_FILE = "cluster.json"
COORDINATOR = "coordinator"
PRELOAD = "citus,pg_stat_statements"
CITUS_ENV = "TOOLSDB_CITUS_DIR"
HOME_ENV = "TOOLSDB_CLUSTER_HOME"
DEFAULT_WORKERS = 2
MAX_WORKERS = 16


def citus_dir() -> Path:
    """The Citus build: TOOLSDB_CITUS_DIR, else ../shared/citus of the working
    directory or of the source checkout; one line naming what to set if none."""
    override = os.environ.get(CITUS_ENV, "").strip()
    candidates = [Path(override)] if override else []
    if not override:
        source = Path(__file__).resolve().parents[2]
        candidates += [Path.cwd().parent / "shared" / "citus", source.parent / "shared" / "citus"]
    for folder in candidates:
        if (folder / "install-into").is_file() and (folder / "pg18" / "lib" / "citus.so").is_file():
            return folder.resolve()
    where = override or " or ".join(str(c) for c in candidates)
    raise ToolsdbError(
        f"no Citus build found ({where}): set {CITUS_ENV} to the folder holding install-into and pg18/ "
        "(Citus built for PostgreSQL 18, docs/citus.md)"
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def install_citus(bindir: Path, source: Path | None = None) -> bool:
    """Copy Citus into the PostgreSQL installation of ``bindir`` unless it is
    there already (same citus.so); True when it copied. Never overwrites a
    library a running server has loaded with a different one: that is an error."""
    source = source or citus_dir()
    pginstall = bindir.parent
    if _digest(pginstall / "lib" / "citus.so") == _digest(source / "pg18" / "lib" / "citus.so"):
        return False
    if (pginstall / "lib" / "citus.so").exists() and _running_postgres(bindir):
        raise ToolsdbError(
            f"a different Citus is installed in {pginstall} and a server of it is running: "
            "stop it (toolsdb cluster stop) before installing this one"
        )
    done = subprocess.run(
        [str(source / "install-into"), str(pginstall)], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise ToolsdbError(f"installing Citus into {pginstall} failed: {detail[-1] if detail else done.returncode}")
    return True


def _running_postgres(bindir: Path) -> bool:
    exe = str(bindir / "postgres").encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if cmdline.read_bytes().split(b"\0", 1)[0] == exe:
                return True
    return False


def default_home() -> Path:
    override = os.environ.get(HOME_ENV, "").strip()
    return Path(override) if override else Path.cwd() / ".toolsdb" / "cluster"


class Cluster:
    """The nodes under ``root``: ``coordinator/`` and the workers cluster.json names."""

    def __init__(self, root: Path | None = None, bindir: Path | None = None) -> None:
        self.root = (root or default_home()).absolute()
        self._bindir = bindir

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = embedded_bindir()
        return self._bindir

    # -- bookkeeping ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        import fcntl

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            ignore = self.root / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# a local Citus cluster's data (toolsdb cluster): never commit\n*\n")
            handle = open(self.root / "lock", "a+")  # noqa: SIM115 (held for the block)
        except OSError as exc:
            raise ToolsdbError(f"cannot use {self.root}: {exc.strerror or exc}") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def workers(self) -> list[str]:
        try:
            data = json.loads((self.root / CLUSTER_FILE).read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ToolsdbError(f"{self.root / CLUSTER_FILE} is unreadable ({exc}): remove the cluster") from None
        return [str(w) for w in data.get("workers", [])]

    def _save(self, workers: list[str]) -> None:
        handle, temp = tempfile.mkstemp(prefix=".cluster.", dir=self.root)
        try:
            with os.fdopen(handle, "w") as out:
                json.dump({"workers": workers}, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.root / CLUSTER_FILE)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def server(self, name: str) -> EmbeddedServer:
        return EmbeddedServer(root=self.root / name, bindir=self.bindir)

    @property
    def exists(self) -> bool:
        return (self.root / CLUSTER_FILE).exists()

    # -- nodes ---------------------------------------------------------------------------------

    def settings(self, name: str) -> dict[str, str]:
        """A node's start settings: Citus loaded; the node's own address for the
        connections Citus opens to itself (the rebalancer's background tasks), its
        socket folder instead of the default localhost over TCP; logical WAL."""
        return {
            "shared_preload_libraries": PRELOAD,
            "citus.local_hostname": str(self.server(name).socket_dir()),
            "wal_level": "logical",  # shard moves (the rebalancer) copy by logical replication
        }

    def _start_node(self, name: str) -> ServerInfo:
        server = self.server(name)
        info = server.start(settings=self.settings(name))
        with psycopg.connect(server.conninfo(info), autocommit=True) as conn:
            conn.execute("create extension if not exists citus")
        return info

    def _register(self, coordinator: ServerInfo, workers: dict[str, ServerInfo]) -> None:
        with psycopg.connect(self.server(COORDINATOR).conninfo(coordinator), autocommit=True) as conn:
            known = {
                (r[0], r[1]): r[2]
                for r in conn.execute("select nodename, nodeport, groupid from pg_catalog.pg_dist_node").fetchall()
            }
            if (coordinator.socket_dir, coordinator.port) not in known:
                conn.execute("select citus_set_coordinator_host(%s, %s)", (coordinator.socket_dir, coordinator.port))
            for info in workers.values():
                if (info.socket_dir, info.port) not in known:
                    # With an empty search_path: Citus copies the distributed functions to the
                    # new node and names their argument types in their GRANTs as the session's
                    # search_path shows them, so toolsdb's (where the database puts them)
                    # would reach the worker unqualified and fail (docs/citus.md).
                    with conn.transaction():
                        conn.execute("set local search_path = pg_catalog")
                        conn.execute("select citus_add_node(%s, %s)", (info.socket_dir, info.port))

    def start(self, workers: int | None = None) -> dict[str, ServerInfo]:
        """Install Citus if needed, start every node, register the workers; idempotent."""
        with self._lock():
            names = self.workers()
            if not names:
                count = DEFAULT_WORKERS if workers is None else workers
                if not 1 <= count <= MAX_WORKERS:
                    raise ToolsdbError(f"--workers must be from 1 to {MAX_WORKERS}, got {count}")
                names = [f"worker{n}" for n in range(1, count + 1)]
                self._save(names)
            elif workers is not None and workers != len(names):
                raise ToolsdbError(
                    f"the cluster in {self.root} has {len(names)} worker(s): `toolsdb cluster add-worker` "
                    "adds one, `toolsdb cluster remove` starts over"
                )
            install_citus(self.bindir)
            coordinator = self._start_node(COORDINATOR)
            infos = {name: self._start_node(name) for name in names}
            self._register(coordinator, infos)
            return {COORDINATOR: coordinator, **infos}

    def add_worker(self, rebalance: bool = False, timeout: float = 600) -> str:
        """Start one more worker and register it; ``rebalance``: move shards onto it and wait."""
        with self._lock():
            names = self.workers()
            if not names:
                raise ToolsdbError(f"no cluster in {self.root}: `toolsdb cluster start` first")
            if len(names) >= MAX_WORKERS:
                raise ToolsdbError(f"the cluster has {len(names)} workers, the most `toolsdb cluster` runs")
            number = max(int(n.removeprefix("worker")) for n in names) + 1
            name = f"worker{number}"
            info = self._start_node(name)
            self._save([*names, name])
            coordinator = self.server(COORDINATOR).start(settings=self.settings(COORDINATOR))
            self._register(coordinator, {name: info})
        if rebalance:
            self.rebalance(timeout)
        return name

    def rebalance(self, timeout: float = 600) -> None:
        server = self.server(COORDINATOR)
        info = server.info()
        if info is None:
            raise ToolsdbError("the coordinator is not running: `toolsdb cluster start`")
        with psycopg.connect(server.conninfo(info), autocommit=True) as conn:
            conn.execute("select citus_rebalance_start()")
            deadline = time.monotonic() + timeout
            while True:
                state = conn.execute("select state, details from citus_rebalance_status()").fetchone()
                if state is None or state[0] in ("finished", "cancelled", "failed"):
                    break
                failing = [
                    t for t in (state[1] or {}).get("tasks", []) if t.get("retried", 0) >= 3 and t.get("message")
                ]
                if failing or time.monotonic() > deadline:
                    conn.execute("select citus_rebalance_stop()")
                    why = failing[0]["message"].strip().splitlines()[0] if failing else f"not done in {timeout:.0f} s"
                    raise ToolsdbError(f"the rebalance was stopped: {why} (citus_rebalance_status())")
                time.sleep(0.5)
            if state is not None and state[0] != "finished":
                raise ToolsdbError(f"the rebalance ended {state[0]} (citus_rebalance_status())")

    def stop(self) -> list[str]:
        """Stop every node, workers first; the names of those that ran."""
        with self._lock():
            stopped = [name for name in [*self.workers(), COORDINATOR] if self.server(name).stop()]
        return stopped

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def status(self) -> list[dict[str, Any]]:
        """Each node: name, role, port, socket, running, registered (active), shards."""
        rows: list[dict[str, Any]] = []
        registered: dict[tuple[str, int], tuple[bool, int]] = {}
        coordinator = self.server(COORDINATOR).info()
        if coordinator is not None:
            with psycopg.connect(self.server(COORDINATOR).conninfo(coordinator), autocommit=True) as conn:
                for name, port, active, shards in conn.execute(
                    "select n.nodename, n.nodeport, n.isactive,"
                    " (select count(*) from pg_catalog.pg_dist_placement as p where p.groupid = n.groupid)"
                    " from pg_catalog.pg_dist_node as n"
                ).fetchall():
                    registered[(name, port)] = (active, shards)
        for name in [COORDINATOR, *self.workers()]:
            info = self.server(name).info()
            found = registered.get((info.socket_dir, info.port)) if info else None
            rows.append(
                {
                    "node": name,
                    "role": "coordinator" if name == COORDINATOR else "worker",
                    "port": info.port if info else None,
                    "socket": info.socket_dir if info else None,
                    "running": info is not None,
                    "registered": found is not None and found[0],
                    "shards": found[1] if found else 0,
                }
            )
        return rows

    def url(self) -> str:
        server = self.server(COORDINATOR)
        info = server.info()
        if info is None:
            raise ToolsdbError("the coordinator is not running: `toolsdb cluster start`")
        return server.url(info)


# -- the command line -------------------------------------------------------------------------


def _cluster(folder: Path | None) -> Cluster:
    return Cluster(folder)


DIR_OPTION = click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"The cluster's folder (default: {HOME_ENV}, else .toolsdb/cluster).",
)


@click.group("cluster")
def cluster_group() -> None:
    """A local Citus cluster: a coordinator and workers (docs/citus.md).

    Built from the embedded PostgreSQL 18 with Citus installed into it
    (TOOLSDB_CITUS_DIR, else ../shared/citus). For development and tests.
    """


@cluster_group.command("start")
@click.option("--workers", type=int, help=f"Workers of a new cluster (default {DEFAULT_WORKERS}).")
@DIR_OPTION
def cluster_start(workers: int | None, folder: Path | None) -> None:
    """Start the coordinator and the workers (creating them the first time)."""
    cluster = _cluster(folder)
    infos = cluster.start(workers)
    click.echo(f"citus cluster running in {cluster.root}: coordinator and {len(infos) - 1} worker(s)")
    click.echo(f"DATABASE_URL={cluster.url()}")


@cluster_group.command("add-worker")
@click.option("--rebalance", is_flag=True, help="Move shards onto it (citus_rebalance_start) and wait.")
@DIR_OPTION
def cluster_add_worker(rebalance: bool, folder: Path | None) -> None:
    """Start one more worker and add it to the cluster."""
    name = _cluster(folder).add_worker(rebalance)
    click.echo(f"added {name}" + (" and rebalanced" if rebalance else ""))


@cluster_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@DIR_OPTION
def cluster_status(as_json: bool, folder: Path | None) -> None:
    """Each node: role, port, socket, running, registered with the coordinator, shards."""
    cluster = _cluster(folder)
    if not cluster.exists:
        raise ToolsdbError(f"no cluster in {cluster.root}: `toolsdb cluster start`")
    rows = cluster.status()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    print_table(
        ["node", "role", "port", "running", "registered", "shards", "socket"],
        [
            [r["node"], r["role"], r["port"] or "", r["running"], r["registered"], r["shards"], r["socket"] or ""]
            for r in rows
        ],
    )


@cluster_group.command("url")
@DIR_OPTION
def cluster_url(folder: Path | None) -> None:
    """Print the coordinator's URL (for DATABASE_URL)."""
    click.echo(_cluster(folder).url())


@cluster_group.command("stop")
@DIR_OPTION
def cluster_stop(folder: Path | None) -> None:
    """Stop every node, workers first."""
    stopped = _cluster(folder).stop()
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@cluster_group.command("remove")
@click.option("--force", is_flag=True, help="Required: the cluster's data is deleted.")
@DIR_OPTION
def cluster_remove(force: bool, folder: Path | None) -> None:
    """Stop every node and delete the cluster's folder (--force)."""
    cluster = _cluster(folder)
    if not force:
        raise ToolsdbError(f"this deletes {cluster.root} and its data: run again with --force")
    cluster.remove()
    click.echo(f"removed {cluster.root}")
