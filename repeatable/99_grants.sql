-- repeatable/99_grants.sql
-- Last tier: privileges of the group roles of schema/00_bootstrap.sql
-- (docs/security.md). Run by every migrate, so a table added by a
-- later migration is granted without a migration of its own. Grants are
-- named table by table from the catalog: partitions get none (a role reads
-- the audit log through its parent, where row-level security applies).
-- Each grant or revoke runs only when it would change something, so a
-- migrate with nothing to do rewrites no catalog row and takes no lock.

do $grants$
declare
    grantee text;
    protected_table text;
    fn record;
    wanted record;
    -- The application only reads these (written through functions, or rules):
    read_only_for_app text[] := array[
        'audit_logs', 'config', 'task_status_transitions', 'model_prices', 'schema_validations',
        'notification_destinations', 'notification_rules', 'model_aliases', 'api_usage', 'transcript_files',
        'transcript_errors', 'execution_rollups'
    ];
    -- appends to these and never changes or removes an entry:
    append_only_for_app text[] := array[
        'activity_feed', 'agent_execution_logs', 'events', 'notifications', 'metrics', 'vision_cache_hits'
    ];
    -- views it writes through their INSTEAD OF triggers (repeatable/86_cicd_views.sql):
    writable_views_for_app text[] := array['task_executions', 'system_config'];
    -- and does not touch these at all:
    hidden_from_app text[] := array[
        'audit_seals', 'audit_prunes', 'api_tokens', 'metric_rollups', 'execution_duration_rollups'
    ];
    -- (the metrics' and the durations' rollups sum every session's or project's rows), nor does the readonly
    -- role these (tokens: authenticate_api_token() only):
    hidden_from_readonly text[] := array['config', 'api_tokens'];
    app_functions text[] := array[
        'toolsdb.setting_uuid(text)',
        'toolsdb.current_session_id()',
        'toolsdb.act_as_session(text)',
        'toolsdb.current_project_id()',
        'toolsdb.current_user_id()',
        'toolsdb.current_agent_id()',
        'toolsdb.audit_event(text,text,text,jsonb,jsonb,jsonb)',
        'toolsdb.config_set(text,jsonb,text)',
        'toolsdb.config_set_secret(text,text,text,text)',
        'toolsdb.config_lock_secrets()',
        'toolsdb.config_get(text)',
        'toolsdb.config_unset(text)',
        'toolsdb.task_transition(uuid,text)',
        'toolsdb.project_of_task(uuid)',
        'toolsdb.project_of_execution(uuid)',
        'toolsdb.project_of_validation(uuid)',
        'toolsdb.priority_from_label(text)',
        'toolsdb.task_status_of(text)',
        'toolsdb.execution_status_of(text)',
        'toolsdb.agent_type_of(text)',
        'toolsdb.default_project_id()',
        'toolsdb.task_statistics(uuid)',
        'toolsdb.priority_label_of(smallint)',
        'toolsdb.model_price_at(text,text,timestamp with time zone)',
        'toolsdb.token_cost(text,text,timestamp with time zone,bigint,bigint,bigint)',
        'toolsdb.execution_create(uuid,uuid,jsonb)',
        'toolsdb.execution_move(uuid,text,jsonb,jsonb,bigint,bigint,bigint,numeric)',
        'toolsdb.execution_start(uuid)',
        'toolsdb.execution_log(uuid,text,text,jsonb)',
        'toolsdb.execution_complete(uuid,jsonb,bigint,bigint,bigint,numeric)',
        'toolsdb.execution_fail(uuid,jsonb,bigint,bigint,bigint,numeric)',
        'toolsdb.execution_time_out(uuid,bigint,bigint,bigint)',
        'toolsdb.execution_cancel(uuid)',
        'toolsdb.validation_record_check(uuid,text,boolean,jsonb)',
        'toolsdb.validation_settle(uuid)',
        'toolsdb.validation_cancel(uuid)',
        'toolsdb.error_record(text,text,uuid,uuid,jsonb,text)',
        'toolsdb.error_record_recovery(uuid,boolean,jsonb)',
        'toolsdb.activity_record(uuid,text,text,uuid,jsonb,boolean)',
        'toolsdb.create_session(text,text,text,text,jsonb,uuid,uuid,uuid)',
        'toolsdb.insert_session(text,text,text,text,text,jsonb)',
        'toolsdb.upsert_session(text,text,text,text,text,jsonb)',
        'toolsdb.update_session_activity(text)',
        'toolsdb.set_session_idle(text,boolean)',
        'toolsdb.end_session(text,text)',
        'toolsdb.create_message(text,text,text,jsonb,integer,jsonb)',
        'toolsdb.memory_set(uuid,text,text,uuid,jsonb)',
        'toolsdb.memory_get(uuid,text,uuid)',
        'toolsdb.insert_event(text,text,jsonb,text)',
        'toolsdb.hook_ingest(jsonb,jsonb)',
        'toolsdb.transcript_ingest(jsonb,jsonb)',
        'toolsdb.usage_cost(text,text,timestamp with time zone,bigint,bigint,bigint,bigint,bigint,text)',
        'toolsdb.usage_report(text,text,date,date)',
        'toolsdb.usage_by_day_and(text,text,date,date)',
        'toolsdb.authenticate_api_token(text)',
        'toolsdb.insert_notification(text,text,text,jsonb,bigint,integer,text,timestamp with time zone)',
        'toolsdb.insert_metric(text,double precision,text,jsonb,timestamp with time zone)',
        'toolsdb.get_metric_stats(text,timestamp with time zone,timestamp with time zone)',
        'toolsdb.metric_window_stats(text,timestamp with time zone,timestamp with time zone)',
        'toolsdb.metric_window_stats_exact(text,timestamp with time zone,timestamp with time zone)',
        'toolsdb.execution_duration_percentiles(uuid,text,text)',
        'toolsdb.vision_cache_store(text,jsonb,double precision,text,interval)',
        'toolsdb.vision_cache_get(text,text)',
        'toolsdb.vision_cache_stats()',
        'toolsdb.report_bug(text,text,text,text)',
        'toolsdb.bug_escalation_move(text,text,uuid)',
        'toolsdb.prompt_create_version(text,text,jsonb,text[])',
        'toolsdb.prompt_set_label(text,integer,text)',
        'toolsdb.prompt_activate(text,integer)',
        'toolsdb.prompt_get(text,text,integer)',
        'toolsdb.validate_schema(text,boolean,boolean)'
    ];
    -- The queue workers: claims and settlements across sessions, nothing else.
    worker_functions text[] := array[
        'toolsdb.get_unprocessed_events(integer,interval,text)',
        'toolsdb.claim_event(bigint,interval,text)',
        'toolsdb.mark_events_processed(bigint[],uuid)',
        'toolsdb.mark_event_processed(bigint,uuid)',
        'toolsdb.claim_notifications(integer,interval,text)',
        'toolsdb.claim_notification(bigint,interval,text)',
        'toolsdb.claim_failed_notifications(integer,integer,interval,text)',
        'toolsdb.mark_notifications_sent(bigint[],uuid)',
        'toolsdb.mark_notification_sent(bigint,uuid)',
        'toolsdb.mark_notification_failed(bigint,uuid,text,interval,interval)',
        'toolsdb.get_dead_notifications(integer)',
        'toolsdb.redrive_notifications(bigint[])',
        'toolsdb.settle_and_claim_notifications(uuid,bigint[],bigint[],text[],double precision[],integer,interval,text,interval,interval)',
        'toolsdb.release_notifications(bigint[],uuid)',
        'toolsdb.route_events(integer,text)',
        'toolsdb.notification_destination_secret(text)'
    ];
    -- The role statements under validation run as (schema/52_schema_validator.sql):
    -- it checks what they made, and may reference toolsdb's tables and fire its
    -- trigger functions from the scratch schema, no more.
    validator_functions text[] := array[
        'toolsdb_private.convention_findings(regnamespace[])',
        'toolsdb_private.newlines_before(text,integer)'
    ];
    readonly_functions text[] := array[
        'toolsdb.setting_uuid(text)',
        'toolsdb.current_session_id()',
        'toolsdb.current_project_id()',
        'toolsdb.current_user_id()',
        'toolsdb.current_agent_id()',
        'toolsdb.audit_verify()',
        'toolsdb.project_of_task(uuid)',
        'toolsdb.project_of_execution(uuid)',
        'toolsdb.project_of_validation(uuid)',
        'toolsdb.priority_from_label(text)',
        'toolsdb.task_status_of(text)',
        'toolsdb.execution_status_of(text)',
        'toolsdb.agent_type_of(text)',
        'toolsdb.task_statistics(uuid)',
        'toolsdb.priority_label_of(smallint)',
        'toolsdb.model_price_at(text,text,timestamp with time zone)',
        'toolsdb.token_cost(text,text,timestamp with time zone,bigint,bigint,bigint)',
        'toolsdb.memory_get(uuid,text,uuid)',
        'toolsdb.get_metric_stats(text,timestamp with time zone,timestamp with time zone)',
        'toolsdb.metric_window_stats(text,timestamp with time zone,timestamp with time zone)',
        'toolsdb.metric_window_stats_exact(text,timestamp with time zone,timestamp with time zone)',
        'toolsdb.execution_duration_percentiles(uuid,text,text)',
        'toolsdb.vision_cache_stats()',
        'toolsdb.prompt_get(text,text,integer)',
        'toolsdb.usage_cost(text,text,timestamp with time zone,bigint,bigint,bigint,bigint,bigint,text)',
        'toolsdb.usage_report(text,text,date,date)',
        'toolsdb.usage_by_day_and(text,text,date,date)'
    ];
