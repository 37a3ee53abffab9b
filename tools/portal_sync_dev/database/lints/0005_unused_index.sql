-- Indexes the statistics collector has never seen scanned (since the statistics were last
-- reset), other than unique and primary key indexes, which enforce something.
select
    format(
        'Index `%s` on table `%s.%s` has not been used',
        s.indexrelname, s.schemaname, s.relname
    ) as detail,
    format('unused_index_%s_%s_%s', s.schemaname, s.relname, s.indexrelname) as cache_key
from pg_catalog.pg_stat_user_indexes s
join pg_catalog.pg_index i on i.indexrelid = s.indexrelid
where s.idx_scan = 0
    and not i.indisunique
    and not i.indisprimary
    and s.schemaname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and not exists (
        select from pg_catalog.pg_depend d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = s.relid and d.deptype = 'e'
    )
order by s.schemaname, s.relname, s.indexrelname
