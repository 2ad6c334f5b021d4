-- schema/31_model_prices.sql
-- Tier 30: what models cost. toolsdb.model_prices holds a dated price per
-- model (USD per million input, output and cached input tokens, valid from a
-- moment on); toolsdb.model_price_at() finds the price in force at a time and
-- toolsdb.token_cost() prices a run. Audited; global (no row-level security).
-- Its functions, triggers and row-level security: repeatable/31_model_prices.sql.
-- Needs: schema/00_bootstrap.sql.

create table if not exists toolsdb.model_prices (
    model_provider text not null,
    model_name text not null,
    valid_from timestamptz not null,
    input_usd_per_mtok numeric(12, 6) not null,
    output_usd_per_mtok numeric(12, 6) not null,
    cached_input_usd_per_mtok numeric(12, 6) not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    cache_write_5m_usd_per_mtok numeric(12, 6) not null,
    cache_write_1h_usd_per_mtok numeric(12, 6) not null,
    long_context_threshold_tokens integer,
    long_context_input_usd_per_mtok numeric(12, 6),
    long_context_output_usd_per_mtok numeric(12, 6),
    long_context_cache_write_5m_usd_per_mtok numeric(12, 6),
    long_context_cache_write_1h_usd_per_mtok numeric(12, 6),
    long_context_cache_read_usd_per_mtok numeric(12, 6),
    source_url text,
    source_checked_on date,
    constraint model_prices_pkey primary key (model_provider, model_name, valid_from),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint prices_are_not_negative check (
        input_usd_per_mtok >= 0 and output_usd_per_mtok >= 0 and cached_input_usd_per_mtok >= 0
        and cache_write_5m_usd_per_mtok >= 0 and cache_write_1h_usd_per_mtok >= 0
    ),
    constraint long_context_prices_are_complete check (
        (long_context_threshold_tokens is null) = (long_context_input_usd_per_mtok is null)
        and (long_context_threshold_tokens is null) = (long_context_output_usd_per_mtok is null)
        and (long_context_threshold_tokens is null) = (long_context_cache_write_5m_usd_per_mtok is null)
        and (long_context_threshold_tokens is null) = (long_context_cache_write_1h_usd_per_mtok is null)
        and (long_context_threshold_tokens is null) = (long_context_cache_read_usd_per_mtok is null)
    ),
    constraint long_context_prices_are_valid check (
        long_context_threshold_tokens > 0 and long_context_input_usd_per_mtok >= 0
        and long_context_output_usd_per_mtok >= 0 and long_context_cache_write_5m_usd_per_mtok >= 0
        and long_context_cache_write_1h_usd_per_mtok >= 0 and long_context_cache_read_usd_per_mtok >= 0
    ),
    constraint source_url_is_valid check (source_url ~ '^https?://' and char_length(source_url) <= 2000)
);

comment on table toolsdb.model_prices is
'Price list of models over time: each row is in force from valid_from until the next row of the '
'same model. An execution is priced at the row in force when it started (toolsdb.model_price_at).';

comment on column toolsdb.model_prices.model_provider is 'Who serves the model, as in toolsdb.agents.model_provider.';

comment on column toolsdb.model_prices.model_name is 'The model, as in toolsdb.agents.model_name.';

comment on column toolsdb.model_prices.valid_from is 'From when this price applies.';

comment on column toolsdb.model_prices.input_usd_per_mtok is 'USD per million uncached input tokens.';

comment on column toolsdb.model_prices.output_usd_per_mtok is 'USD per million output tokens.';

comment on column toolsdb.model_prices.cached_input_usd_per_mtok is
'USD per million cached input tokens (cache reads).';

comment on column toolsdb.model_prices.created_at is 'When the row was added; set by trigger _100_timestamps.';

comment on column toolsdb.model_prices.updated_at is 'When it last changed; set by trigger _100_timestamps.';

comment on column toolsdb.model_prices.cache_write_5m_usd_per_mtok is
'USD per million tokens written to the 5-minute prompt cache; when not given, 1.25 times the input '
'price (Anthropic''s multiplier; trigger _050_cache_write_prices).';

comment on column toolsdb.model_prices.cache_write_1h_usd_per_mtok is
'USD per million tokens written to the 1-hour prompt cache; when not given, 2 times the input price.';

comment on column toolsdb.model_prices.long_context_threshold_tokens is
'Long-context tier: a request whose prompt (input + cache writes + cache reads) exceeds this many '
'tokens pays the long_context_* prices on all its tokens, output included (Anthropic''s rule); null: no tier.';

comment on column toolsdb.model_prices.long_context_input_usd_per_mtok is 'Input price above the threshold.';

comment on column toolsdb.model_prices.long_context_output_usd_per_mtok is 'Output price above the threshold.';

comment on column toolsdb.model_prices.long_context_cache_write_5m_usd_per_mtok is
'5-minute cache write price above the threshold.';

comment on column toolsdb.model_prices.long_context_cache_write_1h_usd_per_mtok is
'1-hour cache write price above the threshold.';

