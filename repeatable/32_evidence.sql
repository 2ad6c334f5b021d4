-- repeatable/32_evidence.sql
-- Tier 30: the evidence registry: what a decision rests on, how
-- credible it is, whether someone verified it, and what it supports or
-- contradicts. Links agent_executions.evidence_id to it. Audited; row-level
-- security per project.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/32_evidence.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.evidence
for each row
execute function toolsdb_private.tg__timestamps();

create or replace function toolsdb_private.tg__evidence_verified_at()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if new.is_verified and (tg_op = 'INSERT' or not old.is_verified) then
        new.verified_at := pg_catalog.clock_timestamp();
    elsif not new.is_verified then
        new.verified_at := null;
    else
        new.verified_at := old.verified_at;
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__evidence_verified_at() is
'Trigger of toolsdb.evidence (_200_verified_at): verified_at is set when is_verified becomes true '
'and cleared when it becomes false; clients cannot forge it.';

create or replace trigger _200_verified_at
before insert or update on toolsdb.evidence
for each row
execute function toolsdb_private.tg__evidence_verified_at();

select toolsdb.audit_table('toolsdb.evidence');

select toolsdb.isolate_rows('toolsdb.evidence', 'project_id');
