-- repeatable/44_notifications.sql
-- Tier 40: outgoing notifications (Slack, Discord, ...) and their delivery queue:
-- insert_notification enqueues, claim_notifications claims a batch with a
-- lease (for update skip locked), mark_notification_sent acks and
-- mark_notification_failed retries with exponential backoff and jitter until
-- max_attempts, then dead-letters; claim_notification (one by id) and
-- claim_failed_notifications (failed ones, backoff or not) serve the
-- hook-notification API's calls; get_dead_notifications and
-- redrive_notifications handle the dead letters; settle_and_claim_notifications
-- settles a job and claims the next in one call, release_notifications gives
-- back what a stopping worker holds. pg_notify on channel
-- toolsdb_notifications once per inserting statement. Row-level security
-- per session; not audited (queue churn; the row's attempts, last_error and
-- sent_at are the delivery record). See docs/runtime.md.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/44_notifications.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.notification_destinations
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.notification_destinations is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- Change capture into toolsdb.audit_logs (docs/security.md).
select toolsdb.audit_table('toolsdb.notification_destinations');

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

-- The claims and settlements share these private helpers: each public claim
-- picks its rows (select ... for update skip locked) and leases them in
-- lease_notifications(); mark_notification(s)_sent, mark_notification_failed
-- and settle_and_claim_notifications() settle in settle_sent_notifications()
-- and settle_failed_notification().
-- The helpers that run the queue's statements plan them once (plan_cache_mode
-- force_generic_plan): with the default, a parameter such as the claim's
-- limit batch_size makes the generic plan look dearer than a custom one, so
-- every call was planned again, which cost about as much as running the
-- statements (settle_and_claim_notifications at batch 1: 0.74 ms of server
-- time per call, 0.41 ms with generic plans). The generic plans use the
-- indexes (tests/test_queue_indexes_and_errors.py explains the claim's).
create or replace function toolsdb_private.check_notification_claim(batch_size integer, lease interval)
returns void
language plpgsql
immutable
set search_path = ''
as $function$
begin
    if batch_size is null or batch_size not between 1 and 10000 then
        raise exception 'batch_size must be between 1 and 10000, not %', batch_size
            using errcode = 'invalid_parameter_value';
    end if;
    if lease is null or lease < interval '1 second' or lease > interval '1 day' then
        raise exception 'lease must be between 1 second and 1 day, not %', lease
            using errcode = 'invalid_parameter_value';
    end if;
end;
$function$;

comment on function toolsdb_private.check_notification_claim(integer, interval) is
'Checks the arguments of a notification claim: batch_size 1-10000, lease 1 second to 1 day; '
'invalid_parameter_value otherwise.';

create or replace function toolsdb_private.lease_notifications(
    notification_ids bigint[],
    lease interval,
    worker text,
    token uuid
)
returns setof toolsdb.notifications
language plpgsql
volatile
set search_path = ''
set plan_cache_mode = force_generic_plan
as $function$
begin
    -- A row still "sending" whose lease ended after its last attempt is not
    -- tried again: it becomes a dead letter (its worker died on it).
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
        where n.notification_id = any(notification_ids)
        returning n.*
    )
    select * from claimed where claimed.status = 'sending' order by claimed.notification_id;
end;
$function$;

comment on function toolsdb_private.lease_notifications(bigint[], interval, text, uuid) is
'The lease of every notification claim: the rows named (locked by the caller''s select ... for '
'update skip locked) become sending, attempts + 1, leased until now() + lease under token; a row '
'out of attempts becomes a dead letter instead. Returns the leased rows in notification_id order.';

create or replace function toolsdb_private.claim_due_notifications(batch_size integer, lease interval, worker text)
returns setof toolsdb.notifications
language plpgsql
volatile
set search_path = ''
set plan_cache_mode = force_generic_plan
as $function$
begin
    -- The ids first, as an array: the update then finds each row by its
    -- primary key, whatever the table's size (a join could hash it whole).
    return query
    select *
    from toolsdb_private.lease_notifications(
        array(
            select p.notification_id
            from toolsdb.notifications as p
            where p.status in ('pending', 'sending', 'failed') and p.next_attempt_at <= pg_catalog.now()
            order by p.next_attempt_at, p.notification_id
            limit batch_size
            for update skip locked
        ),
        lease, worker, gen_random_uuid()
    );
end;
$function$;

comment on function toolsdb_private.claim_due_notifications(integer, interval, text) is
'The claim of claim_notifications() and settle_and_claim_notifications(): up to batch_size due '
'rows, oldest due first, skipping rows other claimers hold, leased under one new token.';

create or replace function toolsdb_private.settle_sent_notifications(notification_ids bigint[], claim_token uuid)
returns integer
language plpgsql
volatile
set search_path = ''
set plan_cache_mode = force_generic_plan
as $function$
declare
    done integer;
    wanted integer;
