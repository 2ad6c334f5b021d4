-- migrations/0008.schema_validator.rollback.sql
-- Undo 0008.schema_validator.sql: drop the validator's functions and its
-- stored reports. The role toolsdb_validator and the (always empty) schema
-- toolsdb_scratch belong to the bootstrap and stay. Undoing this migration
-- is what a rollback is for, so squawk's drop rules do not apply.
-- squawk-ignore-file ban-drop-table, ban-drop-function

drop function if exists toolsdb.validate_schema(text, boolean);
drop function if exists toolsdb_private.validation_report(toolsdb.schema_validations, boolean);
drop function if exists toolsdb_private.validation_refusal(text, boolean);
drop function if exists toolsdb_private.validate_execute(text[], integer[]);
drop function if exists toolsdb_private.convention_findings(regnamespace[]);
drop function if exists toolsdb_private.sql_statements(text);
drop function if exists toolsdb_private.newlines_before(text, integer);
drop table if exists toolsdb.schema_validations;

delete from toolsdb_private.audit_exemptions
where table_name = 'toolsdb.schema_validations';
