-- schema/32_evidence.sql
-- Tier 30: the evidence registry: what a decision rests on, how
-- credible it is, whether someone verified it, and what it supports or
-- contradicts. Links agent_executions.evidence_id to it. Audited; row-level
-- security per project.
-- Its functions, triggers and row-level security: repeatable/32_evidence.sql.
-- Needs: schema/20_users.sql, schema/21_projects.sql, schema/30_tasks.sql.

create table if not exists toolsdb.evidence (
    evidence_id uuid not null default gen_random_uuid(),
    project_id uuid not null,
    task_id uuid,
    source_type text not null,
    title text not null,
    content jsonb not null default '{}',
    source_url text,
    credibility_score numeric(3, 2) not null default 0.5,
    is_verified boolean not null default false,
    verified_by_user_id uuid,
    verified_at timestamptz,
    related_evidence uuid[] not null default '{}',
    contradicting_evidence uuid[] not null default '{}',
    tags text[] not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint evidence_pkey primary key (evidence_id),
    constraint evidence_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint evidence_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete set null,
    constraint evidence_verified_by_user_id_fkey foreign key (verified_by_user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint source_type_is_valid check (
        source_type in (
            'code_analysis', 'test_result', 'ai_output', 'human_review', 'documentation', 'log',
            'external', 'other'
        )
    ),
    constraint title_length_is_valid check (char_length(title) between 1 and 500),
    constraint content_is_object check (jsonb_typeof(content) = 'object'),
    constraint source_url_is_valid check (source_url ~ '^https?://\S+$' and char_length(source_url) <= 2048),
    constraint credibility_score_is_valid check (credibility_score between 0 and 1),
    constraint verified_at_matches_is_verified check (is_verified = (verified_at is not null)),
    constraint related_evidence_is_valid check (
        cardinality(related_evidence) <= 100 and array_position(related_evidence, null) is null
        and not evidence_id = any(related_evidence)
    ),
    constraint contradicting_evidence_is_valid check (
        cardinality(contradicting_evidence) <= 100 and array_position(contradicting_evidence, null) is null
        and not evidence_id = any(contradicting_evidence)
    ),
    constraint tags_are_valid check (
        cardinality(tags) <= 50 and array_position(tags, null) is null and array_position(tags, '') is null
    )
);

create index if not exists evidence_project_id_idx on toolsdb.evidence (project_id, created_at);

create index if not exists evidence_task_id_idx on toolsdb.evidence (task_id);

create index if not exists evidence_verified_by_user_id_idx on toolsdb.evidence (verified_by_user_id);

create index if not exists evidence_source_type_idx on toolsdb.evidence (source_type);

create index if not exists evidence_credibility_score_idx on toolsdb.evidence (credibility_score);

create index if not exists evidence_tags_idx on toolsdb.evidence using gin (tags);

comment on table toolsdb.evidence is
'Evidence registry: what decisions rest on (code analysis, test results, AI output, human review, '
'...), with a credibility score from 0 to 1, verification, and links to evidence it supports or '
'contradicts. Agent runs point to it (agent_executions.evidence_id).';

comment on column toolsdb.evidence.evidence_id is 'Primary key: a random UUID.';

comment on column toolsdb.evidence.project_id is 'The project it belongs to.';

comment on column toolsdb.evidence.task_id is 'The task it is about, if any.';

comment on column toolsdb.evidence.source_type is
'code_analysis, test_result, ai_output, human_review, documentation, log, external or other.';

comment on column toolsdb.evidence.title is 'What it shows, 1-500 characters.';

comment on column toolsdb.evidence.content is 'The evidence itself or its summary (JSON object).';

comment on column toolsdb.evidence.source_url is 'Where it comes from (http or https URL), if anywhere.';

comment on column toolsdb.evidence.credibility_score is 'How reliable it is, from 0.00 to 1.00 (default 0.5).';

comment on column toolsdb.evidence.is_verified is 'True once someone attested it (verified_at is set with it).';

comment on column toolsdb.evidence.verified_by_user_id is 'Who verified it, if anyone.';

comment on column toolsdb.evidence.verified_at is 'When it was verified; set by the database.';

comment on column toolsdb.evidence.related_evidence is 'Evidence it supports or builds on (ids, never itself).';

comment on column toolsdb.evidence.contradicting_evidence is 'Evidence it contradicts (ids, never itself).';

comment on column toolsdb.evidence.tags is 'Free tags, GIN-indexed (tags @> array[...]).';

comment on column toolsdb.evidence.created_at is 'When it was recorded; set by trigger _100_timestamps.';

comment on column toolsdb.evidence.updated_at is 'When it last changed; set by trigger _100_timestamps.';
