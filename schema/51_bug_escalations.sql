-- schema/51_bug_escalations.sql
-- Tier 50: critical bug escalation (seed 000). One row per bug id; reporting
-- it again counts one more occurrence atomically (insert ... on conflict),
-- and a resolved bug that occurs again reopens (reopened_count says so).
-- The escalation priority is derived from impact and frequency by a
-- generated column; status moves follow a lifecycle enforced by a trigger
-- (bug_escalation_move() is the function to call). error_logs rows can
-- point to their bug. Audited.
-- Needs: schema/20_users.sql, schema/34_error_logs.sql, schema/12_audit.sql.

create table if not exists toolsdb.bug_escalations (
    bug_id text not null,
    error_type text not null,
    error_message text not null,
    frequency integer not null default 1,
    user_impact text not null,
    status text not null default 'pending',
    first_seen_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    assigned_to uuid,
    reopened_count integer not null default 0,
    resolved_at timestamptz,
    escalation_priority integer generated always as (
        case user_impact when 'critical' then 300 when 'high' then 200 when 'medium' then 100 else 0 end
        + least(99, floor(10 * log(2, frequency))::integer)
    ) stored,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint bug_escalations_pkey primary key (bug_id),
    constraint bug_escalations_assigned_to_fkey foreign key (assigned_to)
    references toolsdb.users (user_id) on delete set null,
    constraint bug_id_is_valid check (bug_id ~ '^[[:graph:]]+$' and char_length(bug_id) <= 200),
    constraint error_type_length_is_valid check (char_length(error_type) between 1 and 200),
    constraint error_message_length_is_valid check (char_length(error_message) between 1 and 10000),
    constraint frequency_is_positive check (frequency >= 1),
    constraint user_impact_is_valid check (user_impact in ('low', 'medium', 'high', 'critical')),
    constraint status_is_valid check (status in ('pending', 'acknowledged', 'resolved')),
    constraint last_seen_after_first check (last_seen_at >= first_seen_at),
    constraint reopened_count_is_not_negative check (reopened_count >= 0),
    constraint resolved_at_matches_status check ((status = 'resolved') = (resolved_at is not null))
);

create index if not exists bug_escalations_assigned_to_idx on toolsdb.bug_escalations (assigned_to);

create index if not exists bug_escalations_queue_idx on toolsdb.bug_escalations (
    escalation_priority desc, last_seen_at desc
) where status <> 'resolved';

create or replace trigger _100_timestamps
before insert or update on toolsdb.bug_escalations
for each row
execute function toolsdb_private.tg__timestamps();

comment on table toolsdb.bug_escalations is
'Bugs to escalate (seed 000), one per bug id: how often they occur, whom they hurt, who handles '
'them. Report with toolsdb.report_bug() (counts an occurrence; reopens a resolved bug), move with '
'toolsdb.bug_escalation_move(); the queue in priority order is the view toolsdb.escalation_queue.';
comment on column toolsdb.bug_escalations.bug_id is
'The reporter''s identifier of the bug (unique), 1-200 visible characters.';
comment on column toolsdb.bug_escalations.error_type is 'Classification, e.g. CriticalError.';
comment on column toolsdb.bug_escalations.error_message is 'The latest message reported, 1-10,000 characters.';
comment on column toolsdb.bug_escalations.frequency is 'How many times it was reported.';
comment on column toolsdb.bug_escalations.user_impact is 'low, medium, high or critical: the highest reported.';
comment on column toolsdb.bug_escalations.status is
'pending, acknowledged or resolved; moves: pending -> acknowledged | resolved, acknowledged -> '
'pending | resolved, resolved -> pending (a reopening).';
comment on column toolsdb.bug_escalations.first_seen_at is 'First report.';
comment on column toolsdb.bug_escalations.last_seen_at is 'Latest report.';
comment on column toolsdb.bug_escalations.assigned_to is 'The user handling it, if any.';
comment on column toolsdb.bug_escalations.reopened_count is 'How many times it came back after being resolved.';
comment on column toolsdb.bug_escalations.resolved_at is 'When it was resolved; set exactly while resolved.';
comment on column toolsdb.bug_escalations.escalation_priority is
'Derived: 100 x impact rank (low 0, medium 1, high 2, critical 3) + min(99, floor(10 x log2(frequency))): '
'impact always dominates, frequency orders within an impact (1 -> 0, 2 -> 10, 10 -> 33, 1000 -> 99).';
comment on column toolsdb.bug_escalations.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';
comment on column toolsdb.bug_escalations.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

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

-- error_logs rows may point to the bug they are an occurrence of.
alter table toolsdb.error_logs add column if not exists bug_id text;

comment on column toolsdb.error_logs.bug_id is 'The escalated bug this error is an occurrence of, if any.';

do $fk$
begin
    if not exists (
        select from pg_catalog.pg_constraint
        where conrelid = 'toolsdb.error_logs'::regclass and conname = 'error_logs_bug_id_fkey'
    ) then
        alter table toolsdb.error_logs add constraint error_logs_bug_id_fkey foreign key (bug_id)
        references toolsdb.bug_escalations (bug_id) on delete set null;
    end if;
end
$fk$;

create index if not exists error_logs_bug_id_idx on toolsdb.error_logs (bug_id);

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
        last_seen_at = greatest(b.last_seen_at, pg_catalog.now()),
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
'Reports an occurrence of a bug (seed 000''s report_bug): a new bug id starts pending with '
'frequency 1; a known one gets frequency + 1 and last_seen_at now, atomically under concurrency, '
'keeps its highest impact, and reopens (pending, reopened_count + 1) if it was resolved. Returns '
'the row.';

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
