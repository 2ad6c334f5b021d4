-- migrations/0001.baseline.sql
-- The baseline: every table of toolsdb with its columns, constraints,
-- indexes, storage settings, comments and reference rows, as schema/
-- defines them at this release (tests/test_migration_model.py proves the
-- two build the same database). Functions, views, triggers, row-level
-- security and grants are not here: they live once, in repeatable/, and
-- `toolsdb migrate` re-applies them after the migrations in the same
-- transaction. Applied after schema/00_bootstrap.sql (schemas and roles).
-- Append-only once released: change a table with a new migration and its
-- result in schema/, never by editing this file.
--
-- Every index here is on a table created in this same migration: it is empty
-- and invisible to other sessions until commit, so a plain create index blocks
-- nobody (and concurrently cannot run inside the migrate transaction).
-- squawk-ignore-file require-concurrent-index-creation

-- ---- schema/13_audit.sql ----

-- ---------------------------------------------------------------------------
-- The log
-- ---------------------------------------------------------------------------

-- The log's rules on its text and JSON columns are domains, not table CHECKs: PostgreSQL
-- caches a domain's checks per connection, where it reads a table's CHECKs back from
-- the catalog and plans them again at every statement that writes the table, and every
-- audited write writes here (docs/security.md, "What capture costs").
do $domains$
begin
    if pg_catalog.to_regtype('toolsdb.audit_text_200') is null then
        create domain toolsdb.audit_text_200 as text
        constraint audit_text_200_length_is_valid check (char_length(value) between 1 and 200);
    end if;
    if pg_catalog.to_regtype('toolsdb.audit_text_1000') is null then
        create domain toolsdb.audit_text_1000 as text
        constraint audit_text_1000_length_is_valid check (char_length(value) between 1 and 1000);
    end if;
    if pg_catalog.to_regtype('toolsdb.audit_name') is null then
        create domain toolsdb.audit_name as text
        constraint audit_name_is_valid check (value ~ '^[a-z][a-z0-9_.]*$' and char_length(value) <= 100);
    end if;
    if pg_catalog.to_regtype('toolsdb.audit_role_name') is null then
        create domain toolsdb.audit_role_name as text
        constraint audit_role_name_length_is_valid check (char_length(value) between 1 and 63);
    end if;
    if pg_catalog.to_regtype('toolsdb.audit_object') is null then
        create domain toolsdb.audit_object as jsonb
        constraint audit_object_is_object check (jsonb_typeof(value) = 'object');
    end if;
end
$domains$;

comment on domain toolsdb.audit_text_200 is
'Text of 1 to 200 characters, in toolsdb.audit_logs (actor, session_id).';

comment on domain toolsdb.audit_text_1000 is
'Text of 1 to 1,000 characters, in toolsdb.audit_logs (entity_id, user_agent).';

comment on domain toolsdb.audit_name is
'A lowercase dotted name (^[a-z][a-z0-9_.]*$, at most 100 characters), in toolsdb.audit_logs '
'(action, entity_type).';

comment on domain toolsdb.audit_role_name is
'A role name (1 to 63 characters), in toolsdb.audit_logs (db_role).';

comment on domain toolsdb.audit_object is
'A JSON object, in toolsdb.audit_logs (old_values, new_values, details).';

create table if not exists toolsdb.audit_logs (
    audit_id bigint generated always as identity,
    logged_at timestamptz not null default now(),
    actor toolsdb.audit_text_200 not null default session_user,
    actor_user_id uuid,
    actor_agent_id uuid,
    session_id toolsdb.audit_text_200,
    action toolsdb.audit_name not null,
    entity_type toolsdb.audit_name,
    entity_id toolsdb.audit_text_1000,
    old_values toolsdb.audit_object,
    new_values toolsdb.audit_object,
    details toolsdb.audit_object not null default '{}',
    client_addr inet,
    user_agent toolsdb.audit_text_1000,
    db_role toolsdb.audit_role_name not null default session_user,
    transaction_id xid8 not null default pg_current_xact_id(),
    -- No table CHECK: every audited write inserts here, and PostgreSQL plans a table's
    -- CHECKs again at each statement. A captured change always names its entity: the
    -- capture trigger, its only writer (audit_event() refuses those actions), takes it
    -- from the row's primary key (docs/security.md, "What capture costs").
    constraint audit_logs_pkey primary key (transaction_id, audit_id, logged_at)
) partition by range (logged_at);

create table if not exists toolsdb.audit_logs_default
partition of toolsdb.audit_logs default;

comment on table toolsdb.audit_logs_default is
'Default partition of toolsdb.audit_logs: entries of months without their own partition land here '
'until toolsdb.audit_create_partitions() moves them.';

create index if not exists audit_logs_entity_type_entity_id_idx
on toolsdb.audit_logs (entity_type, entity_id);

create index if not exists audit_logs_actor_idx on toolsdb.audit_logs (actor);

create index if not exists audit_logs_session_id_idx
on toolsdb.audit_logs (session_id) where session_id is not null;

create index if not exists audit_logs_logged_at_idx on toolsdb.audit_logs using brin (logged_at);

comment on table toolsdb.audit_logs is
'The one audit log of the database, append-only: explicit events (toolsdb.audit_event) and '
'changes captured on audited tables (toolsdb.audit_table). Partitioned by month of logged_at '
'(audit_logs_yYYYYmMM, plus audit_logs_default as a safety net); retention drops whole months. '
'Sealed rows are tamper-evident: see toolsdb.audit_seal() and toolsdb.audit_verify().';

comment on column toolsdb.audit_logs.audit_id is
'Increasing id of the entry (identity); order of insertion, not of commit.';

comment on column toolsdb.audit_logs.logged_at is
'When the entry was written: the start time of the writing transaction (now()). Partition key.';

comment on column toolsdb.audit_logs.actor is
'Who acted, always set: setting toolsdb.actor, else toolsdb.user_id, else toolsdb.agent_id, else the '
'database login role (session_user).';

comment on column toolsdb.audit_logs.actor_user_id is
'The acting toolsdb user (setting toolsdb.user_id), if any. No foreign key: the log outlives users.';

comment on column toolsdb.audit_logs.actor_agent_id is
'The acting agent (setting toolsdb.agent_id), if any. No foreign key: the log outlives agents.';

comment on column toolsdb.audit_logs.session_id is
'The agent session acted for (setting toolsdb.session_id), if any. The application reads only its '
'own session''s entries (row-level security).';

comment on column toolsdb.audit_logs.action is
'What happened: insert, update, delete or truncate for captured changes; an event name in '
'snake_case (e.g. permission_changed, config_updated, notification_sent) for explicit events.';

comment on column toolsdb.audit_logs.entity_type is
'Kind of thing acted on: the table name for captured changes (e.g. users), free snake_case for '
'events (e.g. permission).';

comment on column toolsdb.audit_logs.entity_id is
'Which one: the primary key value as text (a JSON object for composite keys); null for truncate.';

comment on column toolsdb.audit_logs.old_values is
'Before: the whole row for delete, only the changed columns for update; null otherwise. '
'Secret columns read "[redacted]".';

comment on column toolsdb.audit_logs.new_values is
'After: the whole row for insert, only the changed columns for update; null otherwise. '
'Secret columns read "[redacted]".';

comment on column toolsdb.audit_logs.details is
'Free JSON object with anything else worth keeping (event details, request ids).';

comment on column toolsdb.audit_logs.client_addr is
'Address of the end client: setting toolsdb.client_addr, else the database connection''s address.';

comment on column toolsdb.audit_logs.user_agent is
'User agent of the end client (setting toolsdb.user_agent), if any.';

comment on column toolsdb.audit_logs.db_role is
'The database login role (session_user) that wrote the entry.';

comment on column toolsdb.audit_logs.transaction_id is
'Id of the writing transaction (pg_current_xact_id()). Sealing covers ranges of finished '
'transactions; also groups the entries of one transaction.';

-- Tables that are not audited, each with its reason (docs/security.md).
create table if not exists toolsdb_private.audit_exemptions (
    table_name text not null,
    reason text not null,
    constraint audit_exemptions_pkey primary key (table_name),
    constraint table_name_is_valid check (table_name ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$'),
    constraint reason_length_is_valid check (char_length(reason) between 10 and 500)
);

comment on table toolsdb_private.audit_exemptions is
'Tables deliberately not audited by change capture, each with its reason; every other table of '
'schemas toolsdb and toolsdb_private is audited (a catalog test checks it).';

comment on column toolsdb_private.audit_exemptions.table_name is
'Schema-qualified table name, e.g. toolsdb.audit_logs.';

comment on column toolsdb_private.audit_exemptions.reason is 'Why the table is not audited.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.audit_logs', 'the audit log itself: append-only and sealed'),
('toolsdb.audit_seals', 'the proof over the audit log: append-only, chained'),
('toolsdb.audit_prunes', 'written only by audit retention, which leaves an audit event itself'),
('toolsdb_private.audit_exemptions', 'this list: changed only by schema files and migrations')
on conflict (table_name) do nothing;

-- ---------------------------------------------------------------------------
-- Partitions and retention
-- ---------------------------------------------------------------------------

create table if not exists toolsdb.audit_prunes (
    period date not null,
    partition_name text not null,
    row_count bigint not null,
    max_age interval not null,
    pruned_at timestamptz not null default now(),
    pruned_by text not null default session_user,
    constraint audit_prunes_pkey primary key (period),
    constraint period_is_month check (period = date_trunc('month', period)::date),
    constraint partition_name_is_valid check (partition_name ~ '^audit_logs_y[0-9]{4}m[0-9]{2}$'),
    constraint row_count_is_valid check (row_count >= 0),
    constraint pruned_by_length_is_valid check (char_length(pruned_by) between 1 and 63)
);

comment on table toolsdb.audit_prunes is
'Months of the audit log dropped by retention (toolsdb.audit_apply_retention). Verification skips '
'the row check of seals over these months; their seals still chain.';

comment on column toolsdb.audit_prunes.period is 'First day of the month dropped (UTC).';

comment on column toolsdb.audit_prunes.partition_name is 'The partition dropped, e.g. audit_logs_y2025m01.';

comment on column toolsdb.audit_prunes.row_count is 'How many entries the partition held.';

comment on column toolsdb.audit_prunes.max_age is 'The retention age in force when it was dropped.';

comment on column toolsdb.audit_prunes.pruned_at is 'When it was dropped.';

comment on column toolsdb.audit_prunes.pruned_by is 'Database role that ran the retention.';

-- ---------------------------------------------------------------------------
-- Seals: tamper evidence without serializing writers
-- ---------------------------------------------------------------------------

create table if not exists toolsdb.audit_seals (
    seal_id bigint generated always as identity,
    period date not null,
    first_transaction_id xid8 not null,
    end_transaction_id xid8 not null,
    row_count bigint not null,
    first_audit_id bigint not null,
    last_audit_id bigint not null,
    rows_hash bytea not null,
    previous_hash bytea,
    seal_hash bytea not null,
    sealed_at timestamptz not null default now(),
    sealed_by text not null default session_user,
    constraint audit_seals_pkey primary key (seal_id),
    constraint audit_seals_end_transaction_id_period_key unique (end_transaction_id, period),
    constraint period_is_month check (period = date_trunc('month', period)::date),
    constraint transaction_range_is_valid check (first_transaction_id < end_transaction_id),
    constraint row_count_is_positive check (row_count > 0),
    constraint audit_id_range_is_valid check (first_audit_id <= last_audit_id),
    constraint rows_hash_is_sha256 check (octet_length(rows_hash) = 32),
    constraint previous_hash_is_sha256 check (octet_length(previous_hash) = 32),
    constraint seal_hash_is_sha256 check (octet_length(seal_hash) = 32),
    constraint sealed_by_length_is_valid check (char_length(sealed_by) between 1 and 63)
);

comment on table toolsdb.audit_seals is
'Seals over toolsdb.audit_logs, append-only. Each call of toolsdb.audit_seal() seals the entries '
'of every finished transaction not sealed yet (a transaction id range), one row per month, and '
'chains each seal to the previous one. toolsdb.audit_verify() recomputes them.';

comment on column toolsdb.audit_seals.seal_id is 'Order of sealing.';

comment on column toolsdb.audit_seals.period is 'Month (UTC, first day) of the entries this seal covers.';

comment on column toolsdb.audit_seals.first_transaction_id is
'Start of the sealed transaction id range (inclusive): the end of the previous batch.';

comment on column toolsdb.audit_seals.end_transaction_id is
'End of the sealed range (exclusive): the xmin of the sealing snapshot, below which every '
'transaction has finished, so no entry can join the range later.';

comment on column toolsdb.audit_seals.row_count is 'How many entries of the month lie in the range.';

comment on column toolsdb.audit_seals.first_audit_id is 'Lowest audit_id covered.';

comment on column toolsdb.audit_seals.last_audit_id is 'Highest audit_id covered.';

comment on column toolsdb.audit_seals.rows_hash is
'SHA-256 over the SHA-256 digests of the covered entries'' canonical text, in audit_id order.';

comment on column toolsdb.audit_seals.previous_hash is 'seal_hash of the previous seal; null for the first.';

comment on column toolsdb.audit_seals.seal_hash is
'SHA-256 of previous_hash and this seal''s period, range, count and rows_hash: the chain. Publish '
'the newest one outside the database to anchor the log.';

comment on column toolsdb.audit_seals.sealed_at is 'When the seal was made.';

comment on column toolsdb.audit_seals.sealed_by is 'Database role that made it.';

-- ---- schema/14_config.sql ----

create table if not exists toolsdb.config (
    key text not null,
    value jsonb,
    is_secret boolean not null default false,
    secret_value text,
    secret_key_id text,
    description text,
    updated_by text not null default session_user,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint config_pkey primary key (key),
    constraint key_is_valid check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$' and char_length(key) <= 200),
    constraint secret_is_consistent check (
        (is_secret and value is null and secret_value is not null and secret_key_id is not null)
        or (not is_secret and value is not null and secret_value is null and secret_key_id is null)
    ),
    constraint secret_value_is_fernet_token check (
        secret_value ~ '^gAAAAA[A-Za-z0-9_-]+=*$' and char_length(secret_value) <= 100000
    ),
    constraint secret_key_id_is_valid check (secret_key_id ~ '^[0-9a-f]{12}$'),
    constraint description_length_is_valid check (char_length(description) between 1 and 1000),
    constraint updated_by_length_is_valid check (char_length(updated_by) between 1 and 200)
);

comment on table toolsdb.config is
'Configuration by key (e.g. audit.retention, notifications.slack_webhook_url). Plain values are '
'JSON; secrets are Fernet tokens encrypted by the client with the key from TOOLSDB_KEY or the key '
'file, so neither the database nor its backups hold their plaintext. Write through '
'toolsdb.config_set / config_set_secret / config_unset, or the toolsdb config command.';

comment on column toolsdb.config.key is
'Dotted lowercase name, e.g. audit.retention; at most 200 characters.';

comment on column toolsdb.config.value is
'The value as JSON (a string, number, boolean, object or array); null for secrets.';

comment on column toolsdb.config.is_secret is
'True when the value is a secret: it is then in secret_value, encrypted, and value is null.';

comment on column toolsdb.config.secret_value is
'For secrets only: the Fernet token (base64url, starts with gAAAAA) of the UTF-8 value. Never '
'written to the audit log (redacted).';

comment on column toolsdb.config.secret_key_id is
'For secrets only: the id of the key that encrypted secret_value, the first 12 hex digits of the '
'SHA-256 of the key as written in TOOLSDB_KEY or the key file. Tells which keys are still in use '
'(toolsdb config keys) and which key a reader is missing.';

comment on column toolsdb.config.description is 'What the setting is for, 1-1000 characters.';

comment on column toolsdb.config.updated_by is
'Who set it last: setting toolsdb.actor, else the database login role.';

comment on column toolsdb.config.created_at is 'When the key was first set; set by trigger _100_timestamps.';

comment on column toolsdb.config.updated_at is 'When it was last set; set by trigger _100_timestamps.';

-- ---- schema/20_users.sql ----

