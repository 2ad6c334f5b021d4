"""Users and their preferences against a real, migrated database, on each
PostgreSQL major of the suite: toolsdb.users (roles, well-formed and
case-insensitively unique emails and usernames, github_id, JSON objects) and
toolsdb.preferences (one row per user and category, containment through the
GIN index, nested paths, deleted with their user).

Isolation, kept cheap (a template clone costs ~0.2 s, so one per test would
not fit the runtime budget): most tests run in ``tx``, a transaction that is
always rolled back, on one clone per module and major loaded once with
seeds/10_identity.sql (``committed``, identityhelpers.seeded_clone), so they
see exactly the seed and leave nothing behind.

Every rejected statement runs inside ``conn.transaction()`` (a savepoint when a
transaction is already open), so a failure never poisons the statements after
it; the error must name the constraint (``diag.constraint_name``), its table and
carry an SQLSTATE of class 23 (integrity constraint violation).
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from .dbhelpers import scalar
from .identityhelpers import column, expect_violation, id_of, new_preference, new_user, seeded_clone

committed = pytest.fixture(seeded_clone, scope="module")


# ---------------------------------------------------------------------------
# toolsdb.users
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "manager", "user", "service"])
def test_users_accept_every_documented_role(tx: psycopg.Connection, role: str) -> None:
    assert new_user(tx, role=role)["role"] == role, f"A user with role {role} should be stored as such."


def test_users_default_role_is_user(tx: psycopg.Connection) -> None:
    assert new_user(tx)["role"] == "user", "A user created without a role should get the role user."


@pytest.mark.parametrize("role", ["superuser", "Admin", ""])
def test_users_reject_an_unknown_role(tx: psycopg.Connection, role: str) -> None:
    expect_violation(tx, errors.CheckViolation, "role_is_valid", "users", lambda: new_user(tx, role=role))


def test_users_accept_well_formed_emails(tx: psycopg.Connection) -> None:
    for email in ("a@b.co", "first.last+tag@mail.example.org", "Dave@Example.COM"):
        with tx.transaction():
            stored = new_user(tx, email=email)["email"]
        assert stored == email, f"The well-formed email {email} should be accepted and stored unchanged."


@pytest.mark.parametrize(
    "email",
    ["no-at-sign.example.com", "two@@example.com", "space in@example.com", "alice@localhost", "@example.com"],
)
def test_users_reject_a_malformed_email(tx: psycopg.Connection, email: str) -> None:
    expect_violation(tx, errors.CheckViolation, "email_is_valid", "users", lambda: new_user(tx, email=email))


def test_users_username_is_unique_regardless_of_case(tx: psycopg.Connection) -> None:
    new_user(tx, username="Dave", email="dave1@example.com")
    exc = expect_violation(
        tx,
        errors.UniqueViolation,
        "users_lower_username_key",
        "users",
        lambda: new_user(tx, username="dAVE", email="dave2@example.com"),
    )
    assert exc.sqlstate == "23505", f"A duplicate username should raise unique_violation (23505), not {exc.sqlstate}."


def test_users_email_is_unique_regardless_of_case(tx: psycopg.Connection) -> None:
    new_user(tx, email="dave@example.com")
    expect_violation(
        tx,
        errors.UniqueViolation,
        "users_lower_email_key",
        "users",
        lambda: new_user(tx, email="DAVE@Example.COM"),
    )


def test_users_github_id_is_unique(tx: psycopg.Connection) -> None:
    new_user(tx, github_id=4242)
    expect_violation(tx, errors.UniqueViolation, "users_github_id_key", "users", lambda: new_user(tx, github_id=4242))


def test_users_without_github_id_do_not_collide(tx: psycopg.Connection) -> None:
    first, second = new_user(tx), new_user(tx)
    assert first["github_id"] is None and second["github_id"] is None, (
        "Several users not linked to GitHub (github_id null) should coexist."
    )


@pytest.mark.parametrize("metadata", ["[]", '"text"', "42", "null"])
def test_users_metadata_must_be_an_object(tx: psycopg.Connection, metadata: str) -> None:
    expect_violation(tx, errors.CheckViolation, "metadata_is_object", "users", lambda: new_user(tx, metadata=metadata))


def test_users_preferences_must_be_an_object(tx: psycopg.Connection) -> None:
    expect_violation(
        tx, errors.CheckViolation, "preferences_is_object", "users", lambda: new_user(tx, preferences="[]")
    )


# ---------------------------------------------------------------------------
# toolsdb.preferences
# ---------------------------------------------------------------------------


def test_preferences_are_unique_per_user_and_category(tx: psycopg.Connection) -> None:
    pref = new_preference(tx, category="ui_settings")
    new_preference(tx, user_id=pref["user_id"], category="notifications")
    expect_violation(
        tx,
        errors.UniqueViolation,
        "preferences_user_id_category_key",
        "preferences",
        lambda: new_preference(tx, user_id=pref["user_id"], category="ui_settings"),
    )


def test_preferences_must_be_an_object(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "preferences_is_object",
        "preferences",
        lambda: new_preference(tx, preferences='["dark"]'),
    )


def test_preferences_containment_finds_the_users_with_a_setting(tx: psycopg.Connection) -> None:
    found = column(
        tx,
        """
        select u.username
        from toolsdb.preferences as p join toolsdb.users as u using (user_id)
        where p.preferences @> '{"theme": "dark"}'
        order by 1
        """,
    )
    assert found == ["alice", "carol"], f"preferences @> theme dark should find alice and carol, but found {found}."


def test_preferences_containment_uses_the_gin_index(tx: psycopg.Connection) -> None:
    tx.execute("set local enable_seqscan = off")
    plan = "\n".join(
        column(tx, """explain select user_id from toolsdb.preferences where preferences @> '{"theme": "dark"}'""")
    )
    assert "preferences_preferences_idx" in plan, (
        f"preferences @> {{...}} should be answered through preferences_preferences_idx, but:\n{plan}"
    )


def test_preferences_nested_path_queries_work(tx: psycopg.Connection) -> None:
    found = column(
        tx,
        """
        select u.username
        from toolsdb.preferences as p join toolsdb.users as u using (user_id)
        where p.category = 'ui_settings' and (p.preferences -> 'notifications' ->> 'email')::boolean
        order by 1
        """,
    )
    assert found == ["alice", "carol"], (
        f"preferences -> 'notifications' ->> 'email' should be true for alice and carol only, but found {found}."
    )


def test_deleting_a_user_deletes_their_preferences(tx: psycopg.Connection) -> None:
    user_id = id_of(tx, "users", "username", "bob")
    count = "select count(*) from toolsdb.preferences where user_id = %s"
    before = scalar(tx, count, (user_id,))
    tx.execute("delete from toolsdb.users where user_id = %s", (user_id,))
    after = scalar(tx, count, (user_id,))
    assert (before, after) == (1, 0), (
        f"Deleting bob should cascade to his preferences, but he had {before} rows and {after} remain."
    )
