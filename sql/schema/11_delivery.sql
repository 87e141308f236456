-- ---------------------------------------------------------------------------
-- Delivery (`mailsync campaigns deliver`): claims, outcomes, suppression.
--
-- Workers deliver as the signed-in user, through the REST API: every
-- function here is `security invoker`, so RLS decides which emails a worker
-- may claim or settle. The claim is the database's: a batch moves from
-- `pending` to `sending` under `for update skip locked`, with a lease (who
-- holds it, until when), so any number of workers on any number of machines
-- share a campaign without overlap.
--
-- At most once: an email is claimed before the SMTP server sees it, and its
-- outcome is recorded after. An email left `sending` once its lease has
-- expired may or may not have gone out (its worker died in between): it is
-- "unknown", reported, and claimed again only when the caller asks
-- (`resend_unknown`). Its Message-ID was fixed at the first claim and stays
-- the same, so the operator can look it up in the SMTP server's logs, and a
-- re-send carries the same Message-ID (receivers may fold the two).
-- ---------------------------------------------------------------------------

alter table public.emails_sent
  add column if not exists message_id text,
  add column if not exists smtp_response text,
  add column if not exists attempts integer not null default 0,
  add column if not exists claimed_at timestamptz,
  add column if not exists lease_owner text,
  add column if not exists lease_expires_at timestamptz;

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

-- Claims up to `max_emails` emails for the worker `worker`: `pending` ones
-- of the campaign given, or of all the caller's `sending` campaigns; with
-- `resend_unknown`, also those whose outcome is unknown (left `sending` by
-- a worker whose lease expired). Each moves to `sending` with a lease of
-- `lease_seconds`, gets its Message-ID (kept if it had one) and one more
-- attempt. An email to a suppressed address is settled `failed` instead,
-- and returned with that status so the worker can count it.
-- Bounded (at most 1000 emails) so that one call stays far inside the API's
-- statement timeout.
create or replace function public.claim_emails(
  campaign uuid default null,
  max_emails integer default 100,
  lease_seconds integer default 120,
  worker text default null,
  message_id_domain text default 'mailsync.invalid',
  resend_unknown boolean default false)
returns table (id uuid, campaign_id uuid, recipient_email text, recipient_organization text,
               message_id text, attempts integer, status text)
language sql
security invoker
set search_path = ''
as $$
  with targets as (
    select c.id
    from public.email_campaigns c
    where c.user_id = (select auth.uid())
      and c.status = 'sending'
      and (claim_emails.campaign is null or c.id = claim_emails.campaign)
  ), candidates as (
    select e.id, e.recipient_email
    from public.emails_sent e
    where e.campaign_id in (select t.id from targets t)
      and (e.status = 'pending'
           or (claim_emails.resend_unknown and e.status = 'sending'
               and coalesce(e.lease_expires_at, '-infinity') < now()))
    limit least(greatest(coalesce(claim_emails.max_emails, 100), 1), 1000)
    for update of e skip locked
  ), claimed as (
    update public.emails_sent e
       set status = case when s.reason is null then 'sending' else 'failed' end,
           error_message = case when s.reason is null then null
                                else format('not sent: %s is suppressed (%s)', e.recipient_email, s.reason) end,
           claimed_at = now(),
           lease_owner = claim_emails.worker,
           lease_expires_at = case when s.reason is null
             then now() + make_interval(secs => least(greatest(coalesce(claim_emails.lease_seconds, 120), 10), 3600))
             end,
           attempts = e.attempts + case when s.reason is null then 1 else 0 end,
           message_id = coalesce(e.message_id,
             format('<%s@%s>', e.id, coalesce(nullif(btrim(claim_emails.message_id_domain), ''), 'mailsync.invalid')))
      from candidates k
      left join public.suppressions s
        on s.user_id = (select auth.uid())
       and s.email = lower(k.recipient_email)
     where e.id = k.id
    returning e.id, e.campaign_id, e.recipient_email, e.recipient_organization, e.message_id, e.attempts, e.status
  )
  select * from claimed
$$;

