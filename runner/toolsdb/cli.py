"""The ``toolsdb`` command line (click). Thin: the rules live in SQL."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import sys
import tempfile
from datetime import timezone
from pathlib import Path
from typing import ClassVar

import click
import psycopg

from . import __version__, pooler
from . import migrate as engine
from .clicommon import DATABASE_HELP, Settings, common_options, needs_extra, print_table
from .errors import ToolsdbError
from .hook import DEFAULT_TOKEN_VAR
from .libpq import LIBPQ_ENV
from .server import EmbeddedServer
from .server import remember as remember_server
from .serverinfo import no_server_message, record_file
from .target import Target


class ToolsdbGroup(click.Group):
    """The root group: what a command raises for the user to act on (a
    ToolsdbError, a database error, a file it cannot read or write) becomes click's one ``Error: ...`` line on
    stderr and the error's exit code, never a traceback. Sub-groups and
    commands run inside this ``invoke``, so this is the one place it happens."""

    # Commands defined in their own modules (they share clicommon's options),
    # imported when named or listed: `toolsdb migrate` and `toolsdb hook` do not
    # pay for the backup, serve, worker and usage modules' imports.
    LAZY: ClassVar[dict[str, tuple[str, str]]] = {
        "health": ("operations", "health_command"),
        "stats": ("operations", "stats_command"),
        "monitor": ("operations", "monitor_command"),
        "maintain": ("operations", "maintain_command"),
        "backup": ("backup", "backup_command"),
        "restore": ("backup", "restore_command"),
        "replica": ("replica", "replica_group"),
        "cluster": ("cluster", "cluster_group"),
        "claude-settings": ("claude_settings", "command"),
        "worker": ("worker_cli", "worker_command"),
        "notify": ("worker_cli", "notify_group"),
        "serve": ("serve_cli", "serve_command"),
        "token": ("serve_cli", "token_group"),
        "import-transcripts": ("usage_cli", "import_transcripts_command"),
        "usage": ("usage_cli", "usage_group"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            module, attr = self.LAZY[cmd_name]
            command = getattr(importlib.import_module(f".{module}", __package__), attr)
            assert command.name == cmd_name, f"{module}.{attr} is named {command.name}"
            self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ToolsdbError as exc:
            raise CommandError(exc.message, exc.exit_code) from None
        except psycopg.Error as exc:
            line = (exc.diag.message_primary if exc.diag else None) or str(exc).splitlines()[0]
            sqlstate = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
            raise CommandError(f"database error{sqlstate}: {line}") from None
        except OSError as exc:  # a file or folder the user named cannot be read or written
            where = f"{exc.filename}: " if exc.filename else ""
            raise CommandError(f"{where}{exc.strerror or exc}") from None


class CommandError(click.ClickException):
    """A ToolsdbError or database error as click shows it."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code


@click.group(cls=ToolsdbGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database", "-d", metavar="URL", help=DATABASE_HELP)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Echo the statements of the SQL files that migrate, rollback and seed run (to stderr).",
)
@click.version_option(__version__, prog_name="toolsdb")
@click.pass_context
def cli(ctx: click.Context, database: str | None, verbose: bool) -> None:
    """toolsdb: the PostgreSQL schema for teams running AI coding agents.

    Applies toolsdb's SQL (schema/, migrations/, repeatable/, seeds/) to a database
    and manages an embedded PostgreSQL server for local use. Which database:
    --database, else $DATABASE_URL, else libpq's PG* variables, else the
    embedded server under ./.toolsdb (started on demand).
    """
    settings = ctx.ensure_object(Settings)
    settings.database = database
    settings.verbose = verbose