begin
    -- Schemas: the application schema is usable, the private one is not.
    foreach grantee in array array['toolsdb_app', 'toolsdb_readonly', 'toolsdb_worker'] loop
        if not pg_catalog.has_schema_privilege(grantee, 'toolsdb', 'USAGE') then
            execute pg_catalog.format('grant usage on schema toolsdb to %I', grantee);
        end if;
    end loop;
    if pg_catalog.has_schema_privilege('public', 'toolsdb_private', 'USAGE') then
        revoke all on schema toolsdb_private from public;
    end if;
    if not pg_catalog.has_schema_privilege('toolsdb_validator', 'toolsdb_private', 'USAGE') then
        grant usage on schema toolsdb_private to toolsdb_validator;
    end if;
    if not pg_catalog.has_schema_privilege('toolsdb_validator', 'toolsdb', 'USAGE') then
        grant usage on schema toolsdb to toolsdb_validator;
    end if;
    -- A foreign key to a toolsdb table can be validated (REFERENCES reads no row).
    for wanted in
        select c.relname from pg_catalog.pg_class as c
        where c.relnamespace = 'toolsdb'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition
            and not pg_catalog.has_table_privilege('toolsdb_validator', c.oid, 'REFERENCES')
    loop
        execute pg_catalog.format('grant references on toolsdb.%I to toolsdb_validator', wanted.relname);
    end loop;

    -- Tables and views: one (role, relation, privilege) per row, granted if
    -- missing (has_table_privilege with a list would answer "any of them").
    for wanted in
        select g.grantee, c.relname, privilege
        from pg_catalog.pg_class as c
        cross join lateral (
            select
                'toolsdb_app' as grantee,
                case
                    when c.relname = any(writable_views_for_app) then array['select', 'insert', 'update', 'delete']
                    when c.relkind = 'v' or c.relname = any(read_only_for_app) then array['select']
                    when c.relname = any(hidden_from_app) then array[]::text[]
                    when c.relname = any(append_only_for_app) then array['select', 'insert']
                    else array['select', 'insert', 'update', 'delete']
                end as privileges
            union all
            select
                'toolsdb_readonly',
                case when c.relname = any(hidden_from_readonly) then array[]::text[] else array['select'] end
        ) as g
        cross join lateral pg_catalog.unnest(g.privileges) as privilege
        where c.relnamespace = 'toolsdb'::regnamespace and c.relkind in ('r', 'p', 'v')
            and not c.relispartition
    loop
        if not pg_catalog.has_table_privilege(
            wanted.grantee, pg_catalog.format('toolsdb.%I', wanted.relname), wanted.privilege
        ) then
            execute pg_catalog.format(
                'grant %s on toolsdb.%I to %I', wanted.privilege, wanted.relname, wanted.grantee
            );
        end if;
    end loop;

    -- Read-only tables: take back any write the application held (a forged
    -- validation report, say).
    foreach protected_table in array read_only_for_app loop
        if pg_catalog.to_regclass('toolsdb.' || protected_table) is not null
            and pg_catalog.has_table_privilege(
                'toolsdb_app', 'toolsdb.' || protected_table, 'INSERT, UPDATE, DELETE, TRUNCATE'
            ) then
            execute pg_catalog.format(
                'revoke insert, update, delete, truncate on toolsdb.%I from toolsdb_app', protected_table
            );
        end if;
    end loop;

    -- Append-only tables: take back any change the application held.
    foreach protected_table in array append_only_for_app loop
        if pg_catalog.to_regclass('toolsdb.' || protected_table) is not null
            and pg_catalog.has_table_privilege(
                'toolsdb_app', 'toolsdb.' || protected_table, 'UPDATE, DELETE, TRUNCATE'
            ) then
            execute pg_catalog.format('revoke update, delete, truncate on toolsdb.%I from toolsdb_app', protected_table);
        end if;
    end loop;

    -- Functions: nothing for public; each role gets what it needs.
    for fn in
        select p.oid::regprocedure::text as signature
        from pg_catalog.pg_proc as p
        where p.pronamespace in ('toolsdb'::regnamespace, 'toolsdb_private'::regnamespace)
            and (p.proacl is null or exists (
                select from pg_catalog.aclexplode(p.proacl) as a
                where a.grantee = 0 and a.privilege_type = 'EXECUTE'
            ))
    loop
        execute pg_catalog.format('revoke execute on function %s from public', fn.signature);
    end loop;
    for fn in
        select f.signature, r.grantee
        from pg_catalog.unnest(app_functions) as f (signature)
        cross join (select 'toolsdb_app' as grantee) as r
        union all
        select f.signature, 'toolsdb_readonly'
        from pg_catalog.unnest(readonly_functions) as f (signature)
        union all
        select f.signature, 'toolsdb_worker'
        from pg_catalog.unnest(worker_functions) as f (signature)
        union all
        select f.signature, 'toolsdb_validator'
        from pg_catalog.unnest(validator_functions) as f (signature)
        union all
        -- Trigger functions cannot be called, only named by CREATE TRIGGER.
        select p.oid::regprocedure::text, 'toolsdb_validator'
        from pg_catalog.pg_proc as p
        where p.pronamespace = 'toolsdb_private'::regnamespace and p.prorettype = 'pg_catalog.trigger'::regtype
    loop
        if not pg_catalog.has_function_privilege(fn.grantee, fn.signature, 'EXECUTE') then
            execute pg_catalog.format('grant execute on function %s to %I', fn.signature, fn.grantee);
        end if;
    end loop;
end
$grants$;
