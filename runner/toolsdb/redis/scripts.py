"""The toolkit's Lua scripts (files in lua/), bound to a client.

A bound script sends EVALSHA with its keys and arguments, and loads the script
(SCRIPT LOAD: on every primary of a cluster) only when the server answers
NOSCRIPT, after a restart or a SCRIPT FLUSH. It is redis-py's Script without
the per-call work that Script does for pipelines.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from redis.exceptions import NoScriptError

NAMES = (
    "sliding_window",
    "sliding_window_peek",
    "lock_acquire",
    "compare_and_delete",
    "compare_and_expire",
    "cache_lookup",
    "cache_fill",
)


@cache
def source(name: str) -> str:
    """The text of lua/<name>.lua."""
    if name not in NAMES:
        raise KeyError(name)
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class BoundScript:
    """Script ``name`` on ``client``: ``script(keys, args)`` runs it."""

    __slots__ = ("client", "sha", "text")

    def __init__(self, client, name: str) -> None:
        self.client = client
        self.text = source(name)
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()

    def __call__(self, keys: list, args: list):
        try:
            return self.client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.client.script_load(self.text)
            return self.client.evalsha(self.sha, len(keys), *keys, *args)


def bind(client, name: str) -> BoundScript:
    """Script ``name`` bound to ``client``."""
    return BoundScript(client, name)
