"""The unprivileged account the embedded server runs as when toolsdb runs as
root: made once, however many processes start servers at the same moment
(parallel test workers, commands started together)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from toolsdb.server import EmbeddedServer

from .dbhelpers import run_workers


@pytest.mark.skipif(getattr(os, "geteuid", lambda: -1)() != 0, reason="creates a system account: only as root")
def test_servers_started_together_create_their_account_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"tdb-race-{os.getpid()}"[:32]
    monkeypatch.setenv("TOOLSDB_SERVER_USER", name)

    def start_together(n: int, barrier: threading.Barrier) -> str:
        barrier.wait()
        return EmbeddedServer(root=tmp_path / str(n))._server_user().pw_name

    try:
        assert run_workers(6, start_together) == [name] * 6
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
