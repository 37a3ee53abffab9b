-- Supabase Queues (pgmq) exposed through the `pgmq_public` schema whose queue tables
-- (`pgmq.q_*`) the API roles may select without row-level security.
--
-- Adapted: splinter's relkind list has 'I' (a partitioned index) where a partitioned table
-- ('p') is meant, and reuses rls_disabled_in_public's cache key; this uses 'p' and a key of
-- its own.
select
    format('Table `%s.%s` is public, but RLS has not been enabled.', n.nspname, c.relname) as detail,
    format('insecure_queue_exposed_in_api_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p')
    and not c.relrowsecurity
    and (
        pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
        or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT')
    )
    and n.nspname = 'pgmq'
    and c.relname like 'q\_%'
    and 'pgmq_public' in (
        select trim(s) from unnest(string_to_array(current_setting('pgrst.db_schemas', true), ',')) s
    )
order by n.nspname, c.relname
