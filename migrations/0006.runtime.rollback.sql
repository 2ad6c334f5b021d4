-- migrations/0006.runtime.rollback.sql
-- Undo 0006.runtime.sql: drop metrics (with every daily partition),
-- notifications, events, memories, messages and sessions, every row, with
-- their functions, and give audit_create_partitions and isolate_rows back
-- their 0002 definitions.
-- The views in views/50_runtime.sql go with them (cascade) and come back
-- with the next migrate. Undoing this migration is what a
-- rollback is for, so squawk's drop rules do not apply.
-- squawk-ignore-file ban-drop-table, ban-drop-function

drop function if exists toolsdb.import_v1_notification_state(jsonb, text);
drop function if exists toolsdb.import_v1_tool_request(text, jsonb, timestamptz, text);
drop function if exists toolsdb_private.v1_time(jsonb);

drop function if exists toolsdb.get_metric_stats(text, timestamptz, timestamptz);
drop function if exists toolsdb.insert_metric(text, double precision, text, jsonb, timestamptz);
drop function if exists toolsdb.metrics_apply_retention(interval);
drop function if exists toolsdb.metrics_create_partitions(integer);
drop function if exists toolsdb_private.metrics_partition_name(date);
drop table if exists toolsdb.metrics cascade;

drop function if exists toolsdb.redrive_notifications(bigint[]);
drop function if exists toolsdb.get_dead_notifications(integer);
drop function if exists toolsdb.mark_notification_failed(bigint, uuid, text, interval, interval);
drop function if exists toolsdb.mark_notification_sent(bigint, uuid);
drop function if exists toolsdb.mark_notifications_sent(bigint[], uuid);
drop function if exists toolsdb.claim_notifications(integer, interval, text);
drop function if exists toolsdb.insert_notification(text, text, text, jsonb, bigint, integer, text, timestamptz);
drop table if exists toolsdb.notifications cascade;

drop function if exists toolsdb.purge_processed_events(interval);
drop function if exists toolsdb.mark_event_processed(bigint, uuid);
drop function if exists toolsdb.mark_events_processed(bigint[], uuid);
drop function if exists toolsdb.get_unprocessed_events(integer, interval, text);
drop function if exists toolsdb.hook_ingest(jsonb, jsonb);
drop function if exists toolsdb.insert_event(text, text, jsonb, text);
drop table if exists toolsdb.events cascade;
drop function if exists toolsdb_private.tg__queue_notify();

drop function if exists toolsdb.memory_get(uuid, text, uuid);
drop function if exists toolsdb.memory_set(uuid, text, text, uuid, jsonb);
drop table if exists toolsdb.memories cascade;

drop function if exists toolsdb.create_message(text, text, text, jsonb, integer, jsonb);
drop table if exists toolsdb.messages cascade;
drop function if exists toolsdb_private.tg__message_position();

drop function if exists toolsdb.end_session(text, text);
drop function if exists toolsdb.set_session_idle(text, boolean);
drop function if exists toolsdb.update_session_activity(text);
drop function if exists toolsdb.create_session(text, text, text, text, jsonb, uuid, uuid, uuid);
drop table if exists toolsdb.sessions cascade;

delete from toolsdb_private.audit_exemptions
where table_name in (
    'toolsdb.metrics', 'toolsdb.notifications', 'toolsdb.events', 'toolsdb.messages', 'toolsdb.sessions'
);

-- The audit log creates its partitions itself again, as 0002 defined it.
create or replace function toolsdb.audit_create_partitions(months_ahead integer default 3)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    month_start date;
    created integer := 0;
    stranded_months date[];
