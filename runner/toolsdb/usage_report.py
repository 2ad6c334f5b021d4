"""The usage reports as ``toolsdb usage daily|monthly|session`` prints them
(ccusage's table, or its JSON shape), from the rows of ``toolsdb.usage_report()``.

Standard library only: the launcher runs these reports without click or
psycopg (``usage_fast.py``), and ``usage_cli.py`` with them; both print
through this module, so the two cannot differ.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from decimal import Decimal

from .errors import ToolsdbError


def _echo(text: str = "", err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)


def local_time_zone() -> str:
    """The IANA name of this machine's time zone (TZ, else /etc/localtime's target), else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if (tz and "/" in tz) or tz == "UTC":
        return tz
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "/zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else "UTC"


def parse_day(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            pass
    raise ToolsdbError(f"{option} takes a date as YYYYMMDD or YYYY-MM-DD, not {value!r}")


REPORTS = {
    "daily": ("day", "daily", "date"),
    "monthly": ("month", "monthly", "month"),
    "session": ("session", "sessions", "sessionId"),
}


def ccusage_shape(kind: str, rows: list[tuple], sessions: dict[str, dict] | None = None) -> dict:
    """The report as ccusage's `claude <kind> --json` prints it, with toolsdb's extra fields."""
    _grain, key, label = REPORTS[kind]
    periods: dict[str, dict] = {}
    totals = {
        "inputTokens": 0,
        "outputTokens": 0,
        "cacheCreationTokens": 0,
        "cacheReadTokens": 0,
        "totalTokens": 0,
        "totalCost": Decimal(0),
        "requests": 0,
        "unpricedRequests": 0,
    }
    for period, model, requests, i, o, w5, w1, cc, cr, tot, cost, unpriced, first_at, last_at in rows:
        entry = periods.setdefault(
            period,
            {
                label: period,
                "inputTokens": 0,
                "outputTokens": 0,
                "cacheCreationTokens": 0,
                "cacheReadTokens": 0,
                "totalTokens": 0,
                "totalCost": Decimal(0),
                "requests": 0,
                "unpricedRequests": 0,
                "modelsUsed": [],
                "modelBreakdowns": [],
            },
        )
        if kind == "session":
            entry.setdefault("firstActivity", first_at.isoformat())
            entry["lastActivity"] = max(entry.get("lastActivity", ""), last_at.isoformat())
            entry["firstActivity"] = min(entry["firstActivity"], first_at.isoformat())
            if sessions and period in sessions:
                entry["projectPath"] = sessions[period].get("cwd")
        for name, value in (
            ("inputTokens", i),
            ("outputTokens", o),
            ("cacheCreationTokens", cc),
            ("cacheReadTokens", cr),
            ("totalTokens", tot),
        ):
            entry[name] += int(value)
            totals[name] += int(value)
        entry["totalCost"] += cost
        entry["requests"] += requests
        entry["unpricedRequests"] += unpriced
        totals["totalCost"] += cost
        totals["requests"] += requests
        totals["unpricedRequests"] += unpriced
        entry["modelsUsed"].append(model)
        entry["modelBreakdowns"].append(
            {
                "modelName": model,
                "requests": requests,
                "inputTokens": int(i),
                "outputTokens": int(o),
                "cacheCreationTokens": int(cc),
                "cacheWrite5mTokens": int(w5),
                "cacheWrite1hTokens": int(w1),
                "cacheReadTokens": int(cr),
                "cost": float(cost),
                "unpricedRequests": unpriced,
            }
        )
    out = []
    for entry in periods.values():
        entry["totalCost"] = float(entry["totalCost"])
        entry["modelBreakdowns"].sort(key=lambda b: -b["cost"])
        out.append(entry)
    totals["totalCost"] = float(totals["totalCost"])
    return {key: out, "totals": totals}


def _n(value: int) -> str:
    return f"{value:,}"


def _cost(usd: float, unpriced: int, requests: int) -> str:
    """USD with 2 decimals; * when some responses have no price; "no price" when none has."""
    if unpriced and unpriced >= requests:
        return "no price*"
    return f"${usd:,.2f}" + ("*" if unpriced else "")


def print_report(kind: str, report: dict, breakdown: bool) -> None:
    _grain, key, label = REPORTS[kind]
    headers = [
        label.replace("sessionId", "Session").capitalize(),
        "Models",
        "Input",
        "Output",
        "Cache Create",
        "Cache Read",
        "Total Tokens",
        "Cost (USD)",
    ]
    rows: list[list[str]] = []
    for entry in report[key]:
        rows.append(
            [
                entry[label],
                ", ".join(sorted(entry["modelsUsed"])),
                _n(entry["inputTokens"]),
                _n(entry["outputTokens"]),
                _n(entry["cacheCreationTokens"]),
                _n(entry["cacheReadTokens"]),
                _n(entry["totalTokens"]),
                _cost(entry["totalCost"], entry["unpricedRequests"], entry["requests"]),
            ]
        )
        if breakdown:
            for b in entry["modelBreakdowns"]:
                rows.append(
                    [
                        f"  └─ {b['modelName']}",
                        "",
                        _n(b["inputTokens"]),
                        _n(b["outputTokens"]),
                        _n(b["cacheCreationTokens"]),
                        _n(b["cacheReadTokens"]),
                        _n(b["inputTokens"] + b["outputTokens"] + b["cacheCreationTokens"] + b["cacheReadTokens"]),
                        _cost(b["cost"], b["unpricedRequests"], b["requests"]),
                    ]
                )
    t = report["totals"]
    rows.append(
        [
            "Total",
            "",
            _n(t["inputTokens"]),
            _n(t["outputTokens"]),
            _n(t["cacheCreationTokens"]),
            _n(t["cacheReadTokens"]),
            _n(t["totalTokens"]),
            _cost(t["totalCost"], t["unpricedRequests"], t["requests"]),
        ]
    )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = {2, 3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        return (
            "│ "
            + " │ ".join(
                c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " │"
        )

    rule = "─┼─".join("─" * w for w in widths)
    _echo("┌─" + "─┬─".join("─" * w for w in widths) + "─┐")
    _echo(line(headers))
    _echo("├─" + rule + "─┤")
    for r in rows[:-1]:
        _echo(line(r))
    _echo("├─" + rule + "─┤")
    _echo(line(rows[-1]))
    _echo("└─" + "─┴─".join("─" * w for w in widths) + "─┘")
    if t["unpricedRequests"]:
        _echo(
            f"* {t['unpricedRequests']} response(s) of models with no price are not in the cost "
            "(toolsdb.unpriced_usage lists them)",
            err=True,
        )
