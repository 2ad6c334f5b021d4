"""Helpers of the ``toolsdb hook`` test modules (test_hook_*.py): the
documented hook events and their payloads, a runner of the real console
script, and the bodies of the modules' ``hook`` and ``su`` fixtures.

The payloads follow the Claude Code hooks reference,
https://code.claude.com/docs/en/hooks (sections "Hook input" and "Hook
events", as revised in May 2026; the older
https://docs.anthropic.com/en/docs/claude-code/hooks lists the first nine
events): the common fields session_id, transcript_path, cwd,
permission_mode and hook_event_name, then each event's own fields (for the
newest events, such as PostToolBatch or FileChanged, the fields the
reference showed; unknown fields are stored as they are anyway).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from toolsdb.hook import TERMINAL_VARS

from .conftest import Pg, clean_env, toolsdb_exe
from .dbhelpers import HasDbname, Row, one, rows, scalar

DOCS_URL = "https://code.claude.com/docs/en/hooks"

# Every hook event of the reference (DOCS_URL), in lifecycle order.
DOCUMENTED_EVENTS = (
    "Setup",
    "SessionStart",
    "InstructionsLoaded",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "PreToolUse",
    "PermissionRequest",
    "PermissionDenied",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Notification",
    "SubagentStart",
    "SubagentStop",
    "TaskCreated",
    "TaskCompleted",
    "TeammateIdle",
    "Elicitation",
    "ElicitationResult",
    "ConfigChange",
    "FileChanged",
    "CwdChanged",
    "WorktreeCreate",
    "WorktreeRemove",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    "MessageDisplay",
    "SessionEnd",
)

# Each documented event's own fields (as the reference and Claude Code's
# hook input schema give them), for tests that go over every event.
EVENT_FIELDS: dict[str, dict[str, Any]] = {
    "Setup": {"trigger": "init"},
    "SessionStart": {"source": "resume", "model": "claude-sonnet-4-5-20250929"},
    "InstructionsLoaded": {
        "file_path": "/work/app/CLAUDE.md",
        "memory_type": "Project",
        "load_reason": "session_start",
    },
    "UserPromptSubmit": {"prompt": "Fix the login form."},
    "UserPromptExpansion": {
        "expansion_type": "slash_command",
        "command_name": "review",
        "command_args": "src/auth.py",
        "prompt": "/review src/auth.py",
    },
    "PreToolUse": {"tool_name": "Bash", "tool_input": {"command": "ls"}, "tool_use_id": "toolu_1"},
    "PermissionRequest": {"tool_name": "Bash", "tool_input": {"command": "rm -r build"}},
    "PermissionDenied": {
        "tool_name": "Bash",
        "tool_input": {"command": "rm -r build"},
        "tool_use_id": "toolu_2",
        "reason": "Deleting files outside the task",
    },
    "PostToolUse": {
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
        "tool_response": {"stdout": "src"},
        "tool_use_id": "toolu_1",
    },
    "PostToolUseFailure": {
        "tool_name": "Bash",
        "tool_input": {"command": "false"},
        "tool_use_id": "toolu_3",
        "error": "exit 1",
    },
    "PostToolBatch": {"tool_calls": [{"tool_name": "Read", "tool_input": {}, "tool_use_id": "toolu_4"}]},
    "Notification": {"message": "Claude needs your permission to use Bash", "notification_type": "permission_prompt"},
    "SubagentStart": {"agent_id": "a3f9c2e1", "agent_type": "Explore"},
    "SubagentStop": {
        "stop_hook_active": False,
        "agent_id": "a3f9c2e1",
        "agent_type": "Explore",
        "agent_transcript_path": "/home/dev/.claude/projects/-work-app/agent-a3f9c2e1.jsonl",
    },
    "TaskCreated": {"task_id": "2", "task_subject": "Add a test"},
    "TaskCompleted": {"task_id": "2", "task_subject": "Add a test"},
    "TeammateIdle": {"teammate_name": "tester", "team_name": "auth-fix"},
    "Elicitation": {"mcp_server_name": "github", "message": "Which repository?", "mode": "form"},
    "ElicitationResult": {"mcp_server_name": "github", "action": "accept", "content": {"repo": "acme/app"}},
    "ConfigChange": {"source": "project_settings", "file_path": "/work/app/.claude/settings.json"},
    "FileChanged": {"file_path": "/work/app/.env", "event": "change"},
    "CwdChanged": {"old_cwd": "/work/app", "new_cwd": "/work/app/src"},
    "WorktreeCreate": {"name": "fix-login"},
    "WorktreeRemove": {"worktree_path": "/work/app-fix-login"},
    "Stop": {"stop_hook_active": False, "last_assistant_message": "Done."},
    "StopFailure": {"error": "rate_limit", "error_details": "429 Too Many Requests"},
    "PreCompact": {"trigger": "auto", "custom_instructions": None},
    "PostCompact": {"trigger": "auto", "compact_summary": "Fixed the login form."},
    "MessageDisplay": {
        "turn_id": "6f1d0c1e-0000-4000-8000-000000000001",
        "message_id": "6f1d0c1e-0000-4000-8000-000000000002",
        "index": 0,
        "final": True,
        "delta": "Fixed.\n",
    },
    "SessionEnd": {"reason": "logout"},
}

UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/toolsdb"
TMUX = {"TMUX": "/tmp/tmux-1000/default,4242,0", "TMUX_PANE": "%3", "TERM": "tmux-256color"}
VSCODE = {"TERM_PROGRAM": "vscode", "TERM_PROGRAM_VERSION": "1.99.3", "TERM": "xterm-256color"}
SHA = "4f1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"

# ---------------------------------------------------------------------------
# Running the hook
# ---------------------------------------------------------------------------


def hook_env(**extra: str) -> dict[str, str]:
    """The test process's environment without anything that picks a database,
    a terminal, a log or toolsdb ids; then ``extra``."""
    env = {
        k: v
        for k, v in clean_env().items()
        if k not in TERMINAL_VARS and not k.startswith("TOOLSDB_") and k != "XDG_STATE_HOME"
    }
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Hook:
    """Runs the real console script against the test's database."""

    pg: Pg
    db: str
    folder: Path

    @property
    def url(self) -> str:
        return self.pg.url(self.db)

    @property
    def log(self) -> Path:
        return self.folder / "hook.log"

    def run(
        self,
        payload: dict | str | bytes,
        *argv: str,
        env: dict[str, str] | None = None,
        database: bool = True,
        timeout: float = 60,
    ) -> Result:
        """``toolsdb <argv>`` (default ``hook``) with ``payload`` on stdin; DATABASE_URL
        is the test database unless ``database`` is false; ``env`` is added last.
        A run longer than ``timeout`` seconds raises subprocess.TimeoutExpired."""
        raw = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        data = raw.encode() if isinstance(raw, str) else raw
        started = time.monotonic()
        done = subprocess.run(
            [toolsdb_exe(), *(argv or ("hook",))],
            input=data,
            capture_output=True,
            cwd=str(self.folder),
            env=self.env(env, database),
            timeout=timeout,
        )
        return Result(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
            time.monotonic() - started,
        )

    def env(self, env: dict[str, str] | None = None, database: bool = True) -> dict[str, str]:
        """The hook's environment: its log in the test's folder, DATABASE_URL the
        test database unless ``database`` is false, then ``env``."""
        # The payloads' transcript_path names no file: the live transcript
        # import (which would log that) is tested in test_transcripts_live.py.
        base = {"TOOLSDB_HOOK_LOG": str(self.log), "TOOLSDB_HOOK_TRANSCRIPTS": "off"}
        if database:
            base["DATABASE_URL"] = self.url
        return hook_env(**{**base, **(env or {})})

    def ingest(self, payload: dict | str | bytes, *argv: str, env: dict[str, str] | None = None) -> Result:
        """Run the hook and check it stored the payload quietly."""
        result = self.run(payload, *argv, env=env)
        assert_stored(result, self.log)
        return result

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


