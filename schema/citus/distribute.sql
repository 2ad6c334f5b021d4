-- schema/citus/distribute.sql
-- The distribution of docs/citus.md, applied by `toolsdb migrate` on a Citus
-- coordinator only: in its one transaction, after the migrations and before
-- the definitions of repeatable/ (distributing a table drops the views that
-- read it; they are created after). Every statement is guarded, so a second
-- migrate changes nothing. Built so far: the reference tables the session
-- group points to; the session group (sessions, messages) distributed by
-- session_id; memories distributed by agent_id, with the audit outbox its
-- workers capture into; the hook's events, distributed with the sessions.
-- Every other table stays on the coordinator: a Citus local table where it
-- has a key to a reference table, else a plain one.

-- Citus re-creates a table it converts (into a Citus local, reference or
-- distributed table), and the table's and columns' comments stay behind on
-- the original, now a shard, or are lost. They are saved before the first
-- distribution and put back at the end of this file.
do $citus$
begin
    if not exists (
        select from pg_catalog.pg_dist_partition as p where p.logicalrelid = 'toolsdb.sessions'::regclass
    ) then
        create temporary table citus_saved_comments on commit drop as
        select n.nspname as schema_name, c.relname as table_name, a.attname as column_name, d.description
        from pg_catalog.pg_description as d
        inner join pg_catalog.pg_class as c on d.classoid = 'pg_catalog.pg_class'::regclass and c.oid = d.objoid
        inner join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        left join pg_catalog.pg_attribute as a on d.objsubid > 0 and a.attrelid = c.oid and a.attnum = d.objsubid
        where n.nspname in ('toolsdb', 'toolsdb_private') and c.relkind in ('r', 'p');
    end if;
end
$citus$;

-- Keys from the coordinator's tables into the session group: Citus allows no
-- key from a local table to a distributed one. Their rows are kept by
-- session_id; `toolsdb maintain` removes those whose session is gone. The
-- events' key is dropped while the tables are distributed, and put back
-- (below).
do $citus$
begin
    if not exists (
        select from pg_catalog.pg_dist_partition as p
        where p.logicalrelid = 'toolsdb.events'::regclass
    ) then
        alter table toolsdb.events drop constraint if exists events_session_id_fkey;
    end if;
end
$citus$;
alter table toolsdb.notifications drop constraint if exists notifications_session_id_fkey;
alter table toolsdb.metrics drop constraint if exists metrics_session_id_fkey;
alter table toolsdb.transcript_files drop constraint if exists transcript_files_session_id_fkey;
alter table toolsdb.api_usage drop constraint if exists api_usage_session_id_fkey;
alter table toolsdb.api_usage drop constraint if exists api_usage_message_id_fkey;

-- Without the key, each of those session_id columns gets the rule of
-- sessions.session_id as a CHECK of its own.
do $citus$
declare
    t text;
begin
    foreach t in array array['events', 'notifications', 'metrics', 'transcript_files', 'api_usage'] loop
        if not exists (
            select from pg_catalog.pg_constraint as c
            where c.conrelid = pg_catalog.format('toolsdb.%I', t)::regclass and c.conname = 'session_id_is_valid'
        ) then
            execute pg_catalog.format(
                'alter table toolsdb.%I add constraint session_id_is_valid check '
                '(char_length(session_id) between 1 and 200 and session_id !~ ''[[:cntrl:]]'')',
                t
            );
        end if;
    end loop;
end
$citus$;

-- The notification queue and what routes it (notification rules and
-- destinations, config) stay plain PostgreSQL tables on the coordinator,
-- which Citus's planner leaves alone: their claims' statements are planned
-- once (plan_cache_mode force_generic_plan), which Citus cannot plan for its
-- tables ("could not create distributed plan"). A key to a reference table
-- would make each a Citus local table, and none may point to the distributed
-- events (below), so these go too.
-- They are references Citus leaves unchecked: notifications.event_id may
-- name an event that retention removed, and deleting a user or a project
-- leaves its destinations or rules behind (docs/citus.md).
alter table toolsdb.notifications drop constraint if exists notifications_event_id_fkey;
alter table toolsdb.notification_destinations drop constraint if exists notification_destinations_user_id_fkey;
alter table toolsdb.notification_rules drop constraint if exists notification_rules_match_project_id_fkey;

