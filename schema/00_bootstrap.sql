-- schema/00_bootstrap.sql
-- Tier 00: what must exist before any migration runs: the namespaces, the
-- group roles and the database-level search_path. `toolsdb migrate` applies
-- this file (under its migration lock) before yoyo runs, on every migrate;
-- it is not a migration because roles are cluster-wide and extensions and
-- schemas may already be there. Every statement tolerates existing objects.
-- Needs: nothing.

-- Namespaces. Application tables live in toolsdb; trigger functions and
-- other internals in toolsdb_private; yoyo's bookkeeping tables in
-- toolsdb_migrations. Nothing goes in public.
create schema if not exists toolsdb;
create schema if not exists toolsdb_private;
create schema if not exists toolsdb_migrations;

comment on schema toolsdb is
'toolsdb application data: identity (users, projects, agents, MCP servers, preferences) and every later domain.';
comment on schema toolsdb_private is
'toolsdb internals: trigger functions and helpers that clients never call directly.';
comment on schema toolsdb_migrations is
'Bookkeeping of yoyo-migrations (applied migrations, log, lock); managed by toolsdb migrate.';

-- Group roles (NOLOGIN). Cluster-wide, so two databases on one cluster may
-- race to create them: a duplicate is not an error. A connecting user without
-- CREATEROLE gets a notice and the roles are left to an administrator.
do $bootstrap$
declare
    wanted_role text;
begin
    foreach wanted_role in array array['toolsdb_app', 'toolsdb_readonly'] loop
        if not exists (select from pg_catalog.pg_roles where rolname = wanted_role) then
            begin
                execute pg_catalog.format('create role %I nologin', wanted_role);
            exception
                when duplicate_object or unique_violation then
                    null;
                when insufficient_privilege then
                    raise notice 'toolsdb: cannot create role % (no CREATEROLE); ask an administrator to create it', wanted_role;
            end;
        end if;
    end loop;
end
$bootstrap$;

-- psql users land in the application schema: `\d+` lists the toolsdb tables.
do $bootstrap$
begin
    execute pg_catalog.format(
        'alter database %I set search_path = toolsdb, public',
        pg_catalog.current_database()
    );
exception
    when insufficient_privilege then
        raise notice 'toolsdb: not the database owner; set search_path = toolsdb yourself';
end
$bootstrap$;
