"""``toolsdb claude-settings``: Claude Code's hooks block for toolsdb, printed or
merged into a settings.json, and the MCP server line (docs/claude-code.md).

Claude Code reads hooks from its settings files (``~/.claude/settings.json``,
``.claude/settings.json``, ``.claude/settings.local.json``) but MCP servers
only from ``~/.claude.json`` (``claude mcp add``) and a project's ``.mcp.json``:
the MCP server is printed as a ``claude mcp add`` line, or merged into a
``.mcp.json`` with ``--mcp-json``.

A merge keeps everything of the user's (other keys, other hooks, other MCP
servers) and replaces only toolsdb's own hooks, recognised by their command
(``.../toolsdb hook``) or, for http hooks, by their URL; it writes a backup
``PATH.bak-<UTC time>`` first and the new file atomically (a temporary file
in the same folder, fsynced, renamed over). Running it twice gives the same
file (and no second backup).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ToolsdbError
from .hook import DEFAULT_TOKEN_VAR
from .transcripts import LIVE_EVENTS

# Claude Code's 30 hook events (2.1.197: the enum of its settings schema's
# ``hooks`` keys), in its order. docs/claude-code.md says what each one does.
HOOK_EVENTS = (
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Notification",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "SessionStart",
    "SessionEnd",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "PermissionRequest",
    "PermissionDenied",
    "Setup",
    "TeammateIdle",
    "TaskCreated",
    "TaskCompleted",
    "Elicitation",
    "ElicitationResult",
    "ConfigChange",
    "WorktreeCreate",
    "WorktreeRemove",
    "InstructionsLoaded",
    "CwdChanged",
    "FileChanged",
    "MessageDisplay",
)
# Left out unless asked (--include): WorktreeCreate replaces git's worktree
# creation and must print the worktree's path (toolsdb hook prints nothing:
# `claude -w NAME` fails with "hook succeeded but returned no worktree
# path"); MessageDisplay fires once per displayed chunk of every message.
OPT_IN_EVENTS = ("WorktreeCreate", "MessageDisplay")
DEFAULT_EVENTS = tuple(e for e in HOOK_EVENTS if e not in OPT_IN_EVENTS)

# Claude Code skips http hooks for these (2.1.197: "HTTP hooks are not
# supported for SessionStart"): with --type http they run `toolsdb hook --post`.
# So do the events after which a transcript has new lines (transcripts.LIVE_EVENTS):
# an http hook sends only JSON, `toolsdb hook --post` also the transcript's new
# bytes (POST /transcripts), so a serve on another machine gets them.
COMMAND_ONLY_EVENTS = ("SessionStart", "Setup")
POST_EVENTS = (*COMMAND_ONLY_EVENTS, *sorted(LIVE_EVENTS))

DEFAULT_URL = "http://127.0.0.1:8787/hooks"
# Claude Code's timeout of one hook, in seconds (its default is 600). toolsdb
# hook gives up by itself after TOOLSDB_HOOK_TIMEOUT (default 2 s) and
# toolsdb serve answers once the event is durable: this is only a backstop.
HOOK_TIMEOUT = 10
MCP_NAME = "toolsdb"
# The variable names Claude Code interpolates in an http hook's headers.
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# A command hook running `toolsdb hook` (any path, any env prefix, any options).
_OUR_COMMAND = re.compile(r"(^|[\s/'\"])toolsdb(\.exe)?['\"]?\s+hook(\s|$)")


@dataclass
class Options:
    """What to configure: the hook type, its target and the events."""

    hook_type: str = "command"
    url: str = DEFAULT_URL
    token_var: str = DEFAULT_TOKEN_VAR
    include: tuple[str, ...] = ()
    mcp: bool = True
    executable: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def events(self) -> list[str]:
        """The events to hook, in Claude Code's order."""
        wanted = set(DEFAULT_EVENTS) | set(self.include)
        return [e for e in HOOK_EVENTS if e in wanted]


def check_include(names: Iterable[str]) -> tuple[str, ...]:
    """``--include`` names, each one of the 30 events (case as Claude Code spells them)."""
    by_lower = {e.lower(): e for e in HOOK_EVENTS}
    out = []
    for name in names:
        event = by_lower.get(name.strip().lower())
        if event is None:
            raise ToolsdbError(f"--include {name!r} is not a Claude Code hook event (one of: {', '.join(HOOK_EVENTS)})")
        out.append(event)
    return tuple(out)


