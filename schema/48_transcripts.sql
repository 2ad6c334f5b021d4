-- schema/48_transcripts.sql
-- Tier 40: what Claude Code's transcripts bring in. toolsdb.transcript_files
-- is the import state of each transcript file (how far it was read, hashes
-- that tell an append from a rewrite); toolsdb.transcript_errors names the
-- lines that could not be read; toolsdb.api_usage holds one row per billed
-- API response (message.id + requestId, counted once however many lines or
-- files repeat it), its five token classes and its cost at the price in force
-- on its day. The lines themselves are toolsdb.messages rows.
-- toolsdb.transcript_ingest() holds every rule (repeatable/48_transcripts.sql);
-- `toolsdb import-transcripts`, `toolsdb hook` and `toolsdb serve` call it.
-- Not audited: import state and usage derived from files (docs/transcripts.md).
-- Its functions, triggers and row-level security: repeatable/48_transcripts.sql.
-- Needs: schema/40_sessions.sql, schema/41_messages.sql.

create table if not exists toolsdb.transcript_files (
    file_id bigint generated always as identity,
    source_host text not null,
    path text not null,
    session_id text,
    subagent_id text,
    read_offset bigint not null default 0,
    size_seen bigint not null default 0,
    mtime_seen timestamptz,
    head_length integer not null default 0,
    head_hash text,
    tail_hash text,
    lines_read bigint not null default 0,
    malformed_lines bigint not null default 0,
    rewrites integer not null default 0,
    last_imported_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint transcript_files_pkey primary key (file_id),
    constraint transcript_files_source_host_path_key unique (source_host, path),
    constraint transcript_files_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete set null,
    constraint source_host_length_is_valid check (char_length(source_host) between 1 and 300),
    constraint path_length_is_valid check (char_length(path) between 1 and 4096),
    constraint subagent_id_length_is_valid check (char_length(subagent_id) between 1 and 200),
    constraint offsets_are_valid check (read_offset >= 0 and size_seen >= 0),
    constraint head_length_is_valid check (head_length between 0 and 4096),
    constraint hashes_are_hex check (head_hash ~ '^[0-9a-f]{64}$' and tail_hash ~ '^[0-9a-f]{64}$'),
    constraint counts_are_not_negative check (lines_read >= 0 and malformed_lines >= 0 and rewrites >= 0)
);

create index if not exists transcript_files_session_id_idx on toolsdb.transcript_files (session_id);

comment on table toolsdb.transcript_files is
'Import state of each Claude Code transcript file, per machine (source_host) and path: how far it '
'was read (read_offset, always just after a whole line), and hashes of its first bytes and of the '
'bytes before read_offset, so a later import reads only what was appended and notices a file that '
'was truncated or rewritten. Written only by toolsdb.transcript_ingest().';

comment on column toolsdb.transcript_files.file_id is 'Primary key.';

comment on column toolsdb.transcript_files.source_host is
'Where the file is: the importing machine''s host name, or serve:<token prefix> for files sent to '
'toolsdb serve.';

comment on column toolsdb.transcript_files.path is 'The file''s absolute path on that machine.';

comment on column toolsdb.transcript_files.session_id is
'The session its lines belong to (subagent files: the parent session).';

comment on column toolsdb.transcript_files.subagent_id is
'For a subagent''s file (subagents/agent-<id>.jsonl), the id.';

comment on column toolsdb.transcript_files.read_offset is
'Bytes read: the offset just after the last whole line imported.';

comment on column toolsdb.transcript_files.size_seen is 'The file''s size at the last import.';

comment on column toolsdb.transcript_files.mtime_seen is 'Its modification time at the last import.';

comment on column toolsdb.transcript_files.head_length is
'How many of its first bytes head_hash covers (at most 4096).';

comment on column toolsdb.transcript_files.head_hash is 'SHA-256 (hex) of its first head_length bytes.';

comment on column toolsdb.transcript_files.tail_hash is 'SHA-256 (hex) of the (up to) 4096 bytes before read_offset.';

