-- Installed extensions not at the server's default (recommended) version. An installed
-- version the server no longer ships (left by pg_upgrade) is not reported, as in splinter.
select
    format(
        'Extension `%s` is using version `%s` but version `%s` is available. Using outdated extension versions may expose the database to security vulnerabilities.',
        e.name, e.installed_version, e.default_version
    ) as detail,
    format('extension_versions_outdated_%s_%s', e.name, e.installed_version) as cache_key
from pg_catalog.pg_available_extensions e
where e.installed_version is not null
    and e.default_version is not null
    and e.installed_version <> e.default_version
    and exists (
        select from pg_catalog.pg_available_extension_versions v
        where v.name = e.name and v.installed
    )
order by e.name
