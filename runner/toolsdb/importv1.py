"""``toolsdb import-v1 DIR``: bring the V1 JSON files of Slack hook notifications into the database.

V1 kept its state in loose JSON files under ``~/.claude``:

* ``config/slack-config.json``: the Slack settings, with the webhook URL;
* ``state/tool_requests/{session_id}_{timestamp}.json``: one tool request each;
* ``state/notification_states.json``: a list (or an object keyed by id) of
  notification states.

DIR may be that ``~/.claude`` folder or a flat folder holding the same names.
The Slack settings go to ``toolsdb.config`` as ``slack.<key>``, with the
webhook URL (and any token, secret or password) encrypted here with the
Fernet key (``toolsdb.config``); the rest goes through the SQL functions
``toolsdb.import_v1_tool_request`` and ``toolsdb.import_v1_notification_state``,
which are idempotent. Each file (and each state) is imported in its own
savepoint: a bad one is reported by name and the rest go on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from . import config
from .errors import ToolsdbError

CONFIG_NAMES = ("config/slack-config.json", "slack-config.json")
TOOL_REQUEST_DIRS = ("state/tool_requests", "tool_requests")
STATE_NAMES = ("state/notification_states.json", "notification_states.json")
SECRET_KEY_PATTERN = re.compile(r"webhook|token|secret|password", re.IGNORECASE)
TOOL_REQUEST_NAME = re.compile(r"^(?P<session>.+)_(?P<stamp>[0-9]+(?:\.[0-9]+)?)$")


@dataclass
class Summary:
    """What an import did."""

    config_keys: int = 0
    config_secrets: int = 0
    config_unchanged: int = 0
    tool_requests: int = 0
    tool_requests_present: int = 0
    states: int = 0
    states_present: int = 0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"config: {self.config_keys} key(s) set ({self.config_secrets} encrypted), "
            f"{self.config_unchanged} already there",
            f"tool requests: {self.tool_requests} imported, {self.tool_requests_present} already there",
            f"notification states: {self.states} imported, {self.states_present} already there",
            f"problems: {len(self.problems)}",
        ]


@dataclass
class Item:
    """One unit of work: a file (or one state of the states file)."""

    label: str
    run: Callable[[psycopg.Connection, Summary], None]


def find(directory: Path, names: tuple[str, ...]) -> Path | None:
    return next((directory / n for n in names if (directory / n).exists()), None)


def plan(directory: Path, keys: config.KeyRing | None, problems: list[str]) -> list[Item]:
    """Every unit of work in DIR, in order: config, tool requests, states."""
    items: list[Item] = []
    config_file = find(directory, CONFIG_NAMES)
    if config_file is not None:
        items.append(Item(str(config_file), lambda conn, s, f=config_file: import_config(conn, f, keys, s)))
    requests_dir = find(directory, TOOL_REQUEST_DIRS)
    if requests_dir is not None:
        for path in sorted(requests_dir.glob("*.json")):
            items.append(Item(str(path), lambda conn, s, p=path: import_tool_request(conn, p, s)))
    states_file = find(directory, STATE_NAMES)
    if states_file is not None:
        try:
            for label, state in iter_states(states_file):
                items.append(Item(label, lambda conn, s, st=state, lb=label: import_state(conn, st, lb, s)))
        except ValueError as exc:
            problems.append(f"{states_file}: {exc}")
    return items


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def import_config(conn: psycopg.Connection, path: Path, keys: config.KeyRing | None, summary: Summary) -> None:
    import_config_data(conn, load_json(path), keys, summary)


def import_config_data(conn: psycopg.Connection, data: Any, keys: config.KeyRing | None, summary: Summary) -> None:
    """The settings of a V1 slack-config.json (already parsed) into toolsdb.config."""
    if not isinstance(data, dict):
        raise ValueError(f"the Slack config is a JSON object, not {type(data).__name__}")
    for raw_key, value in data.items():
        key = "slack." + re.sub(r"[^a-z0-9_]+", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", raw_key).lower()).strip("_")
        secret = isinstance(value, str) and (
            bool(SECRET_KEY_PATTERN.search(raw_key)) or value.startswith("https://hooks.slack.com/")
        )
        if config.get(conn, key, keys=keys) == value:
            summary.config_unchanged += 1
            continue
        if secret:
            config.set_secret(conn, key, value, "imported from V1 slack-config.json", keys=keys)
            summary.config_secrets += 1
        else:
            config.set_value(conn, key, value, "imported from V1 slack-config.json")
        summary.config_keys += 1


def import_tool_request(conn: psycopg.Connection, path: Path, summary: Summary) -> None:
    match = TOOL_REQUEST_NAME.match(path.stem)
    if match is None:
        raise ValueError("the name is not {session_id}_{timestamp}.json")
    stamp = float(match["stamp"])
    when = datetime.fromtimestamp(stamp / 1000 if stamp > 1e11 else stamp, tz=timezone.utc)
    request = load_json(path)
    if not isinstance(request, dict):
        raise ValueError(f"a tool request is a JSON object, not {type(request).__name__}")
    imported = conn.execute(
        "select toolsdb.import_v1_tool_request(%s, %s, %s, %s)", (match["session"], Jsonb(request), when, path.name)
    ).fetchone()[0]
    if imported:
        summary.tool_requests += 1
    else:
        summary.tool_requests_present += 1


def iter_states(path: Path) -> Iterator[tuple[str, Any]]:
    data = load_json(path)
    if isinstance(data, dict):
        for key, state in data.items():
            if isinstance(state, dict):
                state = {"id": key, **state}
            yield f"{path}[{key!r}]", state
    elif isinstance(data, list):
        for index, state in enumerate(data):
            yield f"{path}[{index}]", state
    else:
        raise ValueError(f"notification states are a JSON list or object, not {type(data).__name__}")


def import_state(conn: psycopg.Connection, state: Any, label: str, summary: Summary) -> None:
    if not isinstance(state, dict):
        raise ValueError(f"a notification state is a JSON object, not {type(state).__name__}")
    imported = conn.execute(
        "select toolsdb.import_v1_notification_state(%s, %s)", (Jsonb(state), label.rsplit("/", 1)[-1])
    ).fetchone()[0]
    if imported:
        summary.states += 1
    else:
        summary.states_present += 1


def describe(exc: Exception) -> str:
    if isinstance(exc, ToolsdbError):
        return exc.format_message()
    if isinstance(exc, psycopg.Error):
        line = (exc.diag.message_primary if exc.diag else None) or str(exc).splitlines()[0]
        return f"{line} (SQLSTATE {exc.sqlstate})" if exc.sqlstate else line
    return " ".join(str(exc).split())


def run_items(
    conn: psycopg.Connection, items: list[Item], summary: Summary, progress: Callable[[Item], None] | None = None
) -> None:
    """Each item in its own savepoint; a failure is recorded and the rest go on."""
    for item in items:
        try:
            with conn.transaction():
                item.run(conn, summary)
        except (ValueError, OSError, psycopg.Error, ToolsdbError) as exc:
            summary.problems.append(f"{item.label}: {describe(exc)}")
        if progress is not None:
            progress(item)
