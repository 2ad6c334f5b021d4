"""The Claude Code end-to-end scenario, run inside a network namespace that
has only loopback (``unshare --net``; tests/test_claude_code_e2e.py starts it).

    python -m tests.claude_e2e_driver SPEC.json

SPEC names the claude binary, the toolsdb console script, the database URL
(a Unix socket: reachable from the namespace, TCP listeners outside it are
not), a work folder and the users. The driver brings ``lo`` up, checks that
it is the only interface, starts the stand-ins (tests/claude_standin.py) and
then, each step bounded by a timeout:

1. ``toolsdb notify destination set`` registers the stand-in Slack as each
   user's destination (skipped when the command does not exist yet);
2. the command-hook run: Claude Code with the settings
   ``toolsdb claude-settings --type command`` writes, or, where that command
   does not exist yet, a hand-written settings file calling ``toolsdb hook``;
3. the http-hook run: ``toolsdb serve --port 0``, a token from
   ``toolsdb token create``, the settings ``toolsdb claude-settings --type
   http`` writes (skipped, with the reason, when one of them is missing);
4. ``toolsdb worker --once`` routes the events and delivers the notifications
   to the stand-in Slack (skipped when missing).

It prints one JSON object on stdout: what each step did or why it was skipped,
claude's output, the stand-ins' request logs and the Slack bodies received.
The test checks the database with it. Failures of a step are reported in the
JSON (``error``), not raised: the test shows them with the logs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.claude_standin import MARKER, MessagesStandIn, SlackStandIn

PROMPT = f"Run the shell command `echo {MARKER}` and tell me what it printed."
ALLOWED_TOOLS = "Bash(echo *)"
# The path toolsdb serve takes hook events on (docs/claude-code.md).
HOOKS_PATH = "/hooks"
# toolsdb serve's line when it is ready; uvicorn's own "running on" line counts
# too unless it shows the port asked for (0) rather than the one bound.
LISTENING = re.compile(r"(?:listening|running) on (http://[0-9.]+:[1-9][0-9]*)")
# The events a hand-written command-hook settings file wires to `toolsdb hook`
# (WorktreeCreate is left out: a command hook there replaces git's worktree creation).
HAND_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Notification",
    "SubagentStart",
    "SubagentStop",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    "SessionEnd",
)
# Claude Code's own traffic besides the Messages API, turned off.
QUIET = {
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
}

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> list[str]:
    """Bring ``lo`` up (a new network namespace starts with it down) and return
    the namespace's interfaces, which must be ``lo`` alone. No iproute2 needed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    return sorted(name for _, name in socket.if_nameindex())


def tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


