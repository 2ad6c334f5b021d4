"""``toolsdb hook``: store one agent hook payload, fast, and never get in the way.

Claude Code runs a hook command on every event (every tool use included) and
writes the event as one JSON object on its stdin. This command sends that
JSON, unchanged, with the context only the hook process knows (git branch of
the working directory, terminal, TOOLSDB_USER_ID / TOOLSDB_AGENT_ID /
TOOLSDB_PROJECT_ID) to ``toolsdb.hook_ingest()``, which stores the raw event
and updates the session in one statement. The rules live in that function.

It runs inside the agent's loop, so it imports only the standard library and
talks to libpq through ctypes (``toolsdb.libpq``), prints nothing on stdout,
and on any failure appends one line (with the payload, so nothing is lost) to
its log file and exits 0. With ``--strict`` a failure exits 1 (never 2, which
would block Claude's tool call).

One time budget (``TOOLSDB_HOOK_TIMEOUT``, default 2 s) covers reading stdin,
the branch lookup, connecting and storing: the work runs in a thread the main
thread waits for with the budget's deadline, so a server or proxy that stalls
anywhere costs the budget, never the event. The server gets the rest of the
budget as ``set local`` timeouts of the event's transaction.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import select
import stat
import sys
import threading
import time
from pathlib import Path

from .libpq import LIBPQ_TARGET_VARS, Connection, LibpqError
from .serverinfo import default_root, holds_server, no_server_message, read_server_info

INGEST_SQL = "select toolsdb.hook_ingest($1::jsonb, $2::jsonb)"
TIMEOUT_ENV = "TOOLSDB_HOOK_TIMEOUT"
# Its name when it bounded the connection only (whole seconds): still read,
# as the whole budget, when TOOLSDB_HOOK_TIMEOUT is not set.
OLD_TIMEOUT_ENV = "TOOLSDB_HOOK_CONNECT_TIMEOUT"
DEFAULT_BUDGET = 2.0
MAX_BUDGET = 600.0
# Stdin beyond this is not a hook payload (stdin from /dev/zero, say): reading
# stops there, and the log keeps the first LOGGED_PREFIX bytes of it.
MAX_STDIN = 64 << 20
LOGGED_PREFIX = 64 << 10
LOG_ENV = "TOOLSDB_HOOK_LOG"
# jsonb refuses \u0000 (22P05) and lone surrogates (22P02) that JSON allows.
# and numbers beyond numeric's range, such as 1e999999 (22003).
JSONB_REFUSALS = ("22P05", "22P02", "22003")
# Python's int() refuses more digits than this by default.
MAX_INT_DIGITS = 4000


def _number(text: str) -> object:
    """A JSON number as Python holds it, or its text where it cannot (1e999999,
    a 5,000-digit integer): the payload is read, and stored if need be, either way."""
    if any(c in text for c in ".eE"):
        value = float(text)
        return value if math.isfinite(value) else text
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else text


def parse(raw: str) -> object:
    """The payload as JSON, or None when it nests deeper than Python's parser
    goes (PostgreSQL reads much deeper: the raw text is sent as it is)."""
    try:
        return json.loads(raw, parse_float=_number, parse_int=_number, parse_constant=str)
    except RecursionError:
        return None


# Environment variables that describe the terminal, kept in terminal_info.
TERMINAL_VARS = (
    "TERM",
    "TERM_PROGRAM",
    "TERM_PROGRAM_VERSION",
    "COLORTERM",
    "TMUX",
    "TMUX_PANE",
    "STY",
    "WINDOWID",
    "KITTY_WINDOW_ID",
    "WT_SESSION",
    "ALACRITTY_WINDOW_ID",
    "SSH_TTY",
)
TERM_PROGRAMS = {
    "vscode": "vscode",
    "iTerm.app": "iterm",
    "Apple_Terminal": "apple_terminal",
    "WezTerm": "wezterm",
    "ghostty": "ghostty",
    "Hyper": "hyper",
    "tmux": "tmux",
}


class HookError(Exception):
    """Why a payload could not be stored (one line)."""


def budget_seconds(env: os._Environ[str] | dict[str, str]) -> float:
    """``TOOLSDB_HOOK_TIMEOUT`` (else ``TOOLSDB_HOOK_CONNECT_TIMEOUT``) in seconds, decimals allowed; else 2."""
    for name in (TIMEOUT_ENV, OLD_TIMEOUT_ENV):
        text = env.get(name)
        if not text:
            continue
        value = text.strip()
        if re.fullmatch(r"\d+\.?\d*|\.\d+", value) and 0 < float(value) <= MAX_BUDGET:
            return float(value)
        raise HookError(
            f"{name} must be a number of seconds above 0 and at most {MAX_BUDGET:g}, such as 2 or 0.5, not {text!r}"
        )
    return DEFAULT_BUDGET


class Budget:
    """The hook's one deadline, and what the hook is doing (named in the log when time runs out)."""

    def __init__(self, seconds: float, start: float | None = None) -> None:
        self.seconds = seconds
        self.deadline = (time.monotonic() if start is None else start) + seconds
        self.doing = "starting"
        self.stored = False  # the commit came back: the event is in
        # The live transcript import (after the event is stored): problems to
        # log (never a failure of the event), and the files not imported to the
        # end when the budget ran out (handed to a background import).
        self.notes: list[str] = []
        self.transcripts_left: list[str] = []

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def milliseconds(self) -> int:
        """What is left in whole milliseconds, at least 1 (0 would tell the server "no timeout")."""
        return max(1, int(self.left() * 1000))

    def exhausted(self) -> str:
        return f"no answer within the {self.seconds:g} s budget ({TIMEOUT_ENV}) while {self.doing}"

    def stdin_open(self, size: int) -> str:
        what = f"after {size} bytes that are not a complete JSON object" if size else "with nothing written"
        return f"stdin was still open at the end of the {self.seconds:g} s budget ({TIMEOUT_ENV}), {what}"