def assert_stored(result: Result, log: Path) -> None:
    assert result.code == 0, f"toolsdb hook should exit 0, it exited {result.code}: {result.stderr}"
    assert result.stdout == "", f"toolsdb hook should print nothing on stdout: {result.stdout!r}"
    assert result.stderr == "", f"toolsdb hook should print nothing on stderr: {result.stderr!r}"
    assert not log.exists(), f"toolsdb hook logged a failure: {log.read_text()}"


def hook_runner(pg: Pg, committed: HasDbname, tmp_path: Path) -> Hook:
    """Body of each hook test module's ``hook`` fixture: the console script
    against the module's clone (conftest.py's ``committed``: tests tell their
    rows apart by session id, a fresh uuid each), in the test's folder."""
    folder = tmp_path / "hook"
    folder.mkdir()
    return Hook(pg, committed.dbname, folder)


def module_su(pg: Pg, committed: HasDbname) -> Iterator[psycopg.Connection]:
    """Body of each hook test module's ``su`` fixture: the module's clone as
    the superuser, autocommit: sees every commit of the hook."""
    with psycopg.connect(pg.conninfo(committed.dbname), autocommit=True) as connection:
        yield connection


# ---------------------------------------------------------------------------
# Payloads and working directories
# ---------------------------------------------------------------------------


def new_session_id() -> str:
    return str(uuid.uuid4())


