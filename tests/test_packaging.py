"""`pip install .` into a fresh virtualenv gives a `toolsdb` that migrates a
database from any directory: the SQL ships inside the wheel."""

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


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory) -> Iterator[Path]:
    """A fresh virtualenv with only the wheel (and its dependencies) installed."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    yield env_dir


def test_the_wheel_holds_one_top_level_package_and_all_the_sql(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"toolsdb", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, top
    for folder in ("schema", "migrations", "views", "seeds"):
        expected = sorted(
            f"toolsdb/sql/{folder}/{p.name}"
            for p in (ROOT / folder).iterdir()
            if p.is_file() and p.suffix in (".sql", ".py")
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


def test_the_wheel_ships_the_redis_toolkits_lua_scripts(wheel: Path, installed: Path, tmp_path: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    lua = ROOT / "runner" / "toolsdb" / "redis" / "lua"
    expected = sorted(f"toolsdb/redis/lua/{p.name}" for p in lua.glob("*.lua"))
    assert sorted(n for n in names if n.startswith("toolsdb/redis/lua/")) == expected
    loaded = subprocess.run(
        [
            str(installed / "bin" / "python"),
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
