-- migrations/0007.agent_tools.sql
-- Agent tools (seed 000), first slice: the vision-analysis cache with its
-- lock-free hit counter, bug escalation (and error_logs.bug_id), and
-- versioned prompts with labels. The same statements as schema/50..52.
-- depends: 0006.runtime
--
-- Every index here is on a table created in this same migration, but
-- error_logs_bug_id_idx: error_logs holds errors, not events (small), so a
-- plain build's brief share lock is harmless, and `toolsdb migrate` runs in
-- one transaction, where a concurrent build is impossible.
-- squawk-ignore-file require-concurrent-index-creation

-- ---- from schema/50_vision_cache.sql ----

create table if not exists toolsdb.vision_cache (
    image_hash text not null,
    model_version text not null,
    extracted_data jsonb not null default '{}',
    confidence_score double precision not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    hit_count bigint not null default 0,
    last_hit_at timestamptz,
    constraint vision_cache_pkey primary key (image_hash, model_version),
    constraint image_hash_is_sha256 check (image_hash ~ '^[0-9a-f]+$' and char_length(image_hash) = 64),
    constraint model_version_is_valid check (model_version ~ '^[[:graph:]]+$' and char_length(model_version) <= 100),
    constraint extracted_data_is_object check (jsonb_typeof(extracted_data) = 'object'),
    constraint confidence_score_is_valid check (confidence_score between 0 and 1),
    constraint expires_after_creation check (expires_at > created_at),
    constraint hit_count_is_not_negative check (hit_count >= 0)
);

create index if not exists vision_cache_expires_at_idx on toolsdb.vision_cache (expires_at);

comment on table toolsdb.vision_cache is
'Vision-analysis results (seed 000), one per image (SHA-256 of its bytes) and model version, '
'until expires_at. Read with toolsdb.vision_cache_get() (counts the hit), write with '
'toolsdb.vision_cache_store(), clean with toolsdb.vision_cache_purge_expired().';
comment on column toolsdb.vision_cache.image_hash is 'SHA-256 of the image, 64 lowercase hex digits.';
comment on column toolsdb.vision_cache.model_version is 'The model (and version) that analysed it, e.g. v1.0.';
comment on column toolsdb.vision_cache.extracted_data is 'What the analysis found (JSON object).';
comment on column toolsdb.vision_cache.confidence_score is 'Confidence of the analysis, 0 to 1.';
comment on column toolsdb.vision_cache.created_at is 'When it was stored (or last replaced).';
comment on column toolsdb.vision_cache.expires_at is 'After this the entry is a miss, and purge removes it.';
comment on column toolsdb.vision_cache.hit_count is
'Hits folded in by toolsdb.vision_cache_flush_hits(); add the pending rows of vision_cache_hits '
'for the exact figure (toolsdb.vision_cache_stats does).';
comment on column toolsdb.vision_cache.last_hit_at is 'Latest hit folded in, null if none yet.';

create unlogged table if not exists toolsdb.vision_cache_hits (
    hit_id bigint generated always as identity,
    image_hash text not null,
    model_version text not null,
    hit_at timestamptz not null default now(),
    constraint vision_cache_hits_pkey primary key (hit_id),
    constraint image_hash_is_sha256 check (image_hash ~ '^[0-9a-f]+$' and char_length(image_hash) = 64),
    constraint model_version_is_valid check (model_version ~ '^[[:graph:]]+$' and char_length(model_version) <= 100)
);

comment on table toolsdb.vision_cache_hits is
'Cache hits not yet folded into toolsdb.vision_cache.hit_count: one appended row per hit, so '
'concurrent readers of one entry never wait for each other. Unlogged: a crash may lose hits not '
'yet flushed (counts only, never cache data). No foreign key, for the same reason.';
comment on column toolsdb.vision_cache_hits.hit_id is 'Increasing id.';
comment on column toolsdb.vision_cache_hits.image_hash is 'The image hit.';
comment on column toolsdb.vision_cache_hits.model_version is 'The model version hit.';
comment on column toolsdb.vision_cache_hits.hit_at is 'When.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.vision_cache', 'a cache: entries are derived data and hits are not audit events'),
('toolsdb.vision_cache_hits', 'hit counter rows of the cache, not audit events')
on conflict (table_name) do nothing;

create or replace function toolsdb.vision_cache_store(
    image_hash text,
    extracted_data jsonb,
    confidence_score double precision,
    model_version text,
    ttl interval default '30 days'
)
returns timestamptz
language plpgsql
volatile
set search_path = ''
as $function$
declare
    expiry timestamptz;
