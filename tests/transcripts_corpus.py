"""A seeded, deterministic corpus of Claude Code 2.1.197 transcripts, with the totals ccusage reports.

``write_corpus(root)`` writes ``root/projects/<folder>/<session_id>.jsonl`` and
``<folder>/<session_id>/subagents/agent-<agentId>.jsonl`` as Claude Code does under
``~/.claude`` (so ``CLAUDE_CONFIG_DIR=root`` points ccusage at it), and returns a
``Corpus`` that knows by construction every file, every malformed or partial line, every
line that carries usage, and from those the totals ccusage 20.0.24 reports (its dedup
rules, observed, are in docs/transcripts.md section 2 and in ``Corpus.winners``).

The first twelve sessions are fixed scenarios holding the cases that trip tools up (see
``_SCENARIOS``); more sessions, or ``target_bytes``, add ordinary sessions with realistic
tool-result sizes (a few KB, some of 50-200 KB). Lines are written as Claude Code writes
them: compact JSON (``JSON.stringify``), UTF-8, one object per line. Compact matters:
ccusage 20.0.24 skips a line whose ``"usage":`` is written with a space after the colon.

CLI: ``python -m tests.transcripts_corpus OUT_DIR [--bytes 600M] [--seed N] [--sessions N]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

VERSION = "2.1.197"
SONNET = "claude-sonnet-4-5-20250929"
OPUS_45 = "claude-opus-4-5-20251101"
OPUS_41 = "claude-opus-4-1-20250805"
HAIKU = "claude-haiku-4-5-20251001"
UNPRICED_MODEL = "claude-foo-9"  # ccusage prices it at 0, silently
SYNTHETIC_MODEL = "<synthetic>"
MODELS = (SONNET, OPUS_45, OPUS_41, HAIKU, UNPRICED_MODEL)
# Above this prompt size (input + cache write + cache read) long-context pricing rules
# differ (ccusage: only the excess at the higher rate; Anthropic: the whole request).
# Only the sessions in Corpus.long_context_sessions go over it.
LONG_CONTEXT_THRESHOLD = 200_000
COMPACT_AT = 160_000  # context size at which an ordinary session compacts

# Kinds of lines, counted per file and per session (Corpus.kinds). Conversation lines (one
# toolsdb.messages row each): an assistant line counts as the type of its one content block.
CONVERSATION_KINDS = frozenset(
    {"prompt", "tool_result", "thinking", "text", "tool_use", "compact_boundary", "compact_summary", "api_error"}
)
# Not messages: "summary", "file-history-snapshot", "progress", "system:api_error";
# bad lines: "malformed" (complete lines that are not a valid record), "partial" (a last
# line cut by a partial write, no newline).

_WORD_TEXT = (
    "the a an of to in for on with by from at as is are was be this that it its we you they "
    "function return value error test file path import class def self none true false list dict "
    "query table index row column schema session token model cache read write stream line json "
    "parse result output input budget lock timeout retry worker queue event hook import-transcripts "
    'naïve café résumé → ✓ 漢字 “quoted” \\backslash\\ "dq" tab\there'
)
_WORDS = tuple(_WORD_TEXT.split(" "))


def dumps(obj: Any) -> str:
    """One transcript line as Claude Code writes it (compact, UTF-8 kept)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def project_folder(cwd: str) -> str:
    """The folder name Claude Code uses for a cwd: every non-alphanumeric character made '-'."""
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _utc(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


def _midnight(day: str, tz: str) -> datetime:
    """The UTC instant of local midnight starting `day` in `tz`."""
    return datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


@dataclass(frozen=True)
class Totals:
    """Tokens of billed responses; cache_creation = 5m + 1h writes (ccusage's cacheCreationTokens)."""

    requests: int = 0
    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0

    @property
    def cache_creation(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.requests + other.requests,
            self.input + other.input,
            self.output + other.output,
            self.cache_write_5m + other.cache_write_5m,
            self.cache_write_1h + other.cache_write_1h,
            self.cache_read + other.cache_read,
        )

    def ccusage(self) -> dict[str, int]:
        """The four token fields as ccusage's JSON names them."""
        return {
            "inputTokens": self.input,
            "outputTokens": self.output,
            "cacheCreationTokens": self.cache_creation,
            "cacheReadTokens": self.cache_read,
        }


@dataclass(frozen=True)
class UsageLine:
    """One line ccusage reads usage from (type assistant, valid timestamp, not <synthetic>)."""

    path: str  # relative to the corpus root, posix
    line_no: int  # 1-based
    session: str  # the session the file belongs to (file stem; a subagent file: its parent's)
    session_field: str  # the line's sessionId
    message_id: str | None
    request_id: str | None
    timestamp: datetime
    model: str
    input: int
    output: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    is_subagent_file: bool

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_write_5m + self.cache_write_1h + self.cache_read

    @property
    def prompt(self) -> int:
        return self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read

    def totals(self) -> Totals:
        return Totals(1, self.input, self.output, self.cache_write_5m, self.cache_write_1h, self.cache_read)


@dataclass
class _FileState:
    """What a writer needs to continue a file (append_response)."""

    session_id: str
    cwd: str
    git_branch: str
    model: str
    split: bool
    one_hour: float
    agent_id: str | None
    last_uuid: str | None
    now: datetime
    ctx: int
    pending: int
    lines: int


@dataclass
class Corpus:
    root: Path
    seed: int
    files: list[Path] = field(default_factory=list)  # relative to root, sorted
    malformed: dict[Path, list[int]] = field(default_factory=dict)  # 1-based line numbers
    partial: dict[Path, tuple[int, int]] = field(default_factory=dict)  # (line number, byte offset) of a cut last line
    usage_lines: list[UsageLine] = field(default_factory=list)
    kinds_by_file: dict[Path, Counter[str]] = field(default_factory=dict)
    sessions: list[str] = field(default_factory=list)  # main session ids, in the order written
    session_files: dict[str, list[Path]] = field(default_factory=dict)  # session id -> its files
    long_context_sessions: set[str] = field(default_factory=set)
    forks: dict[str, str] = field(default_factory=dict)  # fork session id -> the session it copies
    no_request_id_lines: int = 0
    _state: dict[Path, _FileState] = field(default_factory=dict, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _text: str = field(default="", repr=False)

    # -- what ccusage counts ------------------------------------------------------------

    def winners(self, report: str = "daily") -> list[UsageLine]:
        """The lines ccusage 20.0.24 bills, one per API response, in its reading order.

        Observed rules (docs/transcripts.md section 2): files are read main files first, then
        subagent files, each group in path order; the key is message.id + requestId, global
        across files; of two lines with one key the one with more output tokens wins, then
        the larger total; on a full tie the first read stays. The winner's timestamp dates
        the response, its file names the session. A line without message.id is never
        deduplicated. A line without requestId: the daily report keys it by message.id +
        timestamp (so a split response's lines, whose timestamps differ, each count), the
        session report by sessionId + message.id (one per response, the larger).

        The daily report also reads the subagent message copied into an ``agent_progress``
        line (keyed like any line, dated by the copy's own timestamp); the corpus's copies
        repeat a subagent line exactly, so they change no total and are not listed here.

        ``report="toolsdb"``: toolsdb's rule, the daily one except that a line without
        requestId is keyed by its message.id alone (message.id names one API response), so
        a split response without requestId counts once, globally.
        """
        if report not in ("daily", "session", "toolsdb"):
            raise ValueError(report)
        order = sorted(self.usage_lines, key=lambda u: (u.is_subagent_file, u.path, u.line_no))
        best: dict[tuple[str, ...], UsageLine] = {}
        alone: list[UsageLine] = []
        for u in order:
            if u.message_id is None:
                alone.append(u)
                continue
            if u.request_id is not None:
                key: tuple[str, ...] = (u.message_id, u.request_id)
            elif report == "toolsdb":
                key = ("msg", u.message_id)
            elif report == "daily":
                key = ("", u.message_id, u.timestamp.isoformat())
            else:
                key = ("", u.session_field, u.message_id)
            old = best.get(key)
            if old is None or u.output > old.output or (u.output == old.output and u.total > old.total):
                best[key] = u
        return [*best.values(), *alone]

    def expected_daily(self, tz: str = "UTC", report: str = "daily") -> dict[str, dict[str, Totals]]:
        """{local date in tz (YYYY-MM-DD): {model: Totals}}, as `ccusage claude daily` groups
        (``report="toolsdb"``: as `toolsdb usage daily` does, see winners)."""
        zone = ZoneInfo(tz)
        out: dict[str, dict[str, Totals]] = {}
        for u in self.winners(report):
            day = u.timestamp.astimezone(zone).date().isoformat()
            models = out.setdefault(day, {})
            models[u.model] = models.get(u.model, Totals()) + u.totals()
        return out

    def expected_sessions(self) -> dict[str, dict[str, Totals]]:
        """{session id: {model: Totals}}, as `ccusage claude session` groups (by the winner's file).

        Differs from the daily totals where a response without requestId spans lines (see winners).
        """
        out: dict[str, dict[str, Totals]] = {}
        for u in self.winners("session"):
            models = out.setdefault(u.session, {})
            models[u.model] = models.get(u.model, Totals()) + u.totals()
        return out

    def expected_total(self) -> Totals:
        """All of expected_daily (any time zone) in one."""
        total = Totals()
        for u in self.winners():
            total = total + u.totals()
        return total

    def requests_by_model(self) -> dict[str, int]:
        return dict(Counter(u.model for u in self.winners()))

    @property
    def unpriced_requests(self) -> int:
        """Billed responses of UNPRICED_MODEL (ccusage: cost 0; toolsdb: cost null)."""
        return self.requests_by_model().get(UNPRICED_MODEL, 0)

    def kinds(self, session: str) -> Counter[str]:
        """Lines by kind (CONVERSATION_KINDS, other record types, malformed, partial) of a session's files."""
        total: Counter[str] = Counter()
        for path in self.session_files[session]:
            total.update(self.kinds_by_file[path])
        return total

    @property
    def total_bytes(self) -> int:
        return sum((self.root / p).stat().st_size for p in self.files)

    # -- appending ------------------------------------------------------------------------

    def append_response(
        self,
        path: Path,
        *,
        blocks: int = 3,
        model: str | None = None,
        line_delay: float = 0.0,
        split_writes: bool = False,
    ) -> Totals:
        """Append one complete turn (a prompt, then one response of `blocks` lines) to a file.

        Each line is written and flushed on its own (`line_delay` seconds apart; with
        `split_writes` each line goes out in two writes, so a reader can see half a line).
        The corpus's expected totals include the response afterwards; returns its Totals.
        """
        rel = path.relative_to(self.root) if path.is_absolute() else path
        if rel in self.partial:
            raise ValueError(f"{rel} ends with a partial line: appending would corrupt it")
        state = self._state[rel]
        if model is not None:
            state.model = model
        gen = _Gen(self, rel, state, self._rng, self._text)
        gen.now += timedelta(seconds=self._rng.uniform(5, 60))
        gen.prompt("one more thing: " + gen.words(8))
        usage = gen.response(n_blocks=max(1, min(6, blocks)), tools=False)
        with (self.root / rel).open("ab") as f:
            for line in gen.out:
                data = (line + "\n").encode()
                if split_writes:
                    half = len(data) // 2
                    f.write(data[:half])
                    f.flush()
                    if line_delay:
                        time.sleep(line_delay / 2)
                    f.write(data[half:])
                else:
                    f.write(data)
                f.flush()
                if line_delay:
                    time.sleep(line_delay)
        gen.commit()
        return usage


# -- generation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scenario:
    """A fixed session: its start, model, cache style and the cases it holds."""

    start: str  # UTC
    minutes: int
    model: str
    cwd: str
    split: bool = True  # usage has the cache_creation {5m, 1h} object
    one_hour: float = 0.0  # share of cache writes that are 1h writes
    straddle: tuple[str, str] | None = None  # (local day, tz): a response's lines straddle that midnight
    features: frozenset[str] = frozenset()


def _s(*names: str) -> frozenset[str]:
    return frozenset(names)


# Sessions crossing midnight: UTC (00:00Z), America/New_York (05:00Z in December),
# Asia/Kolkata (18:30Z), Pacific/Chatham (10:15Z); America/New_York's DST end (2026-11-01 06:00Z).
_SCENARIOS: tuple[_Scenario, ...] = (
    _Scenario(
        "2026-11-30T23:35:00",
        45,
        SONNET,
        "/home/dev/toolsdb",
        straddle=("2026-12-01", "UTC"),
        features=_s("subagent", "other_records", "synthetic"),
    ),
    _Scenario(
        "2026-12-01T04:40:00",
        40,
        OPUS_45,
        "/home/dev/toolsdb",
        one_hour=1.0,
        straddle=("2026-12-01", "America/New_York"),
        features=_s("model_switch", "unpriced", "subagent"),
    ),
    _Scenario(
        "2026-12-01T18:10:00",
        40,
        SONNET,
        "/srv/app.example.com/api",
        split=False,
        straddle=("2026-12-02", "Asia/Kolkata"),
        features=_s("big_first", "no_request_id"),
    ),
    _Scenario("2026-11-01T05:30:00", 60, HAIKU, "/home/dev/toolsdb", one_hour=0.3, features=_s("other_records")),
    _Scenario("2026-11-20T09:00:00", 150, SONNET, "/home/dev/big_repo", one_hour=1.0, features=_s("compaction")),
    _Scenario("2026-11-21T14:00:00", 30, SONNET, "/home/dev/big_repo", features=_s("long_context")),
    _Scenario("2026-11-22T10:00:00", 25, OPUS_41, "/home/dev/toolsdb", features=_s("malformed", "synthetic")),
    _Scenario("2026-11-23T16:00:00", 20, SONNET, "/home/dev/toolsdb", one_hour=0.5, features=_s("partial")),
    _Scenario("2026-11-24T11:00:00", 30, OPUS_45, "/home/dev/web app (v2)", features=_s("subagent", "fork_source")),
    _Scenario("2026-11-24T13:00:00", 20, OPUS_45, "/home/dev/web app (v2)", features=_s("fork")),
    _Scenario(
        "2026-11-30T10:00:00",
        30,
        HAIKU,
        "/home/dev/toolsdb",
        straddle=("2026-12-01", "Pacific/Chatham"),
        features=_s("subagent", "other_records", "big_result"),
    ),
    _Scenario("2026-11-26T08:00:00", 35, SONNET, "/home/dev/notes", split=False, features=_s("model_switch")),
)


class _Gen:
    """Writes the lines of one file into memory; `commit` registers them with the Corpus."""

    def __init__(self, corpus: Corpus, rel: Path, state: _FileState, rng: random.Random, text: str) -> None:
        self.corpus = corpus
        self.rel = rel
        self.st = state
        self.rng = rng
        self.text = text
        self.now = state.now
        self.out: list[str] = []
        self.kinds: Counter[str] = Counter()
        self.usage: list[UsageLine] = []
        self.malformed: list[int] = []
        self.straddle: datetime | None = None
        self.big_first = False
        self.no_request_id = 0  # lines still to write without requestId
        self.no_rid_split = False  # one no-requestId response split over two lines
        self.big_results = False
        self.long_context = False
        self.compaction = False
        self.synthetic = False
        self.progress = False
        self.subagent_hook: Any = None
        self.first_response: dict[str, Any] | None = None  # the last line of the first response
        self.no_message_id = 0  # single-line responses still to write without message.id

    # helpers

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def token(self, prefix: str, n: int = 24) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789"
        return prefix + "".join(self.rng.choice(alphabet) for _ in range(n))

    def words(self, n: int) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(n))

    def blob(self, n: int) -> str:
        start = self.rng.randrange(0, len(self.text) // 2)
        return self.text[start : start + n]

    def advance(self, seconds: float) -> None:
        """Move the clock; stop just before a pending midnight so the next response straddles it."""
        target = self.now + timedelta(seconds=seconds)
        if self.straddle is not None and self.now <= self.straddle - timedelta(seconds=0.5) < target:
            target = self.straddle - timedelta(seconds=0.5)
        self.now = target

    def envelope(self, kind: str, parent: str | None, **extra: Any) -> dict[str, Any]:
        st = self.st
        d: dict[str, Any] = {
            "parentUuid": parent,
            "isSidechain": st.agent_id is not None,
            "userType": "external",
            "entrypoint": "cli",
            "cwd": st.cwd,
            "sessionId": st.session_id,
            "version": VERSION,
            "gitBranch": st.git_branch,
        }
        if st.agent_id is not None:
            d["agentId"] = st.agent_id
        d.update(extra)
        d["type"] = kind
        return d

    def emit(self, obj: dict[str, Any] | str, kind: str) -> None:
        self.out.append(obj if isinstance(obj, str) else dumps(obj))
        self.kinds[kind] += 1

    def line(self, kind: str, label: str, message: dict[str, Any] | None = None, **extra: Any) -> str:
        return str(self.line_obj(kind, label, message, **extra)["uuid"])

    def line_obj(self, kind: str, label: str, message: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        u = self.uid()
        d = self.envelope(kind, self.st.last_uuid, **extra)
        if message is not None:
            d["message"] = message
        d["uuid"] = u
        d["timestamp"] = iso(self.now)
        self.emit(d, label)
        self.st.last_uuid = u
        return d

    # records

    def prompt(self, text: str) -> None:
        self.line("user", "prompt", {"role": "user", "content": text}, promptId=self.uid())
        self.st.pending += len(text) // 4 + 20
        if self.progress and self.rng.random() < 0.5:
            snap = {"messageId": self.st.last_uuid, "trackedFileBackups": {}, "timestamp": iso(self.now)}
            self.emit(
                {
                    "type": "file-history-snapshot",
                    "messageId": self.st.last_uuid,
                    "snapshot": snap,
                    "isSnapshotUpdate": False,
                },
                "file-history-snapshot",
            )

    def tool_result(self, tool_id: str, name: str, size: int) -> None:
        self.advance(self.rng.uniform(0.2, 8))
        body = self.blob(size)
        result: dict[str, Any]
        if name == "Bash":
            result = {"stdout": body, "stderr": "", "interrupted": False, "isImage": False}
        else:
            path = f"{self.st.cwd}/src/{self.rng.choice(('schema', 'hook', 'import', 'serve', 'cli'))}.py"
            result = {
                "type": "text",
                "file": {"filePath": path, "content": body, "numLines": body.count("\n") + 1, "startLine": 1},
            }
        if self.progress and self.rng.random() < 0.3:
            self.emit(
                self.envelope(
                    "progress",
                    self.st.last_uuid,
                    data={"type": "bash_progress", "output": self.words(12), "elapsedTimeSeconds": 3},
                    toolUseID=tool_id,
                    parentToolUseID=tool_id,
                    uuid=self.uid(),
                    timestamp=iso(self.now),
                ),
                "progress",
            )
        content = [{"tool_use_id": tool_id, "type": "tool_result", "content": body, "is_error": False}]
        self.line("user", "tool_result", {"role": "user", "content": content}, toolUseResult=result)
        self.st.pending += min(size // 4, 25_000)

    def usage_obj(self, inp: int, out: int, w5: int, w1: int, read: int) -> dict[str, Any]:
        u: dict[str, Any] = {
            "input_tokens": inp,
            "cache_creation_input_tokens": w5 + w1,
            "cache_read_input_tokens": read,
        }
        if self.st.split:
            u["cache_creation"] = {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}
        u["output_tokens"] = out
        u["service_tier"] = "standard"
        return u

    def response(self, *, n_blocks: int | None = None, tools: bool = True) -> Totals:
        """One API response: 1-6 lines (one per content block), growing output_tokens."""
        st, rng = self.st, self.rng
        self.advance(rng.uniform(1, 12))
        straddling = False
        if self.straddle is not None and self.now + timedelta(seconds=30) >= self.straddle - timedelta(seconds=0.5):
            # close to the pending midnight: start this response just before it (its lines
            # span at most 6 x 3 s, so no response crosses it unnoticed)
            if self.now > self.straddle - timedelta(seconds=0.5):
                raise RuntimeError("the clock passed a pending midnight")
            self.now = self.straddle - timedelta(seconds=0.5)
            straddling = True
        if n_blocks is None:
            n_blocks = rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5, 6))
        if straddling:
            n_blocks = max(n_blocks, 2)
        kinds = ["thinking"] if rng.random() < 0.6 and n_blocks > 1 else []
        kinds.append("text")
        while len(kinds) < n_blocks:
            kinds.append("tool_use" if tools else "text")
        if tools and self.subagent_hook is not None and "tool_use" not in kinds:
            kinds.append("tool_use")
        # tokens of the prompt
        if st.ctx + st.pending > COMPACT_AT and not self.long_context and self.compaction_ok():
            self.compact()
        w = st.pending
        read = st.ctx
        inp = rng.randint(1, 40)
        if self.long_context:
            read = max(read, 185_000 + rng.randint(0, 30_000))
        w1 = round(w * st.one_hour)
        w5 = w - w1
        outs = sorted(rng.sample(range(1, 1200), len(kinds)))
        big_first = self.big_first and straddling
        if big_first:
            outs = [500, 7]
            kinds = ["text", "text"]
        mid = self.token("msg_01")
        rid: str | None = self.token("req_011C")
        if self.no_request_id and not straddling:
            rid = None
            self.no_request_id -= 1
            if self.no_rid_split:
                # Two lines, one message.id, no requestId: ccusage keys them by sessionId +
                # message.id and keeps the larger (observed).
                self.no_rid_split = False
                kinds, outs = ["text", "text"], [40, 260]
            else:
                kinds, outs = kinds[:1], outs[:1]
        no_mid = False
        if self.no_message_id and rid is not None and not straddling:
            # a line without message.id: never deduplicated by ccusage
            self.no_message_id -= 1
            no_mid = True
            kinds, outs = kinds[:1], outs[:1]
        tool_ids: list[tuple[str, str]] = []
        for i, (kind, out) in enumerate(zip(kinds, outs, strict=True)):
            if i:
                self.now += timedelta(seconds=rng.uniform(0.6, 3.0))
            last = i == len(kinds) - 1
            block: dict[str, Any]
            if kind == "thinking":
                block = {
                    "type": "thinking",
                    "thinking": self.words(rng.randint(20, 120)),
                    "signature": self.token("", 64),
                }
            elif kind == "text":
                block = {"type": "text", "text": self.words(rng.randint(5, 80))}
            else:
                tid = self.token("toolu_01")
                if self.subagent_hook is not None and not tool_ids:
                    name = "Task"
                    task = {"description": "Find the parser", "prompt": self.words(30), "subagent_type": "Explore"}
                    block = {"type": "tool_use", "id": tid, "name": name, "input": task}
                else:
                    name = rng.choice(("Read", "Bash", "Grep", "Edit"))
                    block = {"type": "tool_use", "id": tid, "name": name, "input": {"command": self.words(4)}}
                tool_ids.append((tid, name))
            stop = None
            if last or big_first:
                stop = "tool_use" if tool_ids else "end_turn"
            if big_first and i == 0:
                stop = None
            message = {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": st.model,
                "content": [block],
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": self.usage_obj(inp, out, w5, w1, read),
            }
            extra: dict[str, Any] = {} if rid is None else {"requestId": rid}
            if no_mid:
                del message["id"]
            obj = self.line_obj("assistant", kind, message, **extra)
            if last and self.first_response is None and rid is not None and not no_mid:
                self.first_response = obj
            self.usage.append(
                UsageLine(
                    self.rel.as_posix(),
                    len(self.out),
                    self.session_of_file(),
                    st.session_id,
                    None if no_mid else mid,
                    rid,
                    self.now,
                    st.model,
                    inp,
                    out,
                    w5,
                    w1,
                    read,
                    st.agent_id is not None,
                )
            )
        if rid is None:
            self.corpus.no_request_id_lines += len(kinds)
        if straddling:
            self.straddle = None
        top = max(outs)
        st.ctx = read + w
        st.pending = top
        if self.compaction and st.ctx > 100_000 and self.compaction_ok():
            self.compact()
        for tid, name in tool_ids:
            if name == "Task" and self.subagent_hook is not None:
                self.subagent_hook(self, tid)
                self.subagent_hook = None
                continue
            size = rng.choice((200, 800, 1500, 3000, 6000))
            if self.big_results and rng.random() < 0.06:
                size = rng.randint(50_000, 200_000)
            self.tool_result(tid, name, size)
        return Totals(1, inp, top, w5, w1, read)

    def compaction_ok(self) -> bool:
        return self.st.agent_id is None

    def compact(self) -> None:
        self.advance(self.rng.uniform(1, 5))
        boundary = self.uid()
        d = self.envelope("system", None, logicalParentUuid=self.st.last_uuid)
        d.update(
            subtype="compact_boundary",
            content="Conversation compacted",
            isMeta=False,
            level="info",
            compactMetadata={"trigger": "auto", "preTokens": self.st.ctx + self.st.pending},
            uuid=boundary,
            timestamp=iso(self.now),
        )
        self.emit(d, "compact_boundary")
        self.st.last_uuid = boundary
        self.advance(self.rng.uniform(20, 60))
        summary = "This session is being continued from a previous conversation. " + self.words(200)
        self.line("user", "compact_summary", {"role": "user", "content": summary}, isCompactSummary=True)
        self.st.ctx = 0
        self.st.pending = 9000 + self.rng.randint(0, 4000)

    def api_error(self) -> None:
        self.advance(self.rng.uniform(1, 4))
        err = self.envelope("system", self.st.last_uuid)
        err.update(
            subtype="api_error",
            level="error",
            error={"status": 529, "error": {"type": "overloaded_error", "message": "Overloaded"}},
            retryInMs=1200,
            retryAttempt=1,
            maxRetries=10,
            uuid=self.uid(),
            timestamp=iso(self.now),
        )
        self.emit(err, "system:api_error")
        usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        message = {
            "id": self.uid(),
            "model": SYNTHETIC_MODEL,
            "role": "assistant",
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "type": "message",
            "usage": usage,
            "content": [{"type": "text", "text": "API Error: 529 Overloaded"}],
        }
        self.line("assistant", "api_error", message, isApiErrorMessage=True)

    def session_of_file(self) -> str:
        return self.st.session_id

    def commit(self) -> None:
        c = self.corpus
        c.usage_lines.extend(self.usage)
        c.kinds_by_file.setdefault(self.rel, Counter()).update(self.kinds)
        self.st.now = self.now
        self.st.lines += len(self.out)


def _big_text(rng: random.Random, size: int) -> str:
    """A repeatable pseudo-source text (twice over, so any slice up to `size` is a plain slice)."""
    lines: list[str] = []
    n = 0
    while n < size:
        indent = "    " * rng.randint(0, 3)
        line = indent + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 14)))
        lines.append(line)
        n += len(line) + 1
    text = "\n".join(lines)[:size]
    return text + text


