"""``toolsdb cluster``: a local Citus cluster from the embedded PostgreSQL 18
with Citus installed into it (runner/toolsdb/cluster.py, docs/citus.md).

Needs the Citus build (TOOLSDB_CITUS_DIR, else ../shared/citus); skipped
without it unless TOOLSDB_REQUIRE_CITUS=1 (CI) makes that a failure. Every
test drives the real console script and checks the cluster with SQL on the
coordinator: nodes registered, a distributed table's rows spread over the
workers and kept through add-worker --rebalance, stop and start, a start
killed half-way and completed by the next, concurrent starts. Then toolsdb
on it (docs/citus.md, section 3): migrate and its second run, seed with
every view against one node, the hook, row-level security, the queues with
several workers, maintain and the audit log, a rebalance while the hook
writes.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from toolsdb import cluster as cluster_module
from toolsdb.errors import ToolsdbError
from toolsdb.treestate import CITUS_PRESENT

from .conftest import clean_env, run_cli, toolsdb_exe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def citus() -> Path:
    try:
        return cluster_module.citus_dir()
    except ToolsdbError as exc:
        if os.environ.get("TOOLSDB_REQUIRE_CITUS") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_cli("cluster", *args, env=citus_env(), timeout=timeout)


def citus_env() -> dict[str, str]:
    return {cluster_module.CITUS_ENV: str(cluster_module.citus_dir())}


def status(folder: Path) -> list[dict]:
    done = cli("status", "--json", "--dir", str(folder))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def url(folder: Path) -> str:
    done = cli("url", "--dir", str(folder))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def rows_per_node(conn: psycopg.Connection) -> dict[str, int]:
    per: dict[str, int] = {}
    for node, result in conn.execute(
        "select nodename, result from run_command_on_placements('spread', 'select count(*) from %s')"
    ).fetchall():
        per[node] = per.get(node, 0) + int(result)
    return per


@pytest.fixture(scope="module")
def running(citus: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("citus") / "cluster"
    done = cli("start", "--dir", str(folder))
    assert done.returncode == 0, done.stderr
    yield folder
    cli("remove", "--force", "--dir", str(folder))


def test_start_runs_a_coordinator_and_two_workers_that_hold_a_distributed_tables_rows(running: Path) -> None:
    nodes = status(running)
    assert [(n["node"], n["role"], n["running"], n["registered"]) for n in nodes] == [
        ("coordinator", "coordinator", True, True),
        ("worker1", "worker", True, True),
        ("worker2", "worker", True, True),
    ], nodes
    with psycopg.connect(url(running), autocommit=True) as conn:
        conn.execute("create table spread (id bigint primary key, v text)")
        conn.execute("select create_distributed_table('spread', 'id')")
        conn.execute("insert into spread select g, 'x' from generate_series(1, 1000) as g")
        per = rows_per_node(conn)
    workers = {n["socket"] for n in nodes if n["role"] == "worker"}
    assert set(per) == workers and sum(per.values()) == 1000 and min(per.values()) > 0, per


def test_the_cluster_folder_is_ignored_by_git(running: Path) -> None:
    assert (running / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_second_start_changes_nothing(running: Path) -> None:
    with psycopg.connect(url(running), autocommit=True) as conn:
        before = conn.execute("select nodeid, nodename, nodeport from pg_dist_node order by nodeid").fetchall()
    again = cli("start", "--dir", str(running))
    assert again.returncode == 0, again.stderr
    with psycopg.connect(url(running), autocommit=True) as conn:
        assert conn.execute("select nodeid, nodename, nodeport from pg_dist_node order by nodeid").fetchall() == before


@pytest.fixture(scope="module")
def migrated(running: Path) -> str:
    """The coordinator after `toolsdb migrate`: the distribution of docs/citus.md applied."""
    coordinator = url(running)
    done = run_cli("migrate", "--database", coordinator, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return coordinator


def node_url(folder: Path, node: str, dbname: str = "toolsdb") -> str:
    found = next(n for n in status(folder) if n["node"] == node)
    return f"postgresql://postgres@/{dbname}?host={quote(found['socket'], safe='')}&port={found['port']}"


# Every row of the catalog that migrate could rewrite, with its row version.
CATALOG = """
select pg_catalog.array_agg(x order by x) from (
    select 'class ' || c.oid || ' ' || c.xmin from pg_catalog.pg_class as c
    where c.relnamespace in ('toolsdb'::regnamespace, 'toolsdb_private'::regnamespace)
    union all
    select 'proc ' || p.oid || ' ' || p.xmin from pg_catalog.pg_proc as p
    where p.pronamespace in ('toolsdb'::regnamespace, 'toolsdb_private'::regnamespace)
    union all
    select 'trigger ' || t.oid || ' ' || t.xmin from pg_catalog.pg_trigger as t
    inner join pg_catalog.pg_class as c on c.oid = t.tgrelid
    where c.relnamespace in ('toolsdb'::regnamespace, 'toolsdb_private'::regnamespace)
    union all
    select 'dist ' || d.logicalrelid::oid || ' ' || d.xmin from pg_catalog.pg_dist_partition as d
) as s (x)
"""


def test_migrate_distributes_the_session_group_and_a_second_migrate_changes_nothing(migrated: str) -> None:
    with psycopg.connect(migrated, autocommit=True) as conn:
        roles = dict(
            conn.execute(
                "select p.logicalrelid::text,"
                " p.partmethod::text || p.repmodel::text || coalesce(c.colocationid::text, '')"
                " from pg_dist_partition as p left join pg_dist_colocation as c on c.colocationid = p.colocationid"
                " and p.partmethod = 'h'"
            ).fetchall()
        )
        assert {t: roles.get(t) for t in ("users", "projects", "agents")} == dict.fromkeys(
            ("users", "projects", "agents"), "nt"
        ), roles
        # The hook's events with their sessions, keyed by session as Citus needs.
        assert roles["sessions"].startswith("hs") and roles["messages"] == roles["events"] == roles["sessions"], roles
        assert conn.execute(
            "select pg_catalog.array_agg(c.conname || ' ' || pg_catalog.pg_get_constraintdef(c.oid) order by c.conname)"
            " from pg_constraint as c where c.conrelid = 'toolsdb.events'::regclass and c.contype in ('p', 'u', 'f')"
        ).fetchone()[0] == [
            "events_idempotency_key_key UNIQUE (session_id, idempotency_key)",
            "events_pkey PRIMARY KEY (session_id, event_id)",
            "events_session_id_fkey FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE",
        ]
        # memories by agent_id, with the audit outbox its workers capture into.
        assert roles["memories"].startswith("hs") and roles["memories"] != roles["sessions"], roles
        assert roles["toolsdb_private.audit_outbox"] == roles["memories"], roles
        # The catalog conventions hold on the coordinator too: Citus's conversions
        # leave no table or column without its comment, and every table is audited
        # or exempt with a reason (tests/test_catalog_conventions.py on one node).
        assert (
            conn.execute(
                "select object_name, column_name, rule from toolsdb_private.convention_findings("
                "array['toolsdb', 'toolsdb_private', 'toolsdb_monitoring']::regnamespace[])"
            ).fetchall()
            == []
        )
        assert (
            conn.execute(
                "select c.oid::regclass::text from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
                " where n.nspname in ('toolsdb', 'toolsdb_private') and c.relkind in ('r', 'p')"
                " and not c.relispartition and not exists (select from pg_trigger as t where t.tgrelid = c.oid"
                " and t.tgname = '_900_audit') and not exists (select from toolsdb_private.audit_exemptions as e"
                " where e.table_name = n.nspname || '.' || c.relname)"
            ).fetchall()
            == []
        )
        # The work group by project_id, in the co-location group of memories and the outbox
        # (uuid keys); what its triggers read on a worker is in reference tables.
        work_group = (
            "tasks",
            "evidence",
            "agent_executions",
            "agent_execution_logs",
            "pr_validations",
            "task_comments",
            "task_attachments",
            "activity_feed",
            "execution_rollups",
        )
        assert {roles[t] for t in work_group} == {roles["memories"]}, roles
        assert {roles[t] for t in ("task_status_transitions", "model_prices", "model_aliases")} == {"nt"}, roles
        keys = dict(
            conn.execute(
                "select c.conname, pg_catalog.pg_get_constraintdef(c.oid) from pg_constraint as c"
                " where c.conrelid = any(array['toolsdb.tasks', 'toolsdb.evidence', 'toolsdb.pr_validations']"
                "::regclass[]) and c.contype in ('p', 'f')"
            ).fetchall()
        )
        assert keys["tasks_pkey"] == "PRIMARY KEY (project_id, task_id)", keys
        assert keys["evidence_task_id_fkey"] == (
            "FOREIGN KEY (project_id, task_id) REFERENCES tasks(project_id, task_id) ON DELETE RESTRICT"
        ), keys
        assert keys["pr_validations_task_id_fkey"] == (
            "FOREIGN KEY (project_id, task_id) REFERENCES tasks(project_id, task_id) ON DELETE CASCADE"
        ), keys
        # Tables with a key to a reference table are on the coordinator, as Citus local tables.
        # So are the tables written with the messages in one transaction
        # (two-phase commit); the notification queue stays a plain table.
        assert roles["error_logs"] == roles["api_usage"] == roles["transcript_files"] == "ns", roles
        assert "audit_logs" not in roles and "notifications" not in roles, roles
        assert conn.execute(
            "select pg_catalog.array_agg(rolname order by rolname) from pg_roles where rolcanlogin"
            " and rolname in ('toolsdb_owner', 'toolsdb_app', 'toolsdb_readonly', 'toolsdb_worker')"
        ).fetchone()[0] == ["toolsdb_app", "toolsdb_owner", "toolsdb_readonly", "toolsdb_worker"]
        before = conn.execute(CATALOG).fetchone()[0]
    again = run_cli("migrate", "--database", migrated, timeout=300)
    assert again.returncode == 0 and "nothing to migrate" in again.stdout, again.stdout + again.stderr
    with psycopg.connect(migrated, autocommit=True) as conn:
        assert conn.execute(CATALOG).fetchone()[0] == before


def test_migrate_refuses_a_worker_and_rollback_backup_restore_and_validate_refuse_the_cluster_in_one_line(
    running: Path, migrated: str, tmp_path: Path
) -> None:
    """A backup through the coordinator would hold the distributed tables'
    definitions and none of their rows: refused, and no file is left."""
    dump = tmp_path / "cluster.dump"
    dump.write_bytes(b"PGDMP")  # restore reads the cluster before the archive
    script = tmp_path / "scratch.sql"
    script.write_text("create table toolsdb_scratch.t (session_id text references toolsdb.sessions (session_id));\n")
    for args, message in (
        (["validate", "--database", migrated, str(script)], "not on a Citus database"),
        (["migrate", "--database", node_url(running, "worker1")], "Citus worker"),
        (["rollback", "--database", migrated], "not supported on a Citus cluster"),
        (["backup", "--database", migrated, str(tmp_path / "new.dump")], "cannot back up a Citus database"),
        (["restore", "--database", migrated, str(dump)], "cannot restore into a Citus database"),
    ):
        done = run_cli(*args)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.dump", "scratch.sql"]
    # A database migrated before it had Citus: its tables hold triggers (and
    # rows), which distributing would copy through on the workers. Refused.
    with psycopg.connect(url(running).replace("/toolsdb?", "/postgres?"), autocommit=True) as conn:
        conn.execute("drop database if exists toolsdb_before")
        conn.execute("create database toolsdb_before")
    before = url(running).replace("/toolsdb?", "/toolsdb_before?")
    assert run_cli("migrate", "--database", before, timeout=300).returncode == 0
    with psycopg.connect(before, autocommit=True) as conn:
        conn.execute("create extension citus")
    late = run_cli("migrate", "--database", before, timeout=300)
    assert late.returncode != 0 and late.stderr.count("\n") == 1, late
    assert "migrated before it had Citus" in late.stderr, late.stderr
    with psycopg.connect(migrated, autocommit=True) as conn:
        assert conn.execute("select count(*) from toolsdb_migrations._yoyo_migration").fetchone()[0] == 1


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d(:\d\d)?|Z)?")


def view_rows(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every view of the toolsdb schema, its rows as sorted text, with what
    differs between two seedings taken out: generated ids and times, and
    figures computed from the clock."""
    rows: dict[str, list[str]] = {}
    for (view,) in conn.execute("select viewname from pg_views where schemaname = 'toolsdb' order by 1").fetchall():
        columns = conn.execute(
            "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute as a"
            " where a.attrelid = ('toolsdb.' || quote_ident(%s))::regclass and a.attnum > 0 and not a.attisdropped"
            " order by a.attnum",
            (view,),
        ).fetchall()
        kept = [
            name
            for name, kind in columns
            if kind not in ("timestamp with time zone", "interval", "double precision")
            and name not in ("audit_id", "log_id", "activity_id", "event_id")
            and "duration" not in name  # measured by the clock while the seed ran
        ]
        listed = ", ".join(f'"{name}"::text' for name in kept)
        text = [
            TIMESTAMP.sub("T", UUID.sub("U", repr(row)))
            for row in conn.execute(f"select {listed} from toolsdb.{view}").fetchall()
        ]
        rows[view] = sorted(text)
    return rows


