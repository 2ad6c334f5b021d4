"""``toolsdb serve`` against the command hook, in the same run: `python -m tests.bench_serve`
(`--quick`: a short smoke run).

On a throwaway embedded server (Unix socket, superuser, fsync and synchronous
commit on, as shipped):

* hook round trip: ``toolsdb hook`` (a process per event, as Claude Code runs
  a command hook) against ``POST /hooks`` on one keep-alive connection paced at
  200 requests/s: p50 and p99 of each, and the ratio;
* events/s with 16 concurrent clients (16 processes, keep-alive, as fast as
  answers come), each event committed before its answer;
* the spool: the database stopped, 10,000 events POSTed by 16 clients (each
  fsynced before its answer), then the database started and a fresh serve
  started on the spool: seconds until the spool is replayed; the spool's bytes
  per event, and from that how long the database may stay down before the
  spool holds 1 GB at a given event rate.

Machines here are noisy and shared (2 cores, the clients run beside the
server): the figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from toolsdb import migrate as engine
from toolsdb.server import EmbeddedServer
from toolsdb.target import Target

from .conftest import clean_env, toolsdb_exe
from .servehelpers import Served, create_token, start_serve

RATE = 200  # requests/s of the paced latency run
CLIENTS = 16
SPOOLED = 10_000
GB = 1 << 30


def payload(session: str, n: int) -> dict:
    """A PostToolUse of a Bash call with a few lines of output (~1 kB of JSON)."""
    return {
        "session_id": session,
        "transcript_path": f"/home/dev/.claude/projects/-work-shop/{session}.jsonl",
        "cwd": "/nonexistent/work/shop",
        "permission_mode": "default",
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "pytest -q tests/test_cart.py", "description": "Run the cart tests"},
        "tool_response": {
            "stdout": "".join(f"tests/test_cart.py::test_case_{i} PASSED\n" for i in range(12)),
            "stderr": "",
            "interrupted": False,
        },
        "tool_use_id": f"toolu_01{n:022d}",
        "n": n,
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def command_hook(url: str, count: int) -> list[float]:
    """Seconds per ``toolsdb hook`` process, each storing one event."""
    env = clean_env()
    times = []
    for n in range(count):
        body = json.dumps(payload("bench-command", n)).encode()
        started = time.perf_counter()
        done = subprocess.run(
            [toolsdb_exe(), "hook", "--strict", "--database", url], input=body, capture_output=True, env=env
        )
        times.append(time.perf_counter() - started)
        assert done.returncode == 0, done.stderr
    return times


def paced(port: int, token: str, seconds: float, rate: int) -> list[float]:
    """Seconds per POST /hooks on one keep-alive connection, one request every 1/rate s."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    times = []
    start = time.perf_counter()
    for n in range(int(seconds * rate)):
        due = start + n / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        body = json.dumps(payload("bench-http", n))
        sent = time.perf_counter()
        conn.request("POST", "/hooks", body, headers)
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - sent)
        assert response.status == 200, response.status
    conn.close()
    return times