@cli.command()
@click.option(
    "--remember",
    is_flag=True,
    help="Record the embedded server migrated as the per-user default every toolsdb command finds "
    "from any folder (make migrate passes it).",
)
@common_options
def migrate(settings: Settings, remember: bool) -> None:
    """Apply pending migrations, then the definitions of repeatable/.

    All-or-nothing: one transaction, under a lock that makes concurrent runs
    wait their turn. Functions, views and triggers are replaced only where
    they differ from repeatable/, so running it again when nothing changed
    writes nothing. With no database configured and no embedded server
    found, it creates one in .toolsdb/ of the working directory.
    """
    # DATABASE_DIRECT_URL when DATABASE_URL is a transaction pooler (pooler.py): named in what is printed.
    target = pooler.session_target(settings.target(create=True), "toolsdb migrate")
    replaced: list[str] = []
    applied = engine.migrate(target, settings.echo(), replaced=replaced)
    shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
    if applied:
        click.echo(f"applied {len(applied)} migration(s) to {target.describe()}: {', '.join(applied)}")
        if replaced:
            click.echo(f"created or replaced {len(replaced)} definition(s) of repeatable/")
    elif replaced:
        click.echo(f"no migration pending; replaced {len(replaced)} definition(s) on {target.describe()}: {shown}")
    else:
        click.echo(f"nothing to migrate: {target.describe()} is up to date")
    if remember and target.server is not None and remember_server(target.server.root):
        click.echo(f"recorded {target.server.root} as the default server in {record_file()}")


@cli.command()
@click.option(
    "--id",
    "migration_id",
    metavar="ID",
    help="Roll back every applied migration down to and including ID (default: only the newest).",
)
@click.option("--force", is_flag=True, help="Drop tables that hold rows too (refused without it).")
@common_options
def rollback(settings: Settings, migration_id: str | None, force: bool) -> None:
    """Roll back the newest migration (or down to --id), in one transaction.

    A rollback that would drop tables holding rows is refused, and nothing
    is done, unless --force.
    """
    target = pooler.session_target(settings.target(), "toolsdb rollback")
    undone = engine.rollback(target, migration_id, settings.echo(), force=force)
    click.echo(f"rolled back {', '.join(undone)} on {target.describe()}")


@cli.command()
@common_options
def status(settings: Settings) -> None:
    """Show the database in use and every migration, applied or pending."""
    target = settings.target()
    click.echo(f"database: {target.describe()}")
    if target.server is not None:
        info = target.server.info()
        found = f" (found by {target.found})" if target.found else ""
        click.echo(f"server:   embedded, data {target.server.data}" + (f", pid {info.pid}" if info else "") + found)
    rows = engine.status(target)
    print_table(
        ["migration", "state", "applied at (UTC)"],
        [(r.id, r.state, r.applied_at and r.applied_at.strftime("%Y-%m-%d %H:%M:%S")) for r in rows],
    )
    pending = sum(1 for r in rows if r.applied_at is None)
    click.echo(f"{len(rows) - pending} applied, {pending} pending")


@cli.command()
@common_options
def verify(settings: Settings) -> None:
    """Compare the database with what this code expects; exit 1 on drift.

    Lists, one line each, migrations applied that migrations/ does not know
    or not applied, tables of schema/ missing, and functions, views and
    triggers of repeatable/ missing, changed behind toolsdb's back or not
    applied yet. Reads only (a read-only transaction); `toolsdb migrate`
    repairs what it lists, but for unknown migrations.
    """
    target = settings.target()
    lines = engine.verify(target)
    for line in lines:
        click.echo(line)
    if lines:
        raise CommandError(f"{target.describe()} differs from this code in {len(lines)} place(s)")
    click.echo(f"{target.describe()} matches this code: every migration applied, every definition as written")


@cli.command()
@common_options
def seed(settings: Settings) -> None:
    """Load the demo data in seeds/ (idempotent: upserts on natural keys)."""
    target = settings.target()
    files = engine.seed(target, settings.echo())
    click.echo(f"seeded {target.describe()} from {len(files)} file(s)")


@cli.command("new-migration")
@click.argument("name")
def new_migration(name: str) -> None:
    """Create migrations/NNNN.NAME.sql and its .rollback.sql (source checkout only)."""
    forward, backward = engine.new_migration(name)
    click.echo(f"created {forward}\ncreated {backward}")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
