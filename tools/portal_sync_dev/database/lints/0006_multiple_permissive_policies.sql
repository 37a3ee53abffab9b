-- Two or more permissive policies of a table that apply to the same role for the same command:
-- each is evaluated for every row. A policy `to public` applies to every role; roles that
-- bypass row-level security, `pg_*` roles and Supabase's `supabase*admin` roles are left out.
with policy_role_command as (
    select n.nspname, c.relname, r.rolname, command, p.polname
    from pg_catalog.pg_policy p
    join pg_catalog.pg_class c on c.oid = p.polrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    join pg_catalog.pg_roles r on r.oid = any (p.polroles) or p.polroles = array[0::oid]
    cross join lateral unnest(
        case p.polcmd
            when 'r' then array['SELECT']
            when 'a' then array['INSERT']
            when 'w' then array['UPDATE']
            when 'd' then array['DELETE']
            else array['SELECT', 'INSERT', 'UPDATE', 'DELETE']
        end
    ) command
    where c.relkind = 'r'
        and p.polpermissive
        and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
        and not exists (
            select from pg_catalog.pg_depend d
            where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
        )
        and r.rolname not like 'pg\_%'
        and r.rolname not like 'supabase%admin'
        and not r.rolbypassrls
)
select
    format(
        'Table `%s.%s` has multiple permissive policies for role `%s` for action `%s`. Policies include `%s`',
        nspname, relname, rolname, command, array_agg(polname order by polname)
    ) as detail,
    format('multiple_permissive_policies_%s_%s_%s_%s', nspname, relname, rolname, command) as cache_key
from policy_role_command
group by nspname, relname, rolname, command
having count(*) > 1
order by nspname, relname, rolname, command
