"""``toolsdb import-transcripts`` and ``toolsdb usage``: Claude Code's
transcripts into the database, and the reports over them (docs/transcripts.md).

Registered on the group in cli.py with ``cli.add_command``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
import psycopg

from . import transcripts, usage_chart
from .clicommon import Settings, common_options, lookup_id
from .errors import ToolsdbError
from .target import first_line
from .usage_report import REPORTS, ccusage_shape, local_time_zone, parse_day, print_report


def psycopg_ingest(conn: psycopg.Connection) -> transcripts.Ingest:
    """transcripts.Ingest over a psycopg connection in autocommit: one transaction per batch."""

    def ingest(file_json: str, lines_json: str) -> dict:
        with conn.transaction():
            conn.execute("set local statement_timeout = '5min'")
            row = conn.execute(
                "select toolsdb.transcript_ingest(%s::jsonb, %s::jsonb)", (file_json, lines_json), prepare=False
            ).fetchone()
        assert row is not None
        return row[0]

    return ingest


def load_states(conn: psycopg.Connection, host: str) -> dict[str, dict]:
    row = conn.execute(transcripts.STATE_SQL.replace("$1", "%s"), (host,), prepare=False).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


@click.command("import-transcripts")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--user", help="User of the sessions it creates (username, email or id); default: none.")
@click.option("--project", help="Project of the sessions it creates (slug, name or id).")
@click.option("--agent", help="Agent of the sessions it creates (name or id).")
@click.option(
    "--host",
    "source_host",
    help="The machine the files are on, as recorded with their import state (default: this host's name).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--strict", is_flag=True, help="Exit 3 when a line could not be read (default: 0, lines named).")
@click.option(
    "--post",
    "post_url",
    metavar="URL",
    help="Send the files to a remote `toolsdb serve` (its POST /transcripts; URL as given to "
    "toolsdb hook --post, such as http://host:8787/hooks) instead of a database: the server "
    "keeps the offsets and records the token's user.",
)
@click.option(
    "--token-var",
    default="TOOLSDB_TOKEN",
    show_default=True,
    metavar="NAME",
    help="With --post: the environment variable holding the bearer token.",
)
@common_options
def import_transcripts_command(
    settings: Settings,
    paths: tuple[Path, ...],
    user: str | None,
    project: str | None,
    agent: str | None,
    source_host: str | None,
    as_json: bool,
    strict: bool,
    post_url: str | None,
    token_var: str,
) -> None:
    """Import Claude Code transcripts: every *.jsonl under PATH (default: the
    projects folder of $CLAUDE_CONFIG_DIR, else ~/.claude/projects), subagent
    files included. Reads only what was appended since the last import;
    notices a truncated or rewritten file and reads it again (nothing is
    counted twice). A line that cannot be read is counted and named, never a
    reason to stop."""
    roots = list(paths) or transcripts.default_roots()
    try:
        files = transcripts.find_files(p for p in roots if paths or p.exists())
    except FileNotFoundError as exc:
        raise ToolsdbError(str(exc)) from None
    except OSError as exc:
        raise ToolsdbError(f"cannot list {exc.filename}: {exc.strerror}") from None
    if post_url is not None:
        post_files(files, post_url, token_var, as_json)
        return
    host = source_host or transcripts.source_host()
    started = time.monotonic()
    with settings.target().connect(autocommit=True) as conn:
        try:
            ids = {}
            for key, what, value in (
                ("user_id", "user", user),
                ("project_id", "project", project),
                ("agent_id", "agent", agent),
            ):
                if value:
                    ids[key] = lookup_id(conn, what, value)
            states = load_states(conn, host)
            total = sum(transcripts._size(f) for f in files)
            show_bar = sys.stderr.isatty() and not as_json and files
            if show_bar:
                with click.progressbar(length=total, label="importing", file=sys.stderr, show_pos=False) as bar:
                    summary = transcripts.import_files(
                        files, psycopg_ingest(conn), states, host, ids, progress=lambda _p, n: bar.update(n)
                    )
            else:
                summary = transcripts.import_files(files, psycopg_ingest(conn), states, host, ids)
            unpriced = conn.execute(
                "select model_name, requests from toolsdb.unpriced_usage order by requests desc, model_name"
            ).fetchall()
        except psycopg.Error as exc:
            raise ToolsdbError(f"cannot import the transcripts: {first_line(exc)}") from None
    seconds = time.monotonic() - started
    if as_json:
        out = summary.as_json()
        out["seconds"] = round(seconds, 3)
        out["unpriced_models"] = [{"model": m, "requests": n} for m, n in unpriced]
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(
            f"{summary.files} file(s): {summary.read} read, {summary.unchanged} unchanged, "
            f"{summary.rewritten} rewritten; {summary.lines} line(s), {summary.messages} message(s) added, "
            f"{summary.usage} usage row(s) added or grown, {summary.sessions_created} session(s) created, "
            f"{len(summary.malformed)} malformed line(s) in {seconds:.2f} s"
        )
        for bad in summary.malformed[:20]:
            click.echo(f"  {bad['file']}:{bad['line']}: {bad['error']}", err=True)
        if len(summary.malformed) > 20:
            click.echo(f"  ... and {len(summary.malformed) - 20} more (--json lists them)", err=True)
        for failed in summary.failed:
            click.echo(f"  {failed['file']}: {failed['error']}", err=True)
        for model, n in unpriced:
            click.echo(f"warning: {n} response(s) of {model} have no price (toolsdb.unpriced_usage)", err=True)
    if summary.failed:
        sys.exit(1)
    if strict and summary.malformed:
        sys.exit(3)


def post_files(files: list[Path], post_url: str, token_var: str, as_json: bool) -> None:
    """import-transcripts --post: each file's unsent part to the server's POST /transcripts."""
    from urllib.parse import urlsplit

    from . import transcript_client

    parts = urlsplit(post_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolsdbError(
            f"--post takes an http:// or https:// URL, such as http://127.0.0.1:8787/hooks, not {post_url!r}"
        )
    token = os.environ.get(token_var)
    if not token:
        raise ToolsdbError(f"no token for {post_url}: the variable {token_var} is not set (toolsdb token create)")
    url = transcript_client.transcripts_url(post_url)
    started = time.monotonic()
    summary = {"files": len(files), "files_sent": 0, "unchanged_files": 0, "requests": 0, "failed_files": []}
    kept: list = []
    try:
        for path in files:
            try:
                sent = transcript_client.send_file(
                    url, token, str(path), float("inf"), transcript_client.default_state_dir(), kept
                )
            except transcript_client.SendError as exc:
                summary["failed_files"].append({"file": str(path), "error": str(exc)})
                continue
            summary["requests"] += sent["requests"]
            summary["files_sent" if sent["requests"] else "unchanged_files"] += 1
            if not sent["done"]:
                summary["failed_files"].append({"file": str(path), "error": "not sent to the end; run again"})
    finally:
        for conn in kept:
            conn.close()
    seconds = time.monotonic() - started
    if as_json:
        click.echo(json.dumps({**summary, "seconds": round(seconds, 3)}, indent=2))
    else:
        click.echo(
            f"{summary['files']} file(s): {summary['files_sent']} sent, {summary['unchanged_files']} unchanged "
            f"({summary['requests']} request(s) to {url}) in {seconds:.2f} s"
        )
        for failed in summary["failed_files"]:
            click.echo(f"  {failed['file']}: {failed['error']}", err=True)
    if summary["failed_files"]:
        sys.exit(1)


REPORT_SQL = """
select r.period, r.model_name, r.requests, r.input_tokens, r.output_tokens, r.cache_write_5m_tokens,
    r.cache_write_1h_tokens, r.cache_creation_tokens, r.cache_read_tokens, r.total_tokens, r.cost_usd,
    r.unpriced_requests, r.first_at, r.last_at
