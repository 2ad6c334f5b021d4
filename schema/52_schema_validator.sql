-- schema/52_schema_validator.sql
-- Tier 50: the SQL schema validator, callable from psql:
-- select toolsdb.validate_schema('create table ...'). A script is split
-- into statements by a lexer that knows comments, strings, quoted names
-- and dollar quotes; anything but CREATE, ALTER and COMMENT is refused
-- (42501); the statements then really run, as the role toolsdb_validator
-- (no privilege but its scratch schema), in a subtransaction that is always
-- rolled back; what they made is checked against the conventions the
-- catalog tests hold toolsdb itself to (toolsdb_private.convention_findings);
-- the report is kept in toolsdb.schema_validations by statement hash.
-- docs/agent-tools.md, "Schema validator", has the rules and the limits.
-- Its functions, triggers and row-level security: repeatable/52_schema_validator.sql.
-- Needs: schema/00_bootstrap.sql.

create table if not exists toolsdb.schema_validations (
    statement_hash text not null,
    script text not null,
    statement_count integer not null,
    valid boolean not null,
    error_count integer not null,
    warning_count integer not null,
    findings jsonb not null default '[]',
    rules_version integer not null,
    server_version_num integer not null default current_setting('server_version_num')::integer,
    validated_by text not null default coalesce(nullif(current_setting('toolsdb.actor', true), ''), session_user),
    validated_at timestamptz not null default now(),
    validated_as text not null default session_user,
    constraint schema_validations_pkey primary key (statement_hash),
    constraint statement_hash_is_sha256 check (statement_hash ~ '^[0-9a-f]+$' and char_length(statement_hash) = 64),
    constraint script_length_is_valid check (char_length(script) between 1 and 1000000),
    constraint statement_count_is_positive check (statement_count > 0),
    constraint error_count_is_not_negative check (error_count >= 0),
    constraint warning_count_is_not_negative check (warning_count >= 0),
    constraint valid_means_no_errors check (valid = (error_count = 0)),
    constraint findings_is_array check (jsonb_typeof(findings) = 'array'),
    constraint rules_version_is_positive check (rules_version > 0),
    constraint validated_by_length_is_valid check (char_length(validated_by) between 1 and 200),
    constraint validated_as_length_is_valid check (char_length(validated_as) between 1 and 63)
);

comment on table toolsdb.schema_validations is
'Reports of toolsdb.validate_schema(), one per distinct script (by SHA-256): a repeat validation '
'with the same rules is a lookup. A cache, so exempt from the audit log. Written only by '
'validate_schema(); an application login reads only the reports it made (validated_as).';

comment on column toolsdb.schema_validations.statement_hash is
'SHA-256 of the script, 64 lowercase hex digits.';

comment on column toolsdb.schema_validations.script is 'The script validated, as given.';

comment on column toolsdb.schema_validations.statement_count is 'How many statements the script holds.';

comment on column toolsdb.schema_validations.valid is
'True when no finding is an error at its rule''s own severity (the strict view: validate_schema() '
'without strict reports the house conventions as warnings).';

comment on column toolsdb.schema_validations.error_count is 'Findings of severity error, at each rule''s own severity.';

comment on column toolsdb.schema_validations.warning_count is
'Findings of severity warning, at each rule''s own severity.';

comment on column toolsdb.schema_validations.findings is
'The findings, a JSON array of {rule, severity, line, message, object}; line counts from 1 in the script.';

comment on column toolsdb.schema_validations.rules_version is
'Version of the rules that produced the report; a report of older rules is not reused.';

comment on column toolsdb.schema_validations.server_version_num is
'PostgreSQL version the statements ran on (server_version_num).';

comment on column toolsdb.schema_validations.validated_by is
'Who validated: setting toolsdb.actor, else the database login role.';

comment on column toolsdb.schema_validations.validated_at is 'When the report was made.';

comment on column toolsdb.schema_validations.validated_as is
'The database login that made the report (session_user): row-level security shows an application '
'login only its own reports.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.schema_validations', 'a cache of validation reports, recomputable from the script; not audit events')
on conflict (table_name) do nothing;
