"""The agents framework's README, run against toolsdb.

Every code block of that README that concerns the database runs here,
changed only in its imports (``src.db``, ``src.db.connection``,
``src.db.repository``, ``src.db.exceptions`` -> ``toolsdb.compat.agents``)
and its connection (``use_database`` on the test's database), and asserts
what the README says it returns. Where running a block as written would be
wrong (a column toolsdb names differently, ``ADD CONSTRAINT IF NOT EXISTS``,
which PostgreSQL does not have, a connection the pool never gets back), the
test shows that it fails and runs the nearest correct form;
docs/names.md says why.
"""

from __future__ import annotations

import importlib
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from toolsdb.compat import agents
from toolsdb.compat.agents import (
    Agent,
    DatabaseError,
    Memory,
    Message,
    Preference,
    Session,
    User,
    create_agent,
    create_memory,
    create_message,
    create_preference,
    create_session,
    create_user,
    delete_agent,
    delete_memory,
    delete_message,
    delete_preference,
    delete_session,
    delete_user,
    execute_batch,
    execute_query,
    get_agent,
    get_agent_by_name,
    get_connection_pool,
    get_db_connection,
    get_memory,
    get_memory_by_key,
    get_message,
    get_preference,
    get_preference_by_category,
    get_session,
    get_user,
    get_user_by_email,
    get_user_by_username,
    list_agents,
    list_memories,
    list_messages,
    list_preferences,
    list_sessions,
    list_users,
    safe_uuid,
    update_agent,
    update_memory,
    update_message,
    update_preference,
    update_user,
    verify_database_health,
)
from toolsdb.errors import ToolsdbError

from .conftest import ROOT, Pg, run_cli
from .dbhelpers import conninfo_as, unique


@pytest.fixture(scope="module")
def agents_db(pg: Pg, committed) -> Iterator[str]:
    """The module's database, migrated again by the command (which also sets
    the database's search_path, so the README's unqualified table names
    resolve), with this module's functions pointed at it."""
    done = run_cli("migrate", "--database", pg.url(committed.dbname))
    assert done.returncode == 0, done.stderr
    agents.use_database(pg.url(committed.dbname))
    try:
        yield committed.dbname
    finally:
        agents.use_database(None)


@pytest.fixture
def test_db(agents_db: str) -> Iterator[None]:
    """The README's ``test_db`` fixture: a real database, not mocked."""
    yield


def new_user(prefix: str = "dev") -> uuid.UUID:
    return create_user(User(email=f"{unique(prefix)}@example.com", name="Dev"))


def new_agent() -> uuid.UUID:
    return create_agent(Agent(name=unique("agent-"), agent_type="assistant", model_name="claude-sonnet-4-5"))


# -- Repository Pattern Usage ------------------------------------------------------


def test_every_repository_function_imports_from_one_place(agents_db: str) -> None:
    # The README's block, its import line changed: from src.db import (...)
    from toolsdb.compat.agents import (  # noqa: F401
        create_agent,
        create_message,
        create_session,
        create_user,
        delete_user,
        get_agent,
        get_agent_by_name,
        get_message,
        get_session,
        get_user,
        list_agents,
        list_messages,
        list_sessions,
        list_users,
        update_user,
    )

    # "Never import individual repository modules": there are none to import.
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("toolsdb.compat.agents.repository.user")
    # "Updating Central Imports": every public name is in __all__.
    public = {n for n in dir(agents) if n.split("_")[0] in ("create", "get", "list", "update", "delete")}
    assert public <= set(agents.__all__)


# -- Standard CRUD Naming Convention --------------------------------------------


def test_users_follow_the_crud_naming_convention(agents_db: str) -> None:
    email = f"{unique('crud')}@example.com"
    user_id = create_user(User(email=email, name="Crud"))  # create_[entity](model)
    assert isinstance(user_id, uuid.UUID)
    assert get_user(user_id).name == "Crud"  # get_[entity](id)
    assert get_user(str(user_id)).id == user_id  # ids as text too
    assert get_user_by_email(email.upper()).id == user_id  # get_[entity]_by_[field](value)

    # create_[entity] is an upsert: the same email updates the same user.
    assert create_user(User(email=email, name="Crud Again")) == user_id
    assert get_user(user_id).name == "Crud Again"

    # update_[entity](id, model): fields left None keep their value.
    assert update_user(user_id, User(role="manager")) == user_id
    changed = get_user(user_id)
    assert (changed.role, changed.name, changed.email) == ("manager", "Crud Again", email)
    assert update_user(uuid.uuid4(), User(role="manager")) is None

    # list_[entity]s(filters, pagination) -> (items, total)
    users, total = list_users({"role": "manager"}, page=1, page_size=100)
    assert user_id in [u.id for u in users] and total >= 1

    assert delete_user(user_id) is True  # delete_[entity](id)
    assert get_user(user_id) is None
    assert delete_user(user_id) is False


