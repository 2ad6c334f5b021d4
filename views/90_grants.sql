-- views/90_grants.sql
-- Last tier: privileges of the group roles of schema/00_bootstrap.sql
-- (docs/security.md). Re-applied after every migrate, so a table added by a
-- later migration is granted without a migration of its own. Grants are
-- named table by table from the catalog: partitions get none (a role reads
-- the audit log through its parent, where row-level security applies).
-- Needs: every object of schemas toolsdb and toolsdb_private.

do $grants$
declare
    rel record;
    write_protected text[] := array['audit_logs', 'audit_seals', 'audit_prunes', 'config'];
begin
    grant usage on schema toolsdb to toolsdb_app, toolsdb_readonly;
    for rel in
        select c.relname, c.relkind
        from pg_catalog.pg_class as c
        where c.relnamespace = 'toolsdb'::regnamespace and c.relkind in ('r', 'p', 'v') and not c.relispartition
    loop
        if rel.relkind = 'v' then
            execute pg_catalog.format('grant select on toolsdb.%I to toolsdb_app, toolsdb_readonly', rel.relname);
        elsif rel.relname = any(write_protected) then
            -- Written only through security definer functions.
            if rel.relname in ('audit_logs', 'config') then
                execute pg_catalog.format('grant select on toolsdb.%I to toolsdb_app', rel.relname);
            end if;
            if rel.relname <> 'config' then
                execute pg_catalog.format('grant select on toolsdb.%I to toolsdb_readonly', rel.relname);
            end if;
        else
            execute pg_catalog.format(
                'grant select, insert, update, delete on toolsdb.%I to toolsdb_app', rel.relname
            );
            execute pg_catalog.format('grant select on toolsdb.%I to toolsdb_readonly', rel.relname);
        end if;
    end loop;
end
$grants$;

-- Functions: nothing for public; each role gets what it needs.
revoke execute on all functions in schema toolsdb from public;
revoke execute on all functions in schema toolsdb_private from public;
revoke all on schema toolsdb_private from public;

grant execute on function
toolsdb.setting_uuid(text),
toolsdb.current_session_id(),
toolsdb.current_project_id(),
toolsdb.current_user_id(),
toolsdb.current_agent_id()
to toolsdb_app, toolsdb_readonly;

grant execute on function
toolsdb.audit_event(text, text, text, jsonb, jsonb, jsonb),
toolsdb.config_set(text, jsonb, text),
toolsdb.config_set_secret(text, text, text),
toolsdb.config_get(text),
toolsdb.config_unset(text)
to toolsdb_app;

grant execute on function toolsdb.audit_verify() to toolsdb_readonly;
