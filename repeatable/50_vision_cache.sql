-- repeatable/50_vision_cache.sql
-- Tier 50: agent tools. The vision-analysis cache: one entry per
-- image (SHA-256) and model version, with a TTL. A hit is counted without
-- touching the entry's row: vision_cache_get() appends to the unlogged
-- vision_cache_hits, so many readers of one hot image never queue behind a
-- row lock (and a read-only transaction needs no WAL flush);
-- vision_cache_flush_hits() folds the appended hits into hit_count and
-- last_hit_at. Cache hits are not audit events (exempt, with the reason).
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/50_vision_cache.sql.

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
