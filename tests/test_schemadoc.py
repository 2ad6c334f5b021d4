"""docs/schema.md is generated from the database (`toolsdb docs`) and must not
go stale: regenerate it with `toolsdb docs` after changing the schema."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from toolsdb.schemadoc import generate

from .conftest import ROOT, Pg, run_cli

COMMITTED = ROOT / "docs" / "schema.md"


def test_committed_schema_md_matches_a_freshly_migrated_database(pg: Pg, template: str) -> None:
    with psycopg.connect(pg.conninfo(template)) as conn:
        text = generate(conn)
    assert COMMITTED.read_text(encoding="utf-8") == text, (
        f"docs/schema.md is out of date with the schema on PostgreSQL {pg.major}: run `toolsdb docs` and commit it"
    )


def test_every_table_view_column_and_foreign_key_is_in_the_document(conn: psycopg.Connection) -> None:
    text = generate(conn)
    relations = conn.execute(
        """select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname in ('toolsdb', 'toolsdb_private') and c.relkind in ('r', 'p', 'v', 'm')
              and not c.relispartition"""
    ).fetchall()
    assert relations
    for schema, name in relations:
        assert f"### `{schema}.{name}` (" in text, f"{schema}.{name} is missing"
    foreign_keys = conn.execute(
        """select conname from pg_constraint c join pg_namespace n on n.oid = c.connamespace
            where c.contype = 'f' and n.nspname in ('toolsdb', 'toolsdb_private')
              and not exists (select from pg_inherits i where i.inhrelid = c.conrelid)"""
    ).fetchall()
    assert foreign_keys
    for (name,) in foreign_keys:
        assert f': "{name}"' in text, f"the foreign key {name} is not drawn"
    comment = conn.execute("select col_description('toolsdb.users'::regclass, 1)").fetchone()[0]
    assert " ".join(comment.split()) in text
    assert "toolsdb_migrations" not in text


def test_a_new_table_shows_up_with_its_comments(conn: psycopg.Connection) -> None:
    conn.execute(
        """create table toolsdb.gadgets (
               gadget_id bigint generated always as identity primary key,
               owner_id uuid not null references toolsdb.users (user_id),
               label text check (length(label) < 10)
           );
           comment on table toolsdb.gadgets is 'Gadgets | with a pipe';
           comment on column toolsdb.gadgets.label is 'What it is called'"""
    )
    text = generate(conn)
    assert "### `toolsdb.gadgets` (table)\n\nGadgets \\| with a pipe\n" in text
    assert "| **gadget_id** | `bigint` |  | `identity` |  |" in text
    assert "| label | `text` | yes |  | What it is called |" in text
    assert 'users ||--o{ gadgets : "gadgets_owner_id_fkey"' in text
    assert "        uuid owner_id FK" in text


def test_cli_writes_checks_and_prints(pg: Pg, db: str, tmp_path: Path) -> None:
    url = pg.url(db)
    target = tmp_path / "out" / "schema.md"
    written = run_cli("docs", "--database", url, "--output", str(target))
    assert written.returncode == 0, written.stderr
    assert f"wrote {target}" in written.stdout
    assert run_cli("docs", "--database", url, "--output", str(target), "--check").returncode == 0
    target.write_text(target.read_text() + "edited by hand\n")
    stale = run_cli("docs", "--database", url, "--output", str(target), "--check")
    assert stale.returncode == 1
    assert stale.stderr.strip() == (
        f"Error: {target} is out of date with the database; run `toolsdb docs` to regenerate it"
    )
    assert "edited by hand" in target.read_text(), "--check writes nothing"
    printed = run_cli("docs", "--database", url, "--output", "-")
    assert printed.returncode == 0
    assert printed.stdout.startswith("# The toolsdb schema\n")


@pytest.mark.parametrize("where", ["/proc/version", "/proc/toolsdb-schema.md"])
def test_an_unwritable_output_is_one_line_not_a_traceback(pg: Pg, db: str, where: str) -> None:
    # /proc refuses new files and writes even to root, which CI runs as.
    result = run_cli("docs", "--database", pg.url(db), "--output", where)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "/proc/" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_an_unmigrated_database_writes_nothing(pg: Pg, empty_db: str, tmp_path: Path) -> None:
    target = tmp_path / "schema.md"
    target.write_text("kept\n")
    result = run_cli("docs", "--database", pg.url(empty_db), "--output", str(target))
    assert result.returncode == 1
    assert "not migrated" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert target.read_text() == "kept\n"


def test_check_of_a_missing_file_says_it_is_missing(pg: Pg, db: str, tmp_path: Path) -> None:
    result = run_cli("docs", "--database", pg.url(db), "--output", str(tmp_path / "none.md"), "--check")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {tmp_path / 'none.md'} is missing; run `toolsdb docs` to write it"
