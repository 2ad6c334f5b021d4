"""toolsdb: the thin Python runner around toolsdb's hand-written SQL.

The product is the SQL in schema/, migrations/, repeatable/ and seeds/; this
package finds it, picks the database, and applies it (see docs/architecture.md).
"""

__version__ = "0.1.0"
