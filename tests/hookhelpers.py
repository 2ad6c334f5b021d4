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
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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
    "SessionEnd",
)

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
    ) -> Result:
        """``toolsdb <argv>`` (default ``hook``) with ``payload`` on stdin; DATABASE_URL
        is the test database unless ``database`` is false; ``env`` is added last."""
        raw = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        data = raw.encode() if isinstance(raw, str) else raw
        base = {"TOOLSDB_HOOK_LOG": str(self.log)}
        if database:
            base["DATABASE_URL"] = self.url
        started = time.monotonic()
        done = subprocess.run(
            [toolsdb_exe(), *(argv or ("hook",))],
            input=data,
            capture_output=True,
            cwd=str(self.folder),
            env=hook_env(**{**base, **(env or {})}),
            timeout=60,
        )
        return Result(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
            time.monotonic() - started,
        )

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
