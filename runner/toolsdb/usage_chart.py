"""``toolsdb usage chart``: cost (or tokens) per day per model and per user of the
imported transcripts, as one picture (docs/transcripts.md, "The chart").

The numbers come from ``toolsdb.usage_by_day_and()`` (repeatable/87_usage_views.sql);
this module only draws them, with matplotlib's Agg backend (extra ``toolsdb[chart]``,
imported when the command runs). Registered on ``usage_group`` in usage_cli.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import psycopg

from .clicommon import Settings, common_options, needs_extra
from .errors import ToolsdbError
from .target import first_line

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMATS = {".png": "png", ".svg": "svg"}
# The picture: 12 x 8 inches at 100 dpi, 1200 x 800 pixels in PNG.
WIDTH_IN, HEIGHT_IN, DPI = 12.0, 8.0, 100
# Series per panel before the rest are grouped as "other" (as many as the palettes have
# colours once their greys, kept for "other", are left out).
TOP = 7
OTHER = "other"
OTHER_COLOUR = "#b3b3b3"
MAX_DAYS = 3660

TODAY_SQL = """
select (pg_catalog.now() at time zone z.name)::date
from pg_catalog.pg_timezone_names as z
where z.name = %s
"""

SERIES_SQL = """
select d.day, d.label, d.cost_usd, d.total_tokens, d.requests, d.unpriced_requests
from toolsdb.usage_by_day_and(%s, %s, %s, %s) as d
"""


@dataclass
class Series:
    """One stacked band of a panel: a label, its value per day of the window, its total."""

    label: str
    values: list[float]
    total: float


@dataclass
class Panel:
    title: str
    series: list[Series]


def output_format(out: Path) -> str:
    """png or svg, from the file name's extension; ToolsdbError for any other."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ToolsdbError(f"--out takes a .png or .svg file name, not {str(out)!r}")
    return fmt


def window(today: dt.date, days: int) -> list[dt.date]:
    """The ``days`` days ending with ``today``, oldest first."""
    return [today - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]


def fold(rows: Sequence[tuple], days: list[dt.date], tokens: bool, top: int = TOP) -> list[Series]:
    """Rows (day, label, cost_usd, total_tokens, requests, unpriced_requests) as series over ``days``:
    the ``top`` largest by total (ties by label), the rest summed as "other" (unless it is one label);
    series with nothing to draw left out."""
    index = {day: i for i, day in enumerate(days)}
    per_label: dict[str, list[float]] = {}
    for day, label, cost, total_tokens, _requests, _unpriced in rows:
        if day not in index:
            continue
        values = per_label.setdefault(label, [0.0] * len(days))
        values[index[day]] += float(total_tokens if tokens else cost)
    ranked = sorted(
        (Series(label, values, sum(values)) for label, values in per_label.items() if sum(values) > 0),
        key=lambda s: (-s.total, s.label),
    )
    if len(ranked) <= top + 1:
        return ranked
    kept, rest = ranked[:top], ranked[top:]
    other = [sum(s.values[i] for s in rest) for i in range(len(days))]
    return [*kept, Series(f"{OTHER} ({len(rest)})", other, sum(other))]


def money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.995 or value == 0 else f"${value:,.3f}"