def test_agents_follow_the_crud_naming_convention(agents_db: str) -> None:
    name = unique("crud-agent-")
    agent_id = create_agent(Agent(name=name, agent_type="assistant", tags=["coding"]))
    assert get_agent(agent_id).name == name
    assert get_agent_by_name(name).id == agent_id
    assert get_agent_by_name("no-such-agent") is None
    # Upsert by name.
    assert create_agent(Agent(name=name, agent_type="assistant", model_name="gpt-5-codex")) == agent_id
    assert update_agent(agent_id, Agent(is_active=False)) == agent_id
    agent = get_agent(agent_id)
    assert (agent.model_name, agent.is_active, agent.tags) == ("gpt-5-codex", False, ["coding"])
    agents_found, total = list_agents({"name": name})
    assert [a.id for a in agents_found] == [agent_id] and total == 1
    assert delete_agent(agent_id) is True


def test_lists_return_a_page_and_the_total(agents_db: str) -> None:
    marker = unique("page")
    ids = [create_user(User(email=f"{marker}-{i}@example.com", metadata={"batch": marker})) for i in range(5)]
    first, total = list_users({"metadata": {"batch": marker}}, page=1, page_size=2)
    third, total_again = list_users({"metadata": {"batch": marker}}, page=3, page_size=2)
    beyond, total_beyond = list_users({"metadata": {"batch": marker}}, page=9, page_size=2)
    assert (total, total_again, total_beyond) == (5, 5, 5)
    assert [u.id for u in first + third] == ids[:2] + ids[4:]
    assert beyond == []
    with pytest.raises(ToolsdbError, match="page_size must be between 1 and 1000"):
        list_users(page_size=0)
    with pytest.raises(ToolsdbError, match="no field 'colour' to filter on"):
        list_users({"colour": "blue"})


# -- Connection Management Patterns ---------------------------------------------


