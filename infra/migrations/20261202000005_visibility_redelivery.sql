-- migrate:up

-- Failed deliveries heal by themselves (docs/website-visibility.md): when the state machine
-- gave up, or when the organisation has no Dynamics connection yet, the website-sync schedule
-- delivers the mentor's state again from next_attempt_at (failures: on a growing, jittered
-- schedule, up to hourly, for as long as it takes; waiting for a connection: once there is one).
alter table peer_mentor_status
    add column next_attempt_at timestamptz,
    -- Deliveries the schedule started since the last one that went through.
    add column redeliveries integer not null default 0 check (redeliveries >= 0);
create index peer_mentor_status_redelivery on peer_mentor_status (next_attempt_at)
    where next_attempt_at is not null;

-- migrate:down

drop index if exists peer_mentor_status_redelivery;
alter table peer_mentor_status
    drop column if exists next_attempt_at,
    drop column if exists redeliveries;
