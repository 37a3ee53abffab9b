-- Views in an exposed schema that the API roles may select and that are not
-- `security_invoker` (PostgreSQL 15+): they read their tables with the view owner's
-- privileges and row-level security, not the caller's.
select
    format('View `%s.%s` is defined with the SECURITY DEFINER property', n.nspname, c.relname) as detail,
    format('security_definer_view_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'v'
    and current_setting('server_version_num')::int >= 150000
    and n.nspname in (
        select trim(s) from unnest(string_to_array(current_setting('pgrst.db_schemas', true), ',')) s
    )
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and (
        pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
        or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT')
    )
    and not exists (
        select from pg_catalog.pg_depend d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
    )
    and not (
        lower(coalesce(c.reloptions::text, '{}'))::text[] && array[
            'security_invoker=1', 'security_invoker=true', 'security_invoker=yes', 'security_invoker=on'
        ]
    )
order by n.nspname, c.relname
