-- schema/51_prompt_versions.sql
-- Tier 50: versioned prompts in the manner of prompt registries:
-- toolsdb.prompts holds one row per prompt id and its version counter, so
-- versions are assigned by the database, gapless per prompt, and label moves on
-- one prompt are serialized by that row's lock. toolsdb.prompt_versions holds
-- the versions with free labels; the label production is on at most one version
-- per prompt (a partial unique index), and is_active (the agent-tools API's
-- name) is that label. Audited (label moves are updates of prompt_versions, and
-- prompt_set_label() also writes an explicit audit event).
-- Its functions, triggers and row-level security: repeatable/51_prompt_versions.sql.
-- Needs: schema/00_bootstrap.sql.

create table if not exists toolsdb.prompts (
    prompt_id text not null,
    latest_version integer not null default 0,
    description text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint prompts_pkey primary key (prompt_id),
    constraint prompt_id_is_valid check (prompt_id ~ '^[a-z0-9][a-z0-9_./-]*$' and char_length(prompt_id) <= 200),
    constraint latest_version_is_not_negative check (latest_version >= 0),
    constraint description_length_is_valid check (char_length(description) between 1 and 2000)
);

comment on table toolsdb.prompts is
'One row per prompt id: its description and the counter its versions are numbered from. Made by '
'toolsdb.prompt_create_version() on the first version.';

comment on column toolsdb.prompts.prompt_id is
'The prompt''s name: lowercase letters, digits and _ . / -, at most 200.';

comment on column toolsdb.prompts.latest_version is 'The newest version number (0 before the first).';

comment on column toolsdb.prompts.description is 'What the prompt is for.';

comment on column toolsdb.prompts.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.prompts.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

create table if not exists toolsdb.prompt_versions (
    prompt_id text not null,
    version integer not null,
    prompt_text text not null,
    test_results jsonb not null default '{}',
    labels text[] not null default '{}',
    is_active boolean generated always as ('production' = any(labels)) stored,
    created_by text not null default coalesce(
        nullif(current_setting('toolsdb.actor', true), ''), session_user
    ),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint prompt_versions_pkey primary key (prompt_id, version),
    constraint prompt_versions_prompt_id_fkey foreign key (prompt_id)
    references toolsdb.prompts (prompt_id) on delete cascade,
    constraint version_is_positive check (version >= 1),
    constraint prompt_text_is_not_empty check (char_length(btrim(prompt_text)) >= 1),
    constraint prompt_text_length_is_valid check (char_length(prompt_text) <= 200000),
    constraint test_results_is_object check (jsonb_typeof(test_results) = 'object'),
    constraint labels_are_valid check (
        (cardinality(labels) = 0 or array_to_string(labels, '|') ~ '^[a-z][a-z0-9_.-]*(\|[a-z][a-z0-9_.-]*)*$')
        and cardinality(labels) <= 50 and array_position(labels, null) is null
    ),
    constraint created_by_length_is_valid check (char_length(created_by) between 1 and 200)
);

-- At most one production version per prompt, enforced by the schema.
create unique index if not exists prompt_versions_production_key on toolsdb.prompt_versions (prompt_id)
where 'production' = any(labels);

create index if not exists prompt_versions_labels_idx on toolsdb.prompt_versions using gin (labels);

comment on table toolsdb.prompt_versions is
'Versions of a prompt: text, test results, and labels. Versions are numbered 1, 2, 3, ... per '
'prompt by the database; the label production marks the active version (at most one per prompt: '
'index prompt_versions_production_key); other labels are free (staging, canary, ...). Fetch with '
'toolsdb.prompt_get(); activate with toolsdb.prompt_activate().';

comment on column toolsdb.prompt_versions.prompt_id is 'The prompt (toolsdb.prompts).';

comment on column toolsdb.prompt_versions.version is
'Version number, gapless per prompt, assigned by trigger _050_version.';

comment on column toolsdb.prompt_versions.prompt_text is 'The prompt itself: not blank, at most 200,000 characters.';

comment on column toolsdb.prompt_versions.test_results is 'Outcomes of the prompt''s tests (JSON object).';

comment on column toolsdb.prompt_versions.labels is
'Labels, lowercase (production, staging, ...), at most 50; production is on at most one version per prompt.';

comment on column toolsdb.prompt_versions.is_active is
'is_active, as the agent-tools API names it: true when the version carries production.';

comment on column toolsdb.prompt_versions.created_by is 'Who made it: setting toolsdb.actor, else the database user.';

comment on column toolsdb.prompt_versions.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.prompt_versions.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';
