-- repeatable/31_model_prices.sql
-- Tier 30: what models cost. toolsdb.model_prices holds a dated price per
-- model (USD per million input, output and cached input tokens, valid from a
-- moment on); toolsdb.model_price_at() finds the price in force at a time and
-- toolsdb.token_cost() prices a run. Audited; global (no row-level security).
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/31_model_prices.sql.

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

create or replace function toolsdb_private.tg__cache_write_prices()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    new.cache_write_5m_usd_per_mtok := coalesce(new.cache_write_5m_usd_per_mtok, new.input_usd_per_mtok * 1.25);
    new.cache_write_1h_usd_per_mtok := coalesce(new.cache_write_1h_usd_per_mtok, new.input_usd_per_mtok * 2);
    return new;
end;
$function$;

comment on function toolsdb_private.tg__cache_write_prices() is
'Trigger of toolsdb.model_prices: cache write prices not given are Anthropic''s multipliers of the '
'input price, 1.25 for the 5-minute cache and 2 for the 1-hour cache.';

create or replace trigger _050_cache_write_prices
before insert or update on toolsdb.model_prices
for each row
execute function toolsdb_private.tg__cache_write_prices();

comment on trigger _050_cache_write_prices on toolsdb.model_prices is
'Fills cache write prices not given from the input price (1.25x, 2x).';

create or replace trigger _100_timestamps
before insert or update on toolsdb.model_aliases
for each row
execute function toolsdb_private.tg__timestamps();

select toolsdb.audit_table('toolsdb.model_aliases');

create or replace function toolsdb.usage_cost(
    model_provider text,
    model_name text,
    at timestamptz,
    input_tokens bigint,
    output_tokens bigint,
    cache_write_5m_tokens bigint,
    cache_write_1h_tokens bigint,
    cache_read_tokens bigint,
    speed text default 'standard'
)
returns table (cost_usd numeric, priced_from timestamptz)
language sql
stable
set search_path = ''
as $function$
    select
        round(
            case
                when p.long_context_threshold_tokens is not null
                    and usage_cost.input_tokens + usage_cost.cache_write_5m_tokens + usage_cost.cache_write_1h_tokens
                    + usage_cost.cache_read_tokens > p.long_context_threshold_tokens
                    then usage_cost.input_tokens * p.long_context_input_usd_per_mtok
                    + usage_cost.output_tokens * p.long_context_output_usd_per_mtok
                    + usage_cost.cache_write_5m_tokens * p.long_context_cache_write_5m_usd_per_mtok
                    + usage_cost.cache_write_1h_tokens * p.long_context_cache_write_1h_usd_per_mtok
                    + usage_cost.cache_read_tokens * p.long_context_cache_read_usd_per_mtok
                else usage_cost.input_tokens * p.input_usd_per_mtok
                    + usage_cost.output_tokens * p.output_usd_per_mtok
                    + usage_cost.cache_write_5m_tokens * p.cache_write_5m_usd_per_mtok
                    + usage_cost.cache_write_1h_tokens * p.cache_write_1h_usd_per_mtok
                    + usage_cost.cache_read_tokens * p.cached_input_usd_per_mtok
            end / 1000000,
            10
        ),
        p.valid_from
    from toolsdb.model_prices as p
    where
        p.model_provider = usage_cost.model_provider
        and p.model_name = coalesce(
            (
                select a.model_name
                from toolsdb.model_aliases as a
                where a.model_provider = usage_cost.model_provider and a.alias = usage_cost.model_name
            ),
            usage_cost.model_name
        ) || case when usage_cost.speed = 'fast' then '-fast' else '' end
        and p.valid_from <= usage_cost.at
    order by p.valid_from desc
    limit 1;
$function$;

comment on function toolsdb.usage_cost(text, text, timestamptz, bigint, bigint, bigint, bigint, bigint, text) is
'USD cost of one API response at the price in force at a moment, and that price''s valid_from: '
'input, output, 5-minute and 1-hour cache writes and cache reads times their prices per million, '
'rounded to 10 decimals. The model name may be an alias (toolsdb.model_aliases); fast mode is the '
'price row <model>-fast. A prompt (input + cache writes + reads) over the long-context threshold '
'pays the long-context prices on all its tokens. No row when the model has no price.';
