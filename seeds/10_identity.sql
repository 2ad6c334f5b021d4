-- seeds/10_identity.sql
-- Demo identity data for development: users (an admin, a manager, a user and
-- a service account), two projects, five agents, two MCP servers (one stdio,
-- one http), the agent/server links and per-category preferences.
-- Idempotent: every insert upserts on the table's natural key and only
-- updates a row whose values differ, so a second run changes nothing (not
-- even updated_at). Foreign keys are looked up by natural key; a missing
-- parent makes the insert fail (not null violation) instead of skipping rows.
-- Needs: schema/20_users.sql .. schema/25_preferences.sql.

-- Users: natural key lower(username).
insert into toolsdb.users as u (
    username, email, display_name, role, is_active, metadata, preferences
)
values
(
    'alice', 'alice@example.com', 'Alice Admin', 'admin', true,
    '{"team": "platform"}'::jsonb, '{"timezone": "Europe/Paris"}'::jsonb
),
(
    'bob', 'bob@example.com', 'Bob Manager', 'manager', true,
    '{"team": "agents"}'::jsonb, '{"timezone": "America/New_York"}'::jsonb
),
(
    'carol', 'carol@example.com', 'Carol Developer', 'user', true,
    '{"team": "agents"}'::jsonb, '{}'::jsonb
),
(
    'toolsdb-bot', 'toolsdb-bot@example.com', 'toolsdb automation', 'service', true,
    '{"purpose": "CI and hook automation"}'::jsonb, '{}'::jsonb
)
on conflict ((lower(username))) do update
    set
        email = excluded.email,
        display_name = excluded.display_name,
        role = excluded.role,
        is_active = excluded.is_active,
        metadata = excluded.metadata,
        preferences = excluded.preferences
    where
    (u.email, u.display_name, u.role, u.is_active, u.metadata, u.preferences)
    is distinct from
    (excluded.email, excluded.display_name, excluded.role, excluded.is_active, excluded.metadata, excluded.preferences);

-- Projects: natural key slug; owner looked up by username.
insert into toolsdb.projects as p (
    slug, name, description, repository_url, owner_id, status, technology_stack, metadata
)
select
    v.slug,
    v.name,
    v.description,
    v.repository_url,
    (
        select o.user_id from toolsdb.users as o
        where lower(o.username) = lower(v.owner_username)
    ) as owner_id,
    v.status,
    v.technology_stack,
    v.metadata
from (
    values
    (
        'toolsdb', 'toolsdb',
        'The PostgreSQL schema package behind the coding-agent tools.',
        'https://github.com/example/toolsdb.git', 'alice', 'active',
        '["python", "postgresql", "redis"]'::jsonb, '{"default_branch": "main"}'::jsonb
    ),
    (
        'agent-notify', 'Agent notifications',
        'Slack, Discord and email notifications for coding-agent hook events.',
        'git@github.com:example/agent-notify.git', 'carol', 'paused',
        '["python", "slack", "discord"]'::jsonb, '{}'::jsonb
    )
) as v (slug, name, description, repository_url, owner_username, status, technology_stack, metadata)
on conflict (slug) do update
    set
        name = excluded.name,
        description = excluded.description,
        repository_url = excluded.repository_url,
        owner_id = excluded.owner_id,
        status = excluded.status,
        technology_stack = excluded.technology_stack,
        metadata = excluded.metadata
    where
    (p.name, p.description, p.repository_url, p.owner_id, p.status, p.technology_stack, p.metadata)
    is distinct from
    (
        excluded.name, excluded.description, excluded.repository_url, excluded.owner_id,
        excluded.status, excluded.technology_stack, excluded.metadata
    );

