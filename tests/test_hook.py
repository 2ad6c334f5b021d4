"""``toolsdb hook`` (runner/toolsdb/hook.py, launcher.py, libpq.py and the
click command in cli.py) and the SQL behind it, toolsdb.hook_ingest()
(schema/43_events.sql), against a real, migrated database on each PostgreSQL
major of the suite.

The command runs as Claude Code runs it: the installed console script in a
subprocess, one JSON payload on stdin, in an environment the test controls
(no PG* variables, no terminal variables unless a test sets them, the
failure log in the test's folder) and with the payload's cwd in a temporary
folder holding a fake ``.git``. The tests share one clone of the migrated
template per module and major (``hook_db``), tell their rows apart by session
id, and read it through an autocommit superuser connection (``su``).

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
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from toolsdb.hook import TERMINAL_VARS

from .conftest import Pg, clean_env, run_cli, toolsdb_exe
from .dbhelpers import Row, expect_error, insert, one, rows, scalar, unique

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


@pytest.fixture(scope="module")
def hook_db(pg: Pg, template: str) -> Iterator[str]:
    """One clone of the migrated template per module and major: tests tell
    their rows apart by session id (a fresh uuid each)."""
    with pg.clone(f"hook_{os.getpid()}_{pg.major}", template) as name:
        yield name


@pytest.fixture
def hook(pg: Pg, hook_db: str, tmp_path: Path) -> Hook:
    folder = tmp_path / "hook"
    folder.mkdir()
    return Hook(pg, hook_db, folder)


@pytest.fixture
def su(pg: Pg, hook_db: str) -> Iterator[psycopg.Connection]:
    """The test database as the superuser, autocommit: sees every commit of the hook."""
    with psycopg.connect(pg.conninfo(hook_db), autocommit=True) as connection:
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
# 1. A whole session, every documented event
# ---------------------------------------------------------------------------


@dataclass
class Step:
    payload: dict
    env: dict[str, str]
    # What the session row must say after this step (accumulated over the steps).
    changes: dict[str, Any]


def whole_session(session_id: str, repo: Path, tree: Path) -> list[Step]:
    """One realistic Claude Code session that fires every documented event."""

    def p(event: str, /, cwd: Path = repo, pm: str = "default", **fields) -> dict:
        return payload(event, session_id, cwd, pm, **fields)

    edit = {"file_path": f"{repo}/src/auth.py", "old_string": "if password:", "new_string": "if password.strip():"}
    agent = {"agent_id": "a3f9c2e1", "agent_type": "Explore"}
    task = {
        "task_id": "2",
        "task_subject": "Add a test for empty passwords",
        "task_description": "tests/test_auth.py: an empty or blank password is refused",
        "teammate_name": "tester",
        "team_name": "auth-fix",
    }
    awake = {"is_idle": False}
    idle = {"is_idle": True}
    return [
        Step(p("Setup", trigger="init"), TMUX, {}),
        Step(p("SessionStart", source="startup", model="claude-sonnet-4-5-20250929"), TMUX, awake),
        Step(
            p("InstructionsLoaded", file_path=f"{repo}/CLAUDE.md", memory_type="Project", load_reason="session_start"),
            TMUX,
            {},
        ),
        Step(p("UserPromptSubmit", prompt="The login form accepts an empty password: fix it."), TMUX, awake),
        Step(
            p(
                "UserPromptExpansion",
                expansion_type="slash_command",
                command_name="review",
                command_args="src/auth.py",
                command_source="builtin",
                prompt="/review src/auth.py",
            ),
            TMUX,
            {},
        ),
        Step(
            p(
                "PreToolUse",
                tool_name="Bash",
                tool_input={"command": "pytest tests/test_auth.py", "description": "Run the auth tests"},
                tool_use_id="toolu_01ABCDEF",
            ),
            TMUX,
            awake,
        ),
        Step(
            p(
                "PermissionRequest",
                tool_name="Bash",
                tool_input={"command": "pytest tests/test_auth.py", "description": "Run the auth tests"},
                permission_suggestions=[
                    {
                        "type": "addRules",
                        "rules": [{"toolName": "Bash", "ruleContent": "pytest:*"}],
                        "behavior": "allow",
                        "destination": "localSettings",
                    }
                ],
            ),
            TMUX,
            {},
        ),
        # A permission prompt is not the agent waiting idle.
        Step(
            p(
                "Notification",
                message="Claude needs your permission to use Bash",
                title="Claude Code",
                notification_type="permission_prompt",
            ),
            TMUX,
            {"is_idle": False},
        ),
        Step(
            p(
                "PostToolUse",
                tool_name="Bash",
                tool_input={"command": "pytest tests/test_auth.py", "description": "Run the auth tests"},
                tool_response={"stdout": "1 failed, 11 passed", "stderr": "", "interrupted": False, "isImage": False},
                tool_use_id="toolu_01ABCDEF",
            ),
            TMUX,
            awake,
        ),
        Step(p("PreToolUse", tool_name="Edit", tool_input=edit, tool_use_id="toolu_02BCDEFG"), TMUX, awake),
        # Auto mode's classifier said no: the mode is reported as it is.
        Step(
            p(
                "PermissionDenied",
                pm="auto",
                tool_name="Bash",
                tool_input={"command": "rm -rf build/"},
                tool_use_id="toolu_03CDEFGH",
                reason="Deleting files outside the task",
            ),
            TMUX,
            {"permission_mode": "auto"},
        ),
        Step(
            p(
                "PostToolUseFailure",
                tool_name="Bash",
                tool_input={"command": "ruff check src"},
                tool_use_id="toolu_04DEFGHI",
                error="Command exited with non-zero status code 1",
                is_interrupt=False,
            ),
            TMUX,
            {"permission_mode": "default", "is_idle": False},
        ),
        Step(
            p(
                "PostToolBatch",
                tool_calls=[
                    {"tool_name": "Read", "tool_use_id": "toolu_05EFGHIJ"},
                    {"tool_name": "Grep", "tool_use_id": "toolu_06FGHIJK"},
                ],
            ),
            TMUX,
            {},
        ),
        Step(p("SubagentStart", **agent), TMUX, {}),
        Step(
            p(
                "PreToolUse",
                tool_name="Grep",
                tool_input={"pattern": "password", "path": "src", "output_mode": "content"},
                tool_use_id="toolu_07GHIJKL",
                **agent,
            ),
            TMUX,
            awake,
        ),
        Step(
            p(
                "SubagentStop",
                stop_hook_active=False,
                agent_transcript_path=f"/home/dev/.claude/projects/-work-app/{session_id}/subagents/agent-a3f9c2e1.jsonl",
                last_assistant_message="The password check is in src/auth.py:42.",
                **agent,
            ),
            TMUX,
            {},
        ),
        Step(p("TaskCreated", **task), TMUX, {}),
        Step(p("TaskCompleted", **task), TMUX, {}),
        Step(p("TeammateIdle", teammate_name="tester", team_name="auth-fix"), TMUX, {}),
        Step(
            p(
                "Elicitation",
                mcp_server_name="github",
                message="Which repository should the issue go to?",
                mode="form",
                requested_schema={"type": "object", "properties": {"repo": {"type": "string"}}},
            ),
            TMUX,
            {},
        ),
        Step(p("ElicitationResult", mcp_server_name="github", action="accept", content={"repo": "acme/app"}), TMUX, {}),
        Step(p("ConfigChange", source="project_settings", file_path=f"{repo}/.claude/settings.json"), TMUX, {}),
        Step(p("FileChanged", file_path=f"{repo}/.env", event="change"), TMUX, {}),
        Step(p("Stop", stop_hook_active=False, last_assistant_message="Fixed; the new test passes."), TMUX, {}),
        Step(
            p("Notification", message="Claude is waiting for your input", notification_type="idle_prompt"),
            TMUX,
            idle,
        ),
        # The next prompt wakes it, in another permission mode.
        Step(
            p("UserPromptSubmit", pm="acceptEdits", prompt="Also refuse a blank password."),
            TMUX,
            {"is_idle": False, "permission_mode": "acceptEdits"},
        ),
        Step(p("StopFailure", pm="acceptEdits", error="rate_limit", error_details="429 Too Many Requests"), TMUX, {}),
        Step(
            p(
                "Notification",
                pm="acceptEdits",
                message="Claude is waiting for your input",
                notification_type="idle_prompt",
            ),
            TMUX,
            idle,
        ),
        # A tool use wakes it too.
        Step(
            p(
                "PreToolUse",
                pm="acceptEdits",
                tool_name="Write",
                tool_input={"file_path": f"{repo}/tests/test_blank.py", "content": "def test_blank(): ...\n"},
                tool_use_id="toolu_08HIJKLM",
            ),
            TMUX,
            awake,
        ),
        Step(
            p(
                "PostToolUse",
                pm="acceptEdits",
                tool_name="Write",
                tool_input={"file_path": f"{repo}/tests/test_blank.py", "content": "def test_blank(): ...\n"},
                tool_response={"filePath": f"{repo}/tests/test_blank.py", "success": True},
                tool_use_id="toolu_08HIJKLM",
            ),
            TMUX,
            awake,
        ),
        Step(
            p("PreCompact", pm="acceptEdits", trigger="manual", custom_instructions="Keep the failing test names"),
            TMUX,
            {},
        ),
        Step(p("SessionStart", pm="acceptEdits", source="compact", model="claude-sonnet-4-5-20250929"), TMUX, awake),
        Step(
            p("PostCompact", pm="acceptEdits", trigger="manual", compact_summary="Fixed empty and blank passwords."),
            TMUX,
            {},
        ),
        # Shift+Tab: back to the default mode.
        Step(p("WorktreeCreate", name="fix-login"), TMUX, {"permission_mode": "default"}),
        # Into the worktree: its own branch, read through the worktree's .git file.
        Step(
            p("CwdChanged", cwd=tree, previous_cwd=str(repo)),
            TMUX,
            {"cwd": str(tree), "git_branch": "fix-login"},
        ),
        Step(
            p(
                "PreToolUse",
                cwd=tree,
                tool_name="Bash",
                tool_input={"command": "git status"},
                tool_use_id="toolu_09IJKLMN",
            ),
            TMUX,
            awake,
        ),
        Step(
            p("CwdChanged", previous_cwd=str(tree)),
            TMUX,
            {"cwd": str(repo), "git_branch": "feature-x"},
        ),
        Step(p("WorktreeRemove", worktree_path=str(tree)), TMUX, {}),
        # Older Claude Code versions sent no notification_type.
        Step(p("Notification", message="Claude is waiting for your input"), TMUX, idle),
        Step(
            p("SessionEnd", reason="prompt_input_exit"),
            TMUX,
            {"ended": True, "end_reason": "prompt_input_exit", "is_idle": False},
        ),
        # claude --resume, this time from VS Code's terminal: reopened.
        Step(
            p("SessionStart", source="resume", model="claude-sonnet-4-5-20250929"),
            VSCODE,
            {
                "ended": False,
                "end_reason": None,
                "terminal_type": "vscode",
                "terminal_info": {"term_program": "vscode", "term_program_version": "1.99.3", "term": "xterm-256color"},
            },
        ),
        Step(p("UserPromptSubmit", prompt="Commit it."), VSCODE, awake),
        Step(p("SessionEnd", reason="logout"), VSCODE, {"ended": True, "end_reason": "logout"}),
    ]


def session_state(row: Row) -> dict[str, Any]:
    state = {k: row[k] for k in ("cwd", "transcript_path", "permission_mode", "git_branch", "terminal_type")}
    state.update(
        terminal_info=row["terminal_info"],
        is_idle=row["is_idle"],
        ended=row["ended_at"] is not None,
        end_reason=row["end_reason"],
    )
    return state


def test_a_whole_session_of_every_documented_event(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    session_id = new_session_id()
    repo = git_repo(tmp_path / "app", "ref: refs/heads/feature-x")
    tree = git_worktree(tmp_path / "app-fix-login", repo, "fix-login", "fix-login")
    steps = whole_session(session_id, repo, tree)
    assert {s.payload["hook_event_name"] for s in steps} == set(DOCUMENTED_EVENTS)

    expected: dict[str, Any] = {
        "cwd": str(repo),
        "transcript_path": f"/home/dev/.claude/projects/-work-app/{session_id}.jsonl",
        "permission_mode": "default",
        "git_branch": "feature-x",
        "terminal_type": "tmux",
        "terminal_info": {"tmux": TMUX["TMUX"], "tmux_pane": "%3", "term": "tmux-256color"},
        "is_idle": False,
        "ended": False,
        "end_reason": None,
    }
    started_at = None
    last_activity = None
    for number, step in enumerate(steps, start=1):
        event = step.payload["hook_event_name"]
        where = f"after event {number} ({event})"
        hook.ingest(step.payload, env=step.env)

        events = events_of(su, session_id)
        assert len(events) == number, f"{where}: one event row per call"
        assert events[-1]["event_type"] == event, where
        assert events[-1]["payload"] == step.payload, f"{where}: the payload should be stored unchanged"

        row = session_of(su, session_id)
        expected.update(step.changes)
        assert session_state(row) == expected, where
        assert row["last_event_type"] == event, where
        started_at = started_at or row["started_at"]
        assert row["started_at"] == started_at, f"{where}: started_at never moves"
        if last_activity is not None:
            assert row["last_activity_at"] > last_activity, f"{where}: last_activity_at should move forward"
        last_activity = row["last_activity_at"]
    assert {e["event_type"] for e in events_of(su, session_id)} == set(DOCUMENTED_EVENTS)


def test_clear_ends_the_session_and_starts_a_new_one(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "app", "ref: refs/heads/main")
    old, new = new_session_id(), new_session_id()
    hook.ingest(payload("SessionStart", old, repo, source="startup"))
    hook.ingest(payload("SessionEnd", old, repo, reason="clear"))
    hook.ingest(payload("SessionStart", new, repo, source="clear"))
    assert (session_of(su, old)["end_reason"], session_of(su, new)["ended_at"]) == ("clear", None)
    active = rows(su, "select session_id from toolsdb.active_sessions where session_id = any(%s)", ([old, new],))
    assert [r["session_id"] for r in active] == [new]
    # A second SessionEnd keeps the first end; one without a reason says other.
    first_end = session_of(su, old)["ended_at"]
    hook.ingest(payload("SessionEnd", old, repo, reason="logout"))
    assert (session_of(su, old)["ended_at"], session_of(su, old)["end_reason"]) == (first_end, "clear")
    hook.ingest(payload("SessionEnd", new, repo))
    assert session_of(su, new)["end_reason"] == "other"


def test_parallel_hooks_of_a_new_session(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    """Claude Code runs the hooks of parallel tool calls at the same time: the
    first events of a session race to create it."""
    session_id = new_session_id()
    events = [
        payload("PreToolUse", session_id, tmp_path, tool_name="Read", tool_use_id=f"toolu_{i:02d}") for i in range(8)
    ]
    env = hook_env(TOOLSDB_HOOK_LOG=str(hook.log), DATABASE_URL=hook.url)
    running = [
        subprocess.Popen(
            [toolsdb_exe(), "hook", "--strict"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(hook.folder),
            env=env,
        )
        for _ in events
    ]
    for process, event in zip(running, events, strict=True):
        process.stdin.write(json.dumps(event).encode())
        process.stdin.close()
    for process in running:
        assert process.wait(timeout=60) == 0, process.stderr.read().decode()
        process.stdout.close()
        process.stderr.close()
    assert not hook.log.exists(), hook.log.read_text()
    stored = sorted(e["payload"]["tool_use_id"] for e in events_of(su, session_id))
    assert stored == [f"toolu_{i:02d}" for i in range(8)]
    assert scalar(su, "select count(*) from toolsdb.sessions where session_id = %s", (session_id,)) == 1


# ---------------------------------------------------------------------------
# Context from the hook's process: git branch, terminal, configured ids
# ---------------------------------------------------------------------------


def test_git_branch_of_the_payloads_cwd(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    main = git_repo(tmp_path / "main", "ref: refs/heads/feature-x")
    (main / "src" / "pkg").mkdir(parents=True)
    cases = {
        "branch": (main, "feature-x"),
        "subfolder": (main / "src" / "pkg", "feature-x"),
        "slashes": (git_repo(tmp_path / "slashes", "ref: refs/heads/feat/login-form"), "feat/login-form"),
        "detached": (git_repo(tmp_path / "detached", SHA), SHA[:12]),
        "worktree": (git_worktree(tmp_path / "wt-abs", main, "wt-abs", "hotfix"), "hotfix"),
        "worktree-relative": (git_worktree(tmp_path / "wt-rel", main, "wt-rel", "docs", relative=True), "docs"),
        "no-repo": (tmp_path / "plain", None),
    }
    (tmp_path / "plain").mkdir()
    for name, (cwd, branch) in cases.items():
        session_id = f"git-{name}-{uuid.uuid4()}"
        hook.ingest(payload("PreToolUse", session_id, cwd, tool_name="Bash", tool_input={"command": "ls"}))
        assert session_of(su, session_id)["git_branch"] == branch, name

    # A later event from a folder without a repository keeps the branch seen.
    session_id = f"git-keep-{uuid.uuid4()}"
    hook.ingest(payload("SessionStart", session_id, main, source="startup"))
    hook.ingest(payload("Stop", session_id, tmp_path / "plain", stop_hook_active=False))
    assert session_of(su, session_id)["git_branch"] == "feature-x"


def test_terminal_from_the_hooks_environment(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    cases: list[tuple[dict[str, str], str | None, dict[str, str] | None]] = [
        (TMUX, "tmux", {"tmux": TMUX["TMUX"], "tmux_pane": "%3", "term": "tmux-256color"}),
        ({"STY": "4242.pts-1.devbox", "TERM": "screen"}, "screen", {"sty": "4242.pts-1.devbox", "term": "screen"}),
        (VSCODE, "vscode", {"term_program": "vscode", "term_program_version": "1.99.3", "term": "xterm-256color"}),
        ({"TERM_PROGRAM": "iTerm.app", "TERM_PROGRAM_VERSION": "3.5.4"}, "iterm", None),
        ({"TERM_PROGRAM": "Apple_Terminal"}, "apple_terminal", None),
        ({"TERM_PROGRAM": "WezTerm"}, "wezterm", None),
        ({"TERM_PROGRAM": "ghostty", "COLORTERM": "truecolor"}, "ghostty", None),
        ({"KITTY_WINDOW_ID": "3", "TERM": "xterm-kitty"}, "kitty", None),
        ({"WT_SESSION": "a3c1b2d4-0000-4000-8000-000000000000"}, "windows_terminal", None),
        ({"ALACRITTY_WINDOW_ID": "94392829", "TERM": "alacritty"}, "alacritty", None),
        ({"TERM": "xterm-256color", "SSH_TTY": "/dev/pts/4"}, "xterm-256color", None),
        ({"TERM_PROGRAM": "Some Odd Term 2"}, "some_odd_term_2", None),
        ({}, None, {}),
    ]
    repo = git_repo(tmp_path / "app", "ref: refs/heads/main")
    for env, kind, info in cases:
        session_id = new_session_id()
        hook.ingest(payload("UserPromptSubmit", session_id, repo, prompt="hi"), env=env)
        row = session_of(su, session_id)
        assert row["terminal_type"] == kind, env
        assert row["terminal_info"] == (info if info is not None else {k.lower(): v for k, v in env.items()}), env


def test_configured_ids_link_the_session_only_when_they_exist(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    username = unique("hook-user-")
    user_id = insert(su, "users", username=username, email=f"{username}@example.com")["user_id"]
    agent_id = insert(
        su, "agents", name=unique("hook-agent-"), agent_type="coding", model_provider="acme", model_name="m1"
    )["agent_id"]
    project_id = insert(su, "projects", slug=unique("hook-project-"), name="app", owner_id=user_id)["project_id"]
    repo = git_repo(tmp_path / "app", "ref: refs/heads/main")

    # Ids of nothing (well-formed or not) are ignored: the event is stored all the same.
    unknown = new_session_id()
    hook.ingest(
        payload("SessionStart", unknown, repo, source="startup"),
        env={"TOOLSDB_USER_ID": str(uuid.uuid4()), "TOOLSDB_AGENT_ID": "not-a-uuid", "TOOLSDB_PROJECT_ID": "42"},
    )
    row = session_of(su, unknown)
    assert (row["user_id"], row["agent_id"], row["project_id"]) == (None, None, None)
    assert len(events_of(su, unknown)) == 1

    linked = new_session_id()
    ids = {"TOOLSDB_USER_ID": str(user_id), "TOOLSDB_AGENT_ID": str(agent_id), "TOOLSDB_PROJECT_ID": str(project_id)}
    hook.ingest(payload("SessionStart", linked, repo, source="startup"), env=ids)
    row = session_of(su, linked)
    assert (row["user_id"], row["agent_id"], row["project_id"]) == (user_id, agent_id, project_id)
    # Later events without ids, or with unknown ones, keep the link.
    hook.ingest(payload("UserPromptSubmit", linked, repo, prompt="hi"))
    hook.ingest(payload("Stop", linked, repo), env={"TOOLSDB_USER_ID": str(uuid.uuid4())})
    row = session_of(su, linked)
    assert (row["user_id"], row["agent_id"], row["project_id"]) == (user_id, agent_id, project_id)


def test_configured_ids_in_capitals_link_the_session(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    """A uuid is the same uuid in capitals (RFC 9562: case-insensitive on input)."""
    username = unique("hook-user-")
    user_id = insert(su, "users", username=username, email=f"{username}@example.com")["user_id"]
    session_id = new_session_id()
    hook.ingest(
        payload("SessionStart", session_id, tmp_path, source="startup"),
        env={"TOOLSDB_USER_ID": str(user_id).upper()},
    )
    assert session_of(su, session_id)["user_id"] == user_id


# ---------------------------------------------------------------------------
# 2. Unknown events and fields are stored, not rejected
# ---------------------------------------------------------------------------


def test_unknown_events_and_fields_are_stored_as_they_are(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    session_id = new_session_id()
    future = payload(
        "PreWorldDomination",
        session_id,
        tmp_path,
        permission_mode="galaxyBrain",
        plan={"steps": [1, 2.5, None, True], "nested": {"deep": ["é", "日本語", "✓"]}},
        big_number=123456789012345678901234567890,
        empty={},
    )
    hook.ingest(future)
    stored = events_of(su, session_id)
    assert [(e["event_type"], e["payload"]) for e in stored] == [("PreWorldDomination", future)]
    row = session_of(su, session_id)
    assert (row["last_event_type"], row["permission_mode"]) == ("PreWorldDomination", "galaxyBrain")

    # No hook_event_name (or an empty one): event type "unknown".
    for nameless in (payload(None, session_id, tmp_path, extra=1), payload("", session_id, tmp_path)):
        hook.ingest(nameless)
        assert events_of(su, session_id)[-1]["event_type"] == "unknown"
        assert events_of(su, session_id)[-1]["payload"] == nameless
    assert session_of(su, session_id)["last_event_type"] == "unknown"

    # A name with blanks or of more than 100 characters is made a valid type; the payload keeps it.
    odd = payload("Tool Use\tDone", session_id, tmp_path)
    long_name = payload("E" * 150, session_id, tmp_path)
    hook.ingest(odd)
    hook.ingest(long_name)
    last_two = events_of(su, session_id)[-2:]
    assert [e["event_type"] for e in last_two] == ["Tool_Use_Done", "E" * 100]
    assert [e["payload"] for e in last_two] == [odd, long_name]


def test_a_payload_that_is_not_utf8_is_stored_with_replacement_characters(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    session_id = new_session_id()
    raw = json.dumps(payload("PostToolUse", session_id, tmp_path, tool_name="Bash", tool_response="@@")).encode()
    hook.ingest(raw.replace(b"@@", b"caf\xe9 \xff"))
    assert events_of(su, session_id)[0]["payload"]["tool_response"] == "caf\ufffd \ufffd"


@pytest.mark.parametrize(
    ("command", "stdout"),
    [
        pytest.param("find . -name '*.py' -print0", "./a.py\x00./b.py\x00", id="nul"),
        pytest.param("cat notes.md | head -c 100", "done \ud83d", id="lone-surrogate"),
    ],
)
def test_a_payload_with_text_jsonb_cannot_hold_is_stored(
    hook: Hook, su: psycopg.Connection, tmp_path: Path, command: str, stdout: str
) -> None:
    """Bash output may hold NUL bytes (find -print0, a binary file) or half of
    an emoji cut by a byte limit; the JSON on stdin escapes them (\\u0000,
    \\ud83d) and jsonb refuses both: the event must not be lost."""
    session_id = new_session_id()
    event = payload(
        "PostToolUse",
        session_id,
        tmp_path,
        tool_name="Bash",
        tool_input={"command": command},
        tool_response={"stdout": stdout, "stderr": "", "interrupted": False, "isImage": False},
        tool_use_id="toolu_0NUL",
    )
    hook.ingest(event)
    stored = events_of(su, session_id)
    assert len(stored) == 1
    assert stored[0]["payload"]["tool_input"] == event["tool_input"]
    assert stored[0]["payload"]["tool_use_id"] == "toolu_0NUL"


def test_a_large_tool_response_is_stored(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    session_id = new_session_id()
    content = "x = 1\n" * 200_000  # 1.2 MB, a Read of a large file
    event = payload(
        "PostToolUse",
        session_id,
        tmp_path,
        tool_name="Read",
        tool_input={"file_path": f"{tmp_path}/big.py"},
        tool_response={"type": "text", "file": {"filePath": f"{tmp_path}/big.py", "content": content}},
    )
    hook.ingest(event)
    assert events_of(su, session_id)[0]["payload"] == event


# ---------------------------------------------------------------------------
# 3. Failures: logged with the payload, exit 0 (1 with --strict), nothing stored
# ---------------------------------------------------------------------------


VALID = json.dumps(payload("Stop", "failure-session", "/work/app", stop_hook_active=False))

FAILURES = [
    pytest.param('{"session_id": "failure-session", "hook_event_name": ', {}, True, "not JSON", id="malformed-json"),
    pytest.param("", {}, True, "not JSON", id="empty-stdin"),
    pytest.param(json.dumps([json.loads(VALID)]), {}, True, "not list", id="json-array"),
    pytest.param('"Stop"', {}, True, "not str", id="json-string"),
    pytest.param(
        json.dumps({"hook_event_name": "Stop", "cwd": "/work/app"}), {}, True, "no session_id", id="no-session-id"
    ),
    pytest.param(json.dumps({"session_id": 42, "hook_event_name": "Stop"}), {}, True, "no session_id", id="number-id"),
    pytest.param(VALID, {"DATABASE_URL": UNREACHABLE_URL}, True, "cannot connect", id="unreachable-database"),
    pytest.param(VALID, {}, False, "not running", id="embedded-server-not-running"),
    pytest.param(VALID, {"TOOLSDB_HOOK_CONNECT_TIMEOUT": "soon"}, True, "TOOLSDB_HOOK_CONNECT_TIMEOUT", id="timeout"),
]


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize(("raw", "env", "database", "fragment"), FAILURES)
def test_a_failure_is_logged_with_the_payload_and_stores_nothing(
    hook: Hook,
    su: psycopg.Connection,
    tmp_path: Path,
    raw: str,
    env: dict[str, str],
    database: bool,
    fragment: str,
    strict: bool,
) -> None:
    if not database:
        (tmp_path / "no-server").mkdir()
        env = {**env, "TOOLSDB_HOME": str(tmp_path / "no-server")}
    before = totals(su)
    result = hook.run(raw, *(["hook", "--strict"] if strict else ["hook"]), env=env, database=database)

    assert result.code == (1 if strict else 0), result.stderr
    assert result.stdout == ""
    if strict:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    else:
        assert result.stderr == ""
    logged = hook.log_lines()
    assert len(logged) == 1, f"one line should be logged: {logged}"
    assert set(logged[0]) == {"at", "error", "payload"}
    assert fragment in logged[0]["error"]
    assert logged[0]["payload"] == raw
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", logged[0]["at"])
    assert totals(su) == before, "a failed call should store nothing"


def test_an_unreachable_database_fails_fast(hook: Hook) -> None:
    result = hook.run(VALID, env={"DATABASE_URL": UNREACHABLE_URL})
    assert result.code == 0
    assert result.seconds < 10, f"the hook took {result.seconds:.1f} s on a closed port"
    assert "cannot connect" in hook.log_lines()[0]["error"]


def test_each_failure_appends_one_line(hook: Hook, su: psycopg.Connection) -> None:
    hook.run("not json")
    hook.run("[]")
    session_id = new_session_id()
    result = hook.run(payload("Stop", session_id, "/work/app"))
    assert result.code == 0 and result.stdout == "" and result.stderr == ""
    assert [line["payload"] for line in hook.log_lines()] == ["not json", "[]"]
    assert len(events_of(su, session_id)) == 1


def test_the_embedded_server_is_found_through_toolsdb_home(hook: Hook, pg: Pg) -> None:
    """TOOLSDB_HOME pointing at a running server's folder: the hook connects to
    its database "toolsdb" (here a bare one, without the schema)."""
    result = hook.run(VALID, "hook", "--strict", env={"TOOLSDB_HOME": str(pg.server.root)}, database=False)
    assert result.code == 1
    error = hook.log_lines()[0]["error"]
    assert "cannot connect" not in error and "not running" not in error, error
    assert "SQLSTATE" in error and "toolsdb" in error, error


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["hook", "--strcit"], id="misspelt-option"),
        pytest.param(["hook", "--log-file"], id="option-without-value"),
        pytest.param(["hook", "extra"], id="extra-argument"),
    ],
)
def test_a_mistyped_hook_command_never_exits_2(tmp_path: Path, argv: list[str]) -> None:
    """Exit status 2 makes Claude Code block the tool call (PreToolUse) and
    feed stderr to the model: toolsdb hook promises never to exit 2."""
    done = subprocess.run(
        [toolsdb_exe(), *argv],
        input=json.dumps(payload("PreToolUse", new_session_id(), "/work/app", tool_name="Bash")).encode(),
        capture_output=True,
        cwd=str(tmp_path),
        env=hook_env(TOOLSDB_HOOK_LOG=str(tmp_path / "hook.log"), DATABASE_URL=UNREACHABLE_URL),
        timeout=60,
    )
    assert done.returncode != 2, f"toolsdb {' '.join(argv)} exited 2: {done.stderr.decode()}"


def test_an_unwritable_log_is_reported_on_stderr(hook: Hook, tmp_path: Path) -> None:
    for strict in (False, True):
        argv = ["hook", "--log-file", str(tmp_path)] + (["--strict"] if strict else [])
        result = hook.run("not json", *argv)
        assert result.code == (1 if strict else 0)
        assert result.stdout == ""
        assert "not JSON" in result.stderr and "not writable" in result.stderr, result.stderr


def test_where_failures_are_logged(hook: Hook, tmp_path: Path) -> None:
    # --log-file wins over TOOLSDB_HOOK_LOG.
    chosen = tmp_path / "chosen" / "failures.log"
    hook.run("not json", "hook", "--log-file", str(chosen))
    assert not hook.log.exists()
    assert json.loads(chosen.read_text())["payload"] == "not json"
    hook.run("still not json", "hook", f"--log-file={chosen}")
    assert len(chosen.read_text().splitlines()) == 2
    # Without either: $XDG_STATE_HOME/toolsdb/hook.log.
    state = tmp_path / "state"
    done = subprocess.run(
        [toolsdb_exe(), "hook"],
        input=b"not json",
        capture_output=True,
        cwd=str(hook.folder),
        env=hook_env(XDG_STATE_HOME=str(state), DATABASE_URL=hook.url),
        timeout=60,
    )
    assert done.returncode == 0
    assert json.loads((state / "toolsdb" / "hook.log").read_text())["payload"] == "not json"


# ---------------------------------------------------------------------------
# 4. The command line: --help, options before or after the command
# ---------------------------------------------------------------------------


def test_hook_help() -> None:
    result = run_cli("hook", "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "hook" in result.stdout
    for option in ("--strict", "--log-file", "--database"):
        assert option in result.stdout, option
    assert "Store one agent hook payload" in result.stdout
    assert "hook" in run_cli("--help").stdout


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["-d", "{url}", "hook"], id="global-d"),
        pytest.param(["--database", "{url}", "-v", "hook", "--strict"], id="global-database"),
        pytest.param(["hook", "-d", "{url}"], id="command-d"),
        pytest.param(["hook", "--database={url}", "--strict"], id="command-database="),
        pytest.param(["-d{url}", "hook"], id="attached-d-click-path"),
    ],
)
def test_the_database_option_before_or_after_hook(
    hook: Hook, su: psycopg.Connection, tmp_path: Path, argv: list[str]
) -> None:
    session_id = new_session_id()
    event = payload("UserPromptSubmit", session_id, tmp_path, prompt="hi")
    # The option wins over DATABASE_URL (here a closed port).
    result = hook.run(event, *[a.format(url=hook.url) for a in argv], env={"DATABASE_URL": UNREACHABLE_URL})
    assert_stored(result, hook.log)
    assert [e["payload"] for e in events_of(su, session_id)] == [event]


def test_the_click_command_fails_like_the_fast_path(hook: Hook) -> None:
    """``-dURL`` (attached) is left to click: same exit codes and log."""
    lenient = hook.run("not json", f"-d{hook.url}", "hook")
    strict = hook.run("not json", f"-d{hook.url}", "hook", "--strict")
    assert (lenient.code, lenient.stdout, lenient.stderr) == (0, "", "")
    assert strict.code == 1 and strict.stderr.startswith("Error: ") and "not JSON" in strict.stderr
    assert len(hook.log_lines()) == 2


def test_libpq_variables_pick_the_database(hook: Hook, su: psycopg.Connection, pg: Pg) -> None:
    session_id = new_session_id()
    event = payload("Stop", session_id, "/work/app", stop_hook_active=False)
    pg_vars = {"PGHOST": pg.host, "PGPORT": str(pg.port), "PGUSER": "postgres", "PGDATABASE": hook.db}
    assert_stored(hook.run(event, env=pg_vars, database=False), hook.log)
    assert len(events_of(su, session_id)) == 1


# ---------------------------------------------------------------------------
# 5. toolsdb.hook_ingest() in SQL
# ---------------------------------------------------------------------------


def test_hook_ingest_in_sql_stores_what_the_command_stores(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "app", "ref: refs/heads/feature-x")
    by_command, by_sql = new_session_id(), new_session_id()
    event = payload(
        "PreToolUse", by_command, repo, tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="toolu_1"
    )
    hook.ingest(event, env=TMUX)
    context = {
        "git_branch": "feature-x",
        "terminal_type": "tmux",
        "terminal_info": {"tmux": TMUX["TMUX"], "tmux_pane": "%3", "term": "tmux-256color"},
    }
    same = {**event, "session_id": by_sql}
    event_id = scalar(su, "select toolsdb.hook_ingest(%s, %s)", (Jsonb(same), Jsonb(context)))
    assert event_id == events_of(su, by_sql)[0]["event_id"]
    assert events_of(su, by_sql)[0]["payload"] == same
    skip = {"session_id", "started_at", "last_activity_at", "created_at", "updated_at"}
    command_row, sql_row = session_of(su, by_command), session_of(su, by_sql)
    assert {k: v for k, v in sql_row.items() if k not in skip} == {
        k: v for k, v in command_row.items() if k not in skip
    }
    # The context is optional.
    bare = new_session_id()
    scalar(su, "select toolsdb.hook_ingest(%s)", (Jsonb({**event, "session_id": bare}),))
    scalar(su, "select toolsdb.hook_ingest(%s, null)", (Jsonb({**event, "session_id": bare}),))
    assert session_of(su, bare)["terminal_info"] == {} and len(events_of(su, bare)) == 2


@pytest.mark.parametrize(
    ("payload_sql", "context_sql"),
    [
        pytest.param("'[]'::jsonb", "'{}'::jsonb", id="array"),
        pytest.param("'\"Stop\"'::jsonb", "'{}'::jsonb", id="string"),
        pytest.param("'42'::jsonb", "'{}'::jsonb", id="number"),
        pytest.param("'null'::jsonb", "'{}'::jsonb", id="json-null"),
        pytest.param("null::jsonb", "'{}'::jsonb", id="sql-null"),
        pytest.param('\'{"hook_event_name": "Stop"}\'::jsonb', "'{}'::jsonb", id="no-session-id"),
        pytest.param("'{\"session_id\": 42}'::jsonb", "'{}'::jsonb", id="number-session-id"),
        pytest.param("'{\"session_id\": null}'::jsonb", "'{}'::jsonb", id="null-session-id"),
        pytest.param('\'{"session_id": ""}\'::jsonb', "'{}'::jsonb", id="empty-session-id"),
        pytest.param('\'{"session_id": "s1"}\'::jsonb', "'[]'::jsonb", id="context-array"),
    ],
)
def test_hook_ingest_in_sql_refuses_bad_input(su: psycopg.Connection, payload_sql: str, context_sql: str) -> None:
    before = totals(su)
    expect_error(su, "22023", lambda: su.execute(f"select toolsdb.hook_ingest({payload_sql}, {context_sql})"))
    assert totals(su) == before


def test_idle_rules_in_sql(su: psycopg.Connection) -> None:
    session_id = new_session_id()

    def ingest(event: str, **fields) -> bool:
        scalar(su, "select toolsdb.hook_ingest(%s)", (Jsonb(payload(event, session_id, "/work/app", **fields)),))
        return session_of(su, session_id)["is_idle"]

    def go_idle() -> None:
        assert ingest("Notification", notification_type="idle_prompt", message="Claude is waiting for your input")

    # A session first seen through an idle notification starts idle.
    go_idle()
    for waking in ("UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure", "SessionStart"):
        go_idle()
        assert ingest(waking) is False, f"{waking} should wake the session"
    for neutral in ("Stop", "SubagentStop", "PermissionRequest", "PreCompact", "PostCompact", "FutureEvent"):
        go_idle()
        assert ingest(neutral) is True, f"{neutral} should leave the session idle"
    go_idle()
    assert ingest("Notification", notification_type="permission_prompt", message="Claude needs your permission")
    assert ingest("Notification", notification_type="auth_success", message="Logged in") is True
    assert ingest("SessionEnd", reason="other") is False
    # Not idle: other notifications do not make it idle.
    assert ingest("SessionStart", source="resume") is False
    assert (
        ingest("Notification", notification_type="permission_prompt", message="Claude needs your permission") is False
    )


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"message": "Claude needs your permission to use Bash"}, id="permission-message"),
        pytest.param({}, id="no-message"),
    ],
)
def test_a_notification_without_type_that_is_not_idle_is_stored(
    hook: Hook, su: psycopg.Connection, tmp_path: Path, fields: dict
) -> None:
    """Older Claude Code versions sent Notification without notification_type;
    only "waiting for your input" means idle, anything else must be stored, not idle."""
    session_id = new_session_id()
    hook.ingest(payload("SessionStart", session_id, tmp_path, source="startup"))
    notification = payload("Notification", session_id, tmp_path, **fields)
    hook.ingest(notification)
    assert events_of(su, session_id)[-1]["payload"] == notification
    assert session_of(su, session_id)["is_idle"] is False
    # A new session seen first through such a notification too.
    other = new_session_id()
    hook.ingest({**notification, "session_id": other})
    assert session_of(su, other)["is_idle"] is False
