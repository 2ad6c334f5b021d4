-- repeatable/14_config.sql
-- Tier 10: toolsdb.config, the one configuration store (the config of
-- hook-notification stores and the system_config of CI/CD task trackers).
-- Plain values are JSONB; secret values are Fernet tokens encrypted by the
-- client (toolsdb config set --secret), so the database never holds their
-- plaintext. Writes go through toolsdb.config_set(),
-- toolsdb.config_set_secret() and toolsdb.config_unset(). Audited, with
-- secret_value redacted.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/14_config.sql.

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

create or replace function toolsdb.config_set_secret(
    key text, token text, key_id text, description text default null
)
returns void
language sql
volatile
security definer
set search_path = ''
begin atomic
    insert into toolsdb.config as c (key, value, is_secret, secret_value, secret_key_id, description, updated_by)
    values (
        config_set_secret.key, null, true, config_set_secret.token, config_set_secret.key_id,
        config_set_secret.description,
        coalesce(nullif(pg_catalog.current_setting('toolsdb.actor', true), ''), session_user)
    )
    on conflict on constraint config_pkey do update
        set
            value = null,
            is_secret = true,
            secret_value = excluded.secret_value,
            secret_key_id = excluded.secret_key_id,
            description = coalesce(excluded.description, c.description),
            updated_by = excluded.updated_by;
end;

comment on function toolsdb.config_set_secret(text, text, text, text) is
'Stores a secret as a Fernet token encrypted by the client, with the id of the key that encrypted '
'it (toolsdb config set KEY --secret does both). The database never sees the plaintext. A null '
'description keeps the existing one.';

-- Key rotation (toolsdb config rotate-key) and retirement (retire-key) take
-- this lock first: share row exclusive conflicts with itself and with the
-- row exclusive lock every insert, update and delete of toolsdb.config
-- takes, so rotations and retirements of one database run one at a time and
-- no secret is written while one runs, by whatever path.
create or replace function toolsdb.config_lock_secrets()
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    lock table toolsdb.config in share row exclusive mode;
end;
$function$;

comment on function toolsdb.config_lock_secrets() is
'Locks toolsdb.config in share row exclusive mode until the end of the transaction: key rotations '
'and retirements of this database wait for each other and for every uncommitted write of the '
'table, and writes wait for them (docs/security.md, "Keys").';

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
