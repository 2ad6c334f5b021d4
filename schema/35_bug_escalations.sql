-- schema/35_bug_escalations.sql
-- Tier 30: critical bug escalation, the bugs that error_logs rows
-- are occurrences of. One row per bug id; reporting
-- it again counts one more occurrence atomically (insert ... on conflict),
-- and a resolved bug that occurs again reopens (reopened_count says so).
-- The escalation priority is derived from impact and frequency by a
-- generated column; status moves follow a lifecycle enforced by a trigger
-- (bug_escalation_move() is the function to call). error_logs rows can
-- point to their bug. Audited.
-- Its functions, triggers and row-level security: repeatable/35_bug_escalations.sql.
-- Needs: schema/20_users.sql.

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

comment on table toolsdb.bug_escalations is
'Bugs to escalate, one per bug id: how often they occur, whom they hurt, who handles them. Report '
'with toolsdb.report_bug() (counts an occurrence; reopens a resolved bug), move with '
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
