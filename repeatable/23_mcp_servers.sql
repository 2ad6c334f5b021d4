-- repeatable/23_mcp_servers.sql
-- Tier 20: identity. Defines toolsdb.mcp_servers (Model Context Protocol
-- servers the agents may use: how to reach them, whether to start them, what
-- tools they offer), its timestamps trigger and its comments.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/23_mcp_servers.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.mcp_servers
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.mcp_servers is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- Change capture into toolsdb.audit_logs (docs/security.md).
select toolsdb.audit_table('toolsdb.mcp_servers');
