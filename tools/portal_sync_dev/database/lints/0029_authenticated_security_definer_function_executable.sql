-- SECURITY DEFINER functions in an exposed schema that `authenticated` may execute: every
-- signed-in user can call them through `/rest/v1/rpc/<name>`, and they run with their owner's
-- privileges, past row-level security. (PostgreSQL grants EXECUTE to PUBLIC unless it is revoked.)
select
    format(
        'Function `%s.%s(%s)` can be executed by the `authenticated` role as a `SECURITY DEFINER` function via `/rest/v1/rpc/%s`. Revoke `EXECUTE` or switch it to `SECURITY INVOKER` if that is not intentional.',
        n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), p.proname
    ) as detail,
    format(
        'authenticated_security_definer_function_executable_%s_%s_%s',
        n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)
    ) as cache_key
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
where p.prosecdef
    and pg_catalog.has_function_privilege('authenticated', p.oid, 'EXECUTE')
    and n.nspname in (
        select trim(s) from unnest(string_to_array(current_setting('pgrst.db_schemas', true), ',')) s
    )
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
order by n.nspname, p.proname, 2
