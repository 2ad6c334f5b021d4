"""The agent-tools README's database examples, run with only their imports and connection changed.

Its quick start, as its users run it: ``export TOOLS_DB_URL=...`` then
``get_db()`` to create the tables, then the four tools with no-argument
constructors. Each block below is the README's, character for character,
except the import lines (``tools_db.*`` -> ``toolsdb.compat.tools_db``);
the asserts check what the README says each call returns. docs/names.md
maps its names to toolsdb's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import psycopg
import pytest

from .conftest import Pg, _fresh_name, clean_env

SETUP = """
from toolsdb.compat.tools_db import get_db; get_db()
"""

USE = '''
from toolsdb.compat.tools_db import SchemaValidator
from toolsdb.compat.tools_db import VisionCache
from toolsdb.compat.tools_db import AuditTrail
from toolsdb.compat.tools_db import BugEscalation

# Schema validation
validator = SchemaValidator()
result = validator.validate_create_statement("""
    CREATE TABLE users (
        id SERIAL PRIMARY KEY,
        email VARCHAR(255)
    )
""")

# Vision caching
cache = VisionCache()
cache.store(
    image_hash="abc123",
    extracted_data={"keywords": ["sunset"]},
    confidence_score=0.95,
    model_version="v1.0"
)
result = cache.get("abc123")

# Audit trail
audit = AuditTrail()
audit.record_event(
    event_type="permission_changed",
    entity_type="permission",
    entity_id="perm_bash",
    new_value={"status": "approved"},
    user="admin"
)
events = audit.get_events(entity_type="permission")

# Bug escalation
escalator = BugEscalation()
escalator.report_bug(
    bug_id="bug_001",
    error_type="CriticalError",
    error_message="Application crashed",
    user_impact="critical"
)
bugs = escalator.get_escalations(status="pending")
'''


@pytest.fixture
def tools_db_url(pg: Pg) -> Iterator[str]:
    """An empty database, named by TOOLS_DB_URL as the agent-tools README sets it."""
    with pg.clone(_fresh_name("tools_db"), None) as dbname:
        yield pg.url(dbname)


def python(code: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=clean_env(TOOLS_DB_URL=url),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_quick_start_creates_the_tables_and_every_tool_works(tools_db_url: str) -> None:
    setup = python(SETUP, tools_db_url)
    assert setup.returncode == 0, setup.stderr

    # The README's block, then what it says each result holds.
    checks = """
    assert validation["valid"] is True and validation["errors"] == 0, validation
    assert {f["rule"] for f in validation["findings"]} >= {"text_not_varchar", "identity_not_serial"}, validation
    assert all(f["severity"] == "warning" for f in validation["findings"]), validation
    assert result is not None and result["extracted_data"] == {"keywords": ["sunset"]}, result
    assert result["confidence_score"] == 0.95 and result["model_version"] == "v1.0"
    assert [e["action"] for e in events] == ["permission_changed"], events
    assert events[0]["entity_id"] == "perm_bash" and events[0]["new_values"] == {"status": "approved"}
    assert events[0]["actor"] == "admin", events[0]
    assert [b["bug_id"] for b in bugs] == ["bug_001"] and bugs[0]["user_impact"] == "critical", bugs
    print("ok")
    """
    use = USE.replace("# Vision caching", "validation = result\n\n# Vision caching")
    done = python(use + textwrap.dedent(checks), tools_db_url)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_get_escalations_reads_every_status(tools_db_url: str) -> None:
    assert python(SETUP, tools_db_url).returncode == 0
    code = """
    from toolsdb.compat.tools_db import BugEscalation
    escalator = BugEscalation()
    escalator.report_bug(bug_id="bug_002", error_type="Timeout", error_message="slow", user_impact="low")
    escalator.move("bug_002", "acknowledged")
    escalator.move("bug_002", "resolved")
    assert [b["bug_id"] for b in escalator.get_escalations(status="resolved")] == ["bug_002"]
    assert escalator.get_escalations(status="pending") == []
    assert escalator.get_escalations() == [], "without a status: the open bugs only"
    print("ok")
    """
    done = python(code, tools_db_url)
    assert done.returncode == 0, done.stderr


def test_an_opaque_image_key_and_a_sha256_key_are_both_stored(tools_db_url: str) -> None:
    assert python(SETUP, tools_db_url).returncode == 0
    with psycopg.connect(tools_db_url, autocommit=True) as conn:
        for key in ("abc123", "a" * 64, "img:2026-12:frame_7.png"):
            conn.execute("select toolsdb.vision_cache_store(%s, '{}', 0.5, 'v1')", (key,))
        with pytest.raises(psycopg.errors.CheckViolation) as caught:
            conn.execute("select toolsdb.vision_cache_store('has space', '{}', 0.5, 'v1')")
    assert caught.value.diag.constraint_name == "image_hash_is_valid"
