-- repeatable/25_preferences.sql
-- Tier 20: identity. Defines toolsdb.preferences (per-user settings grouped
-- by category, one JSON object per user and category), its indexes and its
-- timestamps trigger.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/25_preferences.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.preferences
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.preferences is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- Change capture into toolsdb.audit_logs (docs/security.md).
select toolsdb.audit_table('toolsdb.preferences');
