"""The hook's ctypes libpq connection (runner/toolsdb/libpq.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from .conftest import Pg, clean_env

SCRIPT = """
import time
from toolsdb.libpq import Connection, LibpqError

conn = Connection({"host": HOST, "port": PORT, "user": "postgres", "dbname": DBNAME})
conn.execute("do $$ begin raise notice 'a notice'; raise warning 'a warning'; end $$")
conn.execute("begin; set local idle_in_transaction_session_timeout = 100")
time.sleep(0.8)  # the server ends the connection while the client is idle in its transaction
try:
    conn.execute("select 1")
except LibpqError as exc:
    print("error:", str(exc).splitlines()[0] if str(exc) else "")
conn.close()
print("notices:", conn.notices)
"""


def test_notices_and_a_fatal_while_idle_are_kept_not_printed_on_stderr(pg: Pg, db: str) -> None:
    """libpq prints notices, warnings and a FATAL that arrives while the client
    is idle to stderr through its default notice processor; the hook's stderr
    is shown by Claude Code and must stay empty (CI once saw the hook print
    "FATAL: terminating connection due to idle-in-transaction timeout"), so
    the connection keeps them in ``notices`` instead."""
    code = f"HOST, PORT, DBNAME = {pg.host!r}, {str(pg.port)!r}, {db!r}\n" + textwrap.dedent(SCRIPT)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    assert "NOTICE:  a notice" in done.stdout and "WARNING:  a warning" in done.stdout, done.stdout
    assert "error:" in done.stdout, "the statement after the server ended the connection fails"
