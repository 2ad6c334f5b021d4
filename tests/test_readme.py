"""The README's SQL examples run in psql as written, in order, after `make seed`.

A new user reads README.md top to bottom with `make psql` open: every
```sql block, in the order the README gives them, goes through one psql
session (the superuser's, as `make psql` opens it) on a freshly migrated and
seeded database. The only errors allowed are the ones the README announces
on the line itself (``-- ERROR 55000: ...``), with that SQLSTATE. Ids flow
from one example to the next in psql variables (``\\gset``), never as
placeholders to fill in. Before this test, the roles example granted to
logins it had not created, examples read rows before `make seed` was
mentioned, and ``set toolsdb.session_id`` was session-wide where
``set local`` is meant.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, Pg, _fresh_name, clean_env, run_cli

README = ROOT / "README.md"
ERROR_LINE = re.compile(r"^psql:[^:]+:(\d+): ERROR:  ([0-9A-Z]{5}): (.*)$")
ANNOUNCED = re.compile(r"-- ERROR ([0-9A-Z]{5})\b")
ROLES = ("my_service", "my_reports", "my_admin", "my_sender")


def sql_blocks(text: str) -> list[tuple[int, list[str]]]:
    """Each ```sql block: (README line of its first statement line, its lines)."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(text.splitlines(), start=1):
        if current is None and line.strip() == "```sql":
            current, start = [], number + 1
        elif current is not None and line.strip() == "```":
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


@pytest.fixture
def seeded(pg: Pg, template: str) -> Iterator[str]:
    with pg.clone(_fresh_name("readme"), template) as dbname:
        # make migrate, then make seed: migrate sets the database's search_path
        # (a setting of the database, which a clone of the template lacks).
        for command in ("migrate", "seed"):
            done = run_cli(command, "--database", pg.url(dbname))
            assert done.returncode == 0, done.stderr
        try:
            yield dbname
        finally:
            pg.psql("postgres", "-c", "; ".join(f"drop role if exists {r}" for r in ROLES))


def test_every_sql_example_of_the_readme_runs_as_written_in_order(pg: Pg, seeded: str, tmp_path: Path) -> None:
    blocks = sql_blocks(README.read_text())
    assert len(blocks) >= 8, "the README has its psql examples in ```sql blocks"
    script, origin = [], []  # script line -> README line
    for start, lines in blocks:
        for offset, line in enumerate(lines):
            script.append(line)
            origin.append(start + offset)
    path = tmp_path / "readme.sql"
    path.write_text("\n".join(script) + "\n")
    announced = {origin[i]: m[1] for i, line in enumerate(script) if (m := ANNOUNCED.search(line))}
    assert announced, "the README announces at least one error (the refused task transition)"

    result = subprocess.run(
        [str(pg.bindir / "psql"), "-X", "-v", "VERBOSITY=verbose", "-f", str(path), "-d", pg.conninfo(seeded)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
    )

    errors = {}
    for line in result.stderr.splitlines():
        if found := ERROR_LINE.match(line):
            errors[origin[int(found[1]) - 1]] = (found[2], found[3])
        elif "ERROR:" in line or "error:" in line:  # a psql error (\gset with no row, a bad variable)
            pytest.fail(f"psql: {line}")
    unexpected = {line: f"{code}: {message}" for line, (code, message) in errors.items() if announced.get(line) != code}
    assert not unexpected, f"README lines that fail in psql (README line: error): {unexpected}"
    assert set(errors) == set(announced), f"announced errors that did not happen: {set(announced) - set(errors)}"
    assert result.returncode == 0, result.stderr