def check_url(url: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise ToolsdbError(f"--url must be an http:// or https:// URL, such as {DEFAULT_URL}, not {url!r}")
    return url


def check_token_var(name: str) -> str:
    if not ENV_NAME.match(name):
        raise ToolsdbError(
            f"--token-var must be an upper-case variable name (Claude Code interpolates only those), not {name!r}"
        )
    return name


def toolsdb_executable() -> str:
    """The absolute path of the installed ``toolsdb`` console script: hooks then
    run without PATH. The one beside this interpreter (its virtualenv), else PATH's."""
    beside = Path(os.path.abspath(sys.executable)).parent / ("toolsdb.exe" if os.name == "nt" else "toolsdb")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("toolsdb")
    if found:
        return os.path.abspath(found)
    raise ToolsdbError("cannot find the toolsdb console script (not beside this Python, not on PATH): install toolsdb")


def database_env(database: str | None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """How the hook and the MCP server find the database this command uses:
    ``DATABASE_URL`` (from --database, DATABASE_URL or TOOLS_DB_URL), else
    ``TOOLSDB_HOME`` (the embedded server found as every command finds it)."""
    from .serverinfo import HOME_ENV, locate_root, no_server_message
    from .target import database_url, validate

    env = os.environ if env is None else env
    if database is not None:
        return {"DATABASE_URL": validate(database, "--database")}
    from_env = database_url(env)
    if from_env is not None:
        return {"DATABASE_URL": from_env[0]}
    found = locate_root()
    if found is None:
        raise ToolsdbError(no_server_message(Path.cwd() / ".toolsdb"))
    return {HOME_ENV: str(found[0])}


def hook_entry(options: Options, event: str = "") -> dict[str, Any]:
    """The hook ``event`` gets. With http hooks, SessionStart and Setup (which
    Claude Code sends to command hooks only: "HTTP hooks are not supported for
    SessionStart") get ``toolsdb hook --post URL``, which posts the same JSON
    with the same token; so do Stop, SubagentStop, PreCompact and SessionEnd,
    for which it also sends the transcript's new lines."""
    if options.hook_type == "http" and event in POST_EVENTS:
        command = (
            f"{shlex.quote(options.executable)} hook --post {shlex.quote(options.url)} --token-var {options.token_var}"
        )
        return {"type": "command", "command": command, "timeout": HOOK_TIMEOUT}
    if options.hook_type == "http":
        return {
            "type": "http",
            "url": options.url,
            "headers": {"Authorization": f"Bearer ${options.token_var}"},
            "allowedEnvVars": [options.token_var],
            "timeout": HOOK_TIMEOUT,
        }
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in options.env.items())
    command = f"{shlex.quote(options.executable)} hook"
    return {"type": "command", "command": f"{prefix} {command}" if prefix else command, "timeout": HOOK_TIMEOUT}


def hooks_block(options: Options) -> dict[str, list[dict[str, Any]]]:
    """``hooks`` of settings.json: one matcher group per event, no matcher (every
    tool, source or notification type; FileChanged then watches no file)."""
    return {event: [{"hooks": [hook_entry(options, event)]}] for event in options.events()}


def settings_json(options: Options) -> dict[str, Any]:
    """What ``toolsdb claude-settings`` prints: a settings.json of toolsdb's hooks."""
    return {"hooks": hooks_block(options)}


def mcp_server(options: Options) -> dict[str, Any]:
    """The ``toolsdb mcp`` server as .mcp.json (and ~/.claude.json) spell it."""
    server: dict[str, Any] = {"type": "stdio", "command": options.executable, "args": ["mcp"]}
    if options.env:
        server["env"] = dict(options.env)
    return server


def mcp_add_line(options: Options) -> str:
    """The ``claude mcp add`` line that registers ``toolsdb mcp`` for the user."""
    parts = ["claude", "mcp", "add", "--scope", "user", MCP_NAME]
    for key, value in options.env.items():
        parts += ["-e", f"{key}={value}"]
    parts += ["--", options.executable, "mcp"]
    return " ".join(shlex.quote(p) for p in parts)


def is_ours(hook: object, options: Options) -> bool:
    """Whether a hook of a settings file is toolsdb's: a command running
    ``toolsdb hook``, or an http hook posting to --url (or to another
    ``/hooks`` URL with the token variable in allowedEnvVars)."""
    if not isinstance(hook, dict):
        return False
    if hook.get("type") == "command" and isinstance(hook.get("command"), str):
        return bool(_OUR_COMMAND.search(hook["command"]))
    if hook.get("type") == "http" and isinstance(hook.get("url"), str):
        if hook["url"] == options.url:
            return True
        allowed = hook.get("allowedEnvVars")
        return hook["url"].rstrip("/").endswith("/hooks") and isinstance(allowed, list) and options.token_var in allowed
    return False


def merge_hooks(current: dict[str, Any], options: Options, where: str) -> dict[str, Any]:
    """``current`` (a parsed settings.json) with toolsdb's hooks replaced by
    ``options``' and everything else kept, in its order."""
    merged = dict(current)
    hooks = current.get("hooks", {})
    if not isinstance(hooks, dict):
        raise ToolsdbError(f'{where}: "hooks" is not a JSON object; left as it is')
    out: dict[str, Any] = {}
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            out[event] = groups  # not ours to judge: Claude Code will say
            continue
        kept = []
        for group in groups:
            if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
                kept.append(group)
                continue
            others = [h for h in group["hooks"] if not is_ours(h, options)]
            if len(others) == len(group["hooks"]):
                kept.append(group)
            elif others:
                kept.append({**group, "hooks": others})
        if kept:
            out[event] = kept
    for event, groups in hooks_block(options).items():
        out[event] = [*out.get(event, []), *groups]
    merged["hooks"] = out
    return merged


def merge_mcp(current: dict[str, Any], options: Options, where: str) -> dict[str, Any]:
    """``current`` (a parsed .mcp.json) with the ``toolsdb`` server set, the others kept."""
    merged = dict(current)
    servers = current.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise ToolsdbError(f'{where}: "mcpServers" is not a JSON object; left as it is')
    merged["mcpServers"] = {**servers, MCP_NAME: mcp_server(options)}
    return merged


def dumps(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def read_json_object(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(parsed object, its text) of ``path``, or (None, None) when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        raise ToolsdbError(f"{path} is a folder, not a settings file") from None
    except UnicodeDecodeError:
        raise ToolsdbError(f"{path} is not valid JSON (not UTF-8 text); left as it is") from None
    except OSError as exc:
        raise ToolsdbError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.strip():
        return {}, text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolsdbError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); left as it is"
        ) from None
    if not isinstance(data, dict):
        raise ToolsdbError(f"{path} is not a JSON object; left as it is")
    return data, text


def backup_path(path: Path, now: datetime | None = None) -> Path:
    """``PATH.bak-<UTC time>``, numbered when taken."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    number = 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{number}")
    return candidate


def write_atomically(path: Path, text: str, mode: int | None) -> None:
    """``text`` to ``path``: a temporary file beside it, fsynced, renamed over it;
    the folder fsynced too. ``mode``: the replaced file's permission bits."""
    folder = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode if mode is not None else 0o600)
        os.replace(temporary, path)
    except BaseException:
        with _quietly():
            os.unlink(temporary)
        raise
    with _quietly():
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class _quietly:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, tb) -> bool:
        return kind is not None and issubclass(kind, OSError)


