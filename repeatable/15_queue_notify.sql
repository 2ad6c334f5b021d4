-- repeatable/15_queue_notify.sql
-- Tier 10: the wake-up of the queues, shared by the event queue
-- (repeatable/43_events.sql) and the notification queue
-- (repeatable/44_notifications.sql): their _900_notify statement triggers
-- call it with the channel to notify.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md).

create or replace function toolsdb_private.tg__queue_notify()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    -- On a Citus worker (a shard of the distributed events) nobody listens,
    -- and a notification would keep a two-phase commit from preparing: the
    -- coordinator's function notifies instead (toolsdb.hook_ingest()).
    -- (Nested: the catalog exists only in a database with the extension.)
    if pg_catalog.current_setting('citus.version', true) is not null
        and pg_catalog.to_regclass('pg_catalog.pg_dist_local_group') is not null then
        if not exists (select from pg_catalog.pg_dist_local_group as g where g.groupid = 0) then
            return null;
        end if;
    end if;
    perform pg_catalog.pg_notify(tg_argv[0], '');
    return null;
end;
$function$;

comment on function toolsdb_private.tg__queue_notify() is
'Statement trigger of the queues: one pg_notify on the channel named by the trigger argument per '
'inserting statement (and PostgreSQL folds equal notifications of one transaction into one), so '
'a waiting worker wakes without one notification per row. Nothing on a Citus worker (docs/citus.md).';
