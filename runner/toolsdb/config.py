"""toolsdb.config from Python: plain and encrypted configuration.

The rules (upsert, who changed it, secrets never returned by SQL) live in
the SQL functions ``toolsdb.config_set``, ``config_set_secret``,
``config_get`` and ``config_unset``; this module adds the one thing SQL must
not do: encrypt and decrypt secrets, on the client, with Fernet.

The key comes from ``TOOLSDB_KEY`` (one or more Fernet keys, comma-separated,
newest first) or from a key file: ``TOOLSDB_KEY_FILE``, else
``$XDG_CONFIG_HOME/toolsdb/key`` (``~/.config/toolsdb/key``), one key per
line, newest first. The file is created with mode 0600 on first use, and
refused when group or others may read it.

    import psycopg
    from toolsdb import config

    with psycopg.connect(url) as conn:
        config.set_value(conn, "audit.retention", "400 days")
        config.set_secret(conn, "slack.webhook_url", "https://hooks.slack.com/...")
        url = config.get(conn, "slack.webhook_url")
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from psycopg.types.json import Jsonb

from .errors import ToolsdbError

KEY_ENV = "TOOLSDB_KEY"
KEY_FILE_ENV = "TOOLSDB_KEY_FILE"
MASK = "********"


def default_key_file() -> Path:
    """``TOOLSDB_KEY_FILE``, else ``$XDG_CONFIG_HOME/toolsdb/key``."""
    explicit = os.environ.get(KEY_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "toolsdb" / "key"


@dataclass
class KeyRing:
    """The Fernet keys in use, newest first, and where they came from."""

    keys: list[bytes]
    source: str
    path: Path | None = None

    def fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(k) for k in self.keys])

    @classmethod
    def load(cls, create: bool = True) -> KeyRing:
        """Read the key from TOOLSDB_KEY or the key file (creating it if asked)."""
        env = os.environ.get(KEY_ENV)
        if env:
            return cls(_parse_keys(env.split(","), KEY_ENV), KEY_ENV)
        path = default_key_file()
        if not path.exists():
            if not create:
                raise ToolsdbError(f"no key: set {KEY_ENV} or create the key file {path}")
            _write_key_file(path, [Fernet.generate_key()], exclusive=True)
        if path.is_dir():
            raise ToolsdbError(
                f"the key file {path} is a folder: point TOOLSDB_KEY_FILE at a file "
                "(it is created with mode 0600 on first use)"
            )
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ToolsdbError(
                f"key file {path} is readable by others (mode {stat.S_IMODE(mode):04o}): run chmod 600 {path}"
            )
        try:
            lines = path.read_text().split()
        except OSError as exc:
            raise ToolsdbError(f"cannot read key file {path}: {exc.strerror}") from None
        return cls(_parse_keys(lines, str(path)), str(path), path)


def _parse_keys(candidates: list[str], source: str) -> list[bytes]:
    keys = [c.strip().encode() for c in candidates if c.strip()]
    if not keys:
        raise ToolsdbError(f"{source} holds no key")
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ToolsdbError(
                f"{source} does not hold a valid Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return keys


def _write_key_file(path: Path, keys: list[bytes], exclusive: bool = False) -> None:
    """Write keys (newest first) with mode 0600, atomically."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(temporary, flags, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(k.decode() for k in keys) + "\n")
        os.chmod(temporary, 0o600)
        if exclusive and path.exists():
            temporary.unlink()
            return
        os.replace(temporary, path)
    except OSError as exc:
        raise ToolsdbError(f"cannot write key file {path}: {exc.strerror}") from None


@dataclass
class ConfigItem:
    key: str
    value: Any
    is_secret: bool
    description: str | None
    updated_at: datetime
    updated_by: str


def set_value(conn: psycopg.Connection, key: str, value: Any, description: str | None = None) -> None:
    """Set a plain value (anything JSON can hold)."""
    _call(conn, "select toolsdb.config_set(%s, %s, %s)", (key, Jsonb(value), description))


