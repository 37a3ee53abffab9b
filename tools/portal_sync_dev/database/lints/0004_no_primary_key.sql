-- Ordinary tables without a primary key.
select
    format('Table `%s.%s` does not have a primary key', n.nspname, c.relname) as detail,
    format('no_primary_key_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r'
    and n.nspname <> all (string_to_array(current_setting('portal_sync_lint.platform_schemas'), ','))
    and not exists (
        select from pg_catalog.pg_depend d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
    )
    and not exists (select from pg_catalog.pg_index i where i.indrelid = c.oid and i.indisprimary)
order by n.nspname, c.relname
