"""One database, wherever a command starts (runner/toolsdb/serverinfo.py locate_root).

With nothing configured, every command finds the one embedded server:
TOOLSDB_HOME, else the nearest ``.toolsdb/`` of the working directory or its
parents, else the per-user default that ``make migrate`` (``toolsdb migrate
--remember``) recorded in ``$XDG_CONFIG_HOME/toolsdb/home``. Only ``toolsdb
migrate`` (and ``reset``, ``server start``) create a server, and only when none
is found; ``toolsdb mcp``, ``toolsdb hook``, the other commands and the Python
API fail with one line instead of initializing an empty server where they
happen to start (before the fix, `toolsdb mcp` started by Claude Code in a
project folder created a new, empty server in its ``.toolsdb/``).

One server for the module: ``checkout/`` migrated with ``--remember`` under
the configuration folder ``config/``; the other tests run the real console
script from other folders, with that configuration folder or an empty one.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from .conftest import ROOT, clean_env, run_cli, toolsdb_exe


@dataclass
class Setup:
    checkout: Path  # where `toolsdb migrate --remember` created the server
    config: Path  # XDG_CONFIG_HOME holding the record
    empty_config: Path  # XDG_CONFIG_HOME with no record
    migrated: subprocess.CompletedProcess[str]

    def env(self, recorded: bool = True, **extra: str) -> dict[str, str]:
        return clean_env(XDG_CONFIG_HOME=str(self.config if recorded else self.empty_config), **extra)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("one-database")
    checkout, config, empty = base / "checkout", base / "config", base / "empty-config"
    for folder in (checkout / "docs", config, empty):
        folder.mkdir(parents=True)
    migrated = run_cli("migrate", "--remember", cwd=checkout, env=clean_env(XDG_CONFIG_HOME=str(config)))
    try:
        assert migrated.returncode == 0, migrated.stderr
        yield Setup(checkout, config, empty, migrated)
    finally:
        run_cli("server", "stop", cwd=checkout, env=clean_env(XDG_CONFIG_HOME=str(config)))


def one_error_line(result: subprocess.CompletedProcess[str], *facts: str) -> str:
    assert result.returncode == 1, f"exit {result.returncode}: {result.stdout} {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fact in facts:
        assert fact in lines[0], f"{fact!r} not in {lines[0]!r}"
    return lines[0]


def status_lines(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    assert result.returncode == 0, result.stderr
    database = next(ln for ln in result.stdout.splitlines() if ln.startswith("database: "))
    server = next(ln for ln in result.stdout.splitlines() if ln.startswith("server:   "))
    return database, server


# -- the record ------------------------------------------------------------------------


def test_make_migrate_records_the_server_it_migrated(setup: Setup) -> None:
    record = setup.config / "toolsdb" / "home"
    assert record.read_text() == f"{setup.checkout / '.toolsdb'}\n"
    assert f"recorded {setup.checkout / '.toolsdb'} as the default server" in setup.migrated.stdout
    written = record.stat().st_mtime_ns

    again = run_cli("migrate", "--remember", cwd=setup.checkout, env=setup.env())

    assert again.returncode == 0, again.stderr
    assert "recorded" not in again.stdout, "an unchanged record is not written again"
    assert record.stat().st_mtime_ns == written
    dry = subprocess.run(["make", "-n", "migrate"], cwd=ROOT, capture_output=True, text=True, env=clean_env())
    assert "migrate --remember" in dry.stdout, f"make migrate should record the server: {dry.stdout}"


# -- finding it ---------------------------------------------------------------------------


def test_a_subfolder_of_the_checkout_uses_its_server(setup: Setup) -> None:
    docs = setup.checkout / "docs"

    migrated = run_cli("migrate", cwd=docs, env=setup.env(recorded=False))
    status = run_cli("status", cwd=docs, env=setup.env(recorded=False))

    assert migrated.returncode == 0, migrated.stderr
    assert "nothing to migrate" in migrated.stdout and str(setup.checkout / ".toolsdb") in migrated.stdout
    assert not (docs / ".toolsdb").exists(), "cd docs && toolsdb migrate created a second server"
    database, server = status_lines(status)
    assert database.endswith(f"(embedded server in {setup.checkout / '.toolsdb'})"), database
    assert server.endswith("(found by the enclosing folder)"), server


def test_any_folder_finds_the_recorded_server(setup: Setup, tmp_path: Path) -> None:
    status = run_cli("status", cwd=tmp_path, env=setup.env())

    database, server = status_lines(status)
    assert database.endswith(f"(embedded server in {setup.checkout / '.toolsdb'})"), database
    assert "found by the per-user default in" in server, server
    assert not (tmp_path / ".toolsdb").exists()


def test_the_python_api_from_any_folder_uses_the_recorded_server(setup: Setup, tmp_path: Path) -> None:
    code = (
        "from toolsdb.tools import BugEscalation\n"
        "with BugEscalation.connect() as bugs:\n"
        "    print(bugs.conn.execute('select count(*) from toolsdb.bug_escalations').fetchone()[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=setup.env(), capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().isdigit()
    assert not (tmp_path / ".toolsdb").exists()


def test_mcp_started_in_a_project_folder_serves_the_recorded_database(setup: Setup, tmp_path: Path) -> None:
    # As Claude Code starts it: in the project's folder, nothing configured.
    params = StdioServerParameters(command=toolsdb_exe(), args=["mcp"], env=setup.env(), cwd=str(tmp_path))

    async def scenario() -> str:
        with open(tmp_path / "mcp.log", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool("bug_list", {})
                assert not result.is_error, result.content
                return result.structured_content

    listed = anyio.run(scenario)

    assert isinstance(listed, dict), listed
    assert not (tmp_path / ".toolsdb").exists(), "toolsdb mcp created a server in the project folder"


# -- nothing found: one line, nothing created ---------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["status"], ["seed"], ["config", "list"], ["server", "url"], ["mcp"], ["audit", "verify"]],
    ids=lambda a: "-".join(a),
)
def test_with_no_server_anywhere_a_command_says_how_to_point_it_at_one(
    setup: Setup, tmp_path: Path, args: list[str]
) -> None:
    result = run_cli(*args, cwd=tmp_path, env=setup.env(recorded=False), input="")

    line = one_error_line(result, "no database", "make migrate", "TOOLSDB_HOME", "DATABASE_URL")
    assert str(tmp_path) in line
    assert not (tmp_path / ".toolsdb").exists(), f"toolsdb {shlex.join(args)} created a server"


def test_with_no_server_anywhere_the_python_api_raises_one_line(setup: Setup, tmp_path: Path) -> None:
    code = (
        "from toolsdb.errors import ToolsdbError\n"
        "from toolsdb.tools import VisionCache\n"
        "try:\n"
        "    VisionCache.connect()\n"
        "except ToolsdbError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=setup.env(recorded=False),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("no database:"), result.stdout
    assert not (tmp_path / ".toolsdb").exists(), "the Python API created a server"


def test_with_no_server_anywhere_the_hook_logs_the_event_and_creates_nothing(setup: Setup, tmp_path: Path) -> None:
    log = tmp_path / "hook.log"
    payload = json.dumps({"session_id": "one-database", "hook_event_name": "Stop", "cwd": str(tmp_path)})

    result = run_cli("hook", cwd=tmp_path, env=setup.env(recorded=False, TOOLSDB_HOOK_LOG=str(log)), input=payload)

    assert result.returncode == 0, result.stderr
    assert "one-database" in log.read_text(), "the payload should be in the hook's log"
    assert not (tmp_path / ".toolsdb").exists(), "toolsdb hook created a server"


def test_a_record_naming_a_removed_server_is_not_followed(setup: Setup, tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "toolsdb").mkdir(parents=True)
    (config / "toolsdb" / "home").write_text(f"{tmp_path / 'gone' / '.toolsdb'}\n")
    work = tmp_path / "work"
    work.mkdir()

    result = run_cli("status", cwd=work, env=clean_env(XDG_CONFIG_HOME=str(config)))

    one_error_line(result, "no database")
    assert not (work / ".toolsdb").exists() and not (tmp_path / "gone").exists()


def test_toolsdb_home_without_a_server_is_named_in_one_line(setup: Setup, tmp_path: Path) -> None:
    home = tmp_path / "home"

    result = run_cli("status", cwd=setup.checkout, env=setup.env(TOOLSDB_HOME=str(home)))

    one_error_line(result, f"TOOLSDB_HOME={home} holds no embedded server")
    assert not home.exists()


# -- the README -----------------------------------------------------------------------------


def test_the_readmes_claude_mcp_lines_name_the_server_before_its_options() -> None:
    # `claude mcp add [options] <name> <command> [args...]`: -e/--env takes any
    # number of values, so a name after it is read as one more variable
    # ("Invalid environment variable format: toolsdb").
    readme = (ROOT / "README.md").read_text()
    lines = [ln.strip() for ln in readme.splitlines() if ln.strip().startswith("claude mcp add")]
    assert lines, "the README shows how to add the MCP server to Claude Code"
    for line in lines:
        words = shlex.split(line.split(" -- ")[0])[3:]
        while words and words[0] in ("--scope", "-s", "--transport", "-t"):
            words = words[2:]
        assert words and not words[0].startswith("-"), f"the server's name should come first: {line}"
        assert words[0] == "toolsdb", line
    assert any("TOOLSDB_HOME=" in ln for ln in lines), "the README shows TOOLSDB_HOME in a claude mcp line"
    assert all(re.search(r" -- \S*toolsdb mcp$", ln) for ln in lines), lines
