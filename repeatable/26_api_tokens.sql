-- repeatable/26_api_tokens.sql
-- Tier 20: identity. The functions of toolsdb.api_tokens (bearer tokens of
-- `toolsdb serve`): create_api_token() makes one and returns it once,
-- authenticate_api_token() tells who a token is (the only reader of the
-- hashes the application may call), revoke_api_token() ends one. Audited,
-- the hash redacted; row-level security by project; no table privilege for
-- toolsdb_app or toolsdb_readonly (repeatable/99_grants.sql).
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/26_api_tokens.sql.

-- Change capture into toolsdb.audit_logs (docs/security.md): who made,
-- revoked or last used which token, never its hash.
select toolsdb.audit_table('toolsdb.api_tokens', array['token_hash']);

-- Row-level security (docs/security.md), as for every table with a project;
-- the application has no privilege on the table anyway.
select toolsdb.isolate_rows('toolsdb.api_tokens', 'project_id');

create or replace function toolsdb.create_api_token(
    user_id uuid,
    agent_id uuid default null,
    project_id uuid default null,
    token_name text default null,
    expires_at timestamptz default null
)
returns text
language plpgsql
volatile
set search_path = ''
as $function$
declare
    -- 64 hex digits from two random UUIDs: 244 random bits (the version and
    -- variant digits are fixed).
    token text := 'tdb_' || pg_catalog.replace(
        gen_random_uuid()::text || gen_random_uuid()::text, '-', ''
    );
begin
    if create_api_token.user_id is null then
        raise exception 'a token names a user: user_id is null'
            using errcode = 'invalid_parameter_value';
    end if;
    insert into toolsdb.api_tokens (token_name, token_hash, token_prefix, user_id, agent_id, project_id, expires_at)
    values (
        create_api_token.token_name,
        pg_catalog.sha256(pg_catalog.convert_to(token, 'UTF8')),
        pg_catalog.left(token, 12),
        create_api_token.user_id,
        create_api_token.agent_id,
        create_api_token.project_id,
        create_api_token.expires_at
    );
    return token;
end;
$function$;

comment on function toolsdb.create_api_token(uuid, uuid, uuid, text, timestamptz) is
'Makes a bearer token for `toolsdb serve` naming user_id and optionally agent_id and project_id '
'(foreign keys: they must exist), labelled token_name, ending at expires_at (null: never), and '
'returns it: tdb_ and 64 hex digits (244 random bits). The token is shown only here; the table '
'keeps its SHA-256 and its first 12 characters.';

create or replace function toolsdb.authenticate_api_token(token text)
returns table (token_id uuid, user_id uuid, agent_id uuid, project_id uuid)
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    found_id uuid;
    last_used timestamptz;
begin
    if token is null or token !~ '^tdb_[0-9a-f]{64}$' then
        return;
    end if;
    select t.token_id, t.user_id, t.agent_id, t.project_id, t.last_used_at
    into found_id, authenticate_api_token.user_id, authenticate_api_token.agent_id,
        authenticate_api_token.project_id, last_used
    from toolsdb.api_tokens as t
    where t.token_hash = pg_catalog.sha256(pg_catalog.convert_to(token, 'UTF8'))
        and t.revoked_at is null
        and (t.expires_at is null or t.expires_at > pg_catalog.now());
    if found_id is null then
        return;
    end if;
    -- At most once an hour per token: a write, and an audit row.
    if last_used is null or last_used < pg_catalog.now() - interval '1 hour' then
        update toolsdb.api_tokens as t
        set last_used_at = greatest(t.created_at, pg_catalog.now())
        where t.token_id = found_id;
    end if;
    authenticate_api_token.token_id := found_id;
    return next;
end;
$function$;

comment on function toolsdb.authenticate_api_token(text) is
'Who a bearer token is: one row (token_id, user_id, agent_id, project_id) for a token in force, '
'none for an unknown, revoked or expired one or for text that is not a token. One index lookup '
'(api_tokens_token_hash_key); sets last_used_at at most once an hour. Security definer: the only '
'way toolsdb_app reaches the hashes.';

create or replace function toolsdb.revoke_api_token(token_id uuid)
returns boolean
language sql
volatile
set search_path = ''
begin atomic
    with revoked as (
        update toolsdb.api_tokens as t
        set revoked_at = greatest(t.created_at, pg_catalog.now())
        where t.token_id = revoke_api_token.token_id and t.revoked_at is null
        returning t.token_id
    )

    select count(*) > 0 from revoked;
end;

comment on function toolsdb.revoke_api_token(uuid) is
'Revokes a token: from now on it authenticates nobody. True when it was in force, false when it '
'was revoked already or does not exist. The row stays (who had which token, for the audit log).';
