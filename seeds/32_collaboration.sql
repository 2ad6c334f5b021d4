-- seeds/32_collaboration.sql
-- Demo history around the demo tasks and runs: a settled and a running PR
-- validation, two errors (one recovered), evidence behind the successful
-- run, a comment from a person and one from an agent, an attachment, a
-- permission change in the audit trail and a few activity feed entries;
-- enough for every view of repeatable/82_work_views.sql to return rows.
-- Each row is made only when missing (its natural key is named at each
-- insert), through the same functions an application calls. Rows of a
-- task name its project (on Citus the row's shard: docs/citus.md).
-- Needs: seeds/10_identity.sql, seeds/30_tasks.sql, seeds/31_executions.sql.

do $seed$
declare
    project uuid;
    sealing_task uuid;
    tracking_task uuid;
    docs_task uuid;
    sealing_run uuid;
    docs_run uuid;
    validation uuid;
    error uuid;
    proof uuid;
begin
    select p.project_id into project from toolsdb.projects as p where p.slug = 'toolsdb';
    select t.task_id into sealing_task from toolsdb.tasks as t where t.project_id = project and t.github_issue_number = 1;
    select t.task_id into tracking_task from toolsdb.tasks as t where t.project_id = project and t.github_issue_number = 2;
    select t.task_id into docs_task from toolsdb.tasks as t where t.project_id = project and t.github_issue_number = 4;
    if sealing_task is null or tracking_task is null or docs_task is null then
        return;  -- the tasks seed has not run
    end if;
    select e.execution_id into sealing_run from toolsdb.agent_executions as e
    where e.project_id = project and e.task_id = sealing_task and e.status = 'success' order by e.created_at limit 1;
    select e.execution_id into docs_run from toolsdb.agent_executions as e
    where e.project_id = project and e.task_id = docs_task and e.status = 'failure' order by e.created_at limit 1;

    -- PR validations: natural key (task, pr_number).
    if not exists (select 1 from toolsdb.pr_validations as v where v.project_id = project and v.task_id = sealing_task and v.pr_number = 12) then
        insert into toolsdb.pr_validations (project_id, task_id, execution_id, pr_number, repository, branch_name)
        values (project, sealing_task, sealing_run, 12, 'example/toolsdb', 'audit-seals')
        returning validation_id into validation;
        perform toolsdb.validation_record_check(validation, 'tests', true, '{"passed": 128}');
        perform toolsdb.validation_record_check(validation, 'lint', true, '{}');
        perform toolsdb.validation_settle(validation);
    end if;
    if not exists (select 1 from toolsdb.pr_validations as v where v.project_id = project and v.task_id = tracking_task and v.pr_number = 15) then
        insert into toolsdb.pr_validations (project_id, task_id, pr_number, repository, branch_name)
        values (project, tracking_task, 15, 'example/toolsdb', 'work-tracking')
        returning validation_id into validation;
        perform toolsdb.validation_record_check(validation, 'tests', false, '{"failed": 3}');
    end if;

    -- Errors: natural key (task, message).
    if not exists (select 1 from toolsdb.error_logs as e where e.task_id = docs_task and e.error_message = 'lint failed') then
        error := toolsdb.error_record('validation', 'lint failed', docs_task, docs_run, '{"rule": "LT02"}');
    end if;
    if not exists (
        select 1 from toolsdb.error_logs as e where e.task_id = tracking_task and e.error_message = 'GitHub API timed out'
    ) then
        error := toolsdb.error_record('network', 'GitHub API timed out', tracking_task);
        perform toolsdb.error_record_recovery(error, false, '{"retry_in_seconds": 30}');
        perform toolsdb.error_record_recovery(error, true, '{}');
    end if;

    -- Evidence behind the successful run: natural key (project, title).
    if not exists (
        select 1 from toolsdb.evidence as v where v.project_id = project and v.title = 'Seal verification test run'
    ) then
        insert into toolsdb.evidence (project_id, task_id, source_type, title, content, credibility_score, tags)
        values (
            project, sealing_task, 'test_result', 'Seal verification test run',
            '{"passed": 128, "failed": 0}', 0.95, array['audit', 'tests']
        )
        returning evidence_id into proof;
        update toolsdb.agent_executions set evidence_id = proof where project_id = project and execution_id = sealing_run;
    end if;

    -- Comments and an attachment: natural key (task, body) and (task, file name).
    insert into toolsdb.task_comments (project_id, task_id, author_user_id, body)
    select project, tracking_task, u.user_id, 'Please keep the status mapping in docs/work-tracking.md.'
    from toolsdb.users as u
    where u.username = 'alice' and not exists (
        select 1 from toolsdb.task_comments as c
        where c.project_id = project and c.task_id = tracking_task and c.body = 'Please keep the status mapping in docs/work-tracking.md.'
    );
    insert into toolsdb.task_comments (project_id, task_id, author_agent_id, body)
    select project, tracking_task, a.agent_id, 'Started on the executions table; tests next.'
    from toolsdb.agents as a
    where a.name = 'claude-code' and not exists (
        select 1 from toolsdb.task_comments as c
        where c.project_id = project and c.task_id = tracking_task and c.body = 'Started on the executions table; tests next.'
    );
    insert into toolsdb.task_attachments (project_id, task_id, file_name, content_type, size_bytes, storage_path)
    select project, sealing_task, 'seal-chain.png', 'image/png', 48213, 'https://files.example.com/toolsdb/seal-chain.png'
    where not exists (
        select 1 from toolsdb.task_attachments as f where f.project_id = project and f.task_id = sealing_task and f.file_name = 'seal-chain.png'
    );

    -- An explicit audit event (toolsdb.audit_trail_events): natural key (action, entity).
    if not exists (
        select from toolsdb.audit_logs as l
        where l.action = 'permission_changed' and l.entity_type = 'project' and l.entity_id = 'toolsdb'
    ) then
        perform toolsdb.audit_event(
            'permission_changed', 'project', 'toolsdb', '{"granted": "write", "to": "bob"}',
            '{"bob": "read"}', '{"bob": "write"}'
        );
    end if;

    -- Activity feed: natural key (project, type, summary).
    insert into toolsdb.activity_feed (project_id, task_id, activity_type, summary)
    select project, v.task_id, v.activity_type, v.summary
    from (
        values
        (sealing_task, 'task.completed', 'Audit log sealing is done'),
        (tracking_task, 'execution.started', 'claude-code started on work tracking'),
        (docs_task, 'execution.failed', 'codex failed the lint on the status mapping')
    ) as v (task_id, activity_type, summary)
    where (v.activity_type, v.summary) not in (  -- uncorrelated, which Citus plans over VALUES
        select f.activity_type, f.summary from toolsdb.activity_feed as f where f.project_id = project
    );
end
$seed$;
