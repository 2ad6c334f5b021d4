"""The live transcript import (docs/transcripts.md section 5) with real parts:
the installed ``toolsdb hook`` (direct to PostgreSQL, and ``--post`` to a real
``toolsdb serve`` process, which has its own database here so nothing can
arrive through a shared disk), ``toolsdb serve --read-transcripts``, and
transcripts written by the seeded corpus generator (tests/transcripts_corpus.py),
whose expected totals are known by construction."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from toolsdb import hook as hook_module
from toolsdb import transcripts

from .conftest import Pg, run_cli
from .dbhelpers import one, scalar
from .hookhelpers import Hook, Result, payload
from .servehelpers import Served, create_token, start_serve
from .transcripts_corpus import CONVERSATION_KINDS, Corpus, Totals, write_corpus

ON = {"TOOLSDB_HOOK_TRANSCRIPTS": "on", "TOOLSDB_HOOK_BACKGROUND_IMPORT": "off"}


@pytest.fixture(scope="module")
def live_db(pg: Pg, template: str) -> Iterator[str]:
    with pg.clone(f"live_{id(pg)}", template) as name:
        with psycopg.connect(pg.conninfo(name), autocommit=True) as conn:
            conn.execute("insert into toolsdb.users (username, email) values ('ann', 'ann@example.com')")
        yield name


@pytest.fixture(scope="module")
def remote_db(pg: Pg, template: str) -> Iterator[str]:
    """The database of the remote serve (another database: what arrives there came over HTTP)."""
    with pg.clone(f"remote_{id(pg)}", template) as name:
        with psycopg.connect(pg.conninfo(name), autocommit=True) as conn:
            conn.execute("insert into toolsdb.users (username, email) values ('ann', 'ann@example.com')")
        yield name


@pytest.fixture
def su(pg: Pg, live_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.conninfo(live_db), autocommit=True) as conn:
        yield conn


@pytest.fixture
def remote(pg: Pg, remote_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.conninfo(remote_db), autocommit=True) as conn:
        yield conn


@pytest.fixture
def hook(pg: Pg, live_db: str, tmp_path: Path) -> Hook:
    folder = tmp_path / "hook"
    folder.mkdir()
    return Hook(pg, live_db, folder)


@pytest.fixture(scope="module")
def served(pg: Pg, remote_db: str, tmp_path_factory) -> Iterator[Served]:
    server = start_serve(pg.url(remote_db), tmp_path_factory.mktemp("spool"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(pg: Pg, remote_db: str) -> str:
    return create_token(pg.url(remote_db), "--user", "ann@example.com")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def corpus_of(tmp_path: Path, seed: int, sessions: int = 1) -> Corpus:
    return write_corpus(tmp_path / "claude", seed=seed, sessions=sessions)


def main_file(corpus: Corpus, session: str) -> Path:
    return next(corpus.root / p for p in corpus.session_files[session] if "subagents" not in p.parts)


def sub_files(corpus: Corpus, session: str) -> list[Path]:
    return [corpus.root / p for p in corpus.session_files[session] if "subagents" in p.parts]


def expected(corpus: Corpus, files: list[Path]) -> Totals:
    """What the billed responses of ``files`` add up to (corpus winners, files of one session)."""
    names = {p.relative_to(corpus.root).as_posix() for p in files}
    total = Totals()
    for u in corpus.winners():
        if u.path in names:
            total = total + u.totals()
    return total


def expected_messages(corpus: Corpus, files: list[Path]) -> int:
    kinds = [corpus.kinds_by_file[p.relative_to(corpus.root)] for p in files]
    return sum(n for counts in kinds for kind, n in counts.items() if kind in CONVERSATION_KINDS)


def usage(conn: psycopg.Connection, session: str) -> Totals:
    row = conn.execute(
        """
        select count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
            coalesce(sum(cache_write_5m_tokens), 0), coalesce(sum(cache_write_1h_tokens), 0),
            coalesce(sum(cache_read_tokens), 0)
        from toolsdb.api_usage where session_id = %s
        """,
        (session,),
    ).fetchone()
    assert row is not None
    return Totals(*(int(v) for v in row))


def messages(conn: psycopg.Connection, session: str) -> int:
    return scalar(conn, "select count(*) from toolsdb.messages where session_id = %s", (session,))


def file_row(conn: psycopg.Connection, path: Path) -> dict:
    return one(
        conn,
        "select source_host, read_offset, rewrites, lines_read from toolsdb.transcript_files where path = %s",
        (str(path),),
    )


def last_newline(path: Path) -> int:
    data = path.read_bytes()
    return data.rfind(b"\n") + 1


def stop(session: str, path: Path, cwd: Path, event: str = "Stop", **fields) -> dict:
    event_payload = payload(event, session, cwd, **fields)
    event_payload["transcript_path"] = str(path)
    return event_payload


def post_env(served: Served, token: str, state: Path) -> tuple[list[str], dict[str, str]]:
    argv = ["hook", "--post", f"http://127.0.0.1:{served.port}/hooks"]
    return argv, {**ON, "TOOLSDB_TOKEN": token, "XDG_STATE_HOME": str(state)}


def wait_for(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached within {timeout} s: {check.__doc__ or check}")


# ---------------------------------------------------------------------------
# Command hook, direct to the database
# ---------------------------------------------------------------------------


def test_the_hook_knows_the_live_events_without_importing_transcripts() -> None:
    assert hook_module.LIVE_EVENTS == transcripts.LIVE_EVENTS
    event = {"hook_event_name": "SubagentStop", "transcript_path": "/a.jsonl", "agent_transcript_path": "/b.jsonl"}
    assert transcripts.live_paths(event) == ["/a.jsonl", "/b.jsonl"]
    assert transcripts.live_paths({**event, "hook_event_name": "PreToolUse"}) == []


def test_stop_imports_the_transcript_then_only_the_appended_part_and_subagent_stop_its_file(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    corpus = corpus_of(tmp_path, seed=101)
    session = corpus.sessions[0]
    main, subs = main_file(corpus, session), sub_files(corpus, session)
    assert subs, "scenario 0 has a subagent"

    hook.ingest(stop(session, main, tmp_path), env=ON)
    assert usage(su, session) == expected(corpus, [main]), "the Stop imports the main file's responses"
    assert messages(su, session) == expected_messages(corpus, [main])
    row = file_row(su, main)
    assert (row["source_host"], row["read_offset"]) == (transcripts.source_host(), last_newline(main))

    before = usage(su, session)
    added = corpus.append_response(main, blocks=3)
    hook.ingest(stop(session, main, tmp_path), env=ON)
    assert usage(su, session) == before + added, "the second Stop adds only the appended response"
    assert messages(su, session) == expected_messages(corpus, [main]), "the kinds include the appended lines"
    assert file_row(su, main)["read_offset"] == main.stat().st_size

    hook.ingest(stop(session, main, tmp_path, "SubagentStop", agent_transcript_path=str(subs[0])), env=ON)
    assert usage(su, session) == expected(corpus, [main, *subs]) == corpus.expected_total()
    assert file_row(su, subs[0])["read_offset"] == last_newline(subs[0])

    # import-transcripts on this host shares the offsets: nothing more to add.
    done = run_cli("import-transcripts", "--database", hook.url, "--json", str(main), str(subs[0]))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["messages_added"] == 0
    assert usage(su, session) == corpus.expected_total()


STARVED = "stdin was still open at the end of the"


def run_with_a_short_budget(hook: Hook, event: dict, env: dict[str, str]) -> Result:
    """The hook with a budget of a fraction of a second. On a loaded machine the
    test's own process may not write the payload before that budget ends; the
    hook then stores nothing and logs that stdin stayed empty (tested in
    test_hook_budget.py). That run says nothing of the transcript import: run
    it again, at most three times."""
    for _ in range(3):
        result = hook.run(event, env=env)
        lines = hook.log_lines()
        if not (lines and STARVED in lines[-1].get("error", "") and lines[-1].get("payload") == ""):
            return result
        hook.log.unlink()
    raise AssertionError(f"the payload never reached the hook within its budget: {lines}")


def test_a_budget_too_small_leaves_the_rest_and_the_totals_end_exact(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    corpus = corpus_of(tmp_path, seed=102, sessions=5)
    session = max(corpus.sessions, key=lambda s: main_file(corpus, s).stat().st_size)
    main = main_file(corpus, session)
    for _ in range(500):  # a few thousand lines: several batches
        corpus.append_response(main, blocks=6)
    result = run_with_a_short_budget(hook, stop(session, main, tmp_path), {**ON, "TOOLSDB_HOOK_TIMEOUT": "0.4"})
    assert result.code == 0 and result.stderr == ""
    assert result.seconds < 5
    stored = scalar(su, "select count(*) from toolsdb.events where session_id = %s", (session,))
    assert stored == 1, f"the event is stored whatever the transcript does: {hook.log_lines()}"
    offset = scalar(
        su, "select coalesce(max(read_offset), 0) from toolsdb.transcript_files where path = %s", (str(main),)
    )
    assert offset < main.stat().st_size, "0.4 s is not enough for this file: some is left"
    # The next event with a normal budget goes on from the offset; import-transcripts finishes.
    hook.ingest(stop(session, main, tmp_path), env={**ON, "TOOLSDB_HOOK_TIMEOUT": "2"})
    done = run_cli("import-transcripts", "--database", hook.url, str(main))
    assert done.returncode == 0, done.stderr
    assert file_row(su, main)["read_offset"] == main.stat().st_size
    assert usage(su, session) == expected(corpus, [main])
    assert messages(su, session) == expected_messages(corpus, [main])


def test_a_spent_budget_hands_the_rest_to_a_background_import(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    corpus = corpus_of(tmp_path, seed=103, sessions=5)
    session = max(corpus.sessions, key=lambda s: main_file(corpus, s).stat().st_size)
    main = main_file(corpus, session)
    for _ in range(500):
        corpus.append_response(main, blocks=6)
    env = {**ON, "TOOLSDB_HOOK_TIMEOUT": "0.4", "TOOLSDB_HOOK_BACKGROUND_IMPORT": "on"}
    result = run_with_a_short_budget(hook, stop(session, main, tmp_path), env)
    assert result.code == 0 and result.stderr == ""

    def finished() -> bool:
        """the background import reaches the end of the file"""
        offset = su.execute("select read_offset from toolsdb.transcript_files where path = %s", (str(main),))
        row = offset.fetchone()
        return row is not None and row[0] == main.stat().st_size

    wait_for(finished, 120)
    assert usage(su, session) == expected(corpus, [main])
    assert messages(su, session) == expected_messages(corpus, [main])
    assert not hook.log.exists(), hook.log_lines()


def test_a_missing_or_unreadable_transcript_never_fails_the_event(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    session = "live-missing"
    for path in (tmp_path / "nowhere.jsonl", tmp_path):  # no such file; a folder
        result = hook.run(stop(session, path, tmp_path), "hook", "--strict", env=ON)
        assert (result.code, result.stdout, result.stderr) == (0, "", "")
    assert scalar(su, "select count(*) from toolsdb.events where session_id = %s", (session,)) == 2
    logged = hook.log_lines()
    assert [line["event_stored"] for line in logged] == [True, True]
    assert "No such file" in logged[0]["error"] and "Is a directory" in logged[1]["error"]
    assert all(line["error"].startswith("transcript import") for line in logged)


# ---------------------------------------------------------------------------
# toolsdb hook --post: POST /transcripts of a remote serve
# ---------------------------------------------------------------------------


def test_post_mode_sends_the_transcript_to_serve_for_the_token_user(
    hook: Hook, remote: psycopg.Connection, served: Served, token: str, tmp_path: Path
) -> None:
    corpus = corpus_of(tmp_path, seed=104)
    session = corpus.sessions[0]
    main, subs = main_file(corpus, session), sub_files(corpus, session)
    argv, env = post_env(served, token, tmp_path / "state")
    hook.ingest(stop(session, main, tmp_path), *argv, env=env)
    hook.ingest(stop(session, main, tmp_path, "SubagentStop", agent_transcript_path=str(subs[0])), *argv, env=env)
    assert usage(remote, session) == corpus.expected_total()
    assert messages(remote, session) == expected_messages(corpus, [main, *subs])
    ann = scalar(remote, "select user_id from toolsdb.users where username = 'ann'")
    assert scalar(remote, "select user_id from toolsdb.sessions where session_id = %s", (session,)) == ann
    row = file_row(remote, main)
    assert (row["source_host"], row["read_offset"]) == (f"serve:{ann}", last_newline(main))

    added = corpus.append_response(main, blocks=2)
    hook.ingest(stop(session, main, tmp_path), *argv, env=env)
    assert usage(remote, session) == corpus.expected_total() and added.requests == 1
    assert file_row(remote, main)["read_offset"] == main.stat().st_size


def test_post_mode_converges_after_a_409(
    hook: Hook, remote: psycopg.Connection, served: Served, token: str, tmp_path: Path
) -> None:
    corpus = corpus_of(tmp_path, seed=105)
    session = corpus.sessions[0]
    main = main_file(corpus, session)
    argv, env = post_env(served, token, tmp_path / "state")
    hook.ingest(stop(session, main, tmp_path), *argv, env=env)
    # The client's cache is lost: it starts at 0, the server says where it is.
    corpus.append_response(main)
    lost = {**env, "XDG_STATE_HOME": str(tmp_path / "fresh-state")}
    hook.ingest(stop(session, main, tmp_path), *argv, env=lost)
    assert usage(remote, session) == expected(corpus, [main])
    # Another client (a backfill with its own cache) moves the offset on: the
    # first client's cached offset is behind, the server's 409 puts it right.
    corpus.append_response(main)
    other = run_cli(
        "import-transcripts",
        "--post",
        f"http://127.0.0.1:{served.port}/hooks",
        "--json",
        str(main),
        env={"TOOLSDB_TOKEN": token, "XDG_STATE_HOME": str(tmp_path / "other-state")},
    )
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["files_sent"] == 1
    corpus.append_response(main)
    hook.ingest(stop(session, main, tmp_path), *argv, env=env)
    assert usage(remote, session) == expected(corpus, [main])
    assert messages(remote, session) == expected_messages(corpus, [main])
    assert file_row(remote, main)["read_offset"] == main.stat().st_size


def test_post_mode_a_rewritten_file_is_sent_again_from_0_without_double_counting(
    hook: Hook, remote: psycopg.Connection, served: Served, token: str, tmp_path: Path
) -> None:
    corpus = corpus_of(tmp_path, seed=106)
    session = corpus.sessions[0]
    main = main_file(corpus, session)
    argv, env = post_env(served, token, tmp_path / "state")
    hook.ingest(stop(session, main, tmp_path), *argv, env=env)
    before_usage, before_messages = usage(remote, session), messages(remote, session)
    # Same length, one character of a text changed in the last 4 kB sent.
    data = bytearray(main.read_bytes())
    end = data.rfind(b"\n") + 1
    at = data.rfind(b'"text":"', end - 4000, end)
    assert at > 0
    at += len(b'"text":"')
    data[at : at + 1] = b"Q" if data[at : at + 1] != b"Q" else b"R"
    main.write_bytes(bytes(data))
    hook.ingest(stop(session, main, tmp_path), *argv, env=env)
    row = file_row(remote, main)
    assert (row["rewrites"], row["read_offset"]) == (1, end), "the server saw the change and took the file from 0"
    assert usage(remote, session) == before_usage and messages(remote, session) == before_messages
    # Cut shorter (the client's cached offset is past the end): sent from 0 again.
    main.write_bytes(bytes(data[: data.rfind(b"\n", 0, end - 1) + 1]))
    hook.ingest(stop(session, main, tmp_path), *argv, env=env)
    assert file_row(remote, main)["rewrites"] == 2
    assert usage(remote, session) == before_usage, "rows of lines that vanished are kept, nothing counted twice"


def test_transcripts_need_a_token_and_a_body_within_the_limit(served: Served, token: str) -> None:
    def post(headers: dict[str, str], body: bytes = b"") -> int:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        try:
            conn.request("POST", "/transcripts", body, headers)
            return conn.getresponse().status
        finally:
            conn.close()

    valid = {
        "X-Toolsdb-Path": "/home/u/.claude/projects/x/s.jsonl",
        "X-Toolsdb-Start-Offset": "0",
        "X-Toolsdb-Context-Length": "0",
        "X-Toolsdb-File-Size": "0",
        "X-Toolsdb-Head-Length": "0",
        "X-Toolsdb-Head-Hash": "sha256:" + "0" * 64,
    }
    assert post(valid) == 401
    assert post({**valid, "Authorization": "Bearer tdb_" + "0" * 64}) == 401
    assert post({**valid, "Authorization": f"Bearer {token}", "Content-Length": str(9 << 20)}) == 413
    assert post({**valid, "Authorization": f"Bearer {token}", "X-Toolsdb-Start-Offset": "x"}) == 400


# ---------------------------------------------------------------------------
# toolsdb serve --read-transcripts
# ---------------------------------------------------------------------------


def test_read_transcripts_imports_after_an_http_style_post(
    pg: Pg, live_db: str, su: psycopg.Connection, tmp_path: Path
) -> None:
    corpus = corpus_of(tmp_path, seed=107)
    session = corpus.sessions[0]
    main = main_file(corpus, session)
    server = start_serve(pg.url(live_db), tmp_path / "spool", "--read-transcripts")
    try:
        token = create_token(pg.url(live_db), "--user", "ann@example.com")
        status, body = server.post(stop(session, main, tmp_path), token)
        assert (status, body) == (200, b"{}"), "answered at once, the import runs behind"

        def imported() -> bool:
            """the serve's background reader imports the transcript"""
            return usage(su, session) == expected(corpus, [main])

        wait_for(imported)
        assert messages(su, session) == expected_messages(corpus, [main])
        assert file_row(su, main)["source_host"] == socket.gethostname()
    finally:
        server.stop()
