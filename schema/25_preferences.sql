-- schema/25_preferences.sql
-- Tier 20: identity. Defines toolsdb.preferences (per-user settings grouped
-- by category, one JSON object per user and category), its indexes and its
-- timestamps trigger.
-- Its functions, triggers and row-level security: repeatable/25_preferences.sql.
-- Needs: schema/20_users.sql.

create table if not exists toolsdb.preferences (
    preference_id uuid not null default gen_random_uuid(),
    user_id uuid not null,
    category text not null,
    preferences jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint preferences_pkey primary key (preference_id),
    constraint preferences_user_id_category_key unique (user_id, category),
    constraint preferences_user_id_fkey foreign key (user_id)
    references toolsdb.users (user_id) on delete cascade,
    constraint category_length_is_valid check (char_length(category) between 1 and 63),
    constraint category_is_valid check (category ~ '^[a-z][a-z0-9_]*$'),
    constraint preferences_is_object check (jsonb_typeof(preferences) = 'object')
);

create index if not exists preferences_preferences_idx on toolsdb.preferences using gin (preferences jsonb_path_ops);

comment on table toolsdb.preferences is
'User settings grouped by category (e.g. ui_settings, notifications): one JSON object per '
'user and category. Find users by a setting with containment, e.g. preferences @> ''{"theme": '
'"dark"}'', which uses the GIN index preferences_preferences_idx.';

comment on column toolsdb.preferences.preference_id is
'Primary key: a random UUID (gen_random_uuid()).';

comment on column toolsdb.preferences.user_id is
'The user these settings belong to (toolsdb.users); deleting the user deletes them.';

comment on column toolsdb.preferences.category is
'Group of settings as a lowercase identifier (letters, digits, underscore; e.g. ui_settings, '
'notifications), at most 63 characters; unique per user.';

comment on column toolsdb.preferences.preferences is
'The settings of this category as a JSON object, e.g. {"theme": "dark", "language": "en", '
'"notifications": {"email": true}}; default {}. Query with @> (indexed) or ->> / -> paths.';

comment on column toolsdb.preferences.created_at is
'When the row was created; set by trigger _100_timestamps, cannot be forged or changed.';

comment on column toolsdb.preferences.updated_at is
'When the row was last changed; set by trigger _100_timestamps, strictly increasing.';
