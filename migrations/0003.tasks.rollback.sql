-- migrations/0003.tasks.rollback.sql
-- Undo 0003.tasks.sql: drop the tasks (every row), the lifecycle table and
-- their functions. Views in views/ over tasks go with them (cascade) and come
-- back with the next migrate. Undoing this migration is what a rollback is
-- for, so squawk's drop rules do not apply to this file.
-- squawk-ignore-file ban-drop-table, ban-drop-function

drop function if exists toolsdb.priority_from_label(text);
drop function if exists toolsdb.task_transition(uuid, text);
drop table if exists toolsdb.tasks cascade;
drop function if exists toolsdb_private.tg__project_from_task();
drop function if exists toolsdb_private.tg__task_rules();
drop table if exists toolsdb.task_status_transitions cascade;