comment on column toolsdb.transcript_files.lines_read is
'Whole lines before read_offset (the line number the next import starts after).';

comment on column toolsdb.transcript_files.malformed_lines is
'Lines that could not be read (toolsdb.transcript_errors).';

comment on column toolsdb.transcript_files.rewrites is
'Times the file was found truncated or rewritten and read again from the start.';

comment on column toolsdb.transcript_files.last_imported_at is 'When lines were last imported from it.';

comment on column toolsdb.transcript_files.created_at is
'When the file was first seen; set by trigger _100_timestamps.';

comment on column toolsdb.transcript_files.updated_at is 'When its state last changed; set by trigger _100_timestamps.';

create table if not exists toolsdb.transcript_errors (
    file_id bigint not null,
    byte_offset bigint not null,
    line_number bigint not null,
    error text not null,
    excerpt text not null default '',
    seen_at timestamptz not null default now(),
    constraint transcript_errors_pkey primary key (file_id, byte_offset),
    constraint transcript_errors_file_id_fkey foreign key (file_id)
    references toolsdb.transcript_files (file_id) on delete cascade,
    constraint byte_offset_is_not_negative check (byte_offset >= 0),
    constraint line_number_is_positive check (line_number >= 1),
    constraint error_length_is_valid check (char_length(error) between 1 and 500),
    constraint excerpt_length_is_valid check (char_length(excerpt) <= 200)
);

comment on table toolsdb.transcript_errors is
'The lines of transcript files that could not be imported (not JSON, not an object, a bad '
'timestamp or uuid, too long): counted and named, never a reason to stop an import.';

comment on column toolsdb.transcript_errors.file_id is 'The file (toolsdb.transcript_files).';

comment on column toolsdb.transcript_errors.byte_offset is 'Where the line starts in the file.';

comment on column toolsdb.transcript_errors.line_number is 'Its line number, from 1.';

comment on column toolsdb.transcript_errors.error is 'What is wrong with it, one line.';

comment on column toolsdb.transcript_errors.excerpt is 'Its first 200 characters.';

comment on column toolsdb.transcript_errors.seen_at is 'When it was first found.';

create table if not exists toolsdb.api_usage (
    usage_key text not null,
    session_id text not null,
    message_id uuid,
    occurred_at timestamptz not null,
    model_provider text not null default 'anthropic',
    model_name text not null,
    speed text not null default 'standard',
    service_tier text,
    is_sidechain boolean not null default false,
    subagent_id text,
    input_tokens bigint not null default 0,
    output_tokens bigint not null default 0,
    cache_write_5m_tokens bigint not null default 0,
    cache_write_1h_tokens bigint not null default 0,
    cache_read_tokens bigint not null default 0,
    web_search_requests integer not null default 0,
    web_fetch_requests integer not null default 0,
    cost_usd numeric(20, 10),
    given_cost_usd numeric(14, 6),
    priced_from timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint api_usage_pkey primary key (usage_key),
    constraint api_usage_session_id_fkey foreign key (session_id)
    references toolsdb.sessions (session_id) on delete cascade,
    constraint api_usage_message_id_fkey foreign key (message_id)
    references toolsdb.messages (message_id) on delete set null,
    constraint usage_key_length_is_valid check (char_length(usage_key) between 1 and 500),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint speed_is_valid check (speed in ('standard', 'fast')),
    constraint service_tier_length_is_valid check (char_length(service_tier) between 1 and 50),
    constraint subagent_id_length_is_valid check (char_length(subagent_id) between 1 and 200),
    constraint tokens_are_not_negative check (
        input_tokens >= 0 and output_tokens >= 0 and cache_write_5m_tokens >= 0
        and cache_write_1h_tokens >= 0 and cache_read_tokens >= 0
        and web_search_requests >= 0 and web_fetch_requests >= 0
    ),
    constraint priced_when_costed check ((cost_usd is null) = (priced_from is null))
);

