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
