-- repeatable/51_prompt_versions.sql
-- Tier 50: versioned prompts in the manner of prompt registries:
-- toolsdb.prompts holds one row per prompt id and its version counter, so
-- versions are assigned by the database, gapless per prompt, and label moves on
-- one prompt are serialized by that row's lock. toolsdb.prompt_versions holds
-- the versions with free labels; the label production is on at most one version
-- per prompt (a partial unique index), and is_active (the agent-tools API's
-- name) is that label. Audited (label moves are updates of prompt_versions, and
-- prompt_set_label() also writes an explicit audit event).
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/51_prompt_versions.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.prompts
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.prompts is
'Keeps created_at unforgeable and updated_at strictly increasing (toolsdb_private.tg__timestamps()).';

select toolsdb.audit_table('toolsdb.prompts');

create or replace trigger _100_timestamps
before insert or update on toolsdb.prompt_versions
for each row
execute function toolsdb_private.tg__timestamps();

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
