"""``toolsdb migrate`` with nothing to do, without click, psycopg or yoyo.

A migrate that finds the database as the last migrate of the same tree left
it only applies bootstrap and re-runs the actions of repeatable/
(treestate.py). Done over the hook's libpq, that costs a process start and a
few round trips instead of a few hundred milliseconds of imports. The
launcher sends a plain ``toolsdb migrate [--database URL]`` here; whenever
anything is not so (another option, statement logging on, a database named
by PG*/DB_* variables, no running embedded server, a pooler to detect that
answers "transaction", a changed tree, an error of any kind), this returns
None having changed nothing, and the full command line runs the migrate,
which says what is wrong in its usual words.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from . import paths, pooler
from .libpq import LIBPQ_TARGET_VARS, Connection, LibpqError, redact
from .treestate import (
    CITUS_PRESENT,
    LOCK_KEY,
    MIGRATION_SCHEMA,
    OWNER,
    TREE_RECORDED,
    TREE_UP_TO_DATE,
    lock_timeout,
    tree,
)

# Variables that send the full command line: statement logging (it echoes
# each statement), the alias of DATABASE_URL (checked against it there), the
# DB_*/POSTGRES_* families (checked there).
FULL_PATH_VARS = ("DB_LOG_QUERIES", "AUTOMAGIK_LOG_SQL", "TOOLS_DB_URL")
ALIAS_PREFIXES = ("DB_", "POSTGRES_")


def parse(argv: list[str]) -> str | bool | None:
    """The --database of ``[-d URL] migrate [-d URL]``: the URL, None when not
    given, False when ``argv`` is anything else."""
    database: str | None = None
    seen = False
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=")
        if arg == "migrate" and not seen:
            seen = True
        elif name in ("-d", "--database") and database is None:
            if eq and name == "--database":
                database = inline
            elif not eq and args:
                database = args.pop(0)
            else:
                return False
        else:
            return False
    return database if seen else False


def _target(database: str | None) -> tuple[str, str] | None:
    """(conninfo, how it is described) as the full command line would pick
    and show it, or None when that takes more than this module does."""
    env = os.environ
    if any(env.get(v, "").strip() for v in FULL_PATH_VARS):
        return None
    direct = pooler.direct_url()
    url, source = (database, "--database") if database is not None else (env.get("DATABASE_URL", "").strip(), "")
    if database is None and url:
        source = "DATABASE_URL"
    if direct is not None and source != "--database":
        return direct, f"{redact(direct)} (from {pooler.DIRECT_URL_ENV})"
    if source:
        if not url.strip() or pooler.configured() == pooler.TRANSACTION:
            return None
        if pooler.configured() == "auto" and _behind_pooler(url):
            return None
        return url.strip(), f"{redact(url.strip())} (from {source})"
    if any(env.get(v) for v in LIBPQ_TARGET_VARS) or any(
        k.startswith(ALIAS_PREFIXES) and v.strip() for k, v in env.items()
    ):
        return None
    from .server import EmbeddedServer
    from .serverinfo import locate_root

    found = locate_root()
    if found is None:
        return None
    server = EmbeddedServer(root=found[0])
    info = server.info() if server.initialized else None
    if info is None or server.standby:
        return None
    return server.conninfo(info), f"{server.url(info)} (embedded server in {server.root})"


def _behind_pooler(conninfo: str) -> bool:
    """pooler.py's detection over two libpq connections."""
    params = {"dbname": conninfo, "connect_timeout": "5"}
    first = Connection(params)
    try:
        second = Connection(params)
        try:
            return pooler.multiplexed(
                lambda: int(first.execute(pooler.BACKEND_PID) or 0),
                lambda: int(second.execute(pooler.BACKEND_PID) or 0),
            )
        finally:
            second.close()
    finally:
        first.close()


def _no_op(conn: Connection) -> bool:
    """The no-op of treestate.py on ``conn``: True when done (committed)."""
    conn.execute(f"set search_path = {MIGRATION_SCHEMA}")
    if conn.execute(CITUS_PRESENT) == "t":
        return False
    conn.execute(f"select pg_catalog.pg_advisory_lock({LOCK_KEY})")
    if conn.execute(TREE_RECORDED) != "t":
        return False
    current = tree()
    conn.execute("begin read only")
    actions = conn.execute(
        TREE_UP_TO_DATE.format(tree="$1", ids="$2"), [current.digest, "{" + ",".join(current.migration_ids) + "}"]
    )
    conn.execute("commit")
    if actions is None:
        return False
    conn.execute("begin")
    conn.execute(paths.bootstrap_file().read_text(encoding="utf-8"))
    conn.execute("commit")
    if conn.execute(OWNER) != "t":
        return False
    # The recorded actions run only as toolsdb_owner, which owns the record.
    conn.execute("set role toolsdb_owner")
    conn.execute(f"begin; set local lock_timeout = '{lock_timeout()}'")
    conn.execute(actions)
    conn.execute("commit")
    return True


def _attempt(database: str | None, outcome: list[str | None]) -> None:
    """The worker thread's body: append what to print when done, else None."""
    try:
        target = _target(database)
        if target is None:
            outcome.append(None)
            return
        conn = Connection({"dbname": target[0], "connect_timeout": "10"})
    except Exception:  # any doubt goes to the full command line, which names it
        outcome.append(None)
        return
    try:
        done = _no_op(conn)
    except (LibpqError, OSError):
        done = False
    finally:
        conn.close()  # ends the session: the advisory lock and any open transaction go with it
    outcome.append(f"nothing to migrate: {target[1]} is up to date" if done else None)


class _Stopped(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def fast_main(argv: list[str]) -> int | None:
    """0 when the migrate is done here; None (nothing changed) for the full command line.

    The libpq calls block in C, where a signal cannot stop them (waiting for
    the migration lock or a table lock can take minutes): they run in a daemon
    thread while this one waits, so Ctrl-C, SIGTERM and SIGHUP end the process
    at once, with the full command's words and exit codes ("Aborted.", 1;
    "Terminated.", 128 + the signal). The connection closes with the process:
    the server rolls back its open transaction and releases the lock.
    """
    database = parse(argv)
    if database is False:
        return None
    outcome: list[str | None] = []
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        worker = threading.Thread(target=_attempt, args=(database, outcome), daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
    except KeyboardInterrupt:
        print("Aborted.", file=sys.stderr, flush=True)
        os._exit(1)
    except _Stopped as exc:
        print("Terminated.", file=sys.stderr, flush=True)
        os._exit(128 + exc.signum)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not outcome or outcome[0] is None:
        return None
    print(outcome[0], flush=True)
    return 0