def _is_object(data: bytes) -> bool:
    try:
        return isinstance(parse(data.decode("utf-8", errors="replace")), dict)
    except ValueError:
        return False


def read_stdin(fd: int, deadline: float) -> tuple[bytes, str | None]:
    """What the agent wrote on ``fd``, and None when it is all there: up to end
    of file or, when the writer leaves the pipe open, up to a pause after a
    complete JSON object. Else why not: "open" when the deadline comes first,
    "too large" past MAX_STDIN bytes (then the first MAX_STDIN + 1)."""
    data = bytearray()
    while True:
        try:
            if not select.select([fd], [], [], 0)[0]:
                # Nothing more for now: a whole JSON object need not wait for end of file.
                if data.rstrip().endswith(b"}") and _is_object(data):
                    return bytes(data), None
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    return bytes(data), "open"
            elif time.monotonic() >= deadline:  # it keeps coming
                return bytes(data), "open"
            chunk = os.read(fd, min(1 << 16, MAX_STDIN + 1 - len(data)))
        except (OSError, ValueError):  # no stdin at all (a closed descriptor)
            return bytes(data), None
        if not chunk:
            return bytes(data), None
        data += chunk
        if len(data) > MAX_STDIN:
            return bytes(data), "too large"


def default_log_file() -> Path:
    """``TOOLSDB_HOOK_LOG``, else ``$XDG_STATE_HOME/toolsdb/hook.log`` (~/.local/state)."""
    if os.environ.get(LOG_ENV):
        return Path(os.environ[LOG_ENV])
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "toolsdb" / "hook.log"


