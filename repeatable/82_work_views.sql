-- repeatable/82_work_views.sql
-- Reporting views over work tracking. security_invoker,
-- so the application sees only its project's rows.

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
'Tasks that are open (pending in CI/CD task trackers) or in_progress, with project slug and '
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

create or replace view toolsdb.task_execution_summary
with (security_invoker = true) as
select
    r.project_id,
    r.agent_type,
    r.status,
    sum(r.executions)::bigint as executions,
    round(sum(r.duration_seconds) / nullif(sum(r.timed_runs), 0), 3) as avg_duration_seconds,
    sum(r.input_tokens + r.output_tokens + r.cached_tokens) as total_tokens,
    case when sum(r.priced_runs) > 0 then sum(r.cost_usd) end as total_cost_usd,
    (
        select max(e.created_at)
        from toolsdb.agent_executions as e
        where e.project_id = r.project_id and e.agent_type = r.agent_type and e.status = r.status
    ) as last_execution_at
from toolsdb.execution_rollups as r
group by r.project_id, r.agent_type, r.status
having sum(r.executions) > 0;

comment on view toolsdb.task_execution_summary is
'Executions per project, agent type and status, with average duration (finished runs), tokens and '
'cost. Read from toolsdb.execution_rollups, so its cost follows the groups, not the history.';
comment on column toolsdb.task_execution_summary.project_id is 'The project.';
comment on column toolsdb.task_execution_summary.agent_type is 'The agent type of the runs.';
comment on column toolsdb.task_execution_summary.status is 'Their status.';
comment on column toolsdb.task_execution_summary.executions is 'How many runs.';
comment on column toolsdb.task_execution_summary.avg_duration_seconds is
'Average of completed_at - started_at in seconds, over runs that started and ended.';
comment on column toolsdb.task_execution_summary.total_tokens is 'Input, output and cached tokens together.';
comment on column toolsdb.task_execution_summary.total_cost_usd is 'Sum of their costs (USD); priced runs only.';
comment on column toolsdb.task_execution_summary.last_execution_at is 'When the newest of them was created.';

create or replace view toolsdb.pr_validation_summary
with (security_invoker = true) as
select
    v.project_id,
    v.repository,
    v.status,
    count(*) as validations,
    round(avg(extract(epoch from v.completed_at - v.started_at)), 3) as avg_duration_seconds,
    max(v.created_at) as last_validation_at
from toolsdb.pr_validations as v
group by v.project_id, v.repository, v.status;

comment on view toolsdb.pr_validation_summary is
'Validations per project, repository and status, with average duration of settled ones.';
comment on column toolsdb.pr_validation_summary.project_id is 'The project.';
comment on column toolsdb.pr_validation_summary.repository is 'The repository (owner/name).';
comment on column toolsdb.pr_validation_summary.status is 'pending, running, passed, failed or cancelled.';
comment on column toolsdb.pr_validation_summary.validations is 'How many.';
comment on column toolsdb.pr_validation_summary.avg_duration_seconds is
'Average of completed_at - started_at in seconds, over validations that ran and ended.';
comment on column toolsdb.pr_validation_summary.last_validation_at is 'When the newest was created.';

create or replace view toolsdb.error_summary
with (security_invoker = true) as
select
    e.project_id,
    e.error_type,
    e.resolved,
    count(*) as errors,
    round(avg(e.recovery_attempts), 2) as avg_recovery_attempts,
    max(e.created_at) as last_error_at
from toolsdb.error_logs as e
group by e.project_id, e.error_type, e.resolved;

comment on view toolsdb.error_summary is
'Errors per project, type and resolution, with average recovery attempts.';
comment on column toolsdb.error_summary.project_id is 'The project (null for errors outside any project).';
comment on column toolsdb.error_summary.error_type is 'The error type.';
comment on column toolsdb.error_summary.resolved is 'Whether they are resolved.';
comment on column toolsdb.error_summary.errors is 'How many.';
comment on column toolsdb.error_summary.avg_recovery_attempts is 'Average recovery attempts.';
comment on column toolsdb.error_summary.last_error_at is 'When the newest was logged.';

