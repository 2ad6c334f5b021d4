-- repeatable/52_schema_validator.sql
-- Tier 50: the SQL schema validator, callable from psql:
-- select toolsdb.validate_schema('create table ...'). A script is split
-- into statements by a lexer that knows comments, strings, quoted names
-- and dollar quotes; anything but CREATE, ALTER and COMMENT is refused
-- (42501); the statements then really run, as the role toolsdb_validator
-- (no privilege but its scratch schema), in a subtransaction that is always
-- rolled back; what they made is checked against the conventions the
-- catalog tests hold toolsdb itself to (toolsdb_private.convention_findings);
-- the report is kept in toolsdb.schema_validations by statement hash.
-- docs/agent-tools.md, "Schema validator", has the rules and the limits.
-- Re-applied by every migrate after the migrations, each object only where it
-- differs (docs/architecture.md); the tables are in
-- schema/52_schema_validator.sql.

-- ---------------------------------------------------------------------------
-- The lexer: statements of a script, with their lines
-- ---------------------------------------------------------------------------

create or replace function toolsdb_private.newlines_before(body text, at_position integer)
returns integer
language sql
immutable
strict
set search_path = ''
as $function$
    select
        pg_catalog.length(pg_catalog.substr(body, 1, greatest(at_position - 1, 0)))
        - pg_catalog.length(pg_catalog.replace(pg_catalog.substr(body, 1, greatest(at_position - 1, 0)), E'\n', ''));
$function$;

comment on function toolsdb_private.newlines_before(text, integer) is
'How many line breaks come before character at_position (from 1) of body; 0 for a position of 0 or '
'less. Turns a position in a script into a line number for the validator''s findings.';

create or replace function toolsdb_private.sql_tokens_pattern(script text)
returns text
language plpgsql
immutable
strict
set search_path = ''
as $function$
-- The regular expression that cuts a script into PostgreSQL's lexical
-- tokens (src/backend/parser/scan.l), for one pass of regexp_matches(..., 'g').
-- An alternation matches the longest token at each position, as flex does.
-- Every alternative that could run off the end of the script (a string, a
-- comment, a dollar body not closed) matches to the end instead of failing,
-- so no stretch of the script is scanned twice: linear time.
declare
    ident_start constant text := '(?:[A-Za-z_]|[^[:ascii:]])';
    ident_cont constant text := '(?:[A-Za-z_0-9$]|[^[:ascii:]])';
    -- White space that joins two quoted parts of one E'' string: it holds a newline.
    joining constant text := '(?:[ \t\f]|--[^\n\r]*)*[\n\r](?:[ \t\n\r\f\v]+|--[^\n\r]*[\n\r])*';
    -- A /* comment */, nested (as PostgreSQL nests them) up to 4 deep; the
    -- start of one nested deeper is a token of its own, which
    -- sql_statements() refuses.
    comment text := '/\*(?:[^*/]|\*+(?!/)|/(?!\*))*(?:\*+/|$)';
    plain constant text := '(?:' || ident_start || ident_cont || '*(?!' || ident_cont || '|[''"]|&[''"])'
        || '|[0-9](?:[A-Za-z_0-9.]|[^[:ascii:]])*(?![A-Za-z_0-9.''"]|[^[:ascii:]])'
        || '|[(),.:=<>+*%^~!@#&|`?\[\]{}\\]|-(?!-)|/(?!\*))';
    dollar_tags text[];
    dollar text;
begin
    for depth in 1 .. 3 loop
        comment := '/\*(?:[^*/]|\*+(?!/)|/(?!\*)|' || comment || ')*(?:\*+/|$)';
    end loop;
    -- A $tag$ body runs to the next $tag$: one alternative per tag that the
    -- script writes twice or more (a body needs two), since a back reference
    -- would not keep the match linear.
    select pg_catalog.array_agg(t.tag order by t.tag)
    into dollar_tags
    from (
        select coalesce(m[1], '') as tag
        -- (the closing $ is looked ahead to, not taken: it may open the next one)
        from pg_catalog.regexp_matches(script, '\$(' || ident_start || '(?:[A-Za-z_0-9]|[^[:ascii:]])*)?(?=\$)', 'g') as m
        group by 1
        having pg_catalog.count(*) > 1
    ) as t;
    if pg_catalog.cardinality(dollar_tags) > 100 then
        raise exception 'validate_schema: the script uses more than 100 different $tag$ delimiters'
            using errcode = 'program_limit_exceeded';
    end if;
    select coalesce(
        pg_catalog.string_agg(pg_catalog.format('|\$%1$s\$(?:(?!\$%1$s\$).)*(?:\$%1$s\$|$)', t.tag), '' order by t.tag),
        ''
    )
    into dollar
    from pg_catalog.unnest(dollar_tags) as t (tag);
    -- Each token takes the white space after it (fewer, longer tokens).
    return '(?:--[^\n\r]*'
        || '|' || comment
        || '|/\*'
        -- E'' strings: backslash escapes, and continuations after a newline.
        || '|[eE]''(?:[^''\\]|\\.|''''|''' || joining || ''')*(?:''|\\?$)'
        -- Other strings (standard_conforming_strings is on): only ''.
        || '|(?:[nNbBxX]|[uU]&)?''(?:[^'']|'''')*(?:''|$)'
        || '|(?:[uU]&)?"(?:[^"]|"")*(?:"|$)'
        || dollar
        -- A run of words, numbers, operators and white space that holds no
        -- other token: a word ends it where a quote or &quote follows (E'',
        -- U&"", ...).
        || '|' || plain || '(?:' || plain || '|[ \t\n\r\f\v]+(?=' || plain || '))*'
        || '|' || ident_start || ident_cont || '*'
        || '|\$[0-9]+'
        || '|.)[ \t\n\r\f\v]*'
        || '|[ \t\n\r\f\v]+';
end;
$function$;

