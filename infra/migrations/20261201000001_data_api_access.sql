-- migrate:up

-- Who may read and write what through Supabase (docs/supabase.md). The app reads `public`
-- through PostgREST with the anon key and the member's JWT, so every table here has row-level
-- security on and exactly the grants below, whatever the project's default privileges for new
-- tables are (Supabase has two settings):
--   anon             nothing;
--   authenticated    reads organizations, profiles, memberships, enrolments and mentor status
--                    under the policies below; coordinators and administrators may change their
--                    mentors' `paused` / `certified_until`;
--   service_role     nothing (it bypasses RLS: only grants can keep it out);
--   portal_sync_functions   the functions' own role, which the Data API cannot switch to: every
--                    table, through a policy of its own;
--   supabase_auth_admin     reads profiles and memberships for the access token hook.
-- Policies check live membership rows, never token claims: a deactivated member reads nothing
-- from the moment the deactivation is applied, whatever token they still hold.

do $$
begin
    if to_regprocedure('auth.uid()') is null
        or not exists (select from pg_roles where rolname = 'authenticated') then
        raise exception 'This migration needs a Supabase database (the auth schema and the API '
            'roles). On a plain PostgreSQL apply tools/portal_sync_dev/database/supabase_project.sql first.';
    end if;
end
$$;

-- The functions' role. It has no login here: a login and password are set where it is deployed
-- (`alter role portal_sync_functions with login password ...`, docs/supabase.md).
do $$
begin
    if not exists (select from pg_roles where rolname = 'portal_sync_functions') then
        create role portal_sync_functions nologin;
    end if;
exception
    when duplicate_object or unique_violation then null;  -- created concurrently (tests)
end
$$;
grant usage on schema public to portal_sync_functions;

-- Our own schema, not exposed by the Data API: the helpers the policies call, the triggers'
-- functions and dbmate's bookkeeping (moved here by the migration tool).
create schema if not exists portal_sync;
revoke all on schema portal_sync from public;
-- The policies call the helpers as the querying role.
grant usage on schema portal_sync to authenticated;

-- Named one by one: the project may hold tables of others in `public`.
revoke all on table
    organizations, profiles, organization_memberships, course_enrollments, integration_configs,
    portal_sync_events, portal_sync_event_payloads, webhook_receipts, audit_logs,
    platform_admins, peer_mentor_status, peer_mentor_sync_log, website_visibility_outbox
    from public, anon, authenticated, service_role;

grant select, insert, update, delete on table
    organizations, profiles, organization_memberships, course_enrollments, integration_configs,
    portal_sync_events, portal_sync_event_payloads, webhook_receipts, audit_logs,
    platform_admins, peer_mentor_status, peer_mentor_sync_log, website_visibility_outbox
    to portal_sync_functions;

grant select on table organizations, profiles, organization_memberships, course_enrollments,
    peer_mentor_status to authenticated;
grant update (paused, certified_until) on table peer_mentor_status to authenticated;

-- Who the caller is, from live rows. SECURITY DEFINER: they read the membership tables past
-- their own policies (a policy on organization_memberships that queried it again would recurse).
-- Called as `(select ...)` in the policies, each runs once per statement, not once per row.

-- The caller's profile, while they are an active member of at least one organisation.
create function portal_sync.current_profile_id() returns uuid
language sql stable security definer set search_path = ''
as $$
    select p.id from public.profiles p
     where p.auth_user_id = (select auth.uid()) and p.is_active
$$;

-- The organisations the caller is an active member of.
create function portal_sync.current_member_organizations() returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select m.organization_id
      from public.profiles p
      join public.organization_memberships m on m.profile_id = p.id
     where p.auth_user_id = (select auth.uid()) and m.status = 'active'
$$;

-- The organisations the caller coordinates or administers (roles as the admin API reads them:
-- portal_sync/auth/authority.py).
create function portal_sync.current_staff_organizations() returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select m.organization_id
      from public.profiles p
      join public.organization_memberships m on m.profile_id = p.id
     where p.auth_user_id = (select auth.uid()) and m.status = 'active'
       and m.role in ('coordinator', 'admin')
$$;

-- The profiles of the members of the organisations the caller coordinates or administers.
create function portal_sync.current_staff_profiles() returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select distinct m.profile_id
      from public.organization_memberships m
     where m.organization_id in (select portal_sync.current_staff_organizations())
$$;

revoke all on function portal_sync.current_profile_id(), portal_sync.current_member_organizations(),
    portal_sync.current_staff_organizations(), portal_sync.current_staff_profiles() from public;
grant execute on function portal_sync.current_profile_id(),
    portal_sync.current_member_organizations(), portal_sync.current_staff_organizations(),
    portal_sync.current_staff_profiles() to authenticated;

