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
