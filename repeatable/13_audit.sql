-- repeatable/13_audit.sql
-- Tier 10: the audit log (docs/security.md). Defines toolsdb.audit_logs
-- (monthly partitions, append-only), the explicit event function
-- toolsdb.audit_event(), change capture that a table opts into with
-- toolsdb.audit_table(), partition maintenance and retention, and the seals
-- (toolsdb.audit_seal(), toolsdb.audit_verify()) that make tampering evident.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/13_audit.sql.

-- ---------------------------------------------------------------------------
-- Append-only guard: for every role, the owner included
-- ---------------------------------------------------------------------------

create or replace function toolsdb_private.tg__append_only()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    raise exception '% is append-only: % is not allowed',
        coalesce(tg_argv[0], tg_table_schema || '.' || tg_table_name), tg_op
        using errcode = 'insufficient_privilege', hint = coalesce(tg_argv[1], '');
end;
$function$;

comment on function toolsdb_private.tg__append_only() is
'Guard trigger of every append-only table (the audit log and its partitions, the seals, execution '
'logs, the activity feed): the operations it is attached to (UPDATE, DELETE, TRUNCATE) raise '
'insufficient_privilege (42501) saying the table is append-only, whoever runs them. Arguments: the '
'table to name (a partition names its parent) and a hint.';

create or replace trigger _010_append_only
before update or delete on toolsdb.audit_logs
for each row
execute function toolsdb_private.tg__append_only(
    'toolsdb.audit_logs', 'old entries leave only as whole monthly partitions, through toolsdb.audit_apply_retention()'
);

create or replace trigger _010_append_only_truncate
before truncate on toolsdb.audit_logs
for each statement
execute function toolsdb_private.tg__append_only(
    'toolsdb.audit_logs', 'old entries leave only as whole monthly partitions, through toolsdb.audit_apply_retention()'
);

-- Statement triggers are not inherited by partitions: each gets its own.
create or replace trigger _010_append_only_truncate
before truncate on toolsdb.audit_logs_default
for each statement
execute function toolsdb_private.tg__append_only(
    'toolsdb.audit_logs', 'old entries leave only as whole monthly partitions, through toolsdb.audit_apply_retention()'
);

-- On Citus, the workers' outbox (schema/citus/distribute.sql): entries leave
-- it only by toolsdb.audit_collect()'s DELETE.
do $citus$
begin
    if pg_catalog.to_regclass('toolsdb_private.audit_outbox') is null then
        return;
    end if;
    if not exists (
        select from pg_catalog.pg_trigger as t
        where t.tgrelid = 'toolsdb_private.audit_outbox'::regclass and t.tgname = '_010_append_only'
    ) then
        create trigger _010_append_only
        before update on toolsdb_private.audit_outbox
        for each row
        execute function toolsdb_private.tg__append_only(
            'toolsdb_private.audit_outbox', 'entries leave only through toolsdb.audit_collect()'
        );
    end if;
    if not exists (
        select from pg_catalog.pg_trigger as t
        where t.tgrelid = 'toolsdb_private.audit_outbox'::regclass and t.tgname = '_010_append_only_truncate'
    ) then
        create trigger _010_append_only_truncate
        before truncate on toolsdb_private.audit_outbox
        for each statement
        execute function toolsdb_private.tg__append_only(
            'toolsdb_private.audit_outbox', 'entries leave only through toolsdb.audit_collect()'
        );
    end if;
end
$citus$;

-- ---------------------------------------------------------------------------
-- Writing entries
-- ---------------------------------------------------------------------------

