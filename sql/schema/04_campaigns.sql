-- ---------------------------------------------------------------------------
-- Campaigns.
-- ---------------------------------------------------------------------------

create table if not exists public.email_campaigns (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null,
  subject text not null default '',
  content text not null default '',
  status text not null default 'draft',
  started_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint email_campaigns_status_check
    check (status in ('draft', 'scheduled', 'sending', 'sent', 'failed')),
  constraint email_campaigns_user_id_id_key unique (user_id, id)
);

create index if not exists email_campaigns_user_status_idx on public.email_campaigns (user_id, status);

drop trigger if exists update_email_campaigns_updated_at on public.email_campaigns;
create trigger update_email_campaigns_updated_at before update on public.email_campaigns
  for each row execute function public.mailsync_set_updated_at();
alter table public.email_campaigns enable row level security;
drop policy if exists email_campaigns_select_own on public.email_campaigns;
create policy email_campaigns_select_own on public.email_campaigns
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists email_campaigns_insert_own on public.email_campaigns;
create policy email_campaigns_insert_own on public.email_campaigns
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists email_campaigns_update_own on public.email_campaigns;
create policy email_campaigns_update_own on public.email_campaigns
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists email_campaigns_delete_own on public.email_campaigns;
create policy email_campaigns_delete_own on public.email_campaigns
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.email_campaigns from anon, public;
grant select, insert, update, delete on table public.email_campaigns to authenticated, service_role;