from toolsdb.usage_report(%s, %s, %s, %s) as r
"""


def usage_rows(conn: psycopg.Connection, grain: str, tz: str, since, until) -> list[tuple]:
    return conn.execute(REPORT_SQL, (grain, tz, since, until)).fetchall()


def _report_command(kind: str) -> click.Command:
    @click.command(kind)
    @click.option("--since", help="First day, YYYYMMDD or YYYY-MM-DD, in --timezone.")
    @click.option("--until", help="Last day (inclusive), YYYYMMDD or YYYY-MM-DD, in --timezone.")
    @click.option("--timezone", "-z", "tz", help="IANA time zone of the days (default: this machine's).")
    @click.option("--breakdown", "-b", is_flag=True, help="A row per model under each period.")
    @click.option("--json", "as_json", is_flag=True, help="JSON in ccusage's shape (with toolsdb's extra fields).")
    @common_options
    def report(
        settings: Settings, since: str | None, until: str | None, tz: str | None, breakdown: bool, as_json: bool
    ) -> None:
        first, last = parse_day(since, "--since"), parse_day(until, "--until")
        zone = tz or local_time_zone()
        with settings.target().connect(autocommit=True) as conn:
            try:
                with conn.transaction():
                    conn.execute("set transaction read only")
                    rows = usage_rows(conn, REPORTS[kind][0], zone, first, last)
                    sessions = None
                    if kind == "session":
                        sessions = {
                            sid: {"cwd": cwd}
                            for sid, cwd in conn.execute(
                                "select session_id, cwd from toolsdb.sessions where session_id = any(%s)",
                                ([r[0] for r in rows],),
                            ).fetchall()
                        }
            except psycopg.Error as exc:
                raise ToolsdbError(f"cannot report usage: {first_line(exc)}") from None
        result = ccusage_shape(kind, rows, sessions)
        if as_json:
            click.echo(json.dumps(result, indent=2))
        else:
            print_report(kind, result, breakdown)

    report.help = (
        f"Tokens and cost of the imported transcripts per {REPORTS[kind][0]} (and model with --breakdown), "
        "as ccusage prints them; costs at the price in force on each response's day."
    )
    return report


@click.group("usage", invoke_without_command=True, no_args_is_help=True)
@click.option(
    "--chart",
    "chart_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Draw the chart into FILE (.png or .svg): `toolsdb usage chart --out FILE`, its defaults.",
)
@click.pass_context
def usage_group(ctx: click.Context, chart_file: Path | None) -> None:
    """Reports of the imported Claude Code transcripts: tokens and cost (toolsdb import-transcripts first)."""
    usage_chart.shortcut(ctx, chart_file)


for _kind in REPORTS:
    usage_group.add_command(_report_command(_kind))
usage_group.add_command(usage_chart.chart_command)
