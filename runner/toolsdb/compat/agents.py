"""The agents framework's database API, thin over toolsdb's tables and SQL functions.

For people coming from an agents framework whose code imports its repository
functions from one place: the same names, from this module.

    from toolsdb.compat.agents import User, create_user, get_user

    user_id = create_user(User(email="test@example.com", name="Test User"))
    assert get_user(user_id).email == "test@example.com"

The naming convention, for users, agents, sessions, messages, memories and
preferences:

    get_<entity>(id)                     by primary key, None when absent
    get_<entity>_by_<field>(value)       by a unique field
    list_<entity>s(filters, page, page_size) -> (items, total)
    create_<entity>(model)               create or update (upsert); returns the id
    update_<entity>(id, model)           fields left None keep their value; the id, or None when absent
    delete_<entity>(id)                  True when a row was deleted

plus the connection helpers ``get_db_connection()``, ``execute_query()``,
``execute_batch()``, ``get_connection_pool()``, ``verify_database_health()``
and ``safe_uuid()``. The rules stay in SQL: a user without a username gets
one derived from the email (trigger ``_050_username``), a message's position
is the session's next one, a memory of a user falls back to the agent's
global one (``memory_get()``). Every function is one transaction; a refused
call raises :class:`DatabaseError`, one line with the SQLSTATE and the
constraint; bad arguments raise :class:`~toolsdb.errors.ToolsdbError`.

Which database: ``use_database()`` (a URL, a pool or a connection), else the
process's shared pool, ``toolsdb.pool.get_pool()``, which resolves it as every
toolsdb command does. Field names follow toolsdb's columns, except where the
framework named them: ``id`` for each primary key, ``User.name``
(display_name), ``Message.text`` (content), ``Message.channel_payload`` (kept in
the message's metadata); docs/names.md has the table.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ..errors import ToolsdbError
from ..tools import DatabaseError

__all__ = [
    "Agent",
    "DatabaseError",
    "Memory",
    "Message",
    "Preference",
    "Session",
    "User",
    "create_agent",
    "create_memory",
    "create_message",
    "create_preference",
    "create_session",
    "create_user",
    "delete_agent",
    "delete_memory",
    "delete_message",
    "delete_preference",
    "delete_session",
    "delete_user",
    "execute_batch",
    "execute_query",
    "get_agent",
    "get_agent_by_name",
    "get_connection_pool",
    "get_db_connection",
    "get_memory",
    "get_memory_by_key",
    "get_message",
    "get_preference",
    "get_preference_by_category",
    "get_session",
    "get_user",
    "get_user_by_email",
    "get_user_by_username",
    "list_agents",
    "list_memories",
    "list_messages",
    "list_preferences",
    "list_sessions",
    "list_users",
    "safe_uuid",
    "update_agent",
    "update_memory",
    "update_message",
    "update_preference",
    "update_session",
    "update_user",
    "use_database",
    "verify_database_health",
]

MAX_PAGE_SIZE = 1000

# -- Models -----------------------------------------------------------------


@dataclasses.dataclass
class User:
    """A row of toolsdb.users. ``name`` is display_name; ``username`` may be left
    out: the database derives it from the email."""

    email: str | None = None
    name: str | None = None
    username: str | None = None
    role: str | None = None
    is_active: bool | None = None
    metadata: dict[str, Any] | None = None
    preferences: dict[str, Any] | None = None
    id: uuid.UUID | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclasses.dataclass
class Agent:
    """A row of toolsdb.agents (``id`` is agent_id, a uuid)."""

    name: str | None = None
    agent_type: str | None = None
    description: str | None = None
    model_provider: str | None = None
    model_name: str | None = None
    capabilities: dict[str, Any] | None = None
    tags: list[str] | None = None
    is_active: bool | None = None
    is_experimental: bool | None = None
    config: dict[str, Any] | None = None
    id: uuid.UUID | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclasses.dataclass
class Session:
    """A row of toolsdb.sessions. ``id`` is the session id the agent gives
    (text); create_session() makes a random one when it is None."""

    user_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    cwd: str | None = None
    git_branch: str | None = None
    terminal_type: str | None = None
    terminal_info: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    id: str | None = None
    message_count: int | None = None
    is_idle: bool | None = None
    started_at: datetime | None = None
    last_activity_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclasses.dataclass
class Message:
    """A row of toolsdb.messages. ``text`` is the content column;
    ``channel_payload`` is kept under that key of ``metadata``; ``position``
    is set by the database (the session's next)."""

    session_id: str | None = None
    role: str | None = None
    text: str | None = None
    tool_calls: list[Any] | None = None
    tokens: int | None = None
    metadata: dict[str, Any] | None = None
    channel_payload: dict[str, Any] | None = None
    id: uuid.UUID | None = None
    position: int | None = None
    created_at: datetime | None = None


@dataclasses.dataclass
class Memory:
    """A row of toolsdb.memories: an agent's memory under a key, for one user or
    (``user_id`` None) global."""

    agent_id: uuid.UUID | None = None
    key: str | None = None
    content: str | None = None
    user_id: uuid.UUID | None = None
    metadata: dict[str, Any] | None = None
    id: uuid.UUID | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclasses.dataclass
class Preference:
    """A row of toolsdb.preferences: one JSON object per user and category."""

    user_id: uuid.UUID | None = None
    category: str | None = None
    preferences: dict[str, Any] | None = None
    id: uuid.UUID | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


M = TypeVar("M")


@dataclasses.dataclass(frozen=True)
class _Entity:
    """How a model maps onto its table: model field -> column."""

    model: type
    table: str
    key: str
    columns: Mapping[str, str]
    order: tuple[str, ...]
    uuid_key: bool = True
    # Fields written by create/update (the rest are the database's).
    writable: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.model.__name__.lower()


def _columns(model: type, key: str, **renamed: str) -> dict[str, str]:
    mapping = {f.name: renamed.get(f.name, f.name) for f in dataclasses.fields(model)}
    mapping["id"] = key
    return mapping


USERS = _Entity(
    User,
    "users",
    "user_id",
    _columns(User, "user_id", name="display_name"),
    ("created_at", "user_id"),
    writable=("email", "name", "username", "role", "is_active", "metadata", "preferences"),
)
AGENTS = _Entity(
    Agent,
    "agents",
    "agent_id",
    _columns(Agent, "agent_id"),
    ("name",),
    writable=(
        "name",
        "agent_type",
        "description",
        "model_provider",
        "model_name",
        "capabilities",
        "tags",
        "is_active",
        "is_experimental",
        "config",
    ),
)
SESSIONS = _Entity(
    Session,
    "sessions",
    "session_id",
    _columns(Session, "session_id"),
    ("started_at", "session_id"),
    uuid_key=False,
    writable=("user_id", "agent_id", "project_id", "cwd", "git_branch", "terminal_type", "terminal_info", "metadata"),
)
_message_columns = _columns(Message, "message_id", text="content")
del _message_columns["channel_payload"]  # in metadata
MESSAGES = _Entity(
    Message,
    "messages",
    "message_id",
    _message_columns,
    ("session_id", "position"),
    writable=("role", "text", "tool_calls", "tokens", "metadata"),
)
MEMORIES = _Entity(
    Memory,
    "memories",
    "memory_id",
    _columns(Memory, "memory_id"),
    ("agent_id", "key", "user_id"),
    writable=("content", "metadata"),
)
PREFERENCES = _Entity(
    Preference,
    "preferences",
    "preference_id",
    _columns(Preference, "preference_id"),
    ("user_id", "category"),
    writable=("preferences",),
)

# -- Connections --------------------------------------------------------------

_source: ConnectionPool | psycopg.Connection | None = None
_owned_pool: ConnectionPool | None = None
_source_lock = threading.Lock()


def use_database(database: str | ConnectionPool | psycopg.Connection | None = None) -> None:
    """Point this module at a database: a URL or conninfo string (a pool is
    made for it, see ``toolsdb.pool.create_pool``), a psycopg_pool pool, or one
    psycopg connection (used by one thread at a time). None goes back to the
    process's shared pool, ``toolsdb.pool.get_pool()``."""
    global _source, _owned_pool
    from ..pool import create_pool

    made = create_pool(database) if isinstance(database, str) else None
    with _source_lock:
        old, _owned_pool = _owned_pool, made
        _source = made if made is not None else database
    if old is not None and old is not _source:
        old.close()


def get_connection_pool() -> ConnectionPool | psycopg.Connection:
    """The pool this module uses (or the connection given to ``use_database``)."""
    if _source is not None:
        return _source
    from ..pool import get_pool

    return get_pool()


@contextmanager
def get_db_connection() -> Iterator[psycopg.Connection]:
    """A connection for one transaction, its cursors returning dict rows:
    committed when the block ends, rolled back when it raises."""
    source = get_connection_pool()
    if isinstance(source, psycopg.Connection):
        with _dict_rows(source) as conn, conn.transaction():
            yield conn
    else:
        with source.connection() as pooled, _dict_rows(pooled) as conn:
            yield conn


@contextmanager
def _dict_rows(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    before = conn.row_factory
    conn.row_factory = dict_row  # type: ignore[assignment]
    try:
        yield conn
    finally:
        conn.row_factory = before  # type: ignore[assignment]


@contextmanager
def _cursor(operation: str, session_id: str | None = None) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
    """One transaction; psycopg errors as one-line DatabaseError. ``session_id``
    names the session the transaction acts for (transaction-local, for
    row-level security of the application role)."""
    try:
        with get_db_connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            if session_id is not None:
                # SET LOCAL, not set_config(): Citus passes it on to the workers.
                cur.execute(sql.SQL("set local toolsdb.session_id = {}").format(sql.Literal(session_id)))
            yield cur
    except psycopg.Error as exc:
        raise DatabaseError(operation, exc) from exc


def execute_query(
    query: str | sql.Composable,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    fetch: bool = True,
    commit: bool = True,
) -> list[dict[str, Any]]:
    """Run one statement in its own transaction; its rows as dicts (none when
    it returns none or ``fetch`` is False). ``commit=False`` rolls it back."""
    try:
        with get_db_connection() as conn, conn.transaction(force_rollback=not commit), conn.cursor() as cur:
            cur.execute(query, params)
            return list(cur.fetchall()) if fetch and cur.description else []
    except psycopg.Error as exc:
        raise DatabaseError("execute_query", exc) from exc


_VALUES_PLACEHOLDER = re.compile(r"\bvalues\s+%s\s*$", re.I)


def execute_batch(query: str, params_list: Iterable[Sequence[Any]], commit: bool = True) -> None:
    """Run one statement for each parameter tuple, all in one transaction.
    ``INSERT ... VALUES %s`` (psycopg2's execute_values form) takes each
    tuple as one row."""
    rows = [tuple(p) for p in params_list]
    if not rows:
        return
    if _VALUES_PLACEHOLDER.search(query.strip().rstrip(";")):
        width = len(rows[0])
        if any(len(r) != width for r in rows):
            raise ToolsdbError("execute_batch: every row needs the same number of values")
        head = query.strip().rstrip(";")[: -len("%s")].rstrip()
        query = f"{head} ({', '.join(['%s'] * width)})"
    try:
        with get_db_connection() as conn, conn.transaction(force_rollback=not commit), conn.cursor() as cur:
            cur.executemany(query, rows)
    except psycopg.Error as exc:
        raise DatabaseError("execute_batch", exc) from exc


def verify_database_health() -> bool:
    """True when the database answers; never raises for an unreachable one."""
    source = get_connection_pool()
    check = getattr(source, "health_check", None)
    if check is not None:
        return bool(check()["healthy"])
    try:
        with get_db_connection() as conn:
            conn.execute("select 1")
        return True
    except (psycopg.Error, ToolsdbError):
        return False


# -- Values ---------------------------------------------------------------------


def safe_uuid(value: Any) -> uuid.UUID | None:
    """A UUID from a UUID or its text (any case, with or without hyphens or
    braces); None stays None. Anything else is a ToolsdbError."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())
        except ValueError:
            pass
    raise ToolsdbError(f"not a UUID: {value!r}")


def _adapt(value: Any) -> Any:
    """dicts and lists as JSON (agents.tags, a text[], is passed as a list by _values)."""
    return Jsonb(value) if isinstance(value, (dict, list)) else value


def _key(entity: _Entity, value: Any) -> Any:
    if entity.uuid_key:
        return safe_uuid(value)
    if not isinstance(value, str) or not value:
        raise ToolsdbError(f"not a {entity.name} id: {value!r}")
    return value


def _values(entity: _Entity, model: Any) -> dict[str, Any]:
    """Column -> value of the model's writable fields that are set."""
    if not isinstance(model, entity.model):
        raise ToolsdbError(f"expected a {entity.model.__name__}, got {type(model).__name__}")
    values = {}
    for field in entity.writable:
        value = getattr(model, field)
        if field == "tags" and value is not None:
            values["tags"] = list(value)  # text[]
        elif value is not None:
            values[entity.columns[field]] = _adapt(value)
    if entity is MESSAGES and model.channel_payload is not None:
        values["metadata"] = Jsonb({**(model.metadata or {}), "channel_payload": model.channel_payload})
    return values


def _model(entity: _Entity, row: Mapping[str, Any] | None) -> Any:
    if row is None:
        return None
    model = entity.model(**{field: row[column] for field, column in entity.columns.items()})
    if entity is MESSAGES:
        model.channel_payload = (model.metadata or {}).get("channel_payload")
    return model


def _table(entity: _Entity) -> sql.Composable:
    return sql.Identifier("toolsdb", entity.table)


def _select(entity: _Entity) -> sql.Composable:
    return sql.SQL("select * from {}").format(_table(entity))


# -- Generic operations -------------------------------------------------------------


def _get_by(entity: _Entity, column: str, value: Any, operation: str, session_id: str | None = None) -> Any:
    with _cursor(operation, session_id) as cur:
        row = cur.execute(
            sql.SQL("{} where {} = %s").format(_select(entity), sql.Identifier(column)), (value,)
        ).fetchone()
    return _model(entity, row)


def _get(entity: _Entity, id: Any) -> Any:
    key = _key(entity, id)
    return _get_by(entity, entity.key, key, f"get_{entity.name}", key if entity is SESSIONS else None)


def _filters(entity: _Entity, operation: str, filters: Mapping[str, Any] | None) -> tuple[sql.Composable, list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for name, value in (filters or {}).items():
        column = entity.columns.get(name) or (name if name in entity.columns.values() else None)
        if column is None:
            known = ", ".join(sorted(entity.columns))
            raise ToolsdbError(f"{operation}: no field {name!r} to filter on; one of {known}")
        ident = sql.Identifier(column)
        if value is None:
            clauses.append(sql.SQL("{} is null").format(ident))
        elif isinstance(value, (list, tuple, set)):
            clauses.append(sql.SQL("{} = any(%s)").format(ident))
            params.append(list(value))
        else:
            clauses.append(sql.SQL("{} = %s").format(ident))
            params.append(_adapt(value))
    where = sql.SQL(" where ") + sql.SQL(" and ").join(clauses) if clauses else sql.SQL("")
    return where, params


def _list(
    entity: _Entity, filters: Mapping[str, Any] | None, page: int, page_size: int, session_id: str | None = None
) -> tuple[list[Any], int]:
    operation = f"list_{entity.table}"
    if not isinstance(page, int) or page < 1:
        raise ToolsdbError(f"{operation}: page must be 1 or more, not {page!r}")
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ToolsdbError(f"{operation}: page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size!r}")
    where, params = _filters(entity, operation, filters)
    order = sql.SQL(", ").join(sql.Identifier(c) for c in entity.order)
    with _cursor(operation, session_id) as cur:
        total = cur.execute(
            sql.SQL("select count(*) as total from {}{}").format(_table(entity), where), params
        ).fetchone()["total"]  # type: ignore[index]
        rows = cur.execute(
            sql.SQL("{}{} order by {} limit %s offset %s").format(_select(entity), where, order),
            [*params, page_size, (page - 1) * page_size],
        ).fetchall()
    return [_model(entity, r) for r in rows], total


def _update_row(cur: psycopg.Cursor[Any], entity: _Entity, key: Any, values: Mapping[str, Any]) -> Any:
    """Update the given columns of one row; its key, or None when there is no such row."""
    target = sql.Identifier(entity.key)
    if values:
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values)
        query = sql.SQL("update {} set {} where {} = %s returning {}").format(
            _table(entity), assignments, target, target
        )
    else:
        query = sql.SQL("select {} from {} where {} = %s").format(target, _table(entity), target)
    row = cur.execute(query, [*values.values(), key]).fetchone()
    return row[entity.key] if row else None


def _update(entity: _Entity, id: Any, model: Any, session_id: str | None = None) -> Any:
    key = _key(entity, id)
    values = _values(entity, model)
    with _cursor(f"update_{entity.name}", session_id) as cur:
        return _update_row(cur, entity, key, values)


def _delete(entity: _Entity, id: Any, session_id: str | None = None) -> bool:
    key = _key(entity, id)
    with _cursor(f"delete_{entity.name}", session_id) as cur:
        cur.execute(sql.SQL("delete from {} where {} = %s").format(_table(entity), sql.Identifier(entity.key)), (key,))
        return cur.rowcount > 0


def _upsert(entity: _Entity, model: Any, conflict: sql.Composable) -> Any:
    """Update the row with the model's id if there is one, else insert, and on
    a conflict over ``conflict`` update that row with the fields set. Returns
    the row's key."""
    operation = f"create_{entity.name}"
    values = _values(entity, model)
    if not values:
        raise ToolsdbError(f"{operation}: the {entity.model.__name__} has no field set")
    key = _key(entity, model.id) if model.id is not None else None
    with _cursor(operation) as cur:
        if key is not None:
            found = _update_row(cur, entity, key, values)
            if found is not None:
                return found
            values = {entity.key: key, **values}
        names = [sql.Identifier(c) for c in values]
        changed = [c for c in values if c != entity.key]
        query = sql.SQL("insert into {} as t ({}) values ({}) on conflict {} do update set {} returning t.{}").format(
            _table(entity),
            sql.SQL(", ").join(names),
            sql.SQL(", ").join(sql.Placeholder() * len(values)),
            conflict,
            sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in changed),
            sql.Identifier(entity.key),
        )
        return cur.execute(query, list(values.values())).fetchone()[entity.key]  # type: ignore[index]


# -- Users ------------------------------------------------------------------------


def create_user(user: User) -> uuid.UUID:
    """Create a user, or update the one with its id, else with its email
    (regardless of case). Without a username the database derives one from
    the email. Returns the user_id."""
    return _upsert(USERS, user, sql.SQL("((lower(email)))"))


def get_user(user_id: uuid.UUID | str) -> User | None:
    return _get(USERS, user_id)


def get_user_by_email(email: str) -> User | None:
    with _cursor("get_user_by_email") as cur:
        row = cur.execute(sql.SQL("{} where lower(email) = lower(%s)").format(_select(USERS)), (email,)).fetchone()
    return _model(USERS, row)


def get_user_by_username(username: str) -> User | None:
    with _cursor("get_user_by_username") as cur:
        row = cur.execute(
            sql.SQL("{} where lower(username) = lower(%s)").format(_select(USERS)), (username,)
        ).fetchone()
    return _model(USERS, row)


def list_users(filters: Mapping[str, Any] | None = None, page: int = 1, page_size: int = 20) -> tuple[list[User], int]:
    """A page of users (oldest first) matching ``filters`` (field -> value,
    a list for any of several, None for null) and how many match in all."""
    return _list(USERS, filters, page, page_size)


def update_user(user_id: uuid.UUID | str, user: User) -> uuid.UUID | None:
    return _update(USERS, user_id, user)


def delete_user(user_id: uuid.UUID | str) -> bool:
    """Delete a user (refused while it owns projects: deactivate it instead)."""
    return _delete(USERS, user_id)


# -- Agents -----------------------------------------------------------------------


def create_agent(agent: Agent) -> uuid.UUID:
    """Create an agent, or update the one with its id, else with its name. Returns the agent_id."""
    return _upsert(AGENTS, agent, sql.SQL("on constraint agents_name_key"))


def get_agent(agent_id: uuid.UUID | str) -> Agent | None:
    return _get(AGENTS, agent_id)


def get_agent_by_name(name: str) -> Agent | None:
    return _get_by(AGENTS, "name", name, "get_agent_by_name")


def list_agents(
    filters: Mapping[str, Any] | None = None, page: int = 1, page_size: int = 20
) -> tuple[list[Agent], int]:
    """A page of agents by name and how many match ``filters`` in all."""
    return _list(AGENTS, filters, page, page_size)


def update_agent(agent_id: uuid.UUID | str, agent: Agent) -> uuid.UUID | None:
    return _update(AGENTS, agent_id, agent)


def delete_agent(agent_id: uuid.UUID | str) -> bool:
    return _delete(AGENTS, agent_id)


# -- Sessions -------------------------------------------------------------------


def create_session(session: Session) -> str:
    """Create a session (a random id when ``session.id`` is None), or refresh
    and reopen the one with its id: ``toolsdb.create_session()``; ``metadata``
    is merged into the session's. Returns the session id."""
    session_id = session.id if session.id is not None else str(uuid.uuid4())
    _key(SESSIONS, session_id)
    values = _values(SESSIONS, session)
    with _cursor("create_session", session_id) as cur:
        cur.execute(
            "select toolsdb.create_session(session_id => %s, cwd => %s, git_branch => %s, terminal_type => %s,"
            " terminal_info => %s, project_id => %s, user_id => %s, agent_id => %s)",
            (
                session_id,
                session.cwd,
                session.git_branch,
                session.terminal_type,
                _adapt(session.terminal_info or {}),
                safe_uuid(session.project_id),
                safe_uuid(session.user_id),
                safe_uuid(session.agent_id),
            ),
        )
        if "metadata" in values:
            cur.execute(
                "update toolsdb.sessions set metadata = metadata || %s where session_id = %s",
                (values["metadata"], session_id),
            )
    return session_id


def get_session(session_id: str) -> Session | None:
    return _get(SESSIONS, session_id)


def list_sessions(
    filters: Mapping[str, Any] | None = None, page: int = 1, page_size: int = 20
) -> tuple[list[Session], int]:
    """A page of sessions (oldest first) and how many match ``filters`` in all."""
    return _list(SESSIONS, filters, page, page_size)


def update_session(session_id: str, session: Session) -> str | None:
    key = _key(SESSIONS, session_id)
    return _update(SESSIONS, key, session, key)


def delete_session(session_id: str) -> bool:
    """Delete a session and its messages."""
    key = _key(SESSIONS, session_id)
    return _delete(SESSIONS, key, key)


# -- Messages -------------------------------------------------------------------


def create_message(message: Message) -> uuid.UUID:
    """Add a message at the end of its session (the database gives it the
    next position), or, when a message with its id exists, update its role,
    text, tool calls, tokens and metadata. Returns the message_id."""
    if not message.session_id:
        raise ToolsdbError("create_message: the message needs a session_id")
    values = _values(MESSAGES, message)
    with _cursor("create_message", message.session_id) as cur:
        if message.id is not None:
            found = _update_row(cur, MESSAGES, safe_uuid(message.id), values)
            if found is not None:
                return found
        columns = {"message_id": safe_uuid(message.id) or uuid.uuid4(), "session_id": message.session_id, **values}
        query = sql.SQL("insert into toolsdb.messages ({}) values ({}) returning message_id").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.SQL(", ").join(sql.Placeholder() * len(columns))
        )
        return cur.execute(query, list(columns.values())).fetchone()["message_id"]  # type: ignore[index]


