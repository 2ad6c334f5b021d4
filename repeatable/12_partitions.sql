-- repeatable/12_partitions.sql
-- Tier 10: one way to keep a time-partitioned table's partitions ahead of
-- time, shared by the audit log (monthly) and metrics (daily): partitions
-- named <table>_yYYYYmMM[dDD] in UTC, a default partition catching rows of
-- periods nobody created in time, and the move of those rows into their own
-- period. Callers (audit_create_partitions, metrics_create_partitions) check
-- their arguments and take their table's advisory lock first.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md).

create or replace function toolsdb_private.partition_name(parent regclass, period text, period_start date)
returns text
language plpgsql
stable
set search_path = ''
as $function$
begin
    return (select c.relname from pg_catalog.pg_class as c where c.oid = parent)
        || '_'
        || pg_catalog.to_char(period_start, case period when 'day' then '"y"YYYY"m"MM"d"DD' else '"y"YYYY"m"MM' end);
end;
$function$;

comment on function toolsdb_private.partition_name(regclass, text, date) is
'The one name of a time partition: <table>_yYYYYmMM for a month, <table>_yYYYYmMMdDD for a day '
'(period ''month'' or ''day'', UTC), e.g. partition_name(''toolsdb.metrics'', ''day'', '
'''2026-12-02'') is metrics_y2026m12d02.';

create or replace function toolsdb_private.range_partitions(parent regclass)
returns table (partition_oid regclass, partition_name text, starts_at timestamptz, ends_at timestamptz)
language plpgsql
stable
set search_path = ''
as $function$
begin
    return query
    select
        b.oid::regclass,
        b.relname::text,
        (pg_catalog.regexp_match(b.bound, '^FOR VALUES FROM \(''([^'']+)''\) TO'))[1]::timestamptz,
        (pg_catalog.regexp_match(b.bound, ' TO \(''([^'']+)''\)$'))[1]::timestamptz
    from (
        select c.oid, c.relname, pg_catalog.pg_get_expr(c.relpartbound, c.oid) as bound
        from pg_catalog.pg_inherits as i
        inner join pg_catalog.pg_class as c on i.inhrelid = c.oid
        where i.inhparent = parent
    ) as b
    where b.bound <> 'DEFAULT'
    order by 3;
end;
$function$;

comment on function toolsdb_private.range_partitions(regclass) is
'The partitions of a table range-partitioned on one timestamptz column, with the bounds the catalog '
'holds for each (from inclusive, to exclusive), oldest first; the default partition left out. '
'Retention reads these instead of parsing partition names.';

create or replace function toolsdb_private.create_range_partitions(
    parent regclass,
    period text,
    periods_ahead integer,
    append_only_hint text default null
)
returns integer
language plpgsql
volatile
set search_path = ''
as $function$
declare
    parent_name text;
    parent_schema text;
    step interval;
    period_start date;
    part_name text;
    default_name text;
    created integer := 0;
    stranded_periods date[];
begin
    if period not in ('day', 'month') then
        raise exception 'partitions are by day or month, not %', period using errcode = 'invalid_parameter_value';
    end if;
    select c.relname, n.nspname into parent_name, parent_schema
    from pg_catalog.pg_class as c
    inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
    where c.oid = parent;
    step := case period when 'day' then interval '1 day' else interval '1 month' end;
    default_name := parent_name || '_default';
    -- Rows that landed in the default partition move to their own period:
    -- detach the default, create the periods, route its rows through the
    -- parent, then drop it and start a new one.
    execute pg_catalog.format(
        'select pg_catalog.array_agg(distinct pg_catalog.date_trunc(%L, p.%I at time zone %L)::date) from %I.%I as p',
        period,
        (
            select a.attname
            from pg_catalog.pg_partitioned_table as pt
            inner join pg_catalog.pg_attribute as a on pt.partrelid = a.attrelid and a.attnum = pt.partattrs[0]
            where pt.partrelid = parent
        ),
        'UTC',
        parent_schema,
        default_name
    ) into stranded_periods;
    if stranded_periods is not null then
        execute pg_catalog.format('alter table %s detach partition %I.%I', parent, parent_schema, default_name);
        execute pg_catalog.format('alter table %I.%I rename to %I', parent_schema, default_name, parent_name || '_stranded');
    end if;
    for period_start in
        select pg_catalog.date_trunc(period, (pg_catalog.now() at time zone 'UTC') + step * i)::date
        from pg_catalog.generate_series(0, periods_ahead) as i
        union
        select s from pg_catalog.unnest(stranded_periods) as s
    loop
        part_name := toolsdb_private.partition_name(parent, period, period_start);
        if pg_catalog.to_regclass(pg_catalog.format('%I.%I', parent_schema, part_name)) is null then
            execute pg_catalog.format(
                'create table %I.%I partition of %s for values from (%L) to (%L)',
                parent_schema, part_name, parent,
                period_start::timestamp at time zone 'UTC',
                (period_start + step)::timestamp at time zone 'UTC'
            );
            execute pg_catalog.format(
                'comment on table %I.%I is %L', parent_schema, part_name,
                'Partition of ' || parent::text || ' for '
                || pg_catalog.to_char(period_start, case period when 'day' then 'YYYY-MM-DD' else 'YYYY-MM' end)
                || ' (UTC).'
            );
            if append_only_hint is not null then
                execute pg_catalog.format(
                    'create trigger _010_append_only_truncate before truncate on %I.%I '
                    'for each statement execute function toolsdb_private.tg__append_only(%L, %L)',
                    parent_schema, part_name, parent::text, append_only_hint
                );
            end if;
            created := created + 1;
        end if;
    end loop;
    if stranded_periods is not null then
        execute pg_catalog.format('create table %I.%I partition of %s default', parent_schema, default_name, parent);
        execute pg_catalog.format(
            'comment on table %I.%I is %L', parent_schema, default_name,
            'Default partition of ' || parent::text || ': rows of ' || period || 's without their own partition '
            || 'land here until their partition is created (they are moved then).'
        );
        if append_only_hint is not null then
            execute pg_catalog.format(
                'create trigger _010_append_only_truncate before truncate on %I.%I '
                'for each statement execute function toolsdb_private.tg__append_only(%L, %L)',
                parent_schema, default_name, parent::text, append_only_hint
            );
        end if;
        execute pg_catalog.format(
            'insert into %s overriding system value select * from %I.%I', parent, parent_schema, parent_name || '_stranded'
        );
        execute pg_catalog.format('drop table %I.%I', parent_schema, parent_name || '_stranded');
    end if;
    return created;
end;
$function$;

comment on function toolsdb_private.create_range_partitions(regclass, text, integer, text) is
'Creates the partitions of a table range-partitioned on one timestamptz column for the current '
'period (day or month, UTC) and the next periods_ahead, named <table>_yYYYYmMM or _yYYYYmMMdDD, '
'and for every period whose rows landed in the default partition <table>_default (they are moved '
'there). With append_only_hint, each new partition gets the append-only truncate guard. Returns '
'how many it created. Callers check arguments and hold their table''s advisory lock.';
