-- schema/50_vision_cache.sql
-- Tier 50: agent tools. The vision-analysis cache: one entry per
-- image (SHA-256) and model version, with a TTL. A hit is counted without
-- touching the entry's row: vision_cache_get() appends to the unlogged
-- vision_cache_hits, so many readers of one hot image never queue behind a
-- row lock (and a read-only transaction needs no WAL flush);
-- vision_cache_flush_hits() folds the appended hits into hit_count and
-- last_hit_at. Cache hits are not audit events (exempt, with the reason).
-- Its functions, triggers and row-level security: repeatable/50_vision_cache.sql.
-- Needs: schema/00_bootstrap.sql.

-- The key's rules are domains, shared by the cache and its hits: a get
-- appends a hit, and PostgreSQL plans a table's CHECKs again at every
-- statement that writes the table but caches a domain's per connection.
do $domains$
begin
    if pg_catalog.to_regtype('toolsdb.image_hash') is null then
        create domain toolsdb.image_hash as text
        constraint image_hash_is_valid check (value ~ '^[0-9A-Za-z_.:-]+$' and char_length(value) <= 128);
    end if;
    if pg_catalog.to_regtype('toolsdb.model_version') is null then
        create domain toolsdb.model_version as text
        constraint model_version_is_valid check (value ~ '^[[:graph:]]+$' and char_length(value) <= 100);
    end if;
end
$domains$;

comment on domain toolsdb.image_hash is
'An image''s key in the vision cache: up to 128 letters, digits and _ . : - (a SHA-256 in hex).';

comment on domain toolsdb.model_version is
'A model and version in the vision cache: printable, no spaces, at most 100 characters.';

-- Hit counters are in no index, so their updates are HOT with room on the
-- page (fillfactor 80: 84% HOT in tests/bench_churn.py).
create table if not exists toolsdb.vision_cache (
    image_hash toolsdb.image_hash not null,
    model_version toolsdb.model_version not null,
    extracted_data jsonb not null default '{}',
    confidence_score double precision not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    hit_count bigint not null default 0,
    last_hit_at timestamptz,
    constraint vision_cache_pkey primary key (image_hash, model_version),
    constraint extracted_data_is_object check (jsonb_typeof(extracted_data) = 'object'),
    constraint confidence_score_is_valid check (confidence_score between 0 and 1),
    constraint expires_after_creation check (expires_at > created_at),
    constraint hit_count_is_not_negative check (hit_count >= 0)
) with (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05
);

create index if not exists vision_cache_expires_at_idx on toolsdb.vision_cache (expires_at);

comment on table toolsdb.vision_cache is
'Vision-analysis results, one per image (SHA-256 of its bytes) and model version, until '
'expires_at. Read with toolsdb.vision_cache_get() (counts the hit), write with '
'toolsdb.vision_cache_store(), clean with toolsdb.vision_cache_purge_expired().';

comment on column toolsdb.vision_cache.image_hash is
'The image''s key: the SHA-256 of its bytes in 64 lowercase hex digits (VisionCache.hash_image), or '
'another identifier of up to 128 letters, digits and _ . : -.';

comment on column toolsdb.vision_cache.model_version is 'The model (and version) that analysed it, e.g. v1.0.';

comment on column toolsdb.vision_cache.extracted_data is 'What the analysis found (JSON object).';

comment on column toolsdb.vision_cache.confidence_score is 'Confidence of the analysis, 0 to 1.';

comment on column toolsdb.vision_cache.created_at is 'When it was stored (or last replaced).';

comment on column toolsdb.vision_cache.expires_at is 'After this the entry is a miss, and purge removes it.';

comment on column toolsdb.vision_cache.hit_count is
'Hits folded in by toolsdb.vision_cache_flush_hits(); add the pending rows of vision_cache_hits '
'for the exact figure (toolsdb.vision_cache_stats does).';

comment on column toolsdb.vision_cache.last_hit_at is 'Latest hit folded in, null if none yet.';

-- Appended, then emptied by every vision_cache_flush_hits(): vacuum after a
-- fixed count, whatever the (stale) row estimate says.
create unlogged table if not exists toolsdb.vision_cache_hits (
    hit_id bigint generated always as identity,
    image_hash toolsdb.image_hash not null,
    model_version toolsdb.model_version not null,
    hit_at timestamptz not null default now(),
    constraint vision_cache_hits_pkey primary key (hit_id)
) with (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_insert_scale_factor = 0.1,
    autovacuum_vacuum_cost_delay = 1
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
