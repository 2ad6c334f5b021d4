-- repeatable/24_agent_mcp_servers.sql
-- Tier 20: identity. Defines toolsdb.agent_mcp_servers, the many-to-many
-- link saying which MCP servers each agent may use, its index and its
-- timestamps trigger.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/24_agent_mcp_servers.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.agent_mcp_servers
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.agent_mcp_servers is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- Change capture into toolsdb.audit_logs (docs/security.md).
select toolsdb.audit_table('toolsdb.agent_mcp_servers');