def test_seed_then_every_view_returns_the_rows_of_one_node(running: Path, migrated: str) -> None:
    """The same seed on the cluster and on one node (a database of the
    coordinator's server without Citus): every view of the toolsdb schema
    returns the same rows, and the audit log holds the same changes, each
    captured once with its table's name, not its shard's."""
    with psycopg.connect(url(running).replace("/toolsdb?", "/postgres?"), autocommit=True) as conn:
        conn.execute("drop database if exists toolsdb_single")
        conn.execute("create database toolsdb_single")
    single = url(running).replace("/toolsdb?", "/toolsdb_single?")
    for target in (single, migrated):
        if target == single:
            done = run_cli("migrate", "--database", target, timeout=300)
            assert done.returncode == 0, done.stderr
        done = run_cli("seed", "--database", target, timeout=300)
        assert done.returncode == 0, done.stderr
    audit = (
        "select entity_type, action, count(*) from toolsdb.audit_logs"
        " group by entity_type, action order by entity_type, action"
    )
    with psycopg.connect(single, autocommit=True) as one, psycopg.connect(migrated, autocommit=True) as cluster:
        assert conn_has_citus(cluster) and not conn_has_citus(one)
        # The seed's memories were captured on the workers: they join the log when collected.
        waiting = cluster.execute("select count(*) from toolsdb_private.audit_outbox").fetchone()[0]
        assert waiting > 0
        assert cluster.execute("select toolsdb.audit_collect()").fetchone()[0] == waiting
        assert one.execute("select toolsdb.audit_collect()").fetchone()[0] == 0
        expected, got = view_rows(one), view_rows(cluster)
        assert list(got) == list(expected)
        assert {v: got[v] for v in got if got[v] != expected[v]} == {}, {
            v: expected[v] for v in got if got[v] != expected[v]
        }
        assert sum(map(len, got.values())) > 100, {v: len(r) for v, r in got.items()}
        assert cluster.execute(audit).fetchall() == one.execute(audit).fetchall()
        assert (
            cluster.execute("select count(*) from toolsdb.audit_logs where entity_type ~ '_[0-9]+$'").fetchone()[0] == 0
        )


def conn_has_citus(conn: psycopg.Connection) -> bool:
    return conn.execute(CITUS_PRESENT).fetchone()[0]


def send_events(coordinator: str, sessions: list[str], events: list[str]) -> int:
    sent = 0
    with psycopg.connect(coordinator, autocommit=True) as conn:
        for sid in sessions:  # hook_ingest() forces generic plans: built once, reused
            for event in events:
                conn.execute(
                    "select toolsdb.hook_ingest(%s::jsonb, %s::jsonb)",
                    (
                        json.dumps(
                            {
                                "session_id": sid,
                                "hook_event_name": event,
                                "cwd": "/work",
                                "notification_type": "idle_prompt",
                                "reason": "logout",
                            }
                        ),
                        # An id no user has: looked up in the reference table, and left out.
                        json.dumps({"git_branch": "main", "user_id": "5d1f0e44-1d6b-4c39-9f4e-6a1e2b3c4d5e"}),
                    ),
                )
                sent += 1
    return sent


HOOK_EVENTS = ["SessionStart", "PreToolUse", "PostToolUse", "Notification", "Stop", "SessionEnd"]