begin
    if ttl is null or ttl <= interval '0' then
        raise exception 'ttl must be a positive interval, not %', ttl using errcode = 'invalid_parameter_value';
    end if;
    insert into toolsdb.vision_cache as v (
        image_hash, model_version, extracted_data, confidence_score, created_at, expires_at
    )
    values ($1, $4, coalesce($2, '{}'), $3, pg_catalog.now(), pg_catalog.now() + ttl)
    on conflict on constraint vision_cache_pkey do update
    set extracted_data = excluded.extracted_data,
        confidence_score = excluded.confidence_score,
        created_at = excluded.created_at,
        expires_at = excluded.expires_at
    returning v.expires_at into expiry;
    return expiry;
end;
$function$;

comment on function toolsdb.vision_cache_store(text, jsonb, double precision, text, interval) is
'Stores (or replaces) the analysis of an image by a model version, live for ttl (default 30 '
'days); returns when it expires. Hit counts survive a replacement.';

create or replace function toolsdb.vision_cache_get(image_hash text, model_version text default null)
returns setof toolsdb.vision_cache
language plpgsql
volatile
set search_path = ''
as $function$
declare
    found_entry toolsdb.vision_cache;
begin
    select v.* into found_entry
    from toolsdb.vision_cache as v
    where v.image_hash = $1
        and ($2 is null or v.model_version = $2)
        and v.expires_at > pg_catalog.now()
    order by v.created_at desc
    limit 1;
    if found then
        insert into toolsdb.vision_cache_hits (image_hash, model_version)
        values (found_entry.image_hash, found_entry.model_version);
        return next found_entry;
    end if;
end;
$function$;

comment on function toolsdb.vision_cache_get(text, text) is
'The live entry for an image and model version (without a version: the newest live entry of the '
'image), and counts the hit; no row for a miss or an expired entry. Never locks the entry.';

create or replace function toolsdb.vision_cache_flush_hits()
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    folded bigint;
begin
    with taken as (
        delete from toolsdb.vision_cache_hits returning image_hash, model_version, hit_at
    ),
    per_entry as (
        select t.image_hash, t.model_version, pg_catalog.count(*) as hits, pg_catalog.max(t.hit_at) as last_hit
        from taken as t
        group by t.image_hash, t.model_version
    ),
    folded_rows as (
        update toolsdb.vision_cache as v
        set hit_count = v.hit_count + p.hits,
            last_hit_at = greatest(v.last_hit_at, p.last_hit)
        from per_entry as p
        where v.image_hash = p.image_hash and v.model_version = p.model_version
        returning p.hits
    )
    select coalesce(pg_catalog.sum(f.hits), 0) into folded from folded_rows as f;
    return folded;
end;
$function$;

comment on function toolsdb.vision_cache_flush_hits() is
'Folds the appended hits into vision_cache.hit_count and last_hit_at, one update per entry, and '
'empties vision_cache_hits; returns how many hits it folded (hits of entries gone meanwhile are '
'dropped). Run it from a scheduler every minute or so.';

create or replace function toolsdb.vision_cache_purge_expired()
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    purged bigint;
begin
    delete from toolsdb.vision_cache as v where v.expires_at <= pg_catalog.now();
    get diagnostics purged = row_count;
    return purged;
end;
$function$;

comment on function toolsdb.vision_cache_purge_expired() is
'Deletes the expired entries of toolsdb.vision_cache; returns how many.';

create or replace function toolsdb.vision_cache_stats()
returns table (
    model_version text,
    entries bigint,
    live bigint,
    expired bigint,
    hits bigint,
    hit_ratio double precision
)
language sql
stable
set search_path = ''
as $function$
    with pending as (
        select h.model_version, pg_catalog.count(*) as hits
        from toolsdb.vision_cache_hits as h
        group by h.model_version
    ),
    per_version as (
        select
            v.model_version,
            pg_catalog.count(*) as entries,
            pg_catalog.count(*) filter (where v.expires_at > pg_catalog.now()) as live,
            pg_catalog.count(*) filter (where v.expires_at <= pg_catalog.now()) as expired,
            pg_catalog.sum(v.hit_count) as hits
        from toolsdb.vision_cache as v
        group by v.model_version
    )
    select
        p.model_version,
        p.entries,
        p.live,
        p.expired,
        (p.hits + coalesce(h.hits, 0))::bigint,
        (p.hits + coalesce(h.hits, 0))::double precision / nullif(p.hits + coalesce(h.hits, 0) + p.entries, 0)
    from per_version as p
    left join pending as h on p.model_version = h.model_version
    order by p.model_version;
