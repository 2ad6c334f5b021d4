-- repeatable/87_usage_views.sql
-- Usage and cost of imported Claude Code transcripts (toolsdb.api_usage):
-- toolsdb.usage_report() groups them by day, month, session, user, project or
-- model in any time zone, with the bounds of a period in that zone, as ccusage
-- does; the usage_by_* views are its UTC reports, and toolsdb.unpriced_usage
-- lists the models without a price. Security invoker, so row-level security
-- applies: the application sees its session's usage, toolsdb_readonly all.
-- `toolsdb usage` prints them. Re-applied after every migrate.

create or replace function toolsdb.usage_report(
    grain text,
    time_zone text default 'UTC',
    since date default null,
    until date default null
)
returns table (
    period text,
    model_name text,
    requests bigint,
    input_tokens numeric,
    output_tokens numeric,
    cache_write_5m_tokens numeric,
    cache_write_1h_tokens numeric,
    cache_creation_tokens numeric,
    cache_read_tokens numeric,
    total_tokens numeric,
    cost_usd numeric,
    unpriced_requests bigint,
    first_at timestamptz,
    last_at timestamptz
)
language plpgsql
stable
set search_path = ''
as $function$
begin
    if grain is null or grain not in ('day', 'month', 'session', 'user', 'project', 'model') then
        raise exception 'a usage report is by day, month, session, user, project or model, not %', coalesce(grain, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if time_zone is null or not exists (select from pg_catalog.pg_timezone_names as z where z.name = time_zone) then
        raise exception 'unknown time zone %: use an IANA name such as UTC or Europe/Paris', coalesce(time_zone, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    return query
    select
        case grain
            when 'day' then pg_catalog.to_char(a.occurred_at at time zone time_zone, 'YYYY-MM-DD')
            when 'month' then pg_catalog.to_char(a.occurred_at at time zone time_zone, 'YYYY-MM')
            when 'session' then a.session_id
            when 'user' then coalesce((select u.username from toolsdb.users as u where u.user_id = s.user_id), '(none)')
            when 'project' then coalesce((select p.slug from toolsdb.projects as p where p.project_id = s.project_id), '(none)')
            else a.model_name || case when a.speed = 'fast' then '-fast' else '' end
        end as period,
        a.model_name || case when a.speed = 'fast' then '-fast' else '' end as model_name,
        pg_catalog.count(*) as requests,
        pg_catalog.sum(a.input_tokens) as input_tokens,
        pg_catalog.sum(a.output_tokens) as output_tokens,
        pg_catalog.sum(a.cache_write_5m_tokens) as cache_write_5m_tokens,
        pg_catalog.sum(a.cache_write_1h_tokens) as cache_write_1h_tokens,
        pg_catalog.sum(a.cache_write_5m_tokens + a.cache_write_1h_tokens) as cache_creation_tokens,
        pg_catalog.sum(a.cache_read_tokens) as cache_read_tokens,
        pg_catalog.sum(
            a.input_tokens + a.output_tokens + a.cache_write_5m_tokens + a.cache_write_1h_tokens + a.cache_read_tokens
        ) as total_tokens,
        coalesce(pg_catalog.sum(a.cost_usd), 0) as cost_usd,
        pg_catalog.count(*) filter (where a.cost_usd is null) as unpriced_requests,
        pg_catalog.min(a.occurred_at) as first_at,
        pg_catalog.max(a.occurred_at) as last_at
    from toolsdb.api_usage as a
    left join toolsdb.sessions as s on grain in ('user', 'project') and s.session_id = a.session_id
    where
        (since is null or a.occurred_at >= (since::timestamp at time zone time_zone))
        and (until is null or a.occurred_at < ((until + 1)::timestamp at time zone time_zone))
    group by 1, 2
    order by 1, 2;
end;
$function$;

comment on function toolsdb.usage_report(text, text, date, date) is
'Usage and cost of imported transcripts per period (grain: day, month, session, user, project or '
'model) and model: responses, the token classes, cost of the priced ones and how many have no '
'price. Days and months, and the since/until bounds (inclusive dates), are those of time_zone (an '
'IANA name), as ccusage --timezone does. Row-level security applies (security invoker).';

create or replace function toolsdb.usage_by_day_and(
    dimension text,
    time_zone text default 'UTC',
    since date default null,
    until date default null
)
returns table (
    day date,
    label text,
    cost_usd numeric,
    total_tokens numeric,
    requests bigint,
    unpriced_requests bigint
)
language plpgsql
stable
set search_path = ''
as $function$
begin
    if dimension is null or dimension not in ('model', 'user') then
        raise exception 'usage per day is by model or user, not %', coalesce(dimension, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if time_zone is null or not exists (select from pg_catalog.pg_timezone_names as z where z.name = time_zone) then
        raise exception 'unknown time zone %: use an IANA name such as UTC or Europe/Paris', coalesce(time_zone, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    return query
    select
        (a.occurred_at at time zone time_zone)::date as day,
        case dimension
            when 'user' then coalesce((select u.username from toolsdb.users as u where u.user_id = s.user_id), '(none)')
            else a.model_name || case when a.speed = 'fast' then '-fast' else '' end
        end as label,
        coalesce(pg_catalog.sum(a.cost_usd), 0) as cost_usd,
        pg_catalog.sum(
            a.input_tokens + a.output_tokens + a.cache_write_5m_tokens + a.cache_write_1h_tokens + a.cache_read_tokens
        ) as total_tokens,
        pg_catalog.count(*) as requests,
        pg_catalog.count(*) filter (where a.cost_usd is null) as unpriced_requests
    from toolsdb.api_usage as a
    left join toolsdb.sessions as s on dimension = 'user' and s.session_id = a.session_id
    where
        (since is null or a.occurred_at >= (since::timestamp at time zone time_zone))
        and (until is null or a.occurred_at < ((until + 1)::timestamp at time zone time_zone))
    group by 1, 2
    order by 1, 2;
end;
$function$;

comment on function toolsdb.usage_by_day_and(text, text, date, date) is
'Cost and tokens of imported transcripts per day and model or user (dimension: model, as reported, '
'fast mode as <model>-fast; or user: the session''s username, else (none)), what `toolsdb usage chart` '
'draws. cost_usd is that of the priced responses; unpriced_requests counts the others (not in the '
'cost, in the tokens). Days, and the since/until bounds (inclusive dates), are those of time_zone (an '
'IANA name); days without usage have no row. Row-level security applies (security invoker).';

create or replace view toolsdb.unpriced_usage
with (security_invoker = true) as
select
    a.model_provider,
    a.model_name || case when a.speed = 'fast' then '-fast' else '' end as model_name,
    count(*) as requests,
    sum(a.input_tokens + a.output_tokens + a.cache_write_5m_tokens + a.cache_write_1h_tokens + a.cache_read_tokens)
        as total_tokens,
    min(a.occurred_at) as first_at,
    max(a.occurred_at) as last_at
from toolsdb.api_usage as a
where a.cost_usd is null
group by 1, 2;

comment on view toolsdb.unpriced_usage is
'Imported API responses of models with no price in toolsdb.model_prices (nor an alias of one), per '
'model: they are left out of costs, never priced at 0. Add the price (or an alias) and they are '
'priced (toolsdb.reprice_usage).';
comment on column toolsdb.unpriced_usage.model_provider is 'Who serves the model.';
comment on column toolsdb.unpriced_usage.model_name is 'The model as reported (fast mode: <model>-fast).';
comment on column toolsdb.unpriced_usage.requests is 'Responses without a price.';
comment on column toolsdb.unpriced_usage.total_tokens is 'Their tokens, all classes.';
comment on column toolsdb.unpriced_usage.first_at is 'The earliest.';
comment on column toolsdb.unpriced_usage.last_at is 'The latest.';


create or replace view toolsdb.usage_by_day
with (security_invoker = true) as
select
    r.period::date as day,
    r.model_name,
    r.requests,
    r.input_tokens,
    r.output_tokens,
    r.cache_write_5m_tokens,
    r.cache_write_1h_tokens,
    r.cache_creation_tokens,
    r.cache_read_tokens,
    r.total_tokens,
    r.cost_usd,
    r.unpriced_requests,
    r.first_at,
    r.last_at
from toolsdb.usage_report('day') as r;

comment on view toolsdb.usage_by_day is
'Usage and cost of imported Claude Code transcripts per day (UTC) and model.';
comment on column toolsdb.usage_by_day.day is
'The day (UTC). For another time zone: toolsdb.usage_report(''day'', zone).';
comment on column toolsdb.usage_by_day.model_name is
'The model as reported (fast mode: <model>-fast, as ccusage reports it).';
comment on column toolsdb.usage_by_day.requests is
'API responses counted (each once, however many lines or files repeat it).';
comment on column toolsdb.usage_by_day.input_tokens is 'Uncached input tokens.';
comment on column toolsdb.usage_by_day.output_tokens is 'Output tokens.';
comment on column toolsdb.usage_by_day.cache_write_5m_tokens is 'Tokens written to the 5-minute cache.';
comment on column toolsdb.usage_by_day.cache_write_1h_tokens is 'Tokens written to the 1-hour cache.';
comment on column toolsdb.usage_by_day.cache_creation_tokens is
'Both cache writes together (ccusage''s cacheCreationTokens).';
comment on column toolsdb.usage_by_day.cache_read_tokens is 'Tokens read from the cache.';
comment on column toolsdb.usage_by_day.total_tokens is
'Input, output, cache writes and cache reads together (ccusage''s totalTokens).';
comment on column toolsdb.usage_by_day.cost_usd is
'USD of the priced responses, each at the price in force on its day.';
comment on column toolsdb.usage_by_day.unpriced_requests is
'Responses of a model with no price: not in cost_usd (never counted as 0).';
comment on column toolsdb.usage_by_day.first_at is 'The earliest response.';
comment on column toolsdb.usage_by_day.last_at is 'The latest response.';

create or replace view toolsdb.usage_by_month
with (security_invoker = true) as
select
    r.period as month,
    r.model_name,
    r.requests,
    r.input_tokens,
    r.output_tokens,
    r.cache_write_5m_tokens,
    r.cache_write_1h_tokens,
    r.cache_creation_tokens,
    r.cache_read_tokens,
    r.total_tokens,
    r.cost_usd,
    r.unpriced_requests,
    r.first_at,
    r.last_at
from toolsdb.usage_report('month') as r;

comment on view toolsdb.usage_by_month is
'Usage and cost of imported transcripts per month (UTC) and model.';
comment on column toolsdb.usage_by_month.month is 'The month, YYYY-MM (UTC).';
comment on column toolsdb.usage_by_month.model_name is
'The model as reported (fast mode: <model>-fast, as ccusage reports it).';
comment on column toolsdb.usage_by_month.requests is
'API responses counted (each once, however many lines or files repeat it).';
comment on column toolsdb.usage_by_month.input_tokens is 'Uncached input tokens.';
comment on column toolsdb.usage_by_month.output_tokens is 'Output tokens.';
comment on column toolsdb.usage_by_month.cache_write_5m_tokens is 'Tokens written to the 5-minute cache.';
comment on column toolsdb.usage_by_month.cache_write_1h_tokens is 'Tokens written to the 1-hour cache.';
comment on column toolsdb.usage_by_month.cache_creation_tokens is
'Both cache writes together (ccusage''s cacheCreationTokens).';
comment on column toolsdb.usage_by_month.cache_read_tokens is 'Tokens read from the cache.';
comment on column toolsdb.usage_by_month.total_tokens is
'Input, output, cache writes and cache reads together (ccusage''s totalTokens).';
comment on column toolsdb.usage_by_month.cost_usd is
'USD of the priced responses, each at the price in force on its day.';
comment on column toolsdb.usage_by_month.unpriced_requests is
'Responses of a model with no price: not in cost_usd (never counted as 0).';
comment on column toolsdb.usage_by_month.first_at is 'The earliest response.';
comment on column toolsdb.usage_by_month.last_at is 'The latest response.';

create or replace view toolsdb.usage_by_session
with (security_invoker = true) as
select
    r.period as session_id,
    r.model_name,
    r.requests,
    r.input_tokens,
    r.output_tokens,
    r.cache_write_5m_tokens,
    r.cache_write_1h_tokens,
    r.cache_creation_tokens,
    r.cache_read_tokens,
    r.total_tokens,
    r.cost_usd,
    r.unpriced_requests,
    r.first_at,
    r.last_at
from toolsdb.usage_report('session') as r;

comment on view toolsdb.usage_by_session is
'Usage and cost of imported transcripts per session and model (subagents count in their parent session).';
comment on column toolsdb.usage_by_session.session_id is 'The session (toolsdb.sessions).';
comment on column toolsdb.usage_by_session.model_name is
'The model as reported (fast mode: <model>-fast, as ccusage reports it).';
comment on column toolsdb.usage_by_session.requests is
'API responses counted (each once, however many lines or files repeat it).';
comment on column toolsdb.usage_by_session.input_tokens is 'Uncached input tokens.';
comment on column toolsdb.usage_by_session.output_tokens is 'Output tokens.';
comment on column toolsdb.usage_by_session.cache_write_5m_tokens is 'Tokens written to the 5-minute cache.';
comment on column toolsdb.usage_by_session.cache_write_1h_tokens is 'Tokens written to the 1-hour cache.';
comment on column toolsdb.usage_by_session.cache_creation_tokens is
'Both cache writes together (ccusage''s cacheCreationTokens).';
comment on column toolsdb.usage_by_session.cache_read_tokens is 'Tokens read from the cache.';
comment on column toolsdb.usage_by_session.total_tokens is
'Input, output, cache writes and cache reads together (ccusage''s totalTokens).';
comment on column toolsdb.usage_by_session.cost_usd is
'USD of the priced responses, each at the price in force on its day.';
comment on column toolsdb.usage_by_session.unpriced_requests is
'Responses of a model with no price: not in cost_usd (never counted as 0).';
comment on column toolsdb.usage_by_session.first_at is 'The earliest response.';
comment on column toolsdb.usage_by_session.last_at is 'The latest response.';

create or replace view toolsdb.usage_by_user
with (security_invoker = true) as
select
    r.period as username,
    r.model_name,
    r.requests,
    r.input_tokens,
    r.output_tokens,
    r.cache_write_5m_tokens,
    r.cache_write_1h_tokens,
    r.cache_creation_tokens,
    r.cache_read_tokens,
    r.total_tokens,
    r.cost_usd,
    r.unpriced_requests,
    r.first_at,
    r.last_at
from toolsdb.usage_report('user') as r;

comment on view toolsdb.usage_by_user is
'Usage and cost of imported transcripts per user (of the session) and model.';
comment on column toolsdb.usage_by_user.username is 'The session''s user, or (none).';
comment on column toolsdb.usage_by_user.model_name is
'The model as reported (fast mode: <model>-fast, as ccusage reports it).';
comment on column toolsdb.usage_by_user.requests is
'API responses counted (each once, however many lines or files repeat it).';
comment on column toolsdb.usage_by_user.input_tokens is 'Uncached input tokens.';
comment on column toolsdb.usage_by_user.output_tokens is 'Output tokens.';
comment on column toolsdb.usage_by_user.cache_write_5m_tokens is 'Tokens written to the 5-minute cache.';
comment on column toolsdb.usage_by_user.cache_write_1h_tokens is 'Tokens written to the 1-hour cache.';
comment on column toolsdb.usage_by_user.cache_creation_tokens is
'Both cache writes together (ccusage''s cacheCreationTokens).';
comment on column toolsdb.usage_by_user.cache_read_tokens is 'Tokens read from the cache.';
comment on column toolsdb.usage_by_user.total_tokens is
'Input, output, cache writes and cache reads together (ccusage''s totalTokens).';
comment on column toolsdb.usage_by_user.cost_usd is
'USD of the priced responses, each at the price in force on its day.';
comment on column toolsdb.usage_by_user.unpriced_requests is
'Responses of a model with no price: not in cost_usd (never counted as 0).';
comment on column toolsdb.usage_by_user.first_at is 'The earliest response.';
comment on column toolsdb.usage_by_user.last_at is 'The latest response.';

create or replace view toolsdb.usage_by_project
with (security_invoker = true) as
select
    r.period as project_slug,
    r.model_name,
    r.requests,
    r.input_tokens,
    r.output_tokens,
    r.cache_write_5m_tokens,
    r.cache_write_1h_tokens,
    r.cache_creation_tokens,
    r.cache_read_tokens,
    r.total_tokens,
    r.cost_usd,
    r.unpriced_requests,
    r.first_at,
    r.last_at
from toolsdb.usage_report('project') as r;

comment on view toolsdb.usage_by_project is
'Usage and cost of imported transcripts per project (of the session) and model.';
comment on column toolsdb.usage_by_project.project_slug is 'The session''s project slug, or (none).';
comment on column toolsdb.usage_by_project.model_name is
'The model as reported (fast mode: <model>-fast, as ccusage reports it).';
comment on column toolsdb.usage_by_project.requests is
'API responses counted (each once, however many lines or files repeat it).';
comment on column toolsdb.usage_by_project.input_tokens is 'Uncached input tokens.';
comment on column toolsdb.usage_by_project.output_tokens is 'Output tokens.';
comment on column toolsdb.usage_by_project.cache_write_5m_tokens is 'Tokens written to the 5-minute cache.';
comment on column toolsdb.usage_by_project.cache_write_1h_tokens is 'Tokens written to the 1-hour cache.';
comment on column toolsdb.usage_by_project.cache_creation_tokens is
'Both cache writes together (ccusage''s cacheCreationTokens).';
comment on column toolsdb.usage_by_project.cache_read_tokens is 'Tokens read from the cache.';
comment on column toolsdb.usage_by_project.total_tokens is
'Input, output, cache writes and cache reads together (ccusage''s totalTokens).';
comment on column toolsdb.usage_by_project.cost_usd is
'USD of the priced responses, each at the price in force on its day.';
comment on column toolsdb.usage_by_project.unpriced_requests is
'Responses of a model with no price: not in cost_usd (never counted as 0).';
comment on column toolsdb.usage_by_project.first_at is 'The earliest response.';
comment on column toolsdb.usage_by_project.last_at is 'The latest response.';

create or replace view toolsdb.usage_by_model
with (security_invoker = true) as
select
    r.period as model,
    r.model_name,
    r.requests,
    r.input_tokens,
    r.output_tokens,
    r.cache_write_5m_tokens,
    r.cache_write_1h_tokens,
    r.cache_creation_tokens,
    r.cache_read_tokens,
    r.total_tokens,
    r.cost_usd,
    r.unpriced_requests,
    r.first_at,
    r.last_at
from toolsdb.usage_report('model') as r;

comment on view toolsdb.usage_by_model is
'Usage and cost of imported transcripts per model.';
comment on column toolsdb.usage_by_model.model is 'The model (the same as model_name).';
comment on column toolsdb.usage_by_model.model_name is
'The model as reported (fast mode: <model>-fast, as ccusage reports it).';
comment on column toolsdb.usage_by_model.requests is
'API responses counted (each once, however many lines or files repeat it).';
comment on column toolsdb.usage_by_model.input_tokens is 'Uncached input tokens.';
comment on column toolsdb.usage_by_model.output_tokens is 'Output tokens.';
comment on column toolsdb.usage_by_model.cache_write_5m_tokens is 'Tokens written to the 5-minute cache.';
comment on column toolsdb.usage_by_model.cache_write_1h_tokens is 'Tokens written to the 1-hour cache.';
comment on column toolsdb.usage_by_model.cache_creation_tokens is
'Both cache writes together (ccusage''s cacheCreationTokens).';
comment on column toolsdb.usage_by_model.cache_read_tokens is 'Tokens read from the cache.';
comment on column toolsdb.usage_by_model.total_tokens is
'Input, output, cache writes and cache reads together (ccusage''s totalTokens).';
comment on column toolsdb.usage_by_model.cost_usd is
'USD of the priced responses, each at the price in force on its day.';
comment on column toolsdb.usage_by_model.unpriced_requests is
'Responses of a model with no price: not in cost_usd (never counted as 0).';
comment on column toolsdb.usage_by_model.first_at is 'The earliest response.';
comment on column toolsdb.usage_by_model.last_at is 'The latest response.';