comment on function toolsdb_private.sql_tokens_pattern(text) is
'The regular expression that cuts a script into PostgreSQL''s lexical tokens in one pass '
'(regexp_matches(..., ''g'')): -- and nested /* */ comments, E'''' strings with their escapes '
'and continuations, other strings, U&"quoted" names, the script''s $tag$ bodies, identifiers, '
'numbers and parameters, white space and operators. Used by toolsdb_private.sql_statements().';

create or replace function toolsdb_private.sql_statements(script text)
returns table (statement_no integer, line integer, statement text, skeleton text)
language plpgsql
immutable
strict
set search_path = ''
set standard_conforming_strings = on
as $function$
-- Splits at top-level semicolons, token by token (sql_tokens_pattern(): one
-- regular-expression pass, so time is linear in the script). skeleton is
-- the statement without its comments, with every string and dollar-quoted
-- body reduced to '' and every run of white space to one blank: what the
-- refusal rules read. A SQL-standard body (BEGIN ATOMIC ... END) of CREATE
-- FUNCTION or PROCEDURE is not split at its inner semicolons.
declare
    token text;
    pieces text[] := '{}';
    shape text[] := '{}';
    head text[] := '{}';
    lines_so_far integer := 0;
    first_line integer;
    last_word text;
    atomic_depth integer := 0;
    open_comment boolean := false;
    first_char text;
    found_at integer;
    ident_cont constant text := '(?:[A-Za-z_0-9$]|[^[:ascii:]])';
    word_pattern constant text := '(?:[A-Za-z_]|[^[:ascii:]])(?:[A-Za-z_0-9$]|[^[:ascii:]])*';
begin
    statement_no := 0;
    foreach token in array array(
        select m[1] from pg_catalog.regexp_matches(script, toolsdb_private.sql_tokens_pattern(script), 'g') as m
    ) loop
        if open_comment then
            raise exception 'validate_schema: a /* comment */ is nested more than 4 deep'
                using errcode = 'program_limit_exceeded';
        end if;
        first_char := pg_catalog.left(token, 1);
        if first_char = ';' and atomic_depth = 0 then
            if first_line is not null then
                statement_no := statement_no + 1;
                if statement_no > 10000 then
                    raise exception 'validate_schema: the script holds more than 10000 statements'
                        using errcode = 'program_limit_exceeded';
                end if;
                line := first_line;
                statement := pg_catalog.rtrim(pg_catalog.array_to_string(pieces, ''), E' \t\r\n\f\v');
                skeleton := pg_catalog.btrim(
                    pg_catalog.regexp_replace(pg_catalog.array_to_string(shape, ''), '\s+', ' ', 'g')
                );
                return next;
            end if;
            pieces := '{}';
            shape := '{}';
            head := '{}';
            first_line := null;
            last_word := null;
            -- (the white space after the ';' is part of its token)
            lines_so_far := lines_so_far + pg_catalog.length(token) - pg_catalog.length(pg_catalog.replace(token, E'\n', ''));
            continue;
        end if;
        if first_char in (' ', E'\t', E'\n', E'\r', E'\f', E'\v')
            or (first_char in ('-', '/') and pg_catalog.left(token, 2) in ('--', '/*')) then
            -- White space or a comment ('/*' alone: one nested too deep, or
            -- not closed at the end of the script).
            open_comment := pg_catalog.rtrim(token, E' \t\n\r\f\v') = '/*';
            shape := shape || ' '::text;
            if first_line is not null then
                pieces := pieces || token;
            end if;
        else
            if first_line is null then
                first_line := lines_so_far + 1;
            end if;
            pieces := pieces || token;
            if first_char = ''''
                or (first_char = '$' and pg_catalog.length(token) > 1 and pg_catalog.substr(token, 2, 1) !~ '[0-9]')
                or (first_char in ('e', 'E', 'n', 'N', 'b', 'B', 'x', 'X') and pg_catalog.substr(token, 2, 1) = '''')
                or (first_char in ('u', 'U') and pg_catalog.substr(token, 2, 2) = '&''') then
                -- A string (with its prefix) or a dollar-quoted body: ''.
                shape := shape || (
                    pg_catalog.left(token, greatest(pg_catalog.strpos(token, ''''), 1) - 1) || ''''''
                    || case when pg_catalog.right(token, 1) in (' ', E'\t', E'\n', E'\r', E'\f', E'\v') then ' ' else '' end
                );
                last_word := null;
            else
                shape := shape || token;
                if first_char = '"' or (first_char in ('u', 'U') and pg_catalog.substr(token, 2, 2) = '&"') then
                    last_word := null;
                else
                    -- Words of the run, set-based (no loop over the words of a
                    -- long run): the statement's first four, and BEGIN ATOMIC
                    -- ... END in CREATE FUNCTION or PROCEDURE (CASE ... END
                    -- nests in it).
                    if pg_catalog.cardinality(head) < 4 then
                        head := head || array(
                            select pg_catalog.lower(w[1])
                            from pg_catalog.regexp_matches(token, word_pattern, 'g') as w
                            limit 4 - pg_catalog.cardinality(head)
                        );
                    end if;
                    if head[1] = 'create' and (
                        head[2] in ('function', 'procedure')
                        or (head[2:3] = array['or', 'replace'] and head[4] in ('function', 'procedure'))
                    ) then
                        found_at := case
                            when atomic_depth > 0 then 1
                            when last_word = 'begin' and token ~* ('^atomic(?!' || ident_cont || ')') then 7
                            else pg_catalog.regexp_instr(
                                token,
                                '(?:^|(?!' || ident_cont || ').)begin[ \t\n\r\f\v]+atomic(?!' || ident_cont || ')',
                                1, 1, 1, 'i'
                            )
                        end;
                        if found_at > 0 then
                            select greatest(
                                greatest(atomic_depth, 1)
                                + pg_catalog.count(*) filter (where pg_catalog.lower(w[1]) = 'case')
                                - pg_catalog.count(*) filter (where pg_catalog.lower(w[1]) = 'end'),
                                0
                            )
                            into atomic_depth
                            from pg_catalog.regexp_matches(pg_catalog.substr(token, found_at), word_pattern, 'g') as w;
                        end if;
                    end if;
                    last_word := pg_catalog.lower(
                        pg_catalog.substring(token, '(' || word_pattern || ')[ \t\n\r\f\v]*$')
                    );
                end if;
            end if;
        end if;
        if pg_catalog.strpos(token, E'\n') > 0 then
            lines_so_far := lines_so_far + pg_catalog.length(token) - pg_catalog.length(pg_catalog.replace(token, E'\n', ''));
        end if;
    end loop;
    if first_line is not null then
        statement_no := statement_no + 1;
        line := first_line;
        statement := pg_catalog.rtrim(pg_catalog.array_to_string(pieces, ''), E' \t\r\n\f\v');
        skeleton := pg_catalog.btrim(pg_catalog.regexp_replace(pg_catalog.array_to_string(shape, ''), '\s+', ' ', 'g'));
        return next;
    end if;
end;
$function$;

comment on function toolsdb_private.sql_statements(text) is
'Splits a SQL script into its statements at top-level semicolons as PostgreSQL''s scanner reads '
'it (-- comments ended by a line feed or a carriage return, nested /* */ comments, '''', E'''' and '
'U&'''' strings, "quoted" names, $tag$ bodies, BEGIN ATOMIC bodies of functions), in time linear '
'in the script: number, first line, text, and a skeleton without comments or string contents '
'(what toolsdb.validate_schema() classifies).';

-- ---------------------------------------------------------------------------
-- The conventions, as one query over the catalog
-- ---------------------------------------------------------------------------

create or replace function toolsdb_private.convention_findings(namespaces regnamespace[])
returns table (
    object_oid oid, object_name text, column_name text, rule text, severity text, message text,
    part_oid oid, column_number smallint
)
language sql
stable
set search_path = ''
as $function$
    -- The one convention engine: tests/test_catalog_conventions.py holds
    -- toolsdb's own schemas to these rules (docs/agent-tools.md lists them
    -- with their severities).
    with
    rel as (
        select c.oid, c.relname::text as relname, c.relkind, c.relispartition
        from pg_catalog.pg_class as c
        where c.relnamespace::pg_catalog.regnamespace = any(namespaces) and c.relkind in ('r', 'p', 'v', 'm')
            -- an extension's objects are the extension's, not the schema's author's
            and not exists (
                select from pg_catalog.pg_depend as d
                where d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.objid = c.oid and d.deptype = 'e'
            )
    ),
    fn as (
        select p.oid, p.proname::text as proname, p.prosecdef, p.prolang, p.proconfig
        from pg_catalog.pg_proc as p
        where p.pronamespace::pg_catalog.regnamespace = any(namespaces)
            and not exists (
                select from pg_catalog.pg_depend as d
                where d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass and d.objid = p.oid and d.deptype = 'e'
            )
    ),
    col as (
        select
            r.oid, r.relname, r.relkind, r.relispartition, a.attnum, a.attname::text as attname, a.atttypid,
            pg_catalog.format_type(a.atttypid, a.atttypmod) as type_name
        from rel as r
        inner join pg_catalog.pg_attribute as a on r.oid = a.attrelid and a.attnum > 0 and not a.attisdropped
    ),
    con as (
        select k.oid, k.conrelid, k.conname::text as conname, k.contype, k.conkey, k.confdeltype, r.relname
        from pg_catalog.pg_constraint as k
        inner join rel as r on k.conrelid = r.oid
    )
    select r.oid, r.relname, null, 'primary_key', 'error', 'table ' || r.relname || ' has no primary key',
        null::oid, null::smallint
    from rel as r
    where r.relkind in ('r', 'p')
        and not exists (select from pg_catalog.pg_constraint as k where k.conrelid = r.oid and k.contype = 'p')
    union all
    select r.oid, r.relname, null, 'table_comment', 'warning',
        case when r.relkind in ('v', 'm') then 'view ' else 'table ' end || r.relname || ' has no COMMENT',
        null, null
    from rel as r
    where coalesce(pg_catalog.obj_description(r.oid, 'pg_class'), '') = ''
    union all
    select c.oid, c.relname, c.attname, 'column_comment', 'warning',
        'column ' || c.relname || '.' || c.attname || ' has no COMMENT', null, c.attnum
    from col as c
    where not c.relispartition and coalesce(pg_catalog.col_description(c.oid, c.attnum), '') = ''
    union all
    select c.oid, c.relname, c.attname, t.rule, t.severity,
        'column ' || c.relname || '.' || c.attname || ' is ' || c.type_name || ': ' || t.advice, null, c.attnum
    from col as c
    inner join (values
        ('timestamp without time zone'::regtype, 'timestamptz', 'error', 'use timestamptz'),
        ('character varying'::regtype, 'text_not_varchar', 'error', 'use text with a named CHECK on its length'),
        ('character'::regtype, 'text_not_varchar', 'error', 'use text with a named CHECK on its length'),
        ('json'::regtype, 'jsonb_not_json', 'warning', 'use jsonb'),
        ('money'::regtype, 'numeric_not_money', 'warning', 'use numeric')
    ) as t (type_oid, rule, severity, advice) on c.atttypid = t.type_oid
    where c.relkind in ('r', 'p', 'v', 'm')
    union all
    select c.oid, c.relname, c.attname, 'identity_not_serial', 'warning',
        'column ' || c.relname || '.' || c.attname
        || ' defaults to a sequence (serial): use generated always as identity, or a uuid', null, c.attnum
    from col as c
    inner join pg_catalog.pg_attrdef as d on c.oid = d.adrelid and c.attnum = d.adnum
    where pg_catalog.pg_get_expr(d.adbin, d.adrelid) like 'nextval(%'
    union all
    select c.oid, c.relname, c.attname, 'text_bounded', 'warning',
        'text column ' || c.relname || '.' || c.attname
        || ' is in no CHECK constraint: bound its length or format with a named CHECK', null, c.attnum
    from col as c
    where c.relkind in ('r', 'p')
        and (
            c.atttypid = 'pg_catalog.text'::pg_catalog.regtype
            -- a domain over text bounds its columns only with a CHECK of its own
            or exists (
                select from pg_catalog.pg_type as d
                where d.oid = c.atttypid and d.typtype = 'd' and d.typbasetype = 'pg_catalog.text'::pg_catalog.regtype
                    and not exists (
                        select from pg_catalog.pg_constraint as k where k.contypid = d.oid and k.contype = 'c'
                    )
            )
        )
        and not exists (
            select from pg_catalog.pg_constraint as k
            where k.conrelid = c.oid and k.contype in ('c', 'f') and c.attnum = any(k.conkey)
        )
    union all
    select k.conrelid, k.relname, null, 'foreign_key_index', 'error',
        'foreign key ' || k.conname || ' of ' || k.relname
        || ' has no index on its columns: deletes on the referenced table would scan ' || k.relname, k.oid, null
    from con as k
    where k.contype = 'f'
        and not exists (
            select from pg_catalog.pg_index as i
            where i.indrelid = k.conrelid and i.indpred is null
                and (
                    select pg_catalog.array_agg(x order by x)
                    from pg_catalog.unnest((i.indkey::int2[])[0:pg_catalog.cardinality(k.conkey) - 1]) as x
                ) = (select pg_catalog.array_agg(y order by y) from pg_catalog.unnest(k.conkey) as y)
        )
    union all
    select k.conrelid, k.relname, null, 'foreign_key_on_delete', 'warning',
        'foreign key ' || k.conname || ' of ' || k.relname
        || ' does not say what happens on delete: add on delete restrict, cascade or set null', k.oid, null
    from con as k
    where k.contype = 'f' and k.confdeltype = 'a'
    union all
    select k.conrelid, k.relname, null, 'constraint_name', 'warning',
        'constraint ' || k.conname || ' of ' || k.relname || ' has a generated or unconventional name: '
        || case k.contype
            when 'p' then 'name it ' || k.relname || '_pkey'
            when 'f' then 'end it in _fkey'
            when 'u' then 'end it in _key'
            else 'name a CHECK for the rule it states (e.g. email_is_valid)'
        end,
        k.oid, null
    from con as k
    where (k.contype = 'p' and k.conname <> k.relname || '_pkey')
        or (k.contype = 'f' and k.conname !~ '_fkey$')
        or (k.contype = 'u' and k.conname !~ '_key$')
        or (k.contype = 'c' and k.conname ~ '_check\d*$')
    union all
    select r.oid, r.relname, null, 'updated_at_trigger', 'warning',
        'table ' || r.relname || ' has updated_at but no before insert or update trigger calling '
        || 'toolsdb_private.tg__timestamps() (name it _100_timestamps)', null, null
    from rel as r
    where r.relkind in ('r', 'p')
        and exists (
            select from pg_catalog.pg_attribute as a
            where a.attrelid = r.oid and a.attname = 'updated_at' and not a.attisdropped
        )
        and not exists (
            select from pg_catalog.pg_trigger as t
            where t.tgrelid = r.oid and not t.tgisinternal
                and t.tgfoid = pg_catalog.to_regprocedure('toolsdb_private.tg__timestamps()')
                and t.tgtype & 2 = 2 and t.tgtype & (4 | 16) = (4 | 16)
        )
    union all
    select r.oid, r.relname, null, 'view_security_invoker', 'warning',
        'view ' || r.relname || ' runs with its owner''s rights: create it with (security_invoker = true)',
        null, null
    from rel as r
    inner join pg_catalog.pg_class as c on r.oid = c.oid
    where r.relkind = 'v' and not coalesce('security_invoker=true' = any(c.reloptions), false)
    union all
    select n.object_oid, n.object_name, n.column_name, 'snake_case', 'error',
        n.kind || ' ' || n.name || ' is not snake_case (lowercase letters, digits and _, under 63 bytes)',
        n.part_oid, n.column_number
    from (
        select r.oid as object_oid, r.relname as object_name, null as column_name, 'relation' as kind,
            r.relname as name, r.relname as checked, null::oid as part_oid, null::smallint as column_number
        from rel as r
        union all
        select c.oid, c.relname, c.attname, 'column', c.relname || '.' || c.attname, c.attname, null, c.attnum
        from col as c
        union all
        select k.conrelid, k.relname, null, 'constraint', k.conname, k.conname, k.oid, null from con as k
        union all
        select r.oid, r.relname, null, 'index', x.relname::text, x.relname::text, i.indexrelid, null
        from rel as r
        inner join pg_catalog.pg_index as i on r.oid = i.indrelid
        inner join pg_catalog.pg_class as x on i.indexrelid = x.oid
        union all
        select p.oid, p.proname, null, 'function', p.proname, p.proname, null, null
        from fn as p
    ) as n (object_oid, object_name, column_name, kind, name, checked, part_oid, column_number)
    where n.checked !~ '^_?[a-z][a-z0-9_]*$' or pg_catalog.octet_length(n.checked) >= 63
    union all
    select t.tgrelid, r.relname, null, 'trigger_name', 'warning',
        'trigger ' || t.tgname || ' on ' || r.relname
        || ' is not named _NNN_what (triggers fire in name order, e.g. _100_timestamps)', t.oid, null
    from pg_catalog.pg_trigger as t
    inner join rel as r on t.tgrelid = r.oid
    where not t.tgisinternal and t.tgname !~ '^_[0-9]{3}_[a-z][a-z0-9_]*$'
    union all
    select p.oid, p.proname, null, 'function_search_path', 'warning',
        'function ' || p.proname || ' does not pin search_path: add set search_path = ''''', null, null
    from fn as p
    inner join pg_catalog.pg_language as l on p.prolang = l.oid
    where (p.prosecdef or l.lanname = 'plpgsql')
        and not exists (
            select from pg_catalog.unnest(coalesce(p.proconfig, '{}')) as cfg where cfg like 'search\_path=%'
        )
$function$;

comment on function toolsdb_private.convention_findings(regnamespace[]) is
'Findings of the schema conventions over every table, view, column, constraint, index, trigger and '
'function of the given namespaces: (object, column, rule, severity, message, and the constraint, '
'trigger or index and the column number a finding is about). Used by '
'toolsdb.validate_schema() on its scratch schema, and by the catalog tests on toolsdb itself.';

-- ---------------------------------------------------------------------------
-- Running the statements, as toolsdb_validator, always rolled back
-- ---------------------------------------------------------------------------

create or replace function toolsdb_private.validate_execute(statements text[], lines integer[])
returns jsonb
language plpgsql
volatile
security definer
set search_path = toolsdb_scratch, toolsdb, pg_catalog, pg_temp
set lock_timeout = '1s'
set check_function_bodies = on
set standard_conforming_strings = on
as $function$
-- Owned by toolsdb_validator, which may create only in toolsdb_scratch:
-- a statement cannot change a toolsdb table, and whatever it makes is
-- undone with the subtransaction below, which always ends in a rollback.
-- Unqualified names resolve in the scratch schema first, then in toolsdb.
-- standard_conforming_strings is pinned on: the lexer split the script
-- with it on, so the server must read its strings the same way.
declare
    findings jsonb := '[]';
    -- Which statement made what: 'o<oid>' for relations, functions,
    -- constraints and triggers, 'a<relation oid>.<attnum>' for columns.
    made jsonb := '{}';
    statement_no integer;
    failed boolean := false;
    error_message text;
    error_state text;
    error_hint text;
    near_token text;
    found_at integer;
    needle text;
    finding record;
    source_statement integer;
    finding_line integer;
    -- What the server reads each statement as (its command tag): the kinds
    -- toolsdb_private.validation_refusal() lets through, and nothing else.
    definition_tags constant text[] := array[
        'CREATE TABLE', 'CREATE INDEX', 'CREATE VIEW', 'CREATE TYPE', 'CREATE DOMAIN', 'CREATE SEQUENCE',
        'CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE TRIGGER', 'CREATE STATISTICS', 'CREATE POLICY',
        'ALTER TABLE', 'ALTER INDEX', 'ALTER SEQUENCE', 'ALTER VIEW', 'ALTER TYPE', 'ALTER DOMAIN',
        'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER TRIGGER', 'ALTER STATISTICS', 'ALTER POLICY', 'COMMENT'
    ];
    probe refcursor;
    probe_error text[];
    server_tag text;
    routine text;
    -- The time the validation may take, checked after each statement
    -- (statement_timeout set inside a running statement does not apply to
    -- it), and the time it may go on once it holds a lock on a table outside
    -- the scratch schema (the application waits on it). The settings
    -- toolsdb.validate_budget_ms and toolsdb.validate_lock_budget_ms may
    -- only lower them.
    started constant timestamptz := pg_catalog.clock_timestamp();
    budget constant interval := pg_catalog.make_interval(secs => least(
        coalesce(
            pg_catalog.substring(pg_catalog.current_setting('toolsdb.validate_budget_ms', true), '^\s*(\d{1,9})\s*$')::integer,
            20000
        ),
        20000
    ) / 1000.0);
    lock_budget constant interval := pg_catalog.make_interval(secs => least(
        coalesce(
            pg_catalog.substring(
                pg_catalog.current_setting('toolsdb.validate_lock_budget_ms', true), '^\s*(\d{1,9})\s*$'
            )::integer,
            1000
        ),
        1000
    ) / 1000.0);
    locks_before oid[];
    locked_table text;
    locked_since timestamptz;
begin
    select pg_catalog.array_agg(l.relation) into locks_before
    from pg_catalog.pg_locks as l
    where l.pid = pg_catalog.pg_backend_pid() and l.locktype = 'relation';
    begin
        for statement_no in 1 .. coalesce(pg_catalog.array_length(statements, 1), 0) loop
            -- What the server reads: opening a cursor parses the statement
            -- as EXECUTE would, and stops before running anything unless it
            -- is one query (which is refused). "cannot open X query as
            -- cursor" names the kind X; "multi-query" means that the lexer
            -- and the server disagree on where statements end.
            server_tag := null;
            probe_error := null;
            begin
                open probe for execute statements[statement_no];
                close probe;
                server_tag := 'SELECT';
            exception
                when invalid_cursor_definition then
                    get stacked diagnostics error_message = message_text;
                    server_tag := coalesce(pg_catalog.substring(error_message, '^cannot open (.*) query as cursor$'), '');
                when others then
                    -- It does not parse (or one of several statements does not
                    -- analyse): the error is the finding, and nothing runs.
                    get stacked diagnostics
                        error_message = message_text, error_state = returned_sqlstate, error_hint = pg_exception_hint;
                    probe_error := array[error_state, error_message, error_hint];
            end;
            if server_tag is not null and server_tag <> all(definition_tags) then
                raise exception 'validate_schema refuses statement % (line %): %', statement_no, lines[statement_no],
                    case when server_tag = '' then 'the server does not read it as one statement'
                        else server_tag || ' is not a definition (as the server reads it)' end
                    using errcode = 'insufficient_privilege',
                    hint = 'only definitions are validated: CREATE TABLE, INDEX, VIEW, TYPE, DOMAIN, SEQUENCE, '
                    || 'FUNCTION, TRIGGER; ALTER of those; COMMENT ON';
            end if;
            begin
                if probe_error is not null then
                    raise exception using errcode = probe_error[1], message = probe_error[2], hint = coalesce(probe_error[3], '');
                end if;
                execute statements[statement_no];
            exception
                when lock_not_available or deadlock_detected or serialization_failure or query_canceled then
                    -- Transient: the script is not at fault, so there is no
                    -- report to keep; the caller sees the error and may retry.
                    raise;
                when others then
                    get stacked diagnostics
                        error_message = message_text, error_state = returned_sqlstate, error_hint = pg_exception_hint;
                    -- "... at or near "x"": the line of x within the statement.
                    near_token := pg_catalog.substring(error_message, 'at or near "(.*)"$');
                    found_at := coalesce(pg_catalog.strpos(statements[statement_no], near_token), 0);
                    findings := findings || pg_catalog.jsonb_build_object(
                        'rule', case when error_state = '42601' then 'syntax' else 'execute' end,
                        'severity', 'error',
                        'line', lines[statement_no] + toolsdb_private.newlines_before(statements[statement_no], found_at),
                        'message', error_message || coalesce('; ' || nullif(error_hint, ''), '')
                        || ' (SQLSTATE ' || error_state || ')'
                        || case
                            when error_state = '42501' and error_message ~ '^permission denied for (function|procedure)' then
                                '; the functions a script defines are not run while it is validated, and PostgreSQL '
                                || 'would run this one now (a default of ADD COLUMN, a partition bound, or a call with '
                                || 'constant arguments that it computes ahead): validate the function on its own'
                            when error_state = '42501' then
                                '; statements run as toolsdb_validator, which creates only in its scratch schema '
                                || '(leave names unqualified) and may reference toolsdb tables'
                            else ''
                        end
                        || case when statement_no < pg_catalog.array_length(statements, 1)
                            then '; the statements after it were not run' else '' end,
                        'object', null
                    );
                    failed := true;
            end;
            exit when failed;
            if server_tag in ('CREATE FUNCTION', 'CREATE PROCEDURE') then
                -- The script's functions are defined, never run: PostgreSQL
                -- evaluates some expressions while defining (an ADD COLUMN
                -- default, a partition bound, calls with constant arguments
                -- in an index or generated column), and must not run the
                -- script's code there. Trigger functions keep EXECUTE, which
                -- CREATE TRIGGER needs; they run only on rows, and no row is
                -- ever written.
                for routine in
                    select p.oid::pg_catalog.regprocedure::text
                    from pg_catalog.pg_proc as p
                    where p.pronamespace = 'toolsdb_scratch'::regnamespace
                        and p.prorettype not in ('pg_catalog.trigger'::regtype, 'pg_catalog.event_trigger'::regtype)
                        and pg_catalog.has_function_privilege(p.oid, 'EXECUTE')
                loop
                    execute pg_catalog.format('revoke execute on routine %s from public, toolsdb_validator', routine);
                end loop;
            end if;
            if locked_since is null then
                select pg_catalog.format('%I.%I', n.nspname, c.relname) into locked_table
                from pg_catalog.pg_locks as l
                inner join pg_catalog.pg_class as c on l.relation = c.oid
                inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
                where l.pid = pg_catalog.pg_backend_pid() and l.locktype = 'relation'
                    and n.nspname not in ('toolsdb_scratch', 'pg_catalog', 'pg_toast') and n.nspname !~ '^pg_(toast_)?temp_'
                    and l.relation <> all(coalesce(locks_before, '{}'))
                order by c.relkind not in ('r', 'p'), c.relname
                limit 1;
                if found then
                    locked_since := pg_catalog.clock_timestamp();
                end if;
            end if;
            if statement_no < pg_catalog.array_length(statements, 1) and (
                pg_catalog.clock_timestamp() - started > budget
                or pg_catalog.clock_timestamp() - locked_since > lock_budget
            ) then
                raise exception 'validate_schema: stopped after statement % of %: %', statement_no,
                    pg_catalog.array_length(statements, 1),
                    case when pg_catalog.clock_timestamp() - started > budget
                        then 'the validation took more than ' || budget::text
                        else 'it has held a lock on ' || locked_table || ' for more than ' || lock_budget::text
                            || ', which the application waits on'
                    end
                    using errcode = 'query_canceled',
                    hint = 'validate the script in smaller parts, and put the statements that reference toolsdb '
                    || 'tables last';
            end if;
            select made || coalesce(pg_catalog.jsonb_object_agg(n.made_key, statement_no), '{}')
            into made
            from (
                select 'o' || c.oid from pg_catalog.pg_class as c
                where c.relnamespace = 'toolsdb_scratch'::regnamespace
                union all
                select 'o' || p.oid from pg_catalog.pg_proc as p
                where p.pronamespace = 'toolsdb_scratch'::regnamespace
                union all
                select 'o' || k.oid from pg_catalog.pg_constraint as k
                inner join pg_catalog.pg_class as c on k.conrelid = c.oid
                where c.relnamespace = 'toolsdb_scratch'::regnamespace
                union all
                select 'o' || t.oid from pg_catalog.pg_trigger as t
                inner join pg_catalog.pg_class as c on t.tgrelid = c.oid
                where c.relnamespace = 'toolsdb_scratch'::regnamespace and not t.tgisinternal
                union all
                select 'a' || a.attrelid || '.' || a.attnum from pg_catalog.pg_attribute as a
                inner join pg_catalog.pg_class as c on a.attrelid = c.oid
                where c.relnamespace = 'toolsdb_scratch'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
                    and a.attnum > 0 and not a.attisdropped
            ) as n (made_key)
            where not made ? n.made_key;
        end loop;
        if not failed then
            for finding in
                select * from toolsdb_private.convention_findings(array['toolsdb_scratch'::regnamespace])
            loop
                source_statement := coalesce(
                    made ->> ('a' || finding.object_oid || '.' || finding.column_number),
                    made ->> ('o' || finding.part_oid),
                    made ->> ('o' || finding.object_oid)
                )::integer;
                finding_line := coalesce(lines[source_statement], 1);
                if finding.column_name is not null and source_statement is not null then
                    -- The column's name where a definition starts ("(", "," or a new
                    -- line before it), else anywhere; as a literal, not a pattern.
                    needle := pg_catalog.regexp_replace(
                        pg_catalog.quote_ident(finding.column_name), '([^[:alnum:]_ ])', '\\\1', 'g'
                    );
                    found_at := pg_catalog.regexp_instr(
                        statements[source_statement], '(?:^|[(,]|\n)\s*(' || needle || ')(?:[^[:alnum:]_$]|$)',
                        1, 1, 0, 'i', 1
                    );
                    if found_at = 0 then
                        found_at := pg_catalog.regexp_instr(
                            statements[source_statement], '(?:^|[^[:alnum:]_$])(' || needle || ')(?:[^[:alnum:]_$]|$)',
                            1, 1, 0, 'i', 1
                        );
                    end if;
                    finding_line := finding_line + toolsdb_private.newlines_before(statements[source_statement], found_at);
                end if;
                findings := findings || pg_catalog.jsonb_build_object(
                    'rule', finding.rule,
                    'severity', finding.severity,
                    'line', finding_line,
                    'message', finding.message,
                    'object', finding.object_name || coalesce('.' || finding.column_name, '')
                );
            end loop;
        end if;
        raise exception 'validation done' using errcode = 'TV000';
    exception
        when sqlstate 'TV000' then
            null;  -- the rollback of everything the statements did
    end;
    return coalesce(
        (
            select pg_catalog.jsonb_agg(f order by (f ->> 'line')::integer, f ->> 'severity', f ->> 'rule', f ->> 'object')
            from pg_catalog.jsonb_array_elements(findings) as f
        ),
        '[]'
    );
end;
$function$;

comment on function toolsdb_private.validate_execute(text[], integer[]) is
'Runs the statements of a script as toolsdb_validator in a subtransaction that always rolls back, '
'and returns the findings: the first statement that fails (rule syntax or execute), else the '
'conventions of what they made (convention_findings). Called by toolsdb.validate_schema() only.';

-- Owned by toolsdb_validator: it runs with that role's rights, never the owner's.
-- (A new owner needs CREATE on the function's schema for the moment of the change.)
do $owner$
begin
    if (
        select p.proowner from pg_catalog.pg_proc as p
        where p.oid = 'toolsdb_private.validate_execute(text[], integer[])'::regprocedure
    ) <> 'toolsdb_validator'::regrole then
        grant create on schema toolsdb_private to toolsdb_validator;
        alter function toolsdb_private.validate_execute(text[], integer[]) owner to toolsdb_validator;
        revoke create on schema toolsdb_private from toolsdb_validator;
    end if;
end
$owner$;

-- ---------------------------------------------------------------------------
-- The entry point
-- ---------------------------------------------------------------------------

create or replace function toolsdb_private.evaluated_call(skeleton text)
returns text
language sql
stable
strict
set search_path = ''
as $function$
    -- The first function a statement calls with constant arguments only
    -- (literals, casts, signs, parentheses), other than a few cheap ones, or
    -- null. PostgreSQL computes such a call while defining, where it
    -- evaluates an expression or simplifies it ahead (constant folding): an
    -- ADD COLUMN default, a partition key, an index, generated column or
    -- constraint expression. Keywords and type names before "(" are no calls.
    select c.name
    from pg_catalog.regexp_matches(
        pg_catalog.lower(skeleton),
        '(?:^|[^a-z0-9_$.:"])((?:"?[a-z_][a-z0-9_$]*"?\s*\.\s*)?"?[a-z_][a-z0-9_$]*"?)\s*\('
        || '((?:\s|(?:[enbx]|u&)?''''|[-+()]|[0-9][0-9a-z_.]*|,|\m(?:true|false|null)\M|::\s*[a-z_][a-z0-9_]*)*)\)',
        'g'
    ) with ordinality as m (found, n)
    cross join lateral (
        select pg_catalog.regexp_replace(pg_catalog.replace(m.found[1], '"', ''), '^pg_catalog\s*\.\s*', '') as name
    ) as c
    where c.name not in (
        -- keywords before "("
        'in', 'values', 'check', 'default', 'unique', 'key', 'exists', 'any', 'all', 'some', 'row', 'array', 'and',
        'or', 'not', 'as', 'on', 'using', 'include', 'with', 'where', 'references', 'table', 'index', 'by', 'from',
        'to', 'varying', 'precision', 'zone', 'identity', 'distinct', 'exclude', 'filter', 'over', 'character',
        'decimal', 'dec', 'float', 'nchar',
        -- cheap functions, common in defaults
        'now', 'current_setting', 'nextval', 'gen_random_uuid', 'uuidv4', 'uuidv7', 'clock_timestamp',
        'statement_timestamp', 'transaction_timestamp', 'random', 'coalesce', 'nullif', 'greatest', 'least'
    )
        -- a type with its modifier: varchar(20), numeric(10, 2), vector(3)
        and not exists (
            select from pg_catalog.pg_type as t where t.typname = pg_catalog.substring(c.name, '([^.\s]*)$')
        )
    order by m.n
    limit 1;
$function$;

comment on function toolsdb_private.evaluated_call(text) is
'The first function a statement (its skeleton from sql_statements) calls with constant arguments '
'only, other than a few cheap ones (now, current_setting, nextval, gen_random_uuid, ...), or null: '
'PostgreSQL computes such a call while defining (an ADD COLUMN default, constant folding of an '
'index, generated column, partition key or constraint expression), so the validator refuses it.';

create or replace function toolsdb_private.validation_refusal(
    skeleton text, script_defines_functions boolean default false
)
returns text
language plpgsql
stable
strict
set search_path = ''
as $function$
-- Null when a statement (its skeleton from sql_statements) may be run by
-- the validator, else why not. Only statements that define things: none
-- reads or writes rows, and none runs a query (CREATE TABLE AS, a
-- materialized view) or code (DO, CALL, SELECT f()). PostgreSQL evaluates
-- two kinds of expression while defining: a non-volatile default of ADD
-- COLUMN (once, the "fast default") and partition bounds; in a script that
-- also defines functions, those could call them, so they are refused there.
declare
    head text := pg_catalog.lower(skeleton);
    flat text;
    bound text;
    called text;
begin
    if script_defines_functions
        and (
            (head ~ '^alter table ' and head ~ '\madd\M' and head !~ '\madd constraint\M')
            or head ~ '\mfor values\M'
        ) then
        return 'ALTER TABLE ... ADD COLUMN or a partition bound would evaluate its expressions now, and this script '
            || 'defines functions or domains whose code they could run; validate those in a script of their own';
    end if;
    if head ~ '\mfor values\M' then
        -- A bound is evaluated as the partition is defined, whatever it
        -- calls (pg_sleep, an advisory lock): literals only.
        -- (what follows the bound: PARTITION BY, USING, TABLESPACE and
        -- storage parameters name = value)
        bound := pg_catalog.regexp_replace(
            pg_catalog.substring(head, '\mfor values\M(.*)$'), '\m(partition by|using|tablespace)\M.*$', ''
        );
        if pg_catalog.regexp_replace(
            bound,
            '(?:[enbx]|u&)?''''|[-+]?[0-9][0-9a-z_.]*|::\s*[a-z_][a-z0-9_]*|[(),\s]'
            || '|\m(?:from|to|in|with|minvalue|maxvalue|null|true|false|modulus|remainder)\M'
            || '|\m[a-z_][a-z0-9_.]*\s*=\s*(?:''''|[0-9.]+|[a-z_]+)',
            '',
            'g'
        ) <> '' then
            return 'a partition bound is evaluated when it is defined: write it with literals only (no function, '
                || 'operator or subquery), e.g. for values from (''2024-01-01'') to (''2024-02-01'')';
        end if;
    end if;
    if head ~ '^(create (unique )?index|alter table|alter domain) '
        or (head ~ '^create ' and head ~ '\m(generated|partition by)\M') then
        called := toolsdb_private.evaluated_call(skeleton);
        if called is not null then
            return 'calls ' || called || '() with constant arguments, which PostgreSQL computes while defining (an '
                || 'ADD COLUMN default, or an index, generated column, partition key or constraint expression it '
                || 'simplifies ahead): write the value itself';
        end if;
    end if;
    if head ~ '^alter ' and head ~ '\m(owner to|set schema)\M' then
        return 'ALTER ... OWNER TO / SET SCHEMA is not a definition';
    end if;
    if head ~ '^create (or replace )?(temp |temporary |unlogged )?table ' then
        -- CREATE TABLE ... AS runs its query: look for a top-level AS.
        -- (what is outside every parenthesis, in one pass over the statement)
        select pg_catalog.string_agg(p.piece, '' order by p.n)
        into flat
        from (
            select
                r.m[1] as piece, r.n,
                pg_catalog.sum(case r.m[1] when '(' then 1 when ')' then -1 else 0 end) over (order by r.n) as depth
            from pg_catalog.regexp_matches(head, '[()]|[^()]+', 'g') with ordinality as r (m, n)
        ) as p
        where p.depth <= 0 and p.piece not in ('(', ')');
        if flat ~ '\m(as|execute)\M' then
            return 'CREATE TABLE ... AS runs a query';
        end if;
        return null;
    end if;
    if head ~ '^create (unique )?index '
        or head ~ '^create (or replace )?(temp |temporary )?(recursive )?view '
        or head ~ '^create (type|domain|statistics|policy) '
        or head ~ '^create (temp |temporary |unlogged )?sequence '
        or head ~ '^create (or replace )?(function|procedure) '
        or head ~ '^create (or replace )?(constraint )?trigger '
        or head ~ '^alter (table|index|sequence|view|type|domain|function|procedure|trigger|statistics|policy) '
        or head ~ '^comment on ' then
        return null;
    end if;
    return pg_catalog.upper(pg_catalog.substring(head, '^(\S+(?: \S+)?)')) || ' is not a definition';
end;
$function$;

comment on function toolsdb_private.validation_refusal(text, boolean) is
'Why toolsdb.validate_schema() refuses a statement (from its skeleton), or null when it is one it '
'runs: CREATE TABLE (not AS), INDEX, VIEW, TYPE, DOMAIN, SEQUENCE, FUNCTION, PROCEDURE, TRIGGER, '
'STATISTICS, POLICY; ALTER of those; COMMENT ON. In a script that defines functions, also refuses '
'ADD COLUMN and partition bounds, whose expressions PostgreSQL evaluates while defining.';

create or replace function toolsdb_private.validation_report(
    stored toolsdb.schema_validations, cached boolean, strict boolean
)
returns jsonb
language sql
stable
set search_path = ''
as $function$
    with shown as (
        select case
            when not strict and f ->> 'severity' = 'error' and f ->> 'rule' not in ('syntax', 'execute')
                then f || '{"severity": "warning"}'::jsonb
            else f
        end as f, n
        from pg_catalog.jsonb_array_elements(stored.findings) with ordinality as e (f, n)
    )
    select pg_catalog.jsonb_build_object(
        'valid', not exists (select from shown where f ->> 'severity' = 'error'),
        'statement_hash', stored.statement_hash, 'cached', cached, 'strict', strict,
        'statements', stored.statement_count,
        'errors', (select pg_catalog.count(*) from shown where f ->> 'severity' = 'error'),
        'warnings', (select pg_catalog.count(*) from shown where f ->> 'severity' = 'warning'),
        'findings', coalesce((select pg_catalog.jsonb_agg(f order by n) from shown), '[]'),
        'validated_at', stored.validated_at, 'rules_version', stored.rules_version
    );
$function$;

comment on function toolsdb_private.validation_report(toolsdb.schema_validations, boolean, boolean) is
'The report toolsdb.validate_schema() returns, from a stored row of toolsdb.schema_validations; '
'cached says whether the row was looked up (true) or just made (false). Unless strict, a finding of '
'the house conventions is a warning whatever its rule''s severity: only syntax and execution errors '
'(rules syntax and execute) make a script invalid. The stored row keeps every rule''s own severity.';

create or replace function toolsdb.validate_schema(
    script text, refresh boolean default false, strict boolean default false
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $function$
declare
    -- Bump when a rule changes: older reports are then not reused.
    current_rules_version constant integer := 1;
    script_hash text;
    stored toolsdb.schema_validations;
    statements text[];
    lines integer[];
    skeletons text[];
    statement_no integer;
    reason text;
    defines_functions boolean;
    findings jsonb;
    advisory_before boolean;
    errors integer;
    warnings integer;
begin
    if script is null or pg_catalog.btrim(script, E' \t\r\n') = '' then
        raise exception 'validate_schema: the script is empty' using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.length(script) > 1000000 then
        raise exception 'validate_schema: the script has % characters, more than 1000000', pg_catalog.length(script)
            using errcode = 'program_limit_exceeded';
    end if;
    -- On Citus the statements would run through Citus, which sends DDL to the
    -- workers and judges keys otherwise than one node does (docs/citus.md).
    if exists (select from pg_catalog.pg_extension where extname = 'citus') then
        raise exception 'validate_schema: not on a Citus database, whose verdict would not be one node''s'
            using errcode = 'feature_not_supported',
            hint = 'validate against a single PostgreSQL migrated with the same toolsdb (docs/citus.md)';
    end if;
    script_hash := pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(script, 'UTF8')), 'hex');
    if not coalesce(refresh, false) then
        select v.* into stored
        from toolsdb.schema_validations as v
        where v.statement_hash = script_hash and v.rules_version = current_rules_version;
        if found then
            return toolsdb_private.validation_report(stored, true, coalesce(strict, false));
        end if;
    end if;

    select
        pg_catalog.array_agg(s.statement order by s.statement_no),
        pg_catalog.array_agg(s.line order by s.statement_no),
        pg_catalog.array_agg(s.skeleton order by s.statement_no)
    into statements, lines, skeletons
    from toolsdb_private.sql_statements(script) as s;
    if statements is null then
        raise exception 'validate_schema: the script holds only comments' using errcode = 'invalid_parameter_value';
    end if;
    -- (a domain's CHECK runs too, where a value is coerced to it)
    defines_functions := exists (
        select from pg_catalog.unnest(skeletons) as k (skeleton)
        where k.skeleton ~* '^(create (or replace )?(function|procedure|domain)|alter domain) '
    );
    for statement_no in 1 .. pg_catalog.cardinality(statements) loop
        reason := toolsdb_private.validation_refusal(skeletons[statement_no], defines_functions);
        if reason is not null then
            raise exception 'validate_schema refuses statement % (line %): %', statement_no, lines[statement_no], reason
                using errcode = 'insufficient_privilege',
                hint = 'only definitions are validated: CREATE TABLE, INDEX, VIEW, TYPE, DOMAIN, SEQUENCE, '
                || 'FUNCTION, TRIGGER; ALTER of those; COMMENT ON';
        end if;
    end loop;

    -- Nothing the statements run can take a session-level advisory lock (a
    -- rollback does not undo one); should one appear all the same, it goes.
    advisory_before := exists (
        select from pg_catalog.pg_locks as l
        where l.pid = pg_catalog.pg_backend_pid() and l.locktype = 'advisory'
    );
    begin
        findings := toolsdb_private.validate_execute(statements, lines);
    exception
        when others then
            if not advisory_before then
                perform pg_catalog.pg_advisory_unlock_all();
            end if;
            raise;
    end;
    if not advisory_before then
        perform pg_catalog.pg_advisory_unlock_all();
    end if;
    select
        pg_catalog.count(*) filter (where f ->> 'severity' = 'error'),
        pg_catalog.count(*) filter (where f ->> 'severity' = 'warning')
    into errors, warnings
    from pg_catalog.jsonb_array_elements(findings) as f;

    insert into toolsdb.schema_validations as v (
        statement_hash, script, statement_count, valid, error_count, warning_count, findings, rules_version
    )
    values (
        script_hash, script, pg_catalog.cardinality(statements), errors = 0, errors, warnings, findings,
        current_rules_version
    )
    on conflict on constraint schema_validations_pkey do update
    set statement_count = excluded.statement_count,
        valid = excluded.valid,
        error_count = excluded.error_count,
        warning_count = excluded.warning_count,
        findings = excluded.findings,
        rules_version = excluded.rules_version,
        server_version_num = excluded.server_version_num,
        validated_by = excluded.validated_by,
        validated_at = excluded.validated_at,
        validated_as = excluded.validated_as
    returning v.* into stored;
    return toolsdb_private.validation_report(stored, false, coalesce(strict, false));
end;
$function$;

comment on function toolsdb.validate_schema(text, boolean, boolean) is
'Validates a script of definitions, e.g. select toolsdb.validate_schema(''create table t (...)''): '
'refuses anything but CREATE, ALTER and COMMENT (42501); runs the statements in a scratch schema, '
'always rolled back, so types, references and defaults are real; checks the conventions. Returns '
'{valid, statement_hash, cached, strict, statements, errors, warnings, findings: [{rule, severity, '
'line, message, object}]} and keeps it in toolsdb.schema_validations: the same script again is a '
'lookup (refresh => true runs it again). Syntax and execution errors make a script invalid; the '
'house conventions are warnings, and errors where their rule says so with strict => true. Refused '
'on a Citus database (0A000).';

-- ---------------------------------------------------------------------------
-- Who reads the reports
-- ---------------------------------------------------------------------------

-- Written only by validate_schema() (the application may only read:
-- repeatable/99_grants.sql); an application login reads the reports it
-- made, by its login (session_user, which SET ROLE does not change), and
-- toolsdb_readonly reads them all. The script of another login is not the
-- application's to read. Only where it differs, like isolate_rows().
do $reports$
begin
    if not (
        select c.relrowsecurity from pg_catalog.pg_class as c where c.oid = 'toolsdb.schema_validations'::regclass
    ) then
        alter table toolsdb.schema_validations enable row level security;
    end if;
    if not exists (
        select from pg_catalog.pg_policy as p
        where p.polrelid = 'toolsdb.schema_validations'::regclass and p.polname = 'own_reports' and p.polcmd = 'r'
            and p.polpermissive and p.polroles = array['toolsdb_app'::regrole::oid]
            -- (as PostgreSQL shows it back: 16 and later without the cast)
            and pg_catalog.pg_get_expr(p.polqual, p.polrelid) in (
                '(validated_as = SESSION_USER)', '(validated_as = (SESSION_USER)::text)'
            )
    ) then
        drop policy if exists own_reports on toolsdb.schema_validations;
        create policy own_reports on toolsdb.schema_validations for select to toolsdb_app
        using (validated_as = session_user);
    end if;
    if not exists (
        select from pg_catalog.pg_policy as p
        where p.polrelid = 'toolsdb.schema_validations'::regclass and p.polname = 'readonly_reads_all'
            and p.polcmd = 'r' and p.polpermissive and p.polroles = array['toolsdb_readonly'::regrole::oid]
            and pg_catalog.pg_get_expr(p.polqual, p.polrelid) = 'true'
    ) then
        drop policy if exists readonly_reads_all on toolsdb.schema_validations;
        create policy readonly_reads_all on toolsdb.schema_validations for select to toolsdb_readonly using (true);
    end if;
end
$reports$;