# Long options only: -d, -v and every other short option belong to psql.
@click.option("--database", metavar="URL", help=DATABASE_HELP)
@click.option("--verbose", is_flag=True, help="Print the psql command line (to stderr).")
@click.pass_context
def psql(ctx: click.Context, database: str | None, verbose: bool, psql_args: tuple[str, ...]) -> None:
    """Open psql on the database; every other argument goes to psql as it is
    (`toolsdb psql -v ON_ERROR_STOP=1 -f file.sql`, `toolsdb psql -d otherdb`)."""
    from psycopg.conninfo import conninfo_to_dict

    settings = ctx.ensure_object(Settings)
    if database is not None:
        settings.database = database
    target = settings.target()
    if target.server is not None:
        exe = str(target.server.binary("psql"))
        conninfo = target.server.url()
    else:
        exe = shutil.which("psql") or str(EmbeddedServer().binary("psql"))
        conninfo = target.conninfo
    # The connection goes through libpq's environment, so psql's own -d, -h,
    # -p or -U, when given, override it as they override PG* variables.
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo or "").items()}
    env = dict(os.environ)
    argv = [exe, *psql_args]
    if all(key in LIBPQ_ENV for key in params):
        env.update({LIBPQ_ENV[key]: value for key, value in params.items()})
    else:  # a parameter libpq reads from no variable: pass the whole conninfo
        argv = [exe, conninfo or "", *psql_args]
    if settings.verbose or verbose:
        click.echo(" ".join(argv), err=True)
    try:
        os.execve(exe, argv, env)
    except OSError as exc:
        raise ToolsdbError(f"cannot run psql ({exc.strerror}: {exe})") from None


@cli.command()
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@common_options
def reset(settings: Settings, force: bool) -> None:
    """Drop the embedded database, re-create it and migrate it."""
    if settings.database or os.environ.get("DATABASE_URL"):
        raise ToolsdbError("reset only drops the embedded database; drop other databases yourself")
    server = EmbeddedServer()
    if not force:
        if not sys.stdin.isatty():
            raise ToolsdbError("reset needs confirmation: run it in a terminal or pass --force")
        click.confirm(f"Drop every table and row of the embedded database in {server.data}?", abort=True)
    server.drop_database()
    target = Target(server.conninfo(), "embedded", server)
    applied = engine.migrate(target, settings.echo())
    click.echo(f"reset the embedded database and applied {len(applied)} migration(s)")


@cli.command()
@click.option("--strict", is_flag=True, help="Exit 1 (with the error on stderr) when the payload cannot be stored.")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    help="Where failures are logged (default $TOOLSDB_HOOK_LOG, else ~/.local/state/toolsdb/hook.log).",
)
@click.option(
    "--post",
    "post_url",
    metavar="URL",
    help="Send the payload to toolsdb serve at URL (its /hooks) instead of the database.",
)
@click.option(
    "--token-var",
    default=DEFAULT_TOKEN_VAR,
    show_default=True,
    metavar="NAME",
    help="With --post: the variable holding the bearer token.",
)
@common_options
def hook(settings: Settings, strict: bool, log_file: str | None, post_url: str | None, token_var: str) -> None:
    """Store one agent hook payload (JSON on stdin) as an event; update its session.

    Wire it into Claude Code's settings.json for every hook event (README). It
    prints nothing and never blocks the agent: it takes at most
    TOOLSDB_HOOK_TIMEOUT seconds (default 2) in all, and any failure, running
    out of time included, is logged with the payload; the exit status is 0
    unless --strict. Git branch and terminal
    come from this process; TOOLSDB_USER_ID, TOOLSDB_AGENT_ID and
    TOOLSDB_PROJECT_ID link the session. The embedded server is found through
    TOOLSDB_HOME (its .toolsdb folder) and is never started by this command.
    With --post it sends the payload to toolsdb serve instead, as an http
    hook would (for SessionStart, which Claude Code sends to command hooks only).
    """
    from .hook import run

    sys.exit(run(settings.database, strict, Path(log_file) if log_file else None, post_url, token_var))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--refresh", is_flag=True, help="Run the script again even when its report is stored.")
