-- migrate:up

-- Peer mentors on HLF's public website (docs/website-visibility.md). A mentor is visible only while
-- their membership is active, they are not paused or hidden by a coordinator, and their
-- certificate is valid. Every change of the desired state is written to the outbox in the same
-- transaction, and a Step Functions execution per outbox row delivers it to Dynamics.

alter table integration_configs
    -- The contact column (two options) that HLF's Power Pages site filters mentors on.
    add column website_visibility_column text not null default 'hlf_showonwebsite';

create table peer_mentor_status (
    organization_id uuid not null references organizations (id) on delete cascade,
    profile_id uuid not null references profiles (id) on delete cascade,
    paused boolean not null default false,
    hidden_manually boolean not null default false,
    certified_until date,
    website_visible_desired boolean not null default false,
    website_visible_applied boolean,
    sync_state text not null default 'pending'
        check (sync_state in ('in_sync', 'pending', 'failed')),
    -- The outbox row whose delivery is awaited; older deliveries see they are superseded.
    current_change_id uuid,
    attempts int not null default 0,
    last_synced_at timestamptz,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (organization_id, profile_id)
);
create index peer_mentor_status_certificates on peer_mentor_status (certified_until)
    where website_visible_desired;

-- What happened to each mentor's visibility, for audit and reconciliation.
create table peer_mentor_sync_log (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id) on delete cascade,
    profile_id uuid not null references profiles (id) on delete cascade,
    action text not null,
    desired boolean,
    applied boolean,
    message text not null,
    actor text not null,
    change_id uuid,
    created_at timestamptz not null default now()
);
create index peer_mentor_sync_log_mentor on peer_mentor_sync_log (organization_id, profile_id, created_at desc);

create table website_visibility_outbox (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id) on delete cascade,
    profile_id uuid not null references profiles (id) on delete cascade,
    desired boolean not null,
    reason text not null,
    created_at timestamptz not null default now(),
    dispatched_at timestamptz,
    execution_arn text,
    dispatch_attempts int not null default 0,
    last_dispatch_error text
);
create index website_visibility_outbox_undispatched on website_visibility_outbox (created_at)
    where dispatched_at is null;

-- Dataverse's service protection: after a 429, nothing is sent to that environment before
-- Retry-After has passed, whichever execution environment sends it.
alter table integration_configs add column dynamics_blocked_until timestamptz;

-- migrate:down
alter table integration_configs drop column if exists dynamics_blocked_until;
drop table if exists website_visibility_outbox, peer_mentor_sync_log, peer_mentor_status;
alter table integration_configs drop column if exists website_visibility_column;
