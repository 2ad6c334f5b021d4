-- schema/42_memories.sql
-- Tier 40: what an agent remembers, globally or for one user:
-- one entry per agent, user and key (a null user is the global memory, and
-- nulls are not distinct in the key). memory_get() prefers the user's entry
-- and falls back to the global one. Audited.
-- Its functions, triggers and row-level security: repeatable/42_memories.sql.
-- Needs: schema/20_users.sql, schema/22_agents.sql.

create table if not exists toolsdb.memories (
    memory_id uuid not null default gen_random_uuid(),
    agent_id uuid not null,
    user_id uuid,
    key text not null,
    content text not null,
    metadata jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint memories_pkey primary key (memory_id),
    constraint memories_agent_id_user_id_key_key unique nulls not distinct (agent_id, user_id, key),
    constraint memories_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete cascade,
    constraint memories_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete cascade,
    constraint key_is_valid check (key ~ '^[[:graph:]]([[:graph:] ]{0,198}[[:graph:]])?$'),
    constraint content_length_is_valid check (char_length(content) <= 100000),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object')
);

create index if not exists memories_user_id_idx on toolsdb.memories (user_id);

comment on table toolsdb.memories is
'What an agent remembers: an entry per agent, user and key, where a null user is the agent''s '
'global memory. Read with toolsdb.memory_get(), which prefers the user''s entry over the global '
'one; write with toolsdb.memory_set().';

comment on column toolsdb.memories.memory_id is 'Primary key: a random UUID.';

comment on column toolsdb.memories.agent_id is 'The agent that remembers; deleting the agent deletes its memories.';

comment on column toolsdb.memories.user_id is
'The user this memory is about, or null for the agent''s global memory.';

comment on column toolsdb.memories.key is
'Name of the memory, 1-200 visible characters (inner spaces allowed); unique per agent and user.';

comment on column toolsdb.memories.content is 'What is remembered, at most 100,000 characters.';

comment on column toolsdb.memories.metadata is 'Anything else (source, read mode, ...), a JSON object.';

comment on column toolsdb.memories.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.memories.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';
