-- repeatable/35_bug_escalations.sql
-- Tier 30: critical bug escalation, the bugs that error_logs rows
-- are occurrences of. One row per bug id; reporting
-- it again counts one more occurrence atomically (insert ... on conflict),
-- and a resolved bug that occurs again reopens (reopened_count says so).
-- The escalation priority is derived from impact and frequency by a
-- generated column; status moves follow a lifecycle enforced by a trigger
-- (bug_escalation_move() is the function to call). error_logs rows can
-- point to their bug. Audited.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/35_bug_escalations.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.bug_escalations
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.bug_escalations is
'Keeps created_at unforgeable and updated_at strictly increasing (toolsdb_private.tg__timestamps()).';

create or replace function toolsdb_private.tg__bug_lifecycle()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if new.status is distinct from old.status then
        if (old.status, new.status) not in (
            ('pending', 'acknowledged'), ('pending', 'resolved'), ('acknowledged', 'pending'),
            ('acknowledged', 'resolved'), ('resolved', 'pending')
        ) then
            raise exception 'bug % cannot move from % to %', old.bug_id, old.status, new.status
                using errcode = 'object_not_in_prerequisite_state';
        end if;
        new.resolved_at := case when new.status = 'resolved' then pg_catalog.now() end;
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__bug_lifecycle() is
'Trigger of toolsdb.bug_escalations: only the lifecycle''s moves are allowed (else 55000 naming '
'both states), and resolved_at follows the status.';

create or replace trigger _050_lifecycle
before update on toolsdb.bug_escalations
for each row
execute function toolsdb_private.tg__bug_lifecycle();

comment on trigger _050_lifecycle on toolsdb.bug_escalations is
'Enforces the status lifecycle and keeps resolved_at (toolsdb_private.tg__bug_lifecycle()).';

select toolsdb.audit_table('toolsdb.bug_escalations');

create or replace function toolsdb.report_bug(
    bug_id text,
    error_type text,
    error_message text,
    user_impact text default 'medium'
)
returns toolsdb.bug_escalations
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.bug_escalations as b (bug_id, error_type, error_message, user_impact)
    values ($1, $2, $3, coalesce($4, 'medium'))
    on conflict on constraint bug_escalations_pkey do update
    set frequency = b.frequency + 1,
        -- excluded's is its default, now(): Citus takes no function that is
        -- not immutable in DO UPDATE SET (docs/citus.md).
        last_seen_at = greatest(b.last_seen_at, excluded.last_seen_at),
        error_type = excluded.error_type,
        error_message = excluded.error_message,
        user_impact = case
            when pg_catalog.array_position(array['low', 'medium', 'high', 'critical'], excluded.user_impact)
                > pg_catalog.array_position(array['low', 'medium', 'high', 'critical'], b.user_impact)
                then excluded.user_impact
            else b.user_impact
        end,
        status = case when b.status = 'resolved' then 'pending' else b.status end,
        reopened_count = b.reopened_count + case when b.status = 'resolved' then 1 else 0 end
    returning b.*;
$function$;

comment on function toolsdb.report_bug(text, text, text, text) is
'Reports an occurrence of a bug (report_bug, as in the agent-tools API): a new bug id starts '
'pending with frequency 1; a known one gets frequency + 1 and last_seen_at now, atomically under '
'concurrency, keeps its highest impact, and reopens (pending, reopened_count + 1) if it was '
'resolved. Returns the row.';

create or replace function toolsdb.bug_escalation_move(bug_id text, to_status text, assigned_to uuid default null)
returns text
language plpgsql
volatile
set search_path = ''
as $function$
declare
    previous text;
begin
    select b.status into previous
    from toolsdb.bug_escalations as b
    where b.bug_id = bug_escalation_move.bug_id
    for update;
    if not found then
        raise exception 'bug % not found', bug_escalation_move.bug_id using errcode = 'no_data_found';
    end if;
    update toolsdb.bug_escalations as b
    set status = to_status,
        assigned_to = coalesce(bug_escalation_move.assigned_to, b.assigned_to)
    where b.bug_id = bug_escalation_move.bug_id;
    return previous;
end;
$function$;

comment on function toolsdb.bug_escalation_move(text, text, uuid) is
'Moves a bug along its lifecycle (and assigns it when assigned_to is given); returns the status '
'it left. A move outside the lifecycle is 55000 naming both states; an unknown bug is no_data_found '
'(P0002).';
