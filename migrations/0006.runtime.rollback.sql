-- migrations/0006.runtime.rollback.sql
-- Undo 0006.runtime.sql: drop metrics (with every daily partition),
-- notifications, events, memories, messages and sessions, every row, with
-- their functions. The views in views/50_runtime.sql go with them (cascade)
-- and come back with the next migrate. Undoing this migration is what a
-- rollback is for, so squawk's drop rules do not apply.
-- squawk-ignore-file ban-drop-table, ban-drop-function

drop function if exists toolsdb.import_v1_notification_state(jsonb, text);
drop function if exists toolsdb.import_v1_tool_request(text, jsonb, timestamptz, text);
drop function if exists toolsdb_private.v1_time(jsonb);

drop function if exists toolsdb.get_metric_stats(text, timestamptz, timestamptz);
drop function if exists toolsdb.insert_metric(text, double precision, text, jsonb, timestamptz);
drop function if exists toolsdb.metrics_apply_retention(interval);
drop function if exists toolsdb.metrics_create_partitions(integer);
drop function if exists toolsdb_private.metrics_partition_name(date);
drop table if exists toolsdb.metrics cascade;

drop function if exists toolsdb.redrive_notifications(bigint[]);
drop function if exists toolsdb.get_dead_notifications(integer);
drop function if exists toolsdb.mark_notification_failed(bigint, uuid, text, interval, interval);
drop function if exists toolsdb.mark_notification_sent(bigint, uuid);
drop function if exists toolsdb.mark_notifications_sent(bigint[], uuid);
drop function if exists toolsdb.claim_notifications(integer, interval, text);
drop function if exists toolsdb.insert_notification(text, text, text, jsonb, bigint, integer, text, timestamptz);
drop table if exists toolsdb.notifications cascade;

drop function if exists toolsdb.purge_processed_events(interval);
drop function if exists toolsdb.mark_event_processed(bigint, uuid);
drop function if exists toolsdb.mark_events_processed(bigint[], uuid);
drop function if exists toolsdb.get_unprocessed_events(integer, interval, text);
drop function if exists toolsdb.hook_ingest(jsonb, jsonb);
drop function if exists toolsdb.insert_event(text, text, jsonb, text);
drop table if exists toolsdb.events cascade;
drop function if exists toolsdb_private.tg__queue_notify();

drop function if exists toolsdb.memory_get(uuid, text, uuid);
drop function if exists toolsdb.memory_set(uuid, text, text, uuid, jsonb);
drop table if exists toolsdb.memories cascade;

drop function if exists toolsdb.create_message(text, text, text, jsonb, integer, jsonb);
drop table if exists toolsdb.messages cascade;
drop function if exists toolsdb_private.tg__message_position();

drop function if exists toolsdb.end_session(text, text);
drop function if exists toolsdb.set_session_idle(text, boolean);
drop function if exists toolsdb.update_session_activity(text);
drop function if exists toolsdb.create_session(text, text, text, text, jsonb, uuid, uuid, uuid);
drop table if exists toolsdb.sessions cascade;

delete from toolsdb_private.audit_exemptions
where table_name in (
    'toolsdb.metrics', 'toolsdb.notifications', 'toolsdb.events', 'toolsdb.messages', 'toolsdb.sessions'
);
