"""`toolsdb import-transcripts` and `toolsdb usage` on the generated corpus, against ccusage 20.0.24.

* per day and per model (UTC, America/New_York, Asia/Kolkata), toolsdb's tokens equal
  ccusage's `daily --json`, except where ccusage counts one API response twice: a
  response written without requestId over several lines (ccusage's daily key is
  message.id + timestamp; message.id names one response, so toolsdb counts it once);
* costs equal ccusage's where both price the same way: every priced model outside the
  long-context session (Anthropic bills a prompt over 200k at the long-context rates on
  all its tokens, ccusage only the excess) and not the unpriced model (ccusage: $0,
  toolsdb: no price, counted in unpriced_requests);
* the messages of each session are its conversation lines, malformed lines are named by
  file and line, a partial last line is left for later;
* a second run reads nothing; an appended file is read from where it was left; a
  truncated or rewritten file is read again without counting anything twice; a file
  appended while it is read ends equal to a one-shot import;
* imports killed at random moments, and imports racing each other, end with the totals of
  one clean import.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from .ccusage import ccusage_report, require_ccusage
from .conftest import TEMPLATE, Pg, clean_env, run_cli, toolsdb_exe
from .transcripts_corpus import CONVERSATION_KINDS, UNPRICED_MODEL, Corpus, Totals, write_corpus

ZONES = ("UTC", "America/New_York", "Asia/Kolkata")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    return write_corpus(tmp_path_factory.mktemp("corpus"), seed=7, sessions=14)


def env_for(pg: Pg, db: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": pg.url(db), "TZ": "UTC", **extra}


def import_json(pg: Pg, db: str, *paths: Path, timeout: float = 300) -> dict:
    result = run_cli("import-transcripts", "--json", *map(str, paths), env=env_for(pg, db), timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def usage_json(pg: Pg, db: str, kind: str = "daily", tz: str = "UTC") -> dict:
    result = run_cli("usage", kind, "--json", "--timezone", tz, env=env_for(pg, db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def tokens_by_day_model(report: dict) -> dict[tuple[str, str], dict[str, int]]:
    keys = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")
    return {
        (day["date"], b["modelName"]): {k: b[k] for k in keys}
        for day in report["daily"]
        for b in day["modelBreakdowns"]
    }


def expected_tokens(expected: dict[str, dict[str, Totals]]) -> dict[tuple[str, str], dict[str, int]]:
    return {(day, model): t.ccusage() for day, models in expected.items() for model, t in models.items()}


def db_totals(pg: Pg, db: str) -> tuple:
    """Everything an import leaves, in one comparable value."""
    with psycopg.connect(pg.conninfo(db)) as conn:
        usage = conn.execute(
            "select usage_key, session_id, occurred_at, model_name, input_tokens, output_tokens,"
            " cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, cost_usd"
            " from toolsdb.api_usage order by usage_key"
        ).fetchall()
        messages = conn.execute(
            "select session_id, source_uuid, kind, role, md5(content) from toolsdb.messages"
            " where source_uuid is not null order by session_id, source_uuid"
        ).fetchall()
        gaps = conn.execute(
            "select s.session_id from toolsdb.sessions as s"
            " where s.message_count <> (select count(*) from toolsdb.messages as m where m.session_id = s.session_id)"
            " or exists (select from toolsdb.messages as m where m.session_id = s.session_id"
            "            and m.position > s.message_count)"
        ).fetchall()
    assert gaps == [], f"sessions whose positions are not 1..message_count: {gaps}"
    return usage, messages


# ---------------------------------------------------------------------------
# The corpus against ccusage
# ---------------------------------------------------------------------------


def test_daily_tokens_per_model_equal_ccusage_except_responses_it_counts_twice(pg: Pg, db: str, corpus: Corpus) -> None:
    require_ccusage()
    summary = import_json(pg, db, corpus.root / "projects")
    assert summary["files"] == len(corpus.files) and summary["failed_files"] == []
    for tz in ZONES:
        ours = tokens_by_day_model(usage_json(pg, db, "daily", tz))
        theirs = tokens_by_day_model(ccusage_report(corpus.root, "daily", tz))
        assert ours == expected_tokens(corpus.expected_daily(tz, "toolsdb")), f"toolsdb's daily tokens in {tz}"
        assert theirs == expected_tokens(corpus.expected_daily(tz)), f"ccusage's daily tokens in {tz}"
        differing = {k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)}
        # The only differences: the responses without requestId written over several lines,
        # which ccusage's daily report counts once per line.
        split_without_request = {
            (u.timestamp.astimezone(ZoneInfo(tz)).date().isoformat(), u.model)
            for u in corpus.usage_lines
            if u.request_id is None
            and u.message_id is not None
            and sum(1 for v in corpus.usage_lines if v.message_id == u.message_id) > 1
        }
        assert differing <= split_without_request, (tz, differing - split_without_request)
        for key in differing:
            assert sum(theirs[key].values()) > sum(ours[key].values()), f"ccusage counts more in {key}"


def test_session_and_monthly_reports_equal_ccusages(pg: Pg, db: str, corpus: Corpus) -> None:
    """Per session and model (subagent files in their parent session, a fork's copied
    responses in the session read first), and per month, as ccusage reports them."""
    require_ccusage()
    import_json(pg, db, corpus.root / "projects")
    keys = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")
    ours = usage_json(pg, db, "session", "UTC")
    theirs = ccusage_report(corpus.root, "session", "UTC")
    by_session = {
        (s["sessionId"], b["modelName"]): {k: b[k] for k in keys}
        for s in ours["sessions"]
        for b in s["modelBreakdowns"]
    }
    their_sessions = {
        (s["sessionId"], b["modelName"]): {k: b[k] for k in keys}
        for s in theirs["sessions"]
        for b in s["modelBreakdowns"]
    }
    assert by_session == their_sessions
    assert {s["sessionId"] for s in ours["sessions"]} == set(corpus.expected_sessions())
    monthly = usage_json(pg, db, "monthly", "UTC")
    their_monthly = ccusage_report(corpus.root, "monthly", "UTC")
    months = {
        (m["month"], b["modelName"]): {k: b[k] for k in keys} for m in monthly["monthly"] for b in m["modelBreakdowns"]
    }
    daily = tokens_by_day_model(usage_json(pg, db, "daily", "UTC"))
    summed: dict[tuple[str, str], dict[str, int]] = {}
    for (day, model), tokens in daily.items():
        into = summed.setdefault((day[:7], model), dict.fromkeys(keys, 0))
        for k in keys:
            into[k] += tokens[k]
    assert months == summed
    their_months = {
        (m["month"], b["modelName"]): {k: b[k] for k in keys}
        for m in their_monthly["monthly"]
        for b in m["modelBreakdowns"]
    }
    assert set(months) == set(their_months)


def test_the_fast_report_path_prints_what_the_full_command_line_prints(pg: Pg, db: str, corpus: Corpus) -> None:
    """`toolsdb usage daily|monthly|session` runs without click and psycopg (one query
    through the hook's libpq); `python -m toolsdb.cli` is the click command: same bytes."""
    import_json(pg, db, corpus.root / "projects")
    for args in (
        ("daily", "--json", "--timezone", "Asia/Kolkata"),
        ("daily", "-b", "-z", "America/New_York", "--since", "20261101", "--until", "2026-11-20"),
        ("monthly", "--breakdown"),
        ("session", "--json"),
        ("session",),
    ):
        fast = run_cli("usage", *args, env=env_for(pg, db))
        full = subprocess.run(
            [sys.executable, "-m", "toolsdb.cli", "usage", *args],
            capture_output=True,
            text=True,
            env={**clean_env(), **env_for(pg, db)},
            timeout=120,
        )
        assert (fast.returncode, fast.stdout, fast.stderr) == (full.returncode, full.stdout, full.stderr), args
        assert fast.returncode == 0 and fast.stdout, args


def test_costs_equal_ccusage_where_both_price_alike_and_unpriced_models_are_named(
    pg: Pg, db: str, corpus: Corpus
) -> None:
    require_ccusage()
    import_json(pg, db, corpus.root / "projects")
    ours = usage_json(pg, db, "daily", "UTC")
    theirs = ccusage_report(corpus.root, "daily", "UTC")
    long_context = {
        (u.timestamp.date().isoformat(), u.model)
        for u in corpus.usage_lines
        if u.session in corpus.long_context_sessions or u.prompt > 200_000
    }
    no_request = {(u.timestamp.date().isoformat(), u.model) for u in corpus.usage_lines if u.request_id is None}
    their_cost = {(d["date"], b["modelName"]): b["cost"] for d in theirs["daily"] for b in d["modelBreakdowns"]}
    compared = 0
    for day in ours["daily"]:
        for b in day["modelBreakdowns"]:
            key = (day["date"], b["modelName"])
            if b["modelName"] == UNPRICED_MODEL:
                assert b["unpricedRequests"] == b["requests"] > 0 and b["cost"] == 0
                continue
            assert b["unpricedRequests"] == 0, key
            if key in long_context or key in no_request:
                continue
            assert abs(Decimal(str(b["cost"])) - Decimal(str(their_cost[key]))) < Decimal("0.000001"), key
            compared += 1
    assert compared >= 10
    with psycopg.connect(pg.conninfo(db)) as conn:
        unpriced = conn.execute("select model_name, requests from toolsdb.unpriced_usage").fetchall()
    assert unpriced == [(UNPRICED_MODEL, corpus.unpriced_requests)]
    result = run_cli("usage", "daily", "--timezone", "UTC", env=env_for(pg, db))
    assert result.returncode == 0 and "no price" in result.stderr


def test_long_context_requests_pay_the_long_context_rates_on_all_their_tokens(pg: Pg, db: str) -> None:
    """Anthropic's rule (platform.claude.com pricing, "Long context pricing"), not ccusage's."""
    with psycopg.connect(pg.conninfo(db)) as conn:
        cost = conn.execute(
            "select cost_usd from toolsdb.usage_cost('anthropic', 'claude-sonnet-4-5-20250929', now(),"
            " 250000, 1000, 0, 0, 0)"
        ).fetchone()
        short = conn.execute(
            "select cost_usd from toolsdb.usage_cost('anthropic', 'claude-sonnet-4-5-20250929', now(),"
            " 150000, 1000, 0, 0, 0)"
        ).fetchone()
    assert cost == (Decimal("1.5225000000"),)  # 250k x $6 + 1k x $22.50, per million
    assert short == (Decimal("0.4650000000"),)  # 150k x $3 + 1k x $15


def test_messages_are_the_conversation_lines_and_bad_lines_are_named(pg: Pg, db: str, corpus: Corpus) -> None:
    summary = import_json(pg, db, corpus.root / "projects")
    db_totals(pg, db)  # positions are 1..message_count in every session
    named = {(m["file"], m["line"]) for m in summary["malformed"]}
    expected = {(str(corpus.root / p), n) for p, lines in corpus.malformed.items() for n in lines}
    assert named == expected
    with psycopg.connect(pg.conninfo(db)) as conn:
        for session in corpus.sessions:
            kinds = dict(
                conn.execute(
                    "select kind, count(*) from toolsdb.messages where session_id = %s group by kind", (session,)
                ).fetchall()
            )
            want = {k: n for k, n in corpus.kinds(session).items() if k in CONVERSATION_KINDS and n}
            assert kinds == want, session
        errors = conn.execute("select count(*) from toolsdb.transcript_errors").fetchone()[0]
    assert errors == len(expected)
    # The partial last line is not read: the file's offset stops before it.
    for rel, (_line, offset) in corpus.partial.items():
        with psycopg.connect(pg.conninfo(db)) as conn:
            read = conn.execute(
                "select read_offset from toolsdb.transcript_files where path = %s", (str(corpus.root / rel),)
            ).fetchone()
        assert read == (offset,)


# ---------------------------------------------------------------------------
# Incremental: appends, truncation, rewrites
# ---------------------------------------------------------------------------


def test_a_second_run_reads_nothing_and_an_append_only_the_new_lines(pg: Pg, db: str, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, seed=11, sessions=13)
    first = import_json(pg, db, tmp_path / "projects")
    again = import_json(pg, db, tmp_path / "projects")
    assert again["files_read"] == 0 and again["unchanged_files"] == first["files"] and again["bytes_read"] == 0
    before = db_totals(pg, db)
    target = next(p for p in corpus.files if "subagents" not in str(p) and p not in corpus.partial)
    corpus.append_response(corpus.root / target, blocks=3)
    third = import_json(pg, db, tmp_path / "projects")
    assert third["files_read"] == 1 and third["messages_added"] == 4 and third["rewritten_files"] == 0
    assert third["bytes_read"] < 200_000
    after = db_totals(pg, db)
    assert len(after[0]) == len(before[0]) + 1
    assert tokens_by_day_model(usage_json(pg, db)) == expected_tokens(corpus.expected_daily("UTC", "toolsdb"))


def test_a_truncated_or_rewritten_file_is_read_again_without_counting_twice(pg: Pg, db: str, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, seed=5, sessions=13)
    import_json(pg, db, tmp_path / "projects")
    before = db_totals(pg, db)
    target = tmp_path / next(p for p in corpus.files if "subagents" not in str(p) and p not in corpus.partial)
    data = target.read_bytes()
    # Truncated to half its lines: read again from 0, nothing new, nothing counted twice.
    lines = data.splitlines(keepends=True)
    target.write_bytes(b"".join(lines[: len(lines) // 2]))
    truncated = import_json(pg, db, tmp_path / "projects")
    assert truncated["rewritten_files"] == 1 and truncated["messages_added"] == 0
    assert db_totals(pg, db) == before
    # Rewritten with the same length but a new head (the first line's bytes changed).
    target.write_bytes(data)
    import_json(pg, db, tmp_path / "projects")
    first = json.loads(lines[0])
    first["cwd"] = first.get("cwd", "/x")[:-1] + "Z"
    new_first = json.dumps(first, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(new_first) == len(lines[0].rstrip(b"\n"))
    target.write_bytes(new_first + b"\n" + b"".join(lines[1:]))
    os.utime(target, (time.time() + 5, time.time() + 5))
    rewritten = import_json(pg, db, tmp_path / "projects")
    assert rewritten["rewritten_files"] == 1 and rewritten["messages_added"] == 0
    assert db_totals(pg, db) == before
    with psycopg.connect(pg.conninfo(db)) as conn:
        assert conn.execute(
            "select rewrites from toolsdb.transcript_files where path = %s", (str(target),)
        ).fetchone() == (2,)


def test_a_file_appended_while_it_is_read_ends_equal_to_a_one_shot_import(pg: Pg, db: str, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "live", seed=9, sessions=13)
    target = corpus.root / next(p for p in corpus.files if "subagents" not in str(p) and p not in corpus.partial)
    writer = threading.Thread(
        target=lambda: [corpus.append_response(target, blocks=4, line_delay=0.01, split_writes=True) for _ in range(8)]
    )
    writer.start()
    while writer.is_alive():
        import_json(pg, db, corpus.root / "projects")
    writer.join()
    import_json(pg, db, corpus.root / "projects")
    assert tokens_by_day_model(usage_json(pg, db)) == expected_tokens(corpus.expected_daily("UTC", "toolsdb"))
    live = db_totals(pg, db)
    with pg.clone(f"oneshot_{os.getpid()}", TEMPLATE) as other:
        import_json(pg, other, corpus.root / "projects")
        assert db_totals(pg, other)[0] == live[0]
        assert sorted(m[1:] for m in db_totals(pg, other)[1]) == sorted(m[1:] for m in live[1])


# ---------------------------------------------------------------------------
# Kills and races
# ---------------------------------------------------------------------------


def start_import(pg: Pg, db: str, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [toolsdb_exe(), "import-transcripts", "--json", str(root)],
        env={**clean_env(), **env_for(pg, db)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_imports_killed_at_random_moments_end_with_the_totals_of_one_clean_import(
    pg: Pg, db: str, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path, seed=21, sessions=30)
    seed = int(os.environ.get("TOOLSDB_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    kills = 0
    for _ in range(6):
        proc = start_import(pg, db, corpus.root / "projects")
        time.sleep(rng.uniform(0.5, 2.5))
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            kills += 1
        proc.wait(timeout=60)
        stderr = proc.stderr.read().decode()
        assert "Traceback" not in stderr, f"seed {seed}, {sig.name}: {stderr}"
    import_json(pg, db, corpus.root / "projects")
    killed = db_totals(pg, db)
    with pg.clone(f"clean_{os.getpid()}", TEMPLATE) as other:
        import_json(pg, other, corpus.root / "projects")
        clean = db_totals(pg, other)
    assert killed[0] == clean[0], f"usage differs after {kills} kills (seed {seed})"
    assert sorted(m[1:] for m in killed[1]) == sorted(m[1:] for m in clean[1]), f"messages differ (seed {seed})"


def test_concurrent_imports_of_the_same_files_count_everything_once(pg: Pg, db: str, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, seed=33, sessions=20)
    procs = [start_import(pg, db, corpus.root / "projects") for _ in range(4)]
    for proc in procs:
        proc.wait(timeout=300)
    import_json(pg, db, corpus.root / "projects")  # whoever was told "moved on" left nothing undone
    raced = db_totals(pg, db)
    with pg.clone(f"alone_{os.getpid()}", TEMPLATE) as other:
        import_json(pg, other, corpus.root / "projects")
        alone = db_totals(pg, other)
    assert raced[0] == alone[0]
    assert sorted(m[1:] for m in raced[1]) == sorted(m[1:] for m in alone[1])


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_bad_input_is_one_line_and_a_nonzero_exit(pg: Pg, db: str, tmp_path: Path) -> None:
    missing = run_cli("import-transcripts", str(tmp_path / "nope"), env=env_for(pg, db))
    assert missing.returncode != 0 and "no such file or folder" in missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    for args, words in (
        (("usage", "daily", "--timezone", "Mars/Olympus"), "unknown time zone"),
        (("usage", "daily", "--since", "2026-13-01"), "--since takes a date"),
        (("import-transcripts", "--user", "nobody-at-all", str(tmp_path)), "no user"),
    ):
        result = run_cli(*args, env=env_for(pg, db))
        assert result.returncode != 0 and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    with psycopg.connect(pg.conninfo(db)) as conn:
        for file, lines, state in (
            ("[]", "[]", "22023"),
            ('{"source_host": "h", "path": "/p"}', "[]", "22023"),
            ('{"path": "/p", "start_offset": 0, "end_offset": 1}', "[]", "22023"),
            ('{"source_host": "h", "path": "/p", "start_offset": 5, "end_offset": 1}', "[]", "22023"),
            ('{"source_host": "h", "path": "/p", "start_offset": 0, "end_offset": 1}', "{}", "22023"),
        ):
            with pytest.raises(psycopg.Error) as caught:
                conn.execute("select toolsdb.transcript_ingest(%s, %s)", (file, lines))
            conn.rollback()
            assert caught.value.sqlstate == state


def test_lines_with_characters_jsonb_refuses_are_imported_made_safe(pg: Pg, db: str, tmp_path: Path) -> None:
    """NUL characters and lone surrogates (binary tool output) are valid JSON that jsonb
    refuses: the line is stored with them replaced by U+FFFD, never lost."""
    folder = tmp_path / "projects" / "-w"
    folder.mkdir(parents=True)
    texts = ["nul \\u0000 here", "lone \\ud9ff high", "lone \\uDC01 low", "pair \\ud83d\\ude00 ok"]
    lines = [
        f'{{"type":"user","uuid":"00000000-0000-4000-8000-{n:012d}","sessionId":"odd",'
        f'"timestamp":"2026-11-02T10:00:0{n}Z","message":{{"role":"user","content":"{text}"}}}}'
        for n, text in enumerate(texts)
    ]
    (folder / "odd.jsonl").write_text("\n".join(lines) + "\n")
    summary = import_json(pg, db, tmp_path / "projects")
    assert summary["failed_files"] == [] and summary["malformed_lines"] == 0 and summary["messages_added"] == 4
    with psycopg.connect(pg.conninfo(db)) as conn:
        contents = [
            r[0]
            for r in conn.execute(
                "select content from toolsdb.messages where session_id = 'odd' order by position"
            ).fetchall()
        ]
    assert contents == ["nul \ufffd here", "lone \ufffd high", "lone \ufffd low", "pair \U0001f600 ok"]


def test_the_application_role_sees_only_its_session_usage(pg: Pg, db: str, app_login: str, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, seed=2, sessions=13)
    import_json(pg, db, tmp_path / "projects")
    session = corpus.sessions[0]
    with psycopg.connect(pg.conninfo(db).replace("user=postgres", f"user={app_login}")) as app:
        app.execute("select set_config('toolsdb.session_id', %s, true)", (session,))
        sessions = {r[0] for r in app.execute("select session_id from toolsdb.usage_by_session").fetchall()}
        total = app.execute("select count(*) from toolsdb.api_usage").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(
                "insert into toolsdb.api_usage (usage_key, session_id, occurred_at, model_name)"
                " values ('x', %s, now(), 'm')",
                (session,),
            )
    assert sessions <= {session} and total >= 1
