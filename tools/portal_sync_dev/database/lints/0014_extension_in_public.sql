-- Extensions installed in `public` (plpgsql, which PostgreSQL puts in pg_catalog anyway, is
-- left out as splinter does): their functions and tables become part of the exposed API.
select
    format('Extension `%s` is installed in the public schema. Move it to another schema.', e.extname) as detail,
    format('extension_in_public_%s', e.extname) as cache_key
from pg_catalog.pg_extension e
join pg_catalog.pg_namespace n on n.oid = e.extnamespace
where n.nspname = 'public'
    and e.extname <> 'plpgsql'
order by e.extname
