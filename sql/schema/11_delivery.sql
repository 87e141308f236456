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