comment on column toolsdb.model_prices.long_context_cache_read_usd_per_mtok is 'Cache read price above the threshold.';

comment on column toolsdb.model_prices.source_url is 'Where the price was read.';

comment on column toolsdb.model_prices.source_checked_on is 'When it was last checked there.';

create table if not exists toolsdb.model_aliases (
    model_provider text not null,
    alias text not null,
    model_name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint model_aliases_pkey primary key (model_provider, alias),
    constraint alias_length_is_valid check (char_length(alias) between 1 and 200),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint alias_is_not_the_model check (alias <> model_name)
);

comment on table toolsdb.model_aliases is
'Other names of a priced model: the dated API ids that transcripts carry (claude-sonnet-4-5-20250929) '
'map to the model_prices row of claude-sonnet-4-5. A name neither priced nor aliased is unpriced; '
'prices are never guessed from a prefix.';

comment on column toolsdb.model_aliases.model_provider is 'Who serves the model.';

comment on column toolsdb.model_aliases.alias is 'The other name, as it appears in usage.';

comment on column toolsdb.model_aliases.model_name is 'The model_prices name it stands for.';

comment on column toolsdb.model_aliases.created_at is 'When the row was added; set by trigger _100_timestamps.';

comment on column toolsdb.model_aliases.updated_at is 'When it last changed; set by trigger _100_timestamps.';

-- The published prices of Claude models, USD per million tokens: input, 5-minute
-- cache write, 1-hour cache write, cache read, output (docs/transcripts.md says
-- where each comes from). Reference rows: added once, never overwritten here;
-- a price change is a new row with a later valid_from.
insert into toolsdb.model_prices (
    model_provider, model_name, valid_from, input_usd_per_mtok, cache_write_5m_usd_per_mtok,
    cache_write_1h_usd_per_mtok, cached_input_usd_per_mtok, output_usd_per_mtok,
    long_context_threshold_tokens, long_context_input_usd_per_mtok, long_context_cache_write_5m_usd_per_mtok,
    long_context_cache_write_1h_usd_per_mtok, long_context_cache_read_usd_per_mtok,
    long_context_output_usd_per_mtok, source_url, source_checked_on
)
values
(
    'anthropic', 'claude-opus-4-0', '2024-01-01 00:00:00+00', 15, 18.75, 30, 1.50, 75,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-opus-4-1', '2024-01-01 00:00:00+00', 15, 18.75, 30, 1.50, 75,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-opus-4-5', '2024-01-01 00:00:00+00', 5, 6.25, 10, 0.50, 25,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-opus-4-6', '2024-01-01 00:00:00+00', 5, 6.25, 10, 0.50, 25,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-opus-4-6-fast', '2024-01-01 00:00:00+00', 30, 37.50, 60, 3, 150,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/build-with-claude/fast-mode', '2026-12-02'
),
(
    'anthropic', 'claude-sonnet-4-0', '2024-01-01 00:00:00+00', 3, 3.75, 6, 0.30, 15,
    200000, 6, 7.50, 12, 0.60, 22.50, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-sonnet-4-5', '2024-01-01 00:00:00+00', 3, 3.75, 6, 0.30, 15,
    200000, 6, 7.50, 12, 0.60, 22.50, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-sonnet-4-6', '2024-01-01 00:00:00+00', 3, 3.75, 6, 0.30, 15,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-haiku-4-5', '2024-01-01 00:00:00+00', 1, 1.25, 2, 0.10, 5,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-3-5-haiku', '2024-01-01 00:00:00+00', 0.80, 1, 1.6, 0.08, 4,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
),
(
    'anthropic', 'claude-3-7-sonnet', '2024-01-01 00:00:00+00', 3, 3.75, 6, 0.30, 15,
    null, null, null, null, null, null, 'https://platform.claude.com/docs/en/about-claude/pricing', '2026-12-02'
)
on conflict on constraint model_prices_pkey do nothing;

insert into toolsdb.model_aliases (model_provider, alias, model_name)
values
('anthropic', 'claude-opus-4-20250514', 'claude-opus-4-0'),
('anthropic', 'claude-opus-4', 'claude-opus-4-0'),
('anthropic', 'claude-opus-4-1-20250805', 'claude-opus-4-1'),
('anthropic', 'claude-opus-4-5-20251101', 'claude-opus-4-5'),
('anthropic', 'claude-sonnet-4-20250514', 'claude-sonnet-4-0'),
('anthropic', 'claude-sonnet-4', 'claude-sonnet-4-0'),
('anthropic', 'claude-sonnet-4-5-20250929', 'claude-sonnet-4-5'),
('anthropic', 'claude-haiku-4-5-20251001', 'claude-haiku-4-5'),
('anthropic', 'claude-3-5-haiku-20241022', 'claude-3-5-haiku'),
('anthropic', 'claude-3-5-haiku-latest', 'claude-3-5-haiku'),
('anthropic', 'claude-3-7-sonnet-20250219', 'claude-3-7-sonnet'),
('anthropic', 'claude-3-7-sonnet-latest', 'claude-3-7-sonnet')
on conflict on constraint model_aliases_pkey do nothing;
