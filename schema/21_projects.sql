-- schema/21_projects.sql
-- Tier 20: identity. Defines toolsdb.projects (software projects, each owned
-- by a user and usually backed by a git repository), its indexes and its
-- timestamps trigger.
-- Its functions, triggers and row-level security: repeatable/21_projects.sql.
-- Needs: schema/20_users.sql.

create table if not exists toolsdb.projects (
    project_id uuid not null default gen_random_uuid(),
    slug text not null,
    name text not null,
    description text,
    repository_url text,
    owner_id uuid not null,
    status text not null default 'active',
    technology_stack jsonb not null default '[]',
    metadata jsonb not null default '{}',
    test_coverage_percent numeric(5, 2),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint projects_pkey primary key (project_id),
    constraint projects_slug_key unique (slug),
    constraint projects_owner_id_fkey foreign key (owner_id)
    references toolsdb.users (user_id) on delete restrict,
    constraint slug_length_is_valid check (char_length(slug) between 1 and 100),
    constraint slug_is_valid check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    constraint name_length_is_valid check (char_length(name) between 1 and 200),
    constraint description_length_is_valid check (char_length(description) between 1 and 10000),
    constraint repository_url_length_is_valid check (char_length(repository_url) between 1 and 2048),
    constraint repository_url_is_valid check (
        repository_url ~ '^(https|ssh|git)://[^[:space:]]+$'
        or repository_url ~ '^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^[:space:]]+$'
    ),
    constraint status_is_valid check (status in ('active', 'paused', 'archived')),
    constraint technology_stack_is_array check (jsonb_typeof(technology_stack) = 'array'),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object'),
    constraint test_coverage_percent_is_valid check (test_coverage_percent between 0 and 100)
);

create index if not exists projects_owner_id_idx on toolsdb.projects (owner_id);

create index if not exists projects_status_idx on toolsdb.projects (status);

create index if not exists projects_repository_url_idx on toolsdb.projects (repository_url);

comment on table toolsdb.projects is
'Software projects worked on by people and agents, usually one git repository each. Archive a '
'project (status = archived) instead of deleting it.';

comment on column toolsdb.projects.project_id is
'Primary key: a random UUID (gen_random_uuid()).';

comment on column toolsdb.projects.slug is
'URL-safe unique identifier: lowercase letters and digits in hyphen-separated words (e.g. '
'agent-notify), at most 100 characters.';

comment on column toolsdb.projects.name is
'Human-readable project name, 1-200 characters.';

comment on column toolsdb.projects.description is
'What the project is about, 1-10000 characters; null if not written yet.';

comment on column toolsdb.projects.repository_url is
'Git remote of the project: an https://, ssh:// or git:// URL, or scp-like user@host:path '
'(e.g. git@github.com:org/repo.git); null if the project has no repository.';

comment on column toolsdb.projects.owner_id is
'User who owns the project (toolsdb.users). A user who still owns projects cannot be deleted '
'(on delete restrict): transfer or delete the projects first, or deactivate the user.';

comment on column toolsdb.projects.status is
'Lifecycle: active (default, work happens), paused (temporarily no work), archived (read-only '
'history).';

comment on column toolsdb.projects.technology_stack is
'JSON array of the technologies used, e.g. ["python", "postgresql"]; default [].';

comment on column toolsdb.projects.metadata is
'Free-form JSON object for integrations and extensions (never secrets); default {}.';

comment on column toolsdb.projects.test_coverage_percent is
'Share of the code covered by tests, 0 to 100 (two decimals), as last reported by CI; null if '
'unknown.';

comment on column toolsdb.projects.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.projects.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';