def _client(args: tuple[int, str, int, float, int]) -> int:
    port, token, client, seconds, limit = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [json.dumps(payload(f"bench-load-{client}", n)) for n in range(200)]
    sent = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and sent < limit:
        conn.request("POST", "/hooks", bodies[sent % len(bodies)], headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        sent += 1
    conn.close()
    return sent


def load(port: int, token: str, seconds: float, limit: int = 1 << 30) -> tuple[int, float]:
    """Events answered 200 by CLIENTS concurrent clients, and the seconds it took."""
    per_client = -(-limit // CLIENTS)
    with multiprocessing.get_context("fork").Pool(CLIENTS) as pool:
        started = time.perf_counter()
        counts = pool.map(_client, [(port, token, c, seconds, per_client) for c in range(CLIENTS)])
        return sum(counts), time.perf_counter() - started


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(serve_pid: int, server: EmbeddedServer) -> tuple[float, float]:
    """CPU seconds used so far by the serve process and by PostgreSQL's processes."""
    info = server.info()
    postmaster = info.pid if info else -1
    pg = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == postmaster:
                pg += _proc_cpu(int(entry.name))
    return _proc_cpu(serve_pid), pg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    commands = 20 if args.quick else 100
    paced_seconds = 2 if args.quick else 10
    load_seconds = 3 if args.quick else 10
    spooled = 1000 if args.quick else SPOOLED
    with tempfile.TemporaryDirectory(prefix="toolsdb-bench-serve-") as tmp:
        server = EmbeddedServer(root=Path(tmp) / "pg")
        server.start()
        served: Served | None = None
        try:
            engine.migrate(Target(server.conninfo(), "bench"))
            with psycopg.connect(server.conninfo(), autocommit=True) as su:
                su.execute("insert into toolsdb.users (username, email) values ('bench', 'bench@example.com')")
            url = server.url()
            token = create_token(url, "--user", "bench")
            spool = Path(tmp) / "spool"
            served = start_serve(url, spool)
            paced(served.port, token, 1, RATE)  # warm up
            print(f"hook round trip ({commands} command hooks; POST /hooks paced at {RATE}/s for {paced_seconds} s)")
            command = command_hook(url, commands)
            http_times = paced(served.port, token, paced_seconds, RATE)
            command += command_hook(url, commands // 2)
            print(f"  {'':<28} {'p50 ms':>9} {'p99 ms':>9}")
            for name, values in (("toolsdb hook (command)", command), ("POST /hooks (http)", http_times)):
                print(f"  {name:<28} {pct(values, 0.5) * 1000:9.2f} {pct(values, 0.99) * 1000:9.2f}")
            print(
                f"  http / command: p50 {pct(http_times, 0.5) / pct(command, 0.5):.3f}, "
                f"p99 {pct(http_times, 0.99) / pct(command, 0.99):.3f}"
            )
            for writers in (1, 2):
                loaded = start_serve(url, Path(tmp) / f"spool-{writers}", "--writers", str(writers))
                try:
                    before = cpu_seconds(loaded.process.pid, server)
                    events, seconds = load(loaded.port, token, load_seconds)
                    after = cpu_seconds(loaded.process.pid, server)
                finally:
                    loaded.stop()
                rate = events / seconds
                print(
                    f"throughput, {CLIENTS} concurrent clients, --writers {writers}: "
                    f"{rate:,.0f} events/s ({events} in {seconds:.1f} s); CPU per event: "
                    f"serve {(after[0] - before[0]) / events * 1e6:,.0f} us, "
                    f"PostgreSQL {(after[1] - before[1]) / events * 1e6:,.0f} us"
                )

            # The spool: database down, events spooled, then replayed.
            server.stop()
            events, seconds = load(served.port, token, 600, limit=spooled)
            print(f"spooling with the database down: {events / seconds:,.0f} events/s ({events} events, fsynced)")
            size = sum(f.stat().st_size for f in spool.glob("*.jsonl"))
            served.stop(signal.SIGTERM)
            served = None
            server.start()
            started = time.perf_counter()
            served = start_serve(url, spool)
            served.wait_spool_empty(timeout=900)
            replay = time.perf_counter() - started
            with psycopg.connect(server.conninfo(), autocommit=True) as conn:
                count = conn.execute(
                    "select count(*), count(distinct idempotency_key) from toolsdb.events "
                    "where session_id like 'bench-load-%%'"
                ).fetchone()
            print(f"replay of {events} spooled events: {replay:.1f} s ({events / replay:,.0f} events/s), rows {count}")
            per_event = size / events
            print(f"spool size: {per_event:,.0f} bytes/event")
            for rate in (1, 10, 100, 2000):
                hours = GB / per_event / rate / 3600
                print(f"  at {rate:>5} events/s the spool reaches 1 GB after {hours:,.1f} hours of database downtime")
        finally:
            if served is not None:
                served.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
