-- schema/11_context.sql
-- Tier 10: the transaction context an application sets (docs/security.md):
-- toolsdb.session_id, toolsdb.project_id, toolsdb.user_id, toolsdb.agent_id.
-- Readers used by row-level security policies and the audit log. A setting
-- that is unset or empty reads as null (so RLS fails closed); a malformed
-- uuid is an error naming the setting.
-- Needs: schema/00_bootstrap.sql (schemas toolsdb, toolsdb_private).

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
