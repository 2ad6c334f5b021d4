"""The Makefile is self-documenting and has every target the README promises."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, clean_env

TARGETS = [
    "migrate",
    "seed",
    "rollback",
    "status",
    "new-migration",
    "psql",
    "lint",
    "test",
    "bench",
    "db-start",
    "db-stop",
    "reset",
    "clean",
]


def test_make_help_lists_every_target_with_a_description() -> None:
    out = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True, env=clean_env()
    ).stdout
    listed = {line.split()[1]: " ".join(line.split()[2:]) for line in out.splitlines() if line.strip()}
    for target in TARGETS:
        assert target in listed, f"make help does not list {target}"
        assert listed[target], f"make help gives {target} no description"
        assert f"`make {target}" in (ROOT / "README.md").read_text(), f"the README does not document make {target}"


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_is_defined(target: str) -> None:
    # -n: print the recipe without running it; fails on an unknown target.
    args = ["make", "-n", target, "name=example"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=clean_env())
    assert result.returncode == 0, f"make -n {target} failed: {result.stderr}"


def test_new_migration_without_a_name_says_how_to_call_it() -> None:
    result = subprocess.run(["make", "-s", "new-migration"], cwd=ROOT, capture_output=True, text=True, env=clean_env())
    assert result.returncode != 0
    assert "usage: make new-migration name=" in result.stderr


def test_clean_asks_before_deleting_the_embedded_database(tmp_path: Path) -> None:
    # A copy of the Makefile in a folder with a .toolsdb: no answer, nothing removed.
    (tmp_path / "Makefile").write_text((ROOT / "Makefile").read_text())
    (tmp_path / ".toolsdb").mkdir()
    (tmp_path / ".toolsdb" / "data").write_text("precious")
    refused = subprocess.run(
        ["make", "-s", "clean"], cwd=tmp_path, input="\n", capture_output=True, text=True, env=clean_env()
    )
    assert refused.returncode != 0
    assert "Aborted: nothing was removed" in refused.stderr
    assert (tmp_path / ".toolsdb" / "data").read_text() == "precious"
    forced = subprocess.run(
        ["make", "-s", "clean", "force=1"], cwd=tmp_path, capture_output=True, text=True, env=clean_env()
    )
    assert forced.returncode == 0, forced.stderr
    assert not (tmp_path / ".toolsdb").exists()
