"""``toolsdb claude-settings`` (runner/toolsdb/claude_settings.py): the hooks
block printed and merged into a settings.json, run as the installed console
script; the printed hook command stores an event in a real database."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import psycopg
import pytest

from toolsdb.claude_settings import DEFAULT_EVENTS, DEFAULT_URL, HOOK_EVENTS, OPT_IN_EVENTS, Options, is_ours

from .conftest import clean_env, run_cli, toolsdb_exe
from .hookhelpers import DOCUMENTED_EVENTS, Hook, events_of, hook_runner, module_su, new_session_id, payload

hook = pytest.fixture(hook_runner)
su = pytest.fixture(module_su)

USER_SETTINGS = {
    "model": "opus",
    "permissions": {"allow": ["Bash(npm test)"], "deny": ["Read(./.env)"]},
    "env": {"MY_FLAG": "1"},
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/check-bash.sh", "timeout": 5}]},
        ],
        "Stop": [
            {
                "hooks": [
                    {"type": "command", "command": "notify-send done"},
                    # An older hand-written toolsdb hook: toolsdb's, replaced.
                    {"type": "command", "command": "toolsdb hook"},
                ]
            }
        ],
        # From an earlier --include WorktreeCreate run: toolsdb's, dropped now.
        "WorktreeCreate": [{"hooks": [{"type": "command", "command": "/opt/venv/bin/toolsdb hook --strict"}]}],
        "WorktreeRemove": [{"hooks": [{"type": "command", "command": "~/bin/cleanup.sh"}]}],
    },
    "statusLine": {"type": "command", "command": "~/bin/status.sh"},
}


def settings(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``toolsdb claude-settings ARGS`` in ``tmp_path``, the embedded server named by TOOLSDB_HOME."""
    return run_cli(
        "claude-settings", *args, cwd=tmp_path, env={"TOOLSDB_HOME": str(tmp_path / ".toolsdb"), **(env or {})}
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def our_command(tmp_path: Path) -> str:
    return f"TOOLSDB_HOME={tmp_path / '.toolsdb'} {toolsdb_exe()} hook"


def test_the_events_are_claude_codes_30() -> None:
    assert len(HOOK_EVENTS) == len(set(HOOK_EVENTS)) == 30
    assert set(HOOK_EVENTS) == set(DOCUMENTED_EVENTS)
    assert (
        set(DEFAULT_EVENTS)
        == set(HOOK_EVENTS) - {"WorktreeCreate", "MessageDisplay"}
        == set(HOOK_EVENTS) - set(OPT_IN_EVENTS)
    )


def test_print_every_event_but_the_two(tmp_path: Path) -> None:
    done = settings(tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert list(printed) == ["hooks"]
    assert list(printed["hooks"]) == list(DEFAULT_EVENTS)
    for event, groups in printed["hooks"].items():
        # No matcher: every tool, source and notification type.
        assert groups == [{"hooks": [{"type": "command", "command": our_command(tmp_path), "timeout": 10}]}], event
    assert done.stderr.count("\n") == 1
    assert done.stderr.rstrip().endswith(
        f"claude mcp add --scope user toolsdb -e TOOLSDB_HOME={tmp_path / '.toolsdb'} -- {toolsdb_exe()} mcp"
    )
    quiet = settings(tmp_path, "--no-mcp")
    assert (quiet.returncode, quiet.stderr, quiet.stdout) == (0, "", done.stdout)


def test_include_adds_the_two(tmp_path: Path) -> None:
    done = settings(tmp_path, "--include", "WorktreeCreate", "--include", "messagedisplay", "--no-mcp")
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)["hooks"]) == list(HOOK_EVENTS)
    assert_one_line_error(settings(tmp_path, "--include", "PreToolUsed"), "PreToolUsed", "not a Claude Code hook event")


