-- views/40_work.sql
-- Tier 40: reporting views over work tracking (004's names). security_invoker,
-- so the application sees only its project's rows.
-- Needs: toolsdb.tasks, toolsdb.projects, toolsdb.users, toolsdb.agents.

create or replace view toolsdb.active_tasks
with (security_invoker = true) as
select
    t.task_id,
    t.project_id,
    p.slug as project_slug,
    t.parent_task_id,
    t.title,
    t.type,
    t.status,
    t.priority,
    t.priority_label,
    t.labels,
    t.assigned_to_user_id,
    u.username as assigned_to_username,
    t.assigned_to_agent_id,
    a.name as assigned_to_agent_name,
    t.created_at,
    t.updated_at
from toolsdb.tasks as t
inner join toolsdb.projects as p on t.project_id = p.project_id
left join toolsdb.users as u on t.assigned_to_user_id = u.user_id
left join toolsdb.agents as a on t.assigned_to_agent_id = a.agent_id
where t.status in ('open', 'in_progress');

comment on view toolsdb.active_tasks is
'004''s active_tasks: tasks that are open (004 pending) or in_progress, with project slug and '
'assignee names. Order by priority desc, created_at for a work queue.';
comment on column toolsdb.active_tasks.task_id is 'The task.';
comment on column toolsdb.active_tasks.project_id is 'Its project.';
comment on column toolsdb.active_tasks.project_slug is 'Its project''s slug.';
comment on column toolsdb.active_tasks.parent_task_id is 'Its parent task, if any.';
comment on column toolsdb.active_tasks.title is 'Its title.';
comment on column toolsdb.active_tasks.type is 'bug, feature, refactor, test, documentation, task or chore.';
comment on column toolsdb.active_tasks.status is 'open or in_progress.';
comment on column toolsdb.active_tasks.priority is '0-10.';
comment on column toolsdb.active_tasks.priority_label is 'low, medium, high or critical.';
comment on column toolsdb.active_tasks.labels is 'Its labels.';
comment on column toolsdb.active_tasks.assigned_to_user_id is 'Assigned user, if any.';
comment on column toolsdb.active_tasks.assigned_to_username is 'That user''s username.';
comment on column toolsdb.active_tasks.assigned_to_agent_id is 'Assigned agent, if any.';
comment on column toolsdb.active_tasks.assigned_to_agent_name is 'That agent''s name.';
comment on column toolsdb.active_tasks.created_at is 'When the task was created.';
comment on column toolsdb.active_tasks.updated_at is 'When it last changed.';
