-- repeatable/22_agents.sql
-- Tier 20: identity. Defines toolsdb.agents (the registry of AI agents: what
-- kind, which model, what they can do), its indexes and its timestamps
-- trigger.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/22_agents.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.agents
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.agents is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- Change capture into toolsdb.audit_logs (docs/security.md).
select toolsdb.audit_table('toolsdb.agents');
