"""``toolsdb hook`` (runner/toolsdb/hook.py) through a whole session: every
documented event stored, on each PostgreSQL major of the suite.

The command runs as Claude Code runs it: the installed console script in a
subprocess, one JSON payload on stdin, in an environment the test controls
(no PG* variables, no terminal variables unless a test sets them, the
failure log in the test's folder), with the payload's cwd in a temporary
folder holding a fake ``.git``; payloads follow the Claude Code hooks
reference (tests/hookhelpers.py). The tests share one clone of the migrated
template per module and major (conftest.py's ``committed``), tell their rows
apart by session id, and read it through an autocommit superuser connection
(``su``).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .conftest import toolsdb_exe
from .dbhelpers import Row, rows, scalar
from .hookhelpers import (
    DOCUMENTED_EVENTS,
    TMUX,
    VSCODE,
    Hook,
    events_of,
    git_repo,
    git_worktree,
    hook_env,
    hook_runner,
    module_su,
    new_session_id,
    payload,
    session_of,
)

hook = pytest.fixture(hook_runner)
su = pytest.fixture(module_su)


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
        # Only with `toolsdb claude-settings --include MessageDisplay`: one per streamed chunk.
        Step(
            p(
                "MessageDisplay",
                turn_id="0b7c5a52-3f4e-4d7a-9a51-6d3e2c1b0a99",
                message_id="1c8d6b63-4a5f-4e8b-8b62-7e4f3d2c1baa",
                index=0,
                final=True,
                delta="Fixed; the new test passes.\n",
            ),
            TMUX,
            awake,
        ),
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
