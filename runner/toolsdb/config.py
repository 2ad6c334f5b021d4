"""toolsdb.config from Python: plain and encrypted configuration.

The rules (upsert, who changed it, secrets never returned by SQL) live in
the SQL functions ``toolsdb.config_set``, ``config_set_secret``,
``config_get``, ``config_unset`` and ``config_lock_secrets``; this module
adds the one thing SQL must not do: encrypt and decrypt secrets, on the
client, with Fernet.

The keys form a ring: ``TOOLSDB_KEY`` (one or more Fernet keys,
comma-separated, newest first) or a key file: ``TOOLSDB_KEY_FILE``, else
``$XDG_CONFIG_HOME/toolsdb/key`` (``~/.config/toolsdb/key``), one key per
line, the primary (newest) first. The file is created with mode 0600 on
first use, and refused when group or others may read it. A key's id is the
first 12 hex digits of the SHA-256 of the key as written; every secret
records the id of its key (``toolsdb.config.secret_key_id``), so a reader
picks the key by id and ``keys``/``retire_key`` know which keys are in use.

Every change of the key file happens under an exclusive lock on
``<key file>.lock`` (fcntl.flock) held across read, change and write, and
the write is atomic (a 0600 temporary file in the same folder, fsync,
rename). Only ``retire_key`` ever removes a key (docs/security.md, "Keys").

    import psycopg
    from toolsdb import config

    with psycopg.connect(url) as conn:
        config.set_value(conn, "audit.retention", "400 days")
        config.set_secret(conn, "slack.webhook_url", "https://hooks.slack.com/...")
        url = config.get(conn, "slack.webhook_url")
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
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
KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")


def default_key_file() -> Path:
    """``TOOLSDB_KEY_FILE``, else ``$XDG_CONFIG_HOME/toolsdb/key``."""
    explicit = os.environ.get(KEY_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "toolsdb" / "key"


def key_id(key: bytes) -> str:
    """The id of a Fernet key: the first 12 hex digits of the SHA-256 of the
    key as written (``printf %s KEY | sha256sum | cut -c1-12``)."""
    return hashlib.sha256(key.strip()).hexdigest()[:12]


@dataclass
class KeyRing:
    """The Fernet keys in use, primary (newest) first, and where they came from."""

    keys: list[bytes]
    source: str
    path: Path | None = None

    @property
    def primary(self) -> bytes:
        """The key new secrets are encrypted with."""
        return self.keys[0]

    def ids(self) -> list[str]:
        return [key_id(k) for k in self.keys]

    def key(self, wanted: str) -> bytes | None:
        """The key whose id is ``wanted``, or None when the ring lacks it."""
        return next((k for k in self.keys if key_id(k) == wanted), None)

    def fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(k) for k in self.keys])

    @classmethod
    def load(cls, create: bool = True) -> KeyRing:
        """Read the keys from TOOLSDB_KEY or the key file (creating it if asked)."""
        env = os.environ.get(KEY_ENV)
        if env:
            return cls(_parse_keys(env.split(","), KEY_ENV), KEY_ENV)
        path = default_key_file()
        if not path.exists() and not path.is_symlink():
            if not create:
                raise ToolsdbError(f"no key: set {KEY_ENV} or create the key file {path}")
            _refuse_folder(path)
            with _key_file_lock(path):
                if not path.exists():
                    _write_key_file(path, [Fernet.generate_key()])
        return cls(_read_key_file(path), str(path), path)


def _refuse_folder(path: Path) -> None:
    if path.is_dir():
        raise ToolsdbError(
            f"the key file {path} is a folder: point TOOLSDB_KEY_FILE at a file "
            "(it is created with mode 0600 on first use)"
        )


def _read_key_file(path: Path) -> list[bytes]:
    """The keys of the key file, checked (a folder, others' access, no valid key: one line)."""
    _refuse_folder(path)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ToolsdbError(
                f"key file {path} is readable by others (mode {stat.S_IMODE(mode):04o}): run chmod 600 {path}"
            )
        lines = path.read_text().split()
    except OSError as exc:
        raise ToolsdbError(f"cannot read key file {path}: {exc.strerror}") from None
    return _parse_keys(lines, str(path))


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


@contextlib.contextmanager
def _key_file_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive lock on ``<key file>.lock`` (mode 0600, next to the
    key file): every read-change-write of the key file happens under it, so
    concurrent rotations (of one database or of several sharing the file)
    never lose each other's keys. The kernel drops it when the process dies."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ToolsdbError(f"cannot lock the key file {path} ({lock_path}): {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_key_file(path: Path, keys: Sequence[bytes]) -> None:
    """Replace the key file by ``keys`` (primary first), atomically: a 0600
    temporary file in the same folder, fsync, rename, fsync of the folder.
    Call it under ``_key_file_lock``; a reader sees the old file or the new
    one, never part of one."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Temporary files of writers killed before their rename: the lock is
        # ours, so no live writer owns one. They hold keys no secret uses.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write("".join(k.decode() + "\n" for k in keys))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        raise ToolsdbError(f"cannot write key file {path}: {exc.strerror}") from None


def add_key(path: Path, new_key: bytes) -> list[bytes]:
    """Put ``new_key`` first in the key file (it becomes the primary); every
    key already there stays. Returns the keys now in the file."""
    with _key_file_lock(path):
        current = _read_key_file(path) if path.exists() else []
        keys = [new_key, *(k for k in current if k != new_key)]
        _write_key_file(path, keys)
    return keys


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
    """Encrypt ``plaintext`` here with the primary key and store only the
    token and the key's id.

    With a key file, the key is checked to still be in the file after the
    row is written (the write holds a lock on toolsdb.config until commit,
    which retire_key waits for): if a retirement removed it meanwhile, the
    secret is written again under the file's primary, so no committed secret
    uses a retired key.
    """
    ring = keys or KeyRing.load()
    plain = plaintext.encode("utf-8")
    for _attempt in range(3):
        token = Fernet(ring.primary).encrypt(plain).decode("ascii")
        _call(
            conn,
            "select toolsdb.config_set_secret(%s, %s, %s, %s)",
            (key, token, key_id(ring.primary), description),
        )
        if ring.path is None or ring.primary in _read_key_file(ring.path):
            return
        ring = KeyRing(_read_key_file(ring.path), ring.source, ring.path)
    raise ToolsdbError(f"the primary key of {ring.source} was retired three times while setting {key!r}: run it again")


def get(conn: psycopg.Connection, key: str, default: Any = None, keys: KeyRing | None = None) -> Any:
    """The value of ``key`` (decrypted when secret), or ``default``."""
    row = conn.execute(
        "select value, is_secret, secret_value, secret_key_id from toolsdb.config where key = %s", (key,)
    ).fetchone()
    if row is None:
        return default
    value, is_secret, token, used = row
    if not is_secret:
        return value
    return _decrypt(key, token, used, keys or KeyRing.load(create=False))


def items(conn: psycopg.Connection, reveal: bool = False, keys: KeyRing | None = None) -> list[ConfigItem]:
    """Every key; secrets masked unless ``reveal`` (which decrypts them)."""
    rows = conn.execute(
        "select key, value, is_secret, secret_value, secret_key_id, description, updated_at, updated_by"
        " from toolsdb.config order by key"
    ).fetchall()
    ring = (keys or KeyRing.load(create=False)) if reveal and any(r[2] for r in rows) else None
    out = []
    for key, value, is_secret, token, used, description, updated_at, updated_by in rows:
        if is_secret:
            value = _decrypt(key, token, used, ring) if ring else MASK
        out.append(ConfigItem(key, value, is_secret, description, updated_at, updated_by))
    return out


def unset(conn: psycopg.Connection, key: str) -> bool:
    """Remove ``key``; False when it was not set."""
    return bool(_call(conn, "select toolsdb.config_unset(%s)", (key,)))


def rotate_key(conn: psycopg.Connection, keys: KeyRing | None = None) -> tuple[int, bytes]:
    """Re-encrypt every secret of this database under a new key.

    With a key file, the new key is first added to the file as its primary
    (under the file lock; no key is ever removed here). Then one transaction
    takes ``toolsdb.config_lock_secrets()`` (rotations, retirements and
    secret writes of this database wait for each other), reads the key file
    again (so a secret re-encrypted by a rotation that committed meanwhile,
    under a key this one did not know, still decrypts), re-encrypts every
    secret under the new key, records its id, and checks the new key is
    still in the file (a retirement naming only other databases could have
    removed it). If anything fails, nothing changed in the database and the
    new key just stays in the file.
    Returns the number of secrets re-encrypted and the new key (with
    TOOLSDB_KEY, the caller must publish it).
    """
    ring = keys or KeyRing.load(create=False)
    new_key = Fernet.generate_key()
    while key_id(new_key) in ring.ids():  # a 48-bit id clash: never seen, but cheap to rule out
        new_key = Fernet.generate_key()
    if ring.path is not None:
        add_key(ring.path, new_key)
    new_id = key_id(new_key)
    with conn.transaction():
        _call(conn, "select toolsdb.config_lock_secrets()", ())
        if ring.path is not None:
            current = KeyRing(_read_key_file(ring.path), ring.source, ring.path)
        else:
            current = KeyRing([new_key, *ring.keys], ring.source)
        rows = conn.execute(
            "select key, secret_value, secret_key_id from toolsdb.config where is_secret order by key"
        ).fetchall()
        for key, token, used in rows:
            old = _key_for(key, used, current)
            try:
                fresh = MultiFernet([Fernet(new_key), Fernet(old)]).rotate(token.encode("ascii")).decode("ascii")
            except InvalidToken:
                raise _bad_token(key, used, current) from None
            _call(conn, "select toolsdb.config_set_secret(%s, %s, %s, null)", (key, fresh, new_id))
        if ring.path is not None and new_key not in _read_key_file(ring.path):
            raise ToolsdbError(
                f"key {new_id} was retired from {ring.path} while this rotation ran: nothing changed; "
                "run toolsdb config rotate-key again"
            )
    return len(rows), new_key


@dataclass
class KeyUse:
    """One key of the ring, or one key id that secrets use and the ring lacks."""

    key_id: str
    state: str  # primary, older, or missing (used by secrets here, not in the ring)
    secrets: int


def key_uses(conn: psycopg.Connection, keys: KeyRing | None = None) -> list[KeyUse]:
    """The ring's keys, primary first, with how many secrets of this database
    use each; then any key id that secrets use and the ring does not hold."""
    ring = keys or KeyRing.load(create=False)
    counts = dict(
        conn.execute(
            "select secret_key_id, count(*) from toolsdb.config where is_secret group by secret_key_id"
        ).fetchall()
    )
    ids = ring.ids()
    out = [KeyUse(k, "primary" if i == 0 else "older", counts.pop(k, 0)) for i, k in enumerate(ids)]
    out += [KeyUse(k, "missing", n) for k, n in sorted(counts.items())]
    return out


def retire_key(
    conns: Sequence[psycopg.Connection],
    retired: str,
    keys: KeyRing | None = None,
    names: Sequence[str] | None = None,
) -> list[bytes]:
    """Remove the key with id ``retired`` from the key file, when it is not
    the primary and no secret of any of ``conns`` uses it.

    The key file's lock is held throughout, and each database's
    ``config_lock_secrets()`` (in one transaction per connection) from its
    check until the file is rewritten, so no rotation or secret write of
    those databases can start using the key in between (a secret write that
    still does, with a ring read before, finds the key gone and writes again
    under the primary: see set_secret).
    Databases sharing the key file that are not in ``conns`` are not
    checked: name every one of them. Returns the keys left in the file.
    """
    ring = keys or KeyRing.load(create=False)
    if ring.path is None:
        raise ToolsdbError(
            f"the keys come from {KEY_ENV}: retire a key by leaving it out of {KEY_ENV} "
            "once toolsdb config keys shows no secret uses it in any database"
        )
    if not KEY_ID_PATTERN.match(retired):
        raise ToolsdbError(f"{retired!r} is not a key id (12 lowercase hex digits; toolsdb config keys lists them)")
    labels = list(names) if names is not None else [f"database {i + 1}" for i in range(len(conns))]
    # The file lock first: retirements run one at a time (two taking the
    # database locks in different orders could otherwise wait on each other
    # forever), and rotations add their key before or after, never between.
    with _key_file_lock(ring.path), contextlib.ExitStack() as stack:
        current = _read_key_file(ring.path)
        _check_retirable(retired, [key_id(k) for k in current], ring.path)
        for conn, label in zip(conns, labels, strict=True):
            stack.enter_context(conn.transaction())
            _call(conn, "select toolsdb.config_lock_secrets()", ())
            using = conn.execute(
                "select count(*) from toolsdb.config where is_secret and secret_key_id = %s", (retired,)
            ).fetchone()[0]
            if using:
                raise ToolsdbError(
                    f"key {retired} still encrypts {using} secret(s) of {label}: "
                    "run toolsdb config rotate-key there first; nothing was removed"
                )
        left = [k for k in current if key_id(k) != retired]
        _write_key_file(ring.path, left)
    return left


def _check_retirable(retired: str, ids: list[str], path: Path) -> None:
    if retired not in ids:
        raise ToolsdbError(f"no key {retired} in {path} (toolsdb config keys lists them)")
    if ids[0] == retired:
        raise ToolsdbError(
            f"key {retired} is the primary key of {path}, which new secrets use: "
            "run toolsdb config rotate-key first, in every database sharing the file"
        )


def parse_cli_value(text: str, as_string: bool = False) -> Any:
    """A CLI VALUE: JSON when it parses as JSON (true, 3, {"a": 1}), else a string."""
    if as_string:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _decrypt(key: str, token: str, used: str, ring: KeyRing) -> str:
    try:
        return Fernet(_key_for(key, used, ring)).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise _bad_token(key, used, ring) from None


def _key_for(key: str, used: str, ring: KeyRing) -> bytes:
    """The key of id ``used``, or one line naming the id the ring lacks."""
    found = ring.key(used)
    if found is None:
        raise ToolsdbError(
            f"cannot decrypt config key {key!r}: it was encrypted with another key, key id {used}, "
            f"which {ring.source} does not hold"
        )
    return found


def _bad_token(key: str, used: str, ring: KeyRing) -> ToolsdbError:
    return ToolsdbError(
        f"cannot decrypt config key {key!r} with key {used} from {ring.source}: "
        "its token was not made with that key (changed outside toolsdb?)"
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
