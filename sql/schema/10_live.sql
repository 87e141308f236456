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
