-- Columns of the reg* types that store OIDs pg_upgrade cannot carry over (it refuses to
-- upgrade a database that has them; regclass, regrole and regtype are fine).
select
    format(
        'Table `%s.%s` has a column `%s` with unsupported reg* type `%s`.',
        n.nspname, c.relname, a.attname, t.typname
    ) as detail,
    format('unsupported_reg_types_%s_%s_%s', n.nspname, c.relname, a.attname) as cache_key
from pg_catalog.pg_attribute a
join pg_catalog.pg_class c on c.oid = a.attrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_type t on t.oid = a.atttypid
join pg_catalog.pg_namespace tn on tn.oid = t.typnamespace
where tn.nspname = 'pg_catalog'
    and t.typname in (
        'regcollation', 'regconfig', 'regdictionary', 'regnamespace',
        'regoper', 'regoperator', 'regproc', 'regprocedure'
    )
    and a.attnum > 0
    and not a.attisdropped
    and n.nspname not in ('pg_catalog', 'information_schema', 'pgsodium')
order by n.nspname, c.relname, a.attname
