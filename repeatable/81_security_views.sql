-- repeatable/81_security_views.sql
-- Views over the security spine (docs/security.md). Every view is
-- security_invoker, so row-level security of the tables below applies to
-- whoever reads the view: nothing leaks across a session or project boundary.

create or replace view toolsdb.audit_trail_events
with (security_invoker = true) as
select
    l.audit_id,
    l.logged_at,
    l.action as event_type,
    l.entity_type,
    l.entity_id,
    l.old_values,
    l.new_values,
    l.details,
    l.actor,
    l.actor_user_id,
    l.actor_agent_id,
    l.session_id
from toolsdb.audit_logs as l
where l.action not in ('insert', 'update', 'delete', 'truncate');

comment on view toolsdb.audit_trail_events is
'Explicit audit events only (permission_changed, config_updated, ...), in the words of the '
'agent-tools audit trail: event_type is toolsdb.audit_logs.action. Captured row changes are left '
'out.';
comment on column toolsdb.audit_trail_events.audit_id is 'The entry (toolsdb.audit_logs.audit_id).';
comment on column toolsdb.audit_trail_events.logged_at is 'When it was written.';
comment on column toolsdb.audit_trail_events.event_type is 'The event name, e.g. permission_changed.';
comment on column toolsdb.audit_trail_events.entity_type is 'Kind of thing acted on, e.g. permission.';
comment on column toolsdb.audit_trail_events.entity_id is 'Which one.';
comment on column toolsdb.audit_trail_events.old_values is 'Before, as a JSON object, if given.';
comment on column toolsdb.audit_trail_events.new_values is 'After, as a JSON object, if given.';
comment on column toolsdb.audit_trail_events.details is 'Anything else recorded with the event.';
comment on column toolsdb.audit_trail_events.actor is 'Who acted.';
comment on column toolsdb.audit_trail_events.actor_user_id is 'The acting user, if known.';
comment on column toolsdb.audit_trail_events.actor_agent_id is 'The acting agent, if known.';
comment on column toolsdb.audit_trail_events.session_id is 'The agent session, if any.';

create or replace view toolsdb.platform_audit_logs
with (security_invoker = true) as
select
    l.audit_id as log_id,
    l.logged_at as created_at,
    l.actor_user_id as user_id,
    l.actor_agent_id as agent_id,
    l.action as event_type,
    l.entity_type as resource_type,
    l.entity_id as resource_id,
    l.old_values,
    l.new_values,
    l.details,
    l.client_addr as ip_address,
    l.user_agent,
    true as is_immutable,
    l.actor,
    l.session_id
from toolsdb.audit_logs as l;

comment on view toolsdb.platform_audit_logs is
'The whole audit log (toolsdb.audit_logs) under the engineering platform''s column names. '
'Read-only; write events with toolsdb.audit_event(). security_invoker: row-level security of '
'toolsdb.audit_logs applies to the reader.';
comment on column toolsdb.platform_audit_logs.log_id is 'The entry (toolsdb.audit_logs.audit_id, a bigint).';
comment on column toolsdb.platform_audit_logs.created_at is 'When it was written (logged_at).';
comment on column toolsdb.platform_audit_logs.user_id is 'The acting user, if known (actor_user_id).';
comment on column toolsdb.platform_audit_logs.agent_id is 'The acting agent, if known (actor_agent_id).';
comment on column toolsdb.platform_audit_logs.event_type is
'What happened (action): insert, update, delete, truncate, or an event name such as task_created.';
comment on column toolsdb.platform_audit_logs.resource_type is 'Kind of thing acted on (entity_type), e.g. tasks.';
comment on column toolsdb.platform_audit_logs.resource_id is 'Which one (entity_id), as text.';
comment on column toolsdb.platform_audit_logs.old_values is 'Before, as a JSON object, if any.';
comment on column toolsdb.platform_audit_logs.new_values is 'After, as a JSON object, if any.';
comment on column toolsdb.platform_audit_logs.details is 'Anything else recorded with the entry.';
comment on column toolsdb.platform_audit_logs.ip_address is
'Address of the end client (client_addr: setting toolsdb.client_addr, else the connection''s).';
comment on column toolsdb.platform_audit_logs.user_agent is
'User agent of the end client (setting toolsdb.user_agent), if any.';
comment on column toolsdb.platform_audit_logs.is_immutable is
'Always true: the log is append-only (UPDATE and DELETE refused) and sealed.';
comment on column toolsdb.platform_audit_logs.actor is 'Who acted, always set.';
comment on column toolsdb.platform_audit_logs.session_id is 'The agent session, if any.';

create or replace view toolsdb.project_overview
with (security_invoker = true) as
select
    p.project_id,
    p.slug,
    p.name,
    p.status,
    p.repository_url,
    u.username as owner_username,
    p.updated_at
from toolsdb.projects as p
inner join toolsdb.users as u on p.owner_id = u.user_id;

comment on view toolsdb.project_overview is
'Projects with their owner''s username. security_invoker: the application sees only the project '
'of its transaction (toolsdb.project_id), like on toolsdb.projects.';
comment on column toolsdb.project_overview.project_id is 'The project.';
comment on column toolsdb.project_overview.slug is 'Its URL-friendly identifier.';
comment on column toolsdb.project_overview.name is 'Its name.';
comment on column toolsdb.project_overview.status is 'active, paused or archived.';
comment on column toolsdb.project_overview.repository_url is 'Its git repository.';
comment on column toolsdb.project_overview.owner_username is 'The owner''s username.';
comment on column toolsdb.project_overview.updated_at is 'When the project last changed.';
