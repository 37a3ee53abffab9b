-- Permissive policies for the API roles (or every role) that let any row be changed: an
-- UPDATE, DELETE or ALL policy whose USING is always true (or absent), or a WITH CHECK that is
-- always true (or absent on INSERT, or absent on UPDATE/ALL with an always-true USING).
-- `using (true)` on SELECT is left alone: public read access is often meant.
-- "Always true" is `true` or `1=1`, in parentheses or not, as splinter recognises it.
with policy as (
    select
        n.nspname as schema_name,
        c.relname as table_name,
        p.polname as policy_name,
        (select array_agg(r::regrole::text order by r::regrole::text) from unnest(p.polroles) r)
            as roles,
        case p.polcmd
            when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE'
            when 'd' then 'DELETE' else 'ALL'
        end as command,
        p.polqual is null as no_using,
        p.polwithcheck is null as no_with_check,
        regexp_replace(lower(coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '')), '\s', '', 'g')
            in ('true', '(true)', '1=1', '(1=1)') as using_true,
        regexp_replace(lower(coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '')), '\s', '', 'g')
            in ('true', '(true)', '1=1', '(1=1)') as with_check_true
    from pg_catalog.pg_policy p
    join pg_catalog.pg_class c on c.oid = p.polrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r'
        and c.relrowsecurity
        and p.polpermissive
        and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
        and (
            p.polroles = array[0::oid]
            or exists (
                select from unnest(p.polroles) r where r::regrole::text in ('anon', 'authenticated')
            )
        )
),
verdict as (
    select
        policy.*,
        command in ('UPDATE', 'DELETE', 'ALL') and (using_true or no_using) as open_using,
        with_check_true
            or (no_with_check and command = 'INSERT')
            or (no_with_check and command in ('UPDATE', 'ALL') and using_true) as open_with_check
    from policy
)
select
    format(
        'Table `%s.%s` has an RLS policy `%s` for `%s` that allows unrestricted access%s. This effectively bypasses row-level security for %s.',
        schema_name, table_name, policy_name, command,
        case
            when open_using and open_with_check then ' (both USING and WITH CHECK are always true)'
            when open_using then ' (USING clause is always true)'
            else ' (WITH CHECK clause is always true)'
        end,
        array_to_string(roles, ', ')
    ) as detail,
    format('rls_policy_always_true_%s_%s_%s', schema_name, table_name, policy_name) as cache_key
from verdict
where open_using or open_with_check
order by schema_name, table_name, policy_name
