-- repeatable/80_identity_views.sql
-- Views over identity. Like every view here, re-applied by `toolsdb migrate`
-- where it differs, so a change needs no migration as long as it keeps the
-- view's existing columns (create or replace view can only add columns at
-- the end; to drop or retype one, drop the view in a migration).

create or replace view toolsdb.agent_tools
with (security_invoker = true) as
select
    a.agent_id,
    a.name as agent_name,
    a.agent_type,
    a.model_provider,
    a.model_name,
    a.is_active,
    coalesce(
        array_agg(s.name order by s.name) filter (where s.mcp_server_id is not null),
        '{}'
    ) as mcp_server_names,
    count(s.mcp_server_id) as mcp_server_count
from toolsdb.agents as a
left join toolsdb.agent_mcp_servers as l
    on a.agent_id = l.agent_id and l.is_enabled
left join toolsdb.mcp_servers as s
    on l.mcp_server_id = s.mcp_server_id and s.is_enabled
group by a.agent_id;

comment on view toolsdb.agent_tools is
'Each agent with the MCP servers it can use right now: links and servers that are both enabled. '
'Agents without any appear with an empty list.';
comment on column toolsdb.agent_tools.agent_id is 'The agent (toolsdb.agents.agent_id).';
comment on column toolsdb.agent_tools.agent_name is 'The agent''s unique name.';
comment on column toolsdb.agent_tools.agent_type is 'The agent''s kind, as in toolsdb.agents.agent_type.';
comment on column toolsdb.agent_tools.model_provider is 'Who serves the agent''s model (e.g. anthropic, openai).';
comment on column toolsdb.agent_tools.model_name is 'The model the agent runs on.';
comment on column toolsdb.agent_tools.is_active is 'False for retired agents.';
comment on column toolsdb.agent_tools.mcp_server_names is
'Names of the MCP servers this agent can use (link and server enabled), sorted; empty when none.';
comment on column toolsdb.agent_tools.mcp_server_count is 'How many names mcp_server_names holds.';
