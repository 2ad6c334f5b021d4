-- migrations/0002.security.rollback.sql
-- Undo 0002.security.sql: row-level security and change capture come off
-- the identity tables; the config store, the audit log (every partition, its
-- seals and prunes) and the context helpers are dropped. Views in views/ that
-- read them go with them (cascade) and come back with the next migrate.
-- Destroys the audit log and the configuration: that is what undoing this
-- migration means, so squawk's drop rules do not apply to this file.
-- squawk-ignore-file ban-drop-table, ban-drop-function

drop policy if exists project_isolation on toolsdb.projects;
drop policy if exists readonly_reads_all on toolsdb.projects;
alter table toolsdb.projects disable row level security;

drop trigger if exists _900_audit on toolsdb.users;
drop trigger if exists _900_audit_truncate on toolsdb.users;
drop trigger if exists _900_audit on toolsdb.projects;
drop trigger if exists _900_audit_truncate on toolsdb.projects;
drop trigger if exists _900_audit on toolsdb.agents;
drop trigger if exists _900_audit_truncate on toolsdb.agents;
drop trigger if exists _900_audit on toolsdb.mcp_servers;
drop trigger if exists _900_audit_truncate on toolsdb.mcp_servers;
drop trigger if exists _900_audit on toolsdb.agent_mcp_servers;
drop trigger if exists _900_audit_truncate on toolsdb.agent_mcp_servers;
drop trigger if exists _900_audit on toolsdb.preferences;
drop trigger if exists _900_audit_truncate on toolsdb.preferences;

drop function if exists toolsdb.config_unset(text);
drop function if exists toolsdb_private.tg__config_protect_keys() cascade;
drop function if exists toolsdb.config_get(text);
drop function if exists toolsdb.config_set_secret(text, text, text);
drop function if exists toolsdb.config_set(text, jsonb, text);
drop table if exists toolsdb.config cascade;

drop function if exists toolsdb.audit_verify();
drop function if exists toolsdb.audit_seal();
drop function if exists toolsdb_private.audit_seal_hash(bytea, date, xid8, xid8, bigint, bytea);
drop table if exists toolsdb.audit_seals cascade;
drop function if exists toolsdb.audit_apply_retention(interval);
drop function if exists toolsdb.audit_create_partitions(integer);
drop function if exists toolsdb_private.audit_partition_name(date);
drop table if exists toolsdb.audit_prunes cascade;
drop table if exists toolsdb_private.audit_exemptions cascade;
drop function if exists toolsdb.audit_table(regclass, text[]);
drop function if exists toolsdb_private.tg__audit_truncate();
drop function if exists toolsdb_private.tg__audit();
drop function if exists toolsdb.audit_event(text, text, text, jsonb, jsonb, jsonb);
drop function if exists toolsdb_private.audit_write(text, text, text, jsonb, jsonb, jsonb);
drop table if exists toolsdb.audit_logs cascade;
drop function if exists toolsdb_private.audit_row_digest(toolsdb.audit_logs);
drop function if exists toolsdb_private.tg__append_only();

drop function if exists toolsdb.current_agent_id();
drop function if exists toolsdb.current_user_id();
drop function if exists toolsdb.current_project_id();
drop function if exists toolsdb.current_session_id();
drop function if exists toolsdb.isolate_rows(regclass, text);
drop function if exists toolsdb.setting_uuid(text);