@click.option("--strict", is_flag=True, help="The house conventions at their rules' own severity (some are errors).")
@common_options
def validate(settings: Settings, file: Path, as_json: bool, refresh: bool, strict: bool) -> None:
    """Validate the CREATE, ALTER and COMMENT statements of FILE (- for stdin).

    Three checks: it parses as PostgreSQL (pglast); it runs, in a scratch
    schema inside a transaction that is always rolled back; what it makes
    meets toolsdb's conventions (primary key, timestamptz, text with CHECKs,
    indexed foreign keys, comments, names). Prints FILE:LINE: severity [rule]
    message per finding; exit 1 on any error (warnings pass). Syntax and
    execution errors are errors; the conventions are warnings unless --strict,
    which keeps each rule's own severity (a missing primary key, varchar,
    timestamp without time zone, an unindexed foreign key are errors). Anything but a
    definition is refused. Reports are stored by script hash, so validating
    the same script again is a lookup (--refresh runs it again).
    """
    import json

    with needs_extra():
        from . import validator

    name = "<stdin>" if str(file) == "-" else str(file)
    try:
        sql = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToolsdbError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolsdbError(f"{name}: cannot read it: {exc}") from None
    with settings.target().connect() as conn:
        try:
            report = validator.validate(conn, sql, refresh=refresh, strict=strict)
        except ToolsdbError as exc:
            raise ToolsdbError(f"{name}: {exc.message}") from None
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        for line in validator.format_findings(report, name):
            click.echo(line)
        verdict = "valid" if report["valid"] else "invalid"
        source = "stored report" if report["cached"] else "validated"
        click.echo(f"{name}: {verdict}, {report['errors']} error(s), {report['warnings']} warning(s) ({source})")
    if not report["valid"]:
        sys.exit(1)


@cli.command("import-v1")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@common_options
def import_v1(settings: Settings, directory: Path) -> None:
    """Import the V1 JSON files of DIRECTORY (e.g. ~/.claude), once.

    Reads config/slack-config.json (into config as slack.*, the webhook URL
    encrypted with the key of `toolsdb config`), state/tool_requests/
    {session_id}_{timestamp}.json (as processed events) and
    state/notification_states.json (sent ones as sent, others as dead letters
    to redrive); the same names directly in DIRECTORY work too. Running it
    again imports nothing twice. A bad file is reported by name and the rest
    go on; the exit status is 1 when any was bad.
    """
    from . import config as config_module
    from . import importv1

    problems: list[str] = []
    keys = config_module.KeyRing.load()
    items = importv1.plan(directory, keys, problems)
    summary = importv1.Summary(problems=problems)
    if not items and not problems:
        raise ToolsdbError(
            f"no V1 files in {directory}: expected config/slack-config.json, "
            "state/tool_requests/*.json or state/notification_states.json"
        )
    with (
        settings.target().connect() as conn,
        click.progressbar(
            length=len(items), label="importing", file=sys.stderr, show_pos=True, show_eta=len(items) > 100
        ) as bar,
    ):
        importv1.run_items(conn, items, summary, lambda _item: bar.update(1))
    for problem in summary.problems:
        click.echo(f"bad: {problem}", err=True)
    for line in summary.lines():
        click.echo(line)
    if summary.problems:
        sys.exit(1)


@cli.command("mcp")
@common_options
def mcp_command(settings: Settings) -> None:
    """Serve the agent tools to an MCP client (e.g. Claude Code) over stdio.

    Tools: validate_schema, vision_cache_lookup, vision_cache_store,
    audit_query, audit_record, bug_report, bug_list. Runs until the client
    closes stdin; stdout carries only the protocol, logs go to stderr
    (--verbose: more of them). Register it with
    `claude mcp add toolsdb -- toolsdb mcp` (README).
    """
    with needs_extra():
        from .mcp_server import serve

    serve(settings.target(), verbose=settings.verbose)


