-- Tables, views, materialized views and foreign tables of which `authenticated` may select a
-- column: pg_graphql's introspection shows them (names, columns, relationships) to every
-- signed-in user, whatever row-level security then lets through. Runs only where pg_graphql is
-- installed (database_lint.py checks).
select
    format(
        '%s `%s.%s` is visible in the GraphQL schema because the `authenticated` role can `SELECT` it: every signed-in user sees it. Revoke `SELECT` from `authenticated` if it should not be discoverable to every account.',
        case c.relkind
            when 'r' then 'table' when 'v' then 'view' when 'm' then 'materialized view'
            else 'foreign table'
        end,
        n.nspname, c.relname
    ) as detail,
    format('pg_graphql_authenticated_table_exposed_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'v', 'm', 'f')
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and exists (
        select from pg_catalog.pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            and pg_catalog.has_column_privilege('authenticated', c.oid, a.attnum, 'SELECT')
    )
order by n.nspname, c.relname
