-- ---------------------------------------------------------------------------
-- Templates.
-- ---------------------------------------------------------------------------

create table if not exists public.email_templates (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null,
  subject text not null default '',
  content text not null default '',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint email_templates_user_name_key unique (user_id, name)
);

drop trigger if exists update_email_templates_updated_at on public.email_templates;
create trigger update_email_templates_updated_at before update on public.email_templates
  for each row execute function public.mailsync_set_updated_at();

alter table public.email_templates enable row level security;
drop policy if exists email_templates_select_own on public.email_templates;
create policy email_templates_select_own on public.email_templates
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists email_templates_insert_own on public.email_templates;
create policy email_templates_insert_own on public.email_templates
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists email_templates_update_own on public.email_templates;
create policy email_templates_update_own on public.email_templates
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists email_templates_delete_own on public.email_templates;
create policy email_templates_delete_own on public.email_templates
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.email_templates from anon, public;
grant select, insert, update, delete on table public.email_templates to authenticated, service_role;
