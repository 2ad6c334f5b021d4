-- schema/31_model_prices.sql
-- Tier 30: what models cost. toolsdb.model_prices holds a dated price per
-- model (USD per million input, output and cached input tokens, valid from a
-- moment on); toolsdb.model_price_at() finds the price in force at a time and
-- toolsdb.token_cost() prices a run. Audited; global (no row-level security).
-- Needs: schema/10_timestamps.sql, schema/12_audit.sql.

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

create or replace trigger _100_timestamps
before insert or update on toolsdb.model_prices
for each row
execute function toolsdb_private.tg__timestamps();

select toolsdb.audit_table('toolsdb.model_prices');

create or replace function toolsdb.model_price_at(model_provider text, model_name text, at timestamptz)
returns toolsdb.model_prices
language sql
stable
set search_path = ''
as $function$
    select p.*
    from toolsdb.model_prices as p
    where
        p.model_provider = model_price_at.model_provider
        and p.model_name = model_price_at.model_name
        and p.valid_from <= model_price_at.at
    order by p.valid_from desc
    limit 1;
$function$;

comment on function toolsdb.model_price_at(text, text, timestamptz) is
'The price of a model in force at a moment (the newest row with valid_from <= at), or null.';

create or replace function toolsdb.token_cost(
    model_provider text,
    model_name text,
    at timestamptz,
    input_tokens bigint,
    output_tokens bigint,
    cached_tokens bigint default 0
)
returns numeric
language sql
stable
set search_path = ''
as $function$
    select round(
        (
            token_cost.input_tokens * p.input_usd_per_mtok
            + token_cost.output_tokens * p.output_usd_per_mtok
            + token_cost.cached_tokens * p.cached_input_usd_per_mtok
        ) / 1000000,
        6
    )
    from toolsdb.model_price_at(token_cost.model_provider, token_cost.model_name, token_cost.at) as p
    where p.model_provider is not null;
$function$;

comment on function toolsdb.token_cost(text, text, timestamptz, bigint, bigint, bigint) is
'USD cost of a run at the price in force at a moment: uncached input, output and cached input '
'tokens times their prices per million, rounded to 6 decimals; null when the model has no price.';