$function$;

comment on function toolsdb.vision_cache_stats() is
'Per model version: entries, live, expired, hits (folded and pending) and hit_ratio = hits / '
'(hits + entries), each store counting as the miss that filled it.';

-- ---- from schema/51_bug_escalations.sql ----

create table if not exists toolsdb.bug_escalations (
    bug_id text not null,
    error_type text not null,
    error_message text not null,
    frequency integer not null default 1,
    user_impact text not null,
    status text not null default 'pending',
    first_seen_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    assigned_to uuid,
    reopened_count integer not null default 0,
    resolved_at timestamptz,
    escalation_priority integer generated always as (
        case user_impact when 'critical' then 300 when 'high' then 200 when 'medium' then 100 else 0 end
        + least(99, floor(10 * log(2, frequency))::integer)
    ) stored,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint bug_escalations_pkey primary key (bug_id),
    constraint bug_escalations_assigned_to_fkey foreign key (assigned_to)
    references toolsdb.users (user_id) on delete set null,
    constraint bug_id_is_valid check (bug_id ~ '^[[:graph:]]+$' and char_length(bug_id) <= 200),
    constraint error_type_length_is_valid check (char_length(error_type) between 1 and 200),
    constraint error_message_length_is_valid check (char_length(error_message) between 1 and 10000),
    constraint frequency_is_positive check (frequency >= 1),
    constraint user_impact_is_valid check (user_impact in ('low', 'medium', 'high', 'critical')),
    constraint status_is_valid check (status in ('pending', 'acknowledged', 'resolved')),
    constraint last_seen_after_first check (last_seen_at >= first_seen_at),
    constraint reopened_count_is_not_negative check (reopened_count >= 0),
    constraint resolved_at_matches_status check ((status = 'resolved') = (resolved_at is not null))
);

create index if not exists bug_escalations_assigned_to_idx on toolsdb.bug_escalations (assigned_to);

create index if not exists bug_escalations_queue_idx on toolsdb.bug_escalations (
    escalation_priority desc, last_seen_at desc
) where status <> 'resolved';

create or replace trigger _100_timestamps
before insert or update on toolsdb.bug_escalations
for each row
execute function toolsdb_private.tg__timestamps();

comment on table toolsdb.bug_escalations is
'Bugs to escalate (seed 000), one per bug id: how often they occur, whom they hurt, who handles '
'them. Report with toolsdb.report_bug() (counts an occurrence; reopens a resolved bug), move with '
'toolsdb.bug_escalation_move(); the queue in priority order is the view toolsdb.escalation_queue.';
comment on column toolsdb.bug_escalations.bug_id is
'The reporter''s identifier of the bug (unique), 1-200 visible characters.';
comment on column toolsdb.bug_escalations.error_type is 'Classification, e.g. CriticalError.';
comment on column toolsdb.bug_escalations.error_message is 'The latest message reported, 1-10,000 characters.';
comment on column toolsdb.bug_escalations.frequency is 'How many times it was reported.';
comment on column toolsdb.bug_escalations.user_impact is 'low, medium, high or critical: the highest reported.';
comment on column toolsdb.bug_escalations.status is
'pending, acknowledged or resolved; moves: pending -> acknowledged | resolved, acknowledged -> '
'pending | resolved, resolved -> pending (a reopening).';
comment on column toolsdb.bug_escalations.first_seen_at is 'First report.';
comment on column toolsdb.bug_escalations.last_seen_at is 'Latest report.';
comment on column toolsdb.bug_escalations.assigned_to is 'The user handling it, if any.';
comment on column toolsdb.bug_escalations.reopened_count is 'How many times it came back after being resolved.';
comment on column toolsdb.bug_escalations.resolved_at is 'When it was resolved; set exactly while resolved.';
comment on column toolsdb.bug_escalations.escalation_priority is
'Derived: 100 x impact rank (low 0, medium 1, high 2, critical 3) + min(99, floor(10 x log2(frequency))): '
'impact always dominates, frequency orders within an impact (1 -> 0, 2 -> 10, 10 -> 33, 1000 -> 99).';
comment on column toolsdb.bug_escalations.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';
comment on column toolsdb.bug_escalations.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

