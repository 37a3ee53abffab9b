-- Tables with row-level security on and no policy: nobody but their owner and roles that
-- bypass row-level security sees a row (often intended: a table only the back end uses).
select
    format('Table `%s.%s` has RLS enabled, but no policies exist', n.nspname, c.relname) as detail,
    format('rls_enabled_no_policy_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r'
    and c.relrowsecurity
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and not exists (
        select from pg_catalog.pg_depend d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
    )
    and not exists (select from pg_catalog.pg_policy p where p.polrelid = c.oid)
order by n.nspname, c.relname