@cli.group()
def server() -> None:
    """Manage the embedded PostgreSQL server (data in ./.toolsdb)."""


@server.command("start")
@click.option("--tcp", is_flag=True, help="Also listen on 127.0.0.1 (password in .toolsdb/password).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Port to use (default: 5432 on the socket, any free port with --tcp).",
)
def server_start(tcp: bool, port: int | None) -> None:
    """Start the embedded server (initializing it on first use)."""
    srv = EmbeddedServer()
    running = srv.info()
    if running is not None:
        listens_tcp = bool(running.listen_addresses.strip())
        if (tcp and not listens_tcp) or (port is not None and port != running.port):
            how = f"port {running.port}" + (", on 127.0.0.1 too" if listens_tcp else ", on its socket only")
            raise ToolsdbError(
                f"the embedded server already runs (pid {running.pid}, {how}): "
                "`toolsdb server stop` first to start it with --tcp or another --port"
            )
        click.echo(f"already running (pid {running.pid}): {srv.url(running)}")
        return
    info = srv.start(tcp=tcp, port=port)
    click.echo(f"started (pid {info.pid}): {srv.url(info)}")


@server.command("stop")
def server_stop() -> None:
    """Stop the embedded server."""
    srv = EmbeddedServer()
    click.echo("stopped" if srv.stop() else "not running")


@server.command("status")
def server_status() -> None:
    """Say whether the embedded server runs, where, and which version."""
    srv = EmbeddedServer()
    info = srv.info()
    rows = [
        ("data", srv.data),
        ("initialized", "yes" if srv.initialized else "no"),
        ("running", f"yes, pid {info.pid}" if info else "no"),
    ]
    if info:
        rows += [
            ("socket", info.socket_dir),
            ("port", info.port),
            ("tcp", info.listen_addresses or "off"),
            ("url", srv.url(info)),
        ]
    rows.append(("version", srv.check_binaries()))
    print_table(["property", "value"], rows)
    if info is None:
        sys.exit(3)  # as pg_ctl status: not running


@server.command("url")
@click.option("--tcp", is_flag=True, help="Print the TCP URL (with password) instead of the socket one.")
def server_url(tcp: bool) -> None:
    """Print a URL for the embedded server that psql accepts (starts it if needed)."""
    srv = EmbeddedServer()
    if not srv.initialized:
        raise ToolsdbError(no_server_message(srv.root))
    info = srv.info() or srv.start()
    click.echo(srv.url(info, tcp=tcp))


@cli.group()
def audit() -> None:
    """The audit log: seal it, verify it, keep its partitions (docs/security.md)."""


@audit.command("seal")
@common_options
def audit_seal(settings: Settings) -> None:
    """Seal every audit entry of finished transactions (toolsdb.audit_seal()).

    Run it often (cron); print the newest seal hash to anchor it elsewhere.
    """
    with settings.target().connect() as conn:
        sealed = conn.execute("select toolsdb.audit_seal()").fetchone()[0]
        latest = conn.execute(
            "select seal_id, encode(seal_hash, 'hex') from toolsdb.audit_seals order by seal_id desc limit 1"
        ).fetchone()
    if latest is None:
        click.echo("nothing to seal: the audit log is empty")
        return
    click.echo(f"sealed {sealed} new range(s); newest seal {latest[0]}: {latest[1]}")


