"""toolsdb.config: plain values from SQL, secrets encrypted on the client with
Fernet, key file handling, rotation in one transaction; the CLI and the
Python module."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet, InvalidToken

from toolsdb import config
from toolsdb.errors import ToolsdbError

from .conftest import Pg, run_cli

SECRET = "https://hooks.slack.com/services/T000/B000/plaintext-secret-42"


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "toolsdb" / "key"
    monkeypatch.setenv("TOOLSDB_KEY_FILE", str(path))
    monkeypatch.delenv("TOOLSDB_KEY", raising=False)
    return path


def cli(pg: Pg, db: str, *args: str, key_file: Path | None = None, env: dict | None = None, input=None):
    extra = {"TOOLSDB_KEY_FILE": str(key_file)} if key_file else {}
    return run_cli(*args, "--database", pg.url(db), env={**extra, **(env or {})}, input=input)


def stored(conn: psycopg.Connection, key: str) -> tuple:
    return conn.execute("select value, is_secret, secret_value from toolsdb.config where key = %s", (key,)).fetchone()


def test_plain_values_round_trip_as_json_from_sql(conn: psycopg.Connection) -> None:
    conn.execute("select toolsdb.config_set('audit.retention', '\"400 days\"', 'How long audit entries stay')")
    conn.execute("select toolsdb.config_set('feature.flags', '{\"beta\": true}')")
    assert conn.execute("select toolsdb.config_get('audit.retention')").fetchone() == ("400 days",)
    assert conn.execute("select toolsdb.config_get('feature.flags')").fetchone() == ({"beta": True},)
    assert conn.execute("select toolsdb.config_get('nope')").fetchone() == (None,), "an unset key reads as null"


def test_setting_again_keeps_the_description_unless_given(conn: psycopg.Connection) -> None:
    conn.execute("select toolsdb.config_set('a.b', '1', 'first')")
    conn.execute("select toolsdb.config_set('a.b', '2')")
    assert conn.execute("select value, description from toolsdb.config where key = 'a.b'").fetchone() == (2, "first")


def test_updated_by_is_the_actor_setting_or_the_login_role(conn: psycopg.Connection) -> None:
    conn.execute("select toolsdb.config_set('a.b', '1')")
    assert conn.execute("select updated_by from toolsdb.config where key = 'a.b'").fetchone() == ("postgres",)
    conn.execute("set local toolsdb.actor = 'alice'")
    conn.execute("select toolsdb.config_set('a.b', '2')")
    assert conn.execute("select updated_by from toolsdb.config where key = 'a.b'").fetchone() == ("alice",)


@pytest.mark.parametrize("bad_key", ["Upper.Case", "trailing.", "", "a b", "1starts.with.digit"])
def test_a_malformed_key_is_rejected_by_key_is_valid(conn: psycopg.Connection, bad_key: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        conn.execute("select toolsdb.config_set(%s, '1')", (bad_key,))
    assert caught.value.diag.constraint_name == "key_is_valid"


def test_the_database_refuses_a_secret_that_is_not_a_fernet_token(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        conn.execute("select toolsdb.config_set_secret('slack.webhook', 'plaintext-by-mistake', '0123456789ab')")
    assert caught.value.diag.constraint_name == "secret_value_is_fernet_token"


@pytest.mark.parametrize("bad_id", ["0123456789AB", "0123456789a", "0123456789abc", "ghijklmnopqr"])
def test_a_malformed_key_id_is_rejected_by_secret_key_id_is_valid(conn: psycopg.Connection, bad_id: str) -> None:
    token = Fernet(Fernet.generate_key()).encrypt(b"v").decode()
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        conn.execute("select toolsdb.config_set_secret('slack.webhook', %s, %s)", (token, bad_id))
    assert caught.value.diag.constraint_name == "secret_key_id_is_valid"


def test_a_secret_without_a_key_id_is_rejected_by_secret_is_consistent(conn: psycopg.Connection) -> None:
    token = Fernet(Fernet.generate_key()).encrypt(b"v").decode()
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        conn.execute("select toolsdb.config_set_secret('slack.webhook', %s, null)", (token,))
    assert caught.value.diag.constraint_name == "secret_is_consistent"


def test_config_get_never_returns_a_secret_from_sql(conn: psycopg.Connection, key_file: Path) -> None:
    config.set_secret(conn, "slack.webhook", SECRET)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is a secret"):
        conn.execute("select toolsdb.config_get('slack.webhook')")


def test_a_secret_is_stored_only_as_ciphertext_and_decrypts_on_the_client(
    conn: psycopg.Connection, key_file: Path
) -> None:
    config.set_secret(conn, "slack.webhook", SECRET, "Slack incoming webhook")
    value, is_secret, token = stored(conn, "slack.webhook")
    assert (value, is_secret) == (None, True)
    assert token.startswith("gAAAAA") and SECRET not in token
    everywhere = conn.execute(
        "select count(*) from toolsdb.config c where to_jsonb(c)::text like %s", (f"%{SECRET}%",)
    ).fetchone()[0]
    assert everywhere == 0, "the plaintext must not be anywhere in toolsdb.config"
    assert config.get(conn, "slack.webhook") == SECRET


def test_the_key_file_is_created_with_mode_0600_on_first_use(conn: psycopg.Connection, key_file: Path) -> None:
    assert not key_file.exists()
    config.set_secret(conn, "slack.webhook", SECRET)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    Fernet(key_file.read_text().strip().encode())  # a valid key


def test_a_key_file_readable_by_others_is_refused(conn: psycopg.Connection, key_file: Path) -> None:
    config.set_secret(conn, "slack.webhook", SECRET)
    key_file.chmod(0o644)
    with pytest.raises(ToolsdbError, match=r"readable by others \(mode 0644\): run chmod 600"):
        config.get(conn, "slack.webhook")


def test_a_wrong_key_is_a_clear_error_and_changes_nothing(
    pg: Pg, db: str, conn: psycopg.Connection, key_file: Path
) -> None:
    config.set_secret(conn, "slack.webhook", SECRET)
    conn.commit()
    before = stored(conn, "slack.webhook")
    other = Fernet.generate_key().decode()
    for args in (("config", "get", "slack.webhook"), ("config", "rotate-key"), ("config", "list", "--reveal")):
        result = cli(pg, db, *args, env={"TOOLSDB_KEY": other})
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert "cannot decrypt config key 'slack.webhook'" in lines[0] and "another key" in lines[0]
    conn.rollback()
    assert stored(conn, "slack.webhook") == before, "a failed command must leave the secret as it was"


def test_cli_set_get_list_unset(pg: Pg, db: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    assert cli(pg, db, "config", "set", "audit.retention", "400 days", key_file=key_file).returncode == 0
    assert cli(pg, db, "config", "set", "limits.max_agents", "12", key_file=key_file).returncode == 0
    assert cli(pg, db, "config", "set", "limits.label", "12", "--string", key_file=key_file).returncode == 0
    assert (
        cli(pg, db, "config", "set", "slack.webhook", "--secret", key_file=key_file, input=SECRET + "\n").returncode
        == 0
    )
    assert cli(pg, db, "config", "get", "audit.retention", key_file=key_file).stdout == "400 days\n"
    assert cli(pg, db, "config", "get", "limits.max_agents", key_file=key_file).stdout == "12\n"
    assert cli(pg, db, "config", "get", "slack.webhook", key_file=key_file).stdout == SECRET + "\n"
    listed = cli(pg, db, "config", "list", key_file=key_file).stdout
    assert "********" in listed and SECRET not in listed, "list masks secrets"
    assert SECRET in cli(pg, db, "config", "list", "--reveal", key_file=key_file).stdout
    with psycopg.connect(pg.conninfo(db)) as conn:
        assert stored(conn, "limits.max_agents")[0] == 12 and stored(conn, "limits.label")[0] == "12"
    assert cli(pg, db, "config", "unset", "limits.label", key_file=key_file).returncode == 0
    again = cli(pg, db, "config", "unset", "limits.label", key_file=key_file)
    assert again.returncode == 1 and again.stderr.strip() == "Error: config key 'limits.label' is not set"
    missing = cli(pg, db, "config", "get", "limits.label", key_file=key_file)
    assert missing.returncode == 1 and "is not set" in missing.stderr


def test_rotate_key_re_encrypts_every_secret_and_keeps_the_old_key(conn: psycopg.Connection, key_file: Path) -> None:
    config.set_secret(conn, "a.secret", "one")
    config.set_secret(conn, "b.secret", "two")
    conn.commit()
    old_key = key_file.read_text().strip()
    tokens_before = {k: stored(conn, k)[2] for k in ("a.secret", "b.secret")}
    count, new_key = config.rotate_key(conn)
    assert count == 2
    assert key_file.read_text().split() == [new_key.decode(), old_key], (
        "the new key is the primary and the old one stays: another database may still use it"
    )
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for key, plain in (("a.secret", "one"), ("b.secret", "two")):
        token = stored(conn, key)[2]
        assert token != tokens_before[key]
        assert Fernet(new_key).decrypt(token.encode()).decode() == plain, "the new key alone decrypts it"
        with pytest.raises(InvalidToken):
            Fernet(old_key.encode()).decrypt(token.encode())
        key_id = conn.execute("select secret_key_id from toolsdb.config where key = %s", (key,)).fetchone()[0]
        assert key_id == config.key_id(new_key)


def test_a_failed_rotation_changes_no_secret_and_the_file_keeps_every_key(
    conn: psycopg.Connection, key_file: Path
) -> None:
    config.set_secret(conn, "a.secret", "one")
    # A secret under a key the ring does not have: rotation must fail on it.
    foreign_key = Fernet.generate_key()
    foreign = Fernet(foreign_key).encrypt(b"two").decode()
    conn.execute("select toolsdb.config_set_secret('b.secret', %s, %s)", (foreign, config.key_id(foreign_key)))
    conn.commit()
    keys_before = key_file.read_text().split()
    rows_before = conn.execute("select key, secret_value, updated_at from toolsdb.config order by key").fetchall()
    with pytest.raises(ToolsdbError, match=rf"'b\.secret'.*key id {config.key_id(foreign_key)}"):
        config.rotate_key(conn)
    keys_after = key_file.read_text().split()
    assert keys_after[1:] == keys_before and len(keys_after) == 2, "the new key stays; no key is removed"
    rows_after = conn.execute("select key, secret_value, updated_at from toolsdb.config order by key").fetchall()
    assert rows_after == rows_before, "no secret was re-encrypted"
    assert config.get(conn, "a.secret") == "one"


def test_a_secret_under_an_older_key_of_the_ring_still_reads(conn: psycopg.Connection, key_file: Path) -> None:
    config.set_secret(conn, "a.secret", "one")
    conn.commit()
    old = key_file.read_text().strip().encode()
    config.add_key(key_file, Fernet.generate_key())
    ring = config.KeyRing.load(create=False)
    assert ring.keys[1:] == [old] and ring.primary != old
    assert config.get(conn, "a.secret", keys=ring) == "one"
    config.set_secret(conn, "b.secret", "two", keys=ring)
    ids = dict(conn.execute("select key, secret_key_id from toolsdb.config where is_secret").fetchall())
    assert ids == {"a.secret": config.key_id(old), "b.secret": config.key_id(ring.primary)}


def test_toolsdb_key_environment_variable_wins_and_rotation_prints_the_new_key(pg: Pg, db: str, tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    env = {"TOOLSDB_KEY": key, "TOOLSDB_KEY_FILE": str(tmp_path / "unused")}
    assert (
        run_cli("config", "set", "x.secret", "--secret", "--database", pg.url(db), env=env, input="v").returncode == 0
    )
    assert not (tmp_path / "unused").exists(), "with TOOLSDB_KEY no key file is made"
    rotated = run_cli("config", "rotate-key", "--database", pg.url(db), env=env)
    assert rotated.returncode == 0, rotated.stderr
    ring = rotated.stdout.strip().splitlines()[-1].split(",")
    assert len(ring) == 2 and ring[1] == key, "the new TOOLSDB_KEY: the new key first, the old one kept"
    new_key = ring[0]
    assert config.key_id(new_key.encode()) in rotated.stdout
    got = run_cli("config", "get", "x.secret", "--database", pg.url(db), env={**env, "TOOLSDB_KEY": new_key})
    assert got.stdout == "v\n"


def test_a_malformed_toolsdb_key_is_one_clear_line(pg: Pg, db: str) -> None:
    result = run_cli(
        "config", "set", "x.y", "--secret", "--database", pg.url(db), env={"TOOLSDB_KEY": "short"}, input="v"
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: TOOLSDB_KEY does not hold a valid Fernet key (32 url-safe base64-encoded bytes)"
    )


def test_secrets_never_reach_the_audit_log(conn: psycopg.Connection, key_file: Path) -> None:
    config.set_secret(conn, "slack.webhook", SECRET)
    config.set_secret(conn, "slack.webhook", SECRET + "-v2")
    token = stored(conn, "slack.webhook")[2]
    conn.execute("select toolsdb.config_unset('slack.webhook')")
    leaks = conn.execute(
        "select count(*) from toolsdb.audit_logs l where to_jsonb(l)::text like %s or to_jsonb(l)::text like %s",
        (f"%{SECRET}%", f"%{token}%"),
    ).fetchone()[0]
    assert leaks == 0, "neither the plaintext nor the token may be in any audit entry"
    redacted = conn.execute(
        "select count(*) from toolsdb.audit_logs where entity_type = 'config'"
        " and coalesce(new_values, old_values) ->> 'secret_value' = '[redacted]'"
    ).fetchone()[0]
    assert redacted == 3, "insert, update and delete of the secret are audited with the value redacted"


def test_key_file_default_is_in_the_users_config_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TOOLSDB_KEY_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.default_key_file() == tmp_path / "toolsdb" / "key"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert config.default_key_file() == Path(os.path.expanduser("~")) / ".config" / "toolsdb" / "key"


def test_a_secret_is_never_taken_from_the_command_line(pg: Pg, db: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    refused = cli(pg, db, "config", "set", "slack.token", "xoxb-visible-in-ps", "--secret", key_file=key_file)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "visible to every local user" in lines[0], refused.stderr
    assert "xoxb-visible-in-ps" not in refused.stderr
    with psycopg.connect(pg.conninfo(db)) as conn:
        assert stored(conn, "slack.token") is None, "a refused secret stores nothing"
    piped = cli(pg, db, "config", "set", "slack.token", "--secret", key_file=key_file, input="xoxb-piped\n")
    assert piped.returncode == 0, piped.stderr
    assert cli(pg, db, "config", "get", "slack.token", key_file=key_file).stdout == "xoxb-piped\n"
    empty = cli(pg, db, "config", "set", "slack.other", "--secret", key_file=key_file, input="")
    assert empty.returncode == 1 and "no value for slack.other" in empty.stderr


def test_a_key_file_that_is_a_folder_is_named_as_such(pg: Pg, db: str, tmp_path: Path) -> None:
    result = cli(pg, db, "config", "set", "a.b", "--secret", key_file=tmp_path, input="v")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a folder" in lines[0] and "chmod" not in lines[0], result.stderr
