-- Policies that call `auth.uid()`, `auth.jwt()`, `auth.role()`, `auth.email()` or
-- `current_setting()` once per row instead of once per statement (wrapped in a scalar
-- `(select ...)`, which the planner runs once as an init plan).
--
-- Adapted: splinter accepts a policy as soon as one call of a function is wrapped; this counts
-- the calls and the wrapped calls, so a policy with one wrapped and one bare call is reported.
-- The expressions are deparsed with `search_path = ''` (set by database_lint.py), so the `auth`
-- functions always appear schema-qualified. `realtime` is linted, as splinter does.
with policy as (
    select
        n.nspname as schema_name,
        c.relname as table_name,
        p.polname as policy_name,
        lower(coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '')) as qual,
        lower(coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '')) as with_check
    from pg_catalog.pg_policy p
    join pg_catalog.pg_class c on c.oid = p.polrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.relrowsecurity
        and (
            n.nspname = 'realtime'
            or n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
        )
)
select
    format(
        'Table `%s.%s` has a row level security policy `%s` that re-evaluates current_setting() or auth.<function>() for each row. This produces suboptimal query performance at scale. Resolve the issue by replacing `auth.<function>()` with `(select auth.<function>())`. See [docs](https://supabase.com/docs/guides/database/postgres/row-level-security#call-functions-with-select) for more info.',
        schema_name, table_name, policy_name
    ) as detail,
    format('auth_rls_init_plan_%s_%s_%s', schema_name, table_name, policy_name) as cache_key
from policy
where exists (
    select
    from unnest(array['auth.uid()', 'auth.jwt()', 'auth.role()', 'auth.email()', 'current_setting(']) f (call),
        unnest(array[qual, with_check]) e (expression)
    -- calls of f in the expression, against calls of f right after a `select`
    where (length(e.expression) - length(replace(e.expression, f.call, ''))) / length(f.call)
        > (length(e.expression) - length(replace(e.expression, 'select ' || f.call, '')))
            / length('select ' || f.call)
)
order by schema_name, table_name, policy_name