def test_the_hook_and_the_session_functions_run_routed_on_the_distributed_session_group(
    running: Path, migrated: str
) -> None:
    """hook_ingest(), the session functions and create_message() in forms
    Citus routes: no subquery in an upsert's VALUES, no now() in its DO
    UPDATE SET. hook_ingest()'s generic plan with now() there crashed this
    Citus build's backend (CheckAndBuildDelayedFastPathPlan, signal 11),
    where a custom plan is refused with "functions used in the DO UPDATE SET
    clause ... must be marked IMMUTABLE"."""
    assert send_events(migrated, [f"probe-{n}" for n in range(12)], HOOK_EVENTS) == 72
    hook = run_cli(
        "hook",
        env={"DATABASE_URL": migrated},
        input=json.dumps({"session_id": "probe-cli", "hook_event_name": "SessionStart", "cwd": "/w"}),
    )
    assert hook.returncode == 0, hook.stderr
    with psycopg.connect(migrated, autocommit=True) as conn:
        rows = conn.execute(
            "select session_id, user_id, git_branch, last_event_type, ended_at is not null, end_reason"
            " from toolsdb.sessions where session_id like 'probe-%' and session_id <> 'probe-cli'"
        ).fetchall()
        assert sorted(rows) == sorted((f"probe-{n}", None, "main", "SessionEnd", True, "logout") for n in range(12))
        assert conn.execute("select count(*) from toolsdb.events where session_id like 'probe-%'").fetchone()[0] == 73
        # The session functions and the messages API, on the same shards.
        for n in range(4):
            sid = f"api-{n}"
            conn.execute("select toolsdb.create_session(%s, '/w')", (sid,))
            conn.execute("select toolsdb.create_session(%s, '/w2')", (sid,))  # the upsert's update
            conn.execute("select toolsdb.update_session_activity(%s)", (sid,))
            conn.execute("select toolsdb.set_session_idle(%s, true)", (sid,))
            for role, text in (("user", "hello"), ("assistant", "hi")):
                conn.execute("select toolsdb.create_message(%s, %s, %s)", (sid, role, text))
            conn.execute("select toolsdb.end_session(%s)", (sid,))
        api = conn.execute(
            "select s.session_id, s.cwd, s.is_idle, s.ended_at is not null, s.message_count,"
            " array(select m.role from toolsdb.messages as m where m.session_id = s.session_id order by m.position)"
            " from toolsdb.sessions as s where s.session_id like 'api-%'"
        ).fetchall()
        assert sorted(api) == [(f"api-{n}", "/w2", False, True, 2, ["user", "assistant"]) for n in range(4)], api
        per_node = conn.execute(
            "select nodename, sum(result::bigint) from run_command_on_placements("
            "'toolsdb.sessions', 'select count(*) from %s') group by nodename"
        ).fetchall()
        total = conn.execute("select count(*) from toolsdb.sessions").fetchone()[0]
    assert len(per_node) > 1 and sum(count for _, count in per_node) == total, per_node
    # An event writes its session's row and its own on the session's worker:
    # one transaction there, on one connection, committed in one phase.
    with psycopg.connect(migrated, autocommit=True) as conn:
        issued: list[str] = []
        conn.add_notice_handler(lambda diag: issued.append(diag.message_primary or ""))
        conn.execute("set citus.log_remote_commands = on")
        conn.execute(
            "select toolsdb.hook_ingest(%s::jsonb, '{}'::jsonb)",
            (json.dumps({"session_id": "probe-1pc", "hook_event_name": "SessionStart", "cwd": "/w"}),),
        )
    writes = [m for m in issued if m.startswith("issuing INSERT INTO")]
    assert [w.split()[3].rsplit("_", 1)[0] for w in writes] == ["toolsdb.sessions", "toolsdb.events"], issued
    assert issued[-1] == "issuing COMMIT" and not any("PREPARE" in m for m in issued), issued


def test_row_level_security_isolates_sessions_on_the_workers(migrated: str) -> None:
    """toolsdb_app sees its session's rows only, read on the workers: SET
    LOCAL reaches them (citus.propagate_set_commands, set by migrate);
    set_config() does not, and the rows stay hidden, never shown."""
    send_events(migrated, ["rls-a", "rls-b"], ["SessionStart", "UserPromptSubmit"])
    with psycopg.connect(migrated, autocommit=True) as conn:
        for sid in ("rls-a", "rls-b"):
            conn.execute("select toolsdb.create_message(%s, 'user', 'hello')", (sid,))
        with conn.transaction():
            conn.execute("set local role toolsdb_app")
            conn.execute("set local toolsdb.session_id = 'rls-a'")
            assert conn.execute("select session_id from toolsdb.sessions").fetchall() == [("rls-a",)]
            assert conn.execute("select count(*) from toolsdb.sessions where session_id = 'rls-b'").fetchone()[0] == 0
            assert conn.execute("select session_id from toolsdb.messages").fetchall() == [("rls-a",)]
        with conn.transaction():
            conn.execute("set local role toolsdb_app")
            conn.execute("select set_config('toolsdb.session_id', 'rls-a', true)")
            assert conn.execute("select count(*) from toolsdb.sessions").fetchone()[0] == 0
    # The application's own login, one statement per transaction: hook_ingest()
    # acts for the payload's session on the workers too (act_as_session()).
    with psycopg.connect(migrated.replace("postgres@", "toolsdb_app@"), autocommit=True) as app:
        first = app.execute(
            'select toolsdb.hook_ingest(%s::jsonb, \'{"idempotency_key": "app-k"}\')',
            (json.dumps({"session_id": "rls-app", "hook_event_name": "SessionStart"}),),
        ).fetchone()[0]
        again = app.execute(
            'select toolsdb.hook_ingest(%s::jsonb, \'{"idempotency_key": "app-k"}\')',
            (json.dumps({"session_id": "rls-app", "hook_event_name": "SessionStart"}),),
        ).fetchone()[0]
        assert first == again
        assert app.execute("select current_setting('toolsdb.session_id', true)").fetchone()[0] in ("", None)
        assert app.execute("select count(*) from toolsdb.sessions").fetchone()[0] == 0
    with psycopg.connect(migrated, autocommit=True) as conn:
        assert conn.execute("select count(*) from toolsdb.events where session_id = 'rls-app'").fetchone()[0] == 1
        with conn.transaction():
            conn.execute("set local role toolsdb_readonly")
            assert (
                conn.execute("select count(*) from toolsdb.sessions where session_id in ('rls-a', 'rls-b')").fetchone()[
                    0
                ]
                == 2
            )


