-- Two or more indexes of a table or materialized view that are the same index under other names.
--
-- Adapted: splinter compares the indexes' definitions with their names cut out; this compares
-- what defines an index in pg_index (access method, key and included columns, operator
-- classes, collations, options, expressions, predicate, uniqueness), which a name that also
-- occurs elsewhere in the definition cannot confuse.
select
    format(
        'Table `%s.%s` has identical indexes %s. Drop all except one of them',
        n.nspname, c.relname, array_agg(x.relname order by x.relname)
    ) as detail,
    format(
        'duplicate_index_%s_%s_%s', n.nspname, c.relname, array_agg(x.relname order by x.relname)
    ) as cache_key
from pg_catalog.pg_index i
join pg_catalog.pg_class x on x.oid = i.indexrelid
join pg_catalog.pg_class c on c.oid = i.indrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'm')
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and not exists (
        select from pg_catalog.pg_depend d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
    )
group by
    n.nspname, c.relname, i.indrelid, x.relam, i.indnkeyatts, i.indkey::text, i.indclass::text,
    i.indcollation::text, i.indoption::text, i.indisunique, i.indnullsnotdistinct,
    coalesce(pg_catalog.pg_get_expr(i.indexprs, i.indrelid), ''),
    coalesce(pg_catalog.pg_get_expr(i.indpred, i.indrelid), '')
having count(*) > 1
order by n.nspname, c.relname, 1
