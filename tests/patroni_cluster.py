"""A three-node Patroni cluster with etcd on loopback, for the high-availability
tests (tests/test_patroni.py) and by hand:

    python -m tests.patroni_cluster [--seconds N]

starts it (Debian's ``patroni`` 3.0 and ``etcd-server`` 3.4, PostgreSQL 15
from Debian's ``postgresql-15``), prints the multi-host URL, and stops it after
N seconds (default 600) or on Ctrl-C. Everything runs as an unprivileged user
(the embedded server's ``toolsdb-pg`` when run as root), on free ports of
127.0.0.1, in one temporary folder removed at the end.

The cluster uses synchronous replication (``synchronous_mode: true``): a
commit is acknowledged once one standby has it, and Patroni promotes only
that standby, so an acknowledged write survives a switchover and a leader
killed with SIGKILL. Authentication is ``trust`` on loopback (a test
cluster); the settings that matter are in ``node_config()``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

SCOPE = "toolsdb"
DBNAME = "toolsdb"
SUPERUSER = "postgres"
BINDIR = Path(os.environ.get("TOOLSDB_PATRONI_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
TTL = 20  # Patroni's smallest leader lease: a killed leader is replaced after at most this
LOOP_WAIT = 2
RETRY_TIMEOUT = 5


def missing() -> str | None:
    """What this machine lacks for a cluster, or None."""
    for tool in ("patroni", "etcd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages patroni, etcd-server)"
    if not (BINDIR / "postgres").exists():
        return f"no PostgreSQL server in {BINDIR} (Debian package postgresql-15)"
    return None


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def unprivileged_user():
    """The user to run as: ourselves, or as root the embedded server's user."""
    if os.geteuid() != 0:
        return None
    from toolsdb.server import EmbeddedServer

    return EmbeddedServer(root=Path(tempfile.gettempdir()) / "toolsdb-patroni-user")._server_user()


