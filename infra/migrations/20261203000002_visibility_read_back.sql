-- migrate:up

-- The read-back of the website column (docs/website-visibility.md, "Read-back of the Dynamics
-- column"): what Dynamics shows of every in-sync mentor is read back in passes, at most one
-- starting every 12 hours per organisation, so that a hand edit of the column in Dynamics is
-- found and repaired. One row per organisation: where its pass is (mentors are walked in
-- profile_id order, after after_profile_id) and what the current (or last) pass found.
create table visibility_read_backs (
    organization_id uuid primary key references organizations (id) on delete cascade,
    -- When the current (or last) pass started; null: none yet.
    pass_started_at timestamptz,
    -- The last mentor read by the pass under way; null: it starts from the first.
    after_profile_id uuid,
    -- A pass is under way while this is null or older than pass_started_at.
    last_pass_finished_at timestamptz,
    -- Of the current (or last) pass.
    mentors_read integer not null default 0 check (mentors_read >= 0),
    hand_edits_repaired integer not null default 0 check (hand_edits_repaired >= 0),
    last_repaired_at timestamptz,
    updated_at timestamptz not null default now()
);

-- As every table of ours (20261201000001_data_api_access.sql): row-level security on, the
-- functions' role reads and writes through its policy, the API roles get nothing.
revoke all on table visibility_read_backs from public, anon, authenticated, service_role;
grant select, insert, update, delete on table visibility_read_backs to portal_sync_functions;
alter table visibility_read_backs enable row level security;
create policy "functions" on visibility_read_backs for all to portal_sync_functions
    using (true) with check (true);

-- migrate:down

drop table if exists visibility_read_backs;
