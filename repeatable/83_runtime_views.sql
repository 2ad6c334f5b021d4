-- repeatable/83_runtime_views.sql
-- Views over the agent runtime (docs/runtime.md): the active sessions, and
-- the depth of the two queues.

create or replace view toolsdb.active_sessions
with (security_invoker = true) as
select
    s.session_id,
    s.user_id,
    s.agent_id,
    s.project_id,
    s.cwd,
    s.git_branch,
    s.terminal_type,
    s.terminal_info,
    s.is_idle,
    s.last_event_type,
    s.message_count,
    s.started_at,
    s.last_activity_at,
    now() - s.last_activity_at as inactive_for
from toolsdb.sessions as s
where s.ended_at is null;

comment on view toolsdb.active_sessions is
'Sessions that have not ended (get_active_sessions in the hook-notification API), most useful '
'ordered by last_activity_at desc; inactive_for tells stale ones apart.';
comment on column toolsdb.active_sessions.session_id is 'The session id as the agent gives it.';
comment on column toolsdb.active_sessions.user_id is 'The user, if known.';
comment on column toolsdb.active_sessions.agent_id is 'The agent, if known.';
comment on column toolsdb.active_sessions.project_id is 'The project, if known.';
comment on column toolsdb.active_sessions.cwd is 'Working directory of the agent.';
comment on column toolsdb.active_sessions.git_branch is 'Git branch in cwd when last seen.';
comment on column toolsdb.active_sessions.terminal_type is 'Terminal the agent runs in.';
comment on column toolsdb.active_sessions.terminal_info is 'Terminal details (JSON object).';
comment on column toolsdb.active_sessions.is_idle is 'True while the agent waits for the user.';
comment on column toolsdb.active_sessions.last_event_type is 'The last hook event seen.';
comment on column toolsdb.active_sessions.message_count is
'How many messages were ever added (sessions.message_count).';
comment on column toolsdb.active_sessions.started_at is 'When the session was first seen.';
comment on column toolsdb.active_sessions.last_activity_at is 'When it was last active.';
comment on column toolsdb.active_sessions.inactive_for is 'Time since last_activity_at.';

create or replace view toolsdb.queue_depth
with (security_invoker = true) as
select
    'events' as queue_name,
    count(*) filter (where e.visible_at <= now() and e.attempts = 0) as ready,
    count(*) filter (where e.visible_at > now()) as leased,
    count(*) filter (where e.visible_at <= now() and e.attempts > 0) as retrying,
    0::bigint as dead,
    min(e.created_at) filter (where e.visible_at <= now()) as oldest_ready_at
from toolsdb.events as e
where e.processed_at is null
union all
select
    'notifications' as queue_name,
    count(*) filter (where n.status = 'pending' and n.next_attempt_at <= now()) as ready,
    count(*) filter (where n.status = 'sending' and n.next_attempt_at > now()) as leased,
    count(*) filter (where n.status = 'failed' or (n.status = 'sending' and n.next_attempt_at <= now())) as retrying,
    count(*) filter (where n.status = 'dead') as dead,
    min(n.created_at) filter (
        where n.status in ('pending', 'sending', 'failed') and n.next_attempt_at <= now()
    ) as oldest_ready_at
from toolsdb.notifications as n
where n.status <> 'sent';

comment on view toolsdb.queue_depth is
'Work waiting in the two queues, one row each (events, notifications): what a worker could claim '
'now, what is leased, what waits for a retry, and the dead letters. Reads every open row: for '
'monitoring, not for a hot loop.';
comment on column toolsdb.queue_depth.queue_name is 'events or notifications.';
comment on column toolsdb.queue_depth.ready is 'Rows never tried that a worker could claim now.';
comment on column toolsdb.queue_depth.leased is 'Rows claimed by a worker whose lease has not ended.';
comment on column toolsdb.queue_depth.retrying is 'Rows tried before (failed, or their lease ended) and not settled.';
comment on column toolsdb.queue_depth.dead is 'Dead letters (notifications only).';
comment on column toolsdb.queue_depth.oldest_ready_at is 'Creation time of the oldest claimable row: the queue''s lag.';
