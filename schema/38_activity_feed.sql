-- schema/38_activity_feed.sql
-- Tier 30: the activity feed of a project: a high-volume,
-- append-only stream of what happened, for people to read. Not audited (its
-- own rows are the record; listed in toolsdb_private.audit_exemptions);
-- row-level security per project. Write with toolsdb.activity_record().
-- Its functions, triggers and row-level security: repeatable/38_activity_feed.sql.
-- Needs: schema/20_users.sql, schema/21_projects.sql, schema/22_agents.sql,
--        schema/30_tasks.sql.

create table if not exists toolsdb.activity_feed (
    activity_id bigint generated always as identity,
    project_id uuid not null,
    task_id uuid,
    user_id uuid,
    agent_id uuid,
    activity_type text not null,
    summary text not null,
    metadata jsonb not null default '{}',
    is_public boolean not null default true,
    created_at timestamptz not null default now(),
    constraint activity_feed_pkey primary key (activity_id),
    constraint activity_feed_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete cascade,
    constraint activity_feed_task_id_fkey foreign key (task_id)
    references toolsdb.tasks (task_id) on delete cascade,
    constraint activity_feed_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint activity_feed_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint activity_type_is_valid check (
        activity_type ~ '^[a-z][a-z0-9_.]*$' and char_length(activity_type) <= 100
    ),
    constraint summary_length_is_valid check (char_length(summary) between 1 and 2000),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object')
);

create index if not exists activity_feed_project_id_idx on toolsdb.activity_feed (project_id, created_at desc);

create index if not exists activity_feed_task_id_idx on toolsdb.activity_feed (task_id, created_at desc);

create index if not exists activity_feed_user_id_idx on toolsdb.activity_feed (user_id);

create index if not exists activity_feed_agent_id_idx on toolsdb.activity_feed (agent_id);

create index if not exists activity_feed_created_at_idx on toolsdb.activity_feed using brin (created_at);

comment on table toolsdb.activity_feed is
'What happened in a project, newest first, for people to read: task created, pull request opened, '
'run failed, ... Append-only and high-volume: not audited, never updated.';

comment on column toolsdb.activity_feed.activity_id is 'Increasing id.';

comment on column toolsdb.activity_feed.project_id is 'The project it happened in.';

comment on column toolsdb.activity_feed.task_id is 'The task concerned, if any.';

comment on column toolsdb.activity_feed.user_id is 'The user who acted, if a user did.';

comment on column toolsdb.activity_feed.agent_id is 'The agent that acted, if an agent did.';

comment on column toolsdb.activity_feed.activity_type is
'What kind of thing happened, dotted snake_case (task.created).';

comment on column toolsdb.activity_feed.summary is 'One line for people, 1-2000 characters.';

comment on column toolsdb.activity_feed.metadata is 'Details (JSON object).';

comment on column toolsdb.activity_feed.is_public is 'False for entries only project members should see.';

comment on column toolsdb.activity_feed.created_at is 'When it happened.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.activity_feed', 'high-volume, append-only feed for people; its rows are the record')
on conflict (table_name) do nothing;