class Driver:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.work = Path(spec["workdir"])
        self.toolsdb = spec["toolsdb"]
        self.result: dict = {"steps": {}, "runs": {}, "skipped": {}, "errors": []}
        self.messages = MessagesStandIn()
        self.slack = SlackStandIn()
        self.serve: subprocess.Popen | None = None
        self.serve_err: list[str] = []
        # Every step's timeout is cut to what is left of the scenario's budget,
        # so the driver always gets to print its result (with the logs).
        self.deadline = time.monotonic() + float(spec.get("budget", 90))

    def within(self, seconds: float) -> float:
        """``seconds``, or less when the scenario's budget ends sooner (1 s at least)."""
        return max(1.0, min(seconds, self.deadline - time.monotonic()))

    # -- helpers ---------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        """What every process the driver starts gets: the test's environment
        (no database variable but DATABASE_URL), the venv first on PATH."""
        env = dict(self.spec["env"])
        env["PATH"] = f"{Path(self.toolsdb).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["DATABASE_URL"] = self.spec["database_url"]
        env["TOOLSDB_HOOK_LOG"] = str(self.work / "hook.log")
        return env

    def toolsdb_cmd(self, *args: str, timeout: float = 30, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.toolsdb, *args],
            capture_output=True,
            text=True,
            timeout=self.within(timeout),
            env={**self.base_env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            cwd=str(self.work),
        )

    def has_command(self, *words: str) -> str | None:
        """None when ``toolsdb <words> --help`` works, else why not (for the skip reason)."""
        try:
            done = self.toolsdb_cmd(*words, "--help", timeout=30)
        except subprocess.TimeoutExpired:
            return f"`toolsdb {' '.join(words)} --help` did not answer within 30 s"
        if done.returncode == 0:
            return None
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"`toolsdb {' '.join(words)}` is not available on this branch yet ({last})"

    def step(self, name: str, *args: str, timeout: float = 30, env: dict | None = None) -> str | None:
        """Run ``toolsdb <args>``, record it; its stdout when it exits 0, else None (the error recorded)."""
        try:
            done = self.toolsdb_cmd(*args, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            self.fail(name, f"`toolsdb {' '.join(args)}` did not finish within {timeout:g} s: {exc.stderr!r}")
            return None
        self.result["steps"][name] = {"argv": list(args), "code": done.returncode, "stderr": tail(done.stderr)}
        if done.returncode != 0:
            self.fail(name, f"`toolsdb {' '.join(args)}` exited {done.returncode}: {tail(done.stderr, 2000)}")
            return None
        return done.stdout

    def fail(self, name: str, message: str) -> None:
        self.result["errors"].append(f"{name}: {message}")

    def skip(self, name: str, reason: str) -> None:
        self.result["skipped"][name] = reason

    def claude_home(self, name: str) -> dict[str, str]:
        home = self.work / f"home-{name}"
        (home / ".claude").mkdir(parents=True, exist_ok=True)
        return {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude")}

    # -- Claude Code -------------------------------------------------------------

    def run_claude(self, name: str, settings: Path, source: str, env: dict[str, str]) -> None:
        """One non-interactive turn: the prompt, the stand-in's tool_use, Bash, the final text."""
        project = self.work / f"project-{name}"
        project.mkdir(exist_ok=True)
        run: dict = {"settings": str(settings), "settings_source": source, "cwd": str(project)}
        self.result["runs"][name] = run
        claude_env = {
            **self.base_env(),
            **QUIET,
            **self.claude_home(name),
            "ANTHROPIC_API_KEY": "dummy-key",
            "ANTHROPIC_BASE_URL": self.messages.url,
            **env,
        }
        argv = [
            self.spec["claude"],
            "-p",
            PROMPT,
            "--output-format",
            "json",
            "--settings",
            str(settings),
            "--allowedTools",
            ALLOWED_TOOLS,
        ]
        before = len(self.messages.requests)
        timeout = self.within(float(self.spec.get("claude_timeout", 45)))
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=claude_env,
                cwd=str(project),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            run.update(code=None, stdout=tail(str(exc.stdout or "")), stderr=tail(str(exc.stderr or "")))
            self.fail(name, f"claude did not finish within {timeout:g} s")
            return
        finally:
            run["messages_log"] = self.messages.log_lines()[before:]
        run.update(code=done.returncode, stdout=tail(done.stdout, 8000), stderr=tail(done.stderr))
        try:
            output = json.loads(done.stdout)
        except ValueError:
            output = None
        run["output"] = output
        if isinstance(output, dict):
            run["session_id"] = output.get("session_id")
        if done.returncode != 0:
            self.fail(name, f"claude exited {done.returncode}")

    def hand_settings(self) -> Path:
        """A command-hook settings file written by hand: every event runs `toolsdb hook`."""
        hook = {"type": "command", "command": f"{self.toolsdb} hook", "timeout": 10}
        settings = {"hooks": {event: [{"hooks": [hook]}] for event in HAND_EVENTS}}
        path = self.work / "settings-command-hand.json"
        path.write_text(json.dumps(settings, indent=2) + "\n")
        return path

    def command_run(self) -> None:
        users = self.spec["users"]
        missing = self.has_command("claude-settings")
        if missing is None:
            path = self.work / "settings-command.json"
            written = self.step("claude-settings-command", "claude-settings", "--type", "command", "--write", str(path))
            if written is None:
                return
            source = "toolsdb claude-settings --type command"
        else:
            self.skip("claude-settings-command", missing + "; the command run used a hand-written settings file")
            path, source = self.hand_settings(), "hand-written (toolsdb hook)"
        self.run_claude("command", path, source, {"TOOLSDB_USER_ID": users["command"]["user_id"]})

    # -- toolsdb serve and the http-hook run -------------------------------------

    def start_serve(self) -> str | None:
        """``toolsdb serve --port 0``; its base URL once it says it listens (20 s at most).
        A thread reads its stderr to the end (so a chatty server never blocks on the pipe)."""
        self.serve = subprocess.Popen(
            [self.toolsdb, "serve", "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=self.base_env(),
            cwd=str(self.work),
            text=True,
        )
        found: queue.Queue[str | None] = queue.Queue()
        self.serve_reader = threading.Thread(target=self._read_serve, args=(self.serve, found), daemon=True)
        self.serve_reader.start()
        try:
            base = found.get(timeout=self.within(20))
        except queue.Empty:
            base = None
        if base is None:
            said = "".join(self.serve_err)[-2000:]
            self.fail("serve", f"toolsdb serve did not say it listens within 20 s (or the budget's end): {said}")
        return base

    def _read_serve(self, process: subprocess.Popen, found: queue.Queue) -> None:
        assert process.stderr is not None
        told = False
        for line in process.stderr:
            self.serve_err.append(line)
            match = LISTENING.search(line)
            if match and not told:
                found.put(match.group(1))
                told = True
        if not told:
            found.put(None)  # it exited first

    def stop_serve(self) -> None:
        if self.serve is None:
            return
        self.serve.send_signal(signal.SIGTERM)
        try:
            self.serve.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.serve.kill()
            self.serve.wait(timeout=5)
            self.fail("serve", "toolsdb serve did not stop within 10 s of SIGTERM")
        self.serve_reader.join(timeout=5)
        self.result["serve"] = {"code": self.serve.returncode, "stderr": tail("".join(self.serve_err))}

    def http_run(self) -> None:
        for words in (("serve",), ("token",), ("claude-settings",)):
            missing = self.has_command(*words)
            if missing is not None:
                self.skip("http", missing)
                return
        user = self.spec["users"]["http"]
        token = self.step("token", "token", "create", "--user", user["username"])
        if not token or not token.strip():
            return
        base = self.start_serve()
        if base is None:
            return
        self.result["serve_url"] = base
        path = self.work / "settings-http.json"
        written = self.step(
            "claude-settings-http",
            "claude-settings",
            "--type",
            "http",
            "--url",
            base + HOOKS_PATH,
            "--token-var",
            "TOOLSDB_TOKEN",
            "--write",
            str(path),
        )
        if written is None:
            return
        self.run_claude("http", path, "toolsdb claude-settings --type http", {"TOOLSDB_TOKEN": token.strip()})

    # -- notifications ------------------------------------------------------------

    def destinations(self) -> None:
        missing = self.has_command("notify", "destination", "set")
        if missing is not None:
            self.skip("notify", missing)
            return
        for role, user in self.spec["users"].items():
            self.step(
                f"notify-{role}",
                "notify",
                "destination",
                "set",
                f"e2e-slack-{role}",
                "--backend",
                "slack",
                "--url",
                f"{self.slack.url}/services/T000/B000/{role}",
                "--user",
                user["username"],
            )

    def worker(self) -> None:
        missing = self.has_command("worker")
        if missing is not None:
            self.skip("worker", missing)
            return
        if "notify" in self.result["skipped"]:
            self.skip("worker", "no destination registered: " + self.result["skipped"]["notify"])
            return
        self.step("worker", "worker", "--once", timeout=30)

    # -- the whole scenario ---------------------------------------------------------

    def run(self) -> dict:
        self.result["interfaces"] = loopback_up()
        self.messages.start()
        self.slack.start()
        self.result["claude_version"] = self.claude_version()
        try:
            self.destinations()
            self.command_run()
            try:
                self.http_run()
            finally:
                self.stop_serve()
            self.worker()
        except Exception as exc:  # reported with everything else, never a bare traceback
            self.fail("driver", f"{type(exc).__name__}: {exc}")
        finally:
            self.result["messages_log"] = self.messages.log_lines()
            self.result["slack_log"] = self.slack.log_lines()
            self.result["slack_bodies"] = list(self.slack.bodies)
            hook_log = self.work / "hook.log"
            self.result["hook_log"] = tail(hook_log.read_text()) if hook_log.exists() else ""
            self.messages.stop()
            self.slack.stop()
        return self.result

    def claude_version(self) -> str:
        try:
            done = subprocess.run(
                [self.spec["claude"], "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                env={**self.base_env(), **QUIET, **self.claude_home("version")},
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unknown ({exc})"
        return done.stdout.strip() or done.stderr.strip()


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    result = Driver(spec).run()
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
