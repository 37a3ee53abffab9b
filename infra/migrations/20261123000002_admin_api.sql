-- migrate:up

-- The admin API's settings beside the inbound ones. Secret values are never stored here: the
-- webhook keys and the Dynamics credentials live in Secrets Manager (encrypted with KMS). The
-- webhook keys' status is read from there (the ingest's own truth); of the credentials, which
-- only the admin API writes, a fingerprint and the time they were set are kept here.
alter table integration_configs
    add column header_name text not null default 'x-portal-sync-key',
    add column dynamics_base_url text,
    add column dynamics_auth_type text
        check (dynamics_auth_type in ('oauth_client_credentials', 'api_key')),
    add column dynamics_tenant_id text,
    add column dynamics_client_id text,
    add column dynamics_credentials_fingerprint text,
    add column dynamics_credentials_updated_at timestamptz,
    add column created_at timestamptz not null default now();

create index webhook_receipts_org_outcome_time
    on webhook_receipts (organization_id, received_at desc, outcome);
create index organization_memberships_org on organization_memberships (organization_id, status);

-- migrate:down
drop index if exists organization_memberships_org;
drop index if exists webhook_receipts_org_outcome_time;
alter table integration_configs
    drop column if exists header_name,
    drop column if exists dynamics_base_url,
    drop column if exists dynamics_auth_type,
    drop column if exists dynamics_tenant_id,
    drop column if exists dynamics_client_id,
    drop column if exists dynamics_credentials_fingerprint,
    drop column if exists dynamics_credentials_updated_at,
    drop column if exists created_at;