@audit.command("verify")
@common_options
def audit_verify(settings: Settings) -> None:
    """Check the sealed audit log; exit 1 and name the first bad range if it was tampered with."""
    with settings.target().connect() as conn:
        problems = conn.execute("select * from toolsdb.audit_verify()").fetchall()
        seals, sealed_rows = conn.execute(
            "select count(*), coalesce(sum(row_count), 0) from toolsdb.audit_seals s"
            " where not exists (select from toolsdb.audit_prunes p where p.period = s.period)"
        ).fetchone()
        total = conn.execute("select count(*) from toolsdb.audit_logs").fetchone()[0]
    if not problems:
        click.echo(
            f"audit log intact: {seals} seal(s) cover {sealed_rows} entries; {total - sealed_rows} not sealed yet"
        )
        return
    print_table(
        ["seal", "month", "transactions", "sealed", "found", "problem"],
        [(p[0], p[1], f"{p[2]}..{p[3]}", p[4], p[5], p[6]) for p in problems],
    )
    seal_id, period, low, high, _, _, problem = problems[0]
    raise ToolsdbError(
        f"audit log tampered: first bad range is seal {seal_id if seal_id is not None else '-'}, "
        f"month {period:%Y-%m}, transactions {low}..{high}: {problem}"
    )


@audit.command("maintain")
@click.option(
    "--months-ahead",
    default=3,
    show_default=True,
    type=click.IntRange(0, 120),
    help="Create monthly partitions this many months ahead.",
)
@click.option(
    "--retention",
    metavar="INTERVAL",
    help="Drop whole months older than this (default: config audit.retention, else 13 months).",
)
@common_options
def audit_maintain(settings: Settings, months_ahead: int, retention: str | None) -> None:
    """Create the coming monthly partitions and apply retention (schedule monthly)."""
    with settings.target().connect() as conn:
        created = conn.execute("select toolsdb.audit_create_partitions(%s)", (months_ahead,)).fetchone()[0]
        try:
            dropped = conn.execute("select toolsdb.audit_apply_retention(%s::interval)", (retention,)).fetchone()[0]
        except (psycopg.errors.InvalidDatetimeFormat, psycopg.errors.InvalidParameterValue) as exc:
            raise ToolsdbError(f"--retention {retention!r}: {exc.diag.message_primary}") from None
    click.echo(f"created {created} partition(s), dropped {dropped} partition(s) past retention")


@cli.group("config")
def config_group() -> None:
    """Configuration in toolsdb.config; secrets encrypted with Fernet on this side.

    The keys come from TOOLSDB_KEY or the key file (TOOLSDB_KEY_FILE, default
    ~/.config/toolsdb/key, created with mode 0600 on first use): a ring, the
    primary first. Each secret records its key's id; rotate-key adds a key,
    only retire-key removes one (keys lists them).
    """


@config_group.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option(
    "--secret",
    is_flag=True,
    help="Encrypt the value (the database stores only the token); it is read from standard input or asked "
    "for without echo, never taken from the command line.",
)
@click.option("--string", "as_string", is_flag=True, help="Store VALUE as a JSON string even if it parses as JSON.")
@click.option("--description", help="What the setting is for (kept when omitted).")
@common_options
def config_set(
    settings: Settings, key: str, value: str | None, secret: bool, as_string: bool, description: str | None
) -> None:
    """Set KEY to VALUE (JSON when it parses as JSON, else a string).

    Without VALUE the value is read from standard input (one trailing newline
    dropped), or asked for at a terminal. A --secret value must come that way:
    on the command line every local user could read it (ps, /proc).
    """
    from . import config as cfg

    if value is not None and secret:
        raise ToolsdbError(
            "a secret on the command line is visible to every local user (ps, /proc) and kept in shell history: "
            f"leave VALUE out, then pipe it in (toolsdb config set {key} --secret < file) or type it at the prompt"
        )
    if value is None:
        if sys.stdin is not None and sys.stdin.isatty():
            value = click.prompt("Value", hide_input=secret, confirmation_prompt=secret)
        else:
            value = sys.stdin.read() if sys.stdin is not None else ""
            value = value[:-1] if value.endswith("\n") else value
            value = value[:-1] if value.endswith("\r") else value
        if value == "":
            raise ToolsdbError(f"no value for {key}: give VALUE, pipe it in, or type it at the prompt")
    keys = cfg.KeyRing.load() if secret else None
    with settings.target().connect() as conn:
        if secret:
            cfg.set_secret(conn, key, value, description, keys)
        else:
            cfg.set_value(conn, key, cfg.parse_cli_value(value, as_string), description)
    click.echo(f"set {key}{' (secret)' if secret else ''}")


