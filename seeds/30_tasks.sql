-- seeds/30_tasks.sql
-- Demo tasks for the two demo projects: a small hierarchy, every kind of
-- assignee, and tasks in several statuses so toolsdb.active_tasks has rows.
-- Natural key: (project, GitHub issue number). Rows are only created when
-- missing (`on conflict do nothing`): a task's status moves along its
-- lifecycle afterwards, and a seed must not force it back.
-- Needs: seeds/10_identity.sql, schema/30_tasks.sql.

insert into toolsdb.tasks (
    project_id, github_issue_number, title, description, type, status, priority, labels,
    requirements, assigned_to_user_id, assigned_to_agent_id
)
select
    p.project_id,
    v.issue,
    v.title,
    v.description,
    v.type,
    v.status,
    v.priority,
    v.labels,
    v.requirements,
    u.user_id,
    a.agent_id
from (
    values
    (
        'toolsdb', 1, 'Audit log sealing', 'Seal committed audit entries and verify the chain.',
        'feature', 'completed', 8, array['security', 'audit'], '{"acceptance": "verify fails on tampering"}'::jsonb,
        'alice', null
    ),
    (
        'toolsdb', 2, 'Work tracking tables', 'Tasks, agent executions with token cost, PR validations.',
        'feature', 'in_progress', 7, array['schema'], '{"views": ["active_tasks"]}'::jsonb,
        null, 'claude-code'
    ),
    (
        'toolsdb', 3, 'Fix the login bug in the session store', 'Sessions expire one hour early.',
        'bug', 'open', 9, array['bug', 'redis'], '{}'::jsonb,
        'bob', null
    ),
    (
        'toolsdb', 4, 'Document the status mapping', 'Explain how issue-tracker and CI/CD statuses map.',
        'documentation', 'in_review', 4, array['docs'], '{}'::jsonb,
        null, 'codex'
    ),
    (
        'agent-notify', 1, 'Retry failed Slack notifications', 'Back off exponentially, give up after 5 tries.',
        'feature', 'blocked', 5, array['slack'], '{"max_retries": 5}'::jsonb,
        'carol', null
    )
) as v (slug, issue, title, description, type, status, priority, labels, requirements, username, agent_name)
inner join toolsdb.projects as p on v.slug = p.slug
left join toolsdb.users as u on lower(v.username) = lower(u.username)
left join toolsdb.agents as a on v.agent_name = a.name
on conflict (project_id, github_issue_number) do nothing;

-- Subtasks: the documentation task belongs under the work tracking task.
update toolsdb.tasks as child
set parent_task_id = parent.task_id
from toolsdb.tasks as parent, toolsdb.projects as p
where
    p.slug = 'toolsdb'
    and child.project_id = p.project_id and child.github_issue_number = 4
    and parent.project_id = p.project_id and parent.github_issue_number = 2
    and child.parent_task_id is distinct from parent.task_id;