def get_message(message_id: uuid.UUID | str) -> Message | None:
    return _get(MESSAGES, message_id)


def list_messages(
    filters: Mapping[str, Any] | None = None, page: int = 1, page_size: int = 20
) -> tuple[list[Message], int]:
    """A page of messages in session order and how many match ``filters`` in
    all, e.g. ``list_messages({"session_id": sid})``."""
    session_id = (filters or {}).get("session_id")
    return _list(MESSAGES, filters, page, page_size, session_id if isinstance(session_id, str) else None)


def update_message(message_id: uuid.UUID | str, message: Message) -> uuid.UUID | None:
    """Change a message's role, text, tool calls, tokens or metadata (never its session or position)."""
    return _update(MESSAGES, message_id, message, message.session_id)


def delete_message(message_id: uuid.UUID | str) -> bool:
    """Delete a message (the others keep their positions)."""
    return _delete(MESSAGES, message_id)


# -- Memories -----------------------------------------------------------------------


def create_memory(memory: Memory) -> uuid.UUID:
    """Store an agent's memory for a user or (``user_id`` None) global,
    replacing the entry with the same agent, user and key: ``toolsdb.memory_set()``.
    Returns its memory_id."""
    if memory.id is not None and update_memory(memory.id, memory) is not None:
        return safe_uuid(memory.id)  # type: ignore[return-value]
    agent_id, user_id = safe_uuid(memory.agent_id), safe_uuid(memory.user_id)
    with _cursor("create_memory") as cur:
        cur.execute(
            "select toolsdb.memory_set(agent_id => %s, key => %s, content => %s, user_id => %s, metadata => %s)",
            (agent_id, memory.key, memory.content, user_id, _adapt(memory.metadata or {})),
        )
        row = cur.execute(
            "select memory_id from toolsdb.memories"
            " where agent_id = %s and key = %s and user_id is not distinct from %s",
            (agent_id, memory.key, user_id),
        ).fetchone()
    return row["memory_id"]  # type: ignore[index]


