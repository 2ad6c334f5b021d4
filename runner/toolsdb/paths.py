"""Where the SQL lives: inside an installed wheel, or in the source checkout."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def sql_root() -> Path:
    """Return the folder that holds schema/, migrations/, repeatable/ and seeds/.

    A wheel ships them under ``toolsdb/sql/``; an editable install or a
    checkout reads them from the repository root (two levels above
    ``runner/toolsdb``). ``TOOLSDB_SQL_ROOT`` overrides both (a fork of the
    SQL, or a test's copy).
    """
    override = os.environ.get("TOOLSDB_SQL_ROOT")
    if override:
        return Path(override)
    packaged = _PACKAGE_DIR / "sql"
    if (packaged / "migrations").is_dir():
        return packaged
    return _PACKAGE_DIR.parent.parent


def schema_dir() -> Path:
    return sql_root() / "schema"


def migrations_dir() -> Path:
    return sql_root() / "migrations"


def repeatable_dir() -> Path:
    return sql_root() / "repeatable"


def seeds_dir() -> Path:
    return sql_root() / "seeds"


def bootstrap_file() -> Path:
    return schema_dir() / "00_bootstrap.sql"


def citus_file() -> Path:
    """The distribution applied on a Citus coordinator (docs/citus.md)."""
    return schema_dir() / "citus" / "distribute.sql"


def sql_files(folder: Path) -> list[Path]:
    """The ``*.sql`` files of a folder in the order they are applied (by name)."""
    return sorted(p for p in folder.glob("*.sql") if p.is_file())
