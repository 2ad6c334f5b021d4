-- migrations/0001.baseline.rollback.sql
-- Undo 0001.baseline.sql: drop every table of toolsdb, and with them
-- (cascade) what repeatable/ defined on them; then the functions and views
-- that are left, so nothing of toolsdb remains but the bootstrap's schemas
-- and roles. The next `toolsdb migrate` builds everything again.
-- Destroys every row: undoing the baseline is what this rollback is for, so
-- squawk's drop rules do not apply to this file.
-- squawk-ignore-file ban-drop-table, ban-drop-function

do $rollback$
declare
    target record;
begin
    for target in
        -- Names, not oid::regclass: a cascade may drop a later one first.
        select pg_catalog.format('%I.%I', c.relnamespace::regnamespace, c.relname) as name, c.relkind
        from pg_catalog.pg_class as c
        where c.relnamespace in ('toolsdb'::regnamespace, 'toolsdb_private'::regnamespace)
            and c.relkind in ('r', 'p', 'v', 'm')
            and not c.relispartition
        order by c.relkind = 'v' desc, c.oid desc
    loop
        if target.relkind = 'v' then
            execute pg_catalog.format('drop view if exists %s cascade', target.name);
        elsif target.relkind = 'm' then
            execute pg_catalog.format('drop materialized view if exists %s cascade', target.name);
        else
            execute pg_catalog.format('drop table if exists %s cascade', target.name);
        end if;
    end loop;
    for target in
        select
            pg_catalog.format(
                '%I.%I(%s)', p.pronamespace::regnamespace, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)
            ) as name,
            p.prokind
        from pg_catalog.pg_proc as p
        where p.pronamespace in (
            'toolsdb'::regnamespace, 'toolsdb_private'::regnamespace, 'toolsdb_monitoring'::regnamespace
        )
        and not exists (
            select from pg_catalog.pg_depend as d
            where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
        )
    loop
        execute pg_catalog.format(
            'drop %s if exists %s cascade',
            case target.prokind when 'p' then 'procedure' else 'function' end,
            target.name
        );
    end loop;
    for target in
        select pg_catalog.format('toolsdb_monitoring.%I', c.relname) as name
        from pg_catalog.pg_class as c
        where c.relnamespace = 'toolsdb_monitoring'::regnamespace and c.relkind = 'v'
        and not exists (
            select from pg_catalog.pg_depend as d
            where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
        )
    loop
        execute pg_catalog.format('drop view if exists %s cascade', target.name);
    end loop;
    -- The audit log's domains (schema/13_audit.sql), once its table is gone.
    for target in
        select pg_catalog.format('%I.%I', t.typnamespace::regnamespace, t.typname) as name
        from pg_catalog.pg_type as t
        where t.typnamespace in ('toolsdb'::regnamespace, 'toolsdb_private'::regnamespace) and t.typtype = 'd'
    loop
        execute pg_catalog.format('drop domain if exists %s cascade', target.name);
    end loop;
    delete from toolsdb_migrations.definitions;
end
$rollback$;