begin
    if months_ahead is null or months_ahead not between 0 and 120 then
        raise exception 'months_ahead must be between 0 and 120, not %', months_ahead
            using errcode = 'invalid_parameter_value';
    end if;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.audit_create_partitions'));
    -- Rows that landed in the default partition (months nobody created in
    -- time) move to their own month: detach the default, create the months,
    -- route its rows through the parent, then drop it and start a new one.
    select pg_catalog.array_agg(distinct pg_catalog.date_trunc('month', d.logged_at at time zone 'UTC')::date)
    into stranded_months
    from toolsdb.audit_logs_default as d;
    if stranded_months is not null then
        alter table toolsdb.audit_logs detach partition toolsdb.audit_logs_default;
        alter table toolsdb.audit_logs_default rename to audit_logs_stranded;
    end if;
    for month_start in
        select pg_catalog.date_trunc(
            'month', (pg_catalog.now() at time zone 'UTC') + pg_catalog.make_interval(months => i)
        )::date
        from pg_catalog.generate_series(0, months_ahead) as i
        union
        select m from pg_catalog.unnest(stranded_months) as m
    loop
        if pg_catalog.to_regclass('toolsdb.' || toolsdb_private.audit_partition_name(month_start)) is null then
            execute pg_catalog.format(
                'create table toolsdb.%I partition of toolsdb.audit_logs for values from (%L) to (%L)',
                toolsdb_private.audit_partition_name(month_start),
                month_start::timestamp at time zone 'UTC',
                (month_start + interval '1 month')::timestamp at time zone 'UTC'
            );
            execute pg_catalog.format(
                'create trigger _010_append_only_truncate before truncate on toolsdb.%I '
                'for each statement execute function toolsdb_private.tg__append_only(%L, %L)',
                toolsdb_private.audit_partition_name(month_start), 'toolsdb.audit_logs',
                'old entries leave only as whole monthly partitions, through toolsdb.audit_apply_retention()'
            );
            execute pg_catalog.format(
                'comment on table toolsdb.%I is %L',
                toolsdb_private.audit_partition_name(month_start),
                'Partition of toolsdb.audit_logs for ' || pg_catalog.to_char(month_start, 'YYYY-MM') || ' (UTC).'
            );
            created := created + 1;
        end if;
    end loop;
    if stranded_months is not null then
        create table toolsdb.audit_logs_default partition of toolsdb.audit_logs default;
        create trigger _010_append_only_truncate before truncate on toolsdb.audit_logs_default
        for each statement execute function toolsdb_private.tg__append_only(
            'toolsdb.audit_logs', 'old entries leave only as whole monthly partitions, through toolsdb.audit_apply_retention()'
        );
        comment on table toolsdb.audit_logs_default is
        'Default partition of toolsdb.audit_logs: entries of months without their own partition land here '
        'until toolsdb.audit_create_partitions() moves them.';
        execute 'insert into toolsdb.audit_logs overriding system value select * from toolsdb.audit_logs_stranded';
        execute 'drop table toolsdb.audit_logs_stranded';
    end if;
    return created;
end;
$function$;

comment on function toolsdb.audit_create_partitions(integer) is
'Creates the monthly partitions of toolsdb.audit_logs for this month and the next months_ahead '
'months (default 3), and for any month whose entries landed in the default partition (they are '
'moved). Returns how many it created. Run by every toolsdb migrate; schedule it monthly too.';
drop function if exists toolsdb_private.create_range_partitions(regclass, text, integer, text);

-- isolate_rows goes back to its 0002 signature (without shared_when_null).
drop function if exists toolsdb.isolate_rows(regclass, text, boolean);
create or replace function toolsdb.isolate_rows(target regclass, by_column text)
returns void
language plpgsql
volatile
set search_path = ''
as $function$
declare
    policy_name text;
    reader text := 'toolsdb.current_' || pg_catalog.left(by_column, -3) || '_id()';
begin
    if by_column not in ('project_id', 'session_id') then
        raise exception 'rows are isolated by project_id or session_id, not %', by_column
            using errcode = 'invalid_parameter_value';
    end if;
    if not exists (
        select from pg_catalog.pg_attribute as a
        where a.attrelid = target and a.attname = by_column and a.attnum > 0 and not a.attisdropped
    ) then
        raise exception 'cannot isolate %: it has no column %', target, by_column
            using errcode = 'undefined_column';
    end if;
    policy_name := pg_catalog.left(by_column, -3) || '_isolation';
    execute pg_catalog.format('alter table %s enable row level security', target);
    execute pg_catalog.format('drop policy if exists %I on %s', policy_name, target);
    execute pg_catalog.format(
        'create policy %I on %s for all to toolsdb_app using (%I = %s) with check (%I = %s)',
        policy_name, target, by_column, reader, by_column, reader
    );
    execute pg_catalog.format('drop policy if exists readonly_reads_all on %s', target);
    execute pg_catalog.format(
        'create policy readonly_reads_all on %s for select to toolsdb_readonly using (true)', target
    );
end;
$function$;

comment on function toolsdb.isolate_rows(regclass, text) is
'Row-level security the toolsdb way (docs/security.md): enables RLS on the table, lets '
'toolsdb_app see and change only the rows of its transaction''s project or session (by_column '
'project_id or session_id, compared with toolsdb.current_project_id() or current_session_id(); '
'nothing when unset) and toolsdb_readonly read all. The owner is not forced. Idempotent; call it '
'in the table''s schema file.';
