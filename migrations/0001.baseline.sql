-- migrations/0001.baseline.sql
-- The baseline: identity (users, projects, agents, MCP servers and their
-- links, preferences) and the shared timestamps trigger function, exactly as
-- schema/10_timestamps.sql and schema/20..25 define them at this release.
-- Applied inside one transaction by `toolsdb migrate`, after
-- schema/00_bootstrap.sql (schemas and roles). Append-only once released:
-- change the schema with a new migration, never by editing this file.
--
-- Every index here is on a table created in this same migration: it is empty
-- and invisible to other sessions until commit, so a plain create index blocks
-- nobody (and concurrently cannot run inside the migrate transaction).
-- squawk-ignore-file require-concurrent-index-creation

-- ---- from schema/10_timestamps.sql ----

-- Tier 10: shared trigger functions used by every application table.
-- Defines toolsdb_private.tg__timestamps(), the BEFORE INSERT OR UPDATE row
-- trigger function that owns created_at and updated_at: clients cannot forge
-- created_at, and updated_at strictly increases on every update (Graphile
-- starter style). Each table attaches it as trigger _100_timestamps.
-- Needs: schema/00_bootstrap.sql (schema toolsdb_private).

create or replace function toolsdb_private.tg__timestamps()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if tg_op = 'INSERT' then
        new.created_at := now();
        new.updated_at := now();
    elsif tg_op = 'UPDATE' then
        new.created_at := old.created_at;
        new.updated_at := greatest(now(), old.updated_at + interval '1 millisecond');
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__timestamps() is
'Row trigger (BEFORE INSERT OR UPDATE) that owns created_at and updated_at. On INSERT both '
'are set to now(), whatever the client sent. On UPDATE created_at keeps its stored value and '
'updated_at becomes greatest(now(), previous updated_at + 1 millisecond), so it strictly '
'increases even for several updates in one transaction. Attach it as trigger _100_timestamps; '
'the table needs created_at and updated_at timestamptz columns.';

-- ---- from schema/20_users.sql ----

-- Tier 20: identity. Defines toolsdb.users (people and service accounts),
-- its indexes (case-insensitive unique username and email, GitHub lookups)
-- and its timestamps trigger.
-- Needs: schema/00_bootstrap.sql (schema toolsdb),
--        schema/10_timestamps.sql (toolsdb_private.tg__timestamps()).

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

create or replace trigger _100_timestamps
before insert or update on toolsdb.users
for each row
execute function toolsdb_private.tg__timestamps();

comment on table toolsdb.users is
'Accounts that act in toolsdb: people (admin, manager, user) and service accounts (service) '
'used by bots and automation. Deactivate with is_active = false rather than deleting: '
'projects keep their owner.';

comment on column toolsdb.users.user_id is
'Primary key: a random UUID (gen_random_uuid()).';
comment on column toolsdb.users.username is
'Login name, 1-64 characters: letters, digits, underscore, dot and hyphen, starting with a '
'letter or digit. Unique regardless of case (users_lower_username_key); look it up with '
'lower(username).';
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

comment on trigger _100_timestamps on toolsdb.users is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- ---- from schema/21_projects.sql ----

-- Tier 20: identity. Defines toolsdb.projects (software projects, each owned
-- by a user and usually backed by a git repository), its indexes and its
-- timestamps trigger.
-- Needs: schema/20_users.sql (toolsdb.users),
--        schema/10_timestamps.sql (toolsdb_private.tg__timestamps()).

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
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object')
);

create index if not exists projects_owner_id_idx on toolsdb.projects (owner_id);

create index if not exists projects_status_idx on toolsdb.projects (status);

create index if not exists projects_repository_url_idx on toolsdb.projects (repository_url);

create or replace trigger _100_timestamps
before insert or update on toolsdb.projects
for each row
execute function toolsdb_private.tg__timestamps();

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
comment on column toolsdb.projects.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';
comment on column toolsdb.projects.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

comment on trigger _100_timestamps on toolsdb.projects is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- ---- from schema/22_agents.sql ----

-- Tier 20: identity. Defines toolsdb.agents (the registry of AI agents: what
-- kind, which model, what they can do), its indexes and its timestamps
-- trigger.
-- Needs: schema/00_bootstrap.sql (schema toolsdb),
--        schema/10_timestamps.sql (toolsdb_private.tg__timestamps()).

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

create or replace trigger _100_timestamps
before insert or update on toolsdb.agents
for each row
execute function toolsdb_private.tg__timestamps();

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

comment on trigger _100_timestamps on toolsdb.agents is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- ---- from schema/23_mcp_servers.sql ----

-- Tier 20: identity. Defines toolsdb.mcp_servers (Model Context Protocol
-- servers the agents may use: how to reach them, whether to start them, what
-- tools they offer), its timestamps trigger and its comments.
-- Needs: schema/00_bootstrap.sql (schema toolsdb),
--        schema/10_timestamps.sql (toolsdb_private.tg__timestamps()).

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

create or replace trigger _100_timestamps
before insert or update on toolsdb.mcp_servers
for each row
execute function toolsdb_private.tg__timestamps();

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

comment on trigger _100_timestamps on toolsdb.mcp_servers is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- ---- from schema/24_agent_mcp_servers.sql ----

-- Tier 20: identity. Defines toolsdb.agent_mcp_servers, the many-to-many
-- link saying which MCP servers each agent may use, its index and its
-- timestamps trigger.
-- Needs: schema/22_agents.sql (toolsdb.agents),
--        schema/23_mcp_servers.sql (toolsdb.mcp_servers),
--        schema/10_timestamps.sql (toolsdb_private.tg__timestamps()).

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

create or replace trigger _100_timestamps
before insert or update on toolsdb.agent_mcp_servers
for each row
execute function toolsdb_private.tg__timestamps();

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

comment on trigger _100_timestamps on toolsdb.agent_mcp_servers is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- ---- from schema/25_preferences.sql ----

-- Tier 20: identity. Defines toolsdb.preferences (per-user settings grouped
-- by category, one JSON object per user and category), its indexes and its
-- timestamps trigger.
-- Needs: schema/20_users.sql (toolsdb.users),
--        schema/10_timestamps.sql (toolsdb_private.tg__timestamps()).

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

create or replace trigger _100_timestamps
before insert or update on toolsdb.preferences
for each row
execute function toolsdb_private.tg__timestamps();

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

comment on trigger _100_timestamps on toolsdb.preferences is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';