-- messages: a distributed table's unique keys hold its distribution column.
-- Its key to sessions is dropped while the two are distributed, and added back.
do $citus$
begin
    if not exists (
        select from pg_catalog.pg_constraint as c
        where c.conrelid = 'toolsdb.messages'::regclass and c.conname = 'messages_pkey'
            and c.conkey = array[
                (select a.attnum from pg_catalog.pg_attribute as a
                    where a.attrelid = c.conrelid and a.attname = 'session_id'),
                (select a.attnum from pg_catalog.pg_attribute as a
                    where a.attrelid = c.conrelid and a.attname = 'message_id')
            ]::smallint []
    ) then
        alter table toolsdb.messages drop constraint if exists messages_session_id_fkey;
        alter table toolsdb.messages drop constraint messages_pkey;
        alter table toolsdb.messages add constraint messages_pkey primary key (session_id, message_id);
    end if;
end
$citus$;

-- events, distributed by session_id with the sessions: an event and its
-- session's row are written on one worker, in one transaction there (no
-- two-phase commit), and the queue is claimed on the workers, shard by shard
-- (toolsdb.get_unprocessed_events()). Its keys take the distribution column:
-- the primary key (session_id, event_id), and the idempotency key is unique
-- within its session (on one node, across sessions). It is distributed here,
-- before any reference table: Citus cannot make a distributed table of a
-- Citus local table with an identity column, and the first reference table
-- would make one of it. Its key to sessions is added back below. A database
-- whose events are already a Citus local table (migrated by an earlier
-- toolsdb) keeps them there.
do $citus$
begin
    if not exists (
        select from pg_catalog.pg_dist_partition as p
        where p.logicalrelid = 'toolsdb.events'::regclass
    ) and not exists (
            select from pg_catalog.pg_constraint as c
            where c.conrelid = 'toolsdb.events'::regclass and c.conname = 'events_pkey' and c.conkey[2] is not null
        ) then
        alter table toolsdb.events drop constraint events_pkey;
        alter table toolsdb.events add constraint events_pkey primary key (session_id, event_id);
        alter table toolsdb.events drop constraint events_idempotency_key_key;
        alter table toolsdb.events add constraint events_idempotency_key_key unique (session_id, idempotency_key);
    end if;
end
$citus$;

select pg_catalog.create_distributed_table('toolsdb.events', 'session_id', colocate_with => 'none')
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.events'::regclass
);

-- For each shard of events, a session id that falls in it: the claims and
-- acknowledgements of the queue name one per node to have Citus route a
-- statement there (toolsdb_private.event_node_probes() fills it). A plain
-- table on the coordinator.
create table if not exists toolsdb_private.event_claim_probes (
    shardid bigint not null,
    probe text not null,
    constraint event_claim_probes_pkey primary key (shardid),
    constraint probe_length_is_valid check (char_length(probe) between 1 and 200)
);

comment on table toolsdb_private.event_claim_probes is
'On Citus only: for each shard of toolsdb.events, a session id that falls in it, found by '
'toolsdb_private.event_node_probes(); the queue''s claims and acknowledgements name one per node to '
'run there (docs/citus.md). Owner only.';
comment on column toolsdb_private.event_claim_probes.shardid is 'A shard of toolsdb.events (pg_dist_shard).';
comment on column toolsdb_private.event_claim_probes.probe is
'A session id (toolsdb-probe-N) that Citus places in that shard; no event needs to have it.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb_private.event_claim_probes', 'routing bookkeeping of the queue on Citus, derived from the shard map')
on conflict (table_name) do nothing;

-- One row per probe, distributed with the events: a statement over the rows
-- of one probe per node runs on those nodes at once, in parallel, each
-- evaluating the queue's function once (toolsdb.get_unprocessed_events()).
create table if not exists toolsdb_private.event_claim_anchors (
    probe text not null,
    touched_at timestamptz,
    constraint event_claim_anchors_pkey primary key (probe),
    constraint probe_length_is_valid check (char_length(probe) between 1 and 200)
);