@dataclass
class Node:
    name: str
    pg_port: int
    rest_port: int
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def rest(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 3) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.rest_port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw or b"{}")
        except ValueError:
            return status, {"text": raw.decode(errors="replace")}

    def postmaster_pid(self) -> int | None:
        """The running postmaster of this node (its pid file may be stale after a kill)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.data_dir).encode() in cmdline else None


@dataclass
class Cluster:
    folder: Path
    nodes: list[Node]
    etcd_port: int
    user: object = None
    etcd: subprocess.Popen | None = None
    events: list[str] = field(default_factory=list)

    # -- addresses ---------------------------------------------------------------

    def url(self, dbname: str = DBNAME, user: str = SUPERUSER) -> str:
        """The multi-host URL: libpq tries each node and keeps the one that takes writes."""
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return f"postgresql://{user}@{hosts}/{dbname}?target_session_attrs=read-write&connect_timeout=2"

    def node_url(self, node: Node, dbname: str = DBNAME) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{node.pg_port}/{dbname}?connect_timeout=2"

    # -- state -------------------------------------------------------------------

    def members(self) -> list[dict]:
        for node in self.nodes:
            try:
                status, body = node.rest("/cluster")
            except OSError:
                continue
            if status == 200 and body.get("members"):
                return body["members"]
        return []

    def leader(self) -> Node | None:
        names = [m["name"] for m in self.members() if m.get("role") == "leader" and m.get("state") == "running"]
        return next((n for n in self.nodes if n.name in names), None)

    def sync_standby(self) -> Node | None:
        names = [m["name"] for m in self.members() if m.get("role") == "sync_standby"]
        return next((n for n in self.nodes if n.name in names), None)

    def wait_healthy(self, replicas: int = 2, timeout: float = 180) -> Node:
        """Until a leader runs, ``replicas`` standbys stream and one is synchronous."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            members = self.members()
            leader = self.leader()
            streaming = [
                m
                for m in members
                if m.get("role") in ("replica", "sync_standby") and m.get("state") in ("streaming", "running")
            ]
            if leader is not None and len(streaming) >= replicas and self.sync_standby() is not None:
                return leader
            time.sleep(0.5)
        raise RuntimeError(f"the cluster did not become healthy in {timeout:.0f} s: {self.members()}")

    # -- lifecycle -----------------------------------------------------------------

    def _popen(self, argv: list[str], log: Path) -> subprocess.Popen:
        kwargs: dict = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PATRONI"))}
        env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin"  # Debian's python3 and its patroni modules
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            cwd=str(self.folder),
            env=env,
            start_new_session=True,
            **kwargs,
        )

    def start_etcd(self) -> None:
        peer = free_ports(1)[0]
        data = self.folder / "etcd"
        data.mkdir()
        self._own(data)
        self.etcd = self._popen(
            [
                "etcd", "--name", "etcd0", "--data-dir", str(data),
                "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"etcd0=http://127.0.0.1:{peer}",
            ],
            self.folder / "etcd.log",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2) as response:
                    if b"true" in response.read():
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"etcd did not start: {(self.folder / 'etcd.log').read_text()[-2000:]}")

    def node_config(self, node: Node) -> str:
        config = {
            "scope": SCOPE,
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{node.rest_port}", "connect_address": f"127.0.0.1:{node.rest_port}"},
            "etcd3": {"hosts": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL,
                    "loop_wait": LOOP_WAIT,
                    "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_log_hints": "on",
                            "max_connections": 100,
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "data-checksums"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": str(BINDIR),
                "pgpass": str(node.folder / "pgpass"),
                "authentication": {
                    "superuser": {"username": SUPERUSER, "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                    "rewind": {"username": "rewinder", "password": "rewinder"},
                },
                "parameters": {"unix_socket_directories": str(node.folder)},
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
            },
        }
        return json.dumps(config, indent=1)  # JSON is YAML

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def start_node(self, node: Node) -> None:
        node.folder.mkdir(exist_ok=True)
        self._own(node.folder)
        config = node.folder / "patroni.yml"
        config.write_text(self.node_config(node))
        self._own(config)
        node.process = self._popen(["patroni", str(config)], node.folder / "patroni.log")

    def start(self) -> None:
        self.folder.chmod(0o755)
        self._own(self.folder)
        self.start_etcd()
        self.start_node(self.nodes[0])
        leader = self.wait_leader(120)
        for node in self.nodes[1:]:
            self.start_node(node)
        self.wait_healthy()
        with psycopg.connect(self.node_url(leader, "postgres"), autocommit=True) as conn:
            conn.execute(f"create database {DBNAME}")

    def wait_leader(self, timeout: float) -> Node:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None and node is self.nodes[0]:
                    raise RuntimeError(f"patroni {node.name} exited: {self.log(node)[-3000:]}")
            time.sleep(0.5)
        raise RuntimeError(f"no leader in {timeout:.0f} s: {self.members()} {self.log(self.nodes[0])[-3000:]}")

    def log(self, node: Node) -> str:
        path = node.folder / "patroni.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def switchover(self, timeout: float = 120) -> tuple[Node, Node]:
        """A planned switchover to the synchronous standby; returns (old, new) leaders once it is done."""
        old = self.leader()
        candidate = self.sync_standby()
        assert old is not None and candidate is not None, self.members()
        status, body = old.rest("/switchover", "POST", {"leader": old.name, "candidate": candidate.name}, timeout=60)
        assert status == 200, (status, body)
        new = self.wait_new_leader(old, timeout)
        self.events.append(f"switchover {old.name} -> {new.name}")
        return old, new

    def kill_leader(self) -> Node:
        """SIGKILL the leader's Patroni and its PostgreSQL (the machine died)."""
        old = self.leader()
        assert old is not None
        postmaster = old.postmaster_pid()
        assert old.process is not None
        os.killpg(old.process.pid, signal.SIGKILL)
        if postmaster is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(postmaster, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
        old.process.wait(10)
        self.events.append(f"killed {old.name}")
        return old

    def wait_new_leader(self, old: Node, timeout: float = 120) -> Node:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader is not old:
                return leader
            time.sleep(0.2)
        raise RuntimeError(f"no new leader in {timeout:.0f} s: {self.members()}")

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait(10)
            postmaster = node.postmaster_pid()
            if postmaster is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(postmaster, signal.SIGKILL)
        if self.etcd is not None and self.etcd.poll() is None:
            self.etcd.terminate()
            try:
                self.etcd.wait(20)
            except subprocess.TimeoutExpired:
                self.etcd.kill()
                self.etcd.wait(10)


def create(folder: Path | None = None, nodes: int = 3) -> Cluster:
    folder = folder or Path(tempfile.mkdtemp(prefix="patroni-"))
    ports = free_ports(2 * nodes + 1)
    members = [Node(f"node{n + 1}", ports[2 * n], ports[2 * n + 1], folder / f"node{n + 1}") for n in range(nodes)]
    return Cluster(folder, members, ports[-1], unprivileged_user())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600, help="stop after this long (default 600)")
    args = parser.parse_args()
    problem = missing()
    if problem:
        print(f"patroni_cluster: {problem}")
        return 1
    cluster = create()
    try:
        cluster.start()
        print(f"leader {cluster.leader().name}; DATABASE_URL={cluster.url()}", flush=True)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)
        print("patroni_cluster: stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
