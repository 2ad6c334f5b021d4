-- repeatable/38_activity_feed.sql
-- Tier 30: the activity feed of a project: a high-volume,
-- append-only stream of what happened, for people to read. Not audited (its
-- own rows are the record; listed in toolsdb_private.audit_exemptions);
-- row-level security per project. Write with toolsdb.activity_record().
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/38_activity_feed.sql.

create or replace trigger _010_append_only
before update on toolsdb.activity_feed
for each row
execute function toolsdb_private.tg__append_only(
    'toolsdb.activity_feed', 'entries are never rewritten; they leave only with their project or task'
);

select toolsdb.isolate_rows('toolsdb.activity_feed', 'project_id');

create or replace function toolsdb.activity_record(
    project_id uuid,
    activity_type text,
    summary text,
    task_id uuid default null,
    metadata jsonb default '{}',
    is_public boolean default true
)
returns bigint
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.activity_feed (project_id, task_id, user_id, agent_id, activity_type, summary, metadata, is_public)
    values ($1, $4, toolsdb.current_user_id(), toolsdb.current_agent_id(), $2, $3, coalesce($5, '{}'), $6)
    returning activity_id;
$function$;

comment on function toolsdb.activity_record(uuid, text, text, uuid, jsonb, boolean) is
'Adds an entry to a project''s activity feed; the acting user and agent come from the settings '
'toolsdb.user_id and toolsdb.agent_id. Returns its activity_id.';
