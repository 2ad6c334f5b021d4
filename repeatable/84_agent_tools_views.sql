-- repeatable/84_agent_tools_views.sql
-- Views over the agent tools: the bug escalation queue.

create or replace view toolsdb.escalation_queue
with (security_invoker = true) as
select
    b.bug_id,
    b.error_type,
    b.error_message,
    b.user_impact,
    b.frequency,
    b.escalation_priority,
    b.status,
    b.assigned_to,
    b.reopened_count,
    b.first_seen_at,
    b.last_seen_at
from toolsdb.bug_escalations as b
where b.status <> 'resolved'
order by b.escalation_priority desc, b.last_seen_at desc;

comment on view toolsdb.escalation_queue is
'Open bugs (pending or acknowledged) in escalation order: highest escalation_priority first, then '
'the most recently seen.';
comment on column toolsdb.escalation_queue.bug_id is 'The bug''s identifier.';
comment on column toolsdb.escalation_queue.error_type is 'Classification.';
comment on column toolsdb.escalation_queue.error_message is 'The latest message.';
comment on column toolsdb.escalation_queue.user_impact is 'low, medium, high or critical.';
comment on column toolsdb.escalation_queue.frequency is 'How many times it was reported.';
comment on column toolsdb.escalation_queue.escalation_priority is
'Derived from impact and frequency (see bug_escalations).';
comment on column toolsdb.escalation_queue.status is 'pending or acknowledged.';
comment on column toolsdb.escalation_queue.assigned_to is 'The user handling it, if any.';
comment on column toolsdb.escalation_queue.reopened_count is 'How many times it came back after being resolved.';
comment on column toolsdb.escalation_queue.first_seen_at is 'First report.';
comment on column toolsdb.escalation_queue.last_seen_at is 'Latest report.';
