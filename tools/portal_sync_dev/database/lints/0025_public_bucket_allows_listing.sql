-- Public Storage buckets (`storage.buckets.public`) with a permissive SELECT (or ALL) policy on
-- `storage.objects` for the API roles or every role that admits every object of the bucket: no
-- condition, an always-true one, or only `bucket_id = '<the bucket>'`. Anyone can then list the
-- bucket's files; a public bucket's object URLs work without such a policy.
-- Runs only where `storage.buckets` and `storage.objects` exist (database_lint.py checks).
with broad_policy as (
    select
        b.id as bucket_id,
        b.name as bucket_name,
        p.policyname
    from storage.buckets b
    join pg_catalog.pg_policies p
        on p.schemaname = 'storage'
        and p.tablename = 'objects'
        and p.cmd in ('SELECT', 'ALL')
        and p.permissive = 'PERMISSIVE'
        and p.roles && array['public', 'anon', 'authenticated']::name[]
    where b.public
        and (
            p.qual is null
            or regexp_replace(lower(p.qual), '\s', '', 'g') in ('true', '(true)', '1=1', '(1=1)')
            or (regexp_match(
                p.qual,
                -- bucket_id = '<literal>', optionally cast, in any number of parentheses
                '^\s*\(*\s*bucket_id\s*=\s*(''(?:[^'']|'''')*'')(?:\s*::\s*[[:alnum:]_.]+)?\s*\)*\s*$',
                'i'
            ))[1] = '''' || replace(b.id::text, '''', '''''') || ''''
        )
)
select
    format(
        'Public bucket `%s` has %s broad SELECT %s on `storage.objects` (%s), allowing clients to list all files. Public buckets don''t need this for object URL access and it may expose more data than intended.',
        bucket_name,
        count(*),
        case when count(*) = 1 then 'policy' else 'policies' end,
        string_agg(policyname::text, ', ' order by policyname)
    ) as detail,
    format('public_bucket_allows_listing_%s', bucket_id) as cache_key
from broad_policy
group by bucket_id, bucket_name
order by bucket_id
