-- repeatable/42_memories.sql
-- Tier 40: what an agent remembers, globally or for one user:
-- one entry per agent, user and key (a null user is the global memory, and
-- nulls are not distinct in the key). memory_get() prefers the user's entry
-- and falls back to the global one. Audited.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in schema/42_memories.sql.

create or replace trigger _100_timestamps
before insert or update on toolsdb.memories
for each row
execute function toolsdb_private.tg__timestamps();

comment on trigger _100_timestamps on toolsdb.memories is
'Keeps created_at unforgeable and updated_at strictly increasing (toolsdb_private.tg__timestamps()).';

select toolsdb.audit_table('toolsdb.memories');

create or replace function toolsdb.memory_set(
    agent_id uuid,
    key text,
    content text,
    user_id uuid default null,
    metadata jsonb default '{}'
)
returns uuid
language sql
volatile
set search_path = ''
as $function$
    insert into toolsdb.memories as m (agent_id, user_id, key, content, metadata)
    values ($1, $4, $2, $3, coalesce($5, '{}'))
    on conflict on constraint memories_agent_id_user_id_key_key do update
    set content = excluded.content,
        metadata = excluded.metadata
    where (m.content, m.metadata) is distinct from (excluded.content, excluded.metadata)
    returning m.memory_id;
$function$;

comment on function toolsdb.memory_set(uuid, text, text, uuid, jsonb) is
'Stores a memory of an agent, for one user or (user null) global; replaces the entry with the same '
'agent, user and key. Returns its memory_id, or null when nothing changed.';

create or replace function toolsdb.memory_get(agent_id uuid, key text, user_id uuid default null)
returns setof toolsdb.memories
language sql
stable
set search_path = ''
as $function$
    select m.*
    from toolsdb.memories as m
    where m.agent_id = $1 and m.key = $2 and (m.user_id = $3 or m.user_id is null)
    order by m.user_id nulls last
    limit 1;
$function$;

comment on function toolsdb.memory_get(uuid, text, uuid) is
'The memory of an agent under a key: the user''s own entry when there is one, else the agent''s '
'global entry; no row when neither exists.';
