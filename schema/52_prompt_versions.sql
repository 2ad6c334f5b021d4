-- schema/52_prompt_versions.sql
-- Tier 50: versioned prompts (seed 000) in the manner of prompt registries:
-- toolsdb.prompts holds one row per prompt id and its version counter, so
-- versions are assigned by the database, gapless per prompt, and label
-- moves on one prompt are serialized by that row's lock.
-- toolsdb.prompt_versions holds the versions with free labels; the label
-- production is on at most one version per prompt (a partial unique
-- index), and seed 000's is_active is that label. Audited (label moves are
-- updates of prompt_versions, and prompt_set_label() also writes an
-- explicit audit event).
-- Needs: schema/12_audit.sql, schema/10_timestamps.sql.

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

create or replace trigger _100_timestamps
before insert or update on toolsdb.prompts
for each row
execute function toolsdb_private.tg__timestamps();

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

comment on trigger _100_timestamps on toolsdb.prompts is
'Keeps created_at unforgeable and updated_at strictly increasing (toolsdb_private.tg__timestamps()).';

select toolsdb.audit_table('toolsdb.prompts');

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

create or replace trigger _100_timestamps
before insert or update on toolsdb.prompt_versions
for each row
execute function toolsdb_private.tg__timestamps();

comment on table toolsdb.prompt_versions is
'Versions of a prompt (seed 000): text, test results, and labels. Versions are numbered 1, 2, 3, '
'... per prompt by the database; the label production marks the active version (at most one per '
'prompt: index prompt_versions_production_key); other labels are free (staging, canary, ...). '
'Fetch with toolsdb.prompt_get(); activate with toolsdb.prompt_activate().';
comment on column toolsdb.prompt_versions.prompt_id is 'The prompt (toolsdb.prompts).';
comment on column toolsdb.prompt_versions.version is
'Version number, gapless per prompt, assigned by trigger _050_version.';
comment on column toolsdb.prompt_versions.prompt_text is 'The prompt itself: not blank, at most 200,000 characters.';
comment on column toolsdb.prompt_versions.test_results is 'Outcomes of the prompt''s tests (JSON object).';
comment on column toolsdb.prompt_versions.labels is
'Labels, lowercase (production, staging, ...), at most 50; production is on at most one version per prompt.';
comment on column toolsdb.prompt_versions.is_active is
'Seed 000''s is_active: true when the version carries production.';
comment on column toolsdb.prompt_versions.created_by is 'Who made it: setting toolsdb.actor, else the database user.';
comment on column toolsdb.prompt_versions.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';
comment on column toolsdb.prompt_versions.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

comment on trigger _100_timestamps on toolsdb.prompt_versions is
'Keeps created_at unforgeable and updated_at strictly increasing (toolsdb_private.tg__timestamps()).';

create or replace function toolsdb_private.tg__prompt_version()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if tg_op = 'UPDATE' then
        if (new.prompt_id, new.version, new.prompt_text) is distinct from (old.prompt_id, old.version, old.prompt_text) then
            raise exception 'a prompt version is immutable: make a new version of %', old.prompt_id
                using errcode = 'check_violation', constraint = 'prompt_version_is_immutable';
        end if;
        return new;
    end if;
    insert into toolsdb.prompts as p (prompt_id, latest_version) values (new.prompt_id, 1)
    on conflict on constraint prompts_pkey do update set latest_version = p.latest_version + 1
    returning p.latest_version into new.version;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__prompt_version() is
'Trigger of toolsdb.prompt_versions: a new version takes the prompt''s next number (creating the '
'prompt on its first version; the counter row''s lock makes it gapless under concurrency); the '
'text, number and prompt of a version never change.';

create or replace trigger _050_version
before insert or update on toolsdb.prompt_versions
for each row
execute function toolsdb_private.tg__prompt_version();

comment on trigger _050_version on toolsdb.prompt_versions is
'Numbers new versions per prompt; keeps versions immutable (toolsdb_private.tg__prompt_version()).';

select toolsdb.audit_table('toolsdb.prompt_versions');

create or replace function toolsdb.prompt_create_version(
    prompt_id text,
    prompt_text text,
    test_results jsonb default '{}',
    labels text[] default '{}'
)
returns integer
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.prompt_versions (prompt_id, version, prompt_text, test_results, labels)
    values ($1, 0, $2, coalesce($3, '{}'), coalesce($4, '{}'))
    returning version;
$function$;

comment on function toolsdb.prompt_create_version(text, text, jsonb, text[]) is
'Adds the next version of a prompt (creating the prompt on its first); returns its number. To make '
'it production at once, call toolsdb.prompt_activate() next.';

create or replace function toolsdb.prompt_set_label(prompt_id text, version integer, label text)
returns integer
language plpgsql
volatile
set search_path = ''
as $function$
declare
    previous integer;
begin
    -- The prompt's row lock serializes label moves of one prompt.
    perform from toolsdb.prompts as p where p.prompt_id = prompt_set_label.prompt_id for update;
    if not found or not exists (
        select from toolsdb.prompt_versions as v
        where v.prompt_id = prompt_set_label.prompt_id and v.version = prompt_set_label.version
    ) then
        raise exception 'prompt % has no version %', prompt_set_label.prompt_id, prompt_set_label.version
            using errcode = 'no_data_found';
    end if;
    select v.version into previous
    from toolsdb.prompt_versions as v
    where v.prompt_id = prompt_set_label.prompt_id and label = any(v.labels);
    update toolsdb.prompt_versions as v
    set labels = pg_catalog.array_remove(v.labels, label)
    where v.prompt_id = prompt_set_label.prompt_id and label = any(v.labels)
        and v.version <> prompt_set_label.version;
    update toolsdb.prompt_versions as v
    set labels = v.labels || label
    where v.prompt_id = prompt_set_label.prompt_id and v.version = prompt_set_label.version
        and not label = any(v.labels);
    if previous is distinct from version then
        perform toolsdb.audit_event(
            'prompt_label_moved', 'prompt', prompt_set_label.prompt_id,
            old_values => pg_catalog.jsonb_build_object('label', label, 'version', previous),
            new_values => pg_catalog.jsonb_build_object('label', label, 'version', version)
        );
    end if;
    return previous;
end;
$function$;

comment on function toolsdb.prompt_set_label(text, integer, text) is
'Moves a label to a version of a prompt, atomically (off any other version of that prompt), and '
'records the move as audit event prompt_label_moved; returns the version that had it, or null.';

create or replace function toolsdb.prompt_activate(prompt_id text, version integer)
returns integer
language sql
volatile
set search_path = ''
as $function$
    select toolsdb.prompt_set_label($1, $2, 'production');
$function$;

comment on function toolsdb.prompt_activate(text, integer) is
'Makes a version the active one (label production), taking the label off the version that had it; '
'two concurrent activations leave exactly one active. Returns the previously active version.';

create or replace function toolsdb.prompt_get(
    prompt_id text,
    label text default null,
    version integer default null
)
returns setof toolsdb.prompt_versions
language sql
stable
set search_path = ''
as $function$
    select v.*
    from toolsdb.prompt_versions as v
    where v.prompt_id = $1
        and ($3 is null or v.version = $3)
        and ($2 is null or $2 = any(v.labels))
    order by v.version desc
    limit 1;
$function$;

comment on function toolsdb.prompt_get(text, text, integer) is
'A version of a prompt: by version number, by label (production is the active one), or, with '
'neither, the latest. No row when there is none.';
