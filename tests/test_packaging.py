"""`pip install .` into a fresh virtualenv gives a `toolsdb` that migrates a
database from any directory: the SQL ships inside the wheel. The plain install
has only the core dependencies: the commands that need an extra (redis, mcp,
validate, serve) say which in one line; `toolsdb[all]` brings them."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from .conftest import ROOT, Pg, clean_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("toolsdb-*.whl")
    return built


EXTRA_MODULES = ("redis", "mcp", "pglast", "prometheus_client", "uvicorn", "matplotlib")


def fresh_venv(tmp_path_factory, requirement: str) -> Path:
    """A new virtualenv (no system site-packages) with ``requirement`` and its dependencies."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", requirement],
        check=True,
        capture_output=True,
        text=True,
    )
    return env_dir


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory) -> Iterator[Path]:
    """A fresh virtualenv with only the wheel and its core dependencies (no extra)."""
    yield fresh_venv(tmp_path_factory, str(wheel))


@pytest.fixture(scope="session")
def installed_all(wheel: Path, tmp_path_factory) -> Iterator[Path]:
    """A fresh virtualenv with ``toolsdb[all]``: the wheel and every extra."""
    yield fresh_venv(tmp_path_factory, f"toolsdb[all] @ {wheel.as_uri()}")


def run_in(env_dir: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A program of the virtualenv's bin/ (toolsdb, python), in ``cwd``, without stdin."""
    return subprocess.run(
        [str(env_dir / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def importable(env_dir: Path, modules: tuple[str, ...], cwd: Path) -> dict[str, bool]:
    """Which of ``modules`` the virtualenv's Python finds."""
    code = "import importlib.util, sys; print(*(importlib.util.find_spec(m) is not None for m in sys.argv[1:]))"
    found = run_in(env_dir, "python", "-c", code, *modules, cwd=cwd)
    assert found.returncode == 0, found.stderr
    return dict(zip(modules, (word == "True" for word in found.stdout.split()), strict=True))


def test_the_wheel_holds_one_top_level_package_and_all_the_sql(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"toolsdb", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, top
    for folder in ("schema", "migrations", "repeatable", "seeds"):
        expected = sorted(
            f"toolsdb/sql/{folder}/{p.relative_to(ROOT / folder).as_posix()}"
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in (".sql", ".py") and "__pycache__" not in p.parts
        )
        shipped = sorted(n for n in names if n.startswith(f"toolsdb/sql/{folder}/"))
        assert shipped == expected, f"the wheel's {folder}/ differs from the checkout's"


def test_an_installed_toolsdb_migrates_from_another_directory(
    installed: Path, pg: Pg, empty_db: str, tmp_path: Path
) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import toolsdb.paths as p; print(p.sql_root())"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=clean_env(),
    ).stdout.strip()
    assert where.startswith(str(installed)), f"the installed toolsdb reads its SQL from {where}, not the wheel"

    result = subprocess.run(
        [str(installed / "bin" / "toolsdb"), "migrate", "--database", pg.url(empty_db)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "0001.baseline" in result.stdout
    with psycopg.connect(pg.conninfo(empty_db)) as conn:
        assert conn.execute("select to_regclass('toolsdb.users') is not null").fetchone() == (True,)
        assert conn.execute("select to_regclass('toolsdb.agent_tools') is not null").fetchone() == (True,)
    assert not (tmp_path / ".toolsdb").exists(), "a --database run must not create an embedded server"


def test_the_wheel_ships_the_redis_toolkits_lua_scripts(wheel: Path, installed_all: Path, tmp_path: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    lua = ROOT / "runner" / "toolsdb" / "redis" / "lua"
    expected = sorted(f"toolsdb/redis/lua/{p.name}" for p in lua.glob("*.lua"))
    assert sorted(n for n in names if n.startswith("toolsdb/redis/lua/")) == expected
    loaded = subprocess.run(
        [
            str(installed_all / "bin" / "python"),
            "-c",
            "from toolsdb.redis import scripts; print(sum(len(scripts.source(n)) > 0 for n in scripts.NAMES))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=clean_env(),
    ).stdout.strip()
    assert loaded == str(len(expected))


def test_the_core_install_runs_without_the_extras_and_names_the_missing_one(installed: Path, tmp_path: Path) -> None:
    assert importable(installed, EXTRA_MODULES, tmp_path) == dict.fromkeys(EXTRA_MODULES, False), (
        "a plain `pip install toolsdb` should bring none of redis, mcp, pglast, prometheus_client, uvicorn and "
        "matplotlib "
        "(they are extras)"
    )
    imported = run_in(
        installed, "python", "-c", "import toolsdb, toolsdb.cli, toolsdb.tools, toolsdb.pool", cwd=tmp_path
    )
    assert imported.returncode == 0, f"toolsdb should import without its extras: {imported.stderr}"
    for argv in (
        ["--help"],
        ["migrate", "--help"],
        ["mcp", "--help"],
        ["validate", "--help"],
        ["redis", "--help"],
        ["serve", "--help"],
        ["token", "create", "--help"],
        ["import-transcripts", "--help"],
        ["usage", "daily", "--help"],
        ["usage", "chart", "--help"],
    ):
        shown = run_in(installed, "toolsdb", *argv, cwd=tmp_path)
        assert shown.returncode == 0, f"toolsdb {' '.join(argv)} should work without the extras: {shown.stderr}"
        assert shown.stdout.startswith("Usage: toolsdb"), shown.stdout

    for argv, line in (
        (["mcp"], "Error: toolsdb mcp needs the MCP SDK: pip install 'toolsdb[mcp]'"),
        (["validate", "-"], "Error: toolsdb validate needs pglast: pip install 'toolsdb[validate]'"),
        (["redis", "ping"], "Error: toolsdb redis ping needs redis-py: pip install 'toolsdb[redis]'"),
        (
            ["serve"],
            "Error: toolsdb serve needs uvicorn, Starlette and prometheus_client: pip install 'toolsdb[serve]'",
        ),
        (["usage", "chart"], "Error: toolsdb usage chart needs matplotlib: pip install 'toolsdb[chart]'"),
    ):
        result = run_in(installed, "toolsdb", *argv, cwd=tmp_path)
        assert result.returncode == 1, f"toolsdb {' '.join(argv)} should exit 1 without its extra: {result.stderr}"
        assert result.stderr.strip() == line, f"toolsdb {' '.join(argv)} should print one line naming the extra"
        assert result.stdout == "", result.stdout


def test_toolsdb_all_brings_every_extra(installed_all: Path, tmp_path: Path) -> None:
    assert importable(installed_all, EXTRA_MODULES, tmp_path) == dict.fromkeys(EXTRA_MODULES, True)
    imported = run_in(
        installed_all,
        "python",
        "-c",
        "import toolsdb.redis, toolsdb.mcp_server, toolsdb.validator, toolsdb.serve_app",
        cwd=tmp_path,
    )
    assert imported.returncode == 0, f"toolsdb[all] should import every optional module: {imported.stderr}"
