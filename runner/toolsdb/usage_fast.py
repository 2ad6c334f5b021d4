"""``toolsdb usage daily|monthly|session`` without click or psycopg.

A report is one query (``toolsdb.usage_report()``, tens of milliseconds); the
full command line costs a few hundred milliseconds of imports before it. The
launcher sends a plain report here (the hook's libpq, the same database
resolution as ``toolsdb hook``); anything else (``--help``, an option this
parser does not know, ``usage chart``) goes to click, which accepts exactly
the same options (usage_cli.py) and prints through the same usage_report.py.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal

from .errors import ToolsdbError

KINDS = ("daily", "monthly", "session")
VALUE_OPTIONS = {"--since": "since", "--until": "until", "--timezone": "tz", "-z": "tz", "--database": "db", "-d": "db"}
FLAG_OPTIONS = {"--breakdown": "breakdown", "-b": "breakdown", "--json": "as_json", "--verbose": None, "-v": None}

ROWS_SQL = """
select coalesce(json_agg(json_build_array(
    r.period, r.model_name, r.requests, r.input_tokens, r.output_tokens, r.cache_write_5m_tokens,
    r.cache_write_1h_tokens, r.cache_creation_tokens, r.cache_read_tokens, r.total_tokens, r.cost_usd,
    r.unpriced_requests, r.first_at, r.last_at
)), '[]')::text
from toolsdb.usage_report($1, $2, $3::date, $4::date) as r
"""

CWD_SQL = """
select coalesce(json_object_agg(s.session_id, s.cwd), '{}')::text
from toolsdb.sessions as s
where s.session_id = any($1::text[])
"""


def parse(argv: list[str]) -> dict | None:
    """The options of ``[-d URL] usage KIND [options]``, or None when click must handle it."""
    out: dict = {"since": None, "until": None, "tz": None, "db": None, "breakdown": False, "as_json": False}
    args = list(argv)
    seen_usage = False
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=")
        if arg == "usage" and not seen_usage:
            seen_usage = True
            if not args or args[0] not in KINDS:
                return None
            out["kind"] = args.pop(0)
        elif name in VALUE_OPTIONS and (seen_usage or name in ("-d", "--database")):
            if eq and name.startswith("--"):
                value = inline
            elif not eq and args and not args[0].startswith("-"):
                value = args.pop(0)
            else:
                return None
            out[VALUE_OPTIONS[name]] = value
        elif arg in FLAG_OPTIONS and (seen_usage or arg in ("-v", "--verbose")):
            if FLAG_OPTIONS[arg]:
                out[FLAG_OPTIONS[arg]] = True
        else:
            return None
    return out if seen_usage else None


def fast_main(argv: list[str]) -> int | None:
    """Run the report; the exit code, or None when ``argv`` is for click."""
    options = parse(argv)
    if options is None:
        return None
    from .hook import HookError, connection_params
    from .libpq import Connection, LibpqError
    from .usage_report import REPORTS, ccusage_shape, local_time_zone, parse_day, print_report

    kind = options["kind"]
    try:
        since = parse_day(options["since"], "--since")
        until = parse_day(options["until"], "--until")
        zone = options["tz"] or local_time_zone()
        params = connection_params(options["db"])
        params["application_name"] = "toolsdb-usage"
        conn = Connection(params)
        try:
            conn.execute("begin read only; set local statement_timeout = '60s'")
            rows = json.loads(
                conn.execute(
                    ROWS_SQL, [REPORTS[kind][0], zone, since and since.isoformat(), until and until.isoformat()]
                )
                or "[]",
                parse_float=Decimal,
            )
            sessions = None
            if kind == "session":
                ids = "{" + ",".join(json.dumps(r[0], ensure_ascii=False) for r in rows) + "}"
                cwd = json.loads(conn.execute(CWD_SQL, [ids]) or "{}")
                sessions = {sid: {"cwd": path} for sid, path in cwd.items()}
            conn.execute("commit")
        finally:
            conn.close()
    except (ToolsdbError, HookError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except LibpqError as exc:
        print(f"Error: cannot report usage: {exc}", file=sys.stderr)
        return 1
    import datetime as dt

    typed = [
        (
            period,
            model,
            int(requests),
            *(Decimal(v) for v in (i, o, w5, w1, cc, cr, tot)),
            Decimal(cost),
            int(unpriced),
            dt.datetime.fromisoformat(first_at),
            dt.datetime.fromisoformat(last_at),
        )
        for period, model, requests, i, o, w5, w1, cc, cr, tot, cost, unpriced, first_at, last_at in rows
    ]
    result = ccusage_shape(kind, typed, sessions)
    if options["as_json"]:
        print(json.dumps(result, indent=2))
    else:
        print_report(kind, result, options["breakdown"])
    return 0
