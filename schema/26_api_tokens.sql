-- schema/26_api_tokens.sql
-- Tier 20: identity. Defines toolsdb.api_tokens (bearer tokens of
-- `toolsdb serve`: each names one user and optionally an agent and a
-- project; only the SHA-256 of a token is stored) and its indexes.
-- Its functions, triggers and row-level security: repeatable/26_api_tokens.sql.
-- Needs: schema/20_users.sql, schema/21_projects.sql, schema/22_agents.sql.

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