comment on table toolsdb_private.event_claim_anchors is
'On Citus only: the probes of toolsdb_private.event_claim_probes as rows, distributed by probe with '
'toolsdb.events, so each lies in its shard: the queue''s claims and acknowledgements select one per '
'node to run there in parallel (docs/citus.md). Owner only.';
comment on column toolsdb_private.event_claim_anchors.probe is
'A probe session id (toolsdb-probe-N); its row lies on the node of its shard of toolsdb.events.';
comment on column toolsdb_private.event_claim_anchors.touched_at is
'Stays null: claims and acknowledgements run an UPDATE of it that changes no row, which makes Citus '
'run them in its distributed transaction, with two-phase commit (toolsdb_private.join_event_nodes()).';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb_private.event_claim_anchors', 'routing bookkeeping of the queue on Citus, derived from the shard map')
on conflict (table_name) do nothing;

select
    pg_catalog.create_distributed_table(
        'toolsdb_private.event_claim_anchors', 'probe', colocate_with => 'toolsdb.events'
    )
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb_private.event_claim_anchors'::regclass
);

-- A probe found before this table existed gets its row.
insert into toolsdb_private.event_claim_anchors (probe)
select x.probe from toolsdb_private.event_claim_probes as x
on conflict on constraint event_claim_anchors_pkey do nothing;

-- The work group, by project_id (docs/citus.md). Distributed before the
-- reference tables exist: making one converts every table in its key graph
-- into a Citus local table, and Citus cannot convert a table with an identity
-- column (agent_execution_logs, activity_feed, execution_rollups) from there.
-- So the group's keys are taken off first and put back after, those inside
-- the group with project_id. memories and the audit outbox join its
-- co-location group (uuid keys), so that capture on a worker reaches the
-- outbox's shard. What the group's triggers read on a worker must be there:
-- the status transitions and the model prices become reference tables.
-- Citus refuses `on delete set null` on a key that holds the distribution
-- column: those five keys become `on delete restrict`, and a BEFORE DELETE
-- trigger on the referenced table nulls the references first, on the same
-- shard (toolsdb_private.tg__null_references(), repeatable/30_tasks.sql).
-- Each key inside the group gets the index (project_id, column) it needs.
do $citus$
declare
    -- table, its own id column
    keyed constant text[] := array[
        ['tasks', 'task_id'], ['evidence', 'evidence_id'], ['agent_executions', 'execution_id'],
        ['agent_execution_logs', 'log_id'], ['pr_validations', 'validation_id'],
        ['task_comments', 'comment_id'], ['task_attachments', 'attachment_id'],
        ['activity_feed', 'activity_id'], ['execution_rollups', 'rollup_id']
    ];
    -- keys inside the group: table, column, referenced table, referenced column, action
    inner_keys constant text[] := array[
        ['tasks', 'parent_task_id', 'tasks', 'task_id', 'restrict'],
        ['evidence', 'task_id', 'tasks', 'task_id', 'restrict'],
        ['agent_executions', 'task_id', 'tasks', 'task_id', 'cascade'],
        ['agent_executions', 'evidence_id', 'evidence', 'evidence_id', 'restrict'],
        ['agent_execution_logs', 'execution_id', 'agent_executions', 'execution_id', 'cascade'],
        ['pr_validations', 'task_id', 'tasks', 'task_id', 'cascade'],
        ['pr_validations', 'execution_id', 'agent_executions', 'execution_id', 'restrict'],
        ['task_comments', 'task_id', 'tasks', 'task_id', 'cascade'],
        ['task_attachments', 'task_id', 'tasks', 'task_id', 'cascade'],
        ['task_attachments', 'evidence_id', 'evidence', 'evidence_id', 'restrict'],
        ['activity_feed', 'task_id', 'tasks', 'task_id', 'cascade']
    ];
    outer_keys text[] := '{}';
    k text[];
    t text;
    r record;