create index if not exists api_usage_occurred_at_idx on toolsdb.api_usage (occurred_at);

create index if not exists api_usage_session_id_idx on toolsdb.api_usage (session_id);

create index if not exists api_usage_message_id_idx on toolsdb.api_usage (message_id);

create index if not exists api_usage_unpriced_idx on toolsdb.api_usage (model_name, occurred_at) where cost_usd is null;

comment on table toolsdb.api_usage is
'One row per billed API response of an imported transcript, counted once however many lines or '
'files repeat it (usage_key: message.id:requestId, as ccusage counts): its model, five token '
'classes and cost at the price in force when it happened. A response written as several lines '
'keeps its largest snapshot (the most output tokens), dated by that line. Row-level security: the '
'application sees the usage of toolsdb.session_id. Written only by toolsdb.transcript_ingest().';

comment on column toolsdb.api_usage.usage_key is
'Primary key: message.id || '':'' || requestId; msg:<message.id> for a line without requestId; '
'line:<uuid> for a line without message.id.';

comment on column toolsdb.api_usage.session_id is 'The session that first brought the response (toolsdb.sessions).';

comment on column toolsdb.api_usage.message_id is
'The message row of the line counted (toolsdb.messages), if still there.';

comment on column toolsdb.api_usage.occurred_at is 'Timestamp of the line counted; reports date the response by it.';

comment on column toolsdb.api_usage.model_provider is 'Who served it: anthropic.';

comment on column toolsdb.api_usage.model_name is
'The model as the API named it (message.model), e.g. claude-sonnet-4-5-20250929.';

comment on column toolsdb.api_usage.speed is 'standard, or fast (fast mode: priced as <model>-fast and reported so).';

comment on column toolsdb.api_usage.service_tier is 'usage.service_tier (standard, priority, batch), if given.';

comment on column toolsdb.api_usage.is_sidechain is 'True for a subagent''s response.';

comment on column toolsdb.api_usage.subagent_id is 'The subagent (agentId) that made it, if any.';

comment on column toolsdb.api_usage.input_tokens is 'Uncached input tokens (usage.input_tokens).';

comment on column toolsdb.api_usage.output_tokens is 'Output tokens (usage.output_tokens).';

comment on column toolsdb.api_usage.cache_write_5m_tokens is
'Tokens written to the 5-minute cache: cache_creation_input_tokens less the 1-hour part (all of it '
'when the split is not given).';

comment on column toolsdb.api_usage.cache_write_1h_tokens is
'Tokens written to the 1-hour cache (cache_creation.ephemeral_1h_input_tokens).';

comment on column toolsdb.api_usage.cache_read_tokens is 'Tokens read from the cache (cache_read_input_tokens).';

comment on column toolsdb.api_usage.web_search_requests is 'server_tool_use.web_search_requests.';

comment on column toolsdb.api_usage.web_fetch_requests is 'server_tool_use.web_fetch_requests.';

comment on column toolsdb.api_usage.cost_usd is
'USD at the price in force at occurred_at (toolsdb.usage_cost), to 10 decimals so that sums of '
'many small responses stay exact; null when the model has no price '
'(toolsdb.unpriced_usage lists them), never 0 for want of a price.';

comment on column toolsdb.api_usage.given_cost_usd is
'The line''s own costUSD, when it carried one (older Claude Code versions).';

comment on column toolsdb.api_usage.priced_from is
'valid_from of the toolsdb.model_prices row that priced it; null when unpriced.';

comment on column toolsdb.api_usage.created_at is 'When it was first imported; set by trigger _100_timestamps.';

comment on column toolsdb.api_usage.updated_at is
'When it last changed (a larger snapshot, a new price); set by trigger _100_timestamps.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.transcript_files', 'import state derived from files: rewritten by every import, the files are the record'),
('toolsdb.transcript_errors', 'a list of unreadable lines derived from files, the files are the record'),
('toolsdb.api_usage', 'usage derived from transcript files: rewritten as snapshots grow and prices change')
on conflict (table_name) do nothing;
