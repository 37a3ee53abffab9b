-- Tables in an exposed schema that the API roles may select, without row-level security:
-- every row is served to anyone holding the anon key (or any account).
select
    format('Table `%s.%s` is public, but RLS has not been enabled.', n.nspname, c.relname) as detail,
    format('rls_disabled_in_public_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r'
    and not c.relrowsecurity
    and (
        pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
        or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT')
    )
    and n.nspname in (
        select trim(s) from unnest(string_to_array(current_setting('pgrst.db_schemas', true), ',')) s
    )
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
order by n.nspname, c.relname
