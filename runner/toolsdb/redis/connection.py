"""The one place that builds the Redis client, from REDIS_URL or the
REDIS_HOST/PORT/PASSWORD/DB/SSL variables, and the toolkit's errors."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import redis.exceptions
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from ..errors import ToolsdbError

DEFAULT_PREFIX = "toolsdb:"
# Two quick retries on a dropped connection, then a clear error (redis-py's
# default of ten retries makes an unreachable server take seconds to report).
RETRIES = 2
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Characters that would make the prefix a hash tag or a SCAN glob.
_PREFIX_FORBIDDEN = set("{}*?[]\\")

Client = redis.Redis | RedisCluster


class RedisConfigError(ToolsdbError, ValueError):
    """A REDIS_* setting (or an argument standing for one) is not valid."""


class RedisUnavailable(ToolsdbError, redis.exceptions.ConnectionError):
    """Redis could not be reached, or refused the connection."""


@dataclass(frozen=True)
class RedisSettings:
    """What the client is built from; ``from_env`` reads and checks the variables."""

    url: str | None = None
    host: str = "localhost"
    port: int = 6379
    username: str | None = None
    password: str | None = None
    db: int = 0
    ssl: bool = False
    cluster: bool | None = None  # None: ask the server
    prefix: str = DEFAULT_PREFIX
    socket_timeout: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, url: str | None = None) -> RedisSettings:
        env = os.environ if env is None else env
        url = url if url is not None else (env.get("REDIS_URL") or None)
        if url is not None:
            check_url(url)
        port = _integer(env, "REDIS_PORT", 6379, 1, 65535)
        db = _integer(env, "REDIS_DB", 0, 0, None)
        ssl = _boolean(env, "REDIS_SSL", False)
        cluster_word = env.get("REDIS_CLUSTER", "auto").strip().lower() or "auto"
        if cluster_word == "auto":
            cluster = None
        elif cluster_word in _TRUE or cluster_word in _FALSE:
            cluster = cluster_word in _TRUE
        else:
            raise RedisConfigError(f"REDIS_CLUSTER must be auto, true or false, got {env['REDIS_CLUSTER']!r}")
        prefix = check_prefix(env.get("REDIS_KEY_PREFIX", DEFAULT_PREFIX), "REDIS_KEY_PREFIX")
        host = env.get("REDIS_HOST", "").strip() or "localhost"
        settings = cls(
            url=url,
            host=host,
            port=port,
            username=env.get("REDIS_USERNAME") or None,
            password=env.get("REDIS_PASSWORD") or None,
            db=db,
            ssl=ssl,
            cluster=cluster,
            prefix=prefix,
        )
        if settings.cluster and settings.effective_db() != 0:
            raise RedisConfigError(
                f"a Redis Cluster has only database 0, but REDIS_DB/REDIS_URL asks for {settings.effective_db()}"
            )
        return settings

    def effective_db(self) -> int:
        if self.url is None:
            return self.db
        return int(redis.connection.parse_url(self.url).get("db", 0) or 0)

    def where(self) -> str:
        """host:port (or the socket path) for messages, never the password."""
        if self.url is None:
            return f"{self.host}:{self.port}"
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"

    def _common(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), RETRIES),
        }

    def _build(self, cls: type[redis.Redis] | type[RedisCluster], **options: Any) -> Client:
        """A ``cls`` client from the URL, else from host, port, credentials and TLS."""
        options = {**self._common(), **options}
        if self.url is not None:
            return cls.from_url(self.url, **options)
        return cls(
            host=self.host, port=self.port, username=self.username, password=self.password, ssl=self.ssl, **options
        )

    def _standalone(self) -> redis.Redis:
        database = {} if self.url is not None else {"db": self.db}  # a URL names its own database
        return self._build(redis.Redis, health_check_interval=30, **database)

    def _cluster(self) -> RedisCluster:
        return self._build(RedisCluster)

    def connect(self) -> Client:
        """A client that has answered PING; a RedisCluster client when the
        server is in cluster mode (asked with INFO cluster unless set)."""
        cluster = self.cluster
        only_db0 = RedisConfigError(
            f"{self.where()} is a Redis Cluster, which has only database 0; the settings ask for "
            f"database {self.effective_db()}"
        )
        with translate_errors(self.where()):
            if cluster is not True:
                client = self._standalone()
                try:
                    enabled = client.info("cluster").get("cluster_enabled", 0)
                except redis.exceptions.ResponseError as exc:
                    client.close()
                    if "SELECT is not allowed in cluster mode" in str(exc):
                        raise only_db0 from None
                    raise
                if not (cluster is None and int(enabled) == 1):
                    return client
                client.close()
                if self.effective_db() != 0:
                    raise only_db0
            try:
                client = self._cluster()
            except redis.exceptions.RedisClusterException as exc:
                if "Cluster mode is not enabled" in str(exc):
                    raise RedisConfigError(
                        f"REDIS_CLUSTER=true, but {self.where()} is not a Redis Cluster node (cluster mode is off)"
                    ) from None
                raise
            client.ping()
            return client


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise RedisConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {parts.scheme!r}://...")
    try:
        parts.port  # noqa: B018 (raises ValueError on a bad port)
        redis.connection.parse_url(url)
    except ValueError as exc:
        raise RedisConfigError(f"REDIS_URL is not a valid Redis URL: {exc}") from None
    return url


def check_prefix(prefix: str, what: str = "prefix") -> str:
    bad = sorted(_PREFIX_FORBIDDEN.intersection(prefix))
    if bad:
        raise RedisConfigError(f"{what} must not contain {' '.join(bad)} (hash tag or glob characters), got {prefix!r}")
    return prefix


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise RedisConfigError(f"{name} must be an integer {bound}, got {raw!r}")
    return value


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise RedisConfigError(f"{name} must be true or false (or 1/0, yes/no, on/off), got {env[name]!r}")


_CONNECTION_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
)


_CAUGHT = (*_CONNECTION_ERRORS, redis.exceptions.RedisClusterException)


def _is_connection_error(exc: BaseException) -> bool:
    """A lost or refused connection: redis-py's own errors, or a cluster error
    caused by one ("Redis Cluster cannot be connected", all nodes down)."""
    if isinstance(exc, RedisUnavailable):
        return False
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    if isinstance(exc, redis.exceptions.RedisClusterException):
        if str(exc).startswith("Redis Cluster cannot be connected"):
            return True
        cause = exc.__cause__ or exc.__context__
        return cause is not None and isinstance(cause, _CONNECTION_ERRORS)
    return False


class translate_errors:
    """Turn redis-py's connection and timeout errors into one-line RedisUnavailable.
    ``where`` is a "host:port" text or a client (asked only when an error happens)."""

    __slots__ = ("where",)

    def __init__(self, where: str | Client) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is not None and _is_connection_error(exc):
            where = self.where if isinstance(self.where, str) else client_where(self.where)
            raise _unavailable(where, exc) from exc
        return False


def _unavailable(where: str, exc: BaseException) -> RedisUnavailable:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return RedisUnavailable(f"cannot use Redis at {where}: {reason}")


F = TypeVar("F", bound=Callable[..., Any])


def client_where(client: Client) -> str:
    """host:port of a client, for error messages."""
    if isinstance(client, RedisCluster):
        nodes = client.get_nodes()
        return f"cluster {nodes[0].name}" if nodes else "cluster"
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def translated(method: F) -> F:
    """A toolkit method whose connection errors become RedisUnavailable."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _CAUGHT as exc:
            if not _is_connection_error(exc):
                raise
            raise _unavailable(client_where(self.client), exc) from exc

    return wrapper  # type: ignore[return-value]


_default: Client | None = None
_default_lock = threading.Lock()


def get_redis_client(url: str | None = None, *, fresh: bool = False) -> Client:
    """The process's Redis client, built once from REDIS_URL or REDIS_HOST/...
    (``url`` overrides REDIS_URL; ``fresh=True`` builds a new one and does not
    keep it)."""
    global _default
    if fresh or url is not None:
        return RedisSettings.from_env(url=url).connect()
    with _default_lock:
        if _default is None:
            _default = RedisSettings.from_env().connect()
        return _default


M = TypeVar("M")


def on_default_client(factory: Callable[[Client], M]) -> Callable[[], M]:
    """A getter of ``factory(get_redis_client())``, built once per process
    client: after reset_default_client() the next call builds it again."""
    built: list = [None, None]  # the client, what factory made of it
    lock = threading.Lock()

    def get() -> M:
        client = get_redis_client()
        with lock:
            if built[0] is not client:
                built[:] = [client, factory(client)]
            return built[1]

    return get


def reset_default_client() -> None:
    """Forget the process's client (after a fork, or to re-read the environment)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = None
