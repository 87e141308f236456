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
