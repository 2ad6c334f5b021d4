-- repeatable/10_timestamps.sql
-- Tier 10: shared trigger functions used by every application table.
-- Defines toolsdb_private.tg__timestamps(), the BEFORE INSERT OR UPDATE row
-- trigger function that owns created_at and updated_at: clients cannot forge
-- created_at, and updated_at strictly increases on every update (Graphile
-- starter style). Each table attaches it as trigger _100_timestamps.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md).

create or replace function toolsdb_private.tg__timestamps()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if tg_op = 'INSERT' then
        new.created_at := now();
        new.updated_at := now();
    elsif tg_op = 'UPDATE' then
        new.created_at := old.created_at;
        new.updated_at := greatest(now(), old.updated_at + interval '1 millisecond');
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__timestamps() is
'Row trigger (BEFORE INSERT OR UPDATE) that owns created_at and updated_at. On INSERT both '
'are set to now(), whatever the client sent. On UPDATE created_at keeps its stored value and '
'updated_at becomes greatest(now(), previous updated_at + 1 millisecond), so it strictly '
'increases even for several updates in one transaction. Attach it as trigger _100_timestamps; '
'the table needs created_at and updated_at timestamptz columns.';
