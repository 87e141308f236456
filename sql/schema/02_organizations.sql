-- ---------------------------------------------------------------------------
-- Organisations: unique per user and case-insensitive, named by the
-- organisation-name rule.
-- ---------------------------------------------------------------------------

create table if not exists public.organizations (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null,
  -- Uniqueness is per user and case-insensitive; a stored key column (rather
  -- than an expression index) lets PostgREST's `on_conflict` name it.
  name_key text generated always as (lower(name)) stored,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint organizations_name_not_blank check (btrim(name) <> ''),
  constraint organizations_user_name_key unique (user_id, name_key)
);

create or replace function public.mailsync_normalize_organization()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- A blank name becomes '', for the check constraint to refuse.
  if new.name is not null then
    new.name := coalesce(public.mailsync_org_name(new.name), '');
  end if;
  return new;
end;
$$;

drop trigger if exists update_organizations_updated_at on public.organizations;
create trigger update_organizations_updated_at before update on public.organizations
  for each row execute function public.mailsync_set_updated_at();
drop trigger if exists normalize_organization on public.organizations;
create trigger normalize_organization before insert or update of name on public.organizations
  for each row execute function public.mailsync_normalize_organization();

alter table public.organizations enable row level security;
drop policy if exists organizations_select_own on public.organizations;
create policy organizations_select_own on public.organizations
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists organizations_insert_own on public.organizations;
create policy organizations_insert_own on public.organizations
  for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists organizations_update_own on public.organizations;
create policy organizations_update_own on public.organizations
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists organizations_delete_own on public.organizations;
create policy organizations_delete_own on public.organizations
  for delete to authenticated using (user_id = (select auth.uid()));

revoke all on table public.organizations from anon, public;
grant select, insert, update, delete on table public.organizations to authenticated, service_role;
revoke all on function public.mailsync_normalize_organization() from anon, public;

-- The caller's organisation that `name` names, spelled as stored, or null.
create or replace function public.organization_named(name text)
returns text
language sql
stable
security invoker
set search_path = ''
as $$
  -- `$1`: in SQL, `name` would be the column o.name.
  select o.name from public.organizations o
  where o.user_id = (select auth.uid()) and o.name_key = public.mailsync_org_key($1)
$$;

revoke all on function public.organization_named(text) from public, anon;
grant execute on function public.organization_named(text) to authenticated, service_role;
