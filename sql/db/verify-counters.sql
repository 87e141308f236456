-- `mailsync db verify`, second part: the live counters behind the analytic
-- views, recounted from `emails_sent` and compared. Run only when the
-- counter tables exist. One row per check: (name, ok, detail). Read-only;
-- it reads every email once.
with
truth as (
  select e.campaign_id,
         count(*) as total,
         count(*) filter (where e.status = 'pending') as pending,
         count(*) filter (where e.status = 'sending') as sending,
         count(*) filter (where e.status = 'sent') as sent,
         count(*) filter (where e.status = 'delivered') as delivered,
         count(*) filter (where e.status = 'failed') as failed,
         count(*) filter (where e.status = 'bounced') as bounced
  from public.emails_sent e
  group by e.campaign_id
),
counted as (
  select k.campaign_id, sum(k.total) as total, sum(k.pending) as pending, sum(k.sending) as sending,
         sum(k.sent) as sent, sum(k.delivered) as delivered, sum(k.failed) as failed,
         sum(k.bounced) as bounced
  from public.campaign_email_counts k
  group by k.campaign_id
),
campaign_drift as (
  select count(*) as campaigns
  from truth t
  full join counted c on c.campaign_id = t.campaign_id
  where (coalesce(t.total, 0), coalesce(t.pending, 0), coalesce(t.sending, 0), coalesce(t.sent, 0),
         coalesce(t.delivered, 0), coalesce(t.failed, 0), coalesce(t.bounced, 0))
        is distinct from
        (coalesce(c.total, 0), coalesce(c.pending, 0), coalesce(c.sending, 0), coalesce(c.sent, 0),
         coalesce(c.delivered, 0), coalesce(c.failed, 0), coalesce(c.bounced, 0))
),
day_truth as (
  select e.user_id, (e.sent_at at time zone 'utc')::date as day, count(*) as emails
  from public.emails_sent e
  where e.sent_at is not null
  group by 1, 2
),
day_counted as (
  select d.user_id, d.day, sum(d.emails) as emails
  from public.user_daily_sent_counts d
  group by 1, 2
),
day_drift as (
  select count(*) as days
  from day_truth t
  full join day_counted c on c.user_id = t.user_id and c.day = t.day
  where coalesce(t.emails, 0) <> coalesce(c.emails, 0)
),
counter_tables(table_name) as (values ('campaign_email_counts'), ('user_daily_sent_counts'))
select format('policy for select on %s', t.table_name) as name,
       exists (select 1 from pg_catalog.pg_policies p
               where p.schemaname = 'public' and p.tablename = t.table_name and p.cmd = 'SELECT'
                 and 'authenticated' = any(p.roles)) as ok,
       'authenticated reads only its own counters' as detail
from counter_tables t
union all
select format('authenticated cannot write %s', t.table_name),
       not pg_catalog.has_table_privilege('authenticated', 'public.' || t.table_name, 'INSERT, UPDATE, DELETE, TRUNCATE'),
       case when pg_catalog.has_table_privilege('authenticated', 'public.' || t.table_name, 'INSERT, UPDATE, DELETE, TRUNCATE')
            then 'users could forge their counts: revoke insert, update, delete, truncate from authenticated'
            else 'read-only for users; the triggers write them' end
from counter_tables t
union all
select 'campaign counters match emails_sent', d.campaigns = 0,
       case when d.campaigns = 0 then 'recounted: every campaign and status matches'
            else format('%s campaign(s) differ from a recount', d.campaigns) end
from campaign_drift d
union all
select 'emails_sent_today day buckets match emails_sent', d.days = 0,
       case when d.days = 0 then 'recounted: every user and day matches'
            else format('%s user-day(s) differ from a recount', d.days) end
from day_drift d
