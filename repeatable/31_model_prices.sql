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
