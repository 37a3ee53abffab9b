-- Views and materialized views in an exposed schema that read `auth.users` and that the API
-- roles may select: a materialized view has no row-level security at all, a view runs as its
-- owner unless it is `security_invoker`, and a `security_invoker` view is only as safe as
-- `auth.users`' own row-level security.
with auth_users as (
    select c.oid, c.relrowsecurity
    from pg_catalog.pg_class c
    where c.oid = 'auth.users'::regclass
)
select distinct
    format(
        'View/Materialized View `%s.%s` may expose `auth.users` data to anon or authenticated roles.',
        n.nspname, v.relname
    ) as detail,
    format('auth_users_exposed_%s_%s', n.nspname, v.relname) as cache_key
from auth_users u
join pg_catalog.pg_depend d
    on d.refclassid = 'pg_catalog.pg_class'::regclass and d.refobjid = u.oid and d.deptype = 'n'
join pg_catalog.pg_rewrite r on d.classid = 'pg_catalog.pg_rewrite'::regclass and r.oid = d.objid
join pg_catalog.pg_class v on v.oid = r.ev_class
join pg_catalog.pg_namespace n on n.oid = v.relnamespace
where n.nspname in (
        select trim(s) from unnest(string_to_array(current_setting('pgrst.db_schemas', true), ',')) s
    )
    and (
        pg_catalog.has_table_privilege('anon', v.oid, 'SELECT')
        or pg_catalog.has_table_privilege('authenticated', v.oid, 'SELECT')
    )
    and (
        v.relkind = 'm'
        or (
            v.relkind = 'v'
            and (
                not (
                    lower(coalesce(v.reloptions::text, '{}'))::text[] && array[
                        'security_invoker=1', 'security_invoker=true',
                        'security_invoker=yes', 'security_invoker=on'
                    ]
                )
                or not u.relrowsecurity
            )
        )
    )
order by 2
