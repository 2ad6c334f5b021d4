-- repeatable/20_users.sql
-- Tier 20: identity. Defines toolsdb.users (people and service accounts),
-- its indexes (case-insensitive unique username and email, GitHub lookups)
-- and its timestamps trigger.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/20_users.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.users
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.users is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- Change capture into toolsdb.audit_logs (docs/security.md).
select toolsdb.audit_table('toolsdb.users');