def count(value: float) -> str:
    """Tokens, short: 950, 12.3k, 4.5M, 1.2B."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}".replace(".0" + unit, unit)
    return f"{value:,.0f}"


def read(conn: psycopg.Connection, zone: str, days: int) -> tuple[list[dt.date], list[tuple], list[tuple]]:
    """The window's days in ``zone`` and the per-day rows by model and by user, read in one
    read-only transaction."""
    with conn.transaction():
        conn.execute("set transaction read only")
        row = conn.execute(TODAY_SQL, (zone,)).fetchone()
        if row is None:
            # Let the function say it, in its words (an unknown zone is its rule).
            conn.execute(SERIES_SQL, ("model", zone, None, None))
            raise ToolsdbError(f"unknown time zone {zone}")
        span = window(row[0], days)
        by_model = conn.execute(SERIES_SQL, ("model", zone, span[0], span[-1])).fetchall()
        by_user = conn.execute(SERIES_SQL, ("user", zone, span[0], span[-1])).fetchall()
    return span, by_model, by_user


def draw(
    span: list[dt.date],
    by_model: Sequence[tuple],
    by_user: Sequence[tuple],
    zone: str,
    tokens: bool,
    fmt: str,
) -> bytes:
    """The picture, as the bytes of a .png or .svg file."""
    import io

    with needs_extra():
        import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fmt_value = count if tokens else money
    requests = sum(r[4] for r in by_model)
    unpriced = sum(r[5] for r in by_model)
    grand = sum(float(r[3] if tokens else r[2]) for r in by_model)
    what = "Tokens" if tokens else "Cost"
    panels = [
        Panel(f"{what} per day by model", fold(by_model, span, tokens)),
        Panel(f"{what} per day by user", fold(by_user, span, tokens)),
    ]
    # Models in tab10, users in Dark2 (neither's grey): a user is never mistaken for a model.
    palettes = [
        [c for n, c in enumerate(matplotlib.colormaps["tab10"].colors) if n != 7][:TOP],
        list(matplotlib.colormaps["Dark2"].colors)[:TOP],
    ]

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes: list[Axes] = list(fig.subplots(2, 1, sharex=True))
    x = mdates.date2num(span)
    for ax, panel, palette in zip(axes, panels, palettes, strict=True):
        # Weekends lightly shaded: the week's rhythm at a glance.
        for day, at in zip(span, x, strict=True):
            if day.weekday() >= 5:
                ax.axvspan(at - 0.5, at + 0.5, color="#f2f2f2", zorder=0, linewidth=0)
        bottom = [0.0] * len(span)
        for n, series in enumerate(panel.series):
            colour = OTHER_COLOUR if series.label.startswith(OTHER + " (") else palette[n % len(palette)]
            ax.bar(
                x,
                series.values,
                width=0.8,
                bottom=bottom,
                color=colour,
                label=f"{series.label}  {fmt_value(series.total)}",
                zorder=2,
            )
            bottom = [b + v for b, v in zip(bottom, series.values, strict=True)]
        ax.set_title(panel.title, loc="left", fontsize=11, fontweight="bold")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_value(v)))
        ax.grid(axis="y", color="#dddddd", linewidth=0.8, zorder=1)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if panel.series:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
        else:
            ax.text(0.5, 0.5, "nothing to draw", transform=ax.transAxes, ha="center", va="center", color="#888888")
        highest = max((sum(s.values[i] for s in panel.series) for i in range(len(span))), default=0.0)
        ax.set_ylim(0, highest * 1.08 or 1)
    axes[-1].set_xlim(x[0] - 0.6, x[-1] + 0.6)
    date_axis(axes[-1], len(span), mdates)

    first, last = span[0], span[-1]
    total = fmt_value(grand) if tokens else f"{money(grand)} total"
    unit = "tokens" if tokens else ""
    fig.suptitle(
        f"Claude Code {what.lower()} per day, {first:%d %b %Y} to {last:%d %b %Y}: "
        f"{total}{' ' + unit if unit else ''}, {requests:,} responses",
        fontsize=13,
    )
    notes = [f"Days in {zone}."]
    if unpriced and not tokens:
        notes.append(f"{unpriced:,} responses without a price not included (toolsdb.unpriced_usage).")
    fig.supxlabel(" ".join(notes), fontsize=9, color="#555555")

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "toolsdb"}):
        fig.savefig(buffer, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def date_axis(ax: Axes, days: int, mdates: Any) -> None:
    """Readable days: each day named up to two weeks, Mondays (and a tick a day) up to
    about two months, matplotlib's concise dates beyond."""
    if days <= 14:
        ax.xaxis.set_major_locator(mdates.DayLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%a\n%d %b"))
    elif days <= 62:
        ax.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
        ax.xaxis.set_minor_locator(mdates.DayLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("Mon %d %b"))
    else:
        locator = mdates.AutoDateLocator(minticks=4, maxticks=12)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def write_atomically(out: Path, data: bytes) -> None:
    """``data`` into ``out`` through a temporary file of the same folder, renamed when complete."""
    folder = out.parent if str(out.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise ToolsdbError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ToolsdbError(f"cannot write {out}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def chart(settings: Settings, out: Path, days: int, tz: str | None, tokens: bool) -> None:
    """The command's work, also run by ``toolsdb usage --chart FILE``."""
    from .usage_report import local_time_zone

    fmt = output_format(out)
    with needs_extra():
        import matplotlib  # noqa: F401  (a missing extra is said before any work)
    zone = tz or local_time_zone()
    with settings.target().connect(autocommit=True) as conn:
        try:
            span, by_model, by_user = read(conn, zone, days)
        except psycopg.Error as exc:
            raise ToolsdbError(f"cannot chart usage: {first_line(exc)}") from None
    if not by_model:
        raise ToolsdbError(
            f"no usage from {span[0]} to {span[-1]} ({zone}): nothing to draw "
            "(toolsdb import-transcripts first, or a larger --days)"
        )
    write_atomically(out, draw(span, by_model, by_user, zone, tokens, fmt))
    what = "tokens" if tokens else "cost"
    click.echo(f"wrote {out}: {what} per day by model and by user, {span[0]} to {span[-1]} ({zone})")


@click.command("chart")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("usage.png"),
    show_default=True,
    help="The picture to write: .png or .svg (by its extension).",
)
@click.option(
    "--days",
    type=click.IntRange(1, MAX_DAYS),
    default=30,
    show_default=True,
    help="How many days, ending today in --timezone.",
)
@click.option("--timezone", "-z", "tz", help="IANA time zone of the days (default: this machine's).")
@click.option("--tokens", is_flag=True, help="Total tokens (all classes) instead of cost.")
@common_options
def chart_command(settings: Settings, out: Path, days: int, tz: str | None, tokens: bool) -> None:
    """Draw cost per day per model and per user of the imported transcripts (two
    stacked-bar panels, the largest models and users named, the rest as "other"),
    for the last --days days, into a .png or .svg. Responses of a model with no
    price are counted in a footnote, not in the cost (--tokens counts them). No
    usage in the window: exit 1, nothing written. Needs toolsdb[chart] (matplotlib)."""
    chart(settings, out, days, tz, tokens)


def shortcut(ctx: click.Context, chart_file: Path | None) -> None:
    """``toolsdb usage --chart FILE`` (the group's option): the chart with its defaults, alone."""
    if chart_file is None:
        if ctx.invoked_subcommand is None:
            raise click.UsageError("give a report (daily, monthly, session, chart) or --chart FILE", ctx)
        return
    if ctx.invoked_subcommand is not None:
        raise click.UsageError(f"--chart draws the chart alone: leave out {ctx.invoked_subcommand!r}", ctx)
    ctx.invoke(chart_command, out=chart_file)