begin
    -- Done already; or a database migrated by an earlier toolsdb, whose work group
    -- became Citus local tables with the first reference table: it keeps them there.
    if exists (select from pg_catalog.pg_dist_partition as p where p.logicalrelid = 'toolsdb.tasks'::regclass) then
        return;
    end if;
    -- error_logs may have no project: it stays on the coordinator, and its
    -- task and run are references Citus does not check; maintain nulls those
    -- whose task or run was deleted (toolsdb_private.null_unreferenced_error_links()).
    alter table toolsdb.error_logs drop constraint if exists error_logs_task_id_fkey;
    alter table toolsdb.error_logs drop constraint if exists error_logs_execution_id_fkey;
    foreach k slice 1 in array inner_keys loop
        execute pg_catalog.format('alter table toolsdb.%I drop constraint %I', k[1], k[1] || '_' || k[2] || '_fkey');
    end loop;
    for r in
        select c.conrelid::regclass as tab, c.conname, pg_catalog.pg_get_constraintdef(c.oid) as def
        from pg_catalog.pg_constraint as c
        where c.contype = 'f'
            and c.conrelid = any(array(select pg_catalog.format('toolsdb.%I', k2[1])::regclass
                from pg_catalog.generate_subscripts(keyed, 1) as g (i)
                cross join lateral (select array[keyed[g.i][1]]) as x (k2)))
        order by c.conrelid::regclass::text, c.conname
    loop
        outer_keys := outer_keys || array[[r.tab::text, r.conname::text, r.def]];
        execute pg_catalog.format('alter table %s drop constraint %I', r.tab, r.conname);
    end loop;
    foreach k slice 1 in array keyed loop
        execute pg_catalog.format('alter table toolsdb.%I drop constraint %I', k[1], k[1] || '_pkey');
        execute pg_catalog.format(
            'alter table toolsdb.%I add constraint %I primary key (project_id, %I)', k[1], k[1] || '_pkey', k[2]
        );
    end loop;
    perform pg_catalog.create_distributed_table('toolsdb.tasks', 'project_id', colocate_with => 'none');
    foreach k slice 1 in array keyed[2:] loop
        perform pg_catalog.create_distributed_table(
            pg_catalog.format('toolsdb.%I', k[1]), 'project_id', colocate_with => 'toolsdb.tasks'
        );
    end loop;
    foreach t in array array[
        'toolsdb.users', 'toolsdb.projects', 'toolsdb.agents',
        'toolsdb.task_status_transitions', 'toolsdb.model_prices', 'toolsdb.model_aliases'
    ] loop
        perform pg_catalog.create_reference_table(t::regclass);
    end loop;
    foreach k slice 1 in array outer_keys loop
        execute pg_catalog.format('alter table %s add constraint %I %s', k[1], k[2], k[3]);
    end loop;
    foreach k slice 1 in array inner_keys loop
        execute pg_catalog.format(
            'alter table toolsdb.%I add constraint %I foreign key (project_id, %I) '
            'references toolsdb.%I (project_id, %I) on delete %s',
            k[1], k[1] || '_' || k[2] || '_fkey', k[2], k[3], k[4], k[5]
        );
        execute pg_catalog.format(
            'create index %I on toolsdb.%I (project_id, %I)', k[1] || '_project_id_' || k[2] || '_idx', k[1], k[2]
        );
    end loop;
end
$citus$;

-- Reference tables: a copy on every node. The first converts every table
-- with a key to it into a Citus local table on the coordinator.
select pg_catalog.create_reference_table('toolsdb.users')
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.users'::regclass and p.partmethod = 'n' and p.repmodel = 't'
);

select pg_catalog.create_reference_table('toolsdb.projects')
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.projects'::regclass and p.partmethod = 'n' and p.repmodel = 't'
);

select pg_catalog.create_reference_table('toolsdb.agents')
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.agents'::regclass and p.partmethod = 'n' and p.repmodel = 't'
);

-- The session group, co-located by session_id (each was made a Citus local
-- table above, by its key to a reference table).
select pg_catalog.create_distributed_table('toolsdb.sessions', 'session_id', colocate_with => 'toolsdb.events')
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.sessions'::regclass and p.partmethod = 'h'
);

select pg_catalog.create_distributed_table('toolsdb.messages', 'session_id', colocate_with => 'toolsdb.sessions')
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.messages'::regclass and p.partmethod = 'h'
);

do $citus$
begin
    if not exists (
        select from pg_catalog.pg_constraint as c
        where c.conrelid = 'toolsdb.messages'::regclass and c.conname = 'messages_session_id_fkey'
    ) then
        alter table toolsdb.messages add constraint messages_session_id_fkey
        foreign key (session_id) references toolsdb.sessions (session_id) on delete cascade;
    end if;
end
$citus$;

-- The events' key to their session, as on one node, once both are
-- distributed (co-located, so Citus enforces it on each worker).
do $citus$
begin
    if exists (
        select from pg_catalog.pg_dist_partition as p
        where p.logicalrelid = 'toolsdb.events'::regclass and p.partmethod = 'h'
    ) and not exists (
        select from pg_catalog.pg_constraint as c
        where c.conrelid = 'toolsdb.events'::regclass and c.conname = 'events_session_id_fkey'
    ) then
        alter table toolsdb.events add constraint events_session_id_fkey
        foreign key (session_id) references toolsdb.sessions (session_id) on delete cascade;
    end if;
