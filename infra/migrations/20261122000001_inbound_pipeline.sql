-- migrate:up

-- Tables the Likeperson app reads through Supabase (docs/supabase.md) and the inbound
-- pipeline's own bookkeeping. Plain SQL: a Supabase project can take it as it is.

create table organizations (
    id uuid primary key default gen_random_uuid(),
    name text not null,
    created_at timestamptz not null default now()
);

create table profiles (
    id uuid primary key default gen_random_uuid(),
    -- The Supabase auth user, once the member has signed in to the app.
    auth_user_id uuid unique,
    dynamics_contact_id text unique,
    first_name text,
    last_name text,
    email text,
    phone text,
    -- True while the member has an active membership in at least one organisation.
    is_active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table organization_memberships (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id) on delete cascade,
    profile_id uuid not null references profiles (id) on delete cascade,
    role text not null default 'member',
    status text not null default 'active' check (status in ('active', 'inactive')),
    -- The source's modification time of the newest change applied: older events are stale.
    source_modified_at timestamptz,
    -- The Dynamics row of a membership table, so later updates without the contact resolve.
    dynamics_row_id text,
    last_synced_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (organization_id, profile_id)
);
create index organization_memberships_profile on organization_memberships (profile_id);
create index organization_memberships_row on organization_memberships (organization_id, dynamics_row_id)
    where dynamics_row_id is not null;

create table course_enrollments (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id) on delete cascade,
    profile_id uuid not null references profiles (id) on delete cascade,
    dynamics_course_id text not null,
    course_name text,
    status text not null check (status in ('enrolled', 'unenrolled')),
    source_modified_at timestamptz,
    dynamics_row_id text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (organization_id, profile_id, dynamics_course_id)
);
create index course_enrollments_row on course_enrollments (organization_id, dynamics_row_id)
    where dynamics_row_id is not null;

-- The organisation's integration settings. Secrets are not here: they live encrypted in
-- Secrets Manager, where the webhook ingest can read them while this database is down.
create table integration_configs (
    organization_id uuid primary key references organizations (id) on delete cascade,
    enabled boolean not null default true,
    source_id text not null unique,
    signature_mode text not null default 'standard-webhooks'
        check (signature_mode in ('standard-webhooks', 'header-key')),
    -- Dynamics tenant the webhooks must come from (Dataverse OrganizationId), when known.
    dataverse_organization_id text,
    -- Our own Dynamics application users: changes they made are echoes of our write-backs.
    application_user_ids text[] not null default '{}',
    -- Field mapping (tables, columns, statecode meaning, role choice values); null = default.
    field_mapping jsonb,
    feature_ownership jsonb not null default '{}',
    deep_links jsonb not null default '{}',
    updated_at timestamptz not null default now()
);

-- The sync log admins read: one row per event, updated when the event is retried.
create table portal_sync_events (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id) on delete cascade,
    event_id text not null,
    event_type text not null,
    source_message text,
    source_table text,
    status text not null check (status in ('success', 'error', 'skipped')),
    message text not null,
    profile_id uuid references profiles (id) on delete set null,
    receipt_id uuid,
    correlation_id text,
    source_modified_at timestamptz,
    received_at timestamptz not null,
    processed_at timestamptz not null default now(),
    attempts int not null default 1,
    unique (organization_id, event_id)
);
create index portal_sync_events_recent on portal_sync_events (organization_id, received_at desc, id desc);
create index portal_sync_events_status on portal_sync_events (organization_id, status, received_at desc);

-- The original message of every event that ended in error, so an admin can reprocess it.
create table portal_sync_event_payloads (
    organization_id uuid not null references organizations (id) on delete cascade,
    event_id text not null,
    message jsonb not null,
    stored_at timestamptz not null default now(),
    primary key (organization_id, event_id)
);

create table webhook_receipts (
    id uuid primary key,
    source_id text not null,
    organization_id uuid references organizations (id) on delete set null,
    delivery_id text,
    outcome text not null check (outcome in ('accepted', 'duplicate', 'rejected')),
    reason text check (reason in ('MISSING_SIGNATURE', 'SIGNATURE_MISMATCH',
        'TIMESTAMP_OUT_OF_WINDOW', 'UNKNOWN_SOURCE', 'SECRET_NOT_CONFIGURED', 'PAYLOAD_TOO_LARGE',
        'UNPARSABLE_JSON', 'QUEUE_UNAVAILABLE')),
    signature_mode text,
    received_at timestamptz not null,
    recorded_at timestamptz not null default now()
);
-- One accepted delivery per id and source: a second one is a duplicate.
create unique index webhook_receipts_accepted_delivery on webhook_receipts (source_id, delivery_id)
    where outcome = 'accepted';
create index webhook_receipts_org_time on webhook_receipts (organization_id, received_at desc);
create index webhook_receipts_source_time on webhook_receipts (source_id, received_at desc);

create table audit_logs (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid references organizations (id) on delete cascade,
    actor text not null,
    action text not null,
    details jsonb not null default '{}',
    created_at timestamptz not null default now()
);
create index audit_logs_org_time on audit_logs (organization_id, created_at desc);

-- Global administrators of the platform (Supabase auth user ids).
create table platform_admins (
    user_id uuid primary key,
    created_at timestamptz not null default now()
);

-- Supabase custom access token hook: stamps the member's active organisation roles into the
-- token and refuses members whose memberships are all inactive. Register it in Supabase under
-- Authentication > Hooks > Customize Access Token (public.custom_access_token_hook).
create function public.custom_access_token_hook(event jsonb) returns jsonb
language plpgsql stable
as $$
declare
    claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
    member profiles%rowtype;
    roles jsonb;
begin
    select * into member from profiles
    where auth_user_id = (event ->> 'user_id')::uuid or id = (event ->> 'user_id')::uuid
    limit 1;
    if not found then
        -- Not a synced member (an administrator, say): the token is left as it is.
        return jsonb_build_object('claims', claims);
    end if;

    select coalesce(jsonb_object_agg(organization_id::text, role), '{}'::jsonb) into roles
    from organization_memberships
    where profile_id = member.id and status = 'active';

    if not member.is_active or roles = '{}'::jsonb then
        return jsonb_build_object('error', jsonb_build_object(
            'http_code', 403,
            'message', 'Your membership is no longer active. Contact your organisation to regain access.'));
    end if;

    claims := jsonb_set(claims, '{app_metadata}', coalesce(claims -> 'app_metadata', '{}'::jsonb));
    claims := jsonb_set(claims, '{app_metadata,org_roles}', roles);
    claims := jsonb_set(claims, '{org_roles}', roles);
    return jsonb_build_object('claims', claims);
end;
$$;

-- On Supabase only the auth server may call the hook; elsewhere these roles do not exist.
do $$
begin
    if exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then
        execute 'grant execute on function public.custom_access_token_hook to supabase_auth_admin';
        execute 'grant select on profiles, organization_memberships to supabase_auth_admin';
        execute 'revoke execute on function public.custom_access_token_hook from authenticated, anon, public';
    end if;
end;
$$;

-- migrate:down
drop function if exists public.custom_access_token_hook(jsonb);
drop table if exists platform_admins, audit_logs, webhook_receipts, portal_sync_event_payloads,
    portal_sync_events, integration_configs, course_enrollments, organization_memberships,
    profiles, organizations cascade;
