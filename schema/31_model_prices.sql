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
    constraint model_prices_pkey primary key (model_provider, model_name, valid_from),
    constraint model_provider_length_is_valid check (char_length(model_provider) between 1 and 100),
    constraint model_name_length_is_valid check (char_length(model_name) between 1 and 200),
    constraint prices_are_not_negative check (
        input_usd_per_mtok >= 0 and output_usd_per_mtok >= 0 and cached_input_usd_per_mtok >= 0
    )
);

comment on table toolsdb.model_prices is
'Price list of models over time: each row is in force from valid_from until the next row of the '
'same model. An execution is priced at the row in force when it started (toolsdb.model_price_at).';

comment on column toolsdb.model_prices.model_provider is 'Who serves the model, as in toolsdb.agents.model_provider.';

comment on column toolsdb.model_prices.model_name is 'The model, as in toolsdb.agents.model_name.';

comment on column toolsdb.model_prices.valid_from is 'From when this price applies.';

comment on column toolsdb.model_prices.input_usd_per_mtok is 'USD per million uncached input tokens.';

comment on column toolsdb.model_prices.output_usd_per_mtok is 'USD per million output tokens.';

comment on column toolsdb.model_prices.cached_input_usd_per_mtok is 'USD per million cached input tokens.';

comment on column toolsdb.model_prices.created_at is 'When the row was added; set by trigger _100_timestamps.';

comment on column toolsdb.model_prices.updated_at is 'When it last changed; set by trigger _100_timestamps.';
