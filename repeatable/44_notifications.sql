-- repeatable/44_notifications.sql
-- Tier 40: outgoing notifications (Slack, Discord, ...) and their delivery queue:
-- insert_notification enqueues, claim_notifications claims a batch with a
-- lease (for update skip locked), mark_notification_sent acks and
-- mark_notification_failed retries with exponential backoff and jitter until
-- max_attempts, then dead-letters; claim_notification (one by id) and
-- claim_failed_notifications (failed ones, backoff or not) serve the
-- hook-notification API's calls; get_dead_notifications and
-- redrive_notifications handle the dead letters. pg_notify on channel
-- toolsdb_notifications once per inserting statement. Row-level security
-- per session; not audited (queue churn; the row's attempts, last_error and
-- sent_at are the delivery record). See docs/runtime.md.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/44_notifications.sql.

select toolsdb.isolate_rows('toolsdb.notifications', 'session_id');

create or replace trigger _900_notify
after insert on toolsdb.notifications
for each statement
execute function toolsdb_private.tg__queue_notify('toolsdb_notifications');

comment on trigger _900_notify on toolsdb.notifications is
'Wakes workers listening on channel toolsdb_notifications, once per inserting statement.';

create or replace function toolsdb.insert_notification(
    session_id text,
    notification_type text,
    backend text,
    payload jsonb default '{}',
    event_id bigint default null,
    max_attempts integer default 3,
    idempotency_key text default null,
    deliver_at timestamptz default null
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $function$
declare
    new_id bigint;
begin
    insert into toolsdb.sessions (session_id) values (insert_notification.session_id)
    on conflict on constraint sessions_pkey do nothing;
    insert into toolsdb.notifications (
        session_id, notification_type, backend, payload, event_id, max_attempts, idempotency_key, next_attempt_at
    )
    values (
        insert_notification.session_id, insert_notification.notification_type, insert_notification.backend,
        coalesce(insert_notification.payload, '{}'), insert_notification.event_id,
        coalesce(insert_notification.max_attempts, 3), insert_notification.idempotency_key,
        coalesce(insert_notification.deliver_at, pg_catalog.now())
    )
    on conflict on constraint notifications_idempotency_key_key do nothing
    returning notification_id into new_id;
    if new_id is null then
        select n.notification_id into new_id
        from toolsdb.notifications as n
        where n.idempotency_key = insert_notification.idempotency_key;
        if new_id is null then
            -- Stored, but row-level security hides it: another session's key.
            raise exception 'idempotency_key % is taken by another session', pg_catalog.quote_literal(insert_notification.idempotency_key)
                using errcode = 'unique_violation', constraint = 'notifications_idempotency_key_key';
        end if;
    end if;
    return new_id;
end;
$function$;

comment on function toolsdb.insert_notification(text, text, text, jsonb, bigint, integer, text, timestamptz) is
'Queues a notification (insert_notification, as in the hook-notification API): pending, '
'deliverable from deliver_at (default now); creates a bare session row if the session is new, '
'as insert_event() does. With an idempotency_key already stored, inserts '
'nothing and returns the existing notification_id (unique_violation when the key belongs to a '
'session the caller cannot see). Wakes listeners on toolsdb_notifications.';

create or replace function toolsdb.claim_notifications(
    batch_size integer default 10,
    lease interval default '1 minute',
    worker text default null
)
returns setof toolsdb.notifications
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    token uuid := gen_random_uuid();
begin
    if batch_size is null or batch_size not between 1 and 10000 then
        raise exception 'batch_size must be between 1 and 10000, not %', batch_size
            using errcode = 'invalid_parameter_value';
    end if;
    if lease is null or lease < interval '1 second' or lease > interval '1 day' then
        raise exception 'lease must be between 1 second and 1 day, not %', lease
            using errcode = 'invalid_parameter_value';
    end if;
    -- A row still "sending" whose lease ended after its last attempt is not
    -- tried again: it becomes a dead letter (its worker died on it).
    -- The ids first, as an array: the update then finds each row by its
    -- primary key, whatever the table's size (a join could hash it whole).
    return query
    with claimed as (
        update toolsdb.notifications as n
        set status = case when n.attempts >= n.max_attempts then 'dead' else 'sending' end,
            attempts = case when n.attempts >= n.max_attempts then n.attempts else n.attempts + 1 end,
            last_error = case
                when n.attempts >= n.max_attempts then 'lease ended after the last attempt (worker lost)'
                else n.last_error
            end,
            next_attempt_at = case
                when n.attempts >= n.max_attempts then n.next_attempt_at else pg_catalog.now() + lease
            end,
            claim_token = case when n.attempts >= n.max_attempts then null else token end,
            claimed_by = worker
        where n.notification_id = any(array(
            select p.notification_id
            from toolsdb.notifications as p
            where p.status in ('pending', 'sending', 'failed') and p.next_attempt_at <= pg_catalog.now()
            order by p.next_attempt_at, p.notification_id
            limit batch_size
            for update skip locked
        ))
        returning n.*
    )
    select * from claimed where claimed.status = 'sending' order by claimed.notification_id;
end;
$function$;

comment on function toolsdb.claim_notifications(integer, interval, text) is
'Claims up to batch_size due notifications, oldest due first: status sending, attempts + 1, '
'leased until now() + lease under one new claim_token. Rows of a worker that died come back when '
'their lease ends (or become dead letters if that was the last attempt). Concurrent claimers never '
'get the same row (for update skip locked); returned in notification_id order. Commit the claim '
'before delivering. For toolsdb_worker.';

create or replace function toolsdb.claim_notification(
    notification_id bigint,
    lease interval default '1 minute',
    worker text default null
)
returns setof toolsdb.notifications
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    token uuid := gen_random_uuid();
begin
    if lease is null or lease < interval '1 second' or lease > interval '1 day' then
        raise exception 'lease must be between 1 second and 1 day, not %', lease
            using errcode = 'invalid_parameter_value';
    end if;
    -- Asked for by id: a failed one is tried now, before its backoff ends
    -- (the caller decided to retry it); a leased one is left to its holder.
    return query
    update toolsdb.notifications as n
    set status = 'sending',
        attempts = n.attempts + 1,
        next_attempt_at = pg_catalog.now() + lease,
        claim_token = token,
        claimed_by = worker
    where n.notification_id = (
        select p.notification_id
        from toolsdb.notifications as p
        where p.notification_id = claim_notification.notification_id
            and p.attempts < p.max_attempts
            and (p.status in ('pending', 'failed') or (p.status = 'sending' and p.next_attempt_at <= pg_catalog.now()))
        for update skip locked
    )
    returning n.*;
end;
$function$;

comment on function toolsdb.claim_notification(bigint, interval, text) is
'Claims one named notification now: status sending, attempts + 1, leased until now() + lease under '
'a new claim_token. A failed one is claimed before its backoff ends. No row when it is sent, dead, '
'out of attempts, leased or being claimed by another worker, or missing. For the hook-notification API''s '
'mark_notification_sent(id) and mark_notification_failed(id, error) on a notification its caller '
'did not claim first. For toolsdb_worker.';

create or replace function toolsdb.claim_failed_notifications(
    max_retries integer default 3,
    batch_size integer default 100,
    lease interval default '1 minute',
    worker text default null
)
returns setof toolsdb.notifications
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    token uuid := gen_random_uuid();
begin
    if batch_size is null or batch_size not between 1 and 10000 then
        raise exception 'batch_size must be between 1 and 10000, not %', batch_size
            using errcode = 'invalid_parameter_value';
    end if;
    if max_retries is null or max_retries not between 1 and 100 then
        raise exception 'max_retries must be between 1 and 100, not %', max_retries
            using errcode = 'invalid_parameter_value';
    end if;
    if lease is null or lease < interval '1 second' or lease > interval '1 day' then
        raise exception 'lease must be between 1 second and 1 day, not %', lease
            using errcode = 'invalid_parameter_value';
    end if;
    return query
    with claimed as (
        update toolsdb.notifications as n
        set status = 'sending',
            attempts = n.attempts + 1,
            next_attempt_at = pg_catalog.now() + lease,
            claim_token = token,
            claimed_by = worker
        where n.notification_id = any(array(
            select p.notification_id
            from toolsdb.notifications as p
            where p.status = 'failed' and p.attempts < least(max_retries, p.max_attempts)
            order by p.next_attempt_at, p.notification_id
            limit batch_size
            for update skip locked
        ))
        returning n.*
    )
    select * from claimed order by claimed.notification_id;
end;
$function$;

comment on function toolsdb.claim_failed_notifications(integer, integer, interval, text) is
'Claims up to batch_size failed notifications tried fewer than max_retries times (and fewer than '
'their max_attempts), whether or not their backoff has ended: '
'get_failed_notifications_for_retry of the hook-notification API, which retried at once. Same '
'lease and claim_token as claim_notifications(). For toolsdb_worker.';

create or replace function toolsdb.mark_notifications_sent(notification_ids bigint[], claim_token uuid)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    wanted integer := (select pg_catalog.count(distinct i) from pg_catalog.unnest(notification_ids) as i);
    done integer;
begin
    update toolsdb.notifications as n
    set status = 'sent',
        sent_at = pg_catalog.now(),
        claim_token = null
    where n.notification_id = any(notification_ids)
        and n.claim_token = mark_notifications_sent.claim_token
        and n.status = 'sending'
        and n.next_attempt_at > pg_catalog.now();
    get diagnostics done = row_count;
    if done <> wanted then
        raise exception 'lease lost: % of % notifications are no longer held by this claim', wanted - done, wanted
            using errcode = 'object_not_in_prerequisite_state',
            hint = 'their lease ended or another worker claimed them; nothing was marked';
    end if;
    return done;
end;
$function$;

comment on function toolsdb.mark_notifications_sent(bigint[], uuid) is
'Acks delivered notifications, all or none: each must still be held by the claim (same '
'claim_token, status sending, lease not over), else object_not_in_prerequisite_state (55000) '
'"lease lost" and nothing changes, so a late ack is never counted twice. Returns how many.';

create or replace function toolsdb.mark_notification_sent(notification_id bigint, claim_token uuid)
returns boolean
language sql
volatile
security definer
set search_path = ''
as $function$
    select toolsdb.mark_notifications_sent(array[notification_id], claim_token) = 1;
$function$;

comment on function toolsdb.mark_notification_sent(bigint, uuid) is
'Acks one delivered notification (mark_notification_sent, as in the hook-notification API); '
'refuses with object_not_in_prerequisite_state (55000) when the claim no longer holds it.';

create or replace function toolsdb.mark_notification_failed(
    notification_id bigint,
    claim_token uuid,
    error text,
    retry_base interval default '10 seconds',
    retry_max interval default '1 hour'
)
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    outcome text;
begin
    if retry_base is null or retry_base < interval '0' or retry_max is null or retry_max < retry_base then
        raise exception 'retry_base must be positive and at most retry_max (got % and %)', retry_base, retry_max
            using errcode = 'invalid_parameter_value';
    end if;
    -- Exponential backoff with "equal jitter": half the delay is fixed, the
    -- other half random, so retries of a burst spread out.
    update toolsdb.notifications as n
    set status = case when n.attempts >= n.max_attempts then 'dead' else 'failed' end,
        last_error = pg_catalog.left(coalesce(nullif(error, ''), 'unknown error'), 4000),
        next_attempt_at = case
            when n.attempts >= n.max_attempts then pg_catalog.now()
            else pg_catalog.now() + (
                least(retry_max, retry_base * pg_catalog.power(2, least(n.attempts - 1, 30)))
                * (0.5 + pg_catalog.random() / 2)
            )
        end,
        claim_token = null
    where n.notification_id = mark_notification_failed.notification_id
        and n.claim_token = mark_notification_failed.claim_token
        and n.status = 'sending'
        and n.next_attempt_at > pg_catalog.now()
    returning n.status into outcome;
    if outcome is null then
        raise exception 'lease lost: notification % is no longer held by this claim', notification_id
            using errcode = 'object_not_in_prerequisite_state',
            hint = 'its lease ended or another worker claimed it; nothing was marked';
    end if;
    return outcome;
end;
$function$;

comment on function toolsdb.mark_notification_failed(bigint, uuid, text, interval, interval) is
'Records a failed delivery (mark_notification_failed, as in the hook-notification API): status '
'failed, retried at now() + min(retry_max, retry_base * 2^(attempts-1)) * (0.5 + random/2); after '
'max_attempts, dead. Returns the new status. Refuses with object_not_in_prerequisite_state (55000) '
'when the claim no longer holds it.';

create or replace function toolsdb.get_dead_notifications(max_rows integer default 100)
returns setof toolsdb.notifications
language sql
stable
security definer
set search_path = ''
as $function$
    select n.*
    from toolsdb.notifications as n
    where n.status = 'dead'
    order by n.notification_id
    limit greatest(coalesce(max_rows, 100), 0);
$function$;

comment on function toolsdb.get_dead_notifications(integer) is
'The dead letters: notifications that used up their attempts, oldest first, at most max_rows. '
'For toolsdb_worker (every session).';

create or replace function toolsdb.redrive_notifications(notification_ids bigint[] default null)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    moved integer;
begin
    update toolsdb.notifications as n
    set status = 'pending',
        attempts = 0,
        next_attempt_at = pg_catalog.now(),
        claim_token = null,
        claimed_by = null
    where n.status = 'dead'
        and (notification_ids is null or n.notification_id = any(notification_ids));
    get diagnostics moved = row_count;
    if moved > 0 then
        perform pg_catalog.pg_notify('toolsdb_notifications', '');
    end if;
    return moved;
end;
$function$;

comment on function toolsdb.redrive_notifications(bigint[]) is
'Gives dead letters (all, or those listed) a new set of attempts: pending now, attempts 0, '
'last_error kept for the record. Returns how many. For toolsdb_worker.';
