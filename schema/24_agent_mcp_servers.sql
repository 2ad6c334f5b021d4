-- schema/24_agent_mcp_servers.sql
-- Tier 20: identity. Defines toolsdb.agent_mcp_servers, the many-to-many
-- link saying which MCP servers each agent may use, its index and its
-- timestamps trigger.
-- Its functions, triggers and row-level security: repeatable/24_agent_mcp_servers.sql.
-- Needs: schema/22_agents.sql, schema/23_mcp_servers.sql.

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
