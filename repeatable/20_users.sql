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

-- A user created with an email and no username (as the agents framework's
-- User(email=..., name=...) does) gets one derived from the email.
create or replace function toolsdb_private.tg__username_from_email()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
declare
    base text;
    candidate text;
    suffix integer := 1;
begin
    if new.username is not null or new.email is null then
        return new;
    end if;
    -- The local part, lowercased, each character outside the username
    -- alphabet as an underscore, starting with a letter or digit.
    base := pg_catalog.lower(pg_catalog.split_part(new.email, '@', 1));
    base := pg_catalog.regexp_replace(base, '[^a-z0-9_.-]', '_', 'g');
    base := pg_catalog.left(pg_catalog.regexp_replace(base, '^[^a-z0-9]+', ''), 56);
    if base = '' then
        base := 'user';
    end if;
    -- Writers deriving from the same local part take turns, so each sees the
    -- others' committed names (read committed) and none collides.
    perform pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtext('toolsdb.users.username'), pg_catalog.hashtext(base)
    );
    candidate := base;
    while exists (select from toolsdb.users as u where pg_catalog.lower(u.username) = candidate) loop
        suffix := suffix + 1;
        candidate := base || '-' || suffix;
    end loop;
    new.username := candidate;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__username_from_email() is
'Trigger of toolsdb.users: an insert without a username gets one derived from the email: its '
'local part lowercased, characters other than letters, digits, _ . - as underscores, leading '
'non-alphanumerics dropped, at most 56 characters (user when nothing is left), then -2, -3, ... '
'until no username has it regardless of case.';

create or replace trigger _050_username
before insert on toolsdb.users
for each row
when (new.username is null)
execute function toolsdb_private.tg__username_from_email();

comment on trigger _050_username on toolsdb.users is
'Derives a missing username from the email (toolsdb_private.tg__username_from_email()).';
