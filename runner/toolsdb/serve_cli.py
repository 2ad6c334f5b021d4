"""``toolsdb serve`` (the HTTP hook endpoint) and ``toolsdb token`` (its bearer tokens).

Registered on the group in cli.py with ``cli.add_command``.
"""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import click
import psycopg

from .clicommon import Settings, common_options, lookup_id, one_id, print_table
from .errors import MissingExtra, ToolsdbError
from .target import first_line

UUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def _serve_modules():
    """The serve extra's modules, or one line naming the extra."""
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ModuleNotFoundError:
        raise MissingExtra(
            "toolsdb serve needs uvicorn, Starlette and prometheus_client: pip install 'toolsdb[serve]'"
        ) from None
    from . import serve_app

    return uvicorn, serve_app


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8787, show_default=True, help="Port; 0 picks a free one."
)
@click.option(
    "--spool",
    "spool_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the spool used while PostgreSQL is unreachable (default: $XDG_STATE_HOME/toolsdb/spool).",
)
@click.option(
    "--writers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Database connections storing events side by side, each batching what is waiting "
    "(more than 1: events received at the same moment may be stored in either order).",
)
@click.option(
    "--prepared/--no-prepared",
    default=None,
    help="Server-side prepared statements (faster). Default: on, off behind a transaction pooler "
    "(TOOLSDB_POOLER=transaction, or detected); --prepared behind one that carries them "
    "(PgBouncer 1.21+ with max_prepared_statements).",
)
@click.option(
    "--read-transcripts",
    is_flag=True,
    help="After a Stop, SubagentStop, PreCompact or SessionEnd event, import the new part of its "
    "transcript_path (and agent_transcript_path) from this machine's disk, in the background "
    "(for http hooks of Claude Code running here; remote machines send theirs with toolsdb hook --post).",
)
@common_options
def serve_command(
    settings: Settings,
    host: str,
    port: int,
    spool_dir: Path | None,
    writers: int,
    prepared: bool | None,
    read_transcripts: bool,
) -> None:
    """Run the HTTP endpoint of Claude Code's http hooks: POST /hooks (bearer
    token), POST /transcripts (transcript bytes from `toolsdb hook --post`),
    GET /healthz, GET /metrics. Prints `toolsdb serve: listening on
    http://HOST:PORT` on stderr once ready; stops on SIGINT or SIGTERM."""
    uvicorn, serve_app = _serve_modules()
    from .serve import Ingestor, default_spool_dir
    from .serve_transcripts import LocalReader, TranscriptReceiver

    target = settings.target()
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise ToolsdbError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    metrics = serve_app.Metrics()
    ingestor = Ingestor(
        target.conninfo,
        spool_dir or default_spool_dir(),
        on_ingested=metrics.count_ingested,
        writers=writers,
        prepare=prepared,
    )
    receiver = TranscriptReceiver(target.conninfo)
    reader = LocalReader(target.conninfo) if read_transcripts else None
    app = serve_app.create_app(ingestor, metrics, target.conninfo, receiver, reader)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(f"toolsdb serve: listening on http://{shown}:{bound}", file=sys.stderr, flush=True)

        def handle_exit(self, sig: int, frame: object) -> None:
            # SIGINT or SIGTERM: a graceful stop, then exit 0 (uvicorn would
            # raise the signal again once stopped); a second one: at once.
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=10,
    )
    ingestor.start()
    if reader is not None:
        reader.start()
    try:
        Server(config).run(sockets=[sock])
    finally:
        ingestor.stop()
        if reader is not None:
            reader.stop()
        receiver.close()
        sock.close()
    print("toolsdb serve: stopped", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# toolsdb token
# ---------------------------------------------------------------------------


@click.group("token")
def token_group() -> None:
    """Bearer tokens of `toolsdb serve` (table toolsdb.api_tokens; only hashes are stored)."""


@token_group.command("create")
@click.option("--user", "user", required=True, metavar="NAME", help="User: username, email or id.")
@click.option("--agent", metavar="NAME", help="Agent: name or id (optional).")
@click.option("--project", metavar="NAME", help="Project: slug, name or id (optional).")
@click.option("--name", "label", metavar="LABEL", help="A label for the token (laptop, ci, ...).")
@click.option("--expires-in-days", type=click.IntRange(1, 36500), help="End the token after this many days.")
@common_options
def token_create(
    settings: Settings,
    user: str,
    agent: str | None,
    project: str | None,
    label: str | None,
    expires_in_days: int | None,
) -> None:
    """Make a token and print it (only it, on stdout): it is shown this once."""
    with settings.target().connect(autocommit=True) as conn:
        try:
            user_id = lookup_id(conn, "user", user)
            agent_id = lookup_id(conn, "agent", agent) if agent else None
            project_id = lookup_id(conn, "project", project) if project else None
            row = conn.execute(
                "select toolsdb.create_api_token(%s, %s, %s, %s, now() + make_interval(days => %s::integer))",
                (user_id, agent_id, project_id, label, expires_in_days),
            ).fetchone()
        except psycopg.Error as exc:
            raise ToolsdbError(f"cannot create the token: {first_line(exc)}") from None
    assert row is not None
    click.echo(row[0])


@token_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also revoked and expired tokens.")
@common_options
def token_list(settings: Settings, show_all: bool) -> None:
    """List tokens (never their hashes): id, prefix, label, user, agent, project, dates."""
    with settings.target().connect(autocommit=True) as conn:
        try:
            rows = conn.execute(
                """
                select t.token_id, t.token_prefix, t.token_name, u.username, a.name, p.slug,
                    to_char(t.created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                    to_char(t.expires_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                    to_char(t.last_used_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                    case when t.revoked_at is not null then 'revoked'
                        when t.expires_at <= now() then 'expired' else 'active' end
                from toolsdb.api_tokens as t
                join toolsdb.users as u on u.user_id = t.user_id
                left join toolsdb.agents as a on a.agent_id = t.agent_id
                left join toolsdb.projects as p on p.project_id = t.project_id
                where %s or (t.revoked_at is null and (t.expires_at is null or t.expires_at > now()))
                order by t.created_at, t.token_id
                """,
                (show_all,),
            ).fetchall()
        except psycopg.Error as exc:
            raise ToolsdbError(f"cannot list the tokens: {first_line(exc)}") from None
    print_table(
        ["token_id", "prefix", "name", "user", "agent", "project", "created", "expires", "last_used", "state"], rows
    )


@token_group.command("revoke")
@click.argument("token")
@common_options
def token_revoke(settings: Settings, token: str) -> None:
    """Revoke a token, named by its id, its prefix (tdb_ and 8 hex digits) or the token itself."""
    token = token.strip()
    if UUID_RE.fullmatch(token):
        sql, value = "select token_id from toolsdb.api_tokens where token_id = %(v)s::uuid", token
    elif re.fullmatch(r"tdb_[0-9a-f]{64}", token):
        sql = "select token_id from toolsdb.api_tokens where token_hash = sha256(convert_to(%(v)s, 'UTF8'))"
        value = token
    elif re.fullmatch(r"tdb_[0-9a-f]{8}", token):
        sql = "select token_id from toolsdb.api_tokens where token_prefix = %(v)s and revoked_at is null"
        value = token
    else:
        raise ToolsdbError(f"{token!r} is not a token id, a token prefix (tdb_ and 8 hex digits) or a token")
    with settings.target().connect(autocommit=True) as conn:
        try:
            token_id = one_id(conn, "token", sql, value)
            revoked = conn.execute("select toolsdb.revoke_api_token(%s)", (token_id,)).fetchone()
        except psycopg.Error as exc:
            raise ToolsdbError(f"cannot revoke the token: {first_line(exc)}") from None
    if revoked and revoked[0]:
        click.echo(f"revoked {token_id}")
    else:
        click.echo(f"{token_id} was revoked already")
