-- What a Supabase project's database holds before any migration of ours runs, for a plain
-- PostgreSQL server (`make run`, `make test`). Written from Supabase's own set-up scripts
-- (supabase/postgres: migrations/db/init-scripts/00000000000000-initial-schema.sql and
-- 00000000000001-auth-schema.sql, demote-postgres) and Supabase Auth's migrations
-- (supabase/auth: update_auth_functions, add_auth_jwt_function, modify_users_email_unique_index,
-- enable_rls_update_grants). Only what our schema meets is reproduced: the API roles, the role
-- Supabase Auth connects as (with its `search_path = auth`), the `auth` schema with `auth.users`
-- and the claim functions, and the public schema's grants. The default privileges for new tables
-- are set apart (supabase_project.py), because Supabase has two settings for them.
--
-- Idempotent: roles are cluster-wide (several test databases share them), the rest is per database.

do $$
begin
    -- The roles PostgREST switches to (SET ROLE) from the JWT's `role` claim.
    if not exists (select from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
    -- PostgREST logs in as this role and may become only the roles granted to it.
    if not exists (select from pg_roles where rolname = 'authenticator') then
        create role authenticator login noinherit;
    end if;
    -- Supabase Auth's own role: it owns `auth` and calls the access token hook.
    if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then
        create role supabase_auth_admin login noinherit createrole noreplication;
    end if;
    -- The platform's superuser on Supabase; here a plain role (default privileges name it).
    if not exists (select from pg_roles where rolname = 'supabase_admin') then
        create role supabase_admin nologin;
    end if;
exception
    -- Another test session created the same role a moment ago.
    when duplicate_object or unique_violation then null;
end
$$;

grant anon, authenticated, service_role to authenticator;
alter role supabase_auth_admin set search_path = auth;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

grant usage on schema public to anon, authenticated, service_role;

create schema if not exists auth authorization supabase_auth_admin;
grant usage on schema auth to anon, authenticated, service_role;

-- The columns our triggers and tests touch, as Supabase Auth's migrations leave them.
create table if not exists auth.users (
    instance_id uuid,
    id uuid primary key,
    aud varchar(255),
    role varchar(255),
    email varchar(255),
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    invited_at timestamptz,
    confirmation_sent_at timestamptz,
    last_sign_in_at timestamptz,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_super_admin boolean,
    created_at timestamptz,
    updated_at timestamptz,
    phone text unique default null,
    phone_confirmed_at timestamptz,
    confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
    banned_until timestamptz,
    is_sso_user boolean not null default false,
    deleted_at timestamptz,
    is_anonymous boolean not null default false
);
create unique index if not exists users_email_partial_key on auth.users (email)
    where (is_sso_user = false);
alter table auth.users owner to supabase_auth_admin;
alter table auth.users enable row level security;

-- PostgREST puts the verified JWT's claims in `request.jwt.claims` for the transaction.
create or replace function auth.uid() returns uuid
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;

create or replace function auth.email() returns text
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.email', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
grant all on schema auth to supabase_auth_admin;
