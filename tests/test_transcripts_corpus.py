"""The transcript test corpus (tests/transcripts_corpus.py) against itself and against ccusage 20.0.24.

* the generator is deterministic: same seed, same bytes;
* the malformed and partial lines are where ``Corpus`` says, and every case the importer
  must handle is in the files (split responses, midnight, subagents, fork, compaction, ...);
* the key check: ``ccusage claude daily --json --offline --mode calculate`` gives, per day
  and per model, exactly ``Corpus.expected_daily(tz)`` (input, output, cache creation,
  cache read tokens) in UTC, America/New_York, Asia/Kolkata and Pacific/Chatham, and
  ``ccusage claude session`` exactly ``Corpus.expected_sessions()``; also after appending a
  response to a session file;
* ccusage's offline prices per model (below), derived from one-response corpora.

Sessions in ccusage's session report: one per main file (its name), subagent files counted
in their parent's. The fork's copied responses (same message.id + requestId as in the
source session) are counted once, in the session whose file path sorts first (ccusage
keeps the first of two equal lines; it reads main files in path order), whichever of the
two is the fork: ``Corpus.expected_sessions`` follows that rule, and the test asserts it.
Daily and session reports differ in one case: a response without requestId split over
two lines is counted once per line by ``daily`` and once by ``session`` (the larger line);
see ``Corpus.winners``.

ccusage 20.0.24's offline prices, USD per million tokens (``--offline --mode calculate``,
one 100,000-token line per model and token class; 5m = the ``ephemeral_5m`` part of
cache_creation, also what a line without the split is charged; 1h = the ``ephemeral_1h``
part). claude-foo-9 is unpriced: cost 0, silently.

=============================  =====  ======  =====  =====  =====
model                          input  output  5m wr  1h wr  read
=============================  =====  ======  =====  =====  =====
claude-opus-4-1-20250805       15     75      18.75  30     1.50
claude-opus-4-5-20251101       5      25      6.25   10     0.50
claude-sonnet-4-5-20250929     3      15      3.75   6      0.30
claude-haiku-4-5-20251001      1      5       1.25   2      0.10
claude-foo-9                   0      0       0      0      0
=============================  =====  ======  =====  =====  =====
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .ccusage import ccusage_report, require_ccusage
from .transcripts_corpus import (
    CONVERSATION_KINDS,
    HAIKU,
    LONG_CONTEXT_THRESHOLD,
    OPUS_41,
    OPUS_45,
    SONNET,
    SYNTHETIC_MODEL,
    UNPRICED_MODEL,
    Corpus,
    Totals,
    dumps,
    write_corpus,
)

TIME_ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham")
# USD per MTok: input, output, 5m write, 1h write, cache read (the docstring's table).
OFFLINE_PRICES: dict[str, tuple[float, float, float, float, float]] = {
    OPUS_41: (15, 75, 18.75, 30, 1.5),
    OPUS_45: (5, 25, 6.25, 10, 0.5),
    SONNET: (3, 15, 3.75, 6, 0.3),
    HAIKU: (1, 5, 1.25, 2, 0.1),
    UNPRICED_MODEL: (0, 0, 0, 0, 0),
}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def records(corpus: Corpus, rel: Path) -> list[tuple[int, Any]]:
    """(line number, parsed object or None) of every line of a file."""
    out: list[tuple[int, Any]] = []
    for n, raw in enumerate((corpus.root / rel).read_bytes().split(b"\n"), 1):
        if not raw:
            continue
        try:
            out.append((n, json.loads(raw)))
        except ValueError:
            out.append((n, None))
    return out


def by_day(report: dict[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    fields = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")
    return {
        day["date"]: {m["modelName"]: {f: m[f] for f in fields} for m in day["modelBreakdowns"]}
        for day in report["daily"]
    }


def expected_by_day(corpus: Corpus, tz: str) -> dict[str, dict[str, dict[str, int]]]:
    return {day: {m: t.ccusage() for m, t in models.items()} for day, models in corpus.expected_daily(tz).items()}


def session_sum(models: dict[str, Totals]) -> dict[str, int]:
    return sum(models.values(), Totals()).ccusage()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = write_corpus(tmp_path / "a", seed=7)
    b = write_corpus(tmp_path / "b", seed=7)
    c = write_corpus(tmp_path / "c", seed=8)
    assert tree(a.root) == tree(b.root)
    assert a.files == b.files and a.malformed == b.malformed and a.partial == b.partial
    assert a.expected_daily("UTC") == b.expected_daily("UTC")
    assert tree(a.root) != tree(c.root)
    assert [p.as_posix() for p in a.files] == sorted(tree(a.root))


def test_malformed_and_partial_lines_are_where_the_corpus_says(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    assert sum(len(v) for v in corpus.malformed.values()) == 3 and len(corpus.partial) == 1
    for rel in corpus.files:
        data = (corpus.root / rel).read_bytes()
        bad: list[int] = []
        for n, obj in records(corpus, rel):
            if not isinstance(obj, dict):
                bad.append(n)
                continue
            try:
                datetime.fromisoformat(obj["timestamp"].replace("Z", "+00:00"))
            except (KeyError, ValueError):
                if obj.get("type") not in ("summary", "file-history-snapshot"):  # records without a timestamp
                    bad.append(n)
        if rel in corpus.partial:
            line_no, offset = corpus.partial[rel]
            assert not data.endswith(b"\n")
            assert data.rfind(b"\n") + 1 == offset and data.count(b"\n") + 1 == line_no
            assert bad[-1] == line_no
            bad.pop()
        else:
            assert data.endswith(b"\n"), rel
        assert bad == corpus.malformed.get(rel, []), rel
        assert corpus.kinds_by_file[rel]["malformed"] == len(bad)


def test_the_cases_are_in_the_files(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    lines_per_response: Counter[tuple[str, str, str]] = Counter()
    kinds: dict[Path, Counter[str]] = {}
    seen: Counter[str] = Counter()
    keys: dict[tuple[str, str], set[str]] = {}
    for rel in corpus.files:
        count: Counter[str] = Counter()
        kinds[rel] = count
        subagent = "subagents" in rel.parts
        raw = (corpus.root / rel).read_bytes().split(b"\n")
        for n, obj in records(corpus, rel):
            if not isinstance(obj, dict) or not isinstance(obj.get("timestamp", ""), str):
                count["malformed"] += 1
                continue
            if obj.get("timestamp") == "not-a-timestamp":
                count["malformed"] += 1
                continue
            kind = obj.get("type")
            assert obj.get("isSidechain", subagent) == subagent
            if subagent:
                assert obj.get("agentId") == rel.stem.removeprefix("agent-")
                assert obj["sessionId"] == rel.parent.parent.name
            elif "sessionId" in obj:
                assert obj["sessionId"] == rel.stem
            if kind == "assistant":
                message = obj["message"]
                if message["model"] == SYNTHETIC_MODEL:
                    assert obj.get("isApiErrorMessage") and "requestId" not in obj
                    count["api_error"] += 1
                    continue
                (block,) = message["content"]
                count[block["type"]] += 1
                usage = message["usage"]
                assert b'"usage":{' in raw[n - 1]  # compact JSON, as Claude Code writes (ccusage needs it)
                seen["split" if "cache_creation" in usage else "no split"] += 1
                seen["no requestId" if "requestId" not in obj else "requestId"] += 1
                seen["no message.id" if "id" not in message else "message.id"] += 1
                seen[message["model"]] += 1
                if "id" in message and "requestId" in obj:
                    key = (message["id"], obj["requestId"])
                    lines_per_response[(rel.as_posix(), *key)] += 1
                    keys.setdefault(key, set()).add(rel.as_posix())
                prompt = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
                if prompt > LONG_CONTEXT_THRESHOLD:
                    assert obj["sessionId"] in corpus.long_context_sessions
                    seen["long context"] += 1
            elif kind == "user":
                content = obj["message"]["content"]
                if obj.get("isCompactSummary"):
                    count["compact_summary"] += 1
                    assert obj["parentUuid"] is not None
                elif isinstance(content, list) and content[0]["type"] == "tool_result":
                    assert "toolUseResult" in obj
                    count["tool_result"] += 1
                else:
                    count["prompt"] += 1
                if "forkedFrom" in obj:
                    seen["forked"] += 1
            elif kind == "system" and obj.get("subtype") == "compact_boundary":
                assert obj["parentUuid"] is None and obj["logicalParentUuid"] and obj["compactMetadata"]["preTokens"]
                count["compact_boundary"] += 1
            elif kind == "system":
                count[f"system:{obj['subtype']}"] += 1
            else:
                count[kind] += 1
                if kind == "progress" and obj["data"]["type"] == "agent_progress":
                    seen["agent_progress"] += 1
        if rel in corpus.partial:
            count["partial"] += 1
            count["malformed"] -= 1
        assert count == corpus.kinds_by_file[rel], rel
    # the kinds the importer tests read, per session, subagent files included
    for sid in corpus.sessions:
        total = corpus.kinds(sid)
        assert total == sum((kinds[p] for p in corpus.session_files[sid]), Counter())
        assert total["prompt"] >= 1 and total["text"] >= 1
    every = sum(kinds.values(), Counter())
    assert set(every) >= CONVERSATION_KINDS, CONVERSATION_KINDS - set(every)
    assert {"summary", "file-history-snapshot", "progress", "system:api_error", "malformed", "partial"} <= set(every)
    # responses of 1 to 6 lines; a fork's responses are in two files
    assert set(lines_per_response.values()) == {1, 2, 3, 4, 5, 6}
    assert corpus.forks and any(len(files) == 2 for files in keys.values())
    assert seen["forked"] > 0 and seen["agent_progress"] > 0 and seen["long context"] > 0
    assert seen["split"] and seen["no split"] and seen["no requestId"] >= 5 and seen["no message.id"] == 1
    assert {SONNET, OPUS_45, OPUS_41, HAIKU, UNPRICED_MODEL} <= set(seen)
    assert any("subagents" in p.parts for p in corpus.files)
    # a larger snapshot first (500 then 7), and responses straddling midnight
    winners = {(u.message_id, u.request_id): u for u in corpus.winners()}
    big_first = [u for u in corpus.usage_lines if u.output == 7 and winners[(u.message_id, u.request_id)].output == 500]
    assert len(big_first) == 1
    assert corpus.unpriced_requests == corpus.requests_by_model()[UNPRICED_MODEL] > 0


@pytest.mark.parametrize("tz", TIME_ZONES)
def test_daily_tokens_equal_ccusage(tmp_path: Path, tz: str) -> None:
    require_ccusage()
    corpus = write_corpus(tmp_path)
    report = ccusage_report(tmp_path, "daily", tz)
    expected = expected_by_day(corpus, tz)
    assert by_day(report) == expected
    # the midnight cases matter: responses of one session fall on two local dates
    days_of_session: dict[str, set[str]] = {}
    for u in corpus.winners():
        days_of_session.setdefault(u.session, set()).add(u.timestamp.astimezone(ZoneInfo(tz)).date().isoformat())
    assert any(len(days) > 1 for days in days_of_session.values())
    totals = corpus.expected_total()
    assert report["totals"]["outputTokens"] == totals.output
    assert report["totals"]["cacheCreationTokens"] == totals.cache_creation


def test_straddling_responses_are_dated_by_their_winning_line(tmp_path: Path) -> None:
    """Growing outputs: the last line wins (after midnight); 500 then 7: the first (before it)."""
    require_ccusage()
    corpus = write_corpus(tmp_path)
    report = {tz: by_day(ccusage_report(tmp_path, "daily", tz)) for tz in TIME_ZONES}
    groups: dict[tuple[str | None, str | None], list[Any]] = {}
    for u in corpus.usage_lines:
        groups.setdefault((u.message_id, u.request_id), []).append(u)
    checked = 0
    for tz in TIME_ZONES:
        zone = ZoneInfo(tz)
        for lines in groups.values():
            dates = {u.timestamp.astimezone(zone).date() for u in lines}
            if len(dates) == 2 and len({u.path for u in lines}) == 1:
                winner = max(lines, key=lambda u: (u.output, u.total))
                assert winner.timestamp.astimezone(zone).date() == max(dates) or winner.output == 500
                checked += 1
        assert report[tz] == expected_by_day(corpus, tz)
    assert checked >= 4


def test_session_tokens_equal_ccusage(tmp_path: Path) -> None:
    require_ccusage()
    corpus = write_corpus(tmp_path)
    report = ccusage_report(tmp_path, "session", "UTC")
    fields = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")
    got = {s["sessionId"]: {f: s[f] for f in fields} for s in report["sessions"]}
    expected = {sid: session_sum(models) for sid, models in corpus.expected_sessions().items()}
    assert got == expected
    assert set(got) == set(corpus.sessions)  # subagent files are in their parent's session
    # the fork: the copied responses are counted once, in the session whose file sorts first
    (fork, source) = next(iter(corpus.forks.items()))
    first = min(fork, source, key=lambda sid: corpus.session_files[sid][0].as_posix())
    copied = {(u.message_id, u.request_id) for u in corpus.usage_lines if u.session == fork} & {
        (u.message_id, u.request_id) for u in corpus.usage_lines if u.session == source
    }
    assert copied
    assert {u.session for u in corpus.winners("session") if (u.message_id, u.request_id) in copied} == {first}
    # per model too
    got_models = {
        s["sessionId"]: {m["modelName"]: {f: m[f] for f in fields} for m in s["modelBreakdowns"]}
        for s in report["sessions"]
    }
    assert got_models == {
        sid: {m: t.ccusage() for m, t in models.items()} for sid, models in corpus.expected_sessions().items()
    }


def test_daily_and_session_differ_only_by_the_split_response_without_request_id(tmp_path: Path) -> None:
    require_ccusage()
    corpus = write_corpus(tmp_path)
    daily = corpus.expected_total()
    session = sum((session_sum_t(m) for m in corpus.expected_sessions().values()), Totals())
    no_rid = [u for u in corpus.usage_lines if u.request_id is None and u.message_id is not None]
    by_id = Counter(u.message_id for u in no_rid)
    (split_id,) = [mid for mid, n in by_id.items() if n == 2]
    smaller = min((u for u in no_rid if u.message_id == split_id), key=lambda u: u.output)
    assert daily == session + smaller.totals()
    d = ccusage_report(tmp_path, "daily")["totals"]
    s = ccusage_report(tmp_path, "session")["totals"]
    assert d["outputTokens"] - s["outputTokens"] == smaller.output
    assert d["inputTokens"] - s["inputTokens"] == smaller.input


def session_sum_t(models: dict[str, Totals]) -> Totals:
    return sum(models.values(), Totals())


def test_appended_response_is_counted(tmp_path: Path) -> None:
    require_ccusage()
    corpus = write_corpus(tmp_path, sessions=3)
    before = corpus.expected_total()
    main = corpus.session_files[corpus.sessions[1]][0]
    size = (tmp_path / main).stat().st_size
    added = corpus.append_response(tmp_path / main, blocks=4, model=UNPRICED_MODEL, split_writes=True)
    assert added.requests == 1 and added.output > 0
    assert corpus.expected_total() == before + added
    assert (tmp_path / main).read_bytes()[size:].count(b"\n") == 5  # the prompt and four blocks
    for tz in ("UTC", "Asia/Kolkata"):
        assert by_day(ccusage_report(tmp_path, "daily", tz)) == expected_by_day(corpus, tz)
    with pytest.raises(ValueError, match="partial"):
        full = write_corpus(tmp_path / "full")
        (partial,) = full.partial
        full.append_response(partial)


def test_target_bytes_adds_sessions(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, target_bytes=12 << 20)
    assert corpus.total_bytes >= 12 << 20
    assert len(corpus.sessions) > 12
    sizes = [len(obj["toolUseResult"].get("stdout") or obj["toolUseResult"]["file"]["content"])
             for rel in corpus.files if "subagents" not in rel.parts
             for _, obj in records(corpus, rel)
             if isinstance(obj, dict) and obj.get("type") == "user" and "toolUseResult" in obj
             and "status" not in obj["toolUseResult"]]  # fmt: skip
    assert max(sizes) >= 50_000 and sorted(sizes)[len(sizes) // 2] < 10_000


def test_offline_prices(tmp_path: Path) -> None:
    """One 100,000-token line per model and token class; cost x 10 = USD per MTok."""
    require_ccusage()
    folder = tmp_path / "projects" / "-home-dev-prices"
    folder.mkdir(parents=True)
    n = 100_000
    classes = {
        "input": {"input_tokens": n},
        "output": {"output_tokens": n},
        "5m": {"cache_creation_input_tokens": n, "cache_creation": {"ephemeral_5m_input_tokens": n}},
        "1h": {"cache_creation_input_tokens": n, "cache_creation": {"ephemeral_1h_input_tokens": n}},
        "read": {"cache_read_input_tokens": n},
    }
    for i, model in enumerate(OFFLINE_PRICES):
        for name, part in classes.items():
            sid = f"{i}-{name}"
            usage = {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
            usage |= {"cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}}
            usage |= {"output_tokens": 0}
            for key, value in part.items():
                usage[key] = usage[key] | value if isinstance(value, dict) else value
            line = {
                "parentUuid": None,
                "isSidechain": False,
                "cwd": "/home/dev/prices",
                "sessionId": sid,
                "version": "2.1.197",
                "type": "assistant",
                "requestId": f"req_{sid}",
                "uuid": f"00000000-0000-4000-8000-{i:06d}{len(name):06d}",
                "timestamp": "2026-12-01T12:00:00.000Z",
                "message": {
                    "id": f"msg_{sid}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": "ok"}],
                    "stop_reason": "end_turn",
                    "usage": usage,
                },
            }
            (folder / f"{sid}.jsonl").write_text(dumps(line) + "\n")
    report = ccusage_report(tmp_path, "session")
    cost = {s["sessionId"]: s["totalCost"] for s in report["sessions"]}
    got = {
        model: tuple(round(cost[f"{i}-{name}"] * 10, 6) for name in classes) for i, model in enumerate(OFFLINE_PRICES)
    }
    assert got == {m: tuple(float(x) for x in p) for m, p in OFFLINE_PRICES.items()}


def test_ccusage_skips_usage_written_with_spaces(tmp_path: Path) -> None:
    """ccusage 20.0.24 finds usage by the bytes `"usage":`: `"usage": {` (Python's default
    json.dumps) is not read. Claude Code writes compact JSON; the corpus does too."""
    require_ccusage()
    corpus = write_corpus(tmp_path, sessions=1)
    rel = corpus.files[0]
    obj = next(o for _, o in records(corpus, rel) if isinstance(o, dict) and o.get("type") == "assistant")
    spaced = dict(obj, uuid="00000000-0000-4000-8000-000000000001")
    spaced["message"] = dict(obj["message"], id="msg_spaced")
    spaced["requestId"] = "req_spaced"
    with (tmp_path / rel).open("a") as f:
        f.write(json.dumps(spaced) + "\n")
    assert by_day(ccusage_report(tmp_path, "daily")) == expected_by_day(corpus, "UTC")
    assert os.path.getsize(tmp_path / rel) > 0