def get_memory(memory_id: uuid.UUID | str) -> Memory | None:
    return _get(MEMORIES, memory_id)


def get_memory_by_key(agent_id: uuid.UUID | str, key: str, user_id: uuid.UUID | str | None = None) -> Memory | None:
    """The user's own entry under ``key`` if there is one, else the agent's
    global one: ``toolsdb.memory_get()``."""
    with _cursor("get_memory_by_key") as cur:
        row = cur.execute(
            "select * from toolsdb.memory_get(%s, %s, %s)", (safe_uuid(agent_id), key, safe_uuid(user_id))
        ).fetchone()
    return _model(MEMORIES, row)


def list_memories(
    filters: Mapping[str, Any] | None = None, page: int = 1, page_size: int = 20
) -> tuple[list[Memory], int]:
    return _list(MEMORIES, filters, page, page_size)


def update_memory(memory_id: uuid.UUID | str, memory: Memory) -> uuid.UUID | None:
    """Change a memory's content or metadata."""
    return _update(MEMORIES, memory_id, memory)


def delete_memory(memory_id: uuid.UUID | str) -> bool:
    return _delete(MEMORIES, memory_id)


# -- Preferences ------------------------------------------------------------------


def create_preference(preference: Preference) -> uuid.UUID:
    """Store a user's preferences of one category, replacing that category's
    object when it exists. Returns the preference_id."""
    if preference.user_id is not None:
        preference = dataclasses.replace(preference, user_id=safe_uuid(preference.user_id))
    values = _values(PREFERENCES, preference)
    key = _key(PREFERENCES, preference.id) if preference.id is not None else None
    with _cursor("create_preference") as cur:
        if key is not None and (found := _update_row(cur, PREFERENCES, key, values)) is not None:
            return found
        row = cur.execute(
            "insert into toolsdb.preferences as p (preference_id, user_id, category, preferences)"
            " values (coalesce(%s, gen_random_uuid()), %s, %s, coalesce(%s, '{}'))"
            " on conflict on constraint preferences_user_id_category_key"
            " do update set preferences = excluded.preferences returning p.preference_id",
            (key, preference.user_id, preference.category, values.get("preferences")),
        ).fetchone()
    return row["preference_id"]  # type: ignore[index]


def get_preference(preference_id: uuid.UUID | str) -> Preference | None:
    return _get(PREFERENCES, preference_id)


def get_preference_by_category(user_id: uuid.UUID | str, category: str) -> Preference | None:
    with _cursor("get_preference_by_category") as cur:
        row = cur.execute(
            sql.SQL("{} where user_id = %s and category = %s").format(_select(PREFERENCES)),
            (safe_uuid(user_id), category),
        ).fetchone()
    return _model(PREFERENCES, row)


def list_preferences(
    filters: Mapping[str, Any] | None = None, page: int = 1, page_size: int = 20
) -> tuple[list[Preference], int]:
    return _list(PREFERENCES, filters, page, page_size)


def update_preference(preference_id: uuid.UUID | str, preference: Preference) -> uuid.UUID | None:
    """Replace the preferences object of a category."""
    return _update(PREFERENCES, preference_id, preference)


def delete_preference(preference_id: uuid.UUID | str) -> bool:
    return _delete(PREFERENCES, preference_id)
