-- Policies that read the token's `user_metadata`, which every user can edit for themselves.
-- A text match on the deparsed expressions, as splinter's.
with policy as (
    select
        n.nspname as schema_name,
        c.relname as table_name,
        p.polname as policy_name,
        coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '') as qual,
        coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '') as with_check
    from pg_catalog.pg_policy p
    join pg_catalog.pg_class c on c.oid = p.polrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
)
select
    format(
        'Table `%s.%s` has a row level security policy `%s` that references Supabase Auth `user_metadata`. `user_metadata` is editable by end users and should never be used in a security context.',
        schema_name, table_name, policy_name
    ) as detail,
    format('rls_references_user_metadata_%s_%s_%s', schema_name, table_name, policy_name) as cache_key
from policy
where qual like '%auth.jwt()%user_metadata%'
    or qual like '%current_setting(%request.jwt.claims%)%user_metadata%'
    or with_check like '%auth.jwt()%user_metadata%'
    or with_check like '%current_setting(%request.jwt.claims%)%user_metadata%'
order by schema_name, table_name, policy_name
