-- repeatable/41_messages.sql
-- Tier 40: the messages of a session: role, content, tool calls,
-- tokens, and a gapless position within the session that the database
-- assigns (from sessions.message_count, so two writers never collide).
-- Row-level security per session; not audited (the conversation is the
-- record, and an immutable copy of its content would defeat deleting it).
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/41_messages.sql.

create or replace function toolsdb_private.tg__message_position()
returns trigger
language plpgsql
volatile
set search_path = ''
as $function$
begin
    if tg_op = 'UPDATE' then
        if new.session_id is distinct from old.session_id or new.position is distinct from old.position then
            raise exception 'a message keeps its session and position (message %)', old.message_id
                using errcode = 'check_violation', constraint = 'position_is_fixed';
        end if;
        return new;
    end if;
    -- toolsdb.transcript_ingest() reserves positions for a batch (it raises
    -- message_count first, under the session's row lock) and says so in a
    -- transaction-local setting: a position given inside the reserved range
    -- is kept (the unique key refuses one already taken). Any other position
    -- given is replaced by the next one.
    if new.position is not null
        and pg_catalog.current_setting('toolsdb_private.positions_reserved', true) = 'on'
        and exists (
            select from toolsdb.sessions as s
            where s.session_id = new.session_id and s.message_count >= new.position
        ) then
        return new;
    end if;
    update toolsdb.sessions as s
    set message_count = s.message_count + 1,
        last_activity_at = greatest(s.last_activity_at, pg_catalog.now())
    where s.session_id = new.session_id
    returning s.message_count into new.position;
    if new.position is null then
        raise exception 'no session % for this message', pg_catalog.quote_literal(new.session_id)
            using errcode = 'foreign_key_violation', constraint = 'messages_session_id_fkey';
    end if;
    return new;
end;
$function$;

comment on function toolsdb_private.tg__message_position() is
'Trigger of toolsdb.messages: a new message takes the next position of its session (counting in '
'sessions.message_count, which also serializes concurrent writers of one session), or, for '
'toolsdb.transcript_ingest(), a position it has already reserved; an update may not move a message.';

create or replace trigger _050_position
before insert or update on toolsdb.messages
for each row
execute function toolsdb_private.tg__message_position();

comment on trigger _050_position on toolsdb.messages is
'Assigns position from the session''s message_count; refuses to move a message.';

select toolsdb.isolate_rows('toolsdb.messages', 'session_id');

create or replace function toolsdb.create_message(
    session_id text,
    role text,
    content text,
    tool_calls jsonb default '[]',
    tokens integer default null,
    metadata jsonb default '{}'
)
returns uuid
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.messages (session_id, role, content, tool_calls, tokens, metadata)
    values ($1, $2, coalesce($3, ''), coalesce($4, '[]'), $5, coalesce($6, '{}'))
    returning message_id;
$function$;

comment on function toolsdb.create_message(text, text, text, jsonb, integer, jsonb) is
'Adds a message at the end of a session (create_message, as in the agents-framework API); returns '
'its message_id. The position is the session''s next one.';
