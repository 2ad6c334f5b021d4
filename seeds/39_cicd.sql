-- seeds/39_cicd.sql
-- A demo setting of a CI/CD task tracker, read through toolsdb.system_config
-- (a view over toolsdb.config). Upserts on the key, changing only what
-- differs, so a second run writes nothing.
-- Needs: schema/14_config.sql, repeatable/86_cicd_views.sql.

insert into toolsdb.config as c (key, value, description)
values ('ci.max_parallel_runs', '4', 'How many task executions may run at once (demo).')
on conflict on constraint config_pkey do update
    set value = excluded.value, description = excluded.description
    where (c.value, c.description, c.is_secret) is distinct from (excluded.value, excluded.description, false);
