-- repeatable/21_projects.sql
-- Tier 20: identity. Defines toolsdb.projects (software projects, each owned
-- by a user and usually backed by a git repository), its indexes and its
-- timestamps trigger.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/21_projects.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.projects
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.projects is
'Keeps created_at unforgeable and updated_at strictly increasing '
'(toolsdb_private.tg__timestamps()).';

-- Change capture into toolsdb.audit_logs (docs/security.md).
select toolsdb.audit_table('toolsdb.projects');

-- Row-level security (docs/security.md): the application sees and changes
-- only the project of its transaction (setting toolsdb.project_id), and
-- nothing without it; reporting reads all; the owner is the maintenance path.
select toolsdb.isolate_rows('toolsdb.projects', 'project_id');