def test_connection_management_methods(agents_db: str) -> None:
    user_id = new_user()
    agent_name = get_agent(new_agent()).name

    # Method 1, as written: users has no column id (its key is user_id).
    with (
        pytest.raises(psycopg.errors.UndefinedColumn),
        get_db_connection() as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SELECT * FROM users WHERE id = %s", (user_id,))
    # ... and the nearest correct form.
    with get_db_connection() as conn:  # noqa: SIM117 (the README's block as written)
        with conn.cursor() as cursor:
            cursor.execute("SELECT * FROM users WHERE user_id = %s", (user_id,))
            result = cursor.fetchone()
    assert result["user_id"] == user_id

    # Method 2, as written.
    result = execute_query("SELECT * FROM agents WHERE name = %s", (agent_name,))
    assert [r["name"] for r in result] == [agent_name]

    # Method 3, as written: messages has no columns id and text, and a message needs a session and a role.
    id1, id2, text1, text2 = uuid.uuid4(), uuid.uuid4(), "first", "second"
    with pytest.raises(DatabaseError, match='column "id" of relation "messages" does not exist'):
        execute_batch("INSERT INTO messages (id, text) VALUES %s", [(id1, text1), (id2, text2)])
    # ... and the nearest correct form.
    session_id = create_session(Session(user_id=user_id))
    execute_batch(
        "INSERT INTO messages (message_id, session_id, role, content) VALUES %s",
        [(id1, session_id, "user", text1), (id2, session_id, "assistant", text2)],
    )
    messages, total = list_messages({"session_id": session_id})
    assert [(m.id, m.text, m.position) for m in messages] == [(id1, text1, 1), (id2, text2, 2)] and total == 2


# -- Core Entity Relationships ----------------------------------------------------


def test_core_entity_relationships(agents_db: str) -> None:
    # User (UUID primary key) -> Sessions -> Messages; Agent -> Sessions -> Messages
    user_id, agent_id = new_user(), new_agent()
    session_id = create_session(Session(user_id=user_id, agent_id=agent_id, cwd="/home/me/project"))
    first = create_message(Message(session_id=session_id, role="user", text="Add a queue"))
    second = create_message(
        Message(session_id=session_id, role="assistant", text="Done", channel_payload={"channel": "slack"})
    )
    session = get_session(session_id)
    assert (session.user_id, session.agent_id, session.message_count) == (user_id, agent_id, 2)
    assert [s.id for s in list_sessions({"user_id": user_id})[0]] == [session_id]
    reply = get_message(second)
    assert (reply.position, reply.text, reply.channel_payload) == (2, "Done", {"channel": "slack"})
    assert update_message(first, Message(text="Add a queue, please")) == first
    assert get_message(first).text == "Add a queue, please" and get_message(first).position == 1
    assert delete_message(second) is True and get_message(second) is None
    assert delete_session(session_id) is True and list_messages({"session_id": session_id}) == ([], 0)

    # Agent -> Memory (global or user-specific)
    global_id = create_memory(Memory(agent_id=agent_id, key="coding_style", content="lowercase SQL"))
    own_id = create_memory(Memory(agent_id=agent_id, key="coding_style", content="tabs", user_id=user_id))
    assert get_memory_by_key(agent_id, "coding_style", user_id).content == "tabs"
    assert get_memory_by_key(agent_id, "coding_style", new_user()).content == "lowercase SQL"
    assert get_memory_by_key(agent_id, "coding_style").id == global_id
    # The same agent, user and key again replaces the entry.
    assert create_memory(Memory(agent_id=agent_id, key="coding_style", content="spaces", user_id=user_id)) == own_id
    assert create_memory(Memory(agent_id=agent_id, key="coding_style", content="spaces", user_id=user_id)) == own_id
    assert get_memory(own_id).content == "spaces"
    assert update_memory(own_id, Memory(content="two spaces")) == own_id
    assert list_memories({"agent_id": agent_id})[1] == 2
    assert delete_memory(own_id) is True
    assert get_memory_by_key(agent_id, "coding_style", user_id).id == global_id

    # User -> Preferences (by category)
    pref_id = create_preference(Preference(user_id=user_id, category="editor", preferences={"tab_width": 4}))
    assert create_preference(Preference(user_id=user_id, category="editor", preferences={"tab_width": 2})) == pref_id
    assert get_preference_by_category(user_id, "editor").preferences == {"tab_width": 2}
    assert update_preference(pref_id, Preference(preferences={"tab_width": 8})) == pref_id
    assert get_preference(pref_id).preferences == {"tab_width": 8}
    assert [p.id for p in list_preferences({"user_id": user_id})[0]] == [pref_id]
    assert delete_preference(pref_id) is True

    # Agent -> MCP Servers (many-to-many)
    server = unique("mcp-")
    execute_query("insert into mcp_servers (name, transport, command) values (%s, 'stdio', 'npx')", (server,))
    execute_query(
        "insert into agent_mcp_servers (agent_id, mcp_server_id) select %s, mcp_server_id from mcp_servers"
        " where name = %s",
        (agent_id, server),
    )
    tools = execute_query("select mcp_server_names from agent_tools where agent_id = %s", (agent_id,))
    assert tools == [{"mcp_server_names": [server]}]


# -- JSONB Usage Patterns ---------------------------------------------------------


def test_jsonb_usage_patterns(agents_db: str) -> None:
    user_id = new_user("dark")
    # The README's block, as written.
    preference = Preference(
        user_id=user_id,
        category="ui_settings",
        preferences={"theme": "dark", "language": "en", "notifications": {"email": True, "push": False}},
    )
    create_preference(preference)

    # Querying JSONB fields
    dark_theme_users = execute_query("SELECT * FROM preferences WHERE preferences->>'theme' = %s", ("dark",))
    # Nested path queries
    email_enabled = execute_query(
        "SELECT * FROM preferences WHERE preferences->'notifications'->>'email' = %s", ("true",)
    )
    assert user_id in [r["user_id"] for r in dark_theme_users]
    assert user_id in [r["user_id"] for r in email_enabled]
    # Containment, which the GIN index preferences_preferences_idx serves.
    contained = execute_query("SELECT user_id FROM preferences WHERE preferences @> %s", ('{"theme": "dark"}',))
    assert {"user_id": user_id} in contained


# -- UUID Safety Pattern -------------------------------------------------------------


def test_safe_uuid_takes_text_and_uuids(agents_db: str) -> None:
    user_id = new_user()
    user_id_string = str(user_id)
    user_uuid = safe_uuid(user_id_string)  # Handles both str and UUID inputs
    assert user_uuid == user_id and safe_uuid(user_uuid) is user_uuid
    assert safe_uuid(user_id_string.upper()) == user_id and safe_uuid(None) is None
    with pytest.raises(ToolsdbError, match="not a UUID: 'nope'"):
        safe_uuid("nope")
    with pytest.raises(ToolsdbError, match="not a UUID"):
        get_user("nope")


# -- Idempotent Migration Patterns ------------------------------------------------


def test_idempotent_migration_patterns(pg: Pg, agents_db: str) -> None:
    add_column = "ALTER TABLE messages ADD COLUMN IF NOT EXISTS channel_payload JSONB DEFAULT '{}'"
    add_index = "CREATE INDEX IF NOT EXISTS idx_messages_channel_payload ON messages USING gin(channel_payload)"
    as_written = (
        "ALTER TABLE messages ADD CONSTRAINT IF NOT EXISTS chk_channel_payload_valid "
        "CHECK (jsonb_typeof(channel_payload) = 'object')"
    )
    # PostgreSQL has no ADD CONSTRAINT IF NOT EXISTS; the catalog check is the nearest correct form.
    nearest = """
        do $$
        begin
            if not exists (
                select from pg_constraint
                where conrelid = 'toolsdb.messages'::regclass and conname = 'chk_channel_payload_valid'
            ) then
                alter table messages add constraint chk_channel_payload_valid
                check (jsonb_typeof(channel_payload) = 'object');
            end if;
        end
        $$"""
    with psycopg.connect(pg.conninfo(agents_db)) as conn, conn.transaction(force_rollback=True):
        with pytest.raises(psycopg.errors.SyntaxError), conn.transaction():
            conn.execute(as_written)
        for _ in range(2):  # idempotent: the second run changes nothing
            for statement in (add_column, add_index, nearest):
                conn.execute(statement)
        count = conn.execute(
            "select count(*) from pg_constraint where conname = 'chk_channel_payload_valid'"
        ).fetchone()
        assert count == (1,)


def test_migrate_runs_twice_and_changes_nothing(pg: Pg, empty_db: str) -> None:
    """Migration Testing: "Apply again - should not fail"."""
    url = pg.url(empty_db)
    first = run_cli("migrate", "--database", url)
    assert first.returncode == 0, first.stderr
    before = pg.dump_schema(empty_db)
    second = run_cli("migrate", "--database", url)
    assert second.returncode == 0, second.stderr
    assert pg.dump_schema(empty_db) == before
    # Verify final state: the column the framework's migration added is a key of the metadata column here.
    assert "metadata jsonb" in before and "channel_payload" not in before


# -- Repository Testing -------------------------------------------------------------


def test_create_user(test_db) -> None:
    # The README's test, as written (with a fresh email: the module's database is shared).
    email = "test@example.com" if get_user_by_email("test@example.com") is None else f"{unique('t')}@example.com"
    user = User(email=email, name="Test User")
    user_id = create_user(user)
    assert user_id is not None

    retrieved = get_user(user_id)
    assert retrieved.email == email


def test_a_user_without_username_gets_one_from_the_email(agents_db: str) -> None:
    local = unique("Jane.Doe+")
    first = get_user(create_user(User(email=f"{local}@example.com")))
    second = get_user(create_user(User(email=f"{local}@example.org")))
    expected = local.lower().replace("+", "_")
    assert (first.username, second.username) == (expected, f"{expected}-2")
    assert get_user_by_username(expected.upper()).id == first.id
    odd = get_user(create_user(User(email=f"..{unique('x')}é@example.com")))
    assert odd.username[0] != "." and "_" in odd.username
    named = get_user(create_user(User(email=f"{unique('n')}@example.com", username=unique("chosen"))))
    assert named.username.startswith("chosen")
    # The rule is the database's: plain SQL gets the same.
    rows = execute_query("insert into users (email) values (%s) returning username", (f"{local}@example.net",))
    assert rows == [{"username": f"{expected}-3"}]


# -- Debugging Database Operations ----------------------------------------------------


def test_debugging_helpers(agents_db: str) -> None:
    # Check migration status: the table is yoyo's, toolsdb_migrations._yoyo_migration (not "migrations").
    with pytest.raises(DatabaseError, match='relation "migrations" does not exist'):
        execute_query("SELECT * FROM migrations ORDER BY applied_at DESC LIMIT 5")
    result = execute_query(
        "SELECT migration_id, applied_at_utc FROM toolsdb_migrations._yoyo_migration"
        " ORDER BY applied_at_utc DESC LIMIT 5"
    )
    assert [m["migration_id"] for m in result] == ["0001.baseline"]

    # Verify database health
    assert verify_database_health() is True

    # Check connection pool status: psycopg 3 keeps the dsn in conn.info, and a
    # connection taken with getconn() goes back with putconn() (the nearest correct form).
    pool = get_connection_pool()
    conn = pool.getconn()
    try:
        assert agents_db in conn.info.dsn
    finally:
        pool.putconn(conn)


# -- Error Handling -------------------------------------------------------------------


def test_error_handling(agents_db: str) -> None:
    user = User(email="not an email", name="Broken")
    caught = None
    try:
        create_user(user)
    except DatabaseError as e:
        caught = e
    assert caught is not None and "\n" not in str(caught)
    assert caught.constraint == "email_is_valid" and caught.sqlstate == "23514"
    with pytest.raises(ToolsdbError, match="create_message: the message needs a session_id"):
        create_message(Message(role="user", text="lost"))
    with pytest.raises(DatabaseError, match="messages_session_id_fkey"):
        create_message(Message(session_id="no-such-session", role="user", text="lost"))


# -- toolsdb's own README ----------------------------------------------------------------


def test_the_readme_section_for_agents_frameworks_runs(agents_db: str) -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Coming from an agents framework") :]
    block = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    assert "from toolsdb.compat.agents import" in block
    names: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), names)
    assert names["retrieved"].email == "test@example.com" and names["total"] >= 1