create table if not exists toolsdb.users (
    user_id uuid not null default gen_random_uuid(),
    username text not null,
    email text not null,
    display_name text,
    role text not null default 'user',
    github_id bigint,
    github_username text,
    github_avatar_url text,
    is_active boolean not null default true,
    last_login_at timestamptz,
    metadata jsonb not null default '{}',
    preferences jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint users_pkey primary key (user_id),
    constraint users_github_id_key unique (github_id),
    constraint username_length_is_valid check (char_length(username) between 1 and 64),
    constraint username_is_valid check (username ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    constraint email_length_is_valid check (char_length(email) between 3 and 320),
    constraint email_is_valid check (email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
    constraint display_name_length_is_valid check (char_length(display_name) between 1 and 200),
    constraint role_is_valid check (role in ('admin', 'manager', 'user', 'service')),
    constraint github_id_is_positive check (github_id > 0),
    constraint github_username_length_is_valid check (char_length(github_username) between 1 and 39),
    constraint github_username_is_valid check (github_username ~ '^[A-Za-z0-9-]+$'),
    constraint github_avatar_url_length_is_valid check (char_length(github_avatar_url) between 1 and 2048),
    constraint github_avatar_url_is_valid check (github_avatar_url ~ '^https://[^[:space:]]+$'),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object'),
    constraint preferences_is_object check (jsonb_typeof(preferences) = 'object')
);

create unique index if not exists users_lower_username_key on toolsdb.users (lower(username));

create unique index if not exists users_lower_email_key on toolsdb.users (lower(email));

create index if not exists users_github_username_idx on toolsdb.users (github_username);

comment on table toolsdb.users is
'Accounts that act in toolsdb: people (admin, manager, user) and service accounts (service) '
'used by bots and automation. Deactivate with is_active = false rather than deleting: '
'projects keep their owner.';

comment on column toolsdb.users.user_id is
'Primary key: a random UUID (gen_random_uuid()).';

comment on column toolsdb.users.username is
'Login name, 1-64 characters: letters, digits, underscore, dot and hyphen, starting with a '
'letter or digit. Unique regardless of case (users_lower_username_key); look it up with '
'lower(username). An insert without one derives it from the email (trigger _050_username): '
'jane.doe@example.com becomes jane.doe, or jane.doe-2 when taken.';

comment on column toolsdb.users.email is
'Email address (local@domain.tld, at most 320 characters). Unique regardless of case '
'(users_lower_email_key); look it up with lower(email).';

comment on column toolsdb.users.display_name is
'Name shown in user interfaces, 1-200 characters; null to fall back to username.';

comment on column toolsdb.users.role is
'Platform role: admin (everything), manager (manages projects and agents), user (default), or '
'service (a non-human account for automation).';

comment on column toolsdb.users.github_id is
'Numeric GitHub account id from OAuth/SSO; unique, null when the account is not linked to GitHub.';

comment on column toolsdb.users.github_username is
'GitHub login (1-39 characters: letters, digits, hyphen) as last seen from GitHub; null when '
'not linked.';

comment on column toolsdb.users.github_avatar_url is
'https URL of the GitHub avatar image; null when not linked.';

comment on column toolsdb.users.is_active is
'False when the account is deactivated: it can no longer log in or act, but its history and '
'owned projects stay.';

comment on column toolsdb.users.last_login_at is
'When the user last logged in successfully; null if never.';

comment on column toolsdb.users.metadata is
'Free-form JSON object for integrations and extensions (never secrets); default {}.';

comment on column toolsdb.users.preferences is
'Small JSON object of account-wide settings; settings grouped by category live in '
'toolsdb.preferences. Default {}.';

comment on column toolsdb.users.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.users.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

-- ---- schema/21_projects.sql ----

create table if not exists toolsdb.projects (
    project_id uuid not null default gen_random_uuid(),
    slug text not null,
    name text not null,
    description text,
    repository_url text,
    owner_id uuid not null,
    status text not null default 'active',
    technology_stack jsonb not null default '[]',
    metadata jsonb not null default '{}',
    test_coverage_percent numeric(5, 2),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint projects_pkey primary key (project_id),
    constraint projects_slug_key unique (slug),
    constraint projects_owner_id_fkey foreign key (owner_id)
    references toolsdb.users (user_id) on delete restrict,
    constraint slug_length_is_valid check (char_length(slug) between 1 and 100),
    constraint slug_is_valid check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    constraint name_length_is_valid check (char_length(name) between 1 and 200),
    constraint description_length_is_valid check (char_length(description) between 1 and 10000),
    constraint repository_url_length_is_valid check (char_length(repository_url) between 1 and 2048),
    constraint repository_url_is_valid check (
        repository_url ~ '^(https|ssh|git)://[^[:space:]]+$'
        or repository_url ~ '^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^[:space:]]+$'
    ),
    constraint status_is_valid check (status in ('active', 'paused', 'archived')),
    constraint technology_stack_is_array check (jsonb_typeof(technology_stack) = 'array'),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object'),
    constraint test_coverage_percent_is_valid check (test_coverage_percent between 0 and 100)
);

create index if not exists projects_owner_id_idx on toolsdb.projects (owner_id);

create index if not exists projects_status_idx on toolsdb.projects (status);

create index if not exists projects_repository_url_idx on toolsdb.projects (repository_url);

comment on table toolsdb.projects is
'Software projects worked on by people and agents, usually one git repository each. Archive a '
'project (status = archived) instead of deleting it.';

comment on column toolsdb.projects.project_id is
'Primary key: a random UUID (gen_random_uuid()).';

comment on column toolsdb.projects.slug is
'URL-safe unique identifier: lowercase letters and digits in hyphen-separated words (e.g. '
'agent-notify), at most 100 characters.';

comment on column toolsdb.projects.name is
'Human-readable project name, 1-200 characters.';

comment on column toolsdb.projects.description is
'What the project is about, 1-10000 characters; null if not written yet.';

comment on column toolsdb.projects.repository_url is
'Git remote of the project: an https://, ssh:// or git:// URL, or scp-like user@host:path '
'(e.g. git@github.com:org/repo.git); null if the project has no repository.';

comment on column toolsdb.projects.owner_id is
'User who owns the project (toolsdb.users). A user who still owns projects cannot be deleted '
'(on delete restrict): transfer or delete the projects first, or deactivate the user.';

comment on column toolsdb.projects.status is
'Lifecycle: active (default, work happens), paused (temporarily no work), archived (read-only '
'history).';

comment on column toolsdb.projects.technology_stack is
'JSON array of the technologies used, e.g. ["python", "postgresql"]; default [].';

comment on column toolsdb.projects.metadata is
'Free-form JSON object for integrations and extensions (never secrets); default {}.';

comment on column toolsdb.projects.test_coverage_percent is
'Share of the code covered by tests, 0 to 100 (two decimals), as last reported by CI; null if '
'unknown.';

comment on column toolsdb.projects.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.projects.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

-- ---- schema/22_agents.sql ----

create table if not exists toolsdb.agents (
    agent_id uuid not null default gen_random_uuid(),
    name text not null,
    agent_type text not null,
    description text,
    model_provider text,
    model_name text,
    capabilities jsonb not null default '{}',
    tags text[] not null default '{}',
    is_active boolean not null default true,
    is_experimental boolean not null default false,
    config jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint agents_pkey primary key (agent_id),
    constraint agents_name_key unique (name),
    constraint name_length_is_valid check (char_length(name) between 1 and 100),
    constraint agent_type_length_is_valid check (char_length(agent_type) between 1 and 63),
    constraint agent_type_is_valid check (agent_type ~ '^[a-z][a-z0-9_]*$'),
    constraint description_length_is_valid check (char_length(description) between 1 and 4000),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint capabilities_is_object check (jsonb_typeof(capabilities) = 'object'),
    constraint tags_are_valid check (
        cardinality(tags) <= 64
        and array_position(tags, null) is null
        and '' <> all(tags)
    ),
    constraint config_is_object check (jsonb_typeof(config) = 'object')
);

create index if not exists agents_agent_type_idx on toolsdb.agents (agent_type);

create index if not exists agents_model_provider_idx on toolsdb.agents (model_provider);

create index if not exists agents_is_active_idx on toolsdb.agents (is_active);

create index if not exists agents_tags_idx on toolsdb.agents using gin (tags);

create index if not exists agents_capabilities_idx on toolsdb.agents using gin (capabilities jsonb_path_ops);

comment on table toolsdb.agents is
'Registry of AI agents (e.g. coding agents such as claude-code or codex, review agents): '
'their kind, model, capabilities and configuration. Retire an agent with is_active = false '
'instead of deleting it.';

comment on column toolsdb.agents.agent_id is
'Primary key: a random UUID (gen_random_uuid()).';

comment on column toolsdb.agents.name is
'Unique agent name as users and logs refer to it (e.g. claude-code), 1-100 characters; '
'case-sensitive.';

comment on column toolsdb.agents.agent_type is
'Kind of agent as a lowercase identifier (letters, digits, underscore; e.g. coding, review, '
'planning), at most 63 characters.';

comment on column toolsdb.agents.description is
'What the agent does, 1-4000 characters; null if not written yet.';

comment on column toolsdb.agents.model_provider is
'Who serves the model the agent runs on (e.g. anthropic, openai, google), 1-100 characters; '
'null for agents without a language model.';

comment on column toolsdb.agents.model_name is
'Model identifier as the provider names it (e.g. claude-sonnet-4-5, gpt-5-codex), 1-200 '
'characters; null for agents without a language model.';

comment on column toolsdb.agents.capabilities is
'JSON object describing what the agent can do (e.g. {"languages": ["python"], "can_open_prs": '
'true}); default {}. GIN-indexed for containment: capabilities @> ''{"can_open_prs": true}''.';

comment on column toolsdb.agents.tags is
'Free labels for filtering (at most 64, none empty or null), searched with tags @> array[...] '
'through the GIN index agents_tags_idx; default empty.';

comment on column toolsdb.agents.is_active is
'False when the agent is retired and must not be given new work; default true.';

comment on column toolsdb.agents.is_experimental is
'True for agents still being evaluated, to keep them out of default selections; default false.';

comment on column toolsdb.agents.config is
'JSON object of runtime settings (e.g. temperature, max_tokens, system prompt name); never '
'secrets. Default {}.';

comment on column toolsdb.agents.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.agents.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

-- ---- schema/23_mcp_servers.sql ----

create table if not exists toolsdb.mcp_servers (
    mcp_server_id uuid not null default gen_random_uuid(),
    name text not null,
    description text,
    transport text not null,
    command text,
    args text[] not null default '{}',
    url text,
    env jsonb not null default '{}',
    is_enabled boolean not null default true,
    auto_start boolean not null default false,
    timeout_ms integer not null default 30000,
    tools jsonb not null default '[]',
    last_started_at timestamptz,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint mcp_servers_pkey primary key (mcp_server_id),
    constraint mcp_servers_name_key unique (name),
    constraint name_length_is_valid check (char_length(name) between 1 and 100),
    constraint description_length_is_valid check (char_length(description) between 1 and 4000),
    constraint transport_is_valid check (transport in ('stdio', 'http', 'sse')),
    constraint command_length_is_valid check (char_length(command) between 1 and 4096),
    constraint args_are_valid check (
        cardinality(args) <= 256
        and array_position(args, null) is null
    ),
    constraint url_length_is_valid check (char_length(url) between 1 and 2048),
    constraint url_is_valid check (url ~ '^https?://[^[:space:]]+$'),
    constraint transport_target_is_given check (
        (transport = 'stdio' and command is not null)
        or (transport in ('http', 'sse') and url is not null)
    ),
    constraint env_is_object check (jsonb_typeof(env) = 'object'),
    constraint env_values_are_strings check (
        not jsonb_path_exists(env, 'strict $.* ? (@.type() != "string")')
    ),
    constraint timeout_ms_is_positive check (timeout_ms > 0),
    constraint tools_is_array check (jsonb_typeof(tools) = 'array'),
    constraint last_error_length_is_valid check (char_length(last_error) between 1 and 20000)
);

comment on table toolsdb.mcp_servers is
'Model Context Protocol (MCP) servers that agents can use: a local process spoken to over '
'stdio, or a remote endpoint over http or sse. Agents are linked to servers in '
'toolsdb.agent_mcp_servers.';

comment on column toolsdb.mcp_servers.mcp_server_id is
'Primary key: a random UUID (gen_random_uuid()).';

comment on column toolsdb.mcp_servers.name is
'Unique server name as MCP client configurations refer to it (e.g. filesystem), 1-100 '
'characters; case-sensitive.';

comment on column toolsdb.mcp_servers.description is
'What the server offers, 1-4000 characters; null if not written yet.';

comment on column toolsdb.mcp_servers.transport is
'How clients talk to the server: stdio (start command with args and speak over stdin/stdout; '
'command required), http (streamable HTTP at url; url required) or sse (server-sent events at '
'url; url required).';

comment on column toolsdb.mcp_servers.command is
'Executable that starts a stdio server (e.g. npx or uvx), 1-4096 characters; required when '
'transport = stdio, otherwise usually null.';

comment on column toolsdb.mcp_servers.args is
'Command-line arguments passed to command, in order (no null elements, at most 256); default '
'empty.';

comment on column toolsdb.mcp_servers.url is
'http:// or https:// endpoint of an http or sse server, 1-2048 characters; required when '
'transport is http or sse.';

comment on column toolsdb.mcp_servers.env is
'Environment variables for the server process as a JSON object of string values (e.g. '
'{"LOG_LEVEL": "info"}); default {}. Never put secrets (tokens, passwords, API keys) here: '
'this column is stored and shown in clear text. A later issue adds encrypted configuration '
'for secrets.';

comment on column toolsdb.mcp_servers.is_enabled is
'False to keep the server registered but unused by every agent; default true.';

comment on column toolsdb.mcp_servers.auto_start is
'True to start the server when the agent runtime starts rather than on first use; default false.';

comment on column toolsdb.mcp_servers.timeout_ms is
'How long to wait for the server to start or answer a request, in milliseconds (> 0); default '
'30000.';

comment on column toolsdb.mcp_servers.tools is
'JSON array of the tools the server advertised at its last discovery (as returned by MCP '
'tools/list, e.g. [{"name": "read_file", "description": "..."}]); default [].';

comment on column toolsdb.mcp_servers.last_started_at is
'When the server was last started or connected successfully; null if never.';

comment on column toolsdb.mcp_servers.last_error is
'Message of the last start or connection failure, 1-20000 characters; null when the last '
'attempt succeeded or none was made.';

comment on column toolsdb.mcp_servers.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.mcp_servers.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

-- ---- schema/24_agent_mcp_servers.sql ----

create table if not exists toolsdb.agent_mcp_servers (
    agent_id uuid not null,
    mcp_server_id uuid not null,
    is_enabled boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint agent_mcp_servers_pkey primary key (agent_id, mcp_server_id),
    constraint agent_mcp_servers_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete cascade,
    constraint agent_mcp_servers_mcp_server_id_fkey foreign key (mcp_server_id)
    references toolsdb.mcp_servers (mcp_server_id) on delete cascade
);

create index if not exists agent_mcp_servers_mcp_server_id_idx on toolsdb.agent_mcp_servers (mcp_server_id);

comment on table toolsdb.agent_mcp_servers is
'Which MCP servers each agent may use (many-to-many between toolsdb.agents and '
'toolsdb.mcp_servers). A link disappears with its agent or its server (on delete cascade).';

comment on column toolsdb.agent_mcp_servers.agent_id is
'The agent (toolsdb.agents); deleting the agent deletes its links.';

comment on column toolsdb.agent_mcp_servers.mcp_server_id is
'The MCP server (toolsdb.mcp_servers); deleting the server deletes its links.';

comment on column toolsdb.agent_mcp_servers.is_enabled is
'False to keep the link but stop this agent from using this server; the server is used only '
'when this and mcp_servers.is_enabled are both true. Default true.';

comment on column toolsdb.agent_mcp_servers.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.agent_mcp_servers.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

-- ---- schema/25_preferences.sql ----

create table if not exists toolsdb.preferences (
    preference_id uuid not null default gen_random_uuid(),
    user_id uuid not null,
    category text not null,
    preferences jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint preferences_pkey primary key (preference_id),
    constraint preferences_user_id_category_key unique (user_id, category),
    constraint preferences_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete cascade,
    constraint category_length_is_valid check (char_length(category) between 1 and 63),
    constraint category_is_valid check (category ~ '^[a-z][a-z0-9_]*$'),
    constraint preferences_is_object check (jsonb_typeof(preferences) = 'object')
);

create index if not exists preferences_preferences_idx on toolsdb.preferences using gin (preferences jsonb_path_ops);

comment on table toolsdb.preferences is
'User settings grouped by category (e.g. ui_settings, notifications): one JSON object per '
'user and category. Find users by a setting with containment, e.g. preferences @> ''{"theme": '
'"dark"}'', which uses the GIN index preferences_preferences_idx.';

comment on column toolsdb.preferences.preference_id is
'Primary key: a random UUID (gen_random_uuid()).';

comment on column toolsdb.preferences.user_id is
'The user these settings belong to (toolsdb.users); deleting the user deletes them.';

comment on column toolsdb.preferences.category is
'Group of settings as a lowercase identifier (letters, digits, underscore; e.g. ui_settings, '
'notifications), at most 63 characters; unique per user.';

comment on column toolsdb.preferences.preferences is
'The settings of this category as a JSON object, e.g. {"theme": "dark", "language": "en", '
'"notifications": {"email": true}}; default {}. Query with @> (indexed) or ->> / -> paths.';

comment on column toolsdb.preferences.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.preferences.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

-- ---- schema/26_api_tokens.sql ----

create table if not exists toolsdb.api_tokens (
    token_id uuid not null default gen_random_uuid(),
    token_name text,
    token_hash bytea not null,
    token_prefix text not null,
    user_id uuid not null,
    agent_id uuid,
    project_id uuid,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    constraint api_tokens_pkey primary key (token_id),
    constraint api_tokens_token_hash_key unique (token_hash),
    constraint api_tokens_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete cascade,
    constraint api_tokens_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete cascade,
    constraint api_tokens_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint token_name_length_is_valid check (char_length(token_name) between 1 and 100),
    constraint token_hash_is_valid check (octet_length(token_hash) = 32),
    constraint token_prefix_is_valid check (token_prefix ~ '^tdb_[0-9a-f]{8}$'),
    constraint expires_at_is_valid check (expires_at > created_at),
    constraint revoked_at_is_valid check (revoked_at >= created_at),
    constraint last_used_at_is_valid check (last_used_at >= created_at)
);

create index if not exists api_tokens_user_id_idx on toolsdb.api_tokens (user_id);

create index if not exists api_tokens_agent_id_idx on toolsdb.api_tokens (agent_id);

create index if not exists api_tokens_project_id_idx on toolsdb.api_tokens (project_id);

create index if not exists api_tokens_token_prefix_idx on toolsdb.api_tokens (token_prefix);

comment on table toolsdb.api_tokens is
'Bearer tokens of the HTTP hook endpoint (`toolsdb serve`, `toolsdb token`): each names the user, '
'and optionally the agent and project, that an event sent with it is recorded for and whose '
'row-level security context it is written under. Only the SHA-256 of a token is kept; make one '
'with toolsdb.create_api_token(), check one with toolsdb.authenticate_api_token(), end one with '
'toolsdb.revoke_api_token(). Hidden from toolsdb_app and toolsdb_readonly.';

comment on column toolsdb.api_tokens.token_id is
'Primary key: a random UUID (gen_random_uuid()).';

comment on column toolsdb.api_tokens.token_name is
'A label for people (such as laptop or ci), 1-100 characters; null when none was given.';

comment on column toolsdb.api_tokens.token_hash is
'SHA-256 of the whole token text (32 bytes); the token itself is shown once, at creation, and '
'never stored. Unique; never written to the audit log (redacted).';

comment on column toolsdb.api_tokens.token_prefix is
'The token''s first 12 characters (tdb_ and 8 hex digits), to tell tokens apart in listings and '
'to revoke one by it; not a secret.';

comment on column toolsdb.api_tokens.user_id is
'The user (toolsdb.users) events sent with this token are recorded for; deleting the user '
'deletes the token.';

comment on column toolsdb.api_tokens.agent_id is
'The agent (toolsdb.agents) events sent with this token are recorded for, or null; deleting the '
'agent deletes the token.';

comment on column toolsdb.api_tokens.project_id is
'The project (toolsdb.projects) events sent with this token are recorded for, or null; deleting '
'the project deletes the token.';

comment on column toolsdb.api_tokens.created_at is
'When the token was made.';

comment on column toolsdb.api_tokens.expires_at is
'From when the token authenticates nobody; null for never.';

comment on column toolsdb.api_tokens.revoked_at is
'When the token was revoked (toolsdb.revoke_api_token()); from then on it authenticates nobody. '
'Null while in force.';

comment on column toolsdb.api_tokens.last_used_at is
'Roughly when the token last authenticated (updated at most once a minute); null if never.';

-- ---- schema/30_tasks.sql ----

create table if not exists toolsdb.task_status_transitions (
    from_status text not null,
    to_status text not null,
    constraint task_status_transitions_pkey primary key (from_status, to_status),
    constraint from_status_is_valid check (
        from_status in ('draft', 'open', 'in_progress', 'in_review', 'blocked', 'completed', 'failed', 'cancelled')
    ),
    constraint to_status_is_valid check (
        to_status in ('draft', 'open', 'in_progress', 'in_review', 'blocked', 'completed', 'failed', 'cancelled')
    ),
    constraint transition_changes_status check (from_status <> to_status)
);

comment on table toolsdb.task_status_transitions is
'The moves a task''s status may make (from_status -> to_status); any other move is refused. '
'A lookup table: insert a row to allow a move, delete one to forbid it.';

comment on column toolsdb.task_status_transitions.from_status is 'Status the task is in.';

comment on column toolsdb.task_status_transitions.to_status is 'Status it may move to.';

insert into toolsdb.task_status_transitions (from_status, to_status) values
('draft', 'open'),
('draft', 'cancelled'),
('open', 'draft'),
('open', 'in_progress'),
('open', 'blocked'),
('open', 'cancelled'),
('in_progress', 'open'),
('in_progress', 'in_review'),
('in_progress', 'blocked'),
('in_progress', 'completed'),
('in_progress', 'failed'),
('in_progress', 'cancelled'),
('in_review', 'in_progress'),
('in_review', 'completed'),
('in_review', 'failed'),
('in_review', 'cancelled'),
('blocked', 'open'),
('blocked', 'in_progress'),
('blocked', 'cancelled'),
('completed', 'open'),
('failed', 'open'),
('cancelled', 'open')
on conflict on constraint task_status_transitions_pkey do nothing;

create table if not exists toolsdb.tasks (
    task_id uuid not null default gen_random_uuid(),
    project_id uuid not null,
    parent_task_id uuid,
    title text not null,
    description text,
    type text not null default 'task',
    status text not null default 'open',
    priority smallint not null default 5,
    priority_label text not null,
    requirements jsonb not null default '{}',
    labels text[] not null default '{}',
    assigned_to_user_id uuid,
    assigned_to_agent_id uuid,
    github_issue_number integer,
    github_pr_number integer,
    ai_analysis jsonb not null default '{}',
    ai_suggestions jsonb not null default '[]',
    created_by text not null default coalesce(nullif(current_setting('toolsdb.actor', true), ''), session_user),
    closed_at timestamptz,
    search_vector tsvector generated always as (
        setweight(to_tsvector('english'::regconfig, title), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')
    ) stored,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tasks_pkey primary key (task_id),
    constraint tasks_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint tasks_parent_task_id_fkey foreign key (parent_task_id)
    references toolsdb.tasks (task_id) on delete set null,
    constraint tasks_assigned_to_user_id_fkey foreign key (assigned_to_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint tasks_assigned_to_agent_id_fkey foreign key (assigned_to_agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint title_length_is_valid check (char_length(title) between 1 and 500),
    constraint description_length_is_valid check (char_length(description) between 1 and 100000),
    constraint type_is_valid check (
        type in ('bug', 'feature', 'refactor', 'test', 'documentation', 'task', 'chore')
    ),
    constraint status_is_valid check (
        status in ('draft', 'open', 'in_progress', 'in_review', 'blocked', 'completed', 'failed', 'cancelled')
    ),
    constraint priority_is_valid check (priority between 0 and 10),
    constraint priority_label_is_valid check (priority_label in ('low', 'medium', 'high', 'critical')),
    constraint requirements_is_object check (jsonb_typeof(requirements) = 'object'),
    constraint labels_are_valid check (
        cardinality(labels) <= 50 and array_position(labels, null) is null and array_position(labels, '') is null
    ),
    constraint github_issue_number_is_positive check (github_issue_number > 0),
    constraint github_pr_number_is_positive check (github_pr_number > 0),
    constraint ai_analysis_is_object check (jsonb_typeof(ai_analysis) = 'object'),
    constraint ai_suggestions_is_array_or_object check (jsonb_typeof(ai_suggestions) in ('array', 'object')),
    constraint created_by_length_is_valid check (char_length(created_by) between 1 and 200),
    constraint parent_is_not_self check (parent_task_id <> task_id),
    constraint closed_at_matches_status check (
        (status in ('completed', 'failed', 'cancelled')) = (closed_at is not null)
    )
);

create index if not exists tasks_project_id_status_idx on toolsdb.tasks (project_id, status)
include (github_pr_number);

create index if not exists tasks_parent_task_id_idx on toolsdb.tasks (parent_task_id);

create index if not exists tasks_assigned_to_user_id_idx on toolsdb.tasks (assigned_to_user_id);

create index if not exists tasks_assigned_to_agent_id_idx on toolsdb.tasks (assigned_to_agent_id);

create index if not exists tasks_priority_idx on toolsdb.tasks (priority);

create unique index if not exists tasks_project_id_github_issue_number_key
on toolsdb.tasks (project_id, github_issue_number);

create index if not exists tasks_labels_idx on toolsdb.tasks using gin (labels);

create index if not exists tasks_requirements_idx on toolsdb.tasks using gin (requirements jsonb_path_ops);

create index if not exists tasks_search_vector_idx on toolsdb.tasks using gin (search_vector);

comment on table toolsdb.tasks is
'Work items of a project: issues, pull requests and tasks (of issue trackers and CI/CD task '
'trackers). One lifecycle (status, moves in toolsdb.task_status_transitions), priority 0-10 with '
'its issue-tracker label, subtasks through parent_task_id (no cycles), full-text search in '
'search_vector. The application sees the tasks of its project only (toolsdb.project_id).';

comment on column toolsdb.tasks.task_id is 'Primary key: a random UUID.';

comment on column toolsdb.tasks.project_id is 'The project (toolsdb.projects); tasks go with it (on delete cascade).';

comment on column toolsdb.tasks.parent_task_id is
'The parent task (the CI/CD task-tracker hierarchy), in the same project; never the task itself or '
'one of its descendants. Null for a top-level task; set to null when the parent is deleted.';

comment on column toolsdb.tasks.title is 'Short title, 1-500 characters; weighted A in search_vector.';

comment on column toolsdb.tasks.description is 'Longer text, up to 100,000 characters; weighted B in search_vector.';

comment on column toolsdb.tasks.type is 'bug, feature, refactor, test, documentation, task (default) or chore.';

comment on column toolsdb.tasks.status is
'draft, open (default; pending in CI/CD task trackers), in_progress, in_review, blocked, completed '
'(closed as done in issue trackers), failed, cancelled (closed as dropped in issue trackers). '
'Changes only along toolsdb.task_status_transitions. Writing closed stores completed from '
'in_progress or in_review (and on insert), cancelled from draft, open or blocked, and keeps a '
'closed status as it is.';

comment on column toolsdb.tasks.priority is
'0 (lowest) to 10 (highest), the scale of CI/CD task trackers; default 5.';

comment on column toolsdb.tasks.priority_label is
'The issue-tracker label of priority (toolsdb.priority_label_of): low 0-3, medium 4-6, high 7-8, '
'critical 9-10, kept by the database. Writable: writing a label that disagrees with priority sets '
'priority to toolsdb.priority_from_label(label) (high 7); writing both, disagreeing, in one update '
'raises 22023.';

comment on column toolsdb.tasks.requirements is 'JSON object of requirements (acceptance criteria, constraints).';

comment on column toolsdb.tasks.labels is 'Free labels, at most 50, none empty; GIN-indexed (labels @> array[...]).';

comment on column toolsdb.tasks.assigned_to_user_id is 'The user it is assigned to, if any (one at most).';

comment on column toolsdb.tasks.assigned_to_agent_id is 'The agent it is assigned to, if any (one at most).';

comment on column toolsdb.tasks.github_issue_number is 'GitHub issue number; unique within the project.';

comment on column toolsdb.tasks.github_pr_number is 'GitHub pull request number, if any.';

comment on column toolsdb.tasks.ai_analysis is 'JSON object: an AI''s analysis of the task.';

comment on column toolsdb.tasks.ai_suggestions is 'JSON array or object: an AI''s suggestions.';

comment on column toolsdb.tasks.created_by is
'Who created it: setting toolsdb.actor at insert, else the database login role.';

comment on column toolsdb.tasks.closed_at is
'When it reached completed, failed or cancelled; null while it is not closed. Set by the database.';

comment on column toolsdb.tasks.search_vector is
'Full-text search vector (english) of title (A) and description (B), GIN-indexed: '
'where search_vector @@ websearch_to_tsquery(''english'', ''login bug'').';

comment on column toolsdb.tasks.created_at is 'When the task was created; set by trigger _100_timestamps.';

comment on column toolsdb.tasks.updated_at is 'When it last changed; set by trigger _100_timestamps.';

-- ---- schema/31_model_prices.sql ----

create table if not exists toolsdb.model_prices (
    model_provider text not null,
    model_name text not null,
    valid_from timestamptz not null,
    input_usd_per_mtok numeric(12, 6) not null,
    output_usd_per_mtok numeric(12, 6) not null,
    cached_input_usd_per_mtok numeric(12, 6) not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    cache_write_5m_usd_per_mtok numeric(12, 6) not null,
    cache_write_1h_usd_per_mtok numeric(12, 6) not null,
    long_context_threshold_tokens integer,
    long_context_input_usd_per_mtok numeric(12, 6),
    long_context_output_usd_per_mtok numeric(12, 6),
    long_context_cache_write_5m_usd_per_mtok numeric(12, 6),
    long_context_cache_write_1h_usd_per_mtok numeric(12, 6),
    long_context_cache_read_usd_per_mtok numeric(12, 6),
    source_url text,
    source_checked_on date,
    constraint model_prices_pkey primary key (model_provider, model_name, valid_from),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint prices_are_not_negative check (
        input_usd_per_mtok >= 0 and output_usd_per_mtok >= 0 and cached_input_usd_per_mtok >= 0
        and cache_write_5m_usd_per_mtok >= 0 and cache_write_1h_usd_per_mtok >= 0
    ),
    constraint long_context_prices_are_complete check (
        (long_context_threshold_tokens is null) = (long_context_input_usd_per_mtok is null)
        and (long_context_threshold_tokens is null) = (long_context_output_usd_per_mtok is null)
        and (long_context_threshold_tokens is null) = (long_context_cache_write_5m_usd_per_mtok is null)
        and (long_context_threshold_tokens is null) = (long_context_cache_write_1h_usd_per_mtok is null)
        and (long_context_threshold_tokens is null) = (long_context_cache_read_usd_per_mtok is null)
    ),
    constraint long_context_prices_are_valid check (
        long_context_threshold_tokens > 0 and long_context_input_usd_per_mtok >= 0
        and long_context_output_usd_per_mtok >= 0 and long_context_cache_write_5m_usd_per_mtok >= 0
        and long_context_cache_write_1h_usd_per_mtok >= 0 and long_context_cache_read_usd_per_mtok >= 0
    ),
    constraint source_url_is_valid check (source_url ~ '^https?://' and char_length(source_url) <= 2000)
);

comment on table toolsdb.model_prices is
'Price list of models over time: each row is in force from valid_from until the next row of the '
'same model. An execution is priced at the row in force when it started (toolsdb.model_price_at).';

comment on column toolsdb.model_prices.model_provider is 'Who serves the model, as in toolsdb.agents.model_provider.';

comment on column toolsdb.model_prices.model_name is 'The model, as in toolsdb.agents.model_name.';

comment on column toolsdb.model_prices.valid_from is 'From when this price applies.';

comment on column toolsdb.model_prices.input_usd_per_mtok is 'USD per million uncached input tokens.';

comment on column toolsdb.model_prices.output_usd_per_mtok is 'USD per million output tokens.';

comment on column toolsdb.model_prices.cached_input_usd_per_mtok is
'USD per million cached input tokens (cache reads).';

comment on column toolsdb.model_prices.created_at is 'When the row was added; set by trigger _100_timestamps.';

comment on column toolsdb.model_prices.updated_at is 'When it last changed; set by trigger _100_timestamps.';

comment on column toolsdb.model_prices.cache_write_5m_usd_per_mtok is
'USD per million tokens written to the 5-minute prompt cache; when not given, 1.25 times the input '
'price (Anthropic''s multiplier; trigger _050_cache_write_prices).';

comment on column toolsdb.model_prices.cache_write_1h_usd_per_mtok is
'USD per million tokens written to the 1-hour prompt cache; when not given, 2 times the input price.';

comment on column toolsdb.model_prices.long_context_threshold_tokens is
'Long-context tier: a request whose prompt (input + cache writes + cache reads) exceeds this many '
'tokens pays the long_context_* prices on all its tokens, output included (Anthropic''s rule); null: no tier.';

comment on column toolsdb.model_prices.long_context_input_usd_per_mtok is 'Input price above the threshold.';

comment on column toolsdb.model_prices.long_context_output_usd_per_mtok is 'Output price above the threshold.';

comment on column toolsdb.model_prices.long_context_cache_write_5m_usd_per_mtok is
'5-minute cache write price above the threshold.';

comment on column toolsdb.model_prices.long_context_cache_write_1h_usd_per_mtok is
'1-hour cache write price above the threshold.';

comment on column toolsdb.model_prices.long_context_cache_read_usd_per_mtok is 'Cache read price above the threshold.';

comment on column toolsdb.model_prices.source_url is 'Where the price was read.';

comment on column toolsdb.model_prices.source_checked_on is 'When it was last checked there.';

create table if not exists toolsdb.model_aliases (
    model_provider text not null,
    alias text not null,
    model_name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint model_aliases_pkey primary key (model_provider, alias),
    constraint alias_length_is_valid check (char_length(alias) between 1 and 200),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint alias_is_not_the_model check (alias <> model_name)
);

comment on table toolsdb.model_aliases is
'Other names of a priced model: the dated API ids that transcripts carry (claude-sonnet-4-5-20250929) '
'map to the model_prices row of claude-sonnet-4-5. A name neither priced nor aliased is unpriced; '
'prices are never guessed from a prefix.';

comment on column toolsdb.model_aliases.model_provider is 'Who serves the model.';

comment on column toolsdb.model_aliases.alias is 'The other name, as it appears in usage.';

comment on column toolsdb.model_aliases.model_name is 'The model_prices name it stands for.';

comment on column toolsdb.model_aliases.created_at is 'When the row was added; set by trigger _100_timestamps.';

comment on column toolsdb.model_aliases.updated_at is 'When it last changed; set by trigger _100_timestamps.';

-- The published prices of Claude models, USD per million tokens: input, 5-minute
-- cache write, 1-hour cache write, cache read, output (docs/transcripts.md says
-- where each comes from). Reference rows: added once, never overwritten here;
-- a price change is a new row with a later valid_from.
insert into toolsdb.model_prices (
    model_provider, model_name, valid_from, input_usd_per_mtok, cache_write_5m_usd_per_mtok,
    cache_write_1h_usd_per_mtok, cached_input_usd_per_mtok, output_usd_per_mtok,
    long_context_threshold_tokens, long_context_input_usd_per_mtok, long_context_cache_write_5m_usd_per_mtok,
    long_context_cache_write_1h_usd_per_mtok, long_context_cache_read_usd_per_mtok,
    long_context_output_usd_per_mtok, source_url, source_checked_on
)
values
(
    'anthropic', 'claude-opus-4-0', '2024-01-01 00:00:00+00', 15, 18.75, 30, 1.50, 75,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-opus-4-1', '2024-01-01 00:00:00+00', 15, 18.75, 30, 1.50, 75,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-opus-4-5', '2024-01-01 00:00:00+00', 5, 6.25, 10, 0.50, 25,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-opus-4-6', '2024-01-01 00:00:00+00', 5, 6.25, 10, 0.50, 25,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-opus-4-6-fast', '2024-01-01 00:00:00+00', 30, 37.50, 60, 3, 150,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/build-with-claude/fast-mode', '2026-12-02'
),
(
    'anthropic', 'claude-sonnet-4-0', '2024-01-01 00:00:00+00', 3, 3.75, 6, 0.30, 15,
    200000, 6, 7.50, 12, 0.60, 22.50, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-sonnet-4-5', '2024-01-01 00:00:00+00', 3, 3.75, 6, 0.30, 15,
    200000, 6, 7.50, 12, 0.60, 22.50, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-sonnet-4-6', '2024-01-01 00:00:00+00', 3, 3.75, 6, 0.30, 15,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-haiku-4-5', '2024-01-01 00:00:00+00', 1, 1.25, 2, 0.10, 5,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-3-5-haiku', '2024-01-01 00:00:00+00', 0.80, 1, 1.6, 0.08, 4,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-3-7-sonnet', '2024-01-01 00:00:00+00', 3, 3.75, 6, 0.30, 15,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
)
on conflict on constraint model_prices_pkey do nothing;

insert into toolsdb.model_aliases (model_provider, alias, model_name)
values
('anthropic', 'claude-opus-4-20250514', 'claude-opus-4-0'),
('anthropic', 'claude-opus-4', 'claude-opus-4-0'),
('anthropic', 'claude-opus-4-1-20250805', 'claude-opus-4-1'),
('anthropic', 'claude-opus-4-5-20251101', 'claude-opus-4-5'),
('anthropic', 'claude-sonnet-4-20250514', 'claude-sonnet-4-0'),
('anthropic', 'claude-sonnet-4', 'claude-sonnet-4-0'),
('anthropic', 'claude-sonnet-4-5-20250929', 'claude-sonnet-4-5'),
('anthropic', 'claude-haiku-4-5-20251001', 'claude-haiku-4-5'),
('anthropic', 'claude-3-5-haiku-20241022', 'claude-3-5-haiku'),
('anthropic', 'claude-3-5-haiku-latest', 'claude-3-5-haiku'),
('anthropic', 'claude-3-7-sonnet-20250219', 'claude-3-7-sonnet'),
('anthropic', 'claude-3-7-sonnet-latest', 'claude-3-7-sonnet')
on conflict on constraint model_aliases_pkey do nothing;

-- ---- schema/32_evidence.sql ----

create table if not exists toolsdb.evidence (
    evidence_id uuid not null default gen_random_uuid(),
    project_id uuid not null,
    task_id uuid,
    source_type text not null,
    title text not null,
    content jsonb not null default '{}',
    source_url text,
    credibility_score numeric(3, 2) not null default 0.5,
    is_verified boolean not null default false,
    verified_by_user_id uuid,
    verified_at timestamptz,
    related_evidence uuid[] not null default '{}',
    contradicting_evidence uuid[] not null default '{}',
    tags text[] not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint evidence_pkey primary key (evidence_id),
    constraint evidence_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint evidence_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete set null,
    constraint evidence_verified_by_user_id_fkey foreign key (verified_by_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint source_type_is_valid check (
        source_type in (
            'code_analysis', 'test_result', 'ai_output', 'human_review', 'documentation', 'log',
            'external', 'other'
        )
    ),
    constraint title_length_is_valid check (char_length(title) between 1 and 500),
    constraint content_is_object check (jsonb_typeof(content) = 'object'),
    constraint source_url_is_valid check (source_url ~ '^https?://\S+$' and char_length(source_url) <= 2048),
    constraint credibility_score_is_valid check (credibility_score between 0 and 1),
    constraint verified_at_matches_is_verified check (is_verified = (verified_at is not null)),
    constraint related_evidence_is_valid check (
        cardinality(related_evidence) <= 100 and array_position(related_evidence, null) is null
        and not evidence_id = any(related_evidence)
    ),
    constraint contradicting_evidence_is_valid check (
        cardinality(contradicting_evidence) <= 100 and array_position(contradicting_evidence, null) is null
        and not evidence_id = any(contradicting_evidence)
    ),
    constraint tags_are_valid check (
        cardinality(tags) <= 50 and array_position(tags, null) is null and array_position(tags, '') is null
    )
);

create index if not exists evidence_project_id_idx on toolsdb.evidence (project_id, created_at);

create index if not exists evidence_task_id_idx on toolsdb.evidence (task_id);

create index if not exists evidence_verified_by_user_id_idx on toolsdb.evidence (verified_by_user_id);

create index if not exists evidence_source_type_idx on toolsdb.evidence (source_type);

create index if not exists evidence_credibility_score_idx on toolsdb.evidence (credibility_score);

create index if not exists evidence_tags_idx on toolsdb.evidence using gin (tags);

comment on table toolsdb.evidence is
'Evidence registry: what decisions rest on (code analysis, test results, AI output, human review, '
'...), with a credibility score from 0 to 1, verification, and links to evidence it supports or '
'contradicts. Agent runs point to it (agent_executions.evidence_id).';

comment on column toolsdb.evidence.evidence_id is 'Primary key: a random UUID.';

comment on column toolsdb.evidence.project_id is 'The project it belongs to.';

comment on column toolsdb.evidence.task_id is 'The task it is about, if any.';

comment on column toolsdb.evidence.source_type is
'code_analysis, test_result, ai_output, human_review, documentation, log, external or other.';

comment on column toolsdb.evidence.title is 'What it shows, 1-500 characters.';

comment on column toolsdb.evidence.content is 'The evidence itself or its summary (JSON object).';

comment on column toolsdb.evidence.source_url is 'Where it comes from (http or https URL), if anywhere.';

comment on column toolsdb.evidence.credibility_score is 'How reliable it is, from 0.00 to 1.00 (default 0.5).';

comment on column toolsdb.evidence.is_verified is 'True once someone attested it (verified_at is set with it).';

comment on column toolsdb.evidence.verified_by_user_id is 'Who verified it, if anyone.';

comment on column toolsdb.evidence.verified_at is 'When it was verified; set by the database.';

comment on column toolsdb.evidence.related_evidence is 'Evidence it supports or builds on (ids, never itself).';

comment on column toolsdb.evidence.contradicting_evidence is 'Evidence it contradicts (ids, never itself).';

comment on column toolsdb.evidence.tags is 'Free tags, GIN-indexed (tags @> array[...]).';

comment on column toolsdb.evidence.created_at is 'When it was recorded; set by trigger _100_timestamps.';

comment on column toolsdb.evidence.updated_at is 'When it last changed; set by trigger _100_timestamps.';

-- ---- schema/33_agent_executions.sql ----

create table if not exists toolsdb.agent_executions (
    execution_id uuid not null default gen_random_uuid(),
    agent_id uuid not null,
    task_id uuid not null,
    project_id uuid not null,
    agent_type text not null,
    agent_config jsonb not null default '{}',
    model_provider text,
    model_name text,
    status text not null default 'pending',
    input_tokens bigint not null default 0,
    output_tokens bigint not null default 0,
    cached_tokens bigint not null default 0,
    cost_usd numeric(14, 6),
    cost_is_given boolean not null default false,
    error_details jsonb,
    result jsonb,
    evidence_id uuid,
    started_at timestamptz,
    completed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint agent_executions_pkey primary key (execution_id),
    constraint agent_executions_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete restrict,
    constraint agent_executions_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint agent_executions_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint agent_executions_evidence_id_fkey foreign key (evidence_id)
    references toolsdb.evidence (evidence_id) on delete set null,
    constraint agent_type_length_is_valid check (char_length(agent_type) between 1 and 63),
    constraint agent_config_is_object check (jsonb_typeof(agent_config) = 'object'),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint status_is_valid check (
        status in ('pending', 'running', 'success', 'failure', 'timeout', 'cancelled')
    ),
    constraint tokens_are_not_negative check (input_tokens >= 0 and output_tokens >= 0 and cached_tokens >= 0),
    constraint cost_usd_is_not_negative check (cost_usd >= 0),
    constraint error_details_is_object check (jsonb_typeof(error_details) = 'object'),
    constraint started_at_matches_status check ((status = 'pending') = (started_at is null) or status = 'cancelled'),
    constraint completed_at_matches_status check (
        (status in ('success', 'failure', 'timeout', 'cancelled')) = (completed_at is not null)
    ),
    constraint completed_at_is_after_started_at check (completed_at >= started_at)
);

-- The two covering indexes serve the reports (repeatable/82_work_views.sql) per agent and
-- per project from the index alone, once vacuum has marked pages all-visible.
create index if not exists agent_executions_agent_id_idx on toolsdb.agent_executions (agent_id, created_at)
include (
    model_provider, model_name, status, started_at, completed_at, input_tokens, output_tokens, cached_tokens, cost_usd
);

create index if not exists agent_executions_evidence_id_idx on toolsdb.agent_executions (evidence_id);

create index if not exists agent_executions_task_id_idx on toolsdb.agent_executions (task_id);

create index if not exists agent_executions_project_id_idx on toolsdb.agent_executions (project_id, created_at)
include (agent_type, status, started_at, completed_at, input_tokens, output_tokens, cached_tokens, cost_usd);

-- Cost per day (toolsdb.cost_by_day) of one project over a date range.
create index if not exists agent_executions_project_id_completed_day_idx
on toolsdb.agent_executions (project_id, ((completed_at at time zone 'UTC')::date))
where completed_at is not null;

create index if not exists agent_executions_status_idx on toolsdb.agent_executions (status);

-- The newest run of each group of task_execution_summary (project, agent type, status),
-- one probe per group.
create index if not exists agent_executions_project_id_agent_type_status_idx
on toolsdb.agent_executions (project_id, agent_type, status, created_at);

comment on table toolsdb.agent_executions is
'One run of an agent on a task, with its tokens and cost (one table for the agent_executions of '
'engineering platforms and the task_executions of CI/CD task trackers). Status pending -> running '
'-> success, failure or timeout; pending or running -> cancelled. Drive it with '
'toolsdb.execution_create/start/log/complete/fail/time_out/cancel; the database sets the times and '
'the cost. The application sees its project''s runs only.';

comment on column toolsdb.agent_executions.execution_id is 'Primary key: a random UUID.';

comment on column toolsdb.agent_executions.agent_id is 'The agent that ran (retire agents, do not delete them).';

comment on column toolsdb.agent_executions.task_id is 'The task it worked on; runs go with their task.';

comment on column toolsdb.agent_executions.project_id is
'The task''s project, filled in by the database (for row-level security and reports).';

comment on column toolsdb.agent_executions.agent_type is
'The agent''s type when it ran (e.g. claude-code); copied from the agent unless given.';

comment on column toolsdb.agent_executions.agent_config is 'Configuration of this run (JSON object).';

comment on column toolsdb.agent_executions.model_provider is 'Model provider of the run; copied from the agent.';

comment on column toolsdb.agent_executions.model_name is 'Model of the run; copied from the agent; prices it.';

comment on column toolsdb.agent_executions.status is
'pending, running, success, failure, timeout or cancelled; moves only forward (see the table).';

comment on column toolsdb.agent_executions.input_tokens is 'Uncached input tokens used.';

comment on column toolsdb.agent_executions.output_tokens is 'Output tokens produced.';

comment on column toolsdb.agent_executions.cached_tokens is 'Cached input tokens read.';

comment on column toolsdb.agent_executions.cost_usd is
'Cost in USD: given by the caller, else computed at the end from the tokens at the price in force '
'when the run started (toolsdb.token_cost); null while running or when the model has no price.';

comment on column toolsdb.agent_executions.cost_is_given is 'True when the caller gave cost_usd.';

comment on column toolsdb.agent_executions.error_details is 'JSON object describing the failure, if any.';

comment on column toolsdb.agent_executions.result is 'What the run produced (JSON).';

comment on column toolsdb.agent_executions.evidence_id is 'Supporting evidence of the result, if any.';

comment on column toolsdb.agent_executions.started_at is 'When it started running; set by the database.';

comment on column toolsdb.agent_executions.completed_at is
'When it ended (success, failure, timeout or cancelled); set by the database; never before started_at.';

comment on column toolsdb.agent_executions.created_at is 'When it was created; set by trigger _100_timestamps.';

comment on column toolsdb.agent_executions.updated_at is 'When it last changed; set by trigger _100_timestamps.';

create table if not exists toolsdb.agent_execution_logs (
    log_id bigint generated always as identity,
    execution_id uuid not null,
    project_id uuid not null,
    logged_at timestamptz not null default clock_timestamp(),
    level text not null default 'info',
    message text not null,
    data jsonb not null default '{}',
    constraint agent_execution_logs_pkey primary key (log_id),
    constraint agent_execution_logs_execution_id_fkey foreign key (execution_id)
    references toolsdb.agent_executions (execution_id) on delete cascade,
    constraint agent_execution_logs_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint level_is_valid check (level in ('debug', 'info', 'warning', 'error')),
    constraint message_length_is_valid check (char_length(message) between 1 and 100000),
    constraint data_is_object check (jsonb_typeof(data) = 'object')
);

create index if not exists agent_execution_logs_execution_id_idx
on toolsdb.agent_execution_logs (execution_id, log_id);

create index if not exists agent_execution_logs_project_id_idx on toolsdb.agent_execution_logs (project_id);

comment on table toolsdb.agent_execution_logs is
'Log entries of agent executions, appended as a run goes (toolsdb.execution_log) and never '
'rewritten: UPDATE is refused. Not audited: high-volume and append-only. Entries go with their run.';

comment on column toolsdb.agent_execution_logs.log_id is 'Increasing id: the order of the entries.';

comment on column toolsdb.agent_execution_logs.execution_id is 'The run (toolsdb.agent_executions).';

comment on column toolsdb.agent_execution_logs.project_id is 'The run''s project, for row-level security.';

comment on column toolsdb.agent_execution_logs.logged_at is 'When the entry was written.';

comment on column toolsdb.agent_execution_logs.level is 'debug, info (default), warning or error.';

comment on column toolsdb.agent_execution_logs.message is 'The entry, 1-100,000 characters.';

comment on column toolsdb.agent_execution_logs.data is 'Structured data of the entry (JSON object).';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.agent_execution_logs', 'high-volume, append-only log entries of executions (never updated)')
on conflict (table_name) do nothing;

-- ---------------------------------------------------------------------------
-- Rollups of the runs (docs/work-tracking.md, "Rollups of the runs"): additive
-- rows kept by the statement triggers of repeatable/33_agent_executions.sql
-- and folded by toolsdb.maintain(); the reports read them instead of the runs.
-- ---------------------------------------------------------------------------

create table if not exists toolsdb.execution_rollups (
    rollup_id bigint generated always as identity,
    project_id uuid not null,
    agent_id uuid not null,
    agent_type text not null,
    model_provider text,
    model_name text,
    status text not null,
    executions bigint not null,
    timed_runs bigint not null,
    duration_seconds numeric not null,
    input_tokens numeric not null,
    output_tokens numeric not null,
    cached_tokens numeric not null,
    priced_runs bigint not null,
    cost_usd numeric not null,
    constraint execution_rollups_pkey primary key (rollup_id),
    constraint agent_type_length_is_valid check (char_length(agent_type) between 1 and 63),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint status_is_valid check (
        status in ('pending', 'running', 'success', 'failure', 'timeout', 'cancelled')
    )
);

create index if not exists execution_rollups_project_id_idx on toolsdb.execution_rollups (project_id);

create index if not exists execution_rollups_agent_id_idx on toolsdb.execution_rollups (agent_id);

comment on table toolsdb.execution_rollups is
'Rollups of toolsdb.agent_executions per project, agent, agent type, provider, model and status: '
'the figures of a group are the sums of its rows. The triggers _800_execution_rollups_* append a '
'row per group each change of runs moves (+ the new rows, - the old ones); toolsdb.maintain() folds '
'each group into one row (toolsdb.execution_rollups_fold()). task_execution_summary, '
'agent_performance and project_health read it. Row-level security as on the runs. Derived data: '
'rebuild with toolsdb.execution_rollups_rebuild() after writes that skipped triggers.';

comment on column toolsdb.execution_rollups.rollup_id is 'Primary key (identity): one appended or folded row.';

comment on column toolsdb.execution_rollups.project_id is 'The runs'' project.';

comment on column toolsdb.execution_rollups.agent_id is 'The runs'' agent.';

comment on column toolsdb.execution_rollups.agent_type is 'The runs'' agent type.';

comment on column toolsdb.execution_rollups.model_provider is 'The runs'' model provider (null when unknown).';

comment on column toolsdb.execution_rollups.model_name is 'The runs'' model (null when unknown).';

comment on column toolsdb.execution_rollups.status is 'The runs'' status.';

comment on column toolsdb.execution_rollups.executions is
'How many runs this row adds to the group (negative: removes).';

comment on column toolsdb.execution_rollups.timed_runs is 'How many of them have both started_at and completed_at.';

comment on column toolsdb.execution_rollups.duration_seconds is
'Sum of completed_at - started_at of those timed runs, in seconds (exact).';

comment on column toolsdb.execution_rollups.input_tokens is 'Sum of their input_tokens.';

comment on column toolsdb.execution_rollups.output_tokens is 'Sum of their output_tokens.';

comment on column toolsdb.execution_rollups.cached_tokens is 'Sum of their cached_tokens.';

comment on column toolsdb.execution_rollups.priced_runs is 'How many of them have a cost_usd.';

comment on column toolsdb.execution_rollups.cost_usd is 'Sum of their cost_usd (0 when none is priced).';

create table if not exists toolsdb.execution_duration_rollups (
    rollup_id bigint generated always as identity,
    agent_id uuid not null,
    model_provider text,
    model_name text,
    bucket integer not null,
    runs bigint not null,
    constraint execution_duration_rollups_pkey primary key (rollup_id),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200)
);

create index if not exists execution_duration_rollups_agent_id_idx
on toolsdb.execution_duration_rollups (agent_id);

comment on table toolsdb.execution_duration_rollups is
'How long the timed runs of toolsdb.agent_executions took, per agent, provider, model and '
'duration bucket (toolsdb_private.metric_bucket of the seconds: 1% relative accuracy), across '
'projects: the count of a bucket is the sum of its rows. Kept and folded with '
'toolsdb.execution_rollups; agent_performance interpolates p50 and p95 from it for agents with '
'many runs, for callers who see every run. Not row-secured, so hidden from the application role.';

comment on column toolsdb.execution_duration_rollups.rollup_id is
'Primary key (identity): one appended or folded row.';

comment on column toolsdb.execution_duration_rollups.agent_id is 'The runs'' agent.';

comment on column toolsdb.execution_duration_rollups.model_provider is
'The runs'' model provider (null when unknown).';

comment on column toolsdb.execution_duration_rollups.model_name is 'The runs'' model (null when unknown).';

comment on column toolsdb.execution_duration_rollups.bucket is
'The duration bucket, toolsdb_private.metric_bucket(seconds); buckets order like durations.';

comment on column toolsdb.execution_duration_rollups.runs is
'How many runs this row adds to the bucket (negative: removes).';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
(
    'toolsdb.execution_rollups',
    'derived from toolsdb.agent_executions by triggers, rebuilt at will: the runs are the record'
),
(
    'toolsdb.execution_duration_rollups',
    'derived from toolsdb.agent_executions by triggers, rebuilt at will: the runs are the record'
)
on conflict (table_name) do nothing;

-- ---- schema/34_pr_validations.sql ----

create table if not exists toolsdb.pr_validations (
    validation_id uuid not null default gen_random_uuid(),
    task_id uuid not null,
    execution_id uuid,
    project_id uuid not null,
    pr_number integer not null,
    repository text not null,
    branch_name text,
    status text not null default 'pending',
    validation_results jsonb not null default '{}',
    webhook_payload jsonb,
    started_at timestamptz,
    completed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint pr_validations_pkey primary key (validation_id),
    constraint pr_validations_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint pr_validations_execution_id_fkey foreign key (execution_id)
    references toolsdb.agent_executions (execution_id) on delete set null,
    constraint pr_validations_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint pr_number_is_positive check (pr_number > 0),
    constraint repository_is_valid check (
        repository ~ '^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$' and char_length(repository) <= 200
    ),
    constraint branch_name_length_is_valid check (char_length(branch_name) between 1 and 255),
    constraint status_is_valid check (status in ('pending', 'running', 'passed', 'failed', 'cancelled')),
    constraint validation_results_is_object check (jsonb_typeof(validation_results) = 'object'),
    constraint webhook_payload_is_object check (jsonb_typeof(webhook_payload) = 'object'),
    constraint completed_at_matches_status check (
        (status in ('passed', 'failed', 'cancelled')) = (completed_at is not null)
    ),
    constraint completed_at_is_after_started_at check (completed_at >= started_at)
);

create index if not exists pr_validations_task_id_idx on toolsdb.pr_validations (task_id);

create index if not exists pr_validations_execution_id_idx on toolsdb.pr_validations (execution_id);

create index if not exists pr_validations_project_id_idx on toolsdb.pr_validations (project_id, created_at);

create index if not exists pr_validations_repository_pr_number_idx
on toolsdb.pr_validations (repository, pr_number);

comment on table toolsdb.pr_validations is
'Validations of a pull request of a task: each check (tests, lint, ...) records its result in '
'validation_results, then the validation is settled: passed when every check passed. Status '
'pending -> running (first check) -> passed or failed; pending or running -> cancelled.';

comment on column toolsdb.pr_validations.validation_id is 'Primary key: a random UUID.';

comment on column toolsdb.pr_validations.task_id is 'The task whose pull request is validated.';

comment on column toolsdb.pr_validations.execution_id is 'The agent run that produced the pull request, if any.';

comment on column toolsdb.pr_validations.project_id is 'The task''s project, filled in by the database.';

comment on column toolsdb.pr_validations.pr_number is 'Pull request number.';

comment on column toolsdb.pr_validations.repository is 'Repository as owner/name, e.g. example/toolsdb.';

comment on column toolsdb.pr_validations.branch_name is 'The pull request''s branch.';

comment on column toolsdb.pr_validations.status is 'pending, running, passed, failed or cancelled.';

comment on column toolsdb.pr_validations.validation_results is
'Results per check: {"tests": {"passed": true, "details": {...}, "recorded_at": "..."}, "lint": ...}.';

comment on column toolsdb.pr_validations.webhook_payload is 'The webhook that triggered it (JSON object), if any.';

comment on column toolsdb.pr_validations.started_at is 'When the first check reported; set by the database.';

comment on column toolsdb.pr_validations.completed_at is 'When it was settled or cancelled; set by the database.';

comment on column toolsdb.pr_validations.created_at is 'When it was created; set by trigger _100_timestamps.';

comment on column toolsdb.pr_validations.updated_at is 'When it last changed; set by trigger _100_timestamps.';

-- ---- schema/35_bug_escalations.sql ----

create table if not exists toolsdb.bug_escalations (
    bug_id text not null,
    error_type text not null,
    error_message text not null,
    frequency integer not null default 1,
    user_impact text not null,
    status text not null default 'pending',
    first_seen_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    assigned_to uuid,
    reopened_count integer not null default 0,
    resolved_at timestamptz,
    escalation_priority integer generated always as (
        case user_impact when 'critical' then 300 when 'high' then 200 when 'medium' then 100 else 0 end
        + least(99, floor(10 * log(2, frequency))::integer)
    ) stored,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint bug_escalations_pkey primary key (bug_id),
    constraint bug_escalations_assigned_to_fkey foreign key (assigned_to)
    references toolsdb.users (user_id) on delete set null,
    constraint bug_id_is_valid check (bug_id ~ '^[[:graph:]]+$' and char_length(bug_id) <= 200),
    constraint error_type_length_is_valid check (char_length(error_type) between 1 and 200),
    constraint error_message_length_is_valid check (char_length(error_message) between 1 and 10000),
    constraint frequency_is_positive check (frequency >= 1),
    constraint user_impact_is_valid check (user_impact in ('low', 'medium', 'high', 'critical')),
    constraint status_is_valid check (status in ('pending', 'acknowledged', 'resolved')),
    constraint last_seen_after_first check (last_seen_at >= first_seen_at),
    constraint reopened_count_is_not_negative check (reopened_count >= 0),
    constraint resolved_at_matches_status check ((status = 'resolved') = (resolved_at is not null))
);

create index if not exists bug_escalations_assigned_to_idx on toolsdb.bug_escalations (assigned_to);

create index if not exists bug_escalations_queue_idx on toolsdb.bug_escalations (
    escalation_priority desc, last_seen_at desc
) where status <> 'resolved';

comment on table toolsdb.bug_escalations is
'Bugs to escalate, one per bug id: how often they occur, whom they hurt, who handles them. Report '
'with toolsdb.report_bug() (counts an occurrence; reopens a resolved bug), move with '
'toolsdb.bug_escalation_move(); the queue in priority order is the view toolsdb.escalation_queue.';

comment on column toolsdb.bug_escalations.bug_id is
'The reporter''s identifier of the bug (unique), 1-200 visible characters.';

comment on column toolsdb.bug_escalations.error_type is 'Classification, e.g. CriticalError.';

comment on column toolsdb.bug_escalations.error_message is 'The latest message reported, 1-10,000 characters.';

comment on column toolsdb.bug_escalations.frequency is 'How many times it was reported.';

comment on column toolsdb.bug_escalations.user_impact is 'low, medium, high or critical: the highest reported.';

comment on column toolsdb.bug_escalations.status is
'pending, acknowledged or resolved; moves: pending -> acknowledged | resolved, acknowledged -> '
'pending | resolved, resolved -> pending (a reopening).';

comment on column toolsdb.bug_escalations.first_seen_at is 'First report.';

comment on column toolsdb.bug_escalations.last_seen_at is 'Latest report.';

comment on column toolsdb.bug_escalations.assigned_to is 'The user handling it, if any.';

comment on column toolsdb.bug_escalations.reopened_count is 'How many times it came back after being resolved.';

comment on column toolsdb.bug_escalations.resolved_at is 'When it was resolved; set exactly while resolved.';

comment on column toolsdb.bug_escalations.escalation_priority is
'Derived: 100 x impact rank (low 0, medium 1, high 2, critical 3) + min(99, floor(10 x log2(frequency))): '
'impact always dominates, frequency orders within an impact (1 -> 0, 2 -> 10, 10 -> 33, 1000 -> 99).';

comment on column toolsdb.bug_escalations.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.bug_escalations.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

-- ---- schema/36_error_logs.sql ----

create table if not exists toolsdb.error_logs (
    error_id uuid not null default gen_random_uuid(),
    task_id uuid,
    execution_id uuid,
    project_id uuid,
    error_type text not null,
    error_message text not null,
    error_stack text,
    context jsonb not null default '{}',
    recovery_attempts integer not null default 0,
    resolved boolean not null default false,
    resolved_at timestamptz,
    bug_id text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint error_logs_pkey primary key (error_id),
    constraint error_logs_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete set null,
    constraint error_logs_execution_id_fkey foreign key (execution_id)
    references toolsdb.agent_executions (execution_id) on delete set null,
    constraint error_logs_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint error_logs_bug_id_fkey foreign key (bug_id)
    references toolsdb.bug_escalations (bug_id) on delete set null,
    constraint error_type_is_valid check (
        error_type in (
            'database', 'api', 'validation', 'network', 'timeout', 'authentication', 'authorization', 'system'
        )
    ),
    constraint error_message_length_is_valid check (char_length(error_message) between 1 and 10000),
    constraint error_stack_length_is_valid check (char_length(error_stack) between 1 and 100000),
    constraint context_is_object check (jsonb_typeof(context) = 'object'),
    constraint recovery_attempts_is_valid check (recovery_attempts between 0 and 1000),
    constraint resolved_at_matches_resolved check (resolved = (resolved_at is not null))
);

create index if not exists error_logs_task_id_idx on toolsdb.error_logs (task_id);

create index if not exists error_logs_execution_id_idx on toolsdb.error_logs (execution_id);

create index if not exists error_logs_project_id_idx on toolsdb.error_logs (project_id, created_at);

create index if not exists error_logs_error_type_resolved_idx on toolsdb.error_logs (error_type, resolved);

create index if not exists error_logs_bug_id_idx on toolsdb.error_logs (bug_id);

comment on table toolsdb.error_logs is
'Errors met by agents and tasks, from the closed list of types of CI/CD task trackers, with '
'recovery attempts: toolsdb.error_record() logs one, toolsdb.error_record_recovery() counts an '
'attempt and resolves the error when it succeeds.';

comment on column toolsdb.error_logs.error_id is 'Primary key: a random UUID.';

comment on column toolsdb.error_logs.task_id is 'The task it happened on, if any.';

comment on column toolsdb.error_logs.execution_id is 'The agent run it happened in, if any.';

comment on column toolsdb.error_logs.project_id is
'The project, filled in from the run or task; null for errors outside any project (the '
'application then does not see them).';

comment on column toolsdb.error_logs.error_type is
'database, api, validation, network, timeout, authentication, authorization or system.';

comment on column toolsdb.error_logs.error_message is 'The message, 1-10,000 characters.';

comment on column toolsdb.error_logs.error_stack is 'The stack trace, if any.';

comment on column toolsdb.error_logs.context is 'Anything that helps reproduce it (JSON object).';

comment on column toolsdb.error_logs.recovery_attempts is 'How many recoveries were tried (0-1000).';

comment on column toolsdb.error_logs.resolved is 'True once a recovery succeeded or it was resolved by hand.';

comment on column toolsdb.error_logs.resolved_at is 'When it was resolved; set by the database.';

comment on column toolsdb.error_logs.bug_id is 'The escalated bug this error is an occurrence of, if any.';

comment on column toolsdb.error_logs.created_at is 'When it was logged; set by trigger _100_timestamps.';

comment on column toolsdb.error_logs.updated_at is 'When it last changed; set by trigger _100_timestamps.';

-- ---- schema/37_task_discussion.sql ----

create table if not exists toolsdb.task_comments (
    comment_id uuid not null default gen_random_uuid(),
    task_id uuid not null,
    project_id uuid not null,
    author_user_id uuid,
    author_agent_id uuid,
    body text not null,
    is_ai_generated boolean not null default false,
    ai_metadata jsonb not null default '{}',
    github_comment_id bigint,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint task_comments_pkey primary key (comment_id),
    constraint task_comments_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint task_comments_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint task_comments_author_user_id_fkey foreign key (author_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint task_comments_author_agent_id_fkey foreign key (author_agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint body_length_is_valid check (char_length(body) between 1 and 100000),
    constraint one_author_at_most check (num_nonnulls(author_user_id, author_agent_id) <= 1),
    constraint ai_metadata_is_object check (jsonb_typeof(ai_metadata) = 'object'),
    constraint github_comment_id_is_positive check (github_comment_id > 0)
);

create index if not exists task_comments_task_id_idx on toolsdb.task_comments (task_id, created_at);

create index if not exists task_comments_project_id_idx on toolsdb.task_comments (project_id);

create index if not exists task_comments_author_user_id_idx on toolsdb.task_comments (author_user_id);

create index if not exists task_comments_author_agent_id_idx on toolsdb.task_comments (author_agent_id);

create unique index if not exists task_comments_project_id_github_comment_id_key
on toolsdb.task_comments (project_id, github_comment_id);

comment on table toolsdb.task_comments is
'Comments on a task, written by a user or an agent (at most one of the two; none once the author '
'is deleted).';

comment on column toolsdb.task_comments.comment_id is 'Primary key: a random UUID.';

comment on column toolsdb.task_comments.task_id is 'The task; comments go with it.';

comment on column toolsdb.task_comments.project_id is 'The task''s project, filled in by the database.';

comment on column toolsdb.task_comments.author_user_id is 'The user who wrote it, if a user did.';

comment on column toolsdb.task_comments.author_agent_id is 'The agent that wrote it, if an agent did.';

comment on column toolsdb.task_comments.body is 'The comment (Markdown), 1-100,000 characters.';

comment on column toolsdb.task_comments.is_ai_generated is
'True when an AI wrote it: always for a comment of an agent (set by the database, kept when the '
'agent is deleted), or set by the writer for a user''s comment drafted by an AI. Default false.';

comment on column toolsdb.task_comments.ai_metadata is
'JSON object: how an AI generated it (model, prompt version, tokens, ...); default {}.';

comment on column toolsdb.task_comments.github_comment_id is
'The GitHub comment it mirrors, if any; unique within the project (upsert on it when syncing).';

comment on column toolsdb.task_comments.created_at is 'When it was written; set by trigger _100_timestamps.';

comment on column toolsdb.task_comments.updated_at is 'When it was last edited; set by trigger _100_timestamps.';

create table if not exists toolsdb.task_attachments (
    attachment_id uuid not null default gen_random_uuid(),
    task_id uuid not null,
    project_id uuid not null,
    file_name text not null,
    content_type text not null default 'application/octet-stream',
    size_bytes bigint not null,
    storage_path text not null,
    checksum_sha256 text,
    uploaded_by_user_id uuid,
    uploaded_by_agent_id uuid,
    is_evidence boolean not null default false,
    evidence_id uuid,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint task_attachments_pkey primary key (attachment_id),
    constraint task_attachments_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint task_attachments_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint task_attachments_uploaded_by_user_id_fkey foreign key (uploaded_by_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint task_attachments_uploaded_by_agent_id_fkey foreign key (uploaded_by_agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint task_attachments_evidence_id_fkey foreign key (evidence_id)
    references toolsdb.evidence (evidence_id) on delete set null,
    constraint file_name_is_valid check (char_length(file_name) between 1 and 255 and file_name !~ '[/\\]'),
    constraint content_type_is_valid check (
        content_type ~ '^[a-z]+/[A-Za-z0-9.+_-]+$' and char_length(content_type) <= 255
    ),
    constraint size_bytes_is_valid check (size_bytes >= 0),
    constraint storage_path_is_valid check (
        (storage_path ~ '^(https?|s3|gs|file)://\S+$' or storage_path ~ '^[A-Za-z0-9._-][^\s\\]*$')
        and storage_path !~ '(^|/)\.\.(/|$)' and char_length(storage_path) <= 2048
    ),
    constraint checksum_sha256_is_valid check (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    constraint one_uploader_at_most check (num_nonnulls(uploaded_by_user_id, uploaded_by_agent_id) <= 1),
    constraint evidence_link_is_marked check (evidence_id is null or is_evidence)
);

create index if not exists task_attachments_task_id_idx on toolsdb.task_attachments (task_id);

create index if not exists task_attachments_project_id_idx on toolsdb.task_attachments (project_id);

create index if not exists task_attachments_uploaded_by_user_id_idx on toolsdb.task_attachments (uploaded_by_user_id);

create index if not exists task_attachments_uploaded_by_agent_id_idx
on toolsdb.task_attachments (uploaded_by_agent_id);

create index if not exists task_attachments_evidence_id_idx on toolsdb.task_attachments (evidence_id);

create index if not exists task_attachments_is_evidence_idx
on toolsdb.task_attachments (task_id) where is_evidence;

comment on table toolsdb.task_attachments is
'Files attached to a task: stored elsewhere (storage_path), described here with size, type and '
'checksum; an attachment may be evidence (is_evidence, evidence_id).';

comment on column toolsdb.task_attachments.attachment_id is 'Primary key: a random UUID.';

comment on column toolsdb.task_attachments.task_id is 'The task; attachments go with it.';

comment on column toolsdb.task_attachments.project_id is 'The task''s project, filled in by the database.';

comment on column toolsdb.task_attachments.file_name is 'File name without a path, 1-255 characters.';

comment on column toolsdb.task_attachments.content_type is 'MIME type, e.g. image/png.';

comment on column toolsdb.task_attachments.size_bytes is 'Size in bytes.';

comment on column toolsdb.task_attachments.storage_path is
'Where the file is: an http(s), s3, gs or file URL, or an object key relative to the platform''s '
'storage (e.g. tasks/42/trace.log; no leading slash, no .. segment), at most 2048 characters.';

comment on column toolsdb.task_attachments.checksum_sha256 is 'SHA-256 of the content, lowercase hex, if known.';

comment on column toolsdb.task_attachments.uploaded_by_user_id is 'The user who attached it, if a user did.';

comment on column toolsdb.task_attachments.uploaded_by_agent_id is 'The agent that attached it, if an agent did.';

comment on column toolsdb.task_attachments.is_evidence is
'True when the file is evidence for the task: set by the database when evidence_id is given, kept '
'when that evidence is deleted; partially indexed (where is_evidence).';

comment on column toolsdb.task_attachments.evidence_id is
'The evidence entry (toolsdb.evidence) the file supports, of the same project; null when none '
'or once the evidence is deleted.';

comment on column toolsdb.task_attachments.created_at is 'When it was attached; set by trigger _100_timestamps.';

comment on column toolsdb.task_attachments.updated_at is 'When it last changed; set by trigger _100_timestamps.';

-- ---- schema/38_activity_feed.sql ----

create table if not exists toolsdb.activity_feed (
    activity_id bigint generated always as identity,
    project_id uuid not null,
    task_id uuid,
    user_id uuid,
    agent_id uuid,
    activity_type text not null,
    summary text not null,
    metadata jsonb not null default '{}',
    is_public boolean not null default true,
    created_at timestamptz not null default now(),
    constraint activity_feed_pkey primary key (activity_id),
    constraint activity_feed_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint activity_feed_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint activity_feed_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint activity_feed_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint activity_type_is_valid check (
        activity_type ~ '^[a-z][a-z0-9_.]*$' and char_length(activity_type) <= 100
    ),
    constraint summary_length_is_valid check (char_length(summary) between 1 and 2000),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object')
);

create index if not exists activity_feed_project_id_idx on toolsdb.activity_feed (project_id, created_at desc);

create index if not exists activity_feed_task_id_idx on toolsdb.activity_feed (task_id, created_at desc);

create index if not exists activity_feed_user_id_idx on toolsdb.activity_feed (user_id);

create index if not exists activity_feed_agent_id_idx on toolsdb.activity_feed (agent_id);

create index if not exists activity_feed_created_at_idx on toolsdb.activity_feed using brin (created_at);

comment on table toolsdb.activity_feed is
'What happened in a project, newest first, for people to read: task created, pull request opened, '
'run failed, ... Append-only and high-volume: not audited, never updated.';

comment on column toolsdb.activity_feed.activity_id is 'Increasing id.';

comment on column toolsdb.activity_feed.project_id is 'The project it happened in.';

comment on column toolsdb.activity_feed.task_id is 'The task concerned, if any.';

comment on column toolsdb.activity_feed.user_id is 'The user who acted, if a user did.';

comment on column toolsdb.activity_feed.agent_id is 'The agent that acted, if an agent did.';

comment on column toolsdb.activity_feed.activity_type is
'What kind of thing happened, dotted snake_case (task.created).';

comment on column toolsdb.activity_feed.summary is 'One line for people, 1-2000 characters.';

comment on column toolsdb.activity_feed.metadata is 'Details (JSON object).';

comment on column toolsdb.activity_feed.is_public is 'False for entries only project members should see.';

comment on column toolsdb.activity_feed.created_at is 'When it happened.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.activity_feed', 'high-volume, append-only feed for people; its rows are the record')
on conflict (table_name) do nothing;

-- ---- schema/40_sessions.sql ----

-- The rules on the text and JSON columns written by every hook event are
-- domains, not table CHECKs: PostgreSQL caches a domain's checks per
-- connection, where it reads a table's CHECKs back from the catalog and plans
-- them again at every statement that writes the table (hook_ingest() writes
-- sessions and events at every event: docs/runtime.md, "What an event
-- costs"). session_id keeps its table CHECK: row-level security compares it
-- as text. hook_event_name is also events.event_type (schema/43_events.sql).
do $domains$
begin
    if pg_catalog.to_regtype('toolsdb.session_path') is null then
        create domain toolsdb.session_path as text
        constraint session_path_length_is_valid check (char_length(value) between 1 and 4096);
    end if;
    if pg_catalog.to_regtype('toolsdb.permission_mode') is null then
        create domain toolsdb.permission_mode as text
        constraint permission_mode_is_valid check (value ~ '^[A-Za-z][A-Za-z0-9_-]*$' and char_length(value) <= 50);
    end if;
    if pg_catalog.to_regtype('toolsdb.git_branch') is null then
        create domain toolsdb.git_branch as text
        constraint git_branch_length_is_valid check (char_length(value) between 1 and 255);
    end if;
    if pg_catalog.to_regtype('toolsdb.terminal_type') is null then
        create domain toolsdb.terminal_type as text
        constraint terminal_type_is_valid check (value ~ '^[a-z][a-z0-9_.-]*$' and char_length(value) <= 50);
    end if;
    if pg_catalog.to_regtype('toolsdb.terminal_info') is null then
        create domain toolsdb.terminal_info as jsonb
        constraint terminal_info_is_object check (jsonb_typeof(value) = 'object');
    end if;
    if pg_catalog.to_regtype('toolsdb.session_metadata') is null then
        create domain toolsdb.session_metadata as jsonb
        constraint metadata_is_object check (jsonb_typeof(value) = 'object');
    end if;
    if pg_catalog.to_regtype('toolsdb.hook_event_name') is null then
        create domain toolsdb.hook_event_name as text
        constraint hook_event_name_is_valid check (value ~ '^[[:graph:]]+$' and char_length(value) <= 100);
    end if;
    if pg_catalog.to_regtype('toolsdb.message_count') is null then
        create domain toolsdb.message_count as integer
        constraint message_count_is_not_negative check (value >= 0);
    end if;
    if pg_catalog.to_regtype('toolsdb.end_reason') is null then
        create domain toolsdb.end_reason as text
        constraint end_reason_length_is_valid check (char_length(value) between 1 and 100);
    end if;
end
$domains$;

comment on domain toolsdb.session_path is
'A path of 1 to 4,096 characters, in toolsdb.sessions (cwd, transcript_path).';

comment on domain toolsdb.permission_mode is
'A permission mode as the agent reports it (a letter, then letters, digits, _ or -; at most 50), in '
'toolsdb.sessions.';

comment on domain toolsdb.git_branch is 'A git branch name of 1 to 255 characters, in toolsdb.sessions.';

comment on domain toolsdb.terminal_type is
'A lowercase terminal name (^[a-z][a-z0-9_.-]*$, at most 50 characters), in toolsdb.sessions.';

comment on domain toolsdb.terminal_info is 'Terminal details, a JSON object, in toolsdb.sessions.';

comment on domain toolsdb.session_metadata is 'A JSON object, in toolsdb.sessions (metadata).';

comment on domain toolsdb.hook_event_name is
'A hook event name as sent (printable, no spaces, at most 100 characters), in toolsdb.events '
'(event_type) and toolsdb.sessions (last_event_type).';

comment on domain toolsdb.message_count is 'A count of messages, not negative, in toolsdb.sessions.';

comment on domain toolsdb.end_reason is 'Why a session ended, 1 to 100 characters, in toolsdb.sessions.';

-- Updated on every hook event: vacuum and analyze early (docs/operations.md).
create table if not exists toolsdb.sessions (
    session_id text not null,
    user_id uuid,
    agent_id uuid,
    project_id uuid,
    cwd toolsdb.session_path,
    transcript_path toolsdb.session_path,
    permission_mode toolsdb.permission_mode,
    git_branch toolsdb.git_branch,
    terminal_type toolsdb.terminal_type,
    terminal_info toolsdb.terminal_info not null default '{}',
    metadata toolsdb.session_metadata not null default '{}',
    last_event_type toolsdb.hook_event_name,
    message_count toolsdb.message_count not null default 0,
    is_idle boolean not null default false,
    started_at timestamptz not null default now(),
    last_activity_at timestamptz not null default now(),
    ended_at timestamptz,
    end_reason toolsdb.end_reason,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint sessions_pkey primary key (session_id),
    constraint sessions_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint sessions_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint sessions_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete set null,
    constraint session_id_is_valid check (char_length(session_id) between 1 and 200 and session_id !~ '[[:cntrl:]]'),
    constraint ended_after_start check (ended_at >= started_at),
    constraint active_after_start check (last_activity_at >= started_at),
    constraint end_reason_needs_end check (end_reason is null or ended_at is not null)
) with (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 50,
    autovacuum_analyze_scale_factor = 0.05
);

create index if not exists sessions_user_id_idx on toolsdb.sessions (user_id);

create index if not exists sessions_agent_id_idx on toolsdb.sessions (agent_id);

create index if not exists sessions_project_id_idx on toolsdb.sessions (project_id);

create index if not exists sessions_active_idx on toolsdb.sessions (last_activity_at desc)
where ended_at is null;

comment on table toolsdb.sessions is
'Agent sessions (of hooks and of agent frameworks): one row per session id the agent gives (Claude '
'Code''s session_id), with where it works, its git branch and terminal, its activity and whether '
'it waits for input. Written by toolsdb.hook_ingest() on every hook event, or by create_session(). '
'Row-level security: the application sees only the session of toolsdb.session_id.';

comment on column toolsdb.sessions.session_id is
'Primary key: the session id exactly as the agent gives it: 1-200 characters of any script, no '
'control characters.';

comment on column toolsdb.sessions.user_id is 'The user the session works for, if known.';

comment on column toolsdb.sessions.agent_id is 'The registered agent running the session, if known.';

comment on column toolsdb.sessions.project_id is 'The project the session works on, if known.';

comment on column toolsdb.sessions.cwd is 'Working directory of the agent (latest seen), at most 4096 characters.';

comment on column toolsdb.sessions.transcript_path is
'Path of the agent''s conversation transcript file (latest seen).';

comment on column toolsdb.sessions.permission_mode is
'Permission mode the agent reported (Claude Code: default, plan, acceptEdits, bypassPermissions, ...).';

comment on column toolsdb.sessions.git_branch is 'Git branch checked out in cwd when last seen.';

comment on column toolsdb.sessions.terminal_type is 'Terminal the agent runs in: tmux, vscode, iterm, ... (lowercase).';

comment on column toolsdb.sessions.terminal_info is
'Terminal details as a JSON object, e.g. {"pane": "0:0.0"} or the TERM_PROGRAM variables.';

comment on column toolsdb.sessions.metadata is 'Anything else about the session (JSON object).';

comment on column toolsdb.sessions.last_event_type is 'Type of the last hook event seen (hook_event_name).';

comment on column toolsdb.sessions.message_count is
'How many messages were ever added to the session (a deleted one still counts: positions are '
'never reused); toolsdb.messages takes its next position from here.';

comment on column toolsdb.sessions.is_idle is
'True while the agent waits for the user (idle_prompt notification); false again on the next event '
'of a working turn (prompt, tool use, permission request, subagent, compaction; docs/claude-code.md).';

comment on column toolsdb.sessions.started_at is 'When the session was first seen.';

comment on column toolsdb.sessions.last_activity_at is
'When the session was last active (any event; once it has ended, only a SessionStart that reopens it).';

comment on column toolsdb.sessions.ended_at is 'When the session ended (SessionEnd), null while active.';

comment on column toolsdb.sessions.end_reason is
'Why it ended, as the agent said (clear, logout, prompt_input_exit, other).';

comment on column toolsdb.sessions.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.sessions.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.sessions', 'activity bookkeeping touched by every hook event; toolsdb.events keeps the raw record of each')
on conflict (table_name) do nothing;

-- ---- schema/41_messages.sql ----

create table if not exists toolsdb.messages (
    message_id uuid not null default gen_random_uuid(),
    session_id text not null,
    position integer not null,
    role text not null,
    content text not null default '',
    tool_calls jsonb not null default '[]',
    tokens integer,
    metadata jsonb not null default '{}',
    created_at timestamptz not null default now(),
    kind text,
    source_uuid uuid,
    parent_uuid uuid,
    logical_parent_uuid uuid,
    occurred_at timestamptz,
    model text,
    api_message_id text,
    request_id text,
    stop_reason text,
    is_sidechain boolean not null default false,
    subagent_id text,
    constraint messages_pkey primary key (message_id),
    constraint messages_session_id_position_key unique (session_id, position),
    constraint messages_session_id_source_uuid_key unique (session_id, source_uuid),
    constraint messages_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint position_is_positive check (position >= 1),
    constraint role_is_valid check (role in ('system', 'user', 'assistant', 'tool')),
    constraint content_length_is_valid check (char_length(content) <= 1000000),
    constraint tool_calls_is_array check (jsonb_typeof(tool_calls) = 'array'),
    constraint tokens_is_not_negative check (tokens >= 0),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object'),
    constraint kind_is_valid check (kind in (
        'prompt', 'text', 'thinking', 'tool_use', 'tool_result', 'compact_boundary', 'compact_summary', 'api_error'
    )),
    constraint model_length_is_valid check (char_length(model) between 1 and 200),
    constraint api_message_id_length_is_valid check (char_length(api_message_id) between 1 and 200),
    constraint request_id_length_is_valid check (char_length(request_id) between 1 and 200),
    constraint stop_reason_length_is_valid check (char_length(stop_reason) between 1 and 100),
    constraint subagent_id_length_is_valid check (char_length(subagent_id) between 1 and 200)
);

comment on table toolsdb.messages is
'The messages of an agent session in order: who spoke (role), what was said, the tool calls made '
'and the tokens used. position is assigned by the database, gapless per session. Row-level '
'security: the application sees only the messages of toolsdb.session_id.';

comment on column toolsdb.messages.message_id is 'Primary key: a random UUID.';

comment on column toolsdb.messages.session_id is 'The session (toolsdb.sessions); deleting it deletes its messages.';

comment on column toolsdb.messages.position is
'Order within the session, 1, 2, 3, ... without gaps; set by trigger _050_position, never changed.';

comment on column toolsdb.messages.role is 'Who produced it: system, user, assistant or tool.';

comment on column toolsdb.messages.content is 'The text, at most 1,000,000 characters.';

comment on column toolsdb.messages.tool_calls is
'Tool calls the message made, a JSON array, e.g. [{"name": "Edit", "input": {...}}]; default [].';

comment on column toolsdb.messages.tokens is 'Tokens the message counted, if known.';

comment on column toolsdb.messages.metadata is 'Anything else (channel payload, model, ...), a JSON object.';

comment on column toolsdb.messages.created_at is 'When the message was stored.';

comment on column toolsdb.messages.kind is
'For a line of a Claude Code transcript, what it is: prompt, text, thinking, tool_use, '
'tool_result, compact_boundary, compact_summary or api_error; null for messages written otherwise.';

comment on column toolsdb.messages.source_uuid is
'The transcript line''s uuid; unique per session, so importing a line again adds nothing.';

comment on column toolsdb.messages.parent_uuid is 'The line''s parentUuid: the line it follows in the conversation.';

comment on column toolsdb.messages.logical_parent_uuid is
'logicalParentUuid: after a compaction, the line it follows logically.';

comment on column toolsdb.messages.occurred_at is
'The line''s timestamp: when it was said (created_at is when it was stored).';

comment on column toolsdb.messages.model is 'The model that wrote it (assistant lines).';

comment on column toolsdb.messages.api_message_id is
'The API response''s message.id (assistant lines; several lines can share it).';

comment on column toolsdb.messages.request_id is 'The API request''s requestId (assistant lines).';

comment on column toolsdb.messages.stop_reason is 'message.stop_reason, on the last line of a response.';

comment on column toolsdb.messages.is_sidechain is 'True for a subagent''s line (isSidechain).';

comment on column toolsdb.messages.subagent_id is 'The subagent (agentId) whose line it is, if any.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.messages', 'conversation content: the rows are the record, and an immutable copy would defeat deleting it')
on conflict (table_name) do nothing;

-- ---- schema/42_memories.sql ----

create table if not exists toolsdb.memories (
    memory_id uuid not null default gen_random_uuid(),
    agent_id uuid not null,
    user_id uuid,
    key text not null,
    content text not null,
    metadata jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint memories_pkey primary key (memory_id),
    constraint memories_agent_id_user_id_key_key unique nulls not distinct (agent_id, user_id, key),
    constraint memories_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete cascade,
    constraint memories_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete cascade,
    constraint key_is_valid check (key ~ '^[[:graph:]]([[:graph:] ]{0,198}[[:graph:]])?$'),
    constraint content_length_is_valid check (char_length(content) <= 100000),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object')
);

create index if not exists memories_user_id_idx on toolsdb.memories (user_id);

comment on table toolsdb.memories is
'What an agent remembers: an entry per agent, user and key, where a null user is the agent''s '
'global memory. Read with toolsdb.memory_get(), which prefers the user''s entry over the global '
'one; write with toolsdb.memory_set().';

comment on column toolsdb.memories.memory_id is 'Primary key: a random UUID.';

comment on column toolsdb.memories.agent_id is 'The agent that remembers; deleting the agent deletes its memories.';

comment on column toolsdb.memories.user_id is
'The user this memory is about, or null for the agent''s global memory.';

comment on column toolsdb.memories.key is
'Name of the memory, 1-200 visible characters (inner spaces allowed); unique per agent and user.';

comment on column toolsdb.memories.content is 'What is remembered, at most 100,000 characters.';

comment on column toolsdb.memories.metadata is 'Anything else (source, read mode, ...), a JSON object.';

comment on column toolsdb.memories.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.memories.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

-- ---- schema/43_events.sql ----

-- Domains, not table CHECKs, as for sessions (schema/40_sessions.sql): every
-- hook event inserts here.
do $domains$
begin
    if pg_catalog.to_regtype('toolsdb.hook_payload') is null then
        create domain toolsdb.hook_payload as jsonb
        constraint payload_is_object check (jsonb_typeof(value) = 'object');
    end if;
    if pg_catalog.to_regtype('toolsdb.idempotency_key') is null then
        create domain toolsdb.idempotency_key as text
        constraint idempotency_key_length_is_valid check (char_length(value) between 1 and 300);
    end if;
    if pg_catalog.to_regtype('toolsdb.event_attempts') is null then
        create domain toolsdb.event_attempts as integer
        constraint attempts_is_not_negative check (value >= 0);
    end if;
    if pg_catalog.to_regtype('toolsdb.worker_name') is null then
        create domain toolsdb.worker_name as text
        constraint claimed_by_length_is_valid check (char_length(value) between 1 and 200);
    end if;
end
$domains$;

comment on domain toolsdb.hook_payload is 'A hook payload, a JSON object, in toolsdb.events.';

comment on domain toolsdb.idempotency_key is
'A source''s key of an event, 1 to 300 characters, in toolsdb.events.';

comment on domain toolsdb.event_attempts is 'How many times an event was claimed, not negative, in toolsdb.events.';

comment on domain toolsdb.worker_name is 'A worker''s name, 1 to 200 characters, in toolsdb.events (claimed_by).';

-- A queue: vacuum after a fixed count of dead claims, not 20% of the table
-- (docs/operations.md, tests/bench_churn.py). Fillfactor 50: a claim changes
-- no indexed column (the claim index is on event_id alone), so with room on
-- the page for each row's second version it is a HOT update that writes no
-- index entry; the ack (processed_at, the claim index's predicate) is not.
create table if not exists toolsdb.events (
    event_id bigint generated always as identity,
    session_id text not null,
    event_type toolsdb.hook_event_name not null,
    payload toolsdb.hook_payload not null,
    idempotency_key toolsdb.idempotency_key,
    created_at timestamptz not null default now(),
    visible_at timestamptz not null default now(),
    attempts toolsdb.event_attempts not null default 0,
    claim_token uuid,
    claimed_by toolsdb.worker_name,
    processed_at timestamptz,
    constraint events_pkey primary key (event_id),
    constraint events_idempotency_key_key unique (idempotency_key),
    constraint events_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade
) with (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);

-- The claim query of get_unprocessed_events(), exactly: unprocessed rows in
-- event_id order. visible_at is checked on the row, not kept here: a claim
-- sets it, and an indexed column would make every claim a non-HOT update.
create index if not exists events_claim_idx on toolsdb.events (event_id)
where processed_at is null;

create index if not exists events_session_id_idx on toolsdb.events (session_id, created_at);

create index if not exists events_created_at_idx on toolsdb.events using brin (created_at);

comment on table toolsdb.events is
'Raw agent hook events: the payload exactly as the hook received it, for workers to process. A '
'queue: get_unprocessed_events() claims a batch with a lease, mark_event_processed() settles it; '
'an event whose worker died comes back when its lease ends. Row-level security: the application '
'sees only the events of toolsdb.session_id.';

comment on column toolsdb.events.event_id is 'Increasing id.';

comment on column toolsdb.events.session_id is 'The session it belongs to; deleting the session deletes its events.';

comment on column toolsdb.events.event_type is
'Hook event name as sent (PreToolUse, Notification, SessionEnd, ...); unknown names are kept as they are.';

comment on column toolsdb.events.payload is
'The hook payload (hook_payload in the hook-notification API), a JSON object, unchanged.';

comment on column toolsdb.events.idempotency_key is
'Optional unique key of the event''s source (imports use v1:...); inserting it again returns the first row.';

comment on column toolsdb.events.created_at is 'When it was received.';

comment on column toolsdb.events.visible_at is
'When a worker may claim it: creation time, then the end of the current lease while claimed.';

comment on column toolsdb.events.attempts is 'How many times it was claimed.';

comment on column toolsdb.events.claim_token is
'Token of the latest claim; only its holder may mark the event processed.';

comment on column toolsdb.events.claimed_by is 'Name the claiming worker gave, for people.';

comment on column toolsdb.events.processed_at is 'When a worker marked it processed; null while waiting.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.events', 'raw, high-volume hook payloads: the rows are themselves the record')
on conflict (table_name) do nothing;

-- ---- schema/44_notifications.sql ----

create table if not exists toolsdb.notification_destinations (
    destination_name text not null,
    backend text not null,
    secret_key text not null,
    user_id uuid,
    enabled boolean not null default true,
    description text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint notification_destinations_pkey primary key (destination_name),
    constraint notification_destinations_secret_key_fkey foreign key (secret_key)
    references toolsdb.config (key) on delete restrict,
    constraint notification_destinations_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete cascade,
    constraint destination_name_is_valid check (
        destination_name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$' and char_length(destination_name) <= 100
    ),
    constraint backend_is_valid check (backend in ('slack', 'discord', 'email', 'webhook')),
    constraint description_length_is_valid check (char_length(description) between 1 and 1000)
);

create index if not exists notification_destinations_secret_key_idx
on toolsdb.notification_destinations (secret_key);

create index if not exists notification_destinations_user_id_idx
on toolsdb.notification_destinations (user_id);

comment on table toolsdb.notification_destinations is
'Where notifications go: a Slack or Discord incoming webhook, a generic JSON webhook or an SMTP '
'mailbox. The URL (or smtp:// settings with credentials) is never a column here: it is the '
'encrypted config secret named by secret_key, decrypted by the worker. A destination with a '
'user_id is that user''s: rules that notify the session''s user send to it. Written by '
'toolsdb.notification_destination_set() (toolsdb notify destination set).';

comment on column toolsdb.notification_destinations.destination_name is
'Unique name, letters, digits, _ . - (at most 100); "default" receives what a session''s user cannot.';

comment on column toolsdb.notification_destinations.backend is
'How to deliver: slack (POST {"text"}), discord (POST {"content"}), webhook (POST the notification as '
'JSON) or email (SMTP).';

comment on column toolsdb.notification_destinations.secret_key is
'The toolsdb.config key of the encrypted secret holding the URL (for email an SMTP URL such as '
'smtp://user:pass@host:587/?from=a@b&to=c@d&starttls=1); it cannot be unset while used here.';

comment on column toolsdb.notification_destinations.user_id is
'The user it belongs to, or null (shared); rules with recipient session_user send to the session '
'user''s enabled destinations. Deleting the user deletes it.';

comment on column toolsdb.notification_destinations.enabled is
'False to keep it without sending to it: rules skip it and the worker fails what is queued for it.';

comment on column toolsdb.notification_destinations.description is 'What it is, 1-1000 characters.';

comment on column toolsdb.notification_destinations.created_at is
'When it was added; set by trigger _100_timestamps.';

comment on column toolsdb.notification_destinations.updated_at is
'When it was last changed; set by trigger _100_timestamps.';

-- A queue: vacuum after a fixed count of dead claims, not 20% of the table
-- (docs/operations.md, tests/bench_churn.py). No fillfactor: every update
-- changes status, a predicate column of the claim and dead-letter indexes.
create table if not exists toolsdb.notifications (
    notification_id bigint generated always as identity,
    event_id bigint,
    session_id text not null,
    notification_type text not null,
    backend text not null,
    destination_name text,
    status text not null default 'pending',
    payload jsonb not null default '{}',
    attempts integer not null default 0,
    max_attempts integer not null default 3,
    last_error text,
    next_attempt_at timestamptz not null default now(),
    claim_token uuid,
    claimed_by text,
    idempotency_key text,
    created_at timestamptz not null default now(),
    sent_at timestamptz,
    constraint notifications_pkey primary key (notification_id),
    constraint notifications_idempotency_key_key unique (idempotency_key),
    constraint notifications_event_id_fkey foreign key (event_id)
    references toolsdb.events (event_id) on delete set null,
    constraint notifications_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint notifications_destination_name_fkey foreign key (destination_name)
    references toolsdb.notification_destinations (destination_name) on delete set null,
    constraint notification_type_is_valid check (
        notification_type ~ '^[a-z][a-z0-9_]*$' and char_length(notification_type) <= 50
    ),
    constraint backend_is_valid check (backend in ('slack', 'discord', 'email', 'webhook')),
    constraint status_is_valid check (status in ('pending', 'sending', 'sent', 'failed', 'dead')),
    constraint payload_is_object check (jsonb_typeof(payload) = 'object'),
    constraint attempts_is_not_negative check (attempts >= 0),
    constraint max_attempts_is_valid check (max_attempts between 1 and 100),
    constraint attempts_within_max check (attempts <= max_attempts),
    constraint last_error_length_is_valid check (char_length(last_error) between 1 and 4000),
    constraint claimed_by_length_is_valid check (char_length(claimed_by) between 1 and 200),
    constraint idempotency_key_length_is_valid check (char_length(idempotency_key) between 1 and 300),
    constraint sent_at_matches_status check ((status = 'sent') = (sent_at is not null)),
    constraint sending_has_claim check (status <> 'sending' or claim_token is not null)
) with (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);

-- The claim query of claim_notifications(), exactly: open rows in
-- next_attempt_at, notification_id order.
create index if not exists notifications_claim_idx on toolsdb.notifications (next_attempt_at, notification_id)
where status in ('pending', 'sending', 'failed');

create index if not exists notifications_dead_idx on toolsdb.notifications (notification_id)
where status = 'dead';

create index if not exists notifications_event_id_idx on toolsdb.notifications (event_id);

create index if not exists notifications_destination_name_idx on toolsdb.notifications (destination_name);

create index if not exists notifications_session_id_idx on toolsdb.notifications (session_id, created_at);

comment on table toolsdb.notifications is
'Notifications to deliver: permission requests, finished tasks, ... to Slack, Discord, email or a '
'webhook, with retries. A queue: claim_notifications() leases a batch, mark_notification_sent() or '
'mark_notification_failed() settles each; failures back off exponentially with jitter and after '
'max_attempts the row is dead (a dead letter) until redrive_notifications(). Row-level security: '
'the application sees its session''s rows.';

comment on column toolsdb.notifications.notification_id is 'Increasing id.';

comment on column toolsdb.notifications.event_id is
'The raw event that caused it, if any (null once that event is purged).';

comment on column toolsdb.notifications.session_id is 'The session it is about.';

comment on column toolsdb.notifications.notification_type is
'What it is about, snake_case: permission, task_complete, idle, error, ...';

comment on column toolsdb.notifications.backend is 'Where it goes: slack, discord, email or webhook.';

comment on column toolsdb.notifications.destination_name is
'The destination to deliver to (set by route_events()); null: the destination named default '
'(notifications queued by insert_notification, or whose destination was deleted).';

comment on column toolsdb.notifications.status is
'pending (waiting), sending (claimed, leased until next_attempt_at), sent, failed (will retry at '
'next_attempt_at) or dead (gave up after max_attempts; a dead letter).';

comment on column toolsdb.notifications.payload is
'What the backend sends (a JSON object); from a rule: message (the rendered template), rule, '
'event_type and the matched payload fields.';

comment on column toolsdb.notifications.attempts is
'Delivery attempts so far (retry_count in the hook-notification API); each claim is one.';

comment on column toolsdb.notifications.max_attempts is
'Attempts before it is dead-lettered, 1-100; default 3 (the hook-notification API''s retry limit).';

comment on column toolsdb.notifications.last_error is
'Error of the last failed attempt (error in the hook-notification API).';

comment on column toolsdb.notifications.next_attempt_at is
'When it may be claimed: now when pending, after the backoff when failed, the end of the lease when sending.';

comment on column toolsdb.notifications.claim_token is
'Token of the current claim; only its holder may mark the notification sent or failed.';

comment on column toolsdb.notifications.claimed_by is 'Name the claiming worker gave, for people.';

comment on column toolsdb.notifications.idempotency_key is
'Optional unique key; inserting a notification with a stored key returns the first one.';

comment on column toolsdb.notifications.created_at is 'When it was queued.';

comment on column toolsdb.notifications.sent_at is 'When it was delivered; set exactly when status is sent.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
(
    'toolsdb.notifications',
    'delivery queue churning through claims and retries; attempts, last_error and sent_at are its record'
)
on conflict (table_name) do nothing;

-- ---- schema/45_metrics.sql ----

create table if not exists toolsdb.metrics (
    metric_id bigint generated always as identity,
    metric_name text not null,
    metric_value double precision not null,
    session_id text,
    tags jsonb not null default '{}',
    created_at timestamptz not null default now(),
    constraint metrics_pkey primary key (metric_id, created_at),
    constraint metrics_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint metric_name_is_valid check (metric_name ~ '^[a-z][a-z0-9_.]*$' and char_length(metric_name) <= 200),
    constraint metric_value_is_finite check (metric_value not in ('NaN', 'Infinity', '-Infinity')),
    constraint tags_is_object check (jsonb_typeof(tags) = 'object')
) partition by range (created_at);

create table if not exists toolsdb.metrics_default
partition of toolsdb.metrics default;

comment on table toolsdb.metrics_default is
'Default partition of toolsdb.metrics: rows of days without their own partition land here until '
'toolsdb.metrics_create_partitions() moves them.';

-- Stats by name over a window: an index-only scan of the window's days.
create index if not exists metrics_name_created_at_idx on toolsdb.metrics (metric_name, created_at)
include (metric_value);

create index if not exists metrics_session_id_idx on toolsdb.metrics (session_id, created_at);

comment on table toolsdb.metrics is
'Measurements: notification_latency_ms, hook_duration_ms, ... with an optional session. '
'Partitioned by day (UTC); toolsdb.metrics_apply_retention() drops whole days (config '
'metrics.retention, default 30 days). Stats with toolsdb.get_metric_stats(). Append-only.';

comment on column toolsdb.metrics.metric_id is 'Increasing id (unique with created_at).';

comment on column toolsdb.metrics.metric_name is
'What was measured, lowercase dotted snake_case, e.g. notification_latency_ms.';

comment on column toolsdb.metrics.metric_value is 'The value, a finite number.';

comment on column toolsdb.metrics.session_id is 'The session measured, or null for a global metric.';

comment on column toolsdb.metrics.tags is 'Dimensions of the measurement, e.g. {"backend": "slack"} (JSON object).';

comment on column toolsdb.metrics.created_at is 'When it was measured; the partition key.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.metrics', 'high-volume measurements, append-only: the rows are the record')
on conflict (table_name) do nothing;

-- One row per metric and closed day: the day's exact count, sum, min and max,
-- and a histogram of its values in buckets of 1% relative width, built by
-- toolsdb.metrics_build_rollups() (toolsdb maintain). get_metric_stats() reads
-- a window's whole days here and scans only the rest; a row counts only while
-- max_metric_id is still the day's highest (no row added since), and deletes
-- from toolsdb.metrics remove the rows of the days they touch.
create table if not exists toolsdb.metric_rollups (
    metric_name text not null,
    day date not null,
    row_count bigint not null,
    value_sum numeric not null,
    value_min double precision not null,
    value_max double precision not null,
    buckets integer[] not null,
    bucket_counts bigint[] not null,
    max_metric_id bigint not null,
    built_at timestamptz not null default now(),
    constraint metric_rollups_pkey primary key (metric_name, day),
    constraint metric_name_is_valid check (metric_name ~ '^[a-z][a-z0-9_.]*$' and char_length(metric_name) <= 200),
    constraint row_count_is_positive check (row_count > 0),
    constraint value_range_is_valid check (value_min <= value_max),
    constraint buckets_match_counts check (
        cardinality(buckets) = cardinality(bucket_counts) and cardinality(buckets) between 1 and 100000
    )
);

comment on table toolsdb.metric_rollups is
'Per metric and closed day (UTC) of toolsdb.metrics: exact count, sum, min, max and a histogram of '
'the values in buckets 1% wide (relative), built by toolsdb.metrics_build_rollups(). '
'toolsdb.get_metric_stats() reads the whole days of a window here; a row is used only while no '
'row was added to its day since (max_metric_id), and deleting metrics removes the rows of their '
'days. Derived data: not audited, not row-secured (only its functions read it).';

comment on column toolsdb.metric_rollups.metric_name is 'The metric (toolsdb.metrics.metric_name).';

comment on column toolsdb.metric_rollups.day is 'The UTC day, one daily partition of toolsdb.metrics.';

comment on column toolsdb.metric_rollups.row_count is 'How many measurements of the metric the day holds.';

comment on column toolsdb.metric_rollups.value_sum is 'Their exact sum (numeric).';

comment on column toolsdb.metric_rollups.value_min is 'Their smallest value.';

comment on column toolsdb.metric_rollups.value_max is 'Their largest value.';

comment on column toolsdb.metric_rollups.buckets is
'Histogram buckets in value order, toolsdb_private.metric_bucket() of each value (ascending).';

comment on column toolsdb.metric_rollups.bucket_counts is 'How many values fell in each bucket of buckets.';

comment on column toolsdb.metric_rollups.max_metric_id is
'The highest metric_id of the whole day (every metric) when built: a higher one now means rows '
'were added since, and the rollup is not used.';

comment on column toolsdb.metric_rollups.built_at is 'When it was built.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.metric_rollups', 'derived from toolsdb.metrics by maintenance, rebuilt at will: the metrics are the record')
on conflict (table_name) do nothing;

-- ---- schema/47_notification_rules.sql ----

create table if not exists toolsdb.notification_rules (
    rule_name text not null,
    enabled boolean not null default true,
    priority integer not null default 100,
    match_event_type text not null,
    match_notification_type text,
    match_tool_name text,
    match_cwd text,
    match_project_id uuid,
    recipient text not null default 'session_user',
    destination_name text,
    notification_type text not null,
    message_template text not null,
    max_attempts integer not null default 3,
    description text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint notification_rules_pkey primary key (rule_name),
    constraint notification_rules_match_project_id_fkey foreign key (match_project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint notification_rules_destination_name_fkey foreign key (destination_name)
    references toolsdb.notification_destinations (destination_name) on delete restrict,
    constraint rule_name_is_valid check (rule_name ~ '^[a-z0-9][a-z0-9_.-]*$' and char_length(rule_name) <= 100),
    constraint priority_is_valid check (priority between -1000000 and 1000000),
    constraint match_event_type_is_valid check (
        match_event_type ~ '^[[:graph:]]+$' and char_length(match_event_type) <= 100
    ),
    constraint match_notification_type_length_is_valid check (char_length(match_notification_type) between 1 and 200),
    constraint match_tool_name_length_is_valid check (char_length(match_tool_name) between 1 and 200),
    constraint match_cwd_length_is_valid check (char_length(match_cwd) between 1 and 1000),
    constraint recipient_is_valid check (recipient in ('session_user', 'destination')),
    constraint destination_matches_recipient check ((recipient = 'destination') = (destination_name is not null)),
    constraint notification_type_is_valid check (
        notification_type ~ '^[a-z][a-z0-9_]*$' and char_length(notification_type) <= 50
    ),
    constraint message_template_length_is_valid check (char_length(message_template) between 1 and 2000),
    constraint max_attempts_is_valid check (max_attempts between 1 and 100),
    constraint description_length_is_valid check (char_length(description) between 1 and 1000)
);

create index if not exists notification_rules_event_idx on toolsdb.notification_rules (match_event_type, priority)
where enabled;

create index if not exists notification_rules_match_project_id_idx on toolsdb.notification_rules (match_project_id);

create index if not exists notification_rules_destination_name_idx on toolsdb.notification_rules (destination_name);

comment on table toolsdb.notification_rules is
'Which hook event makes which notification, for whom, with which message. route_events() applies '
'every enabled rule matching an event (all of them, in priority order): one notification per '
'(rule, event, destination). Patterns are globs (* any run, ? one character, \ escapes), matched '
'with LIKE, never regular expressions. Managed with toolsdb.notification_rule_set(), '
'notification_rule_enable() and notification_rule_delete().';

comment on column toolsdb.notification_rules.rule_name is
'Unique name, lowercase letters, digits, _ . - (at most 100).';

comment on column toolsdb.notification_rules.enabled is 'False to keep the rule without applying it.';

comment on column toolsdb.notification_rules.priority is
'Order in which matching rules make their notifications, lowest first (then rule_name); default 100.';

comment on column toolsdb.notification_rules.match_event_type is
'The hook event it applies to, exactly as stored in toolsdb.events.event_type (Notification, Stop, PreToolUse, ...).';

comment on column toolsdb.notification_rules.match_notification_type is
'Glob the payload''s notification_type must match (permission_prompt, idle_prompt, ...); null: any, or none.';

comment on column toolsdb.notification_rules.match_tool_name is
'Glob the payload''s tool_name must match (Bash, mcp__*); null: any, or none.';

comment on column toolsdb.notification_rules.match_cwd is
'Glob the event''s cwd (the payload''s, else the session''s) must match, such as /home/*/work/*; null: any.';

comment on column toolsdb.notification_rules.match_project_id is
'Only events of sessions of this project; null: any. Deleting the project deletes the rule.';

comment on column toolsdb.notification_rules.recipient is
'session_user: the enabled destinations of the session''s user, else the destination named default '
'(else nothing); destination: the named destination_name.';

comment on column toolsdb.notification_rules.destination_name is
'The destination when recipient is destination; null otherwise. A used destination cannot be deleted.';

comment on column toolsdb.notification_rules.notification_type is
'The notification_type of the notifications it makes, snake_case (permission, idle, task_complete, ...).';

comment on column toolsdb.notification_rules.message_template is
'The message, 1-2000 characters, with {placeholders}: message, notification_type, tool_name, cwd, '
'session_id, event_type, project, user, agent, last_assistant_message, rule. Each value is cut to '
'500 characters and the message to 3000; unknown placeholders stay as written.';

comment on column toolsdb.notification_rules.max_attempts is
'Delivery attempts of its notifications before they are dead letters, 1-100; default 3.';

comment on column toolsdb.notification_rules.description is 'What the rule is for, 1-1000 characters.';

comment on column toolsdb.notification_rules.created_at is 'When it was added; set by trigger _100_timestamps.';

comment on column toolsdb.notification_rules.updated_at is 'When it was last changed; set by trigger _100_timestamps.';

-- The default rule set: what design 001 was built for (reference rows; a
-- rule changed or deleted by its users stays so).
insert into toolsdb.notification_rules (
    rule_name, priority, match_event_type, match_notification_type, notification_type, message_template, description
) values
(
    'permission_prompt', 10, 'Notification', 'permission_prompt', 'permission',
    'Claude needs your permission in {cwd}: {message}',
    'A permission prompt notifies the session''s user.'
),
(
    'idle_prompt', 20, 'Notification', 'idle_prompt', 'idle',
    'Claude is waiting for your input in {cwd}: {message}',
    'An idle prompt notifies the session''s user.'
),
(
    'stop', 30, 'Stop', null, 'task_complete',
    'Claude finished its turn in {cwd}. {last_assistant_message}',
    'A finished turn (Stop) notifies the session''s user.'
)
on conflict on constraint notification_rules_pkey do nothing;

-- ---- schema/48_transcripts.sql ----

create table if not exists toolsdb.transcript_files (
    file_id bigint generated always as identity,
    source_host text not null,
    path text not null,
    session_id text,
    subagent_id text,
    read_offset bigint not null default 0,
    size_seen bigint not null default 0,
    mtime_seen timestamptz,
    head_length integer not null default 0,
    head_hash text,
    tail_hash text,
    lines_read bigint not null default 0,
    malformed_lines bigint not null default 0,
    rewrites integer not null default 0,
    last_imported_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint transcript_files_pkey primary key (file_id),
    constraint transcript_files_source_host_path_key unique (source_host, path),
    constraint transcript_files_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete set null,
    constraint source_host_length_is_valid check (char_length(source_host) between 1 and 300),
    constraint path_length_is_valid check (char_length(path) between 1 and 4096),
    constraint subagent_id_length_is_valid check (char_length(subagent_id) between 1 and 200),
    constraint offsets_are_valid check (read_offset >= 0 and size_seen >= 0),
    constraint head_length_is_valid check (head_length between 0 and 4096),
    constraint hashes_are_hex check (head_hash ~ '^[0-9a-f]{64}$' and tail_hash ~ '^[0-9a-f]{64}$'),
    constraint counts_are_not_negative check (lines_read >= 0 and malformed_lines >= 0 and rewrites >= 0)
);

create index if not exists transcript_files_session_id_idx on toolsdb.transcript_files (session_id);

comment on table toolsdb.transcript_files is
'Import state of each Claude Code transcript file, per machine (source_host) and path: how far it '
'was read (read_offset, always just after a whole line), and hashes of its first bytes and of the '
'bytes before read_offset, so a later import reads only what was appended and notices a file that '
'was truncated or rewritten. Written only by toolsdb.transcript_ingest().';

comment on column toolsdb.transcript_files.file_id is 'Primary key.';

comment on column toolsdb.transcript_files.source_host is
'Where the file is: the importing machine''s host name, or serve:<token prefix> for files sent to '
'toolsdb serve.';

comment on column toolsdb.transcript_files.path is 'The file''s absolute path on that machine.';

comment on column toolsdb.transcript_files.session_id is
'The session its lines belong to (subagent files: the parent session).';

comment on column toolsdb.transcript_files.subagent_id is
'For a subagent''s file (subagents/agent-<id>.jsonl), the id.';

comment on column toolsdb.transcript_files.read_offset is
'Bytes read: the offset just after the last whole line imported.';

comment on column toolsdb.transcript_files.size_seen is 'The file''s size at the last import.';

comment on column toolsdb.transcript_files.mtime_seen is 'Its modification time at the last import.';

comment on column toolsdb.transcript_files.head_length is
'How many of its first bytes head_hash covers (at most 4096).';

comment on column toolsdb.transcript_files.head_hash is 'SHA-256 (hex) of its first head_length bytes.';

comment on column toolsdb.transcript_files.tail_hash is 'SHA-256 (hex) of the (up to) 4096 bytes before read_offset.';

comment on column toolsdb.transcript_files.lines_read is
'Whole lines before read_offset (the line number the next import starts after).';

comment on column toolsdb.transcript_files.malformed_lines is
'Lines that could not be read (toolsdb.transcript_errors).';

comment on column toolsdb.transcript_files.rewrites is
'Times the file was found truncated or rewritten and read again from the start.';

comment on column toolsdb.transcript_files.last_imported_at is 'When lines were last imported from it.';

comment on column toolsdb.transcript_files.created_at is
'When the file was first seen; set by trigger _100_timestamps.';

comment on column toolsdb.transcript_files.updated_at is 'When its state last changed; set by trigger _100_timestamps.';

create table if not exists toolsdb.transcript_errors (
    file_id bigint not null,
    byte_offset bigint not null,
    line_number bigint not null,
    error text not null,
    excerpt text not null default '',
    seen_at timestamptz not null default now(),
    constraint transcript_errors_pkey primary key (file_id, byte_offset),
    constraint transcript_errors_file_id_fkey foreign key (file_id)
    references toolsdb.transcript_files (file_id) on delete cascade,
    constraint byte_offset_is_not_negative check (byte_offset >= 0),
    constraint line_number_is_positive check (line_number >= 1),
    constraint error_length_is_valid check (char_length(error) between 1 and 500),
    constraint excerpt_length_is_valid check (char_length(excerpt) <= 200)
);

comment on table toolsdb.transcript_errors is
'The lines of transcript files that could not be imported (not JSON, not an object, a bad '
'timestamp or uuid, too long): counted and named, never a reason to stop an import.';

comment on column toolsdb.transcript_errors.file_id is 'The file (toolsdb.transcript_files).';

comment on column toolsdb.transcript_errors.byte_offset is 'Where the line starts in the file.';

comment on column toolsdb.transcript_errors.line_number is 'Its line number, from 1.';

comment on column toolsdb.transcript_errors.error is 'What is wrong with it, one line.';

comment on column toolsdb.transcript_errors.excerpt is 'Its first 200 characters.';

comment on column toolsdb.transcript_errors.seen_at is 'When it was first found.';

create table if not exists toolsdb.api_usage (
    usage_key text not null,
    session_id text not null,
    message_id uuid,
    occurred_at timestamptz not null,
    model_provider text not null default 'anthropic',
    model_name text not null,
    speed text not null default 'standard',
    service_tier text,
    is_sidechain boolean not null default false,
    subagent_id text,
    input_tokens bigint not null default 0,
    output_tokens bigint not null default 0,
    cache_write_5m_tokens bigint not null default 0,
    cache_write_1h_tokens bigint not null default 0,
    cache_read_tokens bigint not null default 0,
    web_search_requests integer not null default 0,
    web_fetch_requests integer not null default 0,
    cost_usd numeric(20, 10),
    given_cost_usd numeric(14, 6),
    priced_from timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint api_usage_pkey primary key (usage_key),
    constraint api_usage_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint api_usage_message_id_fkey foreign key (message_id)
    references toolsdb.messages (message_id) on delete set null,
    constraint usage_key_length_is_valid check (char_length(usage_key) between 1 and 500),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint speed_is_valid check (speed in ('standard', 'fast')),
    constraint service_tier_length_is_valid check (char_length(service_tier) between 1 and 50),
    constraint subagent_id_length_is_valid check (char_length(subagent_id) between 1 and 200),
    constraint tokens_are_not_negative check (
        input_tokens >= 0 and output_tokens >= 0 and cache_write_5m_tokens >= 0
        and cache_write_1h_tokens >= 0 and cache_read_tokens >= 0
        and web_search_requests >= 0 and web_fetch_requests >= 0
    ),
    constraint priced_when_costed check ((cost_usd is null) = (priced_from is null))
);

create index if not exists api_usage_occurred_at_idx on toolsdb.api_usage (occurred_at);

create index if not exists api_usage_session_id_idx on toolsdb.api_usage (session_id);

create index if not exists api_usage_message_id_idx on toolsdb.api_usage (message_id);

create index if not exists api_usage_unpriced_idx on toolsdb.api_usage (model_name, occurred_at) where cost_usd is null;

comment on table toolsdb.api_usage is
'One row per billed API response of an imported transcript, counted once however many lines or '
'files repeat it (usage_key: message.id:requestId, as ccusage counts): its model, five token '
'classes and cost at the price in force when it happened. A response written as several lines '
'keeps its largest snapshot (the most output tokens), dated by that line. Row-level security: the '
'application sees the usage of toolsdb.session_id. Written only by toolsdb.transcript_ingest().';

comment on column toolsdb.api_usage.usage_key is
'Primary key: message.id || '':'' || requestId; msg:<message.id> for a line without requestId; '
'line:<uuid> for a line without message.id.';

comment on column toolsdb.api_usage.session_id is 'The session that first brought the response (toolsdb.sessions).';

comment on column toolsdb.api_usage.message_id is
'The message row of the line counted (toolsdb.messages), if still there.';

comment on column toolsdb.api_usage.occurred_at is 'Timestamp of the line counted; reports date the response by it.';

comment on column toolsdb.api_usage.model_provider is 'Who served it: anthropic.';

comment on column toolsdb.api_usage.model_name is
'The model as the API named it (message.model), e.g. claude-sonnet-4-5-20250929.';

comment on column toolsdb.api_usage.speed is 'standard, or fast (fast mode: priced as <model>-fast and reported so).';

comment on column toolsdb.api_usage.service_tier is 'usage.service_tier (standard, priority, batch), if given.';

comment on column toolsdb.api_usage.is_sidechain is 'True for a subagent''s response.';

comment on column toolsdb.api_usage.subagent_id is 'The subagent (agentId) that made it, if any.';

comment on column toolsdb.api_usage.input_tokens is 'Uncached input tokens (usage.input_tokens).';

comment on column toolsdb.api_usage.output_tokens is 'Output tokens (usage.output_tokens).';

comment on column toolsdb.api_usage.cache_write_5m_tokens is
'Tokens written to the 5-minute cache: cache_creation_input_tokens less the 1-hour part (all of it '
'when the split is not given).';

comment on column toolsdb.api_usage.cache_write_1h_tokens is
'Tokens written to the 1-hour cache (cache_creation.ephemeral_1h_input_tokens).';

comment on column toolsdb.api_usage.cache_read_tokens is 'Tokens read from the cache (cache_read_input_tokens).';

comment on column toolsdb.api_usage.web_search_requests is 'server_tool_use.web_search_requests.';

comment on column toolsdb.api_usage.web_fetch_requests is 'server_tool_use.web_fetch_requests.';

comment on column toolsdb.api_usage.cost_usd is
'USD at the price in force at occurred_at (toolsdb.usage_cost), to 10 decimals so that sums of '
'many small responses stay exact; null when the model has no price '
'(toolsdb.unpriced_usage lists them), never 0 for want of a price.';

comment on column toolsdb.api_usage.given_cost_usd is
'The line''s own costUSD, when it carried one (older Claude Code versions).';

comment on column toolsdb.api_usage.priced_from is
'valid_from of the toolsdb.model_prices row that priced it; null when unpriced.';

comment on column toolsdb.api_usage.created_at is 'When it was first imported; set by trigger _100_timestamps.';

comment on column toolsdb.api_usage.updated_at is
'When it last changed (a larger snapshot, a new price); set by trigger _100_timestamps.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.transcript_files', 'import state derived from files: rewritten by every import, the files are the record'),
('toolsdb.transcript_errors', 'a list of unreadable lines derived from files, the files are the record'),
('toolsdb.api_usage', 'usage derived from transcript files: rewritten as snapshots grow and prices change')
on conflict (table_name) do nothing;

-- ---- schema/50_vision_cache.sql ----

-- The key's rules are domains, shared by the cache and its hits: a get
-- appends a hit, and PostgreSQL plans a table's CHECKs again at every
-- statement that writes the table but caches a domain's per connection.
do $domains$
begin
    if pg_catalog.to_regtype('toolsdb.image_hash') is null then
        create domain toolsdb.image_hash as text
        constraint image_hash_is_valid check (value ~ '^[0-9A-Za-z_.:-]+$' and char_length(value) <= 128);
    end if;
    if pg_catalog.to_regtype('toolsdb.model_version') is null then
        create domain toolsdb.model_version as text
        constraint model_version_is_valid check (value ~ '^[[:graph:]]+$' and char_length(value) <= 100);
    end if;
end
$domains$;

comment on domain toolsdb.image_hash is
'An image''s key in the vision cache: up to 128 letters, digits and _ . : - (a SHA-256 in hex).';

comment on domain toolsdb.model_version is
'A model and version in the vision cache: printable, no spaces, at most 100 characters.';

-- Hit counters are in no index, so their updates are HOT with room on the
-- page (fillfactor 80: 84% HOT in tests/bench_churn.py).
create table if not exists toolsdb.vision_cache (
    image_hash toolsdb.image_hash not null,
    model_version toolsdb.model_version not null,
    extracted_data jsonb not null default '{}',
    confidence_score double precision not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    hit_count bigint not null default 0,
    last_hit_at timestamptz,
    constraint vision_cache_pkey primary key (image_hash, model_version),
    constraint extracted_data_is_object check (jsonb_typeof(extracted_data) = 'object'),
    constraint confidence_score_is_valid check (confidence_score between 0 and 1),
    constraint expires_after_creation check (expires_at > created_at),
    constraint hit_count_is_not_negative check (hit_count >= 0)
) with (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05
);

create index if not exists vision_cache_expires_at_idx on toolsdb.vision_cache (expires_at);

comment on table toolsdb.vision_cache is
'Vision-analysis results, one per image (SHA-256 of its bytes) and model version, until '
'expires_at. Read with toolsdb.vision_cache_get() (counts the hit), write with '
'toolsdb.vision_cache_store(), clean with toolsdb.vision_cache_purge_expired().';

comment on column toolsdb.vision_cache.image_hash is
'The image''s key: the SHA-256 of its bytes in 64 lowercase hex digits (VisionCache.hash_image), or '
'another identifier of up to 128 letters, digits and _ . : -.';

comment on column toolsdb.vision_cache.model_version is 'The model (and version) that analysed it, e.g. v1.0.';

comment on column toolsdb.vision_cache.extracted_data is 'What the analysis found (JSON object).';

comment on column toolsdb.vision_cache.confidence_score is 'Confidence of the analysis, 0 to 1.';

comment on column toolsdb.vision_cache.created_at is 'When it was stored (or last replaced).';

comment on column toolsdb.vision_cache.expires_at is 'After this the entry is a miss, and purge removes it.';

comment on column toolsdb.vision_cache.hit_count is
'Hits folded in by toolsdb.vision_cache_flush_hits(); add the pending rows of vision_cache_hits '
'for the exact figure (toolsdb.vision_cache_stats does).';

comment on column toolsdb.vision_cache.last_hit_at is 'Latest hit folded in, null if none yet.';

-- Appended, then emptied by every vision_cache_flush_hits(): vacuum after a
-- fixed count, whatever the (stale) row estimate says.
create unlogged table if not exists toolsdb.vision_cache_hits (
    hit_id bigint generated always as identity,
    image_hash toolsdb.image_hash not null,
    model_version toolsdb.model_version not null,
    hit_at timestamptz not null default now(),
    constraint vision_cache_hits_pkey primary key (hit_id)
) with (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_insert_scale_factor = 0.1,
    autovacuum_vacuum_cost_delay = 1
);

comment on table toolsdb.vision_cache_hits is
'Cache hits not yet folded into toolsdb.vision_cache.hit_count: one appended row per hit, so '
'concurrent readers of one entry never wait for each other. Unlogged: a crash may lose hits not '
'yet flushed (counts only, never cache data). No foreign key, for the same reason.';

comment on column toolsdb.vision_cache_hits.hit_id is 'Increasing id.';

comment on column toolsdb.vision_cache_hits.image_hash is 'The image hit.';

comment on column toolsdb.vision_cache_hits.model_version is 'The model version hit.';

comment on column toolsdb.vision_cache_hits.hit_at is 'When.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.vision_cache', 'a cache: entries are derived data and hits are not audit events'),
('toolsdb.vision_cache_hits', 'hit counter rows of the cache, not audit events')
on conflict (table_name) do nothing;

-- ---- schema/51_prompt_versions.sql ----

create table if not exists toolsdb.prompts (
    prompt_id text not null,
    latest_version integer not null default 0,
    description text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint prompts_pkey primary key (prompt_id),
    constraint prompt_id_is_valid check (prompt_id ~ '^[a-z0-9][a-z0-9_./-]*$' and char_length(prompt_id) <= 200),
    constraint latest_version_is_not_negative check (latest_version >= 0),
    constraint description_length_is_valid check (char_length(description) between 1 and 2000)
);

comment on table toolsdb.prompts is
'One row per prompt id: its description and the counter its versions are numbered from. Made by '
'toolsdb.prompt_create_version() on the first version.';

comment on column toolsdb.prompts.prompt_id is
'The prompt''s name: lowercase letters, digits and _ . / -, at most 200.';

comment on column toolsdb.prompts.latest_version is 'The newest version number (0 before the first).';

comment on column toolsdb.prompts.description is 'What the prompt is for.';

comment on column toolsdb.prompts.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.prompts.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

create table if not exists toolsdb.prompt_versions (
    prompt_id text not null,
    version integer not null,
    prompt_text text not null,
    test_results jsonb not null default '{}',
    labels text[] not null default '{}',
    is_active boolean generated always as ('production' = any(labels)) stored,
    created_by text not null default coalesce(
        nullif(current_setting('toolsdb.actor', true), ''), session_user
    ),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint prompt_versions_pkey primary key (prompt_id, version),
    constraint prompt_versions_prompt_id_fkey foreign key (prompt_id)
    references toolsdb.prompts (prompt_id) on delete cascade,
    constraint version_is_positive check (version >= 1),
    constraint prompt_text_is_not_empty check (char_length(btrim(prompt_text)) >= 1),
    constraint prompt_text_length_is_valid check (char_length(prompt_text) <= 200000),
    constraint test_results_is_object check (jsonb_typeof(test_results) = 'object'),
    constraint labels_are_valid check (
        (cardinality(labels) = 0 or array_to_string(labels, '|') ~ '^[a-z][a-z0-9_.-]*(\|[a-z][a-z0-9_.-]*)*$')
        and cardinality(labels) <= 50 and array_position(labels, null) is null
    ),
    constraint created_by_length_is_valid check (char_length(created_by) between 1 and 200)
);

-- At most one production version per prompt, enforced by the schema.
create unique index if not exists prompt_versions_production_key on toolsdb.prompt_versions (prompt_id)
where 'production' = any(labels);

create index if not exists prompt_versions_labels_idx on toolsdb.prompt_versions using gin (labels);

comment on table toolsdb.prompt_versions is
'Versions of a prompt: text, test results, and labels. Versions are numbered 1, 2, 3, ... per '
'prompt by the database; the label production marks the active version (at most one per prompt: '
'index prompt_versions_production_key); other labels are free (staging, canary, ...). Fetch with '
'toolsdb.prompt_get(); activate with toolsdb.prompt_activate().';

comment on column toolsdb.prompt_versions.prompt_id is 'The prompt (toolsdb.prompts).';

comment on column toolsdb.prompt_versions.version is
'Version number, gapless per prompt, assigned by trigger _050_version.';

comment on column toolsdb.prompt_versions.prompt_text is 'The prompt itself: not blank, at most 200,000 characters.';

comment on column toolsdb.prompt_versions.test_results is 'Outcomes of the prompt''s tests (JSON object).';

comment on column toolsdb.prompt_versions.labels is
'Labels, lowercase (production, staging, ...), at most 50; production is on at most one version per prompt.';

comment on column toolsdb.prompt_versions.is_active is
'is_active, as the agent-tools API names it: true when the version carries production.';

comment on column toolsdb.prompt_versions.created_by is 'Who made it: setting toolsdb.actor, else the database user.';

comment on column toolsdb.prompt_versions.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.prompt_versions.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

-- ---- schema/52_schema_validator.sql ----

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