@config_group.command("get")
@click.argument("key")
@common_options
def config_get(settings: Settings, key: str) -> None:
    """Print the value of KEY (secrets decrypted); exit 1 when unset."""
    import json

    from . import config as cfg

    with settings.target().connect() as conn:
        missing = object()
        value = cfg.get(conn, key, missing)
    if value is missing:
        raise ToolsdbError(f"config key {key!r} is not set")
    click.echo(value if isinstance(value, str) else json.dumps(value))


@config_group.command("list")
@click.option("--reveal", is_flag=True, help="Decrypt and show secret values.")
@common_options
def config_list(settings: Settings, reveal: bool) -> None:
    """List every key; secrets are masked unless --reveal."""
    import json

    from . import config as cfg

    with settings.target().connect() as conn:
        found = cfg.items(conn, reveal=reveal)
    print_table(
        ["key", "value", "secret", "updated at (UTC)", "by", "description"],
        [
            (
                i.key,
                i.value if isinstance(i.value, str) else json.dumps(i.value),
                "yes" if i.is_secret else "",
                i.updated_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                i.updated_by,
                i.description,
            )
            for i in found
        ],
    )


@config_group.command("unset")
@click.argument("key")
@common_options
def config_unset(settings: Settings, key: str) -> None:
    """Remove KEY; exit 1 when it was not set."""
    from . import config as cfg

    with settings.target().connect() as conn:
        removed = cfg.unset(conn, key)
    if not removed:
        raise ToolsdbError(f"config key {key!r} is not set")
    click.echo(f"unset {key}")


@config_group.command("rotate-key")
@common_options
def config_rotate_key(settings: Settings) -> None:
    """Re-encrypt every secret of this database under a new key.

    With a key file, the new key is added to it as the primary and every
    older key stays (other databases sharing the file may still use them;
    retire one with `toolsdb config retire-key`). With TOOLSDB_KEY, the new
    value of TOOLSDB_KEY is printed: the new key first, the old ones after.
    Rotations of one database run one at a time; a failed one changes no
    secret.
    """
    from . import config as cfg

    keys = cfg.KeyRing.load(create=False)
    with settings.target().connect() as conn:
        count, new_key = cfg.rotate_key(conn, keys)
    new_id = cfg.key_id(new_key)
    if keys.path is None:
        click.echo(
            f"re-encrypted {count} secret(s) under key {new_id}; set {cfg.KEY_ENV} to this "
            "(the new key first; drop an old one once toolsdb config keys shows it unused in every database):"
        )
        click.echo(",".join(k.decode() for k in [new_key, *keys.keys]))
    else:
        click.echo(
            f"re-encrypted {count} secret(s) under key {new_id}, now the primary key of {keys.path}; "
            "older keys stay until retired (toolsdb config keys, toolsdb config retire-key)"
        )


@config_group.command("keys")
@common_options
def config_keys(settings: Settings) -> None:
    """List the keys of the ring (primary first) and how many secrets of this
    database each encrypts; a key id that secrets use and the ring lacks is
    listed as missing."""
    from . import config as cfg

    keys = cfg.KeyRing.load(create=False)
    with settings.target().connect() as conn:
        uses = cfg.key_uses(conn, keys)
    click.echo(f"keys from {keys.source}:")
    print_table(["key id", "state", "secrets here"], [(u.key_id, u.state, u.secrets) for u in uses])


