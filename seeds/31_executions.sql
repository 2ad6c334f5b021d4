-- seeds/31_executions.sql
-- Demo prices for the demo agents' models, and a few agent runs on the demo
-- tasks: one succeeded, one failed, one still running. Prices upsert on
-- (provider, model, valid_from), changing only what differs; runs are made
-- only for a (task, agent) pair that has none yet, through the same
-- functions an application calls.
-- Needs: seeds/10_identity.sql, seeds/30_tasks.sql, schema/33_agent_executions.sql.

insert into toolsdb.model_prices as p (
    model_provider, model_name, valid_from, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok
)
values
('anthropic', 'claude-sonnet-4-5', '2025-01-01 00:00:00+00', 3, 15, 0.30),
('anthropic', 'claude-opus-4-1', '2025-01-01 00:00:00+00', 15, 75, 1.50),
('openai', 'gpt-5-codex', '2025-01-01 00:00:00+00', 1.25, 10, 0.125),
('google', 'gemini-2.5-pro', '2025-01-01 00:00:00+00', 1.25, 10, 0.31),
('ollama', 'qwen2.5-coder:7b', '2025-01-01 00:00:00+00', 0, 0, 0)
on conflict on constraint model_prices_pkey do update
    set
        input_usd_per_mtok = excluded.input_usd_per_mtok,
        output_usd_per_mtok = excluded.output_usd_per_mtok,
        cached_input_usd_per_mtok = excluded.cached_input_usd_per_mtok
    where
    (p.input_usd_per_mtok, p.output_usd_per_mtok, p.cached_input_usd_per_mtok)
    is distinct from
    (excluded.input_usd_per_mtok, excluded.output_usd_per_mtok, excluded.cached_input_usd_per_mtok);

do $seed$
declare
    run record;
    execution uuid;
begin
    for run in
        select t.task_id, a.agent_id, v.outcome, v.input_tokens, v.output_tokens, v.cached_tokens
        from (
            values
            (1, 'claude-code', 'success', 1200000, 180000, 800000),
            (2, 'claude-code', 'running', 0, 0, 0),
            (4, 'codex', 'failure', 300000, 40000, 0)
        ) as v (issue, agent_name, outcome, input_tokens, output_tokens, cached_tokens)
        inner join toolsdb.projects as p on p.slug = 'toolsdb'
        inner join toolsdb.tasks as t on t.project_id = p.project_id and t.github_issue_number = v.issue
        inner join toolsdb.agents as a on v.agent_name = a.name
        where not exists (
            select 1 from toolsdb.agent_executions as e
            where e.project_id = t.project_id and e.task_id = t.task_id and e.agent_id = a.agent_id
        )
    loop
        execution := toolsdb.execution_create(run.agent_id, run.task_id, '{"sandbox": true}');
        perform toolsdb.execution_start(execution);
        perform toolsdb.execution_log(execution, 'checked out the repository');
        if run.outcome = 'success' then
            perform toolsdb.execution_log(execution, 'all tests pass', 'info', '{"passed": 128}');
            perform toolsdb.execution_complete(
                execution, '{"pull_request": 12}', run.input_tokens, run.output_tokens, run.cached_tokens
            );
        elsif run.outcome = 'failure' then
            perform toolsdb.execution_log(execution, 'linter failed', 'error', '{"rule": "LT02"}');
            perform toolsdb.execution_fail(
                execution, '{"error_type": "validation", "message": "lint failed"}',
                run.input_tokens, run.output_tokens, run.cached_tokens
            );
        end if;
    end loop;
end
$seed$;
