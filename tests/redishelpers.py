"""Helpers shared by the Redis toolkit's test modules."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable

from redis.cluster import RedisCluster

from toolsdb.redis.connection import reset_default_client

# Every variable the toolkit reads; the clean_redis_env fixture removes them.
REDIS_VARS = (
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_USERNAME",
    "REDIS_DB",
    "REDIS_SSL",
    "REDIS_CLUSTER",
    "REDIS_KEY_PREFIX",
)


def reset_defaults() -> None:
    """Forget the process-wide client (the managers built on it follow it)."""
    reset_default_client()


def all_keys(client) -> set[str]:
    """Every key of the server (of every primary of a cluster), without KEYS."""
    if isinstance(client, RedisCluster):
        names = client.scan_iter(count=1000, target_nodes=RedisCluster.PRIMARIES)
    else:
        names = client.scan_iter(count=1000)
    return {name.decode() for name in names}


def run_processes(target, per_process_args: list[tuple], timeout: float = 120) -> list:
    """Run ``target(*args, queue)`` in one spawned process per args tuple; their
    results (each process puts exactly one), in no particular order. A result
    ("error", text) fails the test with that text."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, queue), daemon=True) for args in per_process_args]
    for proc in procs:
        proc.start()
    results = []
    try:
        for _ in procs:
            results.append(queue.get(timeout=timeout))
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    errors = [r[1] for r in results if isinstance(r, tuple) and r and r[0] == "error"]
    assert not errors, "\n".join(errors)
    return results


def wait_until(condition: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    """Poll ``condition`` every 20 ms; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def run_together(count: int, call: Callable[[int], object]) -> tuple[list, list[BaseException]]:
    """Start ``count`` threads that call ``call(index)`` at the same moment; their
    results (in thread order) and the exceptions they raised."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = call(index)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a caller never returned"
    return results, errors
