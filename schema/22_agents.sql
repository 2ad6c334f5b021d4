-- schema/22_agents.sql
-- Tier 20: identity. Defines toolsdb.agents (the registry of AI agents: what
-- kind, which model, what they can do), its indexes and its timestamps
-- trigger.
-- Its functions, triggers and row-level security: repeatable/22_agents.sql.
-- Needs: schema/00_bootstrap.sql.

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
