"""The Python APIs of the designs toolsdb merges, each thin over toolsdb's SQL.

Someone arriving with one of those designs' READMEs open changes only its
import lines (docs/names.md maps every name):

* ``toolsdb.compat.tools_db``: the agent-tools classes (SchemaValidator,
  VisionCache, AuditTrail, BugEscalation) and ``get_db()``;
* ``toolsdb.compat.notifications``: the hook-notification API's ``Database``;
* ``toolsdb.compat.agents``: the agents framework's repository functions and models.

Nothing is imported here: each module loads only what it needs.
"""