alter table organizations enable row level security;
alter table profiles enable row level security;
alter table organization_memberships enable row level security;
alter table course_enrollments enable row level security;
alter table integration_configs enable row level security;
alter table portal_sync_events enable row level security;
alter table portal_sync_event_payloads enable row level security;
alter table webhook_receipts enable row level security;
alter table audit_logs enable row level security;
alter table platform_admins enable row level security;
alter table peer_mentor_status enable row level security;
alter table peer_mentor_sync_log enable row level security;
alter table website_visibility_outbox enable row level security;

-- The app (authenticated), one policy per table and command.
create policy "members read their organisations" on organizations
    for select to authenticated
    using (id in (select portal_sync.current_member_organizations()));

create policy "members read their own profile, staff their members'" on profiles
    for select to authenticated
    using (
        (auth_user_id = (select auth.uid()) and is_active)
        or id in (select portal_sync.current_staff_profiles())
    );

create policy "members read their active memberships, staff their organisation's" on organization_memberships
    for select to authenticated
    using (
        (profile_id = (select portal_sync.current_profile_id()) and status = 'active')
        or organization_id in (select portal_sync.current_staff_organizations())
    );

create policy "members read their enrolments, staff their organisation's" on course_enrollments
    for select to authenticated
    using (
        (profile_id = (select portal_sync.current_profile_id())
            and organization_id in (select portal_sync.current_member_organizations()))
        or organization_id in (select portal_sync.current_staff_organizations())
    );

create policy "mentors read their status, staff their organisation's" on peer_mentor_status
    for select to authenticated
    using (
        (profile_id = (select portal_sync.current_profile_id())
            and organization_id in (select portal_sync.current_member_organizations()))
        or organization_id in (select portal_sync.current_staff_organizations())
    );

-- Only `paused` and `certified_until` (the column grant above), of their own organisation.
create policy "staff pause and certify their organisation's mentors" on peer_mentor_status
    for update to authenticated
    using (organization_id in (select portal_sync.current_staff_organizations()))
    with check (organization_id in (select portal_sync.current_staff_organizations()));

-- The functions see and change everything (they check authority themselves).
create policy "functions" on organizations for all to portal_sync_functions using (true) with check (true);
create policy "functions" on profiles for all to portal_sync_functions using (true) with check (true);
create policy "functions" on organization_memberships for all to portal_sync_functions using (true) with check (true);
create policy "functions" on course_enrollments for all to portal_sync_functions using (true) with check (true);
create policy "functions" on integration_configs for all to portal_sync_functions using (true) with check (true);
create policy "functions" on portal_sync_events for all to portal_sync_functions using (true) with check (true);
create policy "functions" on portal_sync_event_payloads for all to portal_sync_functions using (true) with check (true);
create policy "functions" on webhook_receipts for all to portal_sync_functions using (true) with check (true);
create policy "functions" on audit_logs for all to portal_sync_functions using (true) with check (true);
create policy "functions" on platform_admins for all to portal_sync_functions using (true) with check (true);
create policy "functions" on peer_mentor_status for all to portal_sync_functions using (true) with check (true);
create policy "functions" on peer_mentor_sync_log for all to portal_sync_functions using (true) with check (true);
create policy "functions" on website_visibility_outbox for all to portal_sync_functions using (true) with check (true);

-- What the policies filter on: profiles.auth_user_id is unique (indexed); memberships by profile
-- and by (organisation, status) exist. Enrolments and mentor statuses by profile:
create index course_enrollments_profile on course_enrollments (profile_id);
create index peer_mentor_status_profile on peer_mentor_status (profile_id);

-- The access token hook, as Supabase Auth calls it: as supabase_auth_admin, whose search_path
-- is `auth`, inside a transaction with a 2 s statement timeout (supabase/auth,
-- internal/hooks/v0hooks/v0pgfunc). Hence schema-qualified names and a pinned search_path.
-- It stamps the member's active organisation roles into the token and refuses a member with no
-- active membership; a user who is not a synced member (an administrator) keeps the token as it is.
-- Register it under Authentication > Hooks > Customize Access Token:
-- public.custom_access_token_hook.
create or replace function public.custom_access_token_hook(event jsonb) returns jsonb
language plpgsql stable security invoker set search_path = ''
as $$
declare
    claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
    member_id uuid;
    member_active boolean;
    roles jsonb;
begin
    select p.id, p.is_active into member_id, member_active
      from public.profiles p
     where p.auth_user_id = (event ->> 'user_id')::uuid;
    if member_id is null then
        return jsonb_build_object('claims', claims);
    end if;

    select coalesce(jsonb_object_agg(m.organization_id::text, m.role), '{}'::jsonb) into roles
      from public.organization_memberships m
     where m.profile_id = member_id and m.status = 'active';

    if not member_active or roles = '{}'::jsonb then
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

