-- schema/37_task_discussion.sql
-- Tier 30: what people and agents attach to a task:
-- toolsdb.task_comments (written by a user or an agent) and
-- toolsdb.task_attachments (files stored elsewhere, described here, possibly
-- evidence). The engineering platform's names: is_ai_generated, ai_metadata,
-- github_comment_id, storage_path, is_evidence, evidence_id.
-- Audited; row-level security per project (the project is filled in from
-- the task by the database).
-- Its functions, triggers and row-level security: repeatable/37_task_discussion.sql.
-- Needs: schema/20_users.sql, schema/21_projects.sql, schema/22_agents.sql,
--        schema/30_tasks.sql, schema/32_evidence.sql.

create table if not exists toolsdb.task_comments (
    comment_id uuid not null default gen_random_uuid(),
    task_id uuid not null,
    project_id uuid not null,
    author_user_id uuid,
    author_agent_id uuid,
    body text not null,
    is_ai_generated boolean not null default false,
    ai_metadata jsonb not null default '{}',
    github_comment_id bigint,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint task_comments_pkey primary key (comment_id),
    constraint task_comments_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint task_comments_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint task_comments_author_user_id_fkey foreign key (author_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint task_comments_author_agent_id_fkey foreign key (author_agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint body_length_is_valid check (char_length(body) between 1 and 100000),
    constraint one_author_at_most check (num_nonnulls(author_user_id, author_agent_id) <= 1),
    constraint ai_metadata_is_object check (jsonb_typeof(ai_metadata) = 'object'),
    constraint github_comment_id_is_positive check (github_comment_id > 0)
);

create index if not exists task_comments_task_id_idx on toolsdb.task_comments (task_id, created_at);

create index if not exists task_comments_project_id_idx on toolsdb.task_comments (project_id);

create index if not exists task_comments_author_user_id_idx on toolsdb.task_comments (author_user_id);

create index if not exists task_comments_author_agent_id_idx on toolsdb.task_comments (author_agent_id);

create unique index if not exists task_comments_project_id_github_comment_id_key
on toolsdb.task_comments (project_id, github_comment_id);

comment on table toolsdb.task_comments is
'Comments on a task, written by a user or an agent (at most one of the two; none once the author '
'is deleted).';

comment on column toolsdb.task_comments.comment_id is 'Primary key: a random UUID.';

comment on column toolsdb.task_comments.task_id is 'The task; comments go with it.';

comment on column toolsdb.task_comments.project_id is 'The task''s project, filled in by the database.';

comment on column toolsdb.task_comments.author_user_id is 'The user who wrote it, if a user did.';

comment on column toolsdb.task_comments.author_agent_id is 'The agent that wrote it, if an agent did.';

comment on column toolsdb.task_comments.body is 'The comment (Markdown), 1-100,000 characters.';

comment on column toolsdb.task_comments.is_ai_generated is
'True when an AI wrote it: always for a comment of an agent (set by the database, kept when the '
'agent is deleted), or set by the writer for a user''s comment drafted by an AI. Default false.';

comment on column toolsdb.task_comments.ai_metadata is
'JSON object: how an AI generated it (model, prompt version, tokens, ...); default {}.';

comment on column toolsdb.task_comments.github_comment_id is
'The GitHub comment it mirrors, if any; unique within the project (upsert on it when syncing).';

comment on column toolsdb.task_comments.created_at is 'When it was written; set by trigger _100_timestamps.';

comment on column toolsdb.task_comments.updated_at is 'When it was last edited; set by trigger _100_timestamps.';

create table if not exists toolsdb.task_attachments (
    attachment_id uuid not null default gen_random_uuid(),
    task_id uuid not null,
    project_id uuid not null,
    file_name text not null,
    content_type text not null default 'application/octet-stream',
    size_bytes bigint not null,
    storage_path text not null,
    checksum_sha256 text,
    uploaded_by_user_id uuid,
    uploaded_by_agent_id uuid,
    is_evidence boolean not null default false,
    evidence_id uuid,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint task_attachments_pkey primary key (attachment_id),
    constraint task_attachments_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint task_attachments_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint task_attachments_uploaded_by_user_id_fkey foreign key (uploaded_by_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint task_attachments_uploaded_by_agent_id_fkey foreign key (uploaded_by_agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint task_attachments_evidence_id_fkey foreign key (evidence_id)
    references toolsdb.evidence (evidence_id) on delete set null,
    constraint file_name_is_valid check (char_length(file_name) between 1 and 255 and file_name !~ '[/\\]'),
    constraint content_type_is_valid check (
        content_type ~ '^[a-z]+/[A-Za-z0-9.+_-]+$' and char_length(content_type) <= 255
    ),
    constraint size_bytes_is_valid check (size_bytes >= 0),
    constraint storage_path_is_valid check (
        (storage_path ~ '^(https?|s3|gs|file)://\S+$' or storage_path ~ '^[A-Za-z0-9._-][^\s\\]*$')
        and storage_path !~ '(^|/)\.\.(/|$)' and char_length(storage_path) <= 2048
    ),
    constraint checksum_sha256_is_valid check (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    constraint one_uploader_at_most check (num_nonnulls(uploaded_by_user_id, uploaded_by_agent_id) <= 1),
    constraint evidence_link_is_marked check (evidence_id is null or is_evidence)
);

create index if not exists task_attachments_task_id_idx on toolsdb.task_attachments (task_id);

create index if not exists task_attachments_project_id_idx on toolsdb.task_attachments (project_id);

create index if not exists task_attachments_uploaded_by_user_id_idx on toolsdb.task_attachments (uploaded_by_user_id);

create index if not exists task_attachments_uploaded_by_agent_id_idx
on toolsdb.task_attachments (uploaded_by_agent_id);

create index if not exists task_attachments_evidence_id_idx on toolsdb.task_attachments (evidence_id);

create index if not exists task_attachments_is_evidence_idx
on toolsdb.task_attachments (task_id) where is_evidence;

comment on table toolsdb.task_attachments is
'Files attached to a task: stored elsewhere (storage_path), described here with size, type and '
'checksum; an attachment may be evidence (is_evidence, evidence_id).';

comment on column toolsdb.task_attachments.attachment_id is 'Primary key: a random UUID.';

comment on column toolsdb.task_attachments.task_id is 'The task; attachments go with it.';

comment on column toolsdb.task_attachments.project_id is 'The task''s project, filled in by the database.';

comment on column toolsdb.task_attachments.file_name is 'File name without a path, 1-255 characters.';

comment on column toolsdb.task_attachments.content_type is 'MIME type, e.g. image/png.';

comment on column toolsdb.task_attachments.size_bytes is 'Size in bytes.';

comment on column toolsdb.task_attachments.storage_path is
'Where the file is: an http(s), s3, gs or file URL, or an object key relative to the platform''s '
'storage (e.g. tasks/42/trace.log; no leading slash, no .. segment), at most 2048 characters.';

comment on column toolsdb.task_attachments.checksum_sha256 is 'SHA-256 of the content, lowercase hex, if known.';

comment on column toolsdb.task_attachments.uploaded_by_user_id is 'The user who attached it, if a user did.';

comment on column toolsdb.task_attachments.uploaded_by_agent_id is 'The agent that attached it, if an agent did.';

comment on column toolsdb.task_attachments.is_evidence is
'True when the file is evidence for the task: set by the database when evidence_id is given, kept '
'when that evidence is deleted; partially indexed (where is_evidence).';

comment on column toolsdb.task_attachments.evidence_id is
'The evidence entry (toolsdb.evidence) the file supports, of the same project; null when none '
'or once the evidence is deleted.';

comment on column toolsdb.task_attachments.created_at is 'When it was attached; set by trigger _100_timestamps.';

comment on column toolsdb.task_attachments.updated_at is 'When it last changed; set by trigger _100_timestamps.';