# -- Behind the functions: the application role and concurrent writers ---------------------


def test_the_application_role_works_in_its_session_only(pg: Pg, agents_db: str, app_login: str) -> None:
    """As toolsdb_app, row-level security shows the session a transaction names:
    the functions name it (set_config(..., true), transaction-local) when they know it."""
    user_id = new_user()
    other = create_session(Session(user_id=user_id))
    app = psycopg.connect(conninfo_as(pg, agents_db, app_login))
    agents.use_database(app)
    try:
        session_id = create_session(Session(user_id=user_id, cwd="/srv/app"))
        create_message(Message(session_id=session_id, role="user", text="hello"))
        assert get_session(session_id).message_count == 1
        assert [m.text for m in list_messages({"session_id": session_id})[0]] == ["hello"]
        # A call that names no session sees none (get_session(id) names its own).
        assert list_sessions() == ([], 0) and list_messages() == ([], 0)
        assert get_session(other).id == other
        setting = app.execute("select current_setting('toolsdb.session_id', true)").fetchone()
        assert setting in ((None,), ("",))  # nothing left behind on the connection
    finally:
        agents.use_database(pg.url(agents_db))
        app.close()


def test_concurrent_users_from_the_same_local_part_get_distinct_usernames(pg: Pg, agents_db: str) -> None:
    local = unique("race")
    with psycopg.connect(pg.conninfo(agents_db)) as first, psycopg.connect(pg.conninfo(agents_db)) as second:
        first.execute("insert into toolsdb.users (email) values (%s)", (f"{local}@one.example",))
        waiting_pid = second.info.backend_pid
        result: list[object] = []

        def insert_second() -> None:
            row = second.execute(
                "insert into toolsdb.users (email) values (%s) returning username", (f"{local}@two.example",)
            ).fetchone()
            second.commit()
            result.append(row[0] if row else None)

        thread = threading.Thread(target=insert_second)
        thread.start()
        # The second writer waits on the first's advisory lock (bounded poll, no timing assumption).
        for _ in range(600):
            waiting = first.execute(
                "select wait_event_type from pg_stat_activity where pid = %s", (waiting_pid,)
            ).fetchone()
            if waiting == ("Lock",):
                break
            thread.join(0.05)
        else:
            pytest.fail("The second insert should wait for the first's advisory lock")
        first.commit()
        thread.join(60)
        assert not thread.is_alive()
    assert result == [f"{local}-2"]
    assert get_user_by_email(f"{local}@one.example").username == local
