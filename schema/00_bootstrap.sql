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
-- The schema validator's sandbox (repeatable/52_schema_validator.sql): always
-- empty, since everything made in it is rolled back.
create schema if not exists toolsdb_scratch;
-- Monitoring views over PostgreSQL's statistics (repeatable/85_monitoring_views.sql).
create schema if not exists toolsdb_monitoring;

-- What `toolsdb migrate` re-applied from repeatable/: one row per function,
-- view or trigger, so a migrate replaces only what changed (docs/architecture.md).
create table if not exists toolsdb_migrations.definitions (
    object_name text not null,
    source_file text not null,
    source_digest text not null,
    catalog_digest text not null,
    applied_at timestamptz not null default now(),
    constraint definitions_pkey primary key (object_name),
    constraint object_name_is_valid check (
        object_name ~ '^(function|view|trigger) [a-z_]' and char_length(object_name) <= 300
    ),
    constraint source_file_length_is_valid check (char_length(source_file) between 1 and 300),
    constraint source_digest_is_sha256 check (source_digest ~ '^[0-9a-f]+$' and char_length(source_digest) = 64),
    constraint catalog_digest_is_md5 check (catalog_digest ~ '^[0-9a-f]+$' and char_length(catalog_digest) = 32)
);

-- What the last full `toolsdb migrate` applied, as a whole: the digest of the
-- tree it ran (bootstrap, migrations, repeatable/) and the actions of
-- repeatable/ it ran every time. A migrate whose tree has that digest, with
-- every migration applied and every definition as recorded, only re-runs
-- those actions (runner/toolsdb/migrate.py: the no-op in one round trip).
create table if not exists toolsdb_migrations.tree_state (
    state_id text not null default 'tree',
    tree_digest text not null,
    definitions_digest text not null,
    actions text not null,
    recorded_at timestamptz not null default now(),
    constraint tree_state_pkey primary key (state_id),
    constraint state_id_is_tree check (state_id = 'tree'),
    constraint tree_digest_is_sha256 check (tree_digest ~ '^[0-9a-f]+$' and char_length(tree_digest) = 64),
    constraint definitions_digest_is_md5 check (
        definitions_digest ~ '^[0-9a-f]+$' and char_length(definitions_digest) = 32
    ),
    constraint actions_length_is_valid check (char_length(actions) <= 10000000)
);

-- Comments, set only where they differ (a migrate with nothing to do writes
-- no catalog row).
do $bootstrap$
declare
    wanted record;
begin
    for wanted in
        select v.kind, v.name, v.description
        from (values
            ('schema', 'toolsdb', 'toolsdb application data: identity (users, projects, agents, MCP servers, '
                || 'preferences) and every later domain.'),
            ('schema', 'toolsdb_private', 'toolsdb internals: trigger functions and helpers that clients never '
                || 'call directly.'),
            ('schema', 'toolsdb_migrations', 'Bookkeeping of toolsdb migrate: the applied migrations, their log '
                || 'and lock (yoyo-migrations), and the re-applied definitions.'),
            ('schema', 'toolsdb_monitoring', 'Monitoring views over PostgreSQL''s statistics of this database: '
                || 'index usage, sizes, vacuum health, open transactions, long queries, lock waits, slow '
                || 'statements (toolsdb monitor).'),
            ('schema', 'toolsdb_scratch', 'Sandbox of toolsdb.validate_schema(): statements under validation '
                || 'create their objects here, as toolsdb_validator, in a subtransaction that is always rolled '
                || 'back. Always empty.'),
            ('table', 'toolsdb_migrations.definitions', 'What toolsdb migrate re-applied from repeatable/: one '
                || 'row per function, view or trigger with digests of its source and of its definition in the '
                || 'catalog; a migrate replaces an object only when either differs.'),
            ('column', 'toolsdb_migrations.definitions.object_name', 'Kind and name, e.g. function '
                || 'toolsdb.maintain, view toolsdb.active_tasks, trigger _100_timestamps on toolsdb.users.'),
            ('column', 'toolsdb_migrations.definitions.source_file', 'The file that defines it, e.g. '
                || 'repeatable/60_maintenance.sql.'),
            ('column', 'toolsdb_migrations.definitions.source_digest', 'SHA-256 of its statements as last '
                || 'applied.'),
            ('column', 'toolsdb_migrations.definitions.catalog_digest', 'MD5 of its definition and comments '
                || 'as the catalog showed them after that.'),
            ('column', 'toolsdb_migrations.definitions.applied_at', 'When it was last applied.'),
            ('table', 'toolsdb_migrations.tree_state', 'What the last full toolsdb migrate applied: the '
                || 'digest of its tree of SQL files and the actions of repeatable/ it re-runs every time. One '
                || 'row. A migrate of the same tree, with every migration applied and every definition as '
                || 'recorded, re-runs only those actions.'),
            ('column', 'toolsdb_migrations.tree_state.state_id', 'Always tree: the table holds one row.'),
            ('column', 'toolsdb_migrations.tree_state.tree_digest', 'SHA-256 over toolsdb''s version and the '
                || 'names and bytes of schema/00_bootstrap.sql, migrations/ and repeatable/.'),
            ('column', 'toolsdb_migrations.tree_state.definitions_digest', 'MD5 over the rows of '
                || 'toolsdb_migrations.definitions as that migrate left them.'),
            ('column', 'toolsdb_migrations.tree_state.actions', 'The actions of repeatable/ (the statements '
                || 'that are not definitions), in order, as one script.'),
            ('column', 'toolsdb_migrations.tree_state.recorded_at', 'When it was recorded.')
        ) as v (kind, name, description)
    loop
        if wanted.description is distinct from (
            case wanted.kind
                when 'schema' then pg_catalog.obj_description(pg_catalog.to_regnamespace(wanted.name), 'pg_namespace')
                when 'table' then pg_catalog.obj_description(pg_catalog.to_regclass(wanted.name), 'pg_class')
                else pg_catalog.col_description(
                    pg_catalog.to_regclass(pg_catalog.regexp_replace(wanted.name, '\.[^.]*$', '')),
                    (
                        select a.attnum from pg_catalog.pg_attribute as a
                        where a.attrelid = pg_catalog.to_regclass(pg_catalog.regexp_replace(wanted.name, '\.[^.]*$', ''))
                            and a.attname = pg_catalog.regexp_replace(wanted.name, '^.*\.', '')
                    )
                )
            end
        ) then
            execute pg_catalog.format('comment on %s %s is %L', wanted.kind, wanted.name, wanted.description);
        end if;
    end loop;
