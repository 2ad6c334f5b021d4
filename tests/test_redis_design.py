"""The Redis toolkit's cluster-safety rules, read off its source: scripts touch
only the keys they are given, nothing uses KEYS, values travel as ARGV, and the
scripts are plain files that redis-cli --eval runs too."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from redis.crc import key_slot

from toolsdb.redis import scripts

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "runner" / "toolsdb" / "redis"
LUA = PACKAGE / "lua"
# Commands whose first argument is a key (every command the scripts use but TIME).
CALL = re.compile(r"redis\.call\(\s*'([A-Za-z]+)'\s*(?:,\s*([^,)]+))?", re.S)


def test_every_lua_file_is_a_named_script_and_documented() -> None:
    files = sorted(p.stem for p in LUA.glob("*.lua"))
    assert files == sorted(scripts.NAMES)
    doc = (ROOT / "docs" / "redis.md").read_text()
    for name in scripts.NAMES:
        assert f"`{name}`" in doc or f"{name}.lua" in doc, f"docs/redis.md does not mention the script {name}"


@pytest.mark.parametrize("name", scripts.NAMES)
def test_scripts_touch_only_the_keys_they_are_given(name: str) -> None:
    text = scripts.source(name)
    calls = CALL.findall(text)
    assert calls, f"{name}.lua calls no command"
    for command, first in calls:
        assert command.upper() != "KEYS", f"{name}.lua uses KEYS"
        if command.upper() == "TIME":
            continue
        assert re.fullmatch(r"KEYS\[\d\]", first.strip()), f"{name}.lua: {command} on {first!r}, not on a KEYS[n]"


def test_the_python_side_never_uses_keys_or_builds_script_text() -> None:
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        assert not re.search(r"\.keys\(\s*['\"]", source), f"{path.name} calls KEYS"
        assert 'execute_command("KEYS' not in source
        # Scripts run only through scripts.BoundScript: EVALSHA of a file's text, never EVAL of built text.
        assert not re.search(r"\.eval\(|register_script\(", source), f"{path.name} runs a script another way"
        if path.name != "scripts.py":
            assert "evalsha" not in source and "script_load" not in source, path.name
    assert "self.text = source(name)" in (PACKAGE / "scripts.py").read_text()


def test_multi_key_scripts_get_keys_of_one_hash_tag(redis_client) -> None:
    """The pairs of keys handed to the two-key scripts hash to one slot."""
    from toolsdb.redis import CacheManager, DistributedLock, cache_result

    lock_keys = DistributedLock(redis_client).keys("deploy-production")
    cache = CacheManager(redis_client)

    @cache_result(cache=cache)
    def f(x):
        return x

    entry = f.cache_key(1)
    for first, second in (lock_keys, (entry, entry + ":fill")):
        assert key_slot(first.encode()) == key_slot(second.encode())


def test_redis_cli_eval_runs_a_script_file(redis_target) -> None:
    if redis_target.kind == "cluster":
        pytest.skip("redis-cli --eval is shown on a single server")
    cli = redis_target.binaries.cli
    out = subprocess.run(
        [
            str(cli),
            "-p",
            str(redis_target.port),
            "--eval",
            str(LUA / "sliding_window.lua"),
            "demo",
            ",",
            "2",
            "60000000",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[:2] == ["1", "1"], out  # admitted, one left
