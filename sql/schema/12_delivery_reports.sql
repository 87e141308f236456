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