def test_the_database_url_is_filled_in_quoted(tmp_path: Path) -> None:
    url = "postgresql://app:s3cret@db.internal:5432/toolsdb?sslmode=require&application_name=hooks"
    done = settings(tmp_path, "--no-mcp", env={"DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    command = json.loads(done.stdout)["hooks"]["Stop"][0]["hooks"][0]["command"]
    assert command == f"DATABASE_URL={shlex.quote(url)} {toolsdb_exe()} hook"
    assert "DATABASE_URL='postgresql://" in command
    # --database wins, as for every command.
    given = settings(tmp_path, "--no-mcp", "--database", "postgresql://other@h/db", env={"DATABASE_URL": url})
    assert "DATABASE_URL=postgresql://other@h/db " in given.stdout


def test_no_database_is_one_line(tmp_path: Path) -> None:
    done = run_cli("claude-settings", cwd=tmp_path)
    assert_one_line_error(done, "no database")


def test_http_hooks(tmp_path: Path) -> None:
    done = run_cli("claude-settings", "--type", "http", "--no-mcp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    hooks = json.loads(done.stdout)["hooks"]
    assert list(hooks) == list(DEFAULT_EVENTS)
    assert hooks["PreToolUse"] == [
        {
            "hooks": [
                {
                    "type": "http",
                    "url": "http://127.0.0.1:8787/hooks",
                    "headers": {"Authorization": "Bearer $TOOLSDB_TOKEN"},
                    "allowedEnvVars": ["TOOLSDB_TOKEN"],
                    "timeout": 10,
                }
            ]
        }
    ]
    other = settings(tmp_path, "--type", "http", "--url", "https://hooks.example/hooks", "--token-var", "TDB")
    assert other.returncode == 0, other.stderr
    entry = json.loads(other.stdout)["hooks"]["PostToolUse"][0]["hooks"][0]
    assert (entry["url"], entry["headers"], entry["allowedEnvVars"]) == (
        "https://hooks.example/hooks",
        {"Authorization": "Bearer $TDB"},
        ["TDB"],
    )
    assert "claude mcp add" in other.stderr
    assert_one_line_error(settings(tmp_path, "--type", "http", "--url", "ftp://x/hooks"), "--url")
    assert_one_line_error(settings(tmp_path, "--type", "http", "--token-var", "my-token"), "--token-var")
    # Claude Code sends SessionStart and Setup to command hooks only ("HTTP hooks are
    # not supported for SessionStart"): toolsdb hook --post sends them to the same URL.
    # So do the events after which the transcript has new lines: --post also sends them
    # (POST /transcripts), which an http hook cannot.
    for event in ("SessionStart", "Setup", "Stop", "SubagentStop", "PreCompact", "SessionEnd"):
        (start,) = json.loads(other.stdout)["hooks"][event][0]["hooks"]
        assert start["type"] == "command"
        assert start["command"].endswith(" hook --post https://hooks.example/hooks --token-var TDB")


def test_merge_keeps_the_users_settings_backs_up_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    original = json.dumps(USER_SETTINGS, indent=4) + "\n"
    path.write_text(original)
    path.chmod(0o640)
    done = settings(tmp_path, "--write", str(path), "--no-mcp")
    assert done.returncode == 0, done.stderr
    backups = sorted(tmp_path.glob("settings.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == original
    assert (done.stdout, str(backups[0]) in done.stderr) == ("", True)
    assert path.stat().st_mode & 0o777 == 0o640
    merged = json.loads(path.read_text())
    # The other keys, as they were, in their order.
    assert list(merged) == list(USER_SETTINGS)
    assert {k: v for k, v in merged.items() if k != "hooks"} == {k: v for k, v in USER_SETTINGS.items() if k != "hooks"}
    ours = {"hooks": [{"type": "command", "command": our_command(tmp_path), "timeout": 10}]}
    hooks = merged["hooks"]
    assert hooks["PreToolUse"] == [*USER_SETTINGS["hooks"]["PreToolUse"], ours]
    assert hooks["Stop"] == [{"hooks": [{"type": "command", "command": "notify-send done"}]}, ours]
    assert "WorktreeCreate" not in hooks
    assert hooks["WorktreeRemove"] == [*USER_SETTINGS["hooks"]["WorktreeRemove"], ours]
    assert set(hooks) == set(DEFAULT_EVENTS)
    # Twice: the same file, no second backup.
    text = path.read_text()
    again = settings(tmp_path, "--write", str(path), "--no-mcp")
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stderr
    assert path.read_text() == text
    assert len(list(tmp_path.glob("settings.json.bak-*"))) == 1
    # http instead: the command hooks are toolsdb's too, replaced.
    http = settings(tmp_path, "--write", str(path), "--type", "http", "--no-mcp")
    assert http.returncode == 0, http.stderr
    hooks = json.loads(path.read_text())["hooks"]
    assert hooks["PreToolUse"][0] == USER_SETTINGS["hooks"]["PreToolUse"][0]
    assert [h["type"] for g in hooks["PreToolUse"][1:] for h in g["hooks"]] == ["http"]
    assert len(list(tmp_path.glob("settings.json.bak-*"))) == 2
    # No temporary file left behind.
    assert not list(tmp_path.glob(".settings.json.*"))


def test_write_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "settings.json").write_text('{"model": "opus"}\n')
    link = tmp_path / "settings.json"
    link.symlink_to(dotfiles / "settings.json")
    done = settings(tmp_path, "--write", str(link), "--no-mcp")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink()
    assert json.loads(link.read_text())["model"] == "opus"
    assert len(list(dotfiles.glob("settings.json.bak-*"))) == 1


def test_write_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "settings.json"
    path.parent.mkdir()
    done = settings(tmp_path, "--write", str(path), "--include", "MessageDisplay", "--no-mcp")
    assert done.returncode == 0, done.stderr
    assert list(json.loads(path.read_text())["hooks"]) == [e for e in HOOK_EVENTS if e != "WorktreeCreate"]
    assert not list(path.parent.glob("*.bak-*"))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"hooks": {"Stop": []},}\n', id="trailing-comma"),
        pytest.param("[1, 2]\n", id="not-an-object"),
        pytest.param('{"hooks": ["toolsdb hook"]}\n', id="hooks-not-an-object"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
    ],
)
def test_a_bad_file_is_refused_and_untouched(tmp_path: Path, text: str | bytes) -> None:
    path = tmp_path / "settings.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    before = path.read_bytes()
    done = settings(tmp_path, "--write", str(path), "--no-mcp")
    assert_one_line_error(done, str(path))
    assert "Traceback" not in done.stderr
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


def test_an_unwritable_path_is_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert_one_line_error(settings(tmp_path, "--write", str(a_file / "settings.json"), "--no-mcp"), "cannot")
    assert_one_line_error(settings(tmp_path, "--write", str(tmp_path / "no" / "settings.json"), "--no-mcp"), "cannot")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert_one_line_error(settings(tmp_path, "--write", str(folder), "--no-mcp"))


def test_mcp_json_merge_keeps_other_servers(tmp_path: Path) -> None:
    path = tmp_path / ".mcp.json"
    other = {"mcpServers": {"github": {"type": "http", "url": "https://api.example/mcp"}}}
    path.write_text(json.dumps(other))
    done = settings(tmp_path, "--mcp-json", str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hooks"]  # the settings are still printed
    assert "claude mcp add" not in done.stderr
    servers = json.loads(path.read_text())["mcpServers"]
    assert servers == {
        **other["mcpServers"],
        "toolsdb": {
            "type": "stdio",
            "command": toolsdb_exe(),
            "args": ["mcp"],
            "env": {"TOOLSDB_HOME": str(tmp_path / ".toolsdb")},
        },
    }
    assert len(list(tmp_path.glob(".mcp.json.bak-*"))) == 1
    assert "unchanged" in settings(tmp_path, "--mcp-json", str(path)).stderr
    assert_one_line_error(settings(tmp_path, "--mcp-json", str(path), "--no-mcp"), "--no-mcp")


def test_the_printed_hook_command_stores_an_event(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    """The command as Claude Code runs it (through a shell, PATH without toolsdb)."""
    done = run_cli("claude-settings", "--no-mcp", cwd=tmp_path, env={"DATABASE_URL": hook.url})
    assert done.returncode == 0, done.stderr
    command = json.loads(done.stdout)["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"]
    session_id = new_session_id()
    event = payload("UserPromptSubmit", session_id, tmp_path, prompt="hello")
    env = {k: v for k, v in clean_env().items() if not k.startswith("TOOLSDB_")}
    env.update(PATH="/usr/bin:/bin", TOOLSDB_HOOK_LOG=str(hook.log))
    ran = subprocess.run(
        ["bash", "-c", command], input=json.dumps(event), capture_output=True, text=True, env=env, timeout=60
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")
    assert not hook.log.exists()
    assert [e["payload"] for e in events_of(su, session_id)] == [event]


@pytest.mark.parametrize(
    ("hook", "ours"),
    [
        ({"type": "command", "command": "toolsdb hook"}, True),
        ({"type": "command", "command": "/opt/venv/bin/toolsdb hook --strict"}, True),
        ({"type": "command", "command": "TOOLSDB_HOME='/a b/.toolsdb' '/a b/toolsdb' hook"}, True),
        ({"type": "command", "command": "DATABASE_URL=postgresql://h/db toolsdb hook"}, True),
        ({"type": "command", "command": "my-toolsdb hook"}, False),
        ({"type": "command", "command": "toolsdb hooks-report"}, False),
        ({"type": "command", "command": "toolsdb mcp"}, False),
        ({"type": "http", "url": DEFAULT_URL}, True),
        ({"type": "http", "url": "https://tdb.example/hooks", "allowedEnvVars": ["TOOLSDB_TOKEN"]}, True),
        ({"type": "http", "url": "https://audit.example/hooks", "allowedEnvVars": ["AUDIT_TOKEN"]}, False),
        ({"type": "http", "url": "https://other.example/events"}, False),
        ({"type": "prompt", "prompt": "toolsdb hook"}, False),
        ("toolsdb hook", False),
    ],
)
def test_which_hooks_are_toolsdbs(hook: object, ours: bool) -> None:
    assert is_ours(hook, Options()) is ours
