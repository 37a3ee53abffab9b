-- Foreign keys of ours that reference a unique constraint (not the primary key) of a table in
-- `auth`: Supabase Auth may drop or change those constraints in an upgrade.
select
    format(
        'Table `%s`.`%s` has a foreign key `%s` referencing an auth unique constraint',
        n.nspname, c.relname, con.conname
    ) as detail,
    format('fkey_to_auth_unique_%s_%s_%s', n.nspname, c.relname, con.conname) as cache_key
from pg_catalog.pg_constraint con
join pg_catalog.pg_class c on c.oid = con.conrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_class referenced on referenced.oid = con.confrelid
join pg_catalog.pg_namespace rn on rn.oid = referenced.relnamespace
join pg_catalog.pg_index i on i.indexrelid = con.conindid
where con.contype = 'f'
    and rn.nspname = 'auth'
    and i.indisunique
    and not i.indisprimary
order by n.nspname, c.relname, con.conname
