-- seeds/40_runtime.sql
-- Demo agent runtime: an active Claude Code session fed through the same
-- hook_ingest() the `toolsdb hook` command calls (start, prompt, a tool use,
-- an idle notification), an ended one, a short conversation, two memories
-- (one global, one for a user), a pending notification and a dead letter,
-- and a few metrics; enough for every view of repeatable/83_runtime_views.sql to return
-- rows. Each part is made only when missing (the key is named at each one).
-- Needs: seeds/10_identity.sql (user carol, agent claude-code, project toolsdb).

do $seed$
declare
    agent uuid;
    person uuid;
    project uuid;
    event bigint;
begin
    select a.agent_id into agent from toolsdb.agents as a where a.name = 'claude-code';
    select u.user_id into person from toolsdb.users as u where u.username = 'carol';
    select p.project_id into project from toolsdb.projects as p where p.slug = 'toolsdb';
    if agent is null or person is null or project is null then
        return;  -- the identity seed has not run
    end if;

    -- Sessions, by session id.
    if not exists (select from toolsdb.sessions as s where s.session_id = 'demo-session-active') then
        perform toolsdb.hook_ingest(
            '{"session_id": "demo-session-active", "hook_event_name": "SessionStart", "source": "startup",
              "cwd": "/workspace/toolsdb", "transcript_path": "/home/carol/.claude/projects/demo-session-active.jsonl",
              "permission_mode": "default"}',
            pg_catalog.jsonb_build_object(
                'git_branch', 'agent-runtime', 'terminal_type', 'tmux', 'terminal_info', '{"tmux_pane": "%1"}'::jsonb,
                'user_id', person, 'agent_id', agent, 'project_id', project
            )
        );
        perform toolsdb.hook_ingest(
            '{"session_id": "demo-session-active", "hook_event_name": "UserPromptSubmit",
              "cwd": "/workspace/toolsdb", "prompt": "Add the notification queue"}'
        );
        event := toolsdb.hook_ingest(
            '{"session_id": "demo-session-active", "hook_event_name": "PreToolUse", "cwd": "/workspace/toolsdb",
              "tool_name": "Edit", "tool_input": {"file_path": "schema/44_notifications.sql"}}'
        );
        perform toolsdb.hook_ingest(
            '{"session_id": "demo-session-active", "hook_event_name": "Notification", "cwd": "/workspace/toolsdb",
              "notification_type": "permission_prompt", "message": "Claude needs your permission to use Edit"}'
        );
        perform toolsdb.hook_ingest(
            '{"session_id": "demo-session-active", "hook_event_name": "Notification", "cwd": "/workspace/toolsdb",
              "notification_type": "idle_prompt", "message": "Claude is waiting for your input"}'
        );
        perform toolsdb.insert_notification(
            'demo-session-active', 'permission', 'slack',
            '{"text": "Claude wants to edit schema/44_notifications.sql"}', event,
            idempotency_key => 'demo:permission'
        );
        perform toolsdb.create_message('demo-session-active', 'user', 'Add the notification queue');
        perform toolsdb.create_message(
            'demo-session-active', 'assistant', 'I will edit schema/44_notifications.sql.',
            '[{"name": "Edit", "input": {"file_path": "schema/44_notifications.sql"}}]', 42
        );
        perform toolsdb.create_message('demo-session-active', 'tool', 'Edited 1 file.', tokens => 5);
        perform toolsdb.insert_metric('hook_duration_ms', v, 'demo-session-active', '{"event": "PreToolUse"}')
        from pg_catalog.unnest(array[12.5, 14.0, 11.8, 19.2, 13.1]) as v;
        perform toolsdb.insert_metric('notification_latency_ms', 240.0, null, '{"backend": "slack"}');
    end if;

    if not exists (select from toolsdb.sessions as s where s.session_id = 'demo-session-ended') then
        perform toolsdb.hook_ingest(
            '{"session_id": "demo-session-ended", "hook_event_name": "SessionStart", "source": "startup",
              "cwd": "/workspace/agent-notify"}',
            '{"git_branch": "main", "terminal_type": "vscode"}'
        );
        perform toolsdb.hook_ingest(
            '{"session_id": "demo-session-ended", "hook_event_name": "Stop", "stop_hook_active": false}'
        );
        event := toolsdb.hook_ingest(
            '{"session_id": "demo-session-ended", "hook_event_name": "SessionEnd", "reason": "logout"}'
        );
        -- A notification that used up its attempts: a dead letter to redrive.
        insert into toolsdb.notifications (
            event_id, session_id, notification_type, backend, status, payload, attempts, max_attempts,
            last_error, idempotency_key
        )
        values (
            event, 'demo-session-ended', 'task_complete', 'discord', 'dead', '{"content": "Session ended"}',
            3, 3, 'HTTP 404 from the Discord webhook', 'demo:task_complete'
        )
        on conflict on constraint notifications_idempotency_key_key do nothing;
    end if;

    -- Memories, by (agent, user, key); memory_set writes only what changed.
    perform toolsdb.memory_set(agent, 'coding_style', 'Lowercase SQL, named constraints, comments on everything.');
    perform toolsdb.memory_set(agent, 'preferred_language', 'Answers in English, code in Python 3.11.', person);
end
$seed$;
