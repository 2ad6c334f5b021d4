-- schema/23_mcp_servers.sql
-- Tier 20: identity. Defines toolsdb.mcp_servers (Model Context Protocol
-- servers the agents may use: how to reach them, whether to start them, what
-- tools they offer), its timestamps trigger and its comments.
-- Its functions, triggers and row-level security: repeatable/23_mcp_servers.sql.
-- Needs: schema/00_bootstrap.sql.

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