comment on trigger _100_timestamps on toolsdb.bug_escalations is
'Keeps created_at unforgeable and updated_at strictly increasing (toolsdb_private.tg__timestamps()).';

create or replace function toolsdb_private.tg__bug_lifecycle()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if new.status is distinct from old.status then
        if (old.status, new.status) not in (
            ('pending', 'acknowledged'), ('pending', 'resolved'), ('acknowledged', 'pending'),
            ('acknowledged', 'resolved'), ('resolved', 'pending')
        ) then
            raise exception 'bug % cannot move from % to %', old.bug_id, old.status, new.status
                using errcode = 'object_not_in_prerequisite_state';
        end if;
        new.resolved_at := case when new.status = 'resolved' then pg_catalog.now() end;
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__bug_lifecycle() is
'Trigger of toolsdb.bug_escalations: only the lifecycle''s moves are allowed (else 55000 naming '
'both states), and resolved_at follows the status.';

create or replace trigger _050_lifecycle
before update on toolsdb.bug_escalations
for each row
execute function toolsdb_private.tg__bug_lifecycle();

comment on trigger _050_lifecycle on toolsdb.bug_escalations is
'Enforces the status lifecycle and keeps resolved_at (toolsdb_private.tg__bug_lifecycle()).';

select toolsdb.audit_table('toolsdb.bug_escalations');

-- error_logs rows may point to the bug they are an occurrence of.
alter table toolsdb.error_logs add column if not exists bug_id text;

comment on column toolsdb.error_logs.bug_id is 'The escalated bug this error is an occurrence of, if any.';

do $fk$
begin
    if not exists (
        select from pg_catalog.pg_constraint
        where conrelid = 'toolsdb.error_logs'::regclass and conname = 'error_logs_bug_id_fkey'
    ) then
        alter table toolsdb.error_logs add constraint error_logs_bug_id_fkey foreign key (bug_id)
        references toolsdb.bug_escalations (bug_id) on delete set null;
    end if;
end
$fk$;

create index if not exists error_logs_bug_id_idx on toolsdb.error_logs (bug_id);

create or replace function toolsdb.report_bug(
    bug_id text,
    error_type text,
    error_message text,
    user_impact text default 'medium'
)
returns toolsdb.bug_escalations
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.bug_escalations as b (bug_id, error_type, error_message, user_impact)
    values ($1, $2, $3, coalesce($4, 'medium'))
    on conflict on constraint bug_escalations_pkey do update
    set frequency = b.frequency + 1,
        last_seen_at = greatest(b.last_seen_at, pg_catalog.now()),
        error_type = excluded.error_type,
        error_message = excluded.error_message,
        user_impact = case
            when pg_catalog.array_position(array['low', 'medium', 'high', 'critical'], excluded.user_impact)
                > pg_catalog.array_position(array['low', 'medium', 'high', 'critical'], b.user_impact)
                then excluded.user_impact
            else b.user_impact
        end,
        status = case when b.status = 'resolved' then 'pending' else b.status end,
        reopened_count = b.reopened_count + case when b.status = 'resolved' then 1 else 0 end
    returning b.*;
$function$;

comment on function toolsdb.report_bug(text, text, text, text) is
'Reports an occurrence of a bug (seed 000''s report_bug): a new bug id starts pending with '
'frequency 1; a known one gets frequency + 1 and last_seen_at now, atomically under concurrency, '
'keeps its highest impact, and reopens (pending, reopened_count + 1) if it was resolved. Returns '
'the row.';

create or replace function toolsdb.bug_escalation_move(bug_id text, to_status text, assigned_to uuid default null)
returns text
language plpgsql
volatile
set search_path = ''
as $function$
declare
    previous text;
begin
    select b.status into previous
    from toolsdb.bug_escalations as b
    where b.bug_id = bug_escalation_move.bug_id
    for update;
    if not found then
        raise exception 'bug % not found', bug_escalation_move.bug_id using errcode = 'no_data_found';
    end if;
    update toolsdb.bug_escalations as b
    set status = to_status,
        assigned_to = coalesce(bug_escalation_move.assigned_to, b.assigned_to)
    where b.bug_id = bug_escalation_move.bug_id;
    return previous;
end;
$function$;

comment on function toolsdb.bug_escalation_move(text, text, uuid) is
'Moves a bug along its lifecycle (and assigns it when assigned_to is given); returns the status '
'it left. A move outside the lifecycle is 55000 naming both states; an unknown bug is no_data_found '
'(P0002).';

-- ---- from schema/52_prompt_versions.sql ----

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
