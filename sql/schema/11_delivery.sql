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
-- At most once: an email is claimed before the SMTP server sees it, handed
-- to a connection (`handed_at`) only once the database has said so, and its
-- outcome is recorded after. A claimed email never handed whose lease has
-- expired cannot have gone out (its worker died before it started): it is
-- claimable again, like a pending one. An email handed and left `sending`
-- once its lease has expired may or may not have gone out: it is "unknown",
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

-- Claims up to `max_emails` emails for the worker `worker`: `pending` ones
-- of the campaign given, or of all the caller's `sending` campaigns, and
-- those a worker claimed, never handed to SMTP and lost (lease expired);
-- with `resend_unknown`, also those whose outcome is unknown (handed, left
-- `sending` by a worker whose lease expired). Each moves to `sending`, not
-- handed, with a lease of `lease_seconds`, gets its Message-ID (kept if it
-- had one) and one more attempt (none for an email never handed: its last
-- claim counted the attempt it never made). An email to a suppressed address is settled `failed` instead,
-- and returned with that status so the worker can count it.
-- With `hand`, the emails claimed are handed to SMTP by the same write
-- (`handed_at`): a worker that claims only as many as it may have in doubt
-- at once (its hand-off window) then writes each email twice in all, once
-- claimed and once settled, where a separate hand-off would write it three
-- times.
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
    select e.id, e.recipient_email, lower(e.recipient_email) as address
    from public.emails_sent e
    where e.campaign_id in (select t.id from targets t)
      and (e.status = 'pending'
           or (e.status = 'sending'
               and coalesce(e.lease_expires_at, '-infinity') < now()
               and (e.handed_at is null or claim_emails.resend_unknown)))
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
           handed_at = case when claim_emails.hand and s.reason is null then now() end,
           attempts = e.attempts + case when s.reason is null and (e.status = 'pending' or e.handed_at is not null)
                                        then 1 else 0 end,
           message_id = coalesce(e.message_id,
             format('<%s@%s>', e.id, coalesce(nullif(btrim(claim_emails.message_id_domain), ''), 'mailsync.invalid')))
      from candidates k
      -- One probe of (user_id, email) per email: the address is compared as
      -- a plain value (lowered above), which RLS lets the index take (a
      -- `lower()` here ran after the policy, and the whole of the caller's
      -- suppression list was read for each claim: 20 000 rows a call).
      left join lateral (
        select x.reason from public.suppressions x
        where x.user_id = (select auth.uid()) and x.email = k.address
        limit 1) s on true
     where e.id = k.id
    returning e.id, e.campaign_id, e.recipient_email, e.recipient_organization, e.message_id, e.attempts, e.status
  )
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c)), '[]'::jsonb) from claimed c
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
  ids uuid[];
  -- Each email's outcome by its id: {"<id>": {"s": status, "r": response}}.
  byid jsonb;
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
  select coalesce(pg_catalog.array_agg(o.id), '{}'),
         coalesce(pg_catalog.jsonb_object_agg(o.id::text, pg_catalog.jsonb_build_object('s', o.status, 'r', o.response)),
                  '{}')
    into ids, byid
  from (
    select distinct on ((x ->> 'id')::uuid)
           (x ->> 'id')::uuid as id, x ->> 'status' as status, left(x ->> 'response', 2000) as response
    from pg_catalog.jsonb_array_elements(outcomes) x
    where x ->> 'status' in ('sent', 'bounced', 'failed', 'pending')
    order by (x ->> 'id')::uuid
  ) o;

  -- One table, no join: each email is found by its primary key and its
  -- outcome looked up by its id, so no plan depends on the table's
  -- statistics (there are none right after a send). Left to the planner,
  -- a join of the batch to its emails was a nested loop matching each
  -- email against every outcome (0.4 s for 1000), and a condition on the
  -- status let it read every unsettled email through the partial index
  -- (18 000 rows for 250 outcomes): the status is compared under the "C"
  -- collation (the same equality), which that index's predicate does not
  -- match. `sent_at` is set here, so the timestamps trigger has nothing to
  -- do.
  with updated as (
    update public.emails_sent e
       set status = byid -> e.id::text ->> 's',
           smtp_response = case when byid -> e.id::text ->> 's' = 'pending' then e.smtp_response
                                else byid -> e.id::text ->> 'r' end,
           error_message = case when byid -> e.id::text ->> 's' in ('bounced', 'failed')
                                then byid -> e.id::text ->> 'r' end,
           sent_at = case when byid -> e.id::text ->> 's' in ('sent', 'bounced') then coalesce(e.sent_at, now())
                          else e.sent_at end,
           lease_expires_at = null,
           lease_owner = case when byid -> e.id::text ->> 's' = 'pending' then null else e.lease_owner end,
           claimed_at = case when byid -> e.id::text ->> 's' = 'pending' then null else e.claimed_at end,
           handed_at = case when byid -> e.id::text ->> 's' = 'pending' then null else e.handed_at end,
           attempts = case when byid -> e.id::text ->> 's' = 'pending' then greatest(e.attempts - 1, 0)
                           else e.attempts end
     where e.id = any(ids)
       and e.status = 'sending' collate "C"
       and e.lease_owner = worker
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

  if recorded < pg_catalog.cardinality(ids) then
    -- A retried call (its first answer lost): what it stored then counts.
    select recorded + count(*) into recorded
    from public.emails_sent e
    where e.id = any(ids)
      and e.id <> all(updated)
      and ((byid -> e.id::text ->> 's' <> 'pending' and e.status = byid -> e.id::text ->> 's'
            and e.lease_owner = worker)
           or (byid -> e.id::text ->> 's' = 'pending' and e.status = 'pending' and e.lease_owner is null));
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
-- names the emails it started, `started`): each of its `sending` emails not
-- named there goes back to `pending`, as if never claimed. Run once the
-- worker is known dead (its journal's lock is free); its emails already
-- taken over by another worker are left alone. Returns how many.
create or replace function public.release_worker_emails(worker text, started uuid[] default '{}')
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  released integer;
begin
  if worker is null or btrim(worker) = '' then
    raise exception 'release_worker_emails needs the worker' using errcode = '22023';
  end if;
  if coalesce(pg_catalog.cardinality(started), 0) > 1000 then
    raise exception 'release_worker_emails takes at most 1000 started ids, not %', pg_catalog.cardinality(started)
      using errcode = '22023';
  end if;
  update public.emails_sent e
     set status = 'pending',
         lease_owner = null,
         lease_expires_at = null,
         claimed_at = null,
         handed_at = null,
         attempts = greatest(e.attempts - 1, 0)
    from public.email_campaigns c
   where c.user_id = (select auth.uid())
     and c.status = 'sending'
     and e.campaign_id = c.id
     and e.user_id = c.user_id
     and e.status = 'sending'
     and e.lease_owner = release_worker_emails.worker
     and e.id <> all(coalesce(started, '{}'));
  get diagnostics released = row_count;
  return released;
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
   where e.id = any(ids) and e.status = 'sending' collate "C" and e.lease_owner = worker;
  get diagnostics extended = row_count;
  return extended;
end;
$$;

-- The emails whose outcome is unknown: `sending`, handed to SMTP, lease
-- expired (a claimed email never handed is not: it is claimable). `count`
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
      and e.handed_at is not null
      and coalesce(e.lease_expires_at, '-infinity') < now()
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
  public.mailsync_normalize_suppression()
  from public, anon;
grant execute on function public.claim_emails(uuid, integer, integer, text, text, boolean, boolean),
  public.record_email_outcomes(jsonb, text, uuid[]), public.extend_email_leases(uuid[], text, integer),
  public.release_worker_emails(text, uuid[]),
  public.unknown_emails(uuid, integer), public.settle_unknown_emails(uuid, text, integer)
  to authenticated, service_role;