def _small_file(path: Path) -> str | None:
    """The text of ``path`` if it is a regular file of at most 4 kB, else None:
    a FIFO, a device or a huge file where .git/HEAD should be is never read."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > 4096:
            return None
        with open(path, "rb") as handle:
            return handle.read(4096).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def git_branch(start: str | None) -> str | None:
    """The branch checked out in ``start`` (read from .git/HEAD, no git process), or a short sha."""
    if not start or "\x00" in start:
        return None
    try:
        path = Path(start)
        folders = (path, *path.parents)
    except (ValueError, UnicodeError):  # a lone surrogate, say: no such folder
        return None
    for folder in folders:
        dotgit = folder / ".git"
        try:
            if dotgit.is_file():  # a worktree or submodule: "gitdir: <path>"
                pointer = _small_file(dotgit)
                if pointer is None:
                    continue
                target = pointer.strip().removeprefix("gitdir:").strip()
                dotgit = (folder / target).resolve()
            head = _small_file(dotgit / "HEAD")
        except (OSError, ValueError, UnicodeError):
            continue
        if head is None:
            continue
        head = head.strip()
        if head.startswith("ref:"):
            return head.removeprefix("ref:").strip().removeprefix("refs/heads/")[:255] or None
        return head[:12] or None
    return None


def terminal(env: os._Environ[str] | dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """Terminal type (tmux, screen, vscode, iterm, ...) and the variables describing it."""
    info = {name.lower(): env[name] for name in TERMINAL_VARS if env.get(name)}
    if env.get("TMUX"):
        kind = "tmux"
    elif env.get("STY"):
        kind = "screen"
    elif env.get("TERM_PROGRAM"):
        kind = TERM_PROGRAMS.get(env["TERM_PROGRAM"], env["TERM_PROGRAM"])
    elif env.get("KITTY_WINDOW_ID"):
        kind = "kitty"
    elif env.get("WT_SESSION"):
        kind = "windows_terminal"
    elif env.get("ALACRITTY_WINDOW_ID"):
        kind = "alacritty"
    else:
        kind = env.get("TERM") or ""
    kind = re.sub(r"[^a-z0-9_.-]", "_", kind.lower()).lstrip("0123456789_.-")[:50]
    return (kind or None), info


def context(payload: dict, env: os._Environ[str] | dict[str, str]) -> dict:
    """What the hook process adds to the payload: branch, terminal, and configured ids."""
    cwd = payload.get("cwd") if isinstance(payload.get("cwd"), str) else None
    kind, info = terminal(env)
    ctx: dict = {"git_branch": git_branch(cwd or os.getcwd()), "terminal_type": kind, "terminal_info": info}
    for name in ("user_id", "agent_id", "project_id"):
        value = env.get(f"TOOLSDB_{name.upper()}")
        if value:
            ctx[name] = value
    return {k: v for k, v in ctx.items() if v is not None}


def connection_params(database: str | None, budget: Budget | None = None) -> dict[str, str]:
    """libpq parameters: --database, DATABASE_URL, PG* variables, else the running embedded server.

    No ``options`` start-up parameter (PgBouncer refuses it): the timeouts are
    set local in the event's transaction (:func:`store`). libpq's
    ``connect_timeout`` (whole seconds, 2 past the budget) is only a backstop:
    the budget's deadline ends the wait in :func:`run`, and the margin keeps
    the backstop from firing first on a busy machine.
    """
    target = database or os.environ.get("DATABASE_URL")
    if not target and not any(os.environ.get(var) for var in LIBPQ_TARGET_VARS):
        root = default_root()
        if not holds_server(root):
            raise HookError(no_server_message(root))
        info = read_server_info(root / "data")
        if info is None:
            raise HookError(
                f"no database: the embedded server in {root} is not running "
                "(`toolsdb server start`; or set DATABASE_URL, or TOOLSDB_HOME to another .toolsdb folder)"
            )
        target = info.conninfo()
    seconds = budget.left() if budget is not None else DEFAULT_BUDGET
    return {
        "dbname": target or "",
        "connect_timeout": str(max(0, math.ceil(seconds)) + 2),
        "application_name": "toolsdb-hook",
    }


def store(conn: Connection, raw: str, ctx: str, budget: Budget) -> str | None:
    """``hook_ingest()`` in a transaction of its own, its timeouts what is left
    of the budget; the event_id. The settings are ``set local``: nothing
    outlives the transaction, as PgBouncer's transaction pooling needs. If the
    hook gives up before the commit is sent, the server rolls the event back
    (the connection ends, or idle_in_transaction_session_timeout does)."""
    ms = budget.milliseconds()
    conn.execute(
        f"begin; set local statement_timeout = {ms}; set local lock_timeout = {ms}; "
        f"set local idle_in_transaction_session_timeout = {ms}"
    )
    budget.doing = "storing the event"
    try:
        event_id = conn.execute(INGEST_SQL, [raw, ctx])
    except LibpqError:
        with contextlib.suppress(LibpqError):  # a broken connection: the first error says why
            conn.execute("rollback")
        raise
    budget.doing = "committing (the commit was sent: the event may be stored)"
    conn.execute("commit")
    budget.stored = True
    return event_id


def ingest(
    raw: str,
    database: str | None = None,
    env: os._Environ[str] | dict[str, str] | None = None,
    budget: Budget | None = None,
) -> int:
    """Store one raw hook payload; return its event_id. Raises HookError with one line."""
    env = os.environ if env is None else env
    budget = budget or Budget(DEFAULT_BUDGET)
    try:
        payload = parse(raw)
    except ValueError as exc:
        raise HookError(f"the hook payload is not JSON: {exc}") from None
    if payload is not None and not isinstance(payload, dict):
        raise HookError(f"the hook payload is a JSON object, not {type(payload).__name__}")
    budget.doing = "looking up the git branch"
    ctx = json.dumps(context(payload if payload is not None else {}, env))
    try:
        budget.doing = "connecting"
        conn = Connection(connection_params(database, budget))
        try:
            try:
                event_id = store(conn, raw, ctx, budget)
            except LibpqError as exc:
                if exc.sqlstate not in JSONB_REFUSALS or payload is None:
                    raise
                # Valid JSON that jsonb cannot hold (a NUL character, half a
                # surrogate pair, e.g. from binary tool output, a number such as
                # 1e999999): store it with those characters replaced and such
                # numbers as their text, rather than lose the event.
                event_id = store(conn, json.dumps(jsonb_safe(payload), ensure_ascii=False), ctx, budget)
            import_live(conn, payload, env, budget)
        finally:
            conn.close()
    except LibpqError as exc:
        if exc.sqlstate in BUDGET_STOPS:
            # statement_timeout and lock_timeout are both the rest of the
            # budget: which of the two fires first is a matter of timing.
            stopped = f"the server stopped at the end of the {budget.seconds:g} s budget ({TIMEOUT_ENV})"
            raise HookError(f"{stopped} while {budget.doing}: {exc}") from None
        if budget.left() <= 0:  # the backstop fired after the deadline: the budget ran out
            raise HookError(f"{budget.exhausted()}: {exc}") from None
        raise HookError(str(exc)) from None
    return int(event_id or 0)


# The server ended the statement at the budget's set local timeouts
# (query_canceled, lock_not_available).
BUDGET_STOPS = frozenset({"57014", "55P03"})
# Off switches of the live transcript import and of its background hand-off.
TRANSCRIPTS_ENV = "TOOLSDB_HOOK_TRANSCRIPTS"
BACKGROUND_ENV = "TOOLSDB_HOOK_BACKGROUND_IMPORT"
OFF = ("0", "off", "no", "false")
# The hook events after which a session's transcript has new lines worth
# importing at once (docs/transcripts.md section 5); transcripts.py takes them
# from here, since importing it would cost each of the other events 60 ms.
LIVE_EVENTS = frozenset({"Stop", "SubagentStop", "PreCompact", "SessionEnd"})


def _live_event(payload: object) -> bool:
    return isinstance(payload, dict) and payload.get("hook_event_name") in LIVE_EVENTS


def switched_on(env: os._Environ[str] | dict[str, str], name: str) -> bool:
    return (env.get(name) or "on").strip().lower() not in OFF


def _configured_ids(env: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """TOOLSDB_USER_ID / _AGENT_ID / _PROJECT_ID: the ids of sessions a transcript import creates."""
    ids = {}
    for name in ("user_id", "agent_id", "project_id"):
        value = env.get(f"TOOLSDB_{name.upper()}")
        if value:
            ids[name] = value
    return ids


def libpq_ingest(conn: Connection, budget: Budget):
    """transcripts.Ingest over the hook's libpq connection: one transaction per
    batch, its timeouts what is left of the budget (set local, as :func:`store`)."""
    from .transcripts import INGEST_SQL

    def ingest(file_json: str, lines_json: str) -> dict:
        ms = budget.milliseconds()
        conn.execute(
            f"begin; set local statement_timeout = {ms}; set local lock_timeout = {ms}; "
            f"set local idle_in_transaction_session_timeout = {ms}"
        )
        try:
            answer = conn.execute(INGEST_SQL, [file_json, lines_json])
            conn.execute("commit")
        except LibpqError:
            with contextlib.suppress(LibpqError):
                conn.execute("rollback")
            raise
        return json.loads(answer or "{}")

    return ingest


def import_live(conn: Connection, payload: object, env: os._Environ[str] | dict[str, str], budget: Budget) -> None:
    """After the event is stored: on Stop, SubagentStop, PreCompact and
    SessionEnd, import what is new in the session's transcript (and the
    subagent's) with what is left of the budget. Never raises: problems go to
    ``budget.notes`` (logged, exit 0); files left unfinished when the budget
    runs out to ``budget.transcripts_left``. The offset in transcript_files,
    shared with ``toolsdb import-transcripts`` (same source_host), makes
    whoever comes next (the next event, the background or cron import) go on
    exactly where this stopped."""
    if not _live_event(payload) or not switched_on(env, TRANSCRIPTS_ENV):
        return
    from . import transcripts  # here: importing it costs every other event 60 ms

    paths = transcripts.live_paths(payload)
    if not paths or not switched_on(env, TRANSCRIPTS_ENV):
        return
    budget.transcripts_left = list(paths)
    host = transcripts.source_host()
    importer = transcripts.FileImporter(libpq_ingest(conn, budget), host, _configured_ids(env))
    for path in paths:
        budget.doing = f"importing the transcript {path}"
        try:
            state_text = conn.execute(transcripts.FILE_STATE_SQL, [host, path])
            result = importer.run(Path(path), json.loads(state_text) if state_text else None, budget.deadline)
        except LibpqError as exc:
            if exc.sqlstate in BUDGET_STOPS or budget.left() <= 0:
                return  # the budget ran out in a batch (rolled back): this file and the next are left
            budget.notes.append(f"transcript import of {path}: {exc}")
            budget.transcripts_left.remove(path)
            continue
        if result.unfinished:
            return
        budget.transcripts_left.remove(path)
        if result.error and result.conflict is None:  # a conflict: another import moved on, nothing lost
            budget.notes.append(f"transcript import: {result.error}")


def spawn_background_import(paths: list[str], database: str | None, log_file: Path, extra: list[str]) -> None:
    """Hand the files left to ``toolsdb import-transcripts FILE...``, detached:
    its own session (Claude Code ending the hook's process group leaves it
    alone), started through ``sh -c '... &'`` which this process waits for, so
    the importer is re-parented at once and never left a zombie here. Its
    output goes to ``import.log`` beside the hook's log. Concurrent imports
    of one file are safe: transcript_ingest() locks the file's row and answers
    "conflict" to whoever comes second, which then stops."""
    import subprocess

    exe = sys.argv[0] if os.path.basename(sys.argv[0]).startswith("toolsdb") else ""
    if not exe or not os.path.exists(exe):
        exe = os.path.join(os.path.dirname(sys.executable), "toolsdb")
    env = dict(os.environ)
    if database:
        env["DATABASE_URL"] = database
    out = log_file.with_name("import.log")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["sh", "-c", '"$@" </dev/null >>"$0" 2>&1 &', str(out), exe, "import-transcripts", *extra, "--", *paths],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        check=False,
        timeout=5,
    )


TOKEN_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_TOKEN_VAR = "TOOLSDB_TOKEN"


def post(raw: str, url: str, token_var: str, env: os._Environ[str] | dict[str, str], budget: Budget) -> None:
    """Send the payload to ``toolsdb serve`` (``--post URL``) as Claude Code's
    http hooks do, with the bearer token held by ``token_var``; returns once
    the server answered 2xx (the event is durable there). For the events
    Claude Code sends to command hooks only (SessionStart). Raises HookError."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HookError(f"--post takes an http:// or https:// URL, such as http://127.0.0.1:8787/hooks, not {url!r}")
    token = env.get(token_var)
    if not token:
        raise HookError(f"no token for {url}: the variable {token_var} is not set (toolsdb token create)")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    budget.doing = f"posting to {url}"
    conn = kind(parts.hostname, parts.port, timeout=max(0.05, budget.left()))
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request(
            "POST",
            target,
            body=raw.encode("utf-8"),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        answer = conn.getresponse()
        body = answer.read(2048).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        raise HookError(f"{url}: {exc or type(exc).__name__}") from None
    finally:
        conn.close()
    if not 200 <= answer.status < 300:
        detail = " ".join(body.split())[:300]
        raise HookError(f"{url} answered {answer.status} {answer.reason}" + (f": {detail}" if detail else ""))
    budget.stored = True


def jsonb_safe(value: object) -> object:
    """The JSON value with NUL characters and lone surrogates replaced by U+FFFD, and NaN and
    Infinity by null: what jsonb refuses."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {jsonb_safe(k): jsonb_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonb_safe(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None  # NaN and Infinity, which Python's json reads and jsonb refuses
    return value


def log_failure(log_file: Path, message: str, raw: str, stored: bool = False) -> None:
    """Append one line (time, error, the whole payload) to the log; never raise.
    ``stored``: the event itself is in the database (a transcript import
    problem), said in the line so nobody stores it again."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entry = {"at": stamp, "error": message, **({"event_stored": True} if stored else {}), "payload": raw}
    line = json.dumps(entry, ensure_ascii=False)
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        print(f"toolsdb hook: {message} (and the log {log_file} is not writable: {exc.strerror})", file=sys.stderr)


def forward_transcripts(
    raw: str, url: str, token_var: str, env: os._Environ[str] | dict[str, str], budget: Budget
) -> None:
    """After the event is posted (``--post``): on the LIVE_EVENTS, send the new
    bytes of the transcript files to the same server's ``POST /transcripts``
    (toolsdb.transcript_client), within the budget. Never raises: as
    :func:`import_live`, problems go to ``budget.notes`` and unfinished files to
    ``budget.transcripts_left``."""
    try:
        payload = parse(raw)
    except ValueError:
        return
    if not _live_event(payload) or not switched_on(env, TRANSCRIPTS_ENV):
        return
    from . import transcripts

    paths = transcripts.live_paths(payload)
    if not paths:
        return
    from . import transcript_client

    target = transcript_client.transcripts_url(url)
    token = env.get(token_var) or ""
    budget.transcripts_left = list(paths)
    kept: list = []  # one HTTP connection for every request of this run
    try:
        for path in paths:
            budget.doing = f"sending the transcript {path} to {target}"
            try:
                sent = transcript_client.send_file(
                    target, token, path, budget.deadline, transcript_client.default_state_dir(), kept
                )
            except transcript_client.SendError as exc:
                budget.notes.append(f"transcript import: {exc}")
                budget.transcripts_left.remove(path)
                continue
            if not sent["done"]:
                return
            budget.transcripts_left.remove(path)
    finally:
        for conn in kept:
            conn.close()


def _work(
    outcome: list[str], raw: str, database: str | None, budget: Budget, target: tuple[str, str] | None = None
) -> None:
    """The worker thread's body: ``ingest`` (or ``post`` to ``target``, a URL and
    the token's variable, then :func:`forward_transcripts`), its failure (one
    line) put in ``outcome``. The transcript import after a stored event
    reports in ``budget.notes`` instead: it never fails the event."""
    try:
        if target is not None:
            post(raw, target[0], target[1], os.environ, budget)
            forward_transcripts(raw, target[0], target[1], os.environ, budget)
        else:
            ingest(raw, database, budget=budget)
    except HookError as exc:
        outcome.append(str(exc))
    except BaseException as exc:  # never break the agent's loop, whatever happened
        if budget.stored:
            budget.notes.append(f"transcript import: {type(exc).__name__}: {exc}")
        else:
            outcome.append(f"{type(exc).__name__}: {exc}")


def after_event(
    budget: Budget, log_file: Path | None, raw: str, database: str | None, target: tuple[str, str] | None
) -> None:
    """Once the event is stored: log the transcript import's problems (the event
    is in: never a failure), and hand the files the budget did not finish to a
    background ``toolsdb import-transcripts`` (unless TOOLSDB_HOOK_BACKGROUND_IMPORT=0)."""
    log = log_file or default_log_file()
    for note in budget.notes:
        log_failure(log, note, raw, stored=True)
    if budget.transcripts_left and switched_on(os.environ, BACKGROUND_ENV):
        extra = ["--post", target[0], "--token-var", target[1]] if target is not None else []
        try:
            spawn_background_import(list(budget.transcripts_left), database, log, extra)
        except Exception as exc:  # logged; the next event or import-transcripts goes on
            log_failure(log, f"transcript import: cannot start the background import: {exc}", raw, stored=True)


def run(
    database: str | None = None,
    strict: bool = False,
    log_file: Path | None = None,
    post_url: str | None = None,
    token_var: str = DEFAULT_TOKEN_VAR,
) -> int:
    """Read stdin, store it (or, with ``post_url``, send it to ``toolsdb serve``),
    and return the exit code: 0, or 1 on failure with ``strict``.

    Within one budget: stdin is read until end of file (or a pause after a
    whole JSON object), then a daemon thread does the rest while this one
    waits until the deadline. A thread still busy then (stuck in libpq, on a
    server or proxy that never answers) is abandoned: the payload is logged,
    and the process ends at once (os._exit: nothing waits for the thread).
    """
    started = time.monotonic()
    raw = ""
    try:
        try:
            seconds, message = budget_seconds(os.environ), None
        except HookError as exc:  # read stdin within the default budget, then log this
            seconds, message = DEFAULT_BUDGET, str(exc)
        budget = Budget(seconds, started)
        budget.doing = "reading stdin"
        data, short = read_stdin(0, budget.deadline)
        if short == "too large":
            data = data[:LOGGED_PREFIX]
            message = message or (
                f"stdin holds more than {MAX_STDIN >> 20} MiB, more than a hook payload "
                f"(the log keeps its first {LOGGED_PREFIX >> 10} kB)"
            )
        raw = data.decode("utf-8", errors="replace")
        if message is None and short == "open":
            message = budget.stdin_open(len(data))
        if message is None and post_url is not None and not TOKEN_VAR_NAME.match(token_var):
            message = f"--token-var must be a variable name, not {token_var!r}"
        if message is None:
            outcome: list[str] = []
            target = (post_url, token_var) if post_url is not None else None
            worker = threading.Thread(target=_work, args=(outcome, raw, database, budget, target), daemon=True)
            worker.start()
            worker.join(max(0.0, budget.left()))
            if worker.is_alive():  # stuck: log unless the event is stored (and only closing is left)
                if budget.stored:
                    after_event(budget, log_file, raw, database, target)
                code = 0 if budget.stored else fail(log_file, budget.exhausted(), raw, strict)
                sys.stderr.flush()
                os._exit(code)
            if not outcome:
                after_event(budget, log_file, raw, database, target)
                return 0
            message = outcome[0]
    except Exception as exc:  # never break the agent's loop, whatever happened
        message = f"{type(exc).__name__}: {exc}"
    return fail(log_file, message, raw, strict)


def fail(log_file: Path | None, message: str, raw: str, strict: bool) -> int:
    """Log the failure with the payload; the exit code (1 with ``strict``, the message on stderr)."""
    log_failure(log_file or default_log_file(), message, raw)
    if strict:
        print(f"Error: {message}", file=sys.stderr)
        return 1
    return 0


def fast_main(argv: list[str]) -> int | None:
    """Run ``toolsdb [-d URL] hook [--strict] [--log-file F] [--post URL [--token-var NAME]] [-d URL]`` without click.

    Returns the exit code, or None when ``argv`` is not such a command (or
    asks for help, or has an option we do not know): click then handles it.
    """
    database: str | None = None
    strict = False
    log_file: Path | None = None
    post_url: str | None = None
    token_var = DEFAULT_TOKEN_VAR
    seen_hook = False
    args = list(argv)
    while args:
        arg = args.pop(0)
        if "=" in arg and arg.split("=", 1)[0] in ("--post", "--token-var"):
            arg, value = arg.split("=", 1)
            args.insert(0, value)
        if arg in ("--post", "--token-var") and not seen_hook:
            return None
        if arg in ("-d", "--database", "--log-file", "--post", "--token-var"):
            if not args:
                return None
            value = args.pop(0)
            if arg == "--log-file":
                log_file = Path(value)
            elif arg == "--post":
                post_url = value
            elif arg == "--token-var":
                token_var = value
            else:
                database = value
        elif arg.startswith("--database="):
            database = arg.split("=", 1)[1]
        elif arg.startswith("--log-file="):
            log_file = Path(arg.split("=", 1)[1])
        elif arg in ("-v", "--verbose"):
            continue
        elif arg == "--strict" and seen_hook:
            strict = True
        elif arg == "hook" and not seen_hook:
            seen_hook = True
        else:
            return None
    if not seen_hook:
        return None
    return run(database, strict, log_file, post_url, token_var)