-- Records what the SMTP server said, for emails the worker holds:
-- `outcomes` is a JSON array of {"id", "status", "response"} where status
-- is `sent` (accepted), `bounced` (permanent refusal of the mailbox),
-- `failed` (any other final refusal, or retries exhausted), or `pending`
-- (released untouched: the worker stopped before trying it). A bounce also
-- suppresses the address. Returns how many rows were settled; an email
-- whose lease the worker no longer holds is left alone.
create or replace function public.record_email_outcomes(outcomes jsonb, worker text)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  recorded integer;
begin
  if jsonb_typeof(outcomes) is distinct from 'array' then
    raise exception 'record_email_outcomes expects a JSON array' using errcode = '22023';
  end if;
  if pg_catalog.jsonb_array_length(outcomes) > 1000 then
    raise exception 'record_email_outcomes takes at most 1000 outcomes per call, not %',
      pg_catalog.jsonb_array_length(outcomes) using errcode = '22023';
  end if;
  with input as (
    -- An SMTP answer is kept to its first 2000 characters (the column's bound).
    select (o ->> 'id')::uuid as id, o ->> 'status' as status, left(o ->> 'response', 2000) as response
    from pg_catalog.jsonb_array_elements(outcomes) o
  ), updated as (
    update public.emails_sent e
       set status = i.status,
           smtp_response = case when i.status = 'pending' then e.smtp_response else i.response end,
           error_message = case when i.status in ('bounced', 'failed') then i.response end,
           lease_expires_at = null,
           lease_owner = case when i.status = 'pending' then null else e.lease_owner end,
           claimed_at = case when i.status = 'pending' then null else e.claimed_at end,
           attempts = case when i.status = 'pending' then greatest(e.attempts - 1, 0) else e.attempts end
      from input i
     where e.id = i.id
       and e.status = 'sending'
       and e.lease_owner = worker
       and i.status in ('sent', 'bounced', 'failed', 'pending')
    returning e.user_id, e.recipient_email, e.status, e.smtp_response
  ), bounced as (
    insert into public.suppressions (user_id, email, reason, detail)
    select distinct on (u.user_id, lower(u.recipient_email)) u.user_id, lower(u.recipient_email), 'bounced', u.smtp_response
    from updated u
    where u.status = 'bounced'
    order by u.user_id, lower(u.recipient_email)
    on conflict (user_id, email) do nothing
  )
  select count(*) into recorded from updated;
  return recorded;
end;
$$;

-- Keeps a live worker's claims from being taken for unknown: moves the
-- lease of the emails it still holds `lease_seconds` ahead.
-- At most 1000 ids per call.
create or replace function public.extend_email_leases(ids uuid[], worker text, lease_seconds integer default 120)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  extended integer;
begin
  if coalesce(pg_catalog.cardinality(ids), 0) > 1000 then
    raise exception 'extend_email_leases takes at most 1000 ids per call, not %', pg_catalog.cardinality(ids)
      using errcode = '22023';
  end if;
  update public.emails_sent e
     set lease_expires_at = now() + make_interval(secs => least(greatest(coalesce(lease_seconds, 120), 10), 3600))
   where e.id = any(ids) and e.status = 'sending' and e.lease_owner = worker;
  get diagnostics extended = row_count;
  return extended;
end;
$$;

-- The emails whose outcome is unknown: `sending`, lease expired. `count`
-- and the first `max_rows` of them (address, Message-ID, when claimed, by
-- whom), for the campaign given or all the caller's.
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
      and coalesce(e.lease_expires_at, '-infinity') < now()
  )
  select jsonb_build_object(
    'count', (select count(*) from unknown),
    'emails', coalesce((select jsonb_agg(to_jsonb(u) order by u.claimed_at, u.id)
                        from (select * from unknown order by claimed_at, id
                              limit least(greatest(coalesce(max_rows, 20), 0), 1000)) u), '[]'::jsonb))
$$;

revoke all on function public.claim_emails(uuid, integer, integer, text, text, boolean),
  public.record_email_outcomes(jsonb, text), public.extend_email_leases(uuid[], text, integer),
  public.unknown_emails(uuid, integer), public.mailsync_normalize_suppression()
  from public, anon;
grant execute on function public.claim_emails(uuid, integer, integer, text, text, boolean),
  public.record_email_outcomes(jsonb, text), public.extend_email_leases(uuid[], text, integer),
  public.unknown_emails(uuid, integer)
  to authenticated, service_role;
