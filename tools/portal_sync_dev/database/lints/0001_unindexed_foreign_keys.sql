-- Foreign keys whose columns do not lead an index: a delete or key update on the referenced
-- table scans the referencing one. The foreign key's columns must be the index's first columns,
-- in order.
select
    format(
        'Table `%s.%s` has a foreign key `%s` without a covering index. This can lead to suboptimal query performance.',
        n.nspname, c.relname, con.conname
    ) as detail,
    format('unindexed_foreign_keys_%s_%s_%s', n.nspname, c.relname, con.conname) as cache_key
from pg_catalog.pg_constraint con
join pg_catalog.pg_class c on c.oid = con.conrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where con.contype = 'f'
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and not exists (
        select from pg_catalog.pg_depend d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
    )
    and not exists (
        select from pg_catalog.pg_index i
        where i.indrelid = con.conrelid
            and i.indisvalid
            and (string_to_array(i.indkey::text, ' ')::smallint[])[1:cardinality(con.conkey)]
                = con.conkey
    )
order by n.nspname, c.relname, con.conname