@dataclass
class Written:
    path: Path
    backup: Path | None
    changed: bool


def merge_file(path: Path, merge, options: Options) -> Written:
    """Merge into the JSON file at ``path`` (``merge(current, options, where)``):
    refused, file untouched, when it is not a JSON object; a backup first;
    nothing written when nothing changes. A symbolic link (a dotfiles
    checkout's settings.json) stays one: its target is written."""
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    current, old_text = read_json_object(path)
    new_text = dumps(merge(current or {}, options, str(path)))
    if old_text is not None and new_text == old_text:
        return Written(path, None, False)
    try:
        if not path.parent.is_dir():
            raise ToolsdbError(f"cannot write {path}: no folder {path.parent}")
        backup = None
        mode = None
        if old_text is not None:
            mode = path.stat().st_mode & 0o7777
            backup = backup_path(path)
            shutil.copy2(path, backup)
        write_atomically(path, new_text, mode)
    except OSError as exc:
        raise ToolsdbError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Written(path, backup, True)


# ---------------------------------------------------------------------------
# The command (registered in cli.py)
# ---------------------------------------------------------------------------

import click  # noqa: E402  (the logic above runs without click)

from .clicommon import Settings, common_options  # noqa: E402


@click.command("claude-settings")
@click.option(
    "--type",
    "hook_type",
    type=click.Choice(["command", "http"]),
    default="command",
    show_default=True,
    help="command: Claude Code runs `toolsdb hook`; http: it POSTs to `toolsdb serve`.",
)
@click.option("--url", default=DEFAULT_URL, show_default=True, help="http: the toolsdb serve hook URL.")
@click.option(
    "--token-var",
    default=DEFAULT_TOKEN_VAR,
    show_default=True,
    metavar="NAME",
    help="http: the variable holding the token (Authorization: Bearer $NAME).",
)
@click.option(
    "--include",
    multiple=True,
    metavar="EVENT",
    help="Also hook EVENT (WorktreeCreate, MessageDisplay: left out by default). Repeatable.",
)
@click.option("--no-mcp", is_flag=True, help="Leave out the MCP server.")
@click.option(
    "--write",
    "write_path",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Merge into this settings.json (backup PATH.bak-<time> first) instead of printing.",
)
@click.option(
    "--mcp-json",
    "mcp_json",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Merge the MCP server into this .mcp.json (backup first) instead of printing its claude mcp add line.",
)
@common_options
def command(
    settings: Settings,
    hook_type: str,
    url: str,
    token_var: str,
    include: tuple[str, ...],
    no_mcp: bool,
    write_path: Path | None,
    mcp_json: Path | None,
) -> None:
    """Print Claude Code's hooks block for toolsdb, or merge it into a settings.json.

    Every hook event toolsdb records gets one hook (all 30 but WorktreeCreate
    and MessageDisplay unless --include names them): `toolsdb hook` by its
    absolute path, with DATABASE_URL or TOOLSDB_HOME as this command finds
    the database (--type command), or a POST to `toolsdb serve` with the token
    from $TOOLSDB_TOKEN (--type http; SessionStart and Setup, which Claude
    Code sends to command hooks only, run `toolsdb hook --post URL`). The settings go to stdout, the MCP
    server's `claude mcp add` line to stderr (Claude Code reads MCP servers
    from ~/.claude.json and .mcp.json, not from settings.json).

    --write PATH keeps the file's other keys and hooks, replaces toolsdb's own,
    backs the file up first and writes it atomically; a second run changes
    nothing. A file that is not a JSON object is refused and left as it is.
    """
    options = Options(
        hook_type=hook_type,
        url=check_url(url) if hook_type == "http" else url,
        token_var=check_token_var(token_var),
        include=check_include(include),
        mcp=not no_mcp,
    )
    if no_mcp and mcp_json is not None:
        raise ToolsdbError("--no-mcp and --mcp-json contradict each other; pass one")
    # Every type runs toolsdb for something (http: SessionStart's --post).
    options.executable = toolsdb_executable()
    if hook_type == "command" or options.mcp:
        options.env = database_env(settings.database)
    if write_path is None:
        click.echo(dumps(settings_json(options)), nl=False)
    else:
        _report(merge_file(write_path, merge_hooks, options), "hooks")
    if mcp_json is not None:
        _report(merge_file(mcp_json, merge_mcp, options), "MCP server")
    elif options.mcp:
        click.echo(
            "MCP server (Claude Code reads it from ~/.claude.json or .mcp.json, not settings.json): "
            + mcp_add_line(options),
            err=True,
        )


def _report(written: Written, what: str) -> None:
    """One line on stderr (stdout carries only the printed settings)."""
    if not written.changed:
        click.echo(f"{written.path}: toolsdb's {what} already as asked; unchanged", err=True)
    elif written.backup is None:
        click.echo(f"wrote toolsdb's {what} to {written.path} (a new file)", err=True)
    else:
        click.echo(f"merged toolsdb's {what} into {written.path} (backup: {written.backup})", err=True)