create or replace view toolsdb.recent_activity
with (security_invoker = true) as
select
    l.audit_id,
    l.logged_at,
    l.actor,
    l.action,
    l.entity_type,
    l.entity_id,
    t.task_id,
    t.project_id,
    t.title as task_title,
    t.status as task_status
from toolsdb.audit_logs as l
left join toolsdb.tasks as t
    on t.task_id = case
        when l.entity_type = 'tasks' and l.entity_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
            then l.entity_id::uuid
    end
where l.logged_at >= now() - interval '7 days';

comment on view toolsdb.recent_activity is
'Audit entries of the last 7 days, with the task''s title, project and status when the entry is '
'about a task. Order by logged_at desc.';
comment on column toolsdb.recent_activity.audit_id is 'The audit entry.';
comment on column toolsdb.recent_activity.logged_at is 'When it was written.';
comment on column toolsdb.recent_activity.actor is 'Who acted.';
comment on column toolsdb.recent_activity.action is 'What happened (insert, update, delete, an event name).';
comment on column toolsdb.recent_activity.entity_type is 'What kind of thing it was about.';
comment on column toolsdb.recent_activity.entity_id is 'Which one.';
comment on column toolsdb.recent_activity.task_id is 'The task, when the entry is about one that still exists.';
comment on column toolsdb.recent_activity.project_id is 'That task''s project.';
comment on column toolsdb.recent_activity.task_title is 'That task''s title.';
comment on column toolsdb.recent_activity.task_status is 'That task''s status now.';

create or replace view toolsdb.agent_performance
with (security_invoker = true) as
select
    a.agent_id,
    a.name as agent_name,
    g.model_provider,
    g.model_name,
    g.executions,
    g.successes,
    round(g.successes::numeric / nullif(g.finished, 0), 4) as success_rate,
    d.p50 as p50_duration_seconds,
    d.p95 as p95_duration_seconds,
    g.input_tokens,
    g.output_tokens,
    g.cached_tokens,
    g.total_cost_usd,
    'execution' as source
from (
    select
        r.agent_id,
        r.model_provider,
        r.model_name,
        sum(r.executions)::bigint as executions,
        coalesce(sum(r.executions) filter (where r.status = 'success'), 0)::bigint as successes,
        sum(r.executions) filter (where r.status in ('success', 'failure', 'timeout')) as finished,
        sum(r.input_tokens) as input_tokens,
        sum(r.output_tokens) as output_tokens,
        sum(r.cached_tokens) as cached_tokens,
        case when sum(r.priced_runs) > 0 then sum(r.cost_usd) end as total_cost_usd
    from toolsdb.execution_rollups as r
    group by r.agent_id, r.model_provider, r.model_name
    having sum(r.executions) > 0
) as g
inner join toolsdb.agents as a on g.agent_id = a.agent_id
cross join lateral toolsdb.execution_duration_percentiles(g.agent_id, g.model_provider, g.model_name) as d
union all
select
    a.agent_id,
    a.name as agent_name,
    u.model_provider,
    u.model_name,
    count(*) as executions,
    null as successes,
    null as success_rate,
    null as p50_duration_seconds,
    null as p95_duration_seconds,
    sum(u.input_tokens) as input_tokens,
    sum(u.output_tokens) as output_tokens,
    sum(u.cache_read_tokens) as cached_tokens,
    sum(u.cost_usd) as total_cost_usd,
    'transcript' as source
from toolsdb.api_usage as u
inner join toolsdb.sessions as s on u.session_id = s.session_id
inner join toolsdb.agents as a on s.agent_id = a.agent_id
group by a.agent_id, a.name, u.model_provider, u.model_name;