create or replace function toolsdb_private.audit_write(
    p_action text,
    p_entity_type text,
    p_entity_id text,
    p_old_values jsonb,
    p_new_values jsonb,
    p_details jsonb
)
returns bigint
language sql
volatile
begin atomic
    insert into toolsdb.audit_logs (
        actor, actor_user_id, actor_agent_id, session_id, action, entity_type, entity_id,
        old_values, new_values, details, client_addr, user_agent
    )
    values (
        coalesce(
            nullif(pg_catalog.current_setting('toolsdb.actor', true), ''),
            nullif(pg_catalog.current_setting('toolsdb.user_id', true), ''),
            nullif(pg_catalog.current_setting('toolsdb.agent_id', true), ''),
            session_user
        ),
        toolsdb.current_user_id(),
        toolsdb.current_agent_id(),
        toolsdb.current_session_id(),
        p_action,
        p_entity_type,
        p_entity_id,
        p_old_values,
        p_new_values,
        coalesce(p_details, '{}'),
        coalesce(
            nullif(pg_catalog.current_setting('toolsdb.client_addr', true), '')::inet,
            pg_catalog.inet_client_addr()
        ),
        nullif(pg_catalog.current_setting('toolsdb.user_agent', true), '')
    )
    returning audit_id;
end;

comment on function toolsdb_private.audit_write(text, text, text, jsonb, jsonb, jsonb) is
'Writes one audit entry with the actor, session, address and user agent taken from the '
'transaction''s toolsdb.* settings. Called by toolsdb.audit_event() and the capture triggers.';

