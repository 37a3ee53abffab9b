-- migrate:up

-- A mentor's website visibility depends on rows anyone may write: the app writes
-- peer_mentor_status (paused, certified_until) directly through Supabase's Data API, the
-- consumer and the import write memberships. Whoever writes, a trigger records in the writer's
-- own transaction that the mentor's desired state must be worked out again
-- (docs/website-visibility.md): the website-sync schedule takes these requests, oldest first,
-- and the visibility rules (portal_sync/visibility/rules.py, the one place they are written)
-- decide whether a change is recorded in website_visibility_outbox and delivered.
create table visibility_reconsiderations (
    organization_id uuid not null,
    profile_id uuid not null,
    -- The oldest request waiting: requests for one mentor collapse into one.
    requested_at timestamptz not null default now(),
    -- The table whose write asked (peer_mentor_status, organization_memberships).
    cause text not null,
    primary key (organization_id, profile_id),
    foreign key (organization_id, profile_id)
        references peer_mentor_status (organization_id, profile_id) on delete cascade
);
create index visibility_reconsiderations_oldest on visibility_reconsiderations (requested_at);

-- SECURITY DEFINER: the writer (an app user under row-level security) may not write the
-- requests table itself. Only mentors (a peer_mentor_status row) are asked about.
create function portal_sync.request_visibility_reconsideration() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
    insert into public.visibility_reconsiderations (organization_id, profile_id, cause)
    select s.organization_id, s.profile_id, tg_table_name
      from public.peer_mentor_status s
     where s.organization_id = new.organization_id and s.profile_id = new.profile_id
    on conflict (organization_id, profile_id) do nothing;
    return null;
end
$$;
revoke all on function portal_sync.request_visibility_reconsideration() from public;

create trigger visibility_depends_on_mentor_status
    after update of paused, certified_until, hidden_manually on peer_mentor_status
    for each row
    when (old.paused is distinct from new.paused
          or old.certified_until is distinct from new.certified_until
          or old.hidden_manually is distinct from new.hidden_manually)
    execute function portal_sync.request_visibility_reconsideration();

create trigger visibility_depends_on_membership
    after update of status, role on organization_memberships
    for each row
    when (old.status is distinct from new.status or old.role is distinct from new.role)
    execute function portal_sync.request_visibility_reconsideration();

-- As every table of ours (20261201000001_data_api_access.sql): row-level security on, the
-- functions' role reads and writes through its policy, the API roles get nothing.
revoke all on table visibility_reconsiderations from public, anon, authenticated, service_role;
grant select, insert, update, delete on table visibility_reconsiderations to portal_sync_functions;
alter table visibility_reconsiderations enable row level security;
create policy "functions" on visibility_reconsiderations for all to portal_sync_functions
    using (true) with check (true);

-- migrate:down

drop trigger if exists visibility_depends_on_membership on organization_memberships;
drop trigger if exists visibility_depends_on_mentor_status on peer_mentor_status;
drop function if exists portal_sync.request_visibility_reconsideration();
drop table if exists visibility_reconsiderations;
