-- schema/41_messages.sql
-- Tier 40: the messages of a session: role, content, tool calls,
-- tokens, and a gapless position within the session that the database
-- assigns (from sessions.message_count, so two writers never collide).
-- Row-level security per session; not audited (the conversation is the
-- record, and an immutable copy of its content would defeat deleting it).
-- Its functions, triggers and row-level security: repeatable/41_messages.sql.
-- Needs: schema/40_sessions.sql.

create table if not exists toolsdb.messages (
    message_id uuid not null default gen_random_uuid(),
    session_id text not null,
    position integer not null,
    role text not null,
    content text not null default '',
    tool_calls jsonb not null default '[]',
    tokens integer,
    metadata jsonb not null default '{}',
    created_at timestamptz not null default now(),
    kind text,
    source_uuid uuid,
    parent_uuid uuid,
    logical_parent_uuid uuid,
    occurred_at timestamptz,
    model text,
    api_message_id text,
    request_id text,
    stop_reason text,
    is_sidechain boolean not null default false,
    subagent_id text,
    constraint messages_pkey primary key (message_id),
    constraint messages_session_id_position_key unique (session_id, position),
    constraint messages_session_id_source_uuid_key unique (session_id, source_uuid),
    constraint messages_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint position_is_positive check (position >= 1),
    constraint role_is_valid check (role in ('system', 'user', 'assistant', 'tool')),
    constraint content_length_is_valid check (char_length(content) <= 1000000),
    constraint tool_calls_is_array check (jsonb_typeof(tool_calls) = 'array'),
    constraint tokens_is_not_negative check (tokens >= 0),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object'),
    constraint kind_is_valid check (kind in (
        'prompt', 'text', 'thinking', 'tool_use', 'tool_result', 'compact_boundary', 'compact_summary', 'api_error'
    )),
    constraint model_length_is_valid check (char_length(model) between 1 and 200),
    constraint api_message_id_length_is_valid check (char_length(api_message_id) between 1 and 200),
    constraint request_id_length_is_valid check (char_length(request_id) between 1 and 200),
    constraint stop_reason_length_is_valid check (char_length(stop_reason) between 1 and 100),
    constraint subagent_id_length_is_valid check (char_length(subagent_id) between 1 and 200)
);

comment on table toolsdb.messages is
'The messages of an agent session in order: who spoke (role), what was said, the tool calls made '
'and the tokens used. position is assigned by the database, gapless per session. Row-level '
'security: the application sees only the messages of toolsdb.session_id.';

comment on column toolsdb.messages.message_id is 'Primary key: a random UUID.';

comment on column toolsdb.messages.session_id is 'The session (toolsdb.sessions); deleting it deletes its messages.';

comment on column toolsdb.messages.position is
'Order within the session, 1, 2, 3, ... without gaps; set by trigger _050_position, never changed.';

comment on column toolsdb.messages.role is 'Who produced it: system, user, assistant or tool.';

comment on column toolsdb.messages.content is 'The text, at most 1,000,000 characters.';

comment on column toolsdb.messages.tool_calls is
'Tool calls the message made, a JSON array, e.g. [{"name": "Edit", "input": {...}}]; default [].';

comment on column toolsdb.messages.tokens is 'Tokens the message counted, if known.';

comment on column toolsdb.messages.metadata is 'Anything else (channel payload, model, ...), a JSON object.';

comment on column toolsdb.messages.created_at is 'When the message was stored.';

comment on column toolsdb.messages.kind is
'For a line of a Claude Code transcript, what it is: prompt, text, thinking, tool_use, '
'tool_result, compact_boundary, compact_summary or api_error; null for messages written otherwise.';

comment on column toolsdb.messages.source_uuid is
'The transcript line''s uuid; unique per session, so importing a line again adds nothing.';

comment on column toolsdb.messages.parent_uuid is 'The line''s parentUuid: the line it follows in the conversation.';

comment on column toolsdb.messages.logical_parent_uuid is
'logicalParentUuid: after a compaction, the line it follows logically.';

comment on column toolsdb.messages.occurred_at is
'The line''s timestamp: when it was said (created_at is when it was stored).';

comment on column toolsdb.messages.model is 'The model that wrote it (assistant lines).';

comment on column toolsdb.messages.api_message_id is
'The API response''s message.id (assistant lines; several lines can share it).';

comment on column toolsdb.messages.request_id is 'The API request''s requestId (assistant lines).';

comment on column toolsdb.messages.stop_reason is 'message.stop_reason, on the last line of a response.';

comment on column toolsdb.messages.is_sidechain is 'True for a subagent''s line (isSidechain).';

comment on column toolsdb.messages.subagent_id is 'The subagent (agentId) whose line it is, if any.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.messages', 'conversation content: the rows are the record, and an immutable copy would defeat deleting it')
on conflict (table_name) do nothing;
