-- ---------------------------------------------------------------------------
-- Contacts: unique per user on the lower-cased address; naming an
-- organisation creates it.
-- ---------------------------------------------------------------------------

create table if not exists public.contacts (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  email text not null,
  organization_name text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- The normalising trigger below trims and lower-cases; this is the guard.
  constraint contacts_email_normalized check (email = lower(btrim(email)) and email like '_%@_%'),
  constraint contacts_user_email_key unique (user_id, email),
  -- Target of the same-user foreign key from emails_sent.
  constraint contacts_user_id_id_key unique (user_id, id)
);

create index if not exists contacts_user_organization_idx
  on public.contacts (user_id, organization_name, email);

-- Contacts are stored trimmed and lower-cased; an organisation name is kept
-- by the organisation-name rule (blank means none).
create or replace function public.mailsync_normalize_contact()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.email := lower(btrim(new.email));
  new.organization_name := public.mailsync_org_name(new.organization_name);
  return new;
end;
$$;

-- The guide's import step 3, for every writer (the importer, plain SQL, the
-- dashboard): a contact naming an organisation its user does not have yet
-- creates it. Statement-level, so a bulk insert costs one set-wise insert.
-- It runs as the caller: RLS applies to the organisations it creates.
create or replace function public.mailsync_create_missing_organizations()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into public.organizations (user_id, name)
  -- organization_name is kept (normalize_contact): lower() is its key.
  select distinct on (c.user_id, lower(c.organization_name)) c.user_id, c.organization_name
  from new_contacts c
  where c.organization_name is not null
  order by c.user_id, lower(c.organization_name)
  on conflict (user_id, name_key) do nothing;
  return null;
end;
$$;

drop trigger if exists update_contacts_updated_at on public.contacts;
create trigger update_contacts_updated_at before update on public.contacts
  for each row execute function public.mailsync_set_updated_at();
drop trigger if exists normalize_contact on public.contacts;
create trigger normalize_contact before insert or update of email, organization_name on public.contacts
  for each row execute function public.mailsync_normalize_contact();

drop trigger if exists create_missing_organizations_on_insert on public.contacts;
create trigger create_missing_organizations_on_insert after insert on public.contacts
  referencing new table as new_contacts
  for each statement execute function public.mailsync_create_missing_organizations();
drop trigger if exists create_missing_organizations_on_update on public.contacts;
create trigger create_missing_organizations_on_update after update on public.contacts
  referencing new table as new_contacts
  for each statement execute function public.mailsync_create_missing_organizations();

alter table public.contacts enable row level security;
drop policy if exists contacts_select_own on public.contacts;
create policy contacts_select_own on public.contacts
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists contacts_insert_own on public.contacts;
create policy contacts_insert_own on public.contacts
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists contacts_update_own on public.contacts;
create policy contacts_update_own on public.contacts
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists contacts_delete_own on public.contacts;
create policy contacts_delete_own on public.contacts
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.contacts from anon, public;
grant select, insert, update, delete on table public.contacts to authenticated, service_role;
revoke all on function public.mailsync_normalize_contact(), public.mailsync_create_missing_organizations() from anon, public;

-- The spellings the caller's contacts give the organisation that `name`
-- names (`contacts list` and `contacts export` with `--organization`, which
-- then filter on them): a contact keeps the case it was written in, so "ACME
-- corp" and "Acme Corp" are one organisation with two spellings, both sent
-- to by `campaigns send`. One scan of contacts_user_organization_idx.
create or replace function public.contact_organization_spellings(name text)
returns text[]
language sql
stable
security invoker
set search_path = ''
as $$
  -- organization_name is kept (normalize_contact): lower() is its key.
  select coalesce(pg_catalog.array_agg(distinct c.organization_name order by c.organization_name), '{}')
  from public.contacts c
  where c.user_id = (select auth.uid())
    and pg_catalog.lower(c.organization_name) = public.mailsync_org_key($1)
$$;

revoke all on function public.contact_organization_spellings(text) from public, anon;
grant execute on function public.contact_organization_spellings(text) to authenticated, service_role;
