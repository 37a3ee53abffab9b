-- Functions without their own `search_path` setting: what their unqualified names resolve to
-- depends on the caller's `search_path` (for a SECURITY DEFINER function, an attack).
select
    format('Function `%s.%s` has a role mutable search_path', n.nspname, p.proname) as detail,
    -- The source's hash tells overloads apart, as splinter's key does.
    format('function_search_path_mutable_%s_%s_%s', n.nspname, p.proname, md5(p.prosrc)) as cache_key
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
where n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and not exists (
        select from pg_catalog.pg_depend d
        where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
    )
    and not exists (
        select from unnest(coalesce(p.proconfig, '{}')) setting where setting like 'search\_path=%'
    )
order by n.nspname, p.proname, 2
