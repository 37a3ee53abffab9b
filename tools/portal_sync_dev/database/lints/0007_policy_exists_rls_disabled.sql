-- Tables that have policies but no row-level security: the policies do nothing.
select
    format(
        'Table `%s.%s` has RLS policies but RLS is not enabled on the table. Policies include %s.',
        n.nspname, c.relname, array_agg(p.polname order by p.polname)
    ) as detail,
    format('policy_exists_rls_disabled_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_policy p
join pg_catalog.pg_class c on c.oid = p.polrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r'
    and not c.relrowsecurity
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and not exists (
        select from pg_catalog.pg_depend d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
    )
group by n.nspname, c.relname
order by n.nspname, c.relname
