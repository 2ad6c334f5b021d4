-- migrations/0004.executions.rollback.sql
-- Undo 0004.executions.sql: drop the executions with their logs (every row),
-- the price list and their functions. Views in views/ over them go with
-- them (cascade) and come back with the next migrate. Undoing this migration
-- is what a rollback is for, so squawk's drop rules do not apply.
-- squawk-ignore-file ban-drop-table, ban-drop-function

drop function if exists toolsdb.execution_cancel(uuid);
drop function if exists toolsdb.execution_time_out(uuid, bigint, bigint, bigint);
drop function if exists toolsdb.execution_fail(uuid, jsonb, bigint, bigint, bigint, numeric);
drop function if exists toolsdb.execution_complete(uuid, jsonb, bigint, bigint, bigint, numeric);
drop function if exists toolsdb.execution_log(uuid, text, text, jsonb);
drop function if exists toolsdb.execution_start(uuid);
drop function if exists toolsdb.execution_move(uuid, text, jsonb, jsonb, bigint, bigint, bigint, numeric);
drop function if exists toolsdb.execution_create(uuid, uuid, jsonb);
delete from toolsdb_private.audit_exemptions
where table_name = 'toolsdb.agent_execution_logs';
drop table if exists toolsdb.agent_execution_logs cascade;
drop table if exists toolsdb.agent_executions cascade;
drop function if exists toolsdb_private.tg__execution_rules();
drop function if exists toolsdb.token_cost(text, text, timestamptz, bigint, bigint, bigint);
drop function if exists toolsdb.model_price_at(text, text, timestamptz);
drop table if exists toolsdb.model_prices cascade;
