-- schema/20_users.sql
-- Tier 20: identity. Defines toolsdb.users (people and service accounts),
-- its indexes (case-insensitive unique username and email, GitHub lookups)
-- and its timestamps trigger.
-- Its functions, triggers and row-level security: repeatable/20_users.sql.
-- Needs: schema/00_bootstrap.sql.

create table if not exists toolsdb.users (
    user_id uuid not null default gen_random_uuid(),
    username text not null,
    email text not null,
    display_name text,
    role text not null default 'user',
    github_id bigint,
    github_username text,
    github_avatar_url text,
    is_active boolean not null default true,
    last_login_at timestamptz,
    metadata jsonb not null default '{}',
    preferences jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint users_pkey primary key (user_id),
    constraint users_github_id_key unique (github_id),
    constraint username_length_is_valid check (char_length(username) between 1 and 64),
    constraint username_is_valid check (username ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    constraint email_length_is_valid check (char_length(email) between 3 and 320),
    constraint email_is_valid check (email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
    constraint display_name_length_is_valid check (char_length(display_name) between 1 and 200),
    constraint role_is_valid check (role in ('admin', 'manager', 'user', 'service')),
    constraint github_id_is_positive check (github_id > 0),
    constraint github_username_length_is_valid check (char_length(github_username) between 1 and 39),
    constraint github_username_is_valid check (github_username ~ '^[A-Za-z0-9-]+$'),
    constraint github_avatar_url_length_is_valid check (char_length(github_avatar_url) between 1 and 2048),
    constraint github_avatar_url_is_valid check (github_avatar_url ~ '^https://[^[:space:]]+$'),
    constraint metadata_is_object check (jsonb_typeof(metadata) = 'object'),
    constraint preferences_is_object check (jsonb_typeof(preferences) = 'object')
);

create unique index if not exists users_lower_username_key on toolsdb.users (lower(username));

create unique index if not exists users_lower_email_key on toolsdb.users (lower(email));

create index if not exists users_github_username_idx on toolsdb.users (github_username);

comment on table toolsdb.users is
'Accounts that act in toolsdb: people (admin, manager, user) and service accounts (service) '
'used by bots and automation. Deactivate with is_active = false rather than deleting: '
'projects keep their owner.';

comment on column toolsdb.users.user_id is
'Primary key: a random UUID (gen_random_uuid()).';

comment on column toolsdb.users.username is
'Login name, 1-64 characters: letters, digits, underscore, dot and hyphen, starting with a '
'letter or digit. Unique regardless of case (users_lower_username_key); look it up with '
'lower(username). An insert without one derives it from the email (trigger _050_username): '
'jane.doe@example.com becomes jane.doe, or jane.doe-2 when taken.';

comment on column toolsdb.users.email is
'Email address (local@domain.tld, at most 320 characters). Unique regardless of case '
'(users_lower_email_key); look it up with lower(email).';

comment on column toolsdb.users.display_name is
'Name shown in user interfaces, 1-200 characters; null to fall back to username.';

comment on column toolsdb.users.role is
'Platform role: admin (everything), manager (manages projects and agents), user (default), or '
'service (a non-human account for automation).';

comment on column toolsdb.users.github_id is
'Numeric GitHub account id from OAuth/SSO; unique, null when the account is not linked to GitHub.';

comment on column toolsdb.users.github_username is
'GitHub login (1-39 characters: letters, digits, hyphen) as last seen from GitHub; null when '
'not linked.';

comment on column toolsdb.users.github_avatar_url is
'https URL of the GitHub avatar image; null when not linked.';

comment on column toolsdb.users.is_active is
'False when the account is deactivated: it can no longer log in or act, but its history and '
'owned projects stay.';

comment on column toolsdb.users.last_login_at is
'When the user last logged in successfully; null if never.';

comment on column toolsdb.users.metadata is
'Free-form JSON object for integrations and extensions (never secrets); default {}.';

comment on column toolsdb.users.preferences is
'Small JSON object of account-wide settings; settings grouped by category live in '
'toolsdb.preferences. Default {}.';

comment on column toolsdb.users.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.users.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';
