-- migrate:up

-- On-call hears of a Dynamics outage once per organisation, not once per mentor
-- (docs/website-visibility.md, "Alerts"): the first delivery of an organisation that gives up
-- opens its outage, every mentor whose delivery gives up meanwhile joins it, and the
-- website-sync schedule publishes one alert (with the number of mentors affected) and, once
-- every one of them is delivered, one recovery notice. A notice is marked sent only after it
-- was published, so a failed publish is tried again by the next schedule.
create table visibility_outages (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id) on delete cascade,
    started_at timestamptz not null default now(),
    -- What the first delivery that gave up reported (an administrator's words, no row data).
    cause text not null,
    alerted_at timestamptz,
    recovered_at timestamptz,
    recovery_alerted_at timestamptz
);
-- One open outage per organisation: the failures of an outage join it.
create unique index visibility_outages_open on visibility_outages (organization_id)
    where recovered_at is null;
create index visibility_outages_unsent on visibility_outages (started_at)
    where alerted_at is null or (recovered_at is not null and recovery_alerted_at is null);

create table visibility_outage_mentors (
    outage_id uuid not null references visibility_outages (id) on delete cascade,
    profile_id uuid not null,
    failed_at timestamptz not null default now(),
    primary key (outage_id, profile_id)
);

-- As every table of ours (20261201000001_data_api_access.sql): row-level security on, the
-- functions' role reads and writes through its policy, the API roles get nothing.
revoke all on table visibility_outages, visibility_outage_mentors
    from public, anon, authenticated, service_role;
grant select, insert, update, delete on table visibility_outages, visibility_outage_mentors
    to portal_sync_functions;
alter table visibility_outages enable row level security;
alter table visibility_outage_mentors enable row level security;
create policy "functions" on visibility_outages for all to portal_sync_functions
    using (true) with check (true);
create policy "functions" on visibility_outage_mentors for all to portal_sync_functions
    using (true) with check (true);

-- migrate:down

drop table if exists visibility_outage_mentors;
drop table if exists visibility_outages;
