-- schema/40_sessions.sql
-- Tier 40: the agent runtime (docs/runtime.md). Agent sessions as the agent
-- names them (hook sessions and agent-framework sessions in one table): where
-- the agent works, its branch and terminal, when it was last active, idle and
-- ended. Row-level security per session; not audited (toolsdb.events holds the
-- raw record of every change, see toolsdb_private.audit_exemptions). The
-- functions of the hook-notification API create_session,
-- update_session_activity, set_session_idle and end_session.
-- Its functions, triggers and row-level security: repeatable/40_sessions.sql.
-- Needs: schema/20_users.sql, schema/21_projects.sql, schema/22_agents.sql.

-- The rules on the text and JSON columns written by every hook event are
-- domains, not table CHECKs: PostgreSQL caches a domain's checks per
-- connection, where it reads a table's CHECKs back from the catalog and plans
-- them again at every statement that writes the table (hook_ingest() writes
-- sessions and events at every event: docs/runtime.md, "What an event
-- costs"). session_id keeps its table CHECK: row-level security compares it
-- as text. hook_event_name is also events.event_type (schema/43_events.sql).
do $domains$
begin
    if pg_catalog.to_regtype('toolsdb.session_path') is null then
        create domain toolsdb.session_path as text
        constraint session_path_length_is_valid check (char_length(value) between 1 and 4096);
    end if;
    if pg_catalog.to_regtype('toolsdb.permission_mode') is null then
        create domain toolsdb.permission_mode as text
        constraint permission_mode_is_valid check (value ~ '^[A-Za-z][A-Za-z0-9_-]*$' and char_length(value) <= 50);
    end if;
    if pg_catalog.to_regtype('toolsdb.git_branch') is null then
        create domain toolsdb.git_branch as text
        constraint git_branch_length_is_valid check (char_length(value) between 1 and 255);
    end if;
    if pg_catalog.to_regtype('toolsdb.terminal_type') is null then
        create domain toolsdb.terminal_type as text
        constraint terminal_type_is_valid check (value ~ '^[a-z][a-z0-9_.-]*$' and char_length(value) <= 50);
    end if;
    if pg_catalog.to_regtype('toolsdb.terminal_info') is null then
        create domain toolsdb.terminal_info as jsonb
        constraint terminal_info_is_object check (jsonb_typeof(value) = 'object');
    end if;
    if pg_catalog.to_regtype('toolsdb.session_metadata') is null then
        create domain toolsdb.session_metadata as jsonb
        constraint metadata_is_object check (jsonb_typeof(value) = 'object');
    end if;
    if pg_catalog.to_regtype('toolsdb.hook_event_name') is null then
        create domain toolsdb.hook_event_name as text
        constraint hook_event_name_is_valid check (value ~ '^[[:graph:]]+$' and char_length(value) <= 100);
    end if;
    if pg_catalog.to_regtype('toolsdb.message_count') is null then
        create domain toolsdb.message_count as integer
        constraint message_count_is_not_negative check (value >= 0);
    end if;
    if pg_catalog.to_regtype('toolsdb.end_reason') is null then
        create domain toolsdb.end_reason as text
        constraint end_reason_length_is_valid check (char_length(value) between 1 and 100);
    end if;
end
$domains$;

comment on domain toolsdb.session_path is
'A path of 1 to 4,096 characters, in toolsdb.sessions (cwd, transcript_path).';

comment on domain toolsdb.permission_mode is
'A permission mode as the agent reports it (a letter, then letters, digits, _ or -; at most 50), in '
'toolsdb.sessions.';

comment on domain toolsdb.git_branch is 'A git branch name of 1 to 255 characters, in toolsdb.sessions.';

comment on domain toolsdb.terminal_type is
'A lowercase terminal name (^[a-z][a-z0-9_.-]*$, at most 50 characters), in toolsdb.sessions.';

comment on domain toolsdb.terminal_info is 'Terminal details, a JSON object, in toolsdb.sessions.';

comment on domain toolsdb.session_metadata is 'A JSON object, in toolsdb.sessions (metadata).';

comment on domain toolsdb.hook_event_name is
'A hook event name as sent (printable, no spaces, at most 100 characters), in toolsdb.events '
'(event_type) and toolsdb.sessions (last_event_type).';

comment on domain toolsdb.message_count is 'A count of messages, not negative, in toolsdb.sessions.';

comment on domain toolsdb.end_reason is 'Why a session ended, 1 to 100 characters, in toolsdb.sessions.';

-- Updated on every hook event: vacuum and analyze early (docs/operations.md).
create table if not exists toolsdb.sessions (
    session_id text not null,
    user_id uuid,
    agent_id uuid,
    project_id uuid,
    cwd toolsdb.session_path,
    transcript_path toolsdb.session_path,
    permission_mode toolsdb.permission_mode,
    git_branch toolsdb.git_branch,
    terminal_type toolsdb.terminal_type,
    terminal_info toolsdb.terminal_info not null default '{}',
    metadata toolsdb.session_metadata not null default '{}',
    last_event_type toolsdb.hook_event_name,
    message_count toolsdb.message_count not null default 0,
    is_idle boolean not null default false,
    started_at timestamptz not null default now(),
    last_activity_at timestamptz not null default now(),
    ended_at timestamptz,
    end_reason toolsdb.end_reason,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint sessions_pkey primary key (session_id),
    constraint sessions_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete set null,
    constraint sessions_agent_id_fkey foreign key (agent_id)
    references toolsdb.agents (agent_id) on delete set null,
    constraint sessions_project_id_fkey foreign key (project_id)
    references toolsdb.projects (project_id) on delete set null,
    constraint session_id_is_valid check (char_length(session_id) between 1 and 200 and session_id !~ '[[:cntrl:]]'),
    constraint ended_after_start check (ended_at >= started_at),
    constraint active_after_start check (last_activity_at >= started_at),
    constraint end_reason_needs_end check (end_reason is null or ended_at is not null)
) with (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 50,
    autovacuum_analyze_scale_factor = 0.05
);

create index if not exists sessions_user_id_idx on toolsdb.sessions (user_id);

create index if not exists sessions_agent_id_idx on toolsdb.sessions (agent_id);

create index if not exists sessions_project_id_idx on toolsdb.sessions (project_id);

create index if not exists sessions_active_idx on toolsdb.sessions (last_activity_at desc)
where ended_at is null;

comment on table toolsdb.sessions is
'Agent sessions (of hooks and of agent frameworks): one row per session id the agent gives (Claude '
'Code''s session_id), with where it works, its git branch and terminal, its activity and whether '
'it waits for input. Written by toolsdb.hook_ingest() on every hook event, or by create_session(). '
'Row-level security: the application sees only the session of toolsdb.session_id.';

comment on column toolsdb.sessions.session_id is
'Primary key: the session id exactly as the agent gives it: 1-200 characters of any script, no '
'control characters.';

comment on column toolsdb.sessions.user_id is 'The user the session works for, if known.';

comment on column toolsdb.sessions.agent_id is 'The registered agent running the session, if known.';

comment on column toolsdb.sessions.project_id is 'The project the session works on, if known.';

comment on column toolsdb.sessions.cwd is 'Working directory of the agent (latest seen), at most 4096 characters.';

comment on column toolsdb.sessions.transcript_path is
'Path of the agent''s conversation transcript file (latest seen).';

comment on column toolsdb.sessions.permission_mode is
'Permission mode the agent reported (Claude Code: default, plan, acceptEdits, bypassPermissions, ...).';

comment on column toolsdb.sessions.git_branch is 'Git branch checked out in cwd when last seen.';

comment on column toolsdb.sessions.terminal_type is 'Terminal the agent runs in: tmux, vscode, iterm, ... (lowercase).';

comment on column toolsdb.sessions.terminal_info is
'Terminal details as a JSON object, e.g. {"pane": "0:0.0"} or the TERM_PROGRAM variables.';

comment on column toolsdb.sessions.metadata is 'Anything else about the session (JSON object).';

comment on column toolsdb.sessions.last_event_type is 'Type of the last hook event seen (hook_event_name).';

comment on column toolsdb.sessions.message_count is
'How many messages were ever added to the session (a deleted one still counts: positions are '
'never reused); toolsdb.messages takes its next position from here.';

comment on column toolsdb.sessions.is_idle is
'True while the agent waits for the user (idle_prompt notification); false again on the next event '
'of a working turn (prompt, tool use, permission request, subagent, compaction; docs/claude-code.md).';

comment on column toolsdb.sessions.started_at is 'When the session was first seen.';

comment on column toolsdb.sessions.last_activity_at is
'When the session was last active (any event; once it has ended, only a SessionStart that reopens it).';

comment on column toolsdb.sessions.ended_at is 'When the session ended (SessionEnd), null while active.';

comment on column toolsdb.sessions.end_reason is
'Why it ended, as the agent said (clear, logout, prompt_input_exit, other).';

comment on column toolsdb.sessions.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.sessions.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';

insert into toolsdb_private.audit_exemptions (table_name, reason) values
('toolsdb.sessions', 'activity bookkeeping touched by every hook event; toolsdb.events keeps the raw record of each')
on conflict (table_name) do nothing;
