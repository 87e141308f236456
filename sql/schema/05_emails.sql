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
