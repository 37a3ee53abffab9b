-- migrate:up

-- Full imports and reconciliations (docs/inbound.md, "Import and reconciliation"). A run reads
-- the mapped tables page by page; each page is applied, and the run's checkpoint (the table and
-- the page link still to read) and counters written, in one transaction, so a run that stopped
-- anywhere resumes at the first page not yet committed.
create table portal_sync_runs (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id) on delete cascade,
    kind text not null check (kind in ('import', 'reconcile')),
    -- running: pages left to read; succeeded, failed: finished.
    phase text not null default 'running' check (phase in ('running', 'succeeded', 'failed')),
    -- The mapped tables in the order they are read (members before their memberships), the
    -- one being read, and the page link to read next in it (null: its first page).
    tables text[] not null,
    current_table text,
    page_link text,
    -- A reconciliation whose delta link Dynamics no longer honoured reads everything instead.
    full_read boolean not null default false,
    rows_read bigint not null default 0 check (rows_read >= 0),
    rows_changed bigint not null default 0 check (rows_changed >= 0),
    rows_unchanged bigint not null default 0 check (rows_unchanged >= 0),
    rows_failed bigint not null default 0 check (rows_failed >= 0),
    pages_read integer not null default 0 check (pages_read >= 0),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    -- For administrators, worded by the logic (never Dynamics' or PostgreSQL's own text).
    error text,
    check ((phase = 'running') = (finished_at is null))
);

-- One run per organisation at a time: a second start meets this index, whichever process
-- tries (a database rule, not a process lock).
create unique index portal_sync_runs_one_running on portal_sync_runs (organization_id)
    where phase = 'running';
-- sync/status: the organisation's latest run of each kind.
create index portal_sync_runs_latest on portal_sync_runs (organization_id, kind, started_at desc);

-- The delta link the last complete read of a table ended with: a reconciliation asks Dynamics
-- for the changes since.
create table portal_sync_delta_links (
    organization_id uuid not null references organizations (id) on delete cascade,
    table_name text not null,
    delta_link text not null,
    updated_at timestamptz not null default now(),
    primary key (organization_id, table_name)
);

-- How often the schedule reconciles the organisation.
alter table integration_configs
    add column reconcile_interval_minutes integer not null default 15
        check (reconcile_interval_minutes between 5 and 1440);

-- As every table of ours (20261201000001_data_api_access.sql): row-level security on, the
-- functions' role reads and writes through its policy, the API roles get nothing.
revoke all on table portal_sync_runs, portal_sync_delta_links
    from public, anon, authenticated, service_role;
grant select, insert, update, delete on table portal_sync_runs, portal_sync_delta_links
    to portal_sync_functions;
alter table portal_sync_runs enable row level security;
alter table portal_sync_delta_links enable row level security;
create policy "functions" on portal_sync_runs for all to portal_sync_functions using (true) with check (true);
create policy "functions" on portal_sync_delta_links for all to portal_sync_functions using (true) with check (true);

-- migrate:down

alter table integration_configs drop column if exists reconcile_interval_minutes;
drop table if exists portal_sync_delta_links;
drop table if exists portal_sync_runs;
