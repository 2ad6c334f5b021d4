"""Reading Claude Code transcripts into toolsdb (docs/transcripts.md).

Python only frames and parses lines; every rule (which lines are messages,
one usage row per API response, prices, sessions, the file's offset) is in
``toolsdb.transcript_ingest()``. Standard library only: ``toolsdb hook``
imports this on Stop and SessionEnd without psycopg.

A file is read from where the database says the last import stopped
(``transcript_files.read_offset``, always just after a whole line), in
batches of whole lines; each batch and the new offset commit together, so an
import killed anywhere repeats nothing and loses nothing. A partial last line
(the file is being written) is left for the next run. The hashes of the first
4 KB and of the 4 KB before the offset tell an append from a truncated or
rewritten file, which is read again from the start (the line uuids and
response keys make that add only what is new).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HASH_SPAN = 4096
BATCH_LINES = 2000
BATCH_BYTES = 4 * 1024 * 1024
READ_CHUNK = 1024 * 1024
# A line longer than this is named as malformed and skipped (Claude Code
# caps tool output far below it).
MAX_LINE_BYTES = 32 * 1024 * 1024
# The record types that carry conversation (the rest, progress and file
# snapshots above all, never reach the database).
CONVERSATION_TYPES = frozenset({"user", "assistant", "system"})
TIMESTAMP = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)$"
)

# (file json, lines json) -> the function's answer, in a transaction of its own.
Ingest = Callable[[str, str], dict]


def default_roots(env: os._Environ[str] | dict[str, str] | None = None) -> list[Path]:
    """Claude Code's projects folders: CLAUDE_CONFIG_DIR/projects (comma-separated: each), else ~/.claude/projects."""
    env = os.environ if env is None else env
    configured = [p.strip() for p in env.get("CLAUDE_CONFIG_DIR", "").split(",") if p.strip()]
    bases = [Path(p).expanduser() for p in configured] or [Path.home() / ".claude"]
    return [b / "projects" for b in bases]


def source_host() -> str:
    return socket.gethostname()[:300] or "localhost"


