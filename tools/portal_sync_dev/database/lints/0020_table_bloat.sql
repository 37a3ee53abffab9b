-- Heap tables whose pages far outnumber what their live rows need: more than 70 times as many,
-- and more than 20 MiB wasted. The estimate is splinter's (the well-known one from
-- check_postgres): rows of the average width pg_stats gives, a 23-byte tuple header, 4-byte
-- alignment, a null bitmap where a column has nulls, 4 bytes of line pointer, 20 bytes of page
-- header. Only analysed tables have the statistics; no schema is left out, as in splinter.
with width as (
    select
        s.schemaname,
        s.tablename,
        sum((1 - s.null_frac::numeric) * s.avg_width) as data_width,
        max(s.null_frac)::numeric as max_null_frac,
        count(*) filter (where s.null_frac <> 0) as nullable_columns
    from pg_catalog.pg_stats s
    group by s.schemaname, s.tablename
),
estimate as (
    select
        w.schemaname,
        w.tablename,
        c.relpages::numeric as relpages,
        current_setting('block_size')::numeric as block_size,
        -- align(x) = ceil(x / 4) * 4
        ceil(
            c.reltuples::numeric * (
                ceil((w.data_width + ceil(23 / 4.0) * 4) / 4) * 4
                + w.max_null_frac * ceil((23 + 1 + w.nullable_columns / 8) / 4.0) * 4
                + 4
            ) / (current_setting('block_size')::numeric - 20)
        ) as expected_pages
    from width w
    join pg_catalog.pg_namespace n on n.nspname = w.schemaname and n.nspname <> 'information_schema'
    join pg_catalog.pg_class c on c.relnamespace = n.oid and c.relname = w.tablename
    where c.relkind = 'r'
        and c.relam = (select a.oid from pg_catalog.pg_am a where a.amname = 'heap')
),
bloat as (
    select
        schemaname,
        tablename,
        round(case when expected_pages = 0 then 0.0 else relpages / expected_pages end, 1) as ratio,
        case when relpages < expected_pages then 0 else block_size * (relpages - expected_pages) end
            as wasted_bytes
    from estimate
)
select
    format('Table `%s`.`%s` has excessive bloat', schemaname, tablename) as detail,
    format('table_bloat_%s_%s', schemaname, tablename) as cache_key
from bloat
where ratio > 70.0
    and wasted_bytes > 20 * 1024 * 1024
order by schemaname, tablename