-- Agents: natural key name.
insert into toolsdb.agents as a (
    name, agent_type, description, model_provider, model_name,
    capabilities, tags, is_active, is_experimental, config
)
values
(
    'claude-code', 'coding', 'Anthropic''s terminal coding agent.', 'anthropic', 'claude-sonnet-4-5',
    '{"languages": ["python", "sql", "typescript"], "can_open_prs": true, "uses_mcp": true}'::jsonb,
    array['coding', 'cli', 'mcp'], true, false, '{"max_turns": 50}'::jsonb
),
(
    'codex', 'coding', 'OpenAI''s terminal coding agent.', 'openai', 'gpt-5-codex',
    '{"languages": ["python", "go", "typescript"], "can_open_prs": true, "uses_mcp": true}'::jsonb,
    array['coding', 'cli', 'mcp'], true, false, '{"approval_mode": "suggest"}'::jsonb
),
(
    'gemini-cli', 'coding', 'Google''s terminal coding agent.', 'google', 'gemini-2.5-pro',
    '{"languages": ["python", "java"], "can_open_prs": false, "uses_mcp": true}'::jsonb,
    array['coding', 'cli'], true, true, '{}'::jsonb
),
(
    'pr-reviewer', 'review', 'Reviews pull requests and posts findings as comments.', 'anthropic', 'claude-opus-4-1',
    '{"can_comment": true, "can_approve": false}'::jsonb,
    array['review', 'github'], true, false, '{"max_files": 200}'::jsonb
),
(
    'local-coder', 'coding', 'A small local model for offline experiments.', 'ollama', 'qwen2.5-coder:7b',
    '{"languages": ["python"], "can_open_prs": false, "uses_mcp": false}'::jsonb,
    array['coding', 'local'], false, true, '{"temperature": 0.2}'::jsonb
)
on conflict (name) do update
    set
        agent_type = excluded.agent_type,
        description = excluded.description,
        model_provider = excluded.model_provider,
        model_name = excluded.model_name,
        capabilities = excluded.capabilities,
        tags = excluded.tags,
        is_active = excluded.is_active,
        is_experimental = excluded.is_experimental,
        config = excluded.config
    where
    (
        a.agent_type, a.description, a.model_provider, a.model_name, a.capabilities,
        a.tags, a.is_active, a.is_experimental, a.config
    )
    is distinct from
    (
        excluded.agent_type, excluded.description, excluded.model_provider, excluded.model_name,
        excluded.capabilities, excluded.tags, excluded.is_active, excluded.is_experimental, excluded.config
    );

-- MCP servers: natural key name. No secrets in env (see the column comment).
insert into toolsdb.mcp_servers as m (
    name, description, transport, command, args, url, env, is_enabled, auto_start, timeout_ms
)
values
(
    'filesystem', 'Read and write files under /workspace (stdio).', 'stdio', 'npx',
    array['-y', '@modelcontextprotocol/server-filesystem', '/workspace'], null,
    '{"LOG_LEVEL": "info"}'::jsonb, true, true, 30000
),
(
    'toolsdb-http', 'toolsdb tools (schema validator, vision cache, prompts) over streamable HTTP.', 'http', null,
    array[]::text[], 'http://127.0.0.1:8765/mcp',
    '{}'::jsonb, true, false, 60000
)
on conflict (name) do update
    set
        description = excluded.description,
        transport = excluded.transport,
        command = excluded.command,
        args = excluded.args,
        url = excluded.url,
        env = excluded.env,
        is_enabled = excluded.is_enabled,
        auto_start = excluded.auto_start,
        timeout_ms = excluded.timeout_ms
    where
    (m.description, m.transport, m.command, m.args, m.url, m.env, m.is_enabled, m.auto_start, m.timeout_ms)
    is distinct from
    (
        excluded.description, excluded.transport, excluded.command, excluded.args, excluded.url,
        excluded.env, excluded.is_enabled, excluded.auto_start, excluded.timeout_ms
    );

-- Agent/MCP server links: natural key (agent, server) looked up by names.
insert into toolsdb.agent_mcp_servers as l (agent_id, mcp_server_id, is_enabled)
select
    (
        select ag.agent_id from toolsdb.agents as ag
        where ag.name = v.agent_name
    ) as agent_id,
    (
        select ms.mcp_server_id from toolsdb.mcp_servers as ms
        where ms.name = v.server_name
    ) as mcp_server_id,
    v.is_enabled
from (
    values
    ('claude-code', 'filesystem', true),
    ('claude-code', 'toolsdb-http', true),
    ('codex', 'filesystem', true),
    ('gemini-cli', 'filesystem', false),
    ('pr-reviewer', 'toolsdb-http', true)
) as v (agent_name, server_name, is_enabled)
on conflict (agent_id, mcp_server_id) do update
    set is_enabled = excluded.is_enabled
    where l.is_enabled is distinct from excluded.is_enabled;

-- Preferences: natural key (user, category); user looked up by username.
insert into toolsdb.preferences as pr (user_id, category, preferences)
select
    (
        select us.user_id from toolsdb.users as us
        where lower(us.username) = lower(v.username)
    ) as user_id,
    v.category,
    v.preferences
from (
    values
    (
        'alice', 'ui_settings',
        '{"theme": "dark", "language": "en", "notifications": {"email": true, "push": false}}'::jsonb
    ),
    ('alice', 'agent_defaults', '{"default_agent": "claude-code", "auto_approve": false}'::jsonb),
    (
        'bob', 'ui_settings',
        '{"theme": "light", "language": "en", "notifications": {"email": false, "push": true}}'::jsonb
    ),
    (
        'carol', 'ui_settings',
        '{"theme": "dark", "language": "fr", "notifications": {"email": true, "push": true}}'::jsonb
    ),
    ('toolsdb-bot', 'notifications', '{"channels": ["slack"], "quiet_hours": null}'::jsonb)
) as v (username, category, preferences)
on conflict (user_id, category) do update
    set preferences = excluded.preferences
    where pr.preferences is distinct from excluded.preferences;