end
$bootstrap$;

-- Group roles (NOLOGIN), see docs/security.md: toolsdb_owner owns every
-- object and runs migrations, toolsdb_app is the application, toolsdb_readonly
-- reads, toolsdb_worker drains the queues (claims across sessions through
-- security definer functions only), toolsdb_validator runs the statements
-- under validation (owns only the scratch schema). Cluster-wide, so two databases on one cluster may race to create
-- them: a duplicate is not an error. A connecting user without CREATEROLE
-- gets a clear error: an administrator runs this file once, then any member
-- of toolsdb_owner can migrate.
do $bootstrap$
declare
    wanted_role text;
begin
    foreach wanted_role in array array[
        'toolsdb_owner', 'toolsdb_app', 'toolsdb_readonly', 'toolsdb_worker', 'toolsdb_validator'
    ] loop
        if not exists (select from pg_catalog.pg_roles where rolname = wanted_role) then
            begin
                execute pg_catalog.format('create role %I nologin', wanted_role);
            exception
                when duplicate_object or unique_violation then
                    null;
                when insufficient_privilege then
                    raise exception 'toolsdb needs the role % and % may not create roles', wanted_role, current_user
                        using errcode = 'insufficient_privilege',
                        hint = 'ask an administrator to run schema/00_bootstrap.sql once, or grant CREATEROLE';
            end;
        end if;
    end loop;
end
$bootstrap$;

-- toolsdb_owner owns the namespaces (and, through `toolsdb migrate`, which
-- runs as it, everything in them). The connecting user becomes a member so
-- it can act as the owner; yoyo tables made before this are handed over.
do $bootstrap$
declare
    schema_name text;
    table_name text;
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'toolsdb_owner') then
        return;
    end if;
    if not pg_catalog.pg_has_role(current_user, 'toolsdb_owner', 'MEMBER') then
        begin
            execute pg_catalog.format('grant toolsdb_owner to %I', current_user);
        exception
            when insufficient_privilege or invalid_grant_operation then
                raise notice 'toolsdb: % cannot become a member of toolsdb_owner', current_user;
                return;
        end;
    end if;
    -- toolsdb_owner may act as toolsdb_validator (it owns the function that
    -- runs statements under validation, and the scratch schema).
    if not pg_catalog.pg_has_role('toolsdb_owner', 'toolsdb_validator', 'MEMBER') then
        grant toolsdb_validator to toolsdb_owner;
    end if;
    if (select n.nspowner from pg_catalog.pg_namespace as n where n.nspname = 'toolsdb_scratch')
        <> 'toolsdb_validator'::regrole then
        alter schema toolsdb_scratch owner to toolsdb_validator;
    end if;
    foreach schema_name in array array['toolsdb', 'toolsdb_private', 'toolsdb_migrations', 'toolsdb_monitoring'] loop
        if (select n.nspowner from pg_catalog.pg_namespace as n where n.nspname = schema_name)
            <> 'toolsdb_owner'::regrole then
            execute pg_catalog.format('alter schema %I owner to toolsdb_owner', schema_name);
        end if;
    end loop;
    for table_name in
        select c.relname from pg_catalog.pg_class as c
        where c.relnamespace = 'toolsdb_migrations'::regnamespace and c.relkind = 'r'
            and c.relowner <> 'toolsdb_owner'::regrole
    loop
        execute pg_catalog.format('alter table toolsdb_migrations.%I owner to toolsdb_owner', table_name);
    end loop;
    -- Functions toolsdb_owner creates are not executable by public; each is
    -- granted to named roles in repeatable/99_grants.sql.
    if not exists (
        select from pg_catalog.pg_default_acl as a
        where a.defaclrole = 'toolsdb_owner'::regrole and a.defaclnamespace = 0 and a.defaclobjtype = 'f'
            and not exists (select from pg_catalog.aclexplode(a.defaclacl) as x where x.grantee = 0)
    ) then
        alter default privileges for role toolsdb_owner revoke execute on functions from public;
    end if;
