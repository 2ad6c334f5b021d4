"""The key ring of toolsdb.config: key ids, overlapping and killed rotations,
databases sharing one key file, `config keys` and `config retire-key`.

Rotations run as real `toolsdb config rotate-key` processes against real
servers; every check reads every secret back. Bounded rounds, no timing
assertions.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from toolsdb import config
from toolsdb.errors import ToolsdbError

from .conftest import Pg, _fresh_name, clean_env, run_cli, toolsdb_exe

ROTATORS = 6  # overlapping rotate-key processes per round
ROUNDS = 3
KILLS = 20


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "toolsdb" / "key"
    monkeypatch.setenv("TOOLSDB_KEY_FILE", str(path))
    monkeypatch.delenv("TOOLSDB_KEY", raising=False)
    return path


@pytest.fixture
def other_db(pg: Pg, template: str) -> Iterator[str]:
    with pg.clone(_fresh_name("other"), template) as name:
        yield name


@pytest.fixture
def third_db(pg: Pg, template: str) -> Iterator[str]:
    with pg.clone(_fresh_name("third"), template) as name:
        yield name


def one_leg(pg: Pg) -> None:
    """The tests that start dozens of processes run in the PostgreSQL 18 leg
    only: what they exercise (the key file's lock, the lock on toolsdb.config)
    is the same on every major, and each process costs ~0.5 s of CPU."""
    if pg.major != "18":
        pytest.skip("starts dozens of toolsdb processes: runs in the PostgreSQL 18 leg")


def start(pg: Pg, db: str, key_file: Path, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    """A `toolsdb ARGS --database DB` process with this key file (not waited for)."""
    return subprocess.Popen(
        [toolsdb_exe(), *args, "--database", pg.url(db)],
        env=clean_env(TOOLSDB_KEY_FILE=str(key_file)),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[tuple[subprocess.Popen[str], str | None]]) -> list[tuple[int, str, str]]:
    """Feed each process its input, wait for all; (returncode, stdout, stderr) of each."""
    outputs = [p.communicate(input, timeout=120) for p, input in procs]
    return [(p.returncode, out, err) for (p, _), (out, err) in zip(procs, outputs, strict=True)]


def cli(pg: Pg, db: str, key_file: Path, *args: str, input: str | None = None, env: dict | None = None):
    return run_cli(*args, "--database", pg.url(db), env={"TOOLSDB_KEY_FILE": str(key_file), **(env or {})}, input=input)


def set_secrets(pg: Pg, db: str, key_file: Path, values: dict[str, str]) -> None:
    for key, value in values.items():
        result = cli(pg, db, key_file, "config", "set", key, "--secret", input=value)
        assert result.returncode == 0, result.stderr


def read_secrets(pg: Pg, db: str, key_file: Path) -> dict[str, str]:
    """Every secret of DB decrypted with the key file as it is now (raises when one does not decrypt)."""
    ring = config.KeyRing(config._read_key_file(key_file), str(key_file), key_file)
    with psycopg.connect(pg.conninfo(db)) as conn:
        names = [r[0] for r in conn.execute("select key from toolsdb.config where is_secret order by key")]
        return {name: config.get(conn, name, keys=ring) for name in names}


def key_ids_in_use(pg: Pg, db: str) -> set[str]:
    with psycopg.connect(pg.conninfo(db)) as conn:
        return {r[0] for r in conn.execute("select secret_key_id from toolsdb.config where is_secret")}


def file_ids(key_file: Path) -> list[str]:
    return [config.key_id(k.encode()) for k in key_file.read_text().split()]


def values_for(db: str, n: int = 3) -> dict[str, str]:
    return {f"s{i}.secret": f"{db}-value-{i}" for i in range(n)}


# ---------------------------------------------------------------------------
# Overlapping rotations (the reproduction)
# ---------------------------------------------------------------------------


def test_overlapping_rotations_of_one_database_keep_every_secret_readable(pg: Pg, db: str, tmp_path: Path) -> None:
    one_leg(pg)
    key_file = tmp_path / "key"
    expected = values_for(db)
    set_secrets(pg, db, key_file, expected)
    for round_ in range(ROUNDS):
        results = finish([(start(pg, db, key_file, "config", "rotate-key"), None) for _ in range(ROTATORS)])
        failed = [err for code, _, err in results if code != 0]
        assert failed == [], f"round {round_}: every overlapping rotation should succeed, but: {failed}"
        assert read_secrets(pg, db, key_file) == expected, f"round {round_}: every secret should still decrypt"
        ids = file_ids(key_file)
        made = [re.search(r"under key ([0-9a-f]{12})", out)[1] for _, out, _ in results]
        assert set(made) <= set(ids), f"round {round_}: the key of every rotation stays in the file"
        assert key_ids_in_use(pg, db) <= set(ids)
    assert len(file_ids(key_file)) == 1 + ROUNDS * ROTATORS, "no rotation removed a key"


def test_secrets_set_while_rotations_run_stay_readable(pg: Pg, db: str, tmp_path: Path) -> None:
    one_leg(pg)
    key_file = tmp_path / "key"
    expected = values_for(db)
    set_secrets(pg, db, key_file, expected)
    for round_ in range(3):
        procs = []
        for i in range(3):
            procs.append((start(pg, db, key_file, "config", "rotate-key"), None))
            name = f"new{i}.secret"
            expected[name] = f"round {round_} value {i}"
            procs.append((start(pg, db, key_file, "config", "set", name, "--secret", stdin=True), expected[name]))
        failed = [err for code, _, err in finish(procs) if code != 0]
        assert failed == [], f"round {round_}: {failed}"
        assert read_secrets(pg, db, key_file) == expected, f"round {round_}: every secret should decrypt"


def test_concurrent_first_uses_share_one_new_key_file(pg: Pg, db: str, tmp_path: Path) -> None:
    key_file = tmp_path / "conf" / "key"
    expected = {f"first{i}.secret": f"value {i}" for i in range(ROTATORS)}
    procs = [
        (start(pg, db, key_file, "config", "set", name, "--secret", stdin=True), value)
        for name, value in expected.items()
    ]
    failed = [err for code, _, err in finish(procs) if code != 0]
    assert failed == [], failed
    assert len(file_ids(key_file)) == 1, "the first uses should create one key, not one each"
    assert read_secrets(pg, db, key_file) == expected


# ---------------------------------------------------------------------------
# Databases sharing one key file
# ---------------------------------------------------------------------------


def test_databases_sharing_a_key_file_stay_readable_after_any_of_them_rotates(
    pg: Pg, db: str, other_db: str, third_db: str, tmp_path: Path
) -> None:
    one_leg(pg)
    key_file = tmp_path / "key"
    dbs = [db, other_db, third_db]
    for name in dbs:
        set_secrets(pg, name, key_file, values_for(name))

    def all_readable(when: str) -> None:
        for name in dbs:
            assert read_secrets(pg, name, key_file) == values_for(name), f"{when}: the secrets of {name} should read"

    for name in (db, other_db):
        result = cli(pg, name, key_file, "config", "rotate-key")
        assert result.returncode == 0, result.stderr
        all_readable(f"after a rotation in {name}")
    for round_ in range(2):
        procs = [(start(pg, name, key_file, "config", "rotate-key"), None) for name in dbs for _ in range(2)]
        failed = [err for code, _, err in finish(procs) if code != 0]
        assert failed == [], f"round {round_}: {failed}"
        all_readable(f"round {round_} of concurrent rotations in every database")
    for name in dbs:
        assert key_ids_in_use(pg, name) <= set(file_ids(key_file))


# ---------------------------------------------------------------------------
# rotate-key killed at random moments
# ---------------------------------------------------------------------------


def test_rotate_key_killed_at_any_moment_leaves_every_secret_readable(pg: Pg, db: str, tmp_path: Path) -> None:
    one_leg(pg)
    key_file = tmp_path / "key"
    expected = values_for(db, 5)
    set_secrets(pg, db, key_file, expected)
    began = time.monotonic()
    assert cli(pg, db, key_file, "config", "rotate-key").returncode == 0
    whole_run = time.monotonic() - began  # only to spread the kills over a run, never asserted
    moments = random.Random(20).sample(range(1000), KILLS)
    for moment in moments:
        proc = start(pg, db, key_file, "config", "rotate-key")
        time.sleep(whole_run * moment / 1000)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        assert read_secrets(pg, db, key_file) == expected, f"killed at {moment / 10:.1f}% of a run"
    result = cli(pg, db, key_file, "config", "rotate-key")
    assert result.returncode == 0, "a killed rotation leaves no lock behind: " + result.stderr
    assert read_secrets(pg, db, key_file) == expected
    assert list(key_file.parent.glob(".key.*.tmp")) == [], "temporary files of killed writers are cleared"


# ---------------------------------------------------------------------------
# config keys, config retire-key, a missing key
# ---------------------------------------------------------------------------


def test_config_keys_lists_each_key_and_the_secrets_it_encrypts(pg: Pg, db: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    set_secrets(pg, db, key_file, {"a.secret": "one", "b.secret": "two"})
    first = file_ids(key_file)[0]
    assert cli(pg, db, key_file, "config", "rotate-key").returncode == 0
    second = file_ids(key_file)[0]
    listed = cli(pg, db, key_file, "config", "keys")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"keys from {key_file}:"
    rows = [[cell.strip() for cell in line.split("|")] for line in lines[3:-1]]
    assert rows == [[second, "primary", "2"], [first, "older", "0"]], listed.stdout


def test_retire_key_refuses_the_primary_and_a_key_in_use_and_removes_an_unused_one(
    pg: Pg, db: str, other_db: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    set_secrets(pg, db, key_file, {"a.secret": "one"})
    set_secrets(pg, other_db, key_file, {"b.secret": "two"})
    first = file_ids(key_file)[0]

    def refused(*args: str) -> str:
        result = cli(pg, db, key_file, "config", "retire-key", *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        return lines[0]

    assert "is the primary key" in refused(first)
    assert cli(pg, db, key_file, "config", "rotate-key").returncode == 0
    second = file_ids(key_file)[0]
    message = refused(first, "--also-database", pg.url(other_db))
    assert f"key {first} still encrypts 1 secret(s) of" in message and other_db in message
    assert "not a key id" in refused("ABC")
    assert f"no key {'0' * 12}" in refused("0" * 12)
    assert file_ids(key_file) == [second, first], "a refused retirement removes nothing"

    assert cli(pg, other_db, key_file, "config", "rotate-key").returncode == 0
    third = file_ids(key_file)[0]
    retired = cli(pg, db, key_file, "config", "retire-key", first, "--also-database", pg.url(other_db))
    assert retired.returncode == 0, retired.stderr
    assert retired.stdout.strip() == f"retired key {first}; {key_file} holds 2 key(s)"
    assert file_ids(key_file) == [third, second]
    assert read_secrets(pg, db, key_file) == {"a.secret": "one"}
    assert read_secrets(pg, other_db, key_file) == {"b.secret": "two"}


def test_retire_key_with_toolsdb_key_is_one_line(pg: Pg, db: str, tmp_path: Path) -> None:
    env = {"TOOLSDB_KEY": Fernet.generate_key().decode()}
    result = cli(pg, db, tmp_path / "unused", "config", "retire-key", "0123456789ab", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: the keys come from TOOLSDB_KEY: retire a key by leaving it out of TOOLSDB_KEY "
        "once toolsdb config keys shows no secret uses it in any database"
    ]


def test_a_secret_under_a_key_the_ring_lacks_names_its_key_id(pg: Pg, db: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    set_secrets(pg, db, key_file, {"a.secret": "one"})
    lost = file_ids(key_file)[0]
    key_file.write_text(Fernet.generate_key().decode() + "\n")  # the key file replaced by hand
    for args in (("config", "get", "a.secret"), ("config", "list", "--reveal"), ("config", "rotate-key")):
        result = cli(pg, db, key_file, *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert lines[0] == (
            f"Error: cannot decrypt config key 'a.secret': it was encrypted with another key, "
            f"key id {lost}, which {key_file} does not hold"
        )
    listed = cli(pg, db, key_file, "config", "keys").stdout
    assert f"{lost} | missing | 1" in listed


# ---------------------------------------------------------------------------
# A key retired while a writer still held an older ring
# ---------------------------------------------------------------------------


def test_a_secret_written_with_a_retired_key_is_written_again_under_the_primary(
    conn: psycopg.Connection, key_file: Path
) -> None:
    stale = config.KeyRing.load()  # read before the rotation and the retirement below
    config.add_key(key_file, Fernet.generate_key())
    config.retire_key([conn], config.key_id(stale.primary))
    config.set_secret(conn, "a.secret", "one", keys=stale)
    conn.commit()
    used = conn.execute("select secret_key_id from toolsdb.config where key = 'a.secret'").fetchone()[0]
    assert used == file_ids(key_file)[0], "the secret is under the key file's primary, not the retired key"
    assert config.get(conn, "a.secret") == "one"


def test_a_rotation_whose_new_key_is_retired_meanwhile_changes_nothing(
    pg: Pg, db: str, conn: psycopg.Connection, key_file: Path
) -> None:
    config.set_secret(conn, "a.secret", "one")
    conn.commit()
    before = conn.execute("select secret_value, secret_key_id from toolsdb.config").fetchall()
    conn.commit()
    outcome: list[BaseException | None] = []
    with psycopg.connect(pg.conninfo(db)) as holder, psycopg.connect(pg.conninfo(db)) as rotating:
        holder.execute("select toolsdb.config_lock_secrets()")  # the rotation will wait for this

        def rotate() -> None:
            try:
                config.rotate_key(rotating)
                outcome.append(None)
            except BaseException as exc:  # handed to the test thread
                outcome.append(exc)

        thread = threading.Thread(target=rotate)
        thread.start()
        for _ in range(6000):  # until the rotation waits for the lock (bounded)
            waiting = conn.execute(
                "select count(*) from pg_locks where relation = 'toolsdb.config'::regclass and not granted"
            ).fetchone()[0]
            conn.commit()
            if waiting:
                break
            time.sleep(0.01)
        assert waiting, "the rotation should be waiting for config_lock_secrets()"
        rotation_key = file_ids(key_file)[0]
        config.add_key(key_file, Fernet.generate_key())
        config.retire_key([], rotation_key)  # no database named: nothing stops it
        holder.rollback()
        thread.join(timeout=120)
    assert len(outcome) == 1 and isinstance(outcome[0], ToolsdbError), outcome
    assert f"key {rotation_key} was retired" in str(outcome[0]) and "nothing changed" in str(outcome[0])
    assert conn.execute("select secret_value, secret_key_id from toolsdb.config").fetchall() == before
    assert config.get(conn, "a.secret") == "one"
