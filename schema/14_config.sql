-- schema/14_config.sql
-- Tier 10: toolsdb.config, the one configuration store (the config of
-- hook-notification stores and the system_config of CI/CD task trackers).
-- Plain values are JSONB; secret values are Fernet tokens encrypted by the
-- client (toolsdb config set --secret), so the database never holds their
-- plaintext; each secret records the id of the key that encrypted it
-- (docs/security.md, "Keys"). Writes go through toolsdb.config_set(),
-- toolsdb.config_set_secret() and toolsdb.config_unset(). Audited, with
-- secret_value redacted.
-- Its functions, triggers and row-level security: repeatable/14_config.sql.
-- Needs: schema/00_bootstrap.sql.

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
