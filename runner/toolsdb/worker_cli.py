"""``toolsdb worker`` and ``toolsdb notify``: the notification worker and its
destinations and rules (registered on the root group in cli.py)."""

from __future__ import annotations

import hashlib
import re
import sys

import click

from .clicommon import Settings, common_options, lookup_id, needs_extra, print_table
from .errors import ToolsdbError

BACKENDS = ("slack", "discord", "webhook", "email")
SECRET_PREFIX = "notify.destination."


def secret_key_for(name: str) -> str:
    """The toolsdb.config key holding destination NAME's URL: notify.destination.<name>,
    the name lowercased with other characters as _ (and a hash when that changed it)."""
    plain = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not plain[:1].isalpha():
        plain = "d_" + plain
    if plain != name:
        plain += "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return SECRET_PREFIX + plain


@click.command("worker")
@click.option("--once", is_flag=True, help="Route and deliver everything due now, then exit (0).")
@click.option(
    "--batch",
    "batch_size",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Notifications claimed per call.",
)
@click.option(
    "--lease",
    type=click.FloatRange(1, 3600),
    default=60.0,
    show_default=True,
    help="Seconds a claimed notification stays leased (above the slowest send).",
)
@click.option(
    "--poll",
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between polls when no LISTEN notification comes.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.5, 300),
    default=10.0,
    show_default=True,
    help="Seconds an HTTP or SMTP delivery may take.",
)
@click.option("--name", help="Worker name recorded in claimed_by (default: toolsdb-worker-HOST-PID).")
@common_options
def worker_command(
    settings: Settings, once: bool, batch_size: int, lease: float, poll: float, timeout: float, name: str | None
) -> None:
    """Turn hook events into notifications (toolsdb.notification_rules) and deliver them.

    Routes events with toolsdb.route_events(), then delivers with
    toolsdb.settle_and_claim_notifications() (one round trip per job) to
    Slack, Discord, webhooks and SMTP, with retries, backoff and dead
    letters, waiting as long as a receiver's 429 asks. Waits on LISTEN (DATABASE_DIRECT_URL when set)
    between bursts. SIGTERM: finishes the send in flight, releases what it
    claimed and did not try, exits 0.
    """
    with needs_extra():
        import httpx  # noqa: F401

    from . import worker as engine

    target = settings.target()
    runner = engine.Worker(target.conninfo, name=name, batch_size=batch_size, lease=lease, poll=poll, timeout=timeout)
    restore = engine.install_signal_handlers(runner)
    try:
        stats = runner.run(once=once)
    finally:
        restore()
    click.echo(
        f"routed {stats.routed_events} event(s) into {stats.queued} notification(s); "
        f"sent {stats.sent}, failed {stats.failed}, released {stats.released}"
        + (f"; reconnected {stats.reconnects} time(s)" if stats.reconnects else ""),
        err=not once,
    )


@click.group("notify")
def notify_group() -> None:
    """Notification destinations and rules (toolsdb worker delivers)."""


@notify_group.group("destination")
def destination_group() -> None:
    """Where notifications go: Slack, Discord, webhook or email (URLs stored encrypted)."""


@destination_group.command("set")
@click.argument("name")
@click.option("--backend", type=click.Choice(BACKENDS), required=True, help="How to deliver.")
@click.option(
    "--url",
    help="Webhook URL, or for email smtp://user:pass@host:port/?from=a@b&to=c@d&starttls=1. Stored as an "
    "encrypted config secret. Left out: read from standard input (keeps it out of ps and shell history).",
)
@click.option(
    "--user",
    "username",
    help="The user it belongs to: username, email or id (rules notifying the session's user use it).",
)
@click.option("--disable", is_flag=True, help="Keep it, but send nothing to it.")
@click.option("--description", help="What it is.")
@common_options
def destination_set(
    settings: Settings,
    name: str,
    backend: str,
    url: str | None,
    username: str | None,
    disable: bool,
    description: str | None,
) -> None:
    """Add or replace destination NAME."""
    from . import config as cfg
    from .worker import DeliveryError, check_destination_url

    if url is None:
        if sys.stdin is not None and sys.stdin.isatty():
            url = click.prompt("URL", hide_input=True)
        else:
            url = (sys.stdin.read() if sys.stdin is not None else "").strip()
    url = (url or "").strip()
    if not url:
        raise ToolsdbError(f"no URL for destination {name}: give --url or pipe it in")
    try:
        check_destination_url(backend, url)
    except DeliveryError as exc:
        raise ToolsdbError(str(exc)) from None
    keys = cfg.KeyRing.load()
    key = secret_key_for(name)
    with settings.target().connect() as conn:
        user_id = lookup_id(conn, "user", username) if username is not None else None
        with conn.transaction():
            cfg.set_secret(conn, key, url, f"URL of notification destination {name}", keys)
            conn.execute(
                "select toolsdb.notification_destination_set(%s, %s, %s, %s, %s, %s)",
                (name, backend, key, user_id, not disable, description),
            )
    click.echo(f"set destination {name} ({backend}{', user ' + username if username else ''}; URL in {key})")


@destination_group.command("list")
@common_options
def destination_list(settings: Settings) -> None:
    """List the destinations (never their URLs)."""
    with settings.target().connect() as conn:
        found = conn.execute(
            "select d.destination_name, d.backend, u.username, d.enabled, d.secret_key, d.description "
            "from toolsdb.notification_destinations as d left join toolsdb.users as u using (user_id) "
            "order by d.destination_name"
        ).fetchall()
    print_table(
        ["name", "backend", "user", "enabled", "secret key", "description"],
        [(n, b, u, "yes" if e else "no", k, d) for n, b, u, e, k, d in found],
    )


@destination_group.command("remove")
@click.argument("name")
@common_options
def destination_remove(settings: Settings, name: str) -> None:
    """Remove destination NAME and its secret."""
    with settings.target().connect() as conn, conn.transaction():
        row = conn.execute(
            "select secret_key from toolsdb.notification_destinations where destination_name = %s", (name,)
        ).fetchone()
        if row is None:
            raise ToolsdbError(f"no destination {name!r}")
        conn.execute("select toolsdb.notification_destination_delete(%s)", (name,))
        if not conn.execute(
            "select exists (select from toolsdb.notification_destinations where secret_key = %s)", row
        ).fetchone()[0]:
            conn.execute("select toolsdb.config_unset(%s)", row)
    click.echo(f"removed destination {name}")


@notify_group.command("rules")
@common_options
def rules_list(settings: Settings) -> None:
    """List the notification rules (manage them with toolsdb.notification_rule_set() in SQL)."""
    with settings.target().connect() as conn:
        found = conn.execute(
            "select rule_name, enabled, priority, match_event_type, match_notification_type, match_tool_name, "
            "match_cwd, coalesce(destination_name, recipient), notification_type, message_template "
            "from toolsdb.notification_rules order by priority, rule_name"
        ).fetchall()
    print_table(
        ["rule", "enabled", "priority", "event", "notification type", "tool", "cwd", "to", "makes", "template"],
        [(r[0], "yes" if r[1] else "no", *r[2:]) for r in found],
    )
