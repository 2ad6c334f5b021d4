"""Running ccusage (npm ``ccusage``, the version .ci/install-ccusage pins) on a transcript corpus.

Where ccusage is: TOOLSDB_CCUSAGE_BIN, else the folder .ci/install-ccusage installs it in
(``${XDG_CACHE_HOME:-~/.cache}/toolsdb-ci/ccusage``). Without it a test calling
``require_ccusage()`` is skipped with the reason, unless TOOLSDB_REQUIRE_CCUSAGE=1 (CI)
makes it fail. ccusage runs with ``--offline`` (its embedded price table), HOME in a
temporary folder, and CLAUDE_CONFIG_DIR at the corpus: nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

CCUSAGE_ENV = "TOOLSDB_CCUSAGE_BIN"
REQUIRE_ENV = "TOOLSDB_REQUIRE_CCUSAGE"
CCUSAGE_VERSION = "20.0.24"
TIMEOUT = 120  # seconds; a 12-session corpus takes ~0.2 s, 600 MB some seconds
KINDS = ("daily", "monthly", "weekly", "session", "blocks")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "toolsdb-ci" / "ccusage"


def ccusage_bin() -> str | None:
    named = os.environ.get(CCUSAGE_ENV)
    if named:
        return named
    cached = cache_dir() / "node_modules" / ".bin" / "ccusage"
    return str(cached) if cached.exists() else None


def require_ccusage() -> str:
    """The ccusage to run; skips (or fails under TOOLSDB_REQUIRE_CCUSAGE=1) without it."""
    found = ccusage_bin()
    message = ""
    if found is None:
        message = f"ccusage not installed: run .ci/install-ccusage or set {CCUSAGE_ENV}"
    else:
        try:
            done = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30, check=False)
            if done.stdout.strip() != f"ccusage {CCUSAGE_VERSION}":
                message = f"{found} is not ccusage {CCUSAGE_VERSION}: {done.stdout.strip()!r} {done.stderr[-300:]!r}"
        except OSError as exc:
            message = f"{found} does not run: {exc}"
    if message:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_ENV}=1: the ccusage comparison is required here)")
        pytest.skip(message)
    assert found is not None
    return found


def ccusage_report(
    root: Path,
    kind: str = "daily",
    tz: str = "UTC",
    extra: Iterable[str] = (),
    *,
    mode: str = "calculate",
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """`ccusage claude <kind> --json --offline --timezone TZ --mode calculate` on the corpus at root.

    root is the folder holding ``projects/`` (CLAUDE_CONFIG_DIR). Returns the parsed JSON;
    fails the test when ccusage exits non-zero or prints no JSON.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ccusage report {kind!r}")
    binary = require_ccusage()
    argv = [binary, "claude", kind, "--json", "--offline", "--timezone", tz, "--mode", mode, *extra]
    with tempfile.TemporaryDirectory(prefix="ccusage-home-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "CLAUDE_CONFIG_DIR": str(root),
            "NO_COLOR": "1",
            "TZ": "UTC",
        }
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{' '.join(argv)} did not finish within {timeout} s: {exc.stderr!r}")
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{' '.join(argv)} printed no JSON: {done.stdout[-2000:]!r} {done.stderr[-2000:]!r}")
    return report
