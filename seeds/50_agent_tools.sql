-- seeds/50_agent_tools.sql
-- Demo agent tools: two escalated bugs (one critical, one reported three
-- times), a prompt with two versions of which the second is in production,
-- and one vision cache entry; enough for repeatable/84_agent_tools_views.sql to return
-- rows. Each part is made only when missing (the key is named at each one),
-- so a second run writes nothing.
-- Needs: the schema only.

do $seed$
begin
    -- Bugs, by bug id.
    if not exists (select from toolsdb.bug_escalations as b where b.bug_id = 'demo-hook-timeout') then
        perform toolsdb.report_bug('demo-hook-timeout', 'TimeoutError', 'hook_ingest exceeded 5 s', 'high')
        from pg_catalog.generate_series(1, 3);
    end if;
    if not exists (select from toolsdb.bug_escalations as b where b.bug_id = 'demo-crash-on-start') then
        perform toolsdb.report_bug('demo-crash-on-start', 'CriticalError', 'Application crashed', 'critical');
    end if;

    -- Prompts, by prompt id.
    if not exists (select from toolsdb.prompts as p where p.prompt_id = 'demo.code_review') then
        perform toolsdb.prompt_create_version(
            'demo.code_review', 'Review this diff for bugs.', '{"passed": 8, "failed": 2}'
        );
        perform toolsdb.prompt_create_version(
            'demo.code_review', 'Review this diff for bugs, security issues and missing tests.',
            '{"passed": 10, "failed": 0}', array['staging']
        );
        perform toolsdb.prompt_activate('demo.code_review', 2);
    end if;

    -- Vision cache, by image hash and model version.
    if not exists (
        select from toolsdb.vision_cache as v
        where v.image_hash = pg_catalog.encode(pg_catalog.sha256('demo image'::bytea), 'hex')
    ) then
        perform toolsdb.vision_cache_store(
            pg_catalog.encode(pg_catalog.sha256('demo image'::bytea), 'hex'),
            '{"keywords": ["sunset", "beach"], "text": null}', 0.95, 'v1.0'
        );
    end if;
end
$seed$;
