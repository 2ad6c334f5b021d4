-- migrations/0001.baseline.rollback.sql
-- Undo 0001.baseline.sql: drop the identity tables (dependents first) and the
-- timestamps trigger function. Views in views/ that read these tables are
-- dropped with them (cascade) and come back with the next migrate.
-- Destroys every row of these tables: undoing a migration is what a
-- rollback is for, so squawk's drop rules do not apply to this file.
-- squawk-ignore-file ban-drop-table, ban-drop-function

drop table if exists toolsdb.preferences cascade;
drop table if exists toolsdb.agent_mcp_servers cascade;
drop table if exists toolsdb.mcp_servers cascade;
drop table if exists toolsdb.agents cascade;
drop table if exists toolsdb.projects cascade;
drop table if exists toolsdb.users cascade;
drop function if exists toolsdb_private.tg__timestamps();