class _Writer:
    """Builds sessions (main file + subagent files) and writes each file in one go."""

    def __init__(self, corpus: Corpus, rng: random.Random, text: str) -> None:
        self.c = corpus
        self.rng = rng
        self.text = text

    def new_state(
        self, session_id: str, cwd: str, model: str, split: bool, one_hour: float, start: datetime
    ) -> _FileState:
        branch = self.rng.choice(("main", "main", "feature/transcripts", "fix-hook"))
        return _FileState(session_id, cwd, branch, model, split, one_hour, None, None, start, 0, 0, 0)

    def path_for(self, cwd: str, session_id: str, agent_id: str | None = None) -> Path:
        base = Path("projects") / project_folder(cwd)
        if agent_id is None:
            return base / f"{session_id}.jsonl"
        return base / session_id / "subagents" / f"agent-{agent_id}.jsonl"

    def write(self, rel: Path, gen: _Gen, tail: bytes = b"") -> None:
        data = ("\n".join(gen.out) + "\n").encode() + tail
        full = self.c.root / rel
        full.parent.mkdir(parents=True, exist_ok=True)
        with full.open("wb", buffering=1 << 20) as f:
            f.write(data)
        gen.commit()
        self.c.files.append(rel)
        self.c._state[rel] = gen.st
        if gen.malformed:
            self.c.malformed[rel] = gen.malformed
        self.c.session_files.setdefault(gen.st.session_id, []).append(rel)

    def session(self, sc: _Scenario, session_id: str | None = None) -> tuple[str, Path]:
        rng = self.rng
        sid = session_id or str(uuid.UUID(int=rng.getrandbits(128), version=4))
        start = _utc(sc.start) + timedelta(seconds=rng.uniform(0, 30))
        st = self.new_state(sid, sc.cwd, sc.model, sc.split, sc.one_hour, start)
        rel = self.path_for(sc.cwd, sid)
        gen = _Gen(self.c, rel, st, rng, self.text)
        f = sc.features
        if sc.straddle is not None:
            gen.straddle = _midnight(*sc.straddle)
        gen.big_first = "big_first" in f
        gen.no_request_id = 4 if "no_request_id" in f else 0
        gen.no_rid_split = "no_request_id" in f
        gen.no_message_id = 1 if "no_request_id" in f else 0
        gen.big_results = "big_result" in f
        gen.long_context = "long_context" in f
        gen.compaction = "compaction" in f
        gen.progress = "other_records" in f or rng.random() < 0.3
        subagents: list[tuple[Path, _Gen]] = []
        if "subagent" in f:
            gen.subagent_hook = lambda g, tid: subagents.append(self.subagent(g, tid))
        if gen.long_context:
            self.c.long_context_sessions.add(sid)
        self.c.sessions.append(sid)
        end = start + timedelta(minutes=sc.minutes)
        if "other_records" in f:
            gen.emit({"type": "summary", "summary": "Transcript import design", "leafUuid": gen.uid()}, "summary")
        turn = 0
        while gen.now < end or gen.straddle is not None:
            turn += 1
            gen.prompt(gen.words(rng.randint(4, 40)))
            if "synthetic" in f and turn == 2:
                gen.api_error()
            if "model_switch" in f and turn == 2:
                st.model = HAIKU if sc.model != HAIKU else SONNET
            if "model_switch" in f and turn == 3:
                st.model = sc.model
            if "unpriced" in f and turn in (3, 4):
                st.model = UNPRICED_MODEL if turn == 3 else sc.model
            if "malformed" in f and turn == 2:
                self.malformed_lines(gen)
            if gen.no_request_id or gen.no_message_id:
                # the cases without requestId: a single-line response, then (in the loop) more
                gen.response(tools=False)
                continue
            for _ in range(rng.randint(1, 4)):
                gen.response()
                gen.advance(rng.uniform(2, 30))
            gen.response(tools=False)
            gen.advance(rng.uniform(10, 240) if turn > 1 else rng.uniform(5, 60))
            if gen.long_context and turn >= 3:
                break
        if "compaction" in f and gen.kinds["compact_boundary"] == 0:
            gen.compact()
            gen.prompt("continue")
            gen.response(tools=False)
        tail = b""
        if "partial" in f:
            tail = self.partial_line(gen, rel)
        self.write(rel, gen, tail)
        for srel, sgen in subagents:
            self.write(srel, sgen)
        return sid, rel

    def subagent(self, parent: _Gen, tool_id: str) -> tuple[Path, _Gen]:
        """A subagent run for a Task call of `parent`; its time passes on the parent's clock."""
        rng = self.rng
        agent_id = "".join(rng.choice("0123456789abcdef") for _ in range(8))
        pst = parent.st
        st = _FileState(
            pst.session_id,
            pst.cwd,
            pst.git_branch,
            HAIKU,
            pst.split,
            pst.one_hour,
            agent_id,
            None,
            parent.now,
            0,
            3000,
            0,
        )
        rel = self.path_for(pst.cwd, pst.session_id, agent_id)
        gen = _Gen(self.c, rel, st, rng, self.text)
        gen.straddle = parent.straddle
        gen.prompt("Find where the transcript lines are parsed. " + gen.words(30))
        for _ in range(rng.randint(1, 3)):
            gen.response()
        gen.response(tools=False)
        parent.now = gen.now
        parent.straddle = gen.straddle
        parent.advance(rng.uniform(0.5, 2))
        final = gen.words(60)
        result = {
            "status": "completed",
            "agentId": agent_id,
            "content": [{"type": "text", "text": final}],
            "totalDurationMs": 41000,
            "totalTokens": 20000,
        }
        content = [{"tool_use_id": tool_id, "type": "tool_result", "content": [{"type": "text", "text": final}]}]
        parent.line("user", "tool_result", {"role": "user", "content": content}, toolUseResult=result)
        parent.st.pending += 400
        if parent.progress and gen.first_response is not None:
            # Claude Code copies the subagent's messages into agent_progress lines of the
            # parent file; ccusage's daily report reads them (keyed and dated as the copy says)
            copy = gen.first_response
            nested = {
                "type": "assistant",
                "timestamp": copy["timestamp"],
                "requestId": copy["requestId"],
                "uuid": copy["uuid"],
                "message": copy["message"],
            }
            parent.emit(
                parent.envelope(
                    "progress",
                    parent.st.last_uuid,
                    data={"type": "agent_progress", "agentId": agent_id, "message": nested},
                    toolUseID=tool_id,
                    parentToolUseID=tool_id,
                    uuid=parent.uid(),
                    timestamp=copy["timestamp"],
                ),
                "progress",
            )
        return rel, gen

    def malformed_lines(self, gen: _Gen) -> None:
        """Broken JSON, a JSON array, and an assistant line with usage and a bad timestamp."""
        broken = dumps(gen.envelope("assistant", gen.st.last_uuid, uuid=gen.uid()))[:-1] + ',"message":{"id":"msg_'
        gen.emit(broken, "malformed")
        gen.malformed.append(len(gen.out))
        gen.emit(dumps(["not", "an", "object", {"type": "assistant"}]), "malformed")
        gen.malformed.append(len(gen.out))
        usage = gen.usage_obj(12, 900, 100, 0, 2000)
        message = {
            "id": gen.token("msg_01"),
            "type": "message",
            "role": "assistant",
            "model": gen.st.model,
            "content": [{"type": "text", "text": "lost"}],
            "stop_reason": "end_turn",
            "usage": usage,
        }
        d = gen.envelope("assistant", gen.st.last_uuid, requestId=gen.token("req_011C"), message=message)
        d.update(uuid=gen.uid(), timestamp="not-a-timestamp")
        gen.emit(d, "malformed")
        gen.malformed.append(len(gen.out))

    def partial_line(self, gen: _Gen, rel: Path) -> bytes:
        """A last assistant line cut short with no newline (Claude Code killed mid-write)."""
        offset = sum(len(line.encode()) + 1 for line in gen.out)
        gen.advance(3)
        usage = gen.usage_obj(3, 4000, 10, 0, 5000)
        message = {
            "id": gen.token("msg_01"),
            "type": "message",
            "role": "assistant",
            "model": gen.st.model,
            "content": [{"type": "text", "text": gen.words(50)}],
            "stop_reason": "end_turn",
            "usage": usage,
        }
        d = gen.envelope("assistant", gen.st.last_uuid, requestId=gen.token("req_011C"), message=message)
        d.update(uuid=gen.uid(), timestamp=iso(gen.now))
        line = dumps(d).encode()
        self.c.partial[rel] = (len(gen.out) + 1, offset)
        gen.kinds["partial"] += 1
        return line[: len(line) * 3 // 5]

    def fork(self, source_rel: Path, source_sid: str, start: str) -> str:
        """A second session (/branch) copying the source's lines up to its second response's end."""
        rng = self.rng
        src = self.c._state[source_rel]
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        rel = self.path_for(src.cwd, sid)
        st = self.new_state(sid, src.cwd, src.model, src.split, src.one_hour, _utc(start))
        gen = _Gen(self.c, rel, st, rng, self.text)
        raw = (self.c.root / source_rel).read_text().splitlines()
        src_usage = {u.line_no: u for u in self.c.usage_lines if u.path == source_rel.as_posix()}
        cut, responses = 0, 0
        for i, text in enumerate(raw, 1):
            obj = json.loads(text)
            if obj.get("type") == "assistant" and obj["message"].get("stop_reason") is not None:
                responses += 1
                if responses == 2:
                    cut = i
                    break
        mapping: dict[str, str] = {}
        for i, text in enumerate(raw[:cut], 1):
            obj = json.loads(text)
            if obj.get("type") not in ("user", "assistant"):
                continue
            old = obj["uuid"]
            new = gen.uid()
            mapping[old] = new
            obj["parentUuid"] = mapping.get(obj["parentUuid"]) if obj["parentUuid"] else None
            obj["sessionId"] = sid
            obj["uuid"] = new
            obj["forkedFrom"] = {"sessionId": source_sid, "messageUuid": old}
            label = "prompt"
            if obj["type"] == "assistant":
                label = obj["message"]["content"][0]["type"]
                u = src_usage[i]
                gen.emit(obj, label)
                gen.usage.append(
                    UsageLine(
                        rel.as_posix(),
                        len(gen.out),
                        sid,
                        sid,
                        u.message_id,
                        u.request_id,
                        u.timestamp,
                        u.model,
                        u.input,
                        u.output,
                        u.cache_write_5m,
                        u.cache_write_1h,
                        u.cache_read,
                        False,
                    )
                )
                st.ctx = u.cache_read + u.cache_write_5m + u.cache_write_1h
                st.pending = u.output
            else:
                if isinstance(obj["message"]["content"], list):
                    label = "tool_result"
                gen.emit(obj, label)
            st.last_uuid = new
        gen.now = _utc(start)
        gen.progress = False
        for turn in range(3):
            gen.prompt(gen.words(rng.randint(4, 30)) if turn else "let's try the other approach instead")
            for _ in range(rng.randint(1, 3)):
                gen.response()
            gen.response(tools=False)
            gen.advance(rng.uniform(30, 200))
        self.write(rel, gen)
        self.c.sessions.append(sid)
        self.c.forks[sid] = source_sid
        return sid

    def ordinary(self, big: bool) -> None:
        rng = self.rng
        day = datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(
            days=rng.randrange(0, 32), seconds=rng.randrange(0, 86400)
        )
        sc = _Scenario(
            day.strftime("%Y-%m-%dT%H:%M:%S"),
            rng.randint(10, 90),
            rng.choice((SONNET, SONNET, OPUS_45, OPUS_41, HAIKU)),
            rng.choice(("/home/dev/toolsdb", "/home/dev/big_repo", "/home/dev/notes", "/srv/app.example.com/api")),
            split=rng.random() < 0.8,
            one_hour=rng.choice((0.0, 0.0, 1.0, 0.4)),
            features=_s(*(["subagent"] if rng.random() < 0.4 else []), *(["big_result"] if big else [])),
        )
        self.session(sc)


def write_corpus(root: Path, *, seed: int = 1, sessions: int = 12, target_bytes: int | None = None) -> Corpus:
    """Write the corpus under root (a fresh or empty folder) and return what it holds."""
    rng = random.Random(seed)
    text = _big_text(random.Random(seed * 7919 + 1), 256 * 1024)
    corpus = Corpus(root=root, seed=seed, _rng=rng, _text=text)
    w = _Writer(corpus, rng, text)
    fork_source: tuple[Path, str] | None = None
    for sc in _SCENARIOS[:sessions]:
        if "fork" in sc.features:
            if fork_source is not None:
                w.fork(fork_source[0], fork_source[1], sc.start)
            continue
        sid, rel = w.session(sc)
        if "fork_source" in sc.features:
            fork_source = (rel, sid)
    for _ in range(max(0, sessions - len(_SCENARIOS))):
        w.ordinary(big=False)
    if target_bytes is not None:
        written = sum((root / p).stat().st_size for p in corpus.files)
        while written < target_bytes:
            before = len(corpus.files)
            w.ordinary(big=True)
            written += sum((root / p).stat().st_size for p in corpus.files[before:])
    corpus.files.sort(key=Path.as_posix)
    for rel in corpus.files:
        corpus.kinds_by_file.setdefault(rel, Counter())
    return corpus


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]?)B?", text.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 600M)")
    return int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)])


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.transcripts_corpus", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (CLAUDE_CONFIG_DIR for ccusage)")
    parser.add_argument("--bytes", type=_size, default=None, help="keep adding sessions until this size (600M)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sessions", type=int, default=12)
    args = parser.parse_args(None if argv is None else list(argv))
    started = time.monotonic()
    corpus = write_corpus(args.out, seed=args.seed, sessions=args.sessions, target_bytes=args.bytes)
    took = time.monotonic() - started
    size = corpus.total_bytes
    total = corpus.expected_total()
    print(
        f"{args.out}: {len(corpus.files)} files, {len(corpus.sessions)} sessions, {size / 1e6:.1f} MB, "
        f"{sum(len(v) for v in corpus.malformed.values())} malformed + {len(corpus.partial)} partial lines, "
        f"{total.requests} requests, in {total.input} out {total.output} cache write {total.cache_creation} "
        f"read {total.cache_read}; {took:.1f} s ({size / 1e6 / max(took, 1e-9):.0f} MB/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
