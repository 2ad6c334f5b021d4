"""toolsdb's errors are plain exceptions: the library raises them without
click, and the command line turns any of them into one ``Error:`` line and
its exit code (in ToolsdbGroup, the root group of toolsdb.cli).

No database: these run in a second or so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
import redis.exceptions
from click.testing import CliRunner

from toolsdb.cli import ToolsdbGroup, cli
from toolsdb.errors import MigrationError, MissingExtra, ToolsdbError
from toolsdb.redis import LockLost, LockTimeout, RedisConfigError, RedisUnavailable, SessionExists
from toolsdb.tools import DatabaseError
from toolsdb.validator import ValidationRefused

from .conftest import ROOT, clean_env


def test_toolsdb_error_is_a_plain_exception_with_a_one_line_message() -> None:
    error = ToolsdbError("cannot   do it:\n  the reason\ton two lines ")

    assert not isinstance(error, click.ClickException), "library errors must not derive from click's"
    assert error.message == "cannot do it: the reason on two lines"
    assert str(error) == error.message == error.format_message()
    assert ToolsdbError.exit_code == 1


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        pytest.param(MigrationError, (), id="MigrationError"),
        pytest.param(MissingExtra, (), id="MissingExtra"),
        pytest.param(DatabaseError, (), id="DatabaseError"),
        pytest.param(ValidationRefused, (), id="ValidationRefused"),
        pytest.param(LockTimeout, (TimeoutError,), id="LockTimeout"),
        pytest.param(LockLost, (RuntimeError,), id="LockLost"),
        pytest.param(SessionExists, (KeyError,), id="SessionExists"),
        pytest.param(RedisConfigError, (ValueError,), id="RedisConfigError"),
        pytest.param(RedisUnavailable, (redis.exceptions.ConnectionError,), id="RedisUnavailable"),
    ],
)
def test_every_library_error_is_a_toolsdb_error_and_keeps_its_other_bases(error: type, bases: tuple) -> None:
    assert issubclass(error, ToolsdbError)
    assert not issubclass(error, click.ClickException)
    for base in bases:
        assert issubclass(error, base), f"{error.__name__} should still be a {base.__name__}"


def test_a_session_exists_error_reads_as_its_message_not_as_a_key() -> None:
    assert str(SessionExists("session 'a' exists")) == "session 'a' exists", "KeyError's quoting should not show"


def test_the_library_imports_without_click() -> None:
    code = (
        "import sys\n"
        "import toolsdb.errors, toolsdb.tools, toolsdb.validator, toolsdb.pool, toolsdb.hook, toolsdb.redis\n"
        "print(sorted(m for m in sys.modules if m == 'click' or m.startswith('click.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=clean_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"the library modules imported click: {result.stdout}"


def test_the_root_group_shows_a_toolsdb_error_as_one_line_with_its_exit_code() -> None:
    class Refused(ToolsdbError):
        exit_code = 3

    group = ToolsdbGroup("toolsdb")

    @group.command()
    def boom() -> None:
        raise Refused("refused:\n  because")

    result = CliRunner().invoke(group, ["boom"], prog_name="toolsdb")

    assert result.exit_code == 3, result.output
    assert result.output == "Error: refused: because\n"
    assert not isinstance(result.exception, ToolsdbError), "the error should be shown, not left to the caller"


def test_a_command_of_the_real_cli_shows_its_toolsdb_error_as_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sql"

    result = CliRunner().invoke(cli, ["validate", str(missing)], prog_name="toolsdb")

    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {missing}: no such file\n"


# The console script with redis, mcp and pglast made unimportable (a meta-path
# finder): tests/test_packaging.py does the same in a real core-only install.
BLOCKED = (
    "import importlib.abc, sys\n"
    "class Blocker(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('redis', 'mcp', 'pglast'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Blocker())\n"
    "sys.argv[0] = 'toolsdb'\n"
    "from toolsdb.launcher import main\n"
    "main()\n"
)


def run_without_extras(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(("mcp",), "Error: toolsdb mcp needs the MCP SDK: pip install 'toolsdb[mcp]'", id="mcp"),
        pytest.param(
            ("validate", "-"), "Error: toolsdb validate needs pglast: pip install 'toolsdb[validate]'", id="validate"
        ),
        pytest.param(
            ("redis", "ping"), "Error: toolsdb redis ping needs redis-py: pip install 'toolsdb[redis]'", id="redis"
        ),
    ],
)
def test_a_command_without_its_extra_names_it_in_one_line(args: tuple[str, ...], line: str, tmp_path: Path) -> None:
    result = run_without_extras(*args, cwd=tmp_path)

    assert result.returncode == 1, f"toolsdb {' '.join(args)} should exit 1: {result.stderr}"
    assert result.stderr.strip() == line, result.stderr
    assert not (tmp_path / ".toolsdb").exists(), "a missing extra should be found before any server is started"


def test_help_needs_no_extra(tmp_path: Path) -> None:
    result = run_without_extras("--help", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: toolsdb"), result.stdout