def test_the_work_group_runs_on_the_workers_by_project(running: Path, migrated: str) -> None:
    """The work group is distributed by project_id (docs/citus.md): tasks,
    runs, their logs, evidence, validations and the runs' rollups of two
    projects on different workers. The functions given a task or a run alone
    find its project; the rules still hold (status moves, a run's project is
    its task's, an unknown task is 23503); what `on delete set null` does on
    one node is done on the shard; row-level security shows the application
    its project's rows only, read on the workers."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        agent = conn.execute(
            "insert into toolsdb.agents (name, agent_type) values ('work-group', 'claude') returning agent_id"
        ).fetchone()[0]
        owner = conn.execute(
            "insert into toolsdb.users (username, email) values ('work-group', 'work-group@example.com')"
            " returning user_id"
        ).fetchone()[0]
        projects: dict[str, str] = {}  # node -> project, one project per worker
        for i in range(64):  # bounded: random ids could all hash to one worker (1 in 2^n)
            project = conn.execute(
                "insert into toolsdb.projects (slug, name, owner_id) values (%s, %s, %s) returning project_id",
                (f"work-group-{i}", f"Work group {i}", owner),
            ).fetchone()[0]
            node = conn.execute(
                "select n.nodename || ':' || n.nodeport from pg_dist_placement as p"
                " join pg_dist_node as n on n.groupid = p.groupid"
                " where p.shardid = get_shard_id_for_distribution_column('toolsdb.tasks', %s::uuid)",
                (project,),
            ).fetchone()[0]
            projects.setdefault(node, str(project))
            if len(projects) == 2:
                break
        assert len(projects) == 2, projects
        runs: dict[str, str] = {}
        for project in projects.values():
            parent, child = (
                conn.execute(
                    "insert into toolsdb.tasks (project_id, title) values (%s, %s) returning task_id",
                    (project, title),
                ).fetchone()[0]
                for title in ("parent", "child")
            )
            conn.execute(
                "update toolsdb.tasks set parent_task_id = %s where project_id = %s and task_id = %s",
                (parent, project, child),
            )
            assert conn.execute("select toolsdb.task_transition(%s, 'in_progress')", (parent,)).fetchone()[0] == "open"
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
                conn.execute("select toolsdb.task_transition(%s, 'draft')", (parent,))
            run = conn.execute("select toolsdb.execution_create(%s, %s)", (agent, parent)).fetchone()[0]
            conn.execute("select toolsdb.execution_start(%s)", (run,))
            conn.execute("select toolsdb.execution_log(%s, 'working')", (run,))
            conn.execute("select toolsdb.execution_complete(%s, '{}', 1000, 100, 0)", (run,))
            proof = conn.execute(
                "insert into toolsdb.evidence (project_id, task_id, source_type, title, content)"
                " values (%s, %s, 'test_result', 'proof', '{}') returning evidence_id",
                (project, parent),
            ).fetchone()[0]
            conn.execute(
                "update toolsdb.agent_executions set evidence_id = %s where project_id = %s and execution_id = %s",
                (proof, project, run),
            )
            validation = conn.execute(
                "insert into toolsdb.pr_validations (project_id, task_id, execution_id, pr_number, repository,"
                " branch_name) values (%s, %s, %s, 1, 'example/x', 'main') returning validation_id",
                (project, parent, run),
            ).fetchone()[0]
            conn.execute("select toolsdb.validation_record_check(%s, 'tests', true)", (validation,))
            assert conn.execute("select status from toolsdb.validation_settle(%s)", (validation,)).fetchone()[0] == (
                "passed"
            )
            runs[project] = run
        # Each project's rows are in its shards, on its own worker.
        holders = conn.execute(
            "select r.result, n.nodename || ':' || n.nodeport from run_command_on_shards("
            "'toolsdb.agent_executions', 'select string_agg(distinct project_id::text, '','') from %s') as r"
            " join pg_dist_placement as p on p.shardid = r.shardid join pg_dist_node as n on n.groupid = p.groupid"
            " where r.result <> ''"
        ).fetchall()
        # A shard may also hold other tests' projects (32 shards, ids hashed): keep ours.
        found = {node: project for held, node in holders for project in held.split(",") if project in projects.values()}
        assert found == projects, holders
        figures = conn.execute(
            "select project_id::text, sum(executions), sum(input_tokens) from toolsdb.execution_rollups"
            " where project_id = any(%s::uuid[]) group by 1",
            (list(projects.values()),),
        ).fetchall()
        assert sorted(figures) == sorted((p, 1, 1000) for p in projects.values())
        assert (
            conn.execute(
                "select count(*) from toolsdb.task_executions where project_id = any(%s::uuid[])"
                " and jsonb_array_length(logs) = 1",
                (list(projects.values()),),
            ).fetchone()[0]
            == 2
        )
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="not found") as refused:
            conn.execute("select toolsdb.execution_create(%s, gen_random_uuid())", (agent,))
        assert refused.value.diag.constraint_name == "agent_executions_task_id_fkey"
        first, second = projects.values()
        # The functions given a run or a validation alone look its project up, and then
        # write on its shard only: one worker, no two-phase commit. Eight more runs, so
        # that PL/pgSQL's generic plans (after the fifth call) are exercised too.
        parent = conn.execute(
            "select task_id from toolsdb.tasks where project_id = %s and title = 'parent'", (first,)
        ).fetchone()[0]
        issued: list[str] = []
        conn.add_notice_handler(lambda diag: issued.append(diag.message_primary or ""))
        for _ in range(8):
            run = conn.execute("select toolsdb.execution_create(%s, %s)", (agent, parent)).fetchone()[0]
            conn.execute("select toolsdb.execution_start(%s)", (run,))
            issued.clear()
            conn.execute("set citus.log_remote_commands = on")
            assert conn.execute("select toolsdb.execution_log(%s, 'again')", (run,)).fetchone()[0] is not None
            conn.execute("select toolsdb.execution_complete(%s, '{}', 10, 1, 0)", (run,))
            conn.execute("set citus.log_remote_commands = off")
            updates = [m for m in issued if m.startswith(("issuing UPDATE", "issuing INSERT"))]
            assert len(updates) == 2 and not any("PREPARE" in m for m in issued), issued
        # By id alone the lookup reads every shard; acting for the project (as the
        # application does), it reads that project's shard only.
        for acting in (False, True):
            run = conn.execute("select toolsdb.execution_create(%s, %s)", (agent, parent)).fetchone()[0]
            with conn.transaction():
                if acting:
                    conn.execute(f"set local toolsdb.project_id = '{first}'")
                issued.clear()
                conn.execute("set local citus.log_remote_commands = on")
                conn.execute("select toolsdb.execution_start(%s)", (run,))
                reads = [m for m in issued if m.startswith("issuing SELECT")]
                assert (len(reads) == 1) if acting else (len(reads) > 2), issued
        validation = conn.execute(
            "insert into toolsdb.pr_validations (project_id, task_id, pr_number, repository, branch_name)"
            " values (%s, %s, 2, 'example/x', 'main') returning validation_id",
            (first, parent),
        ).fetchone()[0]
        issued.clear()
        conn.execute("set citus.log_remote_commands = on")
        conn.execute("select toolsdb.validation_record_check(%s, 'tests', false)", (validation,))
        assert conn.execute("select status from toolsdb.validation_cancel(%s)", (validation,)).fetchone()[0] == (
            "cancelled"
        )
        conn.execute("set citus.log_remote_commands = off")
        assert len([m for m in issued if m.startswith("issuing UPDATE")]) == 2, issued
        assert not any("PREPARE" in m for m in issued), issued
        # Row-level security on the workers: the application sees its project only.
        with conn.transaction():
            conn.execute("set local role toolsdb_app")
            conn.execute(f"set local toolsdb.project_id = '{first}'")
            assert conn.execute("select distinct project_id::text from toolsdb.tasks").fetchall() == [(first,)]
            assert conn.execute("select count(*) from toolsdb.agent_executions").fetchone()[0] == 11
            assert conn.execute("select sum(executions) from toolsdb.execution_rollups").fetchone()[0] == 11
        # An error of the parent task's run, on the coordinator: its project comes from the run.
        error = conn.execute(
            "select toolsdb.error_record('validation', 'lint failed', %s, %s)", (parent, runs[first])
        ).fetchone()[0]
        assert (
            conn.execute("select project_id::text from toolsdb.error_logs where error_id = %s", (error,)).fetchone()[0]
            == first
        )
        # What the set-null keys did on one node: deleting the evidence frees the run and
        # the task; deleting the parent frees the child and takes its runs and validations.
        conn.execute("delete from toolsdb.evidence where project_id = %s", (first,))
        assert conn.execute(
            "select distinct evidence_id from toolsdb.agent_executions where project_id = %s", (first,)
        ).fetchall() == [(None,)]
        conn.execute("delete from toolsdb.tasks where project_id = %s and title = 'parent'", (first,))
        assert conn.execute(
            "select title, parent_task_id from toolsdb.tasks where project_id = %s", (first,)
        ).fetchall() == [("child", None)]
        assert (
            conn.execute("select count(*) from toolsdb.agent_executions where project_id = %s", (first,)).fetchone()[0]
            == 0
        )
        assert (
            conn.execute(
                "select coalesce(sum(executions), 0) from toolsdb.execution_rollups where project_id = %s", (first,)
            ).fetchone()[0]
            == 0
        )
        # The error's keys are dropped on Citus (it stays on the coordinator): maintain
        # nulls its references to the deleted task and run, as their keys do on one node.
        assert conn.execute(
            "select task_id is not null and execution_id is not null from toolsdb.error_logs where error_id = %s",
            (error,),
        ).fetchone()[0]
        steps = conn.execute("select target, affected from toolsdb.maintain() where step = 'citus'").fetchall()
        assert ("toolsdb.error_logs", 2) in steps, steps
        assert conn.execute(
            "select task_id, execution_id from toolsdb.error_logs where error_id = %s", (error,)
        ).fetchone() == (None, None)
        # Deleting a project (a reference table) cascades to its rows on the workers.
        conn.execute("delete from toolsdb.projects where project_id = %s", (second,))
        assert conn.execute("select count(*) from toolsdb.tasks where project_id = %s", (second,)).fetchone()[0] == 0


def test_several_workers_claim_each_event_once(migrated: str) -> None:
    """The events queue, distributed with the sessions and claimed on the
    workers (docs/citus.md): three workers claim and ack concurrently, and
    every event is processed exactly once."""
    sessions = [f"queue-{n}" for n in range(10)]
    send_events(migrated, sessions, ["PreToolUse"] * 20)
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute(
            "update toolsdb.events set processed_at = now()"
            " where processed_at is null and session_id not like 'queue-%'"
        )
    seen: list[list[int]] = [[] for _ in range(3)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with psycopg.connect(migrated, autocommit=True) as conn:
                for _ in range(200):
                    batch = conn.execute(
                        "select event_id, claim_token from toolsdb.get_unprocessed_events(7, '5 minutes', %s)",
                        (f"w{n}",),
                    ).fetchall()
                    if not batch:
                        return
                    assert len(batch) <= 7, len(batch)  # the nodes' shares add up to the batch, never more
                    ids = [event_id for event_id, _ in batch]
                    done = conn.execute("select toolsdb.mark_events_processed(%s, %s)", (ids, batch[0][1])).fetchone()[
                        0
                    ]
                    assert done == len(ids)
                    seen[n].extend(ids)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    claimed = [event_id for ids in seen for event_id in ids]
    assert len(claimed) == len(set(claimed)) == 200 and all(seen), [len(ids) for ids in seen]
    with psycopg.connect(migrated, autocommit=True) as conn:
        assert conn.execute("select count(*) from toolsdb.events where processed_at is null").fetchone()[0] == 0


def test_the_coordinator_wakes_listeners_and_claims_one_event_by_id(migrated: str) -> None:
    """The events' statement trigger fires on the shard's worker, where nobody
    listens: hook_ingest() notifies on the coordinator. claim_event() finds
    the one event on whichever worker holds it, once."""
    with psycopg.connect(migrated, autocommit=True) as listener, psycopg.connect(migrated, autocommit=True) as conn:
        listener.execute("listen toolsdb_events")
        send_events(migrated, ["wake-1"], ["Stop"])
        heard = list(listener.notifies(timeout=10, stop_after=1))
        assert [n.channel for n in heard] == ["toolsdb_events"]
        event_id = conn.execute(
            "select event_id from toolsdb.events where session_id = 'wake-1' and processed_at is null"
        ).fetchone()[0]
        first = conn.execute(
            "select event_id, claimed_by, attempts from toolsdb.claim_event(%s, '1 minute', 'solo')", (event_id,)
        ).fetchall()
        assert first == [(event_id, "solo", 1)], first
        assert (
            conn.execute("select count(*) from toolsdb.claim_event(%s, '1 minute', 'other')", (event_id,)).fetchone()[0]
            == 0
        )
        token = conn.execute("select claim_token from toolsdb.events where event_id = %s", (event_id,)).fetchone()[0]
        assert conn.execute("select toolsdb.mark_event_processed(%s, %s)", (event_id, token)).fetchone()[0] is True
        # An acknowledgement is all or nothing across the workers, also in
        # autocommit: one event it no longer holds, and none is marked.
        send_events(migrated, [f"ack-{n}" for n in range(24)], ["Stop"])  # on both workers, but 1 run in 8 million
        batch = conn.execute("select event_id, claim_token from toolsdb.get_unprocessed_events(8, '1 minute', 'acker')")
        batch = batch.fetchall()
        nodes = conn.execute(
            "select count(distinct p.groupid) from toolsdb.events as e, pg_dist_placement as p"
            " where e.event_id = any(%s)"
            " and p.shardid = get_shard_id_for_distribution_column('toolsdb.events', e.session_id)",
            ([i for i, _ in batch],),
        ).fetchone()[0]
        assert len(batch) == 8 and nodes == 2, (batch, nodes)
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="lease lost: 1 of 9"):
            conn.execute("select toolsdb.mark_events_processed(%s, %s)", ([i for i, _ in batch] + [-1], batch[0][1]))
        marked = conn.execute(
            "select count(*) from toolsdb.events where event_id = any(%s) and processed_at is not null",
            ([i for i, _ in batch],),
        ).fetchone()[0]
        assert marked == 0
        assert (
            conn.execute(
                "select toolsdb.mark_events_processed(%s, %s)", ([i for i, _ in batch], batch[0][1])
            ).fetchone()[0]
            == 8
        )
        # Claims run in the caller's transaction, on the workers too: rolled
        # back, the events are free again at once, as on one node.
        send_events(migrated, ["wake-2", "wake-3"], ["Stop", "Stop"])
        waiting = conn.execute("select count(*) from toolsdb.events where processed_at is null").fetchone()[0]
        with pytest.raises(RuntimeError, match="undone"), conn.transaction():
            got = conn.execute("select count(*) from toolsdb.get_unprocessed_events(1000, '1 hour', 'undone')")
            assert got.fetchone()[0] == waiting
            raise RuntimeError("undone")
        # Its backend killed after the claim: the same (the workers' part ends with it).
        victim = psycopg.connect(migrated, autocommit=True)
        victim.execute("begin")
        claimed = victim.execute("select count(*) from toolsdb.get_unprocessed_events(1000, '1 hour', 'killed')")
        assert claimed.fetchone()[0] == waiting
        conn.execute("select pg_terminate_backend(%s::integer)", (victim.info.backend_pid,))
        victim.close()
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and conn.execute(
                "select count(*) from toolsdb.events where processed_at is null and visible_at <= now()"
            ).fetchone()[0]
            != waiting
        ):
            time.sleep(0.1)
        assert (
            conn.execute(
                "select count(*) from toolsdb.events where processed_at is null and visible_at <= now()"
            ).fetchone()[0]
            == waiting
        )


def test_workers_route_events_into_notifications_and_deliver_each_once(migrated: str) -> None:
    """The notification queue on the coordinator: two workers route the hook's
    idle prompts (reading each session on its worker) and claim and settle
    the notifications; each is sent exactly once."""
    sessions = [f"notify-{n}" for n in range(6)]
    with psycopg.connect(migrated, autocommit=True) as conn:
        # Sessions with no user: the rules' session_user goes to the destination named default.
        conn.execute(
            "select toolsdb.config_set_secret("
            "'notify.destination.default', 'gAAAAABfaketokenfaketoken==', '0123456789ab')"
        )
        conn.execute("select toolsdb.notification_destination_set('default', 'slack', 'notify.destination.default')")
    send_events(migrated, sessions, ["SessionStart", "Notification"])
    routed: list[int] = []
    sent: list[int] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with psycopg.connect(migrated, autocommit=True) as conn:
                for _ in range(100):
                    events, _queued = conn.execute("select * from toolsdb.route_events(3, %s)", (f"w{n}",)).fetchone()
                    routed.append(events)
                    batch = conn.execute(
                        "select notification_id, claim_token from toolsdb.claim_notifications(2, '1 minute', %s)",
                        (f"w{n}",),
                    ).fetchall()
                    for notification_id, token in batch:
                        conn.execute("select toolsdb.mark_notification_sent(%s, %s)", (notification_id, token))
                        sent.append(notification_id)
                    if not events and not batch:
                        return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    with psycopg.connect(migrated, autocommit=True) as conn:
        rows = conn.execute(
            "select notification_id, status from toolsdb.notifications where session_id like 'notify-%'"
        ).fetchall()
        assert conn.execute("select count(*) from toolsdb.events where processed_at is null").fetchone()[0] == 0
    assert len(rows) >= len(sessions) and {status for _, status in rows} == {"sent"}, rows
    # Each sent once; the seed's notifications may be sent along with them.
    assert len(sent) == len(set(sent)) and {n for n, _ in rows} <= set(sent), (rows, sent)


def test_maintain_seal_and_verify_the_audit_log(migrated: str) -> None:
    """maintain and the audit log's seal and verify work on the coordinator;
    a write to a reference table is captured once, on the coordinator's copy,
    and not on the workers' (which have no audit log)."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        user_id = conn.execute(
            "insert into toolsdb.users (username, email) values ('cluster-audit', 'ca@example.com') returning user_id"
        ).fetchone()[0]
        conn.execute("update toolsdb.users set display_name = 'CA' where user_id = %s", (user_id,))
        captured = conn.execute(
            "select action, entity_type from toolsdb.audit_logs where entity_id = %s order by audit_id",
            (str(user_id),),
        ).fetchall()
        assert captured == [("insert", "users"), ("update", "users")], captured
        # A destination of a user deleted since: no key reaches it on Citus; maintain removes it.
        conn.execute(
            "select toolsdb.config_set_secret('notify.destination.gone', 'gAAAAABfaketokenfaketoken==', '0123456789ab')"
        )
        conn.execute(
            "select toolsdb.notification_destination_set('gone', 'slack', 'notify.destination.gone', %s)", (user_id,)
        )
        conn.execute("delete from toolsdb.users where user_id = %s", (user_id,))
        # delete_session() does what the cascade into the coordinator's tables did.
        send_events(migrated, ["doomed"], ["SessionStart", "Notification"])
        conn.execute("select toolsdb.create_message('doomed', 'user', 'bye')")
        assert conn.execute("select toolsdb.delete_session('doomed')").fetchone()[0] is True
        for table in ("sessions", "messages", "events"):
            assert conn.execute(f"select count(*) from toolsdb.{table} where session_id = 'doomed'").fetchone()[0] == 0
    for args in (["maintain"], ["audit", "seal"], ["audit", "verify"]):
        done = run_cli(*args, "--database", migrated, timeout=300)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        if args == ["maintain"]:
            assert "1 destination(s) of a deleted user" in done.stdout, done.stdout
    assert "audit log intact" in done.stdout and "0 not sealed" in done.stdout, done.stdout
    with psycopg.connect(migrated, autocommit=True) as conn:
        assert (
            conn.execute(
                "select count(*) from toolsdb.notification_destinations where destination_name = 'gone'"
            ).fetchone()[0]
            == 0
        )