comment on view toolsdb.agent_performance is
'Per agent and model, computed from its runs (engineering platforms store success_rate and '
'avg_execution_time_ms on agents; here they are derived, so always true): runs, success rate over '
'finished runs (success / success + failure + timeout), p50 and p95 duration, tokens and cost. '
'Runs are read from toolsdb.execution_rollups; p50 and p95 as '
'toolsdb.execution_duration_percentiles() says (exact up to 10,000 timed runs).';
comment on column toolsdb.agent_performance.agent_id is 'The agent.';
comment on column toolsdb.agent_performance.agent_name is 'Its name.';
comment on column toolsdb.agent_performance.model_provider is 'Model provider of the runs.';
comment on column toolsdb.agent_performance.model_name is 'Model of the runs.';
comment on column toolsdb.agent_performance.executions is 'How many runs, in any status.';
comment on column toolsdb.agent_performance.successes is 'How many succeeded.';
comment on column toolsdb.agent_performance.success_rate is
'successes / (success + failure + timeout), 0 to 1; null before any run finished.';
comment on column toolsdb.agent_performance.p50_duration_seconds is 'Median duration of runs that started and ended.';
comment on column toolsdb.agent_performance.p95_duration_seconds is '95th percentile of that duration.';
comment on column toolsdb.agent_performance.input_tokens is 'Uncached input tokens, all runs.';
comment on column toolsdb.agent_performance.output_tokens is 'Output tokens, all runs.';
comment on column toolsdb.agent_performance.cached_tokens is 'Cached input tokens, all runs.';
comment on column toolsdb.agent_performance.total_cost_usd is 'Cost in USD, priced runs.';
comment on column toolsdb.agent_performance.source is
'execution: the agent''s runs (toolsdb.agent_executions); transcript: the API responses of its '
'imported Claude Code sessions (toolsdb.api_usage; executions counts responses, cached_tokens cache '
'reads, and the success and duration columns are null).';

create or replace view toolsdb.project_health
with (security_invoker = true) as
-- Each figure grouped by project, then joined: no subquery correlated with a
-- project, which Citus cannot plan over the distributed tasks, runs and
-- sessions next to the coordinator's errors (docs/citus.md).
with task_figures as (
    select
        x.project_id,
        count(*) as tasks,
        count(*) filter (where x.status in ('draft', 'open', 'in_progress', 'in_review', 'blocked')) as open_tasks,
        count(*) filter (where x.status = 'completed') as completed_tasks,
        round(
            (count(*) filter (where x.github_pr_number is not null and x.status = 'completed'))::numeric
            / nullif(
                count(*) filter (
                    where x.github_pr_number is not null and x.status in ('completed', 'failed', 'cancelled')
                ),
                0
            ),
            4
        ) as pr_merge_rate
    from toolsdb.tasks as x
    group by x.project_id
),

run_figures as (
    select
        y.project_id,
        round(
            coalesce(sum(y.executions) filter (where y.status = 'success'), 0)::numeric
            / nullif(sum(y.executions) filter (where y.status in ('success', 'failure', 'timeout')), 0),
            4
        ) as execution_success_rate,
        case when sum(y.priced_runs) > 0 then sum(y.cost_usd) end as total_cost_usd
    from toolsdb.execution_rollups as y
    group by y.project_id
),

session_costs as (
    select
        w.project_id,
        sum(v.cost_usd) as total_cost_usd
    from toolsdb.api_usage as v
    inner join toolsdb.sessions as w on v.session_id = w.session_id
    group by w.project_id
),

error_figures as (
    select
        z.project_id,
        count(*) as unresolved_errors
    from toolsdb.error_logs as z
    where not z.resolved
    group by z.project_id
)