end
$citus$;

-- The coordinator's tables that a transaction writes together with the
-- session group: the transcript import's bookkeeping and usage (with the
-- messages). As Citus local tables they take part in Citus's two-phase
-- commit, so such a transaction commits on both nodes or on neither. Left
-- plain, Citus commits the worker first and the coordinator after, and a
-- crash between the two would keep the messages and lose the file's offset.
-- The transcript files' errors follow their files (a key).
select pg_catalog.citus_add_local_table_to_metadata('toolsdb.api_usage')
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.api_usage'::regclass
);

select
    pg_catalog.citus_add_local_table_to_metadata(
        'toolsdb.transcript_files', cascade_via_foreign_keys => true
    )
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.transcript_files'::regclass
);

-- memories, by agent_id: its primary key takes the distribution column (the
-- unique key on agent, user and key has it already).
do $citus$
begin
    if not exists (
        select from pg_catalog.pg_constraint as c
        where c.conrelid = 'toolsdb.memories'::regclass and c.conname = 'memories_pkey'
            and c.conkey = array[
                (select a.attnum from pg_catalog.pg_attribute as a
                    where a.attrelid = c.conrelid and a.attname = 'agent_id'),
                (select a.attnum from pg_catalog.pg_attribute as a
                    where a.attrelid = c.conrelid and a.attname = 'memory_id')
            ]::smallint []
    ) then
        alter table toolsdb.memories drop constraint memories_pkey;
        alter table toolsdb.memories add constraint memories_pkey primary key (agent_id, memory_id);
    end if;
end
$citus$;

select pg_catalog.create_distributed_table('toolsdb.memories', 'agent_id')
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.memories'::regclass and p.partmethod = 'h'
);

-- The audit outbox. A change to a table distributed over the workers is
-- captured on the worker that holds the row (toolsdb_private.tg__audit()),
-- into the co-located shard of this table: Citus lets a trigger on a shard
-- reach co-located shards of its own node, never another node, so the log on
-- the coordinator is out of reach there. toolsdb.audit_collect() (run by
-- toolsdb.audit_seal(), so by maintain) moves the entries into the log.
create table if not exists toolsdb_private.audit_outbox (
    shard_key uuid not null,
    outbox_id bigint generated always as identity,
    logged_at timestamptz not null default now(),
    actor toolsdb.audit_text_200 not null default session_user,
    actor_user_id uuid,
    actor_agent_id uuid,
    session_id text,
    action toolsdb.audit_name not null,
    entity_type toolsdb.audit_name not null,
    entity_id toolsdb.audit_text_1000 not null,
    old_values toolsdb.audit_object,
    new_values toolsdb.audit_object,
    details toolsdb.audit_object not null default '{}',
    client_addr inet,
    user_agent toolsdb.audit_text_1000,
    db_role toolsdb.audit_role_name not null default session_user,
    constraint audit_outbox_pkey primary key (shard_key, outbox_id),
    constraint session_id_length_is_valid check (char_length(session_id) between 1 and 200)
);

