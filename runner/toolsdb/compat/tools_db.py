"""The agent-tools API: ``from toolsdb.compat.tools_db import SchemaValidator, VisionCache, ...``.

The agent-tools README's examples run with only their import lines changed:

    from toolsdb.compat.tools_db import AuditTrail, BugEscalation, SchemaValidator, VisionCache

    validator = SchemaValidator()       # no argument: the database toolsdb finds
    cache = VisionCache()
    cache.store(image_hash="abc123", extracted_data={"keywords": ["sunset"]},
                confidence_score=0.95, model_version="v1.0")

The four classes are toolsdb.tools's own (each method one transaction over a
SQL function); built with no argument, each opens its own connection to the
database every toolsdb command would use (``--database`` aside: TOOLS_DB_URL
or DATABASE_URL, the PG*/DB_*/POSTGRES_* variables, else the embedded
server), closed by ``close()`` or a ``with`` block. ``get_db()`` is the
process's connection pool; its first call migrates the database, as the
agent-tools ``get_db()`` created its tables.
"""

from __future__ import annotations

import threading

from ..pool import ToolsdbPool, get_pool
from ..tools import AuditTrail, BugEscalation, SchemaValidator, VisionCache

__all__ = ["AuditTrail", "BugEscalation", "SchemaValidator", "VisionCache", "get_db"]

_migrated = threading.Event()
_lock = threading.Lock()


def get_db() -> ToolsdbPool:
    """The process's pool (toolsdb.pool.get_pool); the first call in a process
    applies pending migrations (toolsdb migrate: one transaction, a no-op when
    up to date). It never creates a database (docs/architecture.md)."""
    with _lock:
        if not _migrated.is_set():
            from .. import migrate
            from ..target import resolve

            migrate.migrate(resolve(None))
            _migrated.set()
    return get_pool()