select
    p.project_id,
    p.slug,
    p.status as project_status,
    coalesce(t.tasks, 0) as tasks,
    coalesce(t.open_tasks, 0) as open_tasks,
    coalesce(t.completed_tasks, 0) as completed_tasks,
    t.pr_merge_rate,
    e.execution_success_rate,
    coalesce(e.total_cost_usd, 0) + coalesce(c.total_cost_usd, 0) as total_cost_usd,
    coalesce(r.unresolved_errors, 0) as unresolved_errors
from toolsdb.projects as p
left join task_figures as t on p.project_id = t.project_id
left join run_figures as e on p.project_id = e.project_id
left join session_costs as c on p.project_id = c.project_id
left join error_figures as r on p.project_id = r.project_id;

comment on view toolsdb.project_health is
'One row per project with the figures of engineering platforms: tasks (all, open, completed), '
'pr_merge_rate (share of closed tasks with a pull request that were completed), execution success '
'rate, total cost and unresolved errors.';
comment on column toolsdb.project_health.project_id is 'The project.';
comment on column toolsdb.project_health.slug is 'Its slug.';
comment on column toolsdb.project_health.project_status is 'active, paused or archived.';
comment on column toolsdb.project_health.tasks is 'Its tasks, in any status.';
comment on column toolsdb.project_health.open_tasks is
'Tasks not closed: draft, open, in_progress, in_review, blocked.';
comment on column toolsdb.project_health.completed_tasks is 'Tasks completed.';
comment on column toolsdb.project_health.pr_merge_rate is
'Of the closed tasks that have a pull request, the share completed (merged), 0 to 1; null if none.';
comment on column toolsdb.project_health.execution_success_rate is
'Runs that succeeded / runs that finished (success, failure, timeout), 0 to 1; null if none.';
comment on column toolsdb.project_health.total_cost_usd is
'Cost in USD of its runs and of the API responses of its imported Claude Code sessions.';
comment on column toolsdb.project_health.unresolved_errors is 'Errors not resolved.';

create or replace view toolsdb.cost_by_day
with (security_invoker = true) as
select
    (e.completed_at at time zone 'UTC')::date as day,
    e.project_id,
    e.agent_id,
    a.name as agent_name,
    e.model_provider,
    e.model_name,
    count(*) as executions,
    sum(e.input_tokens) as input_tokens,
    sum(e.output_tokens) as output_tokens,
    sum(e.cached_tokens) as cached_tokens,
    sum(e.cost_usd) as cost_usd,
    0::numeric as cache_write_tokens,
    'execution' as source
from toolsdb.agent_executions as e
inner join toolsdb.agents as a on e.agent_id = a.agent_id
where e.completed_at is not null
group by 1, e.project_id, e.agent_id, a.name, e.model_provider, e.model_name
union all
select
    (u.occurred_at at time zone 'UTC')::date as day,
    s.project_id,
    s.agent_id,
    a.name as agent_name,
    u.model_provider,
    u.model_name || case when u.speed = 'fast' then '-fast' else '' end as model_name,
    count(*) as executions,
    sum(u.input_tokens) as input_tokens,
    sum(u.output_tokens) as output_tokens,
    sum(u.cache_read_tokens) as cached_tokens,
    sum(u.cost_usd) as cost_usd,
    sum(u.cache_write_5m_tokens + u.cache_write_1h_tokens) as cache_write_tokens,
    'transcript' as source
from toolsdb.api_usage as u
inner join toolsdb.sessions as s on u.session_id = s.session_id
left join toolsdb.agents as a on s.agent_id = a.agent_id
group by 1, s.project_id, s.agent_id, a.name, u.model_provider, u.model_name, u.speed;

