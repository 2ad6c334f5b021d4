-- schema/citus/distribute.sql
-- The distribution of docs/citus.md, applied by `toolsdb migrate` on a Citus
-- coordinator only: in its one transaction, after the migrations and before
-- the definitions of repeatable/ (distributing a table drops the views that
-- read it; they are created after). Every statement is guarded, so a second
-- migrate changes nothing. Built so far: the reference tables the session
-- group points to, and the session group (sessions, messages) distributed by
-- session_id. Every other table stays on the coordinator: a Citus local table
-- where it has a key to a reference table, else a plain one.

-- Keys from the coordinator's tables into the session group: Citus allows no
-- key from a local table to a distributed one. Their rows are kept by
-- session_id; `toolsdb maintain` removes those whose session is gone.
alter table toolsdb.events drop constraint if exists events_session_id_fkey;
alter table toolsdb.notifications drop constraint if exists notifications_session_id_fkey;
alter table toolsdb.metrics drop constraint if exists metrics_session_id_fkey;
alter table toolsdb.transcript_files drop constraint if exists transcript_files_session_id_fkey;
alter table toolsdb.api_usage drop constraint if exists api_usage_session_id_fkey;
alter table toolsdb.api_usage drop constraint if exists api_usage_message_id_fkey;

-- The notification queue and what routes it (notification rules and
-- destinations, config) stay plain PostgreSQL tables on the coordinator,
-- which Citus's planner leaves alone: their claims' statements are planned
-- once (plan_cache_mode force_generic_plan), which Citus cannot plan for its
-- tables ("could not create distributed plan"). A key to a reference table
-- or to events (below) would make each a Citus local table, so these go too.
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
select pg_catalog.create_distributed_table('toolsdb.sessions', 'session_id')
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

-- The coordinator's tables that a transaction writes together with the
-- session group: the hook's events (with the session's row) and the
-- transcript import's bookkeeping and usage (with the messages). As Citus
-- local tables they take part in Citus's two-phase commit, so such a
-- transaction commits on both nodes or on neither. Left plain, Citus commits
-- the worker first and the coordinator after, and a crash between the two
-- would keep the session's update and lose the event. The transcript files'
-- errors follow their files (a key).
select pg_catalog.citus_add_local_table_to_metadata('toolsdb.events')
where not exists (
    select from pg_catalog.pg_dist_partition as p
    where p.logicalrelid = 'toolsdb.events'::regclass
);

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
