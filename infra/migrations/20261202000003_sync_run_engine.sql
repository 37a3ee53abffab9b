-- migrate:up

-- What the engine of imports and reconciliations needs beside the checkpoint (docs/inbound.md,
-- "Import and reconciliation"; the engine: docs/decisions.md).
alter table portal_sync_runs
    -- Who or what started the run (sync/status shows it).
    add column trigger text not null default 'admin'
        check (trigger in ('admin', 'schedule', 'onboarding', 'enabled', 'connection_changed')),
    -- Changes a reconciliation found that webhooks had not delivered in time: lost webhooks.
    add column rows_drift bigint not null default 0 check (rows_drift >= 0),
    -- Transient failures of the page at the checkpoint in a row; the run fails past a bound.
    add column retries integer not null default 0 check (retries >= 0),
    -- Last progress: a running run that has not moved for long has lost its execution, and the
    -- schedule starts another (a page applied twice changes nothing).
    add column updated_at timestamptz not null default now();

create index portal_sync_runs_stalled on portal_sync_runs (updated_at) where phase = 'running';

-- migrate:down

drop index if exists portal_sync_runs_stalled;
alter table portal_sync_runs
    drop column if exists trigger,
    drop column if exists rows_drift,
    drop column if exists retries,
    drop column if exists updated_at;