-- Only Supabase Auth calls the hook (Supabase's documented grants).
revoke execute on function public.custom_access_token_hook(jsonb) from public, anon, authenticated, service_role;
grant usage on schema public to supabase_auth_admin;
grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin;
grant select on table profiles, organization_memberships to supabase_auth_admin;
create policy "the access token hook reads profiles" on profiles
    for select to supabase_auth_admin using (true);
create policy "the access token hook reads memberships" on organization_memberships
    for select to supabase_auth_admin using (true);

-- An app account (auth.users) is linked to the synced profile with the same e-mail, once the
-- account's e-mail is verified, whichever comes first: the sign-up or the sync. Only when exactly
-- one profile has that e-mail; a profile already linked stays linked. (Needs e-mail confirmation on in Supabase Auth: docs/supabase.md.)
-- Supabase Auth keeps addresses in lower case, unique among non-SSO accounts
-- (users_email_partial_key); SSO accounts may share one, so they are not linked by it.
create index profiles_email on profiles (lower(email));

create function portal_sync.link_profile_to_account() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
    account uuid;
begin
    if new.auth_user_id is not null or new.email is null then
        return new;
    end if;
    if exists (select 1 from public.profiles p
                where lower(p.email) = lower(new.email) and p.id <> new.id) then
        return new;  -- several people share the address: nobody is linked by it
    end if;
    select u.id into account
      from auth.users u
     where u.email = lower(new.email) and not u.is_sso_user
       and u.email_confirmed_at is not null and u.deleted_at is null;
    if account is not null and not exists (select 1 from public.profiles p where p.auth_user_id = account) then
        new.auth_user_id := account;
    end if;
    return new;
end;
$$;

create trigger link_to_account before insert or update of email on profiles
    for each row when (new.auth_user_id is null and new.email is not null)
    execute function portal_sync.link_profile_to_account();

create function portal_sync.link_account_to_profile() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
    profile uuid;
    profiles_with_email int;
begin
    if new.email is null or new.email_confirmed_at is null or new.deleted_at is not null
        or new.is_sso_user
        or exists (select 1 from public.profiles p where p.auth_user_id = new.id) then
        return null;
    end if;
    select (array_agg(p.id))[1], count(*) into profile, profiles_with_email
      from public.profiles p where lower(p.email) = lower(new.email);
    if profiles_with_email = 1 then
        update public.profiles set auth_user_id = new.id, updated_at = now()
         where id = profile and auth_user_id is null;
    end if;
    return null;
end;
$$;

revoke all on function portal_sync.link_profile_to_account(), portal_sync.link_account_to_profile()
    from public;

create trigger portal_sync_link_profile after insert or update of email, email_confirmed_at
    on auth.users for each row execute function portal_sync.link_account_to_profile();

-- Profiles synced before this migration whose account already exists.
update profiles p set auth_user_id = u.id
  from auth.users u
 where p.auth_user_id is null and u.email = lower(p.email) and not u.is_sso_user
   and u.email_confirmed_at is not null and u.deleted_at is null
   and (select count(*) from profiles q where lower(q.email) = lower(p.email)) = 1
   and not exists (select 1 from profiles q where q.auth_user_id = u.id);

-- migrate:down
drop trigger if exists portal_sync_link_profile on auth.users;
drop trigger if exists link_to_account on profiles;
drop function if exists portal_sync.link_account_to_profile(), portal_sync.link_profile_to_account();
drop index if exists profiles_email, peer_mentor_status_profile,
    course_enrollments_profile;
drop policy if exists "the access token hook reads profiles" on profiles;
drop policy if exists "the access token hook reads memberships" on organization_memberships;
drop policy if exists "functions" on organizations;
drop policy if exists "functions" on profiles;
drop policy if exists "functions" on organization_memberships;
drop policy if exists "functions" on course_enrollments;
drop policy if exists "functions" on integration_configs;
drop policy if exists "functions" on portal_sync_events;
drop policy if exists "functions" on portal_sync_event_payloads;
drop policy if exists "functions" on webhook_receipts;
drop policy if exists "functions" on audit_logs;
drop policy if exists "functions" on platform_admins;
drop policy if exists "functions" on peer_mentor_status;
drop policy if exists "functions" on peer_mentor_sync_log;
drop policy if exists "functions" on website_visibility_outbox;
drop policy if exists "members read their organisations" on organizations;
drop policy if exists "members read their own profile, staff their members'" on profiles;
drop policy if exists "members read their active memberships, staff their organisation's" on organization_memberships;
drop policy if exists "members read their enrolments, staff their organisation's" on course_enrollments;
drop policy if exists "mentors read their status, staff their organisation's" on peer_mentor_status;
drop policy if exists "staff pause and certify their organisation's mentors" on peer_mentor_status;
alter table organizations disable row level security;
alter table profiles disable row level security;
alter table organization_memberships disable row level security;
alter table course_enrollments disable row level security;
alter table integration_configs disable row level security;
alter table portal_sync_events disable row level security;
alter table portal_sync_event_payloads disable row level security;
alter table webhook_receipts disable row level security;
alter table audit_logs disable row level security;
alter table platform_admins disable row level security;
alter table peer_mentor_status disable row level security;
alter table peer_mentor_sync_log disable row level security;
alter table website_visibility_outbox disable row level security;
drop function if exists portal_sync.current_staff_profiles(), portal_sync.current_staff_organizations(),
    portal_sync.current_member_organizations(), portal_sync.current_profile_id();