@config_group.command("retire-key")
@click.argument("key_id")
@click.option(
    "--also-database",
    "also",
    multiple=True,
    metavar="URL",
    help="Another database sharing the key file: the key must be unused there too (repeat for each).",
)
@common_options
def config_retire_key(settings: Settings, key_id: str, also: tuple[str, ...]) -> None:
    """Remove the key KEY_ID from the key file.

    Refused while it is the primary key, or while a secret of this database
    or of any --also-database uses it. Every database sharing the key file
    must have rotated away from it first, and should be named, since a
    database that is not named is not checked (docs/security.md). Not
    possible with TOOLSDB_KEY: leave the key out of it yourself.
    """
    import contextlib

    from . import config as cfg
    from .target import redact, validate

    keys = cfg.KeyRing.load(create=False)
    targets = [settings.target()] + [Target(validate(url, "--also-database"), "--also-database") for url in also]
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(t.connect()) for t in targets]
        names = [targets[0].describe()] + [redact(t.conninfo) for t in targets[1:]]
        left = cfg.retire_key(conns, key_id, keys, names)
    click.echo(f"retired key {key_id}; {keys.path} holds {len(left)} key(s)")


@cli.command("docs")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/schema.md"),
    show_default=True,
    help="The file to write ('-': standard output).",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when the file differs from the database.")
@common_options
def docs(settings: Settings, output: Path, check: bool) -> None:
    """Generate docs/schema.md (Mermaid diagrams, every table and column with its COMMENT) from the database."""
    from .schemadoc import generate

    target = settings.target()
    pending = [s.id for s in engine.status(target) if s.applied_at is None]
    if pending:
        raise ToolsdbError(
            f"the database is not migrated ({len(pending)} pending, first {pending[0]}): "
            "run `toolsdb migrate` first; nothing was written"
        )
    with target.connect() as conn:
        text = generate(conn)
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    current = output.read_text(encoding="utf-8") if output.exists() else None
    if check:
        if current is None:
            raise ToolsdbError(f"{output} is missing; run `toolsdb docs` to write it")
        if current != text:
            raise ToolsdbError(f"{output} is out of date with the database; run `toolsdb docs` to regenerate it")
        click.echo(f"{output} is up to date")
        return
    if current == text:
        click.echo(f"{output} is up to date")
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        # Written beside it and renamed: the file is the old one or the new one, never half.
        handle, temp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temp, 0o644)
            os.replace(temp, output)
        finally:
            Path(temp).unlink(missing_ok=True)
    except OSError as exc:
        raise ToolsdbError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output}")


@cli.group("redis")
def redis_group() -> None:
    """The Redis toolkit's server (REDIS_URL or REDIS_HOST/PORT/PASSWORD/DB/SSL)."""


@redis_group.command("ping")
@click.option("--url", metavar="URL", help="Redis URL (default: $REDIS_URL, else the REDIS_* variables).")
def redis_ping(url: str | None) -> None:
    """Check that Redis answers; print its version and mode."""
    with needs_extra():
        from redis.cluster import RedisCluster

        from .redis.connection import RedisSettings, client_where, translate_errors

    settings = RedisSettings.from_env(url=url)
    client = settings.connect()
    try:
        with translate_errors(client):
            if isinstance(client, RedisCluster):  # ask one node, not each
                version = client.info("server", target_nodes=RedisCluster.RANDOM).get("redis_version", "?")
                mode = f"cluster of {len(client.get_primaries())} primaries"
            else:
                version, mode = client.info("server").get("redis_version", "?"), "standalone"
        click.echo(f"PONG: Redis {version} ({mode}) at {client_where(client)}")
    finally:
        client.close()


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised like KeyboardInterrupt is for SIGINT, so that
    every ``finally`` and ``with`` of the command runs: a transaction rolls
    back, a child process is stopped, a half-written file is removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def main() -> None:
    """Entry point: user mistakes become one line and a non-zero exit."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    try:
        code = cli.main(prog_name="toolsdb", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:  # usage mistakes, and what ToolsdbGroup turned into one line
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Terminated as exc:
        click.echo("Terminated.", err=True)
        sys.exit(128 + exc.signum)


if __name__ == "__main__":
    main()
