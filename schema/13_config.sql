-- schema/13_config.sql
-- Tier 10: toolsdb.config, the one configuration store (seed 001's config
-- and seed 004's system_config). Plain values are JSONB; secret values are
-- Fernet tokens encrypted by the client (toolsdb config set --secret), so
-- the database never holds their plaintext. Writes go through
-- toolsdb.config_set(), toolsdb.config_set_secret() and toolsdb.config_unset().
-- Audited, with secret_value redacted.
-- Needs: schema/10_timestamps.sql, schema/12_audit.sql.

create table if not exists toolsdb.config (
    key text not null,
    value jsonb,
    is_secret boolean not null default false,
    secret_value text,
    description text,
    updated_by text not null default session_user,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint config_pkey primary key (key),
    constraint key_is_valid check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$' and char_length(key) <= 200),
    constraint secret_is_consistent check (
        (is_secret and value is null and secret_value is not null)
        or (not is_secret and value is not null and secret_value is null)
    ),
    constraint secret_value_is_fernet_token check (
        secret_value ~ '^gAAAAA[A-Za-z0-9_-]+=*$' and char_length(secret_value) <= 100000
    ),
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
comment on column toolsdb.config.description is 'What the setting is for, 1-1000 characters.';
comment on column toolsdb.config.updated_by is
'Who set it last: setting toolsdb.actor, else the database login role.';
comment on column toolsdb.config.created_at is 'When the key was first set; set by trigger _100_timestamps.';
comment on column toolsdb.config.updated_at is 'When it was last set; set by trigger _100_timestamps.';

create or replace trigger _100_timestamps
before insert or update on toolsdb.config
for each row
execute function toolsdb_private.tg__timestamps();

select toolsdb.audit_table('toolsdb.config', redact => array['secret_value']);

-- Keys under audit. steer the audit log (e.g. audit.retention): only members
-- of toolsdb_owner may change them, or the application could shorten the
-- retention of its own audit trail. Checked on the login role (session_user),
-- since the config functions run as the owner.
create or replace function toolsdb_private.tg__config_protect_keys()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
declare
    touched text := case when tg_op = 'DELETE' then old.key else new.key end;
begin
    if (touched like 'audit.%' or (tg_op = 'UPDATE' and old.key like 'audit.%'))
        and not pg_catalog.pg_has_role(session_user, 'toolsdb_owner', 'MEMBER') then
        raise exception 'config key % may only be changed by toolsdb_owner', touched
            using errcode = 'insufficient_privilege';
    end if;
    return case when tg_op = 'DELETE' then old else new end;
end;
$function$;

comment on function toolsdb_private.tg__config_protect_keys() is
'Guard trigger of toolsdb.config: keys under audit. (audit.retention) may only be written by a '
'login that is a member of toolsdb_owner; others get insufficient_privilege (42501).';

create or replace trigger _050_protect_keys
before insert or update or delete on toolsdb.config
for each row
execute function toolsdb_private.tg__config_protect_keys();

create or replace function toolsdb.config_set(key text, value jsonb, description text default null)
returns void
language sql
volatile
security definer
set search_path = ''
begin atomic
    insert into toolsdb.config as c (key, value, is_secret, secret_value, description, updated_by)
    values (
        config_set.key, config_set.value, false, null, config_set.description,
        coalesce(nullif(pg_catalog.current_setting('toolsdb.actor', true), ''), session_user)
    )
    on conflict on constraint config_pkey do update
        set
            value = excluded.value,
            is_secret = false,
            secret_value = null,
            description = coalesce(excluded.description, c.description),
            updated_by = excluded.updated_by;
end;

comment on function toolsdb.config_set(text, jsonb, text) is
'Sets a plain configuration value (JSON), e.g. select toolsdb.config_set(''audit.retention'', '
'''"400 days"''). A null description keeps the existing one.';

create or replace function toolsdb.config_set_secret(key text, token text, description text default null)
returns void
language sql
volatile
security definer
set search_path = ''
begin atomic
    insert into toolsdb.config as c (key, value, is_secret, secret_value, description, updated_by)
    values (
        config_set_secret.key, null, true, config_set_secret.token, config_set_secret.description,
        coalesce(nullif(pg_catalog.current_setting('toolsdb.actor', true), ''), session_user)
    )
    on conflict on constraint config_pkey do update
        set
            value = null,
            is_secret = true,
            secret_value = excluded.secret_value,
            description = coalesce(excluded.description, c.description),
            updated_by = excluded.updated_by;
end;

comment on function toolsdb.config_set_secret(text, text, text) is
'Stores a secret as a Fernet token encrypted by the client (toolsdb config set KEY VALUE --secret '
'does it). The database never sees the plaintext. A null description keeps the existing one.';

create or replace function toolsdb.config_get(key text)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $function$
declare
    found toolsdb.config;
begin
    select * into found from toolsdb.config as c where c.key = config_get.key;
    if found.is_secret then
        raise exception 'config key % is a secret: read it with toolsdb config get (it decrypts)', key
            using errcode = 'insufficient_privilege';
    end if;
    return found.value;
end;
$function$;

comment on function toolsdb.config_get(text) is
'The plain value of a configuration key, or null when unset. Secrets raise insufficient_privilege: '
'they are decrypted by the client, never in the database.';

create or replace function toolsdb.config_unset(key text)
returns boolean
language sql
volatile
security definer
set search_path = ''
begin atomic
    with gone as (
        delete from toolsdb.config as c
        where c.key = config_unset.key returning 1
    )

    select exists(select from gone);
end;

comment on function toolsdb.config_unset(text) is
'Removes a configuration key; returns false when it was not set.';