def set_secret(
    conn: psycopg.Connection, key: str, plaintext: str, description: str | None = None, keys: KeyRing | None = None
) -> None:
    """Encrypt ``plaintext`` here and store only the token."""
    token = (keys or KeyRing.load()).fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")
    _call(conn, "select toolsdb.config_set_secret(%s, %s, %s)", (key, token, description))


def get(conn: psycopg.Connection, key: str, default: Any = None, keys: KeyRing | None = None) -> Any:
    """The value of ``key`` (decrypted when secret), or ``default``."""
    row = conn.execute("select value, is_secret, secret_value from toolsdb.config where key = %s", (key,)).fetchone()
    if row is None:
        return default
    value, is_secret, token = row
    if not is_secret:
        return value
    return _decrypt(key, token, keys or KeyRing.load(create=False))


def items(conn: psycopg.Connection, reveal: bool = False, keys: KeyRing | None = None) -> list[ConfigItem]:
    """Every key; secrets masked unless ``reveal`` (which decrypts them)."""
    rows = conn.execute(
        "select key, value, is_secret, secret_value, description, updated_at, updated_by"
        " from toolsdb.config order by key"
    ).fetchall()
    ring = (keys or KeyRing.load(create=False)) if reveal and any(r[2] for r in rows) else None
    out = []
    for key, value, is_secret, token, description, updated_at, updated_by in rows:
        if is_secret:
            value = _decrypt(key, token, ring) if ring else MASK
        out.append(ConfigItem(key, value, is_secret, description, updated_at, updated_by))
    return out


def unset(conn: psycopg.Connection, key: str) -> bool:
    """Remove ``key``; False when it was not set."""
    return bool(_call(conn, "select toolsdb.config_unset(%s)", (key,)))


def rotate_key(conn: psycopg.Connection, keys: KeyRing | None = None) -> tuple[int, bytes]:
    """Re-encrypt every secret under a new key, in one transaction.

    With a key file, the file holds the new key and the old ones while the
    transaction runs (both decrypt), and only the new key once it has
    committed; if anything fails, the file is restored and nothing changed.
    Returns the number of secrets re-encrypted and the new key (with
    TOOLSDB_KEY, the caller must publish it).
    """
    ring = keys or KeyRing.load(create=False)
    new_key = Fernet.generate_key()
    rotating = MultiFernet([Fernet(new_key)] + [Fernet(k) for k in ring.keys])
    if ring.path is not None:
        _write_key_file(ring.path, [new_key, *ring.keys])
    try:
        with conn.transaction():
            rows = conn.execute(
                "select key, secret_value from toolsdb.config where is_secret order by key for update"
            ).fetchall()
            for key, token in rows:
                try:
                    fresh = rotating.rotate(token.encode("ascii")).decode("ascii")
                except InvalidToken:
                    raise _wrong_key(key, ring) from None
                _call(conn, "select toolsdb.config_set_secret(%s, %s, null)", (key, fresh))
    except BaseException:
        if ring.path is not None:
            _write_key_file(ring.path, ring.keys)
        raise
    if ring.path is not None:
        _write_key_file(ring.path, [new_key])
    return len(rows), new_key


def parse_cli_value(text: str, as_string: bool = False) -> Any:
    """A CLI VALUE: JSON when it parses as JSON (true, 3, {"a": 1}), else a string."""
    if as_string:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _decrypt(key: str, token: str, ring: KeyRing) -> str:
    try:
        return ring.fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise _wrong_key(key, ring) from None


def _wrong_key(key: str, ring: KeyRing) -> ToolsdbError:
    return ToolsdbError(
        f"cannot decrypt config key {key!r} with the key from {ring.source}: it was encrypted with another key"
    )


def _call(conn: psycopg.Connection, query: str, params: tuple) -> Any:
    """Run one config function; its SQL errors become one line."""
    try:
        row = conn.execute(query, params).fetchone()
    except psycopg.errors.CheckViolation as exc:
        raise ToolsdbError(f"invalid config: {exc.diag.message_primary} ({exc.diag.constraint_name})") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ToolsdbError(f"not allowed: {exc.diag.message_primary}") from None
    return row[0] if row else None
