"""Projects against a real, migrated database, on each PostgreSQL major of the
suite: toolsdb.projects (well-formed unique slugs, the documented repository
URL forms, statuses, the technology stack array) and its owner (who must
exist and cannot be deleted while they own a project).

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

from .conftest import Pg
from .dbhelpers import scalar
from .identityhelpers import expect_violation, new_project, new_user, seeded_clone

committed = pytest.fixture(seeded_clone, scope="module")


# ---------------------------------------------------------------------------
# toolsdb.projects
# ---------------------------------------------------------------------------


def test_projects_accept_well_formed_slugs(tx: psycopg.Connection) -> None:
    for slug in ("a", "agent-notify-2", "v2-api-3", "x" * 100):
        with tx.transaction():
            stored = new_project(tx, slug=slug)["slug"]
        assert stored == slug, f"The well-formed slug {slug!r} should be accepted."


@pytest.mark.parametrize(
    "slug", ["Agent-Notify", "double--hyphen", "-leading", "trailing-", "under_score", "with space", "dot.ted"]
)
def test_projects_reject_a_malformed_slug(tx: psycopg.Connection, slug: str) -> None:
    expect_violation(tx, errors.CheckViolation, "slug_is_valid", "projects", lambda: new_project(tx, slug=slug))


def test_projects_slug_is_unique(tx: psycopg.Connection) -> None:
    new_project(tx, slug="same-slug")
    expect_violation(
        tx, errors.UniqueViolation, "projects_slug_key", "projects", lambda: new_project(tx, slug="same-slug")
    )


def test_projects_accept_every_documented_repository_url_form(tx: psycopg.Connection) -> None:
    for url in (
        "https://github.com/example/toolsdb.git",
        "ssh://git@github.com/example/toolsdb.git",
        "git://example.org/toolsdb.git",
        "git@github.com:example/agent-notify.git",
        "deploy.bot@git.example.org:team/repo",
        None,
    ):
        with tx.transaction():
            stored = new_project(tx, repository_url=url)["repository_url"]
        assert stored == url, f"The repository_url {url!r} should be accepted and stored unchanged."


@pytest.mark.parametrize(
    "url",
    [
        "http://github.com/example/toolsdb.git",
        "file:///srv/git/toolsdb.git",
        "ftp://example.org/toolsdb.git",
        "github.com/example/toolsdb",
        "https://github.com/example/my repo.git",
        "git@github.com",
        "github.com:example/toolsdb.git",
    ],
)
def test_projects_reject_a_malformed_repository_url(tx: psycopg.Connection, url: str) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "repository_url_is_valid",
        "projects",
        lambda: new_project(tx, repository_url=url),
    )


def test_projects_accept_every_documented_status_and_default_to_active(tx: psycopg.Connection) -> None:
    assert new_project(tx)["status"] == "active", "A project created without a status should be active."
    for status in ("active", "paused", "archived"):
        assert new_project(tx, status=status)["status"] == status, f"The status {status} should be accepted."


@pytest.mark.parametrize("status", ["deleted", "Active", ""])
def test_projects_reject_an_unknown_status(tx: psycopg.Connection, status: str) -> None:
    expect_violation(tx, errors.CheckViolation, "status_is_valid", "projects", lambda: new_project(tx, status=status))


def test_projects_owner_must_exist(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.ForeignKeyViolation,
        "projects_owner_id_fkey",
        "projects",
        lambda: new_project(tx, owner_id="00000000-0000-0000-0000-000000000000"),
    )


def test_deleting_a_user_who_owns_a_project_is_restricted(pg: Pg, tx: psycopg.Connection) -> None:
    # PostgreSQL 18 reports a triggered ON DELETE RESTRICT as restrict_violation (23001), the SQL standard's code;
    # up to 17 it was foreign_key_violation (23503). Both are class 23 and name the constraint.
    expected: type[psycopg.Error] = errors.RestrictViolation if int(pg.major) >= 18 else errors.ForeignKeyViolation
    owner = new_user(tx)
    project = new_project(tx, owner_id=owner["user_id"])
    with (
        pytest.raises(expected, match='foreign key constraint "projects_owner_id_fkey"') as caught,
        tx.transaction(),
    ):
        tx.execute("delete from toolsdb.users where user_id = %s", (owner["user_id"],))
    diag = caught.value.diag
    assert diag.constraint_name == "projects_owner_id_fkey", (
        f"Deleting a project owner should fail on projects_owner_id_fkey, not on {diag.constraint_name}."
    )
    assert caught.value.sqlstate == expected.sqlstate, (
        f"Deleting a project owner on PostgreSQL {pg.major} should raise SQLSTATE {expected.sqlstate}, "
        f"not {caught.value.sqlstate}."
    )
    still_there = scalar(tx, "select count(*) from toolsdb.projects where project_id = %s", (project["project_id"],))
    assert still_there == 1, "The owned project should survive the refused deletion of its owner."


def test_a_user_can_be_deleted_once_their_projects_are_gone(tx: psycopg.Connection) -> None:
    owner = new_user(tx)
    project = new_project(tx, owner_id=owner["user_id"])
    tx.execute("delete from toolsdb.projects where project_id = %s", (project["project_id"],))
    deleted = tx.execute("delete from toolsdb.users where user_id = %s", (owner["user_id"],)).rowcount
    assert deleted == 1, "A user who no longer owns any project should be deletable."


@pytest.mark.parametrize("stack", ['{"python": true}', '"python"', "null"])
def test_projects_technology_stack_must_be_an_array(tx: psycopg.Connection, stack: str) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "technology_stack_is_array",
        "projects",
        lambda: new_project(tx, technology_stack=stack),
    )


def test_projects_technology_stack_defaults_to_an_empty_array(tx: psycopg.Connection) -> None:
    assert new_project(tx)["technology_stack"] == [], "A project's technology_stack should default to []."
