"""`toolsdb usage chart` and the SQL it draws from, toolsdb.usage_by_day_and().

A module database gets hand-made transcript lines through toolsdb.transcript_ingest()
(the shape of seeds/48_transcripts.sql): two users (a session each), three priced
models and one without a price, on fixed days of March 2025 (for the sums, around
midnight in Asia/Kolkata and America/New_York) and on recent days (for the chart's
30-day window).

* the function's per-day sums by model and by user, in UTC, Asia/Kolkata and
  America/New_York, the since/until bounds being days of the zone; its 22023 errors;
  the application and read-only roles may call it;
* the PNG: PNG magic, read back by matplotlib at 1200 x 800 pixels, with the bar
  colours of three models and two users painted (not a blank picture);
* the SVG: well-formed XML whose text names the models, the users and the unpriced
  footnote; with --tokens the unpriced model is drawn and the footnote is gone;
* ``toolsdb usage --chart FILE``, the group's shortcut;
* user mistakes: one ``Error:`` line, exit != 0, no traceback, no file written;
* the top-N folding into "other".
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from toolsdb.usage_chart import fold

from .conftest import Pg, run_cli
from .dbhelpers import connect, module_clone

SONNET = "claude-sonnet-4-5-20250929"  # $3 in, $15 out per MTok (long context above 200k input)
HAIKU = "claude-haiku-4-5-20251001"  # $1 in, $5 out, $0.10 cache read
OPUS = "claude-opus-4-5-20251101"  # $5 in, $25 out
UNPRICED = "claude-chart-unpriced"
USERS = ("chart-alice", "chart-bob")

# (user, timestamp, model, input, output, cache read): costs by hand in the comments.
FIXED = [
    ("chart-alice", "2025-03-10T23:30:00.000Z", OPUS, 1_000_000, 40_000, 0),  # $5 + $1 = $6.00
    ("chart-bob", "2025-03-11T02:00:00.000Z", SONNET, 100_000, 100_000, 0),  # $0.30 + $1.50 = $1.80
    ("chart-alice", "2025-03-11T20:00:00.000Z", HAIKU, 500_000, 100_000, 1_000_000),  # .5 + .5 + .1 = $1.10
    ("chart-bob", "2025-03-11T10:00:00.000Z", UNPRICED, 1_000, 1_000, 0),  # no price
]
COST = {OPUS: Decimal("6.00"), SONNET: Decimal("1.80"), HAIKU: Decimal("1.10"), UNPRICED: Decimal(0)}
TOKENS = {OPUS: 1_040_000, SONNET: 200_000, HAIKU: 1_600_000, UNPRICED: 2_000}
WHO = {OPUS: "chart-alice", SONNET: "chart-bob", HAIKU: "chart-alice", UNPRICED: "chart-bob"}

# The day of each fixed response in each zone.
DAYS = {
    "UTC": {OPUS: "2025-03-10", SONNET: "2025-03-11", HAIKU: "2025-03-11", UNPRICED: "2025-03-11"},
    "Asia/Kolkata": {OPUS: "2025-03-11", SONNET: "2025-03-11", HAIKU: "2025-03-12", UNPRICED: "2025-03-11"},
    "America/New_York": {OPUS: "2025-03-10", SONNET: "2025-03-10", HAIKU: "2025-03-11", UNPRICED: "2025-03-11"},
}

# Recent responses (days ago, at noon UTC): every model, both users, gaps between days.
RECENT = [
    (1, "chart-alice", OPUS, 200_000, 20_000),
    (1, "chart-bob", SONNET, 150_000, 30_000),
    (2, "chart-alice", HAIKU, 400_000, 60_000),
    (3, "chart-bob", OPUS, 100_000, 50_000),
    (3, "chart-bob", UNPRICED, 5_000, 5_000),
    (5, "chart-alice", SONNET, 120_000, 80_000),
    (8, "chart-bob", HAIKU, 300_000, 90_000),
    (8, "chart-alice", OPUS, 300_000, 10_000),
    (12, "chart-alice", SONNET, 50_000, 40_000),
    (20, "chart-bob", UNPRICED, 2_000, 2_000),
]

ROW = "select d.day::text, d.label, d.cost_usd, d.total_tokens, d.requests, d.unpriced_requests from "


def assistant_line(session: str, n: int, timestamp: str, model: str, inp: int, out: int, read: int) -> dict:
    return {
        "type": "assistant",
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{session}/{n}")),
        "parentUuid": None,
        "sessionId": session,
        "requestId": f"req_{session}_{n}",
        "timestamp": timestamp,
        "message": {
            "id": f"msg_{session}_{n}",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "done"}],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": read,
            },
        },
    }


def ingest(conn: psycopg.Connection, session: str, user_id: object, lines: list[dict]) -> None:
    batch = [{"o": 1000 * n, "l": line} for n, line in enumerate(lines)]
    end = 1000 * len(lines)
    file = {
        "source_host": "chart-test",
        "path": f"/home/test/.claude/projects/-chart/{session}.jsonl",
        "session_id": session,
        "start_offset": 0,
        "end_offset": end,
        "size": end,
        "lines": len(lines),
        "user_id": str(user_id),
    }
    result = conn.execute(
        "select toolsdb.transcript_ingest(%s::jsonb, %s::jsonb)", (json.dumps(file), json.dumps(batch))
    ).fetchone()
    assert result is not None


@pytest.fixture(scope="module")
def usage_db(request: pytest.FixtureRequest, pg: Pg, template: str) -> Iterator[str]:
    """A clone of the template with FIXED and RECENT imported, a session per user."""
    noon = dt.datetime.now(dt.timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    with module_clone(request, pg, template) as name:
        with connect(pg, name) as conn:
            for user in USERS:
                user_id = conn.execute(
                    "insert into toolsdb.users (username, email) values (%s, %s) returning user_id",
                    (user, f"{user}@example.com"),
                ).fetchone()[0]
                session = f"{user}-session"
                lines = [
                    assistant_line(session, n, ts, model, inp, out, read)
                    for n, (who, ts, model, inp, out, read) in enumerate(FIXED)
                    if who == user
                ]
                lines += [
                    assistant_line(
                        session,
                        100 + n,
                        (noon - dt.timedelta(days=ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        model,
                        inp,
                        out,
                        0,
                    )
                    for n, (ago, who, model, inp, out) in enumerate(RECENT)
                    if who == user
                ]
                ingest(conn, session, user_id, lines)
        yield name


def by_day(rows: list[tuple]) -> dict[tuple[str, str], tuple]:
    return {(day, label): (cost, tokens, requests, unpriced) for day, label, cost, tokens, requests, unpriced in rows}


def expected(zone: str, dimension: str, since: str, until: str) -> dict[tuple[str, str], tuple]:
    """The sums of FIXED per (day in zone, model or user) between since and until, by hand."""
    out: dict[tuple[str, str], list] = {}
    for model, day in DAYS[zone].items():
        if not since <= day <= until:
            continue
        key = (day, model if dimension == "model" else WHO[model])
        entry = out.setdefault(key, [Decimal(0), Decimal(0), 0, 0])
        entry[0] += COST[model]
        entry[1] += TOKENS[model]
        entry[2] += 1
        entry[3] += model == UNPRICED
    return {k: tuple(v) for k, v in out.items()}


@pytest.mark.parametrize("zone", sorted(DAYS))
@pytest.mark.parametrize("dimension", ["model", "user"])
def test_the_function_sums_per_day_of_the_zone(pg: Pg, usage_db: str, zone: str, dimension: str) -> None:
    with connect(pg, usage_db) as conn:
        rows = conn.execute(
            ROW + "toolsdb.usage_by_day_and(%s, %s, '2025-03-01', '2025-03-31') as d", (dimension, zone)
        ).fetchall()
    assert by_day(rows) == expected(zone, dimension, "2025-03-01", "2025-03-31")
    assert [r[:2] for r in rows] == sorted(r[:2] for r in rows), "rows come by day, then label"


def test_the_hand_computed_sums_in_kolkata(pg: Pg, usage_db: str) -> None:
    """The same as above, written out: a day of Asia/Kolkata starts at 18:30 UTC the day before."""
    with connect(pg, usage_db) as conn:
        models = conn.execute(
            ROW + "toolsdb.usage_by_day_and('model', 'Asia/Kolkata', '2025-03-11', '2025-03-11') as d"
        ).fetchall()
        users = conn.execute(
            ROW + "toolsdb.usage_by_day_and('user', 'Asia/Kolkata', '2025-03-11', '2025-03-11') as d"
        ).fetchall()
    assert models == [
        ("2025-03-11", UNPRICED, Decimal(0), Decimal(2_000), 1, 1),
        ("2025-03-11", OPUS, Decimal("6.00"), Decimal(1_040_000), 1, 0),
        ("2025-03-11", SONNET, Decimal("1.80"), Decimal(200_000), 1, 0),
    ]
    # Haiku's 20:00 UTC on the 11th is the 12th in Kolkata: outside until.
    assert users == [
        ("2025-03-11", "chart-alice", Decimal("6.00"), Decimal(1_040_000), 1, 0),
        ("2025-03-11", "chart-bob", Decimal("1.80"), Decimal(202_000), 2, 1),
    ]


def test_the_function_refuses_a_bad_dimension_or_zone(pg: Pg, usage_db: str) -> None:
    with connect(pg, usage_db) as conn:
        for args, words in (
            (("project", "UTC"), "usage per day is by model or user, not project"),
            ((None, "UTC"), "usage per day is by model or user, not null"),
            (("model", "Mars/Olympus"), "unknown time zone Mars/Olympus"),
            (("user", None), "unknown time zone null"),
        ):
            with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
                conn.execute("select * from toolsdb.usage_by_day_and(%s, %s)", args)
            assert caught.value.sqlstate == "22023"
            primary = caught.value.diag.message_primary or ""
            assert words in primary and "\n" not in primary, primary


def test_the_app_and_readonly_roles_may_call_it(pg: Pg, usage_db: str, app_login: str, readonly_login: str) -> None:
    with connect(pg, usage_db) as conn:
        may = conn.execute(
            "select r, pg_catalog.has_function_privilege(r, 'toolsdb.usage_by_day_and(text,text,date,date)', 'execute')"
            " from unnest(array['public', 'toolsdb_app', 'toolsdb_readonly']) as r"
        ).fetchall()
    assert may == [("public", False), ("toolsdb_app", True), ("toolsdb_readonly", True)]
    with connect(pg, usage_db, readonly_login) as conn:
        rows = conn.execute("select * from toolsdb.usage_by_day_and('user', 'UTC', '2025-03-10', '2025-03-11')")
        assert len(rows.fetchall()) == 3  # readonly sees every session's usage
    with connect(pg, usage_db, app_login) as conn:
        # The application sees its own session's rows only (row-level security); none is set here.
        conn.execute("select * from toolsdb.usage_by_day_and('model', 'UTC')").fetchall()


def chart(pg: Pg, dbname: str, *args: str, cwd: Path | None = None):
    return run_cli("usage", "chart", "--database", pg.url(dbname), *args, cwd=cwd)


def pixels_of(png: Path, colour: tuple[float, float, float]) -> int:
    import matplotlib.image
    import numpy as np

    image = matplotlib.image.imread(png)
    return int(np.all(np.abs(image[:, :, :3] - np.array(colour)) < 1 / 255, axis=2).sum())


def test_png(pg: Pg, usage_db: str, tmp_path: Path) -> None:
    import matplotlib
    import matplotlib.image
    import numpy as np

    out = tmp_path / "usage.png"
    done = chart(pg, usage_db, "--out", str(out), "--timezone", "UTC")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out}: cost per day by model and by user, "), done.stdout
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (800, 1200)
    colours = np.unique((image[:, :, :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50, "a chart, not a blank picture"
    # Each bar colour covers a good area: three priced models (tab10), two users (Dark2).
    tab10, dark2 = matplotlib.colormaps["tab10"].colors, matplotlib.colormaps["Dark2"].colors
    for colour in (*tab10[:3], *dark2[:2]):
        assert pixels_of(out, colour) > 1000, f"bars of colour {colour} should be drawn"
    # The unpriced model has no cost: no fourth model colour.
    assert pixels_of(out, tab10[3]) == 0


def svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(" ".join(root.itertext()).split())


def test_svg(pg: Pg, usage_db: str, tmp_path: Path) -> None:
    out = tmp_path / "usage.svg"
    done = chart(pg, usage_db, "--out", str(out), "--timezone", "Asia/Kolkata", "--days", "30")
    assert done.returncode == 0, done.stderr
    text = svg_text(out)
    for name in (SONNET, HAIKU, OPUS, *USERS):
        assert name in text, f"{name} should be in the legend"
    assert UNPRICED not in text, "a model without a price has no cost to draw"
    assert "2 responses without a price not included" in text
    assert "Days in Asia/Kolkata." in text
    assert "Claude Code cost per day" in text and "responses" in text


def test_svg_of_tokens(pg: Pg, usage_db: str, tmp_path: Path) -> None:
    out = tmp_path / "tokens.svg"
    done = chart(pg, usage_db, "--out", str(out), "--timezone", "UTC", "--tokens")
    assert done.returncode == 0, done.stderr
    assert "tokens per day by model and by user" in done.stdout
    text = svg_text(out)
    for name in (SONNET, HAIKU, OPUS, UNPRICED, *USERS):
        assert name in text
    assert "without a price" not in text
    assert "Claude Code tokens per day" in text


def test_the_group_shortcut(pg: Pg, usage_db: str, tmp_path: Path) -> None:
    done = run_cli("--database", pg.url(usage_db), "usage", "--chart", "picture.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "picture.png").read_bytes()[:4] == b"\x89PNG"
    both = run_cli("--database", pg.url(usage_db), "usage", "--chart", "x.png", "daily", cwd=tmp_path)
    assert both.returncode == 2 and "--chart draws the chart alone" in both.stderr
    assert not (tmp_path / "x.png").exists()


def test_the_default_file_is_usage_png(pg: Pg, usage_db: str, tmp_path: Path) -> None:
    done = chart(pg, usage_db, "--days", "7", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "usage.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["usage.png"], "no temporary file left behind"


def one_error_line(done, expect: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ") and expect in lines[0], lines[0]


def test_user_mistakes_are_one_line(pg: Pg, usage_db: str, db: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    for args, expect in (
        (["--out", str(tmp_path / "usage.pdf")], "--out takes a .png or .svg file name, not"),
        (["--out", str(tmp_path / "usage")], "--out takes a .png or .svg file name, not"),
        (["--out", str(tmp_path / "missing" / "usage.png")], "No such file or directory"),
        (["--out", str(tmp_path / "a-file" / "usage.png")], "Not a directory"),
        (["--out", str(tmp_path / "x.png"), "--timezone", "Mars/Olympus"], "unknown time zone Mars/Olympus"),
    ):
        one_error_line(chart(pg, usage_db, *args), expect)
    # No usage in the window: refused, nothing drawn.
    empty = chart(pg, db, "--out", str(tmp_path / "x.png"), "--timezone", "UTC")
    one_error_line(empty, "no usage from ")
    assert "(UTC): nothing to draw" in empty.stderr
    bad_days = chart(pg, usage_db, "--out", str(tmp_path / "x.png"), "--days", "0")
    assert bad_days.returncode == 2 and "Traceback" not in bad_days.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"], "no file written on an error"


def test_a_missing_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from toolsdb.cli import cli

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ModuleNotFoundError
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["usage", "chart", "--database", "postgresql://nowhere.invalid/x"], prog_name="toolsdb"
    )
    assert result.exit_code == 1
    assert result.output.strip() == "Error: toolsdb usage chart needs matplotlib: pip install 'toolsdb[chart]'"


def test_the_rest_is_other() -> None:
    days = [dt.date(2026, 1, d) for d in (1, 2, 3)]
    rows = [(days[0], f"m{n:02}", Decimal(n), Decimal(0), 1, 0) for n in range(1, 11)]
    rows.append((dt.date(2025, 12, 31), "m99", Decimal(99), Decimal(0), 1, 0))  # outside the days
    series = fold(rows, days, tokens=False, top=8)
    assert [s.label for s in series] == ["m10", "m09", "m08", "m07", "m06", "m05", "m04", "m03", "other (2)"]
    assert series[-1].values == [3.0, 0.0, 0.0] and series[-1].total == 3.0
    # One label past the top is drawn under its name, not as "other (1)".
    assert [s.label for s in fold(rows[:9], days, tokens=False, top=8)][-1] == "m01"
    # Nothing to draw (an unpriced model's cost): left out.
    assert fold([(days[1], "free", Decimal(0), Decimal(5), 1, 1)], days, tokens=False) == []
    assert [s.label for s in fold([(days[1], "free", Decimal(0), Decimal(5), 1, 1)], days, tokens=True)] == ["free"]
