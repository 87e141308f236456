-- mailsync — MASTER-DATABASE.sql (generated: edit its sources, not this file)
--
-- Made by scripts/generate-sql from sql/schema/*.sql (one file per feature, in name order);
-- a test fails when this file is stale.
--
-- Source: sql/schema/00_ownership.sql
-- The email-campaign schema of the "Guide de Synchronisation en Temps Réel":
-- five tables, three analytic views, triggers, Row Level Security, grants and
-- indexes. Run it on a Supabase project (SQL editor, psql, or
-- `mailsync db apply`). It is idempotent: applying it again keeps every row.
--
-- Where the guide is naive, the schema does better, and says so where it does:
--   * views are `security_invoker`: a plain view runs as its owner, who
--     bypasses RLS, and would show every user's rows;
--   * organisations are unique per user (case-insensitive), not globally:
--     a global unique name would leak other users' data and block them;
--   * contacts are unique per user on the lower-cased email;
--   * policies call `(select auth.uid())`, evaluated once per statement
--     rather than once per row;
--   * functions pin `search_path`;
--   * privileges are granted explicitly (Supabase stopped auto-granting new
--     `public` tables to the API roles in 2026; older projects still grant
--     everything): `authenticated` gets what it needs, `anon` nothing;
--   * every row points only at rows of its own user (composite foreign keys);
--   * no materialised views: they cannot carry RLS and go stale.
--
-- It needs no superuser: on a hosted project it runs as `postgres`.

-- ---------------------------------------------------------------------------
-- Ownership. Everything the schema creates, replaces or drops is listed here,
-- and only here, and marked as mailsync's at the end (99_privileges.sql) (a comment starting "Managed by
-- mailsync"). Before anything changes, the check below refuses (SQLSTATE
-- MSOWN, nothing changed) when one of these names is taken by an object that
-- is not mailsync's: a project's own `contacts` table or `send_campaign`
-- function is never replaced. A database set up by an earlier mailsync,
-- before the marks existed, is recognised by its policies (`<table>_select_own`
-- on the five tables of the guide) and taken as mailsync's.
-- To hand one of your objects over to mailsync: `mailsync db apply --adopt
-- NAME`, or `comment on table public.NAME is 'Managed by mailsync'`.
-- Run it in one transaction that stops at the first error (the SQL editor
-- does; psql: `psql -1 -v ON_ERROR_STOP=1 -f sql/MASTER-DATABASE.sql`).
-- ---------------------------------------------------------------------------

create temp table if not exists mailsync_objects (kind text not null, name text not null);
truncate mailsync_objects;
insert into mailsync_objects (kind, name) values
-- mailsync objects: begin
  ('table', 'mailsync_quotas'),
  ('table', 'user_contact_counts'),
  ('table', 'user_daily_queued_counts'),
  ('table', 'delivery_reports'),
  ('function', 'record_delivery_reports(jsonb, integer)'),
  ('function', 'mailsync_parse_delivery_reports(jsonb)'),
  ('function', 'mailsync_fill_report_recipient()'),
  ('table', 'suppressions'),
  ('function', 'mailsync_normalize_suppression()'),
  -- The earlier signature (no `hand`), dropped and replaced.
  ('function', 'claim_emails(uuid, integer, integer, text, text, boolean)'),
  ('function', 'claim_emails(uuid, integer, integer, text, text, boolean, boolean)'),
  ('function', 'release_worker_emails(text, uuid[])'),
  ('table', 'email_claims'),
  ('function', 'mailsync_expire_email_claims(uuid, text)'),
  -- The earlier signature (outcomes only), dropped and replaced.
  ('function', 'record_email_outcomes(jsonb, text)'),
  ('function', 'record_email_outcomes(jsonb, text, uuid[])'),
  ('function', 'settle_unknown_emails(uuid, text, integer)'),
  ('function', 'extend_email_leases(uuid[], text, integer)'),
  ('function', 'unknown_emails(uuid, integer)'),
  -- Before the tables: its result is an email_campaigns row.
  ('function', 'lock_campaign_to_send(uuid, text)'),
  ('function', 'queue_send_recipients(uuid, uuid, text, uuid, integer)'),
  ('view', 'campaign_analytics'),
  ('view', 'contact_analytics'),
  ('view', 'dashboard_analytics'),
  ('table', 'campaign_live'),
  ('table', 'campaign_sends'),
  ('table', 'user_daily_sent_counts'),
  ('table', 'campaign_email_counts'),
  ('table', 'email_templates'),
  ('table', 'emails_sent'),
  ('table', 'email_campaigns'),
  ('table', 'contacts'),
  ('table', 'organizations'),
  ('function', 'mailsync_user_quotas(uuid)'),
  ('function', 'mailsync_count_added_contacts()'),
  ('function', 'mailsync_count_removed_contacts()'),
  ('function', 'mailsync_count_queued_emails()'),
  ('function', 'mailsync_set_updated_at()'),
  ('function', 'mailsync_org_name(text)'),
  ('function', 'mailsync_org_key(text)'),
  ('function', 'organization_named(text)'),
  ('function', 'contact_organization_spellings(text)'),
  ('function', 'mailsync_normalize_contact()'),
  ('function', 'mailsync_normalize_organization()'),
  ('function', 'mailsync_create_missing_organizations()'),
  ('function', 'mailsync_fill_recipient()'),
  ('function', 'mailsync_set_email_status_timestamps()'),
  ('function', 'mailsync_count_inserted_emails()'),
  ('function', 'mailsync_count_updated_emails()'),
  ('function', 'mailsync_count_deleted_emails()'),
  ('function', 'mailsync_clear_email_counts()'),
  ('function', 'import_rows(jsonb)'),
  ('function', 'import_contacts(jsonb)'),
  ('function', 'resolve_send_organization(uuid, text)'),
  ('function', 'send_recipients(uuid, text, uuid, integer)'),
  ('function', 'count_send_recipients(text)'),
  ('function', 'queue_campaign_page(uuid, text, integer)'),
  ('function', 'send_campaign(uuid, text)'),
  ('function', 'mailsync_complete_settled_campaign()'),
  ('function', 'mailsync_refresh_email_statistics()'),
  ('function', 'mailsync_track_campaign_live()'),
  ('index', 'contacts_user_organization_idx'),
  ('index', 'email_campaigns_user_status_idx'),
  ('index', 'emails_sent_user_campaign_idx'),
  ('index', 'email_claims_user_campaign_idx'),
  ('index', 'email_claims_user_worker_idx'),
  ('index', 'emails_sent_user_contact_cover_idx'),
  ('index', 'campaign_email_counts_user_campaign_idx'),
  ('index', 'emails_sent_unsettled_idx'),
  ('index', 'campaign_live_user_campaign_idx'),
  ('index', 'emails_sent_user_message_id_idx'),
  ('index', 'delivery_reports_user_email_idx'),
  ('index', 'delivery_reports_email_idx'),
  ('index', 'delivery_reports_user_recipient_idx'),
  ('index', 'mailsync_quotas_default_idx')
-- mailsync objects: end
;

do $$
declare
  -- An earlier mailsync's schema: its own policies on the five guide tables.
  earlier boolean := (
    select count(*) = 5 from pg_catalog.pg_policies p
    where p.schemaname = 'public' and p.policyname = p.tablename || '_select_own'
      and p.tablename in ('organizations', 'contacts', 'email_campaigns', 'emails_sent', 'email_templates'));
  taken text;
begin
  select string_agg(format('%s public.%s', o.kind, o.name), ', ' order by o.kind, o.name)
    into taken
  from mailsync_objects o
  left join pg_catalog.pg_class c
    on o.kind in ('table', 'view', 'index') and c.oid = to_regclass('public.' || quote_ident(o.name))
  left join pg_catalog.pg_proc p
    on o.kind = 'function' and p.oid = to_regprocedure(case when o.kind = 'function' then 'public.' || o.name end)
  where case o.kind
    when 'table' then c.oid is not null and (c.relkind not in ('r', 'p')
      or not (earlier or coalesce(pg_catalog.obj_description(c.oid, 'pg_class') like 'Managed by mailsync%', false)))
    when 'view' then c.oid is not null and (c.relkind <> 'v'
      or not (earlier or coalesce(pg_catalog.obj_description(c.oid, 'pg_class') like 'Managed by mailsync%', false)))
    when 'function' then p.oid is not null
      and not (earlier or coalesce(pg_catalog.obj_description(p.oid, 'pg_proc') like 'Managed by mailsync%', false))
    -- An index is mailsync's when it indexes a mailsync table.
    when 'index' then c.oid is not null and not exists (
      select 1 from pg_catalog.pg_index i
      join pg_catalog.pg_class t on t.oid = i.indrelid
      join pg_catalog.pg_namespace n on n.oid = t.relnamespace
      where i.indexrelid = c.oid and n.nspname = 'public'
        and t.relname in (select m.name from mailsync_objects m where m.kind = 'table'))
    else false
  end;
  if taken is not null then
    raise exception 'these names are taken by objects that are not mailsync''s, so nothing was changed: %', taken
      using errcode = 'MSOWN',
            detail = 'mailsync only drops or replaces objects marked as its own (a comment starting "Managed by mailsync").',
            hint = 'rename or move your objects; or, to let mailsync take one over (and change or drop it), mailsync db apply --adopt NAME';
  end if;
end;
$$;

-- Source: sql/schema/01_shared.sql
-- ---------------------------------------------------------------------------
-- Shared by every feature: the `updated_at` trigger function and the
-- organisation-name rule (search_path pinned; everything schema-qualified).
-- ---------------------------------------------------------------------------

create or replace function public.mailsync_set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

revoke all on function public.mailsync_set_updated_at() from anon, public;

-- ---------------------------------------------------------------------------
-- The organisation-name rule, written once.
--
-- A name is kept as written, trimmed, with every run of white space as one
-- space; a blank name is no organisation (`mailsync_org_name`). White space
-- is Unicode's White_Space, listed here rather than left to `\s`, whose
-- meaning follows the database's locale (under C.UTF-8 it misses the
-- no-break spaces U+00A0 and U+202F that French text is full of): tab, line
-- feed, vertical tab, form feed, carriage return, space, U+0085, U+00A0,
-- U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. Zero-width
-- characters (U+200B, U+FEFF) are not white space. Two names
-- are the same organisation when their keys are equal: the kept name,
-- lower-cased (`mailsync_org_key`). Accents count ("Équipe" is not
-- "Equipe", "ÉQUIPE" is "équipe"); `_`, `%` and `\` are characters like
-- any other: nothing matches by pattern.
-- The triggers below store `organizations.name` and
-- `contacts.organization_name` kept, so `organizations.name_key` is the key
-- of an organisation and `lower(organization_name)` the key of a contact's
-- (bulk paths use that, rather than calling the function once per row).
-- Used by the triggers, `import_contacts` (`mailsync import` sends the cells
-- as read and leaves the rule to it), `send_recipients` (`send_campaign`,
-- `queue_campaign_page`), `count_send_recipients` (the count `mailsync
-- campaigns send` asks about), `organization_named` and
-- `contact_organization_spellings` (`--organization`).
-- ---------------------------------------------------------------------------

create or replace function public.mailsync_org_name(name text)
returns text
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
begin
  return nullif(pg_catalog.btrim(pg_catalog.regexp_replace(
    name, '[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+', ' ', 'g')), '');
end;
$$;

create or replace function public.mailsync_org_key(name text)
returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
  select pg_catalog.lower(public.mailsync_org_name(name));
$$;

revoke all on function public.mailsync_org_name(text), public.mailsync_org_key(text) from public, anon;
grant execute on function public.mailsync_org_name(text), public.mailsync_org_key(text) to authenticated, service_role;

-- Source: sql/schema/02_organizations.sql
-- ---------------------------------------------------------------------------
-- Organisations: unique per user and case-insensitive, named by the
-- organisation-name rule.
-- ---------------------------------------------------------------------------

create table if not exists public.organizations (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null,
  -- Uniqueness is per user and case-insensitive; a stored key column (rather
  -- than an expression index) lets PostgREST's `on_conflict` name it.
  name_key text generated always as (lower(name)) stored,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint organizations_name_not_blank check (btrim(name) <> ''),
  constraint organizations_user_name_key unique (user_id, name_key)
);

create or replace function public.mailsync_normalize_organization()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- A blank name becomes '', for the check constraint to refuse.
  if new.name is not null then
    new.name := coalesce(public.mailsync_org_name(new.name), '');
  end if;
  return new;
end;
$$;

drop trigger if exists update_organizations_updated_at on public.organizations;
create trigger update_organizations_updated_at before update on public.organizations
  for each row execute function public.mailsync_set_updated_at();
drop trigger if exists normalize_organization on public.organizations;
create trigger normalize_organization before insert or update of name on public.organizations
  for each row execute function public.mailsync_normalize_organization();

alter table public.organizations enable row level security;
drop policy if exists organizations_select_own on public.organizations;
create policy organizations_select_own on public.organizations
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists organizations_insert_own on public.organizations;
create policy organizations_insert_own on public.organizations
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists organizations_update_own on public.organizations;
create policy organizations_update_own on public.organizations
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists organizations_delete_own on public.organizations;
create policy organizations_delete_own on public.organizations
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.organizations from anon, public;
grant select, insert, update, delete on table public.organizations to authenticated, service_role;
revoke all on function public.mailsync_normalize_organization() from anon, public;

-- The caller's organisation that `name` names, spelled as stored, or null.
create or replace function public.organization_named(name text)
returns text
language sql
stable
security invoker
set search_path = ''
as $$
  -- `$1`: in SQL, `name` would be the column o.name.
  select o.name from public.organizations o
  where o.user_id = (select auth.uid()) and o.name_key = public.mailsync_org_key($1)
$$;

revoke all on function public.organization_named(text) from public, anon;
grant execute on function public.organization_named(text) to authenticated, service_role;

-- Source: sql/schema/03_contacts.sql
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

-- Source: sql/schema/04_campaigns.sql
-- ---------------------------------------------------------------------------
-- Campaigns.
-- ---------------------------------------------------------------------------

create table if not exists public.email_campaigns (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null,
  subject text not null default '',
  content text not null default '',
  status text not null default 'draft',
  started_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint email_campaigns_status_check
    check (status in ('draft', 'scheduled', 'sending', 'sent', 'failed')),
  constraint email_campaigns_user_id_id_key unique (user_id, id)
);

create index if not exists email_campaigns_user_status_idx on public.email_campaigns (user_id, status);

drop trigger if exists update_email_campaigns_updated_at on public.email_campaigns;
create trigger update_email_campaigns_updated_at before update on public.email_campaigns
  for each row execute function public.mailsync_set_updated_at();
alter table public.email_campaigns enable row level security;
drop policy if exists email_campaigns_select_own on public.email_campaigns;
create policy email_campaigns_select_own on public.email_campaigns
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists email_campaigns_insert_own on public.email_campaigns;
create policy email_campaigns_insert_own on public.email_campaigns
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists email_campaigns_update_own on public.email_campaigns;
create policy email_campaigns_update_own on public.email_campaigns
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists email_campaigns_delete_own on public.email_campaigns;
create policy email_campaigns_delete_own on public.email_campaigns
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.email_campaigns from anon, public;
grant select, insert, update, delete on table public.email_campaigns to authenticated, service_role;

-- Source: sql/schema/05_emails.sql
-- ---------------------------------------------------------------------------
-- Emails sent: one row per recipient of a campaign. Every foreign key and
-- every filter the views and commands use is indexed.
-- ---------------------------------------------------------------------------

create table if not exists public.emails_sent (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  campaign_id uuid not null,
  contact_id uuid,
  recipient_email text not null,
  recipient_organization text,
  status text not null default 'pending',
  sent_at timestamptz,
  delivered_at timestamptz,
  error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint emails_sent_status_check
    check (status in ('pending', 'sending', 'sent', 'delivered', 'failed', 'bounced')),
  -- Composite keys: an email of user B can never reference user A's
  -- campaign or contact, whatever the caller sends.
  constraint emails_sent_campaign_fkey foreign key (user_id, campaign_id)
    references public.email_campaigns (user_id, id) on delete cascade,
  -- Deleting a contact keeps the history of what was sent to it.
  constraint emails_sent_contact_fkey foreign key (user_id, contact_id)
    references public.contacts (user_id, id) on delete set null (contact_id)
);

create index if not exists emails_sent_user_campaign_idx on public.emails_sent (user_id, campaign_id);
-- Covers contact_analytics: a contact's counts come from the index alone.
do $$ begin  -- only mailsync's: an index of this name on another table is left alone
  if exists (select 1 from pg_catalog.pg_index i where i.indexrelid = to_regclass('public.emails_sent_user_contact_idx')
             and i.indrelid = 'public.emails_sent'::regclass) then
    drop index public.emails_sent_user_contact_idx;
  end if;
end $$;
create index if not exists emails_sent_user_contact_cover_idx
  on public.emails_sent (user_id, contact_id) include (status, sent_at);
-- campaign_analytics reads counters, not emails: no (campaign_id, status) index.
do $$ begin  -- only mailsync's: an index of this name on another table is left alone
  if exists (select 1 from pg_catalog.pg_index i where i.indexrelid = to_regclass('public.emails_sent_campaign_status_idx')
             and i.indrelid = 'public.emails_sent'::regclass) then
    drop index public.emails_sent_campaign_status_idx;
  end if;
end $$;
-- emails_sent_today reads day buckets now (see 07_analytics.sql).
do $$ begin  -- only mailsync's: an index of this name on another table is left alone
  if exists (select 1 from pg_catalog.pg_index i where i.indexrelid = to_regclass('public.emails_sent_user_sent_at_idx')
             and i.indrelid = 'public.emails_sent'::regclass) then
    drop index public.emails_sent_user_sent_at_idx;
  end if;
end $$;

-- Fills emails_sent.recipient_organization (and a missing recipient_email)
-- from the contact, when the writer did not.
create or replace function public.mailsync_fill_recipient()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  contact_org text;
  contact_email text;
begin
  if new.contact_id is not null
     and (new.recipient_organization is null or new.recipient_email is null
          or (tg_op = 'UPDATE' and new.contact_id is distinct from old.contact_id)) then
    -- Runs as the writer: a contact the writer cannot see is not found, and
    -- the composite foreign key then refuses the row.
    select c.organization_name, c.email
      into contact_org, contact_email
      from public.contacts c
     where c.id = new.contact_id and c.user_id = new.user_id;
    if found then
      new.recipient_organization := coalesce(new.recipient_organization, contact_org);
      new.recipient_email := coalesce(new.recipient_email, contact_email);
    end if;
  end if;
  return new;
end;
$$;

-- `sent_at` is set as an email leaves the sender (sent, delivered, bounced)
-- and `delivered_at` as it is delivered, unless the writer set them.
create or replace function public.mailsync_set_email_status_timestamps()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status in ('sent', 'delivered', 'bounced') and new.sent_at is null then
    new.sent_at := now();
  end if;
  if new.status = 'delivered' and new.delivered_at is null then
    new.delivered_at := now();
  end if;
  return new;
end;
$$;

-- (Called unless the writer set `updated_at` to now() itself, which the
-- batch writers of delivery do: they pay no function call per row. Any
-- other value written is replaced by now(), so the column is always the
-- time of the last update, whoever writes it.)
drop trigger if exists update_emails_sent_updated_at on public.emails_sent;
create trigger update_emails_sent_updated_at before update on public.emails_sent
  for each row
  when (new.updated_at is distinct from now())
  execute function public.mailsync_set_updated_at();
drop trigger if exists update_recipient_organization on public.emails_sent;
create trigger update_recipient_organization before insert or update of contact_id on public.emails_sent
  for each row execute function public.mailsync_fill_recipient();

-- (Called only when there is something to set: a batch of claims or of
-- outcomes that set their own timestamps pays no function call per row.)
drop trigger if exists set_email_status_timestamps on public.emails_sent;
create trigger set_email_status_timestamps before insert or update of status on public.emails_sent
  for each row
  when ((new.status in ('sent', 'delivered', 'bounced') and new.sent_at is null)
        or (new.status = 'delivered' and new.delivered_at is null))
  execute function public.mailsync_set_email_status_timestamps();

alter table public.emails_sent enable row level security;
drop policy if exists emails_sent_select_own on public.emails_sent;
create policy emails_sent_select_own on public.emails_sent
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists emails_sent_insert_own on public.emails_sent;
create policy emails_sent_insert_own on public.emails_sent
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists emails_sent_update_own on public.emails_sent;
create policy emails_sent_update_own on public.emails_sent
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists emails_sent_delete_own on public.emails_sent;
create policy emails_sent_delete_own on public.emails_sent
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.emails_sent from anon, public;
grant select, insert, update, delete on table public.emails_sent to authenticated, service_role;
revoke all on function public.mailsync_fill_recipient(), public.mailsync_set_email_status_timestamps() from anon, public;

-- Source: sql/schema/06_templates.sql
-- ---------------------------------------------------------------------------
-- Templates.
-- ---------------------------------------------------------------------------

create table if not exists public.email_templates (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null,
  subject text not null default '',
  content text not null default '',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint email_templates_user_name_key unique (user_id, name)
);

drop trigger if exists update_email_templates_updated_at on public.email_templates;
create trigger update_email_templates_updated_at before update on public.email_templates
  for each row execute function public.mailsync_set_updated_at();

alter table public.email_templates enable row level security;
drop policy if exists email_templates_select_own on public.email_templates;
create policy email_templates_select_own on public.email_templates
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists email_templates_insert_own on public.email_templates;
create policy email_templates_insert_own on public.email_templates
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists email_templates_update_own on public.email_templates;
create policy email_templates_update_own on public.email_templates
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists email_templates_delete_own on public.email_templates;
create policy email_templates_delete_own on public.email_templates
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.email_templates from anon, public;
grant select, insert, update, delete on table public.email_templates to authenticated, service_role;

-- Source: sql/schema/07_analytics.sql
-- ---------------------------------------------------------------------------
-- Live counters behind the analytic views, so that reading them costs the
-- same at 10 million emails as at 20 thousand. (The guide's "vues
-- matérialisées" cannot carry RLS and are stale between refreshes.)
--
-- Statement-level triggers with transition tables keep, in the same
-- transaction as the write, per-campaign counts by status and per-user
-- counts of emails sent per UTC day: one upsert per (campaign, shard) per
-- statement, not one per row. A rolled-back write rolls its counts back.
--
-- Counters are sharded: a transaction adds to one of 16 rows per campaign
-- (chosen by its transaction id), and the views sum the shards. Writers
-- updating one big campaign from several connections then rarely touch the
-- same row, instead of queueing on a single hot one.
--
-- The tables carry RLS like every other table; `authenticated` may only read
-- its own rows. The trigger functions that write them are `security definer`
-- (owned by the schema's owner, `search_path` pinned) so that users cannot
-- write counts themselves and so cannot make them lie.
-- ---------------------------------------------------------------------------

create table if not exists public.campaign_email_counts (
  campaign_id uuid not null,
  shard smallint not null,
  user_id uuid not null,
  total bigint not null default 0,
  pending bigint not null default 0,
  sending bigint not null default 0,
  sent bigint not null default 0,
  delivered bigint not null default 0,
  failed bigint not null default 0,
  bounced bigint not null default 0,
  primary key (campaign_id, shard),
  constraint campaign_email_counts_campaign_fkey foreign key (user_id, campaign_id)
    references public.email_campaigns (user_id, id) on delete cascade
);
create index if not exists campaign_email_counts_user_campaign_idx
  on public.campaign_email_counts (user_id, campaign_id);

create table if not exists public.user_daily_sent_counts (
  user_id uuid not null references auth.users (id) on delete cascade,
  day date not null,
  shard smallint not null,
  emails bigint not null default 0,
  primary key (user_id, day, shard)
);

-- Counter rows are rewritten on every write: room on each page keeps those
-- updates HOT (no index work).
alter table public.campaign_email_counts set (fillfactor = 50);
alter table public.user_daily_sent_counts set (fillfactor = 50);
alter table public.campaign_email_counts enable row level security;
alter table public.user_daily_sent_counts enable row level security;
drop policy if exists campaign_email_counts_select_own on public.campaign_email_counts;
create policy campaign_email_counts_select_own on public.campaign_email_counts
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists user_daily_sent_counts_select_own on public.user_daily_sent_counts;
create policy user_daily_sent_counts_select_own on public.user_daily_sent_counts
  for select to authenticated using (user_id = (select auth.uid()));

revoke all on table public.campaign_email_counts, public.user_daily_sent_counts
  from anon, authenticated, public;
grant select on table public.campaign_email_counts, public.user_daily_sent_counts
  to authenticated;
grant select, insert, update, delete on table public.campaign_email_counts,
  public.user_daily_sent_counts to service_role;

-- Counts the emails a statement inserted. (An inserted or updated email's
-- campaign and user exist: the foreign keys say so; only deletes, which can
-- cascade from a campaign or a user, need to check.)
create or replace function public.mailsync_count_inserted_emails()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  s smallint := (pg_catalog.txid_current() % 16)::smallint;  -- this transaction's shard
begin
  with changes as (
    select n.user_id, n.campaign_id, n.status, n.sent_at, 1 as sign from new_rows n
  ), campaigns as (
    insert into public.campaign_email_counts as c
      (campaign_id, shard, user_id, total, pending, sending, sent, delivered, failed, bounced)
    select d.campaign_id, s, d.user_id,
           sum(d.sign),
           coalesce(sum(d.sign) filter (where d.status = 'pending'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'sending'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'sent'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'delivered'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'failed'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'bounced'), 0)
    from changes d
    group by d.campaign_id, d.user_id
    order by d.campaign_id
    on conflict (campaign_id, shard) do update set
      total = c.total + excluded.total,
      pending = c.pending + excluded.pending,
      sending = c.sending + excluded.sending,
      sent = c.sent + excluded.sent,
      delivered = c.delivered + excluded.delivered,
      failed = c.failed + excluded.failed,
      bounced = c.bounced + excluded.bounced
  )
  insert into public.user_daily_sent_counts as u (user_id, day, shard, emails)
  select d.user_id, (d.sent_at at time zone 'utc')::date, s, sum(d.sign)
  from changes d
  where d.sent_at is not null
  group by d.user_id, (d.sent_at at time zone 'utc')::date
  having sum(d.sign) <> 0
  order by 1, 2
  on conflict (user_id, day, shard) do update set emails = u.emails + excluded.emails;
  -- Tell live watchers (see campaign_live below), at most every 1.5 s.
  update public.campaign_live l
     set changed_at = pg_catalog.clock_timestamp()
   where l.id in (
     select k.id from public.campaign_live k
     where k.campaign_id in (select distinct r.campaign_id from new_rows r)
       and k.changed_at < pg_catalog.clock_timestamp() - interval '1.5 seconds'
     order by k.id
     for update skip locked);
  return null;
end;
$$;

-- Moves the counts of the emails a statement updated: -1 for each row as
-- it was, +1 as it is, for the rows whose counted fields changed.
create or replace function public.mailsync_count_updated_emails()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  s smallint := (pg_catalog.txid_current() % 16)::smallint;  -- this transaction's shard
begin
  with changes as (
    select x.user_id, x.campaign_id, x.status, x.sent_at, x.sign
    from old_rows o
    full join new_rows n on n.id = o.id
    cross join lateral (values
      (o.user_id, o.campaign_id, o.status, o.sent_at, -1),
      (n.user_id, n.campaign_id, n.status, n.sent_at, 1)) as x(user_id, campaign_id, status, sent_at, sign)
    where x.campaign_id is not null
      and (o.id is null or n.id is null
           or (o.campaign_id, o.status, o.sent_at, o.user_id)
              is distinct from (n.campaign_id, n.status, n.sent_at, n.user_id))
  ), campaigns as (
    insert into public.campaign_email_counts as c
      (campaign_id, shard, user_id, total, pending, sending, sent, delivered, failed, bounced)
    select d.campaign_id, s, d.user_id,
           sum(d.sign),
           coalesce(sum(d.sign) filter (where d.status = 'pending'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'sending'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'sent'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'delivered'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'failed'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'bounced'), 0)
    from changes d
    group by d.campaign_id, d.user_id
    order by d.campaign_id
    on conflict (campaign_id, shard) do update set
      total = c.total + excluded.total,
      pending = c.pending + excluded.pending,
      sending = c.sending + excluded.sending,
      sent = c.sent + excluded.sent,
      delivered = c.delivered + excluded.delivered,
      failed = c.failed + excluded.failed,
      bounced = c.bounced + excluded.bounced
  )
  insert into public.user_daily_sent_counts as u (user_id, day, shard, emails)
  select d.user_id, (d.sent_at at time zone 'utc')::date, s, sum(d.sign)
  from changes d
  where d.sent_at is not null
  group by d.user_id, (d.sent_at at time zone 'utc')::date
  having sum(d.sign) <> 0
  order by 1, 2
  on conflict (user_id, day, shard) do update set emails = u.emails + excluded.emails;
  -- Tell live watchers (see campaign_live below), at most every 1.5 s.
  update public.campaign_live l
     set changed_at = pg_catalog.clock_timestamp()
   where l.id in (
     select k.id from public.campaign_live k
     where k.campaign_id in (select distinct r.campaign_id from new_rows r)
       and k.changed_at < pg_catalog.clock_timestamp() - interval '1.5 seconds'
     order by k.id
     for update skip locked);
  return null;
end;
$$;

-- Takes back the counts of the emails a statement deleted.
create or replace function public.mailsync_count_deleted_emails()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  s smallint := (pg_catalog.txid_current() % 16)::smallint;  -- this transaction's shard
begin
  with changes as (
    select o.user_id, o.campaign_id, o.status, o.sent_at, -1 as sign from old_rows o
  ), campaigns as (
    insert into public.campaign_email_counts as c
      (campaign_id, shard, user_id, total, pending, sending, sent, delivered, failed, bounced)
    select d.campaign_id, s, d.user_id,
           sum(d.sign),
           coalesce(sum(d.sign) filter (where d.status = 'pending'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'sending'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'sent'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'delivered'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'failed'), 0),
           coalesce(sum(d.sign) filter (where d.status = 'bounced'), 0)
    from changes d
    -- A campaign deleted by this statement takes its counters with it.
    where exists (select 1 from public.email_campaigns ec where ec.id = d.campaign_id)
    group by d.campaign_id, d.user_id
    order by d.campaign_id
    on conflict (campaign_id, shard) do update set
      total = c.total + excluded.total,
      pending = c.pending + excluded.pending,
      sending = c.sending + excluded.sending,
      sent = c.sent + excluded.sent,
      delivered = c.delivered + excluded.delivered,
      failed = c.failed + excluded.failed,
      bounced = c.bounced + excluded.bounced
  )
  insert into public.user_daily_sent_counts as u (user_id, day, shard, emails)
  select d.user_id, (d.sent_at at time zone 'utc')::date, s, sum(d.sign)
  from changes d
  where d.sent_at is not null
    and exists (select 1 from auth.users au where au.id = d.user_id)
  group by d.user_id, (d.sent_at at time zone 'utc')::date
  having sum(d.sign) <> 0
  order by 1, 2
  on conflict (user_id, day, shard) do update set emails = u.emails + excluded.emails;
  -- Tell live watchers (see campaign_live below), at most every 1.5 s.
  update public.campaign_live l
     set changed_at = pg_catalog.clock_timestamp()
   where l.id in (
     select k.id from public.campaign_live k
     where k.campaign_id in (select distinct r.campaign_id from old_rows r)
       and k.changed_at < pg_catalog.clock_timestamp() - interval '1.5 seconds'
     order by k.id
     for update skip locked);
  return null;
end;
$$;

create or replace function public.mailsync_clear_email_counts()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from public.campaign_email_counts;
  delete from public.user_daily_sent_counts;
  return null;
end;
$$;

drop trigger if exists count_emails_on_insert on public.emails_sent;
create trigger count_emails_on_insert after insert on public.emails_sent
  referencing new table as new_rows
  for each statement execute function public.mailsync_count_inserted_emails();
drop trigger if exists count_emails_on_update on public.emails_sent;
create trigger count_emails_on_update after update on public.emails_sent
  referencing old table as old_rows new table as new_rows
  for each statement execute function public.mailsync_count_updated_emails();
drop trigger if exists count_emails_on_delete on public.emails_sent;
create trigger count_emails_on_delete after delete on public.emails_sent
  referencing old table as old_rows
  for each statement execute function public.mailsync_count_deleted_emails();
drop trigger if exists count_emails_on_truncate on public.emails_sent;
create trigger count_emails_on_truncate after truncate on public.emails_sent
  for each statement execute function public.mailsync_clear_email_counts();

revoke all on function public.mailsync_count_inserted_emails(),
  public.mailsync_count_updated_emails(), public.mailsync_count_deleted_emails(), public.mailsync_clear_email_counts()
  from public, anon, authenticated;

-- Counters start from what is there when they are first created (upgrading
-- a database that already has emails); from then on the triggers keep them.
do $$
begin
  if not exists (select 1 from public.campaign_email_counts)
     and exists (select 1 from public.emails_sent) then
    lock table public.emails_sent in share mode;
    insert into public.campaign_email_counts
      (campaign_id, shard, user_id, total, pending, sending, sent, delivered, failed, bounced)
    select e.campaign_id, 0, e.user_id, count(*),
           count(*) filter (where e.status = 'pending'),
           count(*) filter (where e.status = 'sending'),
           count(*) filter (where e.status = 'sent'),
           count(*) filter (where e.status = 'delivered'),
           count(*) filter (where e.status = 'failed'),
           count(*) filter (where e.status = 'bounced')
    from public.emails_sent e
    group by e.campaign_id, e.user_id;
    insert into public.user_daily_sent_counts (user_id, day, shard, emails)
    select e.user_id, (e.sent_at at time zone 'utc')::date, 0, count(*)
    from public.emails_sent e
    where e.sent_at is not null
    group by 1, 2;
  end if;
end;
$$;

-- ---------------------------------------------------------------------------
-- Analytic views: plain views, `security_invoker`, so the caller's RLS
-- applies to every row they read.
-- ---------------------------------------------------------------------------

drop view if exists public.campaign_analytics;
drop view if exists public.contact_analytics;
drop view if exists public.dashboard_analytics;

create view public.campaign_analytics with (security_invoker = true) as
select
  c.id as campaign_id,
  c.name as campaign_name,
  c.subject,
  c.status as campaign_status,
  c.user_id,
  c.created_at,
  c.started_at,
  c.completed_at,
  coalesce(s.total, 0)::bigint as total_emails,
  coalesce(s.pending, 0)::bigint as pending_count,
  coalesce(s.sending, 0)::bigint as sending_count,
  coalesce(s.sent, 0)::bigint as sent_count,
  coalesce(s.delivered, 0)::bigint as delivered_count,
  coalesce(s.failed, 0)::bigint as failed_count,
  coalesce(s.bounced, 0)::bigint as bounced_count,
  case when coalesce(s.total, 0) = 0 then 0.00::numeric
       else round(100.0 * (s.sent + s.delivered) / s.total, 2) end as success_rate,
  case when coalesce(s.total, 0) = 0 then 0.00::numeric
       else round(100.0 * (s.total - s.pending - s.sending) / s.total, 2) end as progress
from public.email_campaigns c
left join lateral (
  -- The counters' shards, not the emails: a handful of rows per campaign.
  select
    sum(k.total) as total,
    sum(k.pending) as pending,
    sum(k.sending) as sending,
    sum(k.sent) as sent,
    sum(k.delivered) as delivered,
    sum(k.failed) as failed,
    sum(k.bounced) as bounced
  from public.campaign_email_counts k
  where k.campaign_id = c.id and k.user_id = c.user_id
) s on true;

create view public.contact_analytics with (security_invoker = true) as
select
  ct.id as contact_id,
  ct.email,
  ct.organization_name,
  ct.user_id,
  coalesce(s.received, 0)::bigint as emails_received,
  coalesce(s.delivered, 0)::bigint as emails_delivered,
  case when coalesce(s.received, 0) = 0 then 0.00::numeric
       else round(100.0 * s.delivered / s.received, 2) end as delivery_rate,
  s.last_sent_at
from public.contacts ct
left join lateral (
  select
    count(*) as received,
    count(*) filter (where e.status = 'delivered') as delivered,
    max(e.sent_at) as last_sent_at
  from public.emails_sent e
  where e.user_id = ct.user_id and e.contact_id = ct.id
) s on true;

-- One row for the calling user, zeros when they have no data yet.
create view public.dashboard_analytics with (security_invoker = true) as
select
  me.user_id,
  (select count(*) from public.contacts c where c.user_id = me.user_id)::bigint as total_contacts,
  (select count(*) from public.organizations o where o.user_id = me.user_id)::bigint as total_organizations,
  (select count(*) from public.email_campaigns c
    where c.user_id = me.user_id and c.status in ('scheduled', 'sending'))::bigint as active_campaigns,
  -- Emails whose sent_at falls on today's UTC date, from the day buckets.
  (select coalesce(sum(d.emails), 0) from public.user_daily_sent_counts d
    where d.user_id = me.user_id and d.day = (now() at time zone 'utc')::date)::bigint
    as emails_sent_today
from (select auth.uid() as user_id) me
where me.user_id is not null;

revoke all on table public.campaign_analytics, public.contact_analytics,
  public.dashboard_analytics from anon, public;
grant select on table public.campaign_analytics, public.contact_analytics,
  public.dashboard_analytics to authenticated, service_role;

-- Source: sql/schema/08_import.sql
-- ---------------------------------------------------------------------------
-- Import (`mailsync import`): one call per batch of rows, through PostgREST
-- with the user's JWT (`POST /rest/v1/rpc/import_contacts`).
-- ---------------------------------------------------------------------------

-- Upserts a batch of contacts and the organisations they name, set-wise, as
-- the caller (security invoker: RLS applies to every row it reads or
-- writes), and returns exact counts. One call is one transaction: a batch is
-- written entirely or not at all, and calling it again with the same rows
-- changes nothing (0 created, 0 updated).
--
-- `rows` is a JSON array of {"email": text, "organization": text|null}.
-- Within a batch the last row of an email wins. An empty organisation does
-- not clear the organisation a contact already has. An organisation is
-- matched case-insensitively among the caller's own; a contact takes the
-- spelling of the organisation that already exists.
-- The rows of a batch, normalised as the triggers would, one per email
-- (the last one wins).
create or replace function public.import_rows(rows jsonb)
returns table (email text, organization text)
language sql
immutable
set search_path = ''
as $$
  with input as (
    select lower(btrim(r.value ->> 'email')) as email,
           r.value ->> 'organization' as written,
           r.ordinality
    from pg_catalog.jsonb_array_elements(rows) with ordinality as r(value, ordinality)
  ), spelling as (
    -- The organisation-name rule, once per distinct spelling of the batch.
    select w.written, public.mailsync_org_name(w.written) as organization
    from (select distinct i.written from input i where i.written is not null) w
  )
  select distinct on (input.email) input.email, spelling.organization
  from input
  left join spelling on spelling.written = input.written
  where input.email is not null and input.email <> ''
  order by input.email, input.ordinality desc
$$;

create or replace function public.import_contacts(rows jsonb)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  me uuid := auth.uid();
  orgs_created bigint;
  created bigint;
  updated bigint;
  total bigint;
begin
  if me is null then
    raise exception 'import_contacts needs a signed-in user' using errcode = '42501';
  end if;
  if jsonb_typeof(rows) is distinct from 'array' then
    raise exception 'import_contacts expects a JSON array of rows' using errcode = '22023';
  end if;
  -- Bounded, like every array an API function takes (see 13_limits.sql).
  if pg_catalog.jsonb_array_length(rows) > 50000 then
    raise exception 'import_contacts takes at most 50000 rows per call, not %', pg_catalog.jsonb_array_length(rows)
      using errcode = '22023', hint = 'send the rows in batches (mailsync import sends 5000 at a time)';
  end if;

  -- The guide's step 3: the organisations that are missing, inserted in a
  -- fixed order so that concurrent imports take their locks in one order.
  with wanted as (
    select distinct on (lower(b.organization)) b.organization as name
    from public.import_rows(rows) b
    where b.organization is not null
    order by lower(b.organization), b.organization
  ), inserted as (
    insert into public.organizations (user_id, name)
    select me, w.name from wanted w order by lower(w.name)
    on conflict (user_id, name_key) do nothing
    returning 1
  )
  select count(*) into orgs_created from inserted;

  -- Then the contacts. `xmax = 0` tells a row this statement inserted from
  -- one it updated; rows whose organisation is already right are neither
  -- updated nor returned: they are the unchanged ones.
  with batch as (
    select b.email, o.name as organization
    from public.import_rows(rows) b
    left join public.organizations o
      -- b.organization is kept (import_rows): lower() is its key.
      on o.user_id = me and o.name_key = lower(b.organization)
  ), upserted as (
    insert into public.contacts as c (user_id, email, organization_name)
    select me, b.email, b.organization from batch b order by b.email
    on conflict (user_id, email) do update
      set organization_name = coalesce(excluded.organization_name, c.organization_name)
      where c.organization_name is distinct from coalesce(excluded.organization_name, c.organization_name)
    returning (xmax = 0) as inserted
  )
  select (select count(*) from batch),
         count(*) filter (where u.inserted),
         count(*) filter (where not u.inserted)
    into total, created, updated
  from upserted u;

  return jsonb_build_object(
    'rows', total,
    'contacts_created', created,
    'contacts_updated', updated,
    'contacts_unchanged', total - created - updated,
    'organizations_created', orgs_created
  );
end;
$$;

revoke all on function public.import_rows(jsonb), public.import_contacts(jsonb) from public, anon;
grant execute on function public.import_rows(jsonb), public.import_contacts(jsonb) to authenticated, service_role;

-- Source: sql/schema/09_sending.sql
-- ---------------------------------------------------------------------------
-- Campaigns (`mailsync campaigns send`, "Campagne terminée")
-- ---------------------------------------------------------------------------

-- Queueing a campaign's emails, in pages (`mailsync campaigns send`).
--
-- Hosted Supabase stops any API request after 8 s, and queueing costs about
-- 20 µs per email: one statement cannot queue a million recipients. So a
-- send is a sequence of calls to `queue_campaign_page`, each queueing the
-- next page of the caller's contacts in contact-id order (a keyset cursor),
-- each well under a second. The cursor lives in `campaign_sends`, written in
-- the same transaction as the page's emails, and every call locks the
-- campaign row first: a page is queued exactly once, whoever calls, however
-- often a call is retried, and whether or not the caller saw the answer.
--
-- States of a campaign being sent:
--   * `draft`/`scheduled`, no `campaign_sends` row: not being sent.
--   * `draft`/`scheduled` with a `campaign_sends` row whose `queued_at` is
--     null: being queued. Its emails so far are `pending`, but the campaign
--     is not `sending` yet: it does not count as active and cannot be
--     completed. Calling `queue_campaign_page` again (`mailsync campaigns
--     send` again, by anyone of that user) continues where it stopped.
--   * `sending`, `queued_at` set: fully queued. The last page moves the
--     campaign to `sending` (and straight to `sent` if every email is
--     already settled); from there "Campagne terminée" completes it as before.
--   * A call on a fully queued campaign changes nothing and answers what was
--     queued (`done`, `queued_now` 0): a retried last page is not an error.
-- A send that finds no recipient at all leaves the campaign as it was (no
-- `campaign_sends` row) and answers `queued` 0.
-- Contacts created while a send is being queued are included when their id
-- sorts after the cursor, not otherwise.

create table if not exists public.campaign_sends (
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  campaign_id uuid not null,
  organization text,
  -- Keyset cursor: the contacts with an id after this one remain to be scanned.
  after_contact uuid,
  contacts_scanned bigint not null default 0,
  queued bigint not null default 0,
  started_at timestamptz not null default now(),
  queued_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (user_id, campaign_id),
  constraint campaign_sends_campaign_fkey foreign key (user_id, campaign_id)
    references public.email_campaigns (user_id, id) on delete cascade
);

-- `campaigns send` leaves suppressed addresses out and says how many.
alter table public.campaign_sends add column if not exists suppressed bigint not null default 0;

alter table public.campaign_sends enable row level security;
do $$
declare
  v text;
begin
  foreach v in array array['select', 'insert', 'update', 'delete'] loop
    execute format('drop policy if exists %I on public.campaign_sends', 'campaign_sends_' || v || '_own');
  end loop;
end;
$$;
create policy campaign_sends_select_own on public.campaign_sends
  for select to authenticated using (user_id = (select auth.uid()));
create policy campaign_sends_insert_own on public.campaign_sends
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy campaign_sends_update_own on public.campaign_sends
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy campaign_sends_delete_own on public.campaign_sends
  for delete to authenticated using (user_id = (select auth.uid()));
revoke all on table public.campaign_sends from anon, public;
grant select, insert, update, delete on table public.campaign_sends to authenticated, service_role;

drop trigger if exists update_campaign_sends_updated_at on public.campaign_sends;
create trigger update_campaign_sends_updated_at before update on public.campaign_sends
  for each row execute function public.mailsync_set_updated_at();

-- The organisation a send is restricted to, as the caller named it, or null.
create or replace function public.resolve_send_organization(me uuid, organization text)
returns text
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  org text;
begin
  if public.mailsync_org_key(organization) is null then
    return null;
  end if;
  select o.name into org
  from public.organizations o
  where o.user_id = me
    and o.name_key = public.mailsync_org_key(organization);
  if not found then
    raise exception 'no organisation named "%"', organization using errcode = 'P0001';
  end if;
  return org;
end;
$$;

-- What `queue_campaign_page` and `send_campaign` do first and then in the
-- same way, written once.

-- The caller's campaign to send, locked for the rest of the transaction
-- (`for no key update`): the calls for one campaign, paged or not, take
-- turns. `caller` names the function in the error for a missing sign-in.
create or replace function public.lock_campaign_to_send(campaign uuid, caller text)
returns public.email_campaigns
language plpgsql
security invoker
set search_path = ''
as $$
declare
  target public.email_campaigns%rowtype;
begin
  if auth.uid() is null then
    raise exception '% needs a signed-in user', caller using errcode = '42501';
  end if;
  select * into target from public.email_campaigns c where c.id = campaign for no key update;
  if not found then
    raise exception 'no campaign with id %', campaign
      using errcode = 'P0001', hint = 'mailsync campaigns list shows your campaigns';
  end if;
  return target;
end;
$$;

-- Queues the emails of a send for one range of the caller's contacts (those
-- after `after_contact` in id order, `max_contacts` of them or all when
-- null; see `send_recipients`): one `pending` email per recipient of
-- organisation `org` (as stored; null: every contact), suppressed addresses
-- left out. recipient_email and recipient_organization are filled here,
-- set-wise, so the per-row lookup trigger has nothing to do. Answers the
-- last contact scanned, how many were scanned, how many emails were queued
-- and how many recipients were left out as suppressed.
--
-- Generic plans only, here and in what runs inside (the foreign keys'
-- checks, the triggers): the check of emails_sent_contact_fkey, one per
-- email (`select 1 from contacts where user_id = $1 and id = $2 for key
-- share`), is planned by PostgreSQL for each connection, with the values
-- of its first five calls. When the statistics do not know the user (a
-- shared table analysed before their import: the common case), the user's
-- rows are estimated at one, every index starting with user_id looks as
-- good as the unique (user_id, id), and the check was measured walking
-- the user's every contact through (user_id, organization_name, email),
-- filtering on the id (5.7 ms per check at 20 000 contacts, growing with
-- them), five times per connection of the REST server's pool. The generic
-- plan does not look at the values and takes the unique index.
create or replace function public.queue_send_recipients(
  me uuid, campaign uuid, org text, after_contact uuid, max_contacts integer,
  out last_contact uuid, out scanned bigint, out queued bigint, out suppressed bigint)
language plpgsql
security invoker
set search_path = ''
set plan_cache_mode = force_generic_plan
set jit = off
as $$
begin
  with page as materialized (
    select * from public.send_recipients(me, public.mailsync_org_key(org), after_contact, max_contacts)
  ), inserted as (
    insert into public.emails_sent (user_id, campaign_id, contact_id, recipient_email, recipient_organization)
    select me, campaign, p.contact_id, p.contact_email, p.contact_organization
    from page p
    where p.is_recipient and not p.is_suppressed
    order by p.contact_id
    returning 1
  )
  select (select p.contact_id from page p order by p.contact_id desc limit 1),
         (select count(*) from page),
         (select count(*) from inserted),
         (select count(*) from page p where p.is_recipient and p.is_suppressed)
    into last_contact, scanned, queued, suppressed;
end;
$$;

-- Statistics of the emails for the planner, refreshed by the send that
-- queued them: a trigger, when a campaign becomes `sending` (the last page
-- of a send). Users cannot ANALYZE through the API, and autovacuum gets to
-- it only some time later: until then the planner knows nothing of the
-- emails just queued, and `deliver`, which starts right after, recorded its
-- outcomes by reading every email of the caller through an index of
-- (user_id, ...) instead of probing each by its key (45 ms per 1000 outcomes
-- at 200 000 emails, against 5; it grows with the caller's emails). Runs
-- only when the statistics are missing, or the table has grown by more than
-- 50 + 10 % of the rows they counted (this transaction's included; the
-- counters of transactions that committed in the last second may not be in
-- yet), skips it when another ANALYZE or VACUUM holds the table, and is a
-- no-op (a warning) for a role that does not own it.
-- (Not "rows changed since the last ANALYZE", autovacuum's measure: an
-- ANALYZE inside the send's transaction counts the send's rows, and the
-- commit then counts them again as changed.)
-- `security definer`: it runs as the table's owner, who alone may analyze
-- it, and touches nothing else. A trigger, not a function users call: no
-- role is granted EXECUTE on it, so it is not an RPC of the API.
create or replace function public.mailsync_refresh_email_statistics()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  due boolean;
begin
  select c.reltuples < 0
         or coalesce(s.n_live_tup, 0)
            + pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid)
            - pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid)
            > 50 + 1.1 * c.reltuples
    into due
  from pg_catalog.pg_class c
  left join pg_catalog.pg_stat_user_tables s on s.relid = c.oid
  where c.oid = 'public.emails_sent'::regclass;
  if due then
    analyze (skip_locked) public.emails_sent;
  end if;
  return null;
end;
$$;

drop trigger if exists refresh_email_statistics on public.email_campaigns;
create trigger refresh_email_statistics
  after update of status on public.email_campaigns
  for each row
  when (new.status = 'sending' and old.status is distinct from 'sending')
  execute function public.mailsync_refresh_email_statistics();


-- Queues the next page (at most `page_size` contacts scanned, 1..20000) of a
-- campaign's send, as the caller (security invoker: RLS applies). Answers
-- {"campaign_id", "name", "status", "organization", "queued" (emails queued
-- by the whole send so far), "queued_now" (by this call), "contacts_scanned",
-- "done"}. Call it until `done`.
create or replace function public.queue_campaign_page(
  campaign uuid, organization text default null, page_size integer default 5000)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  me uuid := auth.uid();
  target public.email_campaigns%rowtype;
  job public.campaign_sends%rowtype;
  org text;
  size integer := least(greatest(coalesce(page_size, 5000), 1), 20000);
  last_contact uuid;
  scanned bigint;
  queued_now bigint;
  suppressed_now bigint;
  finished boolean;
begin
  -- Serialises the calls for one campaign (and `send_campaign`).
  target := public.lock_campaign_to_send(campaign, 'queue_campaign_page');
  select * into job from public.campaign_sends s where s.user_id = me and s.campaign_id = campaign;

  if target.status not in ('draft', 'scheduled') then
    if job.queued_at is not null then
      -- Fully queued already (a retry of the last page, or a second run).
      return jsonb_build_object(
        'campaign_id', target.id, 'name', target.name, 'status', target.status,
        'organization', job.organization, 'queued', job.queued, 'queued_now', 0,
        'suppressed', job.suppressed,
        'contacts_scanned', job.contacts_scanned, 'done', true);
    end if;
    raise exception 'campaign "%" is already %: nothing was queued', target.name, target.status
      using errcode = 'P0001', hint = 'create a new campaign to send again';
  end if;

  org := public.resolve_send_organization(me, organization);
  if job.campaign_id is null then
    insert into public.campaign_sends (user_id, campaign_id, organization)
    values (me, target.id, org)
    returning * into job;
  elsif job.organization is distinct from org then
    raise exception 'campaign "%" is being queued %: continue it the same way',
      target.name,
      case when job.organization is null then 'to every contact'
           else format('to organisation "%s"', job.organization) end
      using errcode = 'P0001',
            hint = case when job.organization is null then 'run mailsync campaigns send again without --organization'
                        else format('run mailsync campaigns send again with --organization "%s"', job.organization) end;
  end if;

  -- The next page of contacts in id order.
  select q.last_contact, q.scanned, q.queued, q.suppressed
    into last_contact, scanned, queued_now, suppressed_now
  from public.queue_send_recipients(me, target.id, org, job.after_contact, size) q;

  finished := scanned < size;
  update public.campaign_sends s
     set after_contact = coalesce(last_contact, s.after_contact),
         contacts_scanned = s.contacts_scanned + scanned,
         queued = s.queued + queued_now,
         suppressed = s.suppressed + suppressed_now,
         queued_at = case when finished then now() end
   where s.user_id = me and s.campaign_id = target.id
  returning * into job;

  if finished then
    if job.queued = 0 then
      -- Nobody to send to: the campaign stays as it was.
      delete from public.campaign_sends s where s.user_id = me and s.campaign_id = target.id;
    else
      update public.email_campaigns c
         set status = case when exists (select 1 from public.emails_sent e
                                         where e.campaign_id = target.id
                                           and e.status in ('pending', 'sending'))
                           then 'sending' else 'sent' end,
             started_at = now(),
             completed_at = case when exists (select 1 from public.emails_sent e
                                               where e.campaign_id = target.id
                                                 and e.status in ('pending', 'sending'))
                                 then null else now() end
       where c.id = target.id
      returning c.status into target.status;
    end if;
  end if;

  return jsonb_build_object(
    'campaign_id', target.id, 'name', target.name, 'status', target.status,
    'organization', job.organization, 'queued', job.queued, 'queued_now', queued_now,
    'suppressed', job.suppressed,
    'contacts_scanned', job.contacts_scanned, 'done', finished);
end;
$$;

-- Queues a whole campaign in one call, as the caller (security invoker: RLS
-- applies): one `pending` email per contact of the caller, or of one of
-- their organisations, and the campaign moves to `sending`. All or nothing.
-- For small lists and SQL users: at most 20000 contacts (the largest page
-- of `queue_campaign_page`, well inside hosted Supabase's 8-second API
-- limit); past that, use `queue_campaign_page`. A campaign that is not `draft` or `scheduled`, or
-- whose paged send is under way, is refused and nothing is created.
create or replace function public.send_campaign(campaign uuid, organization text default null)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  me uuid := auth.uid();
  target public.email_campaigns%rowtype;
  org text;
  queued bigint;
  left_out bigint;
  scanned bigint;
begin
  target := public.lock_campaign_to_send(campaign, 'send_campaign');
  if target.status not in ('draft', 'scheduled') then
    raise exception 'campaign "%" is already %: nothing was queued', target.name, target.status
      using errcode = 'P0001', hint = 'create a new campaign to send again';
  end if;
  if exists (select 1 from public.campaign_sends s where s.user_id = me and s.campaign_id = target.id) then
    raise exception 'campaign "%" is being queued in pages: nothing was queued', target.name
      using errcode = 'P0001', hint = 'continue it with mailsync campaigns send (or queue_campaign_page)';
  end if;
  org := public.resolve_send_organization(me, organization);

  -- Bounded: at most 20000 contacts in one call (one more is scanned to
  -- tell); a larger send goes in pages.
  select q.queued, q.suppressed, q.scanned into queued, left_out, scanned
  from public.queue_send_recipients(me, target.id, org, null, 20001) q;
  if scanned > 20000 then
    raise exception 'send_campaign sends to at most 20000 contacts in one call: nothing was queued'
      using errcode = '22023', hint = 'queue it in pages with queue_campaign_page (mailsync campaigns send does)';
  end if;
  if queued = 0 then
    raise exception 'campaign "%" has no recipients%: nothing was queued', target.name,
      case when org is null then '' else format(' in organisation "%s"', org) end
      using errcode = 'P0001', hint = 'import contacts first: mailsync import FILE';
  end if;

  insert into public.campaign_sends (user_id, campaign_id, organization, queued, queued_at, suppressed)
  values (me, target.id, org, queued, now(), left_out);
  update public.email_campaigns c
     set status = 'sending', started_at = now(), completed_at = null
   where c.id = target.id;

  return jsonb_build_object(
    'campaign_id', target.id,
    'name', target.name,
    'status', 'sending',
    'queued', queued,
    'suppressed', left_out,
    'organization', org
  );
end;
$$;

-- "Campagne terminée": a `sending` campaign whose emails are all settled
-- (none `pending` or `sending`) becomes `sent`, with `completed_at`.
--
-- It runs when the writer's transaction commits (a deferred constraint
-- trigger), once per campaign per transaction, under the campaign's row
-- lock. The lock is what makes it right under concurrency: two transactions
-- settling the last emails of one campaign at the same time would each still
-- see the other's rows as pending and neither would finish the campaign; with
-- the lock, the second one waits until the first has committed, then looks
-- again with a fresh snapshot and sees everything. The lock is held only from
-- the check to the commit, so writers of a big campaign do not queue behind
-- each other while they work.
create or replace function public.mailsync_complete_settled_campaign()
returns trigger
language plpgsql
-- `security definer`: when Auth deletes a user (as `supabase_auth_admin`,
-- which holds no privilege in `public`), the cascade's deferred events fire
-- at commit as that role. The function touches only the campaign of the row
-- that fired it, which belongs to the same user as that row.
security definer
set search_path = ''
as $$
declare
  campaign uuid := case when tg_op = 'DELETE' then old.campaign_id else new.campaign_id end;
  owner uuid := case when tg_op = 'DELETE' then old.user_id else new.user_id end;
  -- The campaigns already checked by this transaction, in ONE
  -- transaction-local setting (reset at commit or rollback): a pooled
  -- connection keeps no per-campaign state from one transaction to the next.
  checked text := coalesce(current_setting('mailsync.settled_checked', true), '');
  holds_live_row boolean := false;
begin
  if pg_catalog.strpos(checked, campaign::text) > 0 then
    return null;
  end if;
  perform pg_catalog.set_config('mailsync.settled_checked', checked || campaign::text || ' ', true);
  loop
    begin
      -- `no key update`: it serialises the checks of one campaign, and does
      -- not conflict with the key-share locks that foreign-key checks (the
      -- counter rows, new emails) take on the campaign. A campaign deleted
      -- in this transaction (a cascade from its user) is simply not found.
      perform 1 from public.email_campaigns c
       where c.id = campaign and c.status = 'sending'
         for no key update;
      if not found then
        return null;
      end if;
      -- From the campaign's last email back: emails are claimed and
      -- settled in id order, so the first ones in the index of unsettled
      -- emails are those just settled (entries not yet cleaned up, each a
      -- read of the table: 500-1000 for one call of outcomes), the last
      -- ones still pending.
      perform 1 from public.emails_sent e
       where e.user_id = owner and e.campaign_id = campaign and e.status in ('pending', 'sending')
       order by e.id desc
       limit 1;
      if found then
        return null;
      end if;
      -- Finishing the campaign moves its live row (`campaign_live`, below).
      -- A writer whose counts moved that row holds it until it commits, and
      -- at its commit it waits for the campaign row held here: waiting for
      -- the live row now would deadlock the two. So the live row is taken
      -- without waiting, or not at all.
      perform 1 from public.campaign_live l
       where l.campaign_id = campaign
         for update nowait;
      update public.email_campaigns c
         set status = 'sent', completed_at = now()
       where c.id = campaign;
      return null;
    exception when lock_not_available then
      -- Leaving the block lets go of the campaign row; the live row is then
      -- waited for (the order every writer takes them in: live row, then
      -- campaign) and the check starts again with a fresh snapshot. Once
      -- the live row is held, only a `lock_timeout` can land here.
      if holds_live_row then
        raise;
      end if;
    end;
    perform 1 from public.campaign_live l
     where l.campaign_id = campaign
       for update;
    holds_live_row := true;
  end loop;
end;
$$;

-- One event per campaign per transaction: the condition (evaluated as each
-- row is written, not at commit) lets through the first email of a campaign
-- the transaction settles, and notes the campaign in a transaction-local
-- setting (undone with a rolled-back savepoint, like the event). The check
-- at commit sees every row the transaction wrote, so one is enough; an
-- event per email cost a function call each (a tenth of recording an
-- outcome). A writer that sets the note itself only keeps its own campaign
-- from finishing, as with the function's own note.
drop trigger if exists complete_settled_campaign_on_update on public.emails_sent;
create constraint trigger complete_settled_campaign_on_update
  after update of status on public.emails_sent
  deferrable initially deferred
  for each row
  when (old.status in ('pending', 'sending') and new.status not in ('pending', 'sending')
        and pg_catalog.strpos(coalesce(pg_catalog.current_setting('mailsync.settled_queued', true), ''),
                              new.campaign_id::text) = 0
        and pg_catalog.set_config('mailsync.settled_queued',
                                  coalesce(pg_catalog.current_setting('mailsync.settled_queued', true), '')
                                    || new.campaign_id::text || ' ', true) <> '')
  execute function public.mailsync_complete_settled_campaign();
drop trigger if exists complete_settled_campaign_on_delete on public.emails_sent;
create constraint trigger complete_settled_campaign_on_delete
  after delete on public.emails_sent
  deferrable initially deferred
  for each row
  when (old.status in ('pending', 'sending'))
  execute function public.mailsync_complete_settled_campaign();

-- (user_id, campaign_id, id): deliver's claims read a campaign's unsettled
-- emails in id order from where the last claim stopped, and the caller's
-- RLS condition (user_id) then matches this index better than any other (a
-- plan that read the campaign whole through (user_id, campaign_id) and
-- sorted it was chosen right after a send). An earlier mailsync's index on
-- (campaign_id) alone is replaced.
do $$ begin
  if exists (select 1 from pg_catalog.pg_index i
             where i.indexrelid = to_regclass('public.emails_sent_unsettled_idx')
               and i.indrelid = 'public.emails_sent'::regclass and i.indnatts <> 3) then
    drop index public.emails_sent_unsettled_idx;
  end if;
end $$;
create index if not exists emails_sent_unsettled_idx
  on public.emails_sent (user_id, campaign_id, id) where status in ('pending', 'sending');

revoke all on function public.send_campaign(uuid, text), public.queue_campaign_page(uuid, text, integer),
  public.resolve_send_organization(uuid, text), public.lock_campaign_to_send(uuid, text),
  public.queue_send_recipients(uuid, uuid, text, uuid, integer),
  public.mailsync_refresh_email_statistics(),
  public.mailsync_complete_settled_campaign() from public, anon;
revoke all on function public.mailsync_complete_settled_campaign(),
  public.mailsync_refresh_email_statistics() from authenticated;
grant execute on function public.send_campaign(uuid, text), public.queue_campaign_page(uuid, text, integer),
  public.resolve_send_organization(uuid, text), public.lock_campaign_to_send(uuid, text),
  public.queue_send_recipients(uuid, uuid, text, uuid, integer) to authenticated, service_role;

-- The recipient selection of a send, the one place `send_campaign` and
-- `queue_campaign_page` make it: the caller's contacts after
-- `after_contact` in id order (`max_contacts` of them, or all when null),
-- each with whether it is a recipient (of the organisation whose key is
-- `org_key`, or of any when null; see the organisation-name rule) and
-- whether its address is suppressed (unsubscribed or bounced: left out).
--
-- The plan is pinned, not left to the statistics: one range of the
-- (user_id, id) index read in order, stopping after `max_contacts`, and one
-- probe of the suppressions index per contact. Left to the planner, a page
-- right after an import (no statistics yet: the range is estimated at about
-- a thousand rows) was a bitmap scan of every contact after the cursor and a
-- top-N sort, a whole-table read per page (0.4 s for 5 000 contacts at a
-- million), and the plan could change whenever auto-analyze ran mid-send.
-- Users cannot VACUUM or ANALYZE through the API, so the function cannot
-- depend on either. With sequential scans,
-- bitmap scans and sorts disabled here (for this function's statements
-- only), the ordered index range is the only plan left, and a page costs the
-- same at the millionth contact as at the first, before and after analyze.
-- Custom plans: the caller (queue_send_recipients) asks for generic ones.
create or replace function public.send_recipients(
  me uuid, org_key text, after_contact uuid, max_contacts integer)
returns table (contact_id uuid, contact_email text, contact_organization text,
               is_recipient boolean, is_suppressed boolean)
language plpgsql
stable
security invoker
set search_path = ''
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
set plan_cache_mode = force_custom_plan
set jit = off
as $$
begin
  return query
  select r.id, r.email, r.organization_name, r.is_recipient,
         r.is_recipient and exists (select 1 from public.suppressions s
                                     where s.user_id = me and s.email = r.email)
  from (
    select c.id, c.email, c.organization_name,
           -- organization_name is kept (normalize_contact): lower() is its key.
           (org_key is null or pg_catalog.lower(c.organization_name) = org_key) as is_recipient
    from public.contacts c
    -- One range of the (user_id, id) index whatever the plan (no `or`).
    -- The cursor is a row comparison so that the primary key (id alone)
    -- cannot serve it: that index holds every user's contacts, and a page
    -- read through it walks past the other users' ids between the caller's.
    where c.user_id = me
      and (c.user_id, c.id) > (me, coalesce(after_contact, '00000000-0000-0000-0000-000000000000'::uuid))
    order by c.id
    limit max_contacts
  ) r
  order by r.id;
end;
$$;

-- What `mailsync campaigns send` asks about before queueing: how many emails
-- a send to the caller's contacts (of `organization`, named by the
-- organisation-name rule) would queue, how many contacts it leaves out as
-- suppressed, and how many contacts it scans. Answers {"organization" (as
-- stored, or null), "recipients", "suppressed", "contacts"}. The numbers are
-- those of `send_recipients`. The user's contacts are counted by a bitmap
-- scan (index scans off, for this function's statements): it reads their
-- heap pages in physical order, about half a second at a million contacts
-- whatever the table's state. An index-only scan is faster on a vacuumed
-- table but, right after an import (no visibility map yet), fetches every
-- row from the heap in index order: measured 1.0-1.3 s at a million.
create or replace function public.count_send_recipients(organization text default null)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
set enable_indexscan = off
set enable_indexonlyscan = off
set jit = off
as $$
declare
  me uuid := auth.uid();
  org text;
  org_key text;
  contacts bigint;
  matching bigint;
  suppressed bigint;
begin
  if me is null then
    raise exception 'count_send_recipients needs a signed-in user' using errcode = '42501';
  end if;
  org := public.resolve_send_organization(me, organization);
  org_key := public.mailsync_org_key(org);
  -- One bitmap scan of the user's contacts. As in send_recipients,
  -- lower(organization_name) is a contact's key.
  select count(*),
         count(*) filter (where org_key is null or pg_catalog.lower(c.organization_name) = org_key)
    into contacts, matching
  from public.contacts c
  where c.user_id = me;
  select count(*) into suppressed
  from public.suppressions s
  join public.contacts c on c.user_id = s.user_id and c.email = s.email
  where s.user_id = me and (org_key is null or pg_catalog.lower(c.organization_name) = org_key);
  return jsonb_build_object('organization', org, 'recipients', matching - suppressed,
                            'suppressed', suppressed, 'contacts', contacts);
end;
$$;

revoke all on function public.send_recipients(uuid, text, uuid, integer),
  public.count_send_recipients(text) from public, anon;
grant execute on function public.send_recipients(uuid, text, uuid, integer),
  public.count_send_recipients(text) to authenticated, service_role;

-- Source: sql/schema/10_live.sql
-- ---------------------------------------------------------------------------
-- Live changes for `mailsync campaigns watch` (Supabase Realtime)
--
-- Realtime streams the tables of the `supabase_realtime` publication, checks
-- every change against each subscriber's RLS, and caps a project's messages
-- per second (100 on the Free plan); DELETE events skip RLS and go to every
-- subscriber. So the watch does not listen to `emails_sent` (one message per
-- email) or to any table whose deleted keys mean something: it listens to
-- `campaign_live`, one row per campaign, whose key is a random id used
-- nowhere else. The row changes when the campaign is created, renamed or
-- changes status, and when its emails change, at most every 1.5 s per
-- campaign (writers that find the row busy or fresh skip it). 1.5 s, not 1 s:
-- a row is stamped when a transaction updates it but reaches Realtime when
-- it commits, so two moves stamped 1 s apart can arrive closer together, and
-- a campaign's completion adds one more in the same transaction; 1.5 s keeps
-- every window of one second at two messages or fewer. A watcher re-reads
-- the analytics when a row changes, and once more 2 s later, which catches
-- what the limit held back.
-- ---------------------------------------------------------------------------

create table if not exists public.campaign_live (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  campaign_id uuid not null,
  campaign_status text not null,
  changed_at timestamptz not null default pg_catalog.clock_timestamp(),
  constraint campaign_live_campaign_key unique (campaign_id),
  constraint campaign_live_campaign_fkey foreign key (user_id, campaign_id)
    references public.email_campaigns (user_id, id) on delete cascade
);
create index if not exists campaign_live_user_campaign_idx on public.campaign_live (user_id, campaign_id);
alter table public.campaign_live set (fillfactor = 50);
alter table public.campaign_live enable row level security;
drop policy if exists campaign_live_select_own on public.campaign_live;
create policy campaign_live_select_own on public.campaign_live
  for select to authenticated using (user_id = (select auth.uid()));
revoke all on table public.campaign_live from anon, authenticated, public;
grant select on table public.campaign_live to authenticated;
grant select, insert, update, delete on table public.campaign_live to service_role;

create or replace function public.mailsync_track_campaign_live()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.campaign_live as l (user_id, campaign_id, campaign_status, changed_at)
  values (new.user_id, new.id, new.status, pg_catalog.clock_timestamp())
  on conflict (campaign_id) do update
    set campaign_status = excluded.campaign_status, changed_at = excluded.changed_at;
  return null;
end;
$$;

drop trigger if exists track_campaign_live_on_insert on public.email_campaigns;
create trigger track_campaign_live_on_insert after insert on public.email_campaigns
  for each row execute function public.mailsync_track_campaign_live();
drop trigger if exists track_campaign_live_on_update on public.email_campaigns;
create trigger track_campaign_live_on_update after update of status, name on public.email_campaigns
  for each row
  when (old.status is distinct from new.status or old.name is distinct from new.name)
  execute function public.mailsync_track_campaign_live();
revoke all on function public.mailsync_track_campaign_live() from public, anon, authenticated;

insert into public.campaign_live (user_id, campaign_id, campaign_status)
select c.user_id, c.id, c.status from public.email_campaigns c
on conflict (campaign_id) do nothing;

-- ---------------------------------------------------------------------------
-- Realtime: the publication carries `campaign_live` and none of the other
-- tables (see above; earlier versions published all five, which this
-- removes), when the project has the `supabase_realtime` publication.
-- ---------------------------------------------------------------------------

do $$
declare
  t text;
begin
  if exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    foreach t in array array['organizations', 'contacts', 'email_campaigns', 'emails_sent', 'email_templates',
                             'campaign_email_counts', 'user_daily_sent_counts', 'campaign_sends'] loop
      if exists (
        select 1 from pg_catalog.pg_publication_tables
        where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = t
      ) then
        execute format('alter publication supabase_realtime drop table public.%I', t);
      end if;
    end loop;
    if not exists (
      select 1 from pg_catalog.pg_publication_tables
      where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'campaign_live'
    ) then
      alter publication supabase_realtime add table public.campaign_live;
    end if;
  end if;
end;
$$;

-- Source: sql/schema/11_delivery.sql
-- ---------------------------------------------------------------------------
-- Delivery (`mailsync campaigns deliver`): claims, outcomes, suppression.
--
-- Workers deliver as the signed-in user, through the REST API: every
-- function here is `security invoker`, so RLS decides which emails a worker
-- may claim or settle. The claim is the database's: a batch is held by one
-- row of `email_claims` (a lease: who holds it, until when), taken under a
-- lock that lets one claimer of a user in at a time, so any number of
-- workers on any number of machines share a campaign without overlap. (An
-- earlier worker's claim, without `hand`, moves each email from `pending`
-- to `sending` under `for update skip locked` instead.)
--
-- At most once: an email is claimed before the SMTP server sees it, handed
-- to a connection only once the database has said so (the claim row, or
-- `handed_at`), and its outcome is recorded after. A claimed email never
-- handed whose lease has expired cannot have gone out (its worker died
-- before it started): it is claimable again, like a pending one. An email
-- handed whose lease has expired without an outcome (still `pending` in an
-- expired claim, which then becomes `sending` with `handed_at`, or left
-- `sending`) may or may not have gone out: it is "unknown",
-- reported, and claimed again only when the caller asks (`resend_unknown`),
-- or settled by the operator (`settle_unknown_emails`) or by a delivery
-- report. Its Message-ID was fixed at the first claim and stays the same, so
-- the operator can look it up in the SMTP server's logs, and a re-send
-- carries the same Message-ID (receivers may fold the two).
-- ---------------------------------------------------------------------------

alter table public.emails_sent
  add column if not exists message_id text,
  add column if not exists smtp_response text,
  add column if not exists attempts integer not null default 0,
  add column if not exists claimed_at timestamptz,
  add column if not exists lease_owner text,
  add column if not exists lease_expires_at timestamptz;

-- When the worker handed the email to an SMTP connection (null: claimed,
-- not handed yet). Emails already `sending` when the column arrives may
-- have gone out: they count as handed when they were claimed.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_attribute
                 where attrelid = 'public.emails_sent'::regclass and attname = 'handed_at' and not attisdropped) then
    alter table public.emails_sent add column handed_at timestamptz;
    update public.emails_sent set handed_at = coalesce(claimed_at, now()) where status = 'sending';
  end if;
end;
$$;

-- Addresses a user no longer sends to: unsubscribed (`mailsync contacts
-- unsubscribe`) or bounced permanently (recorded by deliver). Keyed by
-- address, not by contact: deleting and re-importing a contact keeps it.
create table if not exists public.suppressions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  email text not null,
  reason text not null,
  detail text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint suppressions_reason_check check (reason in ('unsubscribed', 'bounced')),
  constraint suppressions_email_normalized check (email = lower(btrim(email)) and email like '_%@_%'),
  constraint suppressions_user_email_key unique (user_id, email)
);

create or replace function public.mailsync_normalize_suppression()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.email := lower(btrim(new.email));
  return new;
end;
$$;

drop trigger if exists normalize_suppression on public.suppressions;
create trigger normalize_suppression before insert or update of email on public.suppressions
  for each row execute function public.mailsync_normalize_suppression();
drop trigger if exists update_suppressions_updated_at on public.suppressions;
create trigger update_suppressions_updated_at before update on public.suppressions
  for each row execute function public.mailsync_set_updated_at();

alter table public.suppressions enable row level security;
drop policy if exists suppressions_select_own on public.suppressions;
create policy suppressions_select_own on public.suppressions
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists suppressions_insert_own on public.suppressions;
create policy suppressions_insert_own on public.suppressions
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists suppressions_update_own on public.suppressions;
create policy suppressions_update_own on public.suppressions
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists suppressions_delete_own on public.suppressions;
create policy suppressions_delete_own on public.suppressions
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.suppressions from anon, public;
grant select, insert, update, delete on table public.suppressions to authenticated, service_role;

-- Claims: the emails a worker has handed to SMTP, as one row per claim
-- call and campaign (`claim_emails` with `hand`), not as a write to each
-- email. Each email then stays `pending` until its one write, the outcome
-- (`record_email_outcomes`), which also takes it out of its claim. A claim
-- whose lease has expired belonged to a worker that died or lost the
-- database: its emails still `pending` may have gone out, and are moved to
-- `sending`, handed at the claim's time, with its lease and worker (the
-- form an unknown outcome has) by the next caller that looks
-- (`mailsync_expire_email_claims`). A dead worker's journal gives back, by
-- `release_worker_emails`, those of its claimed emails it never started.
create table if not exists public.email_claims (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  campaign_id uuid not null,
  worker text not null,
  email_ids uuid[] not null,
  message_id_domain text not null,
  claimed_at timestamptz not null default now(),
  lease_expires_at timestamptz not null,
  constraint email_claims_campaign_fkey foreign key (user_id, campaign_id)
    references public.email_campaigns (user_id, id) on delete cascade,
  constraint email_claims_worker_length check (char_length(worker) <= 200),
  constraint email_claims_message_id_domain_length check (char_length(message_id_domain) <= 255),
  constraint email_claims_size check (pg_catalog.cardinality(email_ids) <= 1000)
);
create index if not exists email_claims_user_campaign_idx on public.email_claims (user_id, campaign_id);
create index if not exists email_claims_user_worker_idx on public.email_claims (user_id, worker);

alter table public.email_claims enable row level security;
drop policy if exists email_claims_select_own on public.email_claims;
create policy email_claims_select_own on public.email_claims
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists email_claims_insert_own on public.email_claims;
create policy email_claims_insert_own on public.email_claims
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists email_claims_update_own on public.email_claims;
create policy email_claims_update_own on public.email_claims
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists email_claims_delete_own on public.email_claims;
create policy email_claims_delete_own on public.email_claims
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.email_claims from anon, public;
grant select, insert, update, delete on table public.email_claims to authenticated, service_role;

-- Turns the caller's expired claims (of `campaign`, or of all its
-- campaigns), and with `worker` all of that dead worker's claims too, into what
-- they are: each email still `pending` in one may have gone out, and
-- becomes `sending`, handed when claimed, with the claim's worker and
-- lease, its Message-ID and the attempt counted (an unknown outcome); the
-- claims are deleted. One claimer of the caller's at a time (the lock
-- `claim_emails` takes). Returns how many emails.
create or replace function public.mailsync_expire_email_claims(campaign uuid default null, worker text default null)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  me uuid := auth.uid();
  expired integer;
begin
  if me is null
     or not exists (select 1 from public.email_claims k
                    where k.user_id = me
                      and (k.lease_expires_at < now() or k.worker = mailsync_expire_email_claims.worker)
                      and (mailsync_expire_email_claims.campaign is null
                           or k.campaign_id = mailsync_expire_email_claims.campaign)) then
    return 0;
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('mailsync claims ' || me::text, 0));
  with gone as (
    delete from public.email_claims k
     where k.user_id = me
       and (k.lease_expires_at < now() or k.worker = mailsync_expire_email_claims.worker)
       and (mailsync_expire_email_claims.campaign is null or k.campaign_id = mailsync_expire_email_claims.campaign)
    returning k.campaign_id, k.worker, k.email_ids, k.message_id_domain, k.claimed_at, k.lease_expires_at
  ), held as (
    select x.id, g.campaign_id, g.worker, g.message_id_domain, g.claimed_at, g.lease_expires_at
    from gone g, pg_catalog.unnest(g.email_ids) as x (id)
  ), unknown as (
    update public.emails_sent e
       set status = 'sending',
           claimed_at = h.claimed_at,
           handed_at = h.claimed_at,
           lease_owner = h.worker,
           lease_expires_at = h.lease_expires_at,
           attempts = e.attempts + 1,
           message_id = coalesce(e.message_id, pg_catalog.format('<%s@%s>', e.id, h.message_id_domain))
      from held h
     where e.id = h.id
       and e.campaign_id = h.campaign_id
       and e.status = 'pending' collate "C"
    returning e.id
  )
  select count(*) into expired from unknown;
  return expired;
end;
$$;

-- Claims up to `max_emails` emails for the worker `worker`: `pending` ones
-- of the campaign given, or of all the caller's `sending` campaigns, and
-- those a worker claimed, never handed to SMTP and lost (lease expired);
-- with `resend_unknown`, also those whose outcome is unknown (handed, left
-- `sending` by a worker whose lease expired). Each moves to `sending`, not
-- handed, with a lease of `lease_seconds`, gets its Message-ID (kept if it
-- had one) and one more attempt (none for an email never handed: its last
-- claim counted the attempt it never made). An email to a suppressed address is settled `failed` instead,
-- and returned with that status so the worker can count it.
-- With `hand`, the emails claimed are handed to SMTP by the same call, and
-- none of them is written: one `email_claims` row per campaign holds them
-- (worker, ids, lease, Message-ID domain), they stay `pending`, and their
-- outcome is their one write. A worker claims only as many as it may have
-- in doubt at once (its hand-off window). Each campaign's emails are taken
-- in id order after the last one held.
-- Bounded (at most 1000 emails) so that one call stays far inside the API's
-- statement timeout.
-- Answers one JSON array of the emails claimed, {id, campaign_id,
-- recipient_email, recipient_organization, message_id, attempts, status},
-- not a set of rows: the REST API cuts a set-returning function's answer at
-- the project's row cap (`max_rows`, lowered by some projects below a
-- claim's size) after the function has run, and the emails claimed past the
-- cap would be held and never sent. One JSON value is never cut.
drop function if exists public.claim_emails(uuid, integer, integer, text, text, boolean);
create or replace function public.claim_emails(
  campaign uuid default null,
  max_emails integer default 100,
  lease_seconds integer default 120,
  worker text default null,
  message_id_domain text default 'mailsync.invalid',
  resend_unknown boolean default false,
  hand boolean default false)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  me uuid := auth.uid();
  n integer := least(greatest(coalesce(max_emails, 100), 1), 1000);
  lease interval := make_interval(secs => least(greatest(coalesce(lease_seconds, 120), 10), 3600));
  domain text := coalesce(nullif(btrim(message_id_domain), ''), 'mailsync.invalid');
  targets uuid[];
  held uuid[];
  -- The emails found whose address is suppressed.
  barred uuid[];
  -- The emails to claim, found campaign by campaign (`hand`), whole.
  found public.emails_sent[] := '{}';
  more public.emails_sent[];
  target uuid;
  after uuid;
  answer jsonb;
  sorting text;
  scanning text;
begin
  select coalesce(pg_catalog.array_agg(c.id), '{}') into targets
  from public.email_campaigns c
  where c.user_id = me
    and c.status = 'sending'
    and (claim_emails.campaign is null or c.id = claim_emails.campaign);
  if pg_catalog.cardinality(targets) = 0 then
    return '[]'::jsonb;
  end if;
  -- One claimer of the caller's at a time: the emails held by claims are
  -- read below, and another claim could otherwise take them in between.
  -- (Each statement after this one sees what the claimer before committed.)
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('mailsync claims ' || me::text, 0));
  perform public.mailsync_expire_email_claims(claim_emails.campaign);
  select coalesce(pg_catalog.array_agg(x.id), '{}') into held
  from public.email_claims k, pg_catalog.unnest(k.email_ids) as x (id)
  where k.user_id = me and k.campaign_id = any(targets);

  if not coalesce(claim_emails.hand, false) then
    -- Claimed, not handed: each email moves to `sending` (an earlier
    -- worker's protocol, which marks the hand-off by `record_email_outcomes`).
    with candidates as (
      select e.id, e.recipient_email, lower(e.recipient_email) as address
      from public.emails_sent e
      where e.campaign_id = any(targets)
        and ((e.status = 'pending' and e.id not in (select h.id from pg_catalog.unnest(held) as h (id)))
             or (e.status = 'sending'
                 and coalesce(e.lease_expires_at, '-infinity') < now()
                 and (e.handed_at is null or claim_emails.resend_unknown)))
      limit n
      for update of e skip locked
    ), claimed as (
      update public.emails_sent e
         set status = case when s.reason is null then 'sending' else 'failed' end,
             error_message = case when s.reason is null then null
                                  else format('not sent: %s is suppressed (%s)', e.recipient_email, s.reason) end,
             claimed_at = now(),
             lease_owner = claim_emails.worker,
             lease_expires_at = case when s.reason is null then now() + lease end,
             handed_at = null,
             attempts = e.attempts + case when s.reason is null and (e.status = 'pending' or e.handed_at is not null)
                                          then 1 else 0 end,
             message_id = coalesce(e.message_id, format('<%s@%s>', e.id, domain))
        from candidates k
        left join lateral (
          select x.reason from public.suppressions x
          where x.user_id = me and x.email = k.address
          limit 1) s on true
       where e.id = k.id
      returning e.id, e.campaign_id, e.recipient_email, e.recipient_organization, e.message_id, e.attempts, e.status
    )
    select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c)), '[]'::jsonb) into answer from claimed c;
    return answer;
  end if;

  -- Claimed and handed: one claim row per campaign, no write to the emails
  -- (but those settled `failed` as suppressed, and the few an earlier
  -- worker left `sending`, which are given back to `pending` first).
  -- Claims take each campaign's emails in id order, after the last one
  -- held: the emails in flight, still `pending`, are not read again by
  -- every claim. Those before it (given back, or left by an earlier worker)
  -- are taken once none are left after it.
  -- Each campaign's emails are read in the unsettled index's order, never
  -- all of them read and sorted: right after a send the table has no
  -- statistics, and the planner, believing a campaign holds one email,
  -- chose to sort it whole (8 ms for 20 000 emails, against under 1 ms).
  -- Sorting is ruled out for these two reads only.
  sorting := pg_catalog.current_setting('enable_sort');
  foreach target in array targets loop
    exit when pg_catalog.cardinality(found) >= n;
    select x.id into after
    from public.email_claims k, pg_catalog.unnest(k.email_ids) as x (id)
    where k.user_id = me and k.campaign_id = target
    order by x.id desc
    limit 1;
    perform pg_catalog.set_config('enable_sort', 'off', true);
    select coalesce(pg_catalog.array_agg(c.e), '{}') into more
    from (
      select e from public.emails_sent e
      where e.campaign_id = target
        and (after is null or e.id > after)
        and (e.status = 'pending'
             or (e.status = 'sending'
                 and coalesce(e.lease_expires_at, '-infinity') < now()
                 and (e.handed_at is null or claim_emails.resend_unknown)))
      order by e.id
      limit n - pg_catalog.cardinality(found)) c;
    found := found || more;
    if pg_catalog.cardinality(found) < n and after is not null then
      select coalesce(pg_catalog.array_agg(c.e), '{}') into more
      from (
        select e from public.emails_sent e
        where e.campaign_id = target
          and e.id <= after
          and ((e.status = 'pending' and e.id not in (select h.id from pg_catalog.unnest(held) as h (id)))
               or (e.status = 'sending'
                   and coalesce(e.lease_expires_at, '-infinity') < now()
                   and (e.handed_at is null or claim_emails.resend_unknown)))
        order by e.id
        limit n - pg_catalog.cardinality(found)) c;
      found := found || more;
    end if;
    perform pg_catalog.set_config('enable_sort', sorting, true);
  end loop;

  -- The emails found whose address the caller suppressed: one probe of the
  -- (user_id, email) index per email, the address lowered first and
  -- compared as a plain value, which RLS lets the index take (a `lower()`
  -- in the probe ran after the policy, and the whole of the caller's
  -- suppression list was read for each claim: 20 000 rows a call). The
  -- index is the only plan left (sequential scans off for this statement):
  -- a small list was read whole for each email (5 ms a claim), and one
  -- read of the index for all the addresses at once, on statistics from
  -- when the list was short, read all of it (5 000 rows for 100 emails).
  scanning := pg_catalog.current_setting('enable_seqscan');
  perform pg_catalog.set_config('enable_seqscan', 'off', true);
  with lowered as materialized (
    select e.id, lower(e.recipient_email) as address from pg_catalog.unnest(found) e
  )
  select coalesce(pg_catalog.array_agg(l.id), '{}') into barred
  from lowered l
  cross join lateral (
    select 1 from public.suppressions x where x.user_id = me and x.email = l.address limit 1) s;
  perform pg_catalog.set_config('enable_seqscan', scanning, true);

  if pg_catalog.cardinality(barred) = 0
     and not exists (select 1 from pg_catalog.unnest(found) e where e.status = 'sending' collate "C") then
    -- The common case: every email found is `pending` and may be sent, so
    -- no email is written. (The writes below are not planned at all: the
    -- planner, sure from the table's statistics that a campaign's
    -- unsettled emails are few, read all of the caller's for them, 17 000
    -- index entries a claim at 20 000 queued, half of the claim's time, and
    -- a million at a million.)
    with handed as (
      select e.id, e.campaign_id, e.recipient_email, e.recipient_organization,
             coalesce(e.message_id, format('<%s@%s>', e.id, domain)) as message_id,
             e.attempts + 1 as attempts,
             'sending'::text as status
      from pg_catalog.unnest(found) e
    ), claims as (
      insert into public.email_claims (user_id, campaign_id, worker, email_ids, message_id_domain, lease_expires_at)
      select me, h.campaign_id, coalesce(claim_emails.worker, ''), pg_catalog.array_agg(h.id), domain, now() + lease
      from handed h
      group by h.campaign_id
    )
    select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(h)), '[]'::jsonb) into answer from handed h;
    return answer;
  end if;

  -- Some are suppressed, or were left `sending`: each is written, found by
  -- its primary key (`e.id = any(array[k.id])` is met only by one probe of
  -- the key per email, and the status compared under the "C" collation
  -- rules out the partial index of unsettled emails).
  with candidates as (
    select e.id, e.campaign_id, e.status, e.recipient_email, e.recipient_organization, e.message_id,
           e.attempts, e.handed_at, lower(e.recipient_email) as address
    from pg_catalog.unnest(found) e
  ), checked as (
    select k.*, s.reason
    from candidates k
    left join lateral (
      select x.reason from public.suppressions x
      where x.user_id = me and x.email = k.address
      limit 1) s on true
  ), suppressed as (
    update public.emails_sent e
       set status = 'failed',
           error_message = format('not sent: %s is suppressed (%s)', e.recipient_email, k.reason),
           claimed_at = now(),
           lease_owner = claim_emails.worker,
           lease_expires_at = null,
           handed_at = null,
           attempts = e.attempts - case when e.status = 'sending' and e.handed_at is null then 1 else 0 end,
           message_id = coalesce(e.message_id, format('<%s@%s>', e.id, domain))
      from checked k
     where k.reason is not null
       and e.id = any(array[k.id])
       and e.status = k.status collate "C"
       and (k.status = 'pending' or coalesce(e.lease_expires_at, '-infinity') < now())
    returning e.id, e.campaign_id, e.recipient_email, e.recipient_organization, e.message_id, e.attempts, e.status
  ), taken_back as (
    -- Left `sending` by an earlier worker: claimed and never handed, or
    -- (with `resend_unknown`) of unknown outcome. An email never handed
    -- gives back the attempt its claim counted.
    update public.emails_sent e
       set status = 'pending',
           lease_owner = null,
           lease_expires_at = null,
           claimed_at = null,
           handed_at = null,
           attempts = e.attempts - case when e.handed_at is null then 1 else 0 end
      from checked k
     where k.reason is null
       and k.status = 'sending'
       and e.id = any(array[k.id])
       and e.status = 'sending' collate "C"
       and coalesce(e.lease_expires_at, '-infinity') < now()
    returning e.id, e.attempts
  ), handed as (
    select k.id, k.campaign_id, k.recipient_email, k.recipient_organization,
           coalesce(k.message_id, format('<%s@%s>', k.id, domain)) as message_id,
           coalesce(b.attempts, k.attempts) + 1 as attempts,
           'sending'::text as status
    from checked k
    left join taken_back b on b.id = k.id
    where k.reason is null and (k.status = 'pending' or b.id is not null)
  ), claims as (
    insert into public.email_claims (user_id, campaign_id, worker, email_ids, message_id_domain, lease_expires_at)
    select me, h.campaign_id, coalesce(claim_emails.worker, ''), pg_catalog.array_agg(h.id), domain, now() + lease
    from handed h
    group by h.campaign_id
  )
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a)), '[]'::jsonb) into answer
  from (select * from handed union all select * from suppressed) a;
  return answer;
end;
$$;

-- Records what the SMTP server said, for emails the worker holds, and
-- marks the emails the worker is about to hand to SMTP, in one call (so the
-- hand-off costs no round trip of its own).
-- `outcomes` is a JSON array of {"id", "status", "response"} where status
-- is `sent` (accepted), `bounced` (permanent refusal of the mailbox),
-- `failed` (any other final refusal, or retries exhausted), or `pending`
-- (released untouched: the worker never started it). A bounce also
-- suppresses the address. An email whose lease the worker no longer holds
-- is left alone.
-- `handed`: ids to mark as handed to SMTP (`handed_at`), each only while
-- the worker still holds its lease; the worker sends only those the answer
-- names.
-- Answers {"recorded": n, "handed": [ids]}: n counts the outcomes now
-- stored (those a retried call already stored included), `handed` the ids
-- marked (by this call or a retried one). At most 1000 of each per call.
drop function if exists public.record_email_outcomes(jsonb, text);
create or replace function public.record_email_outcomes(outcomes jsonb, worker text, handed uuid[] default '{}')
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  me uuid := auth.uid();
  -- The outcomes, one per email (the first given), in id order: the
  -- email, its status, the SMTP answer.
  ids uuid[];
  statuses text[];
  responses text[];
  -- For each of `ids`: the claim of the worker's holding it (null: none),
  -- when it was claimed, its Message-ID domain.
  claim_ids uuid[];
  claimed_ats timestamptz[];
  domains text[];
  updated uuid[];
  recorded integer;
  marked uuid[];
begin
  outcomes := coalesce(outcomes, '[]'::jsonb);
  if jsonb_typeof(outcomes) is distinct from 'array' then
    raise exception 'record_email_outcomes expects a JSON array' using errcode = '22023';
  end if;
  if pg_catalog.jsonb_array_length(outcomes) > 1000 then
    raise exception 'record_email_outcomes takes at most 1000 outcomes per call, not %',
      pg_catalog.jsonb_array_length(outcomes) using errcode = '22023';
  end if;
  if coalesce(pg_catalog.cardinality(handed), 0) > 1000 then
    raise exception 'record_email_outcomes takes at most 1000 handed ids per call, not %',
      pg_catalog.cardinality(handed) using errcode = '22023';
  end if;
  -- One outcome per email (the first given). An SMTP answer is kept to its
  -- first 2000 characters (the column's bound).
  select coalesce(pg_catalog.array_agg(o.id order by o.id), '{}'),
         coalesce(pg_catalog.array_agg(o.status order by o.id), '{}'),
         coalesce(pg_catalog.array_agg(o.response order by o.id), '{}')
    into ids, statuses, responses
  from (
    select distinct on ((x ->> 'id')::uuid)
           (x ->> 'id')::uuid as id, x ->> 'status' as status, left(x ->> 'response', 2000) as response
    from pg_catalog.jsonb_array_elements(outcomes) x
    where x ->> 'status' in ('sent', 'bounced', 'failed', 'pending')
    order by (x ->> 'id')::uuid
  ) o;

  -- The worker's claims that hold some of these emails, locked first (the
  -- order every writer of claims and emails takes), and each outcome's
  -- claim found by one hash join (an email is in one claim at most).
  with mine as (
    select k.id, k.email_ids, k.claimed_at, k.message_id_domain
    from public.email_claims k
    where k.user_id = me and k.worker = record_email_outcomes.worker
    order by k.id
    for update
  ), held as (
    select x.id, m.id as claim_id, m.claimed_at, m.message_id_domain
    from mine m, pg_catalog.unnest(m.email_ids) as x (id)
  ), each_one as (
    select distinct on (o.n) o.n, h.claim_id, h.claimed_at, h.message_id_domain
    from pg_catalog.unnest(ids) with ordinality as o (id, n)
    left join held h on h.id = o.id
    order by o.n
  )
  select coalesce(pg_catalog.array_agg(w.claim_id order by w.n), '{}'),
         coalesce(pg_catalog.array_agg(w.claimed_at order by w.n), '{}'),
         coalesce(pg_catalog.array_agg(w.message_id_domain order by w.n), '{}')
    into claim_ids, claimed_ats, domains
  from each_one w;

  -- The outcomes joined to their emails, each email found by its primary
  -- key: `e.id = any(array[o.id])` can be met only by one probe of the key
  -- per outcome (it cannot be hashed or merged), so no plan depends on the
  -- table's statistics (a plain `e.id = o.id` let the planner hash the
  -- campaign's emails once it had some: 5 000 read for 100 outcomes).
  -- Each value is read once from its row: looking
  -- each up by id in a JSON object, a dozen times per email, cost a
  -- quarter of the call. The status is compared under the "C" collation
  -- (the same equality), so the partial index of unsettled emails, whose
  -- predicate does not match it, is never read whole for a batch. `sent_at`
  -- and `updated_at` are set here, so the row triggers have nothing to do.
  -- An email held by a claim is `pending` and written once, here; one
  -- given back (`pending`) is not written at all.
  with updated as (
    update public.emails_sent e
       set status = o.s,
           updated_at = now(),
           smtp_response = case when o.s = 'pending' then e.smtp_response else o.r end,
           error_message = case when o.s in ('bounced', 'failed') then o.r end,
           sent_at = case when o.s in ('sent', 'bounced') then coalesce(e.sent_at, now()) else e.sent_at end,
           lease_expires_at = null,
           lease_owner = case when o.s = 'pending' then null else worker end,
           claimed_at = case when o.s = 'pending' then null when e.status = 'pending' then o.c else e.claimed_at end,
           handed_at = case when o.s = 'pending' then null when e.status = 'pending' then o.c else e.handed_at end,
           attempts = case when o.s = 'pending' then greatest(e.attempts - 1, 0)
                           when e.status = 'pending' then e.attempts + 1
                           else e.attempts end,
           message_id = case when e.status = 'pending'
                             then coalesce(e.message_id, pg_catalog.format('<%s@%s>', e.id, o.d))
                             else e.message_id end
      from unnest(ids, statuses, responses, claim_ids, claimed_ats, domains) as o (id, s, r, k, c, d)
     where e.id = any(array[o.id])
       and ((e.status = 'sending' collate "C" and e.lease_owner = worker)
            or (e.status = 'pending' collate "C" and o.k is not null and o.s <> 'pending'))
    returning e.id, e.user_id, e.recipient_email, e.status, e.smtp_response
  ), bounced as (
    insert into public.suppressions (user_id, email, reason, detail)
    select distinct on (u.user_id, lower(u.recipient_email)) u.user_id, lower(u.recipient_email), 'bounced', u.smtp_response
    from updated u
    where u.status = 'bounced'
    order by u.user_id, lower(u.recipient_email)
    on conflict (user_id, email) do nothing
  )
  select coalesce(pg_catalog.array_agg(u.id), '{}') into updated from updated u;
  recorded := pg_catalog.cardinality(updated);

  -- The emails reported leave their claims (those given back stay
  -- `pending`, claimable again); a claim left empty is done.
  with touched as (
    select k.id,
           array(select x from pg_catalog.unnest(k.email_ids) x
                 where x not in (select i from pg_catalog.unnest(ids) i)) as rest
    from public.email_claims k
    where k.id in (select c from pg_catalog.unnest(claim_ids) c where c is not null)
  ), emptied as (
    delete from public.email_claims k
    using touched t
    where k.id = t.id and pg_catalog.cardinality(t.rest) = 0
  )
  update public.email_claims k
     set email_ids = t.rest
    from touched t
   where k.id = t.id and pg_catalog.cardinality(t.rest) > 0;

  if recorded < pg_catalog.cardinality(ids) then
    -- A retried call (its first answer lost): what it stored then counts;
    -- so does an email given back that the claim held.
    select recorded + count(*) into recorded
    from unnest(ids, statuses) as o (id, s)
    join public.emails_sent e on e.id = any(array[o.id])
    where e.id <> all(updated)
      and ((o.s <> 'pending' and e.status = o.s and e.lease_owner = worker)
           or (o.s = 'pending' and e.status = 'pending' and e.lease_owner is null));
  end if;

  if coalesce(pg_catalog.cardinality(handed), 0) = 0 then
    return pg_catalog.jsonb_build_object('recorded', recorded, 'handed', '[]'::jsonb);
  end if;
  with marked_now as (
    update public.emails_sent e
       set handed_at = now()
     where e.id = any(handed)
       and e.status = 'sending' collate "C"
       and e.lease_owner = worker
       and e.handed_at is null
       and e.lease_expires_at > now()
    returning e.id
  ), marked_before as (
    select e.id from public.emails_sent e
    where e.id = any(handed) and e.status = 'sending' collate "C" and e.lease_owner = worker and e.handed_at is not null
  )
  select coalesce(pg_catalog.array_agg(m.id), '{}') into marked
  from (select id from marked_now union select id from marked_before) m;

  return pg_catalog.jsonb_build_object('recorded', recorded, 'handed', pg_catalog.to_jsonb(marked));
end;
$$;

-- Gives back what a dead worker held and never started (its local journal
-- names the emails it started, `started`): each email of its claims, and
-- each of its `sending` emails, not named there goes back to `pending`, as
-- if never claimed; a started one held by a claim is left as an unknown
-- outcome would be (`sending`, handed, the claim's lease). Run once the
-- worker is known dead (its journal's lock is free); its emails already
-- taken over by another worker are left alone. Returns how many were given
-- back.
create or replace function public.release_worker_emails(worker text, started uuid[] default '{}')
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  me uuid := auth.uid();
  released integer;
  freed integer;
begin
  if worker is null or btrim(worker) = '' then
    raise exception 'release_worker_emails needs the worker' using errcode = '22023';
  end if;
  if coalesce(pg_catalog.cardinality(started), 0) > 1000 then
    raise exception 'release_worker_emails takes at most 1000 started ids, not %', pg_catalog.cardinality(started)
      using errcode = '22023';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('mailsync claims ' || me::text, 0));
  -- The emails of its claims it never started leave them (still `pending`,
  -- claimable at once); what the claims keep is then an unknown outcome.
  with mine as (
    select k.id, k.email_ids from public.email_claims k
    where k.user_id = me and k.worker = release_worker_emails.worker
    for update
  ), trimmed as (
    update public.email_claims k
       set email_ids = array(select x from pg_catalog.unnest(m.email_ids) x where x = any(coalesce(started, '{}')))
      from mine m
     where k.id = m.id
  )
  select count(*) into freed
  from mine m
  cross join pg_catalog.unnest(m.email_ids) as x (id)
  join public.emails_sent e on e.id = x.id
  where not (x.id = any(coalesce(started, '{}'))) and e.status = 'pending';
  perform public.mailsync_expire_email_claims(null, release_worker_emails.worker);

  update public.emails_sent e
     set status = 'pending',
         lease_owner = null,
         lease_expires_at = null,
         claimed_at = null,
         handed_at = null,
         attempts = greatest(e.attempts - 1, 0)
    from public.email_campaigns c
   where c.user_id = me
     and c.status = 'sending'
     and e.campaign_id = c.id
     and e.user_id = c.user_id
     and e.status = 'sending'
     and e.lease_owner = release_worker_emails.worker
     and e.id <> all(coalesce(started, '{}'));
  get diagnostics released = row_count;
  return released + freed;
end;
$$;

-- Keeps a live worker's claims from being taken for unknown: moves the
-- lease of the emails it still holds `lease_seconds` ahead (its claims
-- holding any of `ids`, and those of `ids` it holds `sending`). Returns how
-- many of `ids` it holds. At most 1000 ids per call.
create or replace function public.extend_email_leases(ids uuid[], worker text, lease_seconds integer default 120)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  until timestamptz := now() + make_interval(secs => least(greatest(coalesce(lease_seconds, 120), 10), 3600));
  extended integer;
  claimed integer;
begin
  if coalesce(pg_catalog.cardinality(ids), 0) > 1000 then
    raise exception 'extend_email_leases takes at most 1000 ids per call, not %', pg_catalog.cardinality(ids)
      using errcode = '22023';
  end if;
  with moved as (
    update public.email_claims k
       set lease_expires_at = until
     where k.user_id = (select auth.uid())
       and k.worker = extend_email_leases.worker
       and k.email_ids && ids
    returning k.email_ids
  )
  select count(*) into claimed
  from pg_catalog.unnest(ids) as x (id)
  where x.id in (select y from moved m, pg_catalog.unnest(m.email_ids) as y);
  update public.emails_sent e
     set lease_expires_at = until
   where e.id = any(ids) and e.status = 'sending' collate "C" and e.lease_owner = worker;
  get diagnostics extended = row_count;
  return extended + claimed;
end;
$$;

-- The emails whose outcome is unknown: `sending`, handed to SMTP, lease
-- expired (a claimed email never handed is not: it is claimable), and
-- those still `pending` in an expired claim. `count` and the first
-- `max_rows` of them (address, Message-ID, when claimed, by whom), for the
-- campaign given or all the caller's.
create or replace function public.unknown_emails(campaign uuid default null, max_rows integer default 20)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with unknown as (
    select e.id, e.campaign_id, e.recipient_email, e.message_id, e.claimed_at, e.lease_owner
    from public.emails_sent e
    join public.email_campaigns c on c.id = e.campaign_id and c.user_id = e.user_id
    where c.user_id = (select auth.uid())
      and c.status = 'sending'
      and (unknown_emails.campaign is null or c.id = unknown_emails.campaign)
      and e.status = 'sending'
      and e.handed_at is not null
      and coalesce(e.lease_expires_at, '-infinity') < now()
    union all
    select e.id, e.campaign_id, e.recipient_email,
           coalesce(e.message_id, pg_catalog.format('<%s@%s>', e.id, k.message_id_domain)), k.claimed_at, k.worker
    from public.email_claims k
    join public.email_campaigns c on c.id = k.campaign_id and c.user_id = k.user_id
    cross join pg_catalog.unnest(k.email_ids) as x (id)
    join public.emails_sent e on e.id = x.id and e.campaign_id = k.campaign_id
    where k.user_id = (select auth.uid())
      and c.status = 'sending'
      and (unknown_emails.campaign is null or c.id = unknown_emails.campaign)
      and k.lease_expires_at < now()
      and e.status = 'pending'
  )
  select jsonb_build_object(
    'count', (select count(*) from unknown),
    'emails', coalesce((select jsonb_agg(to_jsonb(u) order by u.claimed_at, u.id)
                        from (select * from unknown order by claimed_at, id
                              limit least(greatest(coalesce(max_rows, 20), 0), 1000)) u), '[]'::jsonb))
$$;

-- Settles the emails of `campaign` whose outcome is unknown as `outcome`
-- (`sent` or `failed`), when the operator has found out (the SMTP server's
-- logs, say) what became of them; at most `max_emails` (1000) per call.
-- The campaign is then finished like any other whose emails are all
-- settled. Returns how many were settled.
create or replace function public.settle_unknown_emails(campaign uuid, outcome text, max_emails integer default 1000)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  settled integer;
begin
  if outcome is null or outcome not in ('sent', 'failed') then
    raise exception 'an unknown outcome is settled as sent or failed, not %', coalesce(outcome, 'null')
      using errcode = '22023';
  end if;
  perform public.mailsync_expire_email_claims(settle_unknown_emails.campaign);
  with unknown as (
    select e.id
    from public.emails_sent e
    join public.email_campaigns c on c.id = e.campaign_id and c.user_id = e.user_id
    where c.user_id = (select auth.uid())
      and c.id = settle_unknown_emails.campaign
      and e.campaign_id = settle_unknown_emails.campaign
      and e.status = 'sending'
      and e.handed_at is not null
      and coalesce(e.lease_expires_at, '-infinity') < now()
    limit least(greatest(coalesce(max_emails, 1000), 1), 1000)
    for update of e skip locked
  )
  update public.emails_sent e
     set status = outcome,
         smtp_response = coalesce(e.smtp_response, 'outcome unknown; settled as ' || outcome || ' by the operator'),
         error_message = case when outcome = 'failed' then 'outcome unknown; settled as failed by the operator' end,
         lease_expires_at = null
    from unknown u
   where e.id = u.id;
  get diagnostics settled = row_count;
  return settled;
end;
$$;

revoke all on function public.claim_emails(uuid, integer, integer, text, text, boolean, boolean),
  public.record_email_outcomes(jsonb, text, uuid[]), public.extend_email_leases(uuid[], text, integer),
  public.release_worker_emails(text, uuid[]),
  public.unknown_emails(uuid, integer), public.settle_unknown_emails(uuid, text, integer),
  public.mailsync_expire_email_claims(uuid, text),
  public.mailsync_normalize_suppression()
  from public, anon;
grant execute on function public.claim_emails(uuid, integer, integer, text, text, boolean, boolean),
  public.record_email_outcomes(jsonb, text, uuid[]), public.extend_email_leases(uuid[], text, integer),
  public.release_worker_emails(text, uuid[]),
  public.unknown_emails(uuid, integer), public.settle_unknown_emails(uuid, text, integer),
  public.mailsync_expire_email_claims(uuid, text)
  to authenticated, service_role;

-- Source: sql/schema/12_delivery_reports.sql
-- ---------------------------------------------------------------------------
-- Delivery reports (`mailsync bounces fetch`): what the mail system says
-- after the SMTP server accepted an email. RFC 3464 delivery status
-- notifications (delivered, failed, delayed, relayed, expanded) and RFC 5965
-- complaints, one row per report and recipient, recorded once per
-- `report_key` (the caller's stable key: Message-ID of the report and
-- recipient, say), so that fetching a mailbox twice changes nothing.
--
-- Effects on the email (its status never goes backwards: pending < sending
-- < sent < delivered, then failed and bounced, which are final):
--   * delivered: `sent` or `sending` (an unknown outcome: the report proves
--     the email left) becomes `delivered` at the report's arrival;
--   * failed, 5.x.x: `bounced`, and the address is suppressed (hard bounce),
--     except 5.2.2 (mailbox full), a soft bounce;
--   * failed, 4.x.x (the relay gave up): `failed`, a soft bounce;
--   * delayed: a soft bounce, the status stays;
--   * complaint: the address is suppressed at once ('complained'), and a
--     `sent` email is `delivered` (it was read);
--   * relayed, expanded: recorded only.
-- `soft_bounce_limit` soft bounces in a row on distinct emails to one
-- address, with no delivered report after them, suppress it ('bounced').
-- ---------------------------------------------------------------------------

-- The Message-ID lookup of `record_delivery_reports` (the caller's own).
create index if not exists emails_sent_user_message_id_idx
  on public.emails_sent (user_id, message_id) where message_id is not null;

-- Complaints suppress with their own reason.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_constraint
                 where conrelid = 'public.suppressions'::regclass and conname = 'suppressions_reason_check'
                   and pg_catalog.pg_get_constraintdef(oid) like '%complained%') then
    alter table public.suppressions drop constraint if exists suppressions_reason_check;
    alter table public.suppressions add constraint suppressions_reason_check
      check (reason in ('unsubscribed', 'bounced', 'complained'));
  end if;
end;
$$;

create table if not exists public.delivery_reports (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  email_id uuid not null,
  -- The email's address, lower-cased, filled from the email by a trigger:
  -- soft bounces are counted per address.
  recipient text not null,
  report_key text not null,
  kind text not null,
  status text,
  diagnostic text,
  reporting_mta text,
  arrived_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint delivery_reports_kind_check
    check (kind in ('delivered', 'failed', 'delayed', 'relayed', 'expanded', 'complaint')),
  constraint delivery_reports_status_check check (status ~ '^[245]\.[0-9]{1,3}\.[0-9]{1,3}$'),
  constraint delivery_reports_report_key_length check (length(report_key) between 1 and 200),
  constraint delivery_reports_diagnostic_length check (length(diagnostic) <= 2000),
  constraint delivery_reports_reporting_mta_length check (length(reporting_mta) <= 255),
  constraint delivery_reports_user_report_key_key unique (user_id, report_key),
  -- The email is the writer's own: `fill_report_recipient` (below) finds
  -- it by id and user, or leaves `recipient` null, which is refused.
  constraint delivery_reports_email_fkey foreign key (email_id)
    references public.emails_sent (id) on delete cascade
);

-- Earlier, the foreign key was (user_id, email_id), to a unique index of
-- (user_id, id) on emails_sent kept for it alone: one more index for every
-- write of an email to maintain and check (about a tenth of recording an
-- outcome), for what the recipient trigger already ensures.
do $$
begin
  if exists (select 1 from pg_catalog.pg_constraint
             where conrelid = 'public.delivery_reports'::regclass and conname = 'delivery_reports_email_fkey'
               and pg_catalog.cardinality(conkey) = 2) then
    alter table public.delivery_reports drop constraint delivery_reports_email_fkey;
    alter table public.delivery_reports add constraint delivery_reports_email_fkey
      foreign key (email_id) references public.emails_sent (id) on delete cascade;
  end if;
  -- Only while no other foreign key (one of the project's) relies on it.
  if exists (select 1 from pg_catalog.pg_constraint
             where conrelid = 'public.emails_sent'::regclass and conname = 'emails_sent_user_id_id_key')
     and not exists (select 1 from pg_catalog.pg_constraint f
                     join pg_catalog.pg_constraint u on u.conindid = f.conindid
                     where u.conrelid = 'public.emails_sent'::regclass and u.conname = 'emails_sent_user_id_id_key'
                       and f.contype = 'f') then
    alter table public.emails_sent drop constraint emails_sent_user_id_id_key;
  end if;
end;
$$;
create index if not exists delivery_reports_user_email_idx
  on public.delivery_reports (user_id, email_id);
-- The foreign key's own (an email deleted deletes its reports).
create index if not exists delivery_reports_email_idx
  on public.delivery_reports (email_id);
create index if not exists delivery_reports_user_recipient_idx
  on public.delivery_reports (user_id, recipient, arrived_at);

-- A report's recipient is its email's, whoever writes the report. Runs as
-- the writer: an email the writer cannot see, or of another user, leaves it
-- null (refused): what keeps a report to its writer's own email.
create or replace function public.mailsync_fill_report_recipient()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  select lower(e.recipient_email) into new.recipient
    from public.emails_sent e
   where e.id = new.email_id and e.user_id = new.user_id;
  return new;
end;
$$;

drop trigger if exists fill_report_recipient on public.delivery_reports;
create trigger fill_report_recipient before insert or update of email_id, user_id on public.delivery_reports
  for each row execute function public.mailsync_fill_report_recipient();
drop trigger if exists update_delivery_reports_updated_at on public.delivery_reports;
create trigger update_delivery_reports_updated_at before update on public.delivery_reports
  for each row execute function public.mailsync_set_updated_at();

alter table public.delivery_reports enable row level security;
drop policy if exists delivery_reports_select_own on public.delivery_reports;
create policy delivery_reports_select_own on public.delivery_reports
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists delivery_reports_insert_own on public.delivery_reports;
create policy delivery_reports_insert_own on public.delivery_reports
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists delivery_reports_update_own on public.delivery_reports;
create policy delivery_reports_update_own on public.delivery_reports
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists delivery_reports_delete_own on public.delivery_reports;
create policy delivery_reports_delete_own on public.delivery_reports
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.delivery_reports from anon, public;
grant select, insert, update, delete on table public.delivery_reports to authenticated, service_role;

-- The elements of a `record_delivery_reports` batch, checked and matched to
-- the caller's emails (`email`: by `email_id`, else by exact `message_id`;
-- null when the caller has no such email). `first_of_key`: the first
-- storable element of its key in the batch.
create or replace function public.mailsync_parse_delivery_reports(reports jsonb)
returns table (n bigint, key text, email uuid, kind text, status text, diagnostic text,
               reporting_mta text, arrived_at timestamptz, valid boolean, first_of_key boolean)
language sql
stable
security invoker
set search_path = ''
as $$
  with input as (
    select r.ordinality as n, r.value as v
    from pg_catalog.jsonb_array_elements(reports) with ordinality as r(value, ordinality)
  ), fields as materialized (
    -- Materialised: the lookups below then compare plain values, which RLS
    -- lets them use the indexes for (a qual calling a function that is not
    -- leakproof, such as a cast, is only applied after the policy's).
    select i.n,
           case when jsonb_typeof(i.v -> 'key') = 'string' then i.v ->> 'key' end as key,
           i.v ->> 'kind' as kind,
           i.v ->> 'status' as status,
           case when jsonb_typeof(i.v -> 'email_id') = 'string'
                 and i.v ->> 'email_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                then (i.v ->> 'email_id')::uuid end as email_id,
           i.v ->> 'message_id' as message_id,
           i.v ->> 'arrived_at' as arrived_at,
           i.v ->> 'diagnostic' as diagnostic,
           i.v ->> 'reporting_mta' as reporting_mta,
           coalesce(jsonb_typeof(i.v) = 'object'
             and jsonb_typeof(i.v -> 'key') = 'string'
             and length(i.v ->> 'key') between 1 and 200 and btrim(i.v ->> 'key') <> ''
             and jsonb_typeof(i.v -> 'kind') = 'string'
             and i.v ->> 'kind' in ('delivered', 'failed', 'delayed', 'relayed', 'expanded', 'complaint')
             and coalesce(jsonb_typeof(i.v -> 'status'), 'null') in ('null', 'string')
             and coalesce(i.v ->> 'status' ~ '^[245]\.[0-9]{1,3}\.[0-9]{1,3}$', true)
             and (i.v ->> 'kind' <> 'failed' or coalesce(i.v ->> 'status' ~ '^[45]\.', false))
             and coalesce(jsonb_typeof(i.v -> 'email_id'), 'null') in ('null', 'string')
             and coalesce(i.v ->> 'email_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', true)
             and coalesce(jsonb_typeof(i.v -> 'message_id'), 'null') in ('null', 'string')
             and coalesce(jsonb_typeof(i.v -> 'diagnostic'), 'null') in ('null', 'string')
             and coalesce(jsonb_typeof(i.v -> 'reporting_mta'), 'null') in ('null', 'string')
             and jsonb_typeof(i.v -> 'arrived_at') = 'string'
             and i.v ->> 'arrived_at'
                 ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$',
             false) as valid
    from input i
  ), matched as (
    select f.*,
           case when f.valid then coalesce(
             (select e.id from public.emails_sent e
               where e.id = f.email_id and e.user_id = (select auth.uid())),
             (select e.id from public.emails_sent e
               where e.user_id = (select auth.uid()) and e.message_id = f.message_id
               order by e.id limit 1)) end as email
    from fields f
  )
  select m.n, m.key, m.email,
         case when m.valid then m.kind end,
         case when m.valid then m.status end,
         case when m.valid then left(m.diagnostic, 2000) end,
         case when m.valid then left(m.reporting_mta, 255) end,
         case when m.valid then m.arrived_at::timestamptz end,
         m.valid,
         m.valid and m.email is not null
           and pg_catalog.row_number() over (partition by m.key, m.valid and m.email is not null order by m.n) = 1
  from matched m
  order by m.n
$$;

-- Records a batch of reports (at most 1000) as the caller: security
-- invoker, so RLS confines matching and every effect to the caller's own
-- emails. `reports` is a JSON array of {"key" (required, 1-200 characters),
-- "email_id" (uuid or null), "message_id" (text or null), "kind",
-- "status" (an RFC 3463 code or null; required, 4.x.x or 5.x.x, for
-- `failed`), "diagnostic", "reporting_mta" (cut at 2000 and 255
-- characters), "arrived_at" (ISO 8601 with a zone, required)}. An element
-- is matched to the caller's email by `email_id`, else by exact
-- `message_id`. Answers one JSON array with an object per element, in
-- order: {"report_key", "email_id", "outcome"}, the outcome being
-- 'recorded', 'duplicate' (key already recorded: nothing changes),
-- 'unmatched' (no email of the caller: nothing stored) or 'invalid'
-- (nothing stored). Effects are decided only for the rows this call
-- inserted, so concurrent calls with the same reports record them once.
-- One JSON value, not a set of rows: the REST API cuts a set-returning
-- function's answer at the project's row cap (`max_rows`, which a project
-- may set below a batch's size) after the function has run, and the
-- reports past the cap, recorded, would be counted unmatched and come back
-- as duplicates on the next fetch. An earlier mailsync's set-returning
-- version is replaced (its return type cannot be changed in place).
do $$ begin
  if exists (select 1 from pg_catalog.pg_proc
             where oid = to_regprocedure('public.record_delivery_reports(jsonb, integer)')
               and prorettype <> 'pg_catalog.jsonb'::pg_catalog.regtype) then
    drop function public.record_delivery_reports(jsonb, integer);
  end if;
end $$;
create or replace function public.record_delivery_reports(reports jsonb, soft_bounce_limit integer default 3)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
  me uuid := auth.uid();
  new_ids uuid[];
begin
  if me is null then
    raise exception 'record_delivery_reports needs a signed-in user' using errcode = '42501';
  end if;
  if jsonb_typeof(reports) is distinct from 'array' then
    raise exception 'record_delivery_reports expects a JSON array of reports' using errcode = '22023';
  end if;
  if pg_catalog.jsonb_array_length(reports) > 1000 then
    raise exception 'record_delivery_reports takes at most 1000 reports per call, not %',
      pg_catalog.jsonb_array_length(reports) using errcode = '22023';
  end if;
  if soft_bounce_limit is null or soft_bounce_limit < 1 then
    raise exception 'soft_bounce_limit must be 1 or more' using errcode = '22023';
  end if;
  -- A claim whose worker died holds `pending` emails that may have gone
  -- out: they become unknown (`sending`, with their Message-ID) first, so
  -- a report can settle them.
  perform public.mailsync_expire_email_claims(null);

  -- The new reports, in key order (concurrent calls take the key locks in
  -- one order). A key already recorded, or seen earlier in the batch, is
  -- left out by `on conflict do nothing`.
  with inserted as (
    insert into public.delivery_reports as d
      (user_id, email_id, recipient, report_key, kind, status, diagnostic, reporting_mta, arrived_at)
    select me, p.email, '', p.key, p.kind, p.status, p.diagnostic, p.reporting_mta, p.arrived_at
    from public.mailsync_parse_delivery_reports(reports) p
    where p.valid and p.email is not null
    order by p.key, p.n
    on conflict on constraint delivery_reports_user_report_key_key do nothing
    returning d.id
  )
  select coalesce(pg_catalog.array_agg(i.id), '{}') into new_ids from inserted i;

  if cardinality(new_ids) > 0 then
    -- The emails concerned, locked in id order (concurrent calls on the
    -- same emails queue instead of deadlocking).
    perform 1 from public.emails_sent e
     where e.id in (select d.email_id from public.delivery_reports d where d.id = any(new_ids))
     order by e.id
       for no key update;

    -- Statuses move forward only; of several reports on one email, the
    -- furthest status wins.
    with r as (
      select d.email_id, d.arrived_at,
             case when d.kind = 'failed' and d.status like '5.%' then 'bounced'
                  when d.kind = 'failed' then 'failed'
                  when d.kind in ('delivered', 'complaint') then 'delivered' end as target,
             case when d.kind = 'failed' then pg_catalog.btrim(d.status || ' ' || coalesce(d.diagnostic, '')) end as error
      from public.delivery_reports d
      where d.id = any(new_ids)
    ), per_email as (
      select r.email_id,
             (pg_catalog.array_agg(r.target order by case r.target when 'bounced' then 3 when 'failed' then 2 else 1 end desc,
                                   r.arrived_at))[1] as target,
             min(r.arrived_at) filter (where r.target = 'delivered') as delivered_at,
             (pg_catalog.array_agg(r.error order by case r.target when 'bounced' then 3 else 2 end desc, r.arrived_at)
                filter (where r.error is not null))[1] as error,
             min(r.arrived_at) as first_arrived
      from r
      where r.target is not null
      group by r.email_id
    )
    update public.emails_sent e
       set status = p.target,
           sent_at = coalesce(e.sent_at, p.first_arrived),
           delivered_at = case when p.target = 'delivered' then p.delivered_at else e.delivered_at end,
           error_message = case when p.target in ('bounced', 'failed') then p.error else e.error_message end,
           lease_expires_at = case when e.status = 'sending' then null else e.lease_expires_at end,
           lease_owner = case when e.status = 'sending' then null else e.lease_owner end
      from per_email p
     where e.id = p.email_id
       and e.user_id = me
       and (e.status in ('sending', 'sent')
            or (e.status = 'delivered' and p.target in ('bounced', 'failed')));

    -- Hard bounces suppress the address (an existing suppression stays).
    insert into public.suppressions (user_id, email, reason, detail)
    select distinct on (d.recipient) me, d.recipient, 'bounced',
           pg_catalog.format('hard bounce: %s', pg_catalog.btrim(d.status || ' ' || coalesce(d.diagnostic, '')))
    from public.delivery_reports d
    where d.id = any(new_ids) and d.kind = 'failed' and d.status like '5.%' and d.status <> '5.2.2'
    order by d.recipient, d.arrived_at
    on conflict (user_id, email) do nothing;

    -- Complaints suppress at once, whatever the address was suppressed for.
    insert into public.suppressions as s (user_id, email, reason, detail)
    select distinct on (d.recipient) me, d.recipient, 'complained',
           pg_catalog.format('complaint reported%s', coalesce(' by ' || d.reporting_mta, ''))
    from public.delivery_reports d
    where d.id = any(new_ids) and d.kind = 'complaint'
    order by d.recipient, d.arrived_at
    on conflict (user_id, email) do update
      set reason = excluded.reason, detail = excluded.detail
      where s.reason <> 'complained';

    -- Soft bounces in a row: distinct emails with a soft bounce since the
    -- address's last delivered report.
    insert into public.suppressions (user_id, email, reason, detail)
    select me, t.recipient, 'bounced',
           pg_catalog.format('%s soft bounces in a row (last: %s)', streak.emails, streak.last_status)
    from (select distinct d.recipient from public.delivery_reports d
          where d.id = any(new_ids)
            and (d.kind = 'delayed' or (d.kind = 'failed' and (d.status like '4.%' or d.status = '5.2.2')))) t
    cross join lateral (
      select count(distinct b.email_id) as emails,
             (pg_catalog.array_agg(pg_catalog.btrim(b.kind || ' ' || coalesce(b.status, '') || ' ' || coalesce(b.diagnostic, ''))
                                   order by b.arrived_at desc))[1] as last_status
      from public.delivery_reports b
      where b.user_id = me and b.recipient = t.recipient
        and (b.kind = 'delayed' or (b.kind = 'failed' and (b.status like '4.%' or b.status = '5.2.2')))
        and b.arrived_at > coalesce((select max(g.arrived_at) from public.delivery_reports g
                                     where g.user_id = me and g.recipient = t.recipient and g.kind = 'delivered'),
                                    '-infinity')
    ) streak
    where streak.emails >= soft_bounce_limit
    order by t.recipient
    on conflict (user_id, email) do nothing;
  end if;

  -- One answer per element, in order.
  return (
    select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
             'report_key', p.key,
             'email_id', coalesce(d.email_id, p.email),
             'outcome', case when not p.valid then 'invalid'
                             when p.first_of_key and d.id = any(new_ids) then 'recorded'
                             when d.id is not null then 'duplicate'
                             else 'unmatched' end) order by p.n), '[]'::jsonb)
    from public.mailsync_parse_delivery_reports(reports) p
    left join public.delivery_reports d on d.user_id = me and d.report_key = p.key);
end;
$$;

revoke all on function public.record_delivery_reports(jsonb, integer),
  public.mailsync_parse_delivery_reports(jsonb), public.mailsync_fill_report_recipient()
  from public, anon;
grant execute on function public.record_delivery_reports(jsonb, integer),
  public.mailsync_parse_delivery_reports(jsonb)
  to authenticated, service_role;

-- Source: sql/schema/13_limits.sql
-- ---------------------------------------------------------------------------
-- Limits and quotas: one user of a shared project cannot fill its database
-- (docs/shared-project.md).
--
-- The limits are the tables' and functions' own, so no path around the CLI
-- (the REST API, supabase-js, the SQL editor) gets past them:
--   * every text column a user can write is bounded (check constraints,
--     below): an address at most 254 characters (RFC 5321), a name 200, a
--     subject 998 (an RFC 5322 line), a content 1 MiB (in bytes), a message
--     or server answer 2000;
--   * every array a function takes is bounded: `import_contacts` 50000 rows,
--     `record_email_outcomes`, `extend_email_leases`,
--     `record_delivery_reports` and `claim_emails` 1000, `send_campaign`
--     and a page of `queue_campaign_page` 20000 contacts;
--     a longer one is refused with SQLSTATE 22023 and nothing is written;
--   * per-user quotas, which the project's owner sets in
--     `public.mailsync_quotas`: contacts per user, emails queued per user
--     per UTC day. Triggers enforce them on every insert, whoever writes
--     (SQLSTATE MSQTA, the statement is undone). They read counters kept
--     in the same transaction (one row per user; 16 shards per user and
--     day), never count(*).
-- ---------------------------------------------------------------------------

-- The text bounds. A constraint is added `not valid` (existing rows are not
-- read while the table is locked) and then validated. When an existing row
-- is over a bound, the constraint is kept but not validated: new and
-- updated rows are checked, the old rows stay as they are, and applying the
-- schema says so (a WARNING naming the constraint); `db verify` fails until
-- those rows are shortened and the schema applied again.
do $$
declare
  l record;
begin
  for l in
    select * from (values
      ('organizations', 'organizations_name_length', 'char_length(name) <= 200'),
      ('contacts', 'contacts_email_length', 'char_length(email) <= 254'),
      ('contacts', 'contacts_organization_name_length', 'char_length(organization_name) <= 200'),
      ('email_campaigns', 'email_campaigns_name_length', 'char_length(name) <= 200'),
      ('email_campaigns', 'email_campaigns_subject_length', 'char_length(subject) <= 998'),
      ('email_campaigns', 'email_campaigns_content_size', 'octet_length(content) <= 1048576'),
      ('email_templates', 'email_templates_name_length', 'char_length(name) <= 200'),
      ('email_templates', 'email_templates_subject_length', 'char_length(subject) <= 998'),
      ('email_templates', 'email_templates_content_size', 'octet_length(content) <= 1048576'),
      ('emails_sent', 'emails_sent_recipient_email_length', 'char_length(recipient_email) <= 254'),
      ('emails_sent', 'emails_sent_recipient_organization_length', 'char_length(recipient_organization) <= 200'),
      ('emails_sent', 'emails_sent_error_message_length', 'char_length(error_message) <= 2000'),
      ('emails_sent', 'emails_sent_smtp_response_length', 'char_length(smtp_response) <= 2000'),
      ('emails_sent', 'emails_sent_message_id_length', 'char_length(message_id) <= 998'),
      ('emails_sent', 'emails_sent_lease_owner_length', 'char_length(lease_owner) <= 200'),
      ('campaign_sends', 'campaign_sends_organization_length', 'char_length(organization) <= 200'),
      ('suppressions', 'suppressions_email_length', 'char_length(email) <= 254'),
      ('suppressions', 'suppressions_detail_length', 'char_length(detail) <= 2000'),
      ('delivery_reports', 'delivery_reports_recipient_length', 'char_length(recipient) <= 254')
    ) as v (tab, con, expr)
  loop
    if not exists (select 1 from pg_catalog.pg_constraint c
                   where c.conrelid = ('public.' || l.tab)::regclass and c.conname = l.con) then
      execute format('alter table public.%I add constraint %I check (%s) not valid', l.tab, l.con, l.expr);
    end if;
    if exists (select 1 from pg_catalog.pg_constraint c
               where c.conrelid = ('public.' || l.tab)::regclass and c.conname = l.con and not c.convalidated) then
      begin
        execute format('alter table public.%I validate constraint %I', l.tab, l.con);
      exception when check_violation then
        raise warning 'existing rows of public.% are over the bound % (%): they are kept, new and updated rows are checked',
          l.tab, l.con, l.expr
          using hint = format('find them with: select id from public.%I where not (%s); shorten them and apply the schema again',
                              l.tab, l.expr);
      end;
    end if;
  end loop;
end;
$$;

-- The quotas. The row whose user_id is null is every user's default; a
-- user's own row overrides it column by column (null: the default's). A
-- null in the default row is no limit. Only the project's owner (`postgres`,
-- `service_role`) writes this table; a user reads the default and their own
-- row.
create table if not exists public.mailsync_quotas (
  id uuid primary key default gen_random_uuid(),
  user_id uuid unique references auth.users (id) on delete cascade,
  max_contacts bigint,
  max_emails_per_day bigint,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint mailsync_quotas_max_contacts_check check (max_contacts >= 0),
  constraint mailsync_quotas_max_emails_per_day_check check (max_emails_per_day >= 0)
);
-- One default row.
create unique index if not exists mailsync_quotas_default_idx
  on public.mailsync_quotas ((user_id is null)) where user_id is null;
insert into public.mailsync_quotas (user_id, max_contacts, max_emails_per_day)
select null, 1000000, 1000000
where not exists (select 1 from public.mailsync_quotas q where q.user_id is null);

drop trigger if exists update_mailsync_quotas_updated_at on public.mailsync_quotas;
create trigger update_mailsync_quotas_updated_at before update on public.mailsync_quotas
  for each row execute function public.mailsync_set_updated_at();

alter table public.mailsync_quotas enable row level security;
drop policy if exists mailsync_quotas_select_own on public.mailsync_quotas;
create policy mailsync_quotas_select_own on public.mailsync_quotas
  for select to authenticated using (user_id is null or user_id = (select auth.uid()));
revoke all on table public.mailsync_quotas from anon, authenticated, public;
grant select on table public.mailsync_quotas to authenticated;
grant select, insert, update, delete on table public.mailsync_quotas to service_role;

-- The counters the quotas are checked against, kept by the triggers below
-- (security definer: users read their own rows, never write them).
create table if not exists public.user_contact_counts (
  user_id uuid primary key references auth.users (id) on delete cascade,
  contacts bigint not null default 0
);
-- Sharded like the campaign counters (07_analytics.sql): a transaction
-- adds to one of 16 rows per user and day, so that two transactions of one
-- user queueing at once do not wait for each other; the check reads the sum.
create table if not exists public.user_daily_queued_counts (
  user_id uuid not null references auth.users (id) on delete cascade,
  day date not null,
  shard smallint not null,
  emails bigint not null default 0,
  primary key (user_id, day, shard)
);
alter table public.user_contact_counts set (fillfactor = 50);
alter table public.user_daily_queued_counts set (fillfactor = 50);
alter table public.user_contact_counts enable row level security;
alter table public.user_daily_queued_counts enable row level security;
drop policy if exists user_contact_counts_select_own on public.user_contact_counts;
create policy user_contact_counts_select_own on public.user_contact_counts
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists user_daily_queued_counts_select_own on public.user_daily_queued_counts;
create policy user_daily_queued_counts_select_own on public.user_daily_queued_counts
  for select to authenticated using (user_id = (select auth.uid()));
revoke all on table public.user_contact_counts, public.user_daily_queued_counts from anon, authenticated, public;
grant select on table public.user_contact_counts, public.user_daily_queued_counts to authenticated;
grant select, insert, update, delete on table public.user_contact_counts,
  public.user_daily_queued_counts to service_role;

-- The contact counts, recounted at every apply: right from the first apply
-- on a database with data, and right again whatever happened in between.
-- The triggers on contacts, re-created above in this transaction, hold
-- writers off until it commits.
delete from public.user_contact_counts;
insert into public.user_contact_counts (user_id, contacts)
select c.user_id, count(*) from public.contacts c group by c.user_id;

-- A user's quotas: their own row's, else the default's; null is no limit.
create or replace function public.mailsync_user_quotas(
  uid uuid, out max_contacts bigint, out max_emails_per_day bigint)
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce(u.max_contacts, d.max_contacts), coalesce(u.max_emails_per_day, d.max_emails_per_day)
  from (select 1) one
  left join public.mailsync_quotas d on d.user_id is null
  left join public.mailsync_quotas u on u.user_id = uid
$$;

-- Counts the contacts a statement inserted, and refuses the statement when
-- a user goes over their quota. One upsert per user per statement.
create or replace function public.mailsync_count_added_contacts()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  over record;
begin
  with added as (
    select n.user_id, count(*) as n from new_contacts n group by n.user_id
  ), counted as (
    insert into public.user_contact_counts as u (user_id, contacts)
    select a.user_id, a.n from added a order by a.user_id
    on conflict (user_id) do update set contacts = u.contacts + excluded.contacts
    returning u.user_id, u.contacts
  )
  select c.contacts, q.max_contacts into over
  from counted c cross join lateral public.mailsync_user_quotas(c.user_id) q
  where c.contacts > q.max_contacts
  limit 1;
  if found then
    raise exception 'contact quota reached: at most % contacts per user, and this write would make %: nothing was written',
      over.max_contacts, over.contacts
      using errcode = 'MSQTA',
            detail = format('{"quota": "contacts", "limit": %s, "count": %s}', over.max_contacts, over.contacts),
            hint = 'delete contacts, or ask the project''s owner to raise max_contacts in public.mailsync_quotas';
  end if;
  return null;
end;
$$;

create or replace function public.mailsync_count_removed_contacts()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.user_contact_counts u
     set contacts = u.contacts - d.n
    from (select o.user_id, count(*) as n from old_contacts o group by o.user_id) d
   where u.user_id = d.user_id;
  return null;
end;
$$;

drop trigger if exists count_added_contacts on public.contacts;
create trigger count_added_contacts after insert on public.contacts
  referencing new table as new_contacts
  for each statement execute function public.mailsync_count_added_contacts();
drop trigger if exists count_removed_contacts on public.contacts;
create trigger count_removed_contacts after delete on public.contacts
  referencing old table as old_contacts
  for each statement execute function public.mailsync_count_removed_contacts();

-- Counts the emails a statement queued (inserted) today, UTC, and refuses
-- the statement when a user goes over their daily quota. Deleting emails
-- gives nothing back: the quota is on what was queued. The sum is of the
-- committed shards and this transaction's own: transactions of one user
-- queueing at the same moment do not see each other's counts, so together
-- they may go over by what they queue at that moment (a page or a batch
-- each), never more.
create or replace function public.mailsync_count_queued_emails()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  s smallint := (pg_catalog.txid_current() % 16)::smallint;  -- this transaction's shard
  today date := (pg_catalog.now() at time zone 'utc')::date;
  over record;
begin
  insert into public.user_daily_queued_counts as u (user_id, day, shard, emails)
  select n.user_id, today, s, count(*) from new_rows n group by n.user_id order by n.user_id
  on conflict (user_id, day, shard) do update set emails = u.emails + excluded.emails;
  select c.emails, q.max_emails_per_day into over
  from (select u.user_id, sum(u.emails) as emails
        from public.user_daily_queued_counts u
        where u.day = today and u.user_id in (select distinct n.user_id from new_rows n)
        group by u.user_id) c
  cross join lateral public.mailsync_user_quotas(c.user_id) q
  where c.emails > q.max_emails_per_day
  limit 1;
  if found then
    raise exception 'daily email quota reached: at most % emails queued per user per day (UTC), and this write would make %: nothing was queued',
      over.max_emails_per_day, over.emails
      using errcode = 'MSQTA',
            detail = format('{"quota": "emails_per_day", "limit": %s, "count": %s}', over.max_emails_per_day, over.emails),
            hint = 'send again tomorrow (UTC), or ask the project''s owner to raise max_emails_per_day in public.mailsync_quotas';
  end if;
  return null;
end;
$$;

drop trigger if exists count_queued_emails on public.emails_sent;
create trigger count_queued_emails after insert on public.emails_sent
  referencing new table as new_rows
  for each statement execute function public.mailsync_count_queued_emails();

revoke all on function public.mailsync_count_added_contacts(), public.mailsync_count_removed_contacts(),
  public.mailsync_count_queued_emails() from public, anon, authenticated;
revoke all on function public.mailsync_user_quotas(uuid) from public, anon;
grant execute on function public.mailsync_user_quotas(uuid) to authenticated, service_role;

-- Source: sql/schema/99_privileges.sql
-- ---------------------------------------------------------------------------
-- Least privilege, whatever the project's default privileges granted: on
-- every mailsync table and view, `anon` (and PUBLIC) hold nothing, and
-- `authenticated` holds no TRUNCATE (it ignores RLS), REFERENCES, TRIGGER or
-- (PostgreSQL 17) MAINTAIN, and only SELECT on views. UPDATE is column by column: every column but
-- `id`, `user_id`, `created_at`, `updated_at` (set by a trigger) and
-- generated ones, so no update can re-key a row or move it to another user.
-- (`emails_sent.updated_at` may be written, as now(): its trigger is then
-- not called, and replaces any other value with now().)
-- ---------------------------------------------------------------------------

do $$
declare
  o record;
  cols text;
begin
  for o in select m.name, c.oid, c.relkind
           from mailsync_objects m
           join pg_catalog.pg_class c on c.oid = to_regclass('public.' || quote_ident(m.name))
           where m.kind in ('table', 'view') loop
    execute format('revoke all on table public.%I from anon, public', o.name);
    execute format('revoke truncate, references, trigger on table public.%I from authenticated', o.name);
    if o.relkind = 'v' then
      execute format('revoke insert, update, delete on table public.%I from authenticated', o.name);
    end if;
    if current_setting('server_version_num')::int >= 170000 then
      execute format('revoke maintain on table public.%I from authenticated', o.name);
    end if;
    if o.relkind in ('r', 'p') and pg_catalog.has_table_privilege('authenticated', o.oid, 'UPDATE') then
      select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into cols
      from pg_catalog.pg_attribute a
      where a.attrelid = o.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
        and a.attname not in ('id', 'user_id', 'created_at')
        and (a.attname <> 'updated_at' or o.name = 'emails_sent');
      execute format('revoke update on table public.%I from authenticated', o.name);
      if cols is not null then
        execute format('grant update (%s) on table public.%I to authenticated', cols, o.name);
      end if;
    end if;
  end loop;
end;
$$;

-- Ownership marks: every object listed in 00_ownership.sql is now mailsync's.
do $$
declare
  o record;
  mark constant text := 'Managed by mailsync (sql/MASTER-DATABASE.sql): mailsync db reset drops it; keep this comment.';
begin
  for o in select m.kind, m.name, c.relkind from mailsync_objects m
           left join pg_catalog.pg_class c on m.kind <> 'function' and c.oid = to_regclass('public.' || quote_ident(m.name)) loop
    if o.kind = 'table' and o.relkind in ('r', 'p') then
      execute format('comment on table public.%I is %L', o.name, mark);
    elsif o.kind = 'view' and o.relkind = 'v' then
      execute format('comment on view public.%I is %L', o.name, mark);
    elsif o.kind = 'function' and to_regprocedure('public.' || o.name) is not null then
      execute format('comment on function public.%s is %L', o.name, mark);
    end if;
  end loop;
end;
$$;

drop table mailsync_objects;

-- Ask the REST server to reload its schema cache (Supabase's PostgREST
-- listens on this channel).
notify pgrst, 'reload schema';