begin
    -- The lease check is written as time left, not next_attempt_at > now():
    -- that range would let the planner scan notifications_claim_idx over every
    -- lease of the last minutes (ended claims' dead entries too) instead of
    -- finding the rows by primary key. Same in settle_failed_notification().
    update toolsdb.notifications as n
    set status = 'sent',
        sent_at = pg_catalog.now(),
        claim_token = null
    where n.notification_id = any(notification_ids)
        and n.claim_token = settle_sent_notifications.claim_token
        and n.status = 'sending'
        and n.next_attempt_at - pg_catalog.now() > interval '0';
    get diagnostics done = row_count;
    -- The distinct ids are counted only when the rows settled are fewer than
    -- the ids given (the ids may repeat).
    if done <> cardinality(notification_ids) then
        wanted := (select pg_catalog.count(distinct i) from pg_catalog.unnest(notification_ids) as i);
    end if;
    if done <> wanted then
        raise exception 'lease lost: % of % notifications are no longer held by this claim', wanted - done, wanted
            using errcode = 'object_not_in_prerequisite_state',
            hint = 'their lease ended or another worker claimed them; nothing was marked';
    end if;
    return done;
end;
$function$;

comment on function toolsdb_private.settle_sent_notifications(bigint[], uuid) is
'Acks delivered notifications, all or none (each still held by the claim: same claim_token, status '
'sending, lease not over), else object_not_in_prerequisite_state (55000) "lease lost". Returns how many.';

create or replace function toolsdb_private.settle_failed_notification(
    notification_id bigint,
    claim_token uuid,
    error text,
    retry_base interval,
    retry_max interval,
    retry_after interval
)
returns text
language plpgsql
volatile
set search_path = ''
set plan_cache_mode = force_generic_plan
as $function$
declare
    outcome text;
    -- Drawn before the update: Citus refuses a volatile function in it (docs/citus.md).
    jitter constant double precision := pg_catalog.random();
begin
    if retry_base is null or retry_base < interval '0' or retry_max is null or retry_max < retry_base then
        raise exception 'retry_base must be positive and at most retry_max (got % and %)', retry_base, retry_max
            using errcode = 'invalid_parameter_value';
    end if;
    if retry_after < interval '0' then
        raise exception 'retry_after must not be negative, not %', retry_after
            using errcode = 'invalid_parameter_value';
    end if;
    -- Exponential backoff with "equal jitter": half the delay is fixed, the
    -- other half random, so retries of a burst spread out. A retry_after (the
    -- receiver's Retry-After) replaces it, up to a day.
    update toolsdb.notifications as n
    set status = case when n.attempts >= n.max_attempts then 'dead' else 'failed' end,
        last_error = pg_catalog.left(coalesce(nullif(error, ''), 'unknown error'), 4000),
        next_attempt_at = case
            when n.attempts >= n.max_attempts then pg_catalog.now()
            when retry_after is not null then pg_catalog.now() + least(retry_after, interval '1 day')
            else pg_catalog.now() + (
                least(retry_max, retry_base * pg_catalog.power(2, least(n.attempts - 1, 30)))
                * (0.5 + jitter / 2)
            )
        end,
        claim_token = null
    where n.notification_id = settle_failed_notification.notification_id
        and n.claim_token = settle_failed_notification.claim_token
        and n.status = 'sending'
        and n.next_attempt_at - pg_catalog.now() > interval '0'
    returning n.status into outcome;
    if outcome is null then
        raise exception 'lease lost: notification % is no longer held by this claim', notification_id
            using errcode = 'object_not_in_prerequisite_state',
            hint = 'its lease ended or another worker claimed it; nothing was marked';
    end if;
    return outcome;
end;
$function$;

comment on function toolsdb_private.settle_failed_notification(bigint, uuid, text, interval, interval, interval) is
'Records a failed delivery: failed, retried after retry_after when given (up to a day), else after '
'min(retry_max, retry_base * 2^(attempts-1)) * (0.5 + random/2); after max_attempts, dead. Returns '
'the new status; object_not_in_prerequisite_state (55000) "lease lost" when the claim no longer holds it.';

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
begin
    perform toolsdb_private.check_notification_claim(batch_size, lease);
    return query select * from toolsdb_private.claim_due_notifications(batch_size, lease, worker);
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
begin
    perform toolsdb_private.check_notification_claim(1, lease);
    -- Asked for by id: a failed one is tried now, before its backoff ends
    -- (the caller decided to retry it); a leased one is left to its holder.
    return query
    select *
    from toolsdb_private.lease_notifications(
        array(
            select p.notification_id
            from toolsdb.notifications as p
            where p.notification_id = claim_notification.notification_id
                and p.attempts < p.max_attempts
                and (
                    p.status in ('pending', 'failed')
                    or (p.status = 'sending' and p.next_attempt_at <= pg_catalog.now())
                )
            for update skip locked
        ),
        lease, worker, gen_random_uuid()
    );
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
begin
    perform toolsdb_private.check_notification_claim(batch_size, lease);
    if max_retries is null or max_retries not between 1 and 100 then
        raise exception 'max_retries must be between 1 and 100, not %', max_retries
            using errcode = 'invalid_parameter_value';
    end if;
    return query
    select *
    from toolsdb_private.lease_notifications(
        array(
            select p.notification_id
            from toolsdb.notifications as p
            where p.status = 'failed' and p.attempts < least(max_retries, p.max_attempts)
            order by p.next_attempt_at, p.notification_id
            limit batch_size
            for update skip locked
        ),
        lease, worker, gen_random_uuid()
    );
end;
$function$;

comment on function toolsdb.claim_failed_notifications(integer, integer, interval, text) is
'Claims up to batch_size failed notifications tried fewer than max_retries times (and fewer than '
'their max_attempts), whether or not their backoff has ended: '
'get_failed_notifications_for_retry of the hook-notification API, which retried at once. Same '
'lease and claim_token as claim_notifications(). For toolsdb_worker.';

create or replace function toolsdb.mark_notifications_sent(notification_ids bigint[], claim_token uuid)
returns integer
language sql
volatile
security definer
set search_path = ''
as $function$
    select toolsdb_private.settle_sent_notifications(notification_ids, claim_token);
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
    select toolsdb_private.settle_sent_notifications(array[notification_id], claim_token) = 1;
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
language sql
volatile
security definer
set search_path = ''
as $function$
    select toolsdb_private.settle_failed_notification(notification_id, claim_token, error, retry_base, retry_max, null);
$function$;

comment on function toolsdb.mark_notification_failed(bigint, uuid, text, interval, interval) is
'Records a failed delivery (mark_notification_failed, as in the hook-notification API): status '
'failed, retried at now() + min(retry_max, retry_base * 2^(attempts-1)) * (0.5 + random/2); after '
'max_attempts, dead. Returns the new status. Refuses with object_not_in_prerequisite_state (55000) '
'when the claim no longer holds it.';

create or replace function toolsdb.settle_and_claim_notifications(
    claim_token uuid default null,
    sent_ids bigint[] default null,
    failed_ids bigint[] default null,
    errors text[] default null,
    retry_after_seconds double precision[] default null,
    batch_size integer default 1,
    lease interval default '1 minute',
    worker text default null,
    retry_base interval default '10 seconds',
    retry_max interval default '1 hour'
)
returns setof toolsdb.notifications
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    i integer;
begin
    if batch_size is distinct from 0 then
        perform toolsdb_private.check_notification_claim(batch_size, lease);
    end if;
    if cardinality(failed_ids) > 0 and (
        cardinality(errors) is distinct from cardinality(failed_ids)
        or (retry_after_seconds is not null and cardinality(retry_after_seconds) <> cardinality(failed_ids))
    ) then
        raise exception 'errors (and retry_after_seconds, when given) need one element per failed id'
            using errcode = 'invalid_parameter_value';
    end if;
    -- The previous claim's outcome first, all or nothing ("lease lost"
    -- aborts the whole call, the claim too).
    if cardinality(sent_ids) > 0 then
        perform toolsdb_private.settle_sent_notifications(sent_ids, claim_token);
    end if;
    for i in 1 .. coalesce(cardinality(failed_ids), 0) loop
        perform toolsdb_private.settle_failed_notification(
            failed_ids[i], claim_token, errors[i], retry_base, retry_max,
            pg_catalog.make_interval(secs => retry_after_seconds[i])
        );
    end loop;
    if batch_size > 0 then
        return query select * from toolsdb_private.claim_due_notifications(batch_size, lease, worker);
    end if;
end;
$function$;

comment on function toolsdb.settle_and_claim_notifications(
    uuid, bigint[], bigint[], text[], double precision[], integer, interval, text, interval, interval
) is
'One round trip (and one commit) per job for a worker: settles the previous claim (claim_token): '
'sent_ids as mark_notifications_sent does, failed_ids with errors[i] as mark_notification_failed '
'does, retried after retry_after_seconds[i] when given (a receiver''s HTTP 429 Retry-After) instead '
'of the backoff; then claims up to batch_size due notifications as claim_notifications does and '
'returns them (batch_size 0: settle only). A lost lease raises object_not_in_prerequisite_state '
'(55000) and nothing happens, the claim included. For toolsdb_worker.';

create or replace function toolsdb.release_notifications(notification_ids bigint[], claim_token uuid)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    released integer;
begin
    -- Not delivered, not tried: the attempt the claim counted is given back.
    update toolsdb.notifications as n
    set status = case when n.attempts > 1 then 'failed' else 'pending' end,
        attempts = n.attempts - 1,
        next_attempt_at = pg_catalog.now(),
        claim_token = null,
        claimed_by = null
    where n.notification_id = any(notification_ids)
        and n.claim_token = release_notifications.claim_token
        and n.status = 'sending';
    get diagnostics released = row_count;
    if released > 0 then
        perform pg_catalog.pg_notify('toolsdb_notifications', '');
    end if;
    return released;
end;
$function$;

comment on function toolsdb.release_notifications(bigint[], uuid) is
'Gives back claimed notifications a worker will not try (it is stopping): due now, the attempt the '
'claim counted taken back (pending, or failed if tried before), claim cleared; wakes listeners. '
'Rows the claim no longer holds are left alone. Returns how many. For toolsdb_worker.';

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