create or replace function toolsdb.audit_event(
    action text,
    entity_type text default null,
    entity_id text default null,
    details jsonb default '{}',
    old_values jsonb default null,
    new_values jsonb default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    -- Captured changes and the log's own maintenance cannot be forged.
    if action in ('insert', 'update', 'delete', 'truncate') or action like 'audit\_%' then
        raise exception 'audit action % is reserved for toolsdb itself', pg_catalog.quote_literal(action)
            using errcode = 'insufficient_privilege',
            hint = 'insert, update, delete and truncate come from change capture (toolsdb.audit_table); '
            || 'audit_* from the log''s maintenance';
    end if;
    return toolsdb_private.audit_write(action, entity_type, entity_id, old_values, new_values, details);
end;
$function$;

comment on function toolsdb.audit_event(text, text, text, jsonb, jsonb, jsonb) is
'Records an explicit audit event, e.g. select toolsdb.audit_event(''permission_changed'', '
'''project'', ''<id>'', ''{"granted": "write"}''); returns its audit_id. Actor, session, address '
'and user agent come from the toolsdb.* settings of the transaction. The only way clients write '
'to the log. The actions insert, update, delete, truncate and audit_* are reserved (42501).';

create or replace function toolsdb_private.tg__audit()
returns trigger
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    key_columns text[] := pg_catalog.string_to_array(tg_argv[0], ',');
    redacted text[] := pg_catalog.string_to_array(nullif(tg_argv[1], ''), ',');
    whole_row jsonb;
    old_row jsonb;
    new_row jsonb;
    entity text;
    secret text;
    user_setting text;
    agent_setting text;
begin
    -- On Citus (docs/citus.md) a third argument names the table: the trigger
    -- fires on its shards, whose names carry the shard id, on every node that
    -- holds a copy. The log lives on the coordinator, whose copy every write
    -- of a reference table or a coordinator's table reaches: capture there, once.
    -- A fourth names the distribution column of a table distributed over the
    -- workers: its one copy of a row is on a worker, which captures into the
    -- co-located shard of toolsdb_private.audit_outbox (below).
    if tg_nargs = 3 then
        if not exists (select from pg_catalog.pg_dist_local_group as g where g.groupid = 0) then
            return null;
        end if;
    end if;
    if tg_op = 'INSERT' then
        new_row := pg_catalog.to_jsonb(new);
        whole_row := new_row;
    elsif tg_op = 'DELETE' then
        old_row := pg_catalog.to_jsonb(old);
        whole_row := old_row;
    else
        whole_row := pg_catalog.to_jsonb(new);
        -- Only what changed, on both sides.
        select
            pg_catalog.jsonb_object_agg(o.key, o.value),
            pg_catalog.jsonb_object_agg(n.key, n.value)
        into old_row, new_row
        from pg_catalog.jsonb_each(pg_catalog.to_jsonb(old)) as o
        inner join pg_catalog.jsonb_each(whole_row) as n on o.key = n.key
        where o.value is distinct from n.value;
        old_row := coalesce(old_row, '{}');
        new_row := coalesce(new_row, '{}');
    end if;
    if redacted is not null then
        foreach secret in array redacted loop
            if old_row ? secret then
                old_row := pg_catalog.jsonb_set(old_row, array[secret], '"[redacted]"');
            end if;
            if new_row ? secret then
                new_row := pg_catalog.jsonb_set(new_row, array[secret], '"[redacted]"');
            end if;
        end loop;
    end if;
    if pg_catalog.cardinality(key_columns) = 1 then
        entity := whole_row ->> key_columns[1];
    else
        select pg_catalog.jsonb_object_agg(k, whole_row -> k)::text
        into entity
        from pg_catalog.unnest(key_columns) as k;
    end if;
    -- A captured change names its entity. The rule is here, not a table CHECK
    -- of the log, which PostgreSQL would plan again at every audited write;
    -- audit_table() names the primary key, so only a trigger made by hand with
    -- a column the row lacks can break it.
    if entity is null then
        raise exception 'a captured change of % names no entity: its key % is missing or null', tg_table_name, tg_argv[0]
            using errcode = 'check_violation', constraint = 'captured_change_names_its_entity',
            hint = 'toolsdb.audit_table() installs the capture triggers with the table''s primary key';
    end if;
    -- The write of toolsdb_private.audit_write(), inlined: this runs for every
    -- audited row, and a call (plus the context helpers') costs about a fifth
    -- of the insert (make bench). Malformed uuid settings go through
    -- toolsdb.setting_uuid() for its error message.
    user_setting := nullif(pg_catalog.current_setting('toolsdb.user_id', true), '');
    agent_setting := nullif(pg_catalog.current_setting('toolsdb.agent_id', true), '');
    if tg_nargs > 3 then
        -- On a worker, in the shard of the outbox that holds this row's key:
        -- written with the change, collected into the log by audit_collect().
        insert into toolsdb_private.audit_outbox (
            shard_key, actor, actor_user_id, actor_agent_id, session_id, action, entity_type, entity_id,
            old_values, new_values, client_addr, user_agent
        )
        values (
            (whole_row ->> tg_argv[3])::uuid,
            coalesce(nullif(pg_catalog.current_setting('toolsdb.actor', true), ''), user_setting, agent_setting, session_user),
            case when user_setting is not null then toolsdb.setting_uuid('toolsdb.user_id') end,
            case when agent_setting is not null then toolsdb.setting_uuid('toolsdb.agent_id') end,
            nullif(pg_catalog.current_setting('toolsdb.session_id', true), ''),
            pg_catalog.lower(tg_op),
            tg_argv[2],
            entity,
            old_row,
            new_row,
            -- the connection here is the coordinator's: only the setting names the client
            nullif(pg_catalog.current_setting('toolsdb.client_addr', true), '')::inet,
            nullif(pg_catalog.current_setting('toolsdb.user_agent', true), '')
        );
        return null;
    end if;
    insert into toolsdb.audit_logs (
        actor, actor_user_id, actor_agent_id, session_id, action, entity_type, entity_id,
        old_values, new_values, client_addr, user_agent
    )
    values (
        coalesce(nullif(pg_catalog.current_setting('toolsdb.actor', true), ''), user_setting, agent_setting, session_user),
        case when user_setting is not null then toolsdb.setting_uuid('toolsdb.user_id') end,
        case when agent_setting is not null then toolsdb.setting_uuid('toolsdb.agent_id') end,
        nullif(pg_catalog.current_setting('toolsdb.session_id', true), ''),
        pg_catalog.lower(tg_op),
        coalesce(tg_argv[2], tg_table_name::text),
        entity,
        old_row,
        new_row,
        coalesce(
            nullif(pg_catalog.current_setting('toolsdb.client_addr', true), '')::inet,
            pg_catalog.inet_client_addr()
        ),
        nullif(pg_catalog.current_setting('toolsdb.user_agent', true), '')
    );
    return null;
end;
$function$;

comment on function toolsdb_private.tg__audit() is
'Change capture (AFTER INSERT OR UPDATE OR DELETE, FOR EACH ROW) installed by '
'toolsdb.audit_table(). Arguments: the primary key columns and the redacted columns, '
'comma-separated; on Citus the table''s name (it then captures on the coordinator only) and, for a '
'table distributed over the workers, its distribution column (it then captures on the worker into '
'toolsdb_private.audit_outbox, see docs/citus.md). Writes the whole row for insert and delete, only '
'changed columns for update.';

create or replace function toolsdb_private.tg__audit_truncate()
returns trigger
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    if tg_nargs > 0 then  -- on Citus: as in tg__audit()
        if not exists (select from pg_catalog.pg_dist_local_group as g where g.groupid = 0) then
            return null;
        end if;
    end if;
    perform toolsdb_private.audit_write('truncate', coalesce(tg_argv[0], tg_table_name::text), null, null, null, null);
    return null;
end;
$function$;

comment on function toolsdb_private.tg__audit_truncate() is
'Change capture for TRUNCATE (a statement trigger: row triggers never see it), installed by '
'toolsdb.audit_table(). On Citus its argument names the table, and it captures on the coordinator only.';

create or replace function toolsdb.audit_table(target regclass, redact text[] default '{}')
returns void
language plpgsql
volatile
set search_path = ''
as $function$
declare
    key_columns text;
    unknown text;
    citus_method text;
    citus_name text;
    citus_column text;
    colocated boolean;
    trigger_args text;
begin
    -- On Citus the triggers fire on the shards: they get the table's name, and
    -- capture on the coordinator, where the log is (docs/citus.md). A table
    -- distributed over the workers has no copy there: its triggers get its
    -- distribution column too, and capture on the worker into the co-located
    -- shard of toolsdb_private.audit_outbox, which holds uuid keys.
    if exists (select from pg_catalog.pg_extension where extname = 'citus') then
        execute 'select p.partmethod::text, a.attname::text, o.logicalrelid is not null'
            ' from pg_catalog.pg_dist_partition as p'
            ' left join pg_catalog.pg_attribute as a'
            '  on a.attrelid = p.logicalrelid and p.partmethod = ''h'' and a.atttypid = ''uuid''::regtype'
            '  and a.attname::text = pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)'
            ' left join pg_catalog.pg_dist_partition as o'
            '  on o.logicalrelid = pg_catalog.to_regclass(''toolsdb_private.audit_outbox'')'
            '  and o.colocationid = p.colocationid'
            ' where p.logicalrelid = $1'
        into citus_method, citus_column, colocated using target;
        if citus_method = 'h' and (citus_column is null or not colocated) then
            raise exception 'cannot audit %: it is distributed over the workers and not by a uuid co-located with '
                'toolsdb_private.audit_outbox, where its workers capture', target
                using errcode = 'feature_not_supported', hint = 'docs/citus.md says which tables Citus distributes';
        end if;
        if citus_method is not null then
            select c.relname into citus_name from pg_catalog.pg_class as c where c.oid = target;
        end if;
    end if;
    -- A distributed table's key leads with its distribution column (Citus
    -- needs it there); the entity id leaves it out, as on one node.
    select pg_catalog.string_agg(a.attname, ',' order by k.ordinality)
    into key_columns
    from pg_catalog.pg_index as i
    cross join lateral pg_catalog.unnest(i.indkey) with ordinality as k (attnum, ordinality)
    inner join pg_catalog.pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
    where i.indrelid = target and i.indisprimary
        and (citus_column is null or a.attname <> citus_column or i.indnatts = 1);
    if key_columns is null then
        raise exception 'cannot audit %: it has no primary key', target
            using errcode = 'invalid_table_definition';
    end if;
    select r into unknown
    from pg_catalog.unnest(redact) as r
    where not exists (
        select from pg_catalog.pg_attribute as a
        where a.attrelid = target and a.attname = r and a.attnum > 0 and not a.attisdropped
    )
    limit 1;
    if unknown is not null then
        raise exception 'cannot redact %.%: no such column', target, unknown
            using errcode = 'undefined_column';
    end if;
    -- Triggers that are in place already are left alone (a migrate with
    -- nothing to do writes nothing). tgtype bits: 1 row, 4 insert, 8 delete,
    -- 16 update, 32 truncate; no 2 (before), so after.
    if not exists (
        select from pg_catalog.pg_trigger as t
        where t.tgrelid = target and t.tgname = '_900_audit' and t.tgenabled = 'O'
            and t.tgfoid = 'toolsdb_private.tg__audit()'::regprocedure and t.tgtype = 1 + 4 + 8 + 16
            and t.tgargs = pg_catalog.convert_to(key_columns, 'UTF8') || '\x00'::bytea
            || pg_catalog.convert_to(pg_catalog.array_to_string(redact, ','), 'UTF8') || '\x00'::bytea
            || coalesce(pg_catalog.convert_to(citus_name, 'UTF8') || '\x00'::bytea, '')
            || coalesce(pg_catalog.convert_to(citus_column, 'UTF8') || '\x00'::bytea, '')
    ) then
        trigger_args := pg_catalog.format('%L, %L', key_columns, pg_catalog.array_to_string(redact, ','))
            || coalesce(', ' || pg_catalog.quote_literal(citus_name), '')
            || coalesce(', ' || pg_catalog.quote_literal(citus_column), '');
        execute pg_catalog.format(
            'create or replace trigger _900_audit after insert or update or delete on %s '
            'for each row execute function toolsdb_private.tg__audit(%s)',
            target, trigger_args
        );
    end if;
    if not exists (
        select from pg_catalog.pg_trigger as t
        where t.tgrelid = target and t.tgname = '_900_audit_truncate' and t.tgenabled = 'O'
            and t.tgfoid = 'toolsdb_private.tg__audit_truncate()'::regprocedure and t.tgtype = 32
            and t.tgargs = coalesce(pg_catalog.convert_to(citus_name, 'UTF8') || '\x00'::bytea, '')
    ) then
        execute pg_catalog.format(
            'create or replace trigger _900_audit_truncate after truncate on %s '
            'for each statement execute function toolsdb_private.tg__audit_truncate(%s)',
            target, coalesce(pg_catalog.quote_literal(citus_name), '')
        );
    end if;
end;
$function$;

comment on function toolsdb.audit_table(regclass, text[]) is
'Opts a table into change capture: triggers _900_audit (rows) and _900_audit_truncate. '
'redact names the columns whose values never reach the log (they read "[redacted]"). '
'Idempotent (writes nothing when the triggers are in place); call it again to change the redacted '
'columns. Call it in the table''s file of repeatable/.';

create or replace function toolsdb.audit_create_partitions(months_ahead integer default 3)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
begin
    if months_ahead is null or months_ahead not between 0 and 120 then
        raise exception 'months_ahead must be between 0 and 120, not %', months_ahead
            using errcode = 'invalid_parameter_value';
    end if;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.audit_create_partitions'));
    return toolsdb_private.create_range_partitions(
        'toolsdb.audit_logs', 'month', months_ahead,
        'old entries leave only as whole monthly partitions, through toolsdb.audit_apply_retention()'
    );
end;
$function$;

comment on function toolsdb.audit_create_partitions(integer) is
'Creates the monthly partitions of toolsdb.audit_logs for this month and the next months_ahead '
'months (default 3), and for any month whose entries landed in the default partition (they are '
'moved). Returns how many it created. Run by every toolsdb migrate; schedule it monthly too.';

create or replace function toolsdb.audit_apply_retention(max_age interval default null)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    age interval := max_age;
    cutoff timestamptz;
    part record;
    dropped text[] := '{}';
    dropped_rows bigint := 0;
    part_rows bigint;
begin
    if age is null then
        select (c.value #>> '{}')::interval into age
        from toolsdb.config as c
        where c.key = 'audit.retention' and not c.is_secret;
    end if;
    age := coalesce(age, interval '13 months');
    if age < interval '1 month' then
        raise exception 'audit retention must keep at least one month, not %', age
            using errcode = 'invalid_parameter_value';
    end if;
    cutoff := pg_catalog.now() - age;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.audit_create_partitions'));
    for part in
        select p.partition_name as relname, (p.starts_at at time zone 'UTC')::date as period, p.ends_at
        from toolsdb_private.range_partitions('toolsdb.audit_logs') as p
    loop
        -- Only whole months that ended before the cutoff.
        continue when part.ends_at > cutoff;
        execute pg_catalog.format('select count(*) from toolsdb.%I', part.relname) into part_rows;
        execute pg_catalog.format('alter table toolsdb.audit_logs detach partition toolsdb.%I', part.relname);
        execute pg_catalog.format('drop table toolsdb.%I', part.relname);
        insert into toolsdb.audit_prunes (period, partition_name, row_count, max_age)
        values (part.period, part.relname, part_rows, age)
        on conflict (period) do nothing;
        dropped := dropped || part.relname::text;
        dropped_rows := dropped_rows + part_rows;
    end loop;
    perform toolsdb_private.audit_write(
        'audit_retention', 'audit_logs', null, null, null,
        pg_catalog.jsonb_build_object(
            'max_age', age::text, 'cutoff', cutoff, 'dropped_partitions', pg_catalog.to_jsonb(dropped),
            'dropped_rows', dropped_rows
        )
    );
    return pg_catalog.cardinality(dropped);
end;
$function$;

comment on function toolsdb.audit_apply_retention(interval) is
'Drops the monthly partitions of toolsdb.audit_logs that ended more than max_age ago (default: '
'config key audit.retention, e.g. "400 days", else 13 months; at least one month). Whole months '
'only, never single rows. Records each month in toolsdb.audit_prunes and writes an '
'audit_retention event. Returns the number of partitions dropped.';

create or replace trigger _010_append_only
before update or delete on toolsdb.audit_seals
for each row
execute function toolsdb_private.tg__append_only(
    'toolsdb.audit_seals', 'seals are only added, by toolsdb.audit_seal()'
);

create or replace trigger _010_append_only_truncate
before truncate on toolsdb.audit_seals
for each statement
execute function toolsdb_private.tg__append_only(
    'toolsdb.audit_seals', 'seals are only added, by toolsdb.audit_seal()'
);

create or replace function toolsdb_private.audit_row_digest(entry toolsdb.audit_logs)
returns bytea
language sql
stable
return pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.jsonb_build_array(
    entry.audit_id,
    extract(epoch from entry.logged_at) * 1000000,
    entry.actor, entry.actor_user_id, entry.actor_agent_id, entry.session_id, entry.action,
    entry.entity_type, entry.entity_id, entry.old_values, entry.new_values, entry.details,
    entry.client_addr::text, entry.user_agent, entry.db_role, entry.transaction_id::text
)::text, 'UTF8'));

comment on function toolsdb_private.audit_row_digest(toolsdb.audit_logs) is
'SHA-256 of an audit entry''s canonical text (every column; time as epoch microseconds, so the '
'session time zone does not matter).';

create or replace function toolsdb_private.audit_seal_hash(
    previous_hash bytea, period date, first_transaction_id xid8, end_transaction_id xid8,
    row_count bigint, rows_hash bytea
)
returns bytea
language sql
immutable
return pg_catalog.sha256(coalesce(previous_hash, ''::bytea) || pg_catalog.convert_to(pg_catalog.concat_ws(
    '|', pg_catalog.to_char(period, 'YYYY-MM-DD'), first_transaction_id::text, end_transaction_id::text,
    row_count::text, pg_catalog.encode(rows_hash, 'hex')
), 'UTF8'));

comment on function toolsdb_private.audit_seal_hash(bytea, date, xid8, xid8, bigint, bytea) is
'The chain link: SHA-256 of the previous seal hash and a seal''s fields.';

create or replace function toolsdb.audit_collect()
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    moved bigint;
begin
    -- Only on Citus: the workers capture the changes of the tables distributed
    -- over them into toolsdb_private.audit_outbox (docs/citus.md). Dynamic SQL:
    -- the outbox exists nowhere else, and Citus plans this statement afresh.
    if pg_catalog.to_regclass('toolsdb_private.audit_outbox') is null then
        return 0;
    end if;
    -- One connection per node for the rest of the transaction: after shards
    -- were written in parallel, Citus refuses writes to its local tables in
    -- the same transaction (maintain, or a caller, may go on to write them).
    perform pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    -- Each entry leaves the outbox and enters the log in this one transaction
    -- (two-phase commit with the workers); a concurrent collector waits for
    -- the rows this one deletes, then finds them gone: each is moved once.
    execute $sql$
        with taken as (
            delete from toolsdb_private.audit_outbox
            returning
                outbox_id, logged_at, actor, actor_user_id, actor_agent_id, session_id, action, entity_type,
                entity_id, old_values, new_values, details, client_addr, user_agent, db_role
        )
        insert into toolsdb.audit_logs (
            logged_at, actor, actor_user_id, actor_agent_id, session_id, action, entity_type, entity_id,
            old_values, new_values, details, client_addr, user_agent, db_role
        )
        select
            t.logged_at, t.actor, t.actor_user_id, t.actor_agent_id, t.session_id, t.action, t.entity_type,
            t.entity_id, t.old_values, t.new_values, t.details, t.client_addr, t.user_agent, t.db_role
        from taken as t
        order by t.logged_at, t.outbox_id
    $sql$;
    get diagnostics moved = row_count;
    return moved;
end;
$function$;

comment on function toolsdb.audit_collect() is
'On Citus: moves the changes that workers captured (toolsdb_private.audit_outbox) into '
'toolsdb.audit_logs, in order of capture, and returns how many; each entry is moved exactly once, '
'also under concurrent calls. toolsdb.audit_seal() (and so maintain) calls it first. Returns 0 '
'elsewhere.';

create or replace function toolsdb.audit_seal()
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    low xid8;
    high xid8;
    chain bytea;
    previous bytea;
    batch record;
    sealed integer := 0;
begin
    -- One sealer at a time; writers never wait for it.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('toolsdb.audit_seal'));
    -- On Citus, what the workers captured joins the log first; this
    -- transaction's entries are sealed by the next run.
    perform toolsdb.audit_collect();
    -- Every transaction below this xmin has finished: no entry can join the range later.
    high := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
    select s.end_transaction_id, s.seal_hash into low, chain
    from toolsdb.audit_seals as s
    order by s.seal_id desc
    limit 1;
    low := coalesce(low, '0'::xid8);
    if low >= high then
        return 0;
    end if;
    for batch in
        select
            pg_catalog.date_trunc('month', l.logged_at at time zone 'UTC')::date as period,
            count(*) as row_count,
            min(l.audit_id) as first_audit_id,
            max(l.audit_id) as last_audit_id,
            pg_catalog.sha256(pg_catalog.string_agg(toolsdb_private.audit_row_digest(l), ''::bytea order by l.audit_id))
            as rows_hash
        from toolsdb.audit_logs as l
        where l.transaction_id >= low and l.transaction_id < high
        group by 1
        order by 1
    loop
        previous := chain;
        chain := toolsdb_private.audit_seal_hash(previous, batch.period, low, high, batch.row_count, batch.rows_hash);
        insert into toolsdb.audit_seals (
            period, first_transaction_id, end_transaction_id, row_count, first_audit_id, last_audit_id,
            rows_hash, previous_hash, seal_hash
        )
        values (
            batch.period, low, high, batch.row_count, batch.first_audit_id, batch.last_audit_id,
            batch.rows_hash, previous, chain
        );
        sealed := sealed + 1;
    end loop;
    return sealed;
end;
$function$;

comment on function toolsdb.audit_seal() is
'Seals every audit entry written by a finished transaction and not sealed yet; returns the number '
'of seal rows written (0 when there was nothing new). Safe to run concurrently with writers and '
'with itself; schedule it often (toolsdb audit seal). On Citus it first collects what the workers '
'captured (toolsdb.audit_collect()).';

create or replace function toolsdb.audit_verify()
returns table (
    seal_id bigint,
    period date,
    first_transaction_id xid8,
    end_transaction_id xid8,
    sealed_rows bigint,
    found_rows bigint,
    problem text
)
language plpgsql
stable
security definer
set search_path = ''
as $function$
begin
    return query
    with
    chain as (
        select
            s.seal_id, s.period, s.first_transaction_id, s.end_transaction_id, s.row_count,
            s.previous_hash, s.seal_hash,
            toolsdb_private.audit_seal_hash(
                s.previous_hash, s.period, s.first_transaction_id, s.end_transaction_id, s.row_count, s.rows_hash
            ) as recomputed,
            pg_catalog.lag(s.seal_hash) over (order by s.seal_id) as prior_hash,
            pg_catalog.lag(s.end_transaction_id) over (order by s.seal_id) as prior_end,
            pg_catalog.lag(s.first_transaction_id) over (order by s.seal_id) as prior_first
        from toolsdb.audit_seals as s
    ),
    batches as (
        select distinct s.first_transaction_id as low, s.end_transaction_id as high
        from toolsdb.audit_seals as s
    ),
    found as (
        select
            b.low, b.high,
            pg_catalog.date_trunc('month', l.logged_at at time zone 'UTC')::date as period,
            count(*) as row_count,
            pg_catalog.sha256(pg_catalog.string_agg(toolsdb_private.audit_row_digest(l), ''::bytea order by l.audit_id))
            as rows_hash
        from batches as b
        inner join toolsdb.audit_logs as l on l.transaction_id >= b.low and l.transaction_id < b.high
        group by b.low, b.high, 3
    ),
    problems as (
        select
            c.seal_id, c.period, c.first_transaction_id, c.end_transaction_id, c.row_count as sealed_rows,
            null::bigint as found_rows,
            case
                when c.recomputed <> c.seal_hash then 'seal hash does not match its fields'
                when c.previous_hash is distinct from c.prior_hash then 'seal chain broken: previous_hash differs'
                else 'transaction ranges of seals are not contiguous'
            end as problem
        from chain as c
        where c.recomputed <> c.seal_hash
            or c.previous_hash is distinct from c.prior_hash
            or (c.prior_end is not null and c.first_transaction_id <> c.prior_end
                and c.first_transaction_id <> c.prior_first)
        union all
        select
            s.seal_id,
            coalesce(s.period, f.period),
            coalesce(s.first_transaction_id, f.low),
            coalesce(s.end_transaction_id, f.high),
            s.row_count,
            coalesce(f.row_count, 0),
            case
                when s.seal_id is null then 'entries in a sealed range that no seal covers'
                when f.row_count is null or f.row_count < s.row_count then 'sealed entries missing'
                when f.row_count > s.row_count then 'entries added to a sealed range'
                else 'sealed entries changed'
            end
        from toolsdb.audit_seals as s
        full join found as f
            on s.first_transaction_id = f.low and s.end_transaction_id = f.high and s.period = f.period
        where not exists (
            select from toolsdb.audit_prunes as p where p.period = coalesce(s.period, f.period)
        )
        and (s.seal_id is null or f.row_count is null or s.row_count <> f.row_count or s.rows_hash <> f.rows_hash)
    )
    select
        p.seal_id, p.period, p.first_transaction_id, p.end_transaction_id, p.sealed_rows, p.found_rows, p.problem
    from problems as p
    order by p.first_transaction_id, p.period, p.seal_id;
end;
$function$;

comment on function toolsdb.audit_verify() is
'Checks the audit log against its seals: every seal''s hash and chain link, and every sealed '
'range''s entries (months dropped by retention excepted). Returns one row per problem, first bad '
'range first; no row means the sealed log is intact. Entries not sealed yet are not covered.';

-- ---------------------------------------------------------------------------
-- Row-level security: the application reads only its session's entries
-- ---------------------------------------------------------------------------

select toolsdb.isolate_rows('toolsdb.audit_logs', 'session_id');

-- This month's and the next three months' partitions, on every migrate (a
-- no-op when they exist); toolsdb.maintain() keeps them ahead after that.
select toolsdb.audit_create_partitions(3);