comment on table toolsdb_private.audit_outbox is
'On Citus only: audit entries captured on the workers, for the tables distributed over them, in the '
'transaction of the change; distributed by shard_key, co-located with those tables. '
'toolsdb.audit_collect() moves them into toolsdb.audit_logs (docs/citus.md). Owner only; '
'no UPDATE or TRUNCATE.';
comment on column toolsdb_private.audit_outbox.shard_key is
'The changed row''s distribution column (a project or an agent id): places the entry on the row''s node.';
comment on column toolsdb_private.audit_outbox.outbox_id is
'Increasing id of the entry on its node (identity); with logged_at, the order of collection.';
comment on column toolsdb_private.audit_outbox.logged_at is
'As toolsdb.audit_logs.logged_at: the start of the writing transaction on the worker.';
comment on column toolsdb_private.audit_outbox.actor is 'As toolsdb.audit_logs.actor.';
comment on column toolsdb_private.audit_outbox.actor_user_id is 'As toolsdb.audit_logs.actor_user_id.';
comment on column toolsdb_private.audit_outbox.actor_agent_id is 'As toolsdb.audit_logs.actor_agent_id.';
comment on column toolsdb_private.audit_outbox.session_id is 'As toolsdb.audit_logs.session_id.';
comment on column toolsdb_private.audit_outbox.action is 'insert, update or delete.';
comment on column toolsdb_private.audit_outbox.entity_type is 'The table''s name.';
comment on column toolsdb_private.audit_outbox.entity_id is 'As toolsdb.audit_logs.entity_id.';
comment on column toolsdb_private.audit_outbox.old_values is 'As toolsdb.audit_logs.old_values.';
comment on column toolsdb_private.audit_outbox.new_values is 'As toolsdb.audit_logs.new_values.';
comment on column toolsdb_private.audit_outbox.details is 'As toolsdb.audit_logs.details.';
comment on column toolsdb_private.audit_outbox.client_addr is
'The setting toolsdb.client_addr only: the worker''s connection is the coordinator''s.';
comment on column toolsdb_private.audit_outbox.user_agent is 'As toolsdb.audit_logs.user_agent.';
comment on column toolsdb_private.audit_outbox.db_role is
'The role Citus connected to the worker as: the coordinator''s current role.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb_private.audit_outbox', 'audit entries themselves, on their way into toolsdb.audit_logs')
on conflict (table_name) do nothing;

select
    pg_catalog.create_distributed_table(
        'toolsdb_private.audit_outbox', 'shard_key', colocate_with => 'toolsdb.memories'
    )
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb_private.audit_outbox'::regclass and p.partmethod = 'h'
);

-- Sessions deleted on the workers, for maintain. The keys from the
-- coordinator's tables to sessions are dropped (above), so deleting a
-- session by a plain DELETE cascades to its messages only. A trigger on the
-- session's shard records the deletion here, in the co-located shard, in the
-- deleting transaction; toolsdb.maintain() then removes what named the
-- session on the coordinator (toolsdb_private.remove_deleted_sessions_rows()).
create table if not exists toolsdb_private.deleted_sessions (
    session_id text not null,
    deleted_at timestamptz not null default now(),
    constraint deleted_sessions_pkey primary key (session_id),
    constraint session_id_length_is_valid check (char_length(session_id) between 1 and 200)
);

comment on table toolsdb_private.deleted_sessions is
'On Citus only: sessions deleted since the last toolsdb.maintain(), recorded by the trigger '
'_900_record_deletion on toolsdb.sessions; distributed by session_id with the sessions. maintain '
'removes the coordinator''s rows that named them, then the records (docs/citus.md).';
comment on column toolsdb_private.deleted_sessions.session_id is 'The deleted session.';
comment on column toolsdb_private.deleted_sessions.deleted_at is
'When it was deleted (start of the deleting transaction); the latest deletion if it was deleted again.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb_private.deleted_sessions', 'bookkeeping of deleted sessions (not audited either) until maintain sweeps them')
on conflict (table_name) do nothing;

select
    pg_catalog.create_distributed_table(
        'toolsdb_private.deleted_sessions', 'session_id', colocate_with => 'toolsdb.sessions'
    )
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb_private.deleted_sessions'::regclass and p.partmethod = 'h'
);

-- The comments saved at the top, back where Citus left none.
do $citus$
declare
    saved record;
begin
    if pg_catalog.to_regclass('pg_temp.citus_saved_comments') is null then
        return;
    end if;
    for saved in
        select s.schema_name, s.table_name, s.column_name, s.description
        from pg_temp.citus_saved_comments as s
        cross join lateral (
            select pg_catalog.to_regclass(pg_catalog.format('%I.%I', s.schema_name, s.table_name)) as oid
        ) as t
        left join pg_catalog.pg_attribute as a on a.attrelid = t.oid and a.attname = s.column_name
        where t.oid is not null
            and case
                when s.column_name is null then pg_catalog.obj_description(t.oid, 'pg_class')
                else pg_catalog.col_description(t.oid, a.attnum)
            end is distinct from s.description
    loop
        if saved.column_name is null then
            execute pg_catalog.format(
                'comment on table %I.%I is %L', saved.schema_name, saved.table_name, saved.description
            );
        else
            execute pg_catalog.format(
                'comment on column %I.%I.%I is %L',
                saved.schema_name, saved.table_name, saved.column_name, saved.description
            );
        end if;
    end loop;
end
$citus$;