comment on view toolsdb.cost_by_day is
'Cost per day (UTC, of completion), project, agent and model: finished runs, tokens and USD. Sum '
'it over any of those for coarser figures.';
comment on column toolsdb.cost_by_day.day is 'The day (UTC) the runs finished.';
comment on column toolsdb.cost_by_day.project_id is 'The project.';
comment on column toolsdb.cost_by_day.agent_id is 'The agent.';
comment on column toolsdb.cost_by_day.agent_name is 'Its name.';
comment on column toolsdb.cost_by_day.model_provider is 'Model provider.';
comment on column toolsdb.cost_by_day.model_name is 'Model.';
comment on column toolsdb.cost_by_day.executions is 'Finished runs.';
comment on column toolsdb.cost_by_day.input_tokens is 'Uncached input tokens.';
comment on column toolsdb.cost_by_day.output_tokens is 'Output tokens.';
comment on column toolsdb.cost_by_day.cached_tokens is 'Cached input tokens.';
comment on column toolsdb.cost_by_day.cost_usd is 'USD, priced runs.';
comment on column toolsdb.cost_by_day.cache_write_tokens is
'Tokens written to the prompt cache (transcripts; 0 for runs).';
comment on column toolsdb.cost_by_day.source is
'execution: finished runs (toolsdb.agent_executions); transcript: API responses of imported Claude '
'Code sessions (toolsdb.api_usage), by the day they happened; executions then counts responses and '
'cached_tokens cache reads.';

create or replace function toolsdb.task_statistics(project_id uuid default null)
returns jsonb
language sql
stable
set search_path = ''
as $function$
    with t as (
        select
            t.status,
            t.priority,
            t.closed_at,
            t.created_at,
            case
                when t.assigned_to_user_id is not null then 'user'
                when t.assigned_to_agent_id is not null then 'agent'
            end as assignee_kind,
            coalesce(u.username, a.name) as assignee,
            case when t.status = 'completed' then extract(epoch from t.closed_at - t.created_at) end as completion_seconds
        from toolsdb.tasks as t
        left join toolsdb.users as u on t.assigned_to_user_id = u.user_id
        left join toolsdb.agents as a on t.assigned_to_agent_id = a.agent_id
        where task_statistics.project_id is null or t.project_id = task_statistics.project_id
    )

    select pg_catalog.jsonb_build_object(
        'total', (select count(*) from t),
        'by_status', coalesce(
            (select pg_catalog.jsonb_object_agg(s.status, s.n) from (
                select t.status, count(*) as n from t group by t.status
            ) as s), '{}'::jsonb
        ),
        'by_priority', coalesce(
            (select pg_catalog.jsonb_object_agg(p.priority, p.n) from (
                select t.priority, count(*) as n from t group by t.priority
            ) as p), '{}'::jsonb
        ),
        'completed', (select count(*) from t where t.status = 'completed'),
        'avg_completion_seconds', (select round(avg(t.completion_seconds), 3) from t),
        'by_assignee', coalesce(
            (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                'assignee', a.assignee,
                'kind', a.assignee_kind,
                'total', a.total,
                'open', a.open,
                'completed', a.completed,
                'avg_completion_seconds', a.avg_completion_seconds
            ) order by a.total desc, a.assignee nulls last) from (
                select
                    t.assignee,
                    t.assignee_kind,
                    count(*) as total,
                    count(*) filter (where t.status in ('open', 'in_progress', 'in_review', 'blocked', 'draft')) as open,
                    count(*) filter (where t.status = 'completed') as completed,
                    round(avg(t.completion_seconds), 3) as avg_completion_seconds
                from t
                group by t.assignee, t.assignee_kind
            ) as a), '[]'::jsonb
        )
    );
$function$;

comment on function toolsdb.task_statistics(uuid) is
'Task statistics (the getStatistics of CI/CD task trackers), of one project or, with null, of every '
'task the caller sees: {"total", "by_status": {status: n}, "by_priority": {"0".."10": n}, '
'"completed", "avg_completion_seconds" (created_at to closed_at of completed tasks), '
'"by_assignee": [{"assignee", "kind" (user, agent or null: unassigned), "total", "open", '
'"completed", "avg_completion_seconds"}]}. Row-level security applies.';