def payload(event: str | None, session_id: str, cwd: Path | str, permission_mode: str = "default", /, **fields) -> dict:
    """A hook payload: the common fields of every event, then the event's own."""
    common: dict[str, Any] = {
        "session_id": session_id,
        "transcript_path": f"/home/dev/.claude/projects/-work-app/{session_id}.jsonl",
        "cwd": str(cwd),
        "permission_mode": permission_mode,
    }
    if event is not None:
        common["hook_event_name"] = event
    return {**common, **fields}


def git_repo(folder: Path, head: str) -> Path:
    """A folder whose .git/HEAD says ``head``."""
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text(head + "\n")
    return folder


def git_worktree(folder: Path, main: Path, name: str, branch: str, relative: bool = False) -> Path:
    """A linked worktree of ``main``: a .git file pointing into main's .git/worktrees/<name>."""
    admin = main / ".git" / "worktrees" / name
    admin.mkdir(parents=True)
    (admin / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    folder.mkdir(parents=True)
    target = Path("..") / main.name / ".git" / "worktrees" / name if relative else admin
    (folder / ".git").write_text(f"gitdir: {target}\n")
    return folder


def session_of(su: psycopg.Connection, session_id: str) -> Row:
    return one(su, "select * from toolsdb.sessions where session_id = %s", (session_id,))


def events_of(su: psycopg.Connection, session_id: str) -> list[Row]:
    return rows(
        su,
        "select event_id, session_id, event_type, payload from toolsdb.events where session_id = %s order by event_id",
        (session_id,),
    )


def totals(su: psycopg.Connection) -> tuple[int, int]:
    """How many events and sessions the database holds."""
    return scalar(su, "select count(*) from toolsdb.events"), scalar(su, "select count(*) from toolsdb.sessions")


# ---------------------------------------------------------------------------
# A proxy that stalls
# ---------------------------------------------------------------------------

# ReadyForQuery ('Z', length 5), then the transaction status byte: the server
# sends it at the end of start-up and after each query's reply.
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


def fatal_error(sqlstate: str, message: str) -> bytes:
    """A FATAL ErrorResponse message of the PostgreSQL protocol."""
    body = b"".join(
        key + value.encode() + b"\x00"
        for key, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
    )
    body += b"\x00"
    return b"E" + (len(body) + 4).to_bytes(4, "big") + body


@dataclass
class _Link:
    """One proxied connection: how many ReadyForQuery messages the server sent."""

    ready: int = 0
    tail: bytes = b""
    stalled: bool = False


@dataclass
class StallingProxy:
    """A TCP listener on 127.0.0.1 in front of the test server's Unix socket.

    It forwards faithfully until the server has sent ``after`` ReadyForQuery
    messages (1: start-up is complete; each query's reply adds one), then
    stalls without closing anything: it stops forwarding the client's requests
    (``drop="requests"``) or the server's replies (``drop="replies"``: the
    next request runs, its answer never arrives). ``after=0`` accepts and never
    answers. ``refuse_options`` answers a start-up packet carrying ``options``
    as PgBouncer does (FATAL "unsupported startup parameter: options").
    Threads with short socket timeouts; ``close()`` ends them all.
    """

    socket_path: str
    after: int
    drop: str = "requests"
    refuse_options: bool = False
    sockets: list[socket.socket] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._spawn(self._accept)

    def url(self, dbname: str, user: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.sockets.append(client)
            if self.after == 0:
                continue  # accepted; never a byte back
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.socket_path)
            self.sockets.append(upstream)
            link = _Link()
            self._spawn(self._pump, client, upstream, link, "requests")
            self._spawn(self._pump, upstream, client, link, "replies")

    def _pump(self, source: socket.socket, sink: socket.socket, link: _Link, direction: str) -> None:
        source.settimeout(0.1)
        while not self.closing.is_set():
            try:
                chunk = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                if not link.stalled:
                    sink.close()
                return
            if direction == "requests":
                if self.refuse_options and link.ready == 0 and b"\x00options\x00" in chunk:
                    source.sendall(fatal_error("08P01", "unsupported startup parameter: options"))
                    source.close()
                    return
                if self.drop == "requests" and link.ready >= self.after:
                    link.stalled = True
                    continue  # swallowed
            else:
                if link.stalled and self.drop == "replies":
                    continue  # swallowed
                window = link.tail + chunk
                link.ready += window.count(READY_FOR_QUERY) - link.tail.count(READY_FOR_QUERY)
                link.tail = window[-(len(READY_FOR_QUERY) - 1) :]
                if self.drop == "replies" and link.ready >= self.after:
                    link.stalled = True
            try:
                sink.sendall(chunk)
            except OSError:
                return

    def close(self) -> None:
        self.closing.set()
        for sock in [self.listener, *self.sockets]:
            sock.close()
        for thread in self.threads:
            thread.join(timeout=5)

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