end
$bootstrap$;

-- psql users land in the application schema: `\d+` lists the toolsdb tables.
do $bootstrap$
begin
    if not exists (
        select from pg_catalog.pg_db_role_setting as s
        inner join pg_catalog.pg_database as d on s.setdatabase = d.oid
        where d.datname = pg_catalog.current_database() and s.setrole = 0
            and 'search_path=toolsdb, public' = any(s.setconfig)
    ) then
        execute pg_catalog.format(
            'alter database %I set search_path = toolsdb, public',
            pg_catalog.current_database()
        );
    end if;
exception
    when insufficient_privilege then
        raise notice 'toolsdb: not the database owner; set search_path = toolsdb yourself';
end
$bootstrap$;

-- pg_stat_statements (toolsdb stats, toolsdb_monitoring.slow_statements),
-- where the server preloads it (the embedded server does) and the connecting
-- user may create it: in toolsdb_monitoring, since nothing of ours lives in
-- public. An installation that exists already, in any schema, is used as is.
do $bootstrap$
begin
    if exists (select from pg_catalog.pg_extension where extname = 'pg_stat_statements')
        or not exists (select from pg_catalog.pg_available_extensions where name = 'pg_stat_statements') then
        return;
    end if;
    if 'pg_stat_statements' <> all(pg_catalog.string_to_array(
        pg_catalog.replace(pg_catalog.current_setting('shared_preload_libraries'), ' ', ''), ','
    )) then
        return;
    end if;
    create extension pg_stat_statements with schema toolsdb_monitoring;
exception
    when insufficient_privilege then
        raise notice 'toolsdb: % may not create the extension pg_stat_statements; slow statements are not recorded',
            current_user;
end
$bootstrap$;

-- On a Citus coordinator (docs/citus.md): Citus runs DDL and distributed
-- queries on the workers as the role that issued them, so the roles that
-- query log in there (authentication is the cluster's: pg_hba, certificates
-- or .pgpass; no role has a password). Citus creates a role on the workers
-- when an object that depends on it is distributed, as the user at hand; a
-- role that existed before Citus is not tracked yet, and toolsdb_owner may
-- not create it there. A grant made here, by this privileged user, on a
-- function that is dropped at once makes Citus copy and track every role
-- first. Only where a role is untracked or may not log in, or the setting
-- below is missing: a second run changes nothing.
do $bootstrap$
declare
    wanted_role text;
    untracked text[];
begin
    if not exists (select from pg_catalog.pg_extension where extname = 'citus') then
        return;
    end if;
    execute $query$
        select pg_catalog.array_agg(r.rolname order by r.rolname)
        from pg_catalog.pg_roles as r
        where r.rolname in ('toolsdb_owner', 'toolsdb_app', 'toolsdb_readonly', 'toolsdb_worker', 'toolsdb_validator')
            and not exists (
                select from pg_catalog.pg_dist_object as o
                where o.classid = 'pg_catalog.pg_authid'::regclass and o.objid = r.oid
            )
    $query$ into untracked;
    if untracked is not null then
        create function toolsdb_private.citus_track_roles() returns integer language sql as 'select 1';
        execute pg_catalog.format(
            'grant execute on function toolsdb_private.citus_track_roles() to %s',
            (select pg_catalog.string_agg(pg_catalog.quote_ident(u), ', ') from pg_catalog.unnest(untracked) as u)
        );
        drop function toolsdb_private.citus_track_roles();
    end if;
    foreach wanted_role in array array['toolsdb_owner', 'toolsdb_app', 'toolsdb_readonly', 'toolsdb_worker'] loop
        if not (select r.rolcanlogin from pg_catalog.pg_roles as r where r.rolname = wanted_role) then
            execute pg_catalog.format('alter role %I login', wanted_role);
        end if;
    end loop;
    -- Row-level security reads toolsdb.session_id (and the other settings of
    -- 11_context) on the node that holds the rows: SET LOCAL reaches the
    -- workers with this; set_config() never does (the rows then stay hidden).
    if not exists (
        select from pg_catalog.pg_db_role_setting as s
        inner join pg_catalog.pg_database as d on s.setdatabase = d.oid
        where d.datname = pg_catalog.current_database() and s.setrole = 0
            and 'citus.propagate_set_commands=local' = any(s.setconfig)
    ) then
        execute pg_catalog.format(
            'alter database %I set citus.propagate_set_commands = local', pg_catalog.current_database()
        );
    end if;
exception
    when insufficient_privilege then
        raise exception 'toolsdb on Citus needs its roles on every node and able to log in, and % may not do that',
            current_user
            using errcode = 'insufficient_privilege',
            hint = 'ask an administrator to run schema/00_bootstrap.sql once on the coordinator';
end
$bootstrap$;