def find_files(paths: Iterable[Path]) -> list[Path]:
    """Every *.jsonl file named or under a named folder (subagent files included), absolute, sorted, once."""
    found: set[Path] = set()
    for path in paths:
        path = path.expanduser().absolute()
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found.update(Path(root) / f for f in files if f.endswith(".jsonl"))
        elif path.exists():
            found.add(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return sorted(found)


def file_identity(path: Path) -> tuple[str | None, str | None]:
    """(session id, subagent id) from the file's place: <session>.jsonl, or
    <session>/subagents/[workflows/<run>/]agent-<id>.jsonl."""
    parts = path.parts
    if "subagents" in parts:
        at = len(parts) - 1 - parts[::-1].index("subagents")
        session = parts[at - 1] if at >= 1 else None
        stem = path.stem
        return session, (stem[6:] if stem.startswith("agent-") else stem) or None
    return path.stem or None, None


@dataclass
class FileResult:
    path: str
    lines: int = 0
    messages: int = 0
    usage: int = 0
    malformed: list[dict] = field(default_factory=list)
    rewritten: bool = False
    skipped: bool = False
    error: str | None = None
    offset: int = 0  # where the file's import state now is (after the last batch sent)
    conflict: int | None = None  # another import moved the offset here: nothing of this run was added
    unfinished: bool = False  # the deadline came between batches: lines are left


@dataclass
class Summary:
    files: int = 0
    unchanged: int = 0
    read: int = 0
    rewritten: int = 0
    lines: int = 0
    messages: int = 0
    usage: int = 0
    sessions_created: int = 0
    malformed: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    bytes_read: int = 0

    def as_json(self) -> dict:
        return {
            "files": self.files,
            "unchanged_files": self.unchanged,
            "files_read": self.read,
            "rewritten_files": self.rewritten,
            "lines": self.lines,
            "messages_added": self.messages,
            "usage_rows_changed": self.usage,
            "sessions_created": self.sessions_created,
            "bytes_read": self.bytes_read,
            "malformed_lines": len(self.malformed),
            "malformed": self.malformed[:1000],
            "failed_files": self.failed,
        }


STATE_SQL = """
select coalesce(jsonb_object_agg(f.path, jsonb_build_object(
    'read_offset', f.read_offset, 'size_seen', f.size_seen, 'mtime_seen', f.mtime_seen,
    'head_length', f.head_length, 'head_hash', f.head_hash, 'tail_hash', f.tail_hash,
    'lines_read', f.lines_read
)), '{}')::text
from toolsdb.transcript_files as f
where f.source_host = $1
"""

# One file's state (the live import on a hook event looks up only its file).
FILE_STATE_SQL = """
select jsonb_build_object(
    'read_offset', f.read_offset, 'size_seen', f.size_seen, 'mtime_seen', f.mtime_seen,
    'head_length', f.head_length, 'head_hash', f.head_hash, 'tail_hash', f.tail_hash,
    'lines_read', f.lines_read
)::text
from toolsdb.transcript_files as f
where f.source_host = $1 and f.path = $2
"""

INGEST_SQL = "select toolsdb.transcript_ingest($1::jsonb, $2::jsonb)::text"

# The hook events after which a session's transcript has new lines worth
# importing at once (docs/transcripts.md section 5): defined in hook.py, which
# must know them without importing this module.
from .hook import LIVE_EVENTS, jsonb_safe  # noqa: E402


def live_paths(payload: object) -> list[str]:
    """The transcript files a hook payload asks to import now: for the
    LIVE_EVENTS, ``transcript_path`` and (SubagentStop) ``agent_transcript_path``."""
    if not isinstance(payload, dict) or payload.get("hook_event_name") not in LIVE_EVENTS:
        return []
    found: list[str] = []
    for name in ("transcript_path", "agent_transcript_path"):
        value = payload.get(name)
        if isinstance(value, str) and value and "\x00" not in value and value not in found:
            found.append(value)
    return found


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mtime(st: os.stat_result) -> str:
    return dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _same_mtime(seen: str | None, now: str) -> bool:
    if not seen:
        return False
    try:
        return dt.datetime.fromisoformat(seen.replace("Z", "+00:00")) == dt.datetime.fromisoformat(
            now.replace("Z", "+00:00")
        )
    except ValueError:
        return False


def _excerpt(raw: bytes) -> str:
    return raw[:200].decode("utf-8", errors="replace")[:200]


def check_line(raw: bytes) -> tuple[object | None, str | None]:
    """(the parsed line, None) for a conversation line; (None, None) for a
    line of another type (not sent); (None, error) for a malformed one."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return None, f"not JSON: {str(exc).splitlines()[0][:200]}"
    if not isinstance(obj, dict):
        return None, f"not a JSON object but a JSON {type(obj).__name__}"
    if obj.get("type") not in CONVERSATION_TYPES:
        return None, None
    stamp = obj.get("timestamp")
    if not isinstance(stamp, str) or not TIMESTAMP.match(stamp):
        return None, f"bad timestamp: {str(stamp)[:60]!r}"
    try:
        dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None, f"bad timestamp: {stamp[:60]!r}"
    return obj, None


# Escapes PostgreSQL's jsonb refuses (\u0000) or that may be a lone surrogate
# (\ud800 to \udfff, either case; a valid pair is re-serialised too, harmlessly):
# such a line is sent re-serialised, made safe.
_UNSAFE_ESCAPE = re.compile(r"\\u0000|\\[uU][dD][89a-fA-F]")


def _line_json(offset: int, raw: bytes, obj: object) -> str:
    text = raw.decode("utf-8", errors="replace")
    if "\ufffd" in text or _UNSAFE_ESCAPE.search(text):
        text = json.dumps(jsonb_safe(obj), ensure_ascii=False)
    return f'{{"o":{offset},"l":{text}}}'


def split_lines(data: bytes, base: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line without its newline) for each whole line of data, which starts at offset base."""
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return
        yield base + start, data[start:end]
        start = end + 1


class _DiskSource:
    """A file on disk, read through its descriptor."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.fd = handle.fileno()

    def pread(self, length: int, at: int) -> bytes:
        return os.pread(self.fd, length, at)

    def chunks(self, offset: int) -> Iterator[bytes]:
        self.handle.seek(offset)
        while chunk := self.handle.read(READ_CHUNK):
            yield chunk


class _BytesSource:
    """A piece of a file held in memory: ``context`` (the bytes just before
    ``start``, for the tail hashes) then ``data`` (from ``start`` on)."""

    def __init__(self, data: bytes, start: int, context: bytes = b"") -> None:
        self.base = start - len(context)
        self.buffer = context + data

    def pread(self, length: int, at: int) -> bytes:
        if at < self.base:
            raise ValueError(f"bytes before offset {self.base} were not given")
        return self.buffer[at - self.base : at - self.base + length]

    def chunks(self, offset: int) -> Iterator[bytes]:
        view = memoryview(self.buffer)
        for at in range(offset - self.base, len(self.buffer), READ_CHUNK):
            yield bytes(view[at : at + READ_CHUNK])


class FileImporter:
    """Imports files through ``ingest``, one transaction per batch of whole lines:
    from disk (:meth:`run`), or from bytes a client sent (:meth:`run_bytes`)."""

    def __init__(self, ingest: Ingest, host: str, ids: dict[str, str] | None = None) -> None:
        self.ingest = ingest
        self.host = host
        self.ids = ids or {}
        self.sessions_created = 0

    def run(self, path: Path, state: dict | None, deadline: float | None = None) -> FileResult:
        """Import what ``path`` holds past the state's offset (all of it when
        new, truncated or rewritten). ``deadline`` (monotonic) stops between
        batches; what is left is taken by the next import."""
        result = FileResult(str(path))
        try:
            handle = open(path, "rb")  # noqa: SIM115 (closed below; a failure to open is a result, not a raise)
        except OSError as exc:
            result.error = f"cannot read {path}: {exc.strerror}"
            return result
        with handle:
            try:
                self._read(handle, path, state, deadline, result)
            except OSError as exc:
                result.error = f"cannot read {path}: {exc.strerror}"
        return result

    def run_bytes(
        self,
        path: str,
        data: bytes,
        start: int,
        *,
        context: bytes = b"",
        size: int | None = None,
        mtime: str | None = None,
        head_length: int = 0,
        head_hash: str | None = None,
        rewrite: bool = False,
        lines_before: int = 0,
        deadline: float | None = None,
    ) -> FileResult:
        """Import ``data``, the bytes of the file ``path`` (on another machine)
        from offset ``start``: its whole lines (a partial last line is left).
        ``context`` is the file's min(4096, start) bytes before ``start`` (the
        tail hashes are computed over them); size, mtime and the head's length
        and hash are the client's, recorded as the file's state. The caller
        has checked that ``start`` follows what was imported (or ``rewrite``)."""
        result = FileResult(path, offset=start)
        if len(context) != min(HASH_SPAN, start):
            result.error = f"the {min(HASH_SPAN, start)} bytes before offset {start} are needed, {len(context)} given"
            return result
        self._import(
            _BytesSource(data, start, context),
            Path(path),
            start,
            lines_before,
            rewrite,
            start + len(data) if size is None else size,
            mtime,
            head_length,
            head_hash,
            deadline,
            result,
        )
        return result

    def _read(self, handle, path: Path, state: dict | None, deadline: float | None, result: FileResult) -> None:
        fd = handle.fileno()
        st = os.fstat(fd)
        size, mtime = st.st_size, _mtime(st)
        offset, line_no, rewrite = 0, 0, False
        if state:
            if int(state.get("size_seen") or -1) == size and _same_mtime(state.get("mtime_seen"), mtime):
                result.skipped = True
                result.offset = int(state.get("read_offset") or 0)
                return
            offset, line_no = int(state.get("read_offset") or 0), int(state.get("lines_read") or 0)
            head_length = int(state.get("head_length") or 0)
            tail_length = min(HASH_SPAN, offset)
            rewrite = (
                size < offset
                or (head_length > 0 and _sha(os.pread(fd, head_length, 0)) != state.get("head_hash"))
                or (offset > 0 and _sha(os.pread(fd, tail_length, offset - tail_length)) != state.get("tail_hash"))
            )
            if rewrite:
                offset, line_no = 0, 0
        result.offset = offset
        head = os.pread(fd, HASH_SPAN, 0)
        self._import(
            _DiskSource(handle), path, offset, line_no, rewrite, size, mtime, len(head), _sha(head), deadline, result
        )

    def _import(
        self,
        source: _DiskSource | _BytesSource,
        path: Path,
        offset: int,
        line_no: int,
        rewrite: bool,
        size: int,
        mtime: str | None,
        head_length: int,
        head_hash: str | None,
        deadline: float | None,
        result: FileResult,
    ) -> None:
        """Send the whole lines ``source`` holds from ``offset`` in batches;
        ``result.offset`` ends where the file's state now is."""
        result.rewritten = rewrite
        session, subagent = file_identity(path)
        batch: list[str] = []
        errors: list[dict] = []
        counts = {"bytes": 0, "lines": 0}
        batch_start = offset
        first = True

        def bad(at: int, number: int, error: str, raw: bytes) -> None:
            entry = {"offset": at, "line": number, "error": error, "excerpt": _excerpt(raw)}
            errors.append(entry)
            result.malformed.append({"file": str(path), **entry})

        def flush(end: int, last: bool = False) -> bool:
            """Send the batch ending at ``end``; False when another import moved the offset.
            Before the ``last`` batch the file's size is recorded as ``end``: an
            import stopped by its deadline there must not look finished (size
            and mtime unchanged) to the next one."""
            nonlocal batch, errors, batch_start, first
            tail_from = max(0, end - HASH_SPAN)
            file_info = {
                "source_host": self.host,
                "path": str(path),
                "session_id": session,
                "subagent_id": subagent,
                "start_offset": batch_start,
                "end_offset": end,
                "rewrite": rewrite and first,
                "size": size if last else end,
                "mtime": mtime,
                "head_length": head_length,
                "head_hash": head_hash,
                "tail_hash": _sha(source.pread(end - tail_from, tail_from)),
                "lines": counts["lines"],
                "errors": errors,
                **self.ids,
            }
            answer = self.ingest(json.dumps(file_info), "[" + ",".join(batch) + "]")
            if answer.get("status") == "conflict":
                result.error = "another import of this file moved on; run again"
                result.conflict = int(answer.get("expected_offset") or 0)
                return False
            result.messages += int(answer.get("messages", 0))
            result.usage += int(answer.get("usage", 0))
            result.lines += counts["lines"]
            self.sessions_created += int(answer.get("sessions_created", 0))
            batch, errors, first = [], [], False
            counts["bytes"] = counts["lines"] = 0
            batch_start = result.offset = end
            return True

        position = offset  # file offset of the first byte of `pending`
        pending = b""
        skipping: tuple[int, bytes] | None = None  # (start, first bytes) of an over-long line being passed over
        seen = offset  # file offset after the chunks read so far
        for chunk in source.chunks(offset):
            chunk_at, seen = seen, seen + len(chunk)
            if skipping is not None:
                at = chunk.find(b"\n")
                if at < 0:
                    continue
                line_no += 1
                counts["lines"] += 1
                bad(skipping[0], line_no, f"a line over {MAX_LINE_BYTES} bytes", skipping[1])
                skipping, pending, position = None, b"", chunk_at + at + 1
                chunk = chunk[at + 1 :]
            data = pending + chunk
            last_newline = data.rfind(b"\n")
            if last_newline < 0:
                pending = data
                if len(pending) > MAX_LINE_BYTES:  # pass over the rest of an over-long line without holding it
                    skipping, pending = (position, pending[:HASH_SPAN]), b""
                continue
            for at, raw in split_lines(data[: last_newline + 1], position):
                line_no += 1
                counts["lines"] += 1
                if len(raw) > MAX_LINE_BYTES:
                    bad(at, line_no, f"a line over {MAX_LINE_BYTES} bytes", raw)
                    continue
                if not raw.strip():
                    continue
                obj, error = check_line(raw)
                if error:
                    bad(at, line_no, error, raw)
                elif obj is not None:
                    batch.append(_line_json(at, raw, obj))
                    counts["bytes"] += len(raw)
                if len(batch) >= BATCH_LINES or counts["bytes"] >= BATCH_BYTES:
                    if not flush(at + len(raw) + 1):
                        return
                    if deadline is not None and time.monotonic() > deadline:
                        result.error = "time budget spent; the rest is left for the next import"
                        result.unfinished = True
                        return
            pending = data[last_newline + 1 :]
            position += last_newline + 1
        if first or batch or errors or counts["lines"] or position != batch_start or size != position:
            flush(position, last=True)


def import_files(
    files: list[Path],
    ingest: Ingest,
    states: dict[str, dict],
    host: str,
    ids: dict[str, str] | None = None,
    progress: Callable[[Path, int], None] | None = None,
    deadline: float | None = None,
) -> Summary:
    """Import each file from its state (``states``: path -> transcript_files row, as STATE_SQL gives)."""
    summary = Summary(files=len(files))
    importer = FileImporter(ingest, host, ids)
    for path in files:
        before = states.get(str(path))
        result = importer.run(path, before, deadline)
        if result.skipped:
            summary.unchanged += 1
        else:
            summary.read += 1
            summary.bytes_read += max(
                0, _size(path) - (0 if result.rewritten or not before else int(before["read_offset"]))
            )
        summary.rewritten += int(result.rewritten)
        summary.lines += result.lines
        summary.messages += result.messages
        summary.usage += result.usage
        summary.malformed.extend(result.malformed)
        if result.error:
            summary.failed.append({"file": str(path), "error": result.error})
        if progress is not None:
            progress(path, _size(path))
        if deadline is not None and time.monotonic() > deadline:
            break
    summary.sessions_created = importer.sessions_created
    return summary


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
