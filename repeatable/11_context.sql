-- repeatable/11_context.sql
-- Tier 10: the transaction context an application sets (docs/security.md):
-- toolsdb.session_id, toolsdb.project_id, toolsdb.user_id, toolsdb.agent_id.
-- Readers used by row-level security policies and the audit log. A setting
-- that is unset or empty reads as null (so RLS fails closed); a malformed
-- uuid is an error naming the setting.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md).

create or replace function toolsdb.setting_uuid(setting_name text)
returns uuid
language plpgsql
stable
set search_path = ''
as $function$
declare
    raw text := nullif(pg_catalog.current_setting(setting_name, true), '');
begin
    if raw is null then
        return null;
    end if;
    if raw !~ '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$' then
        raise exception 'setting % is not a uuid: %', setting_name, pg_catalog.quote_literal(raw)
            using errcode = 'invalid_parameter_value',
            hint = 'set local ' || setting_name || ' = ''<uuid>''';
    end if;
    return raw::uuid;
end;
$function$;

comment on function toolsdb.setting_uuid(text) is
'The uuid held by a custom setting such as toolsdb.project_id, or null when it is unset or empty. '
'A value that is not a uuid (8-4-4-4-12 hex digits) raises invalid_parameter_value (22023) naming '
'the setting.';

create or replace function toolsdb.current_session_id()
returns text
language sql
stable
set search_path = ''
return nullif(pg_catalog.current_setting('toolsdb.session_id', true), '');

comment on function toolsdb.current_session_id() is
'The agent session the current transaction acts for (setting toolsdb.session_id), or null. '
'Row-level security shows the application only rows of this session.';

-- SET LOCAL from a function called by a statement: Citus passes a SET LOCAL
-- on to the workers only in a transaction block or a function call (its
-- IsMultiStatementTransaction()), and set_config() never, so a plpgsql
-- function acting for a session calls this with PERFORM.
create or replace function toolsdb.act_as_session(session_id text)
returns void
language plpgsql
volatile
set search_path = ''
as $function$
begin
    execute pg_catalog.format('set local toolsdb.session_id = %L', coalesce(session_id, ''));
end;
$function$;

comment on function toolsdb.act_as_session(text) is
'Sets toolsdb.session_id (the session row-level security shows the application) for the rest of '
'the transaction, as SET LOCAL does; null or an empty string unsets it. On Citus the workers, where '
'the session''s shards apply their policies, get it too, which set_config() does not pass on.';

create or replace function toolsdb.current_project_id()
returns uuid
language sql
stable
set search_path = ''
return toolsdb.setting_uuid('toolsdb.project_id');

comment on function toolsdb.current_project_id() is
'The project the current transaction acts for (setting toolsdb.project_id, a uuid), or null. '
'Row-level security shows the application only rows of this project.';

create or replace function toolsdb.current_user_id()
returns uuid
language sql
stable
set search_path = ''
return toolsdb.setting_uuid('toolsdb.user_id');

comment on function toolsdb.current_user_id() is
'The toolsdb user acting in the current transaction (setting toolsdb.user_id, a uuid), or null.';

create or replace function toolsdb.current_agent_id()
returns uuid
language sql
stable
set search_path = ''
return toolsdb.setting_uuid('toolsdb.agent_id');

comment on function toolsdb.current_agent_id() is
'The agent acting in the current transaction (setting toolsdb.agent_id, a uuid), or null.';

create or replace function toolsdb.isolate_rows(
    target regclass,
    by_column text,
    shared_when_null boolean default false
)
returns void
language plpgsql
volatile
set search_path = ''
as $function$
declare
    policy_name text;
    reader text := 'toolsdb.current_' || pg_catalog.left(by_column, -3) || '_id()';
    compared text;
    visible text;
begin
    if by_column not in ('project_id', 'session_id') then
        raise exception 'rows are isolated by project_id or session_id, not %', by_column
            using errcode = 'invalid_parameter_value';
    end if;
    -- The column as the policy compares it: a column of a domain
    -- (toolsdb.audit_logs.session_id) through a cast to the domain's base type,
    -- which is how PostgreSQL shows the policy back.
    select case
        when t.typtype = 'd' then pg_catalog.format('(%I)::%s', by_column, pg_catalog.format_type(t.typbasetype, null))
        else pg_catalog.quote_ident(by_column)
    end
    into compared
    from pg_catalog.pg_attribute as a
    inner join pg_catalog.pg_type as t on t.oid = a.atttypid
    where a.attrelid = target and a.attname = by_column and a.attnum > 0 and not a.attisdropped;
    if compared is null then
        raise exception 'cannot isolate %: it has no column %', target, by_column
            using errcode = 'undefined_column';
    end if;
    policy_name := pg_catalog.left(by_column, -3) || '_isolation';
    -- Rows of the transaction's project or session; with shared_when_null
    -- also the rows that belong to none (shared by every project or session).
    -- Written as PostgreSQL shows it back, so an unchanged policy is seen to be
    -- unchanged and left alone (a migrate with nothing to do writes nothing).
    visible := case
        when coalesce(shared_when_null, false)
            then pg_catalog.format('((%I IS NULL) OR (%s = %s))', by_column, compared, reader)
        else pg_catalog.format('(%s = %s)', compared, reader)
    end;
    if not (select c.relrowsecurity from pg_catalog.pg_class as c where c.oid = target) then
        execute pg_catalog.format('alter table %s enable row level security', target);
    end if;
    if not exists (
        select from pg_catalog.pg_policy as p
        where p.polrelid = target and p.polname = policy_name and p.polcmd = '*' and p.polpermissive
            and p.polroles = array['toolsdb_app'::regrole::oid]
            and pg_catalog.pg_get_expr(p.polqual, p.polrelid) = visible
            and pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) = visible
    ) then
        execute pg_catalog.format('drop policy if exists %I on %s', policy_name, target);
        execute pg_catalog.format(
            'create policy %I on %s for all to toolsdb_app using %s with check %s',
            policy_name, target, visible, visible
        );
    end if;
    if not exists (
        select from pg_catalog.pg_policy as p
        where p.polrelid = target and p.polname = 'readonly_reads_all' and p.polcmd = 'r' and p.polpermissive
            and p.polroles = array['toolsdb_readonly'::regrole::oid]
            and pg_catalog.pg_get_expr(p.polqual, p.polrelid) = 'true'
    ) then
        execute pg_catalog.format('drop policy if exists readonly_reads_all on %s', target);
        execute pg_catalog.format(
            'create policy readonly_reads_all on %s for select to toolsdb_readonly using (true)', target
        );
    end if;
end;
$function$;

comment on function toolsdb.isolate_rows(regclass, text, boolean) is
'Row-level security the toolsdb way (docs/security.md): enables RLS on the table, lets '
'toolsdb_app see and change only the rows of its transaction''s project or session (by_column '
'project_id or session_id, compared with toolsdb.current_project_id() or current_session_id(); '
'nothing when unset) and toolsdb_readonly read all. With shared_when_null, rows whose by_column '
'is null belong to every project or session and are visible (and writable) too, as global metrics '
'are. The owner is not forced. Idempotent, and writes nothing when the policies are in place; '
'call it in the table''s file of repeatable/.';
