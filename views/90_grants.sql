-- views/90_grants.sql
-- Last tier: privileges of the group roles made by schema/00_bootstrap.sql
-- (toolsdb_app reads and writes, toolsdb_readonly reads). Re-applied after
-- every migrate, so a table added by a later migration is granted without
-- a migration of its own. Where the roles could not be created (no
-- CREATEROLE), nothing is granted and migrate still succeeds.
-- Needs: every table of schema toolsdb.

do $grants$
begin
    if exists (select from pg_catalog.pg_roles where rolname = 'toolsdb_app') then
        grant usage on schema toolsdb to toolsdb_app;
        grant select, insert, update, delete on all tables in schema toolsdb to toolsdb_app;
    end if;
    if exists (select from pg_catalog.pg_roles where rolname = 'toolsdb_readonly') then
        grant usage on schema toolsdb to toolsdb_readonly;
        grant select on all tables in schema toolsdb to toolsdb_readonly;
    end if;
end
$grants$;

-- Internals are called by triggers, never by clients.
revoke all on schema toolsdb_private from public;
revoke execute on all functions in schema toolsdb_private from public;