def test_maintain_removes_the_coordinators_rows_of_sessions_deleted_on_the_workers(migrated: str) -> None:
    """A plain DELETE of sessions cascades to their messages only: no key
    reaches the coordinator's tables on Citus. The deletion is recorded on
    the session's worker, and maintain removes the events and metrics (and
    notifications and usage) that named it, unless the session was created
    again."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        send_events(migrated, ["plain-gone", "plain-back", "plain-kept"], ["SessionStart", "Notification"])
        for sid in ("plain-gone", "plain-back", "plain-kept"):
            conn.execute("select toolsdb.insert_metric('tokens', 1, %s)", (sid,))
        conn.execute("delete from toolsdb.sessions where session_id in ('plain-gone', 'plain-back')")
        assert (
            conn.execute(
                "select count(*) from toolsdb_private.deleted_sessions where session_id like 'plain-%'"
            ).fetchone()[0]
            == 2
        )
        send_events(migrated, ["plain-back"], ["UserPromptSubmit"])
    done = run_cli("maintain", "--database", migrated, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "of deleted sessions" in done.stdout, done.stdout
    with psycopg.connect(migrated, autocommit=True) as conn:
        for table in ("events", "metrics"):
            counts = dict(
                conn.execute(
                    f"select session_id, count(*) from toolsdb.{table} where session_id like 'plain-%' group by 1"
                ).fetchall()
            )
            assert "plain-gone" not in counts, (table, counts)
            assert counts.get("plain-back", 0) > 0 and counts.get("plain-kept", 0) > 0, (table, counts)
        assert conn.execute("select count(*) from toolsdb_private.deleted_sessions").fetchone()[0] == 0


def test_workers_capture_a_distributed_tables_changes_and_concurrent_collectors_move_each_once(
    migrated: str,
) -> None:
    """memories lives on the workers: each change is captured there, in the
    change's own transaction, into the co-located shard of the audit outbox,
    and audit_collect() moves it into the one log on the coordinator. Four
    writers (60 changes each) and two collectors run at once: every change is
    in the log exactly once, with the actor its transaction set, and the
    outbox is left empty. The outbox takes no UPDATE or TRUNCATE and no
    application role; a table distributed by another key cannot be audited."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        # Eight agents whose memories lie on both workers (random ids could all
        # hash to one worker's shards: 1 run in 128).
        placed: list[tuple[str, str]] = []
        for i in range(64):  # bounded
            agent = conn.execute(
                "insert into toolsdb.agents (name, agent_type) values (%s, 'claude') returning agent_id",
                (f"outbox-{i}",),
            ).fetchone()[0]
            node = conn.execute(
                "select n.nodename from pg_dist_placement as p join pg_dist_node as n on n.groupid = p.groupid"
                " where p.shardid = get_shard_id_for_distribution_column('toolsdb.memories', %s::uuid)",
                (agent,),
            ).fetchone()[0]
            placed.append((agent, node))
            if len(placed) >= 8 and len({n for _, n in placed}) >= 2:
                break
        first_of_each = {n: a for a, n in reversed(placed)}
        agents = list(first_of_each.values())
        agents += [a for a, _ in placed if a not in agents][: 8 - len(agents)]
        assert len(agents) == 8 and len(first_of_each) >= 2, placed
        conn.execute("select toolsdb.audit_collect()")
        for agent in agents:
            conn.execute("select toolsdb.memory_set(%s, 'first', 'x')", (agent,))
        per_node: dict[str, int] = {}
        for node, result in conn.execute(
            "select nodename, result from run_command_on_placements("
            "'toolsdb_private.audit_outbox', 'select count(*) from %s')"
        ).fetchall():
            per_node[node] = per_node.get(node, 0) + int(result)
        assert sum(per_node.values()) == 8 and sum(1 for n in per_node.values() if n) >= 2, per_node
        for statement in (
            "update toolsdb_private.audit_outbox set actor = 'forged'",
            "truncate toolsdb_private.audit_outbox",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
        with conn.transaction():
            conn.execute("set local role toolsdb_app")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select count(*) from toolsdb_private.audit_outbox")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match=r"cannot audit toolsdb\.sessions"):
            conn.execute("select toolsdb.audit_table('toolsdb.sessions')")
        # The move commits in two phases: a crash leaves each entry in the outbox or in the log.
        issued: list[str] = []
        conn.add_notice_handler(lambda diag: issued.append(diag.message_primary or ""))
        conn.execute("set citus.log_remote_commands = on")
        assert conn.execute("select toolsdb.audit_collect()").fetchone()[0] == 8
        conn.execute("set citus.log_remote_commands = off")
        assert any(m.startswith("issuing PREPARE TRANSACTION") for m in issued), issued
        assert any(m.startswith("issuing COMMIT PREPARED") for m in issued), issued

    stop = threading.Event()
    failures: list[BaseException] = []
    collected: list[int] = []

    def write(n: int) -> None:
        try:
            with psycopg.connect(migrated, autocommit=True) as c:
                for i in range(60):
                    with c.transaction():
                        c.execute(f"set local toolsdb.actor = 'writer-{n}'")
                        c.execute(
                            "select toolsdb.memory_set(%s, %s, %s)",
                            (agents[(n + i) % len(agents)], f"k{n}-{i % 5}", f"v{i}"),
                        )
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    def collect() -> None:
        try:
            with psycopg.connect(migrated, autocommit=True) as c:
                deadline = time.monotonic() + 120
                while not stop.is_set() and time.monotonic() < deadline:
                    collected.append(c.execute("select toolsdb.audit_collect()").fetchone()[0])
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    collectors = [threading.Thread(target=collect) for _ in range(2)]
    for t in writers + collectors:
        t.start()
    for t in writers:
        t.join(timeout=180)
    stop.set()
    for t in collectors:
        t.join(timeout=180)
    assert not failures, failures
    assert sum(collected) > 0
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("select toolsdb.audit_collect()")
        assert conn.execute("select count(*) from toolsdb_private.audit_outbox").fetchone()[0] == 0
        rows = conn.execute(
            "select actor, action, entity_id, new_values ->> 'content' from toolsdb.audit_logs"
            " where entity_type = 'memories' and actor like 'writer-%'"
        ).fetchall()
        assert len(rows) == 240 and len(set(rows)) == 240, len(rows)
        assert {r[0] for r in rows} == {f"writer-{n}" for n in range(4)}
        assert sorted({r[1] for r in rows}) == ["insert", "update"]


def test_a_killed_maintain_moves_each_captured_change_once_and_sweeps_a_deleted_session_wholly(
    migrated: str,
) -> None:
    """maintain collects the workers' audit entries and sweeps deleted
    sessions in one distributed transaction: killed at a random moment
    (SIGKILL, SIGTERM or SIGINT), three times, it leaves each change either
    in the outbox or in the log, never both or neither, and a deleted
    session's rows either all there with its record or all gone with it."""
    seed = int(os.environ.get("TOOLSDB_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    marker = f"killed-maintain-{seed}"
    with psycopg.connect(migrated, autocommit=True) as conn:
        agent = conn.execute(
            "insert into toolsdb.agents (name, agent_type) values (%s, 'claude') returning agent_id", (marker[:60],)
        ).fetchone()[0]
        with conn.transaction():
            conn.execute(f"set local toolsdb.actor = '{marker}'")
            for i in range(40):
                conn.execute("select toolsdb.memory_set(%s, %s, 'x')", (agent, f"km{i}"))
        send_events(migrated, ["km-gone"], ["SessionStart", "Notification"])
        for _ in range(2):  # rows on the coordinator (events go with their session)
            conn.execute("select toolsdb.insert_metric('tokens', 1, 'km-gone')")
        conn.execute("delete from toolsdb.sessions where session_id = 'km-gone'")
        assert conn.execute("select count(*) from toolsdb.events where session_id = 'km-gone'").fetchone()[0] == 0

    def state() -> tuple[int, int, int, bool]:
        with psycopg.connect(migrated, autocommit=True) as conn:
            deadline = time.monotonic() + 60  # the killed run's backend may still be committing
            while (
                time.monotonic() < deadline
                and conn.execute(
                    "select count(*) from pg_stat_activity where query like '%toolsdb.maintain%'"
                    " and pid <> pg_backend_pid()"
                ).fetchone()[0]
            ):
                time.sleep(0.1)
            logged = conn.execute(
                "select count(*), count(distinct entity_id) from toolsdb.audit_logs where actor = %s", (marker,)
            ).fetchone()
            assert logged[0] == logged[1], f"seed {seed}: an entry collected twice"
            waiting = conn.execute(
                "select count(*) from toolsdb_private.audit_outbox where actor = %s", (marker,)
            ).fetchone()[0]
            metrics = conn.execute("select count(*) from toolsdb.metrics where session_id = 'km-gone'").fetchone()[0]
            recorded = conn.execute(
                "select count(*) from toolsdb_private.deleted_sessions where session_id = 'km-gone'"
            ).fetchone()[0]
            return logged[0], waiting, metrics, bool(recorded)

    for _ in range(3):
        proc = subprocess.Popen(
            [toolsdb_exe(), "maintain", "--database", migrated],
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.05, 0.4))  # maintain takes about 0.3 s here
        signum = rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
        if proc.poll() is None:
            os.killpg(proc.pid, signum)
        proc.wait(120)
        assert b"Traceback" not in proc.stderr.read(), f"seed {seed}"
        logged, waiting, metrics, recorded = state()
        assert logged + waiting == 40, f"seed {seed}: {logged} logged, {waiting} waiting"
        assert (metrics, recorded) in ((2, True), (0, False)), f"seed {seed}: {metrics} metrics, recorded {recorded}"
    done = run_cli("maintain", "--database", migrated, timeout=300)
    assert done.returncode == 0, done.stderr
    assert state() == (40, 0, 0, False), f"seed {seed}"


def test_add_worker_with_rebalance_while_the_hook_writes_moves_shards_and_keeps_every_row(
    running: Path, migrated: str
) -> None:
    """A third worker joins and the rebalancer moves shards of the session
    group, of memories with the audit outbox and the work group (and of a
    plain distributed table) to it while hook events, audited memory writes
    and runs of agents keep arriving through the coordinator: every event,
    session, memory and run is kept, the runs' rollups count each run once,
    and every memory write's audit entry reaches the log once, also those
    captured on moved shards."""
    sessions = [f"rebalance-{n}" for n in range(40)]
    sent: list[int] = []
    written: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    with psycopg.connect(migrated, autocommit=True) as conn:
        agents = [
            conn.execute(
                "insert into toolsdb.agents (name, agent_type) values (%s, 'claude') returning agent_id",
                (f"rebalance-{i}",),
            ).fetchone()[0]
            for i in range(16)
        ]
        owner = conn.execute(
            "insert into toolsdb.users (username, email) values ('rebalance', 'rebalance@example.com')"
            " returning user_id"
        ).fetchone()[0]
        work_projects = [
            conn.execute(
                "insert into toolsdb.projects (slug, name, owner_id) values (%s, %s, %s) returning project_id",
                (f"rebalance-{i}", f"Rebalance {i}", owner),
            ).fetchone()[0]
            for i in range(8)
        ]
        work_tasks = [
            conn.execute(
                "insert into toolsdb.tasks (project_id, title) values (%s, 'rebalance') returning task_id", (p,)
            ).fetchone()[0]
            for p in work_projects
        ]

    retried: list[str] = []
    ran: list[str] = []

    def run_agents() -> None:
        try:
            with psycopg.connect(migrated, autocommit=True) as c:
                while not stop.is_set() and len(ran) < 5_000:  # bounded
                    try:
                        with c.transaction():  # a whole run, or none of it
                            run = c.execute(
                                "select toolsdb.execution_create(%s, %s)", (agents[0], work_tasks[len(ran) % 8])
                            ).fetchone()[0]
                            c.execute("select toolsdb.execution_start(%s)", (run,))
                            c.execute("select toolsdb.execution_complete(%s, '{}', 10, 1, 0)", (run,))
                    except psycopg.errors.DeadlockDetected as exc:
                        retried.append(str(exc).splitlines()[0])  # as for the memory writes
                        if len(retried) > 20:
                            raise
                        continue
                    ran.append(run)
        except BaseException as exc:
            failures.append(exc)

    def remember() -> None:
        try:
            with psycopg.connect(migrated, autocommit=True) as c:
                while not stop.is_set() and len(written) < 20_000:  # bounded
                    n = len(written)
                    try:
                        with c.transaction():
                            c.execute("set local toolsdb.actor = 'rebalance-writer'")
                            c.execute("select toolsdb.memory_set(%s, %s, 'x')", (agents[n % 16], f"r{n}"))
                    except psycopg.errors.DeadlockDetected as exc:
                        # The move's last step locks the shard group and the reference
                        # tables; a write caught across it is rolled back whole: retry.
                        retried.append(str(exc).splitlines()[0])
                        if len(retried) > 20:
                            raise
                        continue
                    written.append(n)
        except BaseException as exc:
            failures.append(exc)

    def hook() -> None:
        rounds = 0
        try:
            while not stop.is_set() and rounds < 200:  # bounded: at most 200 x 40 events
                sent.append(send_events(migrated, sessions, ["PreToolUse"]))
                rounds += 1
        except BaseException as exc:
            failures.append(exc)

    acked: list[int] = []
    lost: list[str] = []

    def claim_once(c: psycopg.Connection) -> int:
        try:
            batch = c.execute(
                "select event_id, claim_token from toolsdb.get_unprocessed_events(50, '3 seconds', 'rebalance-claimer')"
            ).fetchall()
            if not batch:
                return 0
            c.execute("select toolsdb.mark_events_processed(%s, %s)", ([i for i, _ in batch], batch[0][1]))
        except (psycopg.errors.ObjectNotInPrerequisiteState, psycopg.errors.DeadlockDetected) as exc:
            # A claim that reached a shard just switched to its new node: the
            # ack refuses the whole batch, which comes back when its lease ends.
            # A deadlock with the move's last step (as for the memory writes)
            # rolls the statement back whole: the caller tries again.
            lost.append(str(exc).splitlines()[0])
            if len(lost) > 50:
                raise
            return 0
        acked.extend(i for i, _ in batch)
        return len(batch)

    def claim() -> None:
        try:
            with psycopg.connect(migrated, autocommit=True) as c:
                for _ in range(20_000):  # bounded
                    if stop.is_set():
                        return
                    if not claim_once(c):
                        time.sleep(0.05)
        except BaseException as exc:
            failures.append(exc)

    writers = [
        threading.Thread(target=hook),
        threading.Thread(target=remember),
        threading.Thread(target=claim),
        threading.Thread(target=run_agents),
    ]
    for writer in writers:
        writer.start()
    try:
        done = cli("add-worker", "--rebalance", "--dir", str(running), timeout=600)
    finally:
        stop.set()
        for writer in writers:
            writer.join(300)
    assert done.returncode == 0 and "added worker3" in done.stdout, done.stdout + done.stderr
    assert not failures, failures
    assert len(sent) >= 2, sent  # the writes overlapped the rebalance
    claimed_while_moving = len(acked)
    assert claimed_while_moving > 0, lost  # so did the claims
    nodes = status(running)
    worker3 = next(n for n in nodes if n["node"] == "worker3")
    assert worker3["running"] and worker3["registered"] and worker3["shards"] > 0, nodes
    with psycopg.connect(url(running), autocommit=True) as conn:
        per = rows_per_node(conn)
        assert conn.execute("select count(*), count(distinct id) from spread").fetchone() == (1000, 1000)
        assert conn.execute("select count(*) from toolsdb.events where session_id like 'rebalance-%'").fetchone()[
            0
        ] == sum(sent)
        # The queue, claimed on the workers across the moves: every event is
        # processed (at least once) once the leases of refused acks have ended.
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and conn.execute(
                "select count(*) from toolsdb.events where session_id like 'rebalance-%' and processed_at is null"
            ).fetchone()[0]
        ):
            if not claim_once(conn):
                time.sleep(0.2)
        assert (
            conn.execute(
                "select count(*) from toolsdb.events where session_id like 'rebalance-%' and processed_at is null"
            ).fetchone()[0]
            == 0
        ), lost
        assert len(acked) >= sum(sent) and len(lost) <= 50, (len(acked), lost)
        print(f"rebalance: {sum(sent)} events, {claimed_while_moving} acked while moving, {len(lost)} acks refused")
        assert conn.execute("select count(*) from toolsdb.sessions where session_id like 'rebalance-%'").fetchone()[
            0
        ] == len(sessions)
        moved = conn.execute(
            "select count(*) from run_command_on_placements('toolsdb.sessions', 'select 1') where nodename = %s",
            (worker3["socket"],),
        ).fetchone()[0]
        outbox_moved = conn.execute(
            "select count(*) from run_command_on_placements('toolsdb_private.audit_outbox', 'select 1')"
            " where nodename = %s",
            (worker3["socket"],),
        ).fetchone()[0]
        assert len(written) >= 2, written
        assert conn.execute(
            "select count(*) from toolsdb.memories where key like 'r%%' and content = 'x' and agent_id = any(%s)",
            (agents,),
        ).fetchone()[0] == len(written)
        conn.execute("select toolsdb.audit_collect()")
        logged = conn.execute(
            "select count(*), count(distinct entity_id) from toolsdb.audit_logs where actor = 'rebalance-writer'"
        ).fetchone()
        assert logged == (len(written), len(written)), (logged, len(written))
        # The runs: each kept once, finished, and counted once in the rollups.
        assert len(ran) >= 2, ran
        assert conn.execute(
            "select count(*), count(*) filter (where status = 'success') from toolsdb.agent_executions"
            " where project_id = any(%s)",
            (work_projects,),
        ).fetchone() == (len(ran), len(ran))
        assert conn.execute(
            "select sum(executions) filter (where status = 'success'), coalesce(sum(executions)"
            " filter (where status <> 'success'), 0) from toolsdb.execution_rollups where project_id = any(%s)",
            (work_projects,),
        ).fetchone() == (len(ran), 0)
        tasks_moved = conn.execute(
            "select count(*) from run_command_on_placements('toolsdb.tasks', 'select 1') where nodename = %s",
            (worker3["socket"],),
        ).fetchone()[0]
        print(f"rebalance: {len(ran)} runs, {len(written)} memory writes, {len(retried)} retried")
    assert worker3["socket"] in per and sum(per.values()) == 1000, per
    assert tasks_moved > 0, "no shard of toolsdb.tasks moved to worker3"
    assert moved > 0, "no shard of toolsdb.sessions moved to worker3"
    assert outbox_moved > 0, "no shard of the audit outbox moved to worker3"


def test_stop_then_start_keeps_the_nodes_and_the_rows(running: Path) -> None:
    stopped = cli("stop", "--dir", str(running))
    assert stopped.returncode == 0 and "coordinator" in stopped.stdout, stopped.stdout
    assert not any(n["running"] for n in status(running))
    assert cli("start", "--dir", str(running)).returncode == 0
    assert all(n["running"] and n["registered"] for n in status(running))
    with psycopg.connect(url(running), autocommit=True) as conn:
        assert conn.execute("select count(*) from spread").fetchone()[0] == 1000


def test_bad_input_is_one_line(citus: Path, tmp_path: Path) -> None:
    for args, message in (
        (["start", "--workers", "0"], "--workers must be from 1"),
        (["status"], "no cluster in"),
        (["remove"], "--force"),
        (["add-worker"], "no cluster in"),
    ):
        done = cli(*args, "--dir", str(tmp_path / "none"))
        assert done.returncode != 0 and "Traceback" not in done.stderr, done
        assert done.stderr.strip().count("\n") == 0 and message in done.stderr, (args, done.stderr)
    missing = run_cli("cluster", "start", "--dir", str(tmp_path / "x"), env={cluster_module.CITUS_ENV: "/nonexistent"})
    assert missing.returncode != 0 and "TOOLSDB_CITUS_DIR" in missing.stderr and "Traceback" not in missing.stderr


def test_a_killed_start_is_completed_by_the_next_and_concurrent_starts_make_one_cluster(
    citus: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "killed"
    seed = int(os.environ.get("TOOLSDB_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    for _ in range(2):
        proc = subprocess.Popen(
            [toolsdb_exe(), "cluster", "start", "--dir", str(folder)],
            env={**clean_env(), **citus_env()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.3, 3.0))
        if proc.poll() is None:
            os.killpg(proc.pid, rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT]))
        proc.wait(120)
        assert b"Traceback" not in proc.stderr.read(), f"seed {seed}"
    starts = [
        subprocess.Popen(
            [toolsdb_exe(), "cluster", "start", "--dir", str(folder)],
            env={**clean_env(), **citus_env()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in starts:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"seed {seed}: {err}"
    try:
        nodes = status(folder)
        assert [(n["node"], n["running"], n["registered"]) for n in nodes] == [
            ("coordinator", True, True),
            ("worker1", True, True),
            ("worker2", True, True),
        ], f"seed {seed}: {nodes}"
        with psycopg.connect(url(folder), autocommit=True) as conn:
            assert conn.execute("select count(*) from pg_dist_node").fetchone()[0] == 3
    finally:
        cli("remove", "--force", "--dir", str(folder))
    assert not folder.exists()


def test_a_killed_migrate_leaves_the_coordinator_as_before_and_concurrent_migrates_make_one_schema(
    citus: Path, tmp_path: Path
) -> None:
    """migrate onto a coordinator is one distributed transaction: killed at a
    random moment (SIGKILL, SIGTERM or SIGINT) it leaves either nothing or
    everything, and the next runs complete it; two at once queue on the lock."""
    folder = tmp_path / "migrating"
    assert cli("start", "--dir", str(folder)).returncode == 0
    seed = int(os.environ.get("TOOLSDB_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    coordinator = url(folder)
    try:
        for _ in range(2):
            proc = subprocess.Popen(
                [toolsdb_exe(), "migrate", "--database", coordinator],
                env=clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            time.sleep(rng.uniform(0.2, 4.0))
            signum = rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
            if proc.poll() is None:
                os.killpg(proc.pid, signum)
            proc.wait(120)
            assert b"Traceback" not in proc.stderr.read(), f"seed {seed}"
            with psycopg.connect(coordinator, autocommit=True) as conn:
                # All or nothing: the schema and its distribution came together, or neither.
                schema = conn.execute("select to_regclass('toolsdb.sessions') is not null").fetchone()[0]
                distributed = conn.execute(
                    "select count(*) from pg_dist_partition where logicalrelid::text in ('sessions', 'messages')"
                ).fetchone()[0]
                assert distributed == (2 if schema else 0), f"seed {seed}: {schema} {distributed}"
        runs = [
            subprocess.Popen(
                [toolsdb_exe(), "migrate", "--database", coordinator],
                env=clean_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for proc in runs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"seed {seed}: {out} {err}"
        again = run_cli("migrate", "--database", coordinator, timeout=300)
        assert again.returncode == 0 and "nothing to migrate" in again.stdout, f"seed {seed}: {again.stdout}"
        with psycopg.connect(coordinator, autocommit=True) as conn:
            assert (
                conn.execute(
                    "select partmethod::text from pg_dist_partition where logicalrelid = 'toolsdb.sessions'::regclass"
                ).fetchone()[0]
                == "h"
            )
    finally:
        cli("remove", "--force", "--dir", str(folder))
