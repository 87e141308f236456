-- sql/local/supabase-compat.sql
--
-- What a plain PostgreSQL 15 lacks and a Supabase project has, for the local
-- stack only (scripts/local-stack.sh and the tests' scratch databases). Never
-- apply it to a Supabase project: there all of this already exists and
-- belongs to Supabase.
--
-- Follows Supabase's own definitions (supabase/postgres migrations and the
-- auth server's schema): the API roles, the `auth` schema with `auth.users`,
-- `auth.uid()`, `auth.role()`, `auth.email()`, `auth.jwt()` reading the claims
-- PostgREST puts in `request.jwt.claims`, the `supabase_realtime` publication,
-- and the event triggers that tell PostgREST to reload its schema cache after
-- DDL. Default privileges are the ones older projects have (every new table in
-- `public` granted to the API roles), the stricter of the two situations for
-- MASTER-DATABASE.sql, which must revoke what it does not want granted.
--
-- Hosted limits it models (docs/local-stack.md; supabase.com/docs
-- guides/database/postgres/timeouts): the API roles' statement
-- timeouts (`anon` 3 s, `authenticated` and `authenticator` 8 s; the global
-- 2-minute limit for every other role is the cluster's `statement_timeout`,
-- set by scripts/local-stack.sh), and `supabase_auth_admin`, the role Supabase
-- Auth connects as: it owns the `auth` objects and holds nothing in `public`.
--
-- Idempotent: safe to run again on a database that already has it.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    -- The local stack's documented development password.
    create role authenticator login noinherit password 'postgres';
  end if;
  if not exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then
    -- As supabase/postgres creates it; the local stack's development password.
    create role supabase_auth_admin login noinherit createrole noreplication password 'postgres';
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

-- Hosted statement timeouts: PostgREST logs in as `authenticator` (8 s for
-- every API request) and applies the impersonated role's own setting.
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role supabase_auth_admin set search_path = auth;

create schema if not exists auth;
create schema if not exists extensions;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema extensions to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;

-- The columns of Supabase's auth.users that SQL in the wild touches.
create table if not exists auth.users (
  instance_id uuid,
  id uuid primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_anonymous boolean not null default false,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
create index if not exists users_email_idx on auth.users (email);
revoke all on auth.users from anon, authenticated;
grant all on auth.users to service_role;

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

grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt()
  to anon, authenticated, service_role;

-- Supabase Auth's role owns what is in `auth` and nothing in `public`
-- (supabase/postgres: "update auth schema permissions"). It keeps the
-- default `usage` on schema public every role has, and no table privilege
-- there: a trigger that a user deletion fires runs with only these rights.
grant all privileges on schema auth to supabase_auth_admin;
grant all privileges on all tables in schema auth to supabase_auth_admin;
grant all privileges on all sequences in schema auth to supabase_auth_admin;
alter table auth.users owner to supabase_auth_admin;
alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;

-- Older projects' defaults: what the postgres role creates in public is
-- granted to the API roles.
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;

do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

-- PostgREST reloads its schema cache when told on the `pgrst` channel;
-- Supabase does it after every DDL statement with these event triggers.
create or replace function extensions.pgrst_ddl_watch() returns event_trigger
language plpgsql
as $$
begin
  notify pgrst, 'reload schema';
end
$$;

create or replace function extensions.pgrst_drop_watch() returns event_trigger
language plpgsql
as $$
begin
  notify pgrst, 'reload schema';
end
$$;

do $$
begin
  if not exists (select 1 from pg_event_trigger where evtname = 'pgrst_ddl_watch') then
    create event trigger pgrst_ddl_watch on ddl_command_end
      execute function extensions.pgrst_ddl_watch();
  end if;
  if not exists (select 1 from pg_event_trigger where evtname = 'pgrst_drop_watch') then
    create event trigger pgrst_drop_watch on sql_drop
      execute function extensions.pgrst_drop_watch();
  end if;
end
$$;
